/* The trainer's step with a communicator (score_trainer_set_comm()): the minibatch is cut into
 * fixed reduction blocks that depend on the batch size and REDUCE_ROWS only; each rank computes
 * the loss and gradient of its contiguous range of blocks, one all-gather brings every block's
 * record to every rank, and every rank sums the blocks in block order and makes the same update.
 * The rank count therefore never changes a bit of the result. */
#include <math.h>
#include <string.h>

#include "core/comm-priv.h"
#include "loss/loss-priv.h"
#include "model/model-priv.h"
#include "train-priv.h"

/* What a rank sends: a header (its status) then one record per block it owns:
 * {int64 status, double loss, float gradient[np], padding to 8 bytes}. */
#define HEADER_BYTES 8u

static size_t record_bytes(size_t np)
{
    return 16u + (np * sizeof(float) + 7u) / 8u * 8u;
}

typedef struct block_rec {
    int64_t status;
    double loss;
} block_rec;

static float *record_grad(unsigned char *rec)
{
    return (float *)(void *)(rec + 16);
}

/* Fingerprint of everything that must be equal on every rank for the ranks to make the same
 * step: the dataset and its conditions, the weights, the optimizer and EMA state, the counters
 * and every parameter of the trainer, its loss, optimizer and EMA. */
static uint64_t fingerprint(const score_trainer *tr)
{
    uint64_t h = SCORE__FNV_INIT, c[7];
    const float *theta = score__model_params_data(tr->model);
    score__data_print dp; /* the dataset's, as a checkpoint records it */
    score__trainer_data_print(tr, &dp);
    h = score__fnv1a(h, tr->params, sizeof tr->params);
    h = score__fnv1a(h, tr->loss->params, sizeof tr->loss->params);
    h = score__fnv1a(h, tr->opt->params, sizeof tr->opt->params);
    h = score__fnv1a(h, tr->ema->params, sizeof tr->ema->params);
    h = score__fnv1a(h, dp.v, sizeof dp.v);
    h = score__fnv1a(h, theta, tr->np * sizeof(float));
    h = score__fnv1a(h, tr->opt->m, tr->np * sizeof(float));
    if (tr->opt->v != NULL)
        h = score__fnv1a(h, tr->opt->v, tr->np * sizeof(float));
    h = score__fnv1a(h, tr->ema->shadow, tr->np * sizeof(float));
    c[0] = tr->rows;
    c[1] = tr->step;
    c[2] = tr->skipped;
    c[3] = tr->opt->step;
    c[4] = tr->ema->num_updates;
    c[5] = (uint64_t)tr->ema_init;
    c[6] = (uint64_t)score_loss_kind(tr->loss);
    return score__fnv1a(h, c, sizeof c);
}

/* Compares the ranks' fingerprints (a collective); SCORE_E_MISUSE on every rank when they
 * differ. rc: this rank's status so far (an error is agreed on instead). */
static int check_same_state(score_trainer *tr, int rc, const char *fn)
{
    score_comm *c = tr->comm;
    uint64_t mine[2], *all;
    int trc;
    all = score__calloc((size_t)c->size * 2u, sizeof(uint64_t));
    if (all == NULL && rc == SCORE_OK)
        rc = score__error(SCORE_E_NOMEM, fn, "fingerprints of %d ranks", c->size);
    if (all == NULL) /* cannot take part in the comparison: agree on the failure only */
        return score__comm_conclude(c, rc, fn);
    mine[0] = (uint64_t)(int64_t)(rc < 0 ? rc : SCORE_OK);
    mine[1] = rc < 0 ? 0 : fingerprint(tr);
    for (int r = 0; r < c->size; r++)
        c->counts[r] = sizeof mine;
    trc = score_comm_allgather(c, mine, c->counts, all);
    if (trc != SCORE_OK) {
        score__free(all);
        return trc;
    }
    for (int r = 0; r < c->size; r++)
        if ((int64_t)all[2 * r] < 0) {
            int st = (int)(int64_t)all[2 * r];
            score__free(all);
            if (r == c->rank)
                return rc;
            return score__error(st, fn, "rank %d of %d failed with %s; this rank (%d) stops too",
                                r, c->size, score_status_name(st), c->rank);
        }
    for (int r = 1; r < c->size; r++)
        if (all[2 * r + 1] != all[1]) {
            score__free(all);
            return score__error(SCORE_E_MISUSE, fn, "rank %d holds another dataset, model, "
                                "optimizer or trainer state than rank 0 (every rank must make "
                                "the same calls or load the same checkpoint)", r);
        }
    score__free(all);
    tr->comm_checked = 1;
    return SCORE_OK;
}

/* Computes this rank's blocks k0 .. k1 - 1 of the B-row minibatch into the records at rec. */
static int compute_blocks(score_trainer *tr, size_t B, size_t nblk, size_t k0, size_t k1,
                          unsigned char *rec, size_t rbytes, const char *fn)
{
    int rc = SCORE_OK;
    for (size_t k = k0; k < k1; k++) {
        unsigned char *r = rec + (k - k0) * rbytes;
        block_rec h = {SCORE_OK, NAN};
        size_t lo, hi;
        memset(r, 0, rbytes);
        score__comm_share(B, (int)k, (int)nblk, &lo, &hi);
        if (rc == SCORE_OK)
            rc = score__trainer_conditions(tr, lo, hi - lo, fn);
        /* the label dropout drew from stream 2: the loss noise is stream 0 of the step */
        if (rc == SCORE_OK)
            rc = score__trainer_rng_at(tr, 0, tr->step, fn);
        if (rc == SCORE_OK) {
            tr->loss->row0 = lo;
            tr->loss->n_norm = B;
            rc = score_loss_compute(tr->loss, tr->sde, tr->model, tr->rng, hi - lo,
                                    tr->batch + lo * tr->dim, &h.loss, record_grad(r));
            tr->loss->row0 = 0;
            tr->loss->n_norm = 0;
        }
        h.status = rc;
        memcpy(r, &h, sizeof h);
    }
    return rc;
}

/* The byte counts of every rank's part (header and its blocks' records) in c->counts; this
 * rank's blocks k0 .. k1 - 1 and its offset; returns the total. */
static size_t layout(score_comm *c, size_t nblk, size_t rbytes, size_t *k0, size_t *k1,
                     size_t *off)
{
    size_t total = 0;
    for (int r = 0; r < c->size; r++) {
        size_t lo, hi;
        score__comm_share(nblk, r, c->size, &lo, &hi);
        c->counts[r] = HEADER_BYTES + (hi - lo) * rbytes;
        if (r == c->rank) {
            *k0 = lo;
            *k1 = hi;
            *off = total;
        }
        total += c->counts[r];
    }
    return total;
}

/* The verdict of a gathered step: the first failing rank header, then the first failing block
 * in block order (SCORE_OK when none failed); *who its rank, *bad_block the block. */
static int gathered_verdict(const score_trainer *tr, size_t nblk, int *who, size_t *bad_block)
{
    const score_comm *c = tr->comm;
    size_t rbytes = record_bytes(tr->np), off = 0;
    int64_t hdr;
    for (int r = 0; r < c->size; r++) {
        memcpy(&hdr, tr->crec + off, sizeof hdr);
        if (hdr < 0 && hdr != SCORE_E_NUMERIC) {
            *who = r;
            return (int)hdr;
        }
        off += c->counts[r];
    }
    off = 0;
    for (int r = 0; r < c->size; r++) {
        size_t lo, hi;
        score__comm_share(nblk, r, c->size, &lo, &hi);
        for (size_t k = lo; k < hi; k++) {
            block_rec h;
            memcpy(&h, tr->crec + off + HEADER_BYTES + (k - lo) * rbytes, sizeof h);
            if (h.status < 0) {
                *who = r;
                *bad_block = k;
                return (int)h.status;
            }
        }
        off += c->counts[r];
    }
    return SCORE_OK;
}

/* The gradient (into tr->g) and the loss of the step: the sums over the gathered blocks in
 * block order, whatever rank computed them. */
static void sum_blocks(score_trainer *tr, size_t nblk, double *loss_out)
{
    const score_comm *c = tr->comm;
    size_t rbytes = record_bytes(tr->np), off = 0, k = 0;
    double L = 0.0;
    for (int r = 0; r < c->size; r++) {
        size_t lo, hi;
        score__comm_share(nblk, r, c->size, &lo, &hi);
        for (size_t q = lo; q < hi; q++, k++) {
            unsigned char *rec = tr->crec + off + HEADER_BYTES + (q - lo) * rbytes;
            const float *gk = record_grad(rec);
            block_rec h;
            memcpy(&h, rec, sizeof h);
            if (k == 0) {
                tr->g_zero = 0;
                memcpy(tr->g, gk, tr->np * sizeof(float));
                L = h.loss;
            } else {
                for (size_t i = 0; i < tr->np; i++)
                    tr->g[i] += gk[i];
                L += h.loss;
            }
        }
        off += c->counts[r];
    }
    tr->last_loss = L;
    if (loss_out)
        *loss_out = L;
}

int score__trainer_step_comm(score_trainer *tr, double *loss_out, const char *fn)
{
    score_comm *c = tr->comm;
    size_t B = 0, nblk = 1, k0 = 0, k1 = 0, rbytes = record_bytes(tr->np), total = 0, off = 0;
    int64_t hdr;
    unsigned char *mine;
    int rc = SCORE_OK, verdict, who = -1, trc;
    size_t bad_block = 0;
    if (loss_out)
        *loss_out = NAN;
    /* local checks and the minibatch; every rank reaches the collectives whatever happens */
    if (tr->data == NULL)
        rc = score__error(SCORE_E_STAGE, fn, "no dataset: call score_trainer_set_data() first");
    else if (score_loss_kind(tr->loss) == SCORE_LOSS_CLASSIFIER)
        rc = score__error(SCORE_E_UNSUPPORTED, fn, "a classifier loss cannot be trained with a "
                          "communicator (its batch mean is not split into blocks)");
    if (!tr->comm_checked && (rc = check_same_state(tr, rc, fn)) != SCORE_OK)
        return rc;
    if (rc == SCORE_OK)
        rc = score__trainer_gather_rows(tr, &B, fn);
    if (rc == SCORE_OK) {
        size_t br = (size_t)score__trainer_i64(tr, TRAINER_IX_REDUCE_ROWS);
        nblk = (B + br - 1) / br;
    }
    /* the record sizes of every rank (B is the same on every rank: the states were compared) */
    total = layout(c, nblk, rbytes, &k0, &k1, &off);
    if (rc == SCORE_OK && total > tr->cap_rec) {
        unsigned char *nb = score__calloc(total, 1);
        if (nb == NULL)
            rc = score__error(SCORE_E_NOMEM, fn, "the records of %zu blocks (%zu bytes)", nblk,
                              total);
        else {
            score__free(tr->crec);
            tr->crec = nb;
            tr->cap_rec = total;
        }
    }
    if (rc == SCORE_OK && (rc = score__trainer_ema_start(tr)) == SCORE_OK)
        rc = score__trainer_rng_at(tr, 0, tr->step, fn);
    /* every rank can take part in the gather (or all stop here) */
    if ((rc = score__comm_conclude(c, rc, fn)) != SCORE_OK)
        return rc;
    (void)layout(c, nblk, rbytes, &k0, &k1, &off); /* the agreement used the counts */
    rc = compute_blocks(tr, B, nblk, k0, k1, tr->crec + off + HEADER_BYTES, rbytes, fn);
    hdr = rc;
    mine = tr->crec + off;
    memcpy(mine, &hdr, sizeof hdr);
    /* in place: this rank's part already sits at its offset of the receive buffer */
    if ((trc = score_comm_allgather(c, mine, c->counts, tr->crec)) != SCORE_OK)
        return trc;
    verdict = gathered_verdict(tr, nblk, &who, &bad_block);
    if (verdict == SCORE_E_NUMERIC) {
        tr->last_loss = NAN;
        if (who != c->rank)
            (void)score__error(SCORE_E_NUMERIC, fn, "non-finite loss in block %zu (rank %d)",
                               bad_block, who);
        return score__trainer_skip(tr, fn, "non-finite loss");
    }
    if (verdict != SCORE_OK) {
        if (who == c->rank)
            return rc;
        return score__error(verdict, fn, "rank %d of %d failed with %s; this rank (%d) stops too",
                            who, c->size, score_status_name(verdict), c->rank);
    }
    sum_blocks(tr, nblk, loss_out);
    return score__trainer_apply(tr, fn);
}
