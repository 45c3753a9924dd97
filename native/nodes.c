#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "nodes.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { FIRST_BUCKETS = 8 };

static size_t hash(const char *name, size_t len)
{
    uint64_t h = 14695981039346656037ULL;       /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 32));
}

static char *copy_name(const char *name, size_t len)
{
    char *s = malloc(len + 1);
    if (s != NULL) {
        memcpy(s, name, len);
        s[len] = 0;
    }
    return s;
}

static gofer_node *new_node(gofer_tree *t, const char *name, size_t len)
{
    gofer_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    if ((n->name = copy_name(name, len)) == NULL ||
        pthread_rwlock_init(&n->lock, NULL) != 0) {
        free(n->name);
        free(n);
        return NULL;
    }
    n->tree = t;
    n->len = len;
    return n;
}

static void free_node(gofer_node *n)
{
    pthread_rwlock_destroy(&n->lock);
    free(n->buckets);
    free(n->name);
    free(n);
}

/* The functions below ending in _locked run under the tree's mutex. */

static gofer_node **bucket(gofer_node *parent, const char *name, size_t len)
{
    return &parent->buckets[hash(name, len) & (parent->nbuckets - 1)];
}

static gofer_node *find_locked(gofer_node *parent, const char *name, size_t len)
{
    if (parent->buckets == NULL)
        return NULL;
    for (gofer_node *c = *bucket(parent, name, len); c != NULL; c = c->next)
        if (c->len == len && memcmp(c->name, name, len) == 0)
            return c;
    return NULL;
}

/* Doubles parent's buckets once they hold as many children; keeps them if
 * there is no memory (the chains only grow longer). */
static int grow_locked(gofer_node *parent)
{
    size_t cap = parent->nbuckets ? parent->nbuckets * 2 : FIRST_BUCKETS;
    gofer_node **b = calloc(cap, sizeof(*b));
    if (b == NULL)
        return parent->buckets != NULL ? 0 : -ENOMEM;
    for (size_t i = 0; i < parent->nbuckets; i++) {
        gofer_node *c = parent->buckets[i], *next;
        for (; c != NULL; c = next) {
            next = c->next;
            size_t at = hash(c->name, c->len) & (cap - 1);
            c->next = b[at];
            b[at] = c;
        }
    }
    free(parent->buckets);
    parent->buckets = b;
    parent->nbuckets = cap;
    return 0;
}

/* Links n (out of the tree) under parent, which gains a reference. */
static int link_locked(gofer_node *parent, gofer_node *n)
{
    if (parent->nchildren >= parent->nbuckets && grow_locked(parent) < 0)
        return -ENOMEM;
    gofer_node **b = bucket(parent, n->name, n->len);
    n->next = *b;
    *b = n;
    n->parent = parent;
    parent->nchildren++;
    parent->refs++;
    return 0;
}

/* Takes n out of its parent's children; the parent keeps n's reference,
 * which the caller drops (decref_locked) once done. */
static gofer_node *unlink_locked(gofer_node *n)
{
    gofer_node *p = n->parent;
    if (p == NULL)
        return NULL;
    gofer_node **at = bucket(p, n->name, n->len);
    while (*at != n)
        at = &(*at)->next;
    *at = n->next;
    n->next = NULL;
    n->parent = NULL;
    p->nchildren--;
    return p;
}

/* Drops a reference of n and of each parent whose last one that was.
 * Returns 1 if the root went, so the tree must go too (after unlocking). */
static int decref_locked(gofer_node *n)
{
    while (n != NULL && --n->refs == 0) {
        gofer_node *p = unlink_locked(n);
        int root = n->tree->root == n;
        free_node(n);
        if (root)
            return 1;
        n = p;
    }
    return 0;
}

static void mark_deleted_locked(gofer_node *n)
{
    atomic_store_explicit(&n->deleted, 1, memory_order_release);
    for (size_t i = 0; i < n->nbuckets; i++)
        for (gofer_node *c = n->buckets[i]; c != NULL; c = c->next)
            mark_deleted_locked(c);
}

static void unlock_tree(gofer_tree *t, int free_tree)
{
    pthread_mutex_unlock(&t->mu);
    if (free_tree) {
        pthread_mutex_destroy(&t->mu);
        pthread_rwlock_destroy(&t->rename_lock);
        free(t);
    }
}

gofer_tree *gofer_tree_new(void)
{
    gofer_tree *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return NULL;
    }
    if (pthread_rwlock_init(&t->rename_lock, NULL) != 0 ||
        (t->root = new_node(t, "", 0)) == NULL) {
        pthread_rwlock_destroy(&t->rename_lock);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    t->root->refs = 1;
    return t;
}

gofer_node *gofer_node_child(gofer_node *parent, const char *name, size_t len)
{
    gofer_tree *t = parent->tree;
    pthread_mutex_lock(&t->mu);
    gofer_node *c = find_locked(parent, name, len);
    if (c == NULL && (c = new_node(t, name, len)) != NULL && link_locked(parent, c) < 0) {
        free_node(c);
        c = NULL;
    }
    if (c != NULL)
        c->refs++;
    pthread_mutex_unlock(&t->mu);
    return c;
}

gofer_node *gofer_node_find(gofer_node *parent, const char *name, size_t len)
{
    pthread_mutex_lock(&parent->tree->mu);
    gofer_node *c = find_locked(parent, name, len);
    if (c != NULL)
        c->refs++;
    pthread_mutex_unlock(&parent->tree->mu);
    return c;
}

void gofer_node_incref(gofer_node *n)
{
    pthread_mutex_lock(&n->tree->mu);
    n->refs++;
    pthread_mutex_unlock(&n->tree->mu);
}

void gofer_node_decref(gofer_node *n)
{
    gofer_tree *t = n->tree;
    pthread_mutex_lock(&t->mu);
    unlock_tree(t, decref_locked(n));
}

void gofer_node_delete(gofer_node *n)
{
    gofer_tree *t = n->tree;
    pthread_mutex_lock(&t->mu);
    gofer_node *p = unlink_locked(n);
    mark_deleted_locked(n);
    unlock_tree(t, decref_locked(p));
}

int gofer_node_rename(gofer_node *old_parent, const char *old_name, size_t old_len,
                      gofer_node *new_parent, const char *new_name, size_t new_len,
                      int exchange)
{
    gofer_tree *t = old_parent->tree;
    /* Both names first: past that, only a parent's first buckets can fail. */
    char *as_new = copy_name(new_name, new_len);
    char *as_old = copy_name(old_name, old_len);
    if (as_new == NULL || as_old == NULL) {
        free(as_new);
        free(as_old);
        return -ENOMEM;
    }
    int rc = 0, free_tree = 0;
    pthread_mutex_lock(&t->mu);
    gofer_node *replaced = find_locked(new_parent, new_name, new_len);
    gofer_node *renamed = find_locked(old_parent, old_name, old_len);
    if (replaced == renamed)
        replaced = renamed = NULL;                  /* renamed onto itself */
    /* Out of the tree first: the parents' references are dropped last, so
     * that nothing is freed midway. */
    gofer_node *from_new = replaced ? unlink_locked(replaced) : NULL;
    gofer_node *from_old = renamed ? unlink_locked(renamed) : NULL;
    if (replaced != NULL) {
        if (exchange) {
            free(replaced->name);
            replaced->name = as_old;
            replaced->len = old_len;
            as_old = NULL;
            rc = link_locked(old_parent, replaced);
        } else {
            mark_deleted_locked(replaced);
        }
    }
    if (renamed != NULL) {
        free(renamed->name);
        renamed->name = as_new;
        renamed->len = new_len;
        as_new = NULL;
        rc = link_locked(new_parent, renamed) < 0 ? -ENOMEM : rc;
    }
    free_tree |= decref_locked(from_new);
    free_tree |= decref_locked(from_old);
    unlock_tree(t, free_tree);
    free(as_new);
    free(as_old);
    return rc;
}

/* Appends n's path and a NUL to buf (*len used of *cap); 0 or -ENOMEM. */
static int append_path(gofer_node *n, char **buf, size_t *len, size_t *cap)
{
    size_t need = 1;
    for (gofer_node *a = n; a->parent != NULL; a = a->parent)
        need += 1 + a->len;
    if (need == 1)
        need = 2;                                   /* the root: "/" */
    if (*len + need > *cap) {
        size_t ncap = (*cap + need) * 2;
        char *b = realloc(*buf, ncap);
        if (b == NULL)
            return -ENOMEM;
        *buf = b;
        *cap = ncap;
    }
    char *end = *buf + *len + need - 1;
    *end = 0;
    char *at = end;
    for (gofer_node *a = n; a->parent != NULL; a = a->parent) {
        at -= a->len;
        memcpy(at, a->name, a->len);
        *--at = '/';
    }
    if (at == end)
        *--at = '/';
    *len += need;
    return 0;
}

static int append_subtree(gofer_node *n, char **buf, size_t *len, size_t *cap)
{
    if (append_path(n, buf, len, cap) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < n->nbuckets; i++)
        for (gofer_node *c = n->buckets[i]; c != NULL; c = c->next)
            if (append_subtree(c, buf, len, cap) < 0)
                return -ENOMEM;
    return 0;
}

char *gofer_tree_paths(gofer_tree *t, size_t *len)
{
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    pthread_mutex_lock(&t->mu);
    int rc = append_subtree(t->root, &buf, len, &cap);
    pthread_mutex_unlock(&t->mu);
    if (rc < 0) {
        free(buf);
        return NULL;
    }
    return buf != NULL ? buf : malloc(1);
}
