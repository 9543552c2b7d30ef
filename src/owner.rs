//! The calling process as the library sees it: which process it is, and
//! whether it is a `vfork()` child sharing its parent's memory.
//!
//! Lock-owner identity and liveness do not live here: they rest on kernel
//! anchors and nonces (`crate::liveness`), never on pids, start times or
//! `/proc`, so that they hold across pid namespaces, `hidepid` and pid reuse.

use core::sync::atomic::{AtomicI32, Ordering};

use crate::sys;

/// The pid this process image last saw itself as (0: not yet asked).
static MY_PID: AtomicI32 = AtomicI32::new(0);

/// Notes the caller's pid; the vfork test below compares against it.
pub fn note_pid() {
    MY_PID.store(sys::getpid(), Ordering::Release);
}

/// Whether this is a child sharing its parent's memory (vfork, or
/// `clone(CLONE_VM)`): the process-local lock summary then describes the
/// parent, not us. Such a child skips the `pthread_atfork` handlers, so the
/// paths it may run (close, dup2, close_range, exec) ask this first; a vfork
/// child that takes locks itself would act as its parent (POSIX allows it
/// only `_exit` and the exec family).
pub fn in_shared_memory_child() -> bool {
    let cached = MY_PID.load(Ordering::Acquire);
    cached != 0 && cached != sys::getpid()
}

/// Called in a fork child: it has its own pid.
pub fn forget_after_fork() {
    note_pid();
}
