//! `sigaction`, `signal`, `bsd_signal`, `sysv_signal`: the program's
//! handlers go through [`crate::signals::trampoline`], which counts each
//! caught signal so that a blocked lock call never misses one (QNX: "Blocking
//! on a section is interrupted by any signal"). Async-signal-safe, like
//! `sigaction` itself: atomics only.
//!
//! # Safety
//! Pointer arguments come from C callers: NULL or valid `struct sigaction`s.
#![allow(unsafe_code)]

use core::ffi::c_int;

use super::table;
use crate::config;
use crate::signals;
use crate::sys::Errno;

/// `sigaction(sig, act, oldact)`, with the handler wrapped.
///
/// # Safety
/// `act` and `old` are NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    let Some(real) = table::sigaction::get() else {
        Errno::NOSYS.set();
        return -1;
    };
    if !config::active() {
        // SAFETY: the caller's own arguments, forwarded.
        return unsafe { real(sig, act, old) };
    }
    let before = signals::user_of(sig);
    let r = if act.is_null() {
        // SAFETY: as above.
        unsafe { real(sig, act, old) }
    } else {
        // SAFETY: `act` is valid per the contract; we pass a wrapped copy.
        let mut a = unsafe { *act };
        signals::wrap(sig, &mut a);
        // SAFETY: `a` lives across the call; `old` as the caller gave it.
        unsafe { real(sig, &a, old) }
    };
    if r == 0 && !old.is_null() {
        // SAFETY: the kernel filled `*old`.
        signals::unwrap(sig, unsafe { &mut *old }, before);
    }
    r
}

/// Installs `handler` with `flags` through our `sigaction`, as glibc's
/// `signal` family does; returns the old handler or SIG_ERR.
fn install(sig: c_int, handler: libc::sighandler_t, flags: c_int, mask_self: bool) -> libc::sighandler_t {
    // SAFETY: an all-zero sigaction is a valid empty action to fill.
    let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    // SAFETY: `act.sa_mask` is a valid sigset_t.
    unsafe {
        libc::sigemptyset(&mut act.sa_mask);
        if mask_self && sig > 0 {
            libc::sigaddset(&mut act.sa_mask, sig);
        }
    }
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: both pointers are to our locals.
    if unsafe { sigaction(sig, &act, &mut old) } != 0 { libc::SIG_ERR } else { old.sa_sigaction }
}

/// `signal(sig, handler)`: BSD semantics, as glibc's (SA_RESTART, the
/// signal blocked in its handler).
#[unsafe(no_mangle)]
pub extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if !config::active() {
        return match table::signal::get() {
            // SAFETY: the caller's own arguments, forwarded.
            Some(f) => unsafe { f(sig, handler) },
            None => libc::SIG_ERR,
        };
    }
    install(sig, handler, libc::SA_RESTART, true)
}

/// `bsd_signal(sig, handler)`: the same as `signal`.
#[unsafe(no_mangle)]
pub extern "C" fn bsd_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    signal(sig, handler)
}

/// `__sysv_signal`: what `signal` is under `-std=c99` and other strict
/// modes (glibc redirects it there).
#[unsafe(no_mangle)]
pub extern "C" fn __sysv_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    sysv_signal(sig, handler)
}

/// `sysv_signal(sig, handler)`: System V semantics (reset to SIG_DFL on
/// delivery, not blocked in its handler).
#[unsafe(no_mangle)]
pub extern "C" fn sysv_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if !config::active() {
        return match table::sysv_signal::get() {
            // SAFETY: the caller's own arguments, forwarded.
            Some(f) => unsafe { f(sig, handler) },
            None => libc::SIG_ERR,
        };
    }
    install(sig, handler, libc::SA_RESETHAND | libc::SA_NODEFER, false)
}
