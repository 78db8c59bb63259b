//! Reference registers: [`LwwRegister`] and [`MvRegister`].

use crate::{Causality, Crdt, Intent, OpMeta, Rejected, ReplicaId, UpdateCtx, VClock, Value};
use std::cmp::Ordering;

/// A timestamped write: the order key is `(ts, replica)`; `value` only breaks
/// ties that a correct harness never produces, so that merge stays a join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamped {
    /// Lamport-style timestamp: one more than the highest the writer had seen.
    pub ts: u64,
    /// The writer's replica, breaking timestamp ties.
    pub replica: ReplicaId,
    /// The value written.
    pub value: u64,
}

/// Last-writer-wins register: the write with the greatest `(ts, replica)` wins.
///
/// A write is stamped one more than the highest timestamp the writer has
/// seen, so a later write at the same replica always wins locally.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LwwRegister {
    current: Option<Stamped>,
}

impl LwwRegister {
    /// The winning write so far.
    pub fn current(&self) -> Option<Stamped> {
        self.current
    }

    fn offer(&mut self, w: Stamped) {
        if self.current.is_none_or(|cur| w > cur) {
            self.current = Some(w);
        }
    }
}

impl Crdt for LwwRegister {
    type Op = Stamped;

    fn new(_replica: ReplicaId) -> Self {
        LwwRegister::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<Stamped, Rejected> {
        let Intent::Write(value) = *intent else {
            return Err(Rejected::Unsupported);
        };
        let ts = self.current.map_or(0, |c| c.ts).saturating_add(1);
        let w = Stamped {
            ts,
            replica: ctx.replica,
            value,
        };
        self.offer(w);
        Ok(w)
    }

    fn apply(&mut self, op: &Stamped) {
        self.offer(*op);
    }

    fn merge(&mut self, other: &Self) {
        if let Some(w) = other.current {
            self.offer(w);
        }
    }

    fn read(&self) -> Value {
        Value::Elems(self.current.map(|c| c.value).into_iter().collect())
    }

    fn meta(op: &Stamped) -> OpMeta {
        OpMeta::Timestamp(op.ts)
    }
}

/// An [`MvRegister`] write (and op): the writer's vector clock and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MvWrite {
    /// The write's causal context (the harness's `ctx.clock`).
    pub clock: VClock,
    /// The value written.
    pub value: u64,
}

/// Canonical order of entries: by clock vector, then value.
fn entry_order(a: &MvWrite, b: &MvWrite) -> Ordering {
    a.clock
        .0
        .cmp(&b.clock.0)
        .then_with(|| a.value.cmp(&b.value))
}

/// Multi-value register: keeps every write whose clock no other write's clock
/// dominates (the concurrent siblings).
///
/// `read` returns one value per sibling, sorted; two concurrent writes of the
/// same value are two siblings and so read as that value twice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MvRegister {
    /// The antichain of maximal writes, sorted by [`entry_order`].
    entries: Vec<MvWrite>,
}

impl MvRegister {
    /// The current siblings, in canonical order.
    pub fn entries(&self) -> &[MvWrite] {
        &self.entries
    }

    /// Joins one write into the antichain.
    fn offer(&mut self, w: &MvWrite) {
        for e in &self.entries {
            match e.clock.compare(&w.clock) {
                Causality::After => return,
                Causality::Equal if e.value == w.value => return,
                _ => {}
            }
        }
        self.entries
            .retain(|e| w.clock.compare(&e.clock) != Causality::After);
        let at = self
            .entries
            .partition_point(|e| entry_order(e, w) == Ordering::Less);
        self.entries.insert(at, w.clone());
    }
}

impl Crdt for MvRegister {
    type Op = MvWrite;

    fn new(_replica: ReplicaId) -> Self {
        MvRegister::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<MvWrite, Rejected> {
        let Intent::Write(value) = *intent else {
            return Err(Rejected::Unsupported);
        };
        let w = MvWrite {
            clock: ctx.clock.clone(),
            value,
        };
        self.offer(&w);
        Ok(w)
    }

    fn apply(&mut self, op: &MvWrite) {
        self.offer(op);
    }

    fn merge(&mut self, other: &Self) {
        if self.entries == other.entries {
            return;
        }
        for w in &other.entries {
            self.offer(w);
        }
    }

    fn read(&self) -> Value {
        let mut values: Vec<u64> = self.entries.iter().map(|e| e.value).collect();
        values.sort_unstable();
        Value::Elems(values)
    }

    fn meta(_op: &MvWrite) -> OpMeta {
        OpMeta::None
    }
}
