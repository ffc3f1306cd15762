/* Crash-safe store of a buffer at a path (model files, trainer checkpoints).
 *
 * Guarantees:
 *   - a reader of the destination sees either the old file or the complete new one (the data
 *     is written and fsync'ed under another name, then renamed over the destination);
 *   - no temporary file outlives a crash of the writing process: on Linux the data goes into an
 *     anonymous file (O_TMPFILE) that gets a name only once it is complete, just before the
 *     rename; where O_TMPFILE or linkat() is not available, the temporary file is named
 *     "<dest>.tmp-<pid>-<n>" and every save first removes such files of <dest> whose process no
 *     longer exists (and so the orphans of older library versions too);
 *   - only regular files are replaced: a destination that is a device, FIFO, socket or
 *     directory is refused (SCORE_E_IO) and left alone; a symbolic link is followed and the
 *     regular file it names is replaced (the link stays a link); a link to a missing file or to
 *     anything but a regular file is refused. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/core-priv.h"
#include "safetensors-priv.h"

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t k = write(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: some file systems refuse fsync on directories */
        close(fd);
    }
}

/* The file that the save replaces: path itself, or the regular file a symbolic link names.
 * *dest_out is malloc'd. */
static int resolve_dest(const char *fn, const char *path, char **dest_out)
{
    struct stat st;
    int err;
    *dest_out = NULL;
    if (lstat(path, &st) != 0) {
        err = errno;
        if (err != ENOENT)
            return score__error(SCORE_E_IO, fn, "cannot examine '%s': %s", path, strerror(err));
        *dest_out = score__st_strdup(path); /* a new file */
    } else if (S_ISLNK(st.st_mode)) {
        char *real = realpath(path, NULL);
        if (real == NULL) {
            err = errno;
            if (err == ENOMEM)
                return score__error(SCORE_E_NOMEM, fn, "allocation failed");
            return score__error(SCORE_E_IO, fn,
                                "'%s' is a symbolic link that names no existing file (%s); "
                                "refusing to write through it", path, strerror(err));
        }
        if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
            score__error(SCORE_E_IO, fn, "'%s' is a symbolic link to '%s', which is not a "
                         "regular file; refusing to replace it", path, real);
            free(real);
            return SCORE_E_IO;
        }
        *dest_out = real;
    } else if (!S_ISREG(st.st_mode)) {
        return score__error(SCORE_E_IO, fn, "'%s' is not a regular file (a %s); refusing to "
                            "replace it", path,
                            S_ISDIR(st.st_mode) ? "directory" :
                            S_ISFIFO(st.st_mode) ? "FIFO" :
                            S_ISSOCK(st.st_mode) ? "socket" : "device");
    } else {
        *dest_out = score__st_strdup(path);
    }
    if (*dest_out == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    return SCORE_OK;
}

/* Parses "<pid>-<n>" (decimal, nothing after); returns the pid or -1. */
static long parse_tmp_suffix(const char *s)
{
    long pid = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (pid > 99999999L)
            return -1;
        pid = pid * 10 + (*p - '0');
    }
    if (*p++ != '-' || *p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9')
        p++;
    return *p == '\0' ? pid : -1;
}

/* Removes "<base>.tmp-<pid>-<n>" in dir whose process is gone (left by a crashed save). A
 * process that exists (kill(pid, 0) succeeds or fails with EPERM) keeps its file. */
static void remove_stale(const char *dir, const char *base)
{
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    struct dirent *e;
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        long pid;
        if (strncmp(e->d_name, base, bl) != 0 || strncmp(e->d_name + bl, ".tmp-", 5) != 0)
            continue;
        pid = parse_tmp_suffix(e->d_name + bl + 5);
        if (pid <= 0 || (pid_t)pid == getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* Creates a new named temporary file "<dest>.tmp-<pid>-<n>"; tmp has room for the name. */
static int create_named(const char *dest, char *tmp, size_t cap)
{
    int fd = -1;
    for (unsigned attempt = 0; attempt < 1000 && fd < 0; attempt++) {
        snprintf(tmp, cap, "%s.tmp-%ld-%u", dest, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    return fd;
}

#ifdef O_TMPFILE
/* Gives the anonymous file fd a fresh name "<dest>.tmp-<pid>-<n>". Returns 0, or -1 with errno
 * (EEXIST is retried with the next n). */
static int link_anonymous(int fd, const char *dest, char *tmp, size_t cap)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    for (unsigned attempt = 0; attempt < 1000; attempt++) {
        snprintf(tmp, cap, "%s.tmp-%ld-%u", dest, (long)getpid(), attempt);
        /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc link works for everyone */
        if (linkat(fd, "", AT_FDCWD, tmp, AT_EMPTY_PATH) == 0 ||
            linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}
#endif

int score__st_save_file(const char *fn, const char *path, const void *buf, size_t len)
{
    char *dest = NULL, *dir = NULL, *tmp = NULL;
    const char *base, *slash;
    size_t cap;
    int fd = -1, err, rc, named = 0;
    if (path == NULL || path[0] == '\0')
        return score__error(SCORE_E_INVAL, fn, "path is NULL or empty");
    if ((rc = resolve_dest(fn, path, &dest)) != SCORE_OK)
        return rc;
    slash = strrchr(dest, '/');
    base = slash != NULL ? slash + 1 : dest;
    if (slash == NULL) {
        dir = score__st_strdup(".");
    } else if ((dir = malloc((size_t)(slash - dest) + 2)) != NULL) {
        size_t n = slash == dest ? 1 : (size_t)(slash - dest); /* "/file" -> "/" */
        memcpy(dir, dest, n);
        dir[n] = '\0';
    }
    cap = strlen(dest) + 48;
    tmp = malloc(cap);
    if (dir == NULL || tmp == NULL) {
        rc = score__error(SCORE_E_NOMEM, fn, "allocation failed");
        goto done;
    }
    remove_stale(dir, base);
#ifdef O_TMPFILE
    /* the data goes into an anonymous file, named only once complete */
    fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0) {
        if (write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
            err = errno;
            rc = score__error(SCORE_E_IO, fn, "writing '%s' failed: %s", path, strerror(err));
            goto done;
        }
        if (link_anonymous(fd, dest, tmp, cap) == 0) {
            named = 1;
        } else { /* no linkat() for it (no /proc, no privilege): write a named file instead */
            close(fd);
            fd = -1;
        }
    }
#endif
    if (!named) {
        /* no O_TMPFILE (kernel, file system): a named temporary file */
        fd = create_named(dest, tmp, cap);
        if (fd < 0) {
            err = errno;
            rc = score__error(SCORE_E_IO, fn, "cannot create a temporary file next to '%s': %s",
                              path, strerror(err));
            goto done;
        }
        named = 1;
        if (write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
            err = errno;
            rc = score__error(SCORE_E_IO, fn, "writing '%s' failed: %s", path, strerror(err));
            goto done;
        }
    }
    rc = close(fd);
    fd = -1;
    if (rc != 0) {
        err = errno;
        rc = score__error(SCORE_E_IO, fn, "writing '%s' failed: %s", path, strerror(err));
        goto done;
    }
    if (rename(tmp, dest) != 0) {
        err = errno;
        rc = score__error(SCORE_E_IO, fn, "cannot rename the temporary file to '%s': %s", path,
                          strerror(err));
        goto done;
    }
    named = 0; /* renamed: nothing to remove */
    sync_dir(dir);
    rc = SCORE_OK;
done:
    if (fd >= 0)
        close(fd);
    if (named)
        unlink(tmp);
    free(tmp);
    free(dir);
    free(dest);
    return rc;
}
