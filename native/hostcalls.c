#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "hostcalls.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIRENT_BUF 8192 /* host records read per getdents64 */

/* The kernel's struct statx begins with exactly LISAFS's Statx. */
_Static_assert(sizeof(struct statx) >= sizeof(struct lisafs_statx), "struct statx");

static int stat_at(int dirfd, const char *name, int flags, struct lisafs_statx *out)
{
    struct statx stx;
    if (statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME,
              &stx) < 0)
        return -errno;
    memcpy(out, &stx, sizeof(*out));
    out->pad = 0;
    out->attributes = 0;
    out->attributes_mask = 0;
    return 0;
}

int gofer_host_fstat(int fd, struct lisafs_statx *out)
{
    return stat_at(fd, "", AT_EMPTY_PATH, out);
}

static int served_type(const struct lisafs_statx *st)
{
    switch (st->mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFSOCK: case S_IFIFO: case S_IFCHR:
        return 0;
    default:
        return -EPERM;
    }
}

int gofer_host_stat_child(int dirfd, const char *name, struct lisafs_statx *out)
{
    int rc = stat_at(dirfd, name, 0, out);
    return rc < 0 ? rc : served_type(out);
}

int gofer_host_control_stat(int fd, struct lisafs_statx *out)
{
    int rc = gofer_host_fstat(fd, out);
    return rc < 0 ? rc : served_type(out);
}

int gofer_host_walk(int dirfd, const char *name, struct lisafs_statx *out)
{
    int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = gofer_host_control_stat(fd, out);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Sets the owner of a file just made (UINT32_MAX: left as made). */
static int set_owner(int fd, uint32_t uid, uint32_t gid)
{
    if ((uid != UINT32_MAX || gid != UINT32_MAX) &&
        fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    return 0;
}

int gofer_host_mkdir(int dirfd, const char *name, uint32_t mode, uint32_t uid, uint32_t gid,
                     struct lisafs_statx *out)
{
    if (mkdirat(dirfd, name, mode & 07777) < 0)
        return -errno;
    int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = fd < 0 ? -errno : set_owner(fd, uid, gid);
    if (rc == 0)
        rc = gofer_host_control_stat(fd, out);
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        unlinkat(dirfd, name, AT_REMOVEDIR);
        return rc;
    }
    return fd;
}

int gofer_host_create(int dirfd, int fd_dir, const char *name, uint32_t mode, uint32_t uid,
                      uint32_t gid, int flags, struct lisafs_statx *out, int *open_fd)
{
    int fd = openat(dirfd, name, O_CREAT | O_EXCL | O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC,
                    mode & 07777);
    if (fd < 0)
        return -errno;
    int pfd = gofer_host_reopen(fd_dir, fd, O_PATH);
    int rc = pfd < 0 ? pfd : set_owner(pfd, uid, gid);
    if (rc == 0)
        rc = gofer_host_control_stat(pfd, out);
    if (rc == 0)
        rc = *open_fd = gofer_host_reopen(fd_dir, pfd, flags);
    close(fd);
    if (rc < 0) {
        if (pfd >= 0)
            close(pfd);
        unlinkat(dirfd, name, 0);
        return rc;
    }
    return pfd;
}

int gofer_host_unlink(int dirfd, const char *name, int flags)
{
    return unlinkat(dirfd, name, flags) < 0 ? -errno : 0;
}

int gofer_host_rename(int old_dir, const char *old_name, int new_dir, const char *new_name,
                      unsigned flags)
{
    return renameat2(old_dir, old_name, new_dir, new_name, flags) < 0 ? -errno : 0;
}

int gofer_host_reopen(int fd_dir, int fd, int flags)
{
    char name[16];
    snprintf(name, sizeof(name), "%d", fd);
    int nfd = openat(fd_dir, name, flags | O_CLOEXEC);
    return nfd < 0 ? -errno : nfd;
}

ssize_t gofer_host_pio(int fd, char *buf, size_t count, int64_t offset, int writing)
{
    ssize_t n;
    do
        n = writing ? pwrite(fd, buf, count, offset) : pread(fd, buf, count, offset);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int gofer_host_fsync(int fd)
{
    int rc;
    do
        rc = fsync(fd);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

/* The kernel's linux_dirent64. */
struct host_dirent {
    uint64_t d_ino;
    int64_t d_off;
    uint16_t d_reclen;
    uint8_t d_type;
    char d_name[];
};

int gofer_host_getdents64(int fd, int32_t count, int seek0, char *out, size_t cap,
                          size_t *outlen)
{
    char buf[DIRENT_BUF] __attribute__((aligned(8)));
    int32_t consumed = 0;
    uint16_t nents = 0;
    size_t len = 2;
    if (cap < 2)
        return -EIO;
    if (seek0 && lseek(fd, 0, SEEK_SET) < 0)
        return -errno;
    while (consumed < count && nents < 0xffff) {
        size_t want = (size_t)(count - consumed) < DIRENT_BUF ? (size_t)(count - consumed)
                                                               : DIRENT_BUF;
        ssize_t n = getdents64(fd, buf, want);
        if (n < 0) {
            if (errno == EINVAL && nents > 0)
                break; /* the buffer is too small for the next entry */
            return -errno;
        }
        if (n == 0)
            break;
        for (ssize_t pos = 0; pos < n;) {
            const struct host_dirent *d = (const struct host_dirent *)(buf + pos);
            pos += d->d_reclen;
            size_t namelen = strlen(d->d_name);
            if (d->d_name[0] == '.' && (namelen == 1 || (namelen == 2 && d->d_name[1] == '.')))
                continue;
            struct statx stx;
            if (statx(fd, d->d_name, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, 0, &stx) < 0)
                continue;
            consumed += d->d_reclen;
            if (cap - len < 27 + namelen)
                return -EIO;
            char *p = out + len;
            lisafs_st64(p, d->d_ino);
            lisafs_st32(p + 8, stx.stx_dev_minor);
            lisafs_st32(p + 12, stx.stx_dev_major);
            lisafs_st64(p + 16, (uint64_t)d->d_off);
            p[24] = (char)d->d_type;
            lisafs_st16(p + 25, (uint16_t)namelen);
            memcpy(p + 27, d->d_name, namelen);
            len += 27 + namelen;
            nents++;
        }
    }
    lisafs_st16(out, nents);
    *outlen = len;
    return 0;
}
