/* log.c: levels, and the one place text reaches stderr.
 *
 * Every line goes through calm_redact before it is written, and is written
 * with a single write(2), so lines of concurrent flows (and of the curl trace
 * callback) never interleave mid-line. Line format, by level:
 *     error: <msg>      warning: <msg>      <msg> (info)
 *     debug: <msg>      trace: <msg>
 * each after "[label] " while a labelled flow runs (calm_log_set_label).
 * Control characters other than newline and tab are shown as '?', so text
 * from a server (a reflected error body) cannot drive the terminal.
 *
 * A progress line (calm_log_progress) is drawn without a newline on a TTY and
 * rewritten in place; any normal line first erases it ("\r\033[K") in the same
 * write, so the two never mix. Off a TTY progress becomes a plain info line,
 * repeated messages suppressed. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "calm.h"

/* Not yet in calm.h (asked of the lead); used by llog.c. */

#define ERASE_LINE "\r\033[K"

static int log_level = CALM_LOG_INFO;
static int progress_shown;          /* a progress line is on the terminal */
static unsigned long progress_last; /* hash of the last plain progress line */
static int tty_state = -1;          /* -1: not asked yet */

static const char *label;          /* calm_log_set_label: the running flow's */

static const char *const prefixes[] = { "error: ", "warning: ", "", "debug: ", "trace: " };

void calm_log_set_label(const char *l)
{
    label = l && l[0] ? l : NULL;
}

const char *calm_log_label(void)
{
    return label;
}

void calm_log_set_level(int level)
{
    if (level < CALM_LOG_ERROR)
        level = CALM_LOG_ERROR;
    if (level > CALM_LOG_TRACE)
        level = CALM_LOG_TRACE;
    log_level = level;
}

int calm_log_level(void)
{
    return log_level;
}

static int stderr_tty(void)
{
    if (tty_state < 0)
        tty_state = isatty(STDERR_FILENO) ? 1 : 0;
    return tty_state;
}

/* All of it, retrying short writes and EINTR; errors are dropped (there is
 * nowhere left to report a failing stderr). */
static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Appends s with "\r\n" as "\n" and other control bytes as '?'. With
 * one_line, newlines and tabs become spaces too (progress lines). */
static int put_clean(calm_buf *b, const char *s, size_t n, int one_line)
{
    size_t i, run = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char r;
        if (c >= 0x20 && c != 0x7f)
            continue;
        if (!one_line && (c == '\n' || c == '\t'))
            continue;
        if (calm_buf_append(b, s + run, i - run) != 0)
            return -1;
        run = i + 1;
        if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
            continue;   /* the '\n' follows in the next run */
        r = (c == '\n' || c == '\t' || c == '\r') ? ' ' : '?';
        if (calm_buf_putc(b, r) != 0)
            return -1;
    }
    return calm_buf_append(b, s + run, n - run);
}

/* "[label] ", the label redacted and cleaned like the line itself. */
static int put_label(calm_buf *line)
{
    calm_buf red;
    int rc;

    calm_buf_init(&red);
    rc = calm_redact(label, strlen(label), &red);
    if (rc == 0)
        rc = calm_buf_putc(line, '[');
    if (rc == 0)
        rc = put_clean(line, red.data, red.len, 1);
    if (rc == 0)
        rc = calm_buf_puts(line, "] ");
    calm_buf_free(&red);
    return rc;
}

/* The message; with a label, each of its lines starts with "[label] " (a
 * multi-line message of a fleet tenant names it on every line); with
 * `every` (a trace block), each line also repeats the level's prefix and it,
 * so every line of a --trace block reads "trace: < ...". */
static int put_lines(calm_buf *line, const char *s, size_t n, int one_line, const char *prefix,
                     const char *every)
{
    const char *nl;
    int rc = 0;

    while (rc == 0 && (label || every) && !one_line && (nl = memchr(s, '\n', n)) != NULL) {
        size_t k = (size_t)(nl - s) + 1;
        rc = put_clean(line, s, k, 0);
        if (rc == 0 && label)
            rc = put_label(line);
        if (rc == 0 && every)
            rc = calm_buf_puts(line, prefix);
        if (rc == 0 && every)
            rc = calm_buf_puts(line, every);
        s += k;
        n -= k;
    }
    return rc == 0 ? put_clean(line, s, n, one_line) : rc;
}

/* Builds [erase] [label] prefix redacted(msg) [newline] and writes it at once. When
 * memory runs out the line is replaced by a fixed notice: unredacted text
 * must never be the fallback. */
static void emit_line(const char *prefix, const char *every, const char *msg, size_t n, int progress)
{
    static const char oom[] = ERASE_LINE "error: (a log line was lost: out of memory)\n";
    size_t skip = progress_shown ? 0 : sizeof ERASE_LINE - 1;
    calm_buf red, line;
    int rc;

    calm_buf_init(&red);
    calm_buf_init(&line);
    rc = calm_redact(msg ? msg : "", msg ? n : 0, &red);
    if (rc == 0 && progress_shown)
        rc = calm_buf_puts(&line, ERASE_LINE);
    if (rc == 0 && label)
        rc = put_label(&line);
    if (rc == 0)
        rc = calm_buf_puts(&line, prefix);
    if (rc == 0 && every)
        rc = calm_buf_puts(&line, every);
    if (rc == 0) {
        size_t len = red.len;
        if (progress) {
            /* One terminal row: a wrapped line could not be rewritten by \r. */
            struct winsize ws;
            size_t cols = 80;
            if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
                cols = ws.ws_col;
            if (len > cols - 1) {
                len = cols - 1;
                while (len > 0 && ((unsigned char)red.data[len] & 0xc0) == 0x80)
                    len--;  /* not inside a UTF-8 sequence */
            }
        } else {
            while (len > 0 && red.data[len - 1] == '\n')
                len--;      /* the caller's newline is ours to add */
        }
        rc = put_lines(&line, red.data, len, progress, prefix, every);
    }
    if (rc == 0 && !progress)
        rc = calm_buf_putc(&line, '\n');
    if (rc == 0)
        write_all(line.data, line.len);
    else
        write_all(oom + skip, sizeof oom - 1 - skip);
    progress_shown = progress && rc == 0;
    calm_buf_free(&red);
    calm_buf_free(&line);
}

void calm_log_write(int level, const char *msg, size_t n)
{
    if (level > log_level)
        return;
    if (level < CALM_LOG_ERROR)
        level = CALM_LOG_ERROR;
    emit_line(prefixes[level], NULL, msg, n, 0);
}

void calm_log_write_each(int level, const char *lead, const char *msg, size_t n)
{
    if (level > log_level)
        return;
    if (level < CALM_LOG_ERROR)
        level = CALM_LOG_ERROR;
    emit_line(prefixes[level], lead, msg, n, 0);
}

void calm_log(int level, const char *fmt, ...)
{
    char small[512], *big = NULL;
    va_list ap;
    int len;

    if (level > log_level)
        return;
    va_start(ap, fmt);
    len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof small) {
        big = malloc((size_t)len + 1);
        if (!big) {
            calm_log_write(level, small, sizeof small - 1);    /* cut, still redacted */
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    calm_log_write(level, big ? big : small, (size_t)len);
    if (big) {
        calm_wipe(big, (size_t)len);
        free(big);
    }
    calm_wipe(small, sizeof small);     /* a formatted line may hold a secret */
}

/* FNV-1a: enough to notice "the same message again". */
static unsigned long hash(const char *s, size_t n)
{
    unsigned long h = 2166136261UL;
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619UL;
    return h | 1;   /* never 0, the "nothing yet" value */
}

/* Shows msg as the current progress. Quiet levels (error, warn) show none. */
void calm_log_progress(const char *msg, size_t n)
{
    unsigned long h;

    if (log_level < CALM_LOG_INFO)
        return;
    if (stderr_tty()) {
        static int erase_at_exit;
        /* A line left without its newline would run into the shell prompt. */
        if (!erase_at_exit)
            erase_at_exit = atexit(calm_log_progress_done) == 0;
        emit_line("", NULL, msg, n, 1);
        return;
    }
    /* A poll loop reports the same state every few seconds: one line is
     * enough for a log file. */
    h = hash(msg ? msg : "", msg ? n : 0);
    if (h == progress_last)
        return;
    calm_log_write(CALM_LOG_INFO, msg, n);
    progress_last = h;
}

/* Erases the progress line (TTY) and forgets the last message. */
void calm_log_progress_done(void)
{
    if (progress_shown) {
        write_all(ERASE_LINE, sizeof ERASE_LINE - 1);
        progress_shown = 0;
    }
    progress_last = 0;
}
