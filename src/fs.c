/* fs.c: the file operations the core does itself, because getting them
 * right takes care: writing a secret file atomically with mode 0600,
 * creating an output directory and probing that one can write in it (the
 * reading side is fs_read.c). calm.fs (lfs.c) wraps them.
 *
 * Error convention (calm.h declares only `err`): on failure both functions
 * return -1, write a message naming the path and the errno text into err
 * (never any data), and leave errno set to the cause, so the Lua layer can
 * return a stable code. Two causes have no errno of their own and use one
 * that the system calls made here do not produce for files:
 *   ENOTSUP  the path is not a regular file (FIFO, directory, device, or a
 *            symlink at a write target)          -> Lua code NOT_FILE
 *   EFBIG    the file is larger than the cap    -> Lua code TOO_LARGE */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calm.h"
#include "fs_internal.h"

static int create_temp(int dfd, const char *base, char *tmp, size_t tmplen);

int calm_make_dirs(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    size_t n = strlen(path), i;
    struct stat st;
    if (n == 0 || n >= sizeof buf) {
        errno = n ? ENAMETOOLONG : ENOENT;
        set_err(err, errlen, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
            set_err(err, errlen, "cannot create '%s': %s", buf, strerror(errno));
            return -1;
        }
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            set_err(err, errlen, "cannot create '%s': %s is not a directory", path, buf);
            return -1;
        }
        if (i < n)
            buf[i] = '/';
    }
    return 0;
}

int calm_probe_dir(const char *dir, char *err, size_t errlen)
{
    char tmp[96];
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;
    if (dfd < 0) {
        set_err(err, errlen, "cannot write in '%s': %s", dir, strerror(errno));
        return -1;
    }
    fd = create_temp(dfd, "calmbind-probe", tmp, sizeof tmp);
    if (fd < 0) {
        set_err(err, errlen, "cannot write in '%s': %s", dir, strerror(errno));
        close_keep_errno(dfd);
        return -1;
    }
    close(fd);
    unlinkat(dfd, tmp, 0);
    close(dfd);
    return 0;
}

/* Writes all n bytes, riding over EINTR and short writes. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {           /* should not happen for a regular file */
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Creates ".<name>.<16 hex>.tmp" next to the target with O_EXCL, so an
 * attacker's pre-planted file or symlink under that name makes us fail or
 * retry, never write through it. Returns the fd or -1. */
static int create_temp(int dfd, const char *base, char *tmp, size_t tmplen)
{
    int tries;
    for (tries = 0; tries < 8; tries++) {
        unsigned char r[8];
        char hex[17];
        int i, fd;
        if (calm_random_bytes(r, sizeof r) != 0)
            return -1;
        for (i = 0; i < 8; i++)
            snprintf(hex + 2 * i, 3, "%02x", r[i]);
        /* The name part is cut so the result stays far below NAME_MAX. */
        snprintf(tmp, tmplen, ".%.64s.%s.tmp", base, hex);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Refuses a target that exists and is not a regular file (a symlink, a
 * directory, a device, a FIFO). Returns 0; -1 with errno set; -2 with the
 * message in err. Policy, not safety: rename never writes through a symlink,
 * but silently replacing a link the user made would surprise them, and
 * replacing a device or FIFO with a file is never what was meant. */
static int check_target(int dfd, const char *base, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISLNK(st.st_mode) && S_ISREG(st.st_mode))
        return 0;
    errno = ENOTSUP;
    set_err(err, errlen, "cannot write '%s': %s", path,
            S_ISLNK(st.st_mode) ? "it is a symbolic link; refusing to replace it"
            : S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file");
    return -2;
}

/* Until the temp file is renamed or removed, Ctrl-C or a SIGTERM must not
 * leave a partial secret next to the target: such a signal waits and is
 * delivered once the cleanup is done. Returns 1 if blocked. */
static int block_stop_signals(sigset_t *saved)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    sigaddset(&stop, SIGQUIT);
    return sigprocmask(SIG_BLOCK, &stop, saved) == 0;
}

/* Writes data to a new temp file in dfd and renames it over base. Returns
 * NULL, or the step that failed (errno set); *tmp_left tells whether a temp
 * file named tmp is left for the caller to remove. */
static const char *replace_via_temp(int dfd, const char *base, const char *data, size_t n,
                                    char *tmp, size_t tmplen, int *tmp_left)
{
    const char *step = NULL;
    int fd = create_temp(dfd, base, tmp, tmplen);
    *tmp_left = fd >= 0;
    if (fd < 0)
        return "creating a temporary file";
    /* The mode given to openat is filtered by the umask (and could be
     * narrowed to 0400 by umask 0277): set it explicitly so the result is
     * 0600 whatever the caller's umask. */
    if (fchmod(fd, 0600) != 0)
        step = "setting mode 0600";
    else if (write_all(fd, data, n) != 0)
        step = "writing";
    else if (fsync(fd) != 0)
        step = "syncing";
    if (step) {
        close_keep_errno(fd);
        return step;
    }
    /* close can report a deferred write error (NFS): check it. */
    if (close(fd) != 0)
        return "closing";
    if (renameat(dfd, tmp, dfd, base) != 0)
        return "renaming the temporary file";
    *tmp_left = 0;
    return NULL;
}

/* The directory part of path (malloc'd; "." for a bare name) and, in *base,
 * the name in it; NULL with errno set for a path that names no file. */
static char *split_path(const char *path, const char **base)
{
    size_t plen = strlen(path);
    const char *slash = strrchr(path, '/');
    char *dir;
    if (plen == 0 || path[plen - 1] == '/') {
        errno = plen ? EISDIR : ENOENT;
        return NULL;
    }
    *base = slash ? slash + 1 : path;
    dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        errno = ENOMEM;
    return dir;
}

int calm_write_private(const char *path, const char *data, size_t n, char *err, size_t errlen)
{
    char tmp[96], *dir;
    const char *base, *step = NULL;
    int dfd = -1, tmp_left = 0, rc = -1, blocked = 0, t;
    sigset_t saved;

    if (!(dir = split_path(path, &base))) {
        set_err(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        errno = EISDIR;
        step = "checking the target";
        goto out;
    }
    /* Everything below is relative to one directory fd, so the checks, the
     * temp file and the rename all refer to the same directory even if a
     * path component is swapped meanwhile. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        step = "opening its directory";
        goto out;
    }
    if ((t = check_target(dfd, base, path, err, errlen)) == -2)
        goto out_msg;
    if (t != 0) {
        step = "checking the target";
        goto out;
    }
    blocked = block_stop_signals(&saved);
    step = replace_via_temp(dfd, base, data, n, tmp, sizeof tmp, &tmp_left);
    /* Makes the rename itself durable. Some file systems cannot sync a
     * directory (EINVAL); that is no failure of ours. Any other error is
     * reported although the new content is already in place. */
    if (!step && fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
        step = "syncing its directory (the new content is in place)";
    if (!step)
        rc = 0;

out:
    if (rc != 0)
        set_err(err, errlen, "cannot write '%s': %s: %s", path, step, strerror(errno));
out_msg:
    if (tmp_left) {
        int e = errno;
        unlinkat(dfd, tmp, 0);
        errno = e;
    }
    if (dfd >= 0)
        close_keep_errno(dfd);
    free(dir);
    if (blocked) {
        int e = errno;
        sigprocmask(SIG_SETMASK, &saved, NULL);
        errno = e;
    }
    return rc;
}
