//! Monotonic reads: a grow-only counter read of one key on one replica
//! never returns less than an earlier read of it there that had already
//! returned.
//!
//! A crash fault restarts a node empty, so its reads may legitimately drop
//! until it catches up; with crashes in the nemesis the check is skipped
//! (and says so) rather than guessing which reads followed a restart.

use super::{Check, Finding};
use crate::history::{Function, History, Outcome};
use crate::verdict::Verdict;
use converge_models::{Value, Workload};
use std::collections::BTreeMap;

/// An ok read: (invoke, return, value, op index).
type TimedRead = (u64, u64, i64, usize);

/// Checks that each replica's g-counter reads never decrease.
pub fn check(history: &History) -> Check {
    let Some(header) = &history.header else {
        return Check::new("monotonic-reads", Verdict::Unknown, "history has no header");
    };
    if header.workload != Workload::GCounter {
        return Check::not_judged("monotonic-reads", "not a grow-only counter");
    }
    if header.nemesis.contains("crash") {
        return Check::not_judged(
            "monotonic-reads",
            "skipped: the crash fault restarts nodes empty",
        );
    }
    // (replica, key) -> ok reads
    let mut reads: BTreeMap<(u16, u32), Vec<TimedRead>> = BTreeMap::new();
    let mut values = history.read_cursor();
    for (i, op) in history.ops.iter().enumerate() {
        if op.f != Function::Read || op.outcome != Outcome::Ok {
            continue;
        }
        if let Some(Value::Int(v)) = values.value(op) {
            let ret = op.invoke_ns.saturating_add(op.latency_ns);
            reads
                .entry((op.replica, op.key))
                .or_default()
                .push((op.invoke_ns, ret, *v, i));
        }
    }
    let mut check = Check::new("monotonic-reads", Verdict::Valid, "");
    let mut decreases = 0u64;
    let mut total = 0u64;
    let mut compared = 0u64;
    for ((replica, key), list) in &mut reads {
        list.sort_unstable();
        total += list.len() as u64;
        // The highest value among reads that returned before the current
        // read was invoked.
        let mut by_return: Vec<(u64, i64, usize)> = list.iter().map(|r| (r.1, r.2, r.3)).collect();
        by_return.sort_unstable();
        let mut best: Option<(i64, usize)> = None;
        let mut next = 0;
        for &(invoke, _, value, index) in list.iter() {
            while next < by_return.len() && by_return[next].0 < invoke {
                let (_, v, i) = by_return[next];
                if best.is_none_or(|(b, _)| v > b) {
                    best = Some((v, i));
                }
                next += 1;
            }
            compared += u64::from(best.is_some());
            if let Some((earlier, earlier_index)) = best.filter(|(b, _)| value < *b) {
                decreases += 1;
                check.find(Finding {
                    message: format!(
                        "replica {replica} read {value} from key {key} after an earlier read of it there returned {earlier}"
                    ),
                    replica: Some(*replica),
                    key: Some(*key),
                    ops: vec![earlier_index, index],
                    expected: Some(format!(">= {earlier}")),
                    actual: Some(value.to_string()),
                });
            }
        }
    }
    check.count("reads", total);
    check.count("decreases", decreases);
    if decreases > 0 {
        check.verdict = Verdict::Invalid;
        check.summary = format!("{decreases} read(s) went backwards on their replica");
    } else {
        check.summary = format!("{total} reads never went backwards on their replica");
    }
    // A read is judged when an earlier read of its key on its replica had
    // returned before it was called.
    check.judged(
        compared,
        total,
        "reads",
        "no read followed an earlier read of its key on its replica",
    );
    check
}
