/* lcodec.c: the calm.codec Lua module, thin wrappers over codec.c.
 *
 * Every C-side buffer lives in the shared buffer userdata (lbuf.c), which wipes
 * and frees it, so nothing leaks when a Lua call raises halfway (a memory
 * error in lua_pushlstring, a bad value found in form_encode) and the bytes
 * never linger unwiped in the C heap. The strings handed back to Lua are
 * Lua's and cannot be wiped; that residual risk is documented. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "calm_lua.h"

static int oom(lua_State *L, const char *fn)
{
    return luaL_error(L, "codec.%s: not enough memory", fn);
}

/* codec.c's base64 in the shape of the URL codecs below. */
static int b64_encode(const char *in, size_t n, int url, calm_buf *out)
{
    return calm_b64_encode((const unsigned char *)in, n, url, out);
}

static int b64_decode(const char *in, size_t n, int unused, calm_buf *out)
{
    (void)unused;
    return calm_b64_decode(in, n, out);
}

/* The string-to-string codecs, one row each; codec_transform serves them all.
 * A decoder refuses bad input with nil, message, "INVALID"; the message
 * never quotes the input (it may be a secret). */
static const struct transform {
    const char *name;
    int (*run)(const char *in, size_t n, int variant, calm_buf *out); /* 0, -1 bad input, -2 memory */
    int variant;             /* base64url; '+' as space */
    const char *invalid;     /* lua_pushfstring format of the refusal (arg: input length) */
} transforms[] = {
    /* codec.b64encode(s) -> string: standard alphabet, padded */
    { "b64encode", b64_encode, 0, NULL },
    /* codec.b64url_encode(s) -> string: URL alphabet, no padding (JWT, PKCE) */
    { "b64url_encode", b64_encode, 1, NULL },
    /* codec.b64decode(s) -> string | nil, msg, "INVALID": either alphabet,
     * padding optional, no white space */
    { "b64decode", b64_decode, 0, "invalid base64 (%I bytes)" },
    /* codec.url_encode(s) -> string: RFC 3986, everything but A-Z a-z 0-9 - . _ ~
     * as %XX (upper-case hex); space is %20 */
    { "url_encode", calm_url_encode, 0, NULL },
    /* codec.url_decode(s) -> string | nil, msg, "INVALID" (a bad %XX escape);
     * '+' stays '+': that is form encoding (see form_decode) */
    { "url_decode", calm_url_decode, 0, "invalid %%XX escape" },
};

/* codec.<transform>(s): the row is the closure's upvalue. */
static int codec_transform(lua_State *L)
{
    const struct transform *t = lua_touserdata(L, lua_upvalueindex(1));
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    calm_buf *b = calm_lbuf_new(L);
    int rc = t->run(s, n, t->variant, b);
    if (rc == -2 || (rc != 0 && !t->invalid))
        return oom(L, t->name);
    if (rc != 0) {
        luaL_pushfail(L);
        lua_pushfstring(L, "codec.%s: ", t->name);
        lua_pushfstring(L, t->invalid, (lua_Integer)n);
        lua_concat(L, 2);
        lua_pushliteral(L, "INVALID");
        return 3;
    }
    calm_lbuf_push(L, b);
    return 1;
}

/* codec.form_encode(t) -> string: application/x-www-form-urlencoded, keys
 * sorted bytewise so the same table always gives the same body (stable
 * request logs and test expectations). Keys must be strings, values strings
 * or numbers; anything else raises naming the key. */
static int codec_form_encode(lua_State *L)
{
    calm_buf *b;
    int rc;

    luaL_checktype(L, 1, LUA_TTABLE);
    b = calm_lbuf_new(L);
    if ((rc = calm_form_encode(L, 1, b)) == -1)
        return luaL_argerror(L, 1, lua_tostring(L, -1));
    if (rc != 0)
        return oom(L, "form_encode");
    calm_lbuf_push(L, b);
    return 1;
}

/* Decodes one form component into the box and pushes it; 0, or -1 for a bad
 * escape (nothing pushed). */
static int push_form_part(lua_State *L, calm_buf *b, const char *s, size_t n)
{
    int rc;
    calm_buf_reset(b);
    rc = calm_url_decode(s, n, 1, b);
    if (rc == -2)
        return oom(L, "form_decode");
    if (rc != 0)
        return -1;
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    return 0;
}

/* codec.form_decode(s) -> table | nil, msg, "INVALID": '&'-separated
 * name=value pairs, '+' is a space; a name without '=' gets "", empty pairs
 * are skipped, and when a name repeats the last value wins. */
static int codec_form_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *end = s + n;
    calm_buf *b;

    lua_newtable(L);
    b = calm_lbuf_new(L);
    /* stack: s, result, box */
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(stop - s));
        if (stop > s) {
            const char *kend = eq ? eq : stop;
            const char *v = eq ? eq + 1 : stop;
            if (push_form_part(L, b, s, (size_t)(kend - s)) != 0 ||
                push_form_part(L, b, v, (size_t)(stop - v)) != 0) {
                calm_buf_free(b);
                luaL_pushfail(L);
                lua_pushliteral(L, "codec.form_decode: invalid %XX escape");
                lua_pushliteral(L, "INVALID");
                return 3;
            }
            lua_rawset(L, -4);
        }
        s = amp ? amp + 1 : end;
    }
    calm_buf_free(b);
    lua_pop(L, 1);
    return 1;
}

/* Fills p from getrandom or raises: running out of kernel randomness is not
 * an expected failure a script could handle, and a predictable fallback
 * would be worse than stopping. */
static void random_or_raise(lua_State *L, unsigned char *p, size_t n, const char *fn)
{
    if (calm_random_bytes(p, n) != 0)
        luaL_error(L, "codec.%s: getrandom failed", fn);
}

static void push_hex(lua_State *L, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    luaL_Buffer lb;
    size_t i;
    char *o = luaL_buffinitsize(L, &lb, 2 * n);
    for (i = 0; i < n; i++) {
        o[2 * i] = digits[p[i] >> 4];
        o[2 * i + 1] = digits[p[i] & 15];
    }
    luaL_pushresultsize(&lb, 2 * n);
}

/* codec.random_hex(nbytes) -> string of 2*nbytes lower-case hex digits from
 * getrandom(2); nbytes is an integer in 1..1024 (state values, nonces,
 * PKCE verifiers, file-name suffixes). */
static int codec_random_hex(lua_State *L)
{
    unsigned char raw[1024];
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= (lua_Integer)sizeof raw, 1,
                  "'nbytes' must be in 1..1024");
    random_or_raise(L, raw, (size_t)n, "random_hex");
    push_hex(L, raw, (size_t)n);
    calm_wipe(raw, (size_t)n);
    return 1;
}

/* codec.uuid() -> "xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx": a random (version 4,
 * RFC 4122 variant) UUID in lower case. */
static int codec_uuid(lua_State *L)
{
    unsigned char u[16];
    char text[37];
    size_t i, o = 0;
    static const char digits[] = "0123456789abcdef";

    random_or_raise(L, u, sizeof u, "uuid");
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);   /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);   /* variant 10xx */
    for (i = 0; i < sizeof u; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            text[o++] = '-';
        text[o++] = digits[u[i] >> 4];
        text[o++] = digits[u[i] & 15];
    }
    lua_pushlstring(L, text, o);
    return 1;
}

/* codec.ijson_check(text [, max_depth]) -> true | nil, what, kind, at:
 * the I-JSON check of ijson.c (calm.lib.json runs it before every decode).
 * what names the fault without quoting the text; kind is one of ijson.c's
 * kinds; at is the 1-based byte offset. max_depth defaults to 1000. */
static int codec_ijson_check(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Integer depth = luaL_optinteger(L, 2, 1000);
    calm_ijson_fault f;
    int rc;
    luaL_argcheck(L, depth >= 1 && depth <= 100000, 2, "max_depth must be 1..100000");
    rc = calm_ijson_check(s, n, (int)depth, &f);
    if (rc == -2) return oom(L, "ijson_check");
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, f.what);
    lua_pushstring(L, f.kind);
    lua_pushinteger(L, (lua_Integer)f.at);
    return 4;
}

static const luaL_Reg codec_funcs[] = {
    {"form_encode", codec_form_encode},
    {"form_decode", codec_form_decode},
    {"random_hex", codec_random_hex},
    {"uuid", codec_uuid},
    {"ijson_check", codec_ijson_check},
    {NULL, NULL}
};

int luaopen_calm_codec(lua_State *L)
{
    size_t i;
    luaL_newlib(L, codec_funcs);
    for (i = 0; i < sizeof transforms / sizeof *transforms; i++) {
        lua_pushlightuserdata(L, (void *)&transforms[i]);
        lua_pushcclosure(L, codec_transform, 1);
        lua_setfield(L, -2, transforms[i].name);
    }
    return 1;
}
