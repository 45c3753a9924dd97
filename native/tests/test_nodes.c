/* Tests for native/nodes.c: prints "N passed, M failed".
 *
 * Children are made, found and freed with their references; a delete marks
 * a whole subtree; renames move, replace and swap; and threads make and
 * drop the same children at once, as connections walk and close. Run under
 * AddressSanitizer where the compiler has it, which catches a node freed
 * while referenced or never freed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "check.h"
#include "nodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define CHILD(p, s) gofer_node_child((p), (s), strlen(s))
#define FIND(p, s) gofer_node_find((p), (s), strlen(s))

/* Whether `want` is among the tree's paths (gofer_tree_paths: NUL-separated,
 * in no set order); `count` gets how many there are. */
static int has_path(gofer_tree *t, const char *want, int *count)
{
    size_t len;
    char *buf = gofer_tree_paths(t, &len);
    int found = 0;
    *count = 0;
    for (size_t at = 0; buf != NULL && at < len; at += strlen(buf + at) + 1) {
        (*count)++;
        found |= strcmp(buf + at, want) == 0;
    }
    free(buf);
    return found;
}

static int test_children(void)
{
    gofer_tree *t = gofer_tree_new();
    int count;
    CHECK(t != NULL);
    gofer_node *a = CHILD(t->root, "a");
    gofer_node *b = CHILD(a, "b");
    CHECK(a != NULL && b != NULL && b->parent == a && strcmp(b->name, "b") == 0);
    CHECK(CHILD(t->root, "a") == a && a->refs == 3);    /* 2 FDs and b */
    gofer_node_decref(a);
    CHECK(FIND(a, "b") == b && b->refs == 2);
    gofer_node_decref(b);
    CHECK(FIND(a, "c") == NULL);
    CHECK(has_path(t, "/a/b", &count) && count == 3 && has_path(t, "/", &count));
    /* Many children: the buckets grow and every one is found again. */
    gofer_node *many[1000];
    char name[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        CHECK((many[i] = CHILD(a, name)) != NULL);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        CHECK(FIND(a, name) == many[i]);
        gofer_node_decref(many[i]);
        gofer_node_decref(many[i]);
    }
    CHECK(a->nchildren == 1 && FIND(a, "f1") == NULL);
    gofer_node_decref(b);                   /* b goes; a keeps its FD's */
    CHECK(FIND(a, "b") == NULL && a->refs == 1);
    gofer_node_decref(a);
    CHECK(FIND(t->root, "a") == NULL && t->root->refs == 1);
    gofer_node_decref(t->root);             /* the tree goes with it */
    return 1;
}

static int test_delete(void)
{
    gofer_tree *t = gofer_tree_new();
    CHECK(t != NULL);
    gofer_node *d = CHILD(t->root, "d");
    gofer_node *f = CHILD(d, "f");
    gofer_node_delete(d);
    CHECK(gofer_node_deleted(d) && gofer_node_deleted(f) && !gofer_node_deleted(t->root));
    CHECK(FIND(t->root, "d") == NULL && d->parent == NULL && f->parent == d);
    gofer_node *again = CHILD(t->root, "d");
    CHECK(again != d && !gofer_node_deleted(again));
    gofer_node_decref(again);
    gofer_node_decref(d);                   /* f still holds d */
    CHECK(f->parent == d && d->refs == 1);
    gofer_node_decref(f);
    CHECK(t->root->refs == 1);
    gofer_node_decref(t->root);
    return 1;
}

static int test_rename(void)
{
    gofer_tree *t = gofer_tree_new();
    int count;
    CHECK(t != NULL);
    gofer_node *x = CHILD(t->root, "x"), *y = CHILD(t->root, "y");
    gofer_node *a = CHILD(x, "a"), *b = CHILD(y, "b"), *below = CHILD(b, "c");
    /* x/a over y/b: b is deleted with what is below it. */
    CHECK(gofer_node_rename(x, "a", 1, y, "b", 1, 0) == 0);
    CHECK(FIND(y, "b") == a && strcmp(a->name, "b") == 0 && a->parent == y);
    gofer_node_decref(a);
    CHECK(gofer_node_deleted(b) && gofer_node_deleted(below) && !gofer_node_deleted(a));
    CHECK(FIND(x, "a") == NULL && x->refs == 1 && y->refs == 2);
    /* Swap y/b (a) with x/z, which has no node: a moves, nothing comes back. */
    CHECK(gofer_node_rename(y, "b", 1, x, "zz", 2, 1) == 0);
    CHECK(a->parent == x && strcmp(a->name, "zz") == 0 && a->len == 2);
    gofer_node *w = CHILD(y, "w");
    CHECK(gofer_node_rename(x, "zz", 2, y, "w", 1, 1) == 0);
    CHECK(a->parent == y && w->parent == x && strcmp(w->name, "zz") == 0);
    CHECK(!gofer_node_deleted(w) && !gofer_node_deleted(a));
    CHECK(gofer_node_rename(y, "w", 1, y, "w", 1, 0) == 0 && a->parent == y);
    CHECK(has_path(t, "/x/zz", &count) && has_path(t, "/y/w", &count) && count == 5);
    gofer_node_decref(below);
    gofer_node_decref(b);
    gofer_node_decref(w);
    gofer_node_decref(a);
    gofer_node_decref(x);
    gofer_node_decref(y);
    CHECK(t->root->refs == 1 && t->root->nchildren == 0);
    gofer_node_decref(t->root);
    return 1;
}

/* Threads make and drop the same few children while others delete them,
 * as connections walk, close and unlink: the counts come back to the root's. */
enum { THREADS = 4, ROUNDS = 20000 };
static gofer_tree *shared;

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    char name[2] = {0, 0};
    for (int i = 0; i < ROUNDS; i++) {
        name[0] = (char)('a' + rand_r(&seed) % 4);
        gofer_node *d = gofer_node_child(shared->root, name, 1);
        gofer_node *f = gofer_node_child(d, "f", 1);
        if (rand_r(&seed) % 8 == 0)
            gofer_node_delete(f);
        gofer_node_decref(f);
        gofer_node_decref(d);
    }
    return NULL;
}

static int test_threads(void)
{
    pthread_t th[THREADS];
    CHECK((shared = gofer_tree_new()) != NULL);
    for (size_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, churn, (void *)(i + 1)) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK(shared->root->refs == 1 && shared->root->nchildren == 0);
    gofer_node_decref(shared->root);
    return 1;
}

int main(void)
{
    static const struct check_case cases[] = {
        CASE(test_children), CASE(test_delete), CASE(test_rename), CASE(test_threads),
    };
    return check_main("nodes", cases, sizeof(cases) / sizeof(cases[0]));
}
