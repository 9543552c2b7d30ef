//! Every path that closes a descriptor: QNX releases all of a process's
//! locks on a file at the first close of *any* descriptor for it.
//!
//! glibc closes internally without going through `close` (fclose,
//! fcloseall, closefrom, close_range), so each of those is hooked itself.
//!
//! `close` may run in a signal handler, so this path is async-signal-safe:
//! when the process holds no locks it costs two atomic loads and no syscall;
//! otherwise one `fstat` and a lock-free filter decide whether the registry
//! is needed at all. It never allocates.
//!
//! # Safety
//! These are exported C functions; `FILE *` arguments are the caller's and
//! are handed to libc unchanged.
#![allow(unsafe_code)]

use core::ffi::{c_int, c_uint};
use core::fmt::Write;

use super::{errno_of, table};
use crate::config::{self, Func};
use crate::local;
use crate::locks::{self, FdSnapshot};
use crate::sys::{self, Errno};
use crate::trace::{self, Cursor, Ret};

fn now_if(f: Func) -> u64 {
    if config::traced(f) { sys::monotonic_ns() } else { 0 }
}

/// Settles a close-like call: releases `locked` if the descriptor is gone,
/// then traces.
fn closed(
    f: Func,
    start: u64,
    r: c_int,
    locked: Option<(u64, u64)>,
    args: &dyn Fn(&mut Cursor) -> core::fmt::Result,
) -> c_int {
    let e = errno_of(r as i64);
    let mut released = 0;
    if let Some((dev, ino)) = locked {
        // Linux closes the descriptor even when close() reports EINTR.
        if r == 0 || e == Errno::INTR {
            // errno is the call's own: the release's syscalls leave no trace.
            let saved = Errno::last();
            released = locks::release_file(dev, ino);
            saved.set();
        }
    }
    close_line(f, start, Ret::Int(r as i64, e), released, args);
    if r == -1 {
        e.set();
    }
    r
}

/// The trace line of a close-like call, saying what it released
/// (`released 2 locks`); under `QNXCOMPAT_TRACE=locks` only when it
/// released something.
fn close_line(f: Func, start: u64, ret: Ret, released: u32, args: &dyn Fn(&mut Cursor) -> core::fmt::Result) {
    if released > 0 {
        trace::set_note(&|c: &mut Cursor| {
            write!(c, "released {released} lock{}", if released == 1 { "" } else { "s" })
        });
    }
    if released > 0 || !config::trace_locks_only() {
        trace::line(f, start, ret, args);
    }
}

fn real_close(fd: c_int) -> c_int {
    match table::close::get() {
        // SAFETY: forwarding the caller's descriptor to libc.
        Some(f) => unsafe { f(fd) },
        None => match sys::close(fd) {
            Ok(()) => 0,
            Err(e) => {
                e.set();
                -1
            }
        },
    }
}

fn close_hook(f: Func, fd: c_int) -> c_int {
    if !config::active() {
        return real_close(fd);
    }
    let start = now_if(f);
    let locked = locks::locked_file_of(fd);
    let r = real_close(fd);
    // After the close: a racing open of the same number is hooked and
    // forgets the entry itself.
    local::fd_forget(fd);
    closed(f, start, r, locked, &|c| write!(c, "fd={fd}"))
}

#[unsafe(no_mangle)]
pub extern "C" fn close(fd: c_int) -> c_int {
    close_hook(Func::Close, fd)
}

#[unsafe(no_mangle)]
pub extern "C" fn __close(fd: c_int) -> c_int {
    close_hook(Func::UClose, fd)
}

/// # Safety
/// `stream` is the caller's `FILE *`, as fclose(3) requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fclose(stream: *mut libc::FILE) -> c_int {
    let Some(real) = table::fclose::get() else {
        Errno::NOSYS.set();
        return -1;
    };
    if !config::active() || stream.is_null() {
        // SAFETY: the caller's stream, forwarded.
        return unsafe { real(stream) };
    }
    let start = now_if(Func::Fclose);
    // SAFETY: a non-NULL stream the caller is about to close is still open.
    let fd = table::fileno::get().map_or(-1, |fileno| unsafe { fileno(stream) });
    let locked = if fd >= 0 { locks::locked_file_of(fd) } else { None };
    local::fd_forget(fd);
    // SAFETY: the caller's stream, forwarded.
    let r = unsafe { real(stream) };
    local::fd_forget(fd);
    closed(Func::Fclose, start, r, locked, &|c| write!(c, "stream={stream:p} (fd={fd})"))
}

#[unsafe(no_mangle)]
pub extern "C" fn fcloseall() -> c_int {
    let Some(real) = table::fcloseall::get() else {
        Errno::NOSYS.set();
        return -1;
    };
    if !config::active() {
        // SAFETY: no arguments.
        return unsafe { real() };
    }
    let start = now_if(Func::Fcloseall);
    let entry = Errno::last();
    let (r, released) = FdSnapshot::take(0, u32::MAX).around(|| {
        // SAFETY: no arguments.
        let r = unsafe { real() };
        local::fd_forget_range(0, u32::MAX);
        r
    });
    let e = errno_of(r as i64);
    close_line(Func::Fcloseall, start, Ret::Int(r as i64, e), released, &|_| Ok(()));
    if r == -1 {
        e.set()
    } else {
        entry.set()
    }
    r
}

/// dup2/dup3 close `newfd` first when it is open and differs from `oldfd`.
fn dup_hook(f: Func, oldfd: c_int, newfd: c_int, flags: c_int, real: &dyn Fn() -> c_int) -> c_int {
    if !config::active() {
        return real();
    }
    let start = now_if(f);
    let entry = Errno::last();
    let locked = if oldfd != newfd { locks::locked_file_of(newfd) } else { None };
    local::fd_forget(newfd);
    let r = real();
    local::fd_forget(newfd);
    let e = errno_of(r as i64);
    let mut released = 0;
    if r >= 0
        && let Some((dev, ino)) = locked
    {
        released = locks::release_file(dev, ino);
    }
    close_line(f, start, Ret::Int(r as i64, e), released, &|c| {
        write!(c, "oldfd={oldfd}, newfd={newfd}")?;
        if f == Func::Dup3 { write!(c, ", flags={flags:#x}") } else { Ok(()) }
    });
    if r == -1 {
        e.set()
    } else {
        entry.set()
    }
    r
}

#[unsafe(no_mangle)]
pub extern "C" fn dup2(oldfd: c_int, newfd: c_int) -> c_int {
    dup_hook(Func::Dup2, oldfd, newfd, 0, &|| match table::dup2::get() {
        // SAFETY: the caller's descriptors, forwarded.
        Some(f) => unsafe { f(oldfd, newfd) },
        None => -1,
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn dup3(oldfd: c_int, newfd: c_int, flags: c_int) -> c_int {
    dup_hook(Func::Dup3, oldfd, newfd, flags, &|| match table::dup3::get() {
        // SAFETY: the caller's descriptors, forwarded.
        Some(f) => unsafe { f(oldfd, newfd, flags) },
        None => -1,
    })
}

/// close_range and closefrom close many descriptors at once: note the locked
/// ones first, then release those that the call closed.
fn range_close(f: Func, lo: c_uint, hi: c_uint, flags: c_int, real: &dyn Fn() -> c_int) -> c_int {
    if !config::active() || flags & libc::CLOSE_RANGE_CLOEXEC as c_int != 0 {
        return real();
    }
    let start = now_if(f);
    let entry = Errno::last();
    local::fd_forget_range(lo, hi);
    let (r, released) = FdSnapshot::take(lo, hi).around(|| {
        let r = real();
        local::fd_forget_range(lo, hi);
        r
    });
    let e = errno_of(r as i64);
    close_line(f, start, Ret::Int(r as i64, e), released, &|c| {
        if f == Func::Closefrom {
            write!(c, "lowfd={lo}")
        } else {
            write!(c, "first={lo}, last={hi}, flags={flags:#x}")
        }
    });
    if r == -1 {
        e.set()
    } else {
        entry.set()
    }
    r
}

#[unsafe(no_mangle)]
pub extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    range_close(Func::CloseRange, first, last, flags, &|| match table::close_range::get() {
        // SAFETY: the caller's arguments, forwarded.
        Some(f) => unsafe { f(first, last, flags) },
        // SAFETY: integer-only syscall with the caller's arguments.
        None => unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) as c_int },
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn closefrom(lowfd: c_int) {
    let lo = lowfd.max(0) as c_uint;
    range_close(Func::Closefrom, lo, c_uint::MAX, 0, &|| match table::closefrom::get() {
        Some(f) => {
            // SAFETY: the caller's argument, forwarded; closefrom returns void.
            unsafe { f(lowfd) };
            0
        }
        // SAFETY: integer-only syscall.
        None => unsafe { libc::syscall(libc::SYS_close_range, lo, c_uint::MAX, 0) as c_int },
    });
}
