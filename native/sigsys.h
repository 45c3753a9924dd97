/* SIGSYS handler for `gofer serve --seccomp-log`: the seccomp filter traps
 * (SECCOMP_RET_TRAP) instead of killing, and this handler logs the syscall
 * and makes it fail with ENOSYS, so the gofer keeps going. */
#ifndef GOFER_SIGSYS_H
#define GOFER_SIGSYS_H

/* Names for the log line, by syscall number (optional; numbers outside the
 * table or without a name are logged as a number only). Call before
 * gofer_sigsys_install: the handler reads the table without locking.
 * Returns 0, or -EINVAL for a number or name out of range. */
int gofer_sigsys_set_name(int nr, const char *name);

/* Installs the handler with sigaction(SA_SIGINFO). 0 or -errno. */
int gofer_sigsys_install(void);

/* How many syscalls the handler has turned into ENOSYS so far. */
unsigned long gofer_sigsys_count(void);

#endif
