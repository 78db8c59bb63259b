//! Reference counters: [`GCounter`] and [`PnCounter`].
//!
//! Both keep one entry per replica in a dense `Vec` indexed by
//! [`ReplicaId`]. An entry missing at the end counts as zero, and equality
//! treats trailing zeros as absent, so two replicas that saw the same updates
//! compare equal whatever their vectors' lengths.

use crate::{Crdt, Intent, OpMeta, Rejected, ReplicaId, UpdateCtx, Value};

/// Equality of two dense per-replica vectors, where missing trailing entries
/// count as `T::default()`.
pub(crate) fn eq_padded<T: Default + PartialEq>(a: &[T], b: &[T]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let zero = T::default();
    short == &long[..short.len()] && long[short.len()..].iter().all(|x| *x == zero)
}

/// The entry for `replica`, growing `v` with zeros when it is too short.
pub(crate) fn slot<T: Default + Clone>(v: &mut Vec<T>, replica: ReplicaId) -> &mut T {
    let i = replica as usize;
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

/// Pointwise maximum of two dense vectors, in place.
pub(crate) fn max_into(mine: &mut Vec<u64>, theirs: &[u64]) {
    if mine.len() < theirs.len() {
        mine.resize(theirs.len(), 0);
    }
    for (m, t) in mine.iter_mut().zip(theirs) {
        if *t > *m {
            *m = *t;
        }
    }
}

/// Sum of unsigned counts as an `i64` (saturating: a counter value never wraps).
pub(crate) fn sum_i64(v: &[u64]) -> i64 {
    let total = v.iter().fold(0u64, |acc, x| acc.saturating_add(*x));
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// Grow-only counter: one count per replica, merged by pointwise max.
///
/// Only [`Intent::Increment`] with a non-negative delta is accepted. The op
/// ships the origin's new total rather than the delta, so redelivering it is
/// harmless.
#[derive(Clone, Debug, Default)]
pub struct GCounter {
    counts: Vec<u64>,
}

/// A [`GCounter`] op: replica `replica`'s count is now `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GCounterOp {
    /// The origin replica.
    pub replica: ReplicaId,
    /// Its count after the increment.
    pub count: u64,
}

impl GCounter {
    /// The per-replica counts (dense, indexed by replica; may be short).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
}

impl PartialEq for GCounter {
    fn eq(&self, other: &Self) -> bool {
        eq_padded(&self.counts, &other.counts)
    }
}

impl Eq for GCounter {}

impl Crdt for GCounter {
    type Op = GCounterOp;

    fn new(_replica: ReplicaId) -> Self {
        GCounter::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<GCounterOp, Rejected> {
        let Intent::Increment(delta) = *intent else {
            return Err(Rejected::Unsupported);
        };
        let delta = u64::try_from(delta).map_err(|_| Rejected::Unsupported)?;
        let count = slot(&mut self.counts, ctx.replica);
        *count = count.saturating_add(delta);
        Ok(GCounterOp {
            replica: ctx.replica,
            count: *count,
        })
    }

    fn apply(&mut self, op: &GCounterOp) {
        let count = slot(&mut self.counts, op.replica);
        if op.count > *count {
            *count = op.count;
        }
    }

    fn merge(&mut self, other: &Self) {
        max_into(&mut self.counts, &other.counts);
    }

    fn read(&self) -> Value {
        Value::Int(sum_i64(&self.counts))
    }

    fn meta(_op: &GCounterOp) -> OpMeta {
        OpMeta::None
    }
}

/// Increment/decrement counter: two grow-only counters `P` and `N`, value `P - N`.
///
/// A positive (or zero) delta goes to `P`, a negative one to `N`. The op
/// ships the origin's new `P` and `N` totals, applied by pointwise max.
#[derive(Clone, Debug, Default)]
pub struct PnCounter {
    p: Vec<u64>,
    n: Vec<u64>,
}

/// A [`PnCounter`] op: replica `replica`'s totals are now `p` and `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PnCounterOp {
    /// The origin replica.
    pub replica: ReplicaId,
    /// Its total of increments.
    pub p: u64,
    /// Its total of decrements (as a positive number).
    pub n: u64,
}

impl PartialEq for PnCounter {
    fn eq(&self, other: &Self) -> bool {
        eq_padded(&self.p, &other.p) && eq_padded(&self.n, &other.n)
    }
}

impl Eq for PnCounter {}

impl Crdt for PnCounter {
    type Op = PnCounterOp;

    fn new(_replica: ReplicaId) -> Self {
        PnCounter::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<PnCounterOp, Rejected> {
        let Intent::Increment(delta) = *intent else {
            return Err(Rejected::Unsupported);
        };
        let side = if delta >= 0 { &mut self.p } else { &mut self.n };
        let entry = slot(side, ctx.replica);
        *entry = entry.saturating_add(delta.unsigned_abs());
        let r = ctx.replica as usize;
        Ok(PnCounterOp {
            replica: ctx.replica,
            p: self.p.get(r).copied().unwrap_or(0),
            n: self.n.get(r).copied().unwrap_or(0),
        })
    }

    fn apply(&mut self, op: &PnCounterOp) {
        let p = slot(&mut self.p, op.replica);
        if op.p > *p {
            *p = op.p;
        }
        let n = slot(&mut self.n, op.replica);
        if op.n > *n {
            *n = op.n;
        }
    }

    fn merge(&mut self, other: &Self) {
        max_into(&mut self.p, &other.p);
        max_into(&mut self.n, &other.n);
    }

    fn read(&self) -> Value {
        Value::Int(sum_i64(&self.p).saturating_sub(sum_i64(&self.n)))
    }

    fn meta(_op: &PnCounterOp) -> OpMeta {
        OpMeta::None
    }
}
