/* The energy kind: the MLP's network (mlp.c: layers, embedding, parameters, initialisation,
 * save / load) with a single output E(x, c); as a score model its output is
 * F(x, c) = -grad_x E(x, c), computed in the library by reverse mode through the network.
 *
 * Every operation but the training backward is one routine, run_panel(), on panels of
 * SCORE__ENERGY_PANEL rows: a forward pass of the primal rows and, when a direction v is given,
 * of its tangent rows stacked below them (forward mode in x: z' = W h', h' = phi'(z) z'), so
 * that one GEMM per layer serves both; then one reverse pass through both, seeded with a
 * coefficient ce per row on E and ct on the tangent output E' = grad_x E . v. It returns the
 * energy, the input cotangent of the primal rows, gx = ce grad_x E + ct H v (H the Hessian of E
 * in x), and, when asked, accumulates the parameter gradient of
 * sum_b (ce_b E_b + ct_b grad_x E_b . v_b). So
 *   score               -grad_x E          ce = -1, no tangent;
 *   JVP = VJP of score  -H v               ce = 0, ct = -1 (H is symmetric);
 *   trace of the score  -sum_i (H e_i)_i   dim passes with v = e_i (exact Laplacian);
 *   backward of gout    d/dtheta (gout . F) and (dF/dx)^T gout = -H gout: ce = 0, ct = -1,
 *                       v = gout (double back-propagation, reverse over forward): the
 *                       gout . F terms of the Hyvärinen and sliced losses; the training pair
 *                       (score_model_forward / backward) has a path of its own (below).
 * Reverse pass of one hidden layer l (primal cotangent a, tangent cotangent a'):
 *   dz' = phi'(z) a',  dz = phi'(z) a + phi''(z) z' a'      (score__tangent_reverse())
 *   dW += [dz ; dz']^T [h_{l-1} ; h'_{l-1}],  db += sum dz,  [a ; a']_{l-1} = [dz ; dz'] W.
 *
 * Panels: global row g sits in panel g / P at position g % P (P = SCORE__ENERGY_PANEL); rows of
 * the call that are not in a panel's positions are filled with copies of a row of the panel,
 * with coefficients 0. Every GEMM then has a fixed shape (P or 2 P rows), and a row's results
 * depend on its own values only, whatever the batch split (the samplers pass the global row
 * numbers, see score__model_ws), like the MLP's aligned inference (mlp-infer.c). Without global
 * numbers the rows of a call are numbered from 0. The hidden layers' products run on
 * score__gemm_wt (row-invariant: a row's bits do not depend on its position either) against
 * weights packed once per operation (en_pack); the output layer's E = w_L . h and the
 * parameter gradients' products (sums over the rows) stay on the BLAS. The panels run on the
 * model's threads
 * (SCORE_MODEL_PARAM_THREADS) in waves of SCORE__ENERGY_WAVE panels; each panel's parameter
 * gradient goes to a slot of its own and the slots are added in panel order after each wave, so
 * results are bit-identical for every thread count.
 *
 * The training pair (DSM-type losses): the forward is the score's panels, which also copy the
 * activations, phi', phi'' and the reverse cotangents of their rows to a cache of the call's
 * rows; the backward reuses them (the tangent rows' cotangents are the score's, see
 * score__energy_backward) and runs as large products instead of panels: the tangent forward
 * and the primal reverse per block of SCORE__ENERGY_TRAIN_ROWS rows, the weight gradients as
 * one GEMM of depth 2n per chunk of a layer's units. Its results are bit-identical for every
 * thread count and deterministic; a row's gx depends on its own values only (row-invariant
 * products), but the parameter gradient's sums depend on the batch (the blocks); the forward's
 * score keeps the panels' split invariance.
 *
 * Second order (the Hyvärinen and sliced losses, score_model_trace_grad / vjv_grad): their
 * term v^T (dF/dx) v = -v^T H v is -E''(0) of e -> E(x + e v), computed by a second-order
 * forward (Taylor) pass stacked as a third block of rows below the tangent rows:
 *   z'' = W h'',  h'' = phi''(z) z'^2 + phi'(z) z''      (h''_0 = 0; + h''_{l-1} when residual)
 * and E'' = w_L . h''_{L-1}. One reverse pass through the three blocks, seeded with cs per row on
 * E'' (cotangents a, a', a'' of a hidden layer's output), gives the parameter gradient of
 * sum_b cs_b E''_b (third derivatives of the network):
 *   dz'' = phi' a'',  dz' = phi' a' + 2 phi'' z' a'',
 *   dz   = phi' a + phi'' z' a' + (phi''' z'^2 + phi'' z'') a''
 *   dW += [dz ; dz' ; dz'']^T [h ; h' ; h''],  db += sum dz,  [a ; a' ; a'']_{l-1} = [...] W.
 * The exact Laplacian takes dim such passes (v = e_1 .. e_dim). ELU is refused there: its
 * phi'' jumps at 0, so the Laplacian of E is not differentiable in the parameters.
 *
 * Labels and context (SCORE_MODEL_PARAM_NUM_CLASSES / CONTEXT_DIM): as in the MLP, the label
 * table's row is added to z_1 and the context vector is a block of the input row; both are
 * constants in x, so they enter the primal rows only (the tangent rows are zero there). The
 * panel holds the label and context of each of its positions. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernel/kernel-priv.h"
#include "mlp-kind-priv.h"
#include "model-priv.h"

#define SCORE__ENERGY_PANEL 48

/* The hidden layers' weights packed for score__gemm_wt (row-invariant, no BLAS), once per
 * operation (before its panels or row blocks run; then read-only, shared by every panel and
 * thread): the BLAS packed the whole weight again for every 48-row panel's product (26% of a
 * DSM step at 1 thread went to OpenBLAS's copies). f[l] = W_l for z_l = h_{l-1} W_l^T
 * (score__gemm_wt_pack), r[l] = W_l for the cotangent dz_l W_l (score__gemm_wt_pack_kn; of
 * layer 1 the x columns only, for gx), fx = W_1's x columns for z'_1 = v W_1[:, x]^T (the
 * training backward's tangent forward). NULL: not packed for this operation. In the workspace's
 * wparena (the MLP's training path uses it for its own packs; an energy model never runs that
 * path). */
typedef struct en_pack {
    const float *f[MAXL], *r[MAXL], *fx;
} en_pack;

/* Which packs an operation needs: the panels (forward and reverse, PK_PANELS) or the training
 * backward (PK_BACKWARD: f[2 ..], fx, r[2 ..], and r[1] when gx is wanted: PK_GX). */
enum { PK_PANELS = 1, PK_BACKWARD = 2, PK_GX = 4 };

/* The matrices of a pack, numbered j = 3 (l - 1) + form, form 0: f[l], 1: r[l], 2: fx (l = 1). */
typedef struct en_packjob {
    const mlp *p;
    size_t dim;
    int what;
    float *dst[3 * MAXL];
} en_packjob;

/* Floats of matrix j (0: not packed), 16 of slack keeping every matrix 64-byte aligned. */
static size_t pack_floats(const en_packjob *pj, size_t j)
{
    const mlp *p = pj->p;
    const size_t l = j / 3 + 1, form = j % 3, bw = (pj->what & PK_BACKWARD) != 0;
    if (l >= p->L)
        return 0;
    if (form == 0 && (l > 1 || !bw))
        return p->n[l - 1] * score__gemm_wt_ld(p->n[l]) + 16;
    if (form == 1 && l > 1)
        return p->n[l] * score__gemm_wt_ld(p->n[l - 1]) + 16;
    if (form == 1 && (!bw || (pj->what & PK_GX)))
        return p->n[1] * score__gemm_wt_ld(pj->dim) + 16;
    if (form == 2 && l == 1 && bw)
        return pj->dim * score__gemm_wt_ld(p->n[1]) + 16;
    return 0;
}

static void pack_part(void *ctx, size_t j, size_t thread)
{
    const en_packjob *pj = ctx;
    const mlp *p = pj->p;
    const size_t l = j / 3 + 1, np = p->n[l - 1];
    (void)thread;
    if (pj->dst[j] == NULL)
        return;
    if (j % 3 == 0)
        score__gemm_wt_pack(p->n[l], np, W(p, l), np, pj->dst[j]);
    else if (j % 3 == 2)
        score__gemm_wt_pack(p->n[1], pj->dim, W(p, 1), np, pj->dst[j]);
    else
        score__gemm_wt_pack_kn(l == 1 ? pj->dim : np, p->n[l], W(p, l), np, pj->dst[j]);
}

/* Packs the weights that `what` needs into w->wparena (on the pool of `threads` threads, the
 * operation's own, one matrix per part) and points pk at them. */
static int pack_weights(const char *fn, const score_model *m, score__model_ws *ws, int what,
                        int64_t threads, en_pack *pk)
{
    const mlp *p = impl_of(m);
    mlp_ws *w = score__mlp_ws_of(p, ws);
    const size_t nj = 3 * (p->L - 1);
    en_packjob pj;
    size_t need = 0, off = 0;
    float *arena;
    memset(pk, 0, sizeof *pk);
    memset(&pj, 0, sizeof pj);
    pj.p = p;
    pj.dim = m->dim;
    pj.what = what;
    for (size_t j = 0; j < nj; j++)
        need += pack_floats(&pj, j);
    if ((arena = score__mlp_wpack_arena(w, need)) == NULL)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    for (size_t j = 0; j < nj; j++) {
        size_t f = pack_floats(&pj, j), l = j / 3 + 1;
        if (f == 0)
            continue;
        pj.dst[j] = arena + off;
        off += f;
        if (j % 3 == 0)
            pk->f[l] = pj.dst[j];
        else if (j % 3 == 1)
            pk->r[l] = pj.dst[j];
        else
            pk->fx = pj.dst[j];
    }
    score__pool_for_each(score__mlp_pool_of(w, threads), nj, pack_part, &pj);
    return SCORE_OK;
}

/* One request over the n rows of a call. */
typedef struct en_req {
    size_t n, dim;
    const float *x;
    const double *c;
    mlp_cond cd;        /* labels and context of the call's rows, at row 0 */
    const float *v;     /* tangents: row i's at v + (i * vk + vp) * dim; NULL: none */
    size_t vk, vp;
    long unit;          /* >= 0: the tangent of every row is the unit vector e_unit */
    int ord;            /* 0: primal rows; 1: and tangent rows; 2: and second-order rows */
    float ce, ct;       /* seeds of the reverse pass on E and E' */
    const double *w2;   /* ord 2: the seed on E'' of row i is -w2[i * vk + vp] (NULL: -1) */
    double *E;          /* n energies, or NULL */
    float *gx;          /* row i's cotangent at gx + (i * gk + gp) * dim, or NULL */
    size_t gk, gp;
    double *tr;         /* with unit: tr[i] += gx_i[unit] */
    double *q2;         /* ord 2: q2[i * vk + vp] = -E''_i (added when q2_add), or NULL */
    int q2_add;
    float *grad;        /* parameter gradient (accumulated), or NULL */
    const struct en_keep *keep; /* ord 0, ce = -1: the activations kept for the backward */
    const struct en_pack *pk;   /* the weights packed for the panels (pack_weights) */
} en_req;

/* phi''' of the activations (double): the third-order term of the reverse pass above.
 * silu z s: 3 s'' + z s''' with s' = s (1 - s), s'' = s' (1 - 2 s), s''' = s' (1 - 6 s + 6 s^2);
 * softplus: s''; tanh t: (1 - t^2) (6 t^2 - 2); gelu z Phi(z): phi(z) (z^3 - 4 z) with phi the
 * normal density; elu: e^z for z <= 0, 0 above (the jump of phi'' at 0 left out). */
double score__energy_act_d3(int act, double z)
{
    double s, q, t;
    switch (act) {
    case SCORE_ACT_SILU:
        s = 1.0 / (1.0 + exp(-z));
        q = s * (1.0 - s);
        return 3.0 * q * (1.0 - 2.0 * s) + z * q * (1.0 - 6.0 * s + 6.0 * s * s);
    case SCORE_ACT_SOFTPLUS:
        s = 1.0 / (1.0 + exp(-z));
        return s * (1.0 - s) * (1.0 - 2.0 * s);
    case SCORE_ACT_TANH:
        t = tanh(z);
        return (1.0 - t * t) * (6.0 * t * t - 2.0);
    case SCORE_ACT_GELU:
        return 0.3989422804014327 * exp(-0.5 * z * z) * z * (z * z - 4.0);
    case SCORE_ACT_ELU:
        return z > 0.0 ? 0.0 : exp(z);
    default:
        return 0.0;
    }
}

/* Floats of one panel's arena (see panel_layout). */
static size_t panel_floats(const mlp *p, size_t dim)
{
    const size_t P = SCORE__ENERGY_PANEL, S = 3 * P;
    size_t f = 2 * P /* c as doubles */ + P /* labels */ + P * p->m + 3 * P * dim + 2 * S +
               S * p->n[0] + 3 * S * p->maxh;
    for (size_t l = 1; l < p->L; l++)
        f += (2 * S + 3 * P) * p->n[l];
    return f;
}

static int ensure_earena(mlp_ws *w, size_t need, const char *fn)
{
    float *a;
    if (need <= w->ecap)
        return SCORE_OK;
    if ((a = score__calloc(need, sizeof(float))) == NULL)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    score__free(w->earena);
    w->earena = a;
    w->ecap = need;
    return SCORE_OK;
}

/* The panel's buffers, carved from the arena (c first: 8-byte aligned). Row blocks of up to
 * S = 3 P rows: primal, tangent, second order. */
typedef struct panel {
    double *c;
    int32_t *lab;
    float *ctx;
    float *x, *v, *cf, *E, *gx;
    float *h[MAXL], *z[MAXL], *d1[MAXL], *d2[MAXL], *d3[MAXL];
    float *ga, *gb, *az;
} panel;

static void panel_layout(const mlp *p, size_t dim, float *a, panel *q)
{
    const size_t P = SCORE__ENERGY_PANEL, S = 3 * P;
    q->c = (double *)(void *)a;
    a += 2 * P;
    q->lab = (int32_t *)(void *)a;
    a += P;
    q->ctx = a; a += P * p->m;
    q->x = a; a += P * dim;
    q->v = a; a += P * dim;
    q->gx = a; a += P * dim;
    q->cf = a; a += S;
    q->E = a; a += S;
    q->h[0] = a; a += S * p->n[0];
    for (size_t l = 1; l < p->L; l++) {
        q->z[l] = a; a += S * p->n[l];
        q->h[l] = a; a += S * p->n[l];
        q->d1[l] = a; a += P * p->n[l];
        q->d2[l] = a; a += P * p->n[l];
        q->d3[l] = a; a += P * p->n[l];
    }
    q->ga = a; a += S * p->maxh;
    q->gb = a; a += S * p->maxh;
    q->az = a;
}

/* The labels and context of the panel's positions, as the MLP's helpers read them. */
static mlp_cond panel_cond(const mlp *p, const panel *q)
{
    mlp_cond cd = {p->K > 0 ? q->lab : NULL, p->m > 0 ? q->ctx : NULL, 1, 1};
    return cd;
}

/* Second-order rows of hidden layer l (nm = P n_l values per block): phi''' of the primal
 * pre-activations, and h'' = phi'' z'^2 + phi' z'' (+ the residual h''_{l-1}). */
static void second_forward(const mlp *p, const panel *q, size_t l, size_t nm)
{
    const float *z = q->z[l], *zt = z + nm, *zs = z + 2 * nm, *d1 = q->d1[l], *d2 = q->d2[l];
    const float *hp = p->res[l] ? q->h[l - 1] + 2 * nm : NULL;
    float *h2 = q->h[l] + 2 * nm, *d3 = q->d3[l];
    for (size_t i = 0; i < nm; i++) {
        float u = zt[i];
        d3[i] = (float)score__energy_act_d3(p->act, (double)z[i]);
        h2[i] = d2[i] * u * u + d1[i] * zs[i] + (hp != NULL ? hp[i] : 0.0f);
    }
}

/* The reverse step of hidden layer l through the three blocks (the formulas at the top). */
static void second_reverse(const panel *q, size_t l, size_t nm, const float *ga, float *az)
{
    const float *a = ga, *at = ga + nm, *as = ga + 2 * nm;
    const float *zt = q->z[l] + nm, *zs = q->z[l] + 2 * nm;
    const float *d1 = q->d1[l], *d2 = q->d2[l], *d3 = q->d3[l];
    float *dz = az, *dzt = az + nm, *dzs = az + 2 * nm;
    for (size_t i = 0; i < nm; i++) {
        float u = zt[i];
        dzs[i] = d1[i] * as[i];
        dzt[i] = d1[i] * at[i] + 2.0f * d2[i] * u * as[i];
        dz[i] = d1[i] * a[i] + d2[i] * u * at[i] + (d3[i] * u * u + d2[i] * zs[i]) * as[i];
    }
}

/* What the training forward keeps for the backward pass (score__energy_backward), for the n
 * rows of the call, after their labels: h_0 (n x n_0), and per hidden layer l: h_l with the
 * backward's tangent rows h'_l below it (2n x n_l), phi'(z_l) and phi''(z_l) (n x n_l each), the
 * cotangent a_l of h_l in the score's reverse pass (seed -w_L; n x n_l), and the backward's
 * [dz_l ; dz'_l] (2n x n_l). */
typedef struct en_keep {
    float *h0;
    float *h[MAXL], *d1[MAXL], *d2[MAXL], *a[MAXL], *dz[MAXL];
} en_keep;

static size_t keep_row_floats(const mlp *p)
{
    size_t f = p->n[0];
    for (size_t l = 1; l < p->L; l++)
        f += 7 * p->n[l];
    return f;
}

static void keep_layout(const mlp *p, size_t n, float *a, en_keep *k)
{
    k->h0 = a;
    a += n * p->n[0];
    for (size_t l = 1; l < p->L; l++) {
        size_t nl = p->n[l];
        k->h[l] = a; a += 2 * n * nl;
        k->d1[l] = a; a += n * nl;
        k->d2[l] = a; a += n * nl;
        k->a[l] = a; a += n * nl;
        k->dz[l] = a; a += 2 * n * nl;
    }
}

/* The rows of one panel that the training forward keeps: the call row of each position
 * (KEEP_NONE: a filler). direct: every position holds a call row, in order from row[0] (a
 * whole panel of consecutive rows, every panel but a call's partial last one): the panel's
 * embedding, activations, phi' and phi'' are then made in the cache's rows themselves
 * (keep_direct) instead of being copied there (which took ~5% of an energy DSM step). */
#define KEEP_NONE SIZE_MAX
typedef struct en_kr {
    const en_keep *k;
    size_t row[SCORE__ENERGY_PANEL];
    int direct;
} en_kr;

/* Rows of w floats of the panel's src (its first P rows) to their call rows in dst. */
static void keep_rows(const en_kr *kr, const float *src, size_t w, float *dst)
{
    for (size_t pos = 0; pos < SCORE__ENERGY_PANEL; pos++)
        if (kr->row[pos] != KEEP_NONE)
            memcpy(dst + kr->row[pos] * w, src + pos * w, w * sizeof(float));
}

/* Sets kr->direct, and when it holds points the panel's buffers that the cache keeps (h_0, and
 * h, phi', phi'' of the hidden layers: their first P rows, all an ord 0 panel uses) at the
 * cache's rows of the panel. */
static void keep_direct(const mlp *p, en_kr *kr, panel *q)
{
    const en_keep *k = kr->k;
    const size_t r0 = kr->row[0];
    kr->direct = r0 != KEEP_NONE;
    for (size_t pos = 1; kr->direct && pos < SCORE__ENERGY_PANEL; pos++)
        kr->direct = kr->row[pos] == r0 + pos;
    if (!kr->direct)
        return;
    q->h[0] = k->h0 + r0 * p->n[0];
    for (size_t l = 1; l < p->L; l++) {
        q->h[l] = k->h[l] + r0 * p->n[l];
        q->d1[l] = k->d1[l] + r0 * p->n[l];
        q->d2[l] = k->d2[l] + r0 * p->n[l];
    }
}

/* The cotangent of layer l - 1's output from dz (rows x n_l): dz W_l (pk->r[l]), added to *ga
 * when layer l is residual (its input passes through: the chains start from *ga's values), else
 * written to *gb and the two buffers swapped. keep (not NULL): the cotangent goes to those rows
 * instead (the training cache's, kept for the backward), the chains of a residual layer starting
 * from *ga's values where they are (score__gemm_wt_from: *ga is left as it is, no copy), and *ga
 * points there after. */
static void cot_prev(const mlp *p, const en_pack *pk, size_t l, size_t rows, const float *dz,
                     float **ga, float **gb, float *keep)
{
    const size_t nl = p->n[l], np = p->n[l - 1];
    if (keep != NULL) {
        if (p->res[l])
            score__gemm_wt_from(rows, np, nl, dz, nl, pk->r[l], keep, *ga, np, NULL,
                                SCORE__ACT_IDENTITY, NULL);
        else
            score__gemm_wt(rows, np, nl, dz, nl, pk->r[l], keep, 0, NULL, SCORE__ACT_IDENTITY,
                           NULL);
        *ga = keep;
    } else if (p->res[l]) {
        score__gemm_wt(rows, np, nl, dz, nl, pk->r[l], *ga, 1, NULL, SCORE__ACT_IDENTITY, NULL);
    } else {
        float *t = *gb;
        score__gemm_wt(rows, np, nl, dz, nl, pk->r[l], t, 0, NULL, SCORE__ACT_IDENTITY, NULL);
        *gb = *ga;
        *ga = t;
    }
}

/* Forward and reverse pass of one panel (see the top) with ord + 1 blocks of rows, the
 * products on score__gemm_wt with the weights of pk. q->cf holds the seeds: P values ce, P
 * values ct, P values cs. Writes q->E (E of the primal rows, then E' of the tangent rows, then
 * E''), q->gx (rev = 1), and adds to grad (rev = 1). rev = 0: the forward pass only (the
 * energies). With kr (ord 0), the primal rows' activations and reverse cotangents are copied
 * to the training cache as they are made. Without kr, an ord 0 panel
 * (the score, the energy) has the bias, activation, residual and phi' fused into its forward
 * products (no pre-activation, no phi'': nothing reads them; with labels, layer 1 adds the
 * label rows before the activation, in a pass of its own): the bits of the separate pass.
 * With kr->direct, the reverse cotangents are made in the cache's rows themselves (the seeds
 * of a_{L-1} written there, each a_{l-1} from a_l by cot_prev into its own rows). */
static void run_panel(const mlp *p, const en_pack *pk, size_t dim, const panel *q, int ord,
                      int rev, float *grad, const en_kr *kr)
{
    const size_t P = SCORE__ENERGY_PANEL, S = (size_t)(ord + 1) * P, L = p->L, n0 = p->n[0];
    const mlp_cond pc = panel_cond(p, q);
    const float *wl = W(p, L), bl = B(p, L)[0];
    const int direct = kr != NULL && kr->direct && S == P;
    float *ga = q->ga, *gb = q->gb;
    score__mlp_embed_rows(p, dim, P, q->x, q->c, &pc, q->h[0]);
    if (kr != NULL && !kr->direct)
        keep_rows(kr, q->h[0], n0, kr->k->h0);
    if (ord > 0) {
        /* h'_0 = [v ; 0 ; 0] (embedding and context are constants in x), h''_0 = 0 */
        memset(q->h[0] + P * n0, 0, (S - P) * n0 * sizeof(float));
        for (size_t b = 0; b < P; b++)
            memcpy(q->h[0] + (P + b) * n0, q->v + b * dim, dim * sizeof(float));
    }
    for (size_t l = 1; l < L; l++) {
        size_t nl = p->n[l], np = p->n[l - 1];
        if (ord == 0 && kr == NULL && !(l == 1 && p->K > 0)) {
            score__gemm_wt_d1(P, nl, np, q->h[l - 1], np, pk->f[l], q->h[l], 0, B(p, l),
                              p->act, p->res[l] ? q->h[l - 1] : NULL, rev ? q->d1[l] : NULL);
            continue;
        }
        score__gemm_wt(S, nl, np, q->h[l - 1], np, pk->f[l], q->z[l], 0, NULL,
                       SCORE__ACT_IDENTITY, NULL);
        if (l == 1)
            score__mlp_add_labels(p, &pc, P, q->z[1], NULL);
        score__bias_act_forward_res(P, nl, q->z[l], B(p, l), p->act,
                                    p->res[l] ? q->h[l - 1] : NULL, q->h[l], q->d1[l], q->d2[l]);
        if (kr != NULL && !kr->direct) {
            keep_rows(kr, q->h[l], nl, kr->k->h[l]);
            keep_rows(kr, q->d1[l], nl, kr->k->d1[l]);
            keep_rows(kr, q->d2[l], nl, kr->k->d2[l]);
        }
        if (ord > 0 && p->res[l])
            score__mul_add(P * nl, q->z[l] + P * nl, q->d1[l], q->h[l - 1] + P * np,
                           q->h[l] + P * nl);
        else if (ord > 0)
            score__mul(P * nl, q->z[l] + P * nl, q->d1[l], q->h[l] + P * nl);
        if (ord > 1)
            second_forward(p, q, l, P * nl);
    }
    {
        size_t nh = p->n[L - 1];
        score__sgemv(0, S, nh, 1.0f, q->h[L - 1], nh, wl, 0.0f, q->E);
        for (size_t b = 0; b < P; b++)
            q->E[b] += bl;
        if (!rev)
            return;
        /* seeds: a_{L-1} = cf_b w_L per row; dW_L += sum_b cf_b h_b, db_L += sum ce */
        if (direct) /* S = P rows, kept from row kr->row[0] on */
            ga = kr->k->a[L - 1] + kr->row[0] * nh;
        for (size_t r = 0; r < S; r++)
            for (size_t i = 0; i < nh; i++)
                ga[r * nh + i] = q->cf[r] * wl[i];
        if (grad != NULL) {
            double sb = 0.0;
            score__sgemv(1, S, nh, 1.0f, q->h[L - 1], nh, q->cf, 1.0f, grad + p->woff[L]);
            for (size_t b = 0; b < P; b++)
                sb += (double)q->cf[b];
            grad[p->boff[L]] = (float)((double)grad[p->boff[L]] + sb);
        }
    }
    for (size_t l = L - 1; l >= 1; l--) {
        size_t nl = p->n[l], np = p->n[l - 1];
        float *az = q->az;
        if (kr != NULL && !direct)
            keep_rows(kr, ga, nl, kr->k->a[l]);
        if (ord > 1)
            second_reverse(q, l, P * nl, ga, az);
        else if (ord > 0)
            score__tangent_reverse(P, 1, nl, ga + P * nl, q->z[l] + P * nl, nl, q->d1[l],
                                   q->d2[l], ga, az + P * nl, az);
        else
            score__mul(P * nl, ga, q->d1[l], az);
        if (grad != NULL) {
            score__sgemm(1, 0, nl, np, S, 1.0f, az, nl, q->h[l - 1], np, 1.0f,
                         grad + p->woff[l], np);
            score__col_sum_acc(P, nl, az, grad + p->boff[l]);
            if (l == 1)
                score__mlp_label_grad(p, &pc, P, az, 0, nl, grad);
        }
        if (l == 1) {
            score__gemm_wt(P, dim, nl, az, nl, pk->r[1], q->gx, 0, NULL, SCORE__ACT_IDENTITY,
                           NULL);
            break;
        }
        cot_prev(p, pk, l, S, az, &ga, &gb, direct ? kr->k->a[l - 1] + kr->row[0] * np : NULL);
    }
}

/* Global row number of call row i (segment-relative when ws describes row_n rows). */
static size_t global_row(const score__model_ws *ws, int aligned, size_t i)
{
    size_t r;
    if (!aligned)
        return i;
    r = i % ws->row_n;
    return ws->row0 + (ws->row_idx != NULL ? ws->row_idx[r] : r);
}

static void fill_row(const mlp *p, const en_req *rq, const panel *q, size_t pos, size_t i,
                     int real)
{
    const size_t dim = rq->dim, P = SCORE__ENERGY_PANEL;
    memcpy(q->x + pos * dim, rq->x + i * dim, dim * sizeof(float));
    q->c[pos] = rq->c[i];
    q->lab[pos] = (int32_t)score__mlp_label(p, &rq->cd, i);
    if (p->m > 0)
        memcpy(q->ctx + pos * p->m, rq->cd.context + (rq->cd.context_per_row ? i * p->m : 0),
               p->m * sizeof(float));
    q->cf[pos] = real ? rq->ce : 0.0f;
    q->cf[P + pos] = real ? rq->ct : 0.0f;
    q->cf[2 * P + pos] =
        !real ? 0.0f : rq->w2 != NULL ? (float)-rq->w2[i * rq->vk + rq->vp] : -1.0f;
    if (rq->v != NULL)
        memcpy(q->v + pos * dim, rq->v + (i * rq->vk + rq->vp) * dim, dim * sizeof(float));
    else if (rq->unit >= 0) {
        memset(q->v + pos * dim, 0, dim * sizeof(float));
        q->v[pos * dim + (size_t)rq->unit] = 1.0f;
    }
}

/* Panels whose parameter gradients go to separate slots, added to grad in panel order after
 * each wave (a fixed grouping: the sums do not depend on the thread count). */
#define SCORE__ENERGY_WAVE 4

/* One wave of a request: up to SCORE__ENERGY_WAVE panels (call rows i0[j] .. i1[j] - 1). */
typedef struct en_wave {
    const mlp *p;
    const score__model_ws *ws;
    const en_req *rq;
    int aligned;
    en_pack pk;      /* the weights, packed for the panels' products */
    size_t pf;       /* floats of one panel arena */
    float *arena;    /* one panel arena per thread, then the gradient slots */
    float *slots;    /* SCORE__ENERGY_WAVE x n_params (when rq->grad) */
    size_t i0[SCORE__ENERGY_WAVE], i1[SCORE__ENERGY_WAVE];
} en_wave;

/* Panel j of the wave, on thread `thread` (its own arena and gradient slot). */
static void wave_panel(void *ctx, size_t j, size_t thread)
{
    const en_wave *V = ctx;
    const en_req *rq = V->rq;
    const mlp *p = V->p;
    const size_t P = SCORE__ENERGY_PANEL, dim = rq->dim;
    float *g = NULL;
    panel q;
    en_kr kr;
    panel_layout(p, dim, V->arena + thread * V->pf, &q);
    if (rq->grad != NULL) {
        g = V->slots + j * p->n_params;
        memset(g, 0, p->n_params * sizeof *g);
    }
    for (size_t pos = 0; pos < P; pos++)
        fill_row(p, rq, &q, pos, V->i0[j], 0);
    for (size_t i = V->i0[j]; i < V->i1[j]; i++)
        fill_row(p, rq, &q, global_row(V->ws, V->aligned, i) % P, i, 1);
    if (rq->keep != NULL) {
        kr.k = rq->keep;
        for (size_t pos = 0; pos < P; pos++)
            kr.row[pos] = KEEP_NONE;
        for (size_t i = V->i0[j]; i < V->i1[j]; i++)
            kr.row[global_row(V->ws, V->aligned, i) % P] = i;
        keep_direct(p, &kr, &q);
    }
    run_panel(p, &V->pk, dim, &q, rq->ord,
              rq->gx != NULL || rq->tr != NULL || rq->grad != NULL || rq->keep != NULL, g,
              rq->keep != NULL ? &kr : NULL);
    for (size_t i = V->i0[j]; i < V->i1[j]; i++) {
        size_t pos = global_row(V->ws, V->aligned, i) % P;
        if (rq->E != NULL)
            rq->E[i] = (double)q.E[pos];
        if (rq->gx != NULL)
            memcpy(rq->gx + (i * rq->gk + rq->gp) * dim, q.gx + pos * dim, dim * sizeof(float));
        if (rq->tr != NULL)
            rq->tr[i] += (double)q.gx[pos * dim + (size_t)rq->unit];
        if (rq->q2 != NULL) {
            double *o = rq->q2 + i * rq->vk + rq->vp, e2 = -(double)q.E[2 * P + pos];
            *o = rq->q2_add ? *o + e2 : e2;
        }
    }
}

/* Runs rq over its rows, panel by panel: waves of SCORE__ENERGY_WAVE panels on the model's
 * threads (SCORE_MODEL_PARAM_THREADS), each panel's parameter gradient in a slot of its own,
 * the slots added to rq->grad in panel order: bit-identical for every thread count. */
static int run_req(const char *fn, const score_model *m, score__model_ws *ws, const en_req *rq)
{
    const mlp *p = impl_of(m);
    mlp_ws *w = score__mlp_ws_of(p, ws);
    const size_t P = SCORE__ENERGY_PANEL;
    score__pool *pool = score__mlp_pool_of(w, score__model_i64(m, SCORE_MODEL_PARAM_THREADS));
    const size_t T = pool != NULL ? score__pool_threads(pool) : 1;
    en_wave V;
    size_t need;
    int rc;
    V.p = p;
    V.ws = ws;
    V.rq = rq;
    V.pk = *rq->pk;
    V.aligned = ws->row_n > 0 && rq->n % ws->row_n == 0;
    V.pf = panel_floats(p, rq->dim);
    V.pf += (4 - V.pf % 4) % 4; /* each thread's arena 16-byte aligned (c holds doubles) */
    need = T * V.pf + (rq->grad != NULL ? SCORE__ENERGY_WAVE * p->n_params : 0);
    if ((rc = ensure_earena(w, need, fn)) != SCORE_OK)
        return rc;
    V.arena = w->earena;
    V.slots = w->earena + T * V.pf;
    for (size_t i0 = 0; i0 < rq->n;) {
        size_t nj = 0;
        for (; nj < SCORE__ENERGY_WAVE && i0 < rq->n; nj++) {
            size_t g0 = global_row(ws, V.aligned, i0), pan = g0 / P, i1;
            size_t seg_end = V.aligned ? (i0 / ws->row_n + 1) * ws->row_n : rq->n;
            /* rows of this segment in the same panel (global numbers increase in a segment) */
            for (i1 = i0 + 1; i1 < seg_end && global_row(ws, V.aligned, i1) / P == pan;)
                i1++;
            V.i0[nj] = i0;
            V.i1[nj] = i1;
            i0 = i1;
        }
        score__pool_for_each(nj > 1 ? pool : NULL, nj, wave_panel, &V);
        for (size_t j = 0; rq->grad != NULL && j < nj; j++)
            for (size_t k = 0; k < p->n_params; k++)
                rq->grad[k] += V.slots[j * p->n_params + k];
    }
    return SCORE_OK;
}

static en_req req_base(const score_model *m, const score__model_ws *ws, const en_pack *pk,
                       size_t n, const float *x, const double *c)
{
    en_req r;
    memset(&r, 0, sizeof r);
    r.n = n;
    r.dim = m->dim;
    r.x = x;
    r.c = c;
    r.cd = score__mlp_cond_of(ws);
    r.unit = -1;
    r.vk = r.gk = 1;
    r.pk = pk;
    return r;
}

/* The entry check of an operation on the panels, then the weights packed for them (once per
 * operation: every request of it shares them). */
static int check(const char *fn, const score_model *m, score__model_ws *ws, size_t n,
                 const double *c, en_pack *pk)
{
    int rc = score__mlp_check_inputs(fn, m, ws, n, c);
    return rc != SCORE_OK ? rc
                          : pack_weights(fn, m, ws, PK_PANELS,
                                         score__model_i64(m, SCORE_MODEL_PARAM_THREADS), pk);
}

/* The score -grad_x E of n rows into out (no cache). */
static int score_rows(const char *fn, const score_model *m, score__model_ws *ws,
                      const en_pack *pk, size_t n, const float *x, const double *c, float *out)
{
    en_req r = req_base(m, ws, pk, n, x, c);
    r.ce = -1.0f;
    r.gx = out;
    return run_req(fn, m, ws, &r);
}

int score__energy_infer(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, float *out)
{
    static const char fn[] = "score_model_forward";
    en_pack pk;
    int rc = check(fn, m, ws, n, c, &pk);
    return rc != SCORE_OK ? rc : score_rows(fn, m, ws, &pk, n, x, c, out);
}

/* ---- the training pair: forward with kept activations, backward in row blocks ---------- */

/* The training cache in ws, one block for ecn rows (the capacity): the labels of the rows
 * (ecn int32), then the activations (en_keep, laid out for the n rows of the last forward:
 * the backward has the same n). */
static int32_t *cache_lab(const mlp_ws *w)
{
    return (int32_t *)(void *)w->ecx;
}

static float *cache_keep(const mlp_ws *w)
{
    return w->ecx + w->ecn;
}

/* The forward pass of the pair: the score (the panels above, so bit for bit the score of
 * score_model_jvp's fx and of a call with other rows), and, copied from the panels as they
 * are made, the activations that the backward pass reuses (en_keep). */
int score__energy_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                          const double *c, float *out)
{
    static const char fn[] = "score_model_forward";
    const mlp *p = impl_of(m);
    mlp_ws *w = score__mlp_ws_of(p, ws);
    const mlp_cond cd = score__mlp_cond_of(ws);
    int32_t *lab;
    en_keep k;
    en_pack pk;
    en_req r;
    int rc = check(fn, m, ws, n, c, &pk);
    if (rc != SCORE_OK || n == 0)
        return rc;
    if (n > w->ecn) {
        size_t need;
        float *xs;
        if (score__mul_size(n, keep_row_floats(p) + 1, &need) != 0 ||
            (xs = score__calloc(need, sizeof *xs)) == NULL)
            return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed (the training "
                                "cache of %zu rows)", n);
        score__free(w->ecx);
        w->ecx = xs;
        w->ecn = n;
    }
    lab = cache_lab(w);
    for (size_t b = 0; b < n; b++)
        lab[b] = (int32_t)score__mlp_label(p, &cd, b);
    keep_layout(p, n, cache_keep(w), &k);
    r = req_base(m, ws, &pk, n, x, c);
    r.ce = -1.0f;
    r.gx = out;
    r.keep = &k;
    return run_req(fn, m, ws, &r);
}

/* The backward pass of the pair, d/dtheta (gout . F) and gx = (dF/dx)^T gout = -H gout, from
 * the kept activations: with ce = 0, ct = -1 and v = gout (see the top), the tangent rows'
 * cotangents a' are the score's reverse cotangents a that the forward kept (same seed -w_L,
 * same recursion), so only two passes are left:
 *   tangent forward   z'_1 = W_1 v,  z'_l = W_l h'_{l-1},  h'_l = phi'(z_l) z'_l [+ h'_{l-1}]
 *   primal reverse    a_{L-1} = 0,  dz' = phi' a',  dz = phi' a + phi'' z' a',
 *                     a_{l-1} = dz W_l [+ a_l],  gx = dz_1 W_1 (x columns)
 * run per block of rows (the blocks of a fixed partition of the n rows, on the model's
 * threads; the products on score__gemm_wt, the weights packed once per call), and then the
 * parameter gradient with one GEMM of depth 2n per chunk of a layer's
 * output units: dW_l += [dz ; dz']^T [h_{l-1} ; h'_{l-1}] (layer 1: dz^T h_0 + dz'^T v),
 * db_l += column sums of dz (rows in order), dW_L += -sum_b h'_{L-1,b}. Every value is made by
 * one piece of a fixed partition (SCORE__ENERGY_TRAIN_ROWS, SCORE__ENERGY_GRAD_CHUNKS), so the
 * results are bit-identical for every thread count. */
#define SCORE__ENERGY_TRAIN_ROWS 256
#define SCORE__ENERGY_GRAD_CHUNKS 2

typedef struct en_bw {
    const mlp *p;
    const en_keep *k;
    en_pack pk;        /* f[2 ..], fx, r[2 ..] and (with gx) r[1] */
    size_t n, dim;
    size_t nblk, nb;   /* row blocks of nb rows (the last may be shorter) */
    size_t scratch;    /* floats of one thread's scratch */
    const float *v;    /* gout (n x dim) */
    float *grad, *gx;  /* either may be NULL */
    mlp_cond cd;       /* the kept labels */
    float *arena;      /* one scratch per thread */
} en_bw;

/* Row block blk: the tangent forward and the primal reverse (scratch: z'_l of every hidden
 * layer, then two cotangent blocks). */
static void bw_rows(void *ctx, size_t blk, size_t thread)
{
    const en_bw *j = ctx;
    const mlp *p = j->p;
    const en_keep *k = j->k;
    const size_t n = j->n, L = p->L, dim = j->dim, r0 = blk * j->nb;
    const size_t rows = n - r0 < j->nb ? n - r0 : j->nb;
    float *s = j->arena + thread * j->scratch, *zt[MAXL], *ga, *gb;
    for (size_t l = 1; l < L; l++) {
        zt[l] = s;
        s += j->nb * p->n[l];
    }
    ga = s;
    gb = s + j->nb * p->maxh;
    for (size_t l = 1; l < L; l++) {
        size_t nl = p->n[l], np = p->n[l - 1];
        const float *d1 = k->d1[l] + r0 * nl;
        float *ht = k->h[l] + (n + r0) * nl;
        if (l == 1) /* h'_0 = [v ; 0 ; 0]: the x columns of W_1 */
            score__gemm_wt(rows, nl, dim, j->v + r0 * dim, dim, j->pk.fx, zt[1], 0, NULL,
                           SCORE__ACT_IDENTITY, NULL);
        else
            score__gemm_wt(rows, nl, np, k->h[l - 1] + (n + r0) * np, np, j->pk.f[l], zt[l], 0,
                           NULL, SCORE__ACT_IDENTITY, NULL);
        if (p->res[l])
            score__mul_add(rows * nl, zt[l], d1, k->h[l - 1] + (n + r0) * np, ht);
        else
            score__mul(rows * nl, zt[l], d1, ht);
    }
    memset(ga, 0, rows * p->n[L - 1] * sizeof *ga);
    for (size_t l = L - 1; l >= 1; l--) {
        size_t nl = p->n[l];
        float *dz = k->dz[l] + r0 * nl, *dzt = k->dz[l] + (n + r0) * nl;
        score__tangent_reverse(rows, 1, nl, k->a[l] + r0 * nl, zt[l], nl, k->d1[l] + r0 * nl,
                               k->d2[l] + r0 * nl, ga, dzt, dz);
        if (l == 1) {
            if (j->gx != NULL)
                score__gemm_wt(rows, dim, nl, dz, nl, j->pk.r[1], j->gx + r0 * dim, 0, NULL,
                               SCORE__ACT_IDENTITY, NULL);
            break;
        }
        cot_prev(p, &j->pk, l, rows, dz, &ga, &gb, NULL);
    }
}

/* Output units per weight-gradient chunk of a layer of nl units. */
static size_t bw_chunk(size_t nl)
{
    size_t r = (nl + SCORE__ENERGY_GRAD_CHUNKS - 1) / SCORE__ENERGY_GRAD_CHUNKS;
    return (r + 15) / 16 * 16;
}

/* Weight-gradient piece `job`: chunk job / (L - 1) of hidden layer 1 + job % (L - 1) (the
 * chunks of every layer interleaved, so that contiguous ranges of pieces are alike), the last
 * piece the output layer. */
static void bw_grad(void *ctx, size_t job, size_t thread)
{
    const en_bw *j = ctx;
    const mlp *p = j->p;
    const en_keep *k = j->k;
    const size_t n = j->n, L = p->L, hid = L - 1;
    size_t l, nl, np, cr, j0, j1;
    float *g;
    if (job == SCORE__ENERGY_GRAD_CHUNKS * hid) { /* dW_L += ct sum_b h'_{L-1,b}, ct = -1 */
        size_t nh = p->n[L - 1];
        float *t = j->arena + thread * j->scratch;
        memset(t, 0, nh * sizeof *t);
        score__col_sum_acc(n, nh, k->h[L - 1] + n * nh, t);
        for (size_t i = 0; i < nh; i++)
            j->grad[p->woff[L] + i] -= t[i];
        return; /* db_L += sum_b ce = 0 */
    }
    l = 1 + job % hid;
    nl = p->n[l];
    np = p->n[l - 1];
    cr = bw_chunk(nl);
    j0 = job / hid * cr;
    if (j0 >= nl)
        return;
    j1 = j0 + cr < nl ? j0 + cr : nl;
    g = j->grad + p->woff[l] + j0 * np;
    if (l == 1) {
        score__sgemm(1, 0, j1 - j0, np, n, 1.0f, k->dz[1] + j0, nl, k->h0, np, 1.0f, g, np);
        score__sgemm(1, 0, j1 - j0, j->dim, n, 1.0f, k->dz[1] + n * nl + j0, nl, j->v, j->dim,
                     1.0f, g, np);
        score__mlp_label_grad(p, &j->cd, n, k->dz[1], j0, j1, j->grad);
    } else {
        score__sgemm(1, 0, j1 - j0, np, 2 * n, 1.0f, k->dz[l] + j0, nl, k->h[l - 1], np, 1.0f,
                     g, np);
    }
    score__col_sum_acc_ld(n, j1 - j0, nl, k->dz[l] + j0, j->grad + p->boff[l] + j0);
}

int score__energy_backward(const score_model *m, score__model_ws *ws, size_t n,
                           const float *gout, float *grad, float *gx)
{
    static const char fn[] = "score_model_backward";
    const mlp *p = impl_of(m);
    mlp_ws *w = score__mlp_ws_of(p, ws);
    score__pool *pool;
    en_keep k;
    en_bw j;
    size_t per = 0, T, need;
    int rc;
    if (w->ecn < n) /* the architecture changed since the forward pass (cache dropped) */
        return score__error(SCORE_E_MISUSE, fn, "no matching forward pass");
    if (gx == NULL && grad == NULL)
        return SCORE_OK;
    keep_layout(p, n, cache_keep(w), &k);
    memset(&j, 0, sizeof j);
    j.p = p;
    j.k = &k;
    j.n = n;
    j.dim = m->dim;
    j.v = gout;
    j.grad = grad;
    j.gx = gx;
    j.cd.labels = cache_lab(w);
    j.cd.labels_per_row = 1;
    j.nblk = (n + SCORE__ENERGY_TRAIN_ROWS - 1) / SCORE__ENERGY_TRAIN_ROWS;
    j.nb = (n + j.nblk - 1) / j.nblk;
    for (size_t l = 1; l < p->L; l++)
        per += p->n[l];
    per += 2 * p->maxh;
    pool = score__mlp_pool_of(w, score__model_ws_threads(m, ws));
    T = pool != NULL ? score__pool_threads(pool) : 1;
    if (score__mul_size(j.nb, per, &j.scratch) != 0 || score__mul_size(T, j.scratch, &need) != 0)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    if ((rc = ensure_earena(w, need, fn)) != SCORE_OK ||
        (rc = pack_weights(fn, m, ws, PK_BACKWARD | (gx != NULL ? PK_GX : 0),
                           score__model_ws_threads(m, ws), &j.pk)) != SCORE_OK)
        return rc;
    j.arena = w->earena;
    score__pool_for_each(j.nblk > 1 ? pool : NULL, j.nblk, bw_rows, &j);
    if (grad != NULL)
        score__pool_for_each(pool, SCORE__ENERGY_GRAD_CHUNKS * (p->L - 1) + 1, bw_grad, &j);
    return SCORE_OK;
}

int score__energy_jvp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                      const double *c, size_t k, const float *v, float *out, float *fx)
{
    static const char fn[] = "score_model_jvp";
    en_pack pk;
    int rc = check(fn, m, ws, n, c, &pk);
    for (size_t pr = 0; rc == SCORE_OK && pr < k; pr++) {
        en_req r = req_base(m, ws, &pk, n, x, c);
        r.v = v;
        r.ord = 1;
        r.vk = r.gk = k;
        r.vp = r.gp = pr;
        r.ct = -1.0f;
        r.gx = out;
        rc = run_req(fn, m, ws, &r);
    }
    if (rc == SCORE_OK && fx != NULL)
        rc = score_rows(fn, m, ws, &pk, n, x, c, fx);
    return rc;
}

/* The Jacobian of the score is minus the Hessian of E: symmetric, so VJP = JVP. */
int score__energy_vjp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                      const double *c, size_t k, const float *u, float *out)
{
    return score__energy_jvp(m, ws, n, x, c, k, u, out, NULL);
}

/* The exact trace of the score's Jacobian, -Laplacian of E: dim Hessian-vector products with
 * the unit vectors, summed in coordinate order. */
int score__energy_trace(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, double *tr, float *fx)
{
    static const char fn[] = "score_model_trace";
    en_pack pk;
    int rc = check(fn, m, ws, n, c, &pk);
    if (rc != SCORE_OK)
        return rc;
    memset(tr, 0, n * sizeof *tr);
    for (size_t j = 0; rc == SCORE_OK && j < m->dim; j++) {
        en_req r = req_base(m, ws, &pk, n, x, c);
        r.unit = (long)j;
        r.ord = 1;
        r.ct = -1.0f;
        r.tr = tr;
        rc = run_req(fn, m, ws, &r);
    }
    if (rc == SCORE_OK && fx != NULL)
        rc = score_rows(fn, m, ws, &pk, n, x, c, fx);
    return rc;
}

/* The entry check of the third-order operations. */
static int check_third(const char *fn, const score_model *m, score__model_ws *ws, size_t n,
                       const double *c, en_pack *pk)
{
    if (impl_of(m)->act == SCORE_ACT_ELU)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the Laplacian of an energy with elu activations jumps where a unit "
                            "crosses 0 (phi'' is discontinuous), so it has no parameter "
                            "gradient there: use silu, softplus, tanh or gelu");
    return check(fn, m, ws, n, c, pk);
}

/* The gout . F term of trace_grad / vjv_grad: double back-propagation (ct = -1 along gout). */
static int gout_term(const char *fn, const score_model *m, score__model_ws *ws,
                     const en_pack *pk, size_t n, const float *x, const double *c,
                     const float *gout, float *grad)
{
    en_req r = req_base(m, ws, pk, n, x, c);
    if (gout == NULL || grad == NULL)
        return SCORE_OK;
    r.v = gout;
    r.ord = 1;
    r.ct = -1.0f;
    r.grad = grad;
    return run_req(fn, m, ws, &r);
}

/* Parameter gradient of sum_b [w_b tr_b + gout_b . F_b] with tr_b = -Laplacian of E: dim
 * second-order passes with the unit vectors (tr_b = -sum_j E''_bj in coordinate order: equal to
 * score_model_trace()'s Hessian-vector route up to float rounding), then the double
 * back-propagation of gout. */
int score__energy_trace_grad(const score_model *m, score__model_ws *ws, size_t n,
                             const float *x, const double *c, const double *w,
                             const float *gout, float *grad, double *tr, float *fx)
{
    static const char fn[] = "score_model_trace_grad";
    en_pack pk;
    int rc = check_third(fn, m, ws, n, c, &pk);
    if (rc == SCORE_OK && tr != NULL)
        memset(tr, 0, n * sizeof *tr);
    for (size_t j = 0; rc == SCORE_OK && j < m->dim; j++) {
        en_req r = req_base(m, ws, &pk, n, x, c);
        r.unit = (long)j;
        r.ord = 2;
        r.w2 = w;
        r.q2 = tr;
        r.q2_add = 1;
        r.grad = grad;
        rc = run_req(fn, m, ws, &r);
    }
    if (rc == SCORE_OK)
        rc = gout_term(fn, m, ws, &pk, n, x, c, gout, grad);
    if (rc == SCORE_OK && fx != NULL)
        rc = score_rows(fn, m, ws, &pk, n, x, c, fx);
    return rc;
}

/* Parameter gradient of sum_{b,p} w_bp v_bp^T (dF/dx) v_bp + sum_b gout_b . F_b: one
 * second-order pass per probe (v^T (dF/dx) v = -E''), then the double back-propagation of
 * gout. */
int score__energy_vjv_grad(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                           const double *c, size_t k, const float *v, const double *w,
                           const float *gout, float *grad, double *vjv, float *fx)
{
    static const char fn[] = "score_model_vjv_grad";
    en_pack pk;
    int rc = check_third(fn, m, ws, n, c, &pk);
    for (size_t pr = 0; rc == SCORE_OK && pr < k; pr++) {
        en_req r = req_base(m, ws, &pk, n, x, c);
        r.v = v;
        r.vk = k;
        r.vp = pr;
        r.ord = 2;
        r.w2 = w;
        r.q2 = vjv;
        r.grad = grad;
        rc = run_req(fn, m, ws, &r);
    }
    if (rc == SCORE_OK)
        rc = gout_term(fn, m, ws, &pk, n, x, c, gout, grad);
    if (rc == SCORE_OK && fx != NULL)
        rc = score_rows(fn, m, ws, &pk, n, x, c, fx);
    return rc;
}

int score__energy_energy(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                         const double *c, double *E)
{
    static const char fn[] = "score_model_energy";
    en_pack pk;
    int rc = check(fn, m, ws, n, c, &pk);
    en_req r = req_base(m, ws, &pk, n, x, c);
    r.E = E;
    return rc != SCORE_OK ? rc : run_req(fn, m, ws, &r);
}
