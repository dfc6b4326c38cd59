/* sandbox.c: what scripts may use. The standard libraries minus process
 * control, native code and binary chunks (all back with --unsafe, plus
 * debug); coroutine.resume/close refuse flows; globals are strict. */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "calm_lua.h"

/* ---- strict globals -------------------------------------------------------- */

static int strict_index(lua_State *L)
{
    return luaL_error(L, "undeclared global '%s' (declare it with local)", luaL_tolstring(L, 2, NULL));
}

static int strict_newindex(lua_State *L)
{
    return luaL_error(L, "assignment to undeclared global '%s' (use local)", luaL_tolstring(L, 2, NULL));
}

/* ---- sandbox ------------------------------------------------------------- */

static int not_available(lua_State *L)
{
    return luaL_error(L, "sandbox: '%s' is not available to scripts (a custom script may run with --unsafe)",
                      lua_tostring(L, lua_upvalueindex(1)));
}

static void block(lua_State *L, const char *lib, const char *fn)
{
    lua_getglobal(L, lib);
    lua_pushfstring(L, "%s.%s", lib, fn);
    lua_pushcclosure(L, not_available, 1);
    lua_setfield(L, -2, fn);
    lua_pop(L, 1);
}

static void block_global(lua_State *L, const char *fn)
{
    lua_pushstring(L, fn);
    lua_pushcclosure(L, not_available, 1);
    lua_setglobal(L, fn);
}

/* load(chunk [, name [, mode [, env]]]) with mode forced to text: binary
 * chunks can crash the VM. */
static int load_text_only(lua_State *L)
{
    int n = lua_gettop(L);
    if (n >= 3 && !lua_isnil(L, 3) && strcmp(luaL_checkstring(L, 3), "t") != 0)
        return luaL_error(L, "sandbox: load accepts text chunks only (mode \"t\")");
    if (n < 3) lua_settop(L, n = 3);   /* an absent env must stay absent, not nil */
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* coroutine.resume / coroutine.close on a flow's thread would run or end it
 * behind the scheduler's back (a parked HTTP transfer then completes into
 * the wrong request): refuse. Upvalues: the original function, its name. */
static int guarded_coroutine(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    if (co && *(void **)lua_getextraspace(co) != NULL)
        return luaL_error(L, "coroutine.%s: that coroutine is a flow; use calm.task to wait for or cancel it",
                          lua_tostring(L, lua_upvalueindex(2)));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static void guard_coroutine(lua_State *L, const char *fn)
{
    lua_getglobal(L, "coroutine");
    lua_getfield(L, -1, fn);
    lua_pushstring(L, fn);
    lua_pushcclosure(L, guarded_coroutine, 2);
    lua_setfield(L, -2, fn);
    lua_pop(L, 1);
}

void calm_sandbox_open_libs(lua_State *L, int unsafe)
{
    static const luaL_Reg libs[] = {
        { LUA_GNAME, luaopen_base }, { LUA_LOADLIBNAME, luaopen_package },
        { LUA_COLIBNAME, luaopen_coroutine }, { LUA_TABLIBNAME, luaopen_table },
        { LUA_IOLIBNAME, luaopen_io }, { LUA_OSLIBNAME, luaopen_os },
        { LUA_STRLIBNAME, luaopen_string }, { LUA_MATHLIBNAME, luaopen_math },
        { LUA_UTF8LIBNAME, luaopen_utf8 }, { NULL, NULL }
    };
    const luaL_Reg *lib;
    for (lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    guard_coroutine(L, "resume");
    guard_coroutine(L, "close");
    if (unsafe) {
        luaL_requiref(L, LUA_DBLIBNAME, luaopen_debug, 1);
        lua_pop(L, 1);
        return;
    }
    block(L, "os", "execute");
    block(L, "os", "exit");
    block(L, "io", "popen");
    block(L, "package", "loadlib");
    block_global(L, "dofile");
    block_global(L, "loadfile");
    lua_getglobal(L, "load");
    lua_pushcclosure(L, load_text_only, 1);
    lua_setglobal(L, "load");
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
}

void calm_sandbox_strict_globals(lua_State *L)
{
    lua_pushglobaltable(L);
    lua_newtable(L);
    lua_pushcfunction(L, strict_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, strict_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}
