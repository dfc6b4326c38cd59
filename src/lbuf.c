/* lbuf.c: the one buffer type the Lua modules share: a calm_buf in a
 * userdata whose __gc and __close wipe and free it. A C function builds a
 * string (possibly a secret) in it; if a Lua call raises on the way (memory),
 * the collector or the to-be-closed slot still wipes and frees the bytes. */
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
