//! Vector clocks as the API and the replicas exchange them: a JSON object
//! from replica id to the highest dot counter seen from it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A vector clock; a missing entry is zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Clock(BTreeMap<u16, i64>);

impl Clock {
    /// The empty clock.
    pub fn new() -> Clock {
        Clock::default()
    }

    /// The entry of a replica.
    pub fn get(&self, replica: u16) -> i64 {
        self.0.get(&replica).copied().unwrap_or(0)
    }

    /// Raises the entry of a replica to `seq` if below it.
    pub fn observe(&mut self, replica: u16, seq: i64) {
        let entry = self.0.entry(replica).or_insert(0);
        *entry = (*entry).max(seq);
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &Clock) {
        for (replica, seq) in other.entries() {
            self.observe(replica, seq);
        }
    }

    /// (replica, seq) pairs in replica order.
    pub fn entries(&self) -> impl Iterator<Item = (u16, i64)> + '_ {
        self.0.iter().map(|(r, s)| (*r, *s))
    }
}
