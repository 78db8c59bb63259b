//! Deliberately broken models. Each imitates a bug seen in real replicated
//! systems and must be caught by converge's checkers: by a convergence
//! failure, lost or resurrected data, duplicates, or a failed idempotency
//! probe.
//!
//! Except for [`SumMergeCounter`] (whose merge keeps growing, which the
//! self-merge probe catches), every merge here is deterministic and reaches a
//! fixed point under repeated all-pairs merging, so the run ends with a
//! definite verdict.

use crate::counter::{eq_padded, slot, sum_i64};
use crate::map::{FieldWrite, LwwMapOp};
use crate::register::{MvWrite, Stamped};
use crate::set::{GSet, GSetOp, OrSetOp};
use crate::{Causality, Crdt, Dot, Intent, OpMeta, Rejected, ReplicaId, UpdateCtx, VClock, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------

/// G-Counter whose merge adds the other replica's counts instead of taking
/// the maximum, and whose ops carry deltas applied by addition.
///
/// Imitates a non-idempotent merge (state "merge" implemented as a sum, as in
/// naive delta-accumulating counters): gossiping the same state twice, or
/// redelivering an op, counts the increments again.
#[derive(Clone, Debug, Default)]
pub struct SumMergeCounter {
    counts: Vec<u64>,
}

/// A [`SumMergeCounter`] op: `replica` incremented by `delta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaOp {
    /// The origin replica.
    pub replica: ReplicaId,
    /// The increment.
    pub delta: u64,
}

impl PartialEq for SumMergeCounter {
    fn eq(&self, other: &Self) -> bool {
        eq_padded(&self.counts, &other.counts)
    }
}

impl Crdt for SumMergeCounter {
    type Op = DeltaOp;

    fn new(_replica: ReplicaId) -> Self {
        SumMergeCounter::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<DeltaOp, Rejected> {
        let Intent::Increment(delta) = *intent else {
            return Err(Rejected::Unsupported);
        };
        let delta = u64::try_from(delta).map_err(|_| Rejected::Unsupported)?;
        let op = DeltaOp {
            replica: ctx.replica,
            delta,
        };
        self.apply(&op);
        Ok(op)
    }

    fn apply(&mut self, op: &DeltaOp) {
        let c = slot(&mut self.counts, op.replica);
        *c = c.saturating_add(op.delta);
    }

    fn merge(&mut self, other: &Self) {
        // BUG: a sum is not idempotent; the join is the pointwise max.
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    fn read(&self) -> Value {
        Value::Int(sum_i64(&self.counts))
    }

    fn meta(_op: &DeltaOp) -> OpMeta {
        OpMeta::None
    }
}

// ---------------------------------------------------------------------------

/// G-Set whose state-based gossip replaces the local state with the sender's
/// instead of taking the union. Ops are applied correctly.
///
/// Imitates "last state received wins" anti-entropy (a full-state overwrite,
/// like a naive snapshot sync): adds this replica had and the sender had not
/// yet seen are lost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplaceOnGossipSet(GSet);

/// Everything but `merge` is the reference G-Set's.
impl Crdt for ReplaceOnGossipSet {
    type Op = GSetOp;

    fn new(replica: ReplicaId) -> Self {
        ReplaceOnGossipSet(GSet::new(replica))
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<GSetOp, Rejected> {
        self.0.update(intent, ctx)
    }

    fn apply(&mut self, op: &GSetOp) {
        self.0.apply(op);
    }

    fn merge(&mut self, other: &Self) {
        // BUG: overwrite instead of union.
        self.0.clone_from(&other.0);
    }

    fn read(&self) -> Value {
        self.0.read()
    }

    fn meta(op: &GSetOp) -> OpMeta {
        GSet::meta(op)
    }
}

// ---------------------------------------------------------------------------

/// OR-Set where a remove kills every add of the element that is not strictly
/// causally after it, including concurrent adds the remove never observed.
///
/// Imitates a remove-wins set shipped where add-wins semantics were promised
/// (an element-level tombstone stamped with the remover's clock): a
/// concurrent add that no remove observed is silently lost. The history
/// still records the remove as observing only the dots it actually saw
/// ([`OpMeta::Observed`]), so the add-wins checker sees the loss.
///
/// The kill rule is monotone (remove clocks only grow), so merge is a
/// deterministic join and replicas do converge, on the wrong value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveWinsOrSet {
    /// Live adds per element: dot and the add's clock.
    entries: BTreeMap<u64, BTreeMap<Dot, VClock>>,
    /// Dots removes observed.
    tombstones: BTreeSet<Dot>,
    /// Per element, the join of the clocks of every remove of it seen.
    removes: BTreeMap<u64, VClock>,
}

/// A [`RemoveWinsOrSet`] op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveWinsOp {
    /// `elem` was added, tagged `dot`, at causal context `clock`.
    Add {
        /// The element.
        elem: u64,
        /// The add's dot.
        dot: Dot,
        /// The add's clock.
        clock: VClock,
    },
    /// `elem` was removed at causal context `clock`, observing `observed`.
    Remove {
        /// The element.
        elem: u64,
        /// Dots the remove actually observed, sorted.
        observed: Vec<Dot>,
        /// The remover's clock.
        clock: VClock,
    },
}

impl RemoveWinsOrSet {
    /// BUG: survives only if strictly after every remove of the element;
    /// add-wins would keep any add whose dot the removes did not observe.
    fn survives(remove: Option<&VClock>, add_clock: &VClock) -> bool {
        remove.is_none_or(|r| add_clock.compare(r) == Causality::After)
    }

    fn add(&mut self, elem: u64, dot: Dot, clock: &VClock) {
        if self.tombstones.contains(&dot) || !Self::survives(self.removes.get(&elem), clock) {
            return;
        }
        self.entries
            .entry(elem)
            .or_default()
            .entry(dot)
            .or_insert_with(|| clock.clone());
    }

    fn remove(&mut self, elem: u64, observed: &[Dot], clock: &VClock) {
        self.tombstones.extend(observed.iter().copied());
        let joined = self.removes.entry(elem).or_default();
        joined.merge(clock);
        let joined = &*joined;
        if let Some(adds) = self.entries.get_mut(&elem) {
            adds.retain(|d, c| !observed.contains(d) && Self::survives(Some(joined), c));
            if adds.is_empty() {
                self.entries.remove(&elem);
            }
        }
    }
}

impl Crdt for RemoveWinsOrSet {
    type Op = RemoveWinsOp;

    fn new(_replica: ReplicaId) -> Self {
        RemoveWinsOrSet::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<RemoveWinsOp, Rejected> {
        match *intent {
            Intent::Add(elem) => {
                let op = RemoveWinsOp::Add {
                    elem,
                    dot: ctx.dot,
                    clock: ctx.clock.clone(),
                };
                self.add(elem, ctx.dot, ctx.clock);
                Ok(op)
            }
            Intent::Remove(elem) => {
                let observed: Vec<Dot> = self
                    .entries
                    .get(&elem)
                    .map(|adds| adds.keys().copied().collect())
                    .unwrap_or_default();
                self.remove(elem, &observed, ctx.clock);
                Ok(RemoveWinsOp::Remove {
                    elem,
                    observed,
                    clock: ctx.clock.clone(),
                })
            }
            _ => Err(Rejected::Unsupported),
        }
    }

    fn apply(&mut self, op: &RemoveWinsOp) {
        match op {
            RemoveWinsOp::Add { elem, dot, clock } => self.add(*elem, *dot, clock),
            RemoveWinsOp::Remove {
                elem,
                observed,
                clock,
            } => self.remove(*elem, observed, clock),
        }
    }

    fn merge(&mut self, other: &Self) {
        self.tombstones.extend(other.tombstones.iter().copied());
        for (elem, clock) in &other.removes {
            self.removes.entry(*elem).or_default().merge(clock);
        }
        for (elem, adds) in &other.entries {
            for (dot, clock) in adds {
                if !self.entries.get(elem).is_some_and(|a| a.contains_key(dot)) {
                    self.entries
                        .entry(*elem)
                        .or_default()
                        .insert(*dot, clock.clone());
                }
            }
        }
        let (tombstones, removes) = (&self.tombstones, &self.removes);
        self.entries.retain(|elem, adds| {
            let r = removes.get(elem);
            adds.retain(|d, c| !tombstones.contains(d) && Self::survives(r, c));
            !adds.is_empty()
        });
    }

    fn read(&self) -> Value {
        Value::Elems(self.entries.keys().copied().collect())
    }

    fn meta(op: &RemoveWinsOp) -> OpMeta {
        match op {
            RemoveWinsOp::Add { dot, .. } => OpMeta::Dot(*dot),
            RemoveWinsOp::Remove { observed, .. } => OpMeta::Observed(observed.clone()),
        }
    }
}

// ---------------------------------------------------------------------------

/// Does write `a` replace write `b` in a register that keeps a single entry?
/// `order_concurrent` decides between clocks that are concurrent.
fn single_winner(
    a: &MvWrite,
    b: &MvWrite,
    order_concurrent: impl Fn(&MvWrite, &MvWrite) -> Ordering,
) -> bool {
    match a.clock.compare(&b.clock) {
        Causality::After => true,
        Causality::Before => false,
        Causality::Equal => a.value > b.value,
        Causality::Concurrent => order_concurrent(a, b) == Ordering::Greater,
    }
}

/// The rule a [`SingleWinnerMvRegister`] uses to decide whether a new write
/// replaces the one it holds. Both rules are wrong for concurrent writes.
pub trait WinnerRule:
    Clone + Copy + std::fmt::Debug + Default + PartialEq + Eq + Send + Sync + 'static
{
    /// Does `new` replace `current`?
    fn replaces(new: &MvWrite, current: &MvWrite) -> bool;
}

/// An MV-Register that keeps a single write, chosen by `R`. See the aliases
/// [`SiblingDropMvRegister`] and [`TotalOrderClockMvRegister`] for the bugs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SingleWinnerMvRegister<R: WinnerRule> {
    current: Option<MvWrite>,
    rule: std::marker::PhantomData<R>,
}

impl<R: WinnerRule> SingleWinnerMvRegister<R> {
    fn offer(&mut self, w: &MvWrite) {
        match &self.current {
            Some(cur) if !R::replaces(w, cur) => {}
            _ => self.current = Some(w.clone()),
        }
    }
}

impl<R: WinnerRule> Crdt for SingleWinnerMvRegister<R> {
    type Op = MvWrite;

    fn new(_replica: ReplicaId) -> Self {
        SingleWinnerMvRegister::default()
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
        if let Some(w) = &other.current {
            self.offer(w);
        }
    }

    fn read(&self) -> Value {
        Value::Elems(self.current.iter().map(|w| w.value).collect())
    }

    fn meta(_op: &MvWrite) -> OpMeta {
        OpMeta::None
    }
}

/// MV-Register that, when two writes are concurrent, keeps only the one with
/// the larger value (ties by clock vector), so siblings are lost.
///
/// Imitates "resolve siblings on the server" (e.g. a store configured to pick
/// one sibling by a value rule such as max): concurrent writes that the
/// application expected to see as siblings disappear.
pub type SiblingDropMvRegister = SingleWinnerMvRegister<LargerValueWins>;

/// Causal order first; between concurrent writes, the larger value wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LargerValueWins;

impl WinnerRule for LargerValueWins {
    fn replaces(new: &MvWrite, current: &MvWrite) -> bool {
        single_winner(new, current, |a, b| {
            a.value
                .cmp(&b.value)
                .then_with(|| a.clock.0.cmp(&b.clock.0))
        })
    }
}

/// MV-Register whose vector-clock comparison never answers "concurrent": it
/// orders clocks by the sum of their entries, ties by the vectors
/// lexicographically, so a single "latest" write always wins.
///
/// Imitates comparing vector clocks as scalars (summing them, or comparing
/// them like tuples): concurrency is misread as order and siblings vanish.
pub type TotalOrderClockMvRegister = SingleWinnerMvRegister<TotalOrderClock>;

/// BUG: a total order on vector clocks (sum, then lexicographic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TotalOrderClock;

impl WinnerRule for TotalOrderClock {
    fn replaces(new: &MvWrite, current: &MvWrite) -> bool {
        let (a, b) = (&new.clock, &current.clock);
        if a.compare(b) == Causality::Equal {
            return new.value > current.value;
        }
        a.total().cmp(&b.total()).then_with(|| a.0.cmp(&b.0)) == Ordering::Greater
    }
}

// ---------------------------------------------------------------------------

/// LWW-Register that breaks timestamp ties by arrival order (it keeps what it
/// already has) instead of by replica id. Merge follows the same rule.
///
/// Imitates last-write-wins with a "strictly newer replaces" comparison and
/// no tie-breaker: two replicas that write with the same timestamp each keep
/// their own value forever, and replicas diverge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArrivalOrderLww {
    current: Option<Stamped>,
}

impl ArrivalOrderLww {
    fn offer(&mut self, w: Stamped) {
        // BUG: `>` on the timestamp alone; a tie keeps the first arrival.
        if self.current.is_none_or(|cur| w.ts > cur.ts) {
            self.current = Some(w);
        }
    }
}

impl Crdt for ArrivalOrderLww {
    type Op = Stamped;

    fn new(_replica: ReplicaId) -> Self {
        ArrivalOrderLww::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<Stamped, Rejected> {
        let Intent::Write(value) = *intent else {
            return Err(Rejected::Unsupported);
        };
        let w = Stamped {
            ts: self.current.map_or(0, |c| c.ts).saturating_add(1),
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

// ---------------------------------------------------------------------------

/// G-Set stored as a list that appends on every add without checking for
/// membership; redelivering an op (or adding an element twice) duplicates
/// the element. Merge appends only the elements it lacks, and `read` returns
/// the list sorted, duplicates included.
///
/// Imitates an "append to list" set with at-least-once delivery and no
/// deduplication (e.g. a message queue consumer that is not idempotent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DuplicatingSet {
    /// Kept sorted so that equality ignores arrival order; may repeat.
    elems: Vec<u64>,
}

impl DuplicatingSet {
    fn append(&mut self, e: u64) {
        let at = self.elems.partition_point(|x| *x <= e);
        self.elems.insert(at, e);
    }
}

impl Crdt for DuplicatingSet {
    type Op = GSetOp;

    fn new(_replica: ReplicaId) -> Self {
        DuplicatingSet::default()
    }

    fn update(&mut self, intent: &Intent, _ctx: &UpdateCtx<'_>) -> Result<GSetOp, Rejected> {
        match *intent {
            Intent::Add(e) => {
                self.append(e);
                Ok(GSetOp(e))
            }
            _ => Err(Rejected::Unsupported),
        }
    }

    fn apply(&mut self, op: &GSetOp) {
        // BUG: no membership check.
        self.append(op.0);
    }

    fn merge(&mut self, other: &Self) {
        let mut last = None;
        for &e in &other.elems {
            if last == Some(e) {
                continue;
            }
            last = Some(e);
            if self.elems.binary_search(&e).is_err() {
                self.append(e);
            }
        }
    }

    fn read(&self) -> Value {
        Value::Elems(self.elems.clone())
    }

    fn meta(_op: &GSetOp) -> OpMeta {
        OpMeta::None
    }
}

// ---------------------------------------------------------------------------

/// PN-Counter kept as one signed total per replica, shipped as that total and
/// merged by max.
///
/// Imitates reusing a G-Counter's max-merge for a counter that can go down:
/// a decrement lowers a replica's total, and max keeps the older, higher
/// value everywhere else, so decrements are lost.
#[derive(Clone, Debug, Default)]
pub struct SignedMaxPnCounter {
    totals: Vec<i64>,
}

/// A [`SignedMaxPnCounter`] op: replica `replica`'s signed total is now `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedTotalOp {
    /// The origin replica.
    pub replica: ReplicaId,
    /// Its signed total.
    pub total: i64,
}

impl PartialEq for SignedMaxPnCounter {
    fn eq(&self, other: &Self) -> bool {
        eq_padded(&self.totals, &other.totals)
    }
}

impl Crdt for SignedMaxPnCounter {
    type Op = SignedTotalOp;

    fn new(_replica: ReplicaId) -> Self {
        SignedMaxPnCounter::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<SignedTotalOp, Rejected> {
        let Intent::Increment(delta) = *intent else {
            return Err(Rejected::Unsupported);
        };
        let t = slot(&mut self.totals, ctx.replica);
        *t = t.saturating_add(delta);
        Ok(SignedTotalOp {
            replica: ctx.replica,
            total: *t,
        })
    }

    fn apply(&mut self, op: &SignedTotalOp) {
        // BUG: max is only a join for totals that never decrease.
        let t = slot(&mut self.totals, op.replica);
        if op.total > *t {
            *t = op.total;
        }
    }

    fn merge(&mut self, other: &Self) {
        if self.totals.len() < other.totals.len() {
            self.totals.resize(other.totals.len(), 0);
        }
        for (mine, theirs) in self.totals.iter_mut().zip(&other.totals) {
            if *theirs > *mine {
                *mine = *theirs;
            }
        }
    }

    fn read(&self) -> Value {
        Value::Int(self.totals.iter().fold(0i64, |a, t| a.saturating_add(*t)))
    }

    fn meta(_op: &SignedTotalOp) -> OpMeta {
        OpMeta::None
    }
}

// ---------------------------------------------------------------------------

/// OR-Set whose removes delete the observed dots without keeping tombstones,
/// and whose merge is the plain union of live dots.
///
/// Imitates an observed-remove set that garbage-collects tombstones too early
/// (or never had them): a replica that has not yet seen the remove gossips
/// the dot back and resurrects the element; a late or redelivered add does
/// the same.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoTombstoneOrSet {
    entries: BTreeMap<u64, BTreeSet<Dot>>,
}

impl Crdt for NoTombstoneOrSet {
    type Op = OrSetOp;

    fn new(_replica: ReplicaId) -> Self {
        NoTombstoneOrSet::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<OrSetOp, Rejected> {
        match *intent {
            Intent::Add(elem) => {
                self.entries.entry(elem).or_default().insert(ctx.dot);
                Ok(OrSetOp::Add { elem, dot: ctx.dot })
            }
            Intent::Remove(elem) => {
                let observed = self
                    .entries
                    .remove(&elem)
                    .map(|d| d.into_iter().collect())
                    .unwrap_or_default();
                Ok(OrSetOp::Remove {
                    elem,
                    observed,
                    dot: ctx.dot,
                })
            }
            _ => Err(Rejected::Unsupported),
        }
    }

    fn apply(&mut self, op: &OrSetOp) {
        match op {
            OrSetOp::Add { elem, dot } => {
                // BUG: nothing remembers that `dot` may have been removed.
                self.entries.entry(*elem).or_default().insert(*dot);
            }
            OrSetOp::Remove { elem, observed, .. } => {
                if let Some(dots) = self.entries.get_mut(elem) {
                    for d in observed {
                        dots.remove(d);
                    }
                    if dots.is_empty() {
                        self.entries.remove(elem);
                    }
                }
            }
        }
    }

    fn merge(&mut self, other: &Self) {
        // BUG: union with no tombstones resurrects removed dots.
        for (elem, dots) in &other.entries {
            self.entries
                .entry(*elem)
                .or_default()
                .extend(dots.iter().copied());
        }
    }

    fn read(&self) -> Value {
        Value::Elems(self.entries.keys().copied().collect())
    }

    fn meta(op: &OrSetOp) -> OpMeta {
        match op {
            OrSetOp::Add { dot, .. } => OpMeta::Dot(*dot),
            OrSetOp::Remove { observed, .. } => OpMeta::Observed(observed.clone()),
        }
    }
}

// ---------------------------------------------------------------------------

/// LWW-Map whose delete drops the field entry instead of storing a
/// timestamped tombstone; merge takes the per-field maximum of the entries
/// present on either side.
///
/// Imitates deleting a key outright in a last-writer-wins store (tombstones
/// purged too early, or never written): an older put still held by a stale
/// replica comes back through gossip or late delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoTombstoneLwwMap {
    /// Present fields only; every `value` is `Some`.
    fields: BTreeMap<u32, FieldWrite>,
    /// Highest timestamp seen, deletes included (Lamport clock).
    lamport: u64,
}

impl NoTombstoneLwwMap {
    fn stamp(w: &FieldWrite) -> (u64, ReplicaId) {
        (w.ts, w.replica)
    }

    fn offer(&mut self, field: u32, w: FieldWrite) {
        self.lamport = self.lamport.max(w.ts);
        match w.value {
            Some(_) => {
                let slot = self.fields.entry(field).or_insert(w);
                if w > *slot {
                    *slot = w;
                }
            }
            None => {
                // BUG: the delete leaves no trace.
                if self
                    .fields
                    .get(&field)
                    .is_some_and(|cur| Self::stamp(&w) > Self::stamp(cur))
                {
                    self.fields.remove(&field);
                }
            }
        }
    }
}

impl Crdt for NoTombstoneLwwMap {
    type Op = LwwMapOp;

    fn new(_replica: ReplicaId) -> Self {
        NoTombstoneLwwMap::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<LwwMapOp, Rejected> {
        let (field, value) = match *intent {
            Intent::Put { field, value } => (field, Some(value)),
            Intent::Delete { field } => (field, None),
            _ => return Err(Rejected::Unsupported),
        };
        let write = FieldWrite {
            ts: self.lamport.saturating_add(1),
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
        self.lamport = self.lamport.max(other.lamport);
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
