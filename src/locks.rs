//! QNX lock semantics for descriptors: what `fcntl`, `lockf` and the close
//! paths mean, on top of the registry.
//!
//! The hooks decode C arguments and call in here; this module resolves the
//! descriptor to a file `(st_dev, st_ino)`, applies QNX's access and range
//! rules, and runs the request against the registry, waiting when asked.
//!
//! Waiting: a blocked request records nothing but its interest in the file's
//! futex word. It sleeps in slices of at most `SLICE_NS`; between slices it
//! returns `Outcome::Again` so that the C entry point can act on a pending
//! `pthread_cancel()`, then is called again. Each retry re-checks whether the
//! blocker is still alive, so a SIGKILLed holder's waiters are granted within
//! one slice.

use crate::engine::lockset::SetError;
use crate::engine::range::{EOF, LockType, Range, Request};
use crate::engine::tree::{NIL, RECORD_EXEC_RELEASE};
use crate::local;
use crate::owner::{self, ProcessIdentity};
use crate::registry::{self, Reach, Tables, WakeSet};
use crate::sys::{self, Errno};

/// The longest a blocked request sleeps before it offers cancellation and
/// re-checks its blockers' liveness.
pub const SLICE_NS: u64 = 50_000_000;

/// How a lock call ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Success, with this return value.
    Done(i64),
    Failed(Errno),
    /// A wait slice ended: offer cancellation and call again.
    Again,
    /// A signal interrupted the wait: offer cancellation, then EINTR.
    Interrupted,
    /// The registry is refused: let the kernel do it.
    Native,
}

impl From<Errno> for Outcome {
    fn from(e: Errno) -> Outcome {
        Outcome::Failed(e)
    }
}

/// A descriptor's file and access mode.
#[derive(Clone, Copy, Debug)]
pub struct OpenFile {
    pub dev: u64,
    pub ino: u64,
    pub size: i64,
    pub readable: bool,
    pub writable: bool,
}

impl OpenFile {
    pub fn of(fd: i32) -> Result<OpenFile, Errno> {
        let st = sys::fstat(fd)?;
        let fl = sys::fcntl_int(fd, libc::F_GETFL, 0)? as i32;
        let acc = fl & libc::O_ACCMODE;
        Ok(OpenFile {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            readable: acc == libc::O_RDONLY || acc == libc::O_RDWR,
            writable: acc == libc::O_WRONLY || acc == libc::O_RDWR,
        })
    }

    /// The offset `l_whence` counts from.
    pub fn base(&self, fd: i32, whence: i16) -> Result<i64, Errno> {
        match whence as i32 {
            libc::SEEK_SET => Ok(0),
            libc::SEEK_CUR => sys::current_offset(fd),
            libc::SEEK_END => Ok(self.size),
            _ => Err(Errno::INVAL),
        }
    }
}

/// A conflicting lock, as F_GETLK reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Conflict {
    pub ltype: LockType,
    pub range: Range,
    pub pid: i32,
}

/// State kept across the slices of one blocking call.
#[repr(C)]
pub struct CallState {
    pub start_ns: u64,
    pub slices: u32,
}

/// Reaps `blocker` if it has died; true if it did (the caller retries).
fn reap_if_dead(t: &mut Tables, wake: &mut WakeSet, blocker: u32) -> bool {
    if !t.owner_is_dead(blocker) {
        return false;
    }
    let mut touched = WakeSet::default();
    if t.reap_owner(blocker, &mut |f| touched.add(f)).is_err() {
        t.repair(&mut |f| touched.add(f));
    }
    wake.absorb(t.files, &touched);
    true
}

/// Applies a set request (lock or unlock) for this process on `file`.
/// `nomem` is the errno for a full registry (ENOLCK for fcntl, ENOMEM for
/// QNX lockf). With `wait`, a conflict blocks; otherwise it is EAGAIN.
pub fn set(file: &OpenFile, req: Request, q: Range, wait: bool, nomem: Errno, call: &mut CallState) -> Outcome {
    let me = owner::current();
    let deadline = sys::monotonic_ns() + SLICE_NS;
    let mut repaired = false;
    loop {
        let reg = match registry::reach(matches!(req, Request::Lock(_))) {
            Reach::Ready(r) => r,
            Reach::Absent => return Outcome::Done(0), // nothing is locked anywhere
            Reach::Fallback => return Outcome::Native,
        };
        let mut g = match reg.lock() {
            Ok(g) => g,
            Err(e) => return Outcome::Failed(e),
        };
        let (mut t, wake) = g.split();
        let slot = match req {
            Request::Unlock => match t.find_file(file.dev, file.ino) {
                Some(s) => s,
                None => return Outcome::Done(0),
            },
            Request::Lock(_) => match t.file_slot(file.dev, file.ino) {
                Ok(s) => s,
                Err(_) => return Outcome::Failed(nomem),
            },
        };
        let me_slot = match t.process_owner(me, local::owner_hint()) {
            Ok(o) => o,
            Err(_) if !repaired => {
                // The owner table is full: reap the dead, then retry once.
                let mut touched = WakeSet::default();
                t.reap_dead(&mut |f| touched.add(f));
                wake.absorb(t.files, &touched);
                repaired = true;
                continue;
            }
            Err(_) => {
                t.release_file_if_empty(slot);
                return Outcome::Failed(nomem);
            }
        };
        local::set_owner_hint(me_slot);
        let result = t.set(slot, me_slot, req, q);
        let blocker = match result {
            Ok(out) => {
                local::account(slot, file.dev, file.ino, out.delta);
                if out.released {
                    wake.notify(t.files, slot);
                }
                t.release_file_if_empty(slot);
                t.release_owner_if_idle(me_slot);
                return Outcome::Done(0);
            }
            Err(SetError::Conflict(rec)) => t.records[rec as usize].owner,
            Err(SetError::NoSpace) => {
                t.release_file_if_empty(slot);
                t.release_owner_if_idle(me_slot);
                return Outcome::Failed(nomem);
            }
            Err(SetError::Corrupt) => {
                if repaired {
                    return Outcome::Failed(nomem);
                }
                let mut touched = WakeSet::default();
                t.repair(&mut |f| touched.add(f));
                wake.absorb(t.files, &touched);
                repaired = true;
                continue;
            }
        };
        if reap_if_dead(&mut t, wake, blocker) {
            continue;
        }
        t.release_file_if_empty(slot);
        t.release_owner_if_idle(me_slot);
        if !wait {
            return Outcome::Failed(Errno::AGAIN);
        }
        // Read the futex word under the mutex: a release after this point
        // changes it, so the sleep below cannot miss the wake.
        let word = reg.wake_word(slot);
        let seen = word.load(core::sync::atomic::Ordering::Acquire);
        drop(g);
        let now = sys::monotonic_ns();
        if now >= deadline {
            call.slices += 1;
            return Outcome::Again;
        }
        if sys::futex_wait_shared(word, seen, deadline - now) == Err(Errno::INTR) {
            return Outcome::Interrupted;
        }
    }
}

/// The first lock of another owner that conflicts with `t` on `q`
/// (F_GETLK, lockf F_TEST); dead owners' locks are reaped, not reported.
pub fn test(file: &OpenFile, t: LockType, q: Range) -> Result<Option<Conflict>, Outcome> {
    let me = owner::current();
    let reg = match registry::reach(false) {
        Reach::Ready(r) => r,
        Reach::Absent => return Ok(None),
        Reach::Fallback => return Err(Outcome::Native),
    };
    let mut g = reg.lock().map_err(Outcome::Failed)?;
    let (mut tb, wake) = g.split();
    let Some(slot) = tb.find_file(file.dev, file.ino) else { return Ok(None) };
    let me_slot = local::owner_hint();
    let me_slot = if tb.owners.get(me_slot as usize).is_some_and(|o| o.pid == me.pid && o.starttime == me.starttime) {
        me_slot
    } else {
        NIL
    };
    for _ in 0..registry::layout::OWNERS {
        let Some(rec) = tb.first_conflict(slot, me_slot, t, q).map_err(|_| Outcome::Failed(Errno::NOLCK))? else {
            return Ok(None);
        };
        let r = &tb.records[rec as usize];
        let owner = r.owner;
        if reap_if_dead(&mut tb, wake, owner) {
            if tb.find_file(file.dev, file.ino) != Some(slot) {
                return Ok(None);
            }
            continue;
        }
        let r = &tb.records[rec as usize];
        let pid = tb.owners.get(owner as usize).map_or(0, |o| o.pid);
        return Ok(Some(Conflict {
            ltype: LockType::from_raw(r.ltype).unwrap_or(LockType::Write),
            range: r.range(),
            pid,
        }));
    }
    Err(Outcome::Failed(Errno::NOLCK))
}

/// Whether this process holds a lock on `q` of `file` running to EOF.
pub fn holds_lock_to_eof(file: &OpenFile, q: Range) -> bool {
    let me = owner::current();
    let Some(reg) = registry::attached() else { return false };
    let Ok(mut g) = reg.lock() else { return false };
    let t = g.tables();
    let Some(slot) = t.find_file(file.dev, file.ino) else { return false };
    let me_slot = local::owner_hint();
    if !t.owners.get(me_slot as usize).is_some_and(|o| o.pid == me.pid && o.starttime == me.starttime) {
        return false;
    }
    t.holds_lock_to_eof(slot, me_slot, q).unwrap_or(false)
}

/// QNX `lockf()` on top of the registry (QNX libc's mapping, not glibc's):
/// F_LOCK = F_SETLKW write, F_TLOCK = F_SETLK write, F_ULOCK = unlock, and
/// F_TEST = F_GETLK *write*, so another process's read lock fails it too.
pub fn lockf(fd: i32, function: i32, size: i64, call: &mut CallState) -> Outcome {
    if !matches!(function, libc::F_LOCK | libc::F_TLOCK | libc::F_TEST | libc::F_ULOCK) {
        return Outcome::Failed(Errno::INVAL);
    }
    let file = match OpenFile::of(fd) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    if matches!(function, libc::F_LOCK | libc::F_TLOCK) && !file.writable {
        return Outcome::Failed(Errno::BADF);
    }
    let cur = match sys::current_offset(fd) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e),
    };
    // QNX lockf(): F_ULOCK with size OFF_MAX, when the process holds a
    // size-0 lock in that range, is treated as F_ULOCK with size 0.
    if function == libc::F_ULOCK && size == i64::MAX && holds_lock_to_eof(&file, Range::new(cur, EOF)) {
        return set(&file, Request::Unlock, Range::new(cur, EOF), false, Errno::NOMEM, call);
    }
    let q = match Range::from_flock(cur, 0, size) {
        Ok(q) => q,
        Err(e) => return Outcome::Failed(e),
    };
    match function {
        libc::F_TEST => match test(&file, LockType::Write, q) {
            Ok(None) => Outcome::Done(0),
            Ok(Some(_)) => Outcome::Failed(Errno::ACCES),
            Err(o) => o,
        },
        libc::F_ULOCK => set(&file, Request::Unlock, q, false, Errno::NOMEM, call),
        _ => set(&file, Request::Lock(LockType::Write), q, function == libc::F_LOCK, Errno::NOMEM, call),
    }
}

/// `fcntl(fd, F_SETLK/F_SETLKW, fl)` for process-owned locks.
pub fn fcntl_set(fd: i32, fl: &libc::flock, wait: bool, call: &mut CallState) -> Outcome {
    let file = match OpenFile::of(fd) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let req = match fl.l_type as i32 {
        libc::F_RDLCK if !file.readable => return Outcome::Failed(Errno::BADF),
        libc::F_WRLCK if !file.writable => return Outcome::Failed(Errno::BADF),
        libc::F_RDLCK => Request::Lock(LockType::Read),
        libc::F_WRLCK => Request::Lock(LockType::Write),
        libc::F_UNLCK => Request::Unlock,
        _ => return Outcome::Failed(Errno::INVAL),
    };
    let q = match file.base(fd, fl.l_whence).and_then(|b| Range::from_flock(b, fl.l_start, fl.l_len)) {
        Ok(q) => q,
        Err(e) => return Outcome::Failed(e),
    };
    let waited = call.slices > 0;
    let out = set(&file, req, q, wait, Errno::NOLCK, call);
    if out == Outcome::Done(0) && (waited || call.slices > 0) && !same_file(fd, &file) {
        // The descriptor was closed or replaced while we waited (Linux's
        // fcntl_setlk re-check): undo the grant and report EBADF.
        let _ = set(&file, Request::Unlock, q, false, Errno::NOLCK, call);
        return Outcome::Failed(Errno::BADF);
    }
    out
}

fn same_file(fd: i32, file: &OpenFile) -> bool {
    sys::fstat(fd).is_ok_and(|st| st.st_dev == file.dev && st.st_ino == file.ino)
}

/// `fcntl(fd, F_GETLK, fl)`: fills `fl` with the first conflicting lock of
/// another process, or sets only `l_type = F_UNLCK`.
pub fn fcntl_get(fd: i32, fl: &mut libc::flock) -> Outcome {
    let file = match OpenFile::of(fd) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let t = match fl.l_type as i32 {
        libc::F_RDLCK => LockType::Read,
        libc::F_WRLCK => LockType::Write,
        _ => return Outcome::Failed(Errno::INVAL),
    };
    let q = match file.base(fd, fl.l_whence).and_then(|b| Range::from_flock(b, fl.l_start, fl.l_len)) {
        Ok(q) => q,
        Err(e) => return Outcome::Failed(e),
    };
    match test(&file, t, q) {
        Ok(None) => {
            fl.l_type = libc::F_UNLCK as i16;
            Outcome::Done(0)
        }
        Ok(Some(c)) => {
            fl.l_type = match c.ltype {
                LockType::Read => libc::F_RDLCK as i16,
                LockType::Write => libc::F_WRLCK as i16,
            };
            fl.l_whence = libc::SEEK_SET as i16;
            fl.l_start = c.range.start;
            fl.l_len = c.range.flock_len();
            fl.l_pid = c.pid;
            Outcome::Done(0)
        }
        Err(o) => o,
    }
}

/// Releases every lock this process holds on `(dev, ino)`: QNX releases a
/// process's locks on the first close of any descriptor for the file.
/// Safe to call from a signal handler: inside a registry call on this thread
/// the release is deferred to that call's exit.
pub fn release_file(dev: u64, ino: u64) {
    if local::in_registry() {
        let _ = local::defer_release(dev, ino);
        return;
    }
    let Some(reg) = registry::attached() else { return };
    let me = owner::current();
    let Ok(mut g) = reg.lock() else { return };
    let (mut t, wake) = g.split();
    let Some(slot) = t.find_file(dev, ino) else { return };
    let me_slot = local::owner_hint();
    if !t.owners.get(me_slot as usize).is_some_and(|o| o.pid == me.pid && o.starttime == me.starttime) {
        return;
    }
    if let Ok(n) = t.remove_owner_in_file(slot, me_slot)
        && n > 0
    {
        wake.notify(t.files, slot);
    }
    local::account(slot, dev, ino, -(local::own_records(slot) as i32));
    t.release_file_if_empty(slot);
    t.release_owner_if_idle(me_slot);
}

/// The file behind `fd` if this process may hold locks on it; the cheap
/// test every close path runs before closing.
pub fn locked_file_of(fd: i32) -> Option<(u64, u64)> {
    if !local::holds_any() {
        return None;
    }
    let st = sys::fstat(fd).ok()?;
    local::may_hold(st.st_dev, st.st_ino).then_some((st.st_dev, st.st_ino))
}

/// Descriptors of locked files, noted before a call that may close many of
/// them (close_range, closefrom, fcloseall) and settled after it.
pub struct FdSnapshot {
    entries: [(i32, u64, u64); 64],
    n: usize,
    overflow: bool,
}

impl FdSnapshot {
    /// Notes every open descriptor in `[lo, hi]` whose file may be locked.
    pub fn take(lo: u32, hi: u32) -> FdSnapshot {
        let mut s = FdSnapshot { entries: [(0, 0, 0); 64], n: 0, overflow: false };
        if !local::holds_any() {
            return s;
        }
        let _ = sys::for_each_open_fd(&mut |fd| {
            if (fd as u32) < lo || (fd as u32) > hi {
                return;
            }
            if let Some((dev, ino)) = locked_file_of(fd) {
                if s.n < s.entries.len() {
                    s.entries[s.n] = (fd, dev, ino);
                    s.n += 1;
                } else {
                    s.overflow = true;
                }
            }
        });
        s
    }

    /// Releases the files of every noted descriptor that is now closed.
    pub fn settle(&self) {
        for &(fd, dev, ino) in &self.entries[..self.n] {
            if sys::fcntl_int(fd, libc::F_GETFD, 0) == Err(Errno::BADF) || !same_file_id(fd, dev, ino) {
                release_file(dev, ino);
            }
        }
        if self.overflow {
            release_files_without_descriptors();
        }
    }
}

fn same_file_id(fd: i32, dev: u64, ino: u64) -> bool {
    sys::fstat(fd).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

/// Releases the locks of every file this process holds locks on but no
/// longer has a descriptor for (after exec closed close-on-exec
/// descriptors, or after too many closes to note one by one).
pub fn release_files_without_descriptors() {
    let me = owner::current();
    let Some(reg) = registry::attached() else { return };
    let mut files = [(0u64, 0u64); 256];
    let mut n = 0;
    {
        let Ok(mut g) = reg.lock() else { return };
        let mut t = g.tables();
        let Some(me_slot) = find_owner(&t, me) else { return };
        t.for_each_owned(me_slot, &mut |_, _, f| {
            if n < files.len() && !files[..n].contains(&(f.dev, f.ino)) {
                files[n] = (f.dev, f.ino);
                n += 1;
            }
        });
    }
    for &(dev, ino) in &files[..n] {
        let mut open = false;
        let _ = sys::for_each_open_fd(&mut |fd| open |= same_file_id(fd, dev, ino));
        if !open {
            release_file(dev, ino);
        }
    }
}

fn find_owner(t: &Tables, me: ProcessIdentity) -> Option<u32> {
    t.used_owners()
        .iter()
        .position(|o| o.kind == registry::layout::OWNER_PROCESS && o.pid == me.pid && o.starttime == me.starttime)
        .map(|i| i as u32)
}

/// Before an exec: marks this process's locks on every file that has a
/// close-on-exec descriptor, since exec's close of it releases them (QNX
/// releases on the first close of any descriptor). The new image drops
/// marked locks when it loads; a failed exec clears the marks.
pub fn mark_for_exec() {
    if !local::holds_any() {
        return;
    }
    let mut files = [(0u64, 0u64); 64];
    let mut n = 0;
    let mut overflow = false;
    let _ = sys::for_each_open_fd(&mut |fd| {
        let cloexec = sys::fcntl_int(fd, libc::F_GETFD, 0).is_ok_and(|v| v as i32 & libc::FD_CLOEXEC != 0);
        if let Some(id) = locked_file_of(fd).filter(|_| cloexec) {
            if files[..n].contains(&id) {
            } else if n < files.len() {
                files[n] = id;
                n += 1;
            } else {
                overflow = true;
            }
        }
    });
    if n == 0 && !overflow {
        return;
    }
    set_exec_marks(&mut |dev, ino| overflow || files[..n].contains(&(dev, ino)));
}

/// After a failed exec: nothing was closed, so nothing is released.
pub fn clear_exec_marks() {
    if local::holds_any() {
        set_exec_marks(&mut |_, _| false);
    }
}

fn set_exec_marks(marked: &mut dyn FnMut(u64, u64) -> bool) {
    let me = owner::current();
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    let Some(me_slot) = find_owner(&t, me) else { return };
    t.for_each_owned(me_slot, &mut |_, rec, f| {
        rec.flags = if marked(f.dev, f.ino) { RECORD_EXEC_RELEASE } else { 0 };
    });
}

/// At load time: if this process image follows an exec by a process that
/// held locks (same pid and start time), drop the locks exec's closes
/// released, adopt the accounting of the rest, and release files no
/// descriptor refers to any more.
pub fn adopt_after_exec() {
    let me = owner::current();
    let Reach::Ready(reg) = registry::reach(false) else { return };
    {
        let Ok(mut g) = reg.lock() else { return };
        let (mut t, wake) = g.split();
        let Some(me_slot) = find_owner(&t, me) else { return };
        local::set_owner_hint(me_slot);
        let mut doomed = [NIL; 64];
        let mut more = true;
        while more {
            let mut n = 0;
            more = false;
            t.for_each_owned(me_slot, &mut |i, rec, _| {
                if rec.flags & RECORD_EXEC_RELEASE != 0 {
                    if n < doomed.len() {
                        doomed[n] = i;
                        n += 1;
                    } else {
                        more = true;
                    }
                }
            });
            for &i in &doomed[..n] {
                if let Ok(file) = t.remove_record(i) {
                    wake.notify(t.files, file);
                    t.release_file_if_empty(file);
                }
            }
        }
        t.for_each_owned(me_slot, &mut |_, rec, f| local::account(rec.file, f.dev, f.ino, 1));
        t.release_owner_if_idle(me_slot);
    }
    release_files_without_descriptors();
}

/// Releases every lock this process holds (at exit).
pub fn release_all() {
    let me = owner::current();
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let (mut t, wake) = g.split();
    let Some(me_slot) = find_owner(&t, me) else { return };
    let mut touched = WakeSet::default();
    if t.reap_owner(me_slot, &mut |f| touched.add(f)).is_err() {
        t.repair(&mut |f| touched.add(f));
    }
    wake.absorb(t.files, &touched);
}
