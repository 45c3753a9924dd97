/* Tests for native/fdtable.c: prints "N passed, M failed".
 *
 * A random sequence of adds and removes is checked against a plain array
 * (collisions and backward-shift deletion across the wrap included), then
 * threads take and drop uses while the main thread removes entries, as
 * GIL-free requests race Close; the full table, and the queues of FDs to
 * release and to adopt. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "check.h"
#include "fdtable.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>


enum { N = 5000 };
static gofer_fd fds[N];

/* Ids that collide: multiples of the smallest capacity, plus a few that
 * spread, so probe runs are long and wrap around the end. */
static uint64_t id_of(int i)
{
    return i % 3 ? (uint64_t)i * 64 : (uint64_t)i;
}

static int test_model(void)
{
    gofer_fdtable t;
    static char in[N];
    size_t count = 0;
    CHECK(gofer_fdtable_init(&t) == 0);
    CHECK(gofer_fdtable_get(&t, 1) == NULL && gofer_fdtable_remove(&t, 1) == NULL);
    srand(1);
    for (int step = 0; step < 200000; step++) {
        int i = rand() % N;
        if (!in[i] && rand() % 3) {
            t.next_id = id_of(i);          /* spread, as above */
            atomic_store(&fds[i].users, 0);
            CHECK(gofer_fdtable_add(&t, &fds[i], N) == 0 && fds[i].id == id_of(i));
            in[i] = 1;
            count++;
        } else if (in[i]) {
            CHECK(gofer_fdtable_remove(&t, id_of(i)) == &fds[i]);
            in[i] = 0;
            count--;
        } else {
            CHECK(gofer_fdtable_remove(&t, id_of(i)) == NULL);
        }
        if (step % 997 == 0) {
            CHECK(gofer_fdtable_count(&t) == count);
            for (int k = 0; k < N; k++)
                CHECK(gofer_fdtable_get(&t, id_of(k)) == (in[k] ? &fds[k] : NULL));
        }
    }
    size_t cap, seen = 0;
    gofer_fd **slot = gofer_fdtable_take_all(&t, &cap);
    for (size_t k = 0; k < cap; k++)
        seen += slot[k] != NULL;
    free(slot);
    CHECK(seen == count && gofer_fdtable_count(&t) == 0);
    CHECK(gofer_fdtable_get(&t, id_of(0)) == NULL);
    gofer_fdtable_destroy(&t);
    return 1;
}

static gofer_fdtable shared;
static atomic_int released[N];

static void *user(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int round = 0; round < 200000; round++) {
        int i = (int)(rand_r(&seed) % N);
        gofer_fd *f = gofer_fdtable_use(&shared, id_of(i));
        if (f != NULL && gofer_fd_unuse(f))
            atomic_fetch_add(&released[f - fds], 1);
    }
    return NULL;
}

static int test_uses_race_removal(void)
{
    pthread_t th[3];
    CHECK(gofer_fdtable_init(&shared) == 0);
    for (int i = 0; i < N; i++) {
        atomic_store(&released[i], 0);
        atomic_store(&fds[i].users, 0);
        shared.next_id = id_of(i);
        CHECK(gofer_fdtable_add(&shared, &fds[i], N) == 0);
        CHECK(atomic_load(&fds[i].users) == 1);
    }
    gofer_fd extra;
    CHECK(gofer_fdtable_add(&shared, &extra, N) == -EMFILE);   /* full */
    for (int k = 0; k < 3; k++)
        pthread_create(&th[k], NULL, user, (void *)(uintptr_t)(k + 1));
    for (int i = 0; i < N; i++) {
        gofer_fd *f = gofer_fdtable_remove(&shared, id_of(i));
        CHECK(f == &fds[i]);
        if (gofer_fd_unuse(f))
            atomic_fetch_add(&released[i], 1);
    }
    for (int k = 0; k < 3; k++)
        pthread_join(th[k], NULL);
    /* Each entry released exactly once, by whoever dropped the last use. */
    for (int i = 0; i < N; i++)
        CHECK(atomic_load(&released[i]) == 1 && atomic_load(&fds[i].users) == 0);
    CHECK(gofer_fdtable_count(&shared) == 0);
    gofer_fdtable_destroy(&shared);
    return 1;
}

/* Entries queued by threads without the GIL come back once each, whatever
 * the interleaving of queuers. */
static void *deferrer(void *arg)
{
    int k = (int)(uintptr_t)arg;
    for (int i = k; i < N; i += 3)
        gofer_fdtable_defer(&shared, &fds[i]);
    return NULL;
}

static int test_deferred(void)
{
    pthread_t th[3];
    CHECK(gofer_fdtable_init(&shared) == 0);
    CHECK(gofer_fdtable_take_deferred(&shared) == NULL);
    for (int k = 0; k < 3; k++)
        pthread_create(&th[k], NULL, deferrer, (void *)(uintptr_t)k);
    for (int k = 0; k < 3; k++)
        pthread_join(th[k], NULL);
    CHECK(gofer_fdtable_ndeferred(&shared) == N);
    for (int i = 0; i < N; i++)
        atomic_store(&released[i], 0);
    for (gofer_fd *f = gofer_fdtable_take_deferred(&shared); f != NULL; f = f->next_deferred)
        atomic_fetch_add(&released[f - fds], 1);
    for (int i = 0; i < N; i++)
        CHECK(atomic_load(&released[i]) == 1);
    CHECK(gofer_fdtable_ndeferred(&shared) == 0 && gofer_fdtable_take_deferred(&shared) == NULL);
    gofer_fdtable_destroy(&shared);
    return 1;
}

/* Adoptions: each queued entry comes back once, with the queue's use,
 * unless it left the queue first. */
static void *adopter(void *arg)
{
    int k = (int)(uintptr_t)arg;
    for (int i = k; i < N; i += 3) {
        atomic_store(&fds[i].users, 2);          /* the table's and the queue's */
        gofer_fdtable_queue_adoption(&shared, &fds[i]);
    }
    return NULL;
}

static int test_adoptions(void)
{
    pthread_t th[3];
    CHECK(gofer_fdtable_init(&shared) == 0);
    CHECK(gofer_fdtable_take_adoptions(&shared) == NULL);
    for (int k = 0; k < 3; k++)
        pthread_create(&th[k], NULL, adopter, (void *)(uintptr_t)k);
    for (int k = 0; k < 3; k++)
        pthread_join(th[k], NULL);
    CHECK(gofer_fdtable_nadoptions(&shared) == N);
    /* Every third leaves the queue early (a Close before adoption), from
     * its head, its tail and between; once only. */
    for (int i = 0; i < N; i += 3)
        CHECK(gofer_fdtable_unqueue_adoption(&shared, &fds[i]) == 1);
    CHECK(gofer_fdtable_unqueue_adoption(&shared, &fds[0]) == 0);
    CHECK(gofer_fdtable_nadoptions(&shared) == N - (N + 2) / 3);
    for (int i = 0; i < N; i++)
        atomic_store(&released[i], 0);
    for (gofer_fd *f = gofer_fdtable_take_adoptions(&shared); f != NULL; f = f->next_adoption)
        atomic_fetch_add(&released[f - fds], 1);
    for (int i = 0; i < N; i++)
        CHECK(atomic_load(&released[i]) == (i % 3 != 0) && atomic_load(&fds[i].users) == 2);
    CHECK(gofer_fdtable_nadoptions(&shared) == 0 && gofer_fdtable_take_adoptions(&shared) == NULL);
    /* Taken for adoption: no longer in the queue to leave. */
    CHECK(gofer_fdtable_unqueue_adoption(&shared, &fds[1]) == 0);
    gofer_fdtable_destroy(&shared);
    return 1;
}

int main(void)
{
    static const struct check_case cases[] = {
        CASE(test_model), CASE(test_uses_race_removal), CASE(test_deferred), CASE(test_adoptions),
    };
    return check_main("fdtable", cases, sizeof(cases) / sizeof(cases[0]));
}
