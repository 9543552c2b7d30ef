//! An interval treap over lock records stored in an index arena.
//!
//! Each file's locks form one treap ordered by `(start, index)`, with every
//! node carrying the largest `end` of its subtree (`max_end`). This makes an
//! overlap search O(log n + k) instead of the kernel's linear list walk, and
//! it works on records kept in shared memory, which cannot hold pointers.
//!
//! Invariants (checked by `check`, run by debug builds and tests):
//! 1. in-order traversal is strictly increasing in `(start, index)`;
//! 2. every node's priority is >= its children's (heap order);
//! 3. `max_end` is the maximum `end` over the node's subtree.
//!
//! Every index read from a record is bounds-checked and every walk is depth
//! limited, so a scribbled segment yields `Corrupt`, never a crash or a loop.

use super::range::Range;

/// The null index.
pub const NIL: u32 = u32::MAX;

/// Deeper than any treap we can build (expected depth ~3 ln n); reaching it
/// means the links form a cycle or a corrupt chain.
const MAX_DEPTH: u32 = 512;

/// The structure in shared memory is inconsistent; the caller rebuilds it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Corrupt;

/// One lock record. Lives in the shared registry, so it is `repr(C)`, holds
/// indices rather than pointers, and is never `Clone` (records do not move).
///
/// Locks: (r) registry mutex.
#[repr(C)]
#[derive(Debug, Default)]
pub struct LockRecord {
    /// (r) First byte.
    pub start: i64,
    /// (r) Last byte, inclusive; `EOF` for "to end of file and beyond".
    pub end: i64,
    /// (r) Largest `end` in this node's subtree.
    pub max_end: i64,
    /// (r) Treap children, or `NIL`.
    pub left: u32,
    pub right: u32,
    /// (r) Owner slot index.
    pub owner: u32,
    /// (r) File slot index.
    pub file: u32,
    /// (r) Links in the owner's list of records (or the free list: `onext`).
    pub onext: u32,
    pub oprev: u32,
    /// (r) `LockType` as u8.
    pub ltype: u8,
    /// (r) `RECORD_FREE` or `RECORD_LIVE`.
    pub state: u8,
    /// (r) `RECORD_EXEC_RELEASE` or 0.
    pub flags: u8,
    pub _pad: u8,
}

pub const RECORD_FREE: u8 = 0;
pub const RECORD_LIVE: u8 = 1;
/// The owner is exec'ing and exec closes a descriptor of this record's
/// file: the new process image drops the record.
pub const RECORD_EXEC_RELEASE: u8 = 1;

impl LockRecord {
    pub fn range(&self) -> Range {
        Range { start: self.start, end: self.end }
    }
}

/// Where the records live: a slice in shared memory, or a Vec in tests.
pub trait Arena {
    fn rec(&self, i: u32) -> Result<&LockRecord, Corrupt>;
}

/// An arena that can be changed.
pub trait ArenaMut: Arena {
    fn rec_mut(&mut self, i: u32) -> Result<&mut LockRecord, Corrupt>;
}

impl Arena for [LockRecord] {
    fn rec(&self, i: u32) -> Result<&LockRecord, Corrupt> {
        self.get(i as usize).ok_or(Corrupt)
    }
}

impl ArenaMut for [LockRecord] {
    fn rec_mut(&mut self, i: u32) -> Result<&mut LockRecord, Corrupt> {
        self.get_mut(i as usize).ok_or(Corrupt)
    }
}

/// The treap priority of a slot: a fixed hash of its index. Slots are reused
/// in arbitrary order, so this is as good as a random draw and needs no store.
fn priority(i: u32) -> u32 {
    let mut x = i.wrapping_mul(0x9E37_79B9) ^ 0x5bd1_e995;
    x ^= x >> 15;
    x = x.wrapping_mul(0x2c1b_3c6d);
    x ^= x >> 12;
    x
}

fn key_less(a: &LockRecord, ai: u32, b: &LockRecord, bi: u32) -> bool {
    (a.start, ai) < (b.start, bi)
}

fn update<A: ArenaMut + ?Sized>(a: &mut A, i: u32) -> Result<(), Corrupt> {
    let (l, r, end) = {
        let n = a.rec(i)?;
        (n.left, n.right, n.end)
    };
    let mut m = end;
    if l != NIL {
        m = m.max(a.rec(l)?.max_end);
    }
    if r != NIL {
        m = m.max(a.rec(r)?.max_end);
    }
    a.rec_mut(i)?.max_end = m;
    Ok(())
}

/// Splits `t` into (keys < (start, idx), keys >= (start, idx)).
fn split<A: ArenaMut + ?Sized>(a: &mut A, t: u32, start: i64, idx: u32, depth: u32) -> Result<(u32, u32), Corrupt> {
    if t == NIL {
        return Ok((NIL, NIL));
    }
    if depth > MAX_DEPTH {
        return Err(Corrupt);
    }
    let n = a.rec(t)?;
    let goes_left = (n.start, t) < (start, idx);
    if goes_left {
        let (l, r) = split(a, n.right, start, idx, depth + 1)?;
        a.rec_mut(t)?.right = l;
        update(a, t)?;
        Ok((t, r))
    } else {
        let (l, r) = split(a, n.left, start, idx, depth + 1)?;
        a.rec_mut(t)?.left = r;
        update(a, t)?;
        Ok((l, t))
    }
}

/// Joins two treaps where every key of `l` is below every key of `r`.
fn merge<A: ArenaMut + ?Sized>(a: &mut A, l: u32, r: u32, depth: u32) -> Result<u32, Corrupt> {
    if l == NIL {
        return Ok(r);
    }
    if r == NIL {
        return Ok(l);
    }
    if depth > MAX_DEPTH {
        return Err(Corrupt);
    }
    if priority(l) >= priority(r) {
        let lr = a.rec(l)?.right;
        let m = merge(a, lr, r, depth + 1)?;
        a.rec_mut(l)?.right = m;
        update(a, l)?;
        Ok(l)
    } else {
        let rl = a.rec(r)?.left;
        let m = merge(a, l, rl, depth + 1)?;
        a.rec_mut(r)?.left = m;
        update(a, r)?;
        Ok(r)
    }
}

/// Inserts the detached record `i` (its `start`/`end` already set).
pub fn insert<A: ArenaMut + ?Sized>(a: &mut A, root: &mut u32, i: u32) -> Result<(), Corrupt> {
    {
        let n = a.rec_mut(i)?;
        n.left = NIL;
        n.right = NIL;
        n.max_end = n.end;
    }
    let start = a.rec(i)?.start;
    let (l, r) = split(a, *root, start, i, 0)?;
    let li = merge(a, l, i, 0)?;
    *root = merge(a, li, r, 0)?;
    Ok(())
}

/// Detaches record `i` from the treap; its fields other than links survive.
pub fn remove<A: ArenaMut + ?Sized>(a: &mut A, root: &mut u32, i: u32) -> Result<(), Corrupt> {
    let start = a.rec(i)?.start;
    let (l, rest) = split(a, *root, start, i, 0)?;
    // `rest` starts with `i` itself; everything after it goes right.
    let (mid, r) = match i.checked_add(1) {
        Some(next) => split(a, rest, start, next, 0)?,
        None => (rest, NIL),
    };
    if mid != i {
        return Err(Corrupt);
    }
    *root = merge(a, l, r, 0)?;
    let n = a.rec_mut(i)?;
    n.left = NIL;
    n.right = NIL;
    Ok(())
}

/// Takes every record that `drop` selects out of the treap at `*root` in one
/// pass over it (O(n): each record is read once, and each taken one costs a
/// merge of its two remaining subtrees). Returns the taken records chained
/// through `left` (NIL-terminated, `right` NIL); the rest keep their order.
pub fn extract<A: ArenaMut + ?Sized>(
    a: &mut A,
    root: &mut u32,
    drop: &mut dyn FnMut(&LockRecord) -> bool,
) -> Result<u32, Corrupt> {
    let mut gone = NIL;
    *root = extract_from(a, *root, drop, &mut gone, 0)?;
    Ok(gone)
}

fn extract_from<A: ArenaMut + ?Sized>(
    a: &mut A,
    t: u32,
    drop: &mut dyn FnMut(&LockRecord) -> bool,
    gone: &mut u32,
    depth: u32,
) -> Result<u32, Corrupt> {
    if t == NIL {
        return Ok(NIL);
    }
    if depth > MAX_DEPTH {
        return Err(Corrupt);
    }
    let (l, r) = {
        let n = a.rec(t)?;
        (n.left, n.right)
    };
    let l = extract_from(a, l, drop, gone, depth + 1)?;
    let r = extract_from(a, r, drop, gone, depth + 1)?;
    if drop(a.rec(t)?) {
        let n = a.rec_mut(t)?;
        n.left = *gone;
        n.right = NIL;
        *gone = t;
        // Both subtrees keep the heap order, and every key of `l` is below
        // every key of `r`.
        merge(a, l, r, 0)
    } else {
        let n = a.rec_mut(t)?;
        n.left = l;
        n.right = r;
        update(a, t)?;
        Ok(t)
    }
}

/// The first record in `(start, index)` order that overlaps `q` and satisfies
/// `pred`.
pub fn find<A: Arena + ?Sized>(
    a: &A,
    root: u32,
    q: Range,
    pred: &mut dyn FnMut(u32, &LockRecord) -> bool,
) -> Result<Option<u32>, Corrupt> {
    find_from(a, root, q, pred, 0)
}

fn find_from<A: Arena + ?Sized>(
    a: &A,
    t: u32,
    q: Range,
    pred: &mut dyn FnMut(u32, &LockRecord) -> bool,
    depth: u32,
) -> Result<Option<u32>, Corrupt> {
    if t == NIL {
        return Ok(None);
    }
    if depth > MAX_DEPTH {
        return Err(Corrupt);
    }
    let n = a.rec(t)?;
    if n.max_end < q.start {
        return Ok(None);
    }
    if let Some(hit) = find_from(a, n.left, q, pred, depth + 1)? {
        return Ok(Some(hit));
    }
    if n.start > q.end {
        return Ok(None);
    }
    if n.end >= q.start && pred(t, n) {
        return Ok(Some(t));
    }
    find_from(a, n.right, q, pred, depth + 1)
}

/// Calls `f` for every record overlapping `q`, in order. `f` returns false to
/// stop early.
pub fn for_each_overlap<A: Arena + ?Sized>(
    a: &A,
    root: u32,
    q: Range,
    f: &mut dyn FnMut(u32, &LockRecord) -> bool,
) -> Result<(), Corrupt> {
    let mut stop = false;
    let mut pred = |i: u32, n: &LockRecord| {
        if !stop && !f(i, n) {
            stop = true;
        }
        stop
    };
    find_from(a, root, q, &mut pred, 0).map(drop)
}

/// Verifies the three invariants; returns the number of nodes.
pub fn check<A: Arena + ?Sized>(a: &A, root: u32) -> Result<usize, Corrupt> {
    fn walk<A: Arena + ?Sized>(
        a: &A,
        t: u32,
        depth: u32,
        prev: &mut Option<u32>,
        count: &mut usize,
    ) -> Result<i64, Corrupt> {
        if depth > MAX_DEPTH {
            return Err(Corrupt);
        }
        let n = a.rec(t)?;
        let mut m = n.end;
        if n.left != NIL {
            if priority(n.left) > priority(t) {
                return Err(Corrupt);
            }
            m = m.max(walk(a, n.left, depth + 1, prev, count)?);
        }
        if let Some(p) = *prev
            && !key_less(a.rec(p)?, p, n, t)
        {
            return Err(Corrupt);
        }
        *prev = Some(t);
        *count += 1;
        if n.right != NIL {
            if priority(n.right) > priority(t) {
                return Err(Corrupt);
            }
            m = m.max(walk(a, n.right, depth + 1, prev, count)?);
        }
        if m != n.max_end || n.start > n.end || n.start < 0 {
            return Err(Corrupt);
        }
        Ok(m)
    }
    let mut count = 0;
    if root != NIL {
        walk(a, root, 0, &mut None, &mut count)?;
    }
    Ok(count)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::engine::range::EOF;

    pub struct VecArena(pub Vec<LockRecord>);

    impl Arena for VecArena {
        fn rec(&self, i: u32) -> Result<&LockRecord, Corrupt> {
            self.0.rec(i)
        }
    }

    impl ArenaMut for VecArena {
        fn rec_mut(&mut self, i: u32) -> Result<&mut LockRecord, Corrupt> {
            self.0.rec_mut(i)
        }
    }

    fn arena_with(ranges: &[(i64, i64)]) -> (VecArena, u32) {
        let mut a = VecArena((0..ranges.len()).map(|_| LockRecord::default()).collect());
        let mut root = NIL;
        for (i, &(s, e)) in ranges.iter().enumerate() {
            a.0[i].start = s;
            a.0[i].end = e;
            insert(&mut a, &mut root, i as u32).unwrap();
            check(&a, root).unwrap();
        }
        (a, root)
    }

    #[test]
    fn insert_find_remove() {
        let (mut a, mut root) = arena_with(&[(50, 60), (0, 9), (20, 30), (5, EOF), (40, 40)]);
        assert_eq!(check(&a, root), Ok(5));
        let hit = find(&a, root, Range::new(10, 19), &mut |_, _| true).unwrap();
        assert_eq!(hit, Some(3), "only [5,EOF] overlaps [10,19]");
        let mut seen = vec![];
        for_each_overlap(&a, root, Range::new(25, 45), &mut |i, _| {
            seen.push(i);
            true
        })
        .unwrap();
        assert_eq!(seen, vec![3, 2, 4]);
        remove(&mut a, &mut root, 3).unwrap();
        assert_eq!(check(&a, root), Ok(4));
        assert_eq!(find(&a, root, Range::new(10, 19), &mut |_, _| true).unwrap(), None);
        for i in [0, 1, 2, 4] {
            remove(&mut a, &mut root, i).unwrap();
        }
        assert_eq!(root, NIL);
    }

    #[test]
    fn many_nodes_stay_shallow() {
        let n = 20_000;
        let ranges: Vec<(i64, i64)> = (0..n).map(|i| (i * 10, i * 10 + 5)).collect();
        let mut a = VecArena((0..n).map(|_| LockRecord::default()).collect());
        let mut root = NIL;
        for (i, &(s, e)) in ranges.iter().enumerate() {
            a.0[i].start = s;
            a.0[i].end = e;
            insert(&mut a, &mut root, i as u32).unwrap();
        }
        assert_eq!(check(&a, root), Ok(n as usize));
        let hit = find(&a, root, Range::new(100_003, 100_004), &mut |_, _| true).unwrap();
        assert_eq!(hit, Some(10_000));
    }

    #[test]
    fn corrupt_links_are_detected_not_followed() {
        let (mut a, root) = arena_with(&[(0, 1), (2, 3), (4, 5)]);
        // A self-loop and an out-of-range index must both come back as Corrupt.
        let r = root as usize;
        a.0[r].left = root;
        assert_eq!(check(&a, root), Err(Corrupt));
        a.0[r].left = 999;
        assert_eq!(find(&a, root, Range::new(0, 5), &mut |_, _| false), Err(Corrupt));
    }
}
