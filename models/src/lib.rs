//! In-process CRDT models for converge.
//!
//! Every model implements [`Crdt`]: an op-based path (`update` at the origin,
//! `apply` downstream) and a state-based path (`merge`). Reference models are
//! correct; the variants in [`faulty`] each imitate a bug seen in real systems
//! and must be caught by converge's checkers.
//!
//! Models are single objects. The harness keeps one instance per key and per
//! replica, and owns the per-key causal context ([`UpdateCtx`]) so that the
//! history can record a vector clock for every update.

#![warn(missing_docs)]

pub mod clock;
pub mod counter;
pub mod dot_context;
pub mod dot_set;
pub mod faulty;
pub mod laws;
pub mod map;
pub mod register;
pub mod set;

pub use clock::{Causality, Dot, ReplicaId, VClock};

use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// The datatype a model implements; it decides which checker defines "no data loss".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Grow-only counter.
    GCounter,
    /// Increment/decrement counter.
    PnCounter,
    /// Grow-only set.
    GSet,
    /// Two-phase set: an element once removed can never return.
    TwoPSet,
    /// Observed-remove, add-wins set.
    OrSet,
    /// Last-writer-wins register.
    LwwRegister,
    /// Multi-value register keeping concurrent siblings.
    MvRegister,
    /// Map of last-writer-wins registers.
    LwwMap,
}

impl Workload {
    /// Every workload, in listing order.
    pub const ALL: [Workload; 8] = [
        Workload::GCounter,
        Workload::PnCounter,
        Workload::GSet,
        Workload::TwoPSet,
        Workload::OrSet,
        Workload::LwwRegister,
        Workload::MvRegister,
        Workload::LwwMap,
    ];

    /// The CLI name, e.g. `or-set`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::GCounter => "g-counter",
            Workload::PnCounter => "pn-counter",
            Workload::GSet => "g-set",
            Workload::TwoPSet => "2p-set",
            Workload::OrSet => "or-set",
            Workload::LwwRegister => "lww-register",
            Workload::MvRegister => "mv-register",
            Workload::LwwMap => "lww-map",
        }
    }

    /// Parses a CLI name.
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// One-line description for `converge list workloads`.
    pub fn description(self) -> &'static str {
        match self {
            Workload::GCounter => "grow-only counter; increments by positive deltas",
            Workload::PnCounter => "counter with increments and decrements",
            Workload::GSet => "grow-only set of unique elements",
            Workload::TwoPSet => "two-phase set; removed elements never return",
            Workload::OrSet => "observed-remove set, add wins over concurrent remove",
            Workload::LwwRegister => "last-writer-wins register, (timestamp, replica) order",
            Workload::MvRegister => "multi-value register; keeps concurrent writes as siblings",
            Workload::LwwMap => "map of last-writer-wins registers with deletes",
        }
    }
}

/// What a writer asks a replica to do. Which intents a model accepts depends
/// on its workload; others are rejected with [`Rejected::Unsupported`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intent {
    /// Add `delta` to a counter (negative only for PN-counters).
    Increment(i64),
    /// Add an element to a set.
    Add(u64),
    /// Remove an element from a set.
    Remove(u64),
    /// Write a value to a register.
    Write(u64),
    /// Write `value` under `field` of a map.
    Put {
        /// Map field.
        field: u32,
        /// Value written.
        value: u64,
    },
    /// Delete `field` from a map.
    Delete {
        /// Map field.
        field: u32,
    },
}

/// Why an update was refused at its origin. The harness records it as a
/// definite failure (`fail`): the update did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// A precondition failed (for example 2P-Set remove of an absent element).
    Precondition,
    /// The model does not implement this intent.
    Unsupported,
}

/// The causal context of an update at its origin replica, owned by the harness.
#[derive(Clone, Copy, Debug)]
pub struct UpdateCtx<'a> {
    /// The origin replica.
    pub replica: ReplicaId,
    /// The dot of this update: `clock[replica]` after the increment.
    pub dot: Dot,
    /// The per-key vector clock of this update (already includes `dot`).
    pub clock: &'a VClock,
}

/// What the history records about an update besides its intent and clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpMeta {
    /// Nothing beyond the intent.
    None,
    /// The dot that tags an OR-Set add.
    Dot(Dot),
    /// The dots an OR-Set remove observed (and so removes).
    Observed(Vec<Dot>),
    /// The timestamp an LWW write was stamped with (ties broken by replica id).
    Timestamp(u64),
}

/// A read result, in a form every checker understands.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// Counter value.
    Int(i64),
    /// Set members or register siblings, sorted. A faulty model may repeat
    /// an element, so this is a multiset.
    Elems(Vec<u64>),
    /// Map contents, sorted by field. A deleted field is absent.
    Map(Vec<(u32, u64)>),
}

/// A CRDT with an op-based path and a state-based path.
///
/// Laws a correct model obeys (tested in `tests/laws.rs`):
/// - `merge` is commutative, associative and idempotent (up to `==`);
/// - applying the same ops in any order, with duplicates, gives the same state.
pub trait Crdt: Clone + PartialEq + Debug + Send + Sync + 'static {
    /// The replicated operation, shipped to other replicas by the network.
    type Op: Clone + Debug + Send + Sync + 'static;

    /// A fresh, empty replica.
    fn new(replica: ReplicaId) -> Self;

    /// Performs `intent` at its origin: applies it locally and returns the
    /// op to ship downstream.
    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<Self::Op, Rejected>;

    /// Applies an op that originated elsewhere (it may arrive late, twice, or
    /// out of order).
    fn apply(&mut self, op: &Self::Op);

    /// State-based merge: join `other` into `self`.
    fn merge(&mut self, other: &Self);

    /// The current value.
    fn read(&self) -> Value;

    /// What the history must record about `op` for the checkers.
    fn meta(op: &Self::Op) -> OpMeta;
}

/// Receives a concrete model type chosen by name at run time.
pub trait ModelVisitor {
    /// What the visit produces.
    type Output;
    /// Called with the model type.
    fn visit<M: Crdt>(self) -> Self::Output;
}

/// Catalog entry for one model.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ModelInfo {
    /// Name used on the command line (`--fault NAME`, or the workload name for references).
    pub name: &'static str,
    /// The workload it implements.
    pub workload: Workload,
    /// `true` for a deliberately broken variant.
    pub faulty: bool,
    /// One-line description; for faults, the real-world bug it imitates.
    pub description: &'static str,
}

macro_rules! catalog {
    ($( $ty:ty => $name:literal, $workload:ident, $faulty:literal, $desc:literal; )*) => {
        /// Every model, references first.
        pub const CATALOG: &[ModelInfo] = &[
            $( ModelInfo { name: $name, workload: Workload::$workload, faulty: $faulty, description: $desc }, )*
        ];

        /// Calls `visitor` with the model named `name`, or returns `None`.
        pub fn visit_model<V: ModelVisitor>(name: &str, visitor: V) -> Option<V::Output> {
            match name {
                $( $name => Some(visitor.visit::<$ty>()), )*
                _ => None,
            }
        }
    };
}

catalog! {
    counter::GCounter => "g-counter", GCounter, false, "G-Counter: per-replica counts, merge by pointwise max";
    counter::PnCounter => "pn-counter", PnCounter, false, "PN-Counter: two G-Counters, value P - N";
    set::GSet => "g-set", GSet, false, "G-Set: union";
    set::TwoPSet => "2p-set", TwoPSet, false, "2P-Set: added set and tombstone set";
    set::OrSet => "or-set", OrSet, false, "OR-Set: add-wins, dot-tagged adds, removes carry observed dots";
    register::LwwRegister => "lww-register", LwwRegister, false, "LWW-Register: highest (timestamp, replica) wins";
    register::MvRegister => "mv-register", MvRegister, false, "MV-Register: keeps every write not dominated by vector clock";
    map::LwwMap => "lww-map", LwwMap, false, "LWW-Map: per-field LWW registers, deletes are timestamped tombstones";
    faulty::SumMergeCounter => "sum-merge-counter", GCounter, true, "G-Counter whose merge sums entries instead of taking the max (not idempotent)";
    faulty::ReplaceOnGossipSet => "replace-on-gossip-set", GSet, true, "G-Set whose gossip replaces local state instead of merging it (lost updates)";
    faulty::RemoveWinsOrSet => "remove-wins-or-set", OrSet, true, "OR-Set where a remove also kills concurrent adds it never observed";
    faulty::SiblingDropMvRegister => "sibling-drop-mv-register", MvRegister, true, "MV-Register that keeps one of two concurrent siblings";
    faulty::ArrivalOrderLww => "arrival-order-lww", LwwRegister, true, "LWW-Register breaking timestamp ties by arrival order, not replica id (replicas diverge)";
    faulty::TotalOrderClockMvRegister => "total-order-clock-mv-register", MvRegister, true, "MV-Register whose vector-clock comparison orders concurrent clocks by their sums";
    faulty::DuplicatingSet => "duplicating-set", GSet, true, "G-Set stored as a list that appends again on redelivery (duplicates)";
    faulty::SignedMaxPnCounter => "signed-max-pn-counter", PnCounter, true, "PN-Counter kept as one signed count per replica merged by max (decrements lost)";
    faulty::NoTombstoneOrSet => "no-tombstone-or-set", OrSet, true, "OR-Set that forgets removed dots, so a stale replica's gossip resurrects them";
    faulty::NoTombstoneLwwMap => "no-tombstone-lww-map", LwwMap, true, "LWW-Map that deletes a field without a tombstone, so older puts resurrect it";
}

/// Looks up a catalog entry by name.
pub fn model_info(name: &str) -> Option<&'static ModelInfo> {
    CATALOG.iter().find(|m| m.name == name)
}

/// The reference model of a workload (its name equals the workload's name).
pub fn reference_for(workload: Workload) -> &'static ModelInfo {
    CATALOG
        .iter()
        .find(|m| !m.faulty && m.workload == workload)
        .expect("every workload has a reference model in CATALOG")
}
