/*
 * qnxcompat overlay for <errno.h>: the system header plus QNX's EOK, which
 * QNX functions that return an errno value (iofunc_*, fs_crypto_*) return
 * on success.
 */
#include_next <errno.h>

#ifndef EOK
#define EOK 0
#endif
