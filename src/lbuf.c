/* lbuf.c: what the Lua modules share. The one buffer type: a calm_buf in a
 * userdata whose __gc and __close wipe and free it. A C function builds a
 * string (possibly a secret) in it; if a Lua call raises on the way (memory),
 * the collector or the to-be-closed slot still wipes and frees the bytes.
 * And the form encoder that codec.form_encode and http.request{form=} use. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "calm_lua.h"

static const char BUF_META[] = "calm.buf";

static int buf_release(lua_State *L)
{
    calm_buf_free(luaL_checkudata(L, 1, BUF_META));
    return 0;
}

void calm_set_releaser(lua_State *L, const char *meta, lua_CFunction release)
{
    if (luaL_newmetatable(L, meta)) {
        lua_pushcfunction(L, release);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, release);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
}

calm_buf *calm_lbuf_new(lua_State *L)
{
    calm_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
    calm_buf_init(b);
    calm_set_releaser(L, BUF_META, buf_release);
    return b;
}

void calm_lbuf_push(lua_State *L, calm_buf *b)
{
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    calm_buf_free(b);
}

struct kv { const char *k; size_t kn; };

static int kv_cmp(const void *a, const void *b)
{
    const struct kv *x = a, *y = b;
    size_t n = x->kn < y->kn ? x->kn : y->kn;
    int c = memcmp(x->k, y->k, n);
    if (c)
        return c;
    return (x->kn > y->kn) - (x->kn < y->kn);
}

/* A value query mode takes besides strings and numbers: a boolean, or a
 * list of strings and numbers. */
static int query_value_ok(lua_State *L, int v)
{
    lua_Integer i, n;
    if (lua_type(L, v) == LUA_TBOOLEAN) return 1;
    if (lua_type(L, v) != LUA_TTABLE) return 0;
    n = (lua_Integer)lua_rawlen(L, v);
    for (i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, v, i);
        lua_pop(L, 1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER) return 0;
    }
    return 1;
}

/* The value at the top, encoded: a list's items each encoded, joined by
 * literal commas (a list, as Cloud Foundry's filters read one). */
static int put_value(lua_State *L, int form, calm_buf *out)
{
    size_t vn;
    const char *v;
    if (lua_type(L, -1) == LUA_TBOOLEAN)
        return calm_buf_puts(out, lua_toboolean(L, -1) ? "true" : "false");
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
        for (i = 1; i <= n; i++) {
            int bad;
            lua_rawgeti(L, -1, i);
            v = lua_tolstring(L, -1, &vn);
            bad = (i > 1 && calm_buf_putc(out, ',') != 0) || calm_url_encode(v, vn, form, out) != 0;
            lua_pop(L, 1);
            if (bad) return -1;
        }
        return 0;
    }
    /* a number is converted on this copy, so the table is not changed */
    v = lua_tolstring(L, -1, &vn);
    return calm_url_encode(v, vn, form, out);
}

/* The one encoder of key=value pairs, keys sorted bytewise: form mode
 * (application/x-www-form-urlencoded: space as '+', string and number
 * values) or query mode (RFC 3986: space as %20, also booleans and lists). */
static int encode_pairs(lua_State *L, int idx, int form, calm_buf *out)
{
    struct kv *keys;
    size_t count = 0, i;

    idx = lua_absindex(L, idx);
    /* First pass: validate and count, so nothing is built for a bad table. */
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pushfstring(L, "keys must be strings, got %s", luaL_typename(L, -2));
            return -1;
        }
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER &&
            (form || !query_value_ok(L, lua_gettop(L)))) {
            lua_pushfstring(L, form ? "value of '%s' must be a string or number, got %s"
                                    : "value of '%s' must be a string, number, boolean or list, got %s",
                            lua_tostring(L, -2), luaL_typename(L, -1));
            return -1;
        }
        count++;
        lua_pop(L, 1);
    }
    /* The key strings stay anchored by the table, so pointers to them are
     * valid for the rest of this call. */
    keys = lua_newuserdatauv(L, (count ? count : 1) * sizeof *keys, 0);
    i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        keys[i].k = lua_tolstring(L, -2, &keys[i].kn);
        i++;
        lua_pop(L, 1);
    }
    qsort(keys, count, sizeof *keys, kv_cmp);
    for (i = 0; i < count; i++) {
        lua_pushlstring(L, keys[i].k, keys[i].kn);
        lua_rawget(L, idx);
        if ((i && calm_buf_putc(out, '&') != 0) || calm_url_encode(keys[i].k, keys[i].kn, form, out) != 0 ||
            calm_buf_putc(out, '=') != 0 || put_value(L, form, out) != 0)
            return -2;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);   /* keys */
    return 0;
}

int calm_form_encode(lua_State *L, int idx, calm_buf *out)
{
    return encode_pairs(L, idx, 1, out);
}

int calm_query_encode(lua_State *L, int idx, calm_buf *out)
{
    return encode_pairs(L, idx, 0, out);
}
