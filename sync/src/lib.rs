//! The primitives converge's in-process run shares between threads.
//!
//! Everything the writers, the network thread and the history writer thread
//! touch together lives here, and nothing else does:
//! - [`channel`]: the bounded hand-off from writers to the history recorder;
//! - [`cell::ReplicaCell`]: a replica's state behind its lock, with the
//!   outbox of updates the network has not taken yet;
//! - [`counters::Backlog`]: undelivered update copies, for back-pressure;
//! - [`counters::Progress`]: completed ops and the end-of-writing flag.
//!
//! Built with `RUSTFLAGS="--cfg loom"`, the [`shim`] swaps std and
//! parking_lot for loom's types, and `tests/loom.rs` model-checks this very
//! code under every interleaving of two or three threads. The crate must not
//! depend on tokio: tokio does not build under `--cfg loom`.

#![warn(missing_docs)]

pub mod cell;
pub mod channel;
pub mod counters;
pub mod shim;

pub use cell::ReplicaCell;
pub use counters::{Backlog, Progress};
