/*
 * qnxcompat overlay: the part of QNX Neutrino's <sys/iomsg.h> that lock
 * handling uses: the I/O message types, the _IO_LOCK and _IO_CLOSE
 * messages, and the ioflag access bits. Names, values and layouts are
 * QNX's (6.4 headers, and the QNX 7/8 iofunc_lock() page for io_lock_t).
 *
 * The other I/O messages are declared as incomplete types, so that handler
 * tables compile; their fields are not emulated.
 */
/* An overlay of system headers: no warnings of its own in user builds
 * (#include_next, the anonymous union of iofunc_attr_t under -std=c99). */
#pragma GCC system_header

#ifndef QNXCOMPAT_SYS_IOMSG_H
#define QNXCOMPAT_SYS_IOMSG_H

#include <stdint.h>
#include <sys/neutrino.h>

#ifdef __cplusplus
extern "C" {
#endif

#define _IO_BASE 0x100
#define _IO_MAX  0x1FF

enum _io_types {
    _IO_CONNECT = _IO_BASE,
    _IO_READ,
    _IO_WRITE,
    _IO_RSVD_CLOSE_OCB,
    _IO_STAT,
    _IO_NOTIFY,
    _IO_DEVCTL,
    _IO_RSVD_UNBLOCK,
    _IO_PATHCONF,
    _IO_LSEEK,
    _IO_CHMOD,
    _IO_CHOWN,
    _IO_UTIME,
    _IO_OPENFD,
    _IO_FDINFO,
    _IO_LOCK,   /* 0x10F */
    _IO_SPACE,
    _IO_SHUTDOWN,
    _IO_MMAP,
    _IO_MSG,
    _IO_RSVD,
    _IO_DUP,
    _IO_CLOSE,  /* 0x116 */
    _IO_RSVD_LOCK_OCB,
    _IO_RSVD_UNLOCK_OCB,
    _IO_SYNC,
    _IO_POWER
};

/* OR'd into combine_len of a combine message. */
#define _IO_COMBINE_FLAG 0x8000

/* The access bits of an OCB's ioflag (open's oflag + 1). */
#define _IO_FLAG_RD   0x00000001
#define _IO_FLAG_WR   0x00000002
#define _IO_FLAG_MASK 0x00000003

/* _IO_LOCK: nbytes bytes of data (a flock_t) follow the header. */
struct _io_lock {
    uint16_t type;
    uint16_t combine_len;
    uint32_t subtype;
    uint32_t nbytes;
    /* char data[1]; */ /* for F_*LK this will be flock_t */
};

struct _io_lock_reply {
    uint32_t zero[3];
    /* char data[1]; */ /* for F_*LK this will be flock_t */
};

typedef union {
    struct _io_lock       i;
    struct _io_lock_reply o;
} io_lock_t;

/* _IO_CLOSE: sent for every close() of a client's descriptor. */
struct _io_close {
    uint16_t type;
    uint16_t combine_len;
};

typedef union {
    struct _io_close i;
} io_close_t;

/* The pulse the kernel sends when a client waiting for a reply asks to be
 * unblocked. */
typedef struct _pulse io_pulse_t;

/* Messages whose fields are not emulated. */
typedef union _io_read io_read_t;
typedef union _io_write io_write_t;
typedef union _io_stat io_stat_t;
typedef union _io_notify io_notify_t;
typedef union _io_devctl io_devctl_t;
typedef union _io_pathconf io_pathconf_t;
typedef union _io_lseek io_lseek_t;
typedef union _io_chmod io_chmod_t;
typedef union _io_chown io_chown_t;
typedef union _io_utime io_utime_t;
typedef union _io_openfd io_openfd_t;
typedef union _io_fdinfo io_fdinfo_t;
typedef union _io_space io_space_t;
typedef union _io_shutdown io_shutdown_t;
typedef union _io_mmap io_mmap_t;
typedef union _io_msg io_msg_t;
typedef union _io_dup io_dup_t;
typedef union _io_sync io_sync_t;
typedef union _io_power io_power_t;
typedef union _io_acl io_acl_t;
typedef union _io_pause io_pause_t;
typedef union _io_unpause io_unpause_t;
typedef union _io_read64 io_read64_t;
typedef union _io_write64 io_write64_t;
typedef union _io_notify64 io_notify64_t;
typedef union _io_utime64 io_utime64_t;
typedef union _io_open io_open_t;
typedef union _io_unlink io_unlink_t;
typedef union _io_rename io_rename_t;
typedef union _io_mknod io_mknod_t;
typedef union _io_readlink io_readlink_t;
typedef union _io_link io_link_t;
typedef union _io_mount io_mount_t;

QNXCOMPAT_ASSERT(sizeof(io_lock_t) == 12, "io_lock_t: QNX layout");

#ifdef __cplusplus
}
#endif

#endif /* QNXCOMPAT_SYS_IOMSG_H */
