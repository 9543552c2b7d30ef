//! Reaping dead process owners: when the owner table is full, and for
//! `qnxcompat doctor --reap` (probed outside the mutex, 64 at a time).

use super::*;

/// With the owner table full: probes the process owners the registry cannot
/// vouch for (outside the mutex) and reaps those found dead.
pub(super) fn reap_unvouched(reg: &Registry) {
    let _ = reap_batch(reg, &mut 0, true);
}

/// Probes up to 64 process owners that the registry cannot vouch for, from
/// owner slot `*from` on (outside the mutex), and reaps those found dead.
/// Returns (probed, reaped); `*from` moves past the owners looked at.
fn reap_batch(reg: &Registry, from: &mut u32, reap: bool) -> Result<(u32, u32), Errno> {
    let mut tickets = [Ticket::default(); 64];
    let n = reg.lock()?.tables().unvouched(from, &mut tickets);
    let mut dead = [false; 64];
    for (i, tk) in tickets[..n].iter().enumerate() {
        dead[i] = liveness::probe(reg, tk.anchor, tk.nonce) == Verdict::Dead;
    }
    if !dead.iter().any(|&d| d) {
        return Ok((n as u32, 0));
    }
    if !reap {
        // Counted only when they left something: an idle dead owner's slot
        // is reused or reaped by the next lock call that needs it.
        let g = &mut reg.lock()?;
        let t = g.tables();
        let left = tickets[..n]
            .iter()
            .enumerate()
            .filter(|&(i, tk)| {
                dead[i]
                    && t.ticket_current(tk)
                    && t.owners.get(tk.owner as usize).is_some_and(|o| o.nlocks + o.nwaiters + o.nmaps > 0)
            })
            .count();
        return Ok((n as u32, left as u32));
    }
    let mut g = reg.lock()?;
    let (mut t, wake) = g.split();
    let mut touched = WakeSet::default();
    let mut reaped = 0;
    for (i, tk) in tickets[..n].iter().enumerate() {
        if dead[i] && t.ticket_current(tk) {
            reaped += 1;
            if t.reap_owner(tk.owner, &mut |f| touched.add(f)).is_err() {
                t.repair(&mut |f| touched.add(f));
            }
        }
    }
    wake.absorb(&t.files, &touched);
    Ok((n as u32, reaped))
}

/// Probes every process owner of `reg` that the registry cannot vouch for
/// and reaps the dead (`qnxcompat doctor --reap`): 64 at a time, each batch
/// probed with the mutex dropped; `reap` false only counts those that left
/// locks, waits or mappings behind. Returns (probed, dead).
pub fn reap_dead(reg: &Registry, reap: bool) -> Result<(u32, u32), Errno> {
    let (mut from, mut probed, mut reaped) = (0, 0, 0);
    loop {
        let (p, r) = reap_batch(reg, &mut from, reap)?;
        probed += p;
        reaped += r;
        if !reg.lock()?.tables().more_owners_after(from) {
            return Ok((probed, reaped));
        }
    }
}
