/* lurl.c: the calm.url Lua module: URLs taken apart, joined and given a
 * query over libcurl's URL API (url.c), so the Lua scripts hold no URL
 * patterns of their own and judge a URL the way libcurl will send it.
 * Misuse (a wrong argument type) raises; a URL that is not one is
 * nil, why, code. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "calm_lua.h"

static const char URL_META[] = "calm.url.parts";
static const char NOT_ABSOLUTE[] = "is not an absolute URL";

/* The parts of a parse live in a userdata, so a raising push frees them. */
static int parts_release(lua_State *L)
{
    calm_url_free(luaL_checkudata(L, 1, URL_META));
    return 0;
}

static calm_url *new_parts(lua_State *L)
{
    calm_url *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u);
    calm_set_releaser(L, URL_META, parts_release);
    return u;
}

static int push_failure(lua_State *L, const char *why, int rc)
{
    if (rc == -2) return luaL_error(L, "url: not enough memory");
    lua_pushnil(L);
    lua_pushstring(L, why);
    lua_pushstring(L, strcmp(why, NOT_ABSOLUTE) == 0 ? "NOT_URL" : "BAD_URL");
    return 3;
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* origin: scheme://host[:port], what messages name a URL by. */
static void push_table(lua_State *L, const calm_url *u)
{
    lua_createtable(L, 0, 10);
    set_str(L, "scheme", u->scheme);
    set_str(L, "host", u->host);
    if (u->port) {
        lua_pushinteger(L, u->port);
        lua_setfield(L, -2, "port");
    }
    set_str(L, "path", u->path);
    set_str(L, "query", u->query);
    set_str(L, "fragment", u->fragment);
    if (u->port) lua_pushfstring(L, "%s://%s:%d", u->scheme, u->host, u->port);
    else lua_pushfstring(L, "%s://%s", u->scheme, u->host);
    lua_setfield(L, -2, "origin");
    lua_pushboolean(L, u->ip);
    lua_setfield(L, -2, "ip");
    lua_pushboolean(L, u->loopback);
    lua_setfield(L, -2, "loopback");
    if (u->userinfo) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "userinfo");
    }
}

/* url.parse(s [, {userinfo = true, default_scheme = "http"}]) ->
 *   {scheme, host, port?, path, query?, fragment?, origin, ip, loopback, userinfo?}
 *   | nil, why, "NOT_URL" (no scheme://) | "BAD_URL".
 * why completes "<field> ...". userinfo = true accepts and drops a user name
 * and password (a proxy setting); default_scheme = "http" reads host:port. */
static int url_parse(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1), *why = NULL;
    unsigned flags = 0;
    calm_url *u;
    int rc;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        if (lua_getfield(L, 2, "userinfo") != LUA_TNIL && lua_toboolean(L, -1)) flags |= CALM_URL_USERINFO;
        if (lua_getfield(L, 2, "default_scheme") != LUA_TNIL) {
            luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "http") == 0, 2,
                          "default_scheme must be \"http\"");
            flags |= CALM_URL_DEFAULT_HTTP;
        }
        lua_pop(L, 2);
    }
    u = new_parts(L);
    rc = calm_url_parse(s, flags, u, &why);
    if (rc != 0) return push_failure(L, why, rc);
    push_table(L, u);
    return 1;
}

/* The string field k of table idx, or NULL; raises for another type. */
static const char *opt_field(lua_State *L, int idx, const char *k)
{
    int t = lua_getfield(L, idx, k);
    const char *v = NULL;
    if (t == LUA_TSTRING) v = lua_tostring(L, -1);
    else if (t != LUA_TNIL) luaL_error(L, "url.build: '%s' must be a string", k);
    lua_pop(L, 1);   /* the string stays anchored by the table */
    return v;
}

/* A query argument at idx (a table encoded as url.query, or an encoded
 * string) appended to out after sep; nothing for nil. */
static void put_query(lua_State *L, int idx, const char *fn, int sep, calm_buf *out)
{
    int rc = 0;
    if (lua_isnoneornil(L, idx)) return;
    if (lua_type(L, idx) == LUA_TTABLE) {
        calm_buf *q = calm_lbuf_new(L);
        rc = calm_query_encode(L, idx, q);
        if (rc == -1) luaL_error(L, "%s: query: %s", fn, lua_tostring(L, -1));
        if (rc == 0 && q->len) rc = (sep && calm_buf_putc(out, sep)) || calm_buf_append(out, q->data, q->len) ? -2 : 0;
        calm_buf_free(q);
        lua_pop(L, 1);
    } else {
        size_t n;
        const char *s = luaL_checklstring(L, idx, &n);
        if (n) rc = (sep && calm_buf_putc(out, sep)) || calm_buf_append(out, s, n) ? -2 : 0;
    }
    if (rc) luaL_error(L, "%s: not enough memory", fn);
}

/* url.build{scheme=, host=, port=, path=, query=, fragment=} -> string | nil, why, code:
 * the URL of those parts (path, query and fragment already encoded; query
 * may be a table, encoded as url.query), held to url.parse's rules. */
static int url_build(lua_State *L)
{
    calm_url in;
    calm_buf *q, *out;
    const char *why = NULL;
    int rc;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    memset(&in, 0, sizeof in);
    in.scheme = (char *)opt_field(L, 1, "scheme");
    in.host = (char *)opt_field(L, 1, "host");
    in.path = (char *)opt_field(L, 1, "path");
    in.fragment = (char *)opt_field(L, 1, "fragment");
    if (lua_getfield(L, 1, "port") != LUA_TNIL) {
        lua_Integer p = lua_tointeger(L, -1);
        if (!lua_isinteger(L, -1) || p < 1 || p > 65535) {
            lua_pushnil(L);
            lua_pushliteral(L, "has an invalid port");
            lua_pushliteral(L, "BAD_URL");
            return 3;
        }
        in.port = (int)p;
    }
    lua_getfield(L, 1, "query");          /* at 3 */
    q = calm_lbuf_new(L);
    put_query(L, 3, "url.build", 0, q);
    in.query = q->len ? q->data : NULL;
    out = calm_lbuf_new(L);
    rc = calm_url_build(&in, out, &why);
    if (rc != 0) return push_failure(L, why, rc);
    calm_lbuf_push(L, out);
    return 1;
}

/* The path argument of join: relative, no fragment, no dot segments (the
 * joined URL stays under the base's path). NULL or why not. */
static const char *check_rel(const char *p, size_t n)
{
    size_t i = 0;
    if (memchr(p, '#', n)) return "must not have a fragment";
    if (n >= 2 && p[0] == '/' && p[1] == '/') return "must be a path, not //host";
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '/') j++;
        if ((j - i == 1 && p[i] == '.') || (j - i == 2 && p[i] == '.' && p[i + 1] == '.'))
            return "must not have '.' or '..' segments";
        i = j + 1;
    }
    return NULL;
}

/* base's path, then path (a '/' between them, never two), then path's own
 * query and query (a table or an encoded string) joined by '&'. */
static int join_into(lua_State *L, calm_url *b, const char *path, calm_buf *out, const char **why)
{
    const char *qm = strchr(path, '?');
    size_t pn = qm ? (size_t)(qm - path) : strlen(path), bn = strlen(b->path);
    calm_buf *p = calm_lbuf_new(L), *q = calm_lbuf_new(L);
    calm_url in = *b;
    int rc;
    if ((*why = check_rel(path, pn)) != NULL) return -1;
    while (bn && b->path[bn - 1] == '/') bn--;
    while (pn && *path == '/') path++, pn--;
    if (calm_buf_append(p, b->path, bn) || (pn && calm_buf_putc(p, '/')) || calm_buf_append(p, path, pn) ||
        (qm && calm_buf_puts(q, qm + 1)))
        return -2;
    put_query(L, 3, "url.join", q->len ? '&' : 0, q);
    in.path = p->len ? p->data : (char *)"/";
    in.query = q->len ? q->data : NULL;
    rc = calm_url_build(&in, out, why);
    lua_pop(L, 2);
    return rc;
}

/* url.join(base, path [, query]) -> string | nil, why, code: path (which may
 * carry ?query) under base's path: join("https://h/api/", "/v1/x") is
 * https://h/api/v1/x; query, a table (encoded as url.query) or an encoded
 * string, is added with '&'. A path that is an absolute URL stands for
 * itself (a next-page link, a Location). base has no query or fragment. */
static int url_join(lua_State *L)
{
    const char *base = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2), *why = NULL;
    calm_url *b, *abs;
    lua_settop(L, 3);   /* the query at 3, nil when not given */
    b = new_parts(L);
    abs = new_parts(L);
    calm_buf *out = calm_lbuf_new(L);
    int rc;
    if (!lua_isnoneornil(L, 3) && lua_type(L, 3) != LUA_TTABLE) luaL_checkstring(L, 3);
    rc = calm_url_parse(path, 0, abs, &why);
    if (rc == 0) {
        /* an absolute URL: its query, then the one given */
        calm_buf *q = calm_lbuf_new(L);
        if (abs->query && calm_buf_puts(q, abs->query)) return luaL_error(L, "url.join: not enough memory");
        put_query(L, 3, "url.join", q->len ? '&' : 0, q);
        free(abs->query);
        abs->query = q->len ? strdup(q->data) : NULL;
        if (q->len && !abs->query) return luaL_error(L, "url.join: not enough memory");
        rc = calm_url_build(abs, out, &why);
        lua_pop(L, 1);
    } else if (rc == -1 && strcmp(why, NOT_ABSOLUTE) == 0) {
        rc = calm_url_parse(base, 0, b, &why);
        if (rc == 0 && (b->query || b->fragment)) why = "must not have a query or fragment", rc = -1;
        if (rc == 0) rc = join_into(L, b, path, out, &why);
    }
    if (rc != 0) return push_failure(L, why, rc);
    calm_lbuf_push(L, out);
    return 1;
}

/* url.query(t) -> string: "k=v&..." with keys sorted bytewise and every key
 * and value percent-encoded (RFC 3986: all but A-Z a-z 0-9 - . _ ~; space is
 * %20); values are strings, numbers, booleans or lists (each item encoded,
 * joined by literal commas: Cloud Foundry's "a or b"). "" for {}. Raises for
 * another key or value type. */
static int url_query(lua_State *L)
{
    calm_buf *out;
    int rc;
    luaL_checktype(L, 1, LUA_TTABLE);
    out = calm_lbuf_new(L);
    rc = calm_query_encode(L, 1, out);
    if (rc == -1) return luaL_error(L, "url.query: %s", lua_tostring(L, -1));
    if (rc == -2) return luaL_error(L, "url.query: not enough memory");
    calm_lbuf_push(L, out);
    return 1;
}

static const luaL_Reg url_funcs[] = {
    { "parse", url_parse }, { "build", url_build }, { "join", url_join }, { "query", url_query },
    { NULL, NULL }
};

int luaopen_calm_url(lua_State *L)
{
    luaL_newlib(L, url_funcs);
    return 1;
}
