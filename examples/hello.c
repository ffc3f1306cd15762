/* The smallest libscore program: library information and a few reproducible normal draws. */
#include <stdio.h>

#include <libscore/libscore.h>

int main(void)
{
    score_rng *rng = NULL;
    float z[3 * 4];
    char blas[256];
    int fit = SCORE_BLAS_FIT_UNKNOWN;
    int rc;

    printf("libscore %s\n%s\n", score_version_string(), score_build_info());
    /* Which kernels the loaded BLAS runs; "narrow" means kernels of an older processor. */
    if (score_blas_check(blas, sizeof blas, &fit) == SCORE_OK)
        printf("%s\n", blas);
    if (fit == SCORE_BLAS_FIT_NARROW)
        printf("(the BLAS's products run slower than this processor allows; see the hint)\n");
    rc = score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 2026);
    if (rc != SCORE_OK) {
        fprintf(stderr, "score_rng_new: %s (%s)\n", score_strerror(rc), score_last_error_message());
        return 1;
    }
    rc = score_rng_fill_normal(rng, 0, 3, 0, 4, z);
    if (rc != SCORE_OK) {
        fprintf(stderr, "fill: %s\n", score_last_error_message());
        score_rng_free(rng);
        return 1;
    }
    printf("3 x 4 standard normals from %s, seed 2026:\n", score_rng_name(rng));
    for (int i = 0; i < 3; i++)
        printf("  % .6f % .6f % .6f % .6f\n", z[4 * i], z[4 * i + 1], z[4 * i + 2], z[4 * i + 3]);
    score_rng_free(rng);
    return 0;
}
