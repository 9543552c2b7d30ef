//! The store's unit tests.
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
    Token { l_pid: n as i32, ..Default::default() }
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
    let mut x = crate::engine::xorshift::XorShift(0x2545_f491_4f6c_dd1d);
    let mut rnd = |n: u64| x.below(n);
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

/// An rcvid queued again (its earlier client gone) replaces that client's
/// request; a cancel names the resource it waits on; a program's own reply
/// drops the request.
#[test]
fn rcvid_index() {
    let mut st = Store::new();
    let mut out = Vec::new();
    st.set(A, w(client(1), 1, 0, 0), None, &mut out).unwrap();
    assert_eq!(st.set(A, w(client(2), 2, 0, 0), Some((5, tok(2))), &mut out), Ok(Set::Waiting));
    assert_eq!(st.set(A, w(client(3), 3, 0, 0), Some((5, tok(3))), &mut out), Ok(Set::Waiting));
    assert_eq!(st.waiting(), 1);
    st.check().unwrap();
    assert!(!st.cancel(B, 5, &|_| true, &mut out), "rcvid 5 waits on A, not B");
    st.drop_rcvid(5);
    assert_eq!(st.waiting(), 0);
    st.release_all(A, client(1), false, &mut out);
    assert!(out.is_empty(), "nobody left to grant: {out:?}");
    st.check().unwrap();
    assert_eq!(st.records(), 0);
}
