#include "config.h"
#include "core-priv.h"
#include "libscore/version.h"

unsigned score_version_number(void)
{
    return (unsigned)SCORE_VERSION_NUMBER;
}

const char *score_version_string(void)
{
    return SCORE_VERSION_STRING;
}

const char *score_build_blas(void)
{
    return SCORE_BLAS_NAME;
}

const char *score_build_info(void)
{
    return "version=" SCORE_VERSION_STRING " blas=" SCORE_BLAS_NAME
           " blas_version=" SCORE_BLAS_VERSION " compiler=" SCORE_COMPILER_ID
           " threads=pthreads";
}
