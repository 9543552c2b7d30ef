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

/// What a waiting request carries back in its answer: the flock_t it asked
/// for (the reply repeats it).
pub type Token = super::abi::QnxFlock;

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
    /// The waiter of each rcvid left unreplied (a client waits for one
    /// reply at a time).
    by_rcvid: HashMap<i32, u32>,
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
            by_rcvid: HashMap::new(),
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
        self.by_rcvid.len()
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
        let Some(&w) = self.by_rcvid.get(&rcvid) else { return false };
        if self.waiter(w).res != r || !may(rcvid) {
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
            if self.by_rcvid.get(&w.rcvid) != Some(&i) {
                return Err("waiter not found by its rcvid");
            }
        }
        if self.by_rcvid.len() != self.waiters.iter().flatten().count() {
            return Err("rcvid index count");
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

    /// The program answered `rcvid` itself (MsgReply/MsgError): a request
    /// of it still queued is dropped, so it is never answered twice.
    pub fn drop_rcvid(&mut self, rcvid: i32) {
        if let Some(&w) = self.by_rcvid.get(&rcvid) {
            let x = self.take_waiter(w).expect("live waiter");
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
        self.by_rcvid.try_reserve(1).map_err(|_| Errno::NOMEM)?;
        // An rcvid still queued belongs to a client that is gone (QNX
        // reuses rcvids once replied to): its request goes.
        if let Some(&old) = self.by_rcvid.get(&rcvid)
            && let Some(x) = self.take_waiter(old)
        {
            if x.owner != o {
                self.gc_owner(x.owner);
            }
            if x.res != r {
                self.gc_resource(x.res);
            }
        }
        let w =
            slot_in(&mut self.waiters, &mut self.waiter_free, Waiter { rcvid, owner: o, res: r, ltype, range, token })?;
        self.resource_mut(r).queue.push_back(w);
        self.owner_mut(o).waiters.push(w);
        self.by_rcvid.insert(rcvid, w);
        Ok(())
    }

    fn take_waiter(&mut self, w: u32) -> Option<Waiter> {
        let x = self.waiters.get_mut(w as usize)?.take()?;
        self.waiter_free.push(w);
        if self.by_rcvid.get(&x.rcvid) == Some(&w) {
            self.by_rcvid.remove(&x.rcvid);
        }
        if let Some(res) = self.res[x.res as usize].as_mut() {
            res.queue.retain(|&i| i != w);
        }
        if let Some(own) = self.owners[x.owner as usize].as_mut() {
            own.waiters.retain(|&i| i != w);
        }
        Some(x)
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

mod graph;
#[cfg(test)]
mod tests;
