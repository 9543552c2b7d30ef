//! Setting, testing and removing locks in one file's lock list.
//!
//! All locks of a file, fcntl, lockf and flock alike, sit in one list (one
//! treap), so they conflict with each other as QNX's `iofunc_lock()` and
//! FreeBSD's `lf_blocks()` have them. The rules:
//!
//! - two locks conflict when their owners differ, their ranges overlap and
//!   they are not both read locks;
//! - one owner's locks never overlap each other; same-type locks that overlap
//!   or touch are combined into one (QNX lockf(): "the sections are combined
//!   into a single locked section");
//! - a lock of another type, or an unlock, trims, splits or removes the
//!   owner's existing locks; an upgrade or downgrade is atomic because the
//!   conflict test runs before anything changes.
//!
//! Capacity is checked before any mutation (Linux `posix_lock_inode` reserves
//! two spare records up front), so a failed request changes nothing.

use super::range::{EOF, LockType, Range, Request};
use super::tree::{self, Arena, ArenaMut, Corrupt, LockRecord, NIL};

/// Allocation of records, and whatever bookkeeping the store keeps per owner.
pub trait Pool: ArenaMut {
    /// Takes a free record and makes it live for `owner` in `file`; `None`
    /// when no record is free.
    fn alloc(&mut self, owner: u32, file: u32) -> Option<u32>;
    /// Returns a live, detached record to the free list.
    fn free(&mut self, i: u32) -> Result<(), Corrupt>;
    /// Whether `n` records can be allocated by a request of this kind. Lock
    /// requests must leave a reserve behind, so that unlocks, which may need
    /// one record to split, keep working when the pool is otherwise full.
    fn can_alloc(&mut self, n: u32, for_unlock: bool) -> bool;
    /// Called between the steps of a multi-record update, where a crash
    /// leaves the list half-changed (fault injection hooks in here).
    fn checkpoint(&mut self) {}
}

/// Why a set request did not apply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SetError {
    /// Another owner's lock (this record) conflicts.
    Conflict(u32),
    /// No room for the records the request needs.
    NoSpace,
    Corrupt,
}

impl From<Corrupt> for SetError {
    fn from(_: Corrupt) -> SetError {
        SetError::Corrupt
    }
}

/// What a successful set request did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SetOutcome {
    /// Change in the number of records the owner holds in this file.
    pub delta: i32,
    /// Some bytes were unlocked or downgraded: waiters must re-check.
    pub released: bool,
}

/// The first lock of another owner that conflicts with `ltype` on `q`.
pub fn first_conflict<A: Arena + ?Sized>(
    a: &A,
    root: u32,
    owner: u32,
    ltype: LockType,
    q: Range,
) -> Result<Option<u32>, Corrupt> {
    tree::find(a, root, q, &mut |_, n| {
        n.owner != owner && LockType::from_raw(n.ltype).is_none_or(|t| ltype.conflicts_with(t))
    })
}

/// Calls `f` with every lock of another owner that conflicts with `ltype` on
/// `q` (the blockers a waiter records edges to).
pub fn for_each_conflict<A: Arena + ?Sized>(
    a: &A,
    root: u32,
    owner: u32,
    ltype: LockType,
    q: Range,
    f: &mut dyn FnMut(u32, &LockRecord) -> bool,
) -> Result<(), Corrupt> {
    tree::for_each_overlap(a, root, q, &mut |i, n| {
        let conflicts = n.owner != owner && LockType::from_raw(n.ltype).is_none_or(|t| ltype.conflicts_with(t));
        !conflicts || f(i, n)
    })
}

/// Applies `req` on `q` for `owner` in the file whose treap is `root`.
pub fn set<P: Pool + ?Sized>(
    p: &mut P,
    root: &mut u32,
    file: u32,
    owner: u32,
    req: Request,
    q: Range,
) -> Result<SetOutcome, SetError> {
    match req {
        Request::Lock(t) => {
            if let Some(c) = first_conflict(p, *root, owner, t, q)? {
                return Err(SetError::Conflict(c));
            }
            // The new record, plus the right half of a split.
            if !p.can_alloc(2, false) {
                return Err(SetError::NoSpace);
            }
        }
        Request::Unlock => {
            if !p.can_alloc(1, true) && splits_own_lock(p, *root, owner, q)? {
                return Err(SetError::NoSpace);
            }
        }
    }

    let mut out = SetOutcome::default();
    let (mut s, mut e) = (q.start, q.end);
    let want = match req {
        Request::Lock(t) => Some(t as u8),
        Request::Unlock => None,
    };
    // Crash safety: the new lock's record exists (live, outside the treap)
    // before any record it absorbs is freed, and grows before each one
    // goes. A process that dies at any step leaves records whose union is
    // "before" plus some of "after", which repair normalises; nothing the
    // owner held is ever only in this function's locals.
    let acc = match want {
        Some(t) => {
            let i = p.alloc(owner, file).ok_or(SetError::Corrupt)?;
            let n = p.rec_mut(i)?;
            n.start = s;
            n.end = e;
            n.ltype = t;
            Some(i)
        }
        None => None,
    };
    loop {
        // Own records that overlap [s, e], or touch it and have our type.
        let probe = Range { start: s.saturating_sub(1).max(0), end: e.saturating_add(1) };
        let cur = Range { start: s, end: e };
        let hit = tree::find(p, *root, probe, &mut |_, n| {
            n.owner == owner && (Some(n.ltype) == want || n.range().overlaps(cur))
        })?;
        let Some(r) = hit else { break };
        tree::remove(p, root, r)?;
        p.checkpoint();
        let (rs, re, rt) = {
            let n = p.rec(r)?;
            (n.start, n.end, n.ltype)
        };
        if Some(rt) == want {
            // Same type: absorb it into the request (grown first) and drop it.
            s = s.min(rs);
            e = e.max(re);
            if let Some(a) = acc {
                let n = p.rec_mut(a)?;
                n.start = s;
                n.end = e;
            }
            p.free(r)?;
            out.delta -= 1;
            continue;
        }
        // Another type, or an unlock: keep what lies outside [s, e].
        if want.is_none() || rt == LockType::Write as u8 {
            out.released = true;
        }
        let keep_left = rs < s;
        let keep_right = re > e;
        match (keep_left, keep_right) {
            (true, true) => {
                let right = p.alloc(owner, file).ok_or(SetError::Corrupt)?;
                {
                    let n = p.rec_mut(right)?;
                    n.start = e + 1;
                    n.end = re;
                    n.ltype = rt;
                }
                tree::insert(p, root, right)?;
                p.rec_mut(r)?.end = s - 1;
                tree::insert(p, root, r)?;
                out.delta += 1;
            }
            (true, false) => {
                p.rec_mut(r)?.end = s - 1;
                tree::insert(p, root, r)?;
            }
            (false, true) => {
                p.rec_mut(r)?.start = e + 1;
                tree::insert(p, root, r)?;
            }
            (false, false) => {
                p.free(r)?;
                out.delta -= 1;
            }
        }
    }
    if let Some(a) = acc {
        tree::insert(p, root, a)?;
        out.delta += 1;
    }
    Ok(out)
}

/// Whether unlocking `q` would split one of `owner`'s locks in three.
fn splits_own_lock<A: Arena + ?Sized>(a: &A, root: u32, owner: u32, q: Range) -> Result<bool, Corrupt> {
    Ok(tree::find(a, root, q, &mut |_, n| n.owner == owner && n.start < q.start && n.end > q.end)?.is_some())
}

/// Whether `owner` holds a lock on `q` that runs to EOF (QNX lockf()'s
/// F_ULOCK-with-OFF_MAX rule asks this).
pub fn holds_lock_to_eof<A: Arena + ?Sized>(a: &A, root: u32, owner: u32, q: Range) -> Result<bool, Corrupt> {
    Ok(tree::find(a, root, q, &mut |_, n| n.owner == owner && n.end == super::range::EOF)?.is_some())
}

/// Whether `owner` holds any lock whose type is not `t`.
pub fn holds_other_type<A: Arena + ?Sized>(a: &A, root: u32, owner: u32, t: LockType) -> Result<bool, Corrupt> {
    Ok(tree::find(a, root, Range::WHOLE, &mut |_, n| n.owner == owner && n.ltype != t as u8)?.is_some())
}

/// Removes every record of `owner` (e.g. a dead owner, or one whose file was
/// closed); returns how many went. Needs no free record.
///
/// Each search resumes where the last removed record started: the owner's
/// records are disjoint and found in start order, so every later one starts
/// after it, and the treap prunes everything that ends before. Releasing M
/// records behind N records of other owners costs O(M log N), not a search
/// from the left for each (O(M·N)).
pub fn remove_owner<P: Pool + ?Sized>(p: &mut P, root: &mut u32, owner: u32, n: u32) -> Result<u32, Corrupt> {
    // One by one, each O(log n), while that costs less than one pass over
    // the whole list; the rest in one pass, O(n). So M records of the owner
    // among n cost O(min(M log n, n)).
    // (A pass reads a record in about a tenth of what a removal costs per
    // level: bench row 14.)
    let budget = (n / (8 * (n + 2).ilog2())).max(16);
    let mut removed = 0;
    let mut from = 0;
    while removed < budget {
        let Some(r) = tree::find(p, *root, Range::new(from, EOF), &mut |_, n| n.owner == owner)? else {
            return Ok(removed);
        };
        from = p.rec(r)?.start;
        tree::remove(p, root, r)?;
        p.free(r)?;
        removed += 1;
    }
    let mut gone = tree::extract(p, root, &mut |n| n.owner == owner)?;
    while gone != NIL {
        let next = p.rec(gone)?.left;
        p.rec_mut(gone)?.left = NIL;
        p.free(gone)?;
        removed += 1;
        gone = next;
    }
    Ok(removed)
}

/// The owner of the first record that breaks the lock-list invariants (its
/// own records overlap, or same-type ones touch), if any; `None` also when
/// the treap itself cannot be walked (the caller then checks it whole).
pub fn first_offender<A: Arena + ?Sized>(a: &A, root: u32) -> Option<u32> {
    let mut bad = None;
    let _ = tree::for_each_overlap(a, root, Range::WHOLE, &mut |i, n| {
        let probe = Range { start: n.start.saturating_sub(1).max(0), end: n.end.saturating_add(1) };
        let clash = tree::find(a, root, probe, &mut |j, m| {
            j != i && m.owner == n.owner && (m.ltype == n.ltype || m.range().overlaps(n.range()))
        });
        if !matches!(clash, Ok(None)) {
            bad = Some(n.owner);
        }
        bad.is_none()
    });
    bad
}

/// A record that clashes with another record of its owner (they overlap,
/// or touch with the same type): a write lock if there is one, else any.
/// Repair re-applies such records (see `Tables::normalise`).
pub fn first_offending_record<A: Arena + ?Sized>(a: &A, root: u32) -> Option<u32> {
    let mut found: Option<(u32, bool)> = None;
    let _ = tree::for_each_overlap(a, root, Range::WHOLE, &mut |i, n| {
        let probe = Range { start: n.start.saturating_sub(1).max(0), end: n.end.saturating_add(1) };
        let clash = tree::find(a, root, probe, &mut |j, m| {
            j != i && m.owner == n.owner && (m.ltype == n.ltype || m.range().overlaps(n.range()))
        });
        if !matches!(clash, Ok(None)) {
            let write = n.ltype == LockType::Write as u8;
            if found.is_none_or(|(_, w)| write && !w) {
                found = Some((i, write));
            }
        }
        !found.is_some_and(|(_, w)| w)
    });
    found.map(|(i, _)| i)
}

/// Checks the lock-list invariants on top of the treap's: one owner's locks
/// never overlap, and same-type ones never touch.
pub fn check<A: Arena + ?Sized>(a: &A, root: u32) -> Result<usize, Corrupt> {
    let count = tree::check(a, root)?;
    if first_offender(a, root).is_some() { Err(Corrupt) } else { Ok(count) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::range::EOF;
    use crate::engine::tree::NIL;
    use crate::engine::vecpool::VecPool;

    const A: u32 = 1;
    const B: u32 = 2;
    const RD: Request = Request::Lock(LockType::Read);
    const WR: Request = Request::Lock(LockType::Write);

    fn r(s: i64, e: i64) -> Range {
        Range::new(s, e)
    }

    /// The owner's locks in order, as (start, end, type).
    fn locks_of(p: &VecPool, root: u32, owner: u32) -> Vec<(i64, i64, u8)> {
        let mut v = vec![];
        tree::for_each_overlap(p, root, Range::WHOLE, &mut |_, n| {
            if n.owner == owner {
                v.push((n.start, n.end, n.ltype));
            }
            true
        })
        .unwrap();
        v
    }

    #[test]
    fn combine_adjacent_and_overlapping() {
        let mut p = VecPool::new(16, 0);
        let mut root = NIL;
        set(&mut p, &mut root, 0, A, WR, r(0, 9)).unwrap();
        set(&mut p, &mut root, 0, A, WR, r(10, 19)).unwrap();
        set(&mut p, &mut root, 0, A, WR, r(15, 30)).unwrap();
        assert_eq!(locks_of(&p, root, A), vec![(0, 30, 2)]);
        assert_eq!(p.live(), 1);
        check(&p, root).unwrap();
    }

    #[test]
    fn unlock_splits_in_three() {
        let mut p = VecPool::new(16, 0);
        let mut root = NIL;
        set(&mut p, &mut root, 0, A, WR, r(0, 99)).unwrap();
        let out = set(&mut p, &mut root, 0, A, Request::Unlock, r(40, 59)).unwrap();
        assert_eq!(out, SetOutcome { delta: 1, released: true });
        assert_eq!(locks_of(&p, root, A), vec![(0, 39, 2), (60, 99, 2)]);
        assert_eq!(set(&mut p, &mut root, 0, B, WR, r(40, 59)).map(|o| o.delta), Ok(1));
        assert!(matches!(set(&mut p, &mut root, 0, B, WR, r(39, 39)), Err(SetError::Conflict(_))));
        check(&p, root).unwrap();
    }

    #[test]
    fn readers_share_writers_conflict() {
        let mut p = VecPool::new(16, 0);
        let mut root = NIL;
        set(&mut p, &mut root, 0, A, RD, r(0, 9)).unwrap();
        set(&mut p, &mut root, 0, B, RD, r(5, 15)).unwrap();
        assert!(matches!(set(&mut p, &mut root, 0, B, WR, r(0, 0)), Err(SetError::Conflict(_))));
        assert_eq!(
            first_conflict(&p, root, B, LockType::Write, r(0, 3)).unwrap().map(|i| p.recs[i as usize].owner),
            Some(A)
        );
        assert_eq!(first_conflict(&p, root, B, LockType::Read, r(0, 3)).unwrap(), None);
    }

    #[test]
    fn upgrade_of_middle_splits_reader() {
        let mut p = VecPool::new(16, 0);
        let mut root = NIL;
        set(&mut p, &mut root, 0, A, RD, r(0, 99)).unwrap();
        set(&mut p, &mut root, 0, A, WR, r(40, 59)).unwrap();
        assert_eq!(locks_of(&p, root, A), vec![(0, 39, 1), (40, 59, 2), (60, 99, 1)]);
        // Downgrade back: the three pieces combine into one read lock again.
        let out = set(&mut p, &mut root, 0, A, RD, r(40, 59)).unwrap();
        assert!(out.released);
        assert_eq!(locks_of(&p, root, A), vec![(0, 99, 1)]);
        check(&p, root).unwrap();
    }

    /// A pool that counts record reads, to bound how much work a call does.
    struct Counting {
        p: VecPool,
        reads: core::cell::Cell<u64>,
    }

    impl Arena for Counting {
        fn rec(&self, i: u32) -> Result<&LockRecord, Corrupt> {
            self.reads.set(self.reads.get() + 1);
            self.p.recs.rec(i)
        }
    }

    impl ArenaMut for Counting {
        fn rec_mut(&mut self, i: u32) -> Result<&mut LockRecord, Corrupt> {
            self.p.recs.rec_mut(i)
        }
    }

    impl Pool for Counting {
        fn alloc(&mut self, owner: u32, file: u32) -> Option<u32> {
            self.p.alloc(owner, file)
        }
        fn free(&mut self, i: u32) -> Result<(), Corrupt> {
            self.p.free(i)
        }
        fn can_alloc(&mut self, n: u32, for_unlock: bool) -> bool {
            self.p.can_alloc(n, for_unlock)
        }
    }

    #[test]
    fn removing_an_owner_behind_others_is_not_quadratic() {
        // M = 4,000 records of A behind N = 4,000 records of B: a search
        // from the left for each of A's would read about M * N = 16M
        // records; resuming reads O((M + N) log N).
        const N: i64 = 4000;
        let mut c = Counting { p: VecPool::new(2 * N as u32 + 8, 0), reads: core::cell::Cell::new(0) };
        let mut root = NIL;
        for i in 0..N {
            set(&mut c, &mut root, 0, B, WR, r(2 * i, 2 * i)).unwrap();
        }
        for i in 0..N {
            set(&mut c, &mut root, 0, A, WR, r(2 * N + 2 * i, 2 * N + 2 * i)).unwrap();
        }
        c.reads.set(0);
        assert_eq!(remove_owner(&mut c, &mut root, A, 2 * N as u32), Ok(N as u32));
        let reads = c.reads.get();
        assert!(reads < 2_000_000, "removing {N} records read {reads} records");
        assert_eq!(locks_of(&c.p, root, B).len(), N as usize);
        assert_eq!(locks_of(&c.p, root, A), vec![]);
    }

    #[test]
    fn removing_most_of_a_list_takes_one_pass() {
        // Past the one-by-one budget the rest go in one pass: the records
        // left are exactly the other owner's, in a valid treap, and every
        // record taken is back in the pool.
        for (na, nb) in [(5000i64, 3000i64), (3000, 5000), (40, 5000), (5000, 0), (17, 17)] {
            let mut c = Counting { p: VecPool::new((na + nb) as u32 + 8, 0), reads: core::cell::Cell::new(0) };
            let mut root = NIL;
            for i in 0..na.max(nb) {
                if i < nb {
                    set(&mut c, &mut root, 0, B, WR, r(3 * i, 3 * i)).unwrap();
                }
                if i < na {
                    set(&mut c, &mut root, 0, A, RD, r(3 * i + 1, 3 * i + 1)).unwrap();
                }
            }
            c.reads.set(0);
            let n = (na + nb) as u32;
            assert_eq!(remove_owner(&mut c, &mut root, A, n), Ok(na as u32));
            let reads = c.reads.get();
            assert!(reads < 100 * u64::from(n) + 10_000, "removing {na} of {n} records read {reads}");
            assert_eq!(locks_of(&c.p, root, A), vec![]);
            let b = locks_of(&c.p, root, B);
            assert_eq!(b.len(), nb as usize);
            assert!(b.iter().enumerate().all(|(i, l)| l.0 == 3 * i as i64 && l.1 == 3 * i as i64));
            assert_eq!(tree::check(&c.p, root), Ok(nb as usize));
            assert_eq!(c.p.live(), nb as usize);
        }
    }

    #[test]
    fn failed_upgrade_changes_nothing() {
        let mut p = VecPool::new(16, 0);
        let mut root = NIL;
        set(&mut p, &mut root, 0, A, RD, r(0, 99)).unwrap();
        set(&mut p, &mut root, 0, B, RD, r(50, 50)).unwrap();
        assert!(matches!(set(&mut p, &mut root, 0, A, WR, r(0, 99)), Err(SetError::Conflict(_))));
        assert_eq!(locks_of(&p, root, A), vec![(0, 99, 1)]);
    }

    #[test]
    fn full_pool_refuses_locks_but_unlocks_still_split() {
        let mut p = VecPool::new(4, 2);
        let mut root = NIL;
        set(&mut p, &mut root, 0, A, WR, r(0, 99)).unwrap();
        assert_eq!(set(&mut p, &mut root, 0, A, WR, r(200, 299)), Err(SetError::NoSpace));
        set(&mut p, &mut root, 0, A, Request::Unlock, r(10, 10)).unwrap();
        set(&mut p, &mut root, 0, A, Request::Unlock, r(20, 20)).unwrap();
        set(&mut p, &mut root, 0, A, Request::Unlock, r(30, 30)).unwrap();
        assert_eq!(set(&mut p, &mut root, 0, A, Request::Unlock, r(40, 40)), Err(SetError::NoSpace));
        // An unlock that needs no record always works.
        set(&mut p, &mut root, 0, A, Request::Unlock, r(0, 15)).unwrap();
        assert_eq!(remove_owner(&mut p, &mut root, A, 3), Ok(3));
        assert_eq!(p.live(), 0);
    }

    #[test]
    fn eof_ranges() {
        let mut p = VecPool::new(16, 0);
        let mut root = NIL;
        set(&mut p, &mut root, 0, A, WR, r(10, EOF)).unwrap();
        assert!(holds_lock_to_eof(&p, root, A, r(20, EOF)).unwrap());
        set(&mut p, &mut root, 0, A, WR, r(0, 9)).unwrap();
        assert_eq!(locks_of(&p, root, A), vec![(0, EOF, 2)]);
        set(&mut p, &mut root, 0, A, Request::Unlock, r(1 << 40, EOF)).unwrap();
        assert_eq!(locks_of(&p, root, A), vec![(0, (1 << 40) - 1, 2)]);
    }

    use crate::engine::xorshift::XorShift;

    /// Reference model: per owner, the lock type of each byte in [0, N) plus
    /// one "tail" cell standing for every byte >= N.
    const N: usize = 48;
    type Model = Vec<[u8; N + 1]>;

    fn cells(q: Range) -> std::ops::RangeInclusive<usize> {
        let hi = if q.end >= N as i64 { N } else { q.end as usize };
        q.start as usize..=hi
    }

    fn model_set(m: &mut Model, owner: usize, req: Request, q: Range) -> bool {
        let t = match req {
            Request::Lock(t) => t as u8,
            Request::Unlock => 0,
        };
        if t != 0 {
            for (o, bytes) in m.iter().enumerate() {
                if o != owner && cells(q).any(|c| bytes[c] != 0 && (bytes[c] == 2 || t == 2)) {
                    return false;
                }
            }
        }
        for c in cells(q) {
            m[owner][c] = t;
        }
        true
    }

    fn model_of(p: &VecPool, root: u32, owners: usize) -> Model {
        let mut m = vec![[0u8; N + 1]; owners];
        tree::for_each_overlap(p, root, Range::WHOLE, &mut |_, n| {
            for c in cells(n.range()) {
                assert_eq!(m[n.owner as usize][c], 0, "one owner's locks overlap");
                m[n.owner as usize][c] = n.ltype;
            }
            true
        })
        .unwrap();
        m
    }

    #[test]
    fn property_matches_per_byte_model() {
        const OWNERS: usize = 3;
        for seed in 1..=300u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut p = VecPool::new(256, 2);
            let mut root = NIL;
            let mut model: Model = vec![[0u8; N + 1]; OWNERS];
            for _ in 0..200 {
                let owner = rng.below(OWNERS as u64) as usize;
                let start = rng.below(N as u64) as i64;
                let end = if rng.below(6) == 0 { EOF } else { start + rng.below((N as i64 - start) as u64) as i64 };
                // Ranges ending in the tail cell must run to EOF for the model to hold.
                let q = Range::new(start, if end >= N as i64 { EOF } else { end });
                let req = match rng.below(3) {
                    0 => Request::Unlock,
                    1 => RD,
                    _ => WR,
                };
                let expect_ok = model_set(&mut model.clone(), owner, req, q);
                let got = set(&mut p, &mut root, 0, owner as u32, req, q);
                match got {
                    Ok(_) => {
                        assert!(expect_ok, "seed {seed}: engine granted a conflicting {req:?} {q:?}");
                        model_set(&mut model, owner, req, q);
                    }
                    Err(SetError::Conflict(c)) => {
                        assert!(!expect_ok, "seed {seed}: engine refused {req:?} {q:?}");
                        let n = &p.recs[c as usize];
                        assert!(n.owner as usize != owner && n.range().overlaps(q));
                    }
                    Err(e) => panic!("seed {seed}: {e:?}"),
                }
                check(&p, root).unwrap();
                assert_eq!(model_of(&p, root, OWNERS), model, "seed {seed}");
            }
        }
    }
}
