//! The interposed entry points. Each decodes its C arguments, calls
//! [`crate::locks`] (or the real function), traces, and encodes the result as
//! a return value plus errno. No lock or range logic lives here.
//!
//! Rules every hook keeps:
//! - it never panics (the crate aborts on panic, and FFI must not unwind);
//! - before the constructor has run, and under `QNXCOMPAT=off`, it is a pure
//!   pass-through to the real function;
//! - on success it leaves errno as the caller had it;
//! - the re-entrancy guard is the thread-local "in registry" flag
//!   ([`crate::local`]): a hook reached from a signal handler while its thread
//!   holds the registry mutex never blocks on it again.
//!
//! # Safety
//! This module defines the exported `extern "C"` symbols and the library
//! constructor; pointer arguments come from C callers and are checked for
//! NULL before use.
#![allow(unsafe_code)]

pub mod close;
pub mod entry;
pub mod inspect;
pub mod iofunc;
pub mod mem;
pub mod sig;
pub mod table;

use crate::sys::Errno;
use crate::{config, local, locks, mappings, owner};

/// Runs once when the library is loaded, before `main`.
extern "C" fn init() {
    // The program's main() starts with the errno it would have without us.
    let saved = Errno::last();
    config::load();
    crate::registry::set_on_leave(crate::signals::leave_registry);
    if !config::fd_cache() {
        local::disable_fd_cache();
    }
    // (The C exec wrappers' real functions are looked up by shim.c's own
    // constructor, qnxcompat_prime_exec.)
    table::resolve_all();
    // The main thread's stack bounds, asked now rather than in a lock call
    // (see `usermem::prime`).
    crate::usermem::prime();
    // SAFETY: registering a plain function as the fork-child handler.
    unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
    if config::active() {
        locks::adopt_after_exec();
    }
    // Fault points count the program's own calls, not the adoption above.
    if let Some(spec) = config::fault_spec() {
        crate::fault::arm(spec);
    }
    saved.set();
}

/// Runs at normal exit: releases what this process still holds, so waiters
/// are granted at once rather than when they notice the death.
extern "C" fn fini() {
    if config::active() && local::holds_any() {
        let saved = Errno::last();
        locks::release_all();
        saved.set();
    }
}

/// A fork child is a new process owner with no locks. (Its copies of the
/// parent's file mappings were recorded by the `fork` hook.)
extern "C" fn after_fork_child() {
    owner::forget_after_fork();
    local::forget_after_fork();
    crate::registry::forget_after_fork();
    crate::liveness::forget_after_fork();
}

/// `fork()`: plain, unless this process maps files (see
/// [`mappings::fork_mapped`]).
#[unsafe(no_mangle)]
pub extern "C" fn fork() -> libc::pid_t {
    let real = || match table::fork::get() {
        // SAFETY: no arguments.
        Some(f) => unsafe { f() },
        None => {
            Errno::NOSYS.set();
            -1
        }
    };
    if config::active() && mappings::any() {
        let saved = Errno::last();
        let pid = mappings::fork_mapped(&real);
        if pid >= 0 {
            saved.set(); // errno is the call's own, in parent and child
        }
        pid
    } else {
        real()
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;

#[used]
#[unsafe(link_section = ".fini_array")]
static FINI: extern "C" fn() = fini;

/// The errno to report with a raw return value.
fn errno_of(r: i64) -> Errno {
    if r == -1 { Errno::last() } else { Errno(0) }
}

/// Called by the C exec wrappers just before the real exec: marks the locks
/// exec's closes release and, when this image holds locks and the new one
/// will load the library, takes the anchor bridge and writes its variable
/// into `buf`. Returns the bridge descriptor, or -1.
///
/// # Safety
/// `path` is NULL or NUL-terminated; `envp` is NULL or a NULL-terminated
/// array of NUL-terminated strings; `buf` is valid for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_before_exec(
    path: *const core::ffi::c_char,
    fd: core::ffi::c_int,
    search: core::ffi::c_int,
    envp: *const *const core::ffi::c_char,
    buf: *mut u8,
    len: usize,
) -> core::ffi::c_int {
    if !config::active() || !local::holds_any() || owner::in_shared_memory_child() {
        return -1;
    }
    let saved = Errno::last();
    locks::mark_for_exec();
    // SAFETY: per the contract.
    let path = (!path.is_null()).then(|| unsafe { core::ffi::CStr::from_ptr(path) });
    // SAFETY: per the contract.
    let bridge = if unsafe { crate::liveness::will_load_library(path, fd, search != 0, envp) } && !buf.is_null() {
        // SAFETY: per the contract, `buf` is valid for `len` bytes.
        let out = unsafe { core::slice::from_raw_parts_mut(buf, len) };
        crate::liveness::open_bridge(out).unwrap_or(-1)
    } else {
        -1
    };
    saved.set();
    bridge
}

/// Called by the C exec wrappers when the real exec returned (failed).
#[unsafe(no_mangle)]
pub extern "C" fn qnxcompat_exec_failed(bridge: core::ffi::c_int) {
    if config::active() {
        let saved = Errno::last();
        if bridge >= 0 {
            crate::liveness::close_bridge(bridge);
        }
        locks::clear_exec_marks();
        locks::settle_deferred();
        saved.set();
    }
}

/// `int qnxcompat_verify(const char *registry, char *msg, size_t len)`:
/// checks a lock registry's every structure against every other (see
/// `Tables::verify`) and writes a one-line summary into `msg`. Returns 0
/// when consistent, 1 when not, 2 when the registry cannot be attached or
/// locked. `registry` NULL means the registry this process uses. Part of the
/// public C API, for test suites that want to confirm the registry after
/// torture.
///
/// # Safety
/// `registry` is NULL or NUL-terminated; `msg` is valid for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_verify(
    registry: *const core::ffi::c_char,
    msg: *mut u8,
    len: usize,
) -> core::ffi::c_int {
    use core::fmt::Write;
    let name = if registry.is_null() {
        config::registry_name()
    } else {
        // SAFETY: per the contract, a NUL-terminated string.
        unsafe { core::ffi::CStr::from_ptr(registry) }.to_bytes()
    };
    let out: &mut [u8] = if msg.is_null() || len == 0 {
        &mut []
    } else {
        // SAFETY: per the contract, `msg` is valid for `len` bytes.
        unsafe { core::slice::from_raw_parts_mut(msg, len) }
    };
    let cap = out.len().saturating_sub(1);
    let mut c = crate::fmt::Cursor::new(&mut out[..cap]);
    let code = match crate::registry::attach_named(name) {
        Err(refusal) => {
            let _ = c.write_str("cannot attach: ");
            let _ = refusal.describe(&mut c);
            2
        }
        Ok(reg) => {
            let code = match reg.lock() {
                Err(e) => {
                    let _ = write!(c, "cannot lock: {}", e.name());
                    2
                }
                Ok(mut g) => match g.tables().verify().and_then(|k| {
                    // The caller's own registry: its locks and the kernel's
                    // must agree too.
                    if registry.is_null() { locks::verify_mirror(&g.tables()).map(|_| k) } else { Ok(k) }
                }) {
                    Ok(k) => {
                        let _ = write!(
                            c,
                            "consistent: {} lock records, {} files, {} owners, {} waiters, {} mappings",
                            k.records, k.files, k.owners, k.waiters, k.maps
                        );
                        0
                    }
                    Err(why) => {
                        let _ = write!(c, "INCONSISTENT: {why}");
                        1
                    }
                },
            };
            // SAFETY: the guard is gone; nothing refers into this mapping.
            unsafe { reg.detach() };
            code
        }
    };
    let n = c.len();
    if let Some(z) = out.get_mut(n) {
        *z = 0;
    }
    code
}
