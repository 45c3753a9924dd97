#ifndef _GNU_SOURCE
#define _GNU_SOURCE                     /* pthread_rwlock_t */
#endif

#include "fdtable.h"

#include <errno.h>
#include <stdlib.h>

/* FDIDs are handed out in sequence, so the low bits spread them evenly. */
static size_t home(const gofer_fdtable *t, uint64_t id)
{
    return (size_t)id & (t->cap - 1);
}

static size_t find(const gofer_fdtable *t, uint64_t id)
{
    size_t i = home(t, id);
    while (t->slot[i] != NULL && t->slot[i]->id != id)
        i = (i + 1) & (t->cap - 1);
    return i;
}

int gofer_fdtable_init(gofer_fdtable *t)
{
    t->slot = NULL;
    t->cap = 0;
    t->n = 0;
    t->deferred = t->adoptions = (gofer_fdqueue){NULL, 0};
    t->next_id = 1;
    return -pthread_mutex_init(&t->mu, NULL);
}

void gofer_fdtable_destroy(gofer_fdtable *t)
{
    free(t->slot);
    t->slot = NULL;
    t->cap = t->n = 0;
    pthread_mutex_destroy(&t->mu);
}

/* A count of the table's, read under its lock. */
static size_t locked_read(gofer_fdtable *t, const size_t *count)
{
    pthread_mutex_lock(&t->mu);
    size_t n = *count;
    pthread_mutex_unlock(&t->mu);
    return n;
}

size_t gofer_fdtable_count(gofer_fdtable *t)
{
    return locked_read(t, &t->n);
}

/* Keeps the load at most 1/2, so probes stay short. */
static int grow(gofer_fdtable *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    gofer_fd **old = t->slot;
    size_t old_cap = t->cap;
    gofer_fd **slot = calloc(cap, sizeof(*slot));
    if (slot == NULL)
        return -ENOMEM;
    t->slot = slot;
    t->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] != NULL)
            t->slot[find(t, old[i]->id)] = old[i];
    free(old);
    return 0;
}

int gofer_fdtable_add(gofer_fdtable *t, gofer_fd *f, size_t max)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->n >= max)
        rc = -EMFILE;
    else if (2 * (t->n + 1) > t->cap)
        rc = grow(t);
    if (rc == 0) {
        f->id = t->next_id++;
        atomic_fetch_add_explicit(&f->users, 1, memory_order_relaxed);
        t->slot[find(t, f->id)] = f;
        t->n++;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static gofer_fd *lookup(gofer_fdtable *t, uint64_t id, int take_use)
{
    gofer_fd *f = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->cap)
        f = t->slot[find(t, id)];
    if (f != NULL && take_use)
        atomic_fetch_add_explicit(&f->users, 1, memory_order_relaxed);
    pthread_mutex_unlock(&t->mu);
    return f;
}

gofer_fd *gofer_fdtable_get(gofer_fdtable *t, uint64_t id)
{
    return lookup(t, id, 0);
}

gofer_fd *gofer_fdtable_use(gofer_fdtable *t, uint64_t id)
{
    return lookup(t, id, 1);
}

/* Empties slot i (t->mu held), keeping every probe run unbroken. */
static void take_out(gofer_fdtable *t, size_t i)
{
    size_t j;
    /* Backward-shift deletion: pull later entries of the probe run into
     * the hole wherever their home allows, so no tombstones are needed. */
    t->slot[i] = NULL;
    t->n--;
    for (j = (i + 1) & (t->cap - 1); t->slot[j] != NULL; j = (j + 1) & (t->cap - 1)) {
        size_t h = home(t, t->slot[j]->id);
        /* slot[j] may move to i unless its home lies cyclically in (i, j]. */
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            t->slot[i] = t->slot[j];
            t->slot[j] = NULL;
            i = j;
        }
    }
}

gofer_fd *gofer_fdtable_remove(gofer_fdtable *t, uint64_t id)
{
    gofer_fd *f = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->n) {
        size_t i = find(t, id);
        f = t->slot[i];
        if (f != NULL)
            take_out(t, i);
    }
    pthread_mutex_unlock(&t->mu);
    return f;
}

gofer_fd **gofer_fdtable_take_all(gofer_fdtable *t, size_t *cap)
{
    pthread_mutex_lock(&t->mu);
    gofer_fd **slot = t->slot;
    *cap = t->cap;
    t->slot = NULL;
    t->cap = t->n = 0;
    pthread_mutex_unlock(&t->mu);
    return slot;
}

void gofer_fdtable_defer(gofer_fdtable *t, gofer_fd *f)
{
    pthread_mutex_lock(&t->mu);
    f->next_deferred = t->deferred.head;
    t->deferred.head = f;
    t->deferred.n++;
    pthread_mutex_unlock(&t->mu);
}

size_t gofer_fdtable_ndeferred(gofer_fdtable *t)
{
    return locked_read(t, &t->deferred.n);
}

gofer_fd *gofer_fdtable_take_deferred(gofer_fdtable *t)
{
    pthread_mutex_lock(&t->mu);
    gofer_fd *list = t->deferred.head;
    t->deferred = (gofer_fdqueue){NULL, 0};
    pthread_mutex_unlock(&t->mu);
    return list;
}

/* The adoption queue is linked both ways (adoption_link), so that an FD
 * closed before its adoption leaves it at once. */
void gofer_fdtable_queue_adoption(gofer_fdtable *t, gofer_fd *f)
{
    pthread_mutex_lock(&t->mu);
    f->next_adoption = t->adoptions.head;
    if (f->next_adoption != NULL)
        f->next_adoption->adoption_link = &f->next_adoption;
    f->adoption_link = &t->adoptions.head;
    t->adoptions.head = f;
    t->adoptions.n++;
    pthread_mutex_unlock(&t->mu);
}

int gofer_fdtable_unqueue_adoption(gofer_fdtable *t, gofer_fd *f)
{
    pthread_mutex_lock(&t->mu);
    int queued = f->adoption_link != NULL;
    if (queued) {
        *f->adoption_link = f->next_adoption;
        if (f->next_adoption != NULL)
            f->next_adoption->adoption_link = f->adoption_link;
        f->adoption_link = NULL;
        t->adoptions.n--;
    }
    pthread_mutex_unlock(&t->mu);
    return queued;
}

size_t gofer_fdtable_nadoptions(gofer_fdtable *t)
{
    return locked_read(t, &t->adoptions.n);
}

gofer_fd *gofer_fdtable_take_adoptions(gofer_fdtable *t)
{
    pthread_mutex_lock(&t->mu);
    gofer_fd *list = t->adoptions.head;
    for (gofer_fd *f = list; f != NULL; f = f->next_adoption)
        f->adoption_link = NULL;
    t->adoptions = (gofer_fdqueue){NULL, 0};
    pthread_mutex_unlock(&t->mu);
    return list;
}
