//! [`DotSet`]: the live dots of one OR-Set element.

use crate::Dot;
use smallvec::SmallVec;
use std::collections::BTreeSet;

/// Past this many dots an element's set moves from the inline array to a
/// B-tree, so inserting stays cheap when removes are rare and dots pile up.
const INLINE_LIMIT: usize = 32;

/// A sorted set of dots: inline while it is small, which is the usual case
/// (a remove clears every dot it observed, so an element holds only the adds
/// since), and a B-tree once it grows. An element added and removed over and
/// over no longer allocates a tree node each time.
#[derive(Clone, Debug)]
pub struct DotSet(Repr);

#[derive(Clone, Debug)]
enum Repr {
    Few(SmallVec<[Dot; 4]>),
    Many(BTreeSet<Dot>),
}

impl Default for DotSet {
    fn default() -> Self {
        DotSet(Repr::Few(SmallVec::new()))
    }
}

impl PartialEq for DotSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for DotSet {}

impl DotSet {
    /// Adds `dot`; false if it was present.
    pub fn insert(&mut self, dot: Dot) -> bool {
        match &mut self.0 {
            Repr::Few(few) => match few.binary_search(&dot) {
                Ok(_) => false,
                Err(at) if few.len() < INLINE_LIMIT => {
                    few.insert(at, dot);
                    true
                }
                Err(_) => {
                    let mut many: BTreeSet<Dot> = few.iter().copied().collect();
                    many.insert(dot);
                    self.0 = Repr::Many(many);
                    true
                }
            },
            Repr::Many(many) => many.insert(dot),
        }
    }

    /// Removes `dot`; false if it was absent.
    pub fn remove(&mut self, dot: &Dot) -> bool {
        match &mut self.0 {
            Repr::Few(few) => match few.binary_search(dot) {
                Ok(at) => {
                    few.remove(at);
                    true
                }
                Err(_) => false,
            },
            Repr::Many(many) => many.remove(dot),
        }
    }

    /// Whether `dot` is present.
    pub fn contains(&self, dot: &Dot) -> bool {
        match &self.0 {
            Repr::Few(few) => few.binary_search(dot).is_ok(),
            Repr::Many(many) => many.contains(dot),
        }
    }

    /// Number of dots.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Few(few) => few.len(),
            Repr::Many(many) => many.len(),
        }
    }

    /// Whether there is no dot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dots in order.
    pub fn iter(&self) -> impl Iterator<Item = &Dot> + '_ {
        let (few, many) = match &self.0 {
            Repr::Few(few) => (Some(few.iter()), None),
            Repr::Many(many) => (None, Some(many.iter())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    /// Keeps the dots `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&Dot) -> bool) {
        match &mut self.0 {
            Repr::Few(few) => few.retain(|d| keep(d)),
            Repr::Many(many) => many.retain(|d| keep(d)),
        }
    }
}

impl Extend<Dot> for DotSet {
    fn extend<I: IntoIterator<Item = Dot>>(&mut self, dots: I) {
        for dot in dots {
            self.insert(dot);
        }
    }
}
