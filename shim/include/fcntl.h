/*
 * qnxcompat overlay for <fcntl.h>: the system header plus the QNX Neutrino
 * extensions that ported QNX sources expect, so they compile unchanged with
 * `-I shim/include`.
 */
/* An overlay of system headers: no warnings of its own in user builds
 * (#include_next, the anonymous union of iofunc_attr_t under -std=c99). */
#pragma GCC system_header

#include_next <fcntl.h>

#ifndef QNXCOMPAT_FCNTL_H
#define QNXCOMPAT_FCNTL_H

/*
 * F_FLOCK: OR'd into l_type by QNX's flock(), and usable in fcntl()
 * F_SETLK/F_SETLKW/F_GETLK to take or report a lock owned by the open file
 * (the open control block) instead of the process. QNX does not publish its
 * value; 0x1000 collides with no Linux l_type (F_RDLCK 0, F_WRLCK 1,
 * F_UNLCK 2, F_EXLCK 4, F_SHLCK 8). libqnxcompat.so uses the same value.
 */
#ifndef F_FLOCK
#define F_FLOCK 0x1000
#endif

/*
 * QNX's names for the lock structure. On x86-64 Linux, struct flock has
 * QNX flock_t's fields at QNX's offsets (32 bytes: l_type @0, l_whence @2,
 * l_start @8, l_len @16, l_pid @24); QNX's l_zero1 (@4) and l_sysid (@28,
 * the node descriptor, 0 for this node) are padding here.
 */
typedef struct flock flock_t;
#ifdef __USE_LARGEFILE64
typedef struct flock64 flock64_t;
#endif

/* QNX declares flock() and the LOCK_* operations in <fcntl.h>. */
#include <sys/file.h>

#endif /* QNXCOMPAT_FCNTL_H */
