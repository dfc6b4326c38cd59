/* ltask.c: calm.task — spawn, wait, all, sleep, deadlines and the flow
 * handle. The loop that drives flows is in loop.c. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "sched_internal.h"

static flow *check_flow_arg(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, FLOW_MT);
}

/* task.spawn(fn, ...) | task.spawn({name=, timeout=, label=, secret_scope=}, fn, ...) -> flow */
static int task_spawn(lua_State *L)
{
    sched *s = calm_sched_get(L);
    char name[48] = "";
    double timeout = 0;
    lua_Integer scope = -1;
    flow *f;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "name");
        if (lua_isstring(L, -1)) snprintf(name, sizeof name, "%s", lua_tostring(L, -1));
        lua_getfield(L, 1, "timeout");
        if (!lua_isnil(L, -1) && !lua_isnumber(L, -1))
            luaL_error(L, "task.spawn: 'timeout' must be a number");
        timeout = lua_tonumber(L, -1);
        if (lua_getfield(L, 1, "secret_scope") != LUA_TNIL &&
            (!lua_isinteger(L, -1) || (scope = lua_tointeger(L, -1)) < 0 || scope > UINT_MAX))
            luaL_error(L, "task.spawn: 'secret_scope' must be a scope from log.scope()");
        lua_pop(L, 1);
        lua_getfield(L, 1, "label");
        if (!lua_isnil(L, -1) && (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0))
            luaL_error(L, "task.spawn: 'label' must be a non-empty string");
        lua_replace(L, 1);   /* the label (or nil) where the options were */
        lua_pop(L, 2);
    } else {
        lua_pushnil(L);
        lua_insert(L, 1);
    }
    luaL_checktype(L, 2, LUA_TFUNCTION);
    f = calm_loop_spawn(L, s, lua_gettop(L) - 2, name[0] ? name : NULL, timeout);
    if (lua_isstring(L, 1) && calm_flow_set_label(f, lua_tostring(L, 1)) != 0)
        luaL_error(L, "task.spawn: out of memory");
    if (scope >= 0) f->secret_scope = (unsigned)scope;
    return 1;
}

/* task.label() -> the running flow's log label (its own or inherited), or nil */
static int task_label(lua_State *L)
{
    sched *s = calm_sched_get(L);
    flow *f = flow_of(L);
    if (!f) f = s->current;
    if (!f || !f->label) lua_pushnil(L);
    else lua_pushstring(L, f->label);
    return 1;
}

/* task.wait(flow) -> results... | nil, message */
static int task_wait(lua_State *L)
{
    flow *f = check_flow_arg(L, 1), *self;
    if (f->state == FLOW_DONE || f->state == FLOW_FAILED) return calm_loop_push_outcome(L, f);
    calm_sched_check_flow(L, "task.wait");
    self = flow_of(L);
    if (self == f) luaL_error(L, "task.wait: a flow cannot wait for itself");
    self->state = FLOW_WAIT;
    self->target = f;
    return lua_yield(L, 0);
}

/* Continuation of task.all. stack: 1 = list, 2 = flows, 3 = results, then
 * what the scheduler pushed for flow ctx (if resumed after a wait). */
static int all_step(lua_State *L, int status, lua_KContext ctx)
{
    int i = (int)ctx, n = (int)luaL_len(L, 2);
    (void)status;
    if (i > 0) {   /* resumed: pack what flow i gave */
        flow *f;
        int got = lua_gettop(L) - 3;
        lua_rawgeti(L, 2, i);
        f = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (f->state == FLOW_FAILED) {
            lua_settop(L, 3);
            lua_createtable(L, 3, 1);
            lua_pushstring(L, f->error ? f->error : "flow failed");
            lua_rawseti(L, -2, 2);
            lua_pushliteral(L, "FLOW_FAILED");
            lua_rawseti(L, -2, 3);
            lua_pushinteger(L, 3);
        } else {
            int k;
            lua_createtable(L, got, 1);
            lua_insert(L, 4);
            for (k = got; k >= 1; k--) lua_rawseti(L, 4, k);
            lua_pushinteger(L, got);
        }
        lua_setfield(L, -2, "n");
        lua_rawseti(L, 3, i);
    }
    for (i = i + 1; i <= n; i++) {
        flow *f;
        lua_rawgeti(L, 2, i);
        f = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (f->state != FLOW_DONE && f->state != FLOW_FAILED) {
            flow *self = flow_of(L);
            self->state = FLOW_WAIT;
            self->target = f;
            return lua_yieldk(L, 0, i, all_step);
        }
        /* already finished: take its outcome without yielding */
        {
            int base = lua_gettop(L), got = calm_loop_push_outcome(L, f), k;
            lua_createtable(L, got, 1);
            lua_insert(L, base + 1);
            for (k = got; k >= 1; k--) lua_rawseti(L, base + 1, k);
            if (f->state == FLOW_FAILED) {
                lua_pushliteral(L, "FLOW_FAILED");
                lua_rawseti(L, -2, 3);
                got = 3;
            }
            lua_pushinteger(L, got);
            lua_setfield(L, -2, "n");
            lua_rawseti(L, 3, i);
        }
    }
    lua_settop(L, 3);
    return 1;
}

/* task.all{fn | flow, ...} -> {table.pack(results of 1), ...} */
static int task_all(lua_State *L)
{
    sched *s = calm_sched_get(L);
    lua_Integer i, n;
    luaL_checktype(L, 1, LUA_TTABLE);
    calm_sched_check_flow(L, "task.all");
    lua_settop(L, 1);
    n = luaL_len(L, 1);
    lua_createtable(L, (int)n, 0);   /* 2: flows */
    lua_createtable(L, (int)n, 0);   /* 3: results */
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        if (lua_isfunction(L, -1)) {
            calm_loop_spawn(L, s, 0, NULL, 0);   /* consumes the function, pushes the flow */
        } else if (!luaL_testudata(L, -1, FLOW_MT)) {
            luaL_error(L, "task.all: entry %d must be a function or a flow", (int)i);
        } else if (lua_touserdata(L, -1) == (void *)flow_of(L)) {
            luaL_error(L, "task.all: entry %d is the calling flow, which cannot wait for itself", (int)i);
        }
        lua_rawseti(L, 2, i);
    }
    return all_step(L, LUA_OK, 0);
}

/* task.sleep(seconds) -> true | nil, "deadline passed", "DEADLINE" */
static int task_sleep(lua_State *L)
{
    double secs = luaL_checknumber(L, 1);
    flow *f;
    calm_sched_check_flow(L, "task.sleep");
    f = flow_of(L);
    if (f->deadline <= calm_now()) return calm_sched_push_deadline(L);
    f->state = FLOW_SLEEP;
    f->wake_at = calm_now() + (secs > 0 ? secs : 0);
    return lua_yield(L, 0);
}

/* task.now() -> monotonic seconds */
static int task_now(lua_State *L)
{
    lua_pushnumber(L, calm_now());
    return 1;
}

/* task.remaining() -> seconds before the current flow's deadline */
static int task_remaining(lua_State *L)
{
    lua_pushnumber(L, calm_sched_remaining(L));
    return 1;
}

/* task.set_deadline(seconds): only tightens the current flow's deadline. */
static int task_set_deadline(lua_State *L)
{
    double secs = luaL_checknumber(L, 1);
    flow *f = flow_of(L);
    if (!f) luaL_error(L, "task.set_deadline must be called from a flow");
    if (calm_now() + secs < f->deadline) f->deadline = calm_now() + secs;
    return 0;
}

/* Connections kept for reuse: one per transfer in flight and as many idle
 * (other hosts), within the descriptor limit. */
static void set_pool(sched *s)
{
    long conns = 2L * calm_loop_limit(s);
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, conns);
    curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conns);
}

/* task.limit([n]): at most n transfers in flight (fewer if the descriptor
 * limit does not allow n); without n the limit stays. Returns the number in
 * effect and the most the descriptor limit allows (65536 if it sets none),
 * which fleet sizes its default --jobs by. */
static int task_limit(lua_State *L)
{
    sched *s = calm_sched_get(L);
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer n = luaL_checkinteger(L, 1);
        luaL_argcheck(L, n >= 1 && n <= 65536, 1, "must be 1..65536");
        s->limit = (int)n;
        if (calm_loop_limit(s) < n)
            calm_log(CALM_LOG_DEBUG, "task.limit(%d): %d transfers at once (descriptor limit)",
                     (int)n, calm_loop_limit(s));
        set_pool(s);
        calm_loop_start_queued(s);
    }
    lua_pushinteger(L, calm_loop_limit(s));
    lua_pushinteger(L, s->fd_cap > 0 && s->fd_cap < 65536 ? s->fd_cap : 65536);
    return 2;
}

/* task.cancel(flow) / flow:cancel(): the flow fails with "cancelled". */
static int task_cancel(lua_State *L)
{
    flow *f = check_flow_arg(L, 1);
    sched *s = calm_sched_get(L);
    if (f->state == FLOW_DONE || f->state == FLOW_FAILED) return 0;
    /* The running flow (also when asked from a plain coroutine inside it):
     * its thread is on the C stack, so it cannot be reset here; it ends by
     * raising instead. */
    if (f->co == L || f->state == FLOW_RUNNING) return luaL_error(L, "cancelled");
    calm_loop_detach(s, f);
    f->reported = 1;   /* whoever cancels it knows */
    calm_loop_fail(L, s, f, "cancelled");
    return 0;
}

/* task.current() -> the running flow's handle, or nil outside flows */
static int task_current(lua_State *L)
{
    flow *f = flow_of(L);
    if (!f) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->self_ref);
    return 1;
}

static const char *state_name(enum flow_state st)
{
    static const char *const names[] = { "ready", "running", "http", "queued", "sleeping",
                                         "waiting", "done", "failed" };
    return names[st];
}

/* flow:status() -> "ready" | "running" | "http" | ... | "done" | "failed" */
static int flow_status(lua_State *L)
{
    lua_pushstring(L, state_name(check_flow_arg(L, 1)->state));
    return 1;
}

static int flow_tostring(lua_State *L)
{
    flow *f = check_flow_arg(L, 1);
    lua_pushfstring(L, "flow %d (%s, %s)", (int)f->id, f->name, state_name(f->state));
    return 1;
}

/* A failure nobody collected is still reported, when its handle goes away. */
static int flow_gc(lua_State *L)
{
    flow *f = check_flow_arg(L, 1);
    if (f->error && !f->reported) {
        const char *was = calm_log_label();   /* GC runs inside any flow */
        calm_log_set_label(f->label);
        calm_log(CALM_LOG_ERROR, "%s failed: %s", f->name, f->error);
        calm_log_set_label(was);
    }
    free(f->error);
    f->error = NULL;
    free(f->label);
    f->label = NULL;
    /* what it returned may be large (a response body, a token) */
    luaL_unref(L, LUA_REGISTRYINDEX, f->results_ref);
    f->results_ref = LUA_NOREF;
    return 0;
}

static int sched_gc(lua_State *L)
{
    sched *s = lua_touserdata(L, 1);
    flow *f;
    for (f = s->live; f; f = f->next) calm_loop_detach(s, f);
    s->live = NULL;
    calm_timer_free(s);
    if (s->multi) curl_multi_cleanup(s->multi);
    s->multi = NULL;
    return 0;
}

static const luaL_Reg task_funcs[] = {
    { "spawn", task_spawn }, { "wait", task_wait }, { "all", task_all },
    { "sleep", task_sleep }, { "now", task_now }, { "remaining", task_remaining },
    { "set_deadline", task_set_deadline }, { "limit", task_limit },
    { "cancel", task_cancel }, { "current", task_current }, { "label", task_label }, { NULL, NULL }
};

static const luaL_Reg flow_methods[] = {
    { "wait", task_wait }, { "cancel", task_cancel }, { "status", flow_status }, { NULL, NULL }
};

static const luaL_Reg flow_meta[] = {
    { "__gc", flow_gc }, { "__tostring", flow_tostring }, { NULL, NULL }
};

int luaopen_calm_task(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &calm_sched_key);
    if (lua_isnil(L, -1)) {   /* one scheduler per state, made on first use */
        sched *s = lua_newuserdatauv(L, sizeof *s, 0);
        memset(s, 0, sizeof *s);
        s->multi = curl_multi_init();
        s->limit = 64;
        if (!s->multi) return luaL_error(L, "calm.task: curl_multi_init failed");
        s->fd_cap = calm_fd_transfer_cap(calm_fd_raise());
        set_pool(s);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, sched_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &calm_sched_key);
        *(flow **)lua_getextraspace(L) = NULL;
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, FLOW_MT)) {
        luaL_setfuncs(L, flow_meta, 0);
        luaL_newlib(L, flow_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, task_funcs);
    return 1;
}
