/**
 * @file unet.h
 * @brief Image score networks: a convolutional U-Net (::SCORE_MODEL_UNET).
 *
 * A U-Net model takes images of C channels of H x W pixels; a row of x (and of the output) is
 * one image flattened in NCHW order (dim = C * H * W: channel k, pixel row i, column j at
 * k * H * W + i * W + j). The conditioning value c of each row (usually a function of the time,
 * see sde.h) goes through the MLP's embedding (::SCORE_MODEL_PARAM_EMBEDDING Fourier or
 * sinusoidal, ::SCORE_MODEL_PARAM_EMBED_DIM, ::SCORE_MODEL_PARAM_FOURIER_SCALE), two dense
 * layers, plus a learned class embedding when ::SCORE_MODEL_PARAM_NUM_CLASSES = K > 0 (label K
 * is the null label of classifier-free guidance), and is added per residual block.
 *
 * Architecture (DDPM / DDPM++ style; doc/unet.md gives the sources of each choice and the flat
 * parameter layout of score_model_params_get()): a 3x3 input convolution; per level l of the
 * widths base * mult[l] (::SCORE_MODEL_PARAM_UNET_BASE_WIDTH, score_model_set_unet_widths()),
 * ::SCORE_MODEL_PARAM_UNET_BLOCKS residual blocks (GroupNorm, SiLU, 3x3 convolutions, the
 * embedding projection, skip rescaled by 1/sqrt(2)) and a 2x2 average pooling between levels;
 * at the lowest resolution a residual block, optional single-head self-attention
 * (::SCORE_MODEL_PARAM_UNET_ATTENTION) and a residual block; the up path mirrors it with one more
 * block per level, each taking the concatenation of the current features and a skip
 * connection, and nearest up-sampling followed by a 3x3 convolution between levels; then
 * GroupNorm, SiLU and a 3x3 output convolution. H and W must be divisible by 2^(levels - 1).
 *
 * Operations: score_model_forward() / score_model_backward() (the denoising losses: DSM, NCSN,
 * DDPM, continuous-time SDE DSM, with labels and classifier-free guidance), the cache-free
 * evaluation of samplers and likelihoods (blocks of 8 images, memory bounded whatever the
 * batch), parameters get / set, clone, score_model_save() / score_model_load() (one tensor per
 * parameter with PyTorch's names and shapes, doc/unet.md "Files"; also inside generative model
 * files). Not provided (::SCORE_E_UNSUPPORTED): Jacobian-vector products, the exact trace and
 * their gradients (hence the Hyvärinen, sliced and SM-VR losses and the exact-divergence
 * likelihood), the context-vector input.
 * ::SCORE_MODEL_PARAM_THREADS: the forward, the cache-free evaluation and the backward run
 * fixed blocks of images on that many threads, with bit-identical results for every value;
 * a row's output does not depend on the other rows of its call (see doc/unet.md).
 */
#ifndef LIBSCORE_UNET_H
#define LIBSCORE_UNET_H

#include "common.h"
#include "model.h"

SCORE_BEGIN_DECLS

/**
 * @brief Creates a U-Net model for images of @p channels x @p height x @p width, in the
 * configuring phase, with the default architecture (base width 32, widths {1, 2, 2}, 2 blocks
 * per level, 8 groups, attention, Fourier embedding of 32 features).
 *
 * The architecture parameters UNET_* of model.h, SEED, EMBEDDING (Fourier or sinusoidal),
 * EMBED_DIM, FOURIER_SCALE and NUM_CLASSES, and score_model_set_unet_widths() apply until the
 * model is prepared; score_model_prepare() checks the shape (::SCORE_E_SHAPE when H or W is not
 * divisible by 2^(levels - 1) or a width by the groups).
 * @param[out] out the new model; NULL on failure.
 * @param[in] channels C, 1..4096. @param[in] height H, 1..4096. @param[in] width W, 1..4096;
 *            C * H * W at most 2^20.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out); ::SCORE_E_RANGE (a size);
 *         ::SCORE_E_NOMEM.
 * Ownership: the caller owns the model; free it with score_model_free().
 * Thread-safety: safe.
 * @since 0.2
 * @see score_model_set_unet_widths()
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new_unet(score_model **out, size_t channels,
                                                     size_t height, size_t width);

/**
 * @brief Sets the number of levels of a U-Net and their width multipliers: level l has
 * base * mults[l] channels (default {1, 2, 2}).
 * @param[in,out] model a U-Net in the configuring phase.
 * @param[in] n_levels number of levels, 1..6.
 * @param[in] mults @p n_levels multipliers, each 1..64.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL argument); ::SCORE_E_RANGE; ::SCORE_E_UNSUPPORTED
 *         (not a U-Net); ::SCORE_E_STAGE (prepared).
 * Ownership: @p mults is copied.
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_model_set_unet_widths(score_model *model, size_t n_levels,
                                                            const size_t *mults);

/**
 * @brief Reads the levels of a U-Net and their width multipliers.
 * @param[in] model a U-Net.
 * @param[out] n_levels the number of levels.
 * @param[out] mults the first min(@p cap, levels) multipliers (may be NULL when @p cap is 0).
 * @param[in] cap capacity of @p mults.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL argument); ::SCORE_E_UNSUPPORTED (not a U-Net).
 * Thread-safety: safe for concurrent readers.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_model_get_unet_widths(const score_model *model,
                                                            size_t *n_levels, size_t *mults,
                                                            size_t cap);

SCORE_END_DECLS

#endif /* LIBSCORE_UNET_H */
