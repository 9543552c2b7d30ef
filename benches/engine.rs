//! In-process benchmarks of the pure engine (criterion): the lock-list
//! operations the registry runs under its mutex, and the deadlock search.
//! `make bench` runs these beside the native/shim comparison in bench/.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use qnxcompat::engine::deadlock::{self, WaitGraph};
use qnxcompat::engine::lockset;
use qnxcompat::engine::range::{LockType, Range, Request};
use qnxcompat::engine::tree::NIL;
use qnxcompat::engine::vecpool::VecPool;

fn lock_pair_with_others(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock+unlock pair, same owner holds N other ranges");
    for n in [0u32, 1_000, 10_000, 100_000] {
        let mut p = VecPool::new(n + 16, 0);
        let mut root = NIL;
        for i in 0..n {
            let s = 1_000_000 + 2 * i as i64;
            lockset::set(&mut p, &mut root, 0, 1, Request::Lock(LockType::Write), Range::new(s, s)).unwrap();
        }
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                lockset::set(&mut p, &mut root, 0, 1, Request::Lock(LockType::Write), Range::new(0, 9)).unwrap();
                lockset::set(&mut p, &mut root, 0, 1, Request::Unlock, Range::new(0, 9)).unwrap();
            })
        });
    }
    g.finish();
}

/// A chain of waiters: owner i waits for owner i+1; the last waits for 0.
struct Chain(u32);

impl WaitGraph for Chain {
    fn blockers_of(&self, owner: u32, f: &mut dyn FnMut(u32)) {
        if owner + 1 < self.0 {
            f(owner + 1);
        } else {
            f(0);
        }
    }
}

fn deadlock_search(c: &mut Criterion) {
    let n = 4096usize;
    let (mut mark, mut parent, mut stack, mut epoch) = (vec![0; n], vec![0; n], vec![0; n], 0u32);
    c.bench_function("deadlock search, cycle through 64 waiters", |b| {
        b.iter(|| {
            let mut s =
                deadlock::Scratch { mark: &mut mark, parent: &mut parent, stack: &mut stack, epoch: &mut epoch };
            assert!(deadlock::find_cycle(&Chain(65), 0, &[1], &mut s).is_some());
        })
    });
}

criterion_group!(benches, lock_pair_with_others, deadlock_search);
criterion_main!(benches);
