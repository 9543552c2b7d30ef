//! The lock engine: pure range algebra and lock-list operations, with no
//! I/O, clocks or shared memory of its own. The registry hands it `&mut`
//! views of a file's records; unit and property tests drive it directly.

pub mod deadlock;
pub mod lockset;
pub mod range;
pub mod tree;
pub mod vecpool;
#[cfg(test)]
pub mod xorshift;
