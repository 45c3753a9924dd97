/* Fixed-size LISAFS wire structs, laid out byte for byte as gVisor's
 * go_marshal types (pkg/lisafs/message.go, statx.go). All integers are
 * little-endian; both supported targets (x86_64, arm64) are little-endian, so
 * the structs are read and written with memcpy. */
#ifndef GOFER_LISAFS_WIRE_H
#define GOFER_LISAFS_WIRE_H

#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gofer's wire layer assumes a little-endian host (x86_64, arm64)"
#endif

#define GOFER_PACKED __attribute__((packed))

struct GOFER_PACKED lisafs_ts {      /* StatxTimestamp */
    int64_t sec;
    uint32_t nsec;
    int32_t pad;
};

struct GOFER_PACKED lisafs_statx {
    uint32_t mask;
    uint32_t blksize;
    uint64_t attributes;
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint16_t mode;
    uint16_t pad;
    uint64_t ino;
    uint64_t size;
    uint64_t blocks;
    uint64_t attributes_mask;
    struct lisafs_ts atime, btime, ctime, mtime;
    uint32_t rdev_major, rdev_minor;
    uint32_t dev_major, dev_minor;
};

struct GOFER_PACKED lisafs_inode {
    uint64_t control_fd;
    struct lisafs_statx stat;
};

struct GOFER_PACKED lisafs_statfs {
    uint64_t type;
    int64_t block_size;
    uint64_t blocks, blocks_free, blocks_available, files, files_free, name_length;
};

struct GOFER_PACKED lisafs_sock_header {
    uint32_t payload_len;
    uint16_t mid;
    uint16_t pad;
};

struct GOFER_PACKED lisafs_chan_header {
    uint16_t mid;
    uint8_t num_fds;
    uint8_t pad;
};

_Static_assert(sizeof(struct lisafs_ts) == 16, "StatxTimestamp is 16 bytes");
_Static_assert(sizeof(struct lisafs_statx) == 144, "Statx is 144 bytes");
_Static_assert(sizeof(struct lisafs_inode) == 152, "Inode is 152 bytes");
_Static_assert(sizeof(struct lisafs_statfs) == 64, "StatFS is 64 bytes");
_Static_assert(sizeof(struct lisafs_sock_header) == 8, "sockHeader is 8 bytes");
_Static_assert(sizeof(struct lisafs_chan_header) == 4, "channelHeader is 4 bytes");

static inline uint16_t lisafs_ld16(const char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t lisafs_ld32(const char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t lisafs_ld64(const char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void lisafs_st16(char *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void lisafs_st32(char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void lisafs_st64(char *p, uint64_t v) { memcpy(p, &v, 8); }

#endif
