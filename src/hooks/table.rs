//! The hook table: one row per interposed libc function, the real one found
//! with `dlsym(RTLD_NEXT)` and cached in an atomic.
//!
//! The constructor resolves every row; a row still empty when used (a hook
//! reached before the constructor, e.g. from another library's constructor)
//! resolves lazily. A function missing from this libc (close_range and
//! closefrom arrived in glibc 2.34) stays `None`, and its hook falls back to
//! the raw syscall.
//!
//! # Safety
//! Each row's pointer is transmuted to the C signature written in its row,
//! which is the function's documented glibc prototype.
#![allow(unsafe_code)]

use core::ffi::{CStr, c_int, c_uint, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};

fn resolve(slot: &AtomicPtr<c_void>, name: &CStr) -> *mut c_void {
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        return p;
    }
    // SAFETY: `name` is NUL-terminated; RTLD_NEXT finds the definition after
    // ours in the lookup order, i.e. libc's.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    slot.store(p, Ordering::Release);
    p
}

macro_rules! hook_table {
    ($( $name:ident = $sym:literal : $fnty:ty; )*) => {
        $(
            pub mod $name {
                use super::*;
                static SLOT: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
                pub type Fn = $fnty;
                /// The real function, if this libc has it.
                pub fn get() -> Option<Fn> {
                    let p = resolve(&SLOT, $sym);
                    // SAFETY: a non-null pointer from dlsym for this symbol
                    // is the function with this row's C signature.
                    (!p.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, Fn>(p) })
                }
                pub(super) fn preload() {
                    resolve(&SLOT, $sym);
                }
            }
        )*
        /// Resolves every row (called by the constructor).
        pub fn resolve_all() {
            $( $name::preload(); )*
        }
    };
}

hook_table! {
    fcntl64 = c"fcntl64": unsafe extern "C" fn(c_int, c_int, ...) -> c_int;
    fcntl = c"fcntl": unsafe extern "C" fn(c_int, c_int, ...) -> c_int;
    lockf64 = c"lockf64": unsafe extern "C" fn(c_int, c_int, i64) -> c_int;
    flock = c"flock": unsafe extern "C" fn(c_int, c_int) -> c_int;
    close = c"close": unsafe extern "C" fn(c_int) -> c_int;
    fclose = c"fclose": unsafe extern "C" fn(*mut libc::FILE) -> c_int;
    fcloseall = c"fcloseall": unsafe extern "C" fn() -> c_int;
    fileno = c"fileno": unsafe extern "C" fn(*mut libc::FILE) -> c_int;
    dup2 = c"dup2": unsafe extern "C" fn(c_int, c_int) -> c_int;
    dup3 = c"dup3": unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
    close_range = c"close_range": unsafe extern "C" fn(c_uint, c_uint, c_int) -> c_int;
    closefrom = c"closefrom": unsafe extern "C" fn(c_int) -> ();
    mlock = c"mlock": unsafe extern "C" fn(*const c_void, usize) -> c_int;
    munlock = c"munlock": unsafe extern "C" fn(*const c_void, usize) -> c_int;
    mlockall = c"mlockall": unsafe extern "C" fn(c_int) -> c_int;
    munlockall = c"munlockall": unsafe extern "C" fn() -> c_int;
    mmap = c"mmap": unsafe extern "C" fn(*mut c_void, usize, c_int, c_int, c_int, i64) -> *mut c_void;
    munmap = c"munmap": unsafe extern "C" fn(*mut c_void, usize) -> c_int;
    fork = c"fork": unsafe extern "C" fn() -> libc::pid_t;
    sigaction = c"sigaction": unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
    signal = c"signal": unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t;
    sysv_signal = c"sysv_signal": unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t;
    mlock2 = c"mlock2": unsafe extern "C" fn(*const c_void, usize, c_uint) -> c_int;
}
