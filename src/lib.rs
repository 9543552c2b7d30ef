//! libqnxcompat: QNX Neutrino file and memory locking semantics on Linux,
//! as an `LD_PRELOAD` library.
//!
//! Scope: `fcntl` record locks, `lockf`, `flock`, the `mlock` family and the
//! close paths that release locks, all over one lock registry in shared
//! memory, so that the QNX rules hold across every preloaded process.
//!
//! Layout (one job per module):
//! - [`engine`]: pure range algebra and lock lists (no I/O);
//! - [`registry`]: the shared-memory segment, its mutex, owners and repair;
//! - [`liveness`]: kernel-anchored liveness and identity of process owners;
//! - [`owner`]: the calling process (vfork detection);
//! - [`locks`]: QNX lock semantics for descriptors, on top of the registry;
//! - [`iofunc`]: the QNX resource-manager lock API, over the same engine;
//! - [`local`]: per-process state the async-signal-safe close path reads;
//! - [`hooks`]: the interposed entry points, thin by design;
//! - [`trace`] and [`config`]: per-call tracing and the environment;
//! - [`sys`]: typed raw syscalls that never re-enter our own hooks.
//!
//! Safety policy (rustix's): unsafe code is denied crate-wide and allowed
//! file by file; each such file opens with a `# Safety` header.
#![deny(unsafe_code)]

pub mod config;
pub mod engine;
pub mod fault;
pub mod fmt;
/// The exported symbols; compiled out of unit-test binaries, which must not
/// interpose on their own libc calls.
#[cfg(not(test))]
pub mod hooks;
pub mod identity;
pub mod iofunc;
pub mod lazy;
pub mod liveness;
pub mod local;
pub mod locks;
pub mod mappings;
pub mod mirror;
pub mod mlock;
pub mod owner;
pub mod registry;
pub mod signals;
pub mod sys;
pub mod trace;
pub mod usermem;

/// QNX's `F_FLOCK`, OR'd into `l_type` by flock(). QNX does not publish its
/// value; 0x1000 collides with no Linux `l_type` (0, 1, 2, and the obsolete
/// F_EXLCK 4 and F_SHLCK 8). `shim/include/fcntl.h` defines the same value.
pub const F_FLOCK: i32 = 0x1000;
