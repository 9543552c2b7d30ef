//! Deadlock detection over the owners' wait-for graph.
//!
//! An owner waits for another when one of its blocked requests conflicts
//! with a lock the other holds. The graph is not stored: edges are derived
//! on demand from the registered waiters and the lock lists, so they are
//! always exactly as true as the lock state. A blocking request that is about
//! to sleep asks whether its own edges close a cycle; if so it fails with
//! EDEADLK and only it does (FreeBSD `lf_add_edge`, without the kernel's
//! 10-hop limit of Linux `posix_locks_deadlock`). The search spans every
//! owner kind (processes and open files) and every file.
//!
//! Depth-first, with an explicit stack and marks in caller-provided scratch
//! (the registry keeps it in shared memory, used under its mutex), so the
//! search needs no allocation and no deep native stack.

/// The graph as the search sees it.
pub trait WaitGraph {
    /// Calls `f` with every owner that blocks some request `owner` is
    /// waiting on (duplicates allowed).
    fn blockers_of(&self, owner: u32, f: &mut dyn FnMut(u32));

    /// Whether reaching `owner` means reaching the requester: by default
    /// only the requester itself. The registry also counts owners whose
    /// locks only the requester's (blocked) process can release.
    fn is_requester(&self, owner: u32, requester: u32) -> bool {
        owner == requester
    }
}

/// Scratch space for one search; every slice is indexed by owner slot.
pub struct Scratch<'a> {
    /// `mark[o] == epoch` means `o` was reached in this search.
    pub mark: &'a mut [u32],
    /// The owner from which `o` was reached.
    pub parent: &'a mut [u32],
    /// The DFS stack.
    pub stack: &'a mut [u32],
    /// Bumped per search, so marks need no clearing.
    pub epoch: &'a mut u32,
}

/// A cycle found: `owners[..len]` in wait order, starting with the
/// requester (the requester waits for `owners[1]`, which waits for
/// `owners[2]`, ..., which waits for the requester, or for `stand_in`, an
/// owner that only the requester's party can release). `total` is the full
/// length when the cycle is longer than the array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cycle {
    pub owners: [u32; 32],
    pub len: usize,
    pub total: usize,
    /// The owner the cycle closed on, when it is not the requester itself
    /// but one only the requester's party releases (its open file).
    pub stand_in: Option<u32>,
    /// The requester is blocked directly by a lock only its own party can
    /// release (`owners[1]`): it waits for itself.
    pub own: bool,
}

impl Cycle {
    pub fn owners(&self) -> &[u32] {
        &self.owners[..self.len]
    }
}

/// Reports the owners a request starts its search from, by calling the
/// function it is given with each.
pub type Starts<'a> = &'a mut dyn FnMut(&mut dyn FnMut(u32));

/// Whether `requester`, by waiting for `blockers`, would close a cycle.
pub fn find_cycle<G: WaitGraph + ?Sized>(g: &G, requester: u32, blockers: &[u32], s: &mut Scratch) -> Option<Cycle> {
    find_cycle_from(g, requester, &mut |f| blockers.iter().for_each(|&b| f(b)), s)
}

/// Whether `requester`, by waiting for every owner `start` reports
/// (duplicates allowed, any number), would close a cycle.
pub fn find_cycle_from<G: WaitGraph + ?Sized>(g: &G, requester: u32, start: Starts, s: &mut Scratch) -> Option<Cycle> {
    let n = s.mark.len().min(s.parent.len()).min(s.stack.len());
    if requester as usize >= n {
        return None;
    }
    *s.epoch = s.epoch.wrapping_add(1).max(1);
    let epoch = *s.epoch;
    let mut top = 0;
    s.mark[requester as usize] = epoch;
    let mut own = None;
    start(&mut |b| {
        if b == requester || own.is_some() {
            return;
        }
        if g.is_requester(b, requester) {
            own = Some(b);
            return;
        }
        if (b as usize) < n && s.mark[b as usize] != epoch && top < n {
            s.mark[b as usize] = epoch;
            s.parent[b as usize] = requester;
            s.stack[top] = b;
            top += 1;
        }
    });
    if let Some(b) = own {
        // Blocked by a lock only the requesting party can release: a
        // deadlock with itself (its flock waits on its own fcntl locks).
        let mut c = Cycle { owners: [0; 32], len: 2, total: 2, stand_in: None, own: true };
        c.owners[0] = requester;
        c.owners[1] = b;
        return Some(c);
    }
    let mut closing = None;
    while top > 0 && closing.is_none() {
        top -= 1;
        let o = s.stack[top];
        g.blockers_of(o, &mut |c| {
            if closing.is_some() || c as usize >= n {
                return;
            }
            if g.is_requester(c, requester) {
                closing = Some((o, c));
            } else if s.mark[c as usize] != epoch && top < n {
                s.mark[c as usize] = epoch;
                s.parent[c as usize] = o;
                s.stack[top] = c;
                top += 1;
            }
        });
    }
    let (last, stand_in) = closing?;
    // The path requester -> ... -> last, read backwards through `parent`:
    // count it first, then keep its first 31 steps after the requester.
    let mut total = 0;
    let mut o = last;
    while o != requester && total < n {
        total += 1;
        o = s.parent[o as usize];
    }
    let mut c = Cycle { owners: [0; 32], len: 1 + total.min(31), total: total + 1, stand_in: None, own: false };
    c.owners[0] = requester;
    let mut o = last;
    for k in (0..total).rev() {
        if k < 31 {
            c.owners[1 + k] = o;
        }
        o = s.parent[o as usize];
    }
    // The cycle closed on an owner that stands for the requester (an open
    // file the requester's process locked through): noted apart.
    if stand_in != requester {
        c.stand_in = Some(stand_in);
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adjacency lists: `edges[o]` are the owners `o` waits for.
    struct Adj(Vec<Vec<u32>>);

    impl WaitGraph for Adj {
        fn blockers_of(&self, owner: u32, f: &mut dyn FnMut(u32)) {
            for &b in &self.0[owner as usize] {
                f(b);
            }
        }
    }

    fn search(edges: Vec<Vec<u32>>, requester: u32, blockers: &[u32]) -> Option<Cycle> {
        let n = edges.len();
        let (mut mark, mut parent, mut stack, mut epoch) = (vec![0; n], vec![0; n], vec![0; n], 0);
        let mut s = Scratch { mark: &mut mark, parent: &mut parent, stack: &mut stack, epoch: &mut epoch };
        find_cycle(&Adj(edges), requester, blockers, &mut s)
    }

    #[test]
    fn two_owner_cycle() {
        // 1 waits for 0; now 0 asks to wait for 1.
        let c = search(vec![vec![], vec![0]], 0, &[1]).unwrap();
        assert_eq!(c.owners(), &[0, 1]);
    }

    #[test]
    fn chain_is_not_a_cycle() {
        assert_eq!(search(vec![vec![], vec![2], vec![3], vec![]], 0, &[1]), None);
    }

    #[test]
    fn long_cycle_has_no_hop_limit() {
        // 1 -> 2 -> ... -> 99 -> 0, and 0 asks to wait for 1.
        let n = 100;
        let mut edges: Vec<Vec<u32>> = (0..n).map(|i| vec![(i + 1) % n]).collect();
        edges[0].clear();
        let c = search(edges, 0, &[1]).unwrap();
        assert_eq!(c.total, 100);
        assert_eq!(&c.owners()[..4], &[0, 1, 2, 3]);
        assert_eq!(c.len, 32);
    }

    #[test]
    fn cycle_not_through_requester_is_ignored() {
        // 1 <-> 2 deadlock among themselves; 0 waiting for 1 closes nothing.
        assert_eq!(search(vec![vec![], vec![2], vec![1]], 0, &[1]), None);
    }

    /// Brute force: is `requester` reachable from any blocker?
    fn reachable(edges: &[Vec<u32>], requester: u32, blockers: &[u32]) -> bool {
        let mut seen = vec![false; edges.len()];
        let mut todo: Vec<u32> = blockers.to_vec();
        while let Some(o) = todo.pop() {
            if o == requester {
                return true;
            }
            if !std::mem::replace(&mut seen[o as usize], true) {
                todo.extend(&edges[o as usize]);
            }
        }
        false
    }

    #[test]
    fn property_matches_brute_force() {
        let mut x = crate::engine::xorshift::XorShift(0x1234_5678_9abc_def1);
        let mut next = |m: u64| x.below(m);
        for _ in 0..2000 {
            let n = 2 + next(12) as usize;
            let edges: Vec<Vec<u32>> = (0..n).map(|_| (0..next(3)).map(|_| next(n as u64) as u32).collect()).collect();
            let requester = next(n as u64) as u32;
            let blockers: Vec<u32> = (0..1 + next(3)).map(|_| next(n as u64) as u32).collect();
            let want =
                reachable(&edges, requester, &blockers.iter().copied().filter(|&b| b != requester).collect::<Vec<_>>());
            let got = search(edges.clone(), requester, &blockers);
            assert_eq!(got.is_some(), want, "edges {edges:?} requester {requester} blockers {blockers:?}");
            if let Some(c) = got {
                // Every step of the reported cycle is a real edge.
                let o = c.owners();
                for w in o.windows(2) {
                    assert!(w[0] == requester && blockers.contains(&w[1]) || edges[w[0] as usize].contains(&w[1]));
                }
                assert!(edges[*o.last().unwrap() as usize].contains(&requester));
            }
        }
    }
}
