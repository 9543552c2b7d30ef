//! The store's part of the wait-for graph: an owner waits for every owner
//! holding a lock that conflicts with one of its queued requests, on any
//! resource. The search is the interposer's ([`deadlock::find_cycle`]).

use super::{Answer, Owner, Resource, Store, Waiter};
use crate::engine::deadlock::{self, Scratch, WaitGraph};
use crate::engine::lockset;
use crate::engine::range::{LockType, Range};
use crate::engine::vecpool::VecPool;
use crate::sys::Errno;

impl Store {
    /// Whether `o`, by waiting for `ltype` on `range` of resource `r`,
    /// would close a cycle.
    pub(super) fn would_deadlock(&mut self, r: u32, o: u32, ltype: LockType, range: Range) -> bool {
        let root = self.resource(r).root;
        let mut blockers = Vec::new();
        let _ = lockset::for_each_conflict(&self.pool, root, o, ltype, range, &mut |_, n| {
            blockers.push(n.owner);
            true
        });
        let view = View { pool: &self.pool, owners: &self.owners, res: &self.res, waiters: &self.waiters };
        let mut s =
            Scratch { mark: &mut self.mark, parent: &mut self.parent, stack: &mut self.stack, epoch: &mut self.epoch };
        deadlock::find_cycle(&view, o, &blockers, &mut s).is_some()
    }

    /// A grant gives its owner new locks, so requests still queued on the
    /// resource may now wait for an owner that waits, elsewhere, for them:
    /// a cycle no request closed when it was queued. Each waiter of `r` is
    /// checked again, the newest first; one that is now in a cycle is told
    /// EDEADLK (so the latest request backs off, as it would have had it
    /// come after the grant; the interposer does the same: `t_cycle_late`).
    pub(super) fn fail_late_cycles(&mut self, r: u32, out: &mut Vec<Answer>) {
        let queue: Vec<u32> = self.resource(r).queue.iter().rev().copied().collect();
        for w in queue {
            let Some(x) = self.waiters.get(w as usize).and_then(|x| x.as_ref()) else { continue };
            let (o, t, range) = (x.owner, x.ltype, x.range);
            if self.would_deadlock(r, o, t, range) {
                let x = self.take_waiter(w).expect("queued waiter");
                out.push(Answer::Failed { rcvid: x.rcvid, err: Errno::DEADLK });
                self.gc_owner(o);
            }
        }
    }
}

/// The wait-for graph as the engine's search sees it: an owner waits for
/// every owner holding a lock that conflicts with one of its queued
/// requests.
struct View<'a> {
    pool: &'a VecPool,
    owners: &'a [Option<Owner>],
    res: &'a [Option<Resource>],
    waiters: &'a [Option<Waiter>],
}

impl WaitGraph for View<'_> {
    fn blockers_of(&self, owner: u32, f: &mut dyn FnMut(u32)) {
        let Some(Some(o)) = self.owners.get(owner as usize) else { return };
        for &w in &o.waiters {
            let Some(Some(w)) = self.waiters.get(w as usize) else { continue };
            let Some(Some(r)) = self.res.get(w.res as usize) else { continue };
            let _ = lockset::for_each_conflict(self.pool, r.root, owner, w.ltype, w.range, &mut |_, n| {
                f(n.owner);
                true
            });
        }
    }
}
