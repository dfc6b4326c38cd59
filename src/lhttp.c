/* lhttp.c: calm.http — one HTTP(S) request per call, parked on the scheduler's
 * curl_multi handle. Bodies are buffered in C (no Lua inside libcurl
 * callbacks); TLS verification is always on; redirects are never followed. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lua-cjson.h>

#include "calm_lua.h"

#define REQ_MT "calm.http.request"
#define DEFAULT_TIMEOUT 30.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_MAX_BODY (8u << 20)
#define SYSTEM_CA_PATH "/etc/ssl/certs"
/* Limits a real BTP answer never comes near (about 20 header lines, a few KiB
 * of headers, the whole answer in well under a second once it has begun):
 * beyond them the answer is refused as broken, not waited for or retried. */
#define MAX_HEADER_LINES 256
#define MAX_HEADER_BYTES (64u << 10)
#define TRICKLE_WINDOW 5.0     /* seconds after the first byte of the answer */
#define TRICKLE_FLOOR 1024.0   /* bytes per second, averaged over that time */

typedef struct request {
    calm_transfer t;           /* first: the scheduler sees this part */
    lua_State *main;           /* for unref from the scheduler's side */
    int anchor;                /* registry ref while in flight */
    struct curl_slist *headers;
    calm_buf body;             /* response body */
    calm_buf head;             /* response header lines, for --trace */
    calm_buf sent;             /* request body: built here (the GC owns it if a
                                * check raises); libcurl reads it in place */
    calm_buf cert, key;        /* mTLS PEM, handed to libcurl without a copy */
    size_t max_body;
    int too_large;
    int head_lines;            /* header lines of the current response */
    int bad_head;              /* header block refused: 1 too many lines, 2 too large */
    size_t received;           /* header and body bytes so far */
    double first_byte;         /* calm_now() at the first byte of the answer */
    double trickled;           /* seconds it took, when cut for trickling */
    double started;
    int socket_errno;          /* why socket() failed, if it did */
    char method[16];
    char *url;
    char errbuf[CURL_ERROR_SIZE];
} request;

/* curl's error mnemonics: stable codes scripts can branch on. */
static const char *curl_code_name(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL: return "UNSUPPORTED_PROTOCOL";
    case CURLE_URL_MALFORMAT: return "URL_MALFORMAT";
    case CURLE_COULDNT_RESOLVE_PROXY: return "COULDNT_RESOLVE_PROXY";
    case CURLE_COULDNT_RESOLVE_HOST: return "COULDNT_RESOLVE_HOST";
    case CURLE_COULDNT_CONNECT: return "COULDNT_CONNECT";
    case CURLE_WEIRD_SERVER_REPLY: return "WEIRD_SERVER_REPLY";
    case CURLE_HTTP2: return "HTTP2";
    case CURLE_PARTIAL_FILE: return "PARTIAL_FILE";
    case CURLE_WRITE_ERROR: return "WRITE_ERROR";
    case CURLE_READ_ERROR: return "READ_ERROR";
    case CURLE_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case CURLE_OPERATION_TIMEDOUT: return "OPERATION_TIMEDOUT";
    case CURLE_SSL_CONNECT_ERROR: return "SSL_CONNECT_ERROR";
    case CURLE_TOO_MANY_REDIRECTS: return "TOO_MANY_REDIRECTS";
    case CURLE_GOT_NOTHING: return "GOT_NOTHING";
    case CURLE_SEND_ERROR: return "SEND_ERROR";
    case CURLE_RECV_ERROR: return "RECV_ERROR";
    case CURLE_SSL_CERTPROBLEM: return "SSL_CERTPROBLEM";
    case CURLE_SSL_CIPHER: return "SSL_CIPHER";
    case CURLE_PEER_FAILED_VERIFICATION: return "PEER_FAILED_VERIFICATION";
    case CURLE_BAD_CONTENT_ENCODING: return "BAD_CONTENT_ENCODING";
    case CURLE_SSL_CACERT_BADFILE: return "SSL_CACERT_BADFILE";
    case CURLE_SSL_ISSUER_ERROR: return "SSL_ISSUER_ERROR";
    case CURLE_HTTP2_STREAM: return "HTTP2_STREAM";
    case CURLE_PROXY: return "PROXY";
    case CURLE_SSL_CLIENTCERT: return "SSL_CLIENTCERT";
    default: return NULL;
    }
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    request *r = ud;
    size_t len = size * n;
    r->received += len;
    if (r->body.len + len > r->max_body) {
        r->too_large = 1;
        return 0;   /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return calm_buf_append(&r->body, p, len) == 0 ? len : 0;
}

/* Keeps the raw header block of the final response, for --trace. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    request *r = ud;
    size_t len = size * n;
    if (!r->first_byte) r->first_byte = calm_now();
    r->received += len;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {   /* a new response (after 1xx): start over */
        calm_buf_reset(&r->head);
        r->head_lines = 0;
    }
    if (++r->head_lines > MAX_HEADER_LINES || r->head.len + len > MAX_HEADER_BYTES) {
        r->bad_head = r->head_lines > MAX_HEADER_LINES ? 1 : 2;
        return 0;   /* curl stops with CURLE_WRITE_ERROR */
    }
    return calm_buf_append(&r->head, p, len) == 0 ? len : 0;
}

/* Cuts an answer that, once begun, arrives slower than TRICKLE_FLOOR: a
 * server sending a byte a second would otherwise hold each try for the
 * whole transfer timeout. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    request *r = ud;
    curl_off_t us = 0;
    double t;
    (void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
    /* curl knows the first byte before a whole header line has come */
    if (!r->first_byte && curl_easy_getinfo(r->t.easy, CURLINFO_STARTTRANSFER_TIME_T, &us) == CURLE_OK && us > 0)
        r->first_byte = r->started + (double)us / 1e6;
    if (!r->first_byte) return 0;
    t = calm_now() - r->first_byte;
    if (t < TRICKLE_WINDOW || (double)r->received >= TRICKLE_FLOOR * t) return 0;
    r->trickled = t;
    return 1;   /* curl stops with CURLE_ABORTED_BY_CALLBACK */
}

/* Frees everything the transfer holds; wipes buffers (tokens, secrets). */
static void req_release(request *r)
{
    struct curl_slist *h;
    if (r->t.easy) curl_easy_cleanup(r->t.easy);
    r->t.easy = NULL;
    for (h = r->headers; h; h = h->next) calm_wipe(h->data, strlen(h->data));
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    calm_buf_free(&r->body);
    calm_buf_free(&r->head);
    calm_buf_free(&r->sent);
    calm_buf_free(&r->cert);
    calm_buf_free(&r->key);
    free(r->url);
    r->url = NULL;
    if (r->anchor != LUA_NOREF && r->main) luaL_unref(r->main, LUA_REGISTRYINDEX, r->anchor);
    r->anchor = LUA_NOREF;
}

/* An RFC 9110 token: a header name that is not one (a NUL, a space, an
 * obs-fold) is dropped, not an error: a broken header must not cost the
 * response. */
static int lower_token(const char *in, char *out, size_t size)
{
    size_t i;
    for (i = 0; in[i]; i++) {
        unsigned char c = (unsigned char)in[i];
        if (i + 1 >= size || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                               strchr("!#$%&'*+-.^_`|~", c)))
            return 0;
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    out[i] = 0;
    return i > 0;
}

/* The header table of the final response, from libcurl's own parse: lower-
 * case names, repeated fields joined with ", ". */
static void push_headers(lua_State *L, CURL *easy)
{
    struct curl_header *h = NULL;
    char name[128];
    lua_newtable(L);
    while ((h = curl_easy_nextheader(easy, CURLH_HEADER, -1, h)) != NULL) {
        if (!lower_token(h->name, name, sizeof name)) continue;
        lua_getfield(L, -1, name);
        if (lua_isstring(L, -1)) {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, h->value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, h->value);
        }
        lua_setfield(L, -2, name);
    }
}

/* Content-Length or chunked framing: without either, a cut-short body
 * looks complete to libcurl. */
static int framed(CURL *easy)
{
    struct curl_header *h;
    if (curl_easy_header(easy, "Content-Length", 0, CURLH_HEADER, -1, &h) == CURLHE_OK) return 1;
    return curl_easy_header(easy, "Transfer-Encoding", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
           strstr(h->value, "chunked") != NULL;
}

/* --trace: the whole exchange. Every line goes through the redactor, so
 * Authorization headers, secret fields and registered secrets print as ***. */
static void trace_exchange(request *r, long status)
{
    struct curl_slist *h;
    if (calm_log_level() < CALM_LOG_TRACE) return;
    calm_log(CALM_LOG_TRACE, "> %s %s", r->method, r->url);
    for (h = r->headers; h; h = h->next)
        if (strncmp(h->data, "Expect:", 7) != 0)   /* ours, only to switch curl's off */
            calm_log(CALM_LOG_TRACE, "> %s", h->data);
    if (r->sent.len) calm_log_write(CALM_LOG_TRACE, r->sent.data, r->sent.len);
    calm_log(CALM_LOG_TRACE, "< HTTP %ld", status);
    if (r->head.len) calm_log_write(CALM_LOG_TRACE, r->head.data, r->head.len);
    if (r->body.len) calm_log_write(CALM_LOG_TRACE, r->body.data, r->body.len);
}

/* An answer refused for its headers or its speed: pushes nil, message, code
 * and returns 3, or returns 0. */
static int push_broken(lua_State *co, request *r, CURLcode rc)
{
    if (r->bad_head || (rc == CURLE_OUT_OF_MEMORY && !r->body.len && r->first_byte)) {
        /* curl itself refuses a header line over 100 KiB, as out of memory */
        lua_pushnil(co);
        if (r->bad_head == 1)
            lua_pushfstring(co, "%s %s: the answer has more than %d header lines; refused", r->method,
                            r->url, MAX_HEADER_LINES);
        else
            lua_pushfstring(co, "%s %s: the answer's header %s over %d KiB; refused", r->method, r->url,
                            r->bad_head ? "block is" : "line is", r->bad_head ? (int)(MAX_HEADER_BYTES >> 10) : 100);
        lua_pushliteral(co, "BAD_HEADERS");
        return 3;
    }
    if (r->trickled) {
        lua_pushnil(co);
        lua_pushfstring(co, "%s %s: the answer trickled in at under %d bytes/s (%d s after its "
                        "first byte); cut off", r->method, r->url, (int)TRICKLE_FLOOR,
                        (int)(r->trickled + 0.5));
        lua_pushliteral(co, "TRICKLE");
        return 3;
    }
    return 0;
}

static int req_finish(calm_transfer *t, lua_State *co, CURLcode rc)
{
    request *r = (request *)t;
    long status = 0;
    int n;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    calm_log(CALM_LOG_DEBUG, "%s %s -> %ld (%.3f s)", r->method, r->url, status, calm_now() - r->started);
    trace_exchange(r, status);
    if (r->too_large) {
        lua_pushnil(co);
        lua_pushfstring(co, "response from %s exceeds %d bytes", r->url, (int)r->max_body);
        lua_pushliteral(co, "TOO_LARGE");
        n = 3;
    } else if (rc != CURLE_OK && calm_fd_exhausted(r->socket_errno)) {
        /* not "couldn't connect": nothing reached the network */
        lua_pushnil(co);
        lua_pushfstring(co, "%s %s: out of file descriptors (%s; the limit is %d open files)",
                        r->method, r->url, strerror(EMFILE), (int)calm_fd_soft_limit());
        lua_pushliteral(co, "TOO_MANY_OPEN_FILES");
        n = 3;
    } else if ((n = push_broken(co, r, rc)) != 0) {
        /* nil, message, BAD_HEADERS | TRICKLE pushed */
    } else if (rc != CURLE_OK) {
        const char *name = curl_code_name(rc);
        lua_pushnil(co);
        lua_pushfstring(co, "%s %s: %s", r->method, r->url, r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
        if (name) lua_pushstring(co, name); else lua_pushfstring(co, "CURL_%d", (int)rc);
        n = 3;
    } else {
        lua_createtable(co, 0, 5);
        lua_pushinteger(co, status);
        lua_setfield(co, -2, "status");
        push_headers(co, t->easy);
        lua_setfield(co, -2, "headers");
        lua_pushlstring(co, r->body.data ? r->body.data : "", r->body.len);
        lua_setfield(co, -2, "body");
        lua_pushstring(co, r->url);
        lua_setfield(co, -2, "url");
        lua_pushboolean(co, !framed(t->easy) && status != 204 && status != 304 && status >= 200);
        lua_setfield(co, -2, "close_delimited");
        n = 1;
    }
    req_release(r);
    return n;
}

static void req_abandon(calm_transfer *t) { req_release((request *)t); }

static int req_gc(lua_State *L)
{
    req_release(luaL_checkudata(L, 1, REQ_MT));
    return 0;
}

/* Loopback names that never leave the machine; curl resolves *.localhost itself. */
static int is_loopback(const char *host)
{
    size_t n = strlen(host);
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0)
        return 1;
    if (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0) return 1;
    if (strncmp(host, "127.", 4) == 0) {
        int a, b, c;
        char tail;
        return sscanf(host + 4, "%d.%d.%d%c", &a, &b, &c, &tail) == 3;
    }
    return 0;
}

/* Returns NULL if the URL may be fetched, else why not. *plain_loopback is
 * set for http:// to loopback (those must never go through a proxy). */
static const char *check_url(const char *url, int *plain_loopback)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    const char *why = NULL;
    *plain_loopback = 0;
    if (!u) return "out of memory";
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        why = "not a valid URL";
    } else if (strcmp(scheme, "https") == 0) {
        why = NULL;
    } else if (strcmp(scheme, "http") == 0) {
        if (is_loopback(host)) *plain_loopback = 1;
        else why = "plain http is only allowed to loopback hosts; use https";
    } else {
        why = "only https URLs are allowed";
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return why;
}

/* A positive number: 0 would mean "no limit" to libcurl, and a negative
 * or NaN one makes its setopt fail silently. */
static double opt_number(lua_State *L, const char *field, double dflt)
{
    double v = dflt;
    if (lua_getfield(L, 1, field) != LUA_TNIL) {
        if (!lua_isnumber(L, -1)) luaL_error(L, "http.request: '%s' must be a number", field);
        v = lua_tonumber(L, -1);
        if (!(v > 0) || v > 1e12) luaL_error(L, "http.request: '%s' must be a positive number", field);
    }
    lua_pop(L, 1);
    return v;
}

static const char *opt_string(lua_State *L, const char *field, size_t *len)
{
    const char *s = NULL;
    if (lua_getfield(L, 1, field) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "http.request: '%s' must be a string", field);
        s = lua_tolstring(L, -1, len);
    }
    lua_pop(L, 1);   /* the string stays alive: it is referenced by the options table */
    return s;
}

static const char *const request_fields[] = {
    "url", "method", "headers", "body", "json", "form", "timeout", "connect_timeout",
    "cacert", "cert", "key", "max_body", NULL
};

static void check_fields(lua_State *L)
{
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        int i, known = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (i = 0; request_fields[i]; i++)
                if (strcmp(lua_tostring(L, -2), request_fields[i]) == 0) known = 1;
        if (!known) luaL_error(L, "http.request: unknown option '%s'", luaL_tolstring(L, -2, NULL));
        lua_pop(L, 1);
    }
}

static void add_header(lua_State *L, request *r, const char *name, const char *value)
{
    struct curl_slist *h;
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        luaL_error(L, "http.request: header '%s' contains a line break or colon", name);
    lua_pushfstring(L, "%s: %s", name, value);
    h = curl_slist_append(r->headers, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (!h) luaL_error(L, "http.request: out of memory");
    r->headers = h;
}

/* Headers from the options table; returns flags of which defaults are set. */
static int add_user_headers(lua_State *L, request *r)
{
    int seen = 0;
    if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            const char *name, *value;
            if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
                luaL_error(L, "http.request: 'headers' must map names to strings");
            name = lua_tostring(L, -2);
            value = lua_tostring(L, -1);
            if (strcasecmp(name, "accept") == 0) seen |= 1;
            if (strcasecmp(name, "content-type") == 0) seen |= 2;
            add_header(L, r, name, value);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "http.request: 'headers' must be a table");
    }
    lua_pop(L, 1);
    return seen;
}

/* Sets the request body (into r->sent) from body | json | form; returns the
 * default Content-Type for it (or NULL). */
static const char *set_body(lua_State *L, request *r)
{
    calm_buf *payload = &r->sent;
    int kinds = 0;
    const char *ctype = NULL;
    size_t len;
    const char *s = opt_string(L, "body", &len);
    if (s) {
        kinds++;
        if (calm_buf_append(payload, s, len)) luaL_error(L, "http.request: out of memory");
    }
    if (lua_getfield(L, 1, "json") != LUA_TNIL) {
        kinds++;
        lua_pushvalue(L, lua_upvalueindex(1));   /* cjson encode of a private instance */
        lua_pushvalue(L, -2);
        lua_call(L, 1, 1);
        s = lua_tolstring(L, -1, &len);
        if (calm_buf_append(payload, s, len)) luaL_error(L, "http.request: out of memory");
        lua_pop(L, 1);
        ctype = "application/json";
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "form") != LUA_TNIL) {
        kinds++;
        int rc;
        luaL_checktype(L, -1, LUA_TTABLE);
        if ((rc = calm_form_encode(L, -1, payload)) == -1)
            luaL_error(L, "http.request: 'form': %s", lua_tostring(L, -1));
        if (rc != 0) luaL_error(L, "http.request: out of memory");
        ctype = "application/x-www-form-urlencoded";
    }
    lua_pop(L, 1);
    if (kinds > 1) luaL_error(L, "http.request: give only one of 'body', 'json' and 'form'");
    return ctype;
}

static void set_tls(lua_State *L, request *r)
{
    CURL *e = r->t.easy;
    size_t certlen = 0, keylen = 0;
    const char *cacert = opt_string(L, "cacert", NULL);
    const char *cert = opt_string(L, "cert", &certlen), *key = opt_string(L, "key", &keylen);
    if (!cacert) cacert = getenv("CALMBIND_CACERT");
    if (!cacert) cacert = getenv("SSL_CERT_FILE");
    if (!cacert) cacert = getenv("CURL_CA_BUNDLE");
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (cacert) {   /* in addition to the system store, which stays as CAPATH */
        curl_easy_setopt(e, CURLOPT_CAINFO, cacert);
        curl_easy_setopt(e, CURLOPT_CAPATH, SYSTEM_CA_PATH);
    }
    if ((cert == NULL) != (key == NULL)) luaL_error(L, "http.request: 'cert' and 'key' go together");
    if (cert) {
        /* Our own copies, wiped when the request ends; libcurl would free its
         * copies of the private key without wiping them. */
        struct curl_blob cb, kb;
        if (calm_buf_append(&r->cert, cert, certlen) || calm_buf_append(&r->key, key, keylen))
            luaL_error(L, "http.request: out of memory");
        cb.data = r->cert.data; cb.len = r->cert.len; cb.flags = CURL_BLOB_NOCOPY;
        kb.data = r->key.data; kb.len = r->key.len; kb.flags = CURL_BLOB_NOCOPY;
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
}

static void set_method(lua_State *L, request *r, const char *method, const calm_buf *payload)
{
    CURL *e = r->t.easy;
    if (strcmp(method, "GET") == 0 && !payload->len) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return;
    }
    /* libcurl re-sends a request whose reused connection died before the
     * answer. For a create that is a blind re-send, so mutations always get
     * a connection of their own; the caller decides about retrying. */
    if (strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0)
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (payload->len || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
        strcmp(method, "PATCH") == 0) {
        /* read in place from the request's own buffer, wiped when it ends */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)payload->len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload->data ? payload->data : "");
    }
    (void)L;
}

/* The transfer's options: protocols, no redirects, timeouts, callbacks. */
static void set_transfer(request *r, const char *url, double timeout, double connect_timeout,
                         int plain_loopback)
{
    CURL *e = r->t.easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);   /* a bearer token must not travel */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "calmbind/" CALM_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(timeout * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ceil(connect_timeout * 1000));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)(timeout < 30 ? ceil(timeout) : 30));
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, calm_fd_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &r->socket_errno);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    if (plain_loopback) curl_easy_setopt(e, CURLOPT_PROXY, "");   /* loopback stays local */
}

/* http.request{url, method, headers, body | json | form, timeout, connect_timeout,
 *              cacert, cert, key, max_body} -> resp | nil, message, code (yields) */
static int http_request(lua_State *L)
{
    request *r;
    const char *url, *why, *ctype;
    const char *method = "GET";
    double timeout, connect_timeout, remaining;
    int plain_loopback, seen;
    char *m;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_fields(L);
    url = opt_string(L, "url", NULL);
    if (!url) luaL_error(L, "http.request: 'url' must be a string");
    if (opt_string(L, "method", NULL)) method = opt_string(L, "method", NULL);
    if (strlen(method) >= sizeof r->method || !*method || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != strlen(method))
        luaL_error(L, "http.request: 'method' must be a word of letters, e.g. \"GET\"");
    timeout = opt_number(L, "timeout", DEFAULT_TIMEOUT);
    connect_timeout = opt_number(L, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    calm_sched_check_flow(L, "http.request");

    if ((why = check_url(url, &plain_loopback)) != NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "http.request: refused %s: %s", url, why);
        lua_pushliteral(L, "INSECURE_URL");
        return 3;
    }
    remaining = calm_sched_remaining(L);
    if (remaining <= 0) return calm_sched_push_deadline(L);
    if (timeout > remaining) timeout = remaining;
    if (connect_timeout > timeout) connect_timeout = timeout;

    r = lua_newuserdatauv(L, sizeof *r, 0);   /* GC owns it until it is in flight */
    memset(r, 0, sizeof *r);
    r->anchor = LUA_NOREF;
    luaL_setmetatable(L, REQ_MT);
    r->t.finish = req_finish;
    r->t.abandon = req_abandon;
    r->max_body = (size_t)opt_number(L, "max_body", DEFAULT_MAX_BODY);
    snprintf(r->method, sizeof r->method, "%s", method);
    for (m = r->method; *m; m++) *m = (char)toupper((unsigned char)*m);
    if (!(r->url = strdup(url)) || !(r->t.easy = curl_easy_init()))
        return luaL_error(L, "http.request: out of memory");

    ctype = set_body(L, r);
    seen = add_user_headers(L, r);
    if (!(seen & 1)) add_header(L, r, "Accept", "application/json");
    if (!(seen & 2) && ctype) add_header(L, r, "Content-Type", ctype);
    add_header(L, r, "Expect", "");
    set_method(L, r, r->method, &r->sent);
    set_tls(L, r);

    set_transfer(r, url, timeout, connect_timeout, plain_loopback);

    /* In flight: anchored in the registry so a dropped reference cannot free it. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    r->main = lua_tothread(L, -1);
    lua_pop(L, 1);
    r->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
    r->started = calm_now();
    return calm_sched_park(L, &r->t);
}

/* http.parse_retry_after(value [, now]) -> seconds | nil */
static int http_parse_retry_after(lua_State *L)
{
    size_t n;
    const char *v = luaL_checklstring(L, 1, &n);
    time_t now = (time_t)luaL_optinteger(L, 2, (lua_Integer)time(NULL));
    double secs;
    if (calm_parse_retry_after(v, n, now, &secs) != 0) return 0;
    lua_pushnumber(L, secs);
    return 1;
}

static const luaL_Reg http_funcs[] = {
    { "parse_retry_after", http_parse_retry_after }, { NULL, NULL }
};

int luaopen_calm_http(lua_State *L)
{
    if (luaL_newmetatable(L, REQ_MT)) {
        lua_pushcfunction(L, req_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, http_funcs);
    /* A private cjson instance: scripts changing cjson settings cannot alter
     * what we send. */
    luaL_requiref(L, "cjson", luaopen_cjson, 0);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "encode");
    lua_remove(L, -2);
    lua_remove(L, -2);
    lua_pushcclosure(L, http_request, 1);
    lua_setfield(L, -2, "request");
    return 1;
}
