/* score train-classifier: a noise-conditional classifier p(y | x_t, t) for classifier guidance
 * of a generative model ('score sample MODEL --classifier FILE --class K'). The classifier is
 * trained in the model's units (its data transform applied to the CSV rows) under the model's
 * schedule, with the library's classifier loss. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static cli_opt opts[] = {
    {"data", 0, 1, "FILE", "training data, CSV with a header line ('-' = stdin) [required]", NULL},
    {"label-column", 0, 1, "NAME", "CSV column holding each row's class label, integer or text [required]", NULL},
    {"output", 'o', 1, "FILE", "classifier file to write (safetensors) [required]", NULL},
    {"hidden", 0, 1, "N", "MLP width [128]", NULL},
    {"depth", 0, 1, "N", "MLP hidden layers [3]", NULL},
    {"activation", 0, 1, "NAME", "silu, softplus, tanh, elu, gelu [silu]", NULL},
    {"embed-dim", 0, 1, "N", "time embedding size [32]", NULL},
    {"fourier-scale", 0, 1, "X", "std of the Fourier frequencies of the time embedding [16]", NULL},
    {"lr", 0, 1, "X", "learning rate (Adam) [2e-3]", NULL},
    {"steps", 0, 1, "N", "training steps [4000]", NULL},
    {"batch", 0, 1, "N", "minibatch size [256]", NULL},
    {"seed", 0, 1, "N", "seed of the initialisation, data order and noise [0]", NULL},
    {"threads", 0, 1, "N", "threads evaluating blocks of rows at a time [1]", NULL},
    {"quiet", 'q', 0, NULL, "no progress bar and no summary", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const char help_text[] =
    "usage: score train-classifier MODEL.safetensors --data FILE.csv --label-column NAME\n"
    "                              -o CLASSIFIER.safetensors [options]\n\n"
    "Trains a noise-conditional classifier p(y | x_t, t) for classifier guidance of MODEL:\n"
    "the rows of FILE.csv (the columns other than NAME, as MODEL was trained on) are put in\n"
    "MODEL's units with its data transform, noised with its schedule at random times, and the\n"
    "classifier learns their class (the cross-entropy loss). The classes are the sorted distinct\n"
    "values of column NAME. Sample with\n"
    "  score sample MODEL --classifier CLASSIFIER --class K|NAME --classifier-scale W\n\n"
    "options:\n";

static const cli_name activations[] = {
    {"silu", SCORE_ACT_SILU, NULL}, {"softplus", SCORE_ACT_SOFTPLUS, NULL},
    {"tanh", SCORE_ACT_TANH, NULL}, {"elu", SCORE_ACT_ELU, NULL},
    {"gelu", SCORE_ACT_GELU, NULL}, {NULL, 0, NULL},
};

typedef struct clf_job {
    cli_model_file file;
    cli_table table;
    cli_class_labels cls;
    float *x;               /* the rows in model units */
    score_model *clf;
    score_loss *loss;
    score_trainer *tr;
    cli_progress bar;
} clf_job;

static void clf_job_free(clf_job *j)
{
    score_trainer_free(j->tr);
    score_loss_free(j->loss);
    score_model_free(j->clf);
    free(j->x);
    cli_class_labels_free(&j->cls);
    if (j->table.data != NULL)
        cli_table_free(&j->table);
    cli_model_file_free(&j->file);
}

static int on_progress(size_t step, size_t total, double loss, double lr, void *ud)
{
    (void)total;
    (void)lr;
    cli_progress_update(ud, step, "loss", loss);
    return 0;
}

/* The classifier of the options, for gm's dimension and schedule. */
static int make_classifier(const score_genmodel *gm, size_t k, clf_job *j)
{
    size_t hidden = 128, depth = 3, embed = 32;
    double fscale = 16.0;
    uint64_t seed = 0;
    int act = SCORE_ACT_SILU, rc;
    if ((rc = cli_opt_size(opts, "hidden", 1, 65536, &hidden)) != 0 ||
        (rc = cli_opt_size(opts, "depth", 1, 64, &depth)) != 0 ||
        (rc = cli_opt_size(opts, "embed-dim", 2, 4096, &embed)) != 0 ||
        (rc = cli_opt_double(opts, "fourier-scale", 1e-6, 1e4, &fscale)) != 0 ||
        (rc = cli_opt_u64(opts, "seed", &seed)) != 0 ||
        (rc = cli_opt_lookup(opts, "activation", activations, "activation", &act)) != 0)
        return rc;
    if ((rc = score_model_new_classifier(&j->clf, score_genmodel_schedule(gm),
                                         score_genmodel_dim(gm), k)) != SCORE_OK ||
        (rc = score_model_set_i64(j->clf, SCORE_MODEL_PARAM_HIDDEN, (int64_t)hidden)) != SCORE_OK ||
        (rc = score_model_set_i64(j->clf, SCORE_MODEL_PARAM_DEPTH, (int64_t)depth)) != SCORE_OK ||
        (rc = score_model_set_i64(j->clf, SCORE_MODEL_PARAM_ACTIVATION, act)) != SCORE_OK ||
        (rc = score_model_set_i64(j->clf, SCORE_MODEL_PARAM_EMBED_DIM, (int64_t)embed)) != SCORE_OK ||
        (rc = score_model_set_f64(j->clf, SCORE_MODEL_PARAM_FOURIER_SCALE, fscale)) != SCORE_OK ||
        (rc = score_model_set_i64(j->clf, SCORE_MODEL_PARAM_SEED,
                                  (int64_t)(seed > ((uint64_t)1 << 62) ? -1 : (int64_t)seed))) != SCORE_OK ||
        (rc = score_model_prepare(j->clf)) != SCORE_OK)
        return cli_lib_fail(rc, "classifier");
    return cli_model_threads(opts, j->clf);
}

/* The classifier's generative model: the network with MODEL's data side and the class names,
 * written to path. */
static int save_classifier(const score_genmodel *gm, clf_job *j, const char *path)
{
    score_genmodel *cg = NULL;
    int rc = score_genmodel_new_classifier(&cg, j->clf, gm);
    if (rc == SCORE_OK)
        rc = score_genmodel_set_names(cg, SCORE_GENMODEL_NAMES_LABELS, j->cls.num_classes,
                                      (const char *const *)j->cls.names);
    if (rc == SCORE_OK)
        rc = score_genmodel_save(cg, path);
    score_genmodel_free(cg);
    return rc;
}

int cli_cmd_train_classifier(int argc, char **argv)
{
    const char *pos[1];
    int npos = 0, help = 0, rc;
    size_t steps = 4000, batch = 256;
    uint64_t seed = 0;
    double lr = 2e-3, loss = NAN;
    char err[700];
    clf_job j;
    memset(&j, 0, sizeof j);
    if ((rc = cli_parse_command(argc, argv, opts, help_text, NULL, pos, 1, 1, &npos, &help)) != 0 ||
        help)
        return rc;
    const char *data = cli_opt_get(opts, "data"), *column = cli_opt_get(opts, "label-column");
    const char *output = cli_opt_get(opts, "output");
    if (data == NULL || column == NULL || output == NULL)
        return cli_usage_error("--data FILE.csv, --label-column NAME and -o FILE are required");
    if ((rc = cli_binary_output_check("-o", output)) != 0)
        return rc;
    {
        const char *inputs[2] = {pos[0], data};
        if ((rc = cli_stdin_once(inputs, 2)) != 0)
            return rc;
    }
    if ((rc = cli_opt_size(opts, "steps", 1, (size_t)1 << 40, &steps)) != 0 ||
        (rc = cli_opt_size(opts, "batch", 1, (size_t)1 << 24, &batch)) != 0 ||
        (rc = cli_opt_double(opts, "lr", 0.0, 1e6, &lr)) != 0 ||
        (rc = cli_opt_u64(opts, "seed", &seed)) != 0)
        return rc;
    if (cli_model_file_read(pos[0], 0, &j.file, err, sizeof err) != 0)
        return cli_fail("%s", err);
    const score_genmodel *gm = j.file.gm;
    size_t dim = score_genmodel_dim(gm);
    if (cli_csv_read_ex(data, column, &j.table, err, sizeof err) != 0) {
        clf_job_free(&j);
        return cli_fail("%s", err);
    }
    if (j.table.cols != dim) {
        rc = cli_fail("%s has %zu data columns besides '%s', %s takes %zu", data, j.table.cols,
                      column, pos[0], dim);
        clf_job_free(&j);
        return rc;
    }
    /* the columns the model was trained on, in its order (when both name them) */
    for (size_t c = 0; j.table.names != NULL && c < dim; c++) {
        const char *want = score_genmodel_name(gm, SCORE_GENMODEL_NAMES_COLUMNS, c);
        if (want != NULL && strcmp(want, j.table.names[c]) != 0) {
            rc = cli_fail("%s: data column %zu is '%s', %s was trained with '%s' there", data,
                          c + 1, j.table.names[c], pos[0], want);
            clf_job_free(&j);
            return rc;
        }
    }
    if ((rc = cli_class_labels_make(j.table.text, j.table.rows, column, "a classifier",
                                    &j.cls)) != 0) {
        clf_job_free(&j);
        return rc;
    }
    if ((j.x = malloc(j.table.rows * dim * sizeof *j.x)) == NULL) {
        clf_job_free(&j);
        return cli_fail("out of memory");
    }
    if ((rc = score_genmodel_encode(gm, j.table.rows, j.table.data, j.x)) != SCORE_OK) {
        rc = cli_lib_fail(rc, "data transform");
        clf_job_free(&j);
        return rc;
    }
    if ((rc = make_classifier(gm, j.cls.num_classes, &j)) != 0) {
        clf_job_free(&j);
        return rc;
    }
    if ((rc = score_loss_new(&j.loss, SCORE_LOSS_CLASSIFIER)) != SCORE_OK ||
        (rc = score_trainer_new(&j.tr, j.clf, NULL, j.loss, SCORE_OPTIMIZER_ADAM)) != SCORE_OK ||
        (rc = score_optimizer_set_f64(score_trainer_optimizer(j.tr), SCORE_OPTIMIZER_PARAM_LR,
                                      lr)) != SCORE_OK ||
        (rc = score_trainer_set_i64(j.tr, SCORE_TRAINER_PARAM_BATCH_SIZE,
                                    (int64_t)(batch < j.table.rows ? batch : j.table.rows))) != SCORE_OK ||
        (rc = score_trainer_set_i64(j.tr, SCORE_TRAINER_PARAM_SEED,
                                    (int64_t)(seed > ((uint64_t)1 << 62) ? -1 : (int64_t)seed))) != SCORE_OK ||
        (rc = score_trainer_set_data(j.tr, j.table.rows, dim, j.x)) != SCORE_OK ||
        (rc = score_trainer_set_labels(j.tr, j.table.rows, j.cls.labels)) != SCORE_OK) {
        rc = cli_lib_fail(rc, "trainer");
        clf_job_free(&j);
        return rc;
    }
    cli_progress_start(&j.bar, "train-classifier", steps, cli_opt_flag(opts, "quiet"));
    double t0 = cli_now();
    rc = score_trainer_run(j.tr, steps, on_progress, &j.bar);
    cli_progress_finish(&j.bar);
    if (rc == SCORE_OK)
        rc = score_trainer_last_loss(j.tr, &loss);
    if (rc == SCORE_OK)
        rc = save_classifier(gm, &j, output);
    if (rc != SCORE_OK) {
        rc = cli_lib_fail(rc, rc == SCORE_E_IO ? "saving the classifier" : "training");
        clf_job_free(&j);
        return rc;
    }
    if (!cli_opt_flag(opts, "quiet"))
        fprintf(stderr, "trained a classifier of %zu classes ('%s') on %zu rows for %s: %zu "
                        "steps in %.1fs (last loss %.4f): %s\n", j.cls.num_classes, column,
                j.table.rows, pos[0], steps, cli_now() - t0, loss, output);
    clf_job_free(&j);
    return 0;
}

/* ---- score sample --classifier ---------------------------------------------------------- */

int cli_classifier_attach(const char *path, const score_genmodel *gm, score_sde *sde,
                          const char *cls, double w, score_genmodel **clf_out)
{
    char err[700];
    cli_model_file f;
    size_t k;
    int64_t label = -1;
    int rc;
    *clf_out = NULL;
    if (cls == NULL)
        return cli_usage_error("--classifier needs --class K|NAME (the class to guide towards)");
    if (cli_model_file_read(path, 0, &f, err, sizeof err) != 0)
        return cli_fail("--classifier %s", err);
    *clf_out = f.gm;
    f.gm = NULL;
    cli_model_file_free(&f);
    if (score_genmodel_is_classifier(*clf_out) != 1)
        return cli_fail("--classifier %s is not a classifier (make one with 'score "
                        "train-classifier')", path);
    /* the library checks dimension, schedule, data transform, column names and classes */
    if ((rc = score_genmodel_set_classifier(gm, sde, *clf_out, w)) != SCORE_OK)
        return cli_fail("--classifier %s cannot guide this model: %s", path,
                        score_last_error_message());
    /* --class: a stored class name, else an index */
    k = score_genmodel_num_classes(*clf_out);
    for (size_t c = 0; c < k && label < 0; c++) {
        const char *name = score_genmodel_name(*clf_out, SCORE_GENMODEL_NAMES_LABELS, c);
        if (name != NULL && strcmp(name, cls) == 0)
            label = (int64_t)c;
    }
    if (label < 0 && score_genmodel_name(*clf_out, SCORE_GENMODEL_NAMES_LABELS, 0) == NULL) {
        char *end;
        long long v = strtoll(cls, &end, 10);
        if (*cls >= '0' && *cls <= '9' && *end == '\0' && v >= 0 && (size_t)v < k)
            label = v;
    }
    if (label < 0)
        return cli_usage_error("--class '%s' is not a class of the classifier %s", cls, path);
    if ((rc = score_sde_set_label(sde, label)) != SCORE_OK)
        return cli_lib_fail(rc, "--class");
    return 0;
}
