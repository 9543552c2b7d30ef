//! The lock state of a resource manager's resources, over the interposer's
//! own engine: each resource (`iofunc_attr_t`) has one lock list, an
//! [`engine::lockset`] treap of [`engine::tree::LockRecord`]s, and blocked
//! requests are edges of the same wait-for graph search
//! ([`engine::deadlock::find_cycle`]). Nothing here knows about C pointers
//! or messages: `api` decodes those.
//!
//! Owners. The engine's owner is a number; here it stands for one of the
//! resource manager's own owner kinds (the third kind, beside the
//! interposer's process and open-file owners):
//! - a **client** (`Basis::Client`): the client process, known by
//!   `(nd, pid, scoid)`, for fcntl-style requests (QNX iofunc_lock(): "the
//!   basis of locking is the process");
//! - an **OCB** (`Basis::Ocb`): for requests with `F_FLOCK` OR'd into
//!   `l_type` ("the basis is the open control block").
//!
//! Records come from one growable pool ([`VecPool`]) shared by every resource. A lock
//! request leaves `RESERVE` records behind for unlocks, each of which may
//! split a lock in two (one more record). The pool grows until
//! the allocator refuses, or until the test limit set by
//! `qnxcompat_iofunc_record_limit()`: then ENOMEM.
//!
//! [`engine::lockset`]: crate::engine::lockset
//! [`engine::tree::LockRecord`]: crate::engine::tree::LockRecord
//! [`engine::deadlock::find_cycle`]: crate::engine::deadlock::find_cycle

use std::collections::{HashMap, VecDeque};

use crate::engine::deadlock::{self, Scratch, WaitGraph};
use crate::engine::lockset::{self, SetError};
use crate::engine::range::{LockType, Range, Request};
use crate::engine::tree::{Arena, NIL};
use crate::engine::vecpool::VecPool;
use crate::sys::Errno;

/// Records a lock request leaves free for unlocks.
pub const RESERVE: usize = 16;

/// Whose lock it is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Basis {
    /// The client process: node descriptor, pid, server connection id.
    Client { nd: u32, pid: i32, scoid: i32 },
    /// The open control block (its address in the resource manager).
    Ocb(usize),
}

/// A lock another owner holds, as F_GETLK reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Holder {
    pub ltype: LockType,
    pub range: Range,
    /// The client's pid (for an OCB: the client that first locked through it).
    pub pid: i32,
    pub nd: u32,
    /// Held by an OCB (flock basis): reported with F_FLOCK.
    pub by_ocb: bool,
}

/// What a set request came to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Set {
    Granted,
    /// Queued (F_SETLKW): the client is answered later.
    Waiting,
}

/// A later answer to a waiting client (sent by the caller after it has let
/// go of the store).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Answer {
    /// Granted: reply EOK with the flock as requested (`token` is what the
    /// caller attached to the request, e.g. that flock).
    Granted { rcvid: i32, token: Token },
    /// Failed with this errno.
    Failed { rcvid: i32, err: Errno },
}

/// An opaque value a waiting request carries back in its answer.
pub type Token = [u8; 32];

/// One request to set or remove a lock.
#[derive(Clone, Copy, Debug)]
pub struct Req {
    pub basis: Basis,
    /// The pid to report for this owner.
    pub pid: i32,
    pub nd: u32,
    pub req: Request,
    pub range: Range,
}

struct Owner {
    basis: Basis,
    pid: i32,
    nd: u32,
    /// Records held, over every resource.
    nrecs: u32,
    /// Waiters this owner has queued.
    waiters: Vec<u32>,
}

struct Resource {
    key: usize,
    root: u32,
    nrecs: u32,
    /// Waiter ids, in arrival order.
    queue: VecDeque<u32>,
}

struct Waiter {
    rcvid: i32,
    owner: u32,
    res: u32,
    ltype: LockType,
    range: Range,
    token: Token,
}

/// The lock state of every resource of the process.
pub struct Store {
    pool: VecPool,
    owners: Vec<Option<Owner>>,
    owner_free: Vec<u32>,
    by_basis: HashMap<Basis, u32>,
    res: Vec<Option<Resource>>,
    res_free: Vec<u32>,
    by_key: HashMap<usize, u32>,
    waiters: Vec<Option<Waiter>>,
    waiter_free: Vec<u32>,
    mark: Vec<u32>,
    parent: Vec<u32>,
    stack: Vec<u32>,
    epoch: u32,
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            pool: VecPool::growable(RESERVE as u32, usize::MAX),
            owners: Vec::new(),
            owner_free: Vec::new(),
            by_basis: HashMap::new(),
            res: Vec::new(),
            res_free: Vec::new(),
            by_key: HashMap::new(),
            waiters: Vec::new(),
            waiter_free: Vec::new(),
            mark: Vec::new(),
            parent: Vec::new(),
            stack: Vec::new(),
            epoch: 0,
        }
    }

    /// The test limit on live records (`usize::MAX`: none).
    pub fn set_record_limit(&mut self, limit: usize) {
        self.pool.limit = limit;
    }

    /// Live lock records, over every resource.
    pub fn records(&self) -> usize {
        self.pool.live()
    }

    /// Requests waiting, over every resource.
    pub fn waiting(&self) -> usize {
        self.waiters.iter().filter(|w| w.is_some()).count()
    }

    /// Whether resource `key` has any lock or waiter.
    pub fn busy(&self, key: usize) -> bool {
        self.by_key.contains_key(&key)
    }

    /// Drops everything resource `key` had (its structure was initialised
    /// again over live state): records go, waiters are failed with ENOENT
    /// (QNX `_iofunc_lock_free`).
    pub fn forget(&mut self, key: usize, out: &mut Vec<Answer>) {
        let Some(&r) = self.by_key.get(&key) else { return };
        let ids: Vec<u32> = self.resource(r).queue.iter().copied().collect();
        for w in ids {
            if let Some(w) = self.take_waiter(w) {
                out.push(Answer::Failed { rcvid: w.rcvid, err: Errno::NOENT });
            }
        }
        let owners: Vec<u32> = self.owner_ids();
        for &o in &owners {
            self.remove_all(r, o);
        }
        for o in owners {
            self.gc_owner(o);
        }
        self.gc_resource(r);
    }

    /// F_GETLK: the first lock of another owner that conflicts with `ltype`
    /// on `range` of resource `key`.
    pub fn test(&self, key: usize, basis: Basis, ltype: LockType, range: Range) -> Result<Option<Holder>, Errno> {
        let Some(&r) = self.by_key.get(&key) else { return Ok(None) };
        let me = self.by_basis.get(&basis).copied().unwrap_or(NIL - 1);
        let root = self.resource(r).root;
        let hit = lockset::first_conflict(&self.pool, root, me, ltype, range).map_err(|_| Errno::NOMEM)?;
        let Some(i) = hit else { return Ok(None) };
        let rec = self.pool.rec(i).map_err(|_| Errno::NOMEM)?;
        let o = self.owner(rec.owner);
        Ok(Some(Holder {
            ltype: LockType::from_raw(rec.ltype).unwrap_or(LockType::Write),
            range: rec.range(),
            pid: o.pid,
            nd: o.nd,
            by_ocb: matches!(o.basis, Basis::Ocb(_)),
        }))
    }

    /// F_SETLK (`wait` false) or F_SETLKW on resource `key`. A waiting
    /// request is answered later, through `out` of a later call, with
    /// `token`. Grants that this request's release makes possible are
    /// appended to `out`.
    pub fn set(&mut self, key: usize, q: Req, wait: Option<(i32, Token)>, out: &mut Vec<Answer>) -> Result<Set, Errno> {
        if q.req == Request::Unlock && (!self.by_key.contains_key(&key) || !self.by_basis.contains_key(&q.basis)) {
            return Ok(Set::Granted);
        }
        let r = self.resource_for(key)?;
        let o = match self.owner_for(q.basis, q.pid, q.nd) {
            Ok(o) => o,
            Err(e) => {
                self.gc_resource(r);
                return Err(e);
            }
        };
        let res = self.apply(r, o, q.req, q.range);
        let result = match res {
            Ok(released) => {
                if released {
                    self.wake(r, out);
                }
                Ok(Set::Granted)
            }
            Err(SetError::Conflict(_)) => match (wait, q.req) {
                (Some((rcvid, token)), Request::Lock(t)) => {
                    if self.would_deadlock(r, o, t, q.range) {
                        Err(Errno::DEADLK)
                    } else {
                        self.enqueue(r, o, rcvid, t, q.range, token).map(|_| Set::Waiting)
                    }
                }
                _ => Err(Errno::AGAIN),
            },
            Err(SetError::NoSpace) | Err(SetError::Corrupt) => Err(Errno::NOMEM),
        };
        self.gc_owner(o);
        self.gc_resource(r);
        result
    }

    /// Removes every lock `basis` holds on resource `key` (close), then
    /// grants what that frees. With `fail_waiters`, the owner's own waiting
    /// requests on the resource are failed with EBADF.
    pub fn release_all(&mut self, key: usize, basis: Basis, fail_waiters: bool, out: &mut Vec<Answer>) {
        let (Some(&r), Some(&o)) = (self.by_key.get(&key), self.by_basis.get(&basis)) else { return };
        if fail_waiters {
            let mine: Vec<u32> = self.owner(o).waiters.iter().copied().filter(|&w| self.waiter(w).res == r).collect();
            for w in mine {
                if let Some(w) = self.take_waiter(w) {
                    out.push(Answer::Failed { rcvid: w.rcvid, err: Errno::BADF });
                }
            }
        }
        if self.remove_all(r, o) > 0 {
            self.wake(r, out);
        }
        self.gc_owner(o);
        self.gc_resource(r);
    }

    /// Cancels the waiting request `rcvid` on resource `key`, if there is
    /// one and `may(rcvid)` allows it: the client is failed with EINTR.
    pub fn cancel(&mut self, key: usize, rcvid: i32, may: &dyn Fn(i32) -> bool, out: &mut Vec<Answer>) -> bool {
        let Some(&r) = self.by_key.get(&key) else { return false };
        let found = self.resource(r).queue.iter().copied().find(|&w| self.waiter(w).rcvid == rcvid);
        let Some(w) = found else { return false };
        if !may(rcvid) {
            return false;
        }
        let o = self.waiter(w).owner;
        self.take_waiter(w);
        out.push(Answer::Failed { rcvid, err: Errno::INTR });
        self.gc_owner(o);
        self.gc_resource(r);
        true
    }

    /// Checks the engine's invariants on every resource's list, and the
    /// counts against the lists (tests).
    pub fn check(&self) -> Result<(), &'static str> {
        let mut total = 0;
        for r in self.res.iter().flatten() {
            let n = lockset::check(&self.pool, r.root).map_err(|_| "lock list broken")?;
            if n != r.nrecs as usize {
                return Err("resource record count");
            }
            total += n;
        }
        if total != self.pool.live() {
            return Err("live record count");
        }
        let held: u32 = self.owners.iter().flatten().map(|o| o.nrecs).sum();
        if held as usize != total {
            return Err("owner record count");
        }
        // Every waiter is queued on its resource and listed by its owner,
        // once; every queue and owner list names live waiters of its own.
        for (i, w) in self.waiters.iter().enumerate() {
            let Some(w) = w else { continue };
            let i = i as u32;
            let queued = self
                .res
                .get(w.res as usize)
                .and_then(|r| r.as_ref())
                .map(|r| r.queue.iter().filter(|&&x| x == i).count());
            let listed = self
                .owners
                .get(w.owner as usize)
                .and_then(|o| o.as_ref())
                .map(|o| o.waiters.iter().filter(|&&x| x == i).count());
            if queued != Some(1) || listed != Some(1) {
                return Err("waiter not queued or listed exactly once");
            }
        }
        for r in self.res.iter().flatten() {
            if r.queue.iter().any(|&w| self.waiters.get(w as usize).is_none_or(|x| x.is_none())) {
                return Err("queue names a free waiter");
            }
            if r.nrecs == 0 && r.queue.is_empty() {
                return Err("empty resource kept");
            }
        }
        for o in self.owners.iter().flatten() {
            if o.nrecs == 0 && o.waiters.is_empty() {
                return Err("empty owner kept");
            }
            if self
                .by_basis
                .get(&o.basis)
                .is_none_or(|&i| self.owners[i as usize].as_ref().is_none_or(|x| x.basis != o.basis))
            {
                return Err("owner not found by its basis");
            }
        }
        Ok(())
    }

    // ---- internals ----

    fn owner_ids(&self) -> Vec<u32> {
        (0..self.owners.len() as u32).filter(|&i| self.owners[i as usize].is_some()).collect()
    }

    fn owner(&self, o: u32) -> &Owner {
        self.owners[o as usize].as_ref().expect("live owner")
    }

    fn owner_mut(&mut self, o: u32) -> &mut Owner {
        self.owners[o as usize].as_mut().expect("live owner")
    }

    fn resource(&self, r: u32) -> &Resource {
        self.res[r as usize].as_ref().expect("live resource")
    }

    fn resource_mut(&mut self, r: u32) -> &mut Resource {
        self.res[r as usize].as_mut().expect("live resource")
    }

    fn waiter(&self, w: u32) -> &Waiter {
        self.waiters[w as usize].as_ref().expect("live waiter")
    }

    fn resource_for(&mut self, key: usize) -> Result<u32, Errno> {
        if let Some(&r) = self.by_key.get(&key) {
            return Ok(r);
        }
        self.by_key.try_reserve(1).map_err(|_| Errno::NOMEM)?;
        let v = Resource { key, root: NIL, nrecs: 0, queue: VecDeque::new() };
        let r = slot_in(&mut self.res, &mut self.res_free, v)?;
        self.by_key.insert(key, r);
        Ok(r)
    }

    fn owner_for(&mut self, basis: Basis, pid: i32, nd: u32) -> Result<u32, Errno> {
        if let Some(&o) = self.by_basis.get(&basis) {
            return Ok(o);
        }
        self.by_basis.try_reserve(1).map_err(|_| Errno::NOMEM)?;
        let v = Owner { basis, pid, nd, nrecs: 0, waiters: Vec::new() };
        let o = slot_in(&mut self.owners, &mut self.owner_free, v)?;
        self.by_basis.insert(basis, o);
        let n = self.owners.len();
        if self.mark.len() < n {
            let grow = n - self.mark.len();
            if self.mark.try_reserve(grow).is_err()
                || self.parent.try_reserve(grow).is_err()
                || self.stack.try_reserve(grow).is_err()
            {
                self.gc_owner(o);
                return Err(Errno::NOMEM);
            }
            self.mark.resize(n, 0);
            self.parent.resize(n, 0);
            self.stack.resize(n, 0);
        }
        Ok(o)
    }

    /// One engine call; returns whether it released bytes others may want.
    fn apply(&mut self, r: u32, o: u32, req: Request, range: Range) -> Result<bool, SetError> {
        let mut root = self.resource(r).root;
        let res = lockset::set(&mut self.pool, &mut root, r, o, req, range);
        self.resource_mut(r).root = root;
        let out = res?;
        self.resource_mut(r).nrecs = (self.resource(r).nrecs as i64 + out.delta as i64) as u32;
        self.owner_mut(o).nrecs = (self.owner(o).nrecs as i64 + out.delta as i64) as u32;
        Ok(out.released)
    }

    fn remove_all(&mut self, r: u32, o: u32) -> u32 {
        let mut root = self.resource(r).root;
        let n = self.resource(r).nrecs;
        let gone = lockset::remove_owner(&mut self.pool, &mut root, o, n).unwrap_or(0);
        self.resource_mut(r).root = root;
        self.resource_mut(r).nrecs -= gone;
        self.owner_mut(o).nrecs -= gone;
        gone
    }

    /// Grants queued requests of resource `r` that no longer conflict, in
    /// arrival order; again from the start whenever a grant released bytes
    /// (a waiter's own downgrade).
    fn wake(&mut self, r: u32, out: &mut Vec<Answer>) {
        let mut touched = Vec::new();
        loop {
            let mut again = false;
            let queue: Vec<u32> = self.resource(r).queue.iter().copied().collect();
            for w in queue {
                let (o, t, range) = {
                    let x = self.waiter(w);
                    (x.owner, x.ltype, x.range)
                };
                match self.apply(r, o, Request::Lock(t), range) {
                    Ok(released) => {
                        let x = self.take_waiter(w).expect("queued waiter");
                        out.push(Answer::Granted { rcvid: x.rcvid, token: x.token });
                        touched.push(o);
                        again |= released;
                    }
                    Err(SetError::Conflict(_)) => {}
                    Err(_) => {
                        let x = self.take_waiter(w).expect("queued waiter");
                        out.push(Answer::Failed { rcvid: x.rcvid, err: Errno::NOMEM });
                        touched.push(o);
                    }
                }
                if again {
                    break;
                }
            }
            if !again {
                break;
            }
        }
        if !touched.is_empty() {
            self.fail_late_cycles(r, out);
        }
        for o in touched {
            self.gc_owner(o);
        }
    }

    /// A grant gives its owner new locks, so requests still queued on the
    /// resource may now wait for an owner that waits, elsewhere, for them:
    /// a cycle no request closed when it was queued. Each waiter of `r` is
    /// checked again, the newest first; one that is now in a cycle is told
    /// EDEADLK (so the latest request backs off, as it would have had it
    /// come after the grant; the interposer does the same: `t_cycle_late`).
    fn fail_late_cycles(&mut self, r: u32, out: &mut Vec<Answer>) {
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

    /// The program answered `rcvid` itself (MsgReply/MsgError): a request
    /// of it still queued is dropped, so it is never answered twice.
    pub fn drop_rcvid(&mut self, rcvid: i32) {
        let found = self.waiters.iter().position(|w| w.as_ref().is_some_and(|w| w.rcvid == rcvid));
        if let Some(w) = found {
            let x = self.take_waiter(w as u32).expect("live waiter");
            self.gc_owner(x.owner);
            self.gc_resource(x.res);
        }
    }

    fn enqueue(
        &mut self,
        r: u32,
        o: u32,
        rcvid: i32,
        ltype: LockType,
        range: Range,
        token: Token,
    ) -> Result<(), Errno> {
        self.resource_mut(r).queue.try_reserve(1).map_err(|_| Errno::NOMEM)?;
        self.owner_mut(o).waiters.try_reserve(1).map_err(|_| Errno::NOMEM)?;
        let w =
            slot_in(&mut self.waiters, &mut self.waiter_free, Waiter { rcvid, owner: o, res: r, ltype, range, token })?;
        self.resource_mut(r).queue.push_back(w);
        self.owner_mut(o).waiters.push(w);
        Ok(())
    }

    fn take_waiter(&mut self, w: u32) -> Option<Waiter> {
        let x = self.waiters.get_mut(w as usize)?.take()?;
        self.waiter_free.push(w);
        if let Some(res) = self.res[x.res as usize].as_mut() {
            res.queue.retain(|&i| i != w);
        }
        if let Some(own) = self.owners[x.owner as usize].as_mut() {
            own.waiters.retain(|&i| i != w);
        }
        Some(x)
    }

    fn would_deadlock(&mut self, r: u32, o: u32, ltype: LockType, range: Range) -> bool {
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

    fn gc_owner(&mut self, o: u32) {
        let Some(own) = self.owners.get(o as usize).and_then(|x| x.as_ref()) else { return };
        if own.nrecs == 0 && own.waiters.is_empty() {
            self.by_basis.remove(&own.basis);
            self.owners[o as usize] = None;
            self.owner_free.push(o);
        }
    }

    fn gc_resource(&mut self, r: u32) {
        let Some(res) = self.res.get(r as usize).and_then(|x| x.as_ref()) else { return };
        if res.nrecs == 0 && res.queue.is_empty() {
            self.by_key.remove(&res.key);
            self.res[r as usize] = None;
            self.res_free.push(r);
        }
    }
}

/// Puts `v` in a free slot of `slots`, or a new one.
fn slot_in<T>(slots: &mut Vec<Option<T>>, free: &mut Vec<u32>, v: T) -> Result<u32, Errno> {
    if let Some(i) = free.pop() {
        slots[i as usize] = Some(v);
        return Ok(i);
    }
    free.try_reserve(1).map_err(|_| Errno::NOMEM)?;
    slots.try_reserve(1).map_err(|_| Errno::NOMEM)?;
    slots.push(Some(v));
    Ok((slots.len() - 1) as u32)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::range::EOF;

    const A: usize = 0x1000;
    const B: usize = 0x2000;

    fn client(pid: i32) -> Basis {
        Basis::Client { nd: 0, pid, scoid: pid + 100 }
    }

    fn req(basis: Basis, pid: i32, r: Request, s: i64, e: i64) -> Req {
        Req { basis, pid, nd: 0, req: r, range: Range::new(s, e) }
    }

    fn w(b: Basis, pid: i32, s: i64, e: i64) -> Req {
        req(b, pid, Request::Lock(LockType::Write), s, e)
    }

    fn tok(n: u8) -> Token {
        [n; 32]
    }

    #[test]
    fn conflict_wait_grant_on_close() {
        let mut st = Store::new();
        let mut out = Vec::new();
        assert_eq!(st.set(A, w(client(1), 1, 0, 9), None, &mut out), Ok(Set::Granted));
        assert_eq!(st.set(A, w(client(2), 2, 5, 5), None, &mut out), Err(Errno::AGAIN));
        // Another resource is independent.
        assert_eq!(st.set(B, w(client(2), 2, 5, 5), None, &mut out), Ok(Set::Granted));
        assert_eq!(st.set(A, w(client(2), 2, 5, 5), Some((77, tok(7))), &mut out), Ok(Set::Waiting));
        assert!(out.is_empty());
        let h = st.test(A, client(3), LockType::Read, Range::new(0, EOF)).unwrap().unwrap();
        assert_eq!((h.pid, h.range, h.by_ocb), (1, Range::new(0, 9), false));
        st.release_all(A, client(1), false, &mut out);
        assert_eq!(out, vec![Answer::Granted { rcvid: 77, token: tok(7) }]);
        st.check().unwrap();
        assert_eq!(st.records(), 2);
        assert_eq!(st.waiting(), 0);
    }

    #[test]
    fn ocb_basis_is_separate_from_client() {
        let mut st = Store::new();
        let mut out = Vec::new();
        // Client 1's fcntl lock and its OCB's flock lock conflict.
        assert_eq!(st.set(A, w(client(1), 1, 0, EOF), None, &mut out), Ok(Set::Granted));
        assert_eq!(st.set(A, w(Basis::Ocb(0x55), 1, 0, EOF), None, &mut out), Err(Errno::AGAIN));
        let h = st.test(A, Basis::Ocb(0x55), LockType::Write, Range::WHOLE).unwrap().unwrap();
        assert!(!h.by_ocb);
        let h = st.test(A, client(1), LockType::Write, Range::WHOLE).unwrap();
        assert_eq!(h, None, "a caller never sees its own locks");
    }

    #[test]
    fn deadlock_between_clients() {
        let mut st = Store::new();
        let mut out = Vec::new();
        st.set(A, w(client(1), 1, 0, 0), None, &mut out).unwrap();
        st.set(A, w(client(2), 2, 1, 1), None, &mut out).unwrap();
        st.set(A, w(client(3), 3, 2, 2), None, &mut out).unwrap();
        assert_eq!(st.set(A, w(client(1), 1, 1, 1), Some((11, tok(1))), &mut out), Ok(Set::Waiting));
        assert_eq!(st.set(A, w(client(2), 2, 2, 2), Some((12, tok(2))), &mut out), Ok(Set::Waiting));
        assert_eq!(st.set(A, w(client(3), 3, 0, 0), Some((13, tok(3))), &mut out), Err(Errno::DEADLK));
        // Across resources too: 3 waits for 1 on B, 1 for 2 and 2 for 3 on A.
        st.set(B, w(client(1), 1, 5, 5), None, &mut out).unwrap();
        assert_eq!(st.set(B, w(client(3), 3, 5, 5), Some((14, tok(4))), &mut out), Err(Errno::DEADLK));
        // Not a cycle: 4 waits for 1, which waits for 2, which waits for 3.
        assert_eq!(st.set(B, w(client(4), 4, 5, 5), Some((15, tok(5))), &mut out), Ok(Set::Waiting));
        assert!(out.is_empty());
        st.check().unwrap();
    }

    #[test]
    fn cancel_and_limit() {
        let mut st = Store::new();
        let mut out = Vec::new();
        st.set(A, w(client(1), 1, 0, 0), None, &mut out).unwrap();
        st.set(A, w(client(2), 2, 0, 0), Some((21, tok(0))), &mut out).unwrap();
        assert!(!st.cancel(A, 21, &|_| false, &mut out));
        assert!(st.cancel(A, 21, &|_| true, &mut out));
        assert_eq!(out, vec![Answer::Failed { rcvid: 21, err: Errno::INTR }]);
        out.clear();
        st.set_record_limit(40);
        let mut granted = 0;
        for i in 0..100 {
            match st.set(A, w(client(1), 1, 10 + 2 * i, 10 + 2 * i), None, &mut out) {
                Ok(_) => granted += 1,
                Err(e) => {
                    assert_eq!(e, Errno::NOMEM);
                    break;
                }
            }
        }
        assert!((20..40).contains(&granted), "{granted}");
        // An unlock that splits a lock still works when the pool is full.
        st.set(A, w(client(1), 1, 1000, 1010), None, &mut out).ok();
        assert_eq!(st.set(A, req(client(1), 1, Request::Unlock, 10, 10), None, &mut out), Ok(Set::Granted));
        st.check().unwrap();
    }

    #[test]
    fn readers_share_and_fifo_grants() {
        let mut st = Store::new();
        let mut out = Vec::new();
        let r = |b, p| req(b, p, Request::Lock(LockType::Read), 0, 99);
        st.set(A, w(client(1), 1, 0, 99), None, &mut out).unwrap();
        st.set(A, r(client(2), 2), Some((2, tok(2))), &mut out).unwrap();
        st.set(A, w(client(3), 3, 0, 99), Some((3, tok(3))), &mut out).unwrap();
        st.set(A, r(client(4), 4), Some((4, tok(4))), &mut out).unwrap();
        st.set(A, req(client(1), 1, Request::Unlock, 0, EOF), None, &mut out).unwrap();
        // Both readers; the writer waits for them.
        let got: Vec<i32> = out
            .iter()
            .map(|a| match a {
                Answer::Granted { rcvid, .. } => *rcvid,
                Answer::Failed { rcvid, .. } => -rcvid,
            })
            .collect();
        assert_eq!(got, vec![2, 4]);
        st.check().unwrap();
    }

    /// Random traffic from four clients and two OCBs on two resources:
    /// after every step the invariants hold, no two owners hold conflicting
    /// locks on one byte, every answer is for a request that waited, and
    /// once everyone has closed nothing is left.
    #[test]
    fn random_traffic() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _round in 0..40 {
            let mut st = Store::new();
            let mut out = Vec::new();
            let mut waiting: std::collections::HashSet<i32> = Default::default();
            let bases = [client(1), client(2), client(3), client(4), Basis::Ocb(0x10), Basis::Ocb(0x20)];
            let keys = [A, B];
            let mut next = 1000;
            for _ in 0..400 {
                let b = bases[rnd(6) as usize];
                let k = keys[rnd(2) as usize];
                let s0 = rnd(40) as i64;
                let e0 = s0 + rnd(8) as i64;
                let r = match rnd(10) {
                    0..=3 => {
                        let t = if rnd(2) == 0 { LockType::Read } else { LockType::Write };
                        let wait = (rnd(2) == 0).then(|| {
                            next += 1;
                            (next, tok(0))
                        });
                        let r = st.set(k, req(b, 1, Request::Lock(t), s0, e0), wait, &mut out);
                        if r == Ok(Set::Waiting) {
                            waiting.insert(next);
                        }
                        r.map(|_| ())
                    }
                    4..=6 => st.set(k, req(b, 1, Request::Unlock, s0, e0), None, &mut out).map(|_| ()),
                    7 | 8 => {
                        st.release_all(k, b, rnd(2) == 0, &mut out);
                        Ok(())
                    }
                    _ => {
                        if let Some(&r) = waiting.iter().next() {
                            st.cancel(k, r, &|_| true, &mut out);
                        }
                        Ok(())
                    }
                };
                assert!(matches!(r, Ok(()) | Err(Errno::AGAIN) | Err(Errno::DEADLK)), "{r:?}");
                for a in out.drain(..) {
                    let rcvid = match a {
                        Answer::Granted { rcvid, .. } | Answer::Failed { rcvid, .. } => rcvid,
                    };
                    assert!(waiting.remove(&rcvid), "answer for {rcvid}, which was not waiting");
                }
                st.check().unwrap();
                // No conflicting grants: every record against every other.
                for r in st.res.iter().flatten() {
                    let _ = crate::engine::tree::for_each_overlap(&st.pool, r.root, Range::WHOLE, &mut |_, n| {
                        let t = LockType::from_raw(n.ltype).unwrap();
                        let c = lockset::first_conflict(&st.pool, r.root, n.owner, t, n.range()).unwrap();
                        assert!(c.is_none(), "two owners hold conflicting locks");
                        true
                    });
                }
                assert_eq!(st.waiting(), waiting.len());
            }
            for &k in &keys {
                for &b in &bases {
                    st.release_all(k, b, true, &mut out);
                }
            }
            for a in out.drain(..) {
                let (Answer::Granted { rcvid, .. } | Answer::Failed { rcvid, .. }) = a;
                waiting.remove(&rcvid);
            }
            // Granted after everyone closed: close them again.
            for &k in &keys {
                for &b in &bases {
                    st.release_all(k, b, true, &mut out);
                }
            }
            out.clear();
            st.check().unwrap();
            assert_eq!(st.records(), 0);
        }
    }
}
