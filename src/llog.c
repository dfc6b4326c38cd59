/* llog.c: the calm.log Lua module, a thin layer over log.c and redact.c.
 *
 *   local log = require "calm.log"
 *   log.info("created %s in %.1f s", name, secs)
 *   local secret = log.secret(creds.clientsecret)   -- prints as *** from now on
 *
 * Formatting is Lua's own string.format (captured when the module opens, so a
 * script cannot swap it). A call with the format string alone prints it as
 * is, so log.info("100%") needs no escaping. Disabled levels return before
 * formatting: trace calls on big bodies cost nothing unless --trace is on. */
#include <limits.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "calm_lua.h"

/* Defined in log.c; to move into calm.h (asked of the lead). */

static const char *const level_names[] = { "error", "warn", "info", "debug", "trace", NULL };

/* ---- scratch buffer owned by Lua ----------------------------------------
 * A calm_buf kept in a to-be-closed userdata: if lua_pushlstring raises
 * (memory), Lua still closes the box, so the redacted copy is wiped and freed
 * rather than leaked. */

static calm_buf *push_box(lua_State *L)
{
    calm_buf *b = calm_lbuf_new(L);
    lua_toclose(L, -1);
    return b;
}

/* ---- formatting ----------------------------------------------------------- */

/* Leaves the message for a call (fmt, ...) on top of the stack. Raises
 * "log.<what>: <string.format's complaint>" on a bad format. */
static void format_args(lua_State *L, const char *what)
{
    int n = lua_gettop(L);

    luaL_checkstring(L, 1);
    if (n == 1) {
        lua_pushvalue(L, 1);
        return;
    }
    lua_pushvalue(L, lua_upvalueindex(1));  /* string.format */
    lua_insert(L, 1);
    if (lua_pcall(L, n, 1, 0) != LUA_OK)
        luaL_error(L, "log.%s: %s", what, lua_tostring(L, -1));
}

/* log.<level>(fmt, ...): one redacted line on stderr if the level is on. */
static int log_at(lua_State *L, int level)
{
    const char *msg;
    size_t len;

    if (level > calm_log_level()) {
        luaL_checkstring(L, 1);     /* misuse still raises when quiet */
        return 0;
    }
    format_args(L, level_names[level]);
    msg = lua_tolstring(L, -1, &len);
    calm_log_write(level, msg, len);
    return 0;
}

/* log.error(fmt, ...) / warn / info / debug / trace -> nothing */
static int log_error(lua_State *L) { return log_at(L, CALM_LOG_ERROR); }
static int log_warn(lua_State *L) { return log_at(L, CALM_LOG_WARN); }
static int log_info(lua_State *L) { return log_at(L, CALM_LOG_INFO); }
static int log_debug(lua_State *L) { return log_at(L, CALM_LOG_DEBUG); }
static int log_trace(lua_State *L) { return log_at(L, CALM_LOG_TRACE); }

/* ---- levels --------------------------------------------------------------- */

/* log.set_level(name) -> previous name. Raises on an unknown name. */
static int log_set_level(lua_State *L)
{
    int level = luaL_checkoption(L, 1, NULL, level_names);

    lua_pushstring(L, level_names[calm_log_level()]);
    calm_log_set_level(level);
    return 1;
}

/* log.level() -> "error" | "warn" | "info" | "debug" | "trace" */
static int log_level(lua_State *L)
{
    lua_pushstring(L, level_names[calm_log_level()]);
    return 1;
}

/* log.enabled(name) -> boolean: would a line at this level print? Lets a
 * caller skip building an expensive message (a trace of a body). */
static int log_enabled(lua_State *L)
{
    int level = luaL_checkoption(L, 1, NULL, level_names);

    lua_pushboolean(L, level <= calm_log_level());
    return 1;
}

/* ---- secrets -------------------------------------------------------------- */

/* log.secret(value) -> value. Registers a string so it prints as "***"
 * everywhere from now on (also percent-, form-, JSON- and base64-encoded).
 * nil passes through, so optional fields need no test. Strings shorter than
 * 6 bytes are returned but not registered: they would mask ordinary text. */
static int log_secret(lua_State *L)
{
    const char *s;
    size_t n;

    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 1);
        return 1;
    }
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_typeerror(L, 1, "string or nil");
    s = lua_tolstring(L, 1, &n);
    if (calm_redact_add(s, n) != 0)
        return luaL_error(L, "log.secret: out of memory");
    lua_settop(L, 1);
    return 1;
}

/* log.scope() -> a new secret scope: flows spawned with {secret_scope = it}
 * (and the flows they spawn) register their secrets in it. */
static int log_scope(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)calm_redact_scope_new());
    return 1;
}

/* log.forget(scope) -> n | nil, msg. Wipes and forgets the n values
 * registered in the scope: call it once nothing that could print them is left
 * (a fleet, when a tenant's outcome is written). Values also registered
 * outside it stay; while a flow of the scope has not finished, all stay. */
static int log_forget(lua_State *L)
{
    lua_Integer scope = luaL_checkinteger(L, 1);
    luaL_argcheck(L, scope > 0 && scope <= UINT_MAX, 1, "not a scope from log.scope()");
    if (calm_sched_scope_live(L, (unsigned)scope)) {
        lua_pushnil(L);
        lua_pushliteral(L, "a flow of the scope is still running: its secrets stay registered");
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)calm_redact_forget((unsigned)scope));
    return 1;
}

/* log.redact(s) -> s with every secret (registered or recognised) as "***" */
static int log_redact(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    calm_buf *b = push_box(L);              /* stack: s, box */

    if (calm_redact(s, n, b) != 0)
        return luaL_error(L, "log.redact: out of memory");
    lua_pushlstring(L, b->data, b->len);    /* stack: s, box, result */
    lua_closeslot(L, 2);                    /* wipe our copy now, not at GC */
    return 1;
}

/* log.secret_name(name) -> true if redaction hides the values of fields so named */
static int log_secret_name(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_pushboolean(L, calm_redact_secret_name(s, n));
    return 1;
}

/* ---- progress ------------------------------------------------------------- */

/* log.progress(fmt, ...) -> nothing. On a TTY: rewrites one status line in
 * place; otherwise an info line, skipped when it repeats the previous one.
 * Nothing at levels error and warn. */
static int log_progress(lua_State *L)
{
    const char *msg;
    size_t len;

    if (calm_log_level() < CALM_LOG_INFO) {
        luaL_checkstring(L, 1);
        return 0;
    }
    format_args(L, "progress");
    msg = lua_tolstring(L, -1, &len);
    calm_log_progress(msg, len);
    return 0;
}

/* log.progress_done() -> nothing. Erases the status line (a TTY) and lets
 * the next progress message print even if it repeats the last. */
static int log_progress_done(lua_State *L)
{
    (void)L;
    calm_log_progress_done();
    return 0;
}

static const luaL_Reg log_funcs[] = {
    { "error", log_error },
    { "warn", log_warn },
    { "info", log_info },
    { "debug", log_debug },
    { "trace", log_trace },
    { "set_level", log_set_level },
    { "level", log_level },
    { "enabled", log_enabled },
    { "secret", log_secret },
    { "scope", log_scope },
    { "forget", log_forget },
    { "redact", log_redact },
    { "secret_name", log_secret_name },
    { "progress", log_progress },
    { "progress_done", log_progress_done },
    { NULL, NULL }
};

int luaopen_calm_log(lua_State *L)
{
    /* string.format as the shared upvalue: from package.loaded.string if
     * the host opened it, else a private copy of the string library. */
    luaL_newlibtable(L, log_funcs);                 /* stack: M */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, LUA_STRLIBNAME) != LUA_TTABLE) {
        lua_pop(L, 1);
        luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
    }
    lua_getfield(L, -1, "format");                  /* stack: M, loaded, string, format */
    luaL_argcheck(L, lua_isfunction(L, -1), 1, "string.format missing");
    lua_replace(L, -3);                             /* stack: M, format, string */
    lua_pop(L, 1);
    luaL_setfuncs(L, log_funcs, 1);
    return 1;
}
