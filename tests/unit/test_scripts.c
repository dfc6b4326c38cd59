/* test_scripts.c: the built-in scripts' precompiled chunks (tools/embed.c)
 * are the scripts' own sources compiled, not a stale or foreign build: each
 * loads as a binary chunk, names its source "@scripts/NAME" (tracebacks),
 * and is byte for byte what this Lua makes of the embedded source; and
 * calm_load_script loads the chunk (so a get does not compile 280 KB). */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "calm_lua.h"
#include "check.h"

struct out { char *data; size_t len; };

static int collect(lua_State *L, const void *p, size_t n, void *ud)
{
    struct out *o = ud;
    char *d = realloc(o->data, o->len + n + 1);
    (void)L;
    if (!d) return 1;
    memcpy(d + o->len, p, n);
    o->data = d;
    o->len += n;
    return 0;
}

static long n_allocs;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud; (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    n_allocs++;
    return realloc(ptr, nsize);
}

/* Allocations made loading e in a fresh state: 0 by calm_load_script,
 * 1 from its chunk, 2 from its source; -1 if the load fails. */
static long allocs_loading(const struct calm_embedded *e, int how)
{
    lua_State *L = lua_newstate(counting_alloc, NULL);
    char name[300];
    long before;
    int rc;
    snprintf(name, sizeof name, "@scripts/%s", e->name);
    before = n_allocs;
    if (how == 0) rc = calm_load_script(L, e->name);
    else if (how == 1) rc = luaL_loadbufferx(L, e->chunk, e->chunk_len, name, "b");
    else rc = luaL_loadbufferx(L, e->source, e->len, name, "t");
    before = rc == 0 ? n_allocs - before : -1;
    lua_close(L);
    return before;
}

int main(void)
{
    lua_State *L = luaL_newstate();
    size_t i, same = 0, named = 0, binary = 0;
    char name[300], what[400];
    check_suite = "unit/scripts";
    CHECK(calm_embedded_count > 30, "the stock scripts are built in");
    for (i = 0; i < calm_embedded_count; i++) {
        const struct calm_embedded *e = &calm_embedded_scripts[i];
        struct out o = { NULL, 0 };
        lua_Debug ar;
        snprintf(name, sizeof name, "@scripts/%s", e->name);
        if (luaL_loadbufferx(L, e->chunk, e->chunk_len, name, "b") == LUA_OK) {
            binary++;
            lua_getinfo(L, ">S", &ar);
            if (strcmp(ar.source, name) == 0) named++;
        } else {
            snprintf(what, sizeof what, "%s: %s", e->name, lua_tostring(L, -1));
            CHECK(0, what);
            lua_pop(L, 1);
        }
        if (luaL_loadbufferx(L, e->source, e->len, name, "t") == LUA_OK &&
            lua_dump(L, collect, &o, 0) == 0 && o.len == e->chunk_len &&
            memcmp(o.data, e->chunk, o.len) == 0)
            same++;
        else {
            snprintf(what, sizeof what, "%s: the chunk is its source compiled", e->name);
            CHECK(0, what);
        }
        lua_settop(L, 0);
        free(o.data);
    }
    CHECK(binary == calm_embedded_count, "every built-in chunk loads as a binary chunk");
    CHECK(named == calm_embedded_count, "every chunk names its source @scripts/NAME");
    CHECK(same == calm_embedded_count, "every chunk is its embedded source compiled by this Lua");
    /* calm_load_script gives the chunk: undumping and compiling make
     * different allocations, counted in fresh states (strings interned by
     * an earlier load would change the count) */
    unsetenv("CALMBIND_PATH");
    setenv("XDG_CONFIG_HOME", "/nonexistent", 1);
    {
        const struct calm_embedded *e = NULL;
        long via_script, via_chunk, via_source;
        for (i = 0; i < calm_embedded_count; i++)
            if (strcmp(calm_embedded_scripts[i].name, "calm/lib/json.lua") == 0) e = &calm_embedded_scripts[i];
        CHECK(e != NULL, "calm/lib/json.lua is built in");
        if (e) {
            via_script = allocs_loading(e, 0);
            via_chunk = allocs_loading(e, 1);
            via_source = allocs_loading(e, 2);
            CHECK(via_script > 0 && via_script == via_chunk && via_chunk != via_source,
                  "calm_load_script loads the precompiled chunk, not the source");
        }
    }
    lua_close(L);
    return CHECK_DONE();
}
