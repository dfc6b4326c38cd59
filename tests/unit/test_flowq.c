/* test_flowq.c: the scheduler's ready queue and timer heap (src/flowq.c):
 * FIFO order, removal from anywhere, and a heap that agrees with a brute
 * force minimum through thousands of random inserts, updates and removals. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"
#include "check.h"

#define N 2000

static flow flows[N];

static void test_ready_queue(void)
{
    sched s;
    int i, ok = 1;
    memset(&s, 0, sizeof s);
    memset(flows, 0, sizeof flows);
    for (i = 0; i < 5; i++) calm_ready_push(&s, &flows[i]);
    calm_ready_push(&s, &flows[2]);
    calm_ready_remove(&s, &flows[3]);
    calm_ready_remove(&s, &flows[3]);
    calm_ready_remove(&s, &flows[0]);
    calm_ready_remove(&s, &flows[4]);
    calm_ready_push(&s, &flows[0]);
    CHECK(calm_ready_pop(&s) == &flows[1], "the ready queue is first in, first out");
    CHECK(calm_ready_pop(&s) == &flows[2], "pushing a queued flow again keeps its place");
    CHECK(calm_ready_pop(&s) == &flows[0], "a flow removed and pushed again goes to the tail");
    CHECK(calm_ready_pop(&s) == NULL && s.ready_tail == NULL, "removed flows are gone; the queue empties");
    for (i = 0; i < 5; i++) ok &= !flows[i].in_ready;
    CHECK(ok, "popped and removed flows are marked off the queue");
}

static flow *brute_min(void)
{
    flow *m = NULL;
    int i;
    for (i = 0; i < N; i++)
        if (flows[i].heap_idx && (!m || flows[i].due < m->due)) m = &flows[i];
    return m;
}

static void test_timer_heap(void)
{
    sched s;
    int i, step, agree = 1, idx_ok = 1, drained = 1;
    double last = -1;
    memset(&s, 0, sizeof s);
    memset(flows, 0, sizeof flows);
    srand(7);
    CHECK(calm_timer_reserve(&s, N) == 0 && s.heap_cap >= N, "room is reserved for every flow");
    CHECK(calm_timer_top(&s) == NULL, "an empty heap has no top");
    for (step = 0; step < 20000; step++) {
        flow *f = &flows[rand() % N];
        int op = rand() % 4;
        if (op == 0) calm_timer_remove(&s, f);
        else if (op == 1) calm_timer_set(&s, f, HUGE_VAL);
        else calm_timer_set(&s, f, (double)(rand() % 100000) / 7.0);
        {
            flow *top = calm_timer_top(&s), *m = brute_min();
            if (!(top == m || (top && m && top->due == m->due))) agree = 0;
        }
    }
    for (i = 0; i < s.heap_len; i++)
        if (s.heap[i]->heap_idx != i + 1) idx_ok = 0;
    CHECK(agree, "after every random insert, update and removal the top is the earliest due");
    CHECK(idx_ok, "each flow in the heap knows its slot");
    while (calm_timer_top(&s)) {
        flow *f = calm_timer_top(&s);
        if (f->due < last) drained = 0;
        last = f->due;
        calm_timer_remove(&s, f);
    }
    CHECK(drained && s.heap_len == 0, "removing the top repeatedly yields non-decreasing times");
    calm_timer_set(&s, &flows[0], 5);
    calm_timer_set(&s, &flows[1], 3);
    calm_timer_set(&s, &flows[0], 1);
    CHECK(calm_timer_top(&s) == &flows[0] && s.heap_len == 2, "moving a due time earlier updates in place");
    calm_timer_set(&s, &flows[0], 9);
    CHECK(calm_timer_top(&s) == &flows[1], "moving a due time later updates in place");
    calm_timer_free(&s);
    CHECK(s.heap == NULL && s.heap_cap == 0, "free releases the heap");
}

int main(void)
{
    check_suite = "unit/flowq";
    test_ready_queue();
    test_timer_heap();
    return CHECK_DONE();
}
