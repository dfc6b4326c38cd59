/* loop.c: the scheduler's event loop. Flows park on a transfer (transfer.c),
 * a timer or another flow; this loop drives curl_multi, wakes sleepers,
 * enforces deadlines and resumes each flow with what it waited for. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "sched_internal.h"

double calm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void calm_sched_check_flow(lua_State *L, const char *what)
{
    flow *f = flow_of(L);
    if (!f || f->co != L || !lua_isyieldable(L))
        luaL_error(L, "%s must be called from a flow (not at module load time, "
                      "in a metamethod or inside a plain coroutine)", what);
}

double calm_sched_remaining(lua_State *L)
{
    flow *f = flow_of(L);
    if (!f || f->deadline == HUGE_VAL) return HUGE_VAL;
    return f->deadline - calm_now();
}

int calm_sched_scope_live(lua_State *L, unsigned scope)
{
    sched *s;
    flow *f;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &calm_sched_key);
    s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    for (f = s ? s->live : NULL; f; f = f->next)
        if (f->secret_scope == scope) return 1;
    return 0;
}

/* A flow has just parked (sleep, wait, transfer): its timer and links. */
static void arm(sched *s, flow *f)
{
    double due = f->deadline;
    if (f->state == FLOW_SLEEP) {
        if (!f->asleep) s->sleeping++;
        f->asleep = 1;
        if (f->wake_at < due) due = f->wake_at;
    } else if (f->state == FLOW_WAIT && f->target && !f->wprev && f->target->waiters != f) {
        f->wnext = f->target->waiters;
        if (f->wnext) f->wnext->wprev = f;
        f->target->waiters = f;
    }
    calm_timer_set(s, f, due);
}

/* Drops whatever the flow is parked on, without resuming it. */
void calm_loop_detach(sched *s, flow *f)
{
    calm_loop_drop_transfer(s, f);
    calm_flow_unwait(f);
    calm_flow_unsleep(s, f);
    calm_timer_remove(s, f);
}

/* Pushes onto `to` what waiting on `f` returns: its results, or nil, error. */
int calm_loop_push_outcome(lua_State *to, flow *f)
{
    int i, n;
    if (f->state == FLOW_FAILED) {
        lua_pushnil(to);
        lua_pushstring(to, f->error ? f->error : "flow failed");
        f->reported = 1;
        return 2;
    }
    lua_rawgeti(to, LUA_REGISTRYINDEX, f->results_ref);
    lua_getfield(to, -1, "n");
    n = (int)lua_tointeger(to, -1);
    lua_pop(to, 1);
    luaL_checkstack(to, n, "too many results");
    for (i = 1; i <= n; i++) lua_rawgeti(to, -i, i);
    lua_remove(to, -(n + 1));
    return n;
}

static void release(lua_State *L, flow *f)
{
    *(flow **)lua_getextraspace(f->co) = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, f->thread_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, f->self_ref);
    f->thread_ref = f->self_ref = LUA_NOREF;
}

static void unlink_live(sched *s, flow *f)
{
    if (f->prev) f->prev->next = f->next; else if (s->live == f) s->live = f->next;
    if (f->next) f->next->prev = f->prev;
    f->next = f->prev = NULL;
    s->nlive--;
}

/* A flow has finished (done or failed): wake its waiters, close its thread. */
static void finish(lua_State *L, sched *s, flow *f)
{
    flow *w;
    calm_ready_remove(s, f);
    calm_timer_remove(s, f);
    calm_flow_unwait(f);
    calm_flow_unsleep(s, f);
    while ((w = f->waiters) != NULL) {
        calm_flow_unwait(w);
        calm_flow_ready(s, w, calm_loop_push_outcome(w->co, f));
    }
    unlink_live(s, f);
    /* Closes pending to-be-closed variables of a failed or cancelled flow. */
    lua_resetthread(f->co);
    release(L, f);
}

void calm_loop_fail(lua_State *L, sched *s, flow *f, const char *msg)
{
    size_t n = strlen(msg) + 1;
    f->error = malloc(n);
    if (f->error) memcpy(f->error, msg, n);
    f->state = FLOW_FAILED;
    finish(L, s, f);
}

static void resume(lua_State *L, sched *s, flow *f)
{
    int nres = 0, status;
    double now = calm_now();
    f->state = FLOW_RUNNING;
    /* After a bare yield the deadline grace keeps running: a loop of
     * coroutine.yield() past the deadline must not renew it forever. */
    if (!f->bare_yield || now < f->deadline) f->resumed_at = now;
    f->bare_yield = 0;
    s->current = f;
    calm_log_set_label(f->label);
    calm_redact_set_scope(f->secret_scope);   /* log.secret registers in the flow's scope */
    status = lua_resume(f->co, L, f->nargs, &nres);
    calm_redact_set_scope(0);
    calm_log_set_label(NULL);
    s->current = NULL;
    f->nargs = 0;
    if (status == LUA_YIELD) {
        if (f->state == FLOW_RUNNING) {   /* a bare coroutine.yield: let others run */
            lua_pop(f->co, nres);
            f->bare_yield = 1;
            calm_flow_ready(s, f, 0);
        } else if (f->state != FLOW_READY) {
            arm(s, f);
        }
    } else if (status == LUA_OK) {
        int i;
        /* Pack the results on the flow's own stack (which holds them
         * already), then move the one table: the main thread's stack has
         * room for a few values only. */
        if (!lua_checkstack(f->co, 2)) {
            lua_settop(f->co, 0);
            calm_loop_fail(L, s, f, "too many results");
            return;
        }
        lua_createtable(f->co, nres, 1);
        lua_insert(f->co, -(nres + 1));
        /* stack: results table, v1..vn; pop vn first */
        for (i = nres; i >= 1; i--) lua_rawseti(f->co, -(i + 1), i);
        lua_pushinteger(f->co, nres);
        lua_setfield(f->co, -2, "n");
        lua_xmove(f->co, L, 1);
        f->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        f->state = FLOW_DONE;
        finish(L, s, f);
    } else {
        /* No metamethod runs here: a __tostring that raises must not take
         * the scheduler down with it. */
        int top = lua_gettop(L);
        const char *msg = lua_tostring(f->co, -1);
        if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(f->co, -1));
        luaL_traceback(L, f->co, msg, 0);
        calm_loop_fail(L, s, f, lua_tostring(L, -1));
        lua_settop(L, top);
    }
}

/* Wakes sleepers and flows past their deadline (the heap's due ones only);
 * returns the next time due. */
static double timers(sched *s, double now)
{
    flow *f;
    while ((f = calm_timer_top(s)) != NULL && f->due <= now) {
        calm_timer_remove(s, f);
        if (f->state == FLOW_SLEEP && f->wake_at <= now) {
            lua_pushboolean(f->co, 1);
            calm_flow_ready(s, f, 1);
        } else if ((f->state == FLOW_HTTP || f->state == FLOW_QUEUED || f->state == FLOW_SLEEP ||
                    f->state == FLOW_WAIT) && f->deadline <= now) {
            calm_loop_detach(s, f);
            calm_flow_push_fail(f->co, "deadline passed (--timeout)", "DEADLINE");
            calm_flow_ready(s, f, 3);
        }
    }
    return f ? f->due : HUGE_VAL;
}

/* Runs the loop until `until` has finished. The main thread drives it. */
void calm_loop_run_until(lua_State *L, sched *s, flow *until)
{
    while (until->state != FLOW_DONE && until->state != FLOW_FAILED) {
        flow *f;
        double due, now;
        int running, wait_ms;
        /* Resume each ready flow once per pass, in the order they became
         * ready. A resumed flow may finish or cancel others: finishing takes
         * a flow off the ready queue, so the queue holds live flows only.
         * The pass mark stops at a flow made ready again in this pass. */
        s->pass++;
        while ((f = s->ready_head) != NULL && f->pass != s->pass) {
            calm_ready_pop(s);
            f->pass = s->pass;
            resume(L, s, f);
        }
        if (until->state == FLOW_DONE || until->state == FLOW_FAILED) break;
        curl_multi_perform(s->multi, &running);
        calm_loop_collect(s);
        now = calm_now();
        due = timers(s, now);
        if (s->ready_head) continue;
        /* Nothing in flight, queued or sleeping: only deadlines could wake
         * the flows left, and a wait cycle should not idle until then. */
        if (s->in_flight == 0 && !s->queue_head && s->sleeping == 0) {
            /* Nothing can ever wake the flows that are left: a wait cycle. */
            for (f = s->live; f; f = f->next)
                if (f->state == FLOW_WAIT) {
                    calm_flow_push_fail(f->co, "flows wait for each other (deadlock)", "DEADLOCK");
                    calm_flow_ready(s, f, 3);
                }
            continue;
        }
        wait_ms = due == HUGE_VAL ? 1000 : (int)ceil((due - now) * 1000.0);
        if (wait_ms > 1000) wait_ms = 1000;
        if (wait_ms < 0) wait_ms = 0;
        curl_multi_poll(s->multi, NULL, 0, wait_ms, NULL);
        curl_multi_perform(s->multi, &running);
        calm_loop_collect(s);
        timers(s, calm_now());
    }
}

/* Creates a flow running the function at idx with nargs arguments above it
 * (popped). Pushes the flow handle. */
flow *calm_loop_spawn(lua_State *L, sched *s, int nargs, const char *name, double timeout)
{
    flow *parent = flow_of(L), *f, *from = parent ? parent : s->current;
    int fn = lua_gettop(L) - nargs;
    if (calm_timer_reserve(s, s->nlive + 1) != 0) luaL_error(L, "calm.task: out of memory");
    f = lua_newuserdatauv(L, sizeof *f, 0);
    memset(f, 0, sizeof *f);
    luaL_setmetatable(L, FLOW_MT);
    f->id = ++s->next_id;
    f->results_ref = LUA_NOREF;
    f->deadline = parent ? parent->deadline : HUGE_VAL;
    f->secret_scope = from ? from->secret_scope : 0;
    if (timeout > 0 && calm_now() + timeout < f->deadline) f->deadline = calm_now() + timeout;
    if (name) snprintf(f->name, sizeof f->name, "%s", name);
    else snprintf(f->name, sizeof f->name, "flow %u", f->id);
    /* the label goes to its sub-flows, also those a plain coroutine spawns */
    if (from && from->label && calm_flow_set_label(f, from->label) != 0)
        luaL_error(L, "calm.task: out of memory");
    lua_pushvalue(L, -1);
    f->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    f->co = lua_newthread(L);
    f->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    *(flow **)lua_getextraspace(f->co) = f;
    /* stack: fn, args..., handle */
    lua_rotate(L, fn, 1);            /* handle, fn, args... */
    lua_xmove(L, f->co, nargs + 1);
    f->next = s->live;
    if (s->live) s->live->prev = f;
    s->live = f;
    s->nlive++;
    calm_flow_ready(s, f, nargs);
    return f;
}

