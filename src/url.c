/* url.c: absolute URLs taken apart and put together over libcurl's URL API
 * (CURLU), so that what calmbind checks is what libcurl will send. Stricter
 * than RFC 3986 on purpose: BTP's URLs are plain ASCII hosts and paths, so a
 * quote, a shell's `$(` or a space in one is damage, and a user name or
 * password in a URL would carry a secret into every message that names it.
 * No Lua here: lurl.c is the calm.url binding, httpreq.c's URL policy uses it. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

#include "calm.h"

/* Loopback names that never leave the machine; curl resolves *.localhost itself. */
int calm_url_is_loopback(const char *host)
{
    size_t n = strlen(host);
    int dots = 0;
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0) return 1;
    if (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0) return 1;
    if (strncmp(host, "127.", 4) != 0) return 0;
    for (const char *p = host; *p; p++) {
        if (*p == '.') dots++;
        else if (!isdigit((unsigned char)*p)) return 0;
    }
    return dots == 3;
}

static int is_ipv4(const char *h)
{
    int dots = 0;
    for (const char *p = h; *p; p++) {
        if (*p == '.') dots++;
        else if (!isdigit((unsigned char)*p)) return 0;
    }
    return dots == 3;
}

/* A host name: letters, digits, '-' and '.', starting with a letter or digit,
 * not ending in '.' or '-', no empty label. */
static int good_hostname(const char *h)
{
    size_t n = strlen(h);
    if (!n || !isalnum((unsigned char)h[0]) || h[n - 1] == '.' || h[n - 1] == '-') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '-' && c != '.') return 0;
        if (c == '.' && h[i + 1] == '.') return 0;
    }
    return 1;
}

/* RFC 3986 character classes, ASCII only. */
static int unreserved(int c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int sub_delim(int c)
{
    return c && strchr("!$&'()*+,;=", c) != NULL;
}

/* The characters part may hold: a path unreserved, %XX, ':', '@' and '/'
 * (no sub-delims: `$(`, quotes and the like in a path are damage); a query
 * or fragment also sub-delims and '?'. Returns NULL or why not. */
static const char *check_part(const char *s, int is_path)
{
    for (const char *p = s; *p; p++) {
        int c = (unsigned char)*p;
        if (c == '%') {
            if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
                return "has a bad percent-encoding (% not followed by two hex digits)";
            p += 2;
        } else if (!(unreserved(c) || c == ':' || c == '@' || c == '/' ||
                     (!is_path && (sub_delim(c) || c == '?')))) {
            return is_path ? "has characters a URL path does not carry"
                           : "has characters a URL query does not carry";
        }
    }
    return NULL;
}

void calm_url_free(calm_url *u)
{
    free(u->scheme);
    free(u->host);
    free(u->path);
    free(u->query);
    free(u->fragment);
    memset(u, 0, sizeof *u);
}

/* A copy of curl's part (NULL when absent); -2 when memory runs out. */
static int take(CURLU *h, CURLUPart part, char **out)
{
    char *v = NULL;
    CURLUcode rc = curl_url_get(h, part, &v, 0);
    *out = NULL;
    if (rc == CURLUE_OUT_OF_MEMORY) return -2;
    if (rc != CURLUE_OK) return 0;
    *out = strdup(v);
    curl_free(v);
    return *out ? 0 : -2;
}

static const char *set_error(CURLUcode rc)
{
    switch (rc) {
    case CURLUE_BAD_PORT_NUMBER: return "has an invalid port";
    case CURLUE_NO_HOST: return "has no host";
    case CURLUE_BAD_HOSTNAME: case CURLUE_BAD_IPV6: return "has an invalid host name";
    case CURLUE_BAD_SCHEME: return "is not an absolute URL";
    default: return "is not a valid URL";
    }
}

/* Checks the text before libcurl reads it: a scheme (text without one is
 * no URL, whatever it holds), then printable ASCII. */
static const char *check_text(const char *s, unsigned flags, int *add_scheme)
{
    const char *p = s;
    *add_scheme = 0;
    if (isalpha((unsigned char)*p)) {
        p++;
        while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.') p++;
    }
    if (p == s || strncmp(p, "://", 3) != 0) {
        if (!(flags & CALM_URL_DEFAULT_HTTP)) return "is not an absolute URL";
        *add_scheme = 1;
        p = s;
    } else {
        p += 3;
    }
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q < 32 || *q == 127) return "contains a line break or control character";
        if (*q > 126 || *q == ' ') return "contains spaces or non-ASCII characters";
    }
    /* libcurl reads "https:///x" as host x */
    if (*p == '/' || *p == '\0' || *p == '?' || *p == '#') return "has no host";
    return NULL;
}

static const char *check_parts(CURLU *h, calm_url *u, unsigned flags, int *mem)
{
    char *user = NULL, *pass = NULL, *zone = NULL, *port = NULL;
    const char *why = NULL;
    *mem = take(h, CURLUPART_USER, &user) || take(h, CURLUPART_PASSWORD, &pass) ||
           take(h, CURLUPART_ZONEID, &zone) || take(h, CURLUPART_PORT, &port) ||
           take(h, CURLUPART_SCHEME, &u->scheme) || take(h, CURLUPART_HOST, &u->host) ||
           take(h, CURLUPART_PATH, &u->path) || take(h, CURLUPART_QUERY, &u->query) ||
           take(h, CURLUPART_FRAGMENT, &u->fragment);
    if (user || pass) u->userinfo = 1;
    if (pass) calm_wipe(pass, strlen(pass));
    if (*mem) {
        why = "out of memory";
    } else if (u->userinfo && !(flags & CALM_URL_USERINFO)) {
        why = "must not carry a user name or password";
    } else if (!u->scheme || !u->host || !u->path) {
        why = "is not a valid URL";
    } else if (zone) {
        why = "has an invalid host name";
    } else {
        for (char *c = u->scheme; *c; c++) *c = (char)tolower((unsigned char)*c);
        for (char *c = u->host; *c; c++) *c = (char)tolower((unsigned char)*c);
        u->ip = u->host[0] == '[' || is_ipv4(u->host);
        u->loopback = calm_url_is_loopback(u->host);
        if (!u->ip && !good_hostname(u->host)) why = "has an invalid host name";
        else if (port && (u->port = atoi(port)) < 1) why = "has an invalid port";
        else why = check_part(u->path, 1);
        if (!why && u->query) why = check_part(u->query, 0);
        if (!why && u->fragment) why = check_part(u->fragment, 0);
    }
    free(user);
    free(pass);
    free(zone);
    free(port);
    return why;
}

/* libcurl's own reading of s (dot segments resolved), or NULL with *why. */
static CURLU *curl_read(const char *s, const char **why, int *mem)
{
    CURLU *h = curl_url();
    CURLUcode rc;
    *mem = 0;
    if (!h) { *mem = 1; *why = "out of memory"; return NULL; }
    rc = curl_url_set(h, CURLUPART_URL, s, CURLU_NON_SUPPORT_SCHEME);
    if (rc == CURLUE_OK) return h;
    if (rc == CURLUE_OUT_OF_MEMORY) *mem = 1, *why = "out of memory";
    else *why = set_error(rc);
    curl_url_cleanup(h);
    return NULL;
}

int calm_url_parse(const char *s, unsigned flags, calm_url *u, const char **why)
{
    CURLU *h;
    calm_buf with_scheme;
    int add_scheme, mem = 0;
    memset(u, 0, sizeof *u);
    *why = check_text(s, flags, &add_scheme);
    if (*why) return -1;
    calm_buf_init(&with_scheme);
    /* a proxy setting without a scheme is http, as libcurl reads it (its
     * CURLU_DEFAULT_SCHEME would be https) */
    if (add_scheme && (calm_buf_puts(&with_scheme, "http://") || calm_buf_puts(&with_scheme, s))) {
        calm_buf_free(&with_scheme);
        *why = "out of memory";
        return -2;
    }
    h = curl_read(add_scheme ? with_scheme.data : s, why, &mem);
    calm_buf_free(&with_scheme);
    if (h) {
        *why = check_parts(h, u, flags, &mem);
        curl_url_cleanup(h);
    }
    if (!*why) return 0;
    calm_url_free(u);
    return mem ? -2 : -1;
}

/* The parts put together as text: libcurl's setters would re-encode a
 * part's %XX in lower case, so the URL is read whole instead. */
static int compose(const calm_url *in, calm_buf *b)
{
    char port[16];
    snprintf(port, sizeof port, ":%d", in->port);
    return calm_buf_puts(b, in->scheme) || calm_buf_puts(b, "://") || calm_buf_puts(b, in->host) ||
           (in->port && calm_buf_puts(b, port)) ||
           ((!in->path || in->path[0] != '/') && calm_buf_putc(b, '/')) ||
           (in->path && calm_buf_puts(b, in->path)) ||
           (in->query && (calm_buf_putc(b, '?') || calm_buf_puts(b, in->query))) ||
           (in->fragment && (calm_buf_putc(b, '#') || calm_buf_puts(b, in->fragment)));
}

int calm_url_build(const calm_url *in, calm_buf *out, const char **why)
{
    calm_buf text;
    calm_url check;
    CURLU *h = NULL;
    char *s = NULL;
    int r = -1, mem = 0;
    calm_buf_init(&text);
    *why = NULL;
    if (!in->scheme || !in->host || !*in->host) *why = "needs a scheme and a host";
    else if (strpbrk(in->host, "/?#@:") && in->host[0] != '[') *why = "has an invalid host name";
    else if (in->path && in->path[0] && in->path[0] != '/') *why = "has a path that does not start with /";
    else if (in->query && strchr(in->query, '#')) *why = "has a '#' in its query";
    else if (compose(in, &text)) mem = 1, *why = "out of memory";
    if (!*why && (h = curl_read(text.data, why, &mem)) != NULL) {
        if (curl_url_get(h, CURLUPART_URL, &s, 0) != CURLUE_OK) mem = 1, *why = "out of memory";
        /* what libcurl made is held to the same rules as any URL read, and
         * must still name the host given */
        else if ((r = calm_url_parse(s, 0, &check, why)) == 0) {
            if (strcasecmp(check.host, in->host) != 0 || check.port != in->port) *why = "has an invalid host name", r = -1;
            calm_url_free(&check);
            if (r == 0 && calm_buf_puts(out, s)) mem = 1, *why = "out of memory";
        }
    }
    curl_free(s);
    if (h) curl_url_cleanup(h);
    calm_buf_free(&text);
    if (mem) return -2;
    return *why ? -1 : 0;
}
