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
use crate::identity::{self, FileRef};
use crate::liveness::{self, Me, Verdict};
use crate::local;
use crate::owner;
use crate::registry::layout::{FLAVOR_LINUX_OFD, FLAVOR_QNX_FLOCK, OWNER_OPENFILE, OWNER_PROCESS};
use crate::registry::{self, Reach, Registry, Tables, Ticket, Vouch, WakeSet};
use crate::sys::{self, Errno};

/// The longest a blocked request sleeps before it offers cancellation and
/// re-checks its blockers' liveness.
pub const SLICE_NS: u64 = 50_000_000;

/// What a wait for a lock held outside the library sleeps on between polls
/// (only signals wake it early).
static POLL_WORD: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Passes of one call through the registry without a sleep (see `set`).
const MAX_PASSES: u32 = 4096;

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
    /// That slot's generation: the registration is ours only while the
    /// slot still has it.
    pub waiter_gen: u32,
    /// The thread's caught-signal count when the call began, with
    /// `SIG_ARMED` set once taken (see `crate::signals`).
    pub sig_base: u32,
    /// The registry's graph epoch at this call's last cycle check.
    pub check_epoch: u32,
    pub _pad: u32,
}

const SIG_ARMED: u32 = 1 << 31;

impl CallState {
    /// Takes the thread's signal count at the call's first pass; then
    /// whether a caught signal arrived since.
    fn signalled(&mut self) -> bool {
        let now = crate::signals::seen() & !SIG_ARMED;
        if self.sig_base & SIG_ARMED == 0 {
            self.sig_base = now | SIG_ARMED;
            return false;
        }
        self.sig_base & !SIG_ARMED != now
    }

    fn waiter(&self) -> Option<u32> {
        self.waiter.checked_sub(1)
    }
}

/// Probe verdicts gathered during one wait slice of a call: a probe runs
/// outside the mutex, and its verdict applies when the mutex is taken again
/// only to the owner generation it was made for.
/// The processes found holding an open file, for the deadlock check.
struct Holders {
    ticket: Ticket,
    /// (pid, threads) of up to 32 of them.
    pids: [(i32, u32); 32],
    n: usize,
    /// There were more than 32.
    more: bool,
}

#[derive(Default)]
struct Verdicts {
    seen: [(Ticket, bool); 32],
    n: usize,
    /// CLOCK_MONOTONIC of the oldest verdict kept: they last one wait slice
    /// (`SLICE_NS`), so a waiter woken often does not probe at every wake.
    since_ns: u64,
    /// The processes found holding an open file (deadlock check): its
    /// ticket, up to 32 (pid, threads), and whether there were more.
    holders: Option<Holders>,
    /// This process's thread count, read outside the mutex when a request
    /// waits for its own process's lock.
    own_threads: Option<u32>,
    /// The pids of the registry's process owners, noted under the mutex for
    /// a holder scan (`None`: more than fit, scan all of `/proc`).
    candidates: Option<([i32; 256], usize)>,
    /// The last holder scan covered only `candidates`: it can prove a
    /// holder free, never that every holder is blocked.
    restricted: bool,
}

impl Verdicts {
    fn get(&self, t: &Ticket) -> Option<bool> {
        self.seen[..self.n].iter().find(|(s, _)| s == t).map(|&(_, alive)| alive)
    }

    fn record(&mut self, t: Ticket, alive: bool) {
        if self.n == self.seen.len() {
            self.seen.copy_within(1.., 0);
            self.n -= 1;
        }
        self.seen[self.n] = (t, alive);
        self.n += 1;
    }

    fn clear(&mut self) {
        self.n = 0;
        self.holders = None;
        self.own_threads = None;
    }

    /// Forgets verdicts older than a slice (called when a wait sleeps).
    fn age(&mut self, now: u64) {
        if now.saturating_sub(self.since_ns) >= SLICE_NS {
            self.clear();
            self.since_ns = now;
        }
    }

    /// The holders noted for `t`: `Some(None)` when there were too many to
    /// note.
    fn holders_of(&self, t: &Ticket) -> Option<Option<&[(i32, u32)]>> {
        let h = self.holders.as_ref()?;
        (h.ticket == *t).then_some(if h.more { None } else { Some(&h.pids[..h.n]) })
    }

    /// Scans for the processes holding the open file behind `token` (run
    /// without the mutex).
    fn find_holders(&mut self, t: Ticket, dev: u64, ino: u64, token: identity::Token) {
        let mut pids = [(0i32, 0u32); 32];
        let (mut n, mut more) = (0, false);
        let mut found = |pid: i32| {
            if n < pids.len() {
                // A thread count we cannot read counts as "one more than
                // could be waiting": the process may be free.
                pids[n] = (pid, identity::threads_of(pid).unwrap_or(u32::MAX));
                n += 1;
            } else {
                more = true;
            }
        };
        self.restricted = self.candidates.is_some();
        match self.candidates.take() {
            Some((list, k)) => identity::holders_among(&list[..k], dev, ino, token, &mut found),
            None => identity::holders(dev, ino, token, None, &mut found),
        }
        self.holders = Some(Holders { ticket: t, pids, n, more });
    }
}

/// What is known about a blocker's liveness under the mutex.
enum Judged {
    Alive,
    /// It was dead and is gone: the caller looks again.
    Reaped,
    /// A probe must run outside the mutex first.
    Probe(Vouch),
}

/// Decides about owner `o` under the mutex, reaping it when it is known to
/// be dead.
fn judge(t: &mut Tables, wake: &mut WakeSet, o: u32, v: &Verdicts) -> Judged {
    let dead = match t.vouch(o) {
        Vouch::Alive => false,
        Vouch::Dead => {
            // A lock whose owner slot names no owner: the tables disagree
            // (a scribbled segment). Repair frees such records.
            let mut touched = WakeSet::default();
            t.repair(&mut |f| touched.add(f));
            wake.absorb(t.files, &touched);
            return Judged::Reaped;
        }
        probe @ (Vouch::ProbeProcess(tk) | Vouch::ProbeOpenFile(tk, _)) => match v.get(&tk) {
            Some(alive) => !alive,
            None => return Judged::Probe(probe),
        },
    };
    if !dead {
        return Judged::Alive;
    }
    let mut touched = WakeSet::default();
    if t.reap_owner(o, &mut |f| touched.add(f)).is_err() {
        t.repair(&mut |f| touched.add(f));
    }
    wake.absorb(t.files, &touched);
    Judged::Reaped
}

/// Runs a probe decided under the mutex; call without it. `fd` is a
/// descriptor of the file an open-file owner locks (its token is probed
/// through it).
fn run_probe(reg: &Registry, v: Vouch, fd: i32, verdicts: &mut Verdicts) {
    match v {
        Vouch::ProbeProcess(tk) => {
            let alive = liveness::probe(reg, tk.anchor, tk.nonce) == Verdict::Alive;
            verdicts.record(tk, alive);
        }
        Vouch::ProbeOpenFile(tk, verify) => {
            let token = identity::Token { slot: tk.owner, generation: tk.generation % identity::TOKEN_GENS };
            verdicts.record(tk, identity::alive(fd, token, verify));
        }
        Vouch::Alive | Vouch::Dead => {}
    }
}

/// The registry is refused: fail closed with `nomem`, or, with
/// `QNXCOMPAT_FALLBACK=kernel`, let the kernel do it.
fn refused(nomem: Errno) -> Outcome {
    if crate::config::kernel_fallback() { Outcome::Native } else { Outcome::Failed(nomem) }
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

/// The registry owner for `spec` on `file`, created when `create`; `None`
/// when it does not exist and `create` is false. `me` is the caller's image
/// (None: it has claimed no anchor, so it owns nothing).
fn resolve_owner(
    t: &mut Tables,
    spec: OwnerSpec,
    file: &FileRef,
    create: bool,
    me: Option<Me>,
) -> Result<Option<u32>, Errno> {
    let hint = local::owner_hint();
    let process = |t: &mut Tables| -> Result<Option<u32>, Errno> {
        let Some(me) = me else { return Ok(None) };
        if !create {
            return Ok(t.find_process(me.nonce, hint));
        }
        let o = t.process_owner(me.nonce, me.anchor, me.pid, hint)?;
        local::set_owner_hint(o);
        t.hold_life(o);
        Ok(Some(o))
    };
    match spec {
        OwnerSpec::Process => process(t),
        OwnerSpec::OpenFile(fd, flavor) => {
            // The process that locks through the open file releases it: the
            // deadlock graph follows it.
            let locker = if create { process(t)? } else { me.and_then(|m| t.find_process(m.nonce, hint)) };
            // The descriptor cache remembers the owner; the registry says
            // whether that slot still is it.
            if let Some((slot, generation)) = local::fd_owner(fd) {
                let token = identity::Token { slot, generation };
                if let Some(o) =
                    t.openfile_owner(token.slot, token.generation, identity::TOKEN_GENS, file.dev, file.ino)
                {
                    relabel_if_idle(t, o, flavor, create, locker, me);
                    return Ok(Some(o));
                }
            }
            let mut found = None;
            let mut stale = [None; 4];
            let mut nstale = 0;
            identity::tokens_of(fd, &mut |tok| match t.openfile_owner(
                tok.slot,
                tok.generation,
                identity::TOKEN_GENS,
                file.dev,
                file.ino,
            ) {
                Some(o) => found = Some(o),
                None if nstale < stale.len() => {
                    stale[nstale] = Some(tok);
                    nstale += 1;
                }
                None => {}
            })?;
            // A token whose slot was reaped and reused names nobody now.
            for tok in stale.iter().flatten() {
                identity::drop_token(fd, *tok);
            }
            if let Some(o) = found {
                local::fd_set_owner(fd, o, t.owners[o as usize].generation % identity::TOKEN_GENS);
                relabel_if_idle(t, o, flavor, create, locker, me);
            }
            if found.is_some() || !create {
                return Ok(found);
            }
            let (Some(locker), Some(me)) = (locker, me) else { return Ok(None) };
            let o = t.new_owner(OWNER_OPENFILE, flavor, me.pid, me.nonce, file.dev, file.ino)?;
            t.owners[o as usize].locker = locker;
            let token = identity::Token { slot: o, generation: t.owners[o as usize].generation % identity::TOKEN_GENS };
            if let Err(e) = identity::take(fd, token, file.readable) {
                t.release_owner_if_idle(o);
                // A kernel lock over the token is a lock held outside the
                // library over the whole file: a real conflict. Anything
                // else is a kernel-side failure, never reported as one.
                return Err(if e == Errno::AGAIN || e == Errno::ACCES { Errno::AGAIN } else { Errno::NOLCK });
            }
            local::fd_set_owner(fd, o, token.generation);
            Ok(Some(o))
        }
    }
}

/// An open-file owner that locks again after going idle: F_GETLK must name
/// the process that now took the lock, and report it in the flavor of the
/// call that took it; the deadlock graph must follow that process.
fn relabel_if_idle(t: &mut Tables, o: u32, flavor: u8, locking: bool, locker: Option<u32>, me: Option<Me>) {
    if let Some(slot) = t.owners.get_mut(o as usize)
        && locking
        && slot.nlocks == 0
    {
        if let Some(me) = me {
            slot.pid = me.pid;
            slot.nonce = me.nonce;
        }
        if let Some(l) = locker {
            slot.locker = l;
        }
        slot.flavor = flavor;
    }
}

/// After a call on an open-file owner: one that holds nothing and waits for
/// nothing gives back its slot and its kernel token, so no kernel lock of
/// the library's is left for a program outside it to trip on.
fn retire_if_idle(t: &mut Tables, spec: OwnerSpec, o: u32) {
    let OwnerSpec::OpenFile(fd, _) = spec else { return };
    let Some(s) = t.owners.get(o as usize) else { return };
    if s.kind != OWNER_OPENFILE || s.nlocks != 0 || s.nwaiters != 0 {
        return;
    }
    let token = identity::Token { slot: o, generation: s.generation % identity::TOKEN_GENS };
    // Under the mutex: the slot may be reused the moment it is free, by a
    // token whose range overlaps this one's.
    identity::drop_token(fd, token);
    local::fd_forget_owner(fd);
    t.release_owner_if_idle(o);
}

/// Applies a set request (lock or unlock) on `file`, reached through `fd`.
///
/// A blocking request that meets a conflict first asks whether waiting
/// would close a cycle in the wait-for graph (EDEADLK if so), then registers
/// itself as a waiter, so that later requests see its edges, and sleeps. The
/// registration lasts across wait slices and goes when the call ends.
///
/// Liveness: a blocker the registry cannot vouch for is probed with the
/// mutex dropped, and the verdict applies on the next pass only if the
/// blocker's slot still has the generation it was probed at.
pub fn set(fd: i32, file: &FileRef, r: SetRequest, call: &mut CallState) -> Outcome {
    crate::fault::point(crate::fault::Point::Entry);
    let deadline = sys::monotonic_ns() + SLICE_NS;
    let mut repaired = false;
    let mut reaped_full = false;
    let mut converted = !r.convert;
    let mut interrupted = false;
    let mut slept_on = None;
    let mut verdicts = Verdicts::default();
    let is_lock = matches!(r.req, Request::Lock(_));
    if r.wait {
        // Arms the signal count (first pass) or sees a signal that came
        // between two wait slices.
        interrupted = call.signalled();
    }
    let reg = match registry::reach(is_lock) {
        Reach::Ready(reg) => reg,
        Reach::Absent => return Outcome::Done(0), // nothing is locked anywhere
        Reach::Fallback => return refused(r.nomem),
    };
    // Passes that neither sleep nor finish (a reap, a probe, a repair) are
    // bounded: each removes something or records a verdict, so a registry
    // that keeps producing them is broken, and the call fails rather than
    // spin.
    let mut passes = 0u32;
    // Claim the caller's anchor before the mutex: it is I/O.
    let me = if is_lock {
        match liveness::ensure(&reg) {
            Ok(me) => Some(me),
            Err(_) => return Outcome::Failed(r.nomem),
        }
    } else {
        liveness::current()
    };
    loop {
        passes += 1;
        let mut g = match reg.lock() {
            Ok(g) => g,
            Err(e) => return Outcome::Failed(e),
        };
        let (mut t, wake) = g.split();
        if passes == MAX_PASSES / 2 {
            let mut touched = WakeSet::default();
            t.repair(&mut |f| touched.add(f));
            wake.absorb(t.files, &touched);
        }
        if passes > MAX_PASSES {
            if let Some(w) = call.waiter() {
                t.remove_waiter_if(w, call.waiter_gen);
                call.waiter = 0;
            }
            return Outcome::Failed(r.nomem);
        }
        // Every exit taken with the mutex held ends the call's registration.
        let finish = |t: &mut Tables, call: &mut CallState, out: Outcome| {
            if let Some(w) = call.waiter() {
                t.remove_waiter_if(w, call.waiter_gen);
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
        let owner = match resolve_owner(&mut t, r.owner, file, is_lock, me) {
            Ok(Some(o)) => o,
            Ok(None) => {
                t.release_file_if_empty(slot);
                return finish(&mut t, call, Outcome::Done(0)); // an owner with nothing unlocks
            }
            Err(Errno::NOLCK) if !reaped_full => {
                // The owner table is full: reap the dead, then retry once.
                t.release_file_if_empty(slot);
                drop(g);
                reap_unvouched(&reg);
                reaped_full = true;
                continue;
            }
            Err(Errno::AGAIN) if r.wait => {
                // A lock held outside the library over the open file's
                // token: poll until it goes, every 10 ms, interruptible by
                // any caught signal, then try again.
                t.release_file_if_empty(slot);
                drop(g);
                while identity::outside_free(fd, file.readable) == Ok(false) {
                    if call.signalled() {
                        interrupted = true;
                        break;
                    }
                    if sys::monotonic_ns() >= deadline {
                        call.slices += 1;
                        return Outcome::Again;
                    }
                    let seen = POLL_WORD.load(core::sync::atomic::Ordering::Acquire);
                    crate::signals::sleeping_on(Some(&POLL_WORD));
                    if !call.signalled() {
                        let _ = sys::futex_wait_shared(&POLL_WORD, seen, 10_000_000);
                    }
                    crate::signals::sleeping_on(None);
                }
                continue;
            }
            Err(e) => {
                t.release_file_if_empty(slot);
                return finish(&mut t, call, Outcome::Failed(if e == Errno::NOLCK { r.nomem } else { e }));
            }
        };
        if r.refuse_mapped {
            match mapped_check(&mut t, wake, owner, slot, &verdicts) {
                MapCheck::Mapped => {
                    t.release_file_if_empty(slot);
                    return finish(&mut t, call, Outcome::Failed(Errno::AGAIN));
                }
                // The file slot may have gone with what was reaped.
                MapCheck::Reaped => continue,
                MapCheck::Probe(v) => {
                    t.release_file_if_empty(slot);
                    drop(g);
                    run_probe(&reg, v, fd, &mut verdicts);
                    continue;
                }
                MapCheck::Unmapped => {}
            }
        }
        if let Some(w) = call.waiter()
            && !t.refresh_waiter(w, call.waiter_gen, owner)
        {
            call.waiter = 0; // dropped by a repair: registers again below
        }
        if !converted {
            converted = true;
            if let Request::Lock(want) = r.req
                && let Ok(out) = t.release_other_type(slot, owner, want)
            {
                account(r.owner, slot, file, out.delta);
                if out.released {
                    wake.notify(t.files, slot);
                }
            }
        }
        let blocker = match t.set(slot, owner, r.req, r.range) {
            Ok(out) => {
                account(r.owner, slot, file, out.delta);
                if out.released {
                    wake.notify(t.files, slot);
                }
                let out = finish(&mut t, call, Outcome::Done(0));
                retire_if_idle(&mut t, r.owner, owner);
                t.release_file_if_empty(slot);
                return out;
            }
            Err(SetError::Conflict(rec)) => t.records[rec as usize].owner,
            Err(SetError::NoSpace) => {
                let out = finish(&mut t, call, Outcome::Failed(r.nomem));
                retire_if_idle(&mut t, r.owner, owner);
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
        match judge(&mut t, wake, blocker, &verdicts) {
            Judged::Alive => {}
            Judged::Reaped => continue,
            Judged::Probe(v) => {
                retire_if_idle(&mut t, r.owner, owner);
                t.release_file_if_empty(slot);
                drop(g);
                run_probe(&reg, v, fd, &mut verdicts);
                continue;
            }
        }
        if !r.wait {
            let out = finish(&mut t, call, Outcome::Failed(Errno::AGAIN));
            retire_if_idle(&mut t, r.owner, owner);
            t.release_file_if_empty(slot);
            return out;
        }
        // The cycle check runs before every sleep, not only the first: the
        // graph around a waiter changes while it sleeps (another waiter is
        // granted, a holder starts waiting), and a cycle that closes later
        // is found at the next wake or slice.
        let epoch = t.free.graph_epoch;
        if let (Request::Lock(want), Some(me), true) = (r.req, me, call.waiter().is_none() || call.check_epoch != epoch)
        {
            call.check_epoch = epoch;
            match deadlock_check(&mut t, wake, owner, slot, want, r.range, fd, &mut verdicts, call.waiter().is_some()) {
                Check::Retry => continue,
                Check::Probe(v) => {
                    drop(g);
                    run_probe(&reg, v, fd, &mut verdicts);
                    continue;
                }
                Check::Holders(tk, dev, ino, token) => {
                    drop(g);
                    verdicts.find_holders(tk, dev, ino, token);
                    continue;
                }
                Check::OwnThreads => {
                    drop(g);
                    // Unreadable: count the process as single-threaded.
                    verdicts.own_threads = Some(identity::threads_of(sys::getpid()).unwrap_or(1));
                    continue;
                }
                Check::Deadlock => {
                    let out = finish(&mut t, call, Outcome::Failed(Errno::DEADLK));
                    retire_if_idle(&mut t, r.owner, owner);
                    t.release_file_if_empty(slot);
                    return out;
                }
                Check::Clear if call.waiter().is_some() => {}
                Check::Clear => {
                    let proc_ = t.find_process(me.nonce, local::owner_hint()).unwrap_or(owner);
                    let Some((w, generation)) = t.add_waiter(owner, slot, want, r.range, proc_, me.nonce) else {
                        // Nothing left to record the wait in: waiting unseen
                        // would hide a deadlock, so the request fails.
                        let out = finish(&mut t, call, Outcome::Failed(r.nomem));
                        retire_if_idle(&mut t, r.owner, owner);
                        t.release_file_if_empty(slot);
                        return out;
                    };
                    call.waiter = w + 1;
                    call.waiter_gen = generation;
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
        // sleep below cannot miss it. The slot is not freed while we sleep.
        let word = reg.wake_word(slot);
        let seen = word.load(core::sync::atomic::Ordering::Acquire);
        t.files[slot as usize].sleepers += 1;
        slept_on = Some(slot);
        drop(g);
        verdicts.age(now);
        passes = 0;
        // A caught signal at any step so far (the trampoline counted it),
        // or from here until the futex sleeps (the trampoline bumps the
        // word, so the sleep returns at once), gives EINTR.
        crate::signals::sleeping_on(Some(word));
        if call.signalled() || sys::futex_wait_shared(word, seen, deadline - now) == Err(Errno::INTR) {
            interrupted = true;
        }
        crate::signals::sleeping_on(None);
        interrupted |= call.signalled();
    }
}

/// What the mapped-file check found.
enum MapCheck {
    Mapped,
    Unmapped,
    /// A mapper was dead and is gone: look again.
    Reaped,
    Probe(Vouch),
}

/// Whether a live process maps `file` (QNX lockf's mapped-file rule). The
/// caller's own mappings count.
fn mapped_check(t: &mut Tables, wake: &mut WakeSet, me: u32, file: u32, v: &Verdicts) -> MapCheck {
    let mut mappers = [NIL; 16];
    let mut n = 0;
    let mut more = false;
    t.for_each_mapper(file, &mut |o| {
        if !mappers[..n].contains(&o) {
            if n == mappers.len() {
                more = true;
                return false;
            }
            mappers[n] = o;
            n += 1;
        }
        true
    });
    if mappers[..n].contains(&me) {
        return MapCheck::Mapped;
    }
    if t.files.get(file as usize).is_some_and(|f| f.unrecorded != 0) {
        // Mapped by some owner that the mapping table had no room for:
        // mapped while any such owner lives.
        // The first such owner decides: alive, the file counts as mapped;
        // dead, it is reaped and the check runs again.
        let mut first = None;
        t.for_each_unrecorded(&mut |o| {
            first = Some(o);
            false
        });
        if let Some(o) = first {
            if o == me {
                return MapCheck::Mapped;
            }
            return match judge(t, wake, o, v) {
                Judged::Alive => MapCheck::Mapped,
                Judged::Reaped => MapCheck::Reaped,
                Judged::Probe(p) => MapCheck::Probe(p),
            };
        }
    }
    let mut reaped = false;
    for &o in &mappers[..n] {
        match judge(t, wake, o, v) {
            Judged::Alive => return MapCheck::Mapped,
            Judged::Reaped => reaped = true,
            Judged::Probe(p) => return MapCheck::Probe(p),
        }
    }
    if reaped || more { MapCheck::Reaped } else { MapCheck::Unmapped }
}

/// With the owner table full: probes the process owners the registry cannot
/// vouch for (outside the mutex) and reaps those found dead.
fn reap_unvouched(reg: &Registry) {
    let mut tickets = [Ticket::default(); 64];
    let n = match reg.lock() {
        Ok(mut g) => g.tables().unvouched(&mut tickets),
        Err(_) => return,
    };
    let mut dead = [false; 64];
    for (i, tk) in tickets[..n].iter().enumerate() {
        dead[i] = liveness::probe(reg, tk.anchor, tk.nonce) == Verdict::Dead;
    }
    let Ok(mut g) = reg.lock() else { return };
    let (mut t, wake) = g.split();
    let mut touched = WakeSet::default();
    for (i, tk) in tickets[..n].iter().enumerate() {
        if dead[i] && t.ticket_current(tk) && t.reap_owner(tk.owner, &mut |f| touched.add(f)).is_err() {
            t.repair(&mut |f| touched.add(f));
        }
    }
    wake.absorb(t.files, &touched);
}

/// What the deadlock check decided.
enum Check {
    /// No cycle: register and sleep.
    Clear,
    /// Waiting would close a cycle of live owners.
    Deadlock,
    /// A dead owner or waiter was on the cycle and is gone now: try again.
    Retry,
    /// An owner on the cycle must be probed outside the mutex first.
    Probe(Vouch),
    /// The processes holding an open file on the cycle must be found
    /// (outside the mutex) first.
    Holders(Ticket, u64, u64, identity::Token),
    /// This process's thread count must be read (outside the mutex) first.
    OwnThreads,
}

/// Asks whether `me` waiting for `want` on `q` in file `slot` closes a cycle.
/// A cycle through a dead owner is not a deadlock: the owner is reaped and
/// the request retried.
#[allow(clippy::too_many_arguments)]
fn deadlock_check(
    t: &mut Tables,
    wake: &mut WakeSet,
    me: u32,
    slot: u32,
    want: LockType,
    q: Range,
    fd: i32,
    v: &mut Verdicts,
    registered: bool,
) -> Check {
    // Every lock in the way starts the search, however many there are.
    let Some(cycle) = t.find_cycle(me, slot, want, q) else { return Check::Clear };
    let (dev, ino) = t.files.get(slot as usize).map_or((0, 0), |f| (f.dev, f.ino));
    let _ = fd;
    for &o in &cycle.owners()[1..] {
        // Every owner on the cycle, and every process whose wait puts it
        // there, must be alive: a cycle through the dead is no deadlock.
        let mut procs = [NIL; 8];
        let mut n = 0;
        t.waiting_processes(o, &mut |p| {
            if n < procs.len() && !procs[..n].contains(&p) {
                procs[n] = p;
                n += 1;
            }
        });
        let open_file_elsewhere =
            t.owners.get(o as usize).is_some_and(|s| s.kind == OWNER_OPENFILE && (s.dev != dev || s.ino != ino));
        // An open-file owner can be probed only through a descriptor of its
        // own file; on another file its waiting processes stand for it.
        let own = if open_file_elsewhere { None } else { Some(o) };
        for p in own.into_iter().chain(procs[..n].iter().copied()) {
            match judge(t, wake, p, v) {
                Judged::Alive => {}
                Judged::Reaped => return Check::Retry,
                Judged::Probe(pr) => return Check::Probe(pr),
            }
        }
    }
    // An open file on the cycle is released by whichever process holds a
    // descriptor of it: unless every one of them is blocked, someone can
    // still release it, and this is no deadlock.
    // A request blocked only by its own process's lock of the other kind
    // (its flock in the way of its fcntl lock, or the reverse) waits for
    // itself: a deadlock unless another thread of the process is free to
    // release. That needs only the process's own thread count.
    // A re-check does not judge a cycle that closes through the requester's
    // own open file: another process sharing that open file may be free to
    // release it, and finding out is a /proc scan; the request that
    // closed the cycle was judged when it came.
    if registered && cycle.stand_in.is_some() {
        return Check::Clear;
    }
    if cycle.own {
        let Some(threads) = v.own_threads else { return Check::OwnThreads };
        let waiting = t.waiting_threads(sys::getpid()) + u32::from(!registered);
        if waiting < threads {
            return Check::Clear;
        }
        note_cycle(t, &cycle, slot, want, q);
        return Check::Deadlock;
    }
    // Who holds a descriptor of it is a scan of /proc, run outside the
    // mutex (`Check::Holders`); the answer is used under it.
    for &o in &cycle.owners()[1..] {
        let Some(s) = t.owners.get(o as usize).filter(|s| s.kind == OWNER_OPENFILE) else { continue };
        let ticket = Ticket { owner: o, generation: s.generation, anchor: NIL, nonce: s.nonce };
        let Some(pids) = v.holders_of(&ticket) else {
            if registered {
                // A re-check (the graph changed while we slept) does not
                // pay for a /proc scan: a cycle through an open file is
                // judged when its last request arrives; re-checks catch the
                // cycles that close through process-owned locks.
                return Check::Clear;
            }
            let token = identity::Token { slot: o, generation: s.generation % identity::TOKEN_GENS };
            let (dev_, ino_) = (s.dev, s.ino);
            v.candidates = process_pids(t);
            return Check::Holders(ticket, dev_, ino_, token);
        };
        let me_pid = sys::getpid();
        // The requesting process is about to block: it counts as blocked.
        // More holders than were noted: someone may be free.
        // No holder found at all: the open file's last descriptor went
        // since the search (its token with it), so it cannot be what keeps
        // the cycle closed; the next wake looks again.
        //
        // A process is blocked only when every one of its threads is: one
        // thread waiting while another holds the flock is no deadlock
        // (the requesting thread is about to block: it counts).
        let blocked = |pid: i32, threads: u32| {
            let waiting = t.waiting_threads(pid) + u32::from(pid == me_pid && !registered);
            waiting >= threads
        };
        let free_holder = pids.is_none_or(|p| p.is_empty() || p.iter().any(|&(pid, n)| !blocked(pid, n)));
        if free_holder {
            return Check::Clear;
        }
        if v.restricted {
            // Only the registry's processes were looked at: any other
            // process sharing the open file could release it. Look at all.
            v.holders = None;
            v.candidates = None;
            v.restricted = false;
            let token = identity::Token { slot: o, generation: s.generation % identity::TOKEN_GENS };
            return Check::Holders(ticket, s.dev, s.ino, token);
        }
    }
    note_cycle(t, &cycle, slot, want, q);
    Check::Deadlock
}

/// The pids of the registry's process owners (for a holder scan), or None
/// when there are more than fit.
fn process_pids(t: &Tables) -> Option<([i32; 256], usize)> {
    let mut list = [0i32; 256];
    let mut n = 0;
    for o in t.used_owners() {
        if o.kind == OWNER_PROCESS && o.pid > 0 && !list[..n].contains(&o.pid) {
            if n == list.len() {
                return None;
            }
            list[n] = o.pid;
            n += 1;
        }
    }
    Some((list, n))
}

/// Puts the cycle in the trace line: each owner, the file and range it
/// waits for.
fn note_cycle(t: &Tables, cycle: &crate::engine::deadlock::Cycle, slot: u32, want: LockType, q: Range) {
    use core::fmt::Write;
    let label = |c: &mut crate::fmt::Cursor, o: u32| -> core::fmt::Result {
        match t.owners.get(o as usize) {
            Some(s) if s.kind == OWNER_OPENFILE => write!(c, "open file (first locked by pid {})", s.pid),
            Some(s) => write!(c, "pid {}", s.pid),
            None => write!(c, "owner {o}"),
        }
    };
    let wants = |c: &mut crate::fmt::Cursor, file: u32, t_: LockType, q: Range| -> core::fmt::Result {
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
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    g.tables().remove_waiter_if(w, call.waiter_gen);
}

/// Keeps the process-local summary in step with the process's own records.
fn account(spec: OwnerSpec, slot: u32, file: &FileRef, delta: i32) {
    if spec == OwnerSpec::Process {
        local::account(slot, file.dev, file.ino, delta);
    }
}

/// The first lock of another owner that conflicts with `t` on `q`
/// (F_GETLK, lockf F_TEST); dead owners' locks are reaped, not reported.
/// `nomem` is the call's errno for an unusable registry.
pub fn test(
    fd: i32,
    file: &FileRef,
    spec: OwnerSpec,
    t: LockType,
    q: Range,
    nomem: Errno,
) -> Result<Option<Conflict>, Outcome> {
    crate::fault::point(crate::fault::Point::Entry);
    let reg = match registry::reach(false) {
        Reach::Ready(r) => r,
        Reach::Absent => return Ok(None),
        Reach::Fallback => return Err(refused(nomem)),
    };
    let me_id = liveness::current();
    let mut verdicts = Verdicts::default();
    for _ in 0..registry::layout::OWNERS {
        let mut g = reg.lock().map_err(Outcome::Failed)?;
        let (mut tb, wake) = g.split();
        let Some(slot) = tb.find_file(file.dev, file.ino) else { return Ok(None) };
        let me = resolve_owner(&mut tb, spec, file, false, me_id).ok().flatten().unwrap_or(NIL);
        let Some(rec) = tb.first_conflict(slot, me, t, q).map_err(|_| Outcome::Failed(Errno::NOLCK))? else {
            return Ok(None);
        };
        let owner = tb.records[rec as usize].owner;
        match judge(&mut tb, wake, owner, &verdicts) {
            Judged::Alive => {}
            Judged::Reaped => continue,
            Judged::Probe(v) => {
                drop(g);
                run_probe(&reg, v, fd, &mut verdicts);
                continue;
            }
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
pub fn holds_lock_to_eof(file: &FileRef, q: Range) -> bool {
    let Some(reg) = registry::attached() else { return false };
    let Ok(mut g) = reg.lock() else { return false };
    let t = g.tables();
    let (Some(slot), Some(me)) = (t.find_file(file.dev, file.ino), find_owner(&t)) else {
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
    let file = match FileRef::of(fd) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    if matches!(function, libc::F_LOCK | libc::F_TLOCK) && !file.writable {
        return Outcome::Failed(Errno::BADF);
    }
    let cur = match identity::position(fd) {
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
        libc::F_TEST => match test(fd, &file, OwnerSpec::Process, LockType::Write, q, Errno::NOMEM) {
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
    let file = match FileRef::of(fd) {
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
        return match test(fd, &file, spec, t, q, Errno::NOLCK) {
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

fn same_file(fd: i32, file: &FileRef) -> bool {
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
    let file = match FileRef::of(fd) {
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
    if registry::in_registry() {
        local::defer_release(dev, ino);
        return;
    }
    release_file_now(dev, ino);
    settle_deferred();
}

fn release_file_now(dev: u64, ino: u64) {
    let Some(reg) = registry::attached() else { return };
    let Some(me) = liveness::current() else { return };
    let Ok(mut g) = reg.lock() else {
        // The mutex could not be had (a handler interrupted this thread
        // between its flag and the mutex): never drop the release.
        local::defer_release(dev, ino);
        return;
    };
    let (mut t, wake) = g.split();
    let Some(slot) = t.find_file(dev, ino) else { return };
    let me_slot = local::owner_hint();
    if !t.owners.get(me_slot as usize).is_some_and(|o| o.kind == OWNER_PROCESS && o.nonce == me.nonce) {
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

/// Runs the releases that signal handlers' close() calls deferred while
/// this thread was inside the registry. The hooks call it when a call
/// that used the registry returns; one atomic load when there are none.
pub fn settle_deferred() {
    if !local::has_deferred() || registry::in_registry() {
        return;
    }
    local::take_deferred(&mut |dev, ino| release_file_now(dev, ino));
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

/// Descriptors of locked files, counted per file before a call that may
/// close many of them (close_range, closefrom, fcloseall) and again after
/// it: every held file that lost a descriptor in the range is released
/// (QNX releases on the first close of any descriptor for the file). The
/// counts are per registry slot, so any number of descriptors and files is
/// settled, none is dropped for want of room.
pub struct FdSnapshot {
    lo: u32,
    hi: u32,
    active: bool,
}

/// Calls `f` with the held slot of every open descriptor in `[lo, hi]`
/// (`pred` filters by descriptor).
fn for_each_held_fd(lo: u32, hi: u32, pred: &dyn Fn(i32) -> bool, f: &mut dyn FnMut(u32)) {
    let _ = sys::for_each_open_fd(&mut |fd| {
        if (fd as u32) < lo || (fd as u32) > hi || !pred(fd) {
            return;
        }
        if let Some((dev, ino)) = locked_file_of(fd)
            && let Some(slot) = local::slot_of(dev, ino)
        {
            f(slot);
        }
    });
}

impl FdSnapshot {
    /// Notes how many descriptors in `[lo, hi]` each held file has.
    pub fn take(lo: u32, hi: u32) -> FdSnapshot {
        FdSnapshot { lo, hi, active: local::holds_any() && !owner::in_shared_memory_child() }
    }

    /// Runs `close` between the two counts, then releases the files that
    /// lost a descriptor.
    pub fn around<R>(self, close: impl FnOnce() -> R) -> R {
        if !self.active {
            return close();
        }
        let (lo, hi) = (self.lo, self.hi);
        local::with_slot_scratch(|count| {
            for_each_held_fd(lo, hi, &|_| true, &mut |s| {
                count[s as usize].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            });
            let r = close();
            for_each_held_fd(lo, hi, &|_| true, &mut |s| {
                let c = &count[s as usize];
                let _ =
                    c.fetch_update(core::sync::atomic::Ordering::Relaxed, core::sync::atomic::Ordering::Relaxed, |v| {
                        v.checked_sub(1)
                    });
            });
            for (s, c) in count.iter().enumerate() {
                if c.load(core::sync::atomic::Ordering::Relaxed) != 0
                    && let Some((dev, ino)) = local::held_file(s as u32)
                {
                    release_file(dev, ino);
                }
            }
            r
        })
    }
}

/// Releases the locks of every file this process holds locks on but no
/// longer has a descriptor for (after exec closed close-on-exec
/// descriptors). Any number of files.
pub fn release_files_without_descriptors() {
    if !local::holds_any() {
        return;
    }
    local::with_slot_scratch(|open| {
        for_each_held_fd(0, u32::MAX, &|_| true, &mut |s| {
            open[s as usize].store(1, core::sync::atomic::Ordering::Relaxed);
        });
        for s in 0..registry::layout::FILES {
            if open[s as usize].load(core::sync::atomic::Ordering::Relaxed) == 0
                && let Some((dev, ino)) = local::held_file(s)
            {
                release_file(dev, ino);
            }
        }
    });
}

/// This image's process owner slot, if it has one.
fn find_owner(t: &Tables) -> Option<u32> {
    t.find_process(liveness::current()?.nonce, local::owner_hint())
}

/// Before an exec: marks this process's locks on every file that has a
/// close-on-exec descriptor, since exec's close of it releases them (QNX
/// releases on the first close of any descriptor). The new image drops
/// marked locks when it loads; a failed exec clears the marks. Any number
/// of descriptors and files: the marks are per registry slot.
pub fn mark_for_exec() {
    if !local::holds_any() || owner::in_shared_memory_child() {
        return;
    }
    local::with_slot_scratch(|doomed| {
        let cloexec = |fd: i32| sys::fcntl_int(fd, libc::F_GETFD, 0).is_ok_and(|v| v as i32 & libc::FD_CLOEXEC != 0);
        let mut any = false;
        for_each_held_fd(0, u32::MAX, &cloexec, &mut |s| {
            doomed[s as usize].store(1, core::sync::atomic::Ordering::Relaxed);
            any = true;
        });
        if any {
            set_exec_marks(&mut |slot| {
                doomed.get(slot as usize).is_some_and(|d| d.load(core::sync::atomic::Ordering::Relaxed) != 0)
            });
        }
    });
}

/// After a failed exec: nothing was closed, so nothing is released.
pub fn clear_exec_marks() {
    if local::holds_any() && !owner::in_shared_memory_child() {
        set_exec_marks(&mut |_| false);
    }
}

fn set_exec_marks(marked: &mut dyn FnMut(u32) -> bool) {
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    let Some(me_slot) = find_owner(&t) else { return };
    t.for_each_owned(me_slot, &mut |_, rec, _| {
        rec.flags = if marked(rec.file) { RECORD_EXEC_RELEASE } else { 0 };
    });
}

/// At load time: if this image was started by an exec that handed its
/// anchor over (`QNXCOMPAT_ADOPT`, see `crate::liveness`), take the anchor,
/// drop the locks exec's closes released, adopt the accounting of the
/// rest, and release files no descriptor refers to any more. Without the
/// variable this costs one `getenv`.
pub fn adopt_after_exec() {
    let Some(value) = sys::getenv(c"QNXCOMPAT_ADOPT") else { return };
    let value = value.to_bytes();
    let mut copy = [0u8; 96];
    let n = value.len().min(copy.len());
    copy[..n].copy_from_slice(&value[..n]);
    // Not for our own children: they are new images.
    sys::unsetenv_in_constructor(c"QNXCOMPAT_ADOPT");
    let Reach::Ready(reg) = registry::reach(false) else { return };
    let Some(me) = liveness::adopt_bridge(&reg, &copy[..n]) else { return };
    {
        let Ok(mut g) = reg.lock() else { return };
        let (mut t, wake) = g.split();
        let Some(me_slot) = t.find_process(me.nonce, NIL) else { return };
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
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let (mut t, wake) = g.split();
    let Some(me_slot) = find_owner(&t) else { return };
    let mut touched = WakeSet::default();
    if t.reap_owner(me_slot, &mut |f| touched.add(f)).is_err() {
        t.repair(&mut |f| touched.add(f));
    }
    wake.absorb(t.files, &touched);
}
