/* LD_PRELOAD shim for tests/test_no_stall.py: holds one chosen libc call
 * inside the gofer until the test lets it go, so the test can check that
 * the gofer answers other clients meanwhile (no host call under the GIL).
 *
 * The test arms a call by creating $GOFER_STALL_DIR/arm.<name>; the first
 * call of that name renames it to "stuck", waits until "release" exists
 * (at most 30 s), renames "stuck" to "held", then makes the real call.
 * Both names of a call that glibc exports twice (pread and pread64, ...)
 * arm as one. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#ifndef RTLD_NEXT
#define RTLD_NEXT ((void *)-1l)
#endif

extern int access(const char *, int);
extern int usleep(unsigned);

static void stall(const char *name)
{
    const char *dir = getenv("GOFER_STALL_DIR");
    char arm[512], stuck[512], release[512], held[512];
    if (dir == NULL)
        return;
    snprintf(arm, sizeof arm, "%s/arm.%s", dir, name);
    snprintf(stuck, sizeof stuck, "%s/stuck", dir);
    if (rename(arm, stuck) != 0)
        return;
    snprintf(release, sizeof release, "%s/release", dir);
    for (int i = 0; i < 3000 && access(release, 0) != 0; i++)
        usleep(10000);
    snprintf(held, sizeof held, "%s/held", dir);
    rename(stuck, held);
}

#define WRAP(ret, sym, label, params, args)                         \
    ret sym params                                                  \
    {                                                               \
        static ret(*real) params;                                   \
        if (real == NULL)                                           \
            real = (ret(*) params)dlsym(RTLD_NEXT, #sym);           \
        stall(label);                                               \
        return real args;                                           \
    }

WRAP(int, statx, "statx", (int d, const char *p, int f, unsigned m, void *b), (d, p, f, m, b))
WRAP(int, fsync, "fsync", (int fd), (fd))
WRAP(int, fallocate, "fallocate", (int fd, int m, off_t o, off_t n), (fd, m, o, n))
WRAP(int, fallocate64, "fallocate", (int fd, int m, off_t o, off_t n), (fd, m, o, n))
WRAP(int, ftruncate, "ftruncate", (int fd, off_t n), (fd, n))
WRAP(int, ftruncate64, "ftruncate", (int fd, off_t n), (fd, n))
WRAP(int, fchmodat, "fchmodat", (int d, const char *p, unsigned m, int f), (d, p, m, f))
WRAP(int, fchownat, "fchownat", (int d, const char *p, unsigned u, unsigned g, int f),
     (d, p, u, g, f))
WRAP(int, utimensat, "utimensat", (int d, const char *p, const void *t, int f), (d, p, t, f))
WRAP(ssize_t, pread, "pread", (int fd, void *b, size_t n, off_t o), (fd, b, n, o))
WRAP(ssize_t, pread64, "pread", (int fd, void *b, size_t n, off_t o), (fd, b, n, o))
WRAP(ssize_t, pwrite, "pwrite", (int fd, const void *b, size_t n, off_t o), (fd, b, n, o))
WRAP(ssize_t, pwrite64, "pwrite", (int fd, const void *b, size_t n, off_t o), (fd, b, n, o))
WRAP(ssize_t, getdents64, "getdents64", (int fd, void *b, size_t n), (fd, b, n))
WRAP(ssize_t, getxattr, "getxattr", (const char *p, const char *k, void *v, size_t n),
     (p, k, v, n))
WRAP(int, fstatfs, "fstatfs", (int fd, void *b), (fd, b))
WRAP(int, fstatfs64, "fstatfs", (int fd, void *b), (fd, b))
WRAP(ssize_t, readlinkat, "readlinkat", (int d, const char *p, char *b, size_t n), (d, p, b, n))
WRAP(int, mkdirat, "mkdirat", (int d, const char *p, unsigned m), (d, p, m))
WRAP(int, mknodat, "mknodat", (int d, const char *p, unsigned m, unsigned long v), (d, p, m, v))
WRAP(int, symlinkat, "symlinkat", (const char *t, int d, const char *p), (t, d, p))
WRAP(int, linkat, "linkat", (int a, const char *p, int b, const char *q, int f), (a, p, b, q, f))
WRAP(int, unlinkat, "unlinkat", (int d, const char *p, int f), (d, p, f))
WRAP(int, renameat2, "renameat2", (int a, const char *p, int b, const char *q, unsigned f),
     (a, p, b, q, f))

/* openat is variadic: the mode is there only with O_CREAT or O_TMPFILE. */
#define WRAP_OPENAT(sym)                                                  \
    int sym(int d, const char *p, int f, ...)                             \
    {                                                                     \
        static int (*real)(int, const char *, int, ...);                  \
        unsigned mode = 0;                                                \
        if (f & (0100 | 020000000)) {                                     \
            va_list ap;                                                   \
            va_start(ap, f);                                              \
            mode = va_arg(ap, unsigned);                                  \
            va_end(ap);                                                   \
        }                                                                 \
        if (real == NULL)                                                 \
            real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, #sym); \
        stall("openat");                                                  \
        return real(d, p, f, mode);                                       \
    }

WRAP_OPENAT(openat)
WRAP_OPENAT(openat64)
