/* The inputs a trainer checkpoint records besides its configuration (checkpoint.c): the sde the
 * loss goes through (its parameterization, time conditioning and schedule) and a fingerprint of
 * the dataset the trainer draws from; score_trainer_load() refuses a trainer whose inputs
 * differ (doc/training.md lists the keys). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/comm-priv.h"
#include "core/param-registry.h"
#include "libscore/param.h"
#include "schedule/schedule-io-priv.h"
#include "sde/sde-priv.h"
#include "train-priv.h"

#define SDE_PRESENT "config.sde.present"
#define SDE_PREFIX "config.sde."
#define SCHED_PREFIX "config.schedule" /* score__schedule_save() adds ".<name>" */
#define DATA_PREFIX "config.data."
#define HEX_LEN 17 /* 16 hex digits and the NUL */

/* The sde parameters that change a loss value: what the network's output means and its time
 * input (score__sde_row_coefs()); the others (guidance, thresholding, observations) act on
 * sampling only. */
static const int sde_loss_params[] = {SCORE_SDE_PARAM_OUTPUT, SCORE_SDE_PARAM_COND,
                                      SCORE_SDE_PARAM_COND_SCALE, SCORE_SDE_PARAM_SIGMA_DATA};
#define N_SDE_LOSS_PARAMS (sizeof sde_loss_params / sizeof sde_loss_params[0])

/* The recorded parts of the dataset, in the order of the keys (and of the checks). */
enum { DATA_ROWS, DATA_DIM, DATA_HASH, DATA_LABEL_ROWS, DATA_LABELS_HASH, DATA_CONTEXT_ROWS,
       DATA_CONTEXT_DIM, DATA_CONTEXT_HASH, DATA_KEYS };
static const char *const data_names[DATA_KEYS] = {
    "rows", "dim", "hash", "label_rows", "labels_hash", "context_rows", "context_dim",
    "context_hash"};

/* ---- the dataset's fingerprint ---------------------------------------------------------- */

/* 64-bit FNV-1a, continued from h, of n 32-bit values (float32 or int32) taken as their four
 * little-endian bytes each: the same on every machine whatever its byte order. */
static uint64_t fnv1a_le32(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, b + 4 * i, 4);
        for (int k = 0; k < 4; k++) {
            h ^= (v >> (8 * k)) & 0xffu;
            h *= 0x100000001b3ULL;
        }
    }
    return h;
}

void score__trainer_data_print(const score_trainer *tr, score__data_print *out)
{
    memset(out, 0, sizeof *out);
    out->v[DATA_ROWS] = tr->data != NULL ? tr->rows : 0;
    out->v[DATA_DIM] = tr->data != NULL ? tr->dim : 0;
    out->v[DATA_HASH] = tr->data != NULL ? fnv1a_le32(SCORE__FNV_INIT, tr->data, tr->rows * tr->dim)
                                         : SCORE__FNV_INIT;
    out->v[DATA_LABEL_ROWS] = tr->labels != NULL ? tr->label_rows : 0;
    out->v[DATA_LABELS_HASH] = tr->labels != NULL
                                   ? fnv1a_le32(SCORE__FNV_INIT, tr->labels, tr->label_rows)
                                   : SCORE__FNV_INIT;
    out->v[DATA_CONTEXT_ROWS] = tr->ctx != NULL ? tr->ctx_rows : 0;
    out->v[DATA_CONTEXT_DIM] = tr->ctx != NULL ? tr->ctx_m : 0;
    out->v[DATA_CONTEXT_HASH] = tr->ctx != NULL
                                    ? fnv1a_le32(SCORE__FNV_INIT, tr->ctx, tr->ctx_rows * tr->ctx_m)
                                    : SCORE__FNV_INIT;
}

/* Part k of a fingerprint as its metadata text: the hashes as 16 lower-case hex digits, the
 * counts in decimal. */
static void data_text(char buf[32], const score__data_print *p, int k)
{
    if (k == DATA_HASH || k == DATA_LABELS_HASH || k == DATA_CONTEXT_HASH)
        snprintf(buf, HEX_LEN, "%016llx", (unsigned long long)p->v[k]);
    else
        snprintf(buf, 32, "%llu", (unsigned long long)p->v[k]);
}

/* ---- writing ---------------------------------------------------------------------------- */

int score__ckpt_put_inputs(const char *fn, score__st_writer *w, const score_trainer *tr)
{
    char key[96], val[48];
    score__data_print dp;
    size_t n;
    const score__param_desc *tab = score__sde_param_table(&n);
    int rc = score__st_writer_meta(fn, w, SDE_PRESENT, tr->sde != NULL ? "1" : "0");
    for (size_t j = 0; j < N_SDE_LOSS_PARAMS && rc == SCORE_OK && tr->sde != NULL; j++) {
        size_t i = score__param_index(tab, n, sde_loss_params[j]);
        snprintf(key, sizeof key, SDE_PREFIX "%s", tab[i].name);
        score__ckpt_fmt_val(val, sizeof val, &tab[i], tr->sde->params[i]);
        rc = score__st_writer_meta(fn, w, key, val);
    }
    if (rc == SCORE_OK && tr->sde != NULL)
        rc = score__schedule_save(fn, score_sde_schedule(tr->sde), w, SCHED_PREFIX);
    score__trainer_data_print(tr, &dp);
    for (int k = 0; k < DATA_KEYS && rc == SCORE_OK; k++) {
        snprintf(key, sizeof key, DATA_PREFIX "%s", data_names[k]);
        data_text(val, &dp, k);
        rc = score__st_writer_meta(fn, w, key, val);
    }
    return rc;
}

/* ---- reading ---------------------------------------------------------------------------- */

int score__ckpt_input_key(const char *key)
{
    const char *rest;
    int id;
    if (strcmp(key, SDE_PRESENT) == 0)
        return 1;
    if (strncmp(key, SDE_PREFIX, strlen(SDE_PREFIX)) == 0) {
        rest = key + strlen(SDE_PREFIX);
        for (size_t j = 0; j < N_SDE_LOSS_PARAMS; j++)
            if (strcmp(rest, score_param_name(SCORE_OBJECT_SDE, sde_loss_params[j])) == 0)
                return 1;
        return 0;
    }
    if (strncmp(key, SCHED_PREFIX ".", strlen(SCHED_PREFIX) + 1) == 0) {
        rest = key + strlen(SCHED_PREFIX) + 1;
        return strcmp(rest, "kind") == 0 ||
               score_param_from_name(SCORE_OBJECT_SCHEDULE, rest, &id) == SCORE_OK;
    }
    if (strncmp(key, DATA_PREFIX, strlen(DATA_PREFIX)) == 0) {
        rest = key + strlen(DATA_PREFIX);
        for (int k = 0; k < DATA_KEYS; k++)
            if (strcmp(rest, data_names[k]) == 0)
                return 1;
    }
    return 0;
}

/* The name of schedule kind `text` (a decimal ::score_schedule_kind), or "unknown". */
static const char *kind_name(const char *text, char buf[32])
{
    score_schedule *s = NULL;
    snprintf(buf, 32, "unknown");
    if (score_schedule_new(&s, atoi(text)) == SCORE_OK)
        snprintf(buf, 32, "%s", score_schedule_name(s));
    score_schedule_free(s);
    return buf;
}

/* The stored schedule against the trainer's: the trainer's is written by the same serializer
 * (score__schedule_save()) and every "config.schedule.*" entry compared as text (the doubles
 * as "%.17g": equal text, equal value) both ways, and the level array of the user-array kinds
 * byte for byte. */
static int check_schedule(const char *fn, const score_schedule *sched, const score__st_reader *r)
{
    const size_t pl = strlen(SCHED_PREFIX) + 1;
    score__st_writer *w = NULL;
    score__st_reader *mr = NULL;
    void *buf = NULL;
    size_t len = 0;
    const char *k, *stored, *mine;
    const score__st_tensor *ta, *tb;
    char na[32], nb[32];
    int rc = score__st_writer_new(fn, &w);
    if (rc == SCORE_OK) rc = score__schedule_save(fn, sched, w, SCHED_PREFIX);
    if (rc == SCORE_OK) rc = score__st_writer_finish(fn, w, &buf, &len);
    score__st_writer_free(w);
    if (rc == SCORE_OK) rc = score__st_reader_open(fn, &mr, buf, len, 1);
    else score__free(buf);
    if (rc != SCORE_OK)
        return rc;
    stored = score__st_meta(r, SCHED_PREFIX ".kind");
    mine = score__st_meta(mr, SCHED_PREFIX ".kind");
    if (stored == NULL)
        rc = score__error(SCORE_E_FORMAT, fn, "metadata '" SCHED_PREFIX ".kind' is missing (the "
                          "checkpoint records an sde)");
    else if (strcmp(stored, mine) != 0)
        rc = score__error(SCORE_E_FORMAT, fn, "the checkpoint was written with schedule kind "
                          "'%s' (%.20s), this trainer's sde has '%s' (%s) (continuing with "
                          "another noise schedule would not continue that run)",
                          kind_name(stored, na), stored, kind_name(mine, nb), mine);
    /* the trainer's entries in the checkpoint, then the checkpoint's in the trainer's */
    for (size_t i = 0; rc == SCORE_OK && i < score__st_meta_count(mr); i++) {
        if (score__st_meta_at(mr, i, &k, &mine) != SCORE_OK || strncmp(k, SCHED_PREFIX ".", pl))
            continue;
        if ((stored = score__st_meta(r, k)) == NULL || strcmp(stored, mine) != 0)
            rc = score__ckpt_mismatch(fn, "schedule", k + pl, stored ? stored : "(absent)", mine);
    }
    for (size_t i = 0; rc == SCORE_OK && i < score__st_meta_count(r); i++) {
        if (score__st_meta_at(r, i, &k, &stored) != SCORE_OK || strncmp(k, SCHED_PREFIX ".", pl))
            continue;
        if (score__st_meta(mr, k) == NULL)
            rc = score__ckpt_mismatch(fn, "schedule", k + pl, stored,
                                      "(none: not a parameter of its kind)");
    }
    ta = score__st_find(r, SCHED_PREFIX ".array");
    tb = score__st_find(mr, SCHED_PREFIX ".array");
    if (rc == SCORE_OK && (ta != NULL || tb != NULL) &&
        (ta == NULL || tb == NULL || ta->dtype != tb->dtype || ta->nbytes != tb->nbytes ||
         memcmp(ta->data, tb->data, tb->nbytes) != 0))
        rc = score__error(SCORE_E_FORMAT, fn, "the checkpoint was written with another level "
                          "array of the schedule (tensor '" SCHED_PREFIX ".array': %zu values, "
                          "this trainer's sde %zu)", ta ? ta->count : 0, tb ? tb->count : 0);
    score__st_reader_free(mr);
    return rc;
}

/* The sde: present in both or neither; its parameters that change a loss value (a missing key
 * stands for the default, as for the configuration); its schedule. */
static int check_sde(const char *fn, const score_trainer *tr, const score__st_reader *r)
{
    const char *present = score__st_meta(r, SDE_PRESENT);
    char key[96], mine[48], def[48];
    size_t n;
    const score__param_desc *tab = score__sde_param_table(&n);
    if (present == NULL)
        return SCORE_OK; /* written before the sde was recorded */
    if (strcmp(present, "0") != 0 && strcmp(present, "1") != 0)
        return score__error(SCORE_E_FORMAT, fn, "metadata '" SDE_PRESENT "' = '%.20s' is "
                            "neither 0 nor 1", present);
    if ((present[0] == '1') != (tr->sde != NULL))
        return score__error(SCORE_E_FORMAT, fn, "the checkpoint was written by a trainer %s "
                            "sde, this trainer has %s (the loss would mean something else)",
                            tr->sde != NULL ? "without an" : "with an",
                            tr->sde != NULL ? "one" : "none");
    if (tr->sde == NULL)
        return SCORE_OK;
    for (size_t j = 0; j < N_SDE_LOSS_PARAMS; j++) {
        size_t i = score__param_index(tab, n, sde_loss_params[j]);
        const char *stored;
        snprintf(key, sizeof key, SDE_PREFIX "%s", tab[i].name);
        score__ckpt_fmt_val(mine, sizeof mine, &tab[i], tr->sde->params[i]);
        if ((stored = score__st_meta(r, key)) == NULL) {
            score__param_val dv;
            if (tab[i].type == SCORE_PARAM_F64)
                dv.f = tab[i].def;
            else
                dv.i = (int64_t)tab[i].def;
            score__ckpt_fmt_val(def, sizeof def, &tab[i], dv);
            stored = def;
        }
        if (strcmp(stored, mine) != 0)
            return score__ckpt_mismatch(fn, "sde", tab[i].name, stored, mine);
    }
    return check_schedule(fn, score_sde_schedule(tr->sde), r);
}

/* The dataset: every part of the fingerprint, counts first. */
static int check_data(const char *fn, const score_trainer *tr, const score__st_reader *r)
{
    char key[96], mine[32];
    score__data_print dp;
    const char *rows = score__st_meta(r, DATA_PREFIX "rows");
    if (rows == NULL || strcmp(rows, "0") == 0)
        return SCORE_OK; /* written before the dataset was recorded, or before one was given
                          * (no step was taken on any data) */
    if (tr->data == NULL)
        return score__error(SCORE_E_FORMAT, fn, "the checkpoint was written with a dataset of "
                            "%.20s rows, this trainer has none (give it the data, labels and "
                            "conditions of that run before loading: they are checked)", rows);
    score__trainer_data_print(tr, &dp);
    for (int k = 0; k < DATA_KEYS; k++) {
        const char *stored;
        snprintf(key, sizeof key, DATA_PREFIX "%s", data_names[k]);
        data_text(mine, &dp, k);
        if ((stored = score__st_meta(r, key)) == NULL)
            return score__error(SCORE_E_FORMAT, fn, "metadata '%s' is missing (the checkpoint "
                                "records its dataset by all of the " DATA_PREFIX "* entries)",
                                key);
        if (strcmp(stored, mine) != 0)
            return score__error(SCORE_E_FORMAT, fn, "the checkpoint was written with data "
                                "parameter '%s' = %.40s, this trainer has '%s' = %s (%s)",
                                data_names[k], stored, data_names[k], mine,
                                k == DATA_HASH ? "the same shape with other values: another "
                                "data file, transform or row order"
                                : k == DATA_LABELS_HASH ? "other class labels"
                                : k == DATA_CONTEXT_HASH ? "other condition values"
                                : "another dataset");
    }
    return SCORE_OK;
}

int score__ckpt_check_inputs(const char *fn, const score_trainer *tr, const score__st_reader *r)
{
    int rc = check_sde(fn, tr, r);
    return rc == SCORE_OK ? check_data(fn, tr, r) : rc;
}
