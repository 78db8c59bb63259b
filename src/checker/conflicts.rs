//! Conflicts: how many updates were concurrent with at least one other
//! update to the same element (a counter's or register's key, a set's
//! element, a map's field), as a share of the updates; plus what the
//! datatype resolved. Informational: valid when measured.
//!
//! Clocks are per key, so an update's clock sum counts the updates of its
//! key in its causal past, itself included. An update with sum `k` is
//! ordered with every other update of its key exactly when `k - 1` updates
//! have a smaller sum and none other has sum `k` (its past is then all of
//! them, and any update with a larger sum contains it), which sorting the
//! sums decides in O(n log n). Two distinct updates with the same sum are
//! concurrent. For sets and maps an update ordered with its whole key is
//! ordered with its element; one that is not counts when another replica
//! also updated its element (updates of one replica are ordered), so the
//! set and map figure is an upper bound, and the summary says so.
//!
//! Black-box targets record no clocks: nothing is measured, and the check
//! says so rather than reporting 0.

use super::{Check, BLACK_BOX_TARGETS};
use crate::history::{Function, History, Outcome};
use crate::verdict::Verdict;
use converge_models::{Value, Workload};
use rustc_hash::{FxHashMap, FxHashSet};

/// Counts updates concurrent with another update of the same element.
pub fn check(history: &History) -> Check {
    let Some(header) = &history.header else {
        return Check::not_judged("conflicts", "history has no header");
    };
    if BLACK_BOX_TARGETS.contains(&header.target.as_str()) {
        return Check::not_judged(
            "conflicts",
            "the target records no causal order (no clocks), so concurrency is not measured",
        );
    }
    let workload = header.workload;
    let element_level = matches!(
        workload,
        Workload::GSet | Workload::TwoPSet | Workload::OrSet | Workload::LwwMap
    );
    // key -> updates with a known clock: (clock sum, op index)
    let mut per_key: FxHashMap<u32, Vec<(u32, usize)>> = FxHashMap::default();
    let mut total = 0u64;
    for (i, op) in history.ops.iter().enumerate() {
        // Info updates with a known clock are in other updates' causal pasts,
        // so they count as updates too.
        if op.f.is_update() && op.outcome != Outcome::Fail {
            total += 1;
            if op.clock_sum > 0 {
                per_key.entry(op.key).or_default().push((op.clock_sum, i));
            }
        }
    }
    let element = |i: usize| {
        let op = &history.ops[i];
        match op.f {
            Function::Put | Function::Delete => op.field() as u64,
            _ => op.value as u64,
        }
    };
    let mut keys: Vec<u32> = per_key.keys().copied().collect();
    keys.sort_unstable();
    let (mut updates, mut conflicts) = (0u64, 0u64);
    let mut lww_overwritten = 0u64;
    let mut hottest = (0u32, 0u64);
    for key in keys {
        let mut list = per_key.remove(&key).unwrap_or_default();
        list.sort_unstable();
        updates += list.len() as u64;
        // (element, replica) pairs, to know which elements several replicas updated.
        let mut writers: FxHashMap<u64, FxHashSet<u16>> = FxHashMap::default();
        if element_level {
            for &(_, i) in &list {
                writers
                    .entry(element(i))
                    .or_default()
                    .insert(history.ops[i].replica);
            }
        }
        let mut here = 0u64;
        let mut start = 0;
        while start < list.len() {
            let sum = list[start].0;
            let end = start + list[start..].partition_point(|(s, _)| *s == sum);
            // Ordered with every update of the key: `start` smaller sums,
            // exactly sum - 1 of them, and alone with its sum.
            let ordered = end - start == 1 && start + 1 == sum as usize;
            for &(_, i) in &list[start..end] {
                let conflicting = !ordered
                    && (!element_level || writers.get(&element(i)).is_some_and(|r| r.len() > 1));
                here += u64::from(conflicting);
            }
            if workload == Workload::LwwRegister && end - start > 1 {
                // Writes with one sum are concurrent: all but the greatest
                // (timestamp, replica) are overwritten by a concurrent winner.
                lww_overwritten += (end - start - 1) as u64;
            }
            start = end;
        }
        conflicts += here;
        if here > hottest.1 {
            hottest = (key, here);
        }
    }
    if updates == 0 {
        let mut check = Check::not_judged(
            "conflicts",
            "no update carries a clock, so concurrency is not measured",
        );
        check.judged(0, total, "updates", "no update carries a clock");
        return check;
    }
    let share = conflicts as f64 / updates as f64 * 100.0;
    let mut check = Check::new(
        "conflicts",
        Verdict::Valid,
        format!(
            "{conflicts} of {updates} updates ({share:.1}%) {} concurrent with another update of the same {}{}",
            if element_level { "may have been" } else { "were" },
            match workload {
                Workload::LwwMap => "field",
                w if element_level && w != Workload::LwwMap => "element",
                _ => "key",
            },
            if conflicts > 0 {
                format!(" (most on key {})", hottest.0)
            } else {
                String::new()
            }
        ),
    );
    check.count("updates", updates);
    check.count("conflicts", conflicts);
    check.count("hottest_key", hottest.0 as u64);
    check.count("hottest_key_conflicts", hottest.1);
    match workload {
        Workload::LwwRegister => {
            check.count("lww_overwritten_by_concurrent_winner", lww_overwritten)
        }
        Workload::MvRegister => {
            let (mut reads, mut siblings, mut most) = (0u64, 0u64, 0u64);
            for f in &history.finals.decode() {
                if let Value::Elems(e) = f.value {
                    reads += 1;
                    siblings += e.len() as u64;
                    most = most.max(e.len() as u64);
                }
            }
            check.count("mv_final_siblings", siblings);
            check.count("mv_final_reads", reads);
            check.count("mv_most_siblings", most);
        }
        Workload::OrSet => check.count("or_set_add_wins", or_set_add_wins(history)),
        _ => {}
    }
    check.judged(updates, total, "updates", "no update carries a clock");
    check
}

/// OR-Set adds that won over a concurrent remove: the remove did not
/// observe the add's dot, and the add's clock sum is at most the remove's
/// (so the remove is not in the add's past either).
fn or_set_add_wins(history: &History) -> u64 {
    // (key, element) -> adds with a known dot: (dot, clock sum)
    let mut adds: FxHashMap<(u32, i64), Vec<(converge_models::Dot, u32)>> = FxHashMap::default();
    for op in &history.ops {
        if op.f == Function::Add && op.outcome != Outcome::Fail && !op.meta_unknown() {
            adds.entry((op.key, op.value))
                .or_default()
                .push((converge_models::Dot::new(op.replica, op.aux), op.clock_sum));
        }
    }
    let mut won: FxHashSet<(u16, u64)> = FxHashSet::default();
    for op in &history.ops {
        if op.f != Function::Remove || op.outcome == Outcome::Fail || op.meta_unknown() {
            continue;
        }
        let Some(list) = adds.get(&(op.key, op.value)) else {
            continue;
        };
        let observed: FxHashSet<converge_models::Dot> = history.observed(op).collect();
        for (dot, sum) in list {
            if *sum > 0 && op.clock_sum > 0 && *sum <= op.clock_sum && !observed.contains(dot) {
                won.insert((dot.replica, dot.counter));
            }
        }
    }
    won.len() as u64
}
