/* flow.c: one flow's links to what it waits on, its wake-up, the values a
 * failed wait returns, its log label, and the scheduler of a Lua state. The
 * loop (loop.c) and the transfers (transfer.c) both park and wake flows with
 * these; calm.task (ltask.c) sits above all of them. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "sched_internal.h"

const char calm_sched_key = 's';

sched *calm_sched_get(lua_State *L)
{
    sched *s;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &calm_sched_key);
    s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!s) luaL_error(L, "calm.task: scheduler not initialised");
    return s;
}

/* Leaves the waiters list of the flow it waited for. */
void calm_flow_unwait(flow *f)
{
    flow *t = f->target;
    if (!t) return;
    if (f->wprev) f->wprev->wnext = f->wnext; else if (t->waiters == f) t->waiters = f->wnext;
    if (f->wnext) f->wnext->wprev = f->wprev;
    f->wnext = f->wprev = NULL;
    f->target = NULL;
}

void calm_flow_unsleep(sched *s, flow *f)
{
    if (f->asleep) s->sleeping--;
    f->asleep = 0;
}

void calm_flow_ready(sched *s, flow *f, int nargs)
{
    calm_flow_unwait(f);
    calm_flow_unsleep(s, f);
    calm_timer_remove(s, f);
    f->state = FLOW_READY;
    f->nargs = nargs;
    calm_ready_push(s, f);
}

void calm_flow_push_fail(lua_State *co, const char *msg, const char *code)
{
    lua_pushnil(co);
    lua_pushstring(co, msg);
    lua_pushstring(co, code);
}

int calm_sched_push_deadline(lua_State *L)
{
    calm_flow_push_fail(L, "deadline passed (--timeout)", "DEADLINE");
    return 3;
}

int calm_flow_set_label(flow *f, const char *label)
{
    size_t n = strlen(label) + 1;
    char *copy = malloc(n);
    if (!copy) return -1;
    memcpy(copy, label, n);
    free(f->label);
    f->label = copy;
    return 0;
}
