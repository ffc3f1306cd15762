/* Internal structure of score_model: a kind-specific ops table behind the generic handle.
 * model.c validates arguments, handles the phase and the parameter table, then dispatches. */
#ifndef LIBSCORE_MODEL_PRIV_H
#define LIBSCORE_MODEL_PRIV_H

#include "core/core-priv.h"
#include "libscore/model.h"

struct score__st_writer; /* src/io/safetensors-priv.h */
struct score__st_reader;

typedef struct score__model_ops {
    const char *name; /* "mlp", "gaussian", ... */
    /* All entries may be NULL when the kind lacks the operation (-> SCORE_E_UNSUPPORTED).
     * Arguments are already validated (non-NULL where required, n > 0, prepared). */
    int (*prepare)(score_model *m);
    int (*forward)(score_model *m, size_t n, const float *x, const double *c, float *out);
    /* Forward without the backward cache (score__model_infer()); NULL = use forward. */
    int (*infer)(score_model *m, size_t n, const float *x, const double *c, float *out);
    int (*backward)(score_model *m, size_t n, const float *gout, float *grad, float *gx);
    int (*jvp)(score_model *m, size_t n, const float *x, const double *c, size_t k,
               const float *v, float *out, float *fx);
    int (*vjp)(score_model *m, size_t n, const float *x, const double *c, size_t k,
               const float *u, float *out);
    int (*trace)(score_model *m, size_t n, const float *x, const double *c, double *tr,
                 float *fx);
    int (*trace_grad)(score_model *m, size_t n, const float *x, const double *c,
                      const double *w, const float *gout, float *grad, double *tr, float *fx);
    int (*vjv_grad)(score_model *m, size_t n, const float *x, const double *c, size_t k,
                    const float *v, const double *w, const float *gout, float *grad,
                    double *vjv, float *fx);
    size_t (*param_count)(const score_model *m);
    void (*params_get)(const score_model *m, float *buf);
    void (*params_set)(score_model *m, const float *buf);
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
} score__model_ops;

#define SCORE__MODEL_NPARAMS 9

struct score_model {
    const score__model_ops *ops;
    int kind;
    size_t dim;
    int prepared;
    /* set by forward, cleared by anything that changes parameters or the cache; backward
     * requires cached_n == its n */
    size_t cached_n;
    int last_callback_status;
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

/* Evaluates F(x, c) like score_model_forward() (same checks and errors) but keeps no cache
 * for score_model_backward() (a later backward fails with SCORE_E_MISUSE): kinds with an
 * infer op then need only a bounded workspace whatever n. For callers that never
 * back-propagate: the sde layer, hence every sampler. */
int score__model_infer(score_model *m, size_t n, const float *x, const double *c, float *out);

/* Allocates a generic model with default parameters; the caller fills ops and impl. */
int score__model_alloc(score_model **out, int kind, size_t dim, const score__model_ops *ops);
/* Parameter value accessors for implementations. */
int64_t score__model_i64(const score_model *m, int param);
double score__model_f64(const score_model *m, int param);
/* Parameter table of the model kind (registered in param-registry.h). */
const score__param_desc *score__model_param_table(size_t *n_out);

/* MLP kind (src/model/mlp.c). */
extern const score__model_ops score__mlp_ops;
/* Analytic kinds (src/model/analytic.c). */
extern const score__model_ops score__gaussian_ops;
extern const score__model_ops score__gmm_ops;

#endif
