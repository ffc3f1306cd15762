/* score_blas_check(): which kernels the BLAS runs in this process, against the processor.
 *
 * OpenBLAS (DYNAMIC_ARCH) and BLIS choose their kernels at load time from the processor's
 * identity; a release older than the processor does not know it and falls back to kernels of
 * an older one (Debian 12's OpenBLAS 0.3.21 on Emerald Rapids: "Prescott", SSE3, a quarter of
 * the speed of its SkylakeX kernels; its BLIS 0.9 there: "haswell"). Nothing fails; the
 * products are slower. This file compares the vector extension the chosen kernels use with the
 * widest one the processor and the operating system offer.
 *
 * cblas.h is not included here: the backends' query functions are declared below, each one
 * only when the build found it in the linked library (config.h). */
#define _POSIX_C_SOURCE 200809L /* pthread_once under -std=c11 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "core/core-priv.h"
#include "libscore/version.h"

#if defined(SCORE_HAVE_OPENBLAS_CORENAME)
char *openblas_get_corename(void);
char *openblas_get_config(void);
#endif
#if defined(SCORE_HAVE_BLIS_ARCH)
/* arch_t is a C enum, passed and returned as an int. bli_init() is idempotent and
 * thread-safe; without it, bli_arch_query_id() aborts when BLIS_ARCH_TYPE is set. */
void bli_init(void);
int bli_arch_query_id(void);
char *bli_arch_string(int id);
char *bli_info_get_version_str(void);
#endif

/* Vector extension levels, ordered by width. */
enum isa { ISA_UNKNOWN = -1, ISA_SSE = 0, ISA_AVX = 1, ISA_AVX2 = 2, ISA_AVX512 = 3 };

static const char *const isa_names[] = {"sse", "avx", "avx2", "avx512"};

static const char *isa_name(int isa)
{
    return isa >= ISA_SSE && isa <= ISA_AVX512 ? isa_names[isa] : "unknown";
}

/* The widest level the processor and the operating system support. GCC's and Clang's
 * __builtin_cpu_supports() check the OS's register state (XCR0) for the AVX and AVX-512
 * features. AVX-512 counts with F, BW, DQ and VL (the Skylake-SP set the BLAS kernels for it
 * assume; Xeon Phi, F without BW, counts as AVX2); AVX2 with FMA. */
static int cpu_isa(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return ISA_AVX2;
    if (__builtin_cpu_supports("avx"))
        return ISA_AVX;
    return ISA_SSE;
#else
    return ISA_UNKNOWN;
#endif
}

struct core_isa {
    const char *name; /* lower case */
    int isa;
};

/* The x86 kernel sets of OpenBLAS (openblas_get_corename()) and BLIS (bli_arch_string()) by
 * the widest extension their single-precision GEMM uses. The AMD families before Zen have
 * 128-bit FMA pipes and kernels of AVX width. */
static const struct core_isa core_isas[] = {
    /* OpenBLAS */
    {"skylakex", ISA_AVX512}, {"cooperlake", ISA_AVX512}, {"sapphirerapids", ISA_AVX512},
    {"haswell", ISA_AVX2}, {"zen", ISA_AVX2},
    {"sandybridge", ISA_AVX}, {"bulldozer", ISA_AVX}, {"piledriver", ISA_AVX},
    {"steamroller", ISA_AVX}, {"excavator", ISA_AVX},
    {"katmai", ISA_SSE}, {"coppermine", ISA_SSE}, {"northwood", ISA_SSE}, {"prescott", ISA_SSE},
    {"banias", ISA_SSE}, {"atom", ISA_SSE}, {"core2", ISA_SSE}, {"penryn", ISA_SSE},
    {"dunnington", ISA_SSE}, {"nehalem", ISA_SSE}, {"athlon", ISA_SSE}, {"opteron", ISA_SSE},
    {"opteron_sse3", ISA_SSE}, {"barcelona", ISA_SSE}, {"nano", ISA_SSE}, {"bobcat", ISA_SSE},
    /* BLIS (names not above) */
    {"skx", ISA_AVX512}, {"knl", ISA_AVX512}, {"zen4", ISA_AVX512}, {"zen5", ISA_AVX512},
    {"zen2", ISA_AVX2}, {"zen3", ISA_AVX2}, {"generic", ISA_SSE},
};

static int core_isa(const char *core)
{
    char low[32];
    size_t n = 0;
    if (core == NULL)
        return ISA_UNKNOWN;
    for (; core[n] != '\0' && n + 1 < sizeof low; n++)
        low[n] = (char)(core[n] >= 'A' && core[n] <= 'Z' ? core[n] - 'A' + 'a' : core[n]);
    if (core[n] != '\0')
        return ISA_UNKNOWN;
    low[n] = '\0';
    for (size_t i = 0; i < sizeof core_isas / sizeof core_isas[0]; i++)
        if (strcmp(low, core_isas[i].name) == 0)
            return core_isas[i].isa;
    return ISA_UNKNOWN;
}

/* The OpenBLAS kernel set for a processor of that level, in the spelling of its override
 * variable. BLIS 0.9 takes its override (BLIS_ARCH_TYPE) as an index into a table that changes
 * between releases and aborts on one its build lacks: no hint is given for it. */
static const char *override_hint(int isa)
{
#if defined(SCORE_HAVE_OPENBLAS_CORENAME)
    static const char *const names[] = {"OPENBLAS_CORETYPE=Prescott",
                                        "OPENBLAS_CORETYPE=Sandybridge",
                                        "OPENBLAS_CORETYPE=Haswell", "OPENBLAS_CORETYPE=SkylakeX"};
    return isa >= ISA_SSE && isa <= ISA_AVX512 ? names[isa] : NULL;
#else
    (void)isa;
    return NULL;
#endif
}

/* Copies one whitespace-free token of src (at most size - 1 characters) into dst. */
static void token(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    if (src != NULL)
        for (; src[n] != '\0' && src[n] != ' ' && n + 1 < size; n++)
            dst[n] = src[n];
    if (n == 0 && size > 7)
        memcpy(dst, "unknown", n = 7);
    dst[n] = '\0';
}

#if defined(SCORE_HAVE_OPENBLAS_CORENAME)
/* The loaded OpenBLAS's version, read once per process: openblas_get_config() rebuilds its
 * string in a static buffer of OpenBLAS's on every call, so two threads calling it at once
 * would race on that buffer. Written once under the pthread_once, read-only after it. */
static pthread_once_t openblas_version_once = PTHREAD_ONCE_INIT;
static char openblas_version[32];

static void read_openblas_version(void)
{
    /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": the version of the library loaded, which
     * may differ from the one the build saw. */
    const char *cfg = openblas_get_config();
    token(openblas_version, sizeof openblas_version,
          cfg != NULL && strncmp(cfg, "OpenBLAS ", 9) == 0 ? cfg + 9 : NULL);
}
#endif

int score_blas_check(char *buf, size_t size, int *fit)
{
    char core[32], version[32], text[256];
    if (buf == NULL && size > 0)
        return score__error(SCORE_E_INVAL, __func__, "buf is NULL but size is %zu", size);
    token(core, sizeof core, NULL);
    token(version, sizeof version, NULL);
#if defined(SCORE_HAVE_OPENBLAS_CORENAME)
    token(core, sizeof core, openblas_get_corename()); /* a constant string of OpenBLAS's */
    pthread_once(&openblas_version_once, read_openblas_version);
    token(version, sizeof version, openblas_version);
#elif defined(SCORE_HAVE_BLIS_ARCH)
    bli_init();
    token(core, sizeof core, bli_arch_string(bli_arch_query_id()));
    token(version, sizeof version, bli_info_get_version_str());
#else
    token(version, sizeof version, SCORE_BLAS_VERSION);
#endif
    int kisa = core_isa(core), cisa = cpu_isa();
    int f = SCORE_BLAS_FIT_UNKNOWN;
    if (kisa != ISA_UNKNOWN && cisa != ISA_UNKNOWN)
        f = kisa < cisa ? SCORE_BLAS_FIT_NARROW : SCORE_BLAS_FIT_MATCH;
    const char *hint = f == SCORE_BLAS_FIT_NARROW ? override_hint(cisa) : NULL;
    int len = snprintf(text, sizeof text, "blas=%s blas_version=%s core=%s core_isa=%s cpu_isa=%s "
                       "fit=%s%s%s", SCORE_BLAS_NAME, version, core, isa_name(kisa),
                       isa_name(cisa),
                       f == SCORE_BLAS_FIT_MATCH ? "match"
                       : f == SCORE_BLAS_FIT_NARROW ? "narrow" : "unknown",
                       hint ? " hint=" : "", hint ? hint : "");
    if (fit != NULL)
        *fit = f;
    if (size == 0)
        return SCORE_OK;
    size_t n = len < 0 ? 0 : (size_t)len; /* < sizeof text: the tokens are bounded */
    size_t copy = n < size ? n : size - 1;
    memcpy(buf, text, copy);
    buf[copy] = '\0';
    if (copy < n)
        return score__error(SCORE_E_RANGE, __func__,
                            "the description needs %zu bytes, buf holds %zu", n + 1, size);
    return SCORE_OK;
}
