/* nodes: the server's tree of names, shared by every connection of one
 * gofer and usable with or without the GIL (the GIL-free fast path walks
 * and makes nodes too).
 *
 * A node is one name a control FD refers to (or a directory above one):
 * its parent, its children by name, a reference count, a deleted mark and
 * the lock of the RPCs on it (gVisor's node opMu). It lives while a
 * control FD or a child refers to it; the root lives while the Server does,
 * and the tree (with its rename lock) while the root does.
 *
 * The tree's mutex guards names, links and counts. It is a leaf lock: held
 * for a few loads and stores only, never while taking another lock or
 * calling the host, so a thread holding the GIL may take it. The deleted
 * mark is set under it and may be read without it. */
#ifndef GOFER_NODES_H
#define GOFER_NODES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct gofer_node {
    struct gofer_tree *tree;
    struct gofer_node *parent;      /* NULL: the root, or out of the tree */
    struct gofer_node *next;        /* in the parent's bucket */
    struct gofer_node **buckets;    /* children by name; NULL: none yet */
    size_t nbuckets, nchildren;
    long refs;
    atomic_int deleted;
    pthread_rwlock_t lock;          /* the RPCs' (_locks.pxi) */
    size_t len;
    char *name;                     /* NUL-terminated too */
} gofer_node;

typedef struct gofer_tree {
    pthread_mutex_t mu;
    pthread_rwlock_t rename_lock;   /* shared by RPCs, exclusive by renames */
    gofer_node *root;
} gofer_tree;

/* A new tree; its root's one reference is the caller's. NULL: no memory. */
gofer_tree *gofer_tree_new(void);
/* Every node's path ("/", "/a", "/a/b"...), each NUL-terminated, in one
 * malloc'd buffer of *len bytes (for tests and debugging); NULL: no memory. */
char *gofer_tree_paths(gofer_tree *t, size_t *len);

/* parent's child `name` (one component, len bytes), made if new, with a
 * reference taken; NULL: no memory. */
gofer_node *gofer_node_child(gofer_node *parent, const char *name, size_t len);
/* parent's child `name` with a reference taken, or NULL if it has none. */
gofer_node *gofer_node_find(gofer_node *parent, const char *name, size_t len);
void gofer_node_incref(gofer_node *n);
/* Drops a reference; the last frees n, drops n's reference on its parent,
 * and frees the tree with its root. */
void gofer_node_decref(gofer_node *n);
/* The file n names was removed: n leaves its parent and is marked deleted,
 * with everything below it. */
void gofer_node_delete(gofer_node *n);
/* The host renamed old_parent/old_name to new_parent/new_name (or swapped
 * the two, if exchange): the tree follows. What new_name named, unless
 * swapped, is deleted. -ENOMEM: the tree could not follow, and the moved
 * nodes left it (a later walk makes new ones). */
int gofer_node_rename(gofer_node *old_parent, const char *old_name, size_t old_len,
                      gofer_node *new_parent, const char *new_name, size_t new_len,
                      int exchange);

static inline int gofer_node_deleted(const gofer_node *n)
{
    return atomic_load_explicit(&n->deleted, memory_order_acquire);
}

#endif /* GOFER_NODES_H */
