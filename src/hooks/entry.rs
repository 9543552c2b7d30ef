//! `fcntl` (every spelling), `lockf`/`lockf64` and `flock`: the Rust halves
//! of the C entry points in `shim/shim.c`.
//!
//! The C side reads the variadic argument and loops while we return
//! `AGAIN`, offering pthread cancellation between wait slices; `EINTR` tells
//! it to offer cancellation once more before failing with EINTR.
//!
//! # Safety
//! `arg` is the caller's third fcntl argument; for the lock commands it must
//! point to a `struct flock`, as fcntl(2) requires. NULL gives EFAULT.
#![allow(unsafe_code)]

use core::ffi::{c_int, c_long};
use core::fmt::Write;

use super::table;
use crate::config::{self, Func};
use crate::locks::{self, CallState, LockCmd, Outcome};
use crate::sys::{self, Errno};
use crate::trace::{self, Cursor, Ret, decode};

/// Sentinels shared with shim/shim.c.
const AGAIN: c_long = -1000;
const EINTR: c_long = -1001;

const ENTRY_FCNTL64: c_int = 1;
const ENTRY_UFCNTL: c_int = 2;
const ENTRY_LOCKF64: c_int = 4;

/// The real fcntl, or the raw syscall when libc's cannot be found.
///
/// # Safety
/// `arg` must be what `cmd` expects.
unsafe fn real_fcntl(fd: c_int, cmd: c_int, arg: usize) -> c_long {
    match table::fcntl64::get().or_else(table::fcntl::get) {
        // SAFETY: forwarding the caller's own arguments to libc's fcntl.
        Some(f) => unsafe { f(fd, cmd, arg) as c_long },
        // SAFETY: as above, to the kernel.
        None => match unsafe { sys::fcntl_raw(fd, cmd, arg) } {
            Ok(v) => v,
            Err(e) => {
                e.set();
                -1
            }
        },
    }
}

/// Turns an outcome into the value handed back to C, tracing final ones.
fn settle(out: Outcome, native: &mut dyn FnMut() -> c_long, trace_line: &mut dyn FnMut(Ret)) -> c_long {
    let saved = Errno::last();
    // Releases a signal handler's close() deferred while we were inside.
    locks::settle_deferred();
    match out {
        Outcome::Again => AGAIN,
        Outcome::Blocked => {
            trace_line(Ret::Blocked);
            AGAIN
        }
        Outcome::Interrupted => {
            trace_line(Ret::Int(-1, Errno::INTR));
            EINTR
        }
        Outcome::Done(v) => {
            trace_line(Ret::Int(v, Errno(0)));
            saved.set();
            v as c_long
        }
        Outcome::Failed(e) => {
            trace_line(Ret::Int(-1, e));
            e.set();
            -1
        }
        Outcome::Native => {
            let r = native();
            let e = Errno::last();
            trace_line(Ret::Int(r, e));
            e.set();
            r
        }
    }
}

/// While tracing: names what the call met in its way, at the end of its
/// line, for a refusal (EAGAIN, EACCES) or a wait that starts.
fn note_holder(out: &Outcome, call: &CallState, fd: c_int) {
    let waits = match out {
        Outcome::Blocked => true,
        Outcome::Failed(e) if *e == Errno::AGAIN || *e == Errno::ACCES => false,
        _ => return,
    };
    if !config::tracing_any() || call.holder_kind == locks::HELD_NONE {
        return;
    }
    let mut pid = call.holder_pid;
    if call.holder_kind == locks::HELD_OUTSIDE {
        // The kernel names the outside holder (asked only while tracing).
        let mut fl = libc::flock {
            l_type: libc::F_WRLCK as i16,
            l_whence: libc::SEEK_SET as i16,
            l_start: call.holder_start,
            l_len: if call.holder_end == i64::MAX { 0 } else { call.holder_end - call.holder_start + 1 },
            l_pid: 0,
        };
        // SAFETY: `fl` is a valid struct flock for F_GETLK.
        if unsafe { sys::fcntl_raw(fd, libc::F_GETLK, (&raw mut fl) as usize) }.is_ok() {
            pid = fl.l_pid;
        }
    }
    trace::set_note(&|c: &mut Cursor| {
        c.write_str(if waits { "by " } else { "held by " })?;
        if call.holder_kind == locks::HELD_OUTSIDE {
            c.write_str("a lock outside the library, ")?;
        }
        match call.holder_kind {
            locks::HELD_FLOCK => c.write_str("the flock() of ")?,
            locks::HELD_OFD => c.write_str("the OFD lock of ")?,
            _ => {}
        }
        if pid > 0 {
            write!(c, "pid {pid}")?;
            trace::comm(c, pid)?;
        } else {
            c.write_str("an open file")?;
        }
        if waits {
            c.write_str(" on ")?;
            trace::fd_path_bare(c, fd)?;
        }
        c.write_str(" ")?;
        trace::range(c, call.holder_start, call.holder_end)
    });
}

fn start_of(call: &mut CallState, f: Func) -> u64 {
    if call.start_ns == 0 && config::traced(f) {
        call.start_ns = sys::monotonic_ns();
    }
    call.start_ns
}

/// # Safety
/// `call` points to the C caller's `struct qnxcompat_call`; `arg` is as in
/// the module header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_fcntl(
    fd: c_int,
    cmd: c_int,
    arg: usize,
    entry: c_int,
    call: *mut CallState,
) -> c_long {
    let func = match entry {
        ENTRY_FCNTL64 => Func::Fcntl64,
        ENTRY_UFCNTL => Func::UFcntl,
        _ => Func::Fcntl,
    };
    // SAFETY: the shim passes a pointer to its own live local.
    let call = unsafe { &mut *call };
    let start = start_of(call, func);
    let lock_cmd = LockCmd::from_raw(cmd);
    if !config::active() || lock_cmd.is_none() {
        // SAFETY: the caller's own arguments, forwarded.
        let r = unsafe { real_fcntl(fd, cmd, arg) };
        if r >= 0 && matches!(cmd, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) {
            crate::local::fd_forget(r as c_int);
        }
        if lock_cmd.is_some() || !config::trace_locks_only() {
            trace::line(func, start, Ret::Int(r as i64, super::errno_of(r as i64)), &|c: &mut Cursor| {
                write!(c, "fd={fd}")?;
                if lock_cmd.is_some() {
                    trace::fd_path(c, fd)?;
                }
                c.write_str(", ")?;
                decode::cmd(c, cmd)?;
                write!(c, ", {arg:#x}")
            });
        }
        return r;
    }
    let before = crate::usermem::read_flock(arg).ok();
    let mut after = before;
    let is_get = matches!(lock_cmd, Some(LockCmd::GetLk | LockCmd::OfdGetLk));
    let out = match (&mut after, lock_cmd) {
        (Some(fl), Some(c)) => locks::fcntl_lock(fd, c, fl, call),
        _ => Outcome::Failed(Errno::FAULT),
    };
    let out = match (out, after, is_get) {
        (Outcome::Done(v), Some(fl), true) => match crate::usermem::write_flock(arg, &fl) {
            Ok(()) => Outcome::Done(v),
            Err(e) => Outcome::Failed(e),
        },
        (out, _, _) => out,
    };
    note_holder(&out, call, fd);
    settle(
        out,
        // SAFETY: the caller's own arguments, forwarded.
        &mut || unsafe { real_fcntl(fd, cmd, arg) },
        &mut |ret| {
            trace::line(func, start, ret, &|c: &mut Cursor| {
                write!(c, "fd={fd}")?;
                trace::fd_path(c, fd)?;
                c.write_str(", ")?;
                decode::cmd(c, cmd)?;
                match (before, after) {
                    (None, _) => c.write_str(", NULL"),
                    (Some(b), Some(a)) if is_get => {
                        c.write_str(", ")?;
                        decode::flock(c, &b)?;
                        c.write_str(" -> ")?;
                        decode::flock_answer(c, &a)
                    }
                    (Some(b), _) => {
                        c.write_str(", ")?;
                        decode::flock(c, &b)
                    }
                }
            })
        },
    )
}

/// # Safety
/// `call` points to the C caller's `struct qnxcompat_call`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_lockf(
    fd: c_int,
    function: c_int,
    size: i64,
    entry: c_int,
    call: *mut CallState,
) -> c_long {
    let func = if entry == ENTRY_LOCKF64 { Func::Lockf64 } else { Func::Lockf };
    // SAFETY: the shim passes a pointer to its own live local.
    let call = unsafe { &mut *call };
    let start = start_of(call, func);
    let real = &mut || match table::lockf64::get() {
        // SAFETY: the caller's own arguments, forwarded to libc.
        Some(f) => unsafe { f(fd, function, size) as c_long },
        None => {
            Errno::NOSYS.set();
            -1
        }
    };
    let out = if config::active() { locks::lockf(fd, function, size, call) } else { Outcome::Native };
    note_holder(&out, call, fd);
    settle(out, real, &mut |ret| {
        trace::line(func, start, ret, &|c: &mut Cursor| {
            write!(c, "fd={fd}")?;
            trace::fd_path(c, fd)?;
            c.write_str(", ")?;
            decode::lockf_function(c, function)?;
            write!(c, ", size={size}")
        })
    })
}

/// # Safety
/// `call` points to the C caller's `struct qnxcompat_call`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_flock(fd: c_int, operation: c_int, call: *mut CallState) -> c_long {
    // SAFETY: the shim passes a pointer to its own live local.
    let call = unsafe { &mut *call };
    let start = start_of(call, Func::Flock);
    let real = &mut || match table::flock::get() {
        // SAFETY: the caller's own arguments, forwarded to libc.
        Some(f) => unsafe { f(fd, operation) as c_long },
        None => {
            Errno::NOSYS.set();
            -1
        }
    };
    let out = if config::active() { locks::flock(fd, operation, call) } else { Outcome::Native };
    note_holder(&out, call, fd);
    settle(out, real, &mut |ret| {
        trace::line(Func::Flock, start, ret, &|c: &mut Cursor| {
            write!(c, "fd={fd}")?;
            trace::fd_path(c, fd)?;
            c.write_str(", ")?;
            decode::flock_op(c, operation)
        })
    })
}

/// # Safety
/// `call` points to the C caller's `struct qnxcompat_call`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_call_abandon(call: *mut CallState) {
    // SAFETY: the shim passes a pointer to its own live local.
    let call = unsafe { &mut *call };
    let saved = Errno::last();
    locks::abandon(call);
    saved.set();
}

/// Called by the C open/openat/creat/dup wrappers with the descriptor they
/// returned: whatever the cache knew of that number is stale now.
#[unsafe(no_mangle)]
pub extern "C" fn qnxcompat_fd_fresh(fd: c_int) {
    crate::local::fd_forget(fd);
}
