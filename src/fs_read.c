/* fs_read.c: reading what calmbind is given, with a size cap that cannot be
 * tricked into reading a FIFO or a device forever: a file that must be a
 * regular one (calm_read_file), and an input that may be a pipe on purpose
 * (standard input, /dev/fd/N, a FIFO; calm_read_input), and a person's
 * one-line answer at the controlling terminal (calm_ask). What a failed read
 * appended is wiped. Errors follow fs.c's convention (fs_internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calm.h"
#include "fs_internal.h"

/* Drops what a failed read appended to b, wiping it first. */
static void buf_truncate(calm_buf *b, size_t len)
{
    if (b->data && b->len > len) {
        calm_wipe(b->data + len, b->len - len);
        b->len = len;
        b->data[len] = '\0';
    }
}

/* Reads fd to the end into out, at most max bytes. st_size is only a hint
 * (procfs says 0, the file may grow meanwhile): the cap is enforced on the
 * bytes actually read, reading one byte past it to tell "exactly max" from
 * "more". Returns 0, or -1 with errno set (EFBIG: over the cap). */
static int read_capped(int fd, size_t max, calm_buf *out)
{
    unsigned char chunk[16384];
    size_t got = 0;
    int rc = 0;
    for (;;) {
        size_t room = max - got;
        size_t want = room < sizeof chunk ? room + 1 : sizeof chunk;
        ssize_t r = read(fd, chunk, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -1 : 0;
            break;
        }
        if ((size_t)r > room) {
            errno = EFBIG;
            rc = -1;
            break;
        }
        if (calm_buf_append(out, chunk, (size_t)r) != 0) {
            errno = ENOMEM;
            rc = -1;
            break;
        }
        got += (size_t)r;
    }
    calm_wipe(chunk, sizeof chunk);
    return rc;
}

/* Reads the open fd to the end (or the cap) into out; name is for messages.
 * Returns 0, or -1 with err and errno set and nothing left appended. */
static int read_opened(int fd, const char *name, const struct stat *st, size_t max, calm_buf *out,
                       char *err, size_t errlen)
{
    size_t start = out->len;
    if (S_ISREG(st->st_mode) && (uintmax_t)st->st_size > (uintmax_t)max)
        errno = EFBIG;
    /* Even an empty file leaves out a valid C string. */
    if ((S_ISREG(st->st_mode) && (uintmax_t)st->st_size > (uintmax_t)max) || read_capped(fd, max, out) != 0 ||
        (!out->data && calm_buf_append(out, "", 0) != 0 && (errno = ENOMEM))) {
        if (errno == EFBIG)
            set_err(err, errlen, "cannot read %s: larger than %zu bytes", name, max);
        else
            set_err(err, errlen, "cannot read %s: %s", name, strerror(errno));
        buf_truncate(out, start);
        return -1;
    }
    return 0;
}

/* Opens path for reading without waiting on a FIFO (fstat judges it after
 * the open: stat then open would race with a rename) and without making a
 * terminal ours. Returns the fd (st filled) or -1 with err set. */
static int open_for_read(const char *path, struct stat *st, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        set_err(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0) {
        set_err(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        close_keep_errno(fd);
        return -1;
    }
    return fd;
}

static void set_blocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

int calm_read_file(const char *path, size_t max, calm_buf *out, char *err, size_t errlen)
{
    struct stat st;
    char name[300];
    int fd, rc;

    /* Symlinks are followed: a link to a regular file is fine, and what it
     * points at is judged by fstat, so a link to /dev/zero is refused like
     * /dev/zero itself. */
    if ((fd = open_for_read(path, &st, err, errlen)) < 0)
        return -1;
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = ENOTSUP;
        set_err(err, errlen, "cannot read '%s': not a regular file", path);
        return -1;
    }
    set_blocking(fd);
    snprintf(name, sizeof name, "'%.280s'", path);
    rc = read_opened(fd, name, &st, max, out, err, errlen);
    close_keep_errno(fd);
    return rc;
}

/* What an input stream may be: anything that ends, read up to the cap, but
 * not a directory and not a terminal (a secret typed there is echoed).
 * Returns 0, or -1 with errno ENOTSUP and err set. */
static int judge_stream(int fd, const struct stat *st, const char *name, char *err, size_t errlen)
{
    const char *why = S_ISDIR(st->st_mode) ? "it is a directory"
                    : isatty(fd) ? "it is a terminal; pipe the key in or name a file"
                    : S_ISBLK(st->st_mode) ? "it is a block device" : NULL;
    if (!why)
        return 0;
    errno = ENOTSUP;
    set_err(err, errlen, "cannot read %s: %s", name, why);
    return -1;
}

int calm_read_input(const char *path, size_t max, calm_buf *out, char *err, size_t errlen)
{
    struct stat st;
    char name[300];
    int fd, rc;

    if (!path) {                    /* standard input, as it is */
        snprintf(name, sizeof name, "standard input");
        if (fstat(0, &st) != 0) {
            set_err(err, errlen, "cannot read standard input: %s", strerror(errno));
            return -1;
        }
        if (judge_stream(0, &st, name, err, errlen) != 0)
            return -1;
        return read_opened(0, name, &st, max, out, err, errlen);
    }
    snprintf(name, sizeof name, "'%.280s'", path);
    if ((fd = open_for_read(path, &st, err, errlen)) < 0)
        return -1;
    if (judge_stream(fd, &st, name, err, errlen) != 0) {
        close_keep_errno(fd);
        return -1;
    }
    if (S_ISFIFO(st.st_mode)) {
        /* A named FIFO whose writer has not opened it yet would read as
         * empty: open it again the blocking way (as cat does), the same one. */
        struct stat again;
        int fd2 = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        close(fd);
        if (fd2 < 0 || fstat(fd2, &again) != 0 || again.st_dev != st.st_dev || again.st_ino != st.st_ino) {
            if (fd2 >= 0) {
                close(fd2);
                errno = EIO;        /* replaced between the two opens */
            }
            set_err(err, errlen, "cannot read %s: %s", name, strerror(errno));
            return -1;
        }
        fd = fd2;
    }
    set_blocking(fd);
    rc = read_opened(fd, name, &st, max, out, err, errlen);
    close_keep_errno(fd);
    return rc;
}

/* Writes all of s to fd (a terminal may take it in pieces). */
static int write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The question goes to the controlling terminal itself, not to stdin or
 * stderr: those may be a pipe or a log file (`rotate ... 2>log`) while a
 * person still sits at the terminal; without one (a CI job, cron, ssh
 * without -t) open fails and nobody is asked. The answer is one line,
 * at most cap - 1 bytes kept (a longer line is read to its end and cut). */
int calm_ask(const char *prompt, char *answer, size_t cap, char *err, size_t errlen)
{
    size_t len = 0;
    int fd, got_line = 0;
    char c;

    if (cap == 0) {
        errno = EINVAL;
        set_err(err, errlen, "no room for an answer");
        return -1;
    }
    answer[0] = '\0';
    fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "no terminal to ask on (/dev/tty: %s)", strerror(errno));
        errno = ENOTTY;
        return -1;
    }
    if (write_all(fd, prompt, strlen(prompt)) != 0) {
        set_err(err, errlen, "cannot write to the terminal: %s", strerror(errno));
        close_keep_errno(fd);
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            set_err(err, errlen, "cannot read the terminal: %s", strerror(errno));
            close_keep_errno(fd);
            return -1;
        }
        if (r == 0)
            break;
        if (c == '\n') {
            got_line = 1;
            break;
        }
        if (len + 1 < cap)
            answer[len++] = c;
    }
    answer[len] = '\0';
    if (!got_line) {
        /* Ctrl-D: what follows starts on a line of its own */
        (void)write_all(fd, "\n", 1);
        if (len == 0) {
            close(fd);
            errno = ENODATA;
            set_err(err, errlen, "no answer (end of input at the terminal)");
            return -1;
        }
    }
    close(fd);
    return 0;
}
