//! The values in-run reads returned, stored compactly.
//!
//! A set read returns the whole set, so storing every read as a
//! `Vec<u64>` costs the set's size per read: ~1 KB per op on a 1M-op G-Set
//! run, where the history's budget is 64 bytes per op. Consecutive reads of
//! one key on one replica differ little, so a read is stored as the diff
//! against that replica's previous read of the key:
//!
//! - a [`Value::Elems`] whose elements are strictly increasing (a set as the
//!   reference models return it) is a *diff read*: the elements removed
//!   since, and those added, against the previous read of the same
//!   `(replica, key)`; against the empty set when there is none, or when that
//!   read was not itself strictly increasing (a *chain start*). Diff reads of
//!   one `(replica, key)` form a chain, each pointing at the one before it.
//! - every other value (`Int`, `Map`, and unsorted or duplicated `Elems`
//!   from external targets, which the data-loss checker must see exactly as
//!   read) is stored as is.
//!
//! A diff is `[removed count, removed..., added count, added...]` in LEB128
//! varints, each list delta-coded (first element, then the gaps, all
//! positive because the lists are strictly increasing). Decoding a diff read
//! needs its predecessor decoded, so values are read through a
//! [`ReadCursor`], which keeps the value each chain was last decoded at:
//! visiting reads in history order applies one diff per read.

use super::{push_varint, value_heap, Function, OpRecord, Varints};
use converge_models::{ReplicaId, Value};
use rustc_hash::FxHashMap;

/// [`Entry::prev`] of a read stored as is.
const EXACT: u32 = u32::MAX;

/// Where one read lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// Index in [`ReadStore::exact`] for an exact read; offset of the diff in
    /// [`ReadStore::diffs`] for a diff read.
    at: u32,
    /// [`EXACT`]; or, for a diff read, 1 + the index of the read it is a diff
    /// against, 0 for a chain start (a diff against the empty set).
    prev: u32,
}

/// The last strictly increasing read of one `(replica, key)`, while recording.
type Last = (u32, Vec<u64>);

/// How one diff read changed its chain (see the module documentation):
/// filled by [`ReadCursor::diff`], so that a checker following a replica's
/// reads of a key pays for what changed, not for the whole set each time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetDiff {
    /// The read number of the read this one changed.
    pub read: u32,
    /// The read number of the read it is a diff against; `None` when it is
    /// a diff against the empty set.
    pub base: Option<u32>,
    /// Elements of the base missing from this read, strictly increasing.
    pub removed: Vec<u64>,
    /// Elements of this read missing from the base, strictly increasing.
    pub added: Vec<u64>,
}

/// Read results, indexed by read number (the order they were pushed in).
///
/// Equality compares decoded values, not the encoding: a store rebuilt after
/// [`ReadStore::shrink_to_fit`] may split chains differently and still be
/// equal.
#[derive(Clone, Debug, Default)]
pub struct ReadStore {
    entries: Vec<Entry>,
    /// Diffs, LEB128 varints (see the module documentation).
    diffs: Vec<u8>,
    /// Reads stored as is.
    exact: Vec<Value>,
    /// Per `(replica, key)`, the last read if it can be diffed against, so
    /// recording never decodes. Dropped by [`ReadStore::shrink_to_fit`].
    last: FxHashMap<(ReplicaId, u32), Last>,
}

/// True for elements a diff can encode: strictly increasing, so the removed
/// and added lists are too and their gaps are positive.
pub fn strictly_increasing(elems: &[u64]) -> bool {
    elems.windows(2).all(|w| w[0] < w[1])
}

/// Delta-codes a strictly increasing list, count first.
pub(super) fn push_list(out: &mut Vec<u8>, list: &[u64]) {
    push_varint(out, list.len() as u64);
    let mut previous = 0u64;
    for &e in list {
        push_varint(out, e - previous);
        previous = e;
    }
}

/// Decodes the list [`push_list`] wrote at `at`.
pub(super) fn read_list(bytes: &[u8], at: usize) -> Vec<u64> {
    ListDecoder::new(bytes, at).collect()
}

/// The elements of a list [`push_list`] wrote, decoded one at a time.
#[derive(Clone)]
struct ListDecoder<'a> {
    varints: Varints<'a>,
    /// Elements not yet decoded.
    left: u64,
    previous: u64,
}

impl<'a> ListDecoder<'a> {
    /// The list written at `at`.
    fn new(bytes: &'a [u8], at: usize) -> Self {
        let mut varints = Varints { bytes, at };
        // Each varint takes at least a byte: a count above what is left
        // cannot be right, and bounding it bounds allocations and loops.
        let left = varints
            .next_u64()
            .min(bytes.len().saturating_sub(varints.at) as u64);
        ListDecoder {
            varints,
            left,
            previous: 0,
        }
    }

    /// The offset just past the list (where the next list starts).
    fn end(mut self) -> usize {
        while self.next().is_some() {}
        self.varints.at
    }
}

impl Iterator for ListDecoder<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        (self.left > 0).then(|| {
            self.left -= 1;
            self.previous = self.previous.wrapping_add(self.varints.next_u64());
            self.previous
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// The removed and added lists of the diff written at `at`.
fn diff_lists(bytes: &[u8], at: usize) -> (ListDecoder<'_>, ListDecoder<'_>) {
    let removed = ListDecoder::new(bytes, at);
    let added = ListDecoder::new(bytes, removed.clone().end());
    (removed, added)
}

/// The elements of `prev` missing from `next`, and those of `next` missing
/// from `prev`; both inputs strictly increasing.
pub fn difference(prev: &[u64], next: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < prev.len() && j < next.len() {
        match prev[i].cmp(&next[j]) {
            std::cmp::Ordering::Less => {
                removed.push(prev[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                added.push(next[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    removed.extend_from_slice(&prev[i..]);
    added.extend_from_slice(&next[j..]);
    (removed, added)
}

impl ReadStore {
    /// Stores what a read of `key` on `replica` returned and gives its read
    /// number. Errors past 4 Gi reads or 4 GiB of diffs (the offsets are
    /// 32-bit, as in the history's arena).
    pub fn push(&mut self, replica: ReplicaId, key: u32, value: Value) -> Result<u32, String> {
        let index = u32::try_from(self.entries.len())
            .ok()
            // `index + 1` must fit a record's slot and an entry's `prev`
            // without meeting EXACT.
            .filter(|i| *i < EXACT - 1)
            .ok_or_else(|| "more than 4 Gi reads in one history".to_string())?;
        let elems = match value {
            Value::Elems(elems) if strictly_increasing(&elems) => elems,
            other => {
                // The next sorted read of this replica and key starts a chain.
                self.last.remove(&(replica, key));
                self.entries.push(Entry {
                    at: u32::try_from(self.exact.len())
                        .map_err(|_| "more than 4 Gi exact reads".to_string())?,
                    prev: EXACT,
                });
                self.exact.push(other);
                return Ok(index);
            }
        };
        let at = u32::try_from(self.diffs.len())
            .map_err(|_| "history read diffs exceed 4 GiB".to_string())?;
        let prev = match self.last.get(&(replica, key)) {
            Some((prev_index, prev)) => {
                let (removed, added) = difference(prev, &elems);
                push_list(&mut self.diffs, &removed);
                push_list(&mut self.diffs, &added);
                prev_index + 1
            }
            None => {
                // A chain start: nothing removed, everything added.
                push_list(&mut self.diffs, &[]);
                push_list(&mut self.diffs, &elems);
                0
            }
        };
        self.entries.push(Entry { at, prev });
        self.last.insert((replica, key), (index, elems));
        Ok(index)
    }

    /// Number of reads stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no read is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A decoder for the stored values.
    pub fn cursor(&self) -> ReadCursor<'_> {
        ReadCursor {
            store: self,
            by_read: FxHashMap::default(),
            by_start: FxHashMap::default(),
            path: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Releases slack capacity and the recording cache; call once the
    /// history is complete. Reads pushed afterwards start new chains.
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        self.diffs.shrink_to_fit();
        self.exact.shrink_to_fit();
        for value in &mut self.exact {
            match value {
                Value::Elems(e) => e.shrink_to_fit(),
                Value::Map(m) => m.shrink_to_fit(),
                Value::Int(_) => {}
            }
        }
        // A new map, not `clear()`: clearing keeps the table allocated.
        self.last = FxHashMap::default();
    }

    /// Heap bytes this store owns, capacity included: entries, diffs, exact
    /// values with their heap parts, and the recording cache while it lives.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.diffs.capacity()
            + self.exact.capacity() * std::mem::size_of::<Value>()
            + self.exact.iter().map(value_heap).sum::<usize>()
            + super::map_heap(&self.last)
            + self
                .last
                .values()
                .map(|(_, e)| e.capacity() * std::mem::size_of::<u64>())
                .sum::<usize>()
    }

    /// The number of reads stored as diffs (the rest are stored as is).
    pub fn diff_reads(&self) -> usize {
        self.entries.iter().filter(|e| e.prev != EXACT).count()
    }
}

impl PartialEq for ReadStore {
    fn eq(&self, other: &Self) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let (mut a, mut b) = (self.cursor(), other.cursor());
        (0..self.len()).all(|i| a.read(i) == b.read(i))
    }
}

/// The value one chain was last decoded at.
#[derive(Debug)]
struct Decoded {
    /// The read it is the value of.
    read: u32,
    /// Always [`Value::Elems`], so that it can be lent out as a `&Value`.
    value: Value,
}

/// Decodes the reads of one [`ReadStore`]. Any order is correct; history
/// order is fast: the cursor keeps the value each chain was last decoded at,
/// so the next read of the chain applies one diff. Going back in a chain
/// decodes it again from its start.
#[derive(Debug)]
pub struct ReadCursor<'a> {
    store: &'a ReadStore,
    /// Read last decoded in a chain -> that chain's start.
    by_read: FxHashMap<u32, u32>,
    /// Chain start -> the value the chain was last decoded at.
    by_start: FxHashMap<u32, Decoded>,
    /// Diff reads to apply, latest first (reused between calls).
    path: Vec<u32>,
    /// Merge buffer (reused between calls).
    scratch: Vec<u64>,
}

impl<'a> ReadCursor<'a> {
    /// What `op` read; `None` for an update or a read with no value (failed
    /// or indeterminate). `op` must belong to the history this cursor reads.
    pub fn value(&mut self, op: &OpRecord) -> Option<&Value> {
        let read = self.read_number(op)?;
        self.read(read as usize)
    }

    /// The read number of `op`'s result; `None` as for [`ReadCursor::value`].
    pub fn read_number(&self, op: &OpRecord) -> Option<u32> {
        (op.f == Function::Read && op.slot != 0).then(|| op.slot - 1)
    }

    /// True when `op`'s result is stored as a diff, which makes it a
    /// strictly increasing set without decoding it.
    pub fn is_diff(&self, op: &OpRecord) -> bool {
        self.read_number(op)
            .and_then(|i| self.store.entries.get(i as usize))
            .is_some_and(|e| e.prev != EXACT)
    }

    /// Decodes the diff `op`'s result is stored as into `out`, without
    /// building the set it reads; false (and `out` unspecified) when the
    /// result is stored as is, or `op` read nothing.
    pub fn diff(&self, op: &OpRecord, out: &mut SetDiff) -> bool {
        let Some(read) = self.read_number(op) else {
            return false;
        };
        let store = self.store;
        let Some(entry) = store.entries.get(read as usize).filter(|e| e.prev != EXACT) else {
            return false;
        };
        out.read = read;
        out.base = entry.prev.checked_sub(1);
        let (removed, added) = diff_lists(&store.diffs, entry.at as usize);
        out.removed.clear();
        out.removed.extend(removed);
        out.added.clear();
        out.added.extend(added);
        true
    }

    /// The value of read number `index`, `None` past the last read.
    pub fn read(&mut self, index: usize) -> Option<&Value> {
        let store = self.store;
        let entry = *store.entries.get(index)?;
        if entry.prev == EXACT {
            return store.exact.get(entry.at as usize);
        }
        let index = index as u32;
        // Walk back to a read this cursor holds, or to the chain start.
        self.path.clear();
        let mut at = index;
        let held = loop {
            if let Some(&start) = self.by_read.get(&at) {
                break Some(start);
            }
            self.path.push(at);
            let prev = store.entries[at as usize].prev;
            // `prev - 1 < at` always holds for a store `push` wrote; checking
            // it keeps a walk finite whatever the entries say.
            if prev == 0 || prev == EXACT || prev > at {
                break None;
            }
            at = prev - 1;
        };
        let start = held.unwrap_or(at);
        let state = self.by_start.entry(start).or_insert_with(|| Decoded {
            read: EXACT,
            value: Value::Elems(Vec::new()),
        });
        // The chain moves on: it is no longer held at its old read.
        self.by_read.remove(&state.read);
        if !matches!(state.value, Value::Elems(_)) {
            state.value = Value::Elems(Vec::new());
        }
        let Value::Elems(elems) = &mut state.value else {
            return None;
        };
        if held.is_none() {
            elems.clear();
        }
        for &read in self.path.iter().rev() {
            let at = store.entries[read as usize].at as usize;
            apply(&store.diffs, at, elems, &mut self.scratch);
        }
        state.read = index;
        self.by_read.insert(index, start);
        Some(&state.value)
    }
}

/// Applies the diff at `at` to `elems` (strictly increasing), through
/// `scratch`. Whole runs between changed positions are copied at once: a
/// read usually changes a few elements of a large set.
fn apply(bytes: &[u8], at: usize, elems: &mut Vec<u64>, scratch: &mut Vec<u64>) {
    let (mut removed, mut added) = diff_lists(bytes, at);
    let added_len = added.left;
    if removed.left == 0 && added_len == 0 {
        return;
    }
    scratch.clear();
    scratch.reserve(elems.len() + added_len as usize);
    let (mut r, mut a) = (removed.next(), added.next());
    let mut pos = 0;
    loop {
        // The next change in element order; a removed element is never also
        // added, so the two never tie.
        let (target, is_add) = match (r, a) {
            (Some(x), Some(y)) if y < x => (y, true),
            (Some(x), _) => (x, false),
            (None, Some(y)) => (y, true),
            (None, None) => break,
        };
        let run = elems[pos..].partition_point(|&e| e < target);
        scratch.extend_from_slice(&elems[pos..pos + run]);
        pos += run;
        if is_add {
            scratch.push(target);
            a = added.next();
        } else {
            if elems.get(pos) == Some(&target) {
                pos += 1;
            }
            r = removed.next();
        }
    }
    scratch.extend_from_slice(&elems[pos..]);
    std::mem::swap(elems, scratch);
}
