//! Targets: what ops are applied to. Each kind of target gets a module; the
//! embedded default is [`in_process`], CRDT models living in this process;
//! [`maelstrom`] drives node processes, [`sql`] a database, [`http`] a
//! service behind HTTP, and [`automerge`] automerge documents over its real
//! sync protocol.
//!
//! A wall-clock target is an [`Adapter`]: it applies one op and says how it
//! ended, reads a replica's final value, and takes the faults it supports.
//! It has no run loop: [`crate::engine`] generates the ops, schedules the
//! writers under the load shape, drives the nemesis, settles, and records
//! the history and the time series for every adapter alike.

pub mod automerge;
pub mod http;
pub mod in_process;
pub mod maelstrom;
pub mod misconfig;
pub mod nemeses;
pub mod settle;
pub mod sql;

use crate::error::Error;
use crate::history::{Function, Outcome, Probe};
use converge_models::Value;
use rand_chacha::ChaCha8Rng;
use std::future::Future;
use std::time::Duration;

/// One op the engine's generator planned, as an adapter receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// The writer (history process) sending it.
    pub writer: u32,
    /// The writer's op sequence number (from 1): with `writer`, a unique op id.
    pub seq: u64,
    /// The replica it goes to.
    pub replica: usize,
    /// The key (object).
    pub key: u32,
    /// What it does: read, increment, add, remove, write.
    pub f: Function,
    /// Delta, element or written value (0 for reads).
    pub value: i64,
    /// When the engine recorded its invocation, ns since the run started.
    pub invoke_ns: u64,
}

/// How an op ended, as the adapter saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// `ok`, `fail` (definitely not applied) or `info` (unknown).
    pub outcome: Outcome,
    /// The auxiliary stamp the checkers use (LWW timestamp, MV context
    /// time), or [`crate::history::UNKNOWN_AUX`].
    pub aux: u64,
    /// A read's value.
    pub read: Option<Value>,
}

/// A wall-clock target behind one trait (see the module docs). Every method
/// takes `&self`: writers, the nemesis and the final phase call it
/// concurrently, so an adapter keeps its mutable state behind locks or
/// atomics, and a writer's own state in [`Adapter::Writer`].
pub trait Adapter: Send + Sync + 'static {
    /// One writer's private state (a held connection, its last causal
    /// context, its retry coin).
    type Writer: Send + 'static;

    /// Number of replicas.
    fn replicas(&self) -> usize;

    /// Whether a writer keeps to one replica (`writer % replicas`) rather
    /// than picking one per op.
    fn pinned(&self) -> bool {
        false
    }

    /// The state of writer `id`.
    fn writer(&self, id: u32) -> Self::Writer;

    /// Applies `op` on `op.replica`. Never fails: a lost answer is `info`.
    fn apply(&self, writer: &mut Self::Writer, op: Op) -> impl Future<Output = Applied> + Send;

    /// A replica's current value of `key` (the final phase polls this);
    /// `None` when it gave no usable answer.
    fn read(&self, replica: usize, key: u32) -> impl Future<Output = Option<Value>> + Send;

    /// Replication the target needs converge to run while writers write
    /// (SQL's anti-entropy between databases); returns when `stop` says so.
    fn background(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send {
        let _ = stop;
        async {}
    }

    /// Length of one nemesis phase for a run bounded by `end` (faults start
    /// in odd phases and heal in even ones).
    fn nemesis_phase(&self, end: Option<Duration>) -> Duration;

    /// Starts one of the faults this run enables; returns what it did
    /// (nothing when the run enables none that come and go).
    fn inject(&self, rng: &mut ChaCha8Rng) -> impl Future<Output = Vec<String>> + Send;

    /// Heals what [`Adapter::inject`] started; `for_good` also ends the
    /// faults that last the whole writing phase (delays, loss) before the
    /// final phase.
    fn heal(&self, for_good: bool) -> impl Future<Output = Vec<String>> + Send;

    /// Runs before each poll of the final reads (SQL: one anti-entropy round).
    fn before_poll(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Idempotency probes after the final reads.
    fn probes(&self) -> impl Future<Output = Vec<Probe>> + Send {
        async { Vec::new() }
    }

    /// A configuration mistake the run has shown so far; the run ends with it.
    fn mistake(&self) -> Option<Error>;

    /// Whether writers must stop now (a mistake that makes more ops pointless).
    fn halted(&self) -> bool {
        false
    }

    /// Message counts to record in the history after the final phase
    /// (Maelstrom's network); `None` for a target converge does not route.
    fn network(&self) -> impl Future<Output = Option<crate::history::NetworkStats>> + Send {
        async { None }
    }

    /// Roots of the target's process trees, for the time series (empty
    /// when converge did not start the target).
    fn pids(&self) -> Vec<u32> {
        Vec::new()
    }
}
