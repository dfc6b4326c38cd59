/* lhttp.c: calm.http — one HTTP(S) request per call, parked on the scheduler's
 * curl_multi handle. Here the Lua side: the options, checked, become a
 * request (httpreq.c sets the transfer up, httpresp.c takes the answer).
 * Bodies are buffered in C (no Lua inside libcurl callbacks); TLS
 * verification is always on; redirects are never followed. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "http_internal.h"

#define REQ_MT "calm.http.request"
#define DEFAULT_TIMEOUT 30.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_MAX_BODY (8u << 20)

static int req_gc(lua_State *L)
{
    calm_http_release(luaL_checkudata(L, 1, REQ_MT));
    return 0;
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
    "url", "method", "headers", "body", "form", "timeout", "connect_timeout",
    "cacert", "cert", "key", "max_body", "reuse", NULL
};

static void check_fields(lua_State *L)
{
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        int i, known = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (i = 0; request_fields[i]; i++)
                if (strcmp(lua_tostring(L, -2), request_fields[i]) == 0) known = 1;
        if (!known && lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "json") == 0)
            luaL_error(L, "http.request: 'json' is not an option: send body = json.encode(v) "
                          "(calm.lib.json), or use a calm.net.rest client, which takes json =");
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

/* Sets the request body (into r->sent) from body | form; returns the
 * default Content-Type for it (or NULL). */
static const char *set_body(lua_State *L, request *r)
{
    calm_buf *payload = &r->sent;
    const char *ctype = NULL;
    size_t len;
    const char *s = opt_string(L, "body", &len);
    if (s && calm_buf_append(payload, s, len)) luaL_error(L, "http.request: out of memory");
    if (lua_getfield(L, 1, "form") != LUA_TNIL) {
        int rc;
        if (s) luaL_error(L, "http.request: give only one of 'body' and 'form'");
        luaL_checktype(L, -1, LUA_TTABLE);
        if ((rc = calm_form_encode(L, -1, payload)) == -1)
            luaL_error(L, "http.request: 'form': %s", lua_tostring(L, -1));
        if (rc != 0) luaL_error(L, "http.request: out of memory");
        ctype = "application/x-www-form-urlencoded";
    }
    lua_pop(L, 1);
    return ctype;
}

/* 'method' (GET if absent): a word of letters, upper-cased into out. */
static void opt_method(lua_State *L, char out[METHOD_MAX])
{
    const char *method = opt_string(L, "method", NULL);
    size_t i, n;
    if (!method) method = "GET";
    n = strlen(method);
    if (n >= METHOD_MAX || !n || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != n)
        luaL_error(L, "http.request: 'method' must be a word of letters, e.g. \"GET\"");
    for (i = 0; i <= n; i++) out[i] = (char)toupper((unsigned char)method[i]);
}

static void set_tls(lua_State *L, request *r)
{
    size_t certlen = 0, keylen = 0;
    const char *cacert = opt_string(L, "cacert", NULL);
    if (!cacert) cacert = lua_tostring(L, lua_upvalueindex(1));   /* the host's default */
    const char *cert = opt_string(L, "cert", &certlen), *key = opt_string(L, "key", &keylen);
    if ((cert == NULL) != (key == NULL)) luaL_error(L, "http.request: 'cert' and 'key' go together");
    if (calm_http_set_tls(r, cacert, cert, certlen, key, keylen) != 0)
        luaL_error(L, "http.request: out of memory");
}

/* A new request (on the stack, the GC owns it until it is in flight) with
 * its body, headers, TLS and transfer settings from the options. */
static request *new_request(lua_State *L, const char *url, const char *method, double timeout,
                            double connect_timeout, int plain_loopback)
{
    const char *ctype;
    int seen;
    request *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    r->anchor = LUA_NOREF;
    luaL_setmetatable(L, REQ_MT);
    r->t.finish = calm_http_finish;
    r->t.abandon = calm_http_abandon;
    r->max_body = (size_t)opt_number(L, "max_body", DEFAULT_MAX_BODY);
    if (lua_getfield(L, 1, "reuse") != LUA_TNIL) {
        if (!lua_isboolean(L, -1)) luaL_error(L, "http.request: 'reuse' must be a boolean");
        r->reuse = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    memcpy(r->method, method, METHOD_MAX);
    if (!(r->url = strdup(url)) || !(r->t.easy = curl_easy_init()))
        luaL_error(L, "http.request: out of memory");

    ctype = set_body(L, r);
    seen = add_user_headers(L, r);
    if (!(seen & 1)) add_header(L, r, "Accept", "application/json");
    if (!(seen & 2) && ctype) add_header(L, r, "Content-Type", ctype);
    add_header(L, r, "Expect", "");
    calm_http_set_method(r);
    set_tls(L, r);
    calm_http_set_transfer(r, url, timeout, connect_timeout, plain_loopback);
    calm_http_set_receive(r);
    return r;
}

/* http.request{url, method, headers, body | form, timeout, connect_timeout,
 *              cacert, cert, key, max_body, reuse} -> resp | nil, message, code (yields) */
static int http_request(lua_State *L)
{
    request *r;
    const char *url, *why;
    char method[METHOD_MAX];
    double timeout, connect_timeout, remaining;
    int plain_loopback;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_fields(L);
    url = opt_string(L, "url", NULL);
    if (!url) luaL_error(L, "http.request: 'url' must be a string");
    opt_method(L, method);
    timeout = opt_number(L, "timeout", DEFAULT_TIMEOUT);
    connect_timeout = opt_number(L, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    calm_sched_check_flow(L, "http.request");

    if ((why = calm_http_check_url(url, &plain_loopback)) != NULL) {
        lua_pushnil(L);
        /* a URL with user:password@ is not repeated: the password is a secret */
        lua_pushfstring(L, "http.request: refused %s: %s", strchr(url, '@') ? "a URL" : url, why);
        lua_pushliteral(L, "INSECURE_URL");
        return 3;
    }
    remaining = calm_sched_remaining(L);
    if (remaining <= 0) return calm_sched_push_deadline(L);
    if (timeout > remaining) timeout = remaining;
    if (connect_timeout > timeout) connect_timeout = timeout;

    r = new_request(L, url, method, timeout, connect_timeout, plain_loopback);
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

/* http.check_url(url) -> true | nil, why: whether http.request would send
 * to url (https, or plain http to a loopback host), so a key's URLs can be
 * judged before any request. */
static int http_check_url(lua_State *L)
{
    int plain_loopback;
    const char *why = calm_http_check_url(luaL_checkstring(L, 1), &plain_loopback);
    if (why) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg http_funcs[] = {
    { "parse_retry_after", http_parse_retry_after }, { "check_url", http_check_url }, { NULL, NULL }
};

int luaopen_calm_http(lua_State *L)
{
    if (luaL_newmetatable(L, REQ_MT)) {
        lua_pushcfunction(L, req_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, http_funcs);
    /* Opened as a closure by the host, its upvalue is the CA bundle a request
     * without 'cacert' trusts as well (--cacert, SSL_CERT_FILE...). */
    if (lua_type(L, lua_upvalueindex(1)) == LUA_TSTRING) lua_pushvalue(L, lua_upvalueindex(1));
    else lua_pushnil(L);
    lua_pushcclosure(L, http_request, 1);
    lua_setfield(L, -2, "request");
    return 1;
}
