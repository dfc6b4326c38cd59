/* needs: src/ijson.c src/ijson_scan.c src/buf.c */
/* fuzz_ijson: the I-JSON check (src/ijson.c) against lua-cjson 2.1.0 with
 * calm.lib.json's settings, on any bytes:
 *   - the check never crashes, and a fault has a kind, a position inside
 *     the input (or just past its end) and a one-line text;
 *   - whatever the check accepts, lua-cjson decodes (so whatever cjson
 *     refuses, the check refuses first, with its own message), and every
 *     number cjson gives back is finite. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <lua-cjson.h>

#include "calm.h"

static lua_State *L;
static int decode_ref;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "cjson", luaopen_cjson, 0);
    if (luaL_dostring(L, "local c = require('cjson').new(); c.decode_invalid_numbers(false);"
                         "c.decode_max_depth(1000); return c.decode") != LUA_OK)
        abort();
    decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    return 0;
}

/* Every number in the decoded value at the top of the stack is finite. */
static int all_finite(int depth)
{
    int ok = 1;
    if (lua_type(L, -1) == LUA_TNUMBER) return isfinite(lua_tonumber(L, -1));
    if (lua_type(L, -1) != LUA_TTABLE || depth > 1100) return 1;
    lua_pushnil(L);
    while (ok && lua_next(L, -2)) {
        ok = all_finite(depth + 1);
        lua_pop(L, 1);
    }
    if (!ok) lua_pop(L, 1);   /* the key lua_next left */
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    calm_ijson_fault f;
    int rc = calm_ijson_check((const char *)data, size, 1000, &f), decoded;
    if (rc == -2) return 0;
    if (rc == -1) {
        if (!f.kind || f.at < 1 || f.at > size + 1 || !f.what[0] || strchr(f.what, '\n')) abort();
    } else if (rc != 0) {
        abort();
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, decode_ref);
    lua_pushlstring(L, (const char *)data, size);
    decoded = lua_pcall(L, 1, 1, 0) == LUA_OK;
    if (rc == 0 && !decoded) {
        fprintf(stderr, "accepted by the check, refused by cjson: %s\n", lua_tostring(L, -1));
        abort();
    }
    if (rc == 0 && !all_finite(0)) {
        fprintf(stderr, "accepted by the check, a number decoded as inf/nan\n");
        abort();
    }
    lua_settop(L, 0);
    return 0;
}
