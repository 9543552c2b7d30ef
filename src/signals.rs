//! Caught signals, counted, so that a blocked lock call never misses one.
//!
//! QNX lockf(): "Blocking on a section is interrupted by any signal." A
//! wait that sleeps in `FUTEX_WAIT` gets EINTR from the kernel when a
//! handler runs during the sleep; a handler that runs just *before* the
//! sleep (while the call takes the registry mutex, probes a holder, or
//! re-checks after a wake) leaves no trace, and the call would sleep on.
//! So the library installs its own trampoline in front of every handler a
//! program installs with `sigaction`/`signal` (`crate::hooks::sig`): it
//! counts the signal for the thread, and if the thread is about to sleep
//! on a futex word it bumps that word and wakes it. A wait takes the count
//! when the call starts and fails with EINTR as soon as it moved, at any
//! step; the bump makes a `FUTEX_WAIT` entered just after the handler
//! return at once instead of sleeping.
//!
//! The program sees its own handlers: `sigaction`'s old action reports
//! them, flags and all, and the trampoline hands them the same `siginfo_t`
//! and `ucontext_t`. Handlers installed behind libc's back (a raw
//! `rt_sigaction`) are not counted; their signals still interrupt a sleep.
//!
//! # Safety
//! The trampoline runs in signal context: it touches only atomics and a
//! const-initialised thread-local, and calls the program's handler through
//! the pointer the program gave.
#![allow(unsafe_code)]

use core::cell::Cell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

const NSIG: usize = 65;

/// An empty siginfo per signal, for the held-back slots.
// SAFETY: an all-zero siginfo_t is a valid (empty) value.
const EMPTY_INFO: [libc::siginfo_t; NSIG] = unsafe { core::mem::zeroed() };

/// The program's handler per signal (0: none of ours is installed).
static USER: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
/// Whether it takes three arguments (SA_SIGINFO).
static USER_SIGINFO: [AtomicU32; NSIG] = [const { AtomicU32::new(0) }; NSIG];

thread_local! {
    /// Signals held back while this thread was inside the registry (bit per
    /// signal), with the siginfo of each, re-sent when it leaves.
    static HELD: Cell<u64> = const { Cell::new(0) };
    static HELD_INFO: core::cell::UnsafeCell<[libc::siginfo_t; NSIG]> = const { core::cell::UnsafeCell::new(EMPTY_INFO) };
    /// Caught signals delivered to this thread through the trampoline.
    static SEEN: Cell<u32> = const { Cell::new(0) };
    /// The futex word this thread is about to sleep on, or null.
    static SLEEP_WORD: Cell<*const AtomicU32> = const { Cell::new(core::ptr::null()) };
}

/// The trampoline every wrapped handler goes through.
///
/// # Safety
/// Called by the kernel with a signal number and, since SA_SIGINFO is set,
/// valid `info` and `ctx` pointers.
pub unsafe extern "C" fn trampoline(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // Inside the registry (its mutex may be held) the program's handler
    // must not run: it could longjmp out and leave the mutex held forever,
    // or lock again. An asynchronous signal is held back and re-sent, with
    // its siginfo, as soon as the thread leaves (`leave_registry`); a fault
    // is the instruction's own and is delivered now.
    let synchronous =
        matches!(sig, libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP | libc::SIGSYS);
    if !synchronous && crate::registry::in_registry() && (sig as usize) < 64 && !info.is_null() {
        HELD.with(|h| h.set(h.get() | 1 << sig));
        // SAFETY: our thread's own slot; `info` is the kernel's.
        HELD_INFO.with(|a| unsafe { (*a.get())[sig as usize] = *info });
        return;
    }
    SEEN.with(|c| c.set(c.get().wrapping_add(1)));
    let word = SLEEP_WORD.with(|w| w.get());
    if !word.is_null() {
        // SAFETY: the word lives in the registry mapping, which is never
        // unmapped; set only around this thread's own sleep.
        let w = unsafe { &*word };
        w.fetch_add(1, Ordering::AcqRel);
        crate::sys::futex_wake_all(w);
    }
    let Some(i) = usize::try_from(sig).ok().filter(|&i| i < NSIG) else { return };
    let h = USER[i].load(Ordering::Acquire);
    if h == 0 || h == libc::SIG_DFL || h == libc::SIG_IGN {
        return;
    }
    if USER_SIGINFO[i].load(Ordering::Acquire) != 0 {
        // SAFETY: the program installed this three-argument handler.
        let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = unsafe { core::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the program installed this one-argument handler.
        let f: extern "C" fn(c_int) = unsafe { core::mem::transmute(h) };
        f(sig);
    }
}

fn trampoline_addr() -> usize {
    trampoline as *const () as usize
}

/// Re-sends the signals held back while this thread was inside the registry
/// (see `trampoline`); the registry calls it when the thread leaves.
pub fn leave_registry() {
    let held = HELD.with(|h| h.replace(0));
    if held == 0 {
        return;
    }
    for sig in 1..64 {
        if held & 1 << sig != 0 {
            // SAFETY: our thread's own slot, written by the trampoline.
            let mut info = HELD_INFO.with(|a| unsafe { (*a.get())[sig] });
            crate::sys::resend_to_self(sig as c_int, &mut info);
        }
    }
}

/// Caught signals this thread has seen so far.
pub fn seen() -> u32 {
    SEEN.with(|c| c.get())
}

/// Marks `word` as the futex word this thread is about to sleep on (None
/// after the sleep).
pub fn sleeping_on(word: Option<&AtomicU32>) {
    SLEEP_WORD.with(|w| w.set(word.map_or(core::ptr::null(), |w| w as *const AtomicU32)));
}

/// Rewrites a program's new action to go through the trampoline, noting
/// its handler; SIG_DFL and SIG_IGN pass unchanged.
pub fn wrap(sig: c_int, act: &mut libc::sigaction) {
    let Some(i) = usize::try_from(sig).ok().filter(|&i| i < NSIG) else { return };
    let h = act.sa_sigaction;
    if h == trampoline_addr() {
        return; // already ours: keep the handler noted for it
    }
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        USER[i].store(0, Ordering::Release);
        return;
    }
    USER_SIGINFO[i].store(u32::from(act.sa_flags & libc::SA_SIGINFO != 0), Ordering::Release);
    USER[i].store(h, Ordering::Release);
    act.sa_sigaction = trampoline_addr();
    act.sa_flags |= libc::SA_SIGINFO;
}

/// Turns an action the kernel reports back into the program's own.
pub fn unwrap(sig: c_int, old: &mut libc::sigaction, user_before: (usize, u32)) {
    let (h, siginfo) = user_before;
    if old.sa_sigaction != trampoline_addr() {
        // SA_RESETHAND put SIG_DFL back, keeping the flags we installed:
        // report the program's own.
        if h != 0 && siginfo == 0 && old.sa_sigaction == libc::SIG_DFL {
            old.sa_flags &= !libc::SA_SIGINFO;
        }
        return;
    }
    let _ = sig;
    old.sa_sigaction = h;
    if siginfo == 0 {
        old.sa_flags &= !libc::SA_SIGINFO;
    }
}

/// The program's handler noted for `sig` now (for `unwrap`).
pub fn user_of(sig: c_int) -> (usize, u32) {
    usize::try_from(sig)
        .ok()
        .filter(|&i| i < NSIG)
        .map_or((0, 0), |i| (USER[i].load(Ordering::Acquire), USER_SIGINFO[i].load(Ordering::Acquire)))
}
