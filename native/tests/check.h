/* The harness of test_fdtable.c and test_nodes.c: a test is a function
 * returning 1, or 0 at its first failed CHECK; check_main runs a list of
 * them and prints "<suite>: N passed, M failed". */
#ifndef GOFER_TESTS_CHECK_H
#define GOFER_TESTS_CHECK_H

#include <stddef.h>
#include <stdio.h>

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
            return 0;                                                           \
        }                                                                       \
    } while (0)

struct check_case {
    const char *name;
    int (*fn)(void);
};

#define CASE(fn) {#fn, fn}

/* The process's exit status: 0 when every case passed. */
static inline int check_main(const char *suite, const struct check_case *cases, size_t n)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (cases[i].fn()) {
            passed++;
        } else {
            fprintf(stderr, "FAIL %s\n", cases[i].name);
            failed++;
        }
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed != 0;
}

#endif
