/* score sample (model -> CSV of samples) and score loglik (model + CSV -> log-likelihoods). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Samplers by the names users know from score_sde / k-diffusion / diffusers: a predictor step
 * type, an optional corrector and a default grid (the library's presets are these too). */
typedef struct sampler_def {
    const char *name;
    const char *predictor;   /* step type name (NULL: the one-level Langevin loop) */
    const char *corrector;   /* step type name or NULL */
    size_t steps;            /* default --steps */
    int grid;                /* default grid */
    const char *help;
} sampler_def;

static const sampler_def samplers[] = {
    {"pc", "reverse-diffusion", "langevin", 1000, SCORE_GRID_UNIFORM_T,
     "predictor-corrector: reverse diffusion + Langevin, snr 0.16 (score_sde)"},
    {"ode", "dopri5", NULL, 1000, SCORE_GRID_UNIFORM_T,
     "probability-flow ODE, adaptive Dormand-Prince 5(4), rtol = atol = 1e-5 (score_sde)"},
    {"ald", "none", "ald", 200, SCORE_GRID_UNIFORM_LAMBDA,
     "annealed Langevin dynamics over geometric noise levels (NCSN), 2 steps per level"},
    {"edm", "heun", NULL, 18, SCORE_GRID_KARRAS,
     "EDM: Heun on the Karras grid, 18 steps (Karras et al. 2022)"},
    {"euler", "euler", NULL, 100, SCORE_GRID_KARRAS, "probability-flow ODE, Euler (k-diffusion)"},
    {"heun", "heun", NULL, 40, SCORE_GRID_KARRAS, "probability-flow ODE, Heun (EDM Algorithm 2)"},
    {"midpoint", "midpoint", NULL, 40, SCORE_GRID_KARRAS, "probability-flow ODE, midpoint rule"},
    {"rk4", "rk4", NULL, 25, SCORE_GRID_KARRAS, "probability-flow ODE, classical Runge-Kutta"},
    {"dopri5", "dopri5", NULL, 1000, SCORE_GRID_UNIFORM_T,
     "probability-flow ODE, adaptive Dormand-Prince (--rtol, --atol)"},
    {"em", "em", NULL, 1000, SCORE_GRID_UNIFORM_T, "reverse SDE, Euler-Maruyama (score_sde)"},
    {"reverse-diffusion", "reverse-diffusion", NULL, 1000, SCORE_GRID_UNIFORM_T,
     "reverse-diffusion predictor alone (score_sde)"},
    {"ancestral", "ancestral", NULL, 1000, SCORE_GRID_UNIFORM_T,
     "ancestral sampling (DDPM / SMLD forms, score_sde)"},
    {"euler-ancestral", "euler-ancestral", NULL, 100, SCORE_GRID_KARRAS,
     "Euler ancestral, eta = 1 (k-diffusion)"},
    {"ddim", "ddim", NULL, 50, SCORE_GRID_UNIFORM_T, "DDIM, eta = 0 (--eta for stochastic)"},
    {"dpm-solver-1", "dpm-solver-1", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "DPM-Solver-1"},
    {"dpm-solver-2", "dpm-solver-2", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "DPM-Solver-2, singlestep"},
    {"dpm-solver-3", "dpm-solver-3", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "DPM-Solver-3, singlestep"},
    {"dpmpp-2m", "dpmpp-2m", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "DPM-Solver++(2M), multistep"},
    {"dpmpp-3m", "dpmpp-3m", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "DPM-Solver++(3M), multistep"},
    {"dpmpp-2m-sde", "dpmpp-2m-sde", NULL, 50, SCORE_GRID_UNIFORM_LAMBDA,
     "DPM-Solver++(2M) SDE, eta = 1"},
    {"dpm-adaptive", "dpm-solver-23", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA,
     "adaptive DPM-Solver-2/3 (--rtol, --atol)"},
    {"langevin", NULL, NULL, 1000, 0,
     "Langevin MCMC at one noise level (models trained by dsm/hyvarinen/ssm)"},
    {NULL, NULL, NULL, 0, 0, NULL},
};

static const cli_name grids[] = {
    {"uniform-t", SCORE_GRID_UNIFORM_T, "uniform in t (score_sde)"},
    {"uniform-lambda", SCORE_GRID_UNIFORM_LAMBDA, "uniform in log-SNR (DPM-Solver 'logSNR')"},
    {"karras", SCORE_GRID_KARRAS, "Karras et al. rho = 7"},
    {"exponential", SCORE_GRID_EXPONENTIAL, "uniform in log sigma"},
    {"polyexponential", SCORE_GRID_POLYEXPONENTIAL, "k-diffusion polyexponential"},
    {"quadratic", SCORE_GRID_QUADRATIC, "quadratic in t (DPM-Solver 'time_quadratic')"},
    {NULL, 0, NULL},
};

static const cli_name correctors[] = {
    {"none", 0, NULL}, {"langevin", SCORE_STEP_LANGEVIN, NULL}, {"ald", SCORE_STEP_ALD, NULL},
    {NULL, 0, NULL},
};

static const sampler_def *find_sampler(const char *name)
{
    for (const sampler_def *s = samplers; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

static void print_samplers(FILE *f)
{
    fprintf(f, "samplers (--sampler NAME; default steps in brackets):\n");
    for (const sampler_def *s = samplers; s->name; s++)
        fprintf(f, "  %-18s %s [%zu]\n", s->name, s->help, s->steps);
    fputc('\n', f);
    cli_print_names(f, "grids (--grid)", grids);
}

static int unknown_sampler(const char *name)
{
    char list[1024] = "";
    size_t used = 0;
    for (const sampler_def *s = samplers; s->name && used < sizeof list; s++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", s == samplers ? "" : ", ",
                         s->name);
        used += w > 0 ? (size_t)w : 0;
    }
    return cli_usage_error("unknown sampler '%s' (valid: %s)", name, list);
}

/* Loads a model file with the system recorded by 'score train'. For other model files (the
 * library's score_model_save(), examples/python/export_torch.py) the options --schedule,
 * --predict and --cond say how to use the network; given options override recorded values. */
static int load_model(const char *path, const cli_opt *opts, score_model **model,
                      cli_meta *meta, cli_system *sys)
{
    char err[512];
    const char *sname = cli_opt_get(opts, "schedule"), *pname = cli_opt_get(opts, "predict");
    const char *cname = cli_opt_get(opts, "cond");
    int rc;
    memset(sys, 0, sizeof *sys);
    if (cli_model_read(path, model, meta, err, sizeof err) != 0)
        return cli_fail("%s", err);
    if ((rc = cli_model_threads(opts, *model)) != 0)
        goto fail;
    size_t dim = score_model_dim(*model);
    if (cli_meta_get(meta, "score.schedule") != NULL) {
        if (cli_system_from_meta(meta, dim, sys, err, sizeof err) != 0) {
            rc = cli_fail("%s: %s", path, err);
            goto fail;
        }
    } else if (sname == NULL || pname == NULL) {
        rc = cli_fail("%s records no schedule (it was not written by 'score train'): give "
                      "--schedule NAME and --predict KIND", path);
        goto fail;
    } else {
        sys->dim = dim;
        sys->cond_kind = SCORE_COND_DEFAULT;
        sys->cond_scale = 999.0;
        sys->sigma_data = 0.5;
    }
    if (sname != NULL) {
        score_schedule_free(sys->sched);
        sys->sched = NULL;
        if ((rc = cli_schedule_from_name(sname, &sys->sched)) != 0)
            goto fail;
        if (score_schedule_prepare(sys->sched) != SCORE_OK) {
            rc = cli_lib_fail(SCORE_E_INVAL, "--schedule");
            goto fail;
        }
    }
    if (pname != NULL && (rc = cli_lookup(cli_outputs, "output kind (--predict)", pname,
                                          &sys->output_kind)) != 0)
        goto fail;
    if (cname != NULL && (rc = cli_lookup(cli_conds, "conditioning (--cond)", cname,
                                          &sys->cond_kind)) != 0)
        goto fail;
    return 0;
fail:
    cli_system_free(sys);
    score_model_free(*model);
    *model = NULL;
    cli_meta_free(meta);
    return rc;
}

/* Reference points for --plot and the distance: a CSV, or fresh points of the toy dataset the
 * model was trained on. *label receives a description. */
static int load_reference(const char *ref, const cli_meta *meta, size_t dim, uint64_t seed,
                          cli_table *t, char *label, size_t label_len)
{
    char err[512];
    memset(t, 0, sizeof *t);
    if (ref != NULL) {
        if (cli_csv_read(ref, t, err, sizeof err) != 0)
            return cli_fail("%s", err);
        if (t->cols != dim) {
            cli_fail("%s has %zu columns but the model's dimension is %zu", ref, t->cols, dim);
            cli_table_free(t);
            return CLI_EXIT_FAILURE;
        }
        snprintf(label, label_len, "%s (%zu rows)", ref, t->rows);
        return 0;
    }
    const char *ds = cli_meta_get(meta, "score.train.data");
    if (ds == NULL || score_dataset_toy_dim(ds) != dim)
        return 0;
    size_t n = 5000;
    score_rng *rng = NULL;
    t->data = malloc(n * dim * sizeof *t->data);
    /* stream 2: independent of the training points (stream 1) */
    if (t->data == NULL || score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed) != SCORE_OK ||
        score_rng_set_stream(rng, 2) != SCORE_OK ||
        score_dataset_toy(ds, rng, n, t->data) != SCORE_OK) {
        score_rng_free(rng);
        free(t->data);
        t->data = NULL;
        return cli_fail("cannot draw reference points of '%s'", ds);
    }
    score_rng_free(rng);
    t->rows = n;
    t->cols = dim;
    snprintf(label, label_len, "%s (%zu fresh points)", ds, n);
    return 0;
}

/* ---- sample --------------------------------------------------------------------------- */

static cli_opt s_opts[] = {
    {"output", 'o', 1, "FILE", "CSV file for the samples ['-' = stdout, the default]", NULL},
    {"sampler", 0, 1, "NAME", "sampler (list below) [pc]", NULL},
    {"steps", 0, 1, "N", "number of steps [per sampler]", NULL},
    {"n", 'n', 1, "N", "number of samples [1000]", NULL},
    {"seed", 0, 1, "N", "seed of the noise [0]", NULL},
    {"grid", 0, 1, "NAME", "time grid [per sampler]", NULL},
    {"no-denoise", 0, 0, NULL, "stop at t_eps instead of a final denoising step to t = 0", NULL},
    {"corrector", 0, 1, "NAME", "add a corrector: langevin, ald, none", NULL},
    {"corrector-steps", 0, 1, "N", "corrector steps per grid point", NULL},
    {"snr", 0, 1, "X", "Langevin signal-to-noise ratio [0.16]", NULL},
    {"step-size", 0, 1, "X", "fixed Langevin step size (langevin sampler) [SNR rule]", NULL},
    {"eta", 0, 1, "X", "noise of ddim / euler-ancestral / dpmpp-2m-sde", NULL},
    {"churn", 0, 1, "X", "EDM S_churn of heun [0]", NULL},
    {"rtol", 0, 1, "X", "adaptive samplers: relative tolerance", NULL},
    {"atol", 0, 1, "X", "adaptive samplers: absolute tolerance", NULL},
    {"guidance", 0, 1, "W", "classifier-free guidance weight: (1+W) F_model - W F_uncond", NULL},
    {"uncond", 0, 1, "MODEL", "the unconditional model file for --guidance", NULL},
    {"batch", 0, 1, "N", "rows per library call [4096]", NULL},
    {"schedule", 0, 1, "NAME", "schedule, for model files that record none (or to override)", NULL},
    {"predict", 0, 1, "KIND", "what the network outputs: eps, score, x0, v, edm (idem)", NULL},
    {"cond", 0, 1, "KIND", "network input c(t): default, t, t-scaled, sigma, log-sigma-4 (idem)", NULL},
    {"ref", 0, 1, "FILE", "reference data (CSV) for --plot and the distance", NULL},
    {"plot", 0, 1, "FILE.svg", "draw the samples over the reference data", NULL},
    {"dims", 0, 1, "I,J", "columns shown by --plot [1,2]", NULL},
    {"threads", 0, 1, "N", "threads evaluating blocks of rows at a time (results do not depend on it; set OPENBLAS_NUM_THREADS=1) [1]", NULL},
    {"quiet", 'q', 0, NULL, "no progress bar and no summary", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct sample_ctx {
    cli_progress bar;
    uint64_t done;   /* steps of earlier chunks */
} sample_ctx;

static int on_sample_progress(size_t step, size_t total, double t, void *ud)
{
    sample_ctx *c = ud;
    (void)total;
    cli_progress_update(&c->bar, c->done + step, "t", t);
    return 0;
}

/* Langevin MCMC at the one time a time-free loss trained: x <- x + e s + sqrt(2 e) z. */
static int langevin_at(score_sde *sde, const cli_system *sys, size_t steps, double step_size,
                       double snr, const score_rng *rng, size_t n, float *x, cli_progress *bar)
{
    score_step *st = NULL;
    int rc = score_step_new(&st, score_step_type_get(SCORE_STEP_LANGEVIN), sys->dim);
    if (rc == SCORE_OK && step_size > 0)
        rc = score_step_set_f64(st, SCORE_STEP_PARAM_STEP_SIZE, step_size);
    if (rc == SCORE_OK)
        rc = score_step_set_f64(st, SCORE_STEP_PARAM_SNR, snr);
    /* start from N(0, I) in model units (the standardized data scale) */
    if (rc == SCORE_OK)
        rc = score_rng_fill_normal(rng, 0, n, 0, sys->dim, x);
    for (size_t k = 0; rc == SCORE_OK && k < steps; k++) {
        rc = score_step_apply(st, sde, sys->fixed_t, sys->fixed_t, n, x, NULL, rng, k + 1);
        cli_progress_update(bar, k + 1, NULL, 0);
    }
    score_step_free(st);
    return rc == SCORE_OK ? 0 : cli_lib_fail(rc, "Langevin sampling");
}

int cli_cmd_sample(int argc, char **argv)
{
    const char *pos[1];
    int npos, help, rc;
    if ((rc = cli_parse(argc, argv, 2, s_opts, pos, 1, &npos, &help)) != 0)
        return rc;
    if (help || npos == 0) {
        FILE *f = help ? stdout : stderr;
        fprintf(f, "usage: score sample MODEL.safetensors [options]\n\n"
                   "Draws samples from a model file written by 'score train'.\n\noptions:\n");
        cli_print_options(f, s_opts);
        fputc('\n', f);
        print_samplers(f);
        return help ? 0 : CLI_EXIT_USAGE;
    }
    const char *sname = cli_opt_get(s_opts, "sampler");
    const sampler_def *def = find_sampler(sname ? sname : "pc");
    if (def == NULL)
        return unknown_sampler(sname);
    size_t n = 1000, steps = def->steps, batch = 4096, csteps = 0;
    uint64_t seed = 0;
    double snr = 0.16, step_size = 0, eta = -1, churn = 0, rtol = 0, atol = 0, w = 0;
    int grid = def->grid, corrector = -1;
    const char *v;
    if ((rc = cli_opt_size(s_opts, "n", 1, (size_t)1 << 32, &n)) ||
        (rc = cli_opt_size(s_opts, "steps", 1, 100000000, &steps)) ||
        (rc = cli_opt_size(s_opts, "batch", 1, (size_t)1 << 24, &batch)) ||
        (rc = cli_opt_size(s_opts, "corrector-steps", 0, 1000000, &csteps)) ||
        (rc = cli_opt_u64(s_opts, "seed", &seed)) ||
        (rc = cli_opt_double(s_opts, "snr", 1e-12, 1e6, &snr)) ||
        (rc = cli_opt_double(s_opts, "step-size", 0, 1e12, &step_size)) ||
        (rc = cli_opt_double(s_opts, "eta", 0, 1000, &eta)) ||
        (rc = cli_opt_double(s_opts, "churn", 0, 1e6, &churn)) ||
        (rc = cli_opt_double(s_opts, "rtol", 0, 1, &rtol)) ||
        (rc = cli_opt_double(s_opts, "atol", 0, 1e6, &atol)) ||
        (rc = cli_opt_double(s_opts, "guidance", -1e6, 1e6, &w)))
        return rc;
    if ((v = cli_opt_get(s_opts, "grid")) && (rc = cli_lookup(grids, "grid", v, &grid)))
        return rc;
    if ((v = cli_opt_get(s_opts, "corrector")) &&
        (rc = cli_lookup(correctors, "corrector", v, &corrector)))
        return rc;
    if ((cli_opt_get(s_opts, "guidance") != NULL) != (cli_opt_get(s_opts, "uncond") != NULL))
        return cli_usage_error("--guidance W and --uncond MODEL go together");
    int quiet = cli_opt_flag(s_opts, "quiet");

    score_model *model = NULL, *uncond = NULL, *cfg = NULL;
    cli_meta meta, meta2;
    cli_system sys, sys2;
    memset(&meta2, 0, sizeof meta2);
    memset(&sys2, 0, sizeof sys2);
    if ((rc = load_model(pos[0], s_opts, &model, &meta, &sys)) != 0)
        return rc;
    size_t dim = sys.dim;
    score_sde *sde = NULL;
    score_sampler *smp = NULL;
    score_rng *rng = NULL;
    float *x = NULL;
    cli_table ref;
    memset(&ref, 0, sizeof ref);
    int status = CLI_EXIT_FAILURE;
    char err[512], ref_label[600] = "";

    if (sys.fixed_t > 0 && strcmp(def->name, "langevin") != 0) {
        status = cli_usage_error("%s was trained at one noise level only (t = %g): sample it "
                                 "with --sampler langevin", pos[0], sys.fixed_t);
        goto out;
    }
    if (sys.fixed_t <= 0 && strcmp(def->name, "langevin") == 0) {
        status = cli_usage_error("--sampler langevin is for models trained at one noise level "
                                 "(dsm, hyvarinen, ssm losses); try pc or ald");
        goto out;
    }
    if ((rc = cli_system_sde(&sys, model, &sde)) != 0)
        goto out;
    if (cli_opt_get(s_opts, "uncond") != NULL) {
        if ((rc = load_model(cli_opt_get(s_opts, "uncond"), s_opts, &uncond, &meta2, &sys2)) != 0)
            goto out;
        if (sys2.dim != dim || sys2.output_kind != sys.output_kind ||
            strcmp(score_schedule_name(sys2.sched), score_schedule_name(sys.sched)) != 0 ||
            (sys.shift == NULL) != (sys2.shift == NULL)) {
            status = cli_fail("--uncond %s does not match %s (dimension, schedule, output kind "
                              "and data scaling must agree)", cli_opt_get(s_opts, "uncond"),
                              pos[0]);
            goto out;
        }
        if ((rc = score_model_new_cfg(&cfg, model, uncond, w)) != SCORE_OK ||
            (rc = cli_model_threads(s_opts, cfg)) != 0 ||
            (rc = score_sde_set_model(sde, cfg)) != SCORE_OK) {
            status = cli_lib_fail(rc, "guidance");
            goto out;
        }
    }
    if (score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed) != SCORE_OK ||
        (x = malloc(n * dim * sizeof *x)) == NULL) {
        status = cli_fail("out of memory (%zu samples of dimension %zu)", n, dim);
        goto out;
    }

    double t0 = cli_now();
    uint64_t nfe = 0;
    sample_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    if (sys.fixed_t > 0) {
        cli_progress_start(&ctx.bar, "langevin", steps, quiet);
        rc = langevin_at(sde, &sys, steps, step_size, snr, rng, n, x, &ctx.bar);
        cli_progress_finish(&ctx.bar);
        if (rc != 0)
            goto out;
        nfe = steps;
    } else {
        /* --corrector replaces the sampler's own corrector (none = 0 removes it) */
        const score_step_type *corr =
            corrector > 0 ? score_step_type_get(corrector)
                          : (corrector < 0 && def->corrector ? score_step_type_find(def->corrector)
                                                             : NULL);
        rc = score_sampler_new(&smp, score_step_type_find(def->predictor), corr, dim);
        if (rc == SCORE_OK)
            rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_NUM_STEPS, (int64_t)steps);
        if (rc == SCORE_OK)
            rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_GRID, grid);
        if (rc == SCORE_OK)
            rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_FINAL_DENOISE,
                                       !cli_opt_flag(s_opts, "no-denoise"));
        if (rc == SCORE_OK && strcmp(def->name, "ald") == 0 && !cli_opt_get(s_opts, "corrector-steps"))
            rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, 2);
        if (rc == SCORE_OK && cli_opt_get(s_opts, "corrector-steps"))
            rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, (int64_t)csteps);
        if (rc == SCORE_OK)
            rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_SNR, snr);
        if (rc == SCORE_OK && step_size > 0)
            rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_STEP_SIZE, step_size);
        if (rc == SCORE_OK && eta >= 0)
            rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_ETA, eta);
        if (rc == SCORE_OK && churn > 0)
            rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_CHURN, churn);
        if (rc == SCORE_OK && rtol > 0)
            rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_RTOL, rtol);
        if (rc == SCORE_OK && atol > 0)
            rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_ATOL, atol);
        if (rc != SCORE_OK) {
            status = cli_lib_fail(rc, "sampler");
            goto out;
        }
        size_t grid_len = 0;
        if ((rc = score_sampler_get_grid(smp, sde, 0, NULL, &grid_len)) != SCORE_OK) {
            status = cli_lib_fail(rc, "sampler grid");
            goto out;
        }
        size_t per_chunk = grid_len > 1 ? grid_len - 1 : 1;
        size_t chunks = (n + batch - 1) / batch;
        cli_progress_start(&ctx.bar, def->name, chunks * per_chunk, quiet);
        for (size_t c = 0; c < chunks; c++) {
            size_t row0 = c * batch, m = n - row0 < batch ? n - row0 : batch;
            ctx.done = c * per_chunk;
            rc = score_sampler_run_ex(smp, sde, row0, m, NULL, x + row0 * dim, rng,
                                      on_sample_progress, &ctx);
            if (rc != SCORE_OK) {
                cli_progress_finish(&ctx.bar);
                status = cli_lib_fail(rc, "sampling");
                goto out;
            }
            nfe = score_sampler_get_nfe(smp);
        }
        cli_progress_update(&ctx.bar, chunks * per_chunk, NULL, 0);
        cli_progress_finish(&ctx.bar);
    }
    double elapsed = cli_now() - t0;
    cli_unstandardize(&sys, x, n);

    const char *out = cli_opt_get(s_opts, "output");
    static const char *hdr2[2] = {"x1", "x2"};
    if (cli_csv_write(out ? out : "-", x, n, dim, dim == 2 ? hdr2 : NULL, err, sizeof err)) {
        status = cli_fail("%s", err);
        goto out;
    }

    /* reference data: distance and picture */
    if ((rc = load_reference(cli_opt_get(s_opts, "ref"), &meta, dim, seed + 1, &ref, ref_label,
                             sizeof ref_label)) != 0) {
        status = rc;
        goto out;
    }
    double sw = ref.data ? cli_sliced_w2(x, n, ref.data, ref.rows, dim, 256, 12345) : -1;
    const char *plot = cli_opt_get(s_opts, "plot");
    if (plot != NULL) {
        size_t cx, cy;
        if ((rc = cli_parse_dims(cli_opt_get(s_opts, "dims"), dim, &cx, &cy)) != 0) {
            status = rc;
            goto out;
        }
        char title[256], label[128];
        const char *base = strrchr(pos[0], '/');
        snprintf(title, sizeof title, "%s: %s, %llu model evaluations", base ? base + 1 : pos[0],
                 def->name, (unsigned long long)nfe);
        snprintf(label, sizeof label, "samples (%s)", def->name);
        if (cli_plot_samples(plot, ref.data, ref.rows, x, n, dim, cx, cy,
                             (const char *const *)ref.names, title, label, err, sizeof err)) {
            status = cli_fail("%s", err);
            goto out;
        }
    }
    if (!quiet) {
        fprintf(stderr, "sampled %zu points with %s: %llu model evaluations per sample, %.2f s",
                n, def->name, (unsigned long long)nfe, elapsed);
        if (sw >= 0)
            fprintf(stderr, "; sliced W2 to %s: %.4f", ref_label, sw);
        fputc('\n', stderr);
    }
    status = 0;
out:
    score_sampler_free(smp);
    score_sde_free(sde);
    score_model_free(cfg);
    score_model_free(uncond);
    score_model_free(model);
    score_rng_free(rng);
    cli_meta_free(&meta);
    cli_meta_free(&meta2);
    cli_system_free(&sys);
    cli_system_free(&sys2);
    cli_table_free(&ref);
    free(x);
    return status;
}

/* ---- loglik --------------------------------------------------------------------------- */

static cli_opt l_opts[] = {
    {"output", 'o', 1, "FILE", "per-row CSV (log_likelihood_nats,bits_per_dim); '-' = stdout", NULL},
    {"exact", 0, 0, NULL, "exact divergence (default for dim <= 32)", NULL},
    {"hutchinson", 0, 1, "K", "Hutchinson divergence estimate with K probes per row", NULL},
    {"rtol", 0, 1, "X", "ODE relative tolerance [1e-5]", NULL},
    {"atol", 0, 1, "X", "ODE absolute tolerance [1e-5]", NULL},
    {"offset", 0, 1, "BITS", "dequantization offset added to bits/dim [0]", NULL},
    {"seed", 0, 1, "N", "seed of the Hutchinson probes [0]", NULL},
    {"batch", 0, 1, "N", "rows per library call [1024]", NULL},
    {"schedule", 0, 1, "NAME", "schedule, for model files that record none (or to override)", NULL},
    {"predict", 0, 1, "KIND", "what the network outputs: eps, score, x0, v, edm (idem)", NULL},
    {"cond", 0, 1, "KIND", "network input c(t): default, t, t-scaled, sigma, log-sigma-4 (idem)", NULL},
    {"threads", 0, 1, "N", "threads evaluating blocks of rows at a time (results do not depend on it; set OPENBLAS_NUM_THREADS=1) [1]", NULL},
    {"quiet", 'q', 0, NULL, "no progress bar", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

int cli_cmd_loglik(int argc, char **argv)
{
    const char *pos[2];
    int npos, help, rc;
    if ((rc = cli_parse(argc, argv, 2, l_opts, pos, 2, &npos, &help)) != 0)
        return rc;
    if (help || npos != 2) {
        FILE *f = help ? stdout : stderr;
        fprintf(f, "usage: score loglik MODEL.safetensors DATA.csv [options]\n\n"
                   "Log-likelihood of every row through the probability-flow ODE, and the mean\n"
                   "bits per dimension (in the data's own units).\n\noptions:\n");
        cli_print_options(f, l_opts);
        return help ? 0 : CLI_EXIT_USAGE;
    }
    size_t k = 0, batch = 1024;
    double rtol = 1e-5, atol = 1e-5, offset = 0;
    uint64_t seed = 0;
    if ((rc = cli_opt_size(l_opts, "hutchinson", 1, 4096, &k)) ||
        (rc = cli_opt_size(l_opts, "batch", 1, (size_t)1 << 24, &batch)) ||
        (rc = cli_opt_double(l_opts, "rtol", 0, 1, &rtol)) ||
        (rc = cli_opt_double(l_opts, "atol", 0, 1e6, &atol)) ||
        (rc = cli_opt_double(l_opts, "offset", -1000, 1000, &offset)) ||
        (rc = cli_opt_u64(l_opts, "seed", &seed)))
        return rc;
    if (k && cli_opt_flag(l_opts, "exact"))
        return cli_usage_error("--exact and --hutchinson exclude each other");

    score_model *model = NULL;
    cli_meta meta;
    cli_system sys;
    if ((rc = load_model(pos[0], l_opts, &model, &meta, &sys)) != 0)
        return rc;
    cli_table t;
    char err[512];
    int status = CLI_EXIT_FAILURE;
    score_sde *sde = NULL;
    score_likelihood *lk = NULL;
    score_rng *rng = NULL;
    double *lp = NULL;
    float *res = NULL;
    memset(&t, 0, sizeof t);
    if (cli_csv_read(pos[1], &t, err, sizeof err) != 0) {
        status = cli_fail("%s", err);
        goto out;
    }
    if (t.cols != sys.dim) {
        status = cli_fail("%s has %zu column%s but the model's dimension is %zu", pos[1], t.cols,
                          t.cols == 1 ? "" : "s", sys.dim);
        goto out;
    }
    if (sys.fixed_t > 0) {
        status = cli_fail("%s was trained at one noise level only: it has no likelihood", pos[0]);
        goto out;
    }
    cli_standardize(&sys, t.data, t.rows);
    if ((rc = cli_system_sde(&sys, model, &sde)) != 0)
        goto out;
    int div = k ? SCORE_LIKELIHOOD_DIV_HUTCHINSON
                : (cli_opt_flag(l_opts, "exact") ? SCORE_LIKELIHOOD_DIV_EXACT : SCORE_LIKELIHOOD_DIV_AUTO);
    if ((rc = score_likelihood_new(&lk, sys.dim)) != SCORE_OK ||
        (rc = score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE, div)) != SCORE_OK ||
        (k && (rc = score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_N_PROBES, (int64_t)k))) ||
        (rc = score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_RTOL, rtol)) != SCORE_OK ||
        (rc = score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_ATOL, atol)) != SCORE_OK ||
        (rc = score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed)) != SCORE_OK) {
        status = cli_lib_fail(rc, "likelihood");
        goto out;
    }
    lp = malloc(t.rows * sizeof *lp);
    res = malloc(t.rows * 2 * sizeof *res);
    if (lp == NULL || res == NULL) {
        status = cli_fail("out of memory");
        goto out;
    }
    cli_progress bar;
    size_t chunks = (t.rows + batch - 1) / batch;
    cli_progress_start(&bar, "loglik", t.rows, cli_opt_flag(l_opts, "quiet"));
    double t0 = cli_now();
    for (size_t c = 0; c < chunks; c++) {
        size_t row0 = c * batch, m = t.rows - row0 < batch ? t.rows - row0 : batch;
        rc = score_likelihood_logp_ex(lk, sde, row0, m, t.data + row0 * sys.dim, lp + row0, NULL,
                                      NULL, NULL, rng);
        if (rc != SCORE_OK) {
            cli_progress_finish(&bar);
            status = cli_lib_fail(rc, "likelihood");
            goto out;
        }
        cli_progress_update(&bar, row0 + m, NULL, 0);
    }
    cli_progress_finish(&bar);
    double elapsed = cli_now() - t0;
    /* change of variables back to the data's units: log p_x = log p_model - sum log scale */
    double corr = cli_log_scale_sum(&sys), mean_lp = 0, mean_bpd = 0;
    for (size_t i = 0; i < t.rows; i++) {
        double l = lp[i] - corr;
        double b = -l / ((double)sys.dim * log(2.0)) + offset;
        res[2 * i] = (float)l;
        res[2 * i + 1] = (float)b;
        mean_lp += l / (double)t.rows;
        mean_bpd += b / (double)t.rows;
    }
    const char *out = cli_opt_get(l_opts, "output");
    static const char *hdr[2] = {"log_likelihood_nats", "bits_per_dim"};
    if (out != NULL && cli_csv_write(out, res, t.rows, 2, hdr, err, sizeof err)) {
        status = cli_fail("%s", err);
        goto out;
    }
    FILE *sf = out != NULL && strcmp(out, "-") == 0 ? stderr : stdout;
    fprintf(sf, "mean log-likelihood %.6g nats, %.6g bits/dim (%zu rows, dim %zu, %s divergence, "
            "%.2f s)\n", mean_lp, mean_bpd, t.rows, sys.dim,
            k ? "Hutchinson" : (sys.dim <= 32 || cli_opt_flag(l_opts, "exact") ? "exact" : "Hutchinson"),
            elapsed);
    status = 0;
out:
    score_likelihood_free(lk);
    score_sde_free(sde);
    score_model_free(model);
    score_rng_free(rng);
    cli_meta_free(&meta);
    cli_system_free(&sys);
    cli_table_free(&t);
    free(lp);
    free(res);
    return status;
}
