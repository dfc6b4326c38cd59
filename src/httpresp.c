/* httpresp.c: the answer to one calm.http request: the body within max_body,
 * the header block and the trickle floor (an answer past them is refused as
 * broken), then the response table or nil, message, code for the flow. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "http_internal.h"

/* Limits a real BTP answer never comes near (about 20 header lines, a few KiB
 * of headers, the whole answer in well under a second once it has begun):
 * beyond them the answer is refused as broken, not waited for or retried. */
#define MAX_HEADER_LINES 256
#define MAX_HEADER_BYTES (64u << 10)
#define TRICKLE_WINDOW 5.0     /* seconds after the first byte of the answer */
#define TRICKLE_FLOOR 1024.0   /* bytes per second, averaged over that time */

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

void calm_http_set_receive(request *r)
{
    CURL *e = r->t.easy;
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
}

/* Frees everything the transfer holds; wipes buffers (tokens, secrets). */
void calm_http_release(request *r)
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
    size_t head = r->head.len;
    if (calm_log_level() < CALM_LOG_TRACE) return;
    while (head > 0 && (r->head.data[head - 1] == '\n' || r->head.data[head - 1] == '\r'))
        head--;     /* the blank line that ends the block is no header */
    calm_log(CALM_LOG_TRACE, "> %s %s", r->method, r->url);
    for (h = r->headers; h; h = h->next)
        if (strncmp(h->data, "Expect:", 7) != 0)   /* ours, only to switch curl's off */
            calm_log(CALM_LOG_TRACE, "> %s", h->data);
    /* each block redacted whole (a PEM spans lines), then every line marked */
    if (r->sent.len) calm_log_write_each(CALM_LOG_TRACE, "> ", r->sent.data, r->sent.len);
    calm_log(CALM_LOG_TRACE, "< HTTP %ld", status);
    if (head) calm_log_write_each(CALM_LOG_TRACE, "< ", r->head.data, head);
    if (r->body.len) calm_log_write_each(CALM_LOG_TRACE, "< ", r->body.data, r->body.len);
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

int calm_http_finish(calm_transfer *t, lua_State *co, CURLcode rc)
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
    calm_http_release(r);
    return n;
}

void calm_http_abandon(calm_transfer *t) { calm_http_release((request *)t); }
