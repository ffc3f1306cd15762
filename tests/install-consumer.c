/* A consumer built only from the installed headers and pkg-config flags. */
#include <stdio.h>
#include <string.h>

#include <libscore/libscore.h>

int main(void)
{
    score_rng *rng = NULL;
    float z[4];
    if (score_version_number() != SCORE_VERSION_NUMBER)
        return 1;
    if (score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 1) != SCORE_OK)
        return 2;
    if (score_rng_fill_normal(rng, 0, 1, 0, 4, z) != SCORE_OK)
        return 3;
    score_rng_free(rng);
    printf("consumer: libscore %s (%s)\n", score_version_string(), score_build_blas());
    return strlen(score_build_info()) > 0 ? 0 : 4;
}
