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
use crate::openfile;
use crate::owner::{self, ProcessIdentity};
use crate::registry::layout::{FLAVOR_LINUX_OFD, FLAVOR_QNX_FLOCK, OWNER_OPENFILE};
use crate::registry::{self, MapCheck, Reach, Tables, WakeSet};
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
    pub readable: bool,
    pub writable: bool,
    pub regular: bool,
}

impl OpenFile {
    /// What `fd` refers to: from the descriptor cache when possible, so the
    /// uncontended lock path makes no syscall.
    pub fn of(fd: i32) -> Result<OpenFile, Errno> {
        if let Some(i) = local::fd_lookup(fd) {
            return Ok(OpenFile {
                dev: i.dev,
                ino: i.ino,
                readable: i.readable,
                writable: i.writable,
                regular: i.regular,
            });
        }
        let st = sys::fstat(fd)?;
        let fl = sys::fcntl_int(fd, libc::F_GETFL, 0)? as i32;
        // An O_PATH descriptor can neither read nor write: no lock through it.
        let acc = if fl & libc::O_PATH != 0 { -1 } else { fl & libc::O_ACCMODE };
        let f = OpenFile {
            dev: st.st_dev,
            ino: st.st_ino,
            readable: acc == libc::O_RDONLY || acc == libc::O_RDWR,
            writable: acc == libc::O_WRONLY || acc == libc::O_RDWR,
            regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
        };
        local::fd_store(
            fd,
            local::FdInfo { dev: f.dev, ino: f.ino, readable: f.readable, writable: f.writable, regular: f.regular },
        );
        Ok(f)
    }

    /// The offset `l_whence` counts from.
    pub fn base(&self, fd: i32, whence: i16) -> Result<i64, Errno> {
        match whence as i32 {
            libc::SEEK_SET => Ok(0),
            libc::SEEK_CUR => sys::current_offset(fd),
            libc::SEEK_END => sys::fstat(fd).map(|st| st.st_size),
            _ => Err(Errno::INVAL),
        }
    }
}

/// A conflicting lock, as F_GETLK reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Conflict {
    pub ltype: LockType,
    pub range: Range,
    /// The owning process, or for an open file the process that first
    /// locked through it.
    pub pid: i32,
    /// How the holder reports: a process, a QNX flock-kind open file, or a
    /// Linux OFD open file.
    pub holder: Holder,
}

/// The kind of a conflicting lock's owner, as F_GETLK shows it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Holder {
    Process,
    QnxFlock,
    LinuxOfd,
}

/// State kept across the slices of one blocking call (the C entry point's
/// `struct qnxcompat_call`).
#[repr(C)]
pub struct CallState {
    pub start_ns: u64,
    pub slices: u32,
    /// 1 + the registry waiter slot registered for this call, or 0.
    pub waiter: u32,
}

impl CallState {
    fn waiter(&self) -> Option<u32> {
        self.waiter.checked_sub(1)
    }
}

/// Who a request is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OwnerSpec {
    /// The calling process: fcntl and lockf locks.
    Process,
    /// The open file description behind this descriptor: flock() and
    /// `F_FLOCK` (QNX), or Linux OFD locks; the flavor decides how F_GETLK
    /// reports its locks.
    OpenFile(i32, u8),
}

/// A set request, with how to carry it out.
#[derive(Clone, Copy, Debug)]
pub struct SetRequest {
    pub owner: OwnerSpec,
    pub req: Request,
    pub range: Range,
    /// Block on a conflict instead of failing with EAGAIN.
    pub wait: bool,
    /// The errno for a full registry (ENOLCK for fcntl, ENOMEM for lockf).
    pub nomem: Errno,
    /// Release the owner's lock of the other type first (flock conversion,
    /// which QNX and Linux both do non-atomically).
    pub convert: bool,
    /// Fail with EAGAIN if any process maps the file (QNX lockf F_LOCK and
    /// F_TLOCK).
    pub refuse_mapped: bool,
}

/// Reaps `blocker` if it has died; true if it did (the caller retries).
/// `probe` is a descriptor of the file, for open-file owners' liveness.
fn reap_if_dead(t: &mut Tables, wake: &mut WakeSet, blocker: u32, probe: i32) -> bool {
    if !t.owner_is_dead(blocker, Some(probe)) {
        return false;
    }
    let mut touched = WakeSet::default();
    if t.reap_owner(blocker, &mut |f| touched.add(f)).is_err() {
        t.repair(&mut |f| touched.add(f));
    }
    wake.absorb(t.files, &touched);
    true
}

/// The registry owner for `spec` on `file`, created when `create`; `None`
/// when it does not exist and `create` is false.
fn resolve_owner(t: &mut Tables, spec: OwnerSpec, file: &OpenFile, create: bool) -> Result<Option<u32>, Errno> {
    match spec {
        OwnerSpec::Process => {
            let me = owner::current();
            let hint = local::owner_hint();
            if !create {
                return Ok(find_owner(t, me));
            }
            let o = t.process_owner(me, hint)?;
            local::set_owner_hint(o);
            t.hold_life(o);
            Ok(Some(o))
        }
        OwnerSpec::OpenFile(fd, flavor) => {
            // The descriptor cache remembers the owner; the registry says
            // whether that slot still is it.
            if let Some((slot, generation)) = local::fd_owner(fd) {
                let token = openfile::Token { slot, generation };
                if let Some(o) = t.openfile_owner(token, file.dev, file.ino) {
                    relabel_if_idle(t, o, flavor, create);
                    return Ok(Some(o));
                }
            }
            let mut found = None;
            let mut stale = [None; 4];
            let mut nstale = 0;
            openfile::tokens_of(fd, &mut |tok| match t.openfile_owner(tok, file.dev, file.ino) {
                Some(o) => found = Some(o),
                None if nstale < stale.len() => {
                    stale[nstale] = Some(tok);
                    nstale += 1;
                }
                None => {}
            })?;
            // A token whose slot was reaped and reused names nobody now.
            for tok in stale.iter().flatten() {
                openfile::drop_token(fd, *tok);
            }
            if let Some(o) = found {
                local::fd_set_owner(fd, o, t.owners[o as usize].generation % openfile::TOKEN_GENS);
                relabel_if_idle(t, o, flavor, create);
            }
            if found.is_some() || !create {
                return Ok(found);
            }
            let o = t.new_owner(OWNER_OPENFILE, flavor, sys::getpid(), 0, file.dev, file.ino)?;
            let token = openfile::Token { slot: o, generation: t.owners[o as usize].generation % openfile::TOKEN_GENS };
            if let Err(e) = openfile::take(fd, token, file.readable) {
                t.release_owner_if_idle(o);
                return Err(e);
            }
            local::fd_set_owner(fd, o, token.generation);
            Ok(Some(o))
        }
    }
}

/// An open-file owner outlives its locks (keeping it spares a token and an
/// fdinfo read per flock call). When an idle one locks again, F_GETLK must
/// name the process that now took the lock, and report it in the flavor of
/// the call that took it.
fn relabel_if_idle(t: &mut Tables, o: u32, flavor: u8, locking: bool) {
    if let Some(slot) = t.owners.get_mut(o as usize)
        && locking
        && slot.nlocks == 0
    {
        slot.pid = owner::current().pid;
        slot.flavor = flavor;
    }
}

/// The descriptor a request's liveness probes go through.
fn probe_fd(spec: OwnerSpec, fallback: i32) -> i32 {
    match spec {
        OwnerSpec::OpenFile(fd, _) => fd,
        OwnerSpec::Process => fallback,
    }
}

/// Applies a set request (lock or unlock) on `file`, reached through `fd`.
///
/// A blocking request that meets a conflict first asks whether waiting
/// would close a cycle in the wait-for graph (EDEADLK if so), then registers
/// itself as a waiter, so that later requests see its edges, and sleeps. The
/// registration lasts across wait slices and goes when the call ends.
pub fn set(fd: i32, file: &OpenFile, r: SetRequest, call: &mut CallState) -> Outcome {
    let deadline = sys::monotonic_ns() + SLICE_NS;
    let me_id = owner::current();
    let mut repaired = false;
    let mut converted = !r.convert;
    let mut interrupted = false;
    let mut slept_on = None;
    let is_lock = matches!(r.req, Request::Lock(_));
    loop {
        let reg = match registry::reach(is_lock) {
            Reach::Ready(reg) => reg,
            Reach::Absent => return Outcome::Done(0), // nothing is locked anywhere
            Reach::Fallback => return Outcome::Native,
        };
        let mut g = match reg.lock() {
            Ok(g) => g,
            Err(e) => return Outcome::Failed(e),
        };
        let (mut t, wake) = g.split();
        // Every exit taken with the mutex held ends the call's registration.
        let finish = |t: &mut Tables, call: &mut CallState, out: Outcome| {
            if let Some(w) = call.waiter() {
                t.remove_waiter(w);
                call.waiter = 0;
            }
            out
        };
        if let Some(s) = slept_on.take()
            && let Some(f) = t.files.get_mut(s as usize)
        {
            f.sleepers = f.sleepers.saturating_sub(1);
        }
        if interrupted {
            return finish(&mut t, call, Outcome::Interrupted);
        }
        let slot = match r.req {
            Request::Unlock => match t.find_file(file.dev, file.ino) {
                Some(s) => s,
                None => return finish(&mut t, call, Outcome::Done(0)),
            },
            Request::Lock(_) => match t.file_slot(file.dev, file.ino) {
                Ok(s) => s,
                Err(_) => return finish(&mut t, call, Outcome::Failed(r.nomem)),
            },
        };
        let me = match resolve_owner(&mut t, r.owner, file, is_lock) {
            Ok(Some(o)) => o,
            Ok(None) => return finish(&mut t, call, Outcome::Done(0)), // an owner with nothing unlocks
            Err(Errno::NOLCK) if !repaired => {
                // The owner table is full: reap the dead, then retry once.
                let mut touched = WakeSet::default();
                t.reap_dead(&mut |f| touched.add(f));
                wake.absorb(t.files, &touched);
                repaired = true;
                continue;
            }
            Err(e) => {
                t.release_file_if_empty(slot);
                return finish(&mut t, call, Outcome::Failed(if e == Errno::NOLCK { r.nomem } else { e }));
            }
        };
        if r.refuse_mapped {
            let mut touched = WakeSet::default();
            let check = t.file_is_mapped(slot, me_id.pid, &mut |f| touched.add(f));
            wake.absorb(t.files, &touched);
            match check {
                MapCheck::Mapped => {
                    t.release_file_if_empty(slot);
                    return finish(&mut t, call, Outcome::Failed(Errno::AGAIN));
                }
                // The file slot may have gone with what was reaped.
                MapCheck::Changed => continue,
                MapCheck::Unmapped => {}
            }
        }
        if let Some(w) = call.waiter()
            && !t.refresh_waiter(w, me, me_id)
        {
            call.waiter = 0; // dropped by a repair: registers again below
        }
        if !converted {
            converted = true;
            if let Request::Lock(want) = r.req
                && let Ok(out) = t.release_other_type(slot, me, want)
            {
                account(r.owner, slot, file, out.delta);
                if out.released {
                    wake.notify(t.files, slot);
                }
            }
        }
        let blocker = match t.set(slot, me, r.req, r.range) {
            Ok(out) => {
                account(r.owner, slot, file, out.delta);
                if out.released {
                    wake.notify(t.files, slot);
                }
                let out = finish(&mut t, call, Outcome::Done(0));
                t.release_file_if_empty(slot);
                return out;
            }
            Err(SetError::Conflict(rec)) => t.records[rec as usize].owner,
            Err(SetError::NoSpace) => {
                let out = finish(&mut t, call, Outcome::Failed(r.nomem));
                t.release_file_if_empty(slot);
                return out;
            }
            Err(SetError::Corrupt) => {
                if repaired {
                    return finish(&mut t, call, Outcome::Failed(r.nomem));
                }
                let mut touched = WakeSet::default();
                t.repair(&mut |f| touched.add(f));
                wake.absorb(t.files, &touched);
                repaired = true;
                continue;
            }
        };
        if reap_if_dead(&mut t, wake, blocker, probe_fd(r.owner, fd)) {
            continue;
        }
        if !r.wait {
            t.release_file_if_empty(slot);
            return finish(&mut t, call, Outcome::Failed(Errno::AGAIN));
        }
        if let (None, Request::Lock(want)) = (call.waiter(), r.req) {
            match deadlock_check(&mut t, wake, me, slot, want, r.range, fd) {
                Check::Retry => continue,
                Check::Deadlock => {
                    t.release_file_if_empty(slot);
                    return finish(&mut t, call, Outcome::Failed(Errno::DEADLK));
                }
                Check::Clear => {
                    if let Some(w) = t.add_waiter(me, slot, want, r.range, me_id) {
                        call.waiter = w + 1;
                    }
                }
            }
        }
        let now = sys::monotonic_ns();
        if now >= deadline {
            call.slices += 1;
            return Outcome::Again;
        }
        // Read the futex word and count ourselves a sleeper under the mutex:
        // a release after this point changes the word and wakes us, so the
        // sleep below cannot miss it.
        let word = reg.wake_word(slot);
        let seen = word.load(core::sync::atomic::Ordering::Acquire);
        t.files[slot as usize].sleepers += 1;
        slept_on = Some(slot);
        drop(g);
        if sys::futex_wait_shared(word, seen, deadline - now) == Err(Errno::INTR) {
            interrupted = true;
        }
    }
}

/// What the deadlock check decided.
enum Check {
    /// No cycle: register and sleep.
    Clear,
    /// Waiting would close a cycle of live owners.
    Deadlock,
    /// A dead owner or waiter was on the cycle and is gone now: try again.
    Retry,
}

/// Asks whether `me` waiting for `want` on `q` in file `slot` closes a cycle.
/// A cycle through a dead owner is not a deadlock: the owner is reaped and
/// the request retried.
fn deadlock_check(t: &mut Tables, wake: &mut WakeSet, me: u32, slot: u32, want: LockType, q: Range, fd: i32) -> Check {
    let mut blockers = [NIL; 64];
    let mut n = 0;
    let _ = t.for_each_conflict(slot, me, want, q, &mut |o| {
        if n < blockers.len() && !blockers[..n].contains(&o) {
            blockers[n] = o;
            n += 1;
        }
    });
    let Some(cycle) = t.find_cycle(me, &blockers[..n]) else { return Check::Clear };
    let (dev, ino) = t.files.get(slot as usize).map_or((0, 0), |f| (f.dev, f.ino));
    for &o in &cycle.owners()[1..] {
        // An open-file owner can be probed only through a descriptor of its
        // own file; a process owner needs no probe.
        let probe = t.owners.get(o as usize).filter(|s| s.dev == dev && s.ino == ino).map(|_| fd);
        if t.owner_is_dead_now(o, probe) {
            let mut touched = WakeSet::default();
            if t.reap_owner(o, &mut |f| touched.add(f)).is_err() {
                t.repair(&mut |f| touched.add(f));
            }
            wake.absorb(t.files, &touched);
            return Check::Retry;
        }
        if t.drop_dead_waiters(o) {
            return Check::Retry;
        }
    }
    // An open file on the cycle is released by whichever process holds a
    // descriptor of it: unless every one of them is blocked, someone can
    // still release it, and this is no deadlock.
    for &o in &cycle.owners()[1..] {
        let Some(s) = t.owners.get(o as usize).filter(|s| s.kind == OWNER_OPENFILE) else { continue };
        let token = openfile::Token { slot: o, generation: s.generation % openfile::TOKEN_GENS };
        let mut free_holder = false;
        let me_pid = owner::current().pid;
        // The requesting process is about to block: it counts as blocked.
        openfile::holders(s.dev, s.ino, token, None, &mut |pid| {
            free_holder |= pid != me_pid && !t.process_is_waiting(pid)
        });
        if free_holder {
            return Check::Clear;
        }
    }
    note_cycle(t, &cycle, slot, want, q);
    Check::Deadlock
}

/// Puts the cycle in the trace line: each owner, the file and range it
/// waits for.
fn note_cycle(t: &Tables, cycle: &crate::engine::deadlock::Cycle, slot: u32, want: LockType, q: Range) {
    use core::fmt::Write;
    let label = |c: &mut crate::trace::Cursor, o: u32| -> core::fmt::Result {
        match t.owners.get(o as usize) {
            Some(s) if s.kind == OWNER_OPENFILE => write!(c, "open file (first locked by pid {})", s.pid),
            Some(s) => write!(c, "pid {}", s.pid),
            None => write!(c, "owner {o}"),
        }
    };
    let wants = |c: &mut crate::trace::Cursor, file: u32, t_: LockType, q: Range| -> core::fmt::Result {
        let (dev, ino) = t.files.get(file as usize).map_or((0, 0), |f| (f.dev, f.ino));
        let kind = if t_ == LockType::Write { "F_WRLCK" } else { "F_RDLCK" };
        write!(c, " waits for {kind} on {}:{} [{}, ", dev, ino, q.start)?;
        if q.end == EOF { c.write_str("EOF]") } else { write!(c, "{}]", q.end) }
    };
    crate::trace::set_note(&|c| {
        c.write_str("cycle: ")?;
        for (i, &o) in cycle.owners().iter().enumerate() {
            label(c, o)?;
            if i == 0 {
                wants(c, slot, want, q)?;
            } else {
                let mut first = None;
                t.waiters_of(o, &mut |_, w| {
                    if first.is_none() {
                        first = Some((
                            w.file,
                            LockType::from_raw(w.ltype).unwrap_or(LockType::Write),
                            Range { start: w.start, end: w.end },
                        ));
                    }
                });
                if let Some((f, ty, r)) = first {
                    wants(c, f, ty, r)?;
                }
            }
            c.write_str(" -> ")?;
        }
        if cycle.total > cycle.len {
            write!(c, "... ({} owners) -> ", cycle.total)?;
        }
        label(c, cycle.owners()[0])
    });
}

/// Ends the waiter registration of a call that will not come back (its
/// thread is being cancelled between wait slices).
pub fn abandon(call: &mut CallState) {
    let Some(w) = call.waiter() else { return };
    call.waiter = 0;
    let me = owner::current();
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    if t.waiters.get(w as usize).is_some_and(|s| s.in_use == 1 && s.pid == me.pid && s.starttime == me.starttime) {
        t.remove_waiter(w);
    }
}

/// Keeps the process-local summary in step with the process's own records.
fn account(spec: OwnerSpec, slot: u32, file: &OpenFile, delta: i32) {
    if spec == OwnerSpec::Process {
        local::account(slot, file.dev, file.ino, delta);
    }
}

/// The first lock of another owner that conflicts with `t` on `q`
/// (F_GETLK, lockf F_TEST); dead owners' locks are reaped, not reported.
pub fn test(fd: i32, file: &OpenFile, spec: OwnerSpec, t: LockType, q: Range) -> Result<Option<Conflict>, Outcome> {
    let reg = match registry::reach(false) {
        Reach::Ready(r) => r,
        Reach::Absent => return Ok(None),
        Reach::Fallback => return Err(Outcome::Native),
    };
    let mut g = reg.lock().map_err(Outcome::Failed)?;
    let (mut tb, wake) = g.split();
    let Some(slot) = tb.find_file(file.dev, file.ino) else { return Ok(None) };
    let me = resolve_owner(&mut tb, spec, file, false).ok().flatten().unwrap_or(NIL);
    for _ in 0..registry::layout::OWNERS {
        let Some(rec) = tb.first_conflict(slot, me, t, q).map_err(|_| Outcome::Failed(Errno::NOLCK))? else {
            return Ok(None);
        };
        let owner = tb.records[rec as usize].owner;
        if reap_if_dead(&mut tb, wake, owner, probe_fd(spec, fd)) {
            if tb.find_file(file.dev, file.ino) != Some(slot) {
                return Ok(None);
            }
            continue;
        }
        let r = &tb.records[rec as usize];
        let o = tb.owners.get(owner as usize);
        return Ok(Some(Conflict {
            ltype: LockType::from_raw(r.ltype).unwrap_or(LockType::Write),
            range: r.range(),
            pid: o.map_or(0, |o| o.pid),
            holder: match o {
                Some(o) if o.kind == OWNER_OPENFILE && o.flavor == FLAVOR_LINUX_OFD => Holder::LinuxOfd,
                Some(o) if o.kind == OWNER_OPENFILE => Holder::QnxFlock,
                _ => Holder::Process,
            },
        }));
    }
    Err(Outcome::Failed(Errno::NOLCK))
}

/// Whether this process holds a lock on `q` of `file` running to EOF.
pub fn holds_lock_to_eof(file: &OpenFile, q: Range) -> bool {
    let Some(reg) = registry::attached() else { return false };
    let Ok(mut g) = reg.lock() else { return false };
    let t = g.tables();
    let (Some(slot), Some(me)) = (t.find_file(file.dev, file.ino), find_owner(&t, owner::current())) else {
        return false;
    };
    t.holds_lock_to_eof(slot, me, q).unwrap_or(false)
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
    // QNX lockf(): F_LOCK and F_TLOCK fail with EAGAIN on a mapped file.
    let request = |req, range, wait| SetRequest {
        owner: OwnerSpec::Process,
        req,
        range,
        wait,
        nomem: Errno::NOMEM,
        convert: false,
        refuse_mapped: matches!(req, Request::Lock(_)),
    };
    // QNX lockf(): F_ULOCK with size OFF_MAX, when the process holds a
    // size-0 lock in that range, is treated as F_ULOCK with size 0.
    if function == libc::F_ULOCK && size == i64::MAX && holds_lock_to_eof(&file, Range::new(cur, EOF)) {
        return set(fd, &file, request(Request::Unlock, Range::new(cur, EOF), false), call);
    }
    let q = match Range::from_flock(cur, 0, size) {
        Ok(q) => q,
        Err(e) => return Outcome::Failed(e),
    };
    match function {
        libc::F_TEST => match test(fd, &file, OwnerSpec::Process, LockType::Write, q) {
            Ok(None) => Outcome::Done(0),
            Ok(Some(_)) => Outcome::Failed(Errno::ACCES),
            Err(o) => o,
        },
        libc::F_ULOCK => set(fd, &file, request(Request::Unlock, q, false), call),
        _ => set(fd, &file, request(Request::Lock(LockType::Write), q, function == libc::F_LOCK), call),
    }
}

/// The lock commands of fcntl, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockCmd {
    GetLk,
    SetLk,
    SetLkW,
    OfdGetLk,
    OfdSetLk,
    OfdSetLkW,
}

impl LockCmd {
    pub fn from_raw(cmd: i32) -> Option<LockCmd> {
        Some(match cmd {
            libc::F_GETLK => LockCmd::GetLk,
            libc::F_SETLK => LockCmd::SetLk,
            libc::F_SETLKW => LockCmd::SetLkW,
            libc::F_OFD_GETLK => LockCmd::OfdGetLk,
            libc::F_OFD_SETLK => LockCmd::OfdSetLk,
            libc::F_OFD_SETLKW => LockCmd::OfdSetLkW,
            _ => return None,
        })
    }

    fn is_ofd(self) -> bool {
        matches!(self, LockCmd::OfdGetLk | LockCmd::OfdSetLk | LockCmd::OfdSetLkW)
    }
}

/// Splits `l_type` into the lock type and whether QNX's F_FLOCK bit is set.
fn decode_type(l_type: i16) -> (i32, bool) {
    let raw = l_type as i32;
    (raw & !crate::F_FLOCK, raw & crate::F_FLOCK != 0)
}

/// `fcntl(fd, cmd, fl)` for the lock commands: process-owned locks, or
/// open-file-owned ones with `F_FLOCK` in `l_type` or a Linux OFD command.
pub fn fcntl_lock(fd: i32, cmd: LockCmd, fl: &mut libc::flock, call: &mut CallState) -> Outcome {
    let file = match OpenFile::of(fd) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let (base_type, flock_bit) = decode_type(fl.l_type);
    // Linux: an OFD request must come with l_pid 0.
    if cmd.is_ofd() && fl.l_pid != 0 {
        return Outcome::Failed(Errno::INVAL);
    }
    let spec = if cmd.is_ofd() {
        OwnerSpec::OpenFile(fd, FLAVOR_LINUX_OFD)
    } else if flock_bit {
        OwnerSpec::OpenFile(fd, FLAVOR_QNX_FLOCK)
    } else {
        OwnerSpec::Process
    };
    let q = match file.base(fd, fl.l_whence).and_then(|b| Range::from_flock(b, fl.l_start, fl.l_len)) {
        Ok(q) => q,
        Err(e) => return Outcome::Failed(e),
    };
    if matches!(cmd, LockCmd::GetLk | LockCmd::OfdGetLk) {
        let t = match base_type {
            libc::F_RDLCK => LockType::Read,
            libc::F_WRLCK => LockType::Write,
            _ => return Outcome::Failed(Errno::INVAL),
        };
        return match test(fd, &file, spec, t, q) {
            Ok(None) => {
                fl.l_type = libc::F_UNLCK as i16;
                Outcome::Done(0)
            }
            Ok(Some(c)) => {
                let t = match c.ltype {
                    LockType::Read => libc::F_RDLCK,
                    LockType::Write => libc::F_WRLCK,
                };
                // QNX's F_GETLK shows a flock-kind holder with F_FLOCK set
                // and its pid; Linux shows an open-file holder with l_pid -1,
                // and so do the Linux OFD commands for any open-file holder.
                let (flag, pid) = match (c.holder, cmd.is_ofd()) {
                    (Holder::Process, _) => (0, c.pid),
                    (Holder::QnxFlock, false) => (crate::F_FLOCK, c.pid),
                    (Holder::QnxFlock, true) | (Holder::LinuxOfd, _) => (0, -1),
                };
                fl.l_type = (t | flag) as i16;
                fl.l_whence = libc::SEEK_SET as i16;
                fl.l_start = c.range.start;
                fl.l_len = c.range.flock_len();
                fl.l_pid = pid;
                Outcome::Done(0)
            }
            Err(o) => o,
        };
    }
    let req = match base_type {
        libc::F_RDLCK if !file.readable => return Outcome::Failed(Errno::BADF),
        libc::F_WRLCK if !file.writable => return Outcome::Failed(Errno::BADF),
        libc::F_RDLCK => Request::Lock(LockType::Read),
        libc::F_WRLCK => Request::Lock(LockType::Write),
        libc::F_UNLCK => Request::Unlock,
        _ => return Outcome::Failed(Errno::INVAL),
    };
    let wait = matches!(cmd, LockCmd::SetLkW | LockCmd::OfdSetLkW);
    let waited = call.slices > 0;
    let r = SetRequest { owner: spec, req, range: q, wait, nomem: Errno::NOLCK, convert: false, refuse_mapped: false };
    let out = set(fd, &file, r, call);
    if out == Outcome::Done(0) && (waited || call.slices > 0) && !same_file(fd, &file) {
        // The descriptor was closed or replaced while we waited (Linux's
        // fcntl_setlk re-check): undo the grant and report EBADF.
        let undo = SetRequest { req: Request::Unlock, wait: false, ..r };
        let _ = set(fd, &file, undo, call);
        return Outcome::Failed(Errno::BADF);
    }
    out
}

fn same_file(fd: i32, file: &OpenFile) -> bool {
    sys::fstat(fd).is_ok_and(|st| st.st_dev == file.dev && st.st_ino == file.ino)
}

/// QNX `flock()`: a whole-file lock owned by the open file, in the same
/// list as fcntl and lockf locks. LOCK_SH is a read lock, LOCK_EX an
/// exclusive one (granted to a descriptor open for reading or writing),
/// LOCK_UN removes it; LOCK_NB fails a conflict with EWOULDBLOCK. A
/// conversion releases the old lock first.
pub fn flock(fd: i32, op: i32, call: &mut CallState) -> Outcome {
    const KNOWN: i32 = libc::LOCK_SH | libc::LOCK_EX | libc::LOCK_UN | libc::LOCK_NB;
    if op & !KNOWN != 0 {
        return Outcome::Failed(Errno::INVAL);
    }
    // QNX libc's order: LOCK_SH wins over LOCK_EX, then LOCK_UN.
    let req = if op & libc::LOCK_SH != 0 {
        Request::Lock(LockType::Read)
    } else if op & libc::LOCK_EX != 0 {
        Request::Lock(LockType::Write)
    } else if op & libc::LOCK_UN != 0 {
        Request::Unlock
    } else {
        return Outcome::Failed(Errno::INVAL);
    };
    let file = match OpenFile::of(fd) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let allowed = match req {
        Request::Lock(LockType::Read) => file.readable,
        _ => file.readable || file.writable,
    };
    if !allowed {
        return Outcome::Failed(Errno::BADF);
    }
    let r = SetRequest {
        owner: OwnerSpec::OpenFile(fd, FLAVOR_QNX_FLOCK),
        req,
        range: Range::WHOLE,
        wait: op & libc::LOCK_NB == 0,
        nomem: Errno::NOLCK,
        convert: true,
        refuse_mapped: false,
    };
    match set(fd, &file, r, call) {
        Outcome::Failed(Errno::AGAIN) => Outcome::Failed(Errno::WOULDBLOCK),
        other => other,
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
}

/// The file behind `fd` if this process may hold locks on it; the cheap
/// test every close path runs before closing.
pub fn locked_file_of(fd: i32) -> Option<(u64, u64)> {
    // A vfork child sees its parent's summary but holds none of its locks.
    if !local::holds_any() || owner::in_shared_memory_child() {
        return None;
    }
    let (dev, ino) = match local::fd_lookup(fd) {
        Some(i) => (i.dev, i.ino),
        None => sys::fstat(fd).map(|st| (st.st_dev, st.st_ino)).ok()?,
    };
    local::may_hold(dev, ino).then_some((dev, ino))
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
    if !local::holds_any() || owner::in_shared_memory_child() {
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
    if local::holds_any() && !owner::in_shared_memory_child() {
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
        // exec made the kernel mark our life mark dead: take it again.
        t.hold_life(me_slot);
        crate::mappings::forget_old_image(&mut t, me_slot);
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
