/* fdtable: a connection's FDIDs, readable by threads that do not hold the
 * GIL (the GIL-free fast path, fastpath.h) as well as by those that do.
 *
 * Each entry is the C face of one of the core's FD objects: what a GIL-free
 * handler needs (the host FD, the node's lock and deleted mark, the access
 * mode) and a count of uses. The table owns one use; every request served
 * without the GIL takes one for its duration. Whoever drops the last use (the remover, or a
 * request that was still running when the FDID was closed) releases the
 * FD object; until then its host FD stays open and its node lock valid.
 * Releasing takes the GIL: a thread without it may instead queue the entry
 * for the next thread that has it (gofer_fdtable_defer).
 *
 * The fast path may also make FDs itself (OpenAt, Walk, MkdirAt,
 * OpenCreateAt): an entry with no owner yet, holding a use of the entry it
 * was made from, queued with a use of its own until a thread with the GIL
 * gives it its FD object (gofer_fdtable_take_adoptions), or a Close takes
 * it out of that queue again (gofer_fdtable_unqueue_adoption) and releases
 * it without the GIL.
 *
 * All functions return 0 or a negative errno where they can fail. */
#ifndef GOFER_FDTABLE_H
#define GOFER_FDTABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum { GOFER_FD_CONTROL = 1, GOFER_FD_OPEN = 2, GOFER_FD_BOUND = 3 };

typedef struct gofer_fd {
    atomic_int users;               /* the table's use + requests in flight */
    uint64_t id;
    int host_fd;                    /* -1: served only with the GIL */
    uint8_t kind;                   /* GOFER_FD_* */
    uint8_t readable, writable;     /* open FDs: the access mode */
    uint8_t is_dir;                 /* of a directory */
    uint16_t ftype;                 /* control FDs: the file's S_IFMT bits */
    struct gofer_node *node;        /* the node it refers to (nodes.h) */
    /* Control FDs: the directory of this process's FDs through which the
     * fast path may serve OpenAt by reopening host_fd (ControlFDImpl.
     * c_reopen_dir), or NULL. */
    const int *reopen_dir;
    /* Control FDs of directories: the reopen_dir of the files below, when
     * the fast path may walk and change the host directory (Walk, MkdirAt,
     * OpenCreateAt, UnlinkAt, RenameAt; ControlFDImpl.c_host_tree). */
    const int *host_tree;
    void *owner;                    /* the core's FD object; NULL until adopted */
    /* Not adopted yet: the control FD's entry it was opened from, or the
     * directory's it was walked to or made in, with a use. */
    struct gofer_fd *control;
    struct gofer_fd *next_deferred; /* in the table's list of FDs to release */
    struct gofer_fd *next_adoption; /* in the table's list of FDs to adopt */
    struct gofer_fd **adoption_link; /* what points to it there; NULL: not queued */
} gofer_fd;

/* A list of entries left for a thread with the GIL, and its length. */
typedef struct gofer_fdqueue {
    gofer_fd *head;
    size_t n;
} gofer_fdqueue;

typedef struct gofer_fdtable {
    pthread_mutex_t mu;
    gofer_fd **slot;                /* open addressing, linear probing */
    size_t cap;                     /* 0 or a power of two */
    size_t n;
    gofer_fdqueue deferred;         /* last use dropped without the GIL */
    gofer_fdqueue adoptions;        /* made without the GIL, no owner yet */
    uint64_t next_id;               /* the next FDID handed out */
} gofer_fdtable;

int gofer_fdtable_init(gofer_fdtable *t);
/* Frees the table itself; the entries are the caller's. */
void gofer_fdtable_destroy(gofer_fdtable *t);
size_t gofer_fdtable_count(gofer_fdtable *t);

/* Adds f under the next FDID (set in f->id) with the table's use (users
 * counts it on top of any the caller holds); -EMFILE if the table holds
 * `max` entries already. */
int gofer_fdtable_add(gofer_fdtable *t, gofer_fd *f, size_t max);
/* The entry for id, or NULL; no use taken (for a caller that otherwise
 * excludes removal, as the core does under the GIL). */
gofer_fd *gofer_fdtable_get(gofer_fdtable *t, uint64_t id);
/* The entry for id with a use taken, or NULL. Drop it with gofer_fd_unuse. */
gofer_fd *gofer_fdtable_use(gofer_fdtable *t, uint64_t id);
/* Takes id's entry out of the table, or NULL; the caller then drops the
 * table's use. */
gofer_fd *gofer_fdtable_remove(gofer_fdtable *t, uint64_t id);
/* Empties the table at once: returns its slot array (NULL if it never had
 * an entry) with its length in *cap; the caller drops the table's use of
 * each non-NULL slot, then frees the array. */
gofer_fd **gofer_fdtable_take_all(gofer_fdtable *t, size_t *cap);

/* Queues f, whose last use a thread without the GIL dropped, for release by
 * one that holds it (gofer_fdtable_take_deferred). */
void gofer_fdtable_defer(gofer_fdtable *t, gofer_fd *f);
size_t gofer_fdtable_ndeferred(gofer_fdtable *t);
/* Takes the queue: a list linked by next_deferred, or NULL. */
gofer_fd *gofer_fdtable_take_deferred(gofer_fdtable *t);

/* Queues f, made without the GIL and already added, for adoption by a
 * thread that holds it: the caller hands the queue one of its uses. */
void gofer_fdtable_queue_adoption(gofer_fdtable *t, gofer_fd *f);
size_t gofer_fdtable_nadoptions(gofer_fdtable *t);
/* Takes that queue: a list linked by next_adoption, or NULL. */
gofer_fd *gofer_fdtable_take_adoptions(gofer_fdtable *t);
/* Takes f out of the adoption queue if it is still there (a Close before
 * its adoption): 1 if so, and the caller drops the queue's use. */
int gofer_fdtable_unqueue_adoption(gofer_fdtable *t, gofer_fd *f);

/* Drops one use; 1 if it was the last (the caller releases the FD). */
static inline int gofer_fd_unuse(gofer_fd *f)
{
    return atomic_fetch_sub_explicit(&f->users, 1, memory_order_acq_rel) == 1;
}

#endif /* GOFER_FDTABLE_H */
