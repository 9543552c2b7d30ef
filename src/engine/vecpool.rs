//! A record pool over a `Vec`: the engine's store for unit tests and
//! benchmarks, as the registry's shared-memory tables are in production.

use super::lockset::Pool;
use super::tree::{Arena, ArenaMut, Corrupt, LockRecord, NIL, RECORD_FREE, RECORD_LIVE};

pub struct VecPool {
    pub recs: Vec<LockRecord>,
    pub free: Vec<u32>,
    pub reserve: u32,
}

impl VecPool {
    pub fn new(n: u32, reserve: u32) -> VecPool {
        VecPool { recs: (0..n).map(|_| LockRecord::default()).collect(), free: (0..n).rev().collect(), reserve }
    }
    pub fn live(&self) -> usize {
        self.recs.iter().filter(|r| r.state == RECORD_LIVE).count()
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
        let i = self.free.pop()?;
        let r = &mut self.recs[i as usize];
        *r = LockRecord { owner, file, state: RECORD_LIVE, left: NIL, right: NIL, ..Default::default() };
        Some(i)
    }
    fn free(&mut self, i: u32) -> Result<(), Corrupt> {
        self.rec_mut(i)?.state = RECORD_FREE;
        self.free.push(i);
        Ok(())
    }
    fn can_alloc(&mut self, n: u32, for_unlock: bool) -> bool {
        let need = if for_unlock { n } else { n + self.reserve };
        self.free.len() as u32 >= need
    }
}
