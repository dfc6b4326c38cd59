/* sched.c: calm.task — flows are coroutines resumed by one loop over one
 * curl_multi handle. A flow parks on a transfer, a timer or another flow; the
 * loop resumes it with the result. One thread, many flows. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "calm_lua.h"

enum flow_state { FLOW_READY, FLOW_RUNNING, FLOW_HTTP, FLOW_QUEUED, FLOW_SLEEP, FLOW_WAIT, FLOW_DONE, FLOW_FAILED };

typedef struct flow {
    lua_State *co;
    int thread_ref;          /* anchors the coroutine while the flow lives */
    int self_ref;            /* anchors this userdata while the flow lives */
    int results_ref;         /* table.pack of the results, once done */
    char *error;             /* message and traceback, once failed */
    enum flow_state state;
    int nargs;               /* values pushed on co for the next resume */
    int reported;            /* a waiter has collected the error */
    double deadline;         /* absolute calm_now() time, HUGE_VAL for none */
    double wake_at;          /* FLOW_SLEEP */
    calm_transfer *transfer; /* FLOW_HTTP / FLOW_QUEUED */
    struct flow *target;     /* FLOW_WAIT */
    struct flow *next;       /* list of live flows */
    struct flow *qnext;      /* queue of transfers waiting for a slot */
    unsigned id;
    char name[48];
} flow;

typedef struct sched {
    CURLM *multi;
    flow *live;
    flow *queue_head, *queue_tail;
    int in_flight, limit;
    unsigned next_id;
    int deadline_fired;      /* the hook stopped a flow past its deadline */
    lua_State *main;
} sched;

#define FLOW_MT "calm.task.flow"
static const char SCHED_KEY = 's';

double calm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static sched *sched_get(lua_State *L)
{
    sched *s;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHED_KEY);
    s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!s) luaL_error(L, "calm.task: scheduler not initialised");
    return s;
}

/* The flow a thread runs is kept in the thread's extra space: O(1), and a
 * coroutine made by coroutine.create copies the main thread's NULL, so only
 * our flows are flows. */
static flow *flow_of(lua_State *L) { return *(flow **)lua_getextraspace(L); }

static flow *check_flow_arg(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, FLOW_MT);
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

CURLM *calm_sched_multi(lua_State *L) { return sched_get(L)->multi; }

static void start_transfer(sched *s, flow *f)
{
    f->state = FLOW_HTTP;
    s->in_flight++;
    curl_multi_add_handle(s->multi, f->transfer->easy);
}

int calm_sched_park(lua_State *L, calm_transfer *t)
{
    sched *s = sched_get(L);
    flow *f = flow_of(L);
    f->transfer = t;
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, (void *)f);
    if (s->in_flight < s->limit) {
        start_transfer(s, f);
    } else {  /* over the concurrency cap: wait for a slot, in order */
        f->state = FLOW_QUEUED;
        f->qnext = NULL;
        if (s->queue_tail) s->queue_tail->qnext = f; else s->queue_head = f;
        s->queue_tail = f;
    }
    return lua_yield(L, 0);
}

static void unqueue(sched *s, flow *f)
{
    flow **p = &s->queue_head, *prev = NULL;
    while (*p && *p != f) { prev = *p; p = &(*p)->qnext; }
    if (!*p) return;
    *p = f->qnext;
    if (s->queue_tail == f) s->queue_tail = prev;
}

static void start_queued(sched *s)
{
    while (s->queue_head && s->in_flight < s->limit) {
        flow *f = s->queue_head;
        s->queue_head = f->qnext;
        if (!s->queue_head) s->queue_tail = NULL;
        start_transfer(s, f);
    }
}

/* Drops whatever the flow is parked on, without resuming it. */
static void detach(sched *s, flow *f)
{
    if (f->state == FLOW_HTTP || f->state == FLOW_QUEUED) {
        calm_transfer *t = f->transfer;
        if (f->state == FLOW_HTTP) {
            curl_multi_remove_handle(s->multi, t->easy);
            s->in_flight--;
        } else {
            unqueue(s, f);
        }
        f->transfer = NULL;
        t->abandon(t);
    }
    f->target = NULL;
}

static void push_fail(lua_State *co, const char *msg, const char *code)
{
    lua_pushnil(co);
    lua_pushstring(co, msg);
    lua_pushstring(co, code);
}

static void make_ready(flow *f, int nargs)
{
    f->state = FLOW_READY;
    f->nargs = nargs;
}

/* Pushes onto `to` what waiting on `f` returns: its results, or nil, error. */
static int push_outcome(lua_State *to, flow *f)
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
    flow **p = &s->live;
    while (*p && *p != f) p = &(*p)->next;
    if (*p) *p = f->next;
}

/* A flow has finished (done or failed): wake its waiters, close its thread. */
static void finish(lua_State *L, sched *s, flow *f)
{
    flow *w;
    for (w = s->live; w; w = w->next)
        if (w->state == FLOW_WAIT && w->target == f) {
            w->target = NULL;
            make_ready(w, push_outcome(w->co, f));
        }
    unlink_live(s, f);
    /* Closes pending to-be-closed variables of a failed or cancelled flow. */
    lua_resetthread(f->co);
    release(L, f);
}

static void fail(lua_State *L, sched *s, flow *f, const char *msg)
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
    f->state = FLOW_RUNNING;
    status = lua_resume(f->co, L, f->nargs, &nres);
    f->nargs = 0;
    if (status == LUA_YIELD) {
        if (f->state == FLOW_RUNNING) {   /* a bare coroutine.yield: let others run */
            lua_pop(f->co, nres);
            make_ready(f, 0);
        }
    } else if (status == LUA_OK) {
        int i;
        lua_createtable(L, nres, 1);
        lua_xmove(f->co, L, nres);
        /* stack: results table, v1..vn; pop vn first */
        for (i = nres; i >= 1; i--) lua_rawseti(L, -(i + 1), i);
        lua_pushinteger(L, nres);
        lua_setfield(L, -2, "n");
        f->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        f->state = FLOW_DONE;
        finish(L, s, f);
    } else {
        const char *msg = lua_tostring(f->co, -1);
        if (!msg) msg = luaL_tolstring(f->co, -1, NULL);
        luaL_traceback(L, f->co, msg, 0);
        fail(L, s, f, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

/* Drains finished transfers into their flows. */
static void collect(sched *s)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left))) {
        flow *f = NULL;
        calm_transfer *t;
        if (m->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
        if (!f || f->state != FLOW_HTTP) continue;
        t = f->transfer;
        curl_multi_remove_handle(s->multi, m->easy_handle);
        s->in_flight--;
        f->transfer = NULL;
        make_ready(f, t->finish(t, f->co, m->data.result));
    }
    start_queued(s);
}

/* Wakes sleepers and flows past their deadline; returns the next time due. */
static double timers(sched *s, double now)
{
    double next = HUGE_VAL;
    flow *f;
    for (f = s->live; f; f = f->next) {
        if (f->state == FLOW_SLEEP && f->wake_at <= now) {
            lua_pushboolean(f->co, 1);
            make_ready(f, 1);
        } else if ((f->state == FLOW_HTTP || f->state == FLOW_QUEUED || f->state == FLOW_SLEEP ||
                    f->state == FLOW_WAIT) && f->deadline <= now) {
            detach(s, f);
            push_fail(f->co, "deadline passed (--timeout)", "DEADLINE");
            make_ready(f, 3);
        }
        if (f->state == FLOW_SLEEP && f->wake_at < next) next = f->wake_at;
        if (f->state != FLOW_READY && f->deadline < next) next = f->deadline;
    }
    return next;
}

static int any_ready(sched *s)
{
    flow *f;
    for (f = s->live; f; f = f->next)
        if (f->state == FLOW_READY) return 1;
    return 0;
}

/* Runs the loop until `until` has finished. The main thread drives it. */
static void run_until(lua_State *L, sched *s, flow *until)
{
    while (until->state != FLOW_DONE && until->state != FLOW_FAILED) {
        flow *f, *next;
        double due, now;
        int running, wait_ms;
        for (f = s->live; f; f = next) {
            next = f->next;   /* resume may unlink f */
            if (f->state == FLOW_READY) resume(L, s, f);
        }
        if (until->state == FLOW_DONE || until->state == FLOW_FAILED) break;
        curl_multi_perform(s->multi, &running);
        collect(s);
        now = calm_now();
        due = timers(s, now);
        if (any_ready(s)) continue;
        if (s->in_flight == 0 && due == HUGE_VAL) {
            /* Nothing can ever wake the flows that are left: a wait cycle. */
            for (f = s->live; f; f = f->next)
                if (f->state == FLOW_WAIT) {
                    f->target = NULL;
                    push_fail(f->co, "flows wait for each other (deadlock)", "DEADLOCK");
                    make_ready(f, 3);
                }
            continue;
        }
        wait_ms = due == HUGE_VAL ? 1000 : (int)ceil((due - now) * 1000.0);
        if (wait_ms > 1000) wait_ms = 1000;
        if (wait_ms < 0) wait_ms = 0;
        curl_multi_poll(s->multi, NULL, 0, wait_ms, NULL);
        curl_multi_perform(s->multi, &running);
        collect(s);
        timers(s, calm_now());
    }
}

/* Creates a flow running the function at idx with nargs arguments above it
 * (popped). Pushes the flow handle. */
static flow *spawn(lua_State *L, sched *s, int nargs, const char *name, double timeout)
{
    flow *parent = flow_of(L), *f;
    int fn = lua_gettop(L) - nargs;
    f = lua_newuserdatauv(L, sizeof *f, 0);
    memset(f, 0, sizeof *f);
    luaL_setmetatable(L, FLOW_MT);
    f->id = ++s->next_id;
    f->results_ref = LUA_NOREF;
    f->deadline = parent ? parent->deadline : HUGE_VAL;
    if (timeout > 0 && calm_now() + timeout < f->deadline) f->deadline = calm_now() + timeout;
    if (name) snprintf(f->name, sizeof f->name, "%s", name);
    else snprintf(f->name, sizeof f->name, "flow %u", f->id);
    lua_pushvalue(L, -1);
    f->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    f->co = lua_newthread(L);
    f->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    *(flow **)lua_getextraspace(f->co) = f;
    /* stack: fn, args..., handle */
    lua_rotate(L, fn, 1);            /* handle, fn, args... */
    lua_xmove(L, f->co, nargs + 1);
    make_ready(f, nargs);
    f->next = s->live;
    s->live = f;
    return f;
}

/* task.spawn(fn, ...) | task.spawn({name=, timeout=}, fn, ...) -> flow */
static int task_spawn(lua_State *L)
{
    sched *s = sched_get(L);
    char name[48] = "";
    double timeout = 0;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "name");
        if (lua_isstring(L, -1)) snprintf(name, sizeof name, "%s", lua_tostring(L, -1));
        lua_getfield(L, 1, "timeout");
        if (!lua_isnil(L, -1) && !lua_isnumber(L, -1))
            luaL_error(L, "task.spawn: 'timeout' must be a number");
        timeout = lua_tonumber(L, -1);
        lua_pop(L, 2);
        lua_remove(L, 1);
    }
    luaL_checktype(L, 1, LUA_TFUNCTION);
    spawn(L, s, lua_gettop(L) - 1, name[0] ? name : NULL, timeout);
    return 1;
}

/* task.wait(flow) -> results... | nil, message */
static int task_wait(lua_State *L)
{
    flow *f = check_flow_arg(L, 1), *self;
    if (f->state == FLOW_DONE || f->state == FLOW_FAILED) return push_outcome(L, f);
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
            int base = lua_gettop(L), got = push_outcome(L, f), k;
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
    sched *s = sched_get(L);
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
            spawn(L, s, 0, NULL, 0);   /* consumes the function, pushes the flow */
        } else if (!luaL_testudata(L, -1, FLOW_MT)) {
            luaL_error(L, "task.all: entry %d must be a function or a flow", (int)i);
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
    if (f->deadline <= calm_now()) {
        push_fail(L, "deadline passed (--timeout)", "DEADLINE");
        return 3;
    }
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

/* task.limit(n): at most n transfers in flight. */
static int task_limit(lua_State *L)
{
    sched *s = sched_get(L);
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 1024, 1, "must be 1..1024");
    s->limit = (int)n;
    start_queued(s);
    return 0;
}

/* task.cancel(flow) / flow:cancel(): the flow fails with "cancelled". */
static int task_cancel(lua_State *L)
{
    flow *f = check_flow_arg(L, 1);
    sched *s = sched_get(L);
    if (f->state == FLOW_DONE || f->state == FLOW_FAILED) return 0;
    if (f->co == L) return luaL_error(L, "cancelled");
    detach(s, f);
    f->reported = 1;   /* whoever cancels it knows */
    fail(L, s, f, "cancelled");
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
    if (f->error && !f->reported) calm_log(CALM_LOG_ERROR, "%s failed: %s", f->name, f->error);
    free(f->error);
    f->error = NULL;
    return 0;
}

static int sched_gc(lua_State *L)
{
    sched *s = lua_touserdata(L, 1);
    flow *f;
    for (f = s->live; f; f = f->next) detach(s, f);
    s->live = NULL;
    if (s->multi) curl_multi_cleanup(s->multi);
    s->multi = NULL;
    return 0;
}

/* The count hook: a flow past its deadline is stopped even in a busy loop.
 * It keeps firing, so a pcall that swallows the error gains one slice only. */
static void deadline_hook(lua_State *L, lua_Debug *ar)
{
    flow *f = flow_of(L);
    (void)ar;
    if (f && f->deadline <= calm_now()) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHED_KEY);
        ((sched *)lua_touserdata(L, -1))->deadline_fired = 1;
        lua_pop(L, 1);
        luaL_error(L, "deadline passed (--timeout): script stopped");
    }
}

void calm_sched_install_hook(lua_State *L)
{
    /* New threads inherit the hook of the thread that creates them. */
    lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 20000);
}

int calm_sched_run_root(lua_State *L, int nargs, double timeout, int *deadline_hit)
{
    sched *s = sched_get(L);
    flow *root;
    int n;
    root = spawn(L, s, nargs, "main", 0);
    if (timeout > 0) root->deadline = calm_now() + timeout;
    /* stack: root handle */
    run_until(L, s, root);
    *deadline_hit = s->deadline_fired;
    if (root->state == FLOW_FAILED) {
        root->reported = 1;
        lua_pushstring(L, root->error ? root->error : "failed");
        lua_remove(L, -2);
        return -1;
    }
    n = push_outcome(L, root);
    lua_remove(L, -(n + 1));
    return n;
}

static const luaL_Reg task_funcs[] = {
    { "spawn", task_spawn }, { "wait", task_wait }, { "all", task_all },
    { "sleep", task_sleep }, { "now", task_now }, { "remaining", task_remaining },
    { "set_deadline", task_set_deadline }, { "limit", task_limit },
    { "cancel", task_cancel }, { "current", task_current }, { NULL, NULL }
};

static const luaL_Reg flow_methods[] = {
    { "wait", task_wait }, { "cancel", task_cancel }, { "status", flow_status }, { NULL, NULL }
};

static const luaL_Reg flow_meta[] = {
    { "__gc", flow_gc }, { "__tostring", flow_tostring }, { NULL, NULL }
};

int luaopen_calm_task(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHED_KEY);
    if (lua_isnil(L, -1)) {   /* one scheduler per state, made on first use */
        sched *s = lua_newuserdatauv(L, sizeof *s, 0);
        memset(s, 0, sizeof *s);
        s->multi = curl_multi_init();
        s->limit = 64;
        if (!s->multi) return luaL_error(L, "calm.task: curl_multi_init failed");
        curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, 64L);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, sched_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &SCHED_KEY);
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
