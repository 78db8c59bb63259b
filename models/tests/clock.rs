//! Laws of `VClock`: merge is a join, `compare` is the happens-before order.

use converge_models::{Causality, Dot, VClock};
use proptest::prelude::*;

fn clock() -> impl Strategy<Value = VClock> {
    prop::collection::vec(0u64..5, 0..5).prop_map(VClock)
}

fn merged(a: &VClock, b: &VClock) -> VClock {
    let mut m = a.clone();
    m.merge(b);
    m
}

/// Entry `i` of `c`, zero past the end.
fn at(c: &VClock, i: usize) -> u64 {
    c.0.get(i).copied().unwrap_or(0)
}

/// Pointwise `a <= b`, trailing zeros implied.
fn leq(a: &VClock, b: &VClock) -> bool {
    (0..a.0.len().max(b.0.len())).all(|i| at(a, i) <= at(b, i))
}

fn flip(c: Causality) -> Causality {
    match c {
        Causality::Before => Causality::After,
        Causality::After => Causality::Before,
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_is_commutative(a in clock(), b in clock()) {
        let (ab, ba) = (merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(ab.compare(&ba), Causality::Equal);
        prop_assert_eq!(ab, ba);
    }

    #[test]
    fn merge_is_associative(a in clock(), b in clock(), c in clock()) {
        let left = merged(&merged(&a, &b), &c);
        let right = merged(&a, &merged(&b, &c));
        prop_assert_eq!(left.compare(&right), Causality::Equal);
        prop_assert_eq!(left, right);
    }

    #[test]
    fn merge_is_idempotent(a in clock(), b in clock()) {
        prop_assert_eq!(merged(&a, &a).compare(&a), Causality::Equal);
        let ab = merged(&a, &b);
        prop_assert_eq!(merged(&ab, &b), ab.clone());
        prop_assert_eq!(merged(&ab, &a), ab);
    }

    #[test]
    fn merge_is_an_upper_bound(a in clock(), b in clock()) {
        let m = merged(&a, &b);
        prop_assert!(m.dominates_or_equals(&a));
        prop_assert!(m.dominates_or_equals(&b));
        // ...and the least one: every entry comes from one side.
        for i in 0..m.0.len() {
            prop_assert_eq!(at(&m, i), at(&a, i).max(at(&b, i)));
        }
    }

    #[test]
    fn compare_is_antisymmetric(a in clock(), b in clock()) {
        prop_assert_eq!(a.compare(&b), flip(b.compare(&a)));
    }

    #[test]
    fn compare_matches_pointwise_order(a in clock(), b in clock()) {
        let expected = match (leq(&a, &b), leq(&b, &a)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (false, false) => Causality::Concurrent,
        };
        prop_assert_eq!(a.compare(&b), expected);
        prop_assert_eq!(
            a.dominates_or_equals(&b),
            matches!(expected, Causality::After | Causality::Equal)
        );
    }

    #[test]
    fn equal_iff_same_entries_up_to_trailing_zeros(a in clock(), pad in 0usize..3) {
        let mut padded = a.clone();
        padded.0.extend(std::iter::repeat_n(0, pad));
        prop_assert_eq!(a.compare(&padded), Causality::Equal);
        prop_assert_eq!(padded.compare(&a), Causality::Equal);
        prop_assert_eq!(a.compare(&a), Causality::Equal);
    }

    #[test]
    fn equal_compare_means_equal_entries(a in clock(), b in clock()) {
        let same = (0..a.0.len().max(b.0.len())).all(|i| at(&a, i) == at(&b, i));
        prop_assert_eq!(a.compare(&b) == Causality::Equal, same);
    }

    #[test]
    fn increment_moves_after(a in clock(), r in 0u16..6) {
        let mut next = a.clone();
        let dot = next.increment(r);
        prop_assert_eq!(dot, Dot::new(r, a.get(r) + 1));
        prop_assert_eq!(next.get(r), dot.counter);
        prop_assert_eq!(next.compare(&a), Causality::After);
        prop_assert_eq!(a.compare(&next), Causality::Before);
        prop_assert!(next.contains(dot));
        prop_assert!(!a.contains(dot));
        prop_assert_eq!(next.total(), a.total() + 1);
        // Every other entry is unchanged.
        for i in 0..next.0.len() {
            if i != r as usize {
                prop_assert_eq!(at(&next, i), at(&a, i));
            }
        }
    }

    #[test]
    fn total_is_the_sum(a in clock()) {
        prop_assert_eq!(a.total(), a.0.iter().sum::<u64>());
    }

    #[test]
    fn contains_matches_get(a in clock(), r in 0u16..6, n in 1u64..6) {
        prop_assert_eq!(a.contains(Dot::new(r, n)), a.get(r) >= n);
    }
}

#[test]
fn fresh_clock_is_zero_and_concurrent_example() {
    let zero = VClock::new(3);
    assert_eq!(zero.total(), 0);
    assert_eq!(zero.compare(&VClock::default()), Causality::Equal);
    assert_eq!(zero.get(7), 0);
    let a = VClock(vec![1, 0]);
    let b = VClock(vec![0, 1]);
    assert_eq!(a.compare(&b), Causality::Concurrent);
    assert!(!a.dominates_or_equals(&b));
    assert_eq!(merged(&a, &b), VClock(vec![1, 1]));
}
