//! Process identity and liveness.
//!
//! A process lock owner is `(pid, start time)`: field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot. A reused pid has a later
//! start time, so it is never mistaken for the old owner. A lock is reclaimed
//! only on proof of death: the pid is gone, is a zombie, or now belongs to a
//! process that started at another time. Unclear evidence keeps the lock.

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::sys;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProcessIdentity {
    pub pid: i32,
    pub starttime: u64,
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StatFields {
    pub state: u8,
    pub starttime: u64,
}

/// Parses the state (field 3) and start time (field 22) of a stat line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last ')'.
pub fn parse_stat(line: &[u8]) -> Option<StatFields> {
    let close = line.iter().rposition(|&c| c == b')')?;
    let mut fields = line[close + 1..].split(|&c| c == b' ').filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    // Fields 4..=21 lie between state (3) and starttime (22).
    let start = fields.nth(18)?;
    let mut starttime: u64 = 0;
    for &c in start {
        if !c.is_ascii_digit() {
            return None;
        }
        starttime = starttime.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(StatFields { state, starttime })
}

/// Reads `/proc/<pid>/stat` (`pid == 0` reads `/proc/self/stat`).
fn read_stat(pid: i32) -> Result<StatFields, sys::Errno> {
    let mut path = [0u8; 32];
    let mut w = crate::trace::Cursor::new(&mut path);
    use core::fmt::Write;
    let _ = if pid == 0 { write!(w, "/proc/self/stat\0") } else { write!(w, "/proc/{pid}/stat\0") };
    let n = w.len();
    let path = core::ffi::CStr::from_bytes_with_nul(&path[..n]).map_err(|_| sys::Errno::INVAL)?;
    let mut buf = [0u8; 1024];
    let len = sys::read_small_file(path, &mut buf)?;
    parse_stat(&buf[..len]).ok_or(sys::Errno::INVAL)
}

/// Liveness of a recorded owner.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Liveness {
    Alive,
    Dead,
}

/// Whether the process recorded as `id` still runs. A zombie is dead: it
/// holds nothing any more, even before its parent reaps it.
pub fn liveness(id: ProcessIdentity) -> Liveness {
    match read_stat(id.pid) {
        Ok(f) if f.starttime != id.starttime => Liveness::Dead,
        Ok(f) if f.state == b'Z' || f.state == b'X' => Liveness::Dead,
        Ok(_) => Liveness::Alive,
        Err(e) if e == sys::Errno::NOENT || e == sys::Errno::SRCH => Liveness::Dead,
        // Unclear evidence (e.g. /proc unreadable): keep the lock.
        Err(_) => Liveness::Alive,
    }
}

/// Whether process `pid` maps the file `(dev, ino)`, from `/proc/<pid>/maps`;
/// `None` when that cannot be read (the caller then keeps what it knew).
/// Streams the file through a fixed buffer: no allocation.
pub fn maps_file(pid: i32, dev: u64, ino: u64) -> Option<bool> {
    let mut path = [0u8; 32];
    let mut w = crate::trace::Cursor::new(&mut path);
    use core::fmt::Write;
    let _ = write!(w, "/proc/{pid}/maps\0");
    let n = w.len();
    let path = core::ffi::CStr::from_bytes_with_nul(&path[..n]).ok()?;
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let mut found = false;
    sys::for_each_line(path, &mut |line| {
        found |= maps_line_is(line, major, minor, ino);
        !found
    })
    .ok()?;
    Some(found)
}

/// Whether a maps line (`addr perms offset MAJ:MIN inode path`) names the
/// file.
fn maps_line_is(line: &[u8], major: u32, minor: u32, ino: u64) -> bool {
    let mut f = line.split(|&c| c == b' ').filter(|w| !w.is_empty());
    let (Some(devf), Some(inof)) = (f.nth(3), f.next()) else { return false };
    let mut parts = devf.split(|&c| c == b':');
    let hex = |w: &[u8]| core::str::from_utf8(w).ok().and_then(|s| u32::from_str_radix(s, 16).ok());
    let dec = |w: &[u8]| core::str::from_utf8(w).ok().and_then(|s| s.parse::<u64>().ok());
    matches!((parts.next().and_then(hex), parts.next().and_then(hex), dec(inof)), (Some(a), Some(b), Some(i)) if a == major && b == minor && i == ino)
}

/// This process's identity, read once per process image and again in a
/// fork child (see `forget_after_fork`).
static MY_PID: AtomicI32 = AtomicI32::new(0);
static MY_START: AtomicU64 = AtomicU64::new(0);

///
/// The lock path uses the cache without a syscall. A `vfork()` child (or a
/// `clone(CLONE_VM)` one) shares our memory and skips the `pthread_atfork`
/// handlers, so the paths such a child runs (close, dup2, close_range,
/// exec) first ask [`in_shared_memory_child`]; a vfork child that takes
/// locks itself would act as its parent (POSIX allows it only `_exit` and
/// the exec family).
pub fn current() -> ProcessIdentity {
    let cached = MY_PID.load(Ordering::Acquire);
    if cached != 0 {
        return ProcessIdentity { pid: cached, starttime: MY_START.load(Ordering::Relaxed) };
    }
    let pid = sys::getpid();
    // If /proc is unreadable, 0 still identifies us consistently; liveness
    // then rests on the pid alone.
    let starttime = read_stat(0).map(|f| f.starttime).unwrap_or(0);
    MY_START.store(starttime, Ordering::Relaxed);
    MY_PID.store(pid, Ordering::Release);
    ProcessIdentity { pid, starttime }
}

/// Whether this is a child sharing its parent's memory (vfork): the
/// process-local lock summary then describes the parent, not us.
pub fn in_shared_memory_child() -> bool {
    let cached = MY_PID.load(Ordering::Acquire);
    cached != 0 && cached != sys::getpid()
}

/// The identity of another process, read from `/proc/<pid>/stat`.
pub fn identity_of(pid: i32) -> Option<ProcessIdentity> {
    read_stat(pid).ok().map(|f| ProcessIdentity { pid, starttime: f.starttime })
}

/// Called in a fork child: the child is a new owner.
pub fn forget_after_fork() {
    MY_PID.store(0, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let line = b"4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1234 56 \n";
        assert_eq!(parse_stat(line), Some(StatFields { state: b'S', starttime: 987654 }));
        assert_eq!(parse_stat(b"12 (x) Z 1 2"), None);
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn maps_lines() {
        let l = b"7f00-7f10 r--s 00000000 fe:00 10010951                   /tmp/x";
        assert!(maps_line_is(l, 0xfe, 0, 10010951));
        assert!(!maps_line_is(l, 0xfe, 1, 10010951));
        assert!(!maps_line_is(b"7f00-7f10 rw-p 00000000 00:00 0", 0xfe, 0, 10010951));
    }

    #[test]
    fn reads_own_maps() {
        let st = sys::fstat(0).ok();
        let exe = std::fs::metadata("/proc/self/exe").unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(maps_file(sys::getpid(), exe.dev(), exe.ino()), Some(true));
        assert_eq!(maps_file(sys::getpid(), 1, 1), Some(false));
        let _ = st;
    }

    #[test]
    fn self_is_alive_and_stable() {
        let me = current();
        assert_eq!(me.pid, sys::getpid());
        assert_eq!(liveness(me), Liveness::Alive);
        assert_eq!(liveness(ProcessIdentity { pid: me.pid, starttime: me.starttime + 1 }), Liveness::Dead);
        assert_eq!(liveness(ProcessIdentity { pid: i32::MAX, starttime: 1 }), Liveness::Dead);
    }
}
