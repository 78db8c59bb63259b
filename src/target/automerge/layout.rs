//! Where each object of the automerge document sits in converge's key space.
//!
//! converge's history speaks of numbered keys. An automerge run uses `n`
//! counters and `n` registers (root keys `c<i>` and `r<i>`), one list
//! (`list`) and one text (`text`), plus two pseudo-keys that only final reads
//! use: the heads of the document and a hash of its JSON export. Putting them
//! in the key space lets the generic convergence checker compare heads and
//! hydrated values on every replica without a new history line type.

/// The object a key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Counter `c<i>` (`ScalarValue::Counter`).
    Counter(u32),
    /// Register `r<i>`: a map key every writer puts conflicting values on.
    Register(u32),
    /// The shared list.
    List,
    /// The shared text.
    Text,
    /// Final reads only: the document heads, each hash as four big-endian words, sorted.
    Heads,
    /// Final reads only: an FNV-1a hash of the document's JSON export.
    Document,
}

/// The key layout of a run with `per_kind` counters and as many registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Counters, and also registers.
    pub per_kind: u32,
}

/// Keys besides counters and registers: list, text, heads, document.
const FIXED_KEYS: u32 = 4;

impl Layout {
    /// A layout with `per_kind` counters and `per_kind` registers.
    pub fn new(per_kind: u32) -> Self {
        Layout { per_kind }
    }

    /// The layout a history header's key count implies, if it is one.
    pub fn from_total(total: u32) -> Option<Self> {
        let rest = total.checked_sub(FIXED_KEYS)?;
        (rest % 2 == 0).then(|| Layout::new(rest / 2))
    }

    /// Number of keys, pseudo-keys included (the header's `keys`).
    pub fn total(self) -> u32 {
        2 * self.per_kind + FIXED_KEYS
    }

    /// The key of a slot.
    pub fn key(self, slot: Slot) -> u32 {
        let n = self.per_kind;
        match slot {
            Slot::Counter(i) => i,
            Slot::Register(i) => n + i,
            Slot::List => 2 * n,
            Slot::Text => 2 * n + 1,
            Slot::Heads => 2 * n + 2,
            Slot::Document => 2 * n + 3,
        }
    }

    /// The slot of a key, if the key is in range.
    pub fn slot(self, key: u32) -> Option<Slot> {
        let n = self.per_kind;
        Some(match key {
            k if k < n => Slot::Counter(k),
            k if k < 2 * n => Slot::Register(k - n),
            k if k == 2 * n => Slot::List,
            k if k == 2 * n + 1 => Slot::Text,
            k if k == 2 * n + 2 => Slot::Heads,
            k if k == 2 * n + 3 => Slot::Document,
            _ => return None,
        })
    }

    /// Every key with its slot, in order.
    pub fn slots(self) -> impl Iterator<Item = (u32, Slot)> {
        (0..self.total()).filter_map(move |k| self.slot(k).map(|s| (k, s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_slots_are_inverse() {
        let layout = Layout::new(3);
        assert_eq!(layout.total(), 10);
        for (key, slot) in layout.slots() {
            assert_eq!(layout.key(slot), key);
        }
        assert_eq!(layout.slot(10), None);
        assert_eq!(Layout::from_total(10), Some(layout));
        assert_eq!(Layout::from_total(3), None);
    }
}
