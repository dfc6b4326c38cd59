/* sched_internal.h: the scheduler's state, shared by the event loop (flowq.c,
 * flow.c, transfer.c, loop.c, in that order from below) and the calm.task
 * module above it (ltask.c, taskrun.c). Not for anything else. */
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
    struct flow *target;     /* FLOW_WAIT: the flow it waits for */
    struct flow *waiters;    /* flows waiting for this one (wnext/wprev) */
    struct flow *wnext, *wprev;
    struct flow *next, *prev;   /* list of live flows */
    struct flow *qnext, *qprev; /* queue of transfers waiting for a slot */
    struct flow *rnext, *rprev; /* ready queue */
    int in_ready;            /* on the ready queue */
    int asleep;              /* counted in sched.sleeping */
    int heap_idx;            /* 1 + index in the timer heap, 0 if not in it */
    double due;              /* heap key: min(wake_at, deadline) */
    unsigned id;
    unsigned secret_scope;   /* calm_redact scope of its secrets; children inherit it */
    char name[48];
    char *label;             /* prefix of its log lines (a fleet's tenant), or NULL; inherited */
} flow;

typedef struct sched {
    CURLM *multi;
    flow *live;
    int nlive;
    flow *queue_head, *queue_tail;
    flow *ready_head, *ready_tail;
    flow **heap;             /* timers: min-heap on flow.due */
    int heap_len, heap_cap;
    int sleeping;            /* flows in task.sleep */
    int in_flight, limit;
    int fd_cap;              /* transfers the descriptor limit allows (fdlimit.c) */
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

/* flowq.c: the ready queue and the timer heap, O(1) / O(log n) per event. */
void calm_ready_push(sched *s, flow *f);      /* no-op if already queued */
flow *calm_ready_pop(sched *s);
void calm_ready_remove(sched *s, flow *f);    /* no-op if not queued */
int calm_timer_reserve(sched *s, int n);      /* room for n timers: 0, or -1 out of memory */
void calm_timer_set(sched *s, flow *f, double due); /* HUGE_VAL: no timer */
void calm_timer_remove(sched *s, flow *f);
flow *calm_timer_top(sched *s);               /* earliest due, or NULL */
void calm_timer_free(sched *s);

/* flow.c: a flow's links and wake-up (below transfer.c and loop.c). */
void calm_flow_unwait(flow *f);               /* leaves the waiters of the flow it waits for */
void calm_flow_unsleep(sched *s, flow *f);    /* no longer counted as sleeping */
void calm_flow_ready(sched *s, flow *f, int nargs); /* unparks f; nargs values on f->co */
void calm_flow_push_fail(lua_State *co, const char *msg, const char *code); /* nil, msg, code */
/* Sets (a copy of) label as the flow's log label; 0, or -1 out of memory. */
int calm_flow_set_label(flow *f, const char *label);

/* transfer.c: flows parked on a transfer (calm_sched_park), the task.limit cap. */
int calm_loop_limit(sched *s);                /* task.limit within the fd limit */
void calm_loop_start_queued(sched *s);        /* starts queued transfers while slots are free */
void calm_loop_drop_transfer(sched *s, flow *f); /* no-op unless FLOW_HTTP / FLOW_QUEUED */
void calm_loop_collect(sched *s);             /* finished transfers resume their flows */

/* loop.c: the loop itself, flows made and finished. */
void calm_loop_detach(sched *s, flow *f);
int calm_loop_push_outcome(lua_State *to, flow *f);
void calm_loop_fail(lua_State *L, sched *s, flow *f, const char *msg);
void calm_loop_run_until(lua_State *L, sched *s, flow *until);
flow *calm_loop_spawn(lua_State *L, sched *s, int nargs, const char *name, double timeout);

#endif
