/*
 * qnxcompat overlay: QNX Neutrino's <sys/iofunc.h>, the POSIX-layer helpers
 * of a resource manager, as far as lock handling goes. Link with
 * -lqnxcompat. The lock functions run over the same range engine and
 * wait-for graph as the fcntl/lockf/flock interposer (docs/semantics.md,
 * "Resource-manager locks"); replies to blocked clients go through the
 * emulated MsgReply/MsgError of <sys/neutrino.h>.
 *
 * Declared here is what the library implements; the rest of QNX's
 * iofunc layer (iofunc_open_default, iofunc_read_default, ...) is absent.
 * Structure names, field names and values are QNX's; iofunc_attr_t has the
 * QNX 7.1 field order. Port code by field name, not by offset.
 */
/* An overlay of system headers: no warnings of its own in user builds
 * (#include_next, the anonymous union of iofunc_attr_t under -std=c99). */
#pragma GCC system_header

#ifndef QNXCOMPAT_SYS_IOFUNC_H
#define QNXCOMPAT_SYS_IOFUNC_H

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/neutrino.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/* Declared at file scope first, so that prototypes naming them (through
 * the macros below) refer to these types. */
struct _iofunc_attr;
struct _iofunc_ocb;
struct _iofunc_mount;

#ifndef IOFUNC_ATTR_T
#define IOFUNC_ATTR_T struct _iofunc_attr
#endif
#ifndef IOFUNC_OCB_T
#define IOFUNC_OCB_T struct _iofunc_ocb
#endif
#ifndef IOFUNC_MOUNT_T
#define IOFUNC_MOUNT_T struct _iofunc_mount
#endif
#ifndef RESMGR_HANDLE_T
#define RESMGR_HANDLE_T IOFUNC_ATTR_T
#endif
#ifndef RESMGR_OCB_T
#define RESMGR_OCB_T IOFUNC_OCB_T
#endif

/* Makes the tags of a program's own IOFUNC_ATTR_T / IOFUNC_OCB_T /
 * IOFUNC_MOUNT_T (QNX lets a resource manager extend them) file-scope
 * types before the prototypes below name them. */
struct _qnxcompat_iofunc_tags {
    IOFUNC_ATTR_T  *attr;
    IOFUNC_OCB_T   *ocb;
    IOFUNC_MOUNT_T *mount;
};

#include <sys/resmgr.h>

#ifdef __cplusplus
extern "C" {
#endif

/* iofunc_attr_t.flags */
#define IOFUNC_ATTR_MTIME       0x00000001
#define IOFUNC_ATTR_ATIME       0x00000002
#define IOFUNC_ATTR_CTIME       0x00000004
#define IOFUNC_ATTR_DIRTY_SIZE  0x00000010
#define IOFUNC_ATTR_DIRTY_OWNER 0x00000020
#define IOFUNC_ATTR_DIRTY_TIME  0x00000040
#define IOFUNC_ATTR_DIRTY_MODE  0x00000080
#define IOFUNC_ATTR_DIRTY_NLINK 0x00000100
#define IOFUNC_ATTR_DIRTY_RDEV  0x00000200

/* iofunc_ocb_t.flags */
#define IOFUNC_OCB_PRIVILEGED 0x0001
#define IOFUNC_OCB_MMAP       0x0002

struct _iofunc_mmap_list;
/* The attribute's lock state; opaque. NULL when the resource has no lock
 * and no waiting request. */
typedef struct _iofunc_lock_list iofunc_lock_list_t;

typedef struct _iofunc_funcs {
    unsigned nfuncs;
    IOFUNC_OCB_T *(*ocb_calloc)(resmgr_context_t *ctp, IOFUNC_ATTR_T *attr);
    void (*ocb_free)(IOFUNC_OCB_T *ocb);
    int (*attr_lock)(IOFUNC_ATTR_T *attr);
    int (*attr_unlock)(IOFUNC_ATTR_T *attr);
    int (*attr_trylock)(IOFUNC_ATTR_T *attr);
} iofunc_funcs_t;

#define _IOFUNC_NFUNCS ((sizeof(iofunc_funcs_t) - sizeof(unsigned)) / sizeof(void *))

typedef struct _iofunc_mount {
    uint32_t        flags;
    uint32_t        conf;
    dev_t           dev;
    int32_t         blocksize;
    iofunc_funcs_t *funcs;
    void           *power;
} iofunc_mount_t;

typedef struct _iofunc_attr {
    IOFUNC_MOUNT_T           *mount;
    struct _iofunc_mmap_list *mmap_list;
    struct _iofunc_lock_list *lock_list;
    void                     *acl;
    union {
        void           *lockobj;
        pthread_mutex_t lock;
    };
    uint32_t flags;
    uint16_t count;
    uint16_t rcount;
    uint16_t wcount;
    uint16_t rlocks;
    uint16_t wlocks;
    uint16_t reserved;
    off_t    nbytes;
    ino_t    inode;
    uid_t    uid;
    gid_t    gid;
    time_t   mtime;
    time_t   atime;
    time_t   ctime;
    mode_t   mode;
    nlink_t  nlink;
    dev_t    rdev;
    unsigned mtime_ns;
    unsigned atime_ns;
    unsigned ctime_ns;
} iofunc_attr_t;

typedef struct _iofunc_ocb {
    IOFUNC_ATTR_T *attr;
    int32_t        ioflag; /* open()'s oflag + 1: _IO_FLAG_RD, _IO_FLAG_WR */
    off_t          offset;
    uint16_t       sflag;
    uint16_t       flags;  /* IOFUNC_OCB_* */
    void          *reserved;
} iofunc_ocb_t;

/*
 * The _IO_LOCK handlers. iofunc_lock() does what POSIX locks require, for
 * subtypes F_GETLK, F_SETLK, F_SETLKW (and the 64 spellings): the lock
 * basis is the client process (ctp->info: nd, pid, scoid) or, with F_FLOCK
 * OR'd into l_type, the OCB. It returns _RESMGR_NPARTS(1) with the reply
 * {struct _io_lock_reply, flock_t} in ctp->iov[0]; _RESMGR_NOREPLY for an
 * F_SETLKW that waits (the client is replied to when granted, or told
 * EDEADLK, EINTR or ENOMEM); or EINVAL, EBADF, EAGAIN, EDEADLK, ENOMEM,
 * EOVERFLOW.
 */
int iofunc_lock(resmgr_context_t *ctp, io_lock_t *msg, iofunc_ocb_t *ocb, iofunc_attr_t *attr);
int iofunc_lock_default(resmgr_context_t *ctp, io_lock_t *msg, iofunc_ocb_t *ocb);

/* Every close of a client descriptor: releases the client process's locks
 * on the resource (the first close releases them all). Returns EOK. */
int iofunc_close_dup(resmgr_context_t *ctp, io_close_t *msg, iofunc_ocb_t *ocb, iofunc_attr_t *attr);
int iofunc_close_dup_default(resmgr_context_t *ctp, io_close_t *msg, iofunc_ocb_t *ocb);

/* The last close of an OCB: releases the locks owned by the OCB (F_FLOCK
 * basis), fails its waiting requests with EBADF, updates the attribute's
 * open counts from ioflag (under mount->funcs->attr_lock, if any), and
 * frees the OCB (mount->funcs->ocb_free, or free()). Returns EOK. A
 * resource manager that frees its OCBs itself must still call
 * iofunc_close_ocb(): OCB locks are known by the OCB's address, and a new
 * OCB at that address would otherwise inherit them. */
int iofunc_close_ocb(resmgr_context_t *ctp, iofunc_ocb_t *ocb, iofunc_attr_t *attr);
int iofunc_close_ocb_default(resmgr_context_t *ctp, void *reserved, iofunc_ocb_t *ocb);

/* An unblock pulse: if ctp->rcvid (or the pulse's value) names a client
 * waiting in iofunc_lock() on this resource that asked to be unblocked,
 * its request is cancelled with EINTR and _RESMGR_NOREPLY is returned;
 * otherwise _RESMGR_DEFAULT. */
int iofunc_unblock(resmgr_context_t *ctp, iofunc_attr_t *attr);
int iofunc_unblock_default(resmgr_context_t *ctp, io_pulse_t *msg, iofunc_ocb_t *ocb);

/* Initialises an attribute structure (QNX semantics: times marked, owner
 * from info's effective ids or the process's, group from a set-group-ID
 * dattr, nlink 1). */
void iofunc_attr_init(iofunc_attr_t *attr, mode_t mode, iofunc_attr_t *dattr, struct _client_info *info);

/* Fills handler tables with the defaults this library has (I/O: lock,
 * close_dup, close_ocb, unblock; connect: none) and NULL elsewhere; sets
 * nfuncs. A NULL handler means "not handled" (_RESMGR_DEFAULT, ENOSYS). */
void iofunc_func_init(unsigned nconnect, resmgr_connect_funcs_t *connect, unsigned nio, resmgr_io_funcs_t *io);

/* Sets the times whose IOFUNC_ATTR_MTIME/ATIME/CTIME bits are set to now,
 * clears those bits and marks IOFUNC_ATTR_DIRTY_TIME. Returns EOK. */
int iofunc_time_update(iofunc_attr_t *attr);

/* calloc(size, 1) / free(), as QNX's defaults. NULL with errno ENOMEM on
 * failure, and for a size over 2 GiB. */
iofunc_lock_list_t *iofunc_lock_calloc(resmgr_context_t *ctp, IOFUNC_OCB_T *ocb, size_t size);
void iofunc_lock_free(iofunc_lock_list_t *lock, size_t size);

#if defined(__x86_64__)
QNXCOMPAT_ASSERT(sizeof(iofunc_attr_t) == 176, "iofunc_attr_t: the layout libqnxcompat reads");
QNXCOMPAT_ASSERT(offsetof(iofunc_attr_t, lock_list) == 16, "iofunc_attr_t: the layout libqnxcompat reads");
QNXCOMPAT_ASSERT(offsetof(iofunc_attr_t, flags) == 72, "iofunc_attr_t: the layout libqnxcompat reads");
QNXCOMPAT_ASSERT(offsetof(iofunc_attr_t, nbytes) == 88, "iofunc_attr_t: the layout libqnxcompat reads");
QNXCOMPAT_ASSERT(offsetof(iofunc_attr_t, mode) == 136, "iofunc_attr_t: the layout libqnxcompat reads");
QNXCOMPAT_ASSERT(sizeof(iofunc_ocb_t) == 40, "iofunc_ocb_t: QNX layout");
QNXCOMPAT_ASSERT(offsetof(iofunc_ocb_t, offset) == 16, "iofunc_ocb_t: QNX layout");
QNXCOMPAT_ASSERT(sizeof(iofunc_mount_t) == 40, "iofunc_mount_t: QNX layout");
#endif

#ifdef __cplusplus
}
#endif

#endif /* QNXCOMPAT_SYS_IOFUNC_H */
