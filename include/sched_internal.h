/* sched_internal.h: the scheduler's state, shared by the event loop (loop.c)
 * and the calm.task module (ltask.c). Not for anything else. */
#ifndef SCHED_INTERNAL_H
#define SCHED_INTERNAL_H

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
    double resumed_at;       /* when the scheduler last resumed it */
    unsigned pass;           /* the loop pass that last resumed it */
    int bare_yield;          /* its last yield was a bare coroutine.yield */
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
    unsigned pass;           /* counts the loop's passes over the ready flows */
    flow *current;           /* the flow being resumed (NULL between resumes) */
    int deadline_fired;      /* the hook stopped a flow past its deadline */
    lua_State *main;
} sched;


#define FLOW_MT "calm.task.flow"
extern const char calm_sched_key;   /* registry key of the sched userdata */

sched *calm_sched_get(lua_State *L);
/* The flow a thread runs lives in the thread's extra space: O(1), and a
 * coroutine made by coroutine.create copies the main thread's NULL, so only
 * our flows are flows. */
#define flow_of(L) (*(flow **)lua_getextraspace(L))

/* How long a flow may run without yielding past its deadline before the hook
 * stops it: long enough to write a report and an error line after being
 * woken with "deadline passed", far too short to hide a runaway loop. */
#define DEADLINE_GRACE 0.25

void calm_loop_start_queued(sched *s);
void calm_loop_detach(sched *s, flow *f);
void calm_loop_push_fail(lua_State *co, const char *msg, const char *code);
int calm_loop_push_outcome(lua_State *to, flow *f);
void calm_loop_fail(lua_State *L, sched *s, flow *f, const char *msg);
void calm_loop_run_until(lua_State *L, sched *s, flow *until);
flow *calm_loop_spawn(lua_State *L, sched *s, int nargs, const char *name, double timeout);

#endif
