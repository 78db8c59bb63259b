//! Vector clocks and dots: the causality vocabulary every model and checker shares.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Identifies a replica. Replicas are numbered densely from zero.
pub type ReplicaId = u16;

/// A unique event identifier: the `counter`-th event originated at `replica`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// Replica the event originated at.
    pub replica: ReplicaId,
    /// Per-replica sequence number, starting at 1.
    pub counter: u64,
}

impl Dot {
    /// Builds a dot.
    pub fn new(replica: ReplicaId, counter: u64) -> Self {
        Dot { replica, counter }
    }
}

/// How two vector clocks relate under happens-before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Causality {
    /// Left happened strictly before right.
    Before,
    /// Left happened strictly after right.
    After,
    /// Same causal history.
    Equal,
    /// Neither saw the other.
    Concurrent,
}

/// A dense vector clock. Entries missing at the end count as zero, so clocks
/// of different lengths compare correctly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VClock(pub Vec<u64>);

impl VClock {
    /// The zero clock with room for `replicas` entries.
    pub fn new(replicas: usize) -> Self {
        VClock(vec![0; replicas])
    }

    /// The entry for `replica` (zero when absent).
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.0.get(replica as usize).copied().unwrap_or(0)
    }

    /// Advances `replica`'s entry and returns the dot of the new event.
    pub fn increment(&mut self, replica: ReplicaId) -> Dot {
        let i = replica as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] += 1;
        Dot::new(replica, self.0[i])
    }

    /// Pointwise maximum, in place.
    pub fn merge(&mut self, other: &VClock) {
        self.merge_entries(&other.0);
    }

    /// Pointwise maximum with a clock given as its entries, in place.
    #[inline]
    pub fn merge_entries(&mut self, other: &[u64]) {
        if self.0.len() < other.len() {
            self.0.resize(other.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(other) {
            if *theirs > *mine {
                *mine = *theirs;
            }
        }
    }

    /// True when the clock has seen the event `dot`.
    pub fn contains(&self, dot: Dot) -> bool {
        self.get(dot.replica) >= dot.counter
    }

    /// Sum of all entries: the number of events in this clock's causal past.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Compares under happens-before.
    pub fn compare(&self, other: &VClock) -> Causality {
        let len = self.0.len().max(other.0.len());
        let (mut less, mut greater) = (false, false);
        for i in 0..len {
            let a = self.0.get(i).copied().unwrap_or(0);
            let b = other.0.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
            if less && greater {
                return Causality::Concurrent;
            }
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// True when `self` happened at or after `other` (descends from it).
    pub fn dominates_or_equals(&self, other: &VClock) -> bool {
        matches!(self.compare(other), Causality::After | Causality::Equal)
    }
}
