/* host.c: the Lua state calmbind runs scripts in: chosen standard libraries,
 * built-in modules in package.preload, a module searcher that prefers the
 * admin's script directories over the embedded scripts, the sandbox
 * (sandbox.c), strict globals, a
 * memory cap, and one protected entry point that maps outcomes to exit codes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <lua-cjson.h>

#include "calm_lua.h"

int luaopen_cjson_safe(lua_State *L);   /* in Debian's liblua5.4-cjson, not in its header */

#define MEMORY_LIMIT ((size_t)1 << 30)  /* a runaway string.rep fails cleanly */

struct alloc_state { size_t used, limit; };

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct alloc_state *a = ud;
    size_t old = ptr ? osize : 0;
    void *p;
    if (nsize == 0) {
        free(ptr);
        a->used -= old;
        return NULL;
    }
    if (nsize > old && a->used + (nsize - old) > a->limit) return NULL;
    p = realloc(ptr, nsize);
    if (p) a->used = a->used - old + nsize;
    return p;
}

/* ---- warn() ------------------------------------------------------------------ */

/* Lua's warn(msg1, ...) arrives in pieces (tocont set on all but the last);
 * the whole message (up to 1 KiB) goes out as one warning line, redacted
 * like every log line. Control messages ("@on", "@off") are ignored:
 * warnings are always on. The pending text lives in a userdata anchored in
 * the registry, so it goes with the state. */
struct warn_text { size_t len; char text[1024]; };

static void host_warn(void *ud, const char *msg, int tocont)
{
    struct warn_text *w = ud;
    size_t n = strlen(msg);
    if (!tocont && w->len == 0 && msg[0] == '@') return;
    if (n > sizeof w->text - w->len) n = sizeof w->text - w->len;
    memcpy(w->text + w->len, msg, n);
    w->len += n;
    if (tocont) return;
    calm_log_write(CALM_LOG_WARN, w->text, w->len);
    w->len = 0;
}

/* ---- module search: admin dirs first, then the embedded scripts (scripts.c) */

/* package.searchers entry: "calm.key.parse" -> scripts/calm/key/parse.lua */
static int search_scripts(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *rel = luaL_gsub(L, name, ".", "/");
    int rc;
    lua_pushfstring(L, "%s.lua", rel);
    if ((rc = calm_load_script(L, lua_tostring(L, -1))) != 0) {
        if (rc == CALM_SCRIPT_MISSING) {
            lua_pushfstring(L, "no calmbind script '%s'", lua_tostring(L, -2));
            return 1;
        }
        return lua_error(L);
    }
    lua_pushvalue(L, -2);
    return 2;
}

static void preload(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, open);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* cacert: calm.http's default CA bundle (NULL: the system store alone). */
static void setup_modules(lua_State *L, const char *cacert)
{
    preload(L, "calm.task", luaopen_calm_task);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushstring(L, cacert);   /* nil for NULL */
    lua_pushcclosure(L, luaopen_calm_http, 1);
    lua_setfield(L, -2, "calm.http");
    lua_pop(L, 1);
    preload(L, "calm.cmdline", luaopen_calm_cmdline);
    preload(L, "calm.codec", luaopen_calm_codec);
    preload(L, "calm.fs", luaopen_calm_fs);
    preload(L, "calm.log", luaopen_calm_log);
    preload(L, "calm.x509", luaopen_calm_x509);
    preload(L, "calm.url", luaopen_calm_url);
    preload(L, "cjson", luaopen_cjson);
    preload(L, "cjson.safe", luaopen_cjson_safe);
    /* searchers: preload, then our scripts; no C modules, no LUA_PATH. */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_createtable(L, 2, 0);
    lua_rawgeti(L, -2, 1);
    lua_rawseti(L, -2, 1);
    lua_pushcfunction(L, search_scripts);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, -3, "searchers");
    lua_pop(L, 1);
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    /* the scheduler exists before any script runs */
    luaL_requiref(L, "calm.task", luaopen_calm_task, 0);
    lua_pop(L, 1);
}

/* ---- running a command or script as the root flow ------------------------ */

/* Runs in the root flow, so a command's body may do HTTP straight away. */
static const char ROOT_SHIM[] =
    "local kind, chunk, args = ...\n"
    "if kind == 'command' then\n"
    "  local main = chunk()\n"
    "  if type(main) ~= 'function' then\n"
    "    error('a command script must return a function(args)', 0)\n"
    "  end\n"
    "  return main(args)\n"
    "end\n"
    "return chunk(table.unpack(args, 1, args.n))\n";

static int traceback_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Maps a fail code to an exit status through calm.lib.exit (admins may override
 * it); falls back to 1 when that module is missing or broken. */
static int status_for_code(lua_State *L, int code_idx)
{
    int status = CALM_EXIT_API, top = lua_gettop(L);
    lua_pushcfunction(L, traceback_handler);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "calm.lib.exit");
    if (lua_pcall(L, 1, 1, top + 1) == LUA_OK && lua_istable(L, -1)) {
        lua_getfield(L, -1, "status_for");
        lua_pushvalue(L, code_idx);
        if (lua_pcall(L, 1, 1, top + 1) == LUA_OK && lua_isinteger(L, -1))
            status = (int)lua_tointeger(L, -1);
    }
    lua_settop(L, top);
    return status;
}

/* Prints an error: the first line, and the traceback too with -v. */
static void report_error(const char *msg, int verbose)
{
    const char *nl = strchr(msg, '\n');
    if (verbose || !nl) calm_log(CALM_LOG_ERROR, "%s", msg);
    else calm_log(CALM_LOG_ERROR, "%.*s", (int)(nl - msg), msg);
}

/* Turns what the root flow returned (n values on top) into an exit status. */
static int outcome_status(lua_State *L, int n, const struct calm_host_opts *opts)
{
    int base = lua_gettop(L) - n + 1;
    if (n == 0) return CALM_EXIT_OK;
    if (lua_isinteger(L, base)) {
        lua_Integer v = lua_tointeger(L, base);
        return v < 0 || v > 255 ? CALM_EXIT_API : (int)v;
    }
    if (lua_isboolean(L, base)) return lua_toboolean(L, base) ? CALM_EXIT_OK : CALM_EXIT_API;
    if (lua_isnil(L, base) && n >= 2 && lua_isstring(L, base + 1)) {
        report_error(lua_tostring(L, base + 1), opts->verbose);
        return n >= 3 ? status_for_code(L, base + 2) : CALM_EXIT_API;
    }
    return CALM_EXIT_OK;
}

/* stack: chunk. Runs it as the root flow with args argv[first..argc-1]. */
static int run_root(lua_State *L, const char *kind, int argc, char **argv, int first,
                    const struct calm_host_opts *opts)
{
    int i, n, deadline_hit = 0;
    if (luaL_loadbufferx(L, ROOT_SHIM, sizeof ROOT_SHIM - 1, "=root", "t") != LUA_OK)
        return lua_error(L);
    lua_insert(L, -2);                 /* shim, chunk */
    lua_pushstring(L, kind);
    lua_insert(L, -2);                 /* shim, kind, chunk */
    lua_createtable(L, argc - first, 1);
    for (i = first; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - first + 1);
    }
    lua_pushinteger(L, argc - first);
    lua_setfield(L, -2, "n");
    n = calm_sched_run_root(L, 3, opts->timeout, &deadline_hit);
    if (n < 0) {
        if (deadline_hit) {
            report_error(lua_tostring(L, -1), opts->verbose);
            return CALM_EXIT_DEADLINE;
        }
        /* A Lua error is a bug in a script, not something BTP answered:
         * say so, so nobody goes looking in BTP for it. */
        lua_pushfstring(L, "script error (a bug in a script, not a BTP failure%s): %s",
                        opts->verbose ? "" : "; -v shows the traceback", lua_tostring(L, -1));
        report_error(lua_tostring(L, -1), opts->verbose);
        return CALM_EXIT_API;
    }
    {
        int status = outcome_status(L, n, opts);
        if (status == CALM_EXIT_OK && deadline_hit) {
            calm_log(CALM_LOG_ERROR, "deadline passed (--timeout): a flow was stopped");
            status = CALM_EXIT_DEADLINE;
        }
        return status;
    }
}

/* ---- entry ------------------------------------------------------------------ */

static int looks_like_script(const char *arg)
{
    size_t n = strlen(arg);
    return strchr(arg, '/') || (n > 4 && strcmp(arg + n - 4, ".lua") == 0);
}

struct pmain_args { int argc; char **argv; const struct calm_host_opts *opts; int status; };

int calm_host_setup(lua_State *L)
{
    int unsafe = lua_toboolean(L, 1);
    const char *cacert = lua_tostring(L, 2);   /* anchored by the caller's stack below us */
    lua_settop(L, 2);
    luaL_checkversion(L);
    {
        struct warn_text *w = lua_newuserdatauv(L, sizeof *w, 0);
        w->len = 0;
        luaL_ref(L, LUA_REGISTRYINDEX);
        lua_setwarnf(L, host_warn, w);
    }
    calm_sandbox_open_libs(L, unsafe);
    setup_modules(L, cacert);
    lua_settop(L, 0);
    calm_sandbox_strict_globals(L);   /* last, so the libraries could register */
    calm_sched_install_hook(L);
    return 0;
}

/* --replay's verdict on a request that differs from the recording: its one
 * line, and the run ends there, exit 1. As with Ctrl-C nothing is left
 * half-written: key and report files only ever appear by a rename. */
static int replay_stop(lua_State *L)
{
    calm_log(CALM_LOG_ERROR, "%s", luaL_checkstring(L, 1));
    fflush(NULL);
    _exit(CALM_EXIT_API);
    return 0;
}

/* --record / --replay: calm.net.record's start (before any script loads, so
 * every require of calm.http sees its http.request) or finish. Returns 0, or
 * the exit status for the failure it reported. */
static int recorder(lua_State *L, const char *fn, const struct calm_host_opts *o)
{
    int top = lua_gettop(L), status = CALM_EXIT_OK;
    if (!o->record && !o->replay) return 0;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "calm.net.record");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, fn);
    if (fn[0] == 's') {
        lua_pushstring(L, o->record ? "record" : "replay");
        lua_pushstring(L, o->record ? o->record : o->replay);
        lua_createtable(L, 0, 2);
        lua_pushboolean(L, o->replay_loose);
        lua_setfield(L, -2, "loose");
        lua_pushcfunction(L, replay_stop);
        lua_setfield(L, -2, "stop");
    }
    lua_call(L, fn[0] == 's' ? 3 : 0, 3);
    if (!lua_toboolean(L, -3)) {
        report_error(lua_isstring(L, -2) ? lua_tostring(L, -2) : "--record/--replay failed", o->verbose);
        /* a --replay file that cannot be used, or a --record file that cannot
         * be written, is bad input on the command line, whatever the reason */
        status = CALM_EXIT_USAGE;
    }
    lua_settop(L, top);
    return status;
}

/* Runs the command or script named by argv[0] (recorder started). */
static int run_what(lua_State *L, struct pmain_args *a);

static int pmain(lua_State *L)
{
    struct pmain_args *a = lua_touserdata(L, 1);
    int rc;
    lua_pushcfunction(L, calm_host_setup);
    lua_pushboolean(L, a->opts->unsafe);
    lua_pushstring(L, a->opts->cacert);
    lua_call(L, 2, 0);
    lua_settop(L, 0);
    if ((rc = recorder(L, "start", a->opts)) != 0) {
        a->status = rc;
        return 0;
    }
    a->status = run_what(L, a);
    lua_settop(L, 0);
    if ((rc = recorder(L, "finish", a->opts)) != 0 && a->status == CALM_EXIT_OK) a->status = rc;
    return 0;
}

static int run_what(lua_State *L, struct pmain_args *a)
{
    const char *what = a->argv[0], *p;
    int rc;
    if (looks_like_script(what)) {
        if (luaL_loadfilex(L, what, "t") != LUA_OK) {
            report_error(lua_tostring(L, -1), 1);
            return CALM_EXIT_USAGE;
        }
        return run_root(L, "script", a->argc, a->argv, 1, a->opts);
    }
    for (p = what; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')) break;
    if (*p || !*what) {
        calm_cmdline_unknown(what);
        return CALM_EXIT_USAGE;
    }
    lua_pushfstring(L, "commands/%s.lua", what);
    if ((rc = calm_load_script(L, lua_tostring(L, -1))) != 0) {
        if (rc == CALM_SCRIPT_MISSING) {
            calm_cmdline_unknown(what);
            return CALM_EXIT_USAGE;
        }
        report_error(lua_tostring(L, -1), 1);
        return CALM_EXIT_API;
    }
    lua_remove(L, -2);
    return run_root(L, "command", a->argc, a->argv, 1, a->opts);
}

int calm_host_main(int argc, char **argv, const struct calm_host_opts *opts)
{
    struct alloc_state mem = { 0, MEMORY_LIMIT };
    struct pmain_args a;
    lua_State *L;
    if (argc >= 1 && strcmp(argv[0], "scripts") == 0) return calm_scripts_command(argc, argv);
    L = lua_newstate(capped_alloc, &mem);
    if (!L) {
        calm_log(CALM_LOG_ERROR, "cannot create the Lua state: out of memory");
        return CALM_EXIT_API;
    }
    a.argc = argc;
    a.argv = argv;
    a.opts = opts;
    a.status = CALM_EXIT_API;
    lua_pushcfunction(L, traceback_handler);
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
        report_error(lua_tostring(L, -1) ? lua_tostring(L, -1) : "error", opts->verbose);
        a.status = CALM_EXIT_API;
    }
    lua_close(L);
    return a.status;
}
