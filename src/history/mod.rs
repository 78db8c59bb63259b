//! The history: an append-only log of every operation, plus the final phase
//! (final reads, idempotency probes, quiescence) so that every checker is a
//! pure function of it.
//!
//! In memory an operation is one fixed-size [`OpRecord`] (invoke and
//! completion merged); variable-size data (vector clocks of MV-register
//! writes, dots observed by OR-Set removes) lives in a shared arena, and read
//! results in a side table. On disk it is JSON lines ([`jsonl`]).

pub mod detect;
pub mod edn;
pub mod jepsen;
pub mod jsonl;
pub mod lin;

use converge_models::{Dot, ReplicaId, Value, Workload};
use serde::{Deserialize, Serialize};

/// `aux` of an indeterminate op whose timestamp or dot was never reported
/// (an invoke with no completion, or an `info` completion without one). It
/// sorts above every real timestamp: such a write may have won.
pub const UNKNOWN_AUX: u64 = u64::MAX;

/// Version of the on-disk history and report formats.
pub const SCHEMA_VERSION: u32 = 1;

/// The operation a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Function {
    /// Counter increment (value is the signed delta).
    Increment,
    /// Set add (value is the element).
    Add,
    /// Set remove (value is the element).
    Remove,
    /// Register write (value is the written value).
    Write,
    /// Map put (field and value).
    Put,
    /// Map delete (field).
    Delete,
    /// Read of one key on one replica.
    Read,
}

impl Function {
    /// True for operations that change state.
    pub fn is_update(self) -> bool {
        !matches!(self, Function::Read)
    }
}

/// How an operation completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Outcome {
    /// Took effect.
    Ok,
    /// Definitely did not take effect.
    Fail,
    /// May or may not have taken effect (timeout, crash, killed run).
    Info,
}

/// One operation, invoke and completion merged. 56 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// Invocation time, ns since the run started.
    pub invoke_ns: u64,
    /// Delta, element or value written (see [`Function`]).
    pub value: i64,
    /// LWW timestamp of a write, or the counter of an OR-Set add's dot;
    /// [`UNKNOWN_AUX`] when an indeterminate op never reported it.
    pub aux: u64,
    /// Completion minus invocation time, saturating.
    pub latency_ns: u32,
    /// Logical writer (client) that issued it.
    pub process: u32,
    /// Key (object) it touched.
    pub key: u32,
    /// Map field, for put and delete.
    pub field: u32,
    /// Sum of the update's per-key vector clock: how many updates of this key
    /// are in its causal past, itself included. Zero for reads and failures.
    pub clock_sum: u32,
    /// 1 + offset into [`History::arena`] (updates) or into [`History::reads`]
    /// (reads); 0 when there is none.
    pub payload: u32,
    /// Replica it ran on.
    pub replica: ReplicaId,
    /// What it did.
    pub f: Function,
    /// How it ended.
    pub outcome: Outcome,
}

/// Run parameters, written as the first line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Format version.
    pub schema_version: u32,
    /// Seed of the run.
    pub seed: u64,
    /// Datatype under test.
    pub workload: Workload,
    /// Model (reference or fault) name.
    pub model: String,
    /// Target kind, e.g. `in-process`.
    pub target: String,
    /// Concurrent writers.
    pub writers: u32,
    /// Replicas.
    pub replicas: u16,
    /// Keys.
    pub keys: u32,
    /// Planned operations.
    pub ops: u64,
    /// Nemesis specification.
    pub nemesis: String,
    /// Command line that reproduces the run.
    pub reproduce: String,
    /// The target claims linearizability: checkers also decide it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub linearizable: bool,
}

/// The value one replica returned for one key after quiescence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    /// Replica read.
    pub replica: ReplicaId,
    /// Key read.
    pub key: u32,
    /// Value it returned.
    pub value: Value,
}

/// What an idempotency probe did to a final state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// `merge(s, s)`.
    SelfMerge,
    /// `merge(final, earlier snapshot)`.
    StaleMerge,
    /// Re-applying an op that was already delivered.
    Redeliver,
    /// Saving a state and loading it back.
    SaveLoad,
}

/// An idempotency probe: a final state, re-merged or re-fed, compared with itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// Which probe.
    pub probe: ProbeKind,
    /// Replica probed.
    pub replica: ReplicaId,
    /// Key probed.
    pub key: u32,
    /// Whether the state changed (structural inequality).
    pub state_changed: bool,
    /// Value before the probe; recorded only when the state changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// Value after the probe; recorded only when the state changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// How the final anti-entropy phase ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quiescence {
    /// True when a full anti-entropy round changed no replica.
    pub reached: bool,
    /// Rounds run.
    pub rounds: u32,
    /// Bound on rounds.
    pub max_rounds: u32,
    /// Time from heal until all replicas were equal, if they became equal.
    pub convergence_ns: Option<u64>,
}

/// Message counters from the simulated network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Op messages handed to the network (one per destination).
    pub sent: u64,
    /// Messages delivered, duplicates included.
    pub delivered: u64,
    /// Messages dropped by the nemesis (and retransmitted later).
    pub dropped: u64,
    /// Extra copies injected by the nemesis.
    pub duplicated: u64,
    /// Duplicate copies that reached a replica.
    pub duplicates_delivered: u64,
    /// Messages delayed or held back by a partition.
    pub delayed: u64,
    /// Delivery batches reordered.
    pub reordered: u64,
    /// Whole-state gossip merges.
    pub gossip_merges: u64,
}

/// A complete history, in memory.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Run parameters; `None` only for a history built by hand in tests.
    pub header: Option<Header>,
    /// Operations in completion order.
    pub ops: Vec<OpRecord>,
    /// Variable-size payloads: `[len, items...]` segments.
    pub arena: Vec<u64>,
    /// Read results, referenced by read records.
    pub reads: Vec<Value>,
    /// Final reads, one per replica and key.
    pub finals: Vec<FinalRead>,
    /// Idempotency probes.
    pub probes: Vec<Probe>,
    /// End of the final phase; `None` if the run never got there (killed).
    pub quiescence: Option<Quiescence>,
    /// Network counters, if the run finished.
    pub network: Option<NetworkStats>,
    /// Whether update clocks are kept in the arena (only the MV-register
    /// checker needs them; others use `clock_sum`).
    pub keep_clocks: bool,
}

/// Packs a dot into one word: 16 bits of replica, 48 of counter.
pub fn pack_dot(dot: Dot) -> Option<u64> {
    (dot.counter < (1 << 48)).then_some(((dot.replica as u64) << 48) | dot.counter)
}

/// Inverse of [`pack_dot`].
pub fn unpack_dot(word: u64) -> Dot {
    Dot::new((word >> 48) as ReplicaId, word & ((1 << 48) - 1))
}

impl OpRecord {
    /// True for an indeterminate op whose timestamp, dot, clock or observed
    /// dots are unknown: checkers must assume any of them.
    pub fn meta_unknown(&self) -> bool {
        self.outcome == Outcome::Info && self.aux == UNKNOWN_AUX
    }
}

impl History {
    /// An empty history that keeps update clocks when the workload needs them.
    pub fn new(header: Header) -> Self {
        let keep_clocks = needs_clocks(header.workload);
        History {
            header: Some(header),
            keep_clocks,
            ..History::default()
        }
    }

    /// The workload, if the header is present.
    pub fn workload(&self) -> Option<Workload> {
        self.header.as_ref().map(|h| h.workload)
    }

    /// Appends an operation with its variable-size data. Dots whose counter
    /// does not fit 48 bits are reported as an error message.
    pub fn push(
        &mut self,
        mut record: OpRecord,
        clock: Option<&[u64]>,
        observed: &[Dot],
        read: Option<Value>,
    ) -> Result<(), String> {
        record.payload = 0;
        if let Some(value) = read {
            self.reads.push(value);
            record.payload = self.reads.len() as u32;
        } else {
            let keep_clock = self.keep_clocks && clock.is_some();
            if keep_clock || !observed.is_empty() {
                record.payload = self.arena.len() as u32 + 1;
                let clock = if keep_clock {
                    clock.unwrap_or(&[])
                } else {
                    &[]
                };
                self.arena.push(clock.len() as u64);
                self.arena.extend_from_slice(clock);
                self.arena.push(observed.len() as u64);
                for dot in observed {
                    let packed = pack_dot(*dot)
                        .ok_or_else(|| format!("dot counter {} exceeds 2^48", dot.counter))?;
                    self.arena.push(packed);
                }
            }
        }
        self.ops.push(record);
        Ok(())
    }

    fn segments(&self, op: &OpRecord) -> Option<(&[u64], &[u64])> {
        if op.payload == 0 || op.f == Function::Read {
            return None;
        }
        let start = op.payload as usize - 1;
        let clock_len = *self.arena.get(start)? as usize;
        let clock = self.arena.get(start + 1..start + 1 + clock_len)?;
        let dots_at = start + 1 + clock_len;
        let dots_len = *self.arena.get(dots_at)? as usize;
        let dots = self.arena.get(dots_at + 1..dots_at + 1 + dots_len)?;
        Some((clock, dots))
    }

    /// The vector clock of an update, when clocks are kept.
    pub fn clock(&self, op: &OpRecord) -> Option<&[u64]> {
        self.segments(op).map(|(c, _)| c).filter(|c| !c.is_empty())
    }

    /// The dots an OR-Set remove observed.
    pub fn observed(&self, op: &OpRecord) -> impl Iterator<Item = Dot> + '_ {
        self.segments(op)
            .map(|(_, d)| d)
            .unwrap_or(&[])
            .iter()
            .map(|w| unpack_dot(*w))
    }

    /// The result of a read operation.
    pub fn read_value(&self, op: &OpRecord) -> Option<&Value> {
        if op.f != Function::Read || op.payload == 0 {
            return None;
        }
        self.reads.get(op.payload as usize - 1)
    }

    /// The part of the history about one key: its ops (with their payloads),
    /// final reads and probes, plus each kept op's index in `self.ops`.
    pub fn only_key(&self, key: u32) -> (History, Vec<usize>) {
        let mut sub = History {
            header: self.header.clone(),
            quiescence: self.quiescence,
            network: self.network,
            keep_clocks: self.keep_clocks,
            ..History::default()
        };
        let mut index = Vec::new();
        for (i, op) in self.ops.iter().enumerate().filter(|(_, op)| op.key == key) {
            let observed: Vec<Dot> = self.observed(op).collect();
            // Payloads were valid in `self`, so pushing them again cannot fail.
            let _ = sub.push(*op, self.clock(op), &observed, self.read_value(op).cloned());
            index.push(i);
        }
        sub.finals = self
            .finals
            .iter()
            .filter(|f| f.key == key)
            .cloned()
            .collect();
        sub.probes = self
            .probes
            .iter()
            .filter(|p| p.key == key)
            .cloned()
            .collect();
        (sub, index)
    }

    /// Approximate bytes held per operation (records + arena + reads).
    pub fn bytes_per_op(&self) -> f64 {
        if self.ops.is_empty() {
            return 0.0;
        }
        let reads: usize = self
            .reads
            .iter()
            .map(|v| match v {
                Value::Int(_) => 32,
                Value::Elems(e) => 32 + e.len() * 8,
                Value::Map(m) => 32 + m.len() * 16,
            })
            .sum();
        let bytes = self.ops.len() * std::mem::size_of::<OpRecord>() + self.arena.len() * 8 + reads;
        bytes as f64 / self.ops.len() as f64
    }
}

/// Whether a workload's checker needs full update clocks.
pub fn needs_clocks(workload: Workload) -> bool {
    matches!(workload, Workload::MvRegister)
}
