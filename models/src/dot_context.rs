//! [`DotContext`]: the set of dots an OR-Set replica has seen, live or removed.

use crate::Dot;
use std::collections::VecDeque;

/// A set of dots: per replica, a version-vector entry (every counter up to
/// it is seen) plus a bitmap of the counters seen beyond the first gap.
///
/// Dots of one replica are dense (each key's updates at a replica number
/// 1, 2, 3, ...), so out-of-order delivery leaves short gaps: a bitmap makes
/// insert, lookup and merge word operations where an ordered set of dots
/// cost a tree walk and an allocation per dot. Only the bits above the
/// version-vector entry are kept, with no zero word at either end, so equal
/// sets have equal representations.
#[derive(Clone, Debug, Default)]
pub struct DotContext {
    /// `vv[r]`: every counter `1..=vv[r]` of replica `r` is seen.
    vv: Vec<u64>,
    /// `beyond[r]`: the counters of replica `r` seen above `vv[r] + 1`.
    beyond: Vec<Bits>,
}

/// Counters as bits: bit `i` of `words[w]` is counter `64 * (first + w) + i`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Bits {
    first: u64,
    words: VecDeque<u64>,
}

impl Bits {
    fn contains(&self, counter: u64) -> bool {
        let word = counter / 64;
        word >= self.first
            && self
                .words
                .get((word - self.first) as usize)
                .is_some_and(|w| w & (1 << (counter % 64)) != 0)
    }

    fn insert(&mut self, counter: u64) {
        let word = counter / 64;
        if self.words.is_empty() {
            self.first = word;
        }
        while word < self.first {
            self.words.push_front(0);
            self.first -= 1;
        }
        let at = (word - self.first) as usize;
        if at >= self.words.len() {
            self.words.resize(at + 1, 0);
        }
        self.words[at] |= 1 << (counter % 64);
    }

    fn union(&mut self, other: &Bits) {
        if other.words.is_empty() {
            return;
        }
        if self.words.is_empty() {
            self.clone_from(other);
            return;
        }
        while other.first < self.first {
            self.words.push_front(0);
            self.first -= 1;
        }
        let offset = (other.first - self.first) as usize;
        let end = offset + other.words.len();
        if end > self.words.len() {
            self.words.resize(end, 0);
        }
        for (mine, theirs) in self.words.iter_mut().skip(offset).zip(&other.words) {
            *mine |= theirs;
        }
    }

    /// Advances `vv` over the counters that directly follow it, then drops
    /// every bit at or below it and trims zero words at both ends.
    fn absorb_into(&mut self, vv: &mut u64) {
        loop {
            let next = *vv + 1;
            let word = next / 64;
            let Some(&bits) = word
                .checked_sub(self.first)
                .and_then(|at| self.words.get(at as usize))
            else {
                break;
            };
            let run = (bits >> (next % 64)).trailing_ones() as u64;
            if run == 0 {
                break;
            }
            *vv += run;
        }
        let floor = *vv / 64;
        while self.first < floor && !self.words.is_empty() {
            self.words.pop_front();
            self.first += 1;
        }
        if self.first == floor {
            if let Some(front) = self.words.front_mut() {
                // Bits 0..=vv%64 of the floor word are at or below vv.
                let keep = u64::MAX.checked_shl((*vv % 64 + 1) as u32).unwrap_or(0);
                *front &= keep;
            }
        }
        while self.words.front() == Some(&0) {
            self.words.pop_front();
            self.first += 1;
        }
        while self.words.back() == Some(&0) {
            self.words.pop_back();
        }
        if self.words.is_empty() {
            self.first = 0;
        }
    }
}

impl PartialEq for DotContext {
    fn eq(&self, other: &Self) -> bool {
        let len = self.vv.len().max(other.vv.len());
        let vv = |c: &DotContext, r: usize| c.vv.get(r).copied().unwrap_or(0);
        fn beyond(c: &DotContext, r: usize) -> Option<&Bits> {
            c.beyond.get(r).filter(|b| !b.words.is_empty())
        }
        (0..len).all(|r| vv(self, r) == vv(other, r) && beyond(self, r) == beyond(other, r))
    }
}

impl Eq for DotContext {}

impl DotContext {
    fn grow(&mut self, replicas: usize) {
        if self.vv.len() < replicas {
            self.vv.resize(replicas, 0);
            self.beyond.resize(replicas, Bits::default());
        }
    }

    /// Whether `dot` has been seen.
    pub fn contains(&self, dot: Dot) -> bool {
        let r = dot.replica as usize;
        match self.vv.get(r) {
            Some(&vv) => dot.counter <= vv || self.beyond[r].contains(dot.counter),
            None => dot.counter == 0,
        }
    }

    /// Records `dot` as seen.
    pub fn insert(&mut self, dot: Dot) {
        let r = dot.replica as usize;
        self.grow(r + 1);
        let vv = &mut self.vv[r];
        if dot.counter <= *vv {
            return;
        }
        let beyond = &mut self.beyond[r];
        if dot.counter == *vv + 1 && beyond.words.is_empty() {
            *vv += 1;
            return;
        }
        beyond.insert(dot.counter);
        if dot.counter == *vv + 1 {
            beyond.absorb_into(vv);
        }
    }

    /// Joins another context into this one.
    pub fn merge(&mut self, other: &DotContext) {
        self.grow(other.vv.len());
        for (r, (&theirs_vv, theirs_beyond)) in other.vv.iter().zip(&other.beyond).enumerate() {
            let (vv, beyond) = (&mut self.vv[r], &mut self.beyond[r]);
            if theirs_vv <= *vv && theirs_beyond.words.is_empty() {
                continue;
            }
            *vv = (*vv).max(theirs_vv);
            beyond.union(theirs_beyond);
            beyond.absorb_into(vv);
        }
    }

    /// Every seen dot, ordered by replica then counter (for tests and
    /// diagnostics: the count can be large).
    pub fn dots(&self) -> impl Iterator<Item = Dot> + '_ {
        self.vv
            .iter()
            .zip(&self.beyond)
            .enumerate()
            .flat_map(|(r, (&vv, beyond))| {
                let below = (1..=vv).map(move |c| Dot::new(r as u16, c));
                let above = beyond.words.iter().enumerate().flat_map(move |(w, &bits)| {
                    let base = 64 * (beyond.first + w as u64);
                    (0..64)
                        .filter(move |i| bits & (1 << i) != 0)
                        .map(move |i| Dot::new(r as u16, base + i))
                });
                below.chain(above)
            })
    }
}
