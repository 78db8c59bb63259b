//! Final reads, one per replica and key, each distinct value stored once
//! per key.
//!
//! After quiescence every replica of a correct target returns the same
//! value for a key, and a set's value is the whole set: storing it per
//! replica multiplied the largest values of the history by the replica
//! count. A final read is a small slot pointing at its key's distinct
//! values. A distinct value that is a strictly increasing [`Value::Elems`]
//! (a set as the reference models return it) is delta-coded in LEB128
//! varints like the diffs of [`super::ReadStore`]: on a 1M-op G-Set run the
//! final sets take ~1.4 bytes per op that way instead of 8. Any other value
//! is kept as is.
//!
//! Checkers read the values through [`Finals::decode`], which decodes each
//! distinct value once and lends every read back as a [`FinalView`], in the
//! order the reads were pushed.

use super::reads::{push_list, read_list, strictly_increasing};
use super::{map_heap, value_heap, FinalRead};
use converge_models::{ReplicaId, Value};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::borrow::Cow;

/// One final read as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    key: u32,
    /// Index in [`Finals::values`].
    value: u32,
    replica: ReplicaId,
}

/// How a distinct value is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stored {
    /// A strictly increasing `Elems`, delta-coded in [`Finals::bytes`]
    /// from `at` for `len` bytes.
    Encoded { at: usize, len: usize },
    /// Any other value.
    Exact(Value),
}

/// A value at least one replica returned for a key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Distinct {
    stored: Stored,
    key: u32,
    /// 1 + the index of the key's previous distinct value, 0 for its first:
    /// a key's values form a list, searched when a replica reads the key.
    older: u32,
}

/// The final reads of a history, in the order they were pushed.
///
/// Equality compares the reads (replica, key, value) in order, not how
/// values are shared or stored.
#[derive(Clone, Debug, Default)]
pub struct Finals {
    reads: Vec<Slot>,
    values: Vec<Distinct>,
    /// Encoded values, LEB128 varints: `[count, first, gaps...]`.
    bytes: Vec<u8>,
    /// Key -> 1 + the index of its newest distinct value. Only pushes need
    /// it, so [`Finals::shrink_to_fit`] drops it and a later push rebuilds it.
    newest: FxHashMap<u32, u32>,
}

/// One final read, its value shared with the replicas that read the same.
/// Serializes as a [`FinalRead`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FinalView<'a> {
    /// Replica read.
    pub replica: ReplicaId,
    /// Key read.
    pub key: u32,
    /// Value it returned.
    pub value: &'a Value,
}

impl From<FinalView<'_>> for FinalRead {
    fn from(view: FinalView<'_>) -> Self {
        FinalRead {
            replica: view.replica,
            key: view.key,
            value: view.value.clone(),
        }
    }
}

impl Finals {
    /// Appends a final read, sharing its value with an equal final read of
    /// the same key if there is one.
    pub fn push(&mut self, read: FinalRead) {
        if self.newest.is_empty() && !self.values.is_empty() {
            for (i, d) in self.values.iter().enumerate() {
                // Later values of a key overwrite earlier ones: newest wins.
                self.newest.insert(d.key, i as u32 + 1);
            }
        }
        // Encode tentatively at the end of the bytes: the encoding is
        // canonical, so equal sets have equal bytes, and a value already
        // stored gives the bytes back.
        let start = self.bytes.len();
        let encoded = match &read.value {
            Value::Elems(e) if strictly_increasing(e) => {
                push_list(&mut self.bytes, e);
                Some(Stored::Encoded {
                    at: start,
                    len: self.bytes.len() - start,
                })
            }
            _ => None,
        };
        let head = self.newest.get(&read.key).copied().unwrap_or(0);
        let mut at = head;
        let found = loop {
            let Some(d) = at.checked_sub(1).and_then(|i| self.values.get(i as usize)) else {
                break None;
            };
            let equal = match (&d.stored, &encoded) {
                (Stored::Encoded { at, len }, Some(_)) => {
                    self.bytes.get(*at..*at + *len) == self.bytes.get(start..)
                }
                (Stored::Exact(v), None) => *v == read.value,
                _ => false,
            };
            if equal {
                break Some(at - 1);
            }
            at = d.older;
        };
        let value = match found {
            Some(index) => {
                self.bytes.truncate(start);
                index
            }
            None => {
                // u32 cannot overflow: 4 Gi distinct values would take 160 GiB.
                let index = self.values.len() as u32;
                self.values.push(Distinct {
                    stored: encoded.unwrap_or(Stored::Exact(read.value)),
                    key: read.key,
                    older: head,
                });
                self.newest.insert(read.key, index + 1);
                index
            }
        };
        self.reads.push(Slot {
            key: read.key,
            value,
            replica: read.replica,
        });
    }

    /// Number of final reads (replicas times keys read, not distinct values).
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    /// True when there is no final read.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    /// Number of distinct values stored (one per key when replicas agree).
    pub fn distinct_values(&self) -> usize {
        self.values.len()
    }

    /// The key of each final read, in push order (no value is decoded).
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.reads.iter().map(|s| s.key)
    }

    /// The replica and key of each final read, in push order (no value is
    /// decoded).
    pub fn replicas_and_keys(&self) -> impl Iterator<Item = (ReplicaId, u32)> + '_ {
        self.reads.iter().map(|s| (s.replica, s.key))
    }

    /// Decodes every distinct value once (values kept as is are borrowed)
    /// and lends the reads back.
    pub fn decode(&self) -> DecodedFinals<'_> {
        let values = self
            .values
            .iter()
            .map(|d| match &d.stored {
                Stored::Exact(v) => Cow::Borrowed(v),
                Stored::Encoded { at, .. } => Cow::Owned(Value::Elems(read_list(&self.bytes, *at))),
            })
            .collect();
        DecodedFinals {
            reads: &self.reads,
            values,
        }
    }

    /// The final reads as owned values, in push order.
    pub fn to_vec(&self) -> Vec<FinalRead> {
        self.decode().iter().map(FinalRead::from).collect()
    }

    /// Keeps only the reads `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(FinalView<'_>) -> bool) {
        let all = std::mem::take(self);
        for read in all.decode().iter().filter(|r| keep(*r)) {
            self.push(read.into());
        }
    }

    /// Releases slack capacity and the push index; call once the history is
    /// complete.
    pub fn shrink_to_fit(&mut self) {
        self.reads.shrink_to_fit();
        self.values.shrink_to_fit();
        self.bytes.shrink_to_fit();
        for d in &mut self.values {
            match &mut d.stored {
                Stored::Exact(Value::Elems(e)) => e.shrink_to_fit(),
                Stored::Exact(Value::Map(m)) => m.shrink_to_fit(),
                _ => {}
            }
        }
        // A new map, not `clear()`: clearing keeps the table allocated.
        self.newest = FxHashMap::default();
    }

    /// Heap bytes owned, capacity included; a shared value counts once.
    pub fn heap_bytes(&self) -> usize {
        self.reads.capacity() * std::mem::size_of::<Slot>()
            + self.values.capacity() * std::mem::size_of::<Distinct>()
            + self
                .values
                .iter()
                .map(|d| match &d.stored {
                    Stored::Exact(v) => value_heap(v),
                    Stored::Encoded { .. } => 0,
                })
                .sum::<usize>()
            + self.bytes.capacity()
            + map_heap(&self.newest)
    }
}

impl PartialEq for Finals {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.decode().iter().eq(other.decode().iter())
    }
}

impl Eq for Finals {}

impl FromIterator<FinalRead> for Finals {
    fn from_iter<I: IntoIterator<Item = FinalRead>>(iter: I) -> Self {
        let mut finals = Finals::default();
        finals.extend(iter);
        finals
    }
}

impl Extend<FinalRead> for Finals {
    fn extend<I: IntoIterator<Item = FinalRead>>(&mut self, iter: I) {
        for read in iter {
            self.push(read);
        }
    }
}

/// The final reads of a history with every distinct value decoded once
/// ([`Finals::decode`]).
#[derive(Clone, Debug)]
pub struct DecodedFinals<'a> {
    reads: &'a [Slot],
    values: Vec<Cow<'a, Value>>,
}

impl DecodedFinals<'_> {
    /// The final reads in the order they were pushed.
    pub fn iter(&self) -> FinalsIter<'_> {
        FinalsIter {
            reads: self.reads.iter(),
            values: &self.values,
        }
    }

    /// Number of final reads.
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    /// True when there is no final read.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }
}

impl<'b> IntoIterator for &'b DecodedFinals<'_> {
    type Item = FinalView<'b>;
    type IntoIter = FinalsIter<'b>;

    fn into_iter(self) -> FinalsIter<'b> {
        self.iter()
    }
}

/// Iterator over [`DecodedFinals`], in push order.
#[derive(Clone, Debug)]
pub struct FinalsIter<'a> {
    reads: std::slice::Iter<'a, Slot>,
    values: &'a [Cow<'a, Value>],
}

impl<'a> FinalsIter<'a> {
    fn view(&self, slot: &Slot) -> Option<FinalView<'a>> {
        let values: &'a [Cow<'a, Value>] = self.values;
        Some(FinalView {
            replica: slot.replica,
            key: slot.key,
            value: &**values.get(slot.value as usize)?,
        })
    }
}

impl<'a> Iterator for FinalsIter<'a> {
    type Item = FinalView<'a>;

    fn next(&mut self) -> Option<FinalView<'a>> {
        let slot = self.reads.next()?;
        self.view(slot)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.reads.size_hint()
    }
}

impl DoubleEndedIterator for FinalsIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let slot = self.reads.next_back()?;
        self.view(slot)
    }
}

impl ExactSizeIterator for FinalsIter<'_> {}
