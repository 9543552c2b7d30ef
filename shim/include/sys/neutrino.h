/*
 * qnxcompat overlay: the part of QNX Neutrino's <sys/neutrino.h> that
 * resource-manager lock handling uses: the message-info and client-info
 * structures, the unblock pulse, and MsgReply/MsgReplyv/MsgError/MsgInfo.
 *
 * There is no QNX kernel here. libqnxcompat emulates the reply side of
 * message passing: a receive id (rcvid) that a handler leaves unreplied
 * (_RESMGR_NOREPLY) is remembered with its client's _msg_info, and what it
 * is eventually told (MsgReply, MsgReplyv, MsgError, from the library or
 * from the program) is recorded, for a test to collect with
 * qnxcompat_msg_reply() (<qnxcompat.h>). Field names, order and widths are
 * QNX's (6.4 headers; x86-64 layout, checked below and in the library).
 */
/* An overlay of system headers: no warnings of its own in user builds
 * (#include_next, the anonymous union of iofunc_attr_t under -std=c99). */
#pragma GCC system_header

#ifndef QNXCOMPAT_SYS_NEUTRINO_H
#define QNXCOMPAT_SYS_NEUTRINO_H

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Layout checks, in C and C++. */
#ifndef QNXCOMPAT_ASSERT
#ifdef __cplusplus
#define QNXCOMPAT_ASSERT(cond, what) static_assert(cond, what)
#else
#define QNXCOMPAT_ASSERT(cond, what) _Static_assert(cond, what)
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* QNX's iov_t is struct iovec. */
typedef struct iovec iov_t;
#ifndef SETIOV
#define SETIOV(_iov, _addr, _len) \
    ((_iov)->iov_base = (void *)(_addr), (_iov)->iov_len = (size_t)(_len))
#endif

/* _msg_info.flags */
#define _NTO_MI_ENDIAN_BIG   0x00000001
#define _NTO_MI_ENDIAN_DIFF  0x00000002
#define _NTO_MI_UNBLOCK_REQ  0x00000100
#define _NTO_MI_NET_CRED_DIRTY 0x00000200

/* Pulse codes the kernel sends a resource manager. */
#define _PULSE_TYPE             0
#define _PULSE_SUBTYPE          0
#define _PULSE_CODE_UNBLOCK     (-32)
#define _PULSE_CODE_DISCONNECT  (-33)
#define _PULSE_CODE_COIDDEATH   (-35)

/* ChannelCreate() flags a resource manager's channel has. */
#define _NTO_CHF_UNBLOCK         0x0002
#define _NTO_CHF_DISCONNECT      0x0008
#define _NTO_CHF_COID_DISCONNECT 0x0040

struct _msg_info {
    uint32_t nd;
    uint32_t srcnd;
    pid_t    pid;
    int32_t  tid;
    int32_t  chid;
    int32_t  scoid;
    int32_t  coid;
    int32_t  msglen;
    int32_t  srcmsglen;
    int32_t  dstmsglen;
    int16_t  priority;
    int16_t  flags;
    uint32_t reserved;
};

#define _NTO_NGROUPS_MAX 8
struct _cred_info {
    uid_t    ruid;
    uid_t    euid;
    uid_t    suid;
    gid_t    rgid;
    gid_t    egid;
    gid_t    sgid;
    uint32_t ngroups;
    gid_t    grouplist[_NTO_NGROUPS_MAX];
};

struct _client_info {
    uint32_t          nd;
    pid_t             pid;
    pid_t             sid;
    uint32_t          flags;
    struct _cred_info cred;
};

/* value: QNX's union sigval (sival_int, sival_ptr), declared here so the
 * header needs no POSIX feature macro. */
struct _pulse {
    uint16_t type;
    uint16_t subtype;
    int8_t   code;
    uint8_t  zero[3];
    union {
        int   sival_int;
        void *sival_ptr;
    } value;
    int32_t  scoid;
};

/*
 * Replies (QNX 7 prototypes). Each returns 0, or -1 with errno ESRCH when
 * rcvid names no client waiting for a reply (already replied to, or never
 * received); the _r forms return the errno value instead.
 */
int MsgReply(int rcvid, long status, const void *msg, size_t bytes);
int MsgReplyv(int rcvid, long status, const iov_t *iov, int parts);
int MsgError(int rcvid, int err);
/* The client info of an rcvid still waiting for a reply, with
 * _NTO_MI_UNBLOCK_REQ set in flags once the client asked to be unblocked
 * (qnxcompat_msg_unblock_request(): a signal or timeout on QNX). */
int MsgInfo(int rcvid, struct _msg_info *info);
int MsgReply_r(int rcvid, long status, const void *msg, size_t bytes);
int MsgReplyv_r(int rcvid, long status, const iov_t *iov, int parts);
int MsgError_r(int rcvid, int err);
int MsgInfo_r(int rcvid, struct _msg_info *info);

#if defined(__x86_64__)
QNXCOMPAT_ASSERT(sizeof(struct _msg_info) == 48, "struct _msg_info: QNX layout");
QNXCOMPAT_ASSERT(offsetof(struct _msg_info, scoid) == 20, "struct _msg_info: QNX layout");
QNXCOMPAT_ASSERT(offsetof(struct _msg_info, flags) == 42, "struct _msg_info: QNX layout");
QNXCOMPAT_ASSERT(sizeof(struct _pulse) == 24, "struct _pulse: QNX layout");
QNXCOMPAT_ASSERT(sizeof(struct _client_info) == 76, "struct _client_info: QNX layout");
QNXCOMPAT_ASSERT(offsetof(struct _client_info, cred) == 16, "struct _client_info: QNX layout");
QNXCOMPAT_ASSERT(offsetof(struct _pulse, value) == 8, "struct _pulse: QNX layout");
#endif

#ifdef __cplusplus
}
#endif

#endif /* QNXCOMPAT_SYS_NEUTRINO_H */
