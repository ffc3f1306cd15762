/* score: the command-line tool of libscore (train, sample, loglik, encode, decode, info, convert,
 * datasets, distance). */
#include "cli.h"

#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"train", cli_cmd_train, "train a score model on a CSV file or a toy dataset"},
    {"train-classifier", cli_cmd_train_classifier, "train a noise-conditional classifier for classifier guidance"},
    {"sample", cli_cmd_sample, "draw samples from a model file into a CSV file"},
    {"loglik", cli_cmd_loglik, "log-likelihood and bits/dim of the rows of a CSV file"},
    {"energy", cli_cmd_energy, "energy (anomaly score) of the rows of a CSV file under an energy model"},
    {"encode", cli_cmd_encode, "map the rows of a CSV file to their probability-flow latents"},
    {"decode", cli_cmd_decode, "map latents back to data (the inverse of encode)"},
    {"info", cli_cmd_info, "describe a model file"},
    {"convert", cli_cmd_convert, "make a generative model file of a plain network file"},
    {"datasets", cli_cmd_datasets, "list the toy datasets, or write points of one"},
    {"distance", cli_cmd_distance, "sliced Wasserstein-2 distance between two CSV files"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: score COMMAND [options]     (score COMMAND --help for its options)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nexample:\n"
               "  score train --dataset ring8 -o ring8.safetensors --plot train.svg\n"
               "  score sample ring8.safetensors --sampler dpmpp-2m -n 2000 -o samples.csv "
               "--plot samples.svg\n"
               "  score loglik ring8.safetensors samples.csv\n\n"
               "Samplers, schedules and losses are listed by 'score sample --help' and\n"
               "'score train --help'.\n\n"
               "files: outputs (-o, --plot) must be regular files; a symbolic link to a regular\n"
               "file is written through, anything else (device, FIFO, directory, dangling link)\n"
               "is refused. Inputs (model files and CSV) must be regular files, or '-' for stdin\n"
               "(one input per command), of at most 1 GiB (models) or 2 GiB (CSV);\n"
               "SCORE_CLI_INPUT_LIMIT=BYTES sets another limit.\n\n"
               "options: GNU style (getopt_long): --name VALUE or --name=VALUE, any unambiguous\n"
               "prefix of a long option (--hid 64), combined one-letter options (-qn 500), and\n"
               "'--' ending the options.\n\n"
               "score --version: the library's version and build, and which kernels its BLAS\n"
               "runs on this processor (fit=narrow: kernels of an older processor, slower;\n"
               "the hint names the setting that selects this processor's).\n"
               "libscore %s\n", score_version_string());
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        char blas[256];
        printf("score (libscore) %s\n%s\n", score_version_string(), score_build_info());
        if (score_blas_check(blas, sizeof blas, NULL) == SCORE_OK)
            printf("%s\n", blas);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(cmd, commands[i].name) == 0) {
            cli_command = commands[i].name;
            return commands[i].fn(argc, argv);
        }
    }
    char list[256] = "";
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        strcat(list, i ? ", " : "");
        strcat(list, commands[i].name);
    }
    fprintf(stderr, "score: unknown command '%s' (valid: %s; see 'score --help')\n", cmd, list);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    int rc = cli_mpi_begin(&argc, &argv);
    if (rc != 0)
        return rc;
    return cli_mpi_end(dispatch(argc, argv));
}
