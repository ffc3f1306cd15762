/* A class-conditional image score model: a U-Net trained on 8x8 digit images with label
 * dropout, then sampled per class with classifier-free guidance.
 *
 * With --data / --labels it trains on a data set (tools/unet-digits.py writes scikit-learn's
 * 8x8 digits in this form and runs the full configuration, then labels the samples with an
 * independent classifier). Without them it runs a seconds-long configuration on built-in
 * 8x8 patterns (ten classes: a bar at one of five positions, horizontal or vertical) and
 * checks what must hold whatever the length of the run: the training loss goes down, and the
 * samples are the same bits at 1 and 2 model threads.
 *
 *   example-unet-digits [--data FILE.f32 --labels FILE.i32] [--steps N] [--base W]
 *                       [--blocks K] [--batch B] [--threads T] [--lr LR] [--guidance W]
 *                       [--sample-steps S] [--per-class K] [--out FILE.f32]
 *                       [--save-params FILE] [--load-params FILE]
 *
 * FILE.f32: n images of 64 float32 values in [-1, 1] (row-major 8 x 8), native byte order;
 * FILE.i32: their n int32 labels in 0 .. 9. --save-params FILE writes the trained (averaged)
 * weights as float32, --load-params FILE samples from such weights without training (same
 * --base and --blocks). --out writes 10 * K samples (class 0 first, K per
 * class) in the same form. Prints the parameter count, the loss, the training time (wall and
 * process CPU seconds) and the sampling time. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libscore/libscore.h>

#define CLASSES 10
#define D 64

#define CHECK(call)                                                                          \
    do {                                                                                     \
        int rc_ = (call);                                                                    \
        if (rc_ != SCORE_OK) {                                                               \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, score_status_name(rc_),           \
                    score_last_error_message());                                             \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

typedef struct config {
    const char *data, *labels, *out, *save, *load;
    size_t steps, base, blocks, batch, sample_steps, per_class;
    int64_t threads;
    double lr, guidance;
} config;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads a whole binary file of elements of `size` bytes; returns the element count. */
static size_t read_file(const char *path, size_t size, void **out)
{
    FILE *f = fopen(path, "rb");
    long len;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) <= 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (size_t)len % size != 0) {
        fprintf(stderr, "cannot read %s (or its length is not a multiple of %zu)\n", path, size);
        exit(1);
    }
    *out = malloc((size_t)len);
    if (*out == NULL || fread(*out, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    return (size_t)len / size;
}

/* The built-in data: class k < 5 a horizontal bar on rows 1 + k .. 2 + k, class k >= 5 a
 * vertical one on columns k - 4 .. k - 3, value 1 on the bar and -1 elsewhere, plus a small
 * per-image brightness offset so that images of a class differ. */
static size_t builtin_data(float **x, int32_t **y)
{
    const size_t per = 32, n = per * CLASSES;
    *x = malloc(n * D * sizeof **x);
    *y = malloc(n * sizeof **y);
    if (*x == NULL || *y == NULL)
        exit(1);
    for (size_t i = 0; i < n; i++) {
        int32_t k = (int32_t)(i % CLASSES);
        float off = 0.1f * (float)((i / CLASSES) % 5) - 0.2f;
        (*y)[i] = k;
        for (size_t r = 0; r < 8; r++)
            for (size_t c = 0; c < 8; c++) {
                size_t at = k < 5 ? r : c, lo = k < 5 ? (size_t)k + 1 : (size_t)k - 4;
                float v = at == lo || at == lo + 1 ? 1.0f : -1.0f;
                (*x)[i * D + r * 8 + c] = v + (v < 0.0f ? off : 0.0f);
            }
    }
    return n;
}

static score_model *new_unet(const config *cf)
{
    score_model *m;
    const size_t full[3] = {1, 2, 2}, quick[2] = {1, 2};
    int small = cf->base < 16;
    CHECK(score_model_new_unet(&m, 1, 8, 8));
    CHECK(score_model_set_unet_widths(m, small ? 2 : 3, small ? quick : full));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BASE_WIDTH, (int64_t)cf->base));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS, (int64_t)cf->blocks));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS, small ? 4 : 8));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, CLASSES));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 1));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, cf->threads));
    CHECK(score_model_prepare(m));
    return m;
}

/* The loss of every step, recorded by the progress callback. */
typedef struct losses {
    double *v;
    size_t n;
} losses;

static int on_step(size_t step, size_t total, double loss, double lr, void *user)
{
    losses *l = user;
    (void)lr;
    l->v[l->n++] = loss;
    if (step % 250 == 0 && total >= 1000) {
        printf("step %zu / %zu: loss %.4f\n", step, total, loss);
        fflush(stdout);
    }
    return 0;
}

/* Mean of the losses of steps [a, b). */
static double mean_of(const losses *l, size_t a, size_t b)
{
    double s = 0.0;
    for (size_t i = a; i < b; i++)
        s += l->v[i];
    return s / (double)(b - a);
}

/* Samples cf->per_class images of every class from the trained model with guidance. */
static void sample_all(const config *cf, score_model *m, const score_schedule *sched,
                       int64_t threads, float *out)
{
    score_sde *sde;
    score_sampler *s;
    score_rng *rng;
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, threads));
    CHECK(score_sde_new(&sde, sched, m, SCORE_OUTPUT_EPS));
    CHECK(score_sde_set_f64(sde, SCORE_SDE_PARAM_GUIDANCE, cf->guidance));
    CHECK(score_sampler_new_preset(&s, SCORE_SAMPLER_PRESET_DPMPP_2M, D));
    CHECK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, (int64_t)cf->sample_steps));
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 2026));
    for (int32_t k = 0; k < CLASSES; k++) {
        CHECK(score_sde_set_label(sde, k));
        /* rows k * per_class ..: every class its own noise */
        CHECK(score_sampler_run_ex(s, sde, (size_t)k * cf->per_class, cf->per_class, NULL,
                                   out + (size_t)k * cf->per_class * D, rng, NULL, NULL));
    }
    score_rng_free(rng);
    score_sampler_free(s);
    score_sde_free(sde);
}

static void usage(void)
{
    fprintf(stderr, "usage: example-unet-digits [--data FILE.f32 --labels FILE.i32] [--steps N]\n"
                    "       [--base W] [--blocks K] [--batch B] [--threads T] [--lr LR] [--guidance W]\n"
                    "       [--sample-steps S] [--per-class K] [--out FILE.f32]\n"
                    "       [--save-params FILE] [--load-params FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    config cf = {NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 30, 0, 2, 2e-3, 2.0};
    float *x = NULL, *samples, *again;
    int32_t *y = NULL;
    size_t n, np;
    score_model *m, *ema;
    score_schedule *sched;
    score_sde *sde;
    score_loss *loss;
    score_trainer *tr;
    losses rec;
    double w0, c0, wall, cpu;
    int builtin;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        if (strcmp(a, "--data") == 0) cf.data = v;
        else if (strcmp(a, "--labels") == 0) cf.labels = v;
        else if (strcmp(a, "--out") == 0) cf.out = v;
        else if (strcmp(a, "--save-params") == 0) cf.save = v;
        else if (strcmp(a, "--load-params") == 0) cf.load = v;
        else if (strcmp(a, "--steps") == 0) cf.steps = strtoul(v, NULL, 10);
        else if (strcmp(a, "--base") == 0) cf.base = strtoul(v, NULL, 10);
        else if (strcmp(a, "--blocks") == 0) cf.blocks = strtoul(v, NULL, 10);
        else if (strcmp(a, "--batch") == 0) cf.batch = strtoul(v, NULL, 10);
        else if (strcmp(a, "--threads") == 0) cf.threads = strtol(v, NULL, 10);
        else if (strcmp(a, "--lr") == 0) cf.lr = strtod(v, NULL);
        else if (strcmp(a, "--guidance") == 0) cf.guidance = strtod(v, NULL);
        else if (strcmp(a, "--sample-steps") == 0) cf.sample_steps = strtoul(v, NULL, 10);
        else if (strcmp(a, "--per-class") == 0) cf.per_class = strtoul(v, NULL, 10);
        else usage();
        i++;
    }
    builtin = cf.data == NULL;
    if (builtin != (cf.labels == NULL))
        usage();
    /* the built-in run: seconds; the data run: the digits run of doc/unet.md */
    cf.steps = cf.steps ? cf.steps : builtin ? 60 : 1200;
    cf.base = cf.base ? cf.base : builtin ? 8 : 32;
    cf.blocks = cf.blocks ? cf.blocks : 1;
    cf.batch = cf.batch ? cf.batch : builtin ? 32 : 64;
    cf.per_class = cf.per_class ? cf.per_class : builtin ? 2 : 10;
    if (builtin) {
        n = builtin_data(&x, &y);
    } else {
        n = read_file(cf.data, D * sizeof(float), (void **)&x);
        if (read_file(cf.labels, sizeof(int32_t), (void **)&y) != n) {
            fprintf(stderr, "%s and %s hold different numbers of rows\n", cf.data, cf.labels);
            return 1;
        }
    }

    m = new_unet(&cf);
    np = score_model_param_count(m);
    CHECK(score_schedule_new(&sched, SCORE_SCHEDULE_VP));
    CHECK(score_schedule_prepare(sched));
    CHECK(score_sde_new(&sde, sched, m, SCORE_OUTPUT_EPS));
    CHECK(score_loss_new(&loss, SCORE_LOSS_SDE)); /* sigma^2 weighting: the eps MSE */
    CHECK(score_loss_set_f64(loss, SCORE_LOSS_PARAM_T_EPS, 1e-3));
    CHECK(score_trainer_new(&tr, m, sde, loss, SCORE_OPTIMIZER_ADAM));
    score_loss_free(loss);
    CHECK(score_optimizer_set_f64(score_trainer_optimizer(tr), SCORE_OPTIMIZER_PARAM_LR, cf.lr));
    CHECK(score_optimizer_set_i64(score_trainer_optimizer(tr), SCORE_OPTIMIZER_PARAM_WARMUP,
                                  builtin ? 10 : 200));
    CHECK(score_optimizer_set_f64(score_trainer_optimizer(tr), SCORE_OPTIMIZER_PARAM_GRAD_CLIP,
                                  1.0));
    CHECK(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_BATCH_SIZE, (int64_t)cf.batch));
    CHECK(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_SEED, 7));
    CHECK(score_trainer_set_f64(tr, SCORE_TRAINER_PARAM_P_UNCOND, 0.1));
    CHECK(score_ema_set_f64(score_trainer_ema(tr), SCORE_EMA_PARAM_DECAY, builtin ? 0.9 : 0.999));
    CHECK(score_trainer_set_data(tr, n, D, x));
    CHECK(score_trainer_set_labels(tr, n, y));
    rec.v = malloc(cf.steps * sizeof *rec.v);
    rec.n = 0;
    if (rec.v == NULL)
        return 1;
    printf("U-Net 1x8x8, base %zu, %zu blocks per level: %zu parameters; %zu images, batch %zu, %zu steps, "
           "%lld model threads\n", cf.base, cf.blocks, np, n, cf.batch, cf.steps, (long long)cf.threads);
    fflush(stdout);
    if (cf.load != NULL) {
        /* trained weights of an earlier run (--save-params): sample only */
        float *th;
        if (read_file(cf.load, sizeof(float), (void **)&th) != np) {
            fprintf(stderr, "%s does not hold %zu parameters\n", cf.load, np);
            return 1;
        }
        CHECK(score_model_params_set(m, th, np));
        free(th);
        ema = m;
        goto sample;
    }
    w0 = clock_s(CLOCK_MONOTONIC);
    c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    CHECK(score_trainer_run(tr, cf.steps, on_step, &rec));
    wall = clock_s(CLOCK_MONOTONIC) - w0;
    cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    {
        size_t k = cf.steps / 10 ? cf.steps / 10 : 1;
        double first = mean_of(&rec, 0, k), last = mean_of(&rec, cf.steps - k, cf.steps);
        printf("loss: mean of the first %zu steps %.4f, of the last %zu steps %.4f\n", k, first,
               k, last);
        printf("training: %.1f s wall, %.1f s CPU (%.3f s CPU per step)\n", wall, cpu,
               cpu / (double)cf.steps);
        if (builtin && !(last < 0.7 * first)) {
            fprintf(stderr, "the loss did not go down: %.4f -> %.4f\n", first, last);
            return 1;
        }
    }

    CHECK(score_trainer_ema_model(tr, &ema));
    if (cf.save != NULL) {
        float *th = malloc(np * sizeof *th);
        FILE *f = fopen(cf.save, "wb");
        if (th == NULL || f == NULL)
            return 1;
        CHECK(score_model_params_get(ema, th, np));
        if (fwrite(th, sizeof *th, np, f) != np || fclose(f) != 0) {
            fprintf(stderr, "cannot write %s\n", cf.save);
            return 1;
        }
        free(th);
        printf("wrote the %zu averaged parameters to %s\n", np, cf.save);
    }
sample:
    samples = malloc(CLASSES * cf.per_class * D * sizeof *samples);
    again = malloc(CLASSES * cf.per_class * D * sizeof *again);
    if (samples == NULL || again == NULL)
        return 1;
    w0 = clock_s(CLOCK_MONOTONIC);
    c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    sample_all(&cf, ema, sched, cf.threads, samples);
    printf("sampling %zu images (DPM-Solver++(2M), %zu steps, guidance %.2f): %.2f s wall, "
           "%.2f s CPU\n", CLASSES * cf.per_class, cf.sample_steps, cf.guidance,
           clock_s(CLOCK_MONOTONIC) - w0, clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0);
    if (builtin) {
        /* the model's threads do not change a bit of the samples */
        sample_all(&cf, ema, sched, cf.threads == 1 ? 2 : 1, again);
        if (memcmp(samples, again, CLASSES * cf.per_class * D * sizeof *samples) != 0) {
            fprintf(stderr, "samples differ between 1 and 2 model threads\n");
            return 1;
        }
        printf("samples at 1 and 2 model threads: bit-identical\n");
    }
    if (cf.out != NULL) {
        FILE *f = fopen(cf.out, "wb");
        if (f == NULL ||
            fwrite(samples, sizeof *samples, CLASSES * cf.per_class * D, f) !=
                CLASSES * cf.per_class * D ||
            fclose(f) != 0) {
            fprintf(stderr, "cannot write %s\n", cf.out);
            return 1;
        }
        printf("wrote %zu samples to %s\n", CLASSES * cf.per_class, cf.out);
    }
    free(samples);
    free(again);
    free(rec.v);
    score_trainer_free(tr);
    score_sde_free(sde);
    score_schedule_free(sched);
    score_model_free(m);
    free(x);
    free(y);
    return 0;
}
