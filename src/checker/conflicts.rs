//! Conflicts: how many pairs of updates to the same key were concurrent by
//! vector clock. Informational: always valid.
//!
//! Clocks are per key, so an update's clock sum counts the updates of that
//! key in its causal past, itself included. The ordered pairs of a key are
//! therefore `sum(clock_sum - 1)`, and the concurrent pairs are all pairs
//! minus those: O(n) instead of comparing every pair.

use super::Check;
use crate::history::{History, Outcome};
use crate::verdict::Verdict;
use rustc_hash::FxHashMap;

/// Counts concurrent update pairs per key.
pub fn check(history: &History) -> Check {
    let mut per_key: FxHashMap<u32, (u64, u64)> = FxHashMap::default();
    for op in &history.ops {
        // Info updates with a known clock are in other updates' causal pasts,
        // so they count as updates too.
        if op.f.is_update() && op.outcome != Outcome::Fail && op.clock_sum > 0 {
            let entry = per_key.entry(op.key).or_default();
            entry.0 += 1;
            entry.1 += op.clock_sum as u64 - 1;
        }
    }
    // Ascending keys, so that ties name the same hottest key every time.
    let mut per_key: Vec<(u32, (u64, u64))> = per_key.into_iter().collect();
    per_key.sort_unstable_by_key(|(key, _)| *key);
    let mut total = 0u64;
    let mut hottest = (0u32, 0u64);
    for (key, (n, ordered)) in &per_key {
        let pairs = n * n.saturating_sub(1) / 2;
        let concurrent = pairs.saturating_sub(*ordered);
        total += concurrent;
        if concurrent > hottest.1 {
            hottest = (*key, concurrent);
        }
    }
    let mut check = Check::new(
        "conflicts",
        Verdict::Valid,
        format!(
            "{total} concurrent update pairs on the same key (hottest: key {} with {})",
            hottest.0, hottest.1
        ),
    );
    check.count("conflicts", total);
    check.count("hottest_key", hottest.0 as u64);
    check.count("hottest_key_conflicts", hottest.1);
    check
}
