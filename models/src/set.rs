//! Reference sets: [`GSet`], [`TwoPSet`] and [`OrSet`].

pub use crate::dot_context::DotContext;
pub use crate::dot_set::DotSet;
use crate::{Crdt, Dot, Intent, OpMeta, Rejected, ReplicaId, UpdateCtx, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Grow-only set: adds only, merged by union.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GSet {
    elems: BTreeSet<u64>,
}

/// A [`GSet`] op: the element added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GSetOp(pub u64);

impl GSet {
    /// The members.
    pub fn elems(&self) -> &BTreeSet<u64> {
        &self.elems
    }
}

impl Crdt for GSet {
    type Op = GSetOp;

    fn new(_replica: ReplicaId) -> Self {
        GSet::default()
    }

    fn update(&mut self, intent: &Intent, _ctx: &UpdateCtx<'_>) -> Result<GSetOp, Rejected> {
        match *intent {
            Intent::Add(e) => {
                self.elems.insert(e);
                Ok(GSetOp(e))
            }
            _ => Err(Rejected::Unsupported),
        }
    }

    fn apply(&mut self, op: &GSetOp) {
        self.elems.insert(op.0);
    }

    fn merge(&mut self, other: &Self) {
        // `extend` on a BTreeSet with a sorted iterator is cheap; skip when
        // `other` has nothing new to keep gossip merges allocation-free.
        if !other.elems.is_subset(&self.elems) {
            self.elems.extend(other.elems.iter().copied());
        }
    }

    fn read(&self) -> Value {
        Value::Elems(self.elems.iter().copied().collect())
    }

    fn meta(_op: &GSetOp) -> OpMeta {
        OpMeta::None
    }
}

/// Two-phase set: an added set and a removed (tombstone) set; the value is
/// `added \ removed`. An element once removed can never be added again.
///
/// At the origin, adding a removed element and removing an element that is
/// absent (not added, or already removed) are refused with
/// [`Rejected::Precondition`]. Downstream, a remove that arrives before its
/// add still records the tombstone (and the add it implies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TwoPSet {
    added: BTreeSet<u64>,
    removed: BTreeSet<u64>,
}

/// A [`TwoPSet`] op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwoPSetOp {
    /// The element was added.
    Add(u64),
    /// The element was removed (for good).
    Remove(u64),
}

impl Crdt for TwoPSet {
    type Op = TwoPSetOp;

    fn new(_replica: ReplicaId) -> Self {
        TwoPSet::default()
    }

    fn update(&mut self, intent: &Intent, _ctx: &UpdateCtx<'_>) -> Result<TwoPSetOp, Rejected> {
        match *intent {
            Intent::Add(e) => {
                if self.removed.contains(&e) {
                    return Err(Rejected::Precondition);
                }
                self.added.insert(e);
                Ok(TwoPSetOp::Add(e))
            }
            Intent::Remove(e) => {
                if !self.added.contains(&e) || self.removed.contains(&e) {
                    return Err(Rejected::Precondition);
                }
                self.removed.insert(e);
                Ok(TwoPSetOp::Remove(e))
            }
            _ => Err(Rejected::Unsupported),
        }
    }

    fn apply(&mut self, op: &TwoPSetOp) {
        match *op {
            TwoPSetOp::Add(e) => {
                self.added.insert(e);
            }
            TwoPSetOp::Remove(e) => {
                // A remove is only issued for an observed add, so it implies
                // the add; recording both keeps `removed ⊆ added`.
                self.added.insert(e);
                self.removed.insert(e);
            }
        }
    }

    fn merge(&mut self, other: &Self) {
        if !other.added.is_subset(&self.added) {
            self.added.extend(other.added.iter().copied());
        }
        if !other.removed.is_subset(&self.removed) {
            self.removed.extend(other.removed.iter().copied());
        }
    }

    fn read(&self) -> Value {
        Value::Elems(self.added.difference(&self.removed).copied().collect())
    }

    fn meta(_op: &TwoPSetOp) -> OpMeta {
        OpMeta::None
    }
}

/// OR-Set, add-wins: observed-remove with dot-tagged adds.
///
/// Every add is tagged with its [`Dot`]; a remove deletes exactly the dots it
/// observed at its origin, so a concurrent add (a dot the remove did not
/// observe) survives. Instead of a tombstone per removed dot, the set keeps a
/// causal context of every dot it has seen ([`DotContext`]): a seen dot that is
/// no longer live was removed, and an add delivered after the remove that
/// observed it is ignored. The context compacts to a version vector, so its
/// size stays O(replicas) however many removes happen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrSet {
    /// Live dots per element; an element with no live dot is absent.
    entries: BTreeMap<u64, DotSet>,
    /// Every dot this replica has seen, live or removed.
    context: DotContext,
}

/// An [`OrSet`] op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrSetOp {
    /// `elem` was added, tagged `dot`.
    Add {
        /// The element.
        elem: u64,
        /// The add's dot.
        dot: Dot,
    },
    /// `elem` was removed; `observed` are the dots it had at the origin (sorted).
    Remove {
        /// The element.
        elem: u64,
        /// The dots the remove observed, sorted.
        observed: Vec<Dot>,
        /// The remove's own dot. Removes take dots from the same per-key
        /// sequence as adds; recording them keeps the causal context free
        /// of gaps, so it compacts to a version vector.
        dot: Dot,
    },
}

impl OrSet {
    /// The live dots of `elem` (empty when absent).
    pub fn dots(&self, elem: u64) -> impl Iterator<Item = Dot> + '_ {
        self.entries
            .get(&elem)
            .into_iter()
            .flat_map(|d| d.iter())
            .copied()
    }

    /// Every dot seen so far, live or removed.
    pub fn context(&self) -> &DotContext {
        &self.context
    }
}

impl Crdt for OrSet {
    type Op = OrSetOp;

    fn new(_replica: ReplicaId) -> Self {
        OrSet::default()
    }

    fn update(&mut self, intent: &Intent, ctx: &UpdateCtx<'_>) -> Result<OrSetOp, Rejected> {
        match *intent {
            Intent::Add(elem) => {
                self.entries.entry(elem).or_default().insert(ctx.dot);
                self.context.insert(ctx.dot);
                Ok(OrSetOp::Add { elem, dot: ctx.dot })
            }
            Intent::Remove(elem) => {
                let observed: Vec<Dot> = match self.entries.remove(&elem) {
                    Some(dots) => dots.iter().copied().collect(),
                    None => Vec::new(),
                };
                self.context.insert(ctx.dot);
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
                if !self.context.contains(*dot) {
                    self.entries.entry(*elem).or_default().insert(*dot);
                    self.context.insert(*dot);
                }
            }
            OrSetOp::Remove {
                elem,
                observed,
                dot,
            } => {
                self.context.insert(*dot);
                if let Some(dots) = self.entries.get_mut(elem) {
                    for dot in observed {
                        dots.remove(dot);
                    }
                    if dots.is_empty() {
                        self.entries.remove(elem);
                    }
                }
                // A remove that arrives before its add must still win over it.
                for dot in observed {
                    self.context.insert(*dot);
                }
            }
        }
    }

    fn merge(&mut self, other: &Self) {
        // A live dot here that the other side has seen but no longer holds
        // was removed there.
        self.entries.retain(|elem, dots| {
            let theirs = other.entries.get(elem);
            dots.retain(|d| theirs.is_some_and(|t| t.contains(d)) || !other.context.contains(*d));
            !dots.is_empty()
        });
        // A live dot there that this side has never seen is new here.
        for (elem, theirs) in &other.entries {
            let mut fresh = theirs
                .iter()
                .filter(|d| !self.context.contains(**d))
                .peekable();
            if fresh.peek().is_some() {
                let fresh: Vec<Dot> = fresh.copied().collect();
                self.entries.entry(*elem).or_default().extend(fresh);
            }
        }
        self.context.merge(&other.context);
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
