//! [`DotContext`] and [`DotSet`] against the obvious reference, a
//! `BTreeSet<Dot>`: each representation must answer every lookup the same
//! way after any sequence of updates, and compare equal exactly when the
//! sets do.

use converge_models::set::{DotContext, DotSet};
use converge_models::Dot;
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
enum Step {
    Insert(usize, Dot),
    /// `Merge(a, b)`: context `a` joins context `b`.
    Merge(usize, usize),
}

const CONTEXTS: usize = 3;

fn dot() -> impl Strategy<Value = Dot> {
    // Counters cluster at word boundaries (63, 64, 127, 128...) and spread far
    // enough to leave long gaps.
    (
        0u16..3,
        prop_oneof![1u64..200, 60u64..70, 120u64..135, 1u64..3000],
    )
        .prop_map(|(r, c)| Dot::new(r, c))
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..CONTEXTS, dot()).prop_map(|(i, d)| Step::Insert(i, d)),
        1 => (0..CONTEXTS, 0..CONTEXTS).prop_map(|(a, b)| Step::Merge(a, b)),
    ]
}

fn probes() -> impl Iterator<Item = Dot> {
    (0u16..4).flat_map(|r| (0u64..260).chain(2990..3010).map(move |c| Dot::new(r, c)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn behaves_like_a_set_of_dots(steps in prop::collection::vec(step(), 0..200)) {
        let mut contexts = vec![DotContext::default(); CONTEXTS];
        let mut reference = vec![BTreeSet::new(); CONTEXTS];
        for step in steps {
            match step {
                Step::Insert(i, d) => {
                    contexts[i].insert(d);
                    reference[i].insert(d);
                }
                Step::Merge(a, b) => {
                    let theirs = contexts[b].clone();
                    contexts[a].merge(&theirs);
                    let theirs = reference[b].clone();
                    reference[a].extend(theirs);
                }
            }
        }
        for (context, set) in contexts.iter().zip(&reference) {
            let listed: BTreeSet<Dot> = context.dots().collect();
            prop_assert_eq!(&listed, set);
            for d in probes() {
                prop_assert_eq!(context.contains(d), d.counter == 0 || set.contains(&d), "{:?}", d);
            }
        }
        for a in 0..CONTEXTS {
            for b in 0..CONTEXTS {
                prop_assert_eq!(contexts[a] == contexts[b], reference[a] == reference[b]);
            }
        }
    }
}

#[test]
fn a_gap_filled_late_compacts_to_the_same_context() {
    let mut in_order = DotContext::default();
    let mut reordered = DotContext::default();
    for c in 1..=200 {
        in_order.insert(Dot::new(1, c));
    }
    for c in (2..=200).rev() {
        reordered.insert(Dot::new(1, c));
    }
    assert_ne!(in_order, reordered);
    assert!(!reordered.contains(Dot::new(1, 1)));
    reordered.insert(Dot::new(1, 1));
    assert_eq!(in_order, reordered);
}

#[derive(Clone, Debug)]
enum SetStep {
    Insert(usize, Dot),
    Remove(usize, Dot),
    /// Keeps the dots whose counter is not a multiple of the value.
    RetainNotMultipleOf(usize, u64),
}

fn set_step() -> impl Strategy<Value = SetStep> {
    // Few distinct dots, so removes hit and sets cross the inline limit both
    // ways.
    let small = (0u16..3, 1u64..40).prop_map(|(r, c)| Dot::new(r, c));
    prop_oneof![
        6 => (0..2usize, small.clone()).prop_map(|(i, d)| SetStep::Insert(i, d)),
        3 => (0..2usize, small).prop_map(|(i, d)| SetStep::Remove(i, d)),
        1 => (0..2usize, 2u64..5).prop_map(|(i, m)| SetStep::RetainNotMultipleOf(i, m)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dot_set_behaves_like_a_btree_set(steps in prop::collection::vec(set_step(), 0..300)) {
        let mut sets = vec![DotSet::default(); 2];
        let mut reference = vec![BTreeSet::new(); 2];
        for step in steps {
            match step {
                SetStep::Insert(i, d) => {
                    prop_assert_eq!(sets[i].insert(d), reference[i].insert(d));
                }
                SetStep::Remove(i, d) => {
                    prop_assert_eq!(sets[i].remove(&d), reference[i].remove(&d));
                }
                SetStep::RetainNotMultipleOf(i, m) => {
                    sets[i].retain(|d| d.counter % m != 0);
                    reference[i].retain(|d| d.counter % m != 0);
                }
            }
        }
        for (set, reference) in sets.iter().zip(&reference) {
            prop_assert!(set.iter().copied().eq(reference.iter().copied()));
            prop_assert_eq!(set.len(), reference.len());
            prop_assert_eq!(set.is_empty(), reference.is_empty());
            for r in 0u16..3 {
                for c in 0u64..41 {
                    let d = Dot::new(r, c);
                    prop_assert_eq!(set.contains(&d), reference.contains(&d));
                }
            }
        }
        prop_assert_eq!(sets[0] == sets[1], reference[0] == reference[1]);
    }
}
