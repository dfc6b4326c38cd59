/* codec.c: pure encodings with no Lua in them: base64 (RFC 4648 sections 4
 * and 5), percent-encoding (RFC 3986) and form encoding, and random bytes.
 * Unit-tested directly (tests/unit/test_codec.c) and fuzzed
 * (tests/fuzz/fuzz_codec.c); calm.codec (lcodec.c) wraps them for Lua.
 *
 * The inputs are often secrets (client secrets, JWTs, PEM keys), so the small
 * staging area every encoder writes through is wiped when it is done, and a
 * failed decode wipes what it had appended. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "calm.h"

/* A staging area in front of a calm_buf: appending byte by byte would cost a
 * call and a capacity check per byte, and calm_buf has no public reserve. */
struct sink {
    calm_buf *out;
    size_t start;            /* out->len on entry, to undo on failure */
    size_t n;
    int failed;
    unsigned char tmp[512];
};

static void sink_init(struct sink *s, calm_buf *out)
{
    s->out = out;
    s->start = out->len;
    s->n = 0;
    s->failed = 0;
}

static void sink_flush(struct sink *s)
{
    if (s->n && !s->failed && calm_buf_append(s->out, s->tmp, s->n) != 0)
        s->failed = 1;
    s->n = 0;
}

static void sink_put(struct sink *s, unsigned char c)
{
    if (s->n == sizeof s->tmp)
        sink_flush(s);
    s->tmp[s->n++] = c;
}

/* Finishes: returns 0, or `fail` after truncating out back to where it was
 * (and wiping the bytes it had gained) when fail != 0 or memory ran out. */
static int sink_end(struct sink *s, int fail)
{
    if (!fail)
        sink_flush(s);
    calm_wipe(s->tmp, sizeof s->tmp);
    s->n = 0;
    if (fail || s->failed) {
        calm_buf *b = s->out;
        if (b->data && b->len > s->start) {
            calm_wipe(b->data + s->start, b->len - s->start);
            b->len = s->start;
            b->data[b->len] = '\0';
        }
        return fail ? fail : -1;
    }
    /* An empty result still leaves a valid (empty) C string in out. */
    if (!s->out->data && calm_buf_append(s->out, "", 0) != 0)
        return -1;
    return 0;
}

/* ---- base64 ------------------------------------------------------------- */

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int calm_b64_encode(const unsigned char *in, size_t n, int url, calm_buf *out)
{
    const char *alpha = url ? b64_url : b64_std;
    struct sink s;
    size_t i = 0;

    sink_init(&s, out);
    for (; n - i >= 3; i += 3) {
        unsigned long v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
        sink_put(&s, (unsigned char)alpha[v >> 18 & 63]);
        sink_put(&s, (unsigned char)alpha[v >> 12 & 63]);
        sink_put(&s, (unsigned char)alpha[v >> 6 & 63]);
        sink_put(&s, (unsigned char)alpha[v & 63]);
    }
    if (n - i) {
        unsigned long v = (unsigned long)in[i] << 16;
        if (n - i == 2)
            v |= (unsigned long)in[i + 1] << 8;
        sink_put(&s, (unsigned char)alpha[v >> 18 & 63]);
        sink_put(&s, (unsigned char)alpha[v >> 12 & 63]);
        if (n - i == 2)
            sink_put(&s, (unsigned char)alpha[v >> 6 & 63]);
        else if (!url)
            sink_put(&s, '=');
        if (!url)
            sink_put(&s, '=');
    }
    return sink_end(&s, 0);
}

/* Value of a base64 digit and which alphabet it belongs to: 1 standard only
 * ('+', '/'), 2 URL only ('-', '_'), 0 both; -1 for anything else. */
static int b64_value(unsigned char c, int *alphabet)
{
    *alphabet = 0;
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '/') { *alphabet = 1; return c == '+' ? 62 : 63; }
    if (c == '-' || c == '_') { *alphabet = 2; return c == '-' ? 62 : 63; }
    return -1;
}

/* Strict on purpose: a string that is not exactly the encoding of some bytes
 * (white space, a stray '=', mixed alphabets, bits set in the unused tail of
 * the last digit) is refused, so each byte string has one accepted spelling
 * per alphabet (padded or not) and garbage is never silently "repaired". */
int calm_b64_decode(const char *in, size_t n, calm_buf *out)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t pad = 0, m, i;
    unsigned long acc = 0;
    int seen = 0, digits = 0;
    struct sink s;

    while (pad < 2 && pad < n && p[n - 1 - pad] == '=')
        pad++;
    m = n - pad;
    if (m % 4 == 1)
        return -1;
    /* Padding, when present, must complete the last quantum exactly. */
    if (pad && (n % 4 != 0 || (m % 4 == 2 ? pad != 2 : pad != 1)))
        return -1;

    sink_init(&s, out);
    for (i = 0; i < m; i++) {
        int alphabet, v = b64_value(p[i], &alphabet);
        if (v < 0 || (alphabet && seen && alphabet != seen))
            return sink_end(&s, -1);
        if (alphabet)
            seen = alphabet;
        acc = acc << 6 | (unsigned long)v;
        if (++digits == 4) {
            sink_put(&s, (unsigned char)(acc >> 16));
            sink_put(&s, (unsigned char)(acc >> 8));
            sink_put(&s, (unsigned char)acc);
            acc = 0;
            digits = 0;
        }
    }
    if (digits == 2) {          /* 12 bits: one byte and 4 unused bits */
        if (acc & 0xf)
            return sink_end(&s, -1);
        sink_put(&s, (unsigned char)(acc >> 4));
    } else if (digits == 3) {   /* 18 bits: two bytes and 2 unused bits */
        if (acc & 0x3)
            return sink_end(&s, -1);
        sink_put(&s, (unsigned char)(acc >> 10));
        sink_put(&s, (unsigned char)(acc >> 2));
    }
    acc = 0;
    return sink_end(&s, 0) == 0 ? 0 : -2;
}

/* ---- percent-encoding ------------------------------------------------------ */

static const char hexdigits[] = "0123456789ABCDEF";

/* RFC 3986 section 2.3 unreserved characters: never encoded. */
static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int calm_url_encode(const char *in, size_t n, int form, calm_buf *out)
{
    struct sink s;
    size_t i;

    sink_init(&s, out);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (is_unreserved(c)) {
            sink_put(&s, c);
        } else if (form && c == ' ') {
            sink_put(&s, '+');
        } else {
            sink_put(&s, '%');
            sink_put(&s, (unsigned char)hexdigits[c >> 4]);
            sink_put(&s, (unsigned char)hexdigits[c & 15]);
        }
    }
    return sink_end(&s, 0);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Anything but a malformed escape passes through as is: servers send
 * reserved characters unencoded, and rejecting them would help nobody. */
int calm_url_decode(const char *in, size_t n, int form, calm_buf *out)
{
    struct sink s;
    size_t i;

    sink_init(&s, out);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int hi, lo;
            if (n - i < 3)
                return sink_end(&s, -1);
            hi = hexval((unsigned char)in[i + 1]);
            lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return sink_end(&s, -1);
            sink_put(&s, (unsigned char)(hi << 4 | lo));
            i += 2;
        } else if (form && c == '+') {
            sink_put(&s, ' ');
        } else {
            sink_put(&s, c);
        }
    }
    return sink_end(&s, 0) == 0 ? 0 : -2;
}

/* ---- randomness ------------------------------------------------------------ */

/* getrandom(2) with flags 0 blocks only until the kernel pool is first
 * initialised, then never; it may return fewer bytes than asked for (over
 * 256 bytes) or be interrupted by a signal, hence the loop. */
int calm_random_bytes(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}
