/* hostcalls: the host calls behind the stock backend's FStat, PRead, PWrite,
 * FSync, Getdents64, MkdirAt, OpenCreateAt, UnlinkAt, RenameAt, OpenAt's
 * reopen and each step of a walk, shared by the backend (fsgofer/_host.pyx)
 * and the GIL-free fast path (fastpath.h), so both answer alike. None takes
 * the GIL; each returns its result or a negative errno (pread, pwrite and
 * fsync retry EINTR). */
#ifndef GOFER_HOSTCALLS_H
#define GOFER_HOSTCALLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lisafs_wire.h"

/* statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) as LISAFS's Statx: the
 * basic stats and btime, without the attribute words (gVisor's fsgofer sends
 * neither). */
int gofer_host_fstat(int fd, struct lisafs_statx *out);
/* gofer_host_fstat of a file the stock backend is to serve: -EPERM for a
 * type it does not (a block device, anything but a regular file, directory,
 * symlink, socket, FIFO or character device). */
int gofer_host_control_stat(int fd, struct lisafs_statx *out);
/* One step of a walk: an O_PATH FD of `name` (one component, not followed)
 * in the directory dirfd, with gofer_host_control_stat's stats in *out; or
 * -ENOENT if there is none, or another negative errno. */
int gofer_host_walk(int dirfd, const char *name, struct lisafs_statx *out);
/* The stats gofer_host_walk would give, without opening: for a walk's last
 * step, which needs no FD. */
int gofer_host_stat_child(int dirfd, const char *name, struct lisafs_statx *out);
/* MkdirAt: the directory `name` made in dirfd with `mode`'s permission
 * bits (less the umask) and owned by uid:gid (UINT32_MAX: left as made),
 * then an O_PATH FD of it, with gofer_host_control_stat's stats in *out;
 * undone (removed again) if any step fails. */
int gofer_host_mkdir(int dirfd, const char *name, uint32_t mode, uint32_t uid, uint32_t gid,
                     struct lisafs_statx *out);
/* OpenCreateAt: the regular file `name` made in dirfd (O_EXCL, not
 * following a symlink) with `mode`'s permission bits (less the umask), an
 * O_PATH FD of it reopened through fd_dir, owned by uid:gid as MkdirAt's,
 * with its stats in *out; and in *open_fd a reopen of it with `flags`.
 * Returns the O_PATH FD; undone (removed again) if any step fails. */
int gofer_host_create(int dirfd, int fd_dir, const char *name, uint32_t mode, uint32_t uid,
                      uint32_t gid, int flags, struct lisafs_statx *out, int *open_fd);
/* UnlinkAt: unlinkat(2). 0 or a negative errno, as the two below. */
int gofer_host_unlink(int dirfd, const char *name, int flags);
/* RenameAt and RenameAt2: renameat2(2). */
int gofer_host_rename(int old_dir, const char *old_name, int new_dir, const char *new_name,
                      unsigned flags);
/* A new open file description of the file open at fd, with `flags`
 * (O_CLOEXEC added), through `fd_dir`, a directory of this process's FDs
 * (/proc/self/fd): no path lookup, so nothing can be swapped in between. */
int gofer_host_reopen(int fd_dir, int fd, int flags);
/* pread, or pwrite when writing != 0. */
ssize_t gofer_host_pio(int fd, char *buf, size_t count, int64_t offset, int writing);
int gofer_host_fsync(int fd);
/* Getdents64's response payload (u16 count, then Dirents) for the open
 * directory fd, into out[0, cap) with its length in *outlen: the entries of
 * up to `count` bytes of the host's records, from the start if seek0. As
 * gVisor's fsgofer: never "." or ".." (".." would tell the client of the
 * directory above the mount), nor an entry whose statx fails (for its
 * device); neither counts against `count`. -EIO if the response would not
 * fit, as a handler's full Writer. */
int gofer_host_getdents64(int fd, int32_t count, int seek0, char *out, size_t cap,
                          size_t *outlen);

#endif /* GOFER_HOSTCALLS_H */
