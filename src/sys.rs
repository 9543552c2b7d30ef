//! Thin, typed wrappers over the raw Linux syscalls the library makes itself.
//!
//! Every call here goes straight to `syscall(2)`. None goes through the libc
//! symbol, because our own exports (`close`, `fcntl`, `mmap`, ...) would win
//! symbol resolution and re-enter the hooks. Nothing here allocates, and
//! every function is async-signal-safe.
//!
//! # Safety
//! This file issues raw syscalls. Each wrapper states what its pointers must
//! satisfy; the integer-only ones are safe.
#![allow(unsafe_code)]

use core::ffi::{CStr, c_int, c_long};

/// An errno value (rustix's shape: a newtype, because the host may know
/// values we do not, and an unknown value must never be undefined behaviour).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct Errno(pub c_int);

impl Errno {
    pub const PERM: Errno = Errno(libc::EPERM);
    pub const NOENT: Errno = Errno(libc::ENOENT);
    pub const SRCH: Errno = Errno(libc::ESRCH);
    pub const INTR: Errno = Errno(libc::EINTR);
    pub const BADF: Errno = Errno(libc::EBADF);
    pub const AGAIN: Errno = Errno(libc::EAGAIN);
    pub const NOMEM: Errno = Errno(libc::ENOMEM);
    pub const ACCES: Errno = Errno(libc::EACCES);
    pub const FAULT: Errno = Errno(libc::EFAULT);
    pub const EXIST: Errno = Errno(libc::EEXIST);
    pub const INVAL: Errno = Errno(libc::EINVAL);
    pub const DEADLK: Errno = Errno(libc::EDEADLK);
    pub const NOLCK: Errno = Errno(libc::ENOLCK);
    pub const NOSYS: Errno = Errno(libc::ENOSYS);
    pub const OVERFLOW: Errno = Errno(libc::EOVERFLOW);
    pub const TIMEDOUT: Errno = Errno(libc::ETIMEDOUT);
    pub const WOULDBLOCK: Errno = Errno(libc::EWOULDBLOCK);

    /// The calling thread's errno.
    pub fn last() -> Errno {
        // SAFETY: __errno_location always returns the calling thread's errno slot.
        Errno(unsafe { *libc::__errno_location() })
    }

    /// Sets the calling thread's errno.
    pub fn set(self) {
        // SAFETY: as in `last`.
        unsafe { *libc::__errno_location() = self.0 }
    }

    /// The symbolic name, e.g. `"EAGAIN"`, for traces.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "OK",
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::ESRCH => "ESRCH",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::EBADF => "EBADF",
            libc::ECHILD => "ECHILD",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::ENODEV => "ENODEV",
            libc::ENOTDIR => "ENOTDIR",
            libc::EISDIR => "EISDIR",
            libc::EINVAL => "EINVAL",
            libc::ENFILE => "ENFILE",
            libc::EMFILE => "EMFILE",
            libc::ESPIPE => "ESPIPE",
            libc::ENOSPC => "ENOSPC",
            libc::EDQUOT => "EDQUOT",
            libc::EROFS => "EROFS",
            libc::EPIPE => "EPIPE",
            libc::ERANGE => "ERANGE",
            libc::ELOOP => "ELOOP",
            libc::EDEADLK => "EDEADLK",
            libc::ENOLCK => "ENOLCK",
            libc::ENOSYS => "ENOSYS",
            libc::EOVERFLOW => "EOVERFLOW",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::EOWNERDEAD => "EOWNERDEAD",
            libc::ENOTRECOVERABLE => "ENOTRECOVERABLE",
            _ => "E?",
        }
    }
}

pub type Result<T> = core::result::Result<T, Errno>;

/// Decodes a raw syscall return: `-1` means errno holds the reason.
fn check(r: c_long) -> Result<c_long> {
    if r == -1 { Err(Errno::last()) } else { Ok(r) }
}

/// `close(fd)` without passing through our own `close` hook.
pub fn close(fd: c_int) -> Result<()> {
    // SAFETY: integer-only syscall.
    check(unsafe { libc::syscall(libc::SYS_close, fd) }).map(drop)
}

/// `fstat(fd)`.
pub fn fstat(fd: c_int) -> Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer for the kernel to fill.
    check(unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) })?;
    Ok(st)
}

/// `fcntl(fd, cmd, arg)` for commands whose argument is an integer.
pub fn fcntl_int(fd: c_int, cmd: c_int, arg: c_long) -> Result<c_long> {
    // SAFETY: integer commands only; the caller never passes a pointer command.
    check(unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) })
}

/// `fcntl(fd, cmd, arg)` passed through verbatim, for commands we do not
/// handle ourselves.
///
/// # Safety
/// `arg` must be what the kernel expects for `cmd` (the caller's own
/// argument, forwarded unchanged).
pub unsafe fn fcntl_raw(fd: c_int, cmd: c_int, arg: usize) -> Result<c_long> {
    // SAFETY: forwarded per this function's contract.
    check(unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) })
}

/// `lseek(fd, 0, SEEK_CUR)`: the current file offset.
pub fn current_offset(fd: c_int) -> Result<i64> {
    // SAFETY: integer-only syscall.
    check(unsafe { libc::syscall(libc::SYS_lseek, fd, 0 as libc::off_t, libc::SEEK_CUR) })
}

/// `open(path, flags, mode)`; flags always gain O_CLOEXEC so that a
/// concurrent fork+exec never inherits a descriptor of ours.
pub fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<c_int> {
    // SAFETY: `path` is NUL-terminated by construction of CStr.
    check(unsafe {
        libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags | libc::O_CLOEXEC, mode as c_long)
    })
    .map(|fd| fd as c_int)
}

/// `open(path, flags, mode)` without the close-on-exec flag: the one
/// descriptor the library hands across an exec (the anchor bridge).
pub fn open_inheritable(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<c_int> {
    // SAFETY: `path` is NUL-terminated by construction of CStr.
    check(unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags, mode as c_long) })
        .map(|fd| fd as c_int)
}

/// `readlink(path)` into `buf`; the bytes written.
pub fn readlink(path: &CStr, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `path` is NUL-terminated; `buf` is valid for its length.
    check(unsafe { libc::syscall(libc::SYS_readlinkat, libc::AT_FDCWD, path.as_ptr(), buf.as_mut_ptr(), buf.len()) })
        .map(|n| n as usize)
}

/// `read(fd, buf)`.
pub fn read(fd: c_int, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    check(unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) }).map(|n| n as usize)
}

/// `write(fd, buf)`; one call, so a line lands whole.
pub fn write(fd: c_int, buf: &[u8]) -> Result<usize> {
    // SAFETY: `buf` is valid for reads of its length.
    check(unsafe { libc::syscall(libc::SYS_write, fd, buf.as_ptr(), buf.len()) }).map(|n| n as usize)
}

/// Sends `sig` to the calling thread (`tgkill`).
pub fn raise_in_thread(sig: c_int) {
    // SAFETY: integer-only syscall with our own ids.
    unsafe { libc::syscall(libc::SYS_tgkill, getpid(), gettid(), sig) };
}

/// `unsetenv(name)`, for the library constructor only: it runs before the
/// program's `main`, so no other thread reads or writes the environment.
pub fn unsetenv_in_constructor(name: &CStr) {
    // SAFETY: as above; `name` is NUL-terminated.
    unsafe { libc::unsetenv(name.as_ptr()) };
}

/// The raw `mlock2` syscall.
pub fn mlock2_raw(addr: usize, len: usize, flags: u32) -> Result<()> {
    // SAFETY: integer-only syscall.
    check(unsafe { libc::syscall(libc::SYS_mlock2, addr, len, flags) }).map(drop)
}

/// `sched_yield()`.
pub fn sched_yield() {
    // SAFETY: no arguments.
    unsafe { libc::syscall(libc::SYS_sched_yield) };
}

/// `fallocate(fd, 0, off, len)`: allocates the range (a tmpfs page that is
/// allocated never raises SIGBUS when touched).
pub fn fallocate(fd: c_int, off: u64, len: u64) -> Result<()> {
    loop {
        // SAFETY: integer-only syscall.
        let r = unsafe { libc::syscall(libc::SYS_fallocate, fd, 0, off as libc::off_t, len as libc::off_t) };
        match check(r) {
            Err(Errno::INTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// Sends `sig` with `info` to the calling thread (`rt_tgsigqueueinfo`, which
/// keeps the siginfo when a process signals itself); `tgkill` if refused.
pub fn resend_to_self(sig: c_int, info: &mut libc::siginfo_t) {
    let saved = Errno::last();
    // SAFETY: `info` is a valid siginfo_t; ids are our own.
    let r =
        unsafe { libc::syscall(libc::SYS_rt_tgsigqueueinfo, getpid(), gettid(), sig, info as *mut libc::siginfo_t) };
    if r != 0 {
        raise_in_thread(sig);
    }
    saved.set();
}

/// `pread(fd, buf, off)`.
pub fn pread(fd: c_int, buf: &mut [u8], off: i64) -> Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    check(unsafe { libc::syscall(libc::SYS_pread64, fd, buf.as_mut_ptr(), buf.len(), off) }).map(|n| n as usize)
}

/// `ftruncate(fd, len)`.
pub fn ftruncate(fd: c_int, len: u64) -> Result<()> {
    // SAFETY: integer-only syscall.
    check(unsafe { libc::syscall(libc::SYS_ftruncate, fd, len as libc::off_t) }).map(drop)
}

/// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`.
pub fn map_shared(fd: c_int, len: usize) -> Result<*mut u8> {
    map_with(fd, len, libc::PROT_READ | libc::PROT_WRITE)
}

/// `mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0)`.
pub fn map_shared_ro(fd: c_int, len: usize) -> Result<*mut u8> {
    map_with(fd, len, libc::PROT_READ)
}

fn map_with(fd: c_int, len: usize, prot: c_int) -> Result<*mut u8> {
    // SAFETY: a fresh mapping chosen by the kernel aliases nothing of ours.
    let p = unsafe {
        libc::syscall(libc::SYS_mmap, core::ptr::null_mut::<u8>(), len, prot, libc::MAP_SHARED, fd, 0 as libc::off_t)
    };
    if (-4095..0).contains(&p) {
        return Err(Errno(-p as c_int));
    }
    check(p).map(|p| p as *mut u8)
}

/// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`:
/// zeroed private memory (async-signal-safe, unlike malloc).
pub fn map_anon(len: usize) -> Result<*mut u8> {
    // SAFETY: a fresh anonymous mapping chosen by the kernel aliases nothing.
    let p = unsafe {
        libc::syscall(
            libc::SYS_mmap,
            core::ptr::null_mut::<u8>(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0 as libc::off_t,
        )
    };
    if (-4095..0).contains(&p) {
        return Err(Errno(-p as c_int));
    }
    check(p).map(|p| p as *mut u8)
}

/// `munmap(addr, len)`.
///
/// # Safety
/// No reference into `[addr, addr+len)` may outlive the call.
pub unsafe fn unmap(addr: *mut u8, len: usize) {
    // SAFETY: per this function's contract.
    unsafe { libc::syscall(libc::SYS_munmap, addr, len) };
}

/// `unlinkat(AT_FDCWD, path, 0)`.
pub fn unlink(path: &CStr) -> Result<()> {
    // SAFETY: `path` is NUL-terminated.
    check(unsafe { libc::syscall(libc::SYS_unlinkat, libc::AT_FDCWD, path.as_ptr(), 0) }).map(drop)
}

/// The caller's process id.
pub fn getpid() -> i32 {
    // SAFETY: integer-only syscall that cannot fail.
    unsafe { libc::syscall(libc::SYS_getpid) as i32 }
}

/// The caller's thread id.
pub fn gettid() -> i32 {
    // SAFETY: integer-only syscall that cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// The caller's effective uid.
pub fn geteuid() -> u32 {
    // SAFETY: integer-only syscall that cannot fail.
    unsafe { libc::syscall(libc::SYS_geteuid) as u32 }
}

/// Nanoseconds on CLOCK_MONOTONIC (through the vDSO; no syscall).
/// CLOCK_REALTIME: (seconds, nanoseconds) since the epoch.
pub fn realtime() -> (i64, i64) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec)
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `FUTEX_WAIT` on a word that other processes share (no PRIVATE flag),
/// for at most `timeout_ns`. `Ok` on a wake, a changed word or a timeout;
/// `Err(EINTR)` when a signal arrived.
pub fn futex_wait_shared(word: &core::sync::atomic::AtomicU32, expected: u32, timeout_ns: u64) -> Result<()> {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `word` is a live 4-byte aligned atomic; `ts` outlives the call.
    let r = unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, &ts as *const libc::timespec)
    };
    match check(r) {
        Ok(_) => Ok(()),
        Err(e) if e == Errno::AGAIN || e == Errno::TIMEDOUT => Ok(()),
        Err(e) => Err(e),
    }
}

/// `FUTEX_WAKE` every waiter of a shared word.
pub fn futex_wake_all(word: &core::sync::atomic::AtomicU32) {
    // SAFETY: `word` is a live 4-byte aligned atomic.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// Reads a whole small file (e.g. `/proc/<pid>/stat`) into `buf`.
pub fn read_small_file(path: &CStr, buf: &mut [u8]) -> Result<usize> {
    let fd = open(path, libc::O_RDONLY, 0)?;
    let mut filled = 0;
    let result = loop {
        match read(fd, &mut buf[filled..]) {
            Ok(0) => break Ok(filled),
            Ok(n) => {
                filled += n;
                if filled == buf.len() {
                    break Ok(filled);
                }
            }
            Err(Errno::INTR) => continue,
            Err(e) => break Err(e),
        }
    };
    let _ = close(fd);
    result
}

/// Reads an environment variable without allocating.
pub fn getenv(name: &CStr) -> Option<&'static CStr> {
    // SAFETY: getenv returns NULL or a pointer into the environment, which
    // we only read; programs that setenv() concurrently are already racy.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        None
    } else {
        // SAFETY: a non-NULL getenv result is a NUL-terminated string.
        Some(unsafe { CStr::from_ptr(p) })
    }
}

unsafe extern "C" {
    static environ: *const *const core::ffi::c_char;
}

/// Calls `f` with every `NAME=value` entry of the environment.
pub fn for_each_env(f: &mut dyn FnMut(&[u8])) {
    // SAFETY: `environ` is glibc's NULL-terminated array of C strings; it is
    // read as getenv reads it.
    unsafe {
        let mut p = environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            f(CStr::from_ptr(*p).to_bytes());
            p = p.add(1);
        }
    }
}

/// `setenv(name, value, 1)`.
pub fn setenv(name: &CStr, value: &CStr) {
    // SAFETY: two C strings; glibc copies them.
    unsafe { libc::setenv(name.as_ptr(), value.as_ptr(), 1) };
}

/// Ends the process at once with `status` (no atexit handlers run).
pub fn exit_now(status: c_int) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(status) }
}

/// Calls `f` with the name of every entry of the directory `dir`, and the
/// descriptor the listing itself uses (no allocation; `.` and `..` included).
pub fn for_each_entry(dir: &CStr, f: &mut dyn FnMut(&[u8], c_int)) -> Result<()> {
    let fd = open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut buf = [0u8; 2048];
    let result = loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = match check(unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) }) {
            Ok(0) => break Ok(()),
            Ok(n) => n as usize,
            Err(e) => break Err(e),
        };
        let mut off = 0;
        while off + 19 < n {
            // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 || off + reclen > n {
                break;
            }
            let name = &buf[off + 19..off + reclen];
            f(&name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())], fd);
            off += reclen;
        }
    };
    let _ = close(fd);
    result
}

/// Parses a directory entry name that is a number (a pid or an fd).
pub fn entry_number(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 9 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(name.iter().fold(0i32, |a, &c| a * 10 + i32::from(c - b'0')))
}

/// Calls `f` with every open descriptor of this process (except the one used
/// for the listing), read from `/proc/self/fd` without allocating.
pub fn for_each_open_fd(f: &mut dyn FnMut(c_int)) -> Result<()> {
    for_each_entry(c"/proc/self/fd", &mut |name, listing| {
        if let Some(fd) = entry_number(name).filter(|&fd| fd != listing) {
            f(fd);
        }
    })
}

fn unsafe_zeroed_stat() -> libc::stat {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    unsafe { core::mem::zeroed() }
}

/// `stat(path)`, following symlinks.
pub fn stat(path: &CStr) -> Result<libc::stat> {
    let mut st = unsafe_zeroed_stat();
    // SAFETY: a NUL-terminated path and a valid stat buffer.
    check(unsafe {
        libc::syscall(libc::SYS_newfstatat, libc::AT_FDCWD, path.as_ptr(), &mut st as *mut libc::stat, 0)
    })?;
    Ok(st)
}

/// `pause()`: sleeps until a signal arrives.
pub fn pause() {
    // SAFETY: integer-only syscall.
    unsafe { libc::syscall(libc::SYS_pause) };
}

/// `fcntl(fd, cmd, fl)` for the lock commands (F_GETLK, F_OFD_SETLK, ...),
/// straight to the kernel.
pub fn fcntl_lock(fd: c_int, cmd: c_int, fl: &mut libc::flock) -> Result<()> {
    // SAFETY: `fl` is a valid struct flock for the kernel to read and fill.
    check(unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, fl as *mut libc::flock) }).map(drop)
}

/// `flock(fd, op)` straight to the kernel, once (EINTR is the caller's).
pub fn flock_raw(fd: c_int, op: c_int) -> Result<()> {
    // SAFETY: integer-only syscall.
    check(unsafe { libc::syscall(libc::SYS_flock, fd, op) }).map(drop)
}

/// `kcmp(a, b, KCMP_FILE, fa, fb)`: 0 when the two descriptors are one open
/// file description.
pub fn kcmp_file(a: c_int, fa: c_int, b: c_int, fb: c_int) -> Result<c_long> {
    // SAFETY: integer-only syscall.
    check(unsafe { libc::syscall(libc::SYS_kcmp, a, b, 0, fa, fb) })
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

/// Whether `[addr, addr + len)` is wholly mapped: `msync(MS_ASYNC)` (a no-op
/// on Linux) fails with ENOMEM exactly when part of the range is not.
pub fn range_mapped(addr: usize, len: usize) -> bool {
    let page = page_size();
    let start = addr & !(page - 1);
    let Some(end) = addr.checked_add(len) else { return false };
    if end == start {
        return true;
    }
    // SAFETY: msync reads no user memory; integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_msync, start, end - start, libc::MS_ASYNC) };
    r == 0 || Errno::last() != Errno::NOMEM
}

/// Copies between a buffer of ours and an address of our own process through
/// the kernel (`process_vm_readv`/`writev` on ourselves), so an unmapped or
/// unreadable (for writes: read-only) `addr` yields EFAULT instead of a
/// crash. ENOSYS or EPERM mean the kernel will not do it here (seccomp).
fn vm_copy(buf: *mut u8, len: usize, addr: usize, write: bool) -> Result<()> {
    let local = libc::iovec { iov_base: buf.cast(), iov_len: len };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
    let nr = if write { libc::SYS_process_vm_writev } else { libc::SYS_process_vm_readv };
    // SAFETY: `local` describes the caller's buffer of `len` bytes; the
    // kernel validates `remote`. Every argument is passed as 64 bits, as
    // the kernel reads its unsigned long parameters.
    let r = unsafe {
        libc::syscall(
            nr,
            getpid() as libc::c_long,
            &local as *const libc::iovec,
            1 as libc::c_ulong,
            &remote as *const libc::iovec,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    match check(r) {
        Ok(n) if n as usize == len => Ok(()),
        Ok(_) => Err(Errno::FAULT),
        Err(e) if e == Errno::NOSYS || e == Errno::PERM => Err(e),
        Err(_) => Err(Errno::FAULT),
    }
}

/// Copies from our own address `src` into `dst` (see `vm_copy`).
pub fn copy_in(src: usize, dst: &mut [u8]) -> Result<()> {
    vm_copy(dst.as_mut_ptr(), dst.len(), src, false)
}

/// Copies `src` to our own address `dst` (see `vm_copy`).
pub fn copy_out(src: &[u8], dst: usize) -> Result<()> {
    vm_copy(src.as_ptr() as *mut u8, src.len(), dst, true)
}

/// `fchown(fd, -1, gid)`: gives our own file to a group we belong to.
pub fn fchown_group(fd: c_int, gid: u32) -> Result<()> {
    // SAFETY: integer-only syscall.
    check(unsafe { libc::syscall(libc::SYS_fchown, fd, u32::MAX as c_long, gid as c_long) }).map(drop)
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: c_int, mode: libc::mode_t) -> Result<()> {
    // SAFETY: integer-only syscall.
    check(unsafe { libc::syscall(libc::SYS_fchmod, fd, mode as c_long) }).map(drop)
}

/// Calls `f` with each line of the file at `path` (a /proc file, say),
/// streamed through a fixed buffer without allocating; `f` returns false to
/// stop. A line longer than the buffer is skipped.
pub fn for_each_line(path: &CStr, f: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
    let fd = open(path, libc::O_RDONLY, 0)?;
    let mut buf = [0u8; 8192];
    let mut kept = 0;
    let result = 'read: loop {
        let got = match read(fd, &mut buf[kept..]) {
            Ok(0) => break Ok(()),
            Ok(g) => g,
            Err(Errno::INTR) => continue,
            Err(e) => break Err(e),
        };
        let end = kept + got;
        let mut start = 0;
        while let Some(nl) = buf[start..end].iter().position(|&c| c == b'\n') {
            if !f(&buf[start..start + nl]) {
                break 'read Ok(());
            }
            start += nl + 1;
        }
        kept = if end - start < buf.len() { end - start } else { 0 };
        buf.copy_within(start..start + kept, 0);
    };
    let _ = close(fd);
    result
}
