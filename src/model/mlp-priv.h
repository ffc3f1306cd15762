/* Internal interface of the MLP kind, shared by mlp.c (math), mlp-io.c (safetensors) and the
 * tests (through the internal static library). Never installed. */
#ifndef LIBSCORE_MLP_PRIV_H
#define LIBSCORE_MLP_PRIV_H

#include "model-priv.h"

#define SCORE__MLP_MAX_HIDDEN 64
#define SCORE__MLP_MAX_WIDTH 65536
/* Default bound of the forward-mode tangent workspace (bytes); the batch is processed in
 * blocks of rows so that the (rows * k) x width tangent matrices stay within it. */
#define SCORE__MLP_TANGENT_BUDGET ((size_t)32 * 1024 * 1024)

/* Architecture of a prepared MLP. */
typedef struct score__mlp_info {
    size_t n_layers;      /* L linear layers (hidden layers + output layer) */
    const size_t *width;  /* L + 1 widths: width[0] = dim + embed_in + context_dim, ...,
                           * width[L] = dim */
    const int *residual;  /* L + 1 flags: residual[l] = 1 when layer l is a residual block */
    size_t embed_in;      /* inputs taken by the embedding (1 for SCORE_EMBED_NONE) */
    int activation;       /* SCORE_ACT_* */
    int embedding;        /* SCORE_EMBED_* */
    const float *fourier; /* embed_in / 2 Fourier frequencies W (FOURIER), else NULL */
    const float *params;  /* the flat parameters */
    size_t n_params;
    size_t num_classes;   /* K of the label input (0: none) */
    size_t context_dim;   /* m of the context input (0: none) */
    size_t label_offset;  /* the (K + 1) x width[1] label table: params + label_offset */
} score__mlp_info;

/* Fills *out for a prepared MLP (returns SCORE_E_INVAL otherwise, without a message). */
int score__mlp_info_get(const score_model *m, score__mlp_info *out);
/* Replaces the Fourier projection (embed_in / 2 finite floats) of a prepared Fourier MLP. */
void score__mlp_set_fourier(score_model *m, const float *w);
/* Overrides the tangent workspace budget in bytes (0 = default); for tests of the blocking. */
void score__mlp_set_tangent_budget(score_model *m, size_t bytes);
/* Overrides the work per lane of the trace / vjv gradients (mlp-tangent.c; 0 = default), so
 * that a small call has several lanes; for tests of the lanes. */
void score__mlp_set_tangent_lane_flops(score_model *m, double flops);

/* mlp-io.c: the save/load hooks of score__mlp_ops. */
int score__mlp_save(const score_model *m, struct score__st_writer *w);
int score__mlp_load(score_model **out, const struct score__st_reader *r);
/* mlp-io.c: the save/load hooks of score__energy_ops. */
int score__energy_save(const score_model *m, struct score__st_writer *w);
int score__energy_load(score_model **out, const struct score__st_reader *r);
/* mlp-io.c: the save/load hooks of score__classifier_ops. */
int score__classifier_save(const score_model *m, struct score__st_writer *w);
int score__classifier_load(score_model **out, const struct score__st_reader *r);
/* classifier.c: the schedule of a classifier (its own copy). */
const score_schedule *score__classifier_schedule_of(const score_model *m);

#endif /* LIBSCORE_MLP_PRIV_H */
