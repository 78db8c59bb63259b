//! The history: an append-only log of every operation, plus the final phase
//! (final reads, idempotency probes, quiescence) so that every checker is a
//! pure function of it.
//!
//! In memory an operation is one fixed-size [`OpRecord`] of 56 bytes (invoke
//! and completion merged); variable-size data (vector clocks of MV-register
//! writes, dots observed by OR-Set removes) lives in a shared byte arena as
//! LEB128 varints, read results in a [`ReadStore`] (set reads as diffs
//! against the previous read of their replica and key, read back through a
//! [`ReadCursor`]), and final reads in [`Finals`], each distinct value once
//! per key. On disk it is JSON lines
//! ([`jsonl`]). Writers hand ops to the history writer in [`OpBatch`]es, which
//! keep every clock so that `history.jsonl` has them all.

pub mod detect;
pub mod edn;
pub mod finals;
pub mod jepsen;
pub mod jsonl;
pub mod lin;
pub mod lock;
pub mod reads;

pub use finals::{DecodedFinals, FinalView, Finals, FinalsIter};
pub use reads::{ReadCursor, ReadStore, SetDiff};

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

/// One operation, invoke and completion merged. 56 bytes: the issue's
/// budget is 64 bytes per op in memory, variable-size data included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// Invocation time, ns since the run started.
    pub invoke_ns: u64,
    /// Delta, element or value written (see [`Function`]).
    pub value: i64,
    /// LWW timestamp of a write, or the counter of an OR-Set add's dot;
    /// [`UNKNOWN_AUX`] when an indeterminate op never reported it.
    pub aux: u64,
    /// Completion minus invocation time. 64 bits: an op slower than
    /// 4.29 s (a stalled target, a timeout) must keep its true latency, both
    /// for the percentiles and for the real-time order the checkers read.
    pub latency_ns: u64,
    /// Logical writer (client) that issued it.
    pub process: u32,
    /// Key (object) it touched.
    pub key: u32,
    /// Sum of the update's per-key vector clock: how many updates of this key
    /// are in its causal past, itself included. Zero for reads and failures.
    pub clock_sum: u32,
    /// The map field of a put or delete (read it with [`OpRecord::field`]).
    /// For every other op [`History::push`] sets it to 1 + the op's read
    /// number in [`History::reads`] (reads) or the offset of its
    /// variable-size data in [`History::arena`] (updates), 0 when there is
    /// none. One slot serves
    /// both because puts and deletes never carry a clock or observed dots in
    /// memory (only the MV-register checker needs clocks).
    pub slot: u32,
    /// Replica it ran on.
    pub replica: ReplicaId,
    /// What it did.
    pub f: Function,
    /// How it ended.
    pub outcome: Outcome,
}

const _: () = assert!(std::mem::size_of::<OpRecord>() == 56);

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
    /// Variable-size payloads, LEB128 varints: `[clock_len, first entry,
    /// zigzag deltas between consecutive entries...]`, then for removes
    /// `[dots_len, (replica, counter)...]`. Consecutive entries of one clock
    /// are close (replicas see each other's updates of a key), so deltas take
    /// a byte or two where whole entries of a hot key take three.
    pub arena: Vec<u8>,
    /// Read results, referenced by read records; decode them with
    /// [`History::read_cursor`].
    pub reads: ReadStore,
    /// Final reads, one per replica and key.
    pub finals: Finals,
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
    /// What is known of an op before it is sent: its invocation, recorded
    /// with [`jsonl::record_invoke`]. Until it completes it is `info`.
    pub fn invocation(
        f: Function,
        process: u32,
        replica: ReplicaId,
        key: u32,
        value: i64,
        invoke_ns: u64,
    ) -> OpRecord {
        OpRecord {
            invoke_ns,
            value,
            aux: UNKNOWN_AUX,
            latency_ns: 0,
            process,
            key,
            clock_sum: 0,
            slot: 0,
            replica,
            f,
            outcome: Outcome::Info,
        }
    }

    /// True for an indeterminate op whose timestamp, dot, clock or observed
    /// dots are unknown: checkers must assume any of them.
    pub fn meta_unknown(&self) -> bool {
        self.outcome == Outcome::Info && self.aux == UNKNOWN_AUX
    }

    /// The map field of a put or delete; 0 for every other op.
    pub fn field(&self) -> u32 {
        if self.has_field() {
            self.slot
        } else {
            0
        }
    }

    fn has_field(&self) -> bool {
        matches!(self.f, Function::Put | Function::Delete)
    }
}

/// Heap bytes behind a value, capacity included.
fn value_heap(v: &Value) -> usize {
    match v {
        Value::Int(_) => 0,
        Value::Elems(e) => e.capacity() * std::mem::size_of::<u64>(),
        Value::Map(m) => m.capacity() * std::mem::size_of::<(u32, u64)>(),
    }
}

/// Heap bytes of a hash map's table (not of what its entries own): std's
/// `HashMap` is hashbrown, one entry plus one control byte per bucket, with
/// buckets a power of two kept at most 7/8 full.
fn map_heap<K, V, S>(map: &std::collections::HashMap<K, V, S>) -> usize {
    let capacity = map.capacity();
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (std::mem::size_of::<(K, V)>() + 1)
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Reads LEB128 varints from an arena segment; a truncated or overlong
/// varint (impossible for an arena [`History::push`] wrote) reads as 0.
#[derive(Clone)]
struct Varints<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Varints<'_> {
    #[inline(always)]
    fn next_u64(&mut self) -> u64 {
        let rest = self.bytes.get(self.at..).unwrap_or(&[]);
        // Most entries are one byte: take the short path first.
        match rest.first() {
            Some(&b) if b < 0x80 => {
                self.at += 1;
                return u64::from(b);
            }
            None => return 0,
            _ => {}
        }
        self.next_long(rest)
    }

    #[inline]
    fn next_long(&mut self, rest: &[u8]) -> u64 {
        let mut v = 0u64;
        for (n, &b) in rest.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * n);
            if b & 0x80 == 0 {
                self.at += n + 1;
                return v;
            }
        }
        self.at = self.bytes.len();
        0
    }

    /// Skips a clock, leaving the cursor on what follows it.
    fn skip_clock(&mut self) {
        for _ in 0..self.next_u64() {
            self.next_u64();
        }
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
    /// does not fit 48 bits are reported as an error message (the on-disk
    /// format promises 48 bits), as is an arena past 4 GiB.
    pub fn push(
        &mut self,
        mut record: OpRecord,
        clock: Option<&[u64]>,
        observed: &[Dot],
        read: Option<Value>,
    ) -> Result<(), String> {
        if let Some(dot) = observed.iter().find(|d| pack_dot(**d).is_none()) {
            return Err(format!("dot counter {} exceeds 2^48", dot.counter));
        }
        if !record.has_field() {
            record.slot = 0;
            if record.f == Function::Read {
                // Only reads keep a read value: the slot of an update points
                // into the arena.
                if let Some(value) = read {
                    let index = self.reads.push(record.replica, record.key, value)?;
                    record.slot = slot_of(index as usize)?;
                }
            } else {
                let clock = clock.filter(|_| self.keep_clocks).unwrap_or(&[]);
                if !clock.is_empty() || !observed.is_empty() {
                    record.slot = slot_of(self.arena.len())?;
                    push_varint(&mut self.arena, clock.len() as u64);
                    let mut previous = 0u64;
                    for &entry in clock {
                        push_varint(&mut self.arena, zigzag(entry.wrapping_sub(previous) as i64));
                        previous = entry;
                    }
                    if carries_observed(record.f) {
                        push_varint(&mut self.arena, observed.len() as u64);
                        for dot in observed {
                            push_varint(&mut self.arena, u64::from(dot.replica));
                            push_varint(&mut self.arena, dot.counter);
                        }
                    }
                }
            }
        }
        self.ops.push(record);
        Ok(())
    }

    fn segment(&self, op: &OpRecord) -> Option<Varints<'_>> {
        if op.slot == 0 || op.f == Function::Read || op.has_field() {
            return None;
        }
        Some(Varints {
            bytes: &self.arena,
            at: op.slot as usize - 1,
        })
    }

    /// Appends the vector clock of an update to `out`, when clocks are kept;
    /// false when there is none. Decoding into a reused buffer keeps the
    /// checkers free of a per-op allocation.
    #[inline]
    pub fn clock_into(&self, op: &OpRecord, out: &mut Vec<u64>) -> bool {
        let Some(mut seg) = self.segment(op) else {
            return false;
        };
        let len = seg.next_u64();
        out.reserve((len as usize).min(self.arena.len()));
        let mut entry = 0u64;
        for _ in 0..len {
            entry = entry.wrapping_add(unzigzag(seg.next_u64()) as u64);
            out.push(entry);
        }
        len > 0
    }

    /// The vector clock of an update, when clocks are kept.
    pub fn clock(&self, op: &OpRecord) -> Option<Vec<u64>> {
        let mut clock = Vec::new();
        self.clock_into(op, &mut clock).then_some(clock)
    }

    /// The dots an OR-Set remove observed.
    pub fn observed(&self, op: &OpRecord) -> impl Iterator<Item = Dot> + '_ {
        let mut seg = self.segment(op).filter(|_| carries_observed(op.f));
        let len = seg.as_mut().map_or(0, |s| {
            s.skip_clock();
            s.next_u64()
        });
        (0..len).filter_map(move |_| {
            let seg = seg.as_mut()?;
            let replica = seg.next_u64() as ReplicaId;
            Some(Dot::new(replica, seg.next_u64()))
        })
    }

    /// A decoder for the results of read operations
    /// ([`ReadCursor::value`]); fastest when ops are visited in history order.
    pub fn read_cursor(&self) -> ReadCursor<'_> {
        self.reads.cursor()
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
        let mut reads = self.read_cursor();
        for (i, op) in self.ops.iter().enumerate().filter(|(_, op)| op.key == key) {
            let observed: Vec<Dot> = self.observed(op).collect();
            // Payloads were valid in `self`, so pushing them again cannot fail.
            let clock = self.clock(op);
            let _ = sub.push(*op, clock.as_deref(), &observed, reads.value(op).cloned());
            index.push(i);
        }
        sub.finals = self
            .finals
            .decode()
            .iter()
            .filter(|f| f.key == key)
            .map(FinalRead::from)
            .collect();
        sub.probes = self
            .probes
            .iter()
            .filter(|p| p.key == key)
            .cloned()
            .collect();
        (sub, index)
    }

    /// Releases the slack growth left in the history's vectors and the
    /// caches only recording needs; call once the history is complete.
    pub fn shrink_to_fit(&mut self) {
        self.ops.shrink_to_fit();
        self.arena.shrink_to_fit();
        self.reads.shrink_to_fit();
        self.finals.shrink_to_fit();
        self.probes.shrink_to_fit();
    }

    /// Bytes the history holds per operation: every allocation it owns,
    /// capacity included (records, arena, the read store with its recording
    /// cache while it lives, final reads with each shared value once, and
    /// probes).
    pub fn bytes_per_op(&self) -> f64 {
        if self.ops.is_empty() {
            return 0.0;
        }
        let option_heap = |v: &Option<Value>| v.as_ref().map_or(0, value_heap);
        let bytes = self.ops.capacity() * std::mem::size_of::<OpRecord>()
            + self.arena.capacity()
            + self.reads.heap_bytes()
            + self.finals.heap_bytes()
            + self.probes.capacity() * std::mem::size_of::<Probe>()
            + self
                .probes
                .iter()
                .map(|p| option_heap(&p.before) + option_heap(&p.after))
                .sum::<usize>();
        bytes as f64 / self.ops.len() as f64
    }
}

/// 1 + an offset, as [`OpRecord::slot`] stores it.
fn slot_of(offset: usize) -> Result<u32, String> {
    u32::try_from(offset + 1).map_err(|_| "history arena exceeds 4 GiB".to_string())
}

/// Completed operations on their way to the history writer, with every
/// clock kept (the JSONL file has them all, whatever the workload) and
/// read back in order.
#[derive(Clone, Debug, Default)]
pub struct OpBatch {
    /// The operations, [`OpRecord::slot`] holding only a put's or delete's field.
    pub ops: Vec<OpRecord>,
    /// Logical time of every op of the batch: the simulation tick that
    /// invoked and completed them (deterministic targets only; written
    /// beside the wall-clock `time_ns`).
    pub tick: Option<u64>,
    /// Per op: clock length (`u32::MAX` when none), observed dots, has a read.
    shapes: Vec<(u32, u32, bool)>,
    clocks: Vec<u64>,
    dots: Vec<Dot>,
    reads: Vec<Value>,
}

/// One operation of an [`OpBatch`] with its variable-size data.
pub struct BatchOp<'a> {
    /// The record.
    pub record: &'a OpRecord,
    /// Its vector clock, if it reported one.
    pub clock: Option<&'a [u64]>,
    /// Dots an OR-Set remove observed.
    pub observed: &'a [Dot],
    /// What a read returned.
    pub read: Option<&'a Value>,
}

impl OpBatch {
    /// An empty batch with room for `ops` updates of `clock_len`-entry
    /// clocks, so a writer filling it does not reallocate as it goes.
    pub fn with_capacity(ops: usize, clock_len: usize) -> Self {
        OpBatch {
            ops: Vec::with_capacity(ops),
            tick: None,
            shapes: Vec::with_capacity(ops),
            clocks: Vec::with_capacity(ops * clock_len),
            dots: Vec::new(),
            reads: Vec::new(),
        }
    }

    /// Appends an operation with its variable-size data.
    pub fn push(
        &mut self,
        record: OpRecord,
        clock: Option<&[u64]>,
        observed: &[Dot],
        read: Option<Value>,
    ) {
        let clock_len = clock.map_or(u32::MAX, |c| c.len() as u32);
        self.clocks.extend_from_slice(clock.unwrap_or(&[]));
        self.dots.extend_from_slice(observed);
        self.shapes
            .push((clock_len, observed.len() as u32, read.is_some()));
        self.reads.extend(read);
        self.ops.push(record);
    }

    /// The operations in order, with their data.
    pub fn iter(&self) -> impl Iterator<Item = BatchOp<'_>> + '_ {
        let (mut clock_at, mut dot_at, mut read_at) = (0, 0, 0);
        self.ops
            .iter()
            .zip(&self.shapes)
            .map(move |(record, &(clock_len, dots_len, has_read))| {
                let clock = (clock_len != u32::MAX).then(|| {
                    let clock = &self.clocks[clock_at..clock_at + clock_len as usize];
                    clock_at += clock_len as usize;
                    clock
                });
                let observed = &self.dots[dot_at..dot_at + dots_len as usize];
                dot_at += dots_len as usize;
                let read = has_read.then(|| {
                    read_at += 1;
                    &self.reads[read_at - 1]
                });
                BatchOp {
                    record,
                    clock,
                    observed,
                    read,
                }
            })
    }
}

/// Ops whose arena segment lists observed dots: OR-Set removes, and writes
/// that overwrote what they saw (automerge puts).
fn carries_observed(f: Function) -> bool {
    matches!(f, Function::Remove | Function::Write)
}

/// Whether a workload's checker needs full update clocks.
pub fn needs_clocks(workload: Workload) -> bool {
    matches!(workload, Workload::MvRegister)
}
