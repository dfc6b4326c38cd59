/* transfer.c: flows parked on an HTTP transfer. A transfer starts at once
 * while fewer than task.limit are in flight, else waits its turn in a FIFO;
 * finished transfers resume their flows and let queued ones start. The rest
 * of the event loop is in loop.c. */
#include <lua.h>

#include "sched_internal.h"

/* A transfer curl refuses to take (out of memory) fails at once instead of
 * leaving its flow parked until the deadline. */
static void start_transfer(sched *s, flow *f)
{
    CURLMcode mc = curl_multi_add_handle(s->multi, f->transfer->easy);
    if (mc != CURLM_OK) {
        calm_transfer *t = f->transfer;
        f->transfer = NULL;
        t->abandon(t);
        calm_flow_push_fail(f->co, curl_multi_strerror(mc), "OUT_OF_MEMORY");
        calm_flow_ready(s, f, 3);
        return;
    }
    f->state = FLOW_HTTP;
    s->in_flight++;
}

int calm_sched_park(lua_State *L, calm_transfer *t)
{
    sched *s = calm_sched_get(L);
    flow *f = flow_of(L);
    f->transfer = t;
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, (void *)f);
    if (s->in_flight < calm_loop_limit(s)) {
        start_transfer(s, f);
    } else {  /* over the concurrency cap: wait for a slot, in order */
        f->state = FLOW_QUEUED;
        f->qnext = NULL;
        f->qprev = s->queue_tail;
        if (s->queue_tail) s->queue_tail->qnext = f; else s->queue_head = f;
        s->queue_tail = f;
    }
    return lua_yield(L, 0);
}

static void unqueue(sched *s, flow *f)
{
    if (f->qprev) f->qprev->qnext = f->qnext; else s->queue_head = f->qnext;
    if (f->qnext) f->qnext->qprev = f->qprev; else s->queue_tail = f->qprev;
    f->qnext = f->qprev = NULL;
}

/* task.limit, kept within what the descriptor limit allows. */
int calm_loop_limit(sched *s)
{
    return s->fd_cap > 0 && s->fd_cap < s->limit ? s->fd_cap : s->limit;
}

void calm_loop_start_queued(sched *s)
{
    while (s->queue_head && s->in_flight < calm_loop_limit(s)) {
        flow *f = s->queue_head;
        unqueue(s, f);
        start_transfer(s, f);
    }
}

/* Drops the transfer a flow is parked on (in flight or queued), if any,
 * without resuming the flow. */
void calm_loop_drop_transfer(sched *s, flow *f)
{
    calm_transfer *t = f->transfer;
    if (f->state == FLOW_HTTP) {
        curl_multi_remove_handle(s->multi, t->easy);
        s->in_flight--;
    } else if (f->state == FLOW_QUEUED) {
        unqueue(s, f);
    } else {
        return;
    }
    f->transfer = NULL;
    t->abandon(t);
}

/* Drains finished transfers into their flows. */
void calm_loop_collect(sched *s)
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
        calm_log_set_label(f->label);   /* its debug and trace lines */
        calm_flow_ready(s, f, t->finish(t, f->co, m->data.result));
        calm_log_set_label(NULL);
    }
    calm_loop_start_queued(s);
}
