/* Input and output files of the `score` tool: every file it reads goes through
 * cli_read_input() (a regular-file check and a size limit), every file it writes is a regular
 * file (cli_output_check(), cli_output_open(); model files are stored by the library, which
 * applies the same rules). */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" :
           S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" :
           "not a regular file";
}

size_t cli_input_limit(size_t default_limit)
{
    const char *s = getenv("SCORE_CLI_INPUT_LIMIT");
    char *end;
    if (s == NULL || *s == '\0')
        return default_limit;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || *s == '-' || v == 0 || v > SIZE_MAX / 2)
        return default_limit;
    return (size_t)v;
}

int cli_output_check(const char *path, char *err, size_t err_len)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0; /* a new file (or an error that opening it will report) */
    if (S_ISLNK(st.st_mode)) {
        if (stat(path, &st) != 0) {
            snprintf(err, err_len, "cannot write '%s': it is a symbolic link that names no "
                     "existing file", path);
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            snprintf(err, err_len, "cannot write '%s': it is a symbolic link to %s, not to a "
                     "regular file", path, kind_of(st.st_mode));
            return -1;
        }
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "cannot write '%s': it is %s, not a regular file", path,
                 kind_of(st.st_mode));
        return -1;
    }
    return 0;
}

FILE *cli_output_open(const char *path, char *err, size_t err_len)
{
    struct stat st;
    if (cli_output_check(path, err, err_len) != 0)
        return NULL;
    /* O_NONBLOCK: a FIFO put in place since the check must not block the open; the file is
     * truncated only once it is known to be a regular file. */
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0666);
    if (fd < 0) {
        snprintf(err, err_len, "cannot write '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "cannot write '%s': it is %s, not a regular file", path,
                 kind_of(st.st_mode));
        close(fd);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    FILE *f = NULL;
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 || ftruncate(fd, 0) != 0 ||
        (f = fdopen(fd, "w")) == NULL) {
        snprintf(err, err_len, "cannot write '%s': %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    return f;
}

/* Reads f to its end, at most limit bytes (more is an error). */
static int read_stream(FILE *f, const char *name, const char *what, size_t limit,
                       unsigned char **buf_out, size_t *len_out, char *err, size_t err_len)
{
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap + 1);
    if (buf == NULL) {
        snprintf(err, err_len, "%s: out of memory", name);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (len > limit)
                break;
            size_t ncap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            unsigned char *nb = ncap > cap ? realloc(buf, ncap + 1) : NULL;
            if (nb == NULL) {
                free(buf);
                snprintf(err, err_len, "%s: out of memory", name);
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        snprintf(err, err_len, "cannot read %s'%s': %s", what, name, strerror(errno));
        return -1;
    }
    if (len > limit) {
        free(buf);
        snprintf(err, err_len, "%s'%s' is larger than the input limit of %zu bytes (set "
                 "SCORE_CLI_INPUT_LIMIT to change it)", what, name, limit);
        return -1;
    }
    buf[len] = 0;
    *buf_out = buf;
    *len_out = len;
    return 0;
}

int cli_read_input(const char *path, const char *what, size_t limit, unsigned char **buf_out,
                   size_t *len_out, char *err, size_t err_len)
{
    struct stat st;
    *buf_out = NULL;
    *len_out = 0;
    if (strcmp(path, "-") == 0)
        return read_stream(stdin, "<stdin>", what, limit, buf_out, len_out, err, err_len);
    /* O_NONBLOCK: opening a FIFO must not wait for a writer before it is refused */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, err_len, "cannot open %s'%s': %s", what, path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "cannot read %s'%s': it is %s, not a regular file", what, path,
                 kind_of(st.st_mode));
        close(fd);
        return -1;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > (unsigned long long)limit) {
        snprintf(err, err_len, "%s'%s' is larger than the input limit of %zu bytes (set "
                 "SCORE_CLI_INPUT_LIMIT to change it)", what, path, limit);
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    FILE *f = NULL;
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 || (f = fdopen(fd, "rb")) == NULL) {
        snprintf(err, err_len, "cannot read %s'%s': %s", what, path, strerror(errno));
        close(fd);
        return -1;
    }
    /* the size check above is repeated while reading: the file may grow meanwhile */
    int rc = read_stream(f, path, what, limit, buf_out, len_out, err, err_len);
    fclose(f);
    return rc;
}
