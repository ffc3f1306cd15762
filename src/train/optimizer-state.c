/* Optimizer state serialisation: the moment buffers and counters of a score_optimizer as one
 * little-endian byte string (trainer checkpoints carry it). */
#include <math.h>
#include <string.h>

#include "train-priv.h"

/* ---- state: "SCOREOPT" magic, u32 version, u32 kind, u64 n, u64 step, u64 skipped, then the
 * moment buffers (m, then v for Adam) as little-endian float32. ---- */
#define OPT_MAGIC "SCOREOPT"
#define OPT_VERSION 1u
#define OPT_HEADER 40u

size_t score_optimizer_state_size(const score_optimizer *opt)
{
    if (opt == NULL)
        return 0;
    return OPT_HEADER + (size_t)score__optimizer_nbuf(opt->kind) * opt->n * 4u;
}

static void put_f32s(unsigned char *p, size_t n, const float *x)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        score__put_u32le(p + 4 * i, u);
    }
}

static int get_f32s(const unsigned char *p, size_t n, float *x)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = score__get_u32le(p + 4 * i);
        memcpy(&x[i], &u, 4);
        if (!isfinite(x[i]))
            return -1;
    }
    return 0;
}

int score_optimizer_state_get(const score_optimizer *opt, void *buf, size_t len)
{
    unsigned char *p = buf;
    size_t need;
    if (opt == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt or buf is NULL");
    need = score_optimizer_state_size(opt);
    if (len < need)
        return score__error(SCORE_E_SHAPE, __func__, "buffer of %zu bytes, %zu needed", len, need);
    memcpy(p, OPT_MAGIC, 8);
    score__put_u32le(p + 8, OPT_VERSION);
    score__put_u32le(p + 12, (uint32_t)opt->kind);
    score__put_u64le(p + 16, (uint64_t)opt->n);
    score__put_u64le(p + 24, opt->step);
    score__put_u64le(p + 32, opt->skipped);
    put_f32s(p + OPT_HEADER, opt->n, opt->m);
    if (opt->v)
        put_f32s(p + OPT_HEADER + 4 * opt->n, opt->n, opt->v);
    return SCORE_OK;
}

int score_optimizer_state_set(score_optimizer *opt, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t need;
    float *m, *v = NULL;
    if (opt == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt or buf is NULL");
    need = score_optimizer_state_size(opt);
    if (len != need)
        return score__error(SCORE_E_SHAPE, __func__, "state of %zu bytes, %zu expected", len, need);
    if (memcmp(p, OPT_MAGIC, 8) != 0 || score__get_u32le(p + 8) != OPT_VERSION)
        return score__error(SCORE_E_FORMAT, __func__, "not an optimizer state (bad magic or version)");
    if (score__get_u32le(p + 12) != (uint32_t)opt->kind)
        return score__error(SCORE_E_FORMAT, __func__, "state of optimizer kind %u, this one is %d",
                            (unsigned)score__get_u32le(p + 12), opt->kind);
    if (score__get_u64le(p + 16) != (uint64_t)opt->n)
        return score__error(SCORE_E_FORMAT, __func__, "state for %llu parameters, this one has %zu",
                            (unsigned long long)score__get_u64le(p + 16), opt->n);
    m = score__calloc(opt->n, sizeof(float));
    if (opt->v)
        v = score__calloc(opt->n, sizeof(float));
    if (m == NULL || (opt->v && v == NULL)) {
        score__free(m);
        score__free(v);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    if (get_f32s(p + OPT_HEADER, opt->n, m) != 0 ||
        (v && get_f32s(p + OPT_HEADER + 4 * opt->n, opt->n, v) != 0)) {
        score__free(m);
        score__free(v);
        return score__error(SCORE_E_FORMAT, __func__, "the state holds non-finite moments");
    }
    score__free(opt->m);
    score__free(opt->v);
    opt->m = m;
    opt->v = v;
    opt->step = score__get_u64le(p + 24);
    opt->skipped = score__get_u64le(p + 32);
    score__optimizer_moments_changed(opt);
    return SCORE_OK;
}
