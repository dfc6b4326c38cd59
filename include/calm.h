/* calm.h: the C core's internal API, shared by the Lua modules, the host and the
 * unit tests. Nothing here knows about BTP; that is all Lua (scripts/calm/). */
#ifndef CALM_H
#define CALM_H

#include <stddef.h>
#include <time.h>

#define CALM_VERSION "0.1.0"

/* Exit statuses of the command-line contract (design.md). */
enum calm_exit {
    CALM_EXIT_OK = 0,
    CALM_EXIT_API = 1,      /* BTP/API or transport failure */
    CALM_EXIT_USAGE = 2,    /* usage or bad input */
    CALM_EXIT_AUTH = 3,     /* authentication refused */
    CALM_EXIT_MANUAL = 4,   /* a manual step is needed */
    CALM_EXIT_DEADLINE = 5, /* --timeout passed */
    CALM_EXIT_VERIFY = 6    /* verification failed */
};

/* ---- buf.c: growable byte buffer, always NUL-terminated ---------------- */
typedef struct calm_buf {
    char *data;   /* NULL until the first append */
    size_t len;   /* bytes used, not counting the NUL */
    size_t cap;   /* bytes allocated */
} calm_buf;

void calm_buf_init(calm_buf *b);
/* Returns 0, or -1 when memory runs out (the buffer is left as it was). */
int calm_buf_append(calm_buf *b, const void *p, size_t n);
int calm_buf_putc(calm_buf *b, int c);
int calm_buf_puts(calm_buf *b, const char *s);
/* Empties the buffer and zeroes what it held (it may have held a secret). */
void calm_buf_reset(calm_buf *b);
/* Zeroes and frees; the buffer is then as after calm_buf_init. */
void calm_buf_free(calm_buf *b);
/* Zeroes memory in a way the compiler may not drop. */
void calm_wipe(void *p, size_t n);

/* ---- codec.c: pure encodings (no Lua) ---------------------------------- */
/* Standard base64 with padding, or base64url without padding when url != 0. */
int calm_b64_encode(const unsigned char *in, size_t n, int url, calm_buf *out);
/* Accepts both alphabets, padding optional, no white space. Returns 0, -1 on
 * invalid input (out then holds nothing meaningful), -2 on memory. */
int calm_b64_decode(const char *in, size_t n, calm_buf *out);
/* RFC 3986 percent-encoding of everything but unreserved; form != 0 encodes
 * space as '+' (application/x-www-form-urlencoded). */
int calm_url_encode(const char *in, size_t n, int form, calm_buf *out);
/* Returns 0, -1 on a bad %XX escape; form != 0 decodes '+' as space. */
int calm_url_decode(const char *in, size_t n, int form, calm_buf *out);
/* Fills p with n bytes from getrandom(2). Returns 0 or -1. */
int calm_random_bytes(unsigned char *p, size_t n);

/* ---- ijson.c: the I-JSON (RFC 7493) check before any JSON is decoded -- */
/* A fault: kind is one of "truncated", "syntax", "utf8", "surrogate",
 * "noncharacter", "duplicate", "number", "depth"; at is its 1-based byte
 * offset; what says what was wrong in one line and quotes nothing of the
 * input but a duplicate member's name (printable ASCII, at most 40 bytes). */
typedef struct calm_ijson_fault {
    const char *kind;
    size_t at;
    char what[96];
} calm_ijson_fault;
/* Checks that s[0..n) is one JSON text (RFC 8259) that is also I-JSON:
 * UTF-8 without surrogates or noncharacters, no duplicate member names, no
 * number beyond a double's range; and nested at most max_depth deep.
 * Returns 0, -1 with *f filled in, or -2 when memory runs out. */
int calm_ijson_check(const char *s, size_t n, int max_depth, calm_ijson_fault *f);

/* ---- url.c: absolute URLs over libcurl's URL API ----------------------- */
/* A URL taken apart: scheme and host lower case (an IPv6 host in brackets),
 * path at least "/", query and fragment without '?'/'#' (NULL when absent),
 * port 0 when none is written. Strings are malloc'd; calm_url_free frees. */
typedef struct calm_url {
    char *scheme, *host, *path, *query, *fragment;
    int port;
    int userinfo;   /* it had user:password@ (dropped; only with CALM_URL_USERINFO) */
    int ip;         /* the host is an IPv4 or IPv6 literal */
    int loopback;   /* localhost, *.localhost, 127.x.y.z, [::1] */
} calm_url;
#define CALM_URL_USERINFO 1u       /* accept and drop user:password@ (proxy settings) */
#define CALM_URL_DEFAULT_HTTP 2u   /* "host:port" without a scheme is http (proxy settings) */
/* Takes s apart, strictly: printable ASCII, a scheme and a host, no user
 * name or password (unless CALM_URL_USERINFO), a port 1-65535, a path of
 * unreserved characters, %XX, ':', '@' and '/', query and fragment of RFC
 * 3986's characters. Returns 0; -1 with *why ("is not an absolute URL", "has
 * an invalid port", ...: it completes "<field> ..."); -2 out of memory. */
int calm_url_parse(const char *s, unsigned flags, calm_url *u, const char **why);
void calm_url_free(calm_url *u);
/* Appends the URL of in's parts (path, query and fragment as given, already
 * encoded) to out; the result is held to calm_url_parse's rules. Returns 0,
 * -1 with *why, -2 out of memory. */
int calm_url_build(const calm_url *in, calm_buf *out, const char **why);
/* 1 for a host that never leaves the machine: localhost, *.localhost,
 * 127.x.y.z, [::1]. */
int calm_url_is_loopback(const char *host);

/* ---- httpdate.c: Retry-After and friends ------------------------------- */
/* Parses a Retry-After value in any form seen from BTP: delta seconds
 * ("120"), an RFC 7231 HTTP-date (IMF-fixdate, RFC 850, asctime), or Service
 * Manager's Go form "2024-11-11 14:59:33 +0000 UTC". `now` is the current
 * wall-clock time. On success stores the wait in seconds (never negative: a
 * date in the past gives 0) and returns 0; returns -1 when unparsable. */
int calm_parse_retry_after(const char *value, size_t n, time_t now, double *seconds);

/* ---- redact.c: the secret registry and text redaction ------------------ */
/* Registers a value that must never be printed. Values shorter than
 * CALM_REDACT_MIN are ignored (they would mask ordinary text). */
#define CALM_REDACT_MIN 6
int calm_redact_add(const char *s, size_t n);
size_t calm_redact_count(void);
void calm_redact_clear(void);   /* wipes and frees every registered value */
/* Scopes: a value registered while scope s is current belongs to s and
 * calm_redact_forget(s) wipes and forgets it (and returns how many values it
 * forgot), so a process that handles many tenants one after another need not
 * keep every secret it ever saw. Scope 0 (the default) is never forgotten; a
 * value registered in scope 0 too stays. calm_redact_scope_new returns a new
 * nonzero scope; calm_redact_set_scope makes one current (the scheduler does,
 * for the flow it resumes). */
unsigned calm_redact_scope_new(void);
void calm_redact_set_scope(unsigned scope);
size_t calm_redact_forget(unsigned scope);
/* Copies in to out with: every registered value -> "***"; the values of JSON
 * fields and form fields whose names look secret (secret, password, token,
 * key, certificate, assertion...) -> "***"; "Bearer x"/"Basic x" -> "***".
 * Returns 0 or -1 on memory. */
int calm_redact(const char *in, size_t n, calm_buf *out);
/* 1 if a field of this name holds a secret by rule 2 of calm_redact (any
 * case: "client_secret", "Authorization", "key"), else 0. */
int calm_redact_secret_name(const char *name, size_t n);

/* ---- log.c: levels and the one place text reaches stderr --------------- */
enum calm_level { CALM_LOG_ERROR, CALM_LOG_WARN, CALM_LOG_INFO, CALM_LOG_DEBUG, CALM_LOG_TRACE };
void calm_log_set_level(int level);
int calm_log_level(void);
/* Writes one redacted line to stderr (a prefix by level; a newline added).
 * Clears a pending progress line first. */
void calm_log_write(int level, const char *msg, size_t n);
/* The same, with lead ("< ", "> ") after the level's prefix on every line of
 * msg: a --trace block whose every line says what it is. */
void calm_log_write_each(int level, const char *lead, const char *msg, size_t n);
void calm_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Lines written from now on start with "[label] " (NULL: none). The
 * scheduler sets the running flow's label (calm.task) around each resume, so
 * every line a fleet tenant's flows print names the tenant. The pointer is
 * kept, not copied: it must stay valid until the next call. */
void calm_log_set_label(const char *label);
const char *calm_log_label(void);   /* the label in effect, or NULL */

/* A progress line: rewritten in place on a TTY, a plain line otherwise. */
void calm_log_progress(const char *msg, size_t n);
void calm_log_progress_done(void);

/* ---- fs.c: file output --------------------------------------------------- */
/* Writes data to path with mode 0600: a temp file in the same directory,
 * fsync, rename over path, fsync of the directory. Refuses a symlink at path.
 * Returns 0, or -1 with a message (no data in it) in err. */
int calm_write_private(const char *path, const char *data, size_t n, char *err, size_t errlen);
/* Reads at most max bytes of a regular file. Returns 0 or -1 with err. */
int calm_read_file(const char *path, size_t max, calm_buf *out, char *err, size_t errlen);
/* Reads at most max bytes of an input that may also be a FIFO, a pipe, a
 * socket or a character device (/dev/fd/N, <(...)); path NULL is standard
 * input. Refuses directories and terminals (ENOTSUP). 0 or -1 with err. */
int calm_read_input(const char *path, size_t max, calm_buf *out, char *err, size_t errlen);
/* Writes prompt to the controlling terminal (/dev/tty) and reads one line
 * back into answer (NUL-terminated, without the newline, at most cap - 1
 * bytes). Returns 0, or -1 with err: errno ENOTTY when there is no terminal,
 * ENODATA at end of input with nothing typed. Blocks until the answer. */
int calm_ask(const char *prompt, char *answer, size_t cap, char *err, size_t errlen);
/* mkdir -p with mode 0700 for what it creates. 0 or -1 with err. */
int calm_make_dirs(const char *path, char *err, size_t errlen);
/* Whether a file can be created in dir: creates and removes a temporary
 * one (access(2) says yes to root on any directory). 0 or -1 with err. */
int calm_probe_dir(const char *dir, char *err, size_t errlen);

/* ---- clock -------------------------------------------------------------- */
double calm_now(void);   /* monotonic seconds (loop.c) */

/* fdlimit.c: file descriptors. calm_fd_raise raises the soft RLIMIT_NOFILE to
 * the hard limit and returns the soft limit in effect (-1 if unknown);
 * calm_fd_transfer_cap is how many transfers may be in flight within `soft`
 * (each may hold a connection in use and one kept for reuse; CALM_FD_RESERVE
 * stay for files, stdio and the resolver), at least 1; INT_MAX if unknown. */
#define CALM_FD_RESERVE 64
long calm_fd_raise(void);
int calm_fd_transfer_cap(long soft);
long calm_fd_soft_limit(void);

#endif
