/*
 * libqnxcompat's own C API (the interposed libc functions need no header).
 * A program that may also run without the library should look the function
 * up with dlsym(RTLD_DEFAULT, "qnxcompat_verify") rather than link to it.
 */
#ifndef QNXCOMPAT_H
#define QNXCOMPAT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Checks the lock registry named `registry` (NULL: the one this process
 * uses, from QNXCOMPAT_REGISTRY or the per-user default) for consistency:
 * every lock list, owner list, count, hash chain, waiter and mapping record
 * against every other. Writes a one-line summary into msg[len].
 * Returns 0 if consistent, 1 if not, 2 if the registry cannot be attached.
 */
int qnxcompat_verify(const char *registry, char *msg, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* QNXCOMPAT_H */
