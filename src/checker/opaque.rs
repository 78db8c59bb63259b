//! Data-loss checks for datatypes whose metadata a black-box target hides
//! (no dots, timestamps or vector clocks in the history), judged from
//! real time and final reads alone. Weaker than the in-process checks, but
//! sound: each finding is a loss no correct implementation can show.
//!
//! - OR-Set (add-wins): an acknowledged add of `e` with no remove of `e`
//!   invoked after it must be in every final read; an element in a final
//!   read must have been added.
//! - LWW-Register: a final value must have been written.
//! - LWW-Register: a write followed, through the same replica, by a later
//!   acknowledged write cannot be the final value: the later one carries a
//!   greater timestamp. Where writes report their timestamp (`aux`), the
//!   final value must be the acknowledged write with the greatest one, or
//!   an indeterminate write.
//! - MV-Register: final siblings must have been written, and an
//!   acknowledged write survives unless some write's causal context was
//!   read after it was invoked: only such a context can cover it. `aux` of
//!   a write holds when its context's read returned.

use super::{finals_undecidable, Check, Finding};
use crate::history::{Function, History, Outcome};
use crate::verdict::Verdict;
use converge_models::{Value, Workload};
use std::collections::{BTreeMap, BTreeSet};

/// Runs the black-box data-loss check for the history's workload, key by
/// key (the rules below speak of one object).
pub fn check(history: &History) -> Check {
    let keys: BTreeSet<u32> = history
        .ops
        .iter()
        .map(|op| op.key)
        .chain(history.finals.keys())
        .collect();
    if keys.len() <= 1 {
        return check_one_key(history);
    }
    let mut check = Check::new("data-loss", Verdict::Valid, "");
    let (mut lost, mut unexpected) = (0u64, 0u64);
    let mut unknown = None;
    let mut findings_total = 0;
    for key in keys {
        let (sub, index) = history.only_key(key);
        let one = check_one_key(&sub);
        lost += one.counts.get("lost").copied().unwrap_or(0);
        unexpected += one.counts.get("unexpected").copied().unwrap_or(0);
        if one.verdict == Verdict::Unknown {
            unknown.get_or_insert(one.summary.clone());
        }
        check.verdict = check.verdict.and(one.verdict);
        findings_total += one.findings_total;
        for mut finding in one.findings {
            finding.key = Some(key);
            finding.ops = finding.ops.iter().map(|&i| index[i]).collect();
            check.find(finding);
        }
    }
    check.findings_total = findings_total;
    check.count("lost", lost);
    check.count("unexpected", unexpected);
    check.summary = match (check.verdict, unknown) {
        (Verdict::Invalid, _) => {
            format!("{lost} acknowledged update(s) lost, {unexpected} unexpected value(s)")
        }
        (Verdict::Unknown, Some(why)) => why,
        _ => {
            "no acknowledged update lost, no value out of nowhere (black-box rules, per key)".into()
        }
    };
    check
}

fn check_one_key(history: &History) -> Check {
    let mut check = Check::new("data-loss", Verdict::Valid, "");
    if let Some(why) = finals_undecidable(history) {
        check.verdict = Verdict::Unknown;
        check.summary = format!("final values not judged: {why}");
        return check;
    }
    let mut written: BTreeSet<u64> = BTreeSet::new();
    // element -> latest invoke of an ok add; element -> latest remove invoke
    let mut last_ok_add: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    let mut last_remove: BTreeMap<u64, u64> = BTreeMap::new();
    // Latest time any write's context was read.
    let mut contexts: Vec<u64> = Vec::new();
    for (i, op) in history.ops.iter().enumerate() {
        let e = op.value as u64;
        match (op.f, op.outcome) {
            (Function::Add | Function::Write, outcome) => {
                written.insert(e);
                if outcome == Outcome::Ok {
                    let slot = last_ok_add.entry(e).or_insert((op.invoke_ns, i));
                    if op.invoke_ns >= slot.0 {
                        *slot = (op.invoke_ns, i);
                    }
                }
                if op.f == Function::Write && outcome != Outcome::Fail {
                    contexts.push(op.aux);
                }
            }
            (Function::Remove, _) => {
                let t = last_remove.entry(e).or_insert(op.invoke_ns);
                *t = (*t).max(op.invoke_ns);
            }
            _ => {}
        }
    }
    let workload = history.workload();
    let mut lost = 0u64;
    let mut unexpected = 0u64;
    for f in &history.finals.decode() {
        let Value::Elems(items) = f.value else {
            continue;
        };
        let present: BTreeSet<u64> = items.iter().copied().collect();
        for e in present.difference(&written) {
            unexpected += 1;
            check.find(Finding {
                message: format!("replica {} returned {e}, which nobody wrote", f.replica),
                replica: Some(f.replica),
                actual: Some(e.to_string()),
                ..Finding::default()
            });
        }
        match workload {
            Some(Workload::OrSet) => {
                for (e, (added, index)) in &last_ok_add {
                    let removed_later = last_remove.get(e).is_some_and(|r| r >= added);
                    if !removed_later && !present.contains(e) {
                        lost += 1;
                        check.find(Finding {
                            message: format!(
                                "replica {} lost {e}: its add was acknowledged and no remove came after it",
                                f.replica
                            ),
                            replica: Some(f.replica),
                            ops: vec![*index],
                            expected: Some(format!("contains {e}")),
                            ..Finding::default()
                        });
                    }
                }
            }
            Some(Workload::MvRegister) => {
                let latest_context = contexts.iter().copied().max().unwrap_or(0);
                for (i, op) in history.ops.iter().enumerate() {
                    let safe = op.f == Function::Write
                        && op.outcome == Outcome::Ok
                        && op.invoke_ns > latest_context;
                    if safe && !present.contains(&(op.value as u64)) {
                        lost += 1;
                        check.find(Finding {
                            message: format!(
                                "replica {} lost write {}: no write's context was read after it, so none could supersede it",
                                f.replica, op.value
                            ),
                            replica: Some(f.replica),
                            ops: vec![i],
                            expected: Some(format!("contains {}", op.value)),
                            actual: Some(format!("{items:?}")),
                            ..Finding::default()
                        });
                    }
                }
            }
            Some(Workload::LwwRegister) => {
                let greatest = history
                    .ops
                    .iter()
                    .enumerate()
                    .filter(|(_, op)| {
                        op.f == Function::Write
                            && op.outcome == Outcome::Ok
                            && op.aux != crate::history::UNKNOWN_AUX
                    })
                    .max_by_key(|(_, op)| op.aux);
                let final_write = items.first().and_then(|v| {
                    history
                        .ops
                        .iter()
                        .find(|op| op.f == Function::Write && op.value as u64 == *v)
                });
                if let (Some((gi, g)), Some(w)) = (greatest, final_write) {
                    let known = w.outcome == Outcome::Ok && w.aux != crate::history::UNKNOWN_AUX;
                    if known && w.aux < g.aux {
                        lost += 1;
                        check.find(Finding {
                            message: format!(
                                "replica {} ended with {} (timestamp {}), losing write {} with the greatest timestamp {}",
                                f.replica, w.value, w.aux, g.value, g.aux
                            ),
                            replica: Some(f.replica),
                            ops: vec![gi],
                            expected: Some(g.value.to_string()),
                            actual: Some(w.value.to_string()),
                            ..Finding::default()
                        });
                        continue;
                    }
                }
                if let [value] = items.as_slice() {
                    if let Some((w, later)) = superseded_on_its_replica(history, *value) {
                        lost += 1;
                        check.find(Finding {
                            message: format!(
                                "replica {} ended with {value}, but a later write through the same replica was acknowledged",
                                f.replica
                            ),
                            replica: Some(f.replica),
                            ops: vec![w, later],
                            actual: Some(value.to_string()),
                            ..Finding::default()
                        });
                    }
                }
            }
            _ => {}
        }
    }
    check.count("lost", lost);
    check.count("unexpected", unexpected);
    if lost + unexpected > 0 {
        check.verdict = Verdict::Invalid;
        check.summary =
            format!("{lost} acknowledged update(s) lost, {unexpected} unexpected value(s)");
    } else {
        check.summary =
            "no acknowledged update lost, no value out of nowhere (black-box rules)".into();
    }
    check
}

/// For an LWW register value: the write of it and a later acknowledged
/// write through the same replica, invoked after it returned, if any.
fn superseded_on_its_replica(history: &History, value: u64) -> Option<(usize, usize)> {
    let (w, write) = history
        .ops
        .iter()
        .enumerate()
        .find(|(_, op)| op.f == Function::Write && op.value as u64 == value)?;
    if write.outcome != Outcome::Ok {
        return None;
    }
    let returned = write.invoke_ns + write.latency_ns as u64;
    history
        .ops
        .iter()
        .enumerate()
        .find(|(_, op)| {
            op.f == Function::Write
                && op.outcome == Outcome::Ok
                && op.replica == write.replica
                && op.invoke_ns > returned
        })
        .map(|(later, _)| (w, later))
}
