/* needs: core build/embedded.c */
/* fuzz_keyparse: the Lua key parser (scripts/calm/key.lua) through the real
 * host: the same sandboxed state the commands run in. key.parse must answer
 * any bytes with a key or `nil, message` and never raise. */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "calm_lua.h"

static lua_State *L;
static int parse_ref;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    calm_log_set_level(CALM_LOG_ERROR);
    L = luaL_newstate();
    lua_pushcfunction(L, calm_host_setup);
    lua_pushboolean(L, 0);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) abort();
    lua_getglobal(L, "require");
    lua_pushliteral(L, "calm.key.parse");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "require calm.key.parse: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_getfield(L, -1, "parse");
    parse_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, parse_ref);
    lua_pushlstring(L, (const char *)data, size);
    lua_pushliteral(L, "fuzz input");
    if (lua_pcall(L, 2, 2, 0) != LUA_OK) {
        fprintf(stderr, "key.parse raised: %s\n", lua_tostring(L, -1));
        abort();
    }
    /* either a key table, or nil and a string message */
    if (!lua_istable(L, -2) && !(lua_isnil(L, -2) && lua_type(L, -1) == LUA_TSTRING)) abort();
    lua_settop(L, 0);
    calm_redact_clear();   /* parse registers the key's secrets; keep the registry small */
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
