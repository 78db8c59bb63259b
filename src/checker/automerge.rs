//! Checks of the automerge target (see [`crate::target::automerge`]).
//!
//! Convergence and idempotency are the generic checkers: final reads include
//! the heads and a hash of the JSON export as pseudo-keys, so "every replica
//! returns the same value for every key" means equal heads and equal
//! hydrated values; probes cover self-merge, stale merge, re-delivered sync
//! messages and save/load. Data loss is specific: every value a writer put
//! carries a unique tag (list elements, register values) or is a unique code
//! point (text), so each can be followed to the final documents.

use super::{convergence, finals_undecidable, idempotency, Check, Finding};
use crate::history::{Function, History, Outcome};
use crate::target::automerge::layout::{Layout, Slot};
use crate::verdict::Verdict;
use converge_models::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Every check of an automerge history.
pub fn check_all(history: &History) -> Vec<Check> {
    vec![
        convergence::check(history),
        data_loss(history),
        idempotency::check(history),
        conflicts(history).optional(),
    ]
}

fn layout(history: &History) -> Result<Layout, String> {
    let header = history
        .header
        .as_ref()
        .ok_or("no header: the key layout is unknown")?;
    Layout::from_total(header.keys).ok_or_else(|| {
        format!(
            "header declares {} keys, which is no automerge layout (2n + 4)",
            header.keys
        )
    })
}

/// What the ops say a key must hold.
#[derive(Default)]
struct Expected {
    /// Counter: sum of acknowledged deltas, and the range indeterminate ones add.
    sum: i64,
    maybe_low: i64,
    maybe_high: i64,
    /// Register or sequence: written value -> (op index, definitely happened).
    written: HashMap<u64, (usize, bool)>,
    /// Values overwritten (register) or deleted (sequence) by an acknowledged op.
    gone: HashMap<u64, usize>,
    /// ... or by an indeterminate one.
    maybe_gone: HashSet<u64>,
}

fn expectations(history: &History, layout: Layout) -> BTreeMap<u32, Expected> {
    let mut by_key: BTreeMap<u32, Expected> = BTreeMap::new();
    for (i, op) in history.ops.iter().enumerate() {
        if op.outcome == Outcome::Fail || !op.f.is_update() {
            continue;
        }
        let definite = op.outcome == Outcome::Ok;
        let e = by_key.entry(op.key).or_default();
        match (layout.slot(op.key), op.f) {
            (Some(Slot::Counter(_)), Function::Increment) => {
                if definite {
                    e.sum += op.value;
                } else if op.value < 0 {
                    e.maybe_low += op.value;
                } else {
                    e.maybe_high += op.value;
                }
            }
            (Some(Slot::Register(_)), Function::Write)
            | (Some(Slot::List | Slot::Text), Function::Add) => {
                e.written.insert(op.value as u64, (i, definite));
                // A write overwrote what it saw.
                for dot in history.observed(op) {
                    if definite {
                        e.gone.insert(dot.counter, i);
                    } else {
                        e.maybe_gone.insert(dot.counter);
                    }
                }
            }
            (Some(Slot::List | Slot::Text), Function::Remove) => {
                if definite {
                    e.gone.insert(op.value as u64, i);
                } else {
                    e.maybe_gone.insert(op.value as u64);
                }
            }
            _ => {}
        }
    }
    by_key
}

#[derive(Default)]
struct Tally {
    lost: u64,
    unexpected: u64,
    duplicates: u64,
}

/// Zero data loss: counters equal the sum of acknowledged increments (plus
/// any subset of indeterminate ones); every acknowledged register value is
/// among `get_all` unless a write that saw it overwrote it, and nothing else
/// is; every inserted list element and text character is present exactly
/// once unless a delete removed it, and nothing else is.
pub fn data_loss(history: &History) -> Check {
    let layout = match layout(history) {
        Ok(l) => l,
        Err(why) => return Check::new("data-loss", Verdict::Unknown, why),
    };
    if let Some(why) = finals_undecidable(history) {
        return Check::new("data-loss", Verdict::Unknown, why);
    }
    let expected = expectations(history, layout);
    let empty = Expected::default();
    let mut tally = Tally::default();
    let mut findings = Vec::new();
    let mut judged = 0u64;
    for read in &history.finals.decode() {
        let e = expected.get(&read.key).unwrap_or(&empty);
        let mut finding = |message: String, ops: Vec<usize>, want: String, got: String| {
            findings.push(Finding {
                message,
                key: Some(read.key),
                replica: Some(read.replica),
                ops,
                expected: Some(want),
                actual: Some(got),
            })
        };
        match (layout.slot(read.key), read.value) {
            (Some(Slot::Counter(i)), Value::Int(v)) => {
                judged += 1;
                let (low, high) = (e.sum + e.maybe_low, e.sum + e.maybe_high);
                if *v < low || *v > high {
                    if *v < low {
                        tally.lost += 1;
                    } else {
                        tally.unexpected += 1;
                    }
                    let want = if low == high {
                        low.to_string()
                    } else {
                        format!("{low}..={high}")
                    };
                    finding(
                        format!("counter c{i} is not the sum of its acknowledged increments"),
                        Vec::new(),
                        want,
                        v.to_string(),
                    );
                }
            }
            (Some(slot @ (Slot::Register(_) | Slot::List | Slot::Text)), Value::Elems(items)) => {
                judged += 1;
                let what = match slot {
                    Slot::Register(i) => format!("register r{i}"),
                    Slot::List => "the list".into(),
                    _ => "the text".into(),
                };
                let mut seen = HashSet::with_capacity(items.len());
                for item in items {
                    if !seen.insert(*item) {
                        tally.duplicates += 1;
                        let ops = e.written.get(item).map(|w| vec![w.0]).unwrap_or_default();
                        finding(
                            format!("{what} holds {item} more than once"),
                            ops,
                            "once".into(),
                            "twice or more".into(),
                        );
                        continue;
                    }
                    match (e.written.get(item), e.gone.get(item)) {
                        (None, _) => {
                            tally.unexpected += 1;
                            finding(
                                format!("{what} holds {item}, which no writer wrote"),
                                Vec::new(),
                                "absent".into(),
                                item.to_string(),
                            );
                        }
                        (Some((w, _)), Some(g)) => {
                            tally.unexpected += 1;
                            let verb = if matches!(slot, Slot::Register(_)) {
                                "overwritten by a write that saw it"
                            } else {
                                "deleted"
                            };
                            finding(
                                format!("{what} still holds {item}, which was {verb}"),
                                vec![*w, *g],
                                "absent".into(),
                                item.to_string(),
                            );
                        }
                        (Some(_), None) => {}
                    }
                }
                let mut lost: Vec<(usize, u64)> = e
                    .written
                    .iter()
                    .filter(|(item, (_, definite))| {
                        *definite
                            && !seen.contains(*item)
                            && !e.gone.contains_key(*item)
                            && !e.maybe_gone.contains(*item)
                    })
                    .map(|(item, (op, _))| (*op, *item))
                    .collect();
                lost.sort_unstable();
                tally.lost += lost.len() as u64;
                for (op, item) in lost {
                    finding(
                        format!("{what} lost {item}: acknowledged, never overwritten or deleted, absent"),
                        vec![op],
                        format!("{item} present"),
                        crate::report::short_value(read.value),
                    );
                }
            }
            (Some(Slot::Heads | Slot::Document), _) => {}
            (_, value) => {
                tally.unexpected += 1;
                finding(
                    format!("key {} does not read as its kind of object", read.key),
                    Vec::new(),
                    "a counter (integer) or a sequence of tags".into(),
                    crate::report::short_value(value),
                );
            }
        }
    }
    let bad = tally.lost + tally.unexpected + tally.duplicates;
    let mut check = if bad == 0 {
        Check::new(
            "data-loss",
            Verdict::Valid,
            format!("{judged} final reads hold every acknowledged change and nothing else"),
        )
    } else {
        Check::new(
            "data-loss",
            Verdict::Invalid,
            format!(
                "{} lost, {} unexpected, {} duplicated value(s) in final reads",
                tally.lost, tally.unexpected, tally.duplicates
            ),
        )
    };
    check.count("lost", tally.lost);
    check.count("unexpected", tally.unexpected);
    check.count("duplicates_in_reads", tally.duplicates);
    check.count("final_reads_judged", judged);
    for f in findings {
        check.find(f);
    }
    check
}

/// Informational: conflicts automerge had to keep. `conflicts` counts
/// register values still concurrent at the end (siblings beyond the first,
/// on the first replica read), `merged_conflicts` the puts that overwrote
/// more than one concurrent value.
pub fn conflicts(history: &History) -> Check {
    let Ok(layout) = layout(history) else {
        return Check::not_judged("conflicts", "no automerge layout");
    };
    let first = history.finals.replicas_and_keys().next().map(|(r, _)| r);
    let finals = history.finals.decode();
    let siblings: u64 = finals
        .iter()
        .filter(|f| Some(f.replica) == first)
        .filter(|f| matches!(layout.slot(f.key), Some(Slot::Register(_))))
        .map(|f| match f.value {
            Value::Elems(v) => v.len().saturating_sub(1) as u64,
            _ => 0,
        })
        .sum();
    let merged = history
        .ops
        .iter()
        .filter(|op| op.f == Function::Write && history.observed(op).nth(1).is_some())
        .count() as u64;
    let mut check = Check::new(
        "conflicts",
        Verdict::Valid,
        format!("{siblings} concurrent register value(s) kept at the end; {merged} put(s) resolved a conflict"),
    );
    check.count("conflicts", siblings);
    check.count("merged_conflicts", merged);
    let updates = history
        .ops
        .iter()
        .filter(|op| op.f.is_update() && op.outcome != Outcome::Fail)
        .count() as u64;
    check.count("updates", updates);
    check
}
