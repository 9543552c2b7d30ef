/*
 * qnxcompat overlay: the part of QNX Neutrino's <sys/resmgr.h> that lock
 * handlers use: resmgr_context_t, the handler tables and the _RESMGR_*
 * return values. Names, values and layouts are QNX's (6.4 headers; the I/O
 * table has QNX 7's 33 entries).
 *
 * The resource-manager runtime (dispatch_*, resmgr_attach, ...) is not
 * declared: it is not part of this library yet.
 */
/* An overlay of system headers: no warnings of its own in user builds
 * (#include_next, the anonymous union of iofunc_attr_t under -std=c99). */
#pragma GCC system_header

#ifndef QNXCOMPAT_SYS_RESMGR_H
#define QNXCOMPAT_SYS_RESMGR_H

#include <stdint.h>
#include <sys/iomsg.h>
#include <sys/neutrino.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef RESMGR_HANDLE_T
#define RESMGR_HANDLE_T void
#endif
#ifndef RESMGR_OCB_T
#define RESMGR_OCB_T void
#endif

/* What a handler returns. */
#define _RESMGR_NOREPLY    ((int)0x80000000) /* do not reply to the sender */
#define _RESMGR_DEFAULT    ((int)0x80000001) /* default action (usually ENOSYS) */
#define _RESMGR_ERRNO(e)   (e)
#define _RESMGR_NPARTS(n)  (-(n))
#define _RESMGR_PTR(ctp, p, n) \
    (SETIOV((ctp)->iov + 0, (p), (n)), _RESMGR_NPARTS(1))
#define _RESMGR_STATUS(ctp, s) ((ctp)->status = (s))

typedef struct _dispatch dispatch_t;
typedef union _resmgr_iomsgs resmgr_iomsgs_t;
struct _extended_context;

typedef struct _resmgr_context {
    int                       rcvid;
    struct _msg_info          info;
    resmgr_iomsgs_t          *msg;
    dispatch_t               *dpp;
    int                       id;
    struct _extended_context *extra;
    unsigned                  msg_max_size;
    int                       status;
    int                       offset;
    int                       size;
    iov_t                     iov[1];
} resmgr_context_t;

typedef struct _resmgr_connect_funcs {
    unsigned nfuncs;
    int (*open)(resmgr_context_t *ctp, io_open_t *msg, RESMGR_HANDLE_T *handle, void *extra);
    int (*unlink)(resmgr_context_t *ctp, io_unlink_t *msg, RESMGR_HANDLE_T *handle, void *reserved);
    int (*rename)(resmgr_context_t *ctp, io_rename_t *msg, RESMGR_HANDLE_T *handle, void *extra);
    int (*mknod)(resmgr_context_t *ctp, io_mknod_t *msg, RESMGR_HANDLE_T *handle, void *reserved);
    int (*readlink)(resmgr_context_t *ctp, io_readlink_t *msg, RESMGR_HANDLE_T *handle, void *reserved);
    int (*link)(resmgr_context_t *ctp, io_link_t *msg, RESMGR_HANDLE_T *handle, void *extra);
    int (*unblock)(resmgr_context_t *ctp, io_pulse_t *msg, RESMGR_HANDLE_T *handle, void *reserved);
    int (*mount)(resmgr_context_t *ctp, io_mount_t *msg, RESMGR_HANDLE_T *handle, void *extra);
} resmgr_connect_funcs_t;

typedef struct _resmgr_io_funcs {
    unsigned nfuncs;
    int (*read)(resmgr_context_t *ctp, io_read_t *msg, RESMGR_OCB_T *ocb);
    int (*write)(resmgr_context_t *ctp, io_write_t *msg, RESMGR_OCB_T *ocb);
    int (*close_ocb)(resmgr_context_t *ctp, void *reserved, RESMGR_OCB_T *ocb);
    int (*stat)(resmgr_context_t *ctp, io_stat_t *msg, RESMGR_OCB_T *ocb);
    int (*notify)(resmgr_context_t *ctp, io_notify_t *msg, RESMGR_OCB_T *ocb);
    int (*devctl)(resmgr_context_t *ctp, io_devctl_t *msg, RESMGR_OCB_T *ocb);
    int (*unblock)(resmgr_context_t *ctp, io_pulse_t *msg, RESMGR_OCB_T *ocb);
    int (*pathconf)(resmgr_context_t *ctp, io_pathconf_t *msg, RESMGR_OCB_T *ocb);
    int (*lseek)(resmgr_context_t *ctp, io_lseek_t *msg, RESMGR_OCB_T *ocb);
    int (*chmod)(resmgr_context_t *ctp, io_chmod_t *msg, RESMGR_OCB_T *ocb);
    int (*chown)(resmgr_context_t *ctp, io_chown_t *msg, RESMGR_OCB_T *ocb);
    int (*utime)(resmgr_context_t *ctp, io_utime_t *msg, RESMGR_OCB_T *ocb);
    int (*openfd)(resmgr_context_t *ctp, io_openfd_t *msg, RESMGR_OCB_T *ocb);
    int (*fdinfo)(resmgr_context_t *ctp, io_fdinfo_t *msg, RESMGR_OCB_T *ocb);
    int (*lock)(resmgr_context_t *ctp, io_lock_t *msg, RESMGR_OCB_T *ocb);
    int (*space)(resmgr_context_t *ctp, io_space_t *msg, RESMGR_OCB_T *ocb);
    int (*shutdown)(resmgr_context_t *ctp, io_shutdown_t *msg, RESMGR_OCB_T *ocb);
    int (*mmap)(resmgr_context_t *ctp, io_mmap_t *msg, RESMGR_OCB_T *ocb);
    int (*msg)(resmgr_context_t *ctp, io_msg_t *msg, RESMGR_OCB_T *ocb);
    int (*reserved)(resmgr_context_t *ctp, void *msg, RESMGR_OCB_T *ocb);
    int (*dup)(resmgr_context_t *ctp, io_dup_t *msg, RESMGR_OCB_T *ocb);
    int (*close_dup)(resmgr_context_t *ctp, io_close_t *msg, RESMGR_OCB_T *ocb);
    int (*lock_ocb)(resmgr_context_t *ctp, void *reserved, RESMGR_OCB_T *ocb);
    int (*unlock_ocb)(resmgr_context_t *ctp, void *reserved, RESMGR_OCB_T *ocb);
    int (*sync)(resmgr_context_t *ctp, io_sync_t *msg, RESMGR_OCB_T *ocb);
    int (*power)(resmgr_context_t *ctp, io_power_t *msg, RESMGR_OCB_T *ocb);
    int (*acl)(resmgr_context_t *ctp, io_acl_t *msg, RESMGR_OCB_T *ocb);
    int (*pause)(resmgr_context_t *ctp, void *reserved, RESMGR_OCB_T *ocb);
    int (*unpause)(resmgr_context_t *ctp, io_pulse_t *msg, RESMGR_OCB_T *ocb);
    int (*read64)(resmgr_context_t *ctp, io_read64_t *msg, RESMGR_OCB_T *ocb);
    int (*write64)(resmgr_context_t *ctp, io_write64_t *msg, RESMGR_OCB_T *ocb);
    int (*notify64)(resmgr_context_t *ctp, io_notify64_t *msg, RESMGR_OCB_T *ocb);
    int (*utime64)(resmgr_context_t *ctp, io_utime64_t *msg, RESMGR_OCB_T *ocb);
} resmgr_io_funcs_t;

#define _RESMGR_CONNECT_NFUNCS \
    ((sizeof(resmgr_connect_funcs_t) - sizeof(unsigned)) / sizeof(void *))
#define _RESMGR_IO_NFUNCS \
    ((sizeof(resmgr_io_funcs_t) - sizeof(unsigned)) / sizeof(void *))

#if defined(__x86_64__)
QNXCOMPAT_ASSERT(sizeof(resmgr_context_t) == 120, "resmgr_context_t: QNX layout");
QNXCOMPAT_ASSERT(offsetof(resmgr_context_t, info) == 4, "resmgr_context_t: QNX layout");
QNXCOMPAT_ASSERT(offsetof(resmgr_context_t, status) == 92, "resmgr_context_t: QNX layout");
QNXCOMPAT_ASSERT(offsetof(resmgr_context_t, iov) == 104, "resmgr_context_t: QNX layout");
QNXCOMPAT_ASSERT(_RESMGR_CONNECT_NFUNCS == 8, "resmgr_connect_funcs_t: 8 handlers");
QNXCOMPAT_ASSERT(_RESMGR_IO_NFUNCS == 33, "resmgr_io_funcs_t: QNX 7's 33 handlers");
#endif

#ifdef __cplusplus
}
#endif

#endif /* QNXCOMPAT_SYS_RESMGR_H */
