//! Reference map: [`LwwMap`].

use crate::{Crdt, Intent, OpMeta, Rejected, ReplicaId, UpdateCtx, Value};
use std::collections::BTreeMap;

/// One field's winning write: `value` is `None` for a delete (a tombstone).
///
/// Ordered by `(ts, replica)`, then `value` only to keep merge a join should
/// a harness ever reuse a stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldWrite {
    /// Lamport-style timestamp.
    pub ts: u64,
    /// The writer's replica, breaking timestamp ties.
    pub replica: ReplicaId,
    /// The value put, or `None` for a delete.
    pub value: Option<u64>,
}

/// A [`LwwMap`] op: `write` to `field`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LwwMapOp {
    /// The field written.
    pub field: u32,
    /// The stamped put or delete.
    pub write: FieldWrite,
}

/// Map of last-writer-wins registers with timestamped delete tombstones.
///
/// A put or delete is stamped one more than the highest timestamp the
/// replica has seen on any field, so a later write at the same replica always
/// wins locally; per field the greatest `(ts, replica)` wins everywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LwwMap {
    fields: BTreeMap<u32, FieldWrite>,
    /// Highest timestamp in `fields` (a function of `fields`, cached).
    max_ts: u64,
}

impl LwwMap {
    /// The winning write of each field, tombstones included.
    pub fn fields(&self) -> &BTreeMap<u32, FieldWrite> {
        &self.fields
    }

    fn offer(&mut self, field: u32, w: FieldWrite) {
        let slot = self.fields.entry(field).or_insert(w);
        if w > *slot {
            *slot = w;
        }
        if w.ts > self.max_ts {
            self.max_ts = w.ts;
        }
    }
}

impl Crdt for LwwMap {
    type Op = LwwMapOp;

    fn new(_replica: ReplicaId) -> Self {
        LwwMap::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<LwwMapOp, Rejected> {
        let (field, value) = match *intent {
            Intent::Put { field, value } => (field, Some(value)),
            Intent::Delete { field } => (field, None),
            _ => return Err(Rejected::Unsupported),
        };
        let write = FieldWrite {
            ts: self.max_ts.saturating_add(1),
            replica: ctx.replica,
            value,
        };
        self.offer(field, write);
        Ok(LwwMapOp { field, write })
    }

    fn apply(&mut self, op: &LwwMapOp) {
        self.offer(op.field, op.write);
    }

    fn merge(&mut self, other: &Self) {
        for (field, w) in &other.fields {
            self.offer(*field, *w);
        }
    }

    fn read(&self) -> Value {
        Value::Map(
            self.fields
                .iter()
                .filter_map(|(f, w)| w.value.map(|v| (*f, v)))
                .collect(),
        )
    }

    fn meta(op: &LwwMapOp) -> OpMeta {
        OpMeta::Timestamp(op.write.ts)
    }
}
