//! The QNX resource-manager lock API (`iofunc_lock`, `iofunc_lock_default`
//! and their companions), for ported resource managers and their tests.
//!
//! A resource manager's clients are not processes on this machine's lock
//! lists: they are (client, OCB) pairs inside the resource manager. So
//! their locks live in the resource manager's own memory, one lock list per
//! resource (`iofunc_attr_t`), as on QNX, and go through the same engine as
//! the interposer's: the lock lists are [`crate::engine::lockset`] treaps
//! and a blocked request is checked for a cycle by
//! [`crate::engine::deadlock`]. No second lock implementation.
//!
//! - [`abi`]: the C structures of `shim/include/sys/*.h`;
//! - [`store`]: the lock state, with owners of the resource manager's kind;
//! - [`msg`]: the emulated reply side of message passing;
//! - [`api`]: decoding a handler's arguments, replies, tracing.
//!
//! This wing uses the layers below it (engine, trace, sys) and nothing of
//! the interposer's registry.

pub mod abi;
pub mod api;
pub mod msg;
pub mod store;
