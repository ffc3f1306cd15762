/* Allocation-failure test (the out-of-memory injection discipline of SQLite's test suite).
 *
 * One representative program creates every kind of libscore object, trains a few steps,
 * samples, evaluates likelihoods, saves to a buffer and to a file, loads back, checkpoints and
 * resumes, and frees everything. The test runs it once with no failure (the reference run:
 * it counts the allocations and records a hash of every result), then once for every N = 1,
 * 2, ... with the N-th allocation made inside a library call failing, until a run completes
 * with no failure injected. Every run is a fork()ed child, so a crash or a sanitizer report is
 * reported with its N. For each N the test asserts:
 *   - no crash, no sanitizer report (the child's exit status and stderr);
 *   - every call returns SCORE_OK or an error status, and a constructor that fails sets its
 *     output handle to NULL;
 *   - the call in which the allocation failed returns SCORE_E_NOMEM (or SCORE_OK, if the
 *     library can do without that allocation), except for the entries of allowed_other[] and
 *     pending_oom_fixes[] below;
 *   - a call that returns SCORE_OK gives the same result, bit for bit, as in the reference run;
 *   - no leak: every block the program's library calls allocate is freed at the end (the test
 *     keeps the set of live blocks).
 *
 * How: this executable defines malloc, calloc, realloc, free, posix_memalign, aligned_alloc,
 * memalign, strdup and strndup, so that every allocation of libscore and of the libraries it
 * calls passes through them. They forward to the next definition (dlsym(RTLD_NEXT, ...)):
 * AddressSanitizer's allocator in a sanitizer build, the C library's otherwise. Allocations
 * are counted only while a library call of the program runs ("armed"), on the main thread.
 *
 * Options: `test-oom -v` prints every N; `test-oom N` runs only that N in the foreground (for a
 * debugger). Environment: SCORE_OOM_JOBS=j runs j children at a time (default 2);
 * SCORE_OOM_STRIDE=k tests every k-th N only (default 1: every N). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <execinfo.h>
#include <link.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libscore/libscore.h>

/* ==== 1. failure points that are not (yet) SCORE_E_NOMEM =================================== */

/* A (call, status) pair that is accepted after an injected allocation failure, with the
 * reason. `call` is a prefix of the call's label (the libscore function name). */
typedef struct {
    const char *call;
    int status;
    const char *reason;
} oom_exception;

/* Special "status" of an exception: the process exited inside a library below libscore. */
#define OOM_EXIT_IN_LIBGOMP 1000

/* Statuses other than NOMEM that the API documents for an allocation failure. Keep short;
 * every entry needs a reason. */
static const oom_exception allowed_other[] = {
    {NULL, 0, NULL},
};

/* Known defects that are being fixed elsewhere: each occurrence is printed under
 * "PENDING OOM FIXES" and does not fail the test. When the fixes are in, this list must be
 * emptied (leave only the {NULL, 0, NULL} terminator) so that any such failure fails again. */
static const oom_exception pending_oom_fixes[] = {
    {NULL, 0, NULL},
};

/* ==== 2. the allocator interposer ========================================================== */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static char *(*real_strdup)(const char *);
static char *(*real_strndup)(const char *, size_t);

/* dlsym() may allocate while the real functions are being looked up: those requests are
 * served from this buffer and never freed. */
static _Alignas(64) unsigned char boot_buf[1 << 16];
static size_t boot_used;
static int resolving;

static _Thread_local int on_main_thread;

/* Counting state (main thread only). */
static int armed;          /* a library call of the program is running */
static long countdown;     /* fail the allocation when this reaches 0; < 0: never */
static long n_allocs;      /* allocations counted while armed */
static int fired;          /* the injected failure happened during the current call */
static int tracking;       /* record live blocks */

/* Shared with the parent (MAP_SHARED page): what the child did. */
typedef struct {
    int fired;                /* a failure was injected */
    int finished;             /* the program reached its end and the checks ran */
    int verdict;              /* 0 ok, 1 failure, 2 pending (known defect) */
    int n_frames;             /* backtrace of the failed allocation */
    void *frames[24];
    char call[96];            /* label of the call that was running when the failure fired */
    char msg[600];
    long n_allocs;
    long absorbed;            /* calls that returned SCORE_OK despite the failure */
} child_report;
static child_report *report, *reports;
#define MAX_JOBS 8

static void *boot_alloc(size_t n)
{
    size_t off = (boot_used + 63) & ~(size_t)63;
    if (off + n > sizeof boot_buf)
        return NULL;
    boot_used = off + n;
    memset(boot_buf + off, 0, n);
    return boot_buf + off;
}

static int is_boot(const void *p)
{
    return (const unsigned char *)p >= boot_buf && (const unsigned char *)p < boot_buf + sizeof boot_buf;
}

static void resolve(void)
{
    if (real_free != NULL || resolving)
        return;
    resolving = 1;
    *(void **)&real_malloc = dlsym(RTLD_NEXT, "malloc");
    *(void **)&real_calloc = dlsym(RTLD_NEXT, "calloc");
    *(void **)&real_realloc = dlsym(RTLD_NEXT, "realloc");
    *(void **)&real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    *(void **)&real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    *(void **)&real_memalign = dlsym(RTLD_NEXT, "memalign");
    *(void **)&real_strdup = dlsym(RTLD_NEXT, "strdup");
    *(void **)&real_strndup = dlsym(RTLD_NEXT, "strndup");
    *(void **)&real_free = dlsym(RTLD_NEXT, "free");
    resolving = 0;
}

/* ---- set of live blocks (open addressing; main thread only) ---- */
#define LIVE_CAP (1u << 17)
#define TOMB ((void *)1)
static void *live[LIVE_CAP];
static size_t live_size[LIVE_CAP];
static const void *live_site[LIVE_CAP];
static long live_count;
static int live_overflow;

static size_t live_hash(const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (size_t)h & (LIVE_CAP - 1);
}

static void live_add(void *p, size_t n, const void *site)
{
    size_t i = live_hash(p);
    if (live_count >= (long)(LIVE_CAP / 2)) {
        live_overflow = 1;
        return;
    }
    while (live[i] != NULL && live[i] != TOMB)
        i = (i + 1) & (LIVE_CAP - 1);
    live[i] = p;
    live_size[i] = n;
    live_site[i] = site;
    live_count++;
}

static void live_remove(void *p)
{
    size_t i = live_hash(p);
    while (live[i] != NULL) {
        if (live[i] == p) {
            live[i] = TOMB;
            live_count--;
            return;
        }
        i = (i + 1) & (LIVE_CAP - 1);
    }
}

static void record_fire(void)
{
    fired = 1;
    if (report != NULL) {
        report->fired = 1;
        report->n_frames = backtrace(report->frames, 24);
    }
}

/* Decides whether this allocation fails. */
static int inject(void)
{
    if (!armed || !on_main_thread)
        return 0;
    n_allocs++;
    if (countdown > 0 && --countdown == 0) {
        record_fire();
        return 1;
    }
    return 0;
}

/* The OpenMP run-time keeps the team of a thread's last parallel region for reuse (it is
 * freed when the thread ends): blocks that libgomp allocates for itself are not tracked. */
static uintptr_t gomp_lo, gomp_hi;

static int find_gomp(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (info->dlpi_name != NULL && strstr(info->dlpi_name, "libgomp") != NULL) {
        for (int i = 0; i < info->dlpi_phnum; i++) {
            const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
            if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
                gomp_lo = info->dlpi_addr + ph->p_vaddr;
                gomp_hi = gomp_lo + ph->p_memsz;
            }
        }
    }
    return 0;
}

static void *track_at(void *p, size_t n, const void *caller)
{
    uintptr_t c = (uintptr_t)caller;
    if (p != NULL && tracking && on_main_thread && !(c >= gomp_lo && c < gomp_hi))
        live_add(p, n, caller);
    return p;
}
#define track(p, n) track_at((p), (n), __builtin_return_address(0))

void *malloc(size_t n)
{
    resolve();
    if (real_malloc == NULL)
        return boot_alloc(n);
    if (inject()) {
        errno = ENOMEM;
        return NULL;
    }
    return track(real_malloc(n), n);
}

void *calloc(size_t n, size_t size)
{
    resolve();
    if (real_calloc == NULL)
        return (size != 0 && n > SIZE_MAX / size) ? NULL : boot_alloc(n * size);
    if (inject()) {
        errno = ENOMEM;
        return NULL;
    }
    return track(real_calloc(n, size), n * size);
}

void *realloc(void *p, size_t n)
{
    void *q;
    resolve();
    if (is_boot(p)) { /* only during start-up: copy out of the boot buffer */
        q = malloc(n);
        if (q != NULL)
            memcpy(q, p, n); /* the old block is at least as large as any later request */
        return q;
    }
    if (real_realloc == NULL)
        return boot_alloc(n);
    if (inject()) {
        errno = ENOMEM;
        return NULL;
    }
    q = real_realloc(p, n);
    if (q != NULL && p != NULL && tracking && on_main_thread)
        live_remove(p);
    return track(q, n);
}

void free(void *p)
{
    if (p == NULL || is_boot(p))
        return;
    resolve();
    if (tracking && on_main_thread)
        live_remove(p);
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    int rc;
    resolve();
    if (inject())
        return ENOMEM;
    rc = real_posix_memalign(out, align, n);
    if (rc == 0)
        track(*out, n);
    return rc;
}

void *aligned_alloc(size_t align, size_t n)
{
    resolve();
    if (inject()) {
        errno = ENOMEM;
        return NULL;
    }
    return track(real_aligned_alloc(align, n), n);
}

void *memalign(size_t align, size_t n); /* <malloc.h> */
void *memalign(size_t align, size_t n)
{
    resolve();
    if (inject()) {
        errno = ENOMEM;
        return NULL;
    }
    return track(real_memalign(align, n), n);
}

char *strdup(const char *s)
{
    resolve();
    if (inject()) {
        errno = ENOMEM;
        return NULL;
    }
    return track(real_strdup(s), strlen(s) + 1);
}

char *strndup(const char *s, size_t n)
{
    resolve();
    if (inject()) {
        errno = ENOMEM;
        return NULL;
    }
    return track(real_strndup(s, n), n + 1);
}

/* The interposer hides from LeakSanitizer that the dynamic linker made an allocation (which
 * it would otherwise ignore): blocks that ld.so keeps for a library loaded at run time. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:rtld-malloc.h\n";
}

/* Sanitizer build: a small quarantine keeps the parent small, so that fork() stays cheap. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=16";
}

/* ==== 3. checking one call ================================================================= */

static int reference_run;    /* 1 in the reference run: record instead of compare */
#define MAX_RESULTS 512
static uint64_t ref_hash[MAX_RESULTS];
static size_t n_ref, i_result;
static int verbose;

static void fail_msg(int verdict, const char *call, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_msg(int verdict, const char *call, const char *fmt, ...)
{
    va_list ap;
    if (report->verdict == 1)
        return; /* keep the first failure */
    report->verdict = verdict;
    snprintf(report->call, sizeof report->call, "%s", call);
    va_start(ap, fmt);
    vsnprintf(report->msg, sizeof report->msg, fmt, ap);
    va_end(ap);
}

static const oom_exception *find_exception(const oom_exception *list, const char *call, int status)
{
    for (; list->call != NULL; list++)
        if (list->status == status && strncmp(call, list->call, strlen(list->call)) == 0)
            return list;
    return NULL;
}

static void arm(const char *call)
{
    snprintf(report->call, sizeof report->call, "%s", call);
    fired = 0;
    armed = 1;
}

/* Returns 1 when the program must stop (an error was returned), 0 to go on. */
static long map_first = -1; /* -v: the allocations of each call in the reference run */

static int check_call(const char *call, int rc)
{
    armed = 0;
    if (verbose && reference_run && map_first >= 0) {
        if (n_allocs > map_first)
            printf("  N = %ld .. %ld: %s\n", map_first + 1, n_allocs, call);
        map_first = n_allocs;
    }
    if (fired) {
        snprintf(report->call, sizeof report->call, "%s", call);
        if (rc >= 0) { /* SCORE_OK or an informational status: the library did without it */
            report->absorbed++;
            return 0;
        }
        if (rc == SCORE_E_NOMEM)
            return 1;
        if (find_exception(allowed_other, call, rc) != NULL)
            return 1;
        if (find_exception(pending_oom_fixes, call, rc) != NULL) {
            fail_msg(2, call, "%s (%s)", score_status_name(rc), score_last_error_message());
            return 1;
        }
        fail_msg(1, call, "the allocation failed and the call returned %s (%s), not SCORE_E_NOMEM",
                 score_status_name(rc), score_last_error_message());
        return 1;
    }
    if (rc == SCORE_OK || rc == SCORE_DONE)
        return 0;
    fail_msg(1, call, "returned %s (%s) with no allocation failure", score_status_name(rc),
             score_last_error_message());
    return 1;
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* A result of a call that returned SCORE_OK: the same bytes as in the reference run. */
static int check_result(const char *what, const void *p, size_t n)
{
    uint64_t h = hash_bytes(p, n);
    if (reference_run) {
        if (n_ref >= MAX_RESULTS)
            return 0;
        ref_hash[n_ref++] = h;
        return 0;
    }
    if (i_result >= n_ref || ref_hash[i_result] != h) {
        fail_msg(1, what, "SCORE_OK with a result different from the reference run (result #%zu)",
                 i_result);
        i_result++;
        return 1;
    }
    i_result++;
    return 0;
}

/* CALL: a library call with a status. NEW: a constructor; its handle must be NULL on failure. */
#define CALL(label, expr)                                                                    \
    do {                                                                                     \
        int rc_;                                                                             \
        arm(label);                                                                          \
        rc_ = (expr);                                                                        \
        if (check_call(label, rc_))                                                          \
            goto done;                                                                       \
    } while (0)
#define NEW(label, handle, expr)                                                             \
    do {                                                                                     \
        int rc_;                                                                             \
        arm(label);                                                                          \
        rc_ = (expr);                                                                        \
        if ((rc_ != SCORE_OK) != ((handle) == NULL)) {                                       \
            armed = 0;                                                                       \
            fail_msg(1, label, "returned %s with its output handle %s", score_status_name(rc_), \
                     (handle) == NULL ? "NULL" : "set");                                     \
            goto done;                                                                       \
        }                                                                                    \
        if (check_call(label, rc_))                                                          \
            goto done;                                                                       \
    } while (0)
#define RESULT(what, p, n)                                                                   \
    do {                                                                                     \
        if (check_result(what, p, n))                                                        \
            goto done;                                                                       \
    } while (0)

/* ==== 4. the program ====================================================================== */

enum { DIM = 2, N_DATA = 64, N_SAMPLE = 6 };

static char file_model[256], file_ckpt[256];

static int cb_model(size_t n, size_t dim, const float *x, const double *c, float *out, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            out[i * dim + j] = (float)(-x[i * dim + j] / (1.0 + c[i] * c[i]));
    return 0;
}

/* Runs the whole program; the outcome is in *report. */
static void program(void)
{
    static float data[N_DATA * DIM], xs[N_SAMPLE * DIM], out[N_SAMPLE * DIM];
    static double logp[N_SAMPLE], bpd[N_SAMPLE], grid[8];
    double loss_v, t1[N_SAMPLE];
    double weights[8], means[8 * DIM], vars[8 * DIM];
    double gmean[DIM] = {0.5, -0.25}, gcov[DIM * DIM] = {1.0, 0.3, 0.3, 0.5};
    double user_sigmas[4] = {0.01, 0.1, 1.0, 10.0}, user_betas[4] = {1e-3, 0.01, 0.05, 0.1};
    size_t k_mix = 0, np = 0, len = 0, len2 = 0;
    uint64_t step_count = 0;
    float *params = NULL, *grad = NULL;
    void *buf = NULL, *buf2 = NULL;
    score_rng *rng = NULL, *rng2 = NULL;
    score_schedule *sch[9] = {NULL}, *sch_clone = NULL, *vp = NULL;
    score_model *mlp = NULL, *mlp2 = NULL, *gauss = NULL, *gmm = NULL, *cb = NULL, *sum = NULL,
                *cfg = NULL, *loaded = NULL, *loaded_file = NULL, *ckpt_model = NULL,
                *gmm_loaded = NULL;
    score_model *ema_model = NULL; /* owned by the trainer */
    score_sde *sde = NULL, *sde_ncsn = NULL, *sde_ddpm = NULL, *sde_gauss = NULL, *sde_cfg = NULL;
    score_loss *loss[7] = {NULL};
    score_optimizer *opt = NULL;
    score_ema *ema = NULL;
    score_trainer *tr = NULL, *tr2 = NULL;
    score_step *step = NULL, *step_fixed = NULL;
    score_control *ctl = NULL;
    score_evolve *ev = NULL;
    score_sampler *smp[3] = {NULL};
    score_likelihood *lk = NULL;
    score_model *members[2];
    const char *value = NULL;

    /* generators and data */
    NEW("score_rng_new", rng, score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 11));
    NEW("score_rng_clone", rng2, score_rng_clone(&rng2, rng));
    CALL("score_dataset_toy", score_dataset_toy("ring8", rng, N_DATA, data));
    RESULT("score_dataset_toy", data, sizeof data);
    CALL("score_dataset_toy_mixture",
         score_dataset_toy_mixture("ring8", 8, &k_mix, weights, means, vars));

    /* schedules of every kind */
    for (int kind = SCORE_SCHEDULE_VE; kind <= SCORE_SCHEDULE_BETAS; kind++) {
        NEW("score_schedule_new", sch[kind - 1], score_schedule_new(&sch[kind - 1], kind));
        if (kind == SCORE_SCHEDULE_SIGMAS)
            CALL("score_schedule_set_array", score_schedule_set_array(sch[kind - 1], 4, user_sigmas));
        else if (kind == SCORE_SCHEDULE_BETAS)
            CALL("score_schedule_set_array", score_schedule_set_array(sch[kind - 1], 4, user_betas));
        else if (kind >= SCORE_SCHEDULE_NCSN)
            CALL("score_schedule_set_i64",
                 score_schedule_set_i64(sch[kind - 1], SCORE_SCHEDULE_PARAM_NUM_LEVELS, 10));
        CALL("score_schedule_prepare", score_schedule_prepare(sch[kind - 1]));
        CALL("score_schedule_time_grid",
             score_schedule_time_grid(sch[kind - 1], SCORE_GRID_UNIFORM_T, 4, 0, grid));
        RESULT("score_schedule_time_grid", grid, 4 * sizeof(double));
    }
    NEW("score_schedule_clone", sch_clone, score_schedule_clone(&sch_clone, sch[0]));
    NEW("score_schedule_new_preset", vp, score_schedule_new_preset(&vp, "vp"));

    /* models */
    NEW("score_model_new_mlp", mlp, score_model_new_mlp(&mlp, DIM, 8, 1, SCORE_ACT_SILU, 3));
    CALL("score_model_set_i64", score_model_set_i64(mlp, SCORE_MODEL_PARAM_EMBED_DIM, 4));
    CALL("score_model_set_i64", score_model_set_i64(mlp, SCORE_MODEL_PARAM_THREADS, 1));
    CALL("score_model_prepare", score_model_prepare(mlp));
    CALL("score_model_set_metadata", score_model_set_metadata(mlp, "note", "oom"));
    NEW("score_model_clone", mlp2, score_model_clone(&mlp2, mlp));
    NEW("score_model_new_gaussian", gauss,
        score_model_new_gaussian(&gauss, vp, DIM, gmean, gcov, NULL));
    NEW("score_model_new_gmm", gmm, score_model_new_gmm(&gmm, vp, DIM, k_mix, weights, means, vars));
    NEW("score_model_new_callback", cb, score_model_new_callback(&cb, DIM, cb_model, NULL));
    members[0] = gauss;
    members[1] = cb;
    NEW("score_model_new_sum", sum, score_model_new_sum(&sum, 2, members, NULL));
    NEW("score_model_new_cfg", cfg, score_model_new_cfg(&cfg, gmm, gauss, 0.5));
    {
        double c[N_SAMPLE] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
        CALL("score_model_forward", score_model_forward(mlp, N_SAMPLE, data, c, out));
        RESULT("score_model_forward", out, sizeof out);
        CALL("score_model_forward", score_model_forward(sum, N_SAMPLE, data, c, out));
        RESULT("score_model_forward", out, sizeof out);
    }

    /* sdes */
    NEW("score_sde_new", sde, score_sde_new(&sde, vp, mlp, SCORE_OUTPUT_EPS));
    NEW("score_sde_new", sde_ncsn, score_sde_new(&sde_ncsn, sch[SCORE_SCHEDULE_NCSN - 1], mlp2, SCORE_OUTPUT_SCORE));
    NEW("score_sde_new", sde_ddpm, score_sde_new(&sde_ddpm, sch[SCORE_SCHEDULE_DDPM_LINEAR - 1], mlp2, SCORE_OUTPUT_EPS));
    NEW("score_sde_new", sde_gauss, score_sde_new(&sde_gauss, vp, gauss, SCORE_OUTPUT_SCORE));
    NEW("score_sde_new", sde_cfg, score_sde_new(&sde_cfg, vp, cfg, SCORE_OUTPUT_SCORE));

    /* losses of every kind, one evaluation each */
    np = score_model_param_count(mlp2);
    params = calloc(np, sizeof *params);
    grad = calloc(np, sizeof *grad);
    if (params == NULL || grad == NULL) {
        fail_msg(1, "test", "test buffers");
        goto done;
    }
    for (int kind = SCORE_LOSS_HYVARINEN; kind <= SCORE_LOSS_SDE; kind++) {
        score_sde *s = kind == SCORE_LOSS_NCSN ? sde_ncsn : kind == SCORE_LOSS_DDPM ? sde_ddpm : sde;
        score_loss **L = &loss[kind - 1];
        NEW("score_loss_new", *L, score_loss_new(L, kind));
        if (kind <= SCORE_LOSS_DSM)
            CALL("score_loss_set_f64", score_loss_set_f64(*L, SCORE_LOSS_PARAM_TIME, 0.5));
        CALL("score_loss_compute", score_loss_compute(*L, s, s == sde ? mlp : mlp2, rng, 8, data,
                                                      &loss_v, grad));
        RESULT("score_loss_compute", &loss_v, sizeof loss_v);
        RESULT("score_loss_compute", grad, np * sizeof *grad);
    }

    /* optimizer and EMA on their own */
    CALL("score_model_params_get", score_model_params_get(mlp2, params, np));
    NEW("score_optimizer_new", opt, score_optimizer_new(&opt, SCORE_OPTIMIZER_ADAMW, np));
    CALL("score_optimizer_step", score_optimizer_step(opt, np, params, grad));
    RESULT("score_optimizer_step", params, np * sizeof *params);
    NEW("score_ema_new", ema, score_ema_new(&ema, np, params));
    CALL("score_ema_update", score_ema_update(ema, np, params));

    /* trainer: a few steps, save, resume in a second trainer, checkpointed model */
    NEW("score_trainer_new", tr, score_trainer_new(&tr, mlp, sde, loss[SCORE_LOSS_SDE - 1],
                                                   SCORE_OPTIMIZER_ADAM));
    CALL("score_trainer_set_i64", score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_BATCH_SIZE, 16));
    CALL("score_trainer_set_data", score_trainer_set_data(tr, N_DATA, DIM, data));
    CALL("score_trainer_run", score_trainer_run(tr, 3, NULL, NULL));
    CALL("score_trainer_last_loss", score_trainer_last_loss(tr, &loss_v));
    RESULT("score_trainer_run", &loss_v, sizeof loss_v);
    CALL("score_trainer_save_buffer", score_trainer_save_buffer(tr, &buf, &len));
    RESULT("score_trainer_save_buffer", buf, len);
    CALL("score_trainer_save", score_trainer_save(tr, file_ckpt));
    /* the checkpoint's loss kind and configuration (checked by the load), another model object */
    NEW("score_trainer_new", tr2, score_trainer_new(&tr2, mlp2, sde, loss[SCORE_LOSS_SDE - 1],
                                                    SCORE_OPTIMIZER_ADAM));
    CALL("score_trainer_set_i64", score_trainer_set_i64(tr2, SCORE_TRAINER_PARAM_BATCH_SIZE, 16));
    CALL("score_trainer_set_data", score_trainer_set_data(tr2, N_DATA, DIM, data));
    CALL("score_trainer_load", score_trainer_load(tr2, file_ckpt)); /* checks the data */
    CALL("score_trainer_step", score_trainer_step(tr2, &loss_v));
    RESULT("score_trainer_step", &loss_v, sizeof loss_v);
    CALL("score_trainer_get_step", score_trainer_get_step(tr2, &step_count));
    RESULT("score_trainer_get_step", &step_count, sizeof step_count);
    CALL("score_trainer_ema_model", score_trainer_ema_model(tr, &ema_model));
    NEW("score_trainer_checkpoint_model", ckpt_model,
        score_trainer_checkpoint_model(&ckpt_model, file_ckpt, 0));

    /* models: save to a buffer and a file, load back */
    score_free(buf);
    buf = NULL;
    CALL("score_model_save_buffer", score_model_save_buffer(mlp, &buf, &len));
    RESULT("score_model_save_buffer", buf, len);
    NEW("score_model_load_buffer", loaded, score_model_load_buffer(&loaded, buf, len));
    CALL("score_model_get_metadata", score_model_get_metadata(loaded, "note", &value));
    CALL("score_model_save", score_model_save(mlp, file_model));
    NEW("score_model_load", loaded_file, score_model_load(&loaded_file, file_model));
    CALL("score_model_save_buffer", score_model_save_buffer(loaded_file, &buf2, &len2));
    if (len2 != len || memcmp(buf, buf2, len) != 0) {
        fail_msg(1, "score_model_load", "the loaded model saves different bytes");
        goto done;
    }
    score_free(buf);
    buf = NULL;
    CALL("score_model_save_buffer", score_model_save_buffer(gauss, &buf, &len));
    score_free(buf);
    buf = NULL;
    CALL("score_model_save_buffer", score_model_save_buffer(gmm, &buf, &len));
    NEW("score_model_load_buffer", gmm_loaded, score_model_load_buffer(&gmm_loaded, buf, len));

    /* step / control / evolve */
    NEW("score_step_new", step, score_step_new(&step, score_step_type_get(SCORE_STEP_DPM_SOLVER_12), DIM));
    NEW("score_step_new", step_fixed, score_step_new(&step_fixed, score_step_type_get(SCORE_STEP_HEUN), DIM));
    NEW("score_control_new_tol", ctl, score_control_new_tol(&ctl, 1e-3, 1e-3));
    NEW("score_evolve_new", ev, score_evolve_new(&ev, DIM));
    CALL("score_rng_fill_normal", score_rng_fill_normal(rng, 0, N_SAMPLE, 0, DIM, xs));
    CALL("score_evolve_init", score_evolve_init(ev, 1.0, 0.0, N_SAMPLE));
    for (int it = 0; it < 200; it++) {
        int rc;
        arm("score_evolve_apply");
        rc = score_evolve_apply(ev, ctl, step, sde_gauss, 0.05, N_SAMPLE, xs, NULL);
        if (check_call("score_evolve_apply", rc))
            goto done;
        if (rc == SCORE_DONE)
            break;
    }
    RESULT("score_evolve_apply", xs, sizeof xs);
    CALL("score_evolve_get_t", score_evolve_get_t(ev, N_SAMPLE, t1));
    CALL("score_evolve_apply_fixed", score_evolve_apply_fixed(ev, step_fixed, sde_gauss, 0.0, N_SAMPLE, xs, NULL));
    RESULT("score_evolve_apply_fixed", xs, sizeof xs);
    CALL("score_step_apply", score_step_apply(step_fixed, sde, 0.5, 0.4, N_SAMPLE, xs, NULL, rng, 0));
    RESULT("score_step_apply", xs, sizeof xs);

    /* samplers */
    NEW("score_sampler_new_preset", smp[0], score_sampler_new_preset(&smp[0], SCORE_SAMPLER_PRESET_ODE, DIM));
    NEW("score_sampler_new_preset", smp[1], score_sampler_new_preset(&smp[1], SCORE_SAMPLER_PRESET_DPMPP_2M, DIM));
    NEW("score_sampler_new", smp[2], score_sampler_new(&smp[2], score_step_type_get(SCORE_STEP_EULER_MARUYAMA),
                                                       score_step_type_get(SCORE_STEP_LANGEVIN), DIM));
    CALL("score_sampler_set_i64", score_sampler_set_i64(smp[1], SCORE_SAMPLER_PARAM_NUM_STEPS, 5));
    CALL("score_sampler_set_i64", score_sampler_set_i64(smp[2], SCORE_SAMPLER_PARAM_NUM_STEPS, 5));
    CALL("score_sampler_run", score_sampler_run(smp[0], sde_gauss, N_SAMPLE, NULL, xs, rng, NULL, NULL));
    RESULT("score_sampler_run", xs, sizeof xs);
    CALL("score_sampler_run", score_sampler_run(smp[1], sde, N_SAMPLE, NULL, xs, rng, NULL, NULL));
    RESULT("score_sampler_run", xs, sizeof xs);
    CALL("score_sampler_run", score_sampler_run(smp[2], sde_cfg, N_SAMPLE, NULL, xs, rng, NULL, NULL));
    RESULT("score_sampler_run", xs, sizeof xs);

    /* likelihood */
    NEW("score_likelihood_new", lk, score_likelihood_new(&lk, DIM));
    CALL("score_likelihood_logp", score_likelihood_logp(lk, sde_gauss, N_SAMPLE, data, logp, bpd, rng));
    RESULT("score_likelihood_logp", logp, sizeof logp);
    CALL("score_likelihood_logp", score_likelihood_logp(lk, sde, 2, data, logp, bpd, rng));
    RESULT("score_likelihood_logp", logp, 2 * sizeof *logp);

    report->finished = 1;
done:
    armed = 0;
    score_free(buf);
    score_free(buf2);
    free(params);
    free(grad);
    score_likelihood_free(lk);
    for (int i = 0; i < 3; i++)
        score_sampler_free(smp[i]);
    score_evolve_free(ev);
    score_control_free(ctl);
    score_step_free(step_fixed);
    score_step_free(step);
    score_trainer_free(tr2);
    score_trainer_free(tr);
    score_ema_free(ema);
    score_optimizer_free(opt);
    for (int i = 0; i < 7; i++)
        score_loss_free(loss[i]);
    score_sde_free(sde_cfg);
    score_sde_free(sde_gauss);
    score_sde_free(sde_ddpm);
    score_sde_free(sde_ncsn);
    score_sde_free(sde);
    score_model_free(gmm_loaded);
    score_model_free(ckpt_model);
    score_model_free(loaded_file);
    score_model_free(loaded);
    score_model_free(cfg);
    score_model_free(sum);
    score_model_free(cb);
    score_model_free(gmm);
    score_model_free(gauss);
    score_model_free(mlp2);
    score_model_free(mlp);
    score_schedule_free(vp);
    score_schedule_free(sch_clone);
    for (int i = 0; i < 9; i++)
        score_schedule_free(sch[i]);
    score_rng_free(rng2);
    score_rng_free(rng);
}

/* Runs the program with the given countdown (0 = no failure) and checks for leaks. */
static void run_program(long n)
{
    memset(report, 0, sizeof *report);
    countdown = n > 0 ? n : -1;
    n_allocs = 0;
    i_result = 0;
    tracking = 1;
    program();
    tracking = 0;
    report->n_allocs = n_allocs;
    if (report->verdict != 1 && (live_count != 0 || live_overflow)) {
        long shown = 0;
        char *m = report->msg;
        size_t room = sizeof report->msg;
        report->verdict = 1;
        snprintf(report->call, sizeof report->call, "%s", report->call[0] ? report->call : "(end)");
        int k = snprintf(m, room, "leak: %ld block(s) still allocated at the end:", live_count);
        for (size_t i = 0; i < LIVE_CAP && shown < 4 && k > 0 && (size_t)k < room; i++)
            if (live[i] != NULL && live[i] != TOMB) {
                Dl_info di;
                const char *sym = dladdr(live_site[i], &di) && di.dli_sname ? di.dli_sname : "?";
                k += snprintf(m + k, room - (size_t)k, " %zu bytes allocated from %s (%p);",
                              live_size[i], sym, live_site[i]);
                shown++;
            }
    }
}

/* ==== 5. driver ============================================================================ */

static void print_frames(const child_report *r)
{
    if (r->n_frames > 0) {
        fprintf(stderr, "  failed allocation made at:\n");
        fflush(stderr);
        backtrace_symbols_fd((void *const *)r->frames, r->n_frames, 2);
    }
}

/* The library of the failed allocation's caller (frame 1: the function that called malloc). */
static const char *alloc_site_lib(const child_report *r)
{
    Dl_info info;
    for (int i = 1; i < r->n_frames; i++) {
        if (dladdr(r->frames[i], &info) && info.dli_fname != NULL) {
            const char *b = strrchr(info.dli_fname, '/');
            b = b ? b + 1 : info.dli_fname;
            if (strstr(b, "test-oom") != NULL || strncmp(b, "libasan", 7) == 0)
                continue; /* the interposer and the sanitizer's interceptors */
            return b;
        }
    }
    return "?";
}

int main(int argc, char **argv)
{
    int jobs = 2;
    long only = 0, stride = 1, n, last_n = 0, n_total, n_runs = 0, n_nomem_ok = 0, n_pending = 0, n_fail = 0,
         n_absorbed = 0;
    const char *env;
    char tmpl[64];
    struct timespec t0, t1;

    on_main_thread = 1;
    env = getenv("LD_PRELOAD");
    if (env != NULL && strstr(env, "vgpreload") != NULL) {
        printf("skipped: under valgrind (which replaces the allocator this test interposes)\n");
        return 77;
    }
    /* one BLAS / OpenMP thread: the allocation order must not depend on thread timing */
    if (getenv("OPENBLAS_NUM_THREADS") == NULL || getenv("OMP_NUM_THREADS") == NULL) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        setenv("OMP_NUM_THREADS", "1", 1);
        execv("/proc/self/exe", argv);
        perror("execv");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else
            only = atol(argv[i]);
    }
    env = getenv("SCORE_OOM_JOBS");
    if (env != NULL && atoi(env) >= 1)
        jobs = atoi(env) < MAX_JOBS ? atoi(env) : MAX_JOBS;
    env = getenv("SCORE_OOM_STRIDE");
    if (env != NULL && atol(env) > 1)
        stride = atol(env);
    setvbuf(stdout, NULL, _IOLBF, 0);

    reports = mmap(NULL, MAX_JOBS * sizeof *reports, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (reports == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    /* files in memory where possible: the library fsyncs what it saves, thousands of times here */
    snprintf(tmpl, sizeof tmpl, "%s/score-oom-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (mkdtemp(tmpl) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    report = &reports[0];
    snprintf(file_model, sizeof file_model, "%s/model.safetensors", tmpl);
    snprintf(file_ckpt, sizeof file_ckpt, "%s/ckpt.safetensors", tmpl);
    {
        /* the allocations must reach the allocator of the sanitizer when there is one: with a
         * statically linked sanitizer run-time (clang's default) the next malloc is libc's */
        Dl_info di;
        void *asan = dlsym(RTLD_DEFAULT, "__asan_init");
        resolve();
        if (asan != NULL && dladdr(*(void **)&real_malloc, &di) && di.dli_fname != NULL &&
            strstr(di.dli_fname, "libasan") == NULL) {
            printf("skipped: the sanitizer run-time is linked statically (use gcc's shared one)\n");
            return 77;
        }
    }
    dl_iterate_phdr(find_gomp, NULL);
    {
        void *warm[4];
        (void)backtrace(warm, 4); /* loads the unwinder before any failure is injected */
    }

    /* a warm-up run: the libraries below keep blocks they allocate at first use (the BLAS
     * buffers, the OpenMP team of the thread); then the reference run */
    reference_run = 1;
    run_program(0);
    if (report->verdict != 0 && strncmp(report->msg, "leak", 4) != 0) {
        fprintf(stderr, "warm-up run failed in %s: %s\n", report->call, report->msg);
        return 1;
    }
    n_ref = 0;
    map_first = 0;
    if (verbose)
        printf("allocations of each call (reference run):\n");
    run_program(0);
    map_first = -1;
    reference_run = 0;
    if (report->verdict != 0 || !report->finished) {
        fprintf(stderr, "reference run failed in %s: %s\n", report->call, report->msg);
        return 1;
    }
    n_total = report->n_allocs;
    printf("reference run: %ld allocations inside library calls, %zu results recorded\n", n_total,
           n_ref);
    /* the second run must count the same allocations (nothing lazily allocated once) */
    run_program(0);
    if (report->verdict != 0 || report->n_allocs != n_total) {
        fprintf(stderr, "second run differs: %ld allocations (first %ld), %s: %s\n",
                report->n_allocs, n_total, report->call, report->msg);
        return 1;
    }
    if (stride > 1)
        printf("testing every %ld-th N only (SCORE_OOM_STRIDE)\n", stride);
    printf("PENDING OOM FIXES (known, not failures):\n");
    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (n = only > 0 ? only : 1;;) {
        struct job {
            long n;
            pid_t pid;
            int fd;
        } job[MAX_JOBS];
        int n_jobs = only > 0 ? 1 : jobs, stop = 0;
        for (int j = 0; j < n_jobs; j++) {
            int pfd[2];
            if (pipe(pfd) != 0) {
                perror("pipe");
                return 1;
            }
            job[j].n = n + (long)j * stride;
            memset(&reports[j], 0, sizeof reports[j]);
            fflush(NULL);
            job[j].pid = fork();
            if (job[j].pid < 0) {
                perror("fork");
                return 1;
            }
            if (job[j].pid == 0) {
                close(pfd[0]);
                dup2(pfd[1], 2);
                report = &reports[j];
                snprintf(file_model, sizeof file_model, "%s/model-%d.safetensors", tmpl, j);
                snprintf(file_ckpt, sizeof file_ckpt, "%s/ckpt-%d.safetensors", tmpl, j);
                run_program(job[j].n);
                _exit(0); /* no atexit handlers: the leak check above is the child's */
            }
            close(pfd[1]);
            job[j].fd = pfd[0];
        }
        for (int j = 0; j < n_jobs; j++) {
            const child_report *r = &reports[j];
            char errbuf[16384];
            size_t errlen = 0;
            ssize_t got;
            int wstatus, crashed, pending = 0;
            while ((got = read(job[j].fd, errbuf + errlen, sizeof errbuf - 1 - errlen)) > 0 ||
                   (got < 0 && errno == EINTR))
                if (got > 0) {
                    errlen += (size_t)got;
                    if (errlen >= sizeof errbuf - 1) { /* drain the rest */
                        char sink[4096];
                        while (read(job[j].fd, sink, sizeof sink) > 0)
                            ;
                        break;
                    }
                }
            errbuf[errlen] = '\0';
            close(job[j].fd);
            while (waitpid(job[j].pid, &wstatus, 0) < 0 && errno == EINTR)
                ;
            if (stop)
                continue; /* a run past the end */
            n_runs++;
            last_n = job[j].n;
            crashed = !(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
            if (crashed && r->fired && strstr(alloc_site_lib(r), "libgomp") != NULL &&
                find_exception(pending_oom_fixes, r->call, OOM_EXIT_IN_LIBGOMP) != NULL)
                pending = 1;
            if (crashed && !pending) {
                n_fail++;
                fprintf(stderr, "FAIL N=%ld: the child %s %d during %s\n%s", job[j].n,
                        WIFSIGNALED(wstatus) ? "died of signal" : "exited with status",
                        WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus),
                        r->call[0] ? r->call : "?", errbuf);
                print_frames(r);
            } else if (pending) {
                n_pending++;
                printf("  N=%ld %s: the process exited in %s (libgomp exits when a parallel region "
                       "cannot allocate)\n", job[j].n, r->call, alloc_site_lib(r));
            } else if (r->verdict == 1 || errlen > 0) {
                n_fail++;
                fprintf(stderr, "FAIL N=%ld in %s: %s\n%s", job[j].n, r->call, r->msg, errbuf);
                if (r->fired)
                    fprintf(stderr, "  (the failed allocation was made by %s)\n", alloc_site_lib(r));
                print_frames(r);
            } else if (r->verdict == 2) {
                n_pending++;
                printf("  N=%ld %s: %s [allocation in %s]\n", job[j].n, r->call, r->msg,
                       alloc_site_lib(r));
            } else if (r->fired) {
                n_nomem_ok++;
            }
            n_absorbed += r->absorbed;
            if (verbose)
                printf("N=%ld: %s%s%s\n", job[j].n,
                       r->fired ? "failure injected in " : "no failure injected",
                       r->fired ? r->call : "", r->absorbed ? " (absorbed: SCORE_OK)" : "");
            if (verbose && r->absorbed)
                print_frames(r);
            if (!r->fired)
                stop = 1; /* the program completed: every N has been tested */
        }
        if (only > 0 || stop)
            break;
        if (n_fail >= 20) {
            fprintf(stderr, "stopping after 20 failures\n");
            break;
        }
        n += (long)n_jobs * stride;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%ld runs (N = %ld .. %ld, stride %ld) in %.1f s: %ld clean SCORE_E_NOMEM stops, %ld calls "
           "absorbed a failure and returned SCORE_OK with the reference result, %ld pending "
           "(known), %ld failures\n",
           n_runs, only > 0 ? only : 1, last_n, stride, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
           n_nomem_ok, n_absorbed, n_pending, n_fail);
    unlink(file_model);
    unlink(file_ckpt);
    rmdir(tmpl);
    return n_fail == 0 ? 0 : 1;
}
