//! The C API behind the `qnxcompat` command: listing a registry's locks and
//! blocked requests (`qnxcompat locks`), its figures and the reaping of its
//! dead owners (`qnxcompat doctor`). Each attaches the named registry as a
//! tool does (no owner, no anchor), and none holds the registry mutex for
//! longer than one lock call would (see `registry::inspect`).

use core::ffi::{CStr, c_char, c_int, c_void};

use crate::config;
use crate::locks;
use crate::registry::inspect::{BATCH, Health, Row};
use crate::registry::{self, Registry};

/// The registry named `name` (NULL: this process's), attached for the
/// duration of `f`.
///
/// # Safety
/// `name` is NULL or NUL-terminated.
unsafe fn with_named(name: *const c_char, f: impl FnOnce(&Registry) -> c_int) -> c_int {
    let n = if name.is_null() {
        config::registry_name()
    } else {
        // SAFETY: per the contract, a NUL-terminated string.
        unsafe { CStr::from_ptr(name) }.to_bytes()
    };
    match registry::attach_named(n) {
        Err(_) => -2,
        Ok(reg) => {
            let r = f(&reg);
            // SAFETY: `f` is done; no guard or reference outlives it.
            unsafe { reg.detach() };
            r
        }
    }
}

/// `int qnxcompat_locks(const char *registry, int (*row)(const struct
/// qnxcompat_lock_row *, void *), void *ctx)`: calls `row` for every lock
/// record, then for every blocked request, of the registry. Returns 0, a
/// non-zero value `row` returned (which stops the listing), -1 when the
/// registry cannot be locked, -2 when it cannot be attached.
///
/// # Safety
/// `registry` is NULL or NUL-terminated; `row` is a valid function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_locks(
    registry: *const c_char,
    row: Option<unsafe extern "C" fn(*const Row, *mut c_void) -> c_int>,
    ctx: *mut c_void,
) -> c_int {
    let Some(row) = row else { return -1 };
    // SAFETY: per the contract.
    unsafe {
        with_named(registry, |reg| {
            for waiters in [false, true] {
                let mut at = 0usize;
                loop {
                    let mut rows = [Row::default(); BATCH];
                    let (n, more) = match reg.lock() {
                        Err(_) => return -1,
                        Ok(mut g) => {
                            let t = g.tables();
                            let before = at;
                            let n = if waiters {
                                t.waiter_rows(&mut at, &mut rows)
                            } else {
                                t.lock_rows(&mut at, &mut rows)
                            };
                            (n, at != before)
                        }
                    };
                    // The mutex is dropped: the rows go out from here.
                    for r in &rows[..n] {
                        // SAFETY: `row` is the caller's function, `r` a valid row.
                        let stop = row(r, ctx);
                        if stop != 0 {
                            return stop;
                        }
                    }
                    if !more {
                        break;
                    }
                }
            }
            0
        })
    }
}

/// `int qnxcompat_health(const char *registry, struct qnxcompat_health *out,
/// size_t size)`: fills `out` (at most `size` bytes of it) with the
/// registry's figures. 0, -1 when the registry cannot be locked, -2 when
/// it cannot be attached.
///
/// # Safety
/// `registry` is NULL or NUL-terminated; `out` is valid for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_health(registry: *const c_char, out: *mut u8, size: usize) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        with_named(registry, |reg| {
            let h: Health = match reg.lock() {
                Err(_) => return -1,
                Ok(mut g) => g.tables().health(),
            };
            let n = size.min(core::mem::size_of::<Health>());
            if !out.is_null() {
                // SAFETY: `out` is valid for `size` bytes, `h` for its own.
                core::ptr::copy_nonoverlapping((&raw const h).cast::<u8>(), out, n);
            }
            0
        })
    }
}

/// `long qnxcompat_reap(const char *registry, int reap, long *probed)`:
/// probes every process owner the registry cannot vouch for; with `reap`
/// non-zero, reaps the dead ones' locks, waiters and mappings (waking
/// whoever waited on them). Returns how many were found dead (without
/// `reap`: dead with locks, waits or mappings left) (and, in
/// `*probed`, how many were probed), -1 when the registry cannot be locked,
/// -2 when it cannot be attached.
///
/// # Safety
/// `registry` is NULL or NUL-terminated; `probed` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_reap(registry: *const c_char, reap: c_int, probed: *mut i64) -> i64 {
    let mut counts = (0u32, 0u32);
    // SAFETY: per the contract.
    let r = unsafe {
        with_named(registry, |reg| match locks::reap_dead(reg, reap != 0) {
            Ok(c) => {
                counts = c;
                0
            }
            Err(_) => -1,
        })
    };
    if !probed.is_null() {
        // SAFETY: per the contract.
        unsafe { *probed = i64::from(counts.0) };
    }
    if r < 0 { i64::from(r) } else { i64::from(counts.1) }
}
