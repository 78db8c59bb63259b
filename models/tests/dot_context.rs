//! [`DotContext`] against the obvious reference, a `BTreeSet<Dot>`: the
//! bitmap representation must answer every lookup the same way after any
//! sequence of inserts and merges, and compare equal exactly when the sets do.

use converge_models::set::DotContext;
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
