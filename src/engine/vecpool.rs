//! A record pool over a `Vec`: the engine's store for unit tests and
//! benchmarks, and for the resource-manager lock API (`crate::iofunc`),
//! whose lock lists live in the resource manager's own memory. The
//! registry's shared-memory tables are the interposer's.

use super::lockset::Pool;
use super::tree::{Arena, ArenaMut, Corrupt, LockRecord, NIL, RECORD_FREE, RECORD_LIVE};

pub struct VecPool {
    pub recs: Vec<LockRecord>,
    pub free: Vec<u32>,
    /// Records a lock request leaves for unlocks (see `Pool::can_alloc`).
    pub reserve: u32,
    /// At most this many live records.
    pub limit: usize,
    live: usize,
}

impl VecPool {
    /// `n` records, made up front; the pool never grows past them.
    pub fn new(n: u32, reserve: u32) -> VecPool {
        VecPool {
            recs: (0..n).map(|_| LockRecord::default()).collect(),
            free: (0..n).rev().collect(),
            reserve,
            limit: n as usize,
            live: 0,
        }
    }

    /// An empty pool that grows as records are taken: up to `limit` live
    /// ones, or as far as the allocator gives memory.
    pub fn growable(reserve: u32, limit: usize) -> VecPool {
        VecPool { recs: Vec::new(), free: Vec::new(), reserve, limit, live: 0 }
    }

    pub fn live(&self) -> usize {
        self.live
    }
}

impl Arena for VecPool {
    fn rec(&self, i: u32) -> Result<&LockRecord, Corrupt> {
        self.recs.rec(i)
    }
}

impl ArenaMut for VecPool {
    fn rec_mut(&mut self, i: u32) -> Result<&mut LockRecord, Corrupt> {
        self.recs.rec_mut(i)
    }
}

impl Pool for VecPool {
    fn alloc(&mut self, owner: u32, file: u32) -> Option<u32> {
        let i = match self.free.pop() {
            Some(i) => i,
            None if self.recs.len() < self.limit.min(NIL as usize) => {
                self.recs.try_reserve(1).ok()?;
                self.recs.push(LockRecord::default());
                (self.recs.len() - 1) as u32
            }
            None => return None,
        };
        self.live += 1;
        self.recs[i as usize] =
            LockRecord { owner, file, state: RECORD_LIVE, left: NIL, right: NIL, ..Default::default() };
        Some(i)
    }

    fn free(&mut self, i: u32) -> Result<(), Corrupt> {
        self.rec_mut(i)?.state = RECORD_FREE;
        self.free.push(i);
        self.live -= 1;
        Ok(())
    }

    fn can_alloc(&mut self, n: u32, for_unlock: bool) -> bool {
        let need = (if for_unlock { n } else { n + self.reserve }) as usize;
        if self.live + need > self.limit {
            return false;
        }
        // Room: free records, or a vector that can grow by the rest.
        let more = need.saturating_sub(self.free.len());
        more == 0 || (self.recs.len() + more < NIL as usize && self.recs.try_reserve(more).is_ok())
    }
}
