/* Internal structure of score_model: a kind-specific ops table behind the generic handle.
 * model.c validates arguments, handles the phase and the parameter table, then dispatches. */
#ifndef LIBSCORE_MODEL_PRIV_H
#define LIBSCORE_MODEL_PRIV_H

#include <stdatomic.h>

#include "core/core-priv.h"
#include "libscore/model.h"

struct score__st_writer; /* src/io/safetensors-priv.h */
struct score__st_reader;

/* Output cotangent of an objective that depends on the model's outputs (the Hyvärinen and
 * sliced losses): fills gout (rows x dim) for the batch rows row0 .. row0 + rows - 1 from their
 * outputs fx (rows x dim). Called once per block of rows (each row once) right after the kind's
 * own forward pass of that block: in row order on one thread, or, with the model's threads
 * (the MLP's lanes, mlp-tangent.c), for disjoint blocks from several threads at a time, so it
 * must only read ctx and write gout (and data of its own rows row0 .. row0 + rows - 1 only:
 * the sliced losses' per-row terms, loss.c). */
typedef void (*score__gout_fn)(void *ctx, size_t row0, size_t rows, const float *fx, float *gout);

/* Per-caller workspace of the compute operations (see "Workspaces" below). */
typedef struct score__model_ws score__model_ws;

typedef struct score__model_ops {
    const char *name; /* "mlp", "gaussian", ... */
    /* All entries may be NULL when the kind lacks the operation (-> SCORE_E_UNSUPPORTED).
     * Arguments are already validated (non-NULL where required, n > 0, prepared) and ws is
     * bound to the kind (its kind part made by ws_new). The compute operations only read the
     * model: everything they write lives in ws (or in the caller's arrays), so any number of
     * calls with different workspaces may run on one model at the same time. */
    int (*prepare)(score_model *m);
    int (*forward)(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                   const double *c, float *out);
    /* Forward without the backward cache (score__model_infer_ws()); NULL = use forward. */
    int (*infer)(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                 const double *c, float *out);
    /* Forward without cache in double precision (score__model_infer_ws_f64()): the kinds
     * that compute in double inside (analytic, combinations of such); NULL = none. */
    int (*infer_f64)(const score_model *m, score__model_ws *ws, size_t n, const double *x,
                     const double *c, double *out);
    /* Back-propagation through the forward of n rows cached in ws. */
    int (*backward)(const score_model *m, score__model_ws *ws, size_t n, const float *gout,
                    float *grad, float *gx);
    int (*jvp)(const score_model *m, score__model_ws *ws, size_t n, const float *x,
               const double *c, size_t k, const float *v, float *out, float *fx);
    int (*vjp)(const score_model *m, score__model_ws *ws, size_t n, const float *x,
               const double *c, size_t k, const float *u, float *out);
    int (*trace)(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                 const double *c, double *tr, float *fx);
    /* The energy E(x, c) of every row (score_model_energy()): F = -grad_x E. */
    int (*energy)(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                  const double *c, double *E);
    int (*trace_grad)(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                      const double *c, const double *w, const float *gout, float *grad,
                      double *tr, float *fx);
    int (*vjv_grad)(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                    const double *c, size_t k, const float *v, const double *w,
                    const float *gout, float *grad, double *vjv, float *fx);
    /* trace_grad / vjv_grad with gout built by gfn from the outputs (fx, required) of the
     * kind's own forward pass: no separate forward by the caller. NULL = the generic fallback
     * of score__model_trace_grad_fn_ws() / score__model_vjv_grad_fn_ws(). */
    int (*trace_grad_fn)(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                         const double *c, const double *w, score__gout_fn gfn, void *gctx,
                         float *grad, double *tr, float *fx);
    int (*vjv_grad_fn)(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                       const double *c, size_t k, const float *v, const double *w,
                       score__gout_fn gfn, void *gctx, float *grad, double *vjv, float *fx);
    /* The kind part of a workspace: ws_new makes an empty one (sized by the operations when
     * they run, for the model they are given: a kind part must check that its buffers fit
     * the model and grow them otherwise), ws_free frees it. Both NULL: no kind part. */
    int (*ws_new)(void **out);
    void (*ws_free)(void *kind);
    size_t (*param_count)(const score_model *m);
    void (*params_get)(const score_model *m, float *buf);
    void (*params_set)(score_model *m, const float *buf);
    /* Address of the kind's contiguous parameter array (param_count floats from
     * score__calloc, the array forward and backward read), for score__model_params_data();
     * the trainer updates the weights there in place and refuses kinds without it. */
    float **(*params_slot)(score_model *m);
    /* Deep copy of impl into dst (dst's generic fields are already copied). */
    int (*clone_impl)(score_model *dst, const score_model *src);
    void (*destroy_impl)(score_model *m);
    /* Parameters beyond the generic table handling: called after the generic table accepted
     * the value; may refuse (e.g. not for this kind) by returning an error status. */
    int (*on_param)(score_model *m, int param);
    /* Serialisation (model-io.c). save: adds the kind's metadata (architecture, settings) and
     * tensors to the writer; the generic "format", "version" and "kind" (= name) entries are
     * already there; NULL = the kind cannot be saved (SCORE_E_UNSUPPORTED). load: builds a
     * prepared model of this kind from a parsed file whose "kind" equals name; the content is
     * hostile: every inconsistency -> SCORE_E_FORMAT with a message. Kinds with a load hook
     * are listed in model-io.c. */
    int (*save)(const score_model *m, struct score__st_writer *w);
    int (*load)(score_model **out, const struct score__st_reader *r);
    /* 1 when b, a model of the same kind, has a's architecture (what its parameters mean,
     * besides their values), else 0; NULL: every model of the kind has the same one. */
    int (*same_arch)(const score_model *a, const score_model *b);
} score__model_ops;

#define SCORE__MODEL_NPARAMS 17

struct score_model {
    const score__model_ops *ops;
    int kind;
    size_t dim;
    int prepared;
    /* Rows of the forward cached in own_ws by score_model_forward(), 0 = none: set by
     * forward, cleared by anything that changes the parameters and by the other public compute
     * calls (atomically, as concurrent readers may clear it); backward requires its n. */
    atomic_size_t cached_n;
    /* The user status of the last callback call through this model by any caller (published
     * atomically at the end of each compute call, see score_model_last_callback_status()). */
    atomic_int last_callback_status;
    /* Workspace of the public forward / backward pair (object-exclusive), made on first use. */
    score__model_ws *own_ws;
    score__param_val params[SCORE__MODEL_NPARAMS];
    void *impl;
    struct score__model_meta *meta; /* user metadata (model-meta.c); NULL = none */
};

/* User metadata (model-meta.c). Limits of score_model_set_metadata(). */
#define SCORE__META_MAX_KEY 128
#define SCORE__META_MAX_VALUE 65536
#define SCORE__META_MAX_ENTRIES 256
/* Prefix of user entries in a model file's "__metadata__". */
#define SCORE__META_FILE_PREFIX "user."
/* Key / value validation; failures return `status` (SCORE_E_INVAL for callers, SCORE_E_FORMAT
 * for files) with a message. */
int score__model_meta_check_key(const char *fn, int status, const char *key);
int score__model_meta_check_value(const char *fn, int status, const char *key, const char *value);
/* Sets (value NULL: removes) an entry after validating it; bad_status as above. */
int score__model_meta_set(const char *fn, int bad_status, score_model *m, const char *key,
                          const char *value);
/* Deep copy of src's metadata into dst (dst->meta is overwritten); SCORE_E_NOMEM without a
 * message. */
int score__model_meta_copy(score_model *dst, const score_model *src);
void score__model_meta_free(score_model *m);
/* i-th entry in key order; SCORE_E_RANGE past the end (no message). */
int score__model_meta_at(const score_model *m, size_t i, const char **key, const char **value);

/* ---- Workspaces --------------------------------------------------------------------------
 * Everything a compute call writes (activations, tangents, per-thread scratch, a thread pool,
 * the forward cache of a backward, the status of a user callback) lives in a workspace that
 * belongs to the calling object: the sde (every sampler and the likelihood evaluate through
 * it), the loss, the public forward / backward pair (the model's own_ws, object-exclusive), or
 * one public read-only call (a workspace made and freed by that call). The model is only read,
 * so one prepared model serves any number of workspaces at the same time. A workspace is used
 * by one thread at a time; it may serve different models one after the other (its kind part
 * is remade when the kind changes and grows when a model or batch needs more), and grows to
 * the largest batch seen, never inside a hot loop once sized. */
struct score__model_ws {
    void *kind;                  /* kind part (NULL until the first call, or none) */
    void (*kind_free)(void *kind); /* the kind that made it: its ops->ws_free */
    int64_t threads;             /* 0: the model's SCORE_MODEL_PARAM_THREADS; else this count
                                  * (a combination evaluates its members with its own) */
    int cb_status;               /* user status of the last callback call through it */
    size_t cached_n;             /* rows cached by score__model_forward_ws() for backward */
    /* Label and context inputs of the rows of the next calls through this workspace, set by
     * the calling object (sde, loss, trainer) and read by kinds with such inputs
     * (SCORE_MODEL_PARAM_NUM_CLASSES > 0, SCORE_MODEL_PARAM_CONTEXT_DIM > 0). The arrays
     * belong to the caller, which validated them (labels in 0..K, K = the null label; finite
     * context values). labels NULL: every row has the null label. context NULL: no context
     * (a kind that needs one refuses the call with SCORE_E_INVAL). *_per_row = 1: one entry
     * (label, or context_dim floats) per row of the call; 0: one entry for all rows. */
    const int32_t *labels;
    const float *context;
    int labels_per_row;
    int context_per_row;
    /* Global row numbers of the rows of the next calls, set by a caller that needs a row's
     * result to be independent of how the rows are split into calls (the samplers, through
     * score__sde_set_rows()). row_n = 0: none. Else the map describes row_n rows: row i is
     * global row row0 + i (row_idx NULL) or row0 + row_idx[i] (strictly increasing); a call of
     * s * row_n rows (guidance: s = 2) is s segments with this map each. Kinds whose row
     * results depend on the shape of their BLAS products (the MLP) then evaluate in row panels
     * aligned to these numbers; the others ignore it. */
    size_t row_n;
    size_t row0;
    const size_t *row_idx;
};

/* An empty workspace (SCORE_E_NOMEM without a message). */
int score__model_ws_new(score__model_ws **out);
void score__model_ws_free(score__model_ws *ws);
/* Makes ws's kind part the one of m's kind (SCORE_E_NOMEM with a message for fn). */
int score__model_ws_bind(const char *fn, const score_model *m, score__model_ws *ws);
/* Threads a kind uses for this call (>= 1). */
int64_t score__model_ws_threads(const score_model *m, const score__model_ws *ws);
/* mlp.c: the thread pool of ws's MLP part (the one its last threaded call ran on), for a
 * caller that runs its own parallel loop between two of the model's calls through ws (the
 * trainer's optimizer sweep), so that the same threads do all of a step's work; the caller
 * checks its thread count (score__pool_threads()). Never makes one: NULL when ws has no MLP
 * part (another kind, or no call yet) or its calls have not run on threads. Valid until the
 * next call through ws. */
struct score__pool *score__model_ws_pool(score__model_ws *ws);

/* The compute calls through a workspace: the checks, errors and results of the public
 * functions (the messages name them), the model only read, its callback status published.
 * forward_ws keeps the cache of the n rows in ws for backward_ws (which needs the same ws,
 * model and n, and unchanged parameters); infer_ws keeps none (bounded memory whatever n). */
int score__model_infer_ws(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                          const double *c, float *out);
int score__model_forward_ws(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                            const double *c, float *out);
int score__model_backward_ws(const score_model *m, score__model_ws *ws, size_t n,
                             const float *gout, float *grad, float *gx);
int score__model_jvp_ws(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, size_t k, const float *v, float *out, float *fx);
int score__model_vjp_ws(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, size_t k, const float *u, float *out);
int score__model_trace_ws(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                          const double *c, double *tr, float *fx);

/* score__model_infer_ws() with double input and output, for the kinds that compute in double
 * (score__model_has_f64() = 1); SCORE_E_UNSUPPORTED for the others. */
int score__model_infer_ws_f64(const score_model *m, score__model_ws *ws, size_t n,
                              const double *x, const double *c, double *out);
int score__model_has_f64(const score_model *m);

/* score__model_infer_ws() through a workspace of this call only (made and freed here). */
int score__model_infer(score_model *m, size_t n, const float *x, const double *c, float *out);

/* Direct access to a prepared model's parameters for the trainer (no copies per step): the
 * model's own contiguous array of score_model_param_count() floats, or NULL when its kind does
 * not keep one (then use score_model_params_get / _set). The array may be read, and written
 * with finite values only; it stays valid until the next call that changes the model's
 * parameters or architecture. */
float *score__model_params_data(score_model *m);
/* Installs buf (score_model_param_count() finite floats, allocated with score__calloc) as the
 * model's parameter array and returns the previous array, which the caller now owns (same
 * size and allocator). Only for models whose score__model_params_data() is not NULL. Like
 * score_model_params_set(), invalidates the backward cache. */
float *score__model_params_exchange(score_model *m, float *buf);
/* Notes that the array of score__model_params_data() was written in place (invalidates the
 * backward cache, like score_model_params_set()). */
void score__model_params_changed(score_model *m);

/* 1 when a and b are of the same kind and architecture, so that the parameters of one mean
 * the same in the other (the trainer's checkpoints), else 0. */
int score__model_same_architecture(const score_model *a, const score_model *b);

/* model-io.c: the public save-to-file calls. to_buffer writes obj into a new buffer (freed
 * with score__free()); score__save_file_via_buffer() refuses an empty path, then stores the
 * buffer with score__st_save_file(). path must not be NULL. */
typedef int (*score__to_buffer_fn)(const char *fn, const void *obj, void **buf, size_t *len);
int score__save_file_via_buffer(const char *fn, const char *path, const void *obj,
                                score__to_buffer_fn to_buffer);
/* The loader's probe (model-io.c, doc/model-format.md): evaluates m on a fixed 3-row batch;
 * SCORE_E_FORMAT (message prefixed for fn) when an output is not finite, SCORE_E_NOMEM. */
int score__model_probe(const char *fn, score_model *m);
/* The two halves of score_model_save_buffer() / score_model_load_buffer() for files that hold
 * a model and more (generative models, src/genmodel/): writes the model's metadata and tensors
 * into w (the caller adds its own and finishes); builds the model from an opened reader (all
 * the loader's checks; metadata that is neither the library's nor "user.*" is ignored). */
int score__model_save_to_writer(const char *fn, const score_model *m, struct score__st_writer *w);
int score__model_load_from_reader(const char *fn, score_model **out,
                                  const struct score__st_reader *r);

/* score_model_trace_grad() / score_model_vjv_grad() (same checks, errors and results) with the
 * output cotangent gout = gfn(fx) instead of an array: F(x, c) is written to fx (n * dim,
 * required) and the kind computes gout from it block by block after its own forward pass
 * (MLP), so callers whose gout depends on F need no forward of their own. Kinds without the
 * op: a cache-free forward into fx, gfn over all rows into gout_ws (n * dim floats, required),
 * then the array version. */
int score__model_trace_grad_fn_ws(const score_model *m, score__model_ws *ws, size_t n,
                                  const float *x, const double *c, const double *w,
                                  score__gout_fn gfn, void *gctx, float *gout_ws, float *grad,
                                  double *tr, float *fx);
int score__model_vjv_grad_fn_ws(const score_model *m, score__model_ws *ws, size_t n,
                                const float *x, const double *c, size_t k, const float *v,
                                const double *w, score__gout_fn gfn, void *gctx,
                                float *gout_ws, float *grad, double *vjv, float *fx);
/* The same through a workspace of this call only. */
int score__model_trace_grad_fn(score_model *m, size_t n, const float *x, const double *c,
                               const double *w, score__gout_fn gfn, void *gctx, float *gout_ws,
                               float *grad, double *tr, float *fx);
int score__model_vjv_grad_fn(score_model *m, size_t n, const float *x, const double *c, size_t k,
                             const float *v, const double *w, score__gout_fn gfn, void *gctx,
                             float *gout_ws, float *grad, double *vjv, float *fx);

/* Allocates a generic model with default parameters; the caller fills ops and impl. */
int score__model_alloc(score_model **out, int kind, size_t dim, const score__model_ops *ops);
/* Parameter value accessors for implementations. */
int64_t score__model_i64(const score_model *m, int param);
double score__model_f64(const score_model *m, int param);
/* Parameter table of the model kind (registered in param-registry.h). */
const score__param_desc *score__model_param_table(size_t *n_out);

/* MLP kind (src/model/mlp.c). */
extern const score__model_ops score__mlp_ops;
/* Energy kind (the MLP's code, src/model/mlp.c and energy.c). */
extern const score__model_ops score__energy_ops;
/* score_model_energy() through a workspace (the checks, errors and results of it; the messages
 * name fn); SCORE_E_UNSUPPORTED with a message for models without an energy. */
int score__model_energy_ws(const char *fn, const score_model *m, score__model_ws *ws, size_t n,
                           const float *x, const double *c, double *E);
/* The label and context arguments of score_model_forward_cond() / score_model_energy_cond()
 * against the model's inputs: SCORE_E_UNSUPPORTED (labels without a label input, a context
 * without a context input), SCORE_E_INVAL (no context for a model with one), SCORE_E_RANGE (a
 * label outside 0..K, or too many rows), SCORE_E_NUMERIC (a non-finite context value). */
int score__model_check_cond(const char *fn, const score_model *m, size_t n,
                            const int32_t *labels, const float *context);
/* Classifier kind (the MLP's code, src/model/mlp.c and classifier.c). */
extern const score__model_ops score__classifier_ops;
/* Analytic kinds (src/model/analytic.c). */
extern const score__model_ops score__gaussian_ops;
extern const score__model_ops score__gmm_ops;
/* U-Net kind (src/model/unet.c). */
extern const score__model_ops score__unet_ops;

/* The end of a file loader whose model was refused while being built from the file's metadata
 * (status rc of a setter or of score_model_prepare()): frees m and returns SCORE_E_NOMEM as is,
 * anything else as SCORE_E_FORMAT "the architecture in the metadata is invalid: <reason>". */
int score__st_arch_refused(const char *fn, score_model *m, int rc);

#endif
