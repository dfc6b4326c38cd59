/* taskrun.c: the run's root flow and the deadline hook of calm.task: the
 * host runs a command as the "main" flow, and a flow that keeps running past
 * its deadline without yielding is stopped. The module itself is ltask.c. */
#include <lauxlib.h>
#include <lua.h>

#include "sched_internal.h"

/* The count hook stops a flow that keeps running past its deadline without
 * yielding (a busy loop in an admin's script). A flow woken at the deadline
 * with "deadline passed" gets DEADLINE_GRACE seconds of running to write its
 * report and error line. Once the hook has fired it fires on every
 * instruction of that thread, so a loop around pcall cannot swallow it. */
static void deadline_hook(lua_State *L, lua_Debug *ar)
{
    flow *f = flow_of(L);
    sched *s;
    double now, since;
    (void)ar;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &calm_sched_key);
    s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!f && s) f = s->current;   /* a plain coroutine running inside a flow */
    if (!f || f->deadline > (now = calm_now())) return;
    since = f->resumed_at > f->deadline ? f->resumed_at : f->deadline;
    if (now - since < DEADLINE_GRACE) return;
    s->deadline_fired = 1;
    lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "deadline passed (--timeout): script stopped");
}

void calm_sched_install_hook(lua_State *L)
{
    /* New threads inherit the hook of the thread that creates them. */
    lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 20000);
}

int calm_sched_run_root(lua_State *L, int nargs, double timeout, int *deadline_hit)
{
    sched *s = calm_sched_get(L);
    flow *root;
    int n;
    root = calm_loop_spawn(L, s, nargs, "main", 0);
    if (timeout > 0) root->deadline = calm_now() + timeout;
    /* stack: root handle */
    calm_loop_run_until(L, s, root);
    /* Flows still running when the main flow ends are cancelled here, so
     * their <close> variables run and nothing goes on behind the result. */
    while (s->live) {
        flow *f = s->live;
        calm_loop_detach(s, f);
        f->reported = 1;
        calm_loop_fail(L, s, f, "cancelled: the main flow finished");
    }
    /* the run's own deadline passed, and it stopped a flow (the hook) or the
     * main flow failed (an error raised from a "deadline passed" result) */
    *deadline_hit = (s->deadline_fired || root->state == FLOW_FAILED) && root->deadline <= calm_now();
    if (root->state == FLOW_FAILED) {
        root->reported = 1;
        lua_pushstring(L, root->error ? root->error : "failed");
        lua_remove(L, -2);
        return -1;
    }
    n = calm_loop_push_outcome(L, root);
    lua_remove(L, -(n + 1));
    return n;
}
