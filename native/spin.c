/* spin; see spin.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "spin.h"

#include <sched.h>
#include <time.h>

#define BUSY_NS 1000 /* polls without yielding at first */

/* Tells the CPU we are busy-waiting: saves power and, on SMT cores, gives the
 * sibling thread the pipeline. On arm64 "yield" is a no-op on most cores;
 * "isb" actually stalls for a short while, which is what we want. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("isb" ::: "memory");
#endif
}

uint64_t gofer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t gofer_spin_default_ns(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) < 2)
        return 0;
    return GOFER_SPIN_DEFAULT_NS;
}

void gofer_spin_init(struct gofer_spin *s, uint64_t max_ns)
{
    s->max_ns = s->cur_ns = max_ns;
    s->probe = s->misses = 0;
}

int gofer_spin_poll(struct gofer_spin *s, int (*ready)(void *arg), void *arg)
{
    uint64_t budget = s->cur_ns < s->max_ns ? s->cur_ns : s->max_ns;
    uint64_t window = budget;
    if (budget < s->max_ns && ++s->probe % GOFER_SPIN_PROBE_EVERY == 0)
        window = s->max_ns;
    if (window == 0)
        return 0;
    uint64_t start = gofer_now_ns();
    for (;;) {
        int r = ready(arg);
        if (r) {
            s->cur_ns = s->max_ns;
            s->misses = 0;
            return r;
        }
        uint64_t spent = gofer_now_ns() - start;
        if (spent >= window)
            break;
        if (spent < BUSY_NS)
            cpu_relax();
        else
            sched_yield();
    }
    /* One miss may be a hiccup (an interrupt, a preemption); shrinking at
     * once would cost several slow round trips until the next probe. A
     * failed probe does not raise the window. */
    if (++s->misses >= 2)
        s->cur_ns = budget / 2;
    return 0;
}
