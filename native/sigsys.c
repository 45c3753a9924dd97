/* SIGSYS handler for the seccomp log mode; see sigsys.h.
 *
 * With SECCOMP_RET_TRAP the kernel does not run the syscall and sends the
 * calling thread a SIGSYS whose siginfo carries the syscall number
 * (si_syscall) and si_code SYS_SECCOMP. We write one line to fd 2 and store
 * -ENOSYS in the register that holds the syscall's return value in the saved
 * context; rt_sigreturn then restores it, so the libc wrapper sees the
 * syscall fail with ENOSYS. Everything here is async-signal-safe: no stdio,
 * no malloc, no locks; only write(2) and getpid(2), both on the allowlist. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "sigsys.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

#define NAME_SLOTS 1024
#define NAME_LEN 32

static char names[NAME_SLOTS][NAME_LEN];
static atomic_ulong trapped;

int gofer_sigsys_set_name(int nr, const char *name)
{
    size_t n = strlen(name);
    if (nr < 0 || nr >= NAME_SLOTS || n >= NAME_LEN)
        return -EINVAL;
    memcpy(names[nr], name, n + 1);
    return 0;
}

unsigned long gofer_sigsys_count(void)
{
    return atomic_load(&trapped);
}

/* Appends the decimal form of v at p; returns the new end. */
static char *put_uint(char *p, unsigned long v)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        *p++ = tmp[--i];
    return p;
}

static char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

static void handler(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    if (si == NULL || si->si_code != SYS_SECCOMP)
        return;                      /* a SIGSYS somebody sent: ignore it */
    int saved = errno;
    int nr = si->si_syscall;
    char line[160];
    char *p = line;
    p = put_str(p, "gofer: seccomp: syscall ");
    if (nr < 0) {
        *p++ = '-';
        p = put_uint(p, (unsigned long)-(long)nr);
    } else {
        p = put_uint(p, (unsigned long)nr);
    }
    p = put_str(p, " not allowed (pid ");
    p = put_uint(p, (unsigned long)syscall(SYS_getpid));
    *p++ = ')';
    if (nr >= 0 && nr < NAME_SLOTS && names[nr][0]) {
        p = put_str(p, ": ");
        p = put_str(p, names[nr]);
    }
    *p++ = '\n';
    /* One write per line, so lines from several threads do not interleave;
     * a short or failed write only loses the log line. */
    ssize_t rc = write(2, line, (size_t)(p - line));
    (void)rc;
    atomic_fetch_add(&trapped, 1);

    ucontext_t *uc = ctx;
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
#elif defined(__aarch64__)
    uc->uc_mcontext.regs[0] = (unsigned long long)(long long)-ENOSYS;
#endif
    errno = saved;
}

int gofer_sigsys_install(void)
{
#if !defined(__x86_64__) && !defined(__aarch64__)
    return -ENOSYS;              /* no known return-value register */
#endif
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGSYS, &sa, NULL) < 0 ? -errno : 0;
}
