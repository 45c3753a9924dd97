#include "hostcalls.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The kernel's struct statx begins with exactly LISAFS's Statx. */
_Static_assert(sizeof(struct statx) >= sizeof(struct lisafs_statx), "struct statx");

int gofer_host_fstat(int fd, struct lisafs_statx *out)
{
    struct statx stx;
    if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME,
              &stx) < 0)
        return -errno;
    memcpy(out, &stx, sizeof(*out));
    out->pad = 0;
    out->attributes = 0;
    out->attributes_mask = 0;
    return 0;
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
