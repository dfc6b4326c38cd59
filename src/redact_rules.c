/* redact_rules.c: the rules of calm_redact that recognise a secret by its
 * shape rather than by registration (rules 2-6 of redact.c's list): secret
 * field names in JSON, form and Lua text, credential headers, Bearer/Basic
 * and bare JWTs, URL user info, PEM private keys. Each marks byte ranges of
 * `in` in the mask `m`. */
#include <string.h>

#include "calm.h"
#include "redact_internal.h"

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
    /* Unquoted "name: value" is a field only in a credential header line;
     * elsewhere it is prose: "refresh token: HTTP 400", "the instance issues
     * instance secrets: every binding...", "instance-secret: its token...".
     * A secret in such a line is hidden as a registered value or by shape. */
    if (!q && in[i] == ':' && !header_name(w))
        return we;
    v = skip_ws(in, n, i + 1, q != 0);
    if (v >= n)
        return we;
    /* 'name': 'v' is a Python or Lua repr; 'name': text is a message quoting a
     * name ("binding 'calm-api-key': uaa.url uses http"), not a field */
    if (q == '\'' && in[v] != '\'' && in[v] != '"')
        return we;
    if (level == 1) {
        if (n - v >= 2 && in[v] == '\\' && in[v + 1] == '"')
            return calm_redact_mark(m, v + 2, string_end(in, n, v + 2, '"', 1));
        return we;
    } else if (in[v] == '"' || in[v] == '\'') {
        return calm_redact_mark(m, v + 1, string_end(in, n, v + 1, in[v], 0));
    } else if (q) {
        if (in[v] != '{' && in[v] != '[')   /* nested fields are judged one by one */
            return calm_redact_mark(m, v, span_until(in, n, v, ",}] \t\r\n"));
        return we;
    } else if (in[i] == ':' && header_name(w)) {
        /* keep the scheme word ("Bearer", "Basic") for the reader */
        size_t k = v;
        while (k < n && k - v < 20 && ((in[k] | 0x20) >= 'a' && (in[k] | 0x20) <= 'z'))
            k++;
        if (k > v && k < n && in[k] == ' ')
            v = k + 1;
        return calm_redact_mark(m, v, span_until(in, n, v, "\r\n"));
    }
    {
        size_t e = span_until(in, n, v, "&;, \t\r\n\"'<>(){}[]\\");
        /* "CF_PASSWORD=... calmbind get", "secret=***": help text shows where
         * a value goes; a placeholder hides nothing */
        if (is_placeholder(in + v, e - v))
            return e;
        return calm_redact_mark(m, v, e);
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
    calm_redact_mark(m, v, e);
}

/* One pass over the words of the input: field names, schemes, JWTs. */
void calm_redact_mark_words(const char *in, size_t n, unsigned char *m)
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
            calm_redact_mark(m, ws, we);    /* a JWT: header.payload.signature */
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
void calm_redact_mark_userinfo(const char *in, size_t n, unsigned char *m)
{
    size_t pos = 0;

    /* memchr for the colon, not memmem for "://": the same first hit, and
     * sanitizer builds check only the bytes memchr read, not the whole rest */
    while (n - pos >= 3) {
        const char *hit = memchr(in + pos, ':', n - pos - 2);
        size_t a, e;
        if (!hit)
            break;
        if (hit[1] != '/' || hit[2] != '/') {
            pos = (size_t)(hit - in) + 1;
            continue;
        }
        a = (size_t)(hit - in) + 3;
        e = span_until(in, n, a, "/?#@ \t\r\n\"'<>\\");
        if (e < n && in[e] == '@')
            calm_redact_mark(m, a, e);
        pos = e > a ? e : a;
    }
}

/* -----BEGIN <label> PRIVATE KEY----- ... -----END <label>----- */
void calm_redact_mark_pem(const char *in, size_t n, unsigned char *m)
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
            calm_redact_mark(m, s, n);      /* cut short: hide the rest */
            return;
        }
        e += sizeof end - 1;
        close = memmem(e, (size_t)(in + n - e) < 80 ? (size_t)(in + n - e) : 80, "-----", 5);
        pos = close ? (size_t)(close - in) + 5 : (size_t)(e - in);
        calm_redact_mark(m, s, pos);
    }
}
