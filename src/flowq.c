/* flowq.c: the scheduler's ready queue (FIFO, O(1) removal) and its timer
 * heap (binary min-heap on flow.due, O(log n)). With these the loop's work
 * per event does not grow with the number of flows. No Lua here. */
#include <math.h>
#include <stdlib.h>

#include "sched_internal.h"

void calm_ready_push(sched *s, flow *f)
{
    if (f->in_ready) return;
    f->in_ready = 1;
    f->rnext = NULL;
    f->rprev = s->ready_tail;
    if (s->ready_tail) s->ready_tail->rnext = f; else s->ready_head = f;
    s->ready_tail = f;
}

void calm_ready_remove(sched *s, flow *f)
{
    if (!f->in_ready) return;
    if (f->rprev) f->rprev->rnext = f->rnext; else s->ready_head = f->rnext;
    if (f->rnext) f->rnext->rprev = f->rprev; else s->ready_tail = f->rprev;
    f->rnext = f->rprev = NULL;
    f->in_ready = 0;
}

flow *calm_ready_pop(sched *s)
{
    flow *f = s->ready_head;
    if (f) calm_ready_remove(s, f);
    return f;
}

int calm_timer_reserve(sched *s, int n)
{
    flow **h;
    int cap;
    if (n <= s->heap_cap) return 0;
    cap = s->heap_cap ? s->heap_cap : 64;
    while (cap < n) {
        if (cap > (1 << 28)) return -1;
        cap *= 2;
    }
    h = realloc(s->heap, (size_t)cap * sizeof *h);
    if (!h) return -1;
    s->heap = h;
    s->heap_cap = cap;
    return 0;
}

static void place(sched *s, int i, flow *f)
{
    s->heap[i] = f;
    f->heap_idx = i + 1;
}

static void sift_up(sched *s, int i)
{
    flow *f = s->heap[i];
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (s->heap[parent]->due <= f->due) break;
        place(s, i, s->heap[parent]);
        i = parent;
    }
    place(s, i, f);
}

static void sift_down(sched *s, int i)
{
    flow *f = s->heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= s->heap_len) break;
        if (c + 1 < s->heap_len && s->heap[c + 1]->due < s->heap[c]->due) c++;
        if (f->due <= s->heap[c]->due) break;
        place(s, i, s->heap[c]);
        i = c;
    }
    place(s, i, f);
}

void calm_timer_remove(sched *s, flow *f)
{
    int i = f->heap_idx - 1;
    flow *last;
    if (i < 0) return;
    f->heap_idx = 0;
    last = s->heap[--s->heap_len];
    if (last == f) return;
    place(s, i, last);
    sift_up(s, i);
    sift_down(s, last->heap_idx - 1);
}

/* The caller reserved room (calm_timer_reserve) for every live flow. */
void calm_timer_set(sched *s, flow *f, double due)
{
    if (due == HUGE_VAL || isnan(due)) {
        calm_timer_remove(s, f);
        return;
    }
    f->due = due;
    if (f->heap_idx) {
        sift_up(s, f->heap_idx - 1);
        sift_down(s, f->heap_idx - 1);
        return;
    }
    if (s->heap_len >= s->heap_cap && calm_timer_reserve(s, s->heap_len + 1) != 0) return;
    place(s, s->heap_len++, f);
    sift_up(s, s->heap_len - 1);
}

flow *calm_timer_top(sched *s)
{
    return s->heap_len ? s->heap[0] : NULL;
}

void calm_timer_free(sched *s)
{
    free(s->heap);
    s->heap = NULL;
    s->heap_len = s->heap_cap = 0;
}
