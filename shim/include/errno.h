/*
 * qnxcompat overlay for <errno.h>: the system header plus QNX's EOK, which
 * QNX functions that return an errno value (iofunc_*, fs_crypto_*) return
 * on success.
 */
/* An overlay of system headers: no warnings of its own in user builds
 * (#include_next, the anonymous union of iofunc_attr_t under -std=c99). */
#pragma GCC system_header

#include_next <errno.h>

#ifndef EOK
#define EOK 0
#endif
