/* lcmdline.c: calm.cmdline — the command-line table of cmdline.c as Lua
 * data, so calm.cli (the parser), help and shell completion read the same
 * commands and global options main.c and scripts.c do.
 *
 *   cmdline.globals  -> { {name=, short=, arg=, flag=, seconds=, leading=, help=}, ... }
 *   cmdline.commands -> { {name=, summary=, options={...} | nil, names_command=}, ... }
 *   cmdline.suggest(word, {candidates}) -> the one a typo could have meant, or nil
 *   cmdline.duration("10m") -> 600 | nil (90, 90s, 10m, 1h, 7d) */
#include <lauxlib.h>
#include <lua.h>

#include "calm_lua.h"

static void set_string(lua_State *L, const char *field, const char *value)
{
    if (!value) return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, field);
}

static void set_true(lua_State *L, const char *field, int yes)
{
    if (!yes) return;
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, field);
}

/* Pushes the options of a NULL-name terminated table as a list. */
static void push_options(lua_State *L, const struct calm_option *o)
{
    int i;
    lua_newtable(L);
    for (i = 0; o[i].name; i++) {
        char shortname[2] = { o[i].short_name, 0 };
        lua_createtable(L, 0, 6);
        set_string(L, "name", o[i].name);
        set_string(L, "short", o[i].short_name ? shortname : NULL);
        set_string(L, "arg", o[i].arg);
        set_true(L, "flag", o[i].arg == NULL);
        set_true(L, "seconds", (o[i].flags & CALM_OPT_SECONDS) != 0);
        set_true(L, "leading", (o[i].flags & CALM_OPT_LEADING) != 0);
        set_string(L, "help", o[i].help);
        lua_rawseti(L, -2, i + 1);
    }
}

static void push_commands(lua_State *L)
{
    int i;
    lua_newtable(L);
    for (i = 0; calm_commands[i].name; i++) {
        const struct calm_command *c = &calm_commands[i];
        lua_createtable(L, 0, 4);
        set_string(L, "name", c->name);
        set_string(L, "summary", c->summary);
        if (c->options) {
            push_options(L, c->options);
            lua_setfield(L, -2, "options");
        }
        set_true(L, "names_command", (c->flags & CALM_CMD_NAMES_COMMAND) != 0);
        lua_rawseti(L, -2, i + 1);
    }
}

/* cmdline.suggest(word, {candidate, ...}) -> candidate | nil */
static int cmdline_suggest(lua_State *L)
{
    const char *word = luaL_checkstring(L, 1), *near;
    const char **list;
    lua_Integer i, n;
    luaL_checktype(L, 2, LUA_TTABLE);
    n = luaL_len(L, 2);
    luaL_argcheck(L, n >= 0 && n <= 4096, 2, "at most 4096 candidates");
    list = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *list, 0);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);   /* the string stays anchored by the table */
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "cmdline.suggest: candidate %d is not a string", (int)i);
        list[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    near = calm_cmdline_closest(word, list, (size_t)n);
    if (!near) return 0;
    lua_pushstring(L, near);
    return 1;
}

/* cmdline.duration(s) -> seconds | nil: 90, 90s, 10m, 1h, 7d (the grammar
 * --timeout has in main.c, so every duration option reads alike). */
static int cmdline_duration(lua_State *L)
{
    double v;
    if (calm_parse_duration(luaL_checkstring(L, 1), &v) != 0) return 0;
    lua_pushnumber(L, v);
    return 1;
}

int luaopen_calm_cmdline(lua_State *L)
{
    luaL_checkversion(L);
    lua_createtable(L, 0, 3);
    push_options(L, calm_globals);
    lua_setfield(L, -2, "globals");
    push_commands(L);
    lua_setfield(L, -2, "commands");
    lua_pushcfunction(L, cmdline_suggest);
    lua_setfield(L, -2, "suggest");
    lua_pushcfunction(L, cmdline_duration);
    lua_setfield(L, -2, "duration");
    return 1;
}
