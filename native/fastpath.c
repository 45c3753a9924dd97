#include "fastpath.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostcalls.h"
#include "lisafs_wire.h"
#include "nodes.h"

enum { WALK_SUCCESS = 0, WALK_COMPONENT_DOES_NOT_EXIST = 1, WALK_COMPONENT_SYMLINK = 2 };

enum {
    MID_FSTAT = 3,
    MID_WALK = 5,
    MID_WALK_STAT = 6,
    MID_OPEN_AT = 7,
    MID_OPEN_CREATE_AT = 8,
    MID_CLOSE = 9,
    MID_FSYNC = 10,
    MID_PWRITE = 11,
    MID_PREAD = 12,
    MID_MKDIR_AT = 13,
    MID_UNLINK_AT = 22,
    MID_RENAME_AT = 23,
    MID_GETDENTS64 = 24,
    MID_RENAME_AT2 = 33,
};

enum { RENAME_EXCHANGE_FLAG = 2 };

gofer_fd *gofer_fast_free_unowned(gofer_fd *f)
{
    gofer_fd *from = f->control;
    close(f->host_fd);
    if (f->kind == GOFER_FD_CONTROL)
        gofer_node_decref(f->node);
    free(f);
    return from;
}

/* Drops a use of f; the last releases it: here, for an FD no FD object
 * owns yet (and so on up to what it was made from); otherwise with the GIL,
 * now, or, if `defer`, by the next thread that has it. */
static void drop(const gofer_fast *c, gofer_fd *f, int defer)
{
    while (f != NULL && gofer_fd_unuse(f)) {
        if (f->owner != NULL) {
            if (defer)
                gofer_fdtable_defer(c->fds, f);
            else
                c->release(f);
            return;
        }
        f = gofer_fast_free_unowned(f);
    }
}

static void unuse(const gofer_fast *c, gofer_fd *f)
{
    drop(c, f, 0);
}

/* Close of one FDID: out of the table, and out of the adoption queue if it
 * still waits there: then it needs no GIL, and its host FD is closed here,
 * before the answer, as gVisor's gofer does. (Left to the adoption, an open
 * file's FD outlived the Close: a following UnlinkAt then left the host an
 * open, unlinked file to reap later, 5x slower on ext4.) */
static void close_fd(const gofer_fast *c, uint64_t id)
{
    gofer_fd *f = gofer_fdtable_remove(c->fds, id);
    if (f == NULL)
        return;
    if (gofer_fdtable_unqueue_adoption(c->fds, f))
        drop(c, f, 1);          /* the queue's use: not the last, the table's is ours */
    drop(c, f, 1);
}

/* The FD `id` with a use taken if the fast path may serve it: a host FD,
 * and of kind `kind` (0: control or open). */
static gofer_fd *use(const gofer_fast *c, uint64_t id, int kind)
{
    gofer_fd *f = gofer_fdtable_use(c->fds, id);
    if (f == NULL)
        return NULL;
    if (f->host_fd < 0 || f->kind == GOFER_FD_BOUND || (kind && f->kind != kind)) {
        unuse(c, f);
        return NULL;
    }
    return f;
}

static void lock(const gofer_fast *c, gofer_fd *f, int exclusive)
{
    pthread_rwlock_rdlock(c->rename_lock);
    if (exclusive)
        pthread_rwlock_wrlock(&f->node->lock);
    else
        pthread_rwlock_rdlock(&f->node->lock);
}

static void unlock(const gofer_fast *c, gofer_fd *f)
{
    pthread_rwlock_unlock(&f->node->lock);
    pthread_rwlock_unlock(c->rename_lock);
}

static int answer_errno(char *out, size_t *outlen, int err)
{
    lisafs_st32(out, (uint32_t)err);
    *outlen = 4;
    return 0;
}

static int fstat_fd(const gofer_fast *c, const char *req, size_t n, char *out, size_t *outlen)
{
    if (n < 8)
        return GOFER_FAST_DECLINED;
    gofer_fd *f = use(c, lisafs_ld64(req), 0);
    if (f == NULL)
        return GOFER_FAST_DECLINED;
    struct lisafs_statx st;
    lock(c, f, 0);
    int rc = gofer_host_fstat(f->host_fd, &st);
    unlock(c, f);
    unuse(c, f);
    if (rc < 0)
        return answer_errno(out, outlen, -rc);
    memcpy(out, &st, sizeof(st));
    *outlen = sizeof(st);
    return MID_FSTAT;
}

/* PRead and PWrite: offset u64, FDID u64, count u32, then the data or padding. */
static int pio(const gofer_fast *c, int writing, const char *req, size_t n, char *out,
               size_t cap, size_t *outlen)
{
    if (n < 20)
        return GOFER_FAST_DECLINED;
    int64_t offset = (int64_t)lisafs_ld64(req);
    uint64_t id = lisafs_ld64(req + 8);
    uint32_t count = lisafs_ld32(req + 16);
    if (offset < 0)
        return GOFER_FAST_DECLINED;
    if (writing ? n - 20 < count : 8 + (uint64_t)count > c->max_msg || 8 + (size_t)count > cap)
        return GOFER_FAST_DECLINED;
    gofer_fd *f = use(c, id, GOFER_FD_OPEN);
    if (f == NULL)
        return GOFER_FAST_DECLINED;
    if (!(writing ? f->writable : f->readable)) {
        unuse(c, f);
        return GOFER_FAST_DECLINED;
    }
    lock(c, f, writing);
    ssize_t got = gofer_host_pio(f->host_fd, writing ? (char *)req + 20 : out + 8, count,
                                 offset, writing);
    unlock(c, f);
    unuse(c, f);
    if (got < 0)
        return answer_errno(out, outlen, (int)-got);
    lisafs_st64(out, (uint64_t)got);
    *outlen = writing ? 8 : 8 + (size_t)got;
    return writing ? MID_PWRITE : MID_PREAD;
}

/* FSync: a u16 count of FDIDs; served here only if every one is. */
static int fsync_all(const gofer_fast *c, const char *req, size_t n, char *out, size_t *outlen)
{
    if (n < 2)
        return GOFER_FAST_DECLINED;
    uint16_t count = lisafs_ld16(req);
    if (n - 2 < 8 * (size_t)count)
        return GOFER_FAST_DECLINED;
    for (uint16_t i = 0; i < count; i++) {
        gofer_fd *f = use(c, lisafs_ld64(req + 2 + 8 * (size_t)i), GOFER_FD_OPEN);
        if (f == NULL)
            return GOFER_FAST_DECLINED;
        unuse(c, f);
    }
    int first = 0;
    for (uint16_t i = 0; i < count; i++) {
        /* Closed since the check: what the GIL path answers then. */
        gofer_fd *f = use(c, lisafs_ld64(req + 2 + 8 * (size_t)i), GOFER_FD_OPEN);
        int rc = -EBADF;
        if (f != NULL) {
            lock(c, f, 0);
            rc = gofer_host_fsync(f->host_fd);
            unlock(c, f);
            unuse(c, f);
        }
        if (rc < 0 && first == 0)
            first = -rc;
    }
    if (first)
        return answer_errno(out, outlen, first);
    *outlen = 0;
    return MID_FSYNC;
}

/* A name the walk may take: one component, as the handlers' check_safe_name,
 * and short enough for a host name (a longer one is the GIL path's). */
static int walkable(const char *p, uint16_t n)
{
    if (n == 0 || n > 255 || memchr(p, '/', n) != NULL || memchr(p, 0, n) != NULL)
        return 0;
    return !(p[0] == '.' && (n == 1 || (n == 2 && p[1] == '.')));
}

/* Whether the StringArray of `count` names at req + 10 lies within the n
 * bytes and every name is walkable(); with self_first the first may be ""
 * (WalkStat's "the start itself"). */
static int walkable_names(const char *req, size_t n, uint16_t count, int self_first)
{
    size_t pos = 10;
    for (uint16_t i = 0; i < count; i++) {
        if (n - pos < 2)
            return 0;
        uint16_t len = lisafs_ld16(req + pos);
        if (n - pos - 2 < len ||
            !((self_first && i == 0 && len == 0) || walkable(req + pos + 2, len)))
            return 0;
        pos += 2 + (size_t)len;
    }
    return 1;
}

/* The control FD's entry for hfd, the host FD of dir's child `name` (a
 * walk's step, a MkdirAt): the child's node is made, and the entry added
 * to the table and queued for adoption, with a use for the caller. NULL
 * with the errno in *rc if that fails, hfd closed. Called with dir's node
 * lock held, as the handlers make a child's node. */
static gofer_fd *new_child(const gofer_fast *c, gofer_fd *dir, const char *name, uint16_t len,
                           int hfd, uint16_t ftype, int *rc)
{
    gofer_node *node = gofer_node_child(dir->node, name, len);
    gofer_fd *e = node == NULL ? NULL : calloc(1, sizeof(*e));
    if (e == NULL) {
        if (node != NULL)
            gofer_node_decref(node);
        close(hfd);
        *rc = -ENOMEM;
        return NULL;
    }
    e->host_fd = hfd;
    e->kind = GOFER_FD_CONTROL;
    e->ftype = ftype;
    e->is_dir = ftype == S_IFDIR;
    e->node = node;
    e->reopen_dir = ftype == S_IFREG || ftype == S_IFDIR ? dir->host_tree : NULL;
    e->host_tree = ftype == S_IFDIR ? dir->host_tree : NULL;
    e->control = dir;
    atomic_fetch_add(&dir->users, 1);               /* e's, until adopted */
    atomic_store(&e->users, 2);                     /* the queue's and the caller's */
    *rc = gofer_fdtable_add(c->fds, e, c->max_fds);
    if (*rc < 0) {
        close(hfd);
        gofer_node_decref(node);
        atomic_fetch_sub(&dir->users, 1);           /* not its last: the caller has one */
        free(e);
        return NULL;
    }
    gofer_fdtable_queue_adoption(c->fds, e);
    return e;
}

/* Closes each FD the walk made again (an error answers the whole Walk):
 * their ids are in the response so far. */
static void unmake(const gofer_fast *c, const char *inodes, uint16_t n)
{
    for (uint16_t i = 0; i < n; i++)
        close_fd(c, lisafs_ld64(inodes + i * sizeof(struct lisafs_inode)));
}

/* Walk: directory FDID u64, then a StringArray of names. Served from a
 * directory whose backend lets the core walk the host below it
 * (gofer_fd.host_tree): each step opens the name as the stock backend's
 * c_walk does, under its parent's node lock, and makes the child's node
 * and control FD entry, which waits for adoption as OpenAt's do. The
 * answer is the GIL path's: a status, then an Inode per name walked. */
static int walk(const gofer_fast *c, const char *req, size_t n, char *out, size_t cap,
                size_t *outlen)
{
    if (n < 10)
        return GOFER_FAST_DECLINED;
    uint16_t count = lisafs_ld16(req + 8);
    size_t need = 3 + (size_t)count * sizeof(struct lisafs_inode);
    if (need > c->max_msg || need > cap ||
        gofer_fdtable_nadoptions(c->fds) + count > GOFER_FAST_MAX_QUEUED)
        return GOFER_FAST_DECLINED;                 /* EIO; or adopt first */
    if (!walkable_names(req, n, count, 0))
        return GOFER_FAST_DECLINED;                 /* EINVAL */
    gofer_fd *f = use(c, lisafs_ld64(req), GOFER_FD_CONTROL);
    if (f == NULL)
        return GOFER_FAST_DECLINED;
    if (f->host_tree == NULL) {
        unuse(c, f);
        return GOFER_FAST_DECLINED;                 /* ENOTDIR, another backend */
    }
    /* cur: the directory walked from, with a use of this request's. */
    gofer_fd *cur = f;
    uint16_t ftype = S_IFDIR, walked = 0;
    uint8_t status = WALK_SUCCESS;
    int rc = 0;
    pthread_rwlock_rdlock(c->rename_lock);
    size_t pos = 10;
    for (uint16_t i = 0; i < count; i++) {
        uint16_t l = lisafs_ld16(req + pos);
        const char *name = req + pos + 2;
        pos += 2 + (size_t)l;
        if (ftype == S_IFLNK) {
            status = WALK_COMPONENT_SYMLINK;
            break;
        }
        char cname[256];
        memcpy(cname, name, l);
        cname[l] = 0;
        struct lisafs_statx st;
        gofer_fd *e = NULL;
        pthread_rwlock_rdlock(&cur->node->lock);
        int hfd = gofer_node_deleted(cur->node) ? -ENOENT
                                                : gofer_host_walk(cur->host_fd, cname, &st);
        if (hfd >= 0)
            e = new_child(c, cur, name, l, hfd, st.mode & S_IFMT, &rc);
        pthread_rwlock_unlock(&cur->node->lock);
        if (hfd == -ENOENT) {
            status = WALK_COMPONENT_DOES_NOT_EXIST;
            break;
        }
        if (hfd < 0)
            rc = hfd;
        if (e == NULL)
            break;
        ftype = e->ftype;
        char *inode = out + 3 + (size_t)walked * sizeof(struct lisafs_inode);
        lisafs_st64(inode, e->id);
        memcpy(inode + 8, &st, sizeof(st));
        walked++;
        if (cur != f)
            unuse(c, cur);
        cur = e;
    }
    pthread_rwlock_unlock(c->rename_lock);
    if (cur != f)
        unuse(c, cur);
    unuse(c, f);
    if (rc < 0) {
        unmake(c, out + 3, walked);
        return answer_errno(out, outlen, -rc);
    }
    out[0] = (char)status;
    lisafs_st16(out + 1, walked);
    *outlen = 3 + (size_t)walked * sizeof(struct lisafs_inode);
    return MID_WALK;
}

/* WalkStat: directory FDID u64, then a StringArray (u16 count, SizedStrings);
 * a path of [""] asks for the stat of the FD itself. The stats of the
 * start ("" first) and of each component walked, up to one that does not
 * exist, a symlink or a non-directory's child. As gVisor's handler for a
 * backend that walks the host itself (WalkStatSupported), and unlike ours,
 * which locks each node it passes, the start's node lock is held
 * throughout: the walk below it is the host's, which creates no node and
 * no FD. */
static int walk_stat(const gofer_fast *c, const char *req, size_t n, char *out, size_t cap,
                     size_t *outlen)
{
    if (n < 10)
        return GOFER_FAST_DECLINED;
    uint16_t count = lisafs_ld16(req + 8);
    size_t need = 2 + (size_t)count * sizeof(struct lisafs_statx);
    if (need > c->max_msg || need > cap)
        return GOFER_FAST_DECLINED;
    if (!walkable_names(req, n, count, 1))
        return GOFER_FAST_DECLINED;
    int self_first = count > 0 && lisafs_ld16(req + 10) == 0;
    gofer_fd *f = use(c, lisafs_ld64(req), GOFER_FD_CONTROL);
    if (f == NULL)
        return GOFER_FAST_DECLINED;
    if (!f->is_dir && !(count == 1 && self_first)) {
        unuse(c, f);
        return GOFER_FAST_DECLINED;                 /* ENOTDIR, from the GIL path */
    }
    lock(c, f, 0);
    int deleted = gofer_node_deleted(f->node);
    int cur = f->host_fd, owned = -1, is_dir = f->is_dir, rc = 0;
    size_t len = 2;
    uint16_t nstats = 0;
    size_t pos = 10;
    for (uint16_t i = 0; i < count; i++) {
        uint16_t l = lisafs_ld16(req + pos);
        const char *name = req + pos + 2;
        pos += 2 + (size_t)l;
        struct lisafs_statx st;
        if (i == 0 && l == 0) {
            rc = gofer_host_fstat(cur, &st);
        } else {
            /* Below the start nothing is deleted: a removed node leaves the tree. */
            if (!is_dir || (owned < 0 && deleted))
                break;
            char cname[256];
            memcpy(cname, name, l);
            cname[l] = 0;
            /* The last step needs the stats only, no FD to walk on from. */
            int got = i + 1 == count ? gofer_host_stat_child(cur, cname, &st)
                                     : gofer_host_walk(cur, cname, &st);
            if (got == -ENOENT)
                break;
            if (got < 0) {
                rc = got;
                break;
            }
            if (i + 1 < count) {
                if (owned >= 0)
                    close(owned);
                owned = cur = got;
                is_dir = S_ISDIR(st.mode);
            }
        }
        if (rc < 0)
            break;
        memcpy(out + len, &st, sizeof(st));
        len += sizeof(st);
        nstats++;
        if (S_ISLNK(st.mode) && !(i == 0 && l == 0))
            break;
    }
    if (owned >= 0)
        close(owned);
    unlock(c, f);
    unuse(c, f);
    if (rc < 0)
        return answer_errno(out, outlen, -rc);
    lisafs_st16(out, nstats);
    *outlen = len;
    return MID_WALK_STAT;
}

/* The open FD's entry for fd, opened from control FD f with access mode
 * `acc` (OpenAt, OpenCreateAt), added to the table and queued for
 * adoption; it keeps a use of f until adopted. A regular file's FD is
 * donated (*donated), as the core prepares every donated FD: non-blocking
 * (the open file description is the client's too; not at the open, which
 * must wait for a lease break as gVisor's does) and close-on-exec; none if
 * the dup fails, as on the GIL path. NULL with the errno in *rc if that
 * fails, fd closed. */
static gofer_fd *new_open(const gofer_fast *c, gofer_fd *f, int fd, uint32_t acc, int *donated,
                          int *rc)
{
    gofer_fd *o = calloc(1, sizeof(*o));
    *rc = o == NULL ? -ENOMEM : 0;
    if (o != NULL) {
        o->host_fd = fd;
        o->kind = GOFER_FD_OPEN;
        o->readable = acc == O_RDONLY || acc == O_RDWR;
        o->writable = acc == O_WRONLY || acc == O_RDWR;
        o->is_dir = f->is_dir;
        o->node = f->node;                          /* the control FD's */
        o->control = f;
        atomic_store(&o->users, 1);                 /* for the adoption queue */
        *rc = gofer_fdtable_add(c->fds, o, c->max_fds);
    }
    if (*rc < 0) {
        close(fd);
        free(o);
        return NULL;
    }
    atomic_fetch_add(&f->users, 1);                 /* o's, until adopted */
    if (!o->is_dir) {
        fcntl(fd, F_SETFL, O_NONBLOCK);     /* the flags hold no other status flag */
        *donated = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    }
    /* From here on the entry is the adopter's and Close's. */
    gofer_fdtable_queue_adoption(c->fds, o);
    return o;
}

/* OpenAt: control FDID u64, flags u32 (of which O_ACCMODE and O_TRUNC count,
 * as on the GIL path). Served for a regular file or directory whose backend
 * lets the core reopen its host FD (gofer_fd.reopen_dir). */
static int open_at(const gofer_fast *c, const char *req, size_t n, char *out, size_t *outlen,
                   int *donated)
{
    if (n < 12)
        return GOFER_FAST_DECLINED;
    uint32_t flags = lisafs_ld32(req + 8) & (O_ACCMODE | O_TRUNC);
    uint32_t acc = flags & O_ACCMODE;
    int writes = acc != O_RDONLY || (flags & O_TRUNC);
    if ((c->readonly && writes) || gofer_fdtable_nadoptions(c->fds) >= GOFER_FAST_MAX_QUEUED)
        return GOFER_FAST_DECLINED;                 /* EROFS; or adopt first */
    gofer_fd *f = use(c, lisafs_ld64(req), GOFER_FD_CONTROL);
    if (f == NULL)
        return GOFER_FAST_DECLINED;
    if (f->reopen_dir == NULL || (f->is_dir && writes)) {
        unuse(c, f);
        return GOFER_FAST_DECLINED;                 /* EISDIR */
    }
    lock(c, f, 0);
    int rc = !c->open_on_deleted && gofer_node_deleted(f->node)
                 ? -EINVAL
                 : gofer_host_reopen(*f->reopen_dir, f->host_fd, (int)flags);
    unlock(c, f);
    gofer_fd *o = rc < 0 ? NULL : new_open(c, f, rc, acc, donated, &rc);
    unuse(c, f);
    if (o == NULL)
        return answer_errno(out, outlen, -rc);
    lisafs_st64(out, o->id);
    *outlen = 8;
    return MID_OPEN_AT;
}

/* Close: a u16 count of FDIDs; served here if every open one has a host FD.
 * An FD whose last use this drops is released here if it was never
 * adopted, else queued for release, which takes the GIL. */
static int close_fds(const gofer_fast *c, const char *req, size_t n, size_t *outlen)
{
    if (n < 2)
        return GOFER_FAST_DECLINED;
    uint16_t count = lisafs_ld16(req);
    if (n - 2 < 8 * (size_t)count ||
        gofer_fdtable_ndeferred(c->fds) + count > GOFER_FAST_MAX_QUEUED)
        return GOFER_FAST_DECLINED;
    for (uint16_t i = 0; i < count; i++) {
        gofer_fd *f = gofer_fdtable_use(c->fds, lisafs_ld64(req + 2 + 8 * (size_t)i));
        if (f == NULL)
            continue; /* not open: nothing to do, as on the GIL path */
        int host = f->host_fd >= 0;
        unuse(c, f);
        if (!host)
            return GOFER_FAST_DECLINED;
    }
    for (uint16_t i = 0; i < count; i++)
        close_fd(c, lisafs_ld64(req + 2 + 8 * (size_t)i));
    *outlen = 0;
    return MID_CLOSE;
}

/* The directory FDID at req whose host tree the fast path may change
 * (gofer_fd.host_tree), with a use taken; or NULL. */
static gofer_fd *host_dir(const gofer_fast *c, const char *req)
{
    gofer_fd *d = use(c, lisafs_ld64(req), GOFER_FD_CONTROL);
    if (d != NULL && d->host_tree == NULL) {
        unuse(c, d);
        return NULL;
    }
    return d;
}

/* A SizedString at req + *pos that walkable() takes, as a C string in
 * name[256]; 0 if not (the GIL path answers). */
static int take_name(const char *req, size_t n, size_t *pos, char name[256], uint16_t *len)
{
    if (n - *pos < 2)
        return 0;
    *len = lisafs_ld16(req + *pos);
    if (n - *pos - 2 < *len || !walkable(req + *pos + 2, *len))
        return 0;
    memcpy(name, req + *pos + 2, *len);
    name[*len] = 0;
    *pos += 2 + (size_t)*len;
    return 1;
}

/* Whether FDs the client closed still wait for their release (which takes
 * the GIL): UnlinkAt and RenameAt then go to the GIL path, which releases
 * them first, so that the host sees a closed file closed before its name
 * goes (an unlinked file still open is reaped later, and costs more). */
static int closed_fds_wait(const gofer_fast *c)
{
    return gofer_fdtable_ndeferred(c->fds) != 0;
}

/* MkdirAt: directory FDID u64, uid u32, gid u32, mode u16, 6 bytes of
 * padding, then the name. As the stock backend's mkdir (gofer_host_mkdir),
 * under the directory's node lock, exclusive; the new directory's control
 * FD waits for adoption as a walk's do. */
static int mkdir_at(const gofer_fast *c, const char *req, size_t n, char *out, size_t *outlen)
{
    char name[256];
    uint16_t len;
    size_t pos = 24;
    if (n < pos || !take_name(req, n, &pos, name, &len) ||
        gofer_fdtable_nadoptions(c->fds) >= GOFER_FAST_MAX_QUEUED)
        return GOFER_FAST_DECLINED;
    gofer_fd *d = host_dir(c, req);
    if (d == NULL)
        return GOFER_FAST_DECLINED;
    struct lisafs_statx st;
    gofer_fd *e = NULL;
    int rc;
    lock(c, d, 1);
    int hfd = gofer_node_deleted(d->node)
                  ? -EINVAL
                  : gofer_host_mkdir(d->host_fd, name, lisafs_ld16(req + 16), lisafs_ld32(req + 8),
                                     lisafs_ld32(req + 12), &st);
    if (hfd >= 0)
        e = new_child(c, d, name, len, hfd, S_IFDIR, &rc);
    else
        rc = hfd;
    unlock(c, d);
    unuse(c, d);
    if (e == NULL)
        return answer_errno(out, outlen, -rc);
    lisafs_st64(out, e->id);
    memcpy(out + 8, &st, sizeof(st));
    *outlen = sizeof(struct lisafs_inode);
    unuse(c, e);
    return MID_MKDIR_AT;
}

/* OpenCreateAt: directory FDID u64, uid u32, gid u32, mode u16, 6 bytes of
 * padding, flags u32 (O_ACCMODE and O_TRUNC count), then the name. As the
 * stock backend's (gofer_host_create) under the directory's node lock,
 * exclusive: the new file's control FD and open FD wait for adoption as a
 * walk's and an OpenAt's do, and its FD is donated. */
static int open_create_at(const gofer_fast *c, const char *req, size_t n, char *out,
                          size_t *outlen, int *donated)
{
    char name[256];
    uint16_t len;
    size_t pos = 28;
    if (n < pos || !take_name(req, n, &pos, name, &len) ||
        gofer_fdtable_nadoptions(c->fds) + 2 > GOFER_FAST_MAX_QUEUED)
        return GOFER_FAST_DECLINED;
    uint32_t flags = lisafs_ld32(req + 24) & (O_ACCMODE | O_TRUNC);
    gofer_fd *d = host_dir(c, req);
    if (d == NULL)
        return GOFER_FAST_DECLINED;
    struct lisafs_statx st;
    gofer_fd *e = NULL, *o = NULL;
    int rc, open_fd = -1;
    lock(c, d, 1);
    int hfd = gofer_node_deleted(d->node)
                  ? -EINVAL
                  : gofer_host_create(d->host_fd, *d->host_tree, name, lisafs_ld16(req + 16),
                                      lisafs_ld32(req + 8), lisafs_ld32(req + 12), (int)flags,
                                      &st, &open_fd);
    if (hfd >= 0)
        e = new_child(c, d, name, len, hfd, st.mode & S_IFMT, &rc);
    else
        rc = hfd;
    unlock(c, d);
    unuse(c, d);
    if (e != NULL) {
        o = new_open(c, e, open_fd, flags & O_ACCMODE, donated, &rc);
        open_fd = -1;
        if (o == NULL)
            close_fd(c, e->id);     /* the client never learns its FDID */
    }
    if (open_fd >= 0)
        close(open_fd);
    if (o == NULL) {
        if (e != NULL)
            unuse(c, e);
        return answer_errno(out, outlen, -rc);
    }
    lisafs_st64(out, e->id);
    memcpy(out + 8, &st, sizeof(st));
    lisafs_st64(out + sizeof(struct lisafs_inode), o->id);
    *outlen = sizeof(struct lisafs_inode) + 8;
    unuse(c, e);
    return MID_OPEN_CREATE_AT;
}

/* UnlinkAt: directory FDID u64, flags u32, then the name. Under the
 * directory's node lock and the child's, if it has a node, both exclusive;
 * the child's node is then marked deleted. */
static int unlink_at(const gofer_fast *c, const char *req, size_t n, char *out, size_t *outlen)
{
    char name[256];
    uint16_t len;
    size_t pos = 12;
    if (n < pos || !take_name(req, n, &pos, name, &len) || closed_fds_wait(c))
        return GOFER_FAST_DECLINED;
    gofer_fd *d = host_dir(c, req);
    if (d == NULL)
        return GOFER_FAST_DECLINED;
    int rc = -EINVAL;
    lock(c, d, 1);
    if (!gofer_node_deleted(d->node)) {
        gofer_node *child = gofer_node_find(d->node, name, len);
        if (child != NULL)
            pthread_rwlock_wrlock(&child->lock);
        rc = gofer_host_unlink(d->host_fd, name, (int)lisafs_ld32(req + 8));
        if (child != NULL) {
            if (rc == 0)
                gofer_node_delete(child);
            pthread_rwlock_unlock(&child->lock);
            gofer_node_decref(child);
        }
    }
    unlock(c, d);
    unuse(c, d);
    if (rc < 0)
        return answer_errno(out, outlen, -rc);
    *outlen = 0;
    return MID_UNLINK_AT;
}

/* RenameAt: old directory FDID u64, new directory FDID u64, old name, new
 * name; RenameAt2 adds flags u32 (renameat2's). Under the rename lock,
 * exclusive, as gVisor's; the tree then follows the host. */
static int rename_at(const gofer_fast *c, int with_flags, const char *req, size_t n, char *out,
                     size_t *outlen)
{
    char old_name[256], new_name[256];
    uint16_t old_len, new_len;
    size_t pos = 16;
    if (n < pos || !take_name(req, n, &pos, old_name, &old_len) ||
        !take_name(req, n, &pos, new_name, &new_len) || (with_flags && n - pos < 4) ||
        closed_fds_wait(c))
        return GOFER_FAST_DECLINED;
    unsigned flags = with_flags ? lisafs_ld32(req + pos) : 0;
    gofer_fd *od = host_dir(c, req);
    if (od == NULL)
        return GOFER_FAST_DECLINED;
    gofer_fd *nd = host_dir(c, req + 8);
    if (nd == NULL) {
        unuse(c, od);
        return GOFER_FAST_DECLINED;
    }
    int rc = -EINVAL;
    pthread_rwlock_wrlock(c->rename_lock);
    if (gofer_node_deleted(od->node) || gofer_node_deleted(nd->node)) {
        /* rc: EINVAL */
    } else if (od->node == nd->node && old_len == new_len &&
               memcmp(old_name, new_name, old_len) == 0) {
        rc = 0;
    } else {
        rc = gofer_host_rename(od->host_fd, old_name, nd->host_fd, new_name, flags);
        /* Out of memory, the tree forgets the names moved; a walk makes
         * their nodes again. */
        if (rc == 0)
            gofer_node_rename(od->node, old_name, old_len, nd->node, new_name, new_len,
                              flags & RENAME_EXCHANGE_FLAG);
    }
    pthread_rwlock_unlock(c->rename_lock);
    unuse(c, nd);
    unuse(c, od);
    if (rc < 0)
        return answer_errno(out, outlen, -rc);
    *outlen = 0;
    return with_flags ? MID_RENAME_AT2 : MID_RENAME_AT;
}

/* Getdents64: directory FDID u64, count i32 (negative: from the start). */
static int getdents(const gofer_fast *c, const char *req, size_t n, char *out, size_t cap,
                    size_t *outlen)
{
    if (n < 12)
        return GOFER_FAST_DECLINED;
    gofer_fd *f = use(c, lisafs_ld64(req), GOFER_FD_OPEN);
    if (f == NULL)
        return GOFER_FAST_DECLINED;
    if (!f->is_dir) {
        unuse(c, f);
        return GOFER_FAST_DECLINED;
    }
    int32_t count = (int32_t)lisafs_ld32(req + 8);
    int seek0 = count < 0;
    if (seek0)
        count = count == INT32_MIN ? INT32_MAX : -count;
    /* Bound the host read by what a response could ever carry. */
    if ((uint32_t)count > c->max_msg)
        count = (int32_t)c->max_msg;
    lock(c, f, 0);
    int rc = gofer_node_deleted(f->node)
                 ? -EINVAL
                 : gofer_host_getdents64(f->host_fd, count, seek0, out, cap, outlen);
    unlock(c, f);
    unuse(c, f);
    if (rc < 0)
        return answer_errno(out, outlen, -rc);
    return MID_GETDENTS64;
}

int gofer_fast_handle(const gofer_fast *c, uint16_t mid, const char *req, size_t n,
                      char *out, size_t cap, size_t *outlen, int *donated)
{
    *donated = -1;
    switch (mid) {
    case MID_FSTAT:
        return fstat_fd(c, req, n, out, outlen);
    case MID_PREAD:
        return pio(c, 0, req, n, out, cap, outlen);
    case MID_PWRITE:
        return pio(c, 1, req, n, out, cap, outlen);
    case MID_FSYNC:
        return fsync_all(c, req, n, out, outlen);
    case MID_WALK:
        return walk(c, req, n, out, cap, outlen);
    case MID_WALK_STAT:
        return walk_stat(c, req, n, out, cap, outlen);
    case MID_OPEN_AT:
        return open_at(c, req, n, out, outlen, donated);
    case MID_OPEN_CREATE_AT:
        return open_create_at(c, req, n, out, outlen, donated);
    case MID_CLOSE:
        return close_fds(c, req, n, outlen);
    case MID_GETDENTS64:
        return getdents(c, req, n, out, cap, outlen);
    case MID_MKDIR_AT:
        return mkdir_at(c, req, n, out, outlen);
    case MID_UNLINK_AT:
        return unlink_at(c, req, n, out, outlen);
    case MID_RENAME_AT:
        return rename_at(c, 0, req, n, out, outlen);
    case MID_RENAME_AT2:
        return rename_at(c, 1, req, n, out, outlen);
    default:
        return GOFER_FAST_DECLINED;
    }
}
