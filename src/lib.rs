//! converge: a CRDT stress and correctness verifier.
//!
//! The pieces follow the Jepsen decomposition:
//! - [`generator`]: seeded op streams with a hot-key conflict ratio;
//! - [`target`]: what ops are applied to (in-process replicas here);
//! - [`nemesis`] and [`network`]: faults between replicas, healed at the end;
//! - [`interpreter`]: runs the writers and the final phase;
//! - [`history`]: the append-only op log, streamed to `history.jsonl`;
//! - [`checker`]: pure functions of the history (convergence, data loss,
//!   idempotency, conflicts);
//! - [`report`]: `report.json`, `report.md`, and the exit code via [`verdict`];
//! - [`shrink`]: minimal counterexamples;
//! - [`campaign`]: fuzzing campaigns of randomized runs (`converge fuzz`);
//! - [`scenario`]: TOML scenario files; [`slo`]: SLO gates;
//! - [`serve`]: `converge serve`, the reference HTTP CRDT service;
//! - [`child`] and [`interrupt`]: child processes that never outlive a run,
//!   and SIGINT/SIGTERM that stop it gracefully;
//! - [`secrets`] and [`output`]: every output masked, closed pipes quiet.
#![warn(missing_docs)]

// First: its print macros replace the standard ones in every module below.
#[macro_use]
pub mod output;

pub mod campaign;
pub mod checker;
pub mod child;
pub mod cli;
pub mod engine;
pub mod error;
pub mod generator;
pub mod history;
pub mod interpreter;
pub mod interrupt;
pub mod load;
pub mod metrics;
pub mod nemesis;
pub mod network;
pub mod props;
pub mod render;
pub mod report;
pub mod scenario;
pub mod secrets;
pub mod series;
pub mod serve;
pub mod shrink;
pub mod slo;
pub mod suite;
pub mod target;
pub mod verdict;
pub mod vload;

pub use converge_models as models;

/// Every binary linking converge (the CLI, tests, benches) allocates through
/// mimalloc: writers allocate update messages on one thread and the network
/// thread frees them on another, which glibc's malloc serializes on an arena
/// lock (a fifth of a run's CPU went to malloc and its futex wake-ups).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub use error::{Error, Result};
pub use verdict::Verdict;
