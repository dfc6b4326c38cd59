/* redact.c: the secret registry and calm_redact(), the filter every byte bound
 * for stderr passes through (log lines, HTTP traces, remote error text).
 *
 * Redaction works on a mask: each rule marks the byte ranges it wants hidden
 * in a scratch array as long as the input, then the output is the input with
 * every maximal marked run replaced by "***". So rules never see each other's
 * output, overlapping or adjacent secrets merge by construction, "longest
 * match first" holds trivially (the union is hidden), and rule order does not
 * matter. Every rule is a forward scan: the cost is O(n * patterns) for an
 * n-byte input, which keeps an 8 MiB trace body affordable.
 *
 * Rules (documented in README.md, "Redaction"):
 *   1. registered values, raw and in the encodings they travel in;
 *   2. values of fields whose name looks secret, JSON ("k":"v", also JSON
 *      escaped inside a JSON string), form/query (k=v) and Lua (k = "v");
 *   3. header lines Authorization/Cookie/Set-Cookie/...-api-key to the end of
 *      the line, keeping the scheme word;
 *   4. "Bearer <token>", "Basic <base64>", bare JWTs (eyJ...x.y.z);
 *   5. URL userinfo (scheme://user:pass@host);
 *   6. PEM private key blocks, BEGIN to END (to the end if END is missing). */
#include <stdlib.h>
#include <string.h>

#include "calm.h"

/* ---- the registry -------------------------------------------------------- */

/* One searchable form of a registered value. `period` is the smallest period
 * of the pattern: it lets the scan step over overlapping repeats in linear
 * time (see mark_pattern). */
struct pattern {
    char *p;
    size_t n;
    size_t period;
    int raw;        /* the value as registered (what calm_redact_count counts) */
};

static struct pattern *pats;
static size_t npats, cappats;
static size_t nvalues;

/* Smallest period of p (KMP failure function). Returns n when the
 * temporary table cannot be allocated: still correct, merely slower on
 * self-overlapping values. */
static size_t min_period(const char *p, size_t n)
{
    size_t *fail, i, k = 0, per;

    fail = malloc(n * sizeof *fail);
    if (!fail)
        return n;
    fail[0] = 0;
    for (i = 1; i < n; i++) {
        while (k > 0 && p[i] != p[k])
            k = fail[k - 1];
        if (p[i] == p[k])
            k++;
        fail[i] = k;
    }
    per = n - fail[n - 1];
    free(fail);
    return per;
}

/* Takes ownership of b's memory (a registered form) unless the same bytes
 * are already registered. Returns 0 or -1 on memory. */
static int add_pattern(calm_buf *b, int raw)
{
    size_t i;

    for (i = 0; i < npats; i++) {
        if (pats[i].n == b->len && memcmp(pats[i].p, b->data, b->len) == 0) {
            if (raw && !pats[i].raw) {  /* an earlier value's encoded form */
                pats[i].raw = 1;
                nvalues++;
            }
            calm_buf_free(b);
            return 0;
        }
    }
    if (npats == cappats) {
        size_t ncap = cappats ? cappats * 2 : 16;
        struct pattern *np = realloc(pats, ncap * sizeof *np);  /* holds no secret bytes */
        if (!np) {
            calm_buf_free(b);
            return -1;
        }
        pats = np;
        cappats = ncap;
    }
    pats[npats].p = b->data;
    pats[npats].n = b->len;
    pats[npats].period = min_period(b->data, b->len);
    pats[npats].raw = raw;
    npats++;
    if (raw)
        nvalues++;
    calm_buf_init(b);   /* the registry owns the bytes now */
    return 0;
}

static const char hex_lower[] = "0123456789abcdef";

/* Percent-encoding (codec.c) with lower-case hex digits, as some encoders write it. */
static int enc_percent_lower(const char *s, size_t n, calm_buf *o)
{
    size_t i, from = o->len;

    if (calm_url_encode(s, n, 0, o) != 0)
        return -1;
    for (i = from; i + 2 < o->len; i++)
        if (o->data[i] == '%') {
            o->data[i + 1] = (char)(o->data[i + 1] | (o->data[i + 1] >= 'A' ? 0x20 : 0));
            o->data[i + 2] = (char)(o->data[i + 2] | (o->data[i + 2] >= 'A' ? 0x20 : 0));
        }
    return 0;
}

/* The JSON string form. slash: escape '/' as "\/" as lua-cjson does. */
static int enc_json(const unsigned char *s, size_t n, int slash, calm_buf *o)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < n && rc == 0; i++) {
        unsigned char c = s[i];
        const char *e = NULL;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '/': e = slash ? "\\/" : "/"; break;
        default: break;
        }
        if (e) {
            rc = calm_buf_puts(o, e);
        } else if (c < 0x20) {
            char u[6] = { '\\', 'u', '0', '0', hex_lower[c >> 4], hex_lower[c & 15] };
            rc = calm_buf_append(o, u, 6);
        } else {
            rc = calm_buf_putc(o, c);
        }
    }
    return rc;
}

/* Base64 (codec.c) without padding, so it matches whether or not '=' follows. */
static int enc_b64(const unsigned char *s, size_t n, int url, calm_buf *o)
{
    if (calm_b64_encode(s, n, url, o) != 0)
        return -1;
    while (o->len && o->data[o->len - 1] == '=')
        o->data[--o->len] = '\0';
    return 0;
}

/* Registers s (a copy) and the forms it may be printed in: percent- and
 * form-encoded (a secret in a request body or query), JSON-escaped (a PEM key
 * in a JSON document has "\n" for its newlines), and base64 of the whole
 * value. Returns 0 (also for a value too short to register) or -1 on memory. */
int calm_redact_add(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    calm_buf b;
    int form;

    if (!s || n < CALM_REDACT_MIN)
        return 0;
    calm_buf_init(&b);
    if (calm_buf_append(&b, s, n) != 0 || add_pattern(&b, 1) != 0)
        goto oom;
    for (form = 0; form < 7; form++) {
        int rc;
        switch (form) {
        case 0: rc = calm_url_encode(s, n, 0, &b); break;
        case 1: rc = calm_url_encode(s, n, 1, &b); break;
        case 2: rc = enc_percent_lower(s, n, &b); break;
        case 3: rc = enc_json(u, n, 0, &b); break;
        case 4: rc = enc_json(u, n, 1, &b); break;
        case 5: rc = enc_b64(u, n, 0, &b); break;
        default: rc = enc_b64(u, n, 1, &b); break;
        }
        if (rc != 0 || add_pattern(&b, 0) != 0)
            goto oom;
    }
    return 0;
oom:
    calm_buf_free(&b);
    return -1;
}

size_t calm_redact_count(void)
{
    return nvalues;
}

void calm_redact_clear(void)
{
    size_t i;

    for (i = 0; i < npats; i++) {
        calm_wipe(pats[i].p, pats[i].n);
        free(pats[i].p);
    }
    free(pats);
    pats = NULL;
    npats = cappats = nvalues = 0;
}

/* ---- rules: each marks byte ranges of `in` in the mask `m` ---------------- */

/* Hides [a, b); returns b. */
static size_t mark(unsigned char *m, size_t a, size_t b)
{
    if (b > a)
        memset(m + a, 1, b - a);
    return b;
}

/* Every occurrence of a pattern, overlapping ones included. After a hit at s
 * the next occurrence cannot start before s + period (a smaller shift would
 * be a smaller period), and a run of repeats is extended `period` bytes at a
 * time instead of re-searching, so "aaaa..." against a long 'a' value stays
 * linear. */
static void mark_pattern(const char *in, size_t n, unsigned char *m, const struct pattern *pt)
{
    size_t pos = 0, len = pt->n, per = pt->period;

    while (len <= n - pos) {
        const char *hit = memmem(in + pos, n - pos, pt->p, len);
        size_t start, end;
        if (!hit)
            break;
        start = (size_t)(hit - in);
        end = start + len;
        while (per <= n - end && memcmp(in + end, pt->p + len - per, per) == 0)
            end += per;
        mark(m, start, end);
        pos = end - len + per;
    }
}

static int is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

static int ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(s + n - k, suf, k) == 0;
}

/* Field names whose values are hidden (lower-cased name). Names of URLs,
 * types and lifetimes are spared ("token_type", "tokenurl", "expires_in"):
 * they are what one needs to debug, and never secret. */
static int secret_name(const char *w, size_t n)
{
    static const char *const spare[] = { "url", "uri", "endpoint", "type", "expire", "method" };
    static const char *const has[] = { "secret", "password", "passwd", "pwd", "passphrase",
                                       "token", "assertion", "private", "verifier", "credential",
                                       "authorization", "cookie", "apikey", "api-key", "api_key" };
    size_t i;

    for (i = 0; i < sizeof spare / sizeof *spare; i++)
        if (strstr(w, spare[i]))
            return 0;
    for (i = 0; i < sizeof has / sizeof *has; i++)
        if (strstr(w, has[i]))
            return 1;
    /* "key", "clientkey", "private_key"; "cert", "certificate", "clientcert" */
    return ends_with(w, n, "key") || ends_with(w, n, "cert") || ends_with(w, n, "certificate");
}

/* Header names whose whole value (after the scheme word) is hidden. */
static int header_name(const char *w)
{
    return strstr(w, "authorization") || ends_with(w, strlen(w), "cookie") ||
           strstr(w, "api-key") || strstr(w, "apikey") || strstr(w, "-token");
}

/* End of a quoted string whose content starts at i. level 0: ends at an
 * unescaped q. level 1 (JSON text inside a JSON string, a reflected request
 * in an error body): ends at \" whose backslash run has length 1 mod 4 (the
 * inner quote), or at an unescaped " (the outer string ended). Unterminated:
 * n, so the rest is hidden (fail closed). */
static size_t string_end(const char *in, size_t n, size_t i, char q, int level)
{
    size_t r = 0;

    for (; i < n; i++) {
        if (in[i] == '\\') {
            r++;
            continue;
        }
        if (in[i] == q) {
            if (r % 2 == 0)
                return i;
            if (level == 1 && r % 4 == 1)
                return i - 1;
        }
        r = 0;
    }
    return n;
}

static size_t span_until(const char *in, size_t n, size_t i, const char *stops)
{
    /* strchr would find a NUL byte in `stops`' terminator: NUL never stops */
    while (i < n && (in[i] == '\0' || !strchr(stops, in[i])))
        i++;
    return i;
}

static size_t skip_ws(const char *in, size_t n, size_t i, int newlines)
{
    while (i < n && (in[i] == ' ' || in[i] == '\t' || (newlines && (in[i] == '\r' || in[i] == '\n'))))
        i++;
    return i;
}

/* "...", "…" (UTF-8) or "***": what help text and docs write for a value. */
static int is_placeholder(const char *s, size_t n)
{
    size_t i;
    if (n == 3 && memcmp(s, "\xe2\x80\xa6", 3) == 0)
        return 1;
    if (n < 3)
        return 0;
    for (i = 1; i < n; i++)
        if (s[i] != s[0])
            return 0;
    return s[0] == '.' || s[0] == '*';
}

/* The value after a secret-looking name w at [ws, we). Forms handled:
 *   "name": "v"   'name': 'v'   \"name\":\"v\"   "name": 123
 *   name=v (form, query, cookie)   name = "v" (Lua)   Name: v (headers)
 * Returns where the hidden value ends (we when nothing was hidden): the word
 * scan resumes there, which keeps "password=password=..." linear. */
static size_t mark_field(const char *in, size_t n, unsigned char *m, size_t ws, size_t we,
                       const char *w)
{
    size_t i = we, v;
    char q = 0;
    int level = 0;

    if (ws >= 1 && (in[ws - 1] == '"' || in[ws - 1] == '\'') && i < n && in[i] == in[ws - 1]) {
        q = in[i++];
        if (ws >= 2 && in[ws - 2] == '\\' && q == '"')
            q = 0;  /* \"name" is no key */
    } else if (ws >= 2 && in[ws - 2] == '\\' && in[ws - 1] == '"' && n - i >= 2 &&
               in[i] == '\\' && in[i + 1] == '"') {
        q = '"';
        level = 1;
        i += 2;
    }
    i = skip_ws(in, n, i, q != 0);
    if (i >= n || (in[i] != ':' && in[i] != '='))
        return we;
    if (!q && in[i] == ':' && !header_name(w) && !strstr(w, "secret") && !strstr(w, "password"))
        return we;  /* "refresh token: HTTP 400" is prose, not a field */
    v = skip_ws(in, n, i + 1, q != 0);
    if (v >= n)
        return we;
    /* 'name': 'v' is a Python or Lua repr; 'name': text is a message quoting a
     * name ("binding 'calm-api-key': uaa.url uses http"), not a field */
    if (q == '\'' && in[v] != '\'' && in[v] != '"')
        return we;
    if (level == 1) {
        if (n - v >= 2 && in[v] == '\\' && in[v + 1] == '"')
            return mark(m, v + 2, string_end(in, n, v + 2, '"', 1));
        return we;
    } else if (in[v] == '"' || in[v] == '\'') {
        return mark(m, v + 1, string_end(in, n, v + 1, in[v], 0));
    } else if (q) {
        if (in[v] != '{' && in[v] != '[')   /* nested fields are judged one by one */
            return mark(m, v, span_until(in, n, v, ",}] \t\r\n"));
        return we;
    } else if (in[i] == ':' && header_name(w)) {
        /* keep the scheme word ("Bearer", "Basic") for the reader */
        size_t k = v;
        while (k < n && k - v < 20 && ((in[k] | 0x20) >= 'a' && (in[k] | 0x20) <= 'z'))
            k++;
        if (k > v && k < n && in[k] == ' ')
            v = k + 1;
        return mark(m, v, span_until(in, n, v, "\r\n"));
    }
    {
        size_t e = span_until(in, n, v, "&;, \t\r\n\"'<>(){}[]\\");
        /* "CF_PASSWORD=... calmbind get", "secret=***": help text shows where
         * a value goes; a placeholder hides nothing */
        if (is_placeholder(in + v, e - v))
            return e;
        return mark(m, v, e);
    }
}

static int is_token68(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

/* "Bearer <token>" and "Basic <base64>" outside header lines (JSON dumps of
 * header tables, error texts). Prose is spared: a Bearer token of only
 * letters and shorter than 8 ("Bearer token") is a word, and Basic
 * credentials are always padded base64 (a multiple of 4 long). */
static void mark_scheme(const char *in, size_t n, unsigned char *m, size_t we, int basic)
{
    size_t v = we, e, k;
    int letters = 1;

    while (v < n && in[v] == ' ')
        v++;
    if (v == we)
        return;
    for (e = v; e < n && is_token68((unsigned char)in[e]); e++)
        if (basic && strchr("-._~", in[e]))
            break;      /* standard base64 only: "Basic abc=." ends a sentence */
    if (e == v)
        return;
    for (k = v; k < e; k++)
        if (!((in[k] | 0x20) >= 'a' && (in[k] | 0x20) <= 'z'))
            letters = 0;
    if (basic ? (e - v) % 4 != 0 : (letters && e - v < 8))
        return;
    mark(m, v, e);
}

/* One pass over the words of the input: field names, schemes, JWTs. */
static void mark_words(const char *in, size_t n, unsigned char *m)
{
    size_t i = 0;

    while (i < n) {
        size_t ws, we, k, dots = 0;
        char low[64];

        if (!is_word((unsigned char)in[i])) {
            i++;
            continue;
        }
        for (ws = i; i < n && is_word((unsigned char)in[i]); i++)
            if (in[i] == '.')
                dots++;
        we = i;
        if (we - ws >= 16 && dots >= 2 && memcmp(in + ws, "eyJ", 3) == 0) {
            mark(m, ws, we);    /* a JWT: header.payload.signature */
            continue;
        }
        if (we - ws < 3 || we - ws >= sizeof low)
            continue;
        /* Cheap filter first: a field name is followed by ':' or '=' (after
         * its closing quote); a scheme word is 5 or 6 long. Most words of a
         * big body are values and stop here. */
        k = we;
        if (k < n && (in[k] == '"' || in[k] == '\''))
            k++;
        else if (n - k >= 2 && in[k] == '\\' && in[k + 1] == '"')
            k += 2;
        k = skip_ws(in, n, k, 1);
        if (!(k < n && (in[k] == ':' || in[k] == '=')) && we - ws != 5 && we - ws != 6)
            continue;
        for (k = 0; k < we - ws; k++)
            low[k] = (char)((in[ws + k] >= 'A' && in[ws + k] <= 'Z') ? in[ws + k] | 0x20 : in[ws + k]);
        low[k] = '\0';
        if (strcmp(low, "bearer") == 0 || strcmp(low, "basic") == 0)
            mark_scheme(in, n, m, we, low[1] == 'a');
        else if (secret_name(low, k))
            i = mark_field(in, n, m, ws, we, low);
    }
}

int calm_redact_secret_name(const char *name, size_t n)
{
    char low[64];
    size_t k;
    if (n >= sizeof low) return 0;   /* as in text: longer words are never field names */
    for (k = 0; k < n; k++)
        low[k] = (char)((name[k] >= 'A' && name[k] <= 'Z') ? name[k] | 0x20 : name[k]);
    low[n] = '\0';
    return secret_name(low, n);
}

/* URL userinfo: in https://user:password@host, "user:password" is hidden.
 * The authority ends at the first '/', '?', '#', space or quote, so
 * "a://b/ x@y" is spared. */
static void mark_userinfo(const char *in, size_t n, unsigned char *m)
{
    size_t pos = 0;

    while (n - pos >= 3) {
        const char *hit = memmem(in + pos, n - pos, "://", 3);
        size_t a, e;
        if (!hit)
            break;
        a = (size_t)(hit - in) + 3;
        e = span_until(in, n, a, "/?#@ \t\r\n\"'<>\\");
        if (e < n && in[e] == '@')
            mark(m, a, e);
        pos = e > a ? e : a;
    }
}

/* -----BEGIN <label> PRIVATE KEY----- ... -----END <label>----- */
static void mark_pem(const char *in, size_t n, unsigned char *m)
{
    static const char begin[] = "-----BEGIN ", end[] = "-----END ";
    size_t pos = 0;

    while (n - pos >= sizeof begin - 1) {
        const char *b = memmem(in + pos, n - pos, begin, sizeof begin - 1);
        const char *lab, *close, *e;
        size_t s;
        if (!b)
            break;
        s = (size_t)(b - in);
        lab = b + sizeof begin - 1;
        pos = (size_t)(lab - in);
        close = memmem(lab, (size_t)(in + n - lab) < 80 ? (size_t)(in + n - lab) : 80, "-----", 5);
        if (!close || !memmem(lab, (size_t)(close - lab), "PRIVATE KEY", 11))
            continue;
        e = memmem(close + 5, (size_t)(in + n - close - 5), end, sizeof end - 1);
        if (!e) {
            mark(m, s, n);      /* cut short: hide the rest */
            return;
        }
        e += sizeof end - 1;
        close = memmem(e, (size_t)(in + n - e) < 80 ? (size_t)(in + n - e) : 80, "-----", 5);
        pos = close ? (size_t)(close - in) + 5 : (size_t)(e - in);
        mark(m, s, pos);
    }
}

/* ---- calm_redact ----------------------------------------------------------- */

/* Appends in[0..n) to out with the marked runs replaced by "***". */
static int emit(const char *in, size_t n, const unsigned char *m, calm_buf *out)
{
    size_t i = 0;

    while (i < n) {
        const unsigned char *mk = memchr(m + i, 1, n - i);
        size_t s = mk ? (size_t)(mk - m) : n;
        if (s > i && calm_buf_append(out, in + i, s - i) != 0)
            return -1;
        if (s == n)
            break;
        mk = memchr(m + s, 0, n - s);
        i = mk ? (size_t)(mk - m) : n;
        if (calm_buf_append(out, "***", 3) != 0)
            return -1;
    }
    return 0;
}

int calm_redact(const char *in, size_t n, calm_buf *out)
{
    unsigned char small[1024], *m = small;
    size_t i;
    int rc;

    if (n == 0)
        return calm_buf_append(out, "", 0);
    /* Log lines are short: keep their mask on the stack. */
    if (n > sizeof small && !(m = malloc(n)))
        return -1;
    memset(m, 0, n);
    for (i = 0; i < npats; i++)
        mark_pattern(in, n, m, &pats[i]);
    mark_words(in, n, m);
    mark_userinfo(in, n, m);
    mark_pem(in, n, m);
    rc = emit(in, n, m, out);
    if (m != small)
        free(m);    /* the mask holds positions, not secret bytes */
    return rc;
}
