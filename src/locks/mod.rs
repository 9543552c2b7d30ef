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
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | a set request's life (`set`), F_GETLK (`test`), the mapped-file rule |
//! | `calls.rs` | the call shapes: lockf's mapping, fcntl's lock commands, flock |
//! | `resolve.rs` | who a request is for: process or open-file owner |
//! | `probe.rs` | liveness verdicts: decided under the mutex, probed outside it |
//! | `deadlock.rs` | the cycle check and its verification |
//! | `kernel.rs` | the kernel mirror's side of a request: its kernel lock, unlock, questions and outside waits |
//! | `release.rs` | close, close_range/closefrom/fcloseall, exec, exit |

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

mod call;
mod calls;
mod deadlock;
mod kernel;
mod mapped;
mod probe;
mod reap;
mod release;
mod resolve;

pub use call::*;
pub use calls::{LockCmd, fcntl_lock, flock, lockf};
use deadlock::{Check, deadlock_check};
pub use kernel::verify_mirror;
use kernel::{
    KernelSeen, Seen, changed, drop_stale, kernel_lock, kernel_restore, kernel_test, kernel_unlock, outside_pause,
};
use mapped::{MapCheck, mapped_check};
use probe::{Judged, Verdicts, judge, run_probe};
pub use reap::reap_dead;
use reap::reap_unvouched;
use release::find_owner;
pub use release::{
    FdSnapshot, adopt_after_exec, clear_exec_marks, locked_file_of, mark_for_exec, release_all, release_file,
    release_files_without_descriptors, settle_deferred,
};
use resolve::{resolve_owner, retire_if_idle};

/// The longest a blocked request sleeps before it offers cancellation and
/// re-checks its blockers' liveness.
pub const SLICE_NS: u64 = 50_000_000;

/// What a wait for a lock held outside the library sleeps on between polls
/// (only signals wake it early).
static POLL_WORD: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Passes of one call through the registry without a sleep (see `set`).
const MAX_PASSES: u32 = 4096;

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
    // The slice's end, read from the clock only once the call must wait:
    // an uncontended lock makes no clock read.
    let mut deadline = 0u64;
    let mut slice_end = || {
        if deadline == 0 {
            deadline = sys::monotonic_ns() + SLICE_NS;
        }
        deadline
    };
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
        Reach::Busy => return Outcome::Failed(r.nomem),
    };
    // Passes that neither sleep nor finish (a reap, a probe, a repair) are
    // bounded: each removes something or records a verdict, so a registry
    // that keeps producing them is broken, and the call fails rather than
    // spin.
    let mut passes = 0u32;
    let mirrored = crate::mirror::on();
    let mut polls = 0u32;
    let mut slept = call.slices > 0;
    let mut kseen = KernelSeen::default();
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
            wake.absorb(&t.files, &touched);
        }
        if passes > MAX_PASSES {
            if let Some(w) = call.waiter() {
                t.remove_waiter_if(w, call.waiter_gen, false);
                call.waiter = 0;
            }
            return Outcome::Failed(r.nomem);
        }
        // Every exit taken with the mutex held ends the call's registration.
        let finish = |t: &mut Tables, call: &mut CallState, out: Outcome| {
            if let Some(w) = call.waiter() {
                t.remove_waiter_if(w, call.waiter_gen, matches!(out, Outcome::Done(_)));
                call.waiter = 0;
            }
            out
        };
        if let Some(s) = slept_on.take() {
            if let Some(f) = t.files.get_mut(s as usize) {
                f.sleepers = f.sleepers.saturating_sub(1);
            }
            if let Some(w) = call.waiter() {
                t.waiter_woke(w, call.waiter_gen);
            }
        }
        if interrupted {
            return finish(&mut t, call, Outcome::Interrupted);
        }
        let slot = match r.req {
            Request::Unlock => match t.find_file(file.dev, file.ino) {
                Some(s) => s,
                None => {
                    // The kernel may hold what the registry does not (the
                    // kernel's answer wins): the unlock reaches it anyway.
                    kernel_unlock(mirrored, fd, &r, true);
                    return finish(&mut t, call, Outcome::Done(0));
                }
            },
            Request::Lock(_) => match t.file_slot(file.dev, file.ino) {
                // The process's own bookkeeping for the slot must exist
                // before anything is granted there (the close path reads it).
                Ok(s) if local::ready(s) => s,
                Ok(s) => {
                    t.release_file_if_empty(s);
                    return finish(&mut t, call, Outcome::Failed(r.nomem));
                }
                Err(_) => return finish(&mut t, call, Outcome::Failed(r.nomem)),
            },
        };
        let owner = match resolve_owner(&mut t, r.owner, file, is_lock, me) {
            Ok(Some(o)) => o,
            Ok(None) => {
                t.release_file_if_empty(slot);
                kernel_unlock(mirrored, fd, &r, true);
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
                    if sys::monotonic_ns() >= slice_end() {
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
                changed(&mut t, owner);
                account(r.owner, slot, file, out.delta);
                if out.released {
                    wake.notify(&t.files, slot);
                    // QNX converts by releasing first: so does the kernel.
                    kernel_unlock(mirrored, fd, &SetRequest { req: Request::Unlock, range: Range::WHOLE, ..r }, true);
                }
            }
        }
        // The kernel mirror: the registry decides, the kernel lock is
        // taken, then the registry's, all under this hold of the mutex.
        let decided = match r.req {
            Request::Lock(want) if mirrored => {
                match t.lock_check(slot, owner, want, r.range) {
                    Ok(()) if slept && !calls::same_file(fd, file) => {
                        // About to grant after a wait, and the descriptor
                        // was closed or replaced meanwhile (Linux's
                        // fcntl_setlk re-check).
                        let out = finish(&mut t, call, Outcome::Failed(Errno::BADF));
                        retire_if_idle(&mut t, r.owner, owner);
                        t.release_file_if_empty(slot);
                        return out;
                    }
                    Ok(()) => {
                        let had_none = t.owners.get(owner as usize).is_none_or(|o| o.nlocks == 0);
                        match kernel_lock(fd, &r, file, want, had_none) {
                            Ok(()) => {
                                let res = t.set(slot, owner, r.req, r.range);
                                if res.is_err() {
                                    kernel_restore(&t, fd, &r, slot, owner, had_none);
                                }
                                res
                            }
                            Err(crate::mirror::Refused::Conflict) => {
                                // A lock held outside the library.
                                retire_if_idle(&mut t, r.owner, owner);
                                t.release_file_if_empty(slot);
                                call.met_outside(r.range);
                                if !r.wait {
                                    return finish(&mut t, call, Outcome::Failed(Errno::AGAIN));
                                }
                                if call.announce() {
                                    return Outcome::Blocked;
                                }
                                drop(g);
                                slept = true;
                                match outside_pause(call, &mut polls, slice_end()) {
                                    Some(Outcome::Interrupted) => interrupted = true,
                                    Some(out) => return out,
                                    None => {}
                                }
                                passes = 0;
                                continue;
                            }
                            Err(crate::mirror::Refused::Failed(_)) => {
                                let out = finish(&mut t, call, Outcome::Failed(Errno::NOLCK));
                                retire_if_idle(&mut t, r.owner, owner);
                                t.release_file_if_empty(slot);
                                return out;
                            }
                        }
                    }
                    Err(SetError::Conflict(rec)) => match kseen.judge(&t, fd, rec, r.range) {
                        Seen::Held => Err(SetError::Conflict(rec)),
                        Seen::Stale => {
                            drop_stale(&mut t, wake, slot, rec, r.range, me);
                            continue;
                        }
                        Seen::Ask(question) => {
                            retire_if_idle(&mut t, r.owner, owner);
                            t.release_file_if_empty(slot);
                            drop(g);
                            kseen.ask(fd, question);
                            continue;
                        }
                    },
                    Err(e) => Err(e),
                }
            }
            _ => t.set(slot, owner, r.req, r.range),
        };
        let blocker = match decided {
            Ok(out) => {
                changed(&mut t, owner);
                account(r.owner, slot, file, out.delta);
                if out.released {
                    wake.notify(&t.files, slot);
                }
                if r.req == Request::Unlock {
                    let empty = t.owners.get(owner as usize).is_none_or(|o| o.nlocks == 0);
                    kernel_unlock(mirrored, fd, &r, empty);
                }
                let out = finish(&mut t, call, Outcome::Done(0));
                retire_if_idle(&mut t, r.owner, owner);
                t.release_file_if_empty(slot);
                return out;
            }
            Err(SetError::Conflict(rec)) => {
                call.met(&t, rec);
                t.records[rec as usize].owner
            }
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
                wake.absorb(&t.files, &touched);
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
        if call.announce() {
            // Registered, not yet asleep: the hook traces the wait's start
            // and calls again, and the next pass sleeps.
            return Outcome::Blocked;
        }
        let now = sys::monotonic_ns();
        let deadline = slice_end();
        if now >= deadline {
            call.slices += 1;
            return Outcome::Again;
        }
        // Read our waiter's futex word and mark it asleep under the mutex: a
        // release after this point that can grant us picks us, which changes
        // the word and wakes us, so the sleep below cannot miss it. The file
        // slot is not freed while we sleep (we are counted a sleeper).
        let Some((w, word)) = call.waiter().and_then(|w| Some((w, reg.waiter_word(w)?))) else {
            return finish(&mut t, call, Outcome::Failed(r.nomem));
        };
        let Some(seen) = t.waiter_sleeps(w, call.waiter_gen) else {
            // Dropped meanwhile (a repair): register again.
            call.waiter = 0;
            continue;
        };
        // A crowd of sleepers on one file sleeps longer slices (one more
        // slice per 64 sleepers, at most 2 s): their slices only serve to
        // notice a holder that died without a wake (SIGKILL), which any one
        // of them notices, and thousands of 50 ms slices would keep the
        // registry busy with wake-ups alone.
        let crowd = t.files[slot as usize].sleepers;
        let stretch = (u64::from(crowd) / 64).min(39) * SLICE_NS;
        t.files[slot as usize].sleepers += 1;
        slept_on = Some(slot);
        slept = true;
        drop(g);
        verdicts.age(now);
        passes = 0;
        // A caught signal at any step so far (the trampoline counted it),
        // or from here until the futex sleeps (the trampoline bumps the
        // word, so the sleep returns at once), gives EINTR.
        crate::signals::sleeping_on(Some(word));
        if call.signalled() || sys::futex_wait_shared(word, seen, deadline - now + stretch) == Err(Errno::INTR) {
            interrupted = true;
        }
        crate::signals::sleeping_on(None);
        interrupted |= call.signalled();
    }
}

/// Ends the waiter registration of a call that will not come back (its
/// thread is being cancelled between wait slices).
pub fn abandon(call: &mut CallState) {
    let Some(w) = call.waiter() else { return };
    call.waiter = 0;
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    g.tables().remove_waiter_if(w, call.waiter_gen, false);
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
        Reach::Absent => return kernel_test(fd, spec, t, q),
        Reach::Fallback => return Err(refused(nomem)),
        Reach::Busy => return Err(Outcome::Failed(nomem)),
    };
    let me_id = liveness::current();
    let mut verdicts = Verdicts::default();
    let mut kseen = KernelSeen::default();
    for _ in 0..registry::layout::OWNERS {
        let mut g = reg.lock().map_err(Outcome::Failed)?;
        let (mut tb, wake) = g.split();
        let Some(slot) = tb.find_file(file.dev, file.ino) else {
            drop(g);
            return kernel_test(fd, spec, t, q);
        };
        let me = resolve_owner(&mut tb, spec, file, false, me_id).ok().flatten().unwrap_or(NIL);
        let Some(rec) = tb.first_conflict(slot, me, t, q).map_err(|_| Outcome::Failed(Errno::NOLCK))? else {
            drop(g);
            return kernel_test(fd, spec, t, q);
        };
        if crate::mirror::on() {
            match kseen.judge(&tb, fd, rec, q) {
                Seen::Held => {}
                Seen::Stale => {
                    drop_stale(&mut tb, wake, slot, rec, q, me_id);
                    continue;
                }
                Seen::Ask(question) => {
                    drop(g);
                    kseen.ask(fd, question);
                    continue;
                }
            }
        }
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
