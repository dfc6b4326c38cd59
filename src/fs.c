/* fs.c: the two file operations the core does itself, because getting them
 * right takes care: writing a secret file atomically with mode 0600, and
 * reading a file with a size cap that cannot be tricked into reading a FIFO
 * or a device forever. calm.fs (lfs.c) wraps them for Lua.
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

/* Formats into err (if any) without disturbing errno. */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    errno = e;
}

/* Drops what a failed read appended to b, wiping it first. */
static void buf_truncate(calm_buf *b, size_t len)
{
    if (b->data && b->len > len) {
        calm_wipe(b->data + len, b->len - len);
        b->len = len;
        b->data[len] = '\0';
    }
}

/* close() that keeps the errno of the failure being reported. */
static void close_keep_errno(int fd)
{
    int e = errno;
    close(fd);
    errno = e;
}

int calm_read_file(const char *path, size_t max, calm_buf *out, char *err, size_t errlen)
{
    unsigned char chunk[16384];
    size_t start = out->len, got = 0;
    struct stat st;
    int fd, flags;

    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer; we refuse FIFOs anyway, but only after fstat on the open fd
     * (stat then open would race with a rename). Symlinks are followed: a
     * link to a regular file is fine, and what it points at is judged by
     * fstat, so a link to /dev/zero is refused like /dev/zero itself. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        set_err(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        set_err(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        close_keep_errno(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = ENOTSUP;
        set_err(err, errlen, "cannot read '%s': not a regular file", path);
        return -1;
    }
    if ((uintmax_t)st.st_size > (uintmax_t)max)
        goto too_large;
    flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);

    /* st_size is only a hint (procfs says 0, the file may grow meanwhile):
     * the cap is enforced on the bytes actually read, reading one byte past
     * it to tell "exactly max" from "more". */
    for (;;) {
        size_t room = max - got;
        size_t want = room < sizeof chunk ? room + 1 : sizeof chunk;
        ssize_t r = read(fd, chunk, want);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            set_err(err, errlen, "cannot read '%s': %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        if ((size_t)r > room)
            goto too_large;
        if (calm_buf_append(out, chunk, (size_t)r) != 0) {
            errno = ENOMEM;
            set_err(err, errlen, "cannot read '%s': %s", path, strerror(errno));
            goto fail;
        }
        got += (size_t)r;
    }
    calm_wipe(chunk, sizeof chunk);
    close(fd);
    /* Even an empty file leaves out a valid C string. */
    if (!out->data && calm_buf_append(out, "", 0) != 0) {
        errno = ENOMEM;
        set_err(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    return 0;

too_large:
    errno = EFBIG;
    set_err(err, errlen, "cannot read '%s': larger than %zu bytes", path, max);
fail:
    calm_wipe(chunk, sizeof chunk);
    buf_truncate(out, start);
    close_keep_errno(fd);
    return -1;
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

int calm_write_private(const char *path, const char *data, size_t n, char *err, size_t errlen)
{
    char tmp[96], *dir = NULL;
    const char *base, *slash, *step = NULL;
    int dfd = -1, fd = -1, created = 0, renamed = 0, rc = -1, blocked = 0;
    size_t plen = strlen(path);
    struct stat st;
    sigset_t stop, saved;

    if (plen == 0 || path[plen - 1] == '/') {
        errno = plen ? EISDIR : ENOENT;
        set_err(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    slash = strrchr(path, '/');
    base = slash ? slash + 1 : path;
    dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) {
        errno = ENOMEM;
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
    /* Policy, not safety: rename never writes through a symlink, but silently
     * replacing a link the user made would surprise them, and replacing a
     * device or FIFO with a file is never what was meant. */
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode) || !S_ISREG(st.st_mode)) {
            errno = ENOTSUP;
            set_err(err, errlen, "cannot write '%s': %s", path,
                    S_ISLNK(st.st_mode) ? "it is a symbolic link; refusing to replace it"
                    : S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file");
            goto out_msg;
        }
    } else if (errno != ENOENT) {
        step = "checking the target";
        goto out;
    }

    /* From here until the temp file is renamed or removed, Ctrl-C or a
     * SIGTERM must not leave a partial secret next to the target: such a
     * signal waits and is delivered once the cleanup below is done. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    sigaddset(&stop, SIGQUIT);
    blocked = sigprocmask(SIG_BLOCK, &stop, &saved) == 0;
    fd = create_temp(dfd, base, tmp, sizeof tmp);
    if (fd < 0) {
        step = "creating a temporary file";
        goto out;
    }
    created = 1;
    /* The mode given to openat is filtered by the umask (and could be
     * widened by nothing, but narrowed to 0400 by umask 0277): set it
     * explicitly so the result is 0600 whatever the caller's umask. */
    if (fchmod(fd, 0600) != 0) {
        step = "setting mode 0600";
        goto out;
    }
    if (write_all(fd, data, n) != 0) {
        step = "writing";
        goto out;
    }
    if (fsync(fd) != 0) {
        step = "syncing";
        goto out;
    }
    /* close can report a deferred write error (NFS): check it. */
    if (close(fd) != 0) {
        fd = -1;
        step = "closing";
        goto out;
    }
    fd = -1;
    if (renameat(dfd, tmp, dfd, base) != 0) {
        step = "renaming the temporary file";
        goto out;
    }
    renamed = 1;
    /* Makes the rename itself durable. Some file systems cannot sync a
     * directory (EINVAL); that is no failure of ours. Any other error is
     * reported although the new content is already in place. */
    if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS) {
        step = "syncing its directory (the new content is in place)";
        goto out;
    }
    rc = 0;

out:
    if (rc != 0)
        set_err(err, errlen, "cannot write '%s': %s: %s", path, step, strerror(errno));
out_msg:
    if (fd >= 0)
        close_keep_errno(fd);
    if (created && !renamed) {
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
