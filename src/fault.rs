//! Test-only fault injection: `QNXCOMPAT_FAULT=<point>[:<n>]` makes the
//! process stop for good the n-th time (default: first) it reaches `point`,
//! so a test can SIGKILL it there. Points:
//!
//! - `holding-mutex`: just after taking the registry mutex;
//! - `mid-update`: inside a lock update, after an existing record was
//!   detached and before the update completes.
//!
//! Before stopping it prints `qnxcompat: fault <point> reached (pid N)` to
//! stderr so the test knows when to kill. Unset, a point costs one relaxed
//! atomic load.

use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::sys;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Point {
    HoldingMutex = 1,
    MidUpdate = 2,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::HoldingMutex => "holding-mutex",
            Point::MidUpdate => "mid-update",
        }
    }
}

/// The armed point (0: none) and how many more passes before it fires.
static ARMED: AtomicU32 = AtomicU32::new(0);
static REMAINING: AtomicU32 = AtomicU32::new(0);

/// Parses a QNXCOMPAT_FAULT value; called by the constructor.
pub fn arm(value: &[u8]) {
    let (name, count) = match value.iter().position(|&c| c == b':') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &b"1"[..]),
    };
    let point = [Point::HoldingMutex, Point::MidUpdate].into_iter().find(|p| p.name().as_bytes() == name);
    let n = core::str::from_utf8(count).ok().and_then(|s| s.parse::<u32>().ok()).unwrap_or(1).max(1);
    if let Some(p) = point {
        REMAINING.store(n, Ordering::Relaxed);
        ARMED.store(p as u32, Ordering::Release);
    }
}

/// A fault point: stops the process here if armed for it.
pub fn point(p: Point) {
    if ARMED.load(Ordering::Relaxed) != p as u32 {
        return;
    }
    if REMAINING.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    let mut buf = [0u8; 96];
    let mut c = crate::trace::Cursor::new(&mut buf);
    let _ = writeln!(c, "qnxcompat: fault {} reached (pid {})", p.name(), sys::getpid());
    let n = c.len();
    let _ = sys::write(2, &buf[..n]);
    loop {
        sys::pause();
    }
}
