//! Liveness verdicts for one call: decided under the registry mutex,
//! probed outside it, acted on only while the owner generation holds.

use super::*;

/// Probe verdicts gathered during one wait slice of a call: a probe runs
/// outside the mutex, and its verdict applies when the mutex is taken again
/// only to the owner generation it was made for.
/// The processes found holding an open file, for the deadlock check.
pub(super) struct Holders {
    pub(super) ticket: Ticket,
    /// (pid, threads) of up to 32 of them.
    pub(super) pids: [(i32, u32); 32],
    pub(super) n: usize,
    /// There were more than 32.
    pub(super) more: bool,
}

#[derive(Default)]
pub(super) struct Verdicts {
    pub(super) seen: [(Ticket, bool); 8],
    pub(super) n: usize,
    /// CLOCK_MONOTONIC of the oldest verdict kept: they last one wait slice
    /// (`SLICE_NS`), so a waiter woken often does not probe at every wake.
    pub(super) since_ns: u64,
    /// The processes found holding an open file (deadlock check): its
    /// ticket, up to 32 (pid, threads), and whether there were more.
    pub(super) holders: Option<Holders>,
    /// This process's thread count, read outside the mutex when a request
    /// waits for its own process's lock.
    pub(super) own_threads: Option<u32>,
    /// The pids of the registry's process owners, noted under the mutex for
    /// a holder scan (`None`: more than fit, scan all of `/proc`).
    pub(super) candidates: Option<([i32; 256], usize)>,
    /// The last holder scan covered only `candidates`: it can prove a
    /// holder free, never that every holder is blocked.
    pub(super) restricted: bool,
}

impl Verdicts {
    pub(super) fn get(&self, t: &Ticket) -> Option<bool> {
        self.seen[..self.n].iter().find(|(s, _)| s == t).map(|&(_, alive)| alive)
    }

    pub(super) fn record(&mut self, t: Ticket, alive: bool) {
        if self.n == self.seen.len() {
            self.seen.copy_within(1.., 0);
            self.n -= 1;
        }
        self.seen[self.n] = (t, alive);
        self.n += 1;
    }

    pub(super) fn clear(&mut self) {
        self.n = 0;
        self.holders = None;
        self.own_threads = None;
    }

    /// Forgets verdicts older than a slice (called when a wait sleeps).
    pub(super) fn age(&mut self, now: u64) {
        if now.saturating_sub(self.since_ns) >= SLICE_NS {
            self.clear();
            self.since_ns = now;
        }
    }

    /// The holders noted for `t`: `Some(None)` when there were too many to
    /// note.
    pub(super) fn holders_of(&self, t: &Ticket) -> Option<Option<&[(i32, u32)]>> {
        let h = self.holders.as_ref()?;
        (h.ticket == *t).then_some(if h.more { None } else { Some(&h.pids[..h.n]) })
    }

    /// Scans for the processes holding the open file behind `token` (run
    /// without the mutex).
    pub(super) fn find_holders(&mut self, t: Ticket, dev: u64, ino: u64, mark: identity::Mark) {
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
            Some((list, k)) => identity::holders_among(&list[..k], dev, ino, mark, &mut found),
            None => identity::holders(dev, ino, mark, None, &mut found),
        }
        self.holders = Some(Holders { ticket: t, pids, n, more });
    }
}

/// What is known about a blocker's liveness under the mutex.
pub(super) enum Judged {
    Alive,
    /// It was dead and is gone: the caller looks again.
    Reaped,
    /// A probe must run outside the mutex first.
    Probe(Vouch),
}

/// Decides about owner `o` under the mutex, reaping it when it is known to
/// be dead.
pub(super) fn judge(t: &mut Tables, wake: &mut WakeSet, o: u32, v: &Verdicts) -> Judged {
    let dead = match t.vouch(o) {
        Vouch::Alive => false,
        Vouch::Dead => {
            // A lock whose owner slot names no owner: the tables disagree
            // (a scribbled segment). Repair frees such records.
            let mut touched = WakeSet::default();
            t.repair(&mut |f| touched.add(f));
            wake.absorb(&t.files, &touched);
            return Judged::Reaped;
        }
        probe @ (Vouch::ProbeProcess(tk) | Vouch::ProbeOpenFile(tk, _, _)) => match v.get(&tk) {
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
    wake.absorb(&t.files, &touched);
    Judged::Reaped
}

/// Whether an open-file owner's description still exists, with the kernel
/// mirror: its sample lock is held by somebody. The descriptor that last
/// started locking through it still carrying exactly that lock says yes at
/// once; no kernel lock over it says no. Another lock in the way (the
/// kernel names one conflict only) is settled by looking for a descriptor
/// that carries exactly the sample lock among the user's processes.
fn mirrored_alive(fd: i32, s: &crate::registry::Sample) -> bool {
    use crate::mirror;
    if s.pid > 0 && s.fd >= 0 && identity::carries(s.pid, s.fd, s.ltype, s.range) {
        return true;
    }
    if !sys::fstat(fd).is_ok_and(|st| st.st_dev == s.dev && st.st_ino == s.ino) {
        return true; // not a descriptor of its file: cannot tell
    }
    match mirror::holder(fd, mirror::Kind::Posix, LockType::Write, s.range) {
        Ok(None) => false,
        Ok(Some(h)) if h.pid == -1 && h.range == s.range && h.ltype == s.ltype => true,
        Ok(Some(_)) => {
            let mut held = false;
            let mark = identity::Mark::Lock(s.ltype, s.range, 0, -1);
            identity::holders(s.dev, s.ino, mark, Some(sys::geteuid()), &mut |_| held = true);
            held
        }
        Err(_) => true,
    }
}

/// Runs a probe decided under the mutex; call without it. `fd` is a
/// descriptor of the file an open-file owner locks (its token is probed
/// through it).
pub(super) fn run_probe(reg: &Registry, v: Vouch, fd: i32, verdicts: &mut Verdicts) {
    match v {
        Vouch::ProbeProcess(tk) => {
            let alive = liveness::probe(reg, tk.anchor, tk.nonce) == Verdict::Alive;
            verdicts.record(tk, alive);
        }
        Vouch::ProbeOpenFile(tk, _, sample) if crate::mirror::on() => {
            verdicts.record(tk, sample.is_none_or(|s| mirrored_alive(fd, &s)));
        }
        Vouch::ProbeOpenFile(tk, verify, _) => {
            let token = identity::Token { slot: tk.owner, generation: tk.generation % identity::TOKEN_GENS };
            verdicts.record(tk, identity::alive(fd, token, verify));
        }
        Vouch::Alive | Vouch::Dead => {}
    }
}
