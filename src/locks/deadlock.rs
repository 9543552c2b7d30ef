//! The cycle check before a request sleeps, and its verification.

use super::*;

/// What the deadlock check decided.
pub(super) enum Check {
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
    Holders(Ticket, u64, u64, identity::Mark),
    /// This process's thread count must be read (outside the mutex) first.
    OwnThreads,
}

/// Asks whether `me` waiting for `want` on `q` in file `slot` closes a cycle.
/// A cycle through a dead owner is not a deadlock: the owner is reaped and
/// the request retried.
#[allow(clippy::too_many_arguments)]
pub(super) fn deadlock_check(
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
            let (dev_, ino_) = (s.dev, s.ino);
            let Some(mark) = mark_of(t, o) else { return Check::Clear };
            v.candidates = process_pids(t);
            return Check::Holders(ticket, dev_, ino_, mark);
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
            let Some(mark) = mark_of(t, o) else { return Check::Clear };
            return Check::Holders(ticket, s.dev, s.ino, mark);
        }
    }
    note_cycle(t, &cycle, slot, want, q);
    Check::Deadlock
}

/// What recognises open-file owner `o`'s description in fdinfo: its token,
/// or with the kernel mirror one of its locks (None: it holds none, so it
/// keeps no cycle closed).
fn mark_of(t: &Tables, o: u32) -> Option<identity::Mark> {
    if crate::mirror::on() {
        let (lt, r) = t.sample_lock(o)?;
        let s = t.owners.get(o as usize)?;
        return Some(identity::Mark::Lock(lt, r, s.pid, s.fd));
    }
    let s = t.owners.get(o as usize)?;
    Some(identity::Mark::Token(identity::Token { slot: o, generation: s.generation % identity::TOKEN_GENS }))
}

/// The pids of the registry's process owners (for a holder scan), or None
/// when there are more than fit.
pub(super) fn process_pids(t: &Tables) -> Option<([i32; 256], usize)> {
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
pub(super) fn note_cycle(t: &Tables, cycle: &crate::engine::deadlock::Cycle, slot: u32, want: LockType, q: Range) {
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
