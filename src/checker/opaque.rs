//! Data-loss checks for datatypes whose metadata a black-box target hides
//! (no dots, timestamps or vector clocks in the history), judged from
//! real time and final reads alone. Weaker than the in-process checks, but
//! sound: each finding is a loss no correct implementation can show.
//!
//! Semantics everywhere: a `fail` update never happened; an `info` update
//! may take effect at any time after its call, or never; an op precedes
//! another only when it returned before the other was called.
//!
//! - every datatype: a final value must have been written by an update
//!   that may have happened (not only by `fail`ed ones);
//! - 2P-Set: an acknowledged add must be in every final read unless a
//!   remove of the element could have seen an add of it: an `ok` remove
//!   that did not return before that add was called, or an `info` one;
//! - OR-Set (add-wins): an acknowledged add must be in every final read
//!   unless a remove could have observed it: an `ok` remove that did not
//!   return before the add was called, or an `info` one (it may take effect
//!   later). A `fail`ed remove excuses nothing. An excused add is judged
//!   only when every final read holds it; one that is gone is not judged;
//! - LWW-Register: a final read holds at most one value, and not none once
//!   a write was acknowledged. Where writes report their timestamp (`aux`)
//!   the final value must be the acknowledged write with the greatest one,
//!   or an indeterminate write; a write followed, through the same replica,
//!   by a later acknowledged write cannot be the final value;
//! - LWW-Map: per field, as an LWW-Register whose deletes may empty it;
//! - MV-Register: every acknowledged write is a final sibling or is covered
//!   by one: a sibling can only cover writes its causal context was read
//!   after (`aux` of a write holds when its context's read returned), and a
//!   superseded write is covered, through a chain, by a final sibling.

use super::{finals_undecidable, Check, Finding};
use crate::history::{Function, History, OpRecord, Outcome, UNKNOWN_AUX};
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
    let mut check = Check::new("data-loss", Verdict::Valid, "");
    let (mut lost, mut unexpected) = (0u64, 0u64);
    let (mut judged, mut total) = (0u64, 0u64);
    let mut unit = unit_of(history.workload());
    let mut unknown = None;
    let mut findings_total = 0;
    for key in &keys {
        // One key: judged in place, op indices are already the history's.
        let split;
        let (one, index) = if keys.len() == 1 {
            (check_one_key(history), None)
        } else {
            split = history.only_key(*key);
            (check_one_key(&split.0), Some(&split.1))
        };
        lost += one.counts.get("lost").copied().unwrap_or(0);
        unexpected += one.counts.get("unexpected").copied().unwrap_or(0);
        if let Some(j) = &one.judged {
            judged += j.judged;
            total += j.total;
            unit = j.of.clone();
        }
        if one.verdict == Verdict::Unknown {
            unknown.get_or_insert(one.summary.clone());
        }
        check.verdict = check.verdict.and(one.verdict);
        findings_total += one.findings_total;
        for mut finding in one.findings {
            finding.key = Some(*key);
            if let Some(index) = index {
                finding.ops = finding.ops.iter().map(|&i| index[i]).collect();
            }
            check.find(finding);
        }
    }
    check.findings_total = findings_total;
    check.count("keys", keys.len() as u64);
    check.count("lost", lost);
    check.count("unexpected", unexpected);
    check.summary = match (check.verdict, unknown) {
        (Verdict::Invalid, _) => {
            format!("{lost} acknowledged update(s) lost, {unexpected} unexpected value(s)")
        }
        (Verdict::Unknown, Some(why)) => why,
        _ => format!(
            "no acknowledged update lost, no value out of nowhere ({judged}/{total} {unit} judged, black-box rules, per key)"
        ),
    };
    let why = if keys.is_empty() {
        "nothing to judge: no update and no final read"
    } else {
        "no acknowledged update whose survival the final reads can decide"
    };
    if check.verdict == Verdict::Unknown && judged == 0 {
        // Keep the reason an undecidable key gave.
        check.count("judged", 0);
        check.count("total", total);
        check.judged = Some(super::Judged {
            judged,
            total,
            of: unit,
        });
        check.not_judged = true;
    } else {
        check.judged(judged, total, &unit, why);
    }
    check
}

/// What a workload's black-box rule counts.
fn unit_of(workload: Option<Workload>) -> String {
    match workload {
        Some(Workload::LwwRegister) => "final reads",
        Some(Workload::LwwMap) => "fields",
        Some(Workload::MvRegister) => "writes",
        _ => "adds",
    }
    .to_string()
}

/// When `op` returned (for an `info` op: when the client gave up).
fn returned(op: &OpRecord) -> u64 {
    op.invoke_ns.saturating_add(op.latency_ns)
}

/// `a` precedes `b`: it returned before `b` was called.
fn precedes(a: &OpRecord, b: &OpRecord) -> bool {
    returned(a) < b.invoke_ns
}

/// A remove that may have happened and may have observed `add`: an `info`
/// remove may take effect at any time after its call; an `ok` one took
/// effect before it returned, so not if it returned before the add was
/// called.
fn could_observe(remove: &OpRecord, add: &OpRecord) -> bool {
    match remove.outcome {
        Outcome::Fail => false,
        Outcome::Info => true,
        Outcome::Ok => !precedes(remove, add),
    }
}

/// One key's verdict, counts (`lost`, `unexpected`) and judged/total.
fn check_one_key(history: &History) -> Check {
    let mut check = Check::new("data-loss", Verdict::Valid, "");
    let workload = history.workload();
    if let Some(why) = finals_undecidable(history) {
        check.verdict = Verdict::Unknown;
        check.summary = format!("final values not judged: {why}");
        let total = history
            .ops
            .iter()
            .filter(|op| op.f.is_update() && op.outcome == Outcome::Ok)
            .count() as u64;
        check.judged = Some(super::Judged {
            judged: 0,
            total,
            of: unit_of(workload),
        });
        return check;
    }
    let mut judge = Judge {
        history,
        check: &mut check,
        lost: 0,
        unexpected: 0,
    };
    let (judged, total) = match workload {
        Some(Workload::TwoPSet) => judge.set(true),
        Some(Workload::OrSet) => judge.set(false),
        Some(Workload::LwwRegister) => judge.lww(),
        Some(Workload::MvRegister) => judge.mv(),
        Some(Workload::LwwMap) => judge.map(),
        // Counters and G-Sets have the in-process rules (`data_loss`),
        // which need no metadata.
        _ => (0, 0),
    };
    let (lost, unexpected) = (judge.lost, judge.unexpected);
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
    check.judged(
        judged,
        total,
        &unit_of(workload),
        "no acknowledged update whose survival the final reads can decide",
    );
    check
}

struct Judge<'a> {
    history: &'a History,
    check: &'a mut Check,
    lost: u64,
    unexpected: u64,
}

/// The ops of `f`, with their indices.
fn updates(history: &History, f: Function) -> impl Iterator<Item = (usize, &OpRecord)> + '_ {
    history
        .ops
        .iter()
        .enumerate()
        .filter(move |(_, op)| op.f == f)
}

impl Judge<'_> {
    /// Values written by updates that may have happened.
    fn written(&self, f: Function) -> BTreeSet<u64> {
        updates(self.history, f)
            .filter(|(_, op)| op.outcome != Outcome::Fail)
            .map(|(_, op)| op.value as u64)
            .collect()
    }

    fn finding(&mut self, lost: bool, finding: Finding) {
        if lost {
            self.lost += 1;
        } else {
            self.unexpected += 1;
        }
        self.check.find(finding);
    }

    /// Flags values of a final read nobody could have written.
    fn out_of_nowhere(&mut self, replica: u16, present: &BTreeSet<u64>, written: &BTreeSet<u64>) {
        for e in present.difference(written) {
            self.finding(
                false,
                Finding {
                    message: format!(
                        "replica {replica} returned {e}, which no update that may have happened wrote"
                    ),
                    replica: Some(replica),
                    actual: Some(e.to_string()),
                    ..Finding::default()
                },
            );
        }
    }

    /// 2P-Set (`two_phase`) and OR-Set: acknowledged adds no remove could
    /// excuse must be in every final read. Returns (judged, total) adds.
    fn set(&mut self, two_phase: bool) -> (u64, u64) {
        let written = self.written(Function::Add);
        let mut adds: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        let mut removes: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, op) in self.history.ops.iter().enumerate() {
            match op.f {
                Function::Add if op.outcome != Outcome::Fail => {
                    adds.entry(op.value as u64).or_default().push(i)
                }
                Function::Remove if op.outcome != Outcome::Fail => {
                    removes.entry(op.value as u64).or_default().push(i)
                }
                _ => {}
            }
        }
        let ops = &self.history.ops;
        // element -> the first acknowledged add no remove can excuse.
        let mut required: BTreeMap<u64, usize> = BTreeMap::new();
        let (mut judged, mut total) = (0u64, 0u64);
        let mut excused_adds: Vec<u64> = Vec::new();
        for (e, list) in &adds {
            let removes = removes.get(e).map(Vec::as_slice).unwrap_or(&[]);
            // 2P-Set: a remove that could have seen any add of the element
            // tombstones it for good.
            let tombstoned = two_phase
                && removes
                    .iter()
                    .any(|&r| list.iter().any(|&a| could_observe(&ops[r], &ops[a])));
            for &a in list.iter().filter(|&&a| ops[a].outcome == Outcome::Ok) {
                total += 1;
                let excused =
                    tombstoned || removes.iter().any(|&r| could_observe(&ops[r], &ops[a]));
                if excused {
                    excused_adds.push(*e);
                } else {
                    judged += 1;
                    required.entry(*e).or_insert(a);
                }
            }
        }
        let finals = self.history.finals.decode();
        // Elements every final read holds: an excused add of one of them
        // is judged too (it survived).
        let mut everywhere: Option<BTreeSet<u64>> = None;
        for f in &finals {
            let Value::Elems(items) = f.value else {
                self.wrong_shape(f.replica, f.value, "a list of elements");
                continue;
            };
            let present: BTreeSet<u64> = items.iter().copied().collect();
            everywhere = Some(match everywhere {
                None => present.clone(),
                Some(all) => all.intersection(&present).copied().collect(),
            });
            self.out_of_nowhere(f.replica, &present, &written);
            for (e, &a) in &required {
                if !present.contains(e) {
                    self.finding(
                        true,
                        Finding {
                            message: format!(
                                "replica {} lost {e}: its add was acknowledged and no remove could have {} it",
                                f.replica,
                                if two_phase { "seen" } else { "observed" }
                            ),
                            replica: Some(f.replica),
                            ops: vec![a],
                            expected: Some(format!("contains {e}")),
                            actual: Some(crate::report::short_value(f.value)),
                            ..Finding::default()
                        },
                    );
                }
            }
        }
        let everywhere = everywhere.unwrap_or_default();
        judged += excused_adds
            .iter()
            .filter(|e| everywhere.contains(e))
            .count() as u64;
        (judged, total)
    }

    fn wrong_shape(&mut self, replica: u16, value: &Value, shape: &str) {
        self.finding(
            false,
            Finding {
                message: format!("replica {replica}'s final read is not {shape}"),
                replica: Some(replica),
                expected: Some(shape.into()),
                actual: Some(crate::report::short_value(value)),
                ..Finding::default()
            },
        );
    }

    /// LWW-Register. Returns (judged, total) final reads.
    fn lww(&mut self) -> (u64, u64) {
        let written = self.written(Function::Write);
        let history = self.history;
        let acknowledged: Vec<usize> = updates(history, Function::Write)
            .filter(|(_, op)| op.outcome == Outcome::Ok)
            .map(|(i, _)| i)
            .collect();
        let greatest = acknowledged
            .iter()
            .map(|&i| (i, &history.ops[i]))
            .filter(|(_, op)| op.aux != UNKNOWN_AUX)
            .max_by_key(|(_, op)| op.aux);
        let finals = history.finals.decode();
        let mut judged = 0;
        for f in &finals {
            let Value::Elems(items) = f.value else {
                self.wrong_shape(f.replica, f.value, "a list of at most one value");
                continue;
            };
            judged += 1;
            let present: BTreeSet<u64> = items.iter().copied().collect();
            self.out_of_nowhere(f.replica, &present, &written);
            if items.len() > 1 {
                self.finding(
                    false,
                    Finding {
                        message: format!(
                            "replica {} holds {} values: an LWW register holds one",
                            f.replica,
                            items.len()
                        ),
                        replica: Some(f.replica),
                        expected: Some("at most one value".into()),
                        actual: Some(format!("{items:?}")),
                        ..Finding::default()
                    },
                );
                continue;
            }
            let Some(&value) = items.first() else {
                if let Some(&first) = acknowledged.first() {
                    self.finding(
                        true,
                        Finding {
                            message: format!(
                                "replica {} is empty although {} write(s) were acknowledged",
                                f.replica,
                                acknowledged.len()
                            ),
                            replica: Some(f.replica),
                            ops: vec![first],
                            expected: Some("an acknowledged value".into()),
                            actual: Some("nothing".into()),
                            ..Finding::default()
                        },
                    );
                }
                continue;
            };
            let final_write = history
                .ops
                .iter()
                .find(|op| op.f == Function::Write && op.value as u64 == value);
            if let (Some((gi, g)), Some(w)) = (greatest, final_write) {
                let known = w.outcome == Outcome::Ok && w.aux != UNKNOWN_AUX;
                if known && w.aux < g.aux {
                    self.finding(
                        true,
                        Finding {
                            message: format!(
                                "replica {} ended with {} (timestamp {}), losing write {} with the greatest timestamp {}",
                                f.replica, w.value, w.aux, g.value, g.aux
                            ),
                            replica: Some(f.replica),
                            ops: vec![gi],
                            expected: Some(g.value.to_string()),
                            actual: Some(w.value.to_string()),
                            ..Finding::default()
                        },
                    );
                    continue;
                }
            }
            if let Some((w, later)) = superseded_on_its_replica(history, value) {
                self.finding(
                    true,
                    Finding {
                        message: format!(
                            "replica {} ended with {value}, but a later write through the same replica was acknowledged",
                            f.replica
                        ),
                        replica: Some(f.replica),
                        ops: vec![w, later],
                        actual: Some(value.to_string()),
                        ..Finding::default()
                    },
                );
            }
        }
        (judged, finals.len() as u64)
    }

    /// MV-Register. Returns (judged, total) acknowledged writes.
    fn mv(&mut self) -> (u64, u64) {
        let written = self.written(Function::Write);
        let history = self.history;
        // value -> its writes that may have happened (values are unique per
        // write; a repeated one counts as any of its writes).
        let mut by_value: BTreeMap<u64, Vec<&OpRecord>> = BTreeMap::new();
        for (_, op) in updates(history, Function::Write) {
            if op.outcome != Outcome::Fail {
                by_value.entry(op.value as u64).or_default().push(op);
            }
        }
        let acknowledged: Vec<(usize, &OpRecord)> = updates(history, Function::Write)
            .filter(|(_, op)| op.outcome == Outcome::Ok)
            .collect();
        let finals = history.finals.decode();
        for f in &finals {
            let Value::Elems(items) = f.value else {
                self.wrong_shape(f.replica, f.value, "a list of siblings");
                continue;
            };
            let present: BTreeSet<u64> = items.iter().copied().collect();
            self.out_of_nowhere(f.replica, &present, &written);
            // The latest context any final sibling was based on: a write
            // invoked after it is in no sibling's causal past.
            let covers_until = present
                .iter()
                .filter_map(|v| by_value.get(v))
                .flatten()
                .map(|w| w.aux)
                .max();
            for &(i, w) in &acknowledged {
                let covered = covers_until.is_some_and(|c| c >= w.invoke_ns);
                if !present.contains(&(w.value as u64)) && !covered {
                    self.finding(
                        true,
                        Finding {
                            message: format!(
                                "replica {} lost write {}: it is not a sibling, and no sibling's context was read after it was called, so none could supersede it",
                                f.replica, w.value
                            ),
                            replica: Some(f.replica),
                            ops: vec![i],
                            expected: Some(format!("contains {}", w.value)),
                            actual: Some(format!("{items:?}")),
                            ..Finding::default()
                        },
                    );
                }
            }
        }
        let n = acknowledged.len() as u64;
        (if finals.is_empty() { 0 } else { n }, n)
    }

    /// LWW-Map, per field. Returns (judged, total) fields.
    fn map(&mut self) -> (u64, u64) {
        // field -> (values put by puts that may have happened, an acknowledged
        // put's op, a delete may have happened)
        type Field = (BTreeSet<u64>, Option<usize>, bool);
        let mut fields: BTreeMap<u32, Field> = BTreeMap::new();
        for (i, op) in self.history.ops.iter().enumerate() {
            if op.outcome == Outcome::Fail {
                continue;
            }
            let entry = fields.entry(op.field()).or_default();
            match op.f {
                Function::Put => {
                    entry.0.insert(op.value as u64);
                    if op.outcome == Outcome::Ok {
                        entry.1.get_or_insert(i);
                    }
                }
                Function::Delete => entry.2 = true,
                _ => {}
            }
        }
        let finals = self.history.finals.decode();
        for f in &finals {
            let Value::Map(entries) = f.value else {
                self.wrong_shape(f.replica, f.value, "a map");
                continue;
            };
            let actual: BTreeMap<u32, u64> = entries.iter().copied().collect();
            for (field, value) in &actual {
                if !fields.get(field).is_some_and(|w| w.0.contains(value)) {
                    self.finding(
                        false,
                        Finding {
                            message: format!(
                                "replica {} holds {value} in field {field}, which no put that may have happened wrote there",
                                f.replica
                            ),
                            replica: Some(f.replica),
                            actual: Some(value.to_string()),
                            ..Finding::default()
                        },
                    );
                }
            }
            for (field, (_, acked, deleted)) in &fields {
                if let (Some(i), false, false) = (acked, deleted, actual.contains_key(field)) {
                    self.finding(
                        true,
                        Finding {
                            message: format!(
                                "replica {} lost field {field}: a put was acknowledged and no delete of it may have happened",
                                f.replica
                            ),
                            replica: Some(f.replica),
                            ops: vec![*i],
                            expected: Some(format!("field {field} present")),
                            actual: Some("absent".into()),
                            ..Finding::default()
                        },
                    );
                }
            }
        }
        let n = fields.len() as u64;
        (if finals.is_empty() { 0 } else { n }, n)
    }
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
    history
        .ops
        .iter()
        .enumerate()
        .find(|(_, op)| {
            op.f == Function::Write
                && op.outcome == Outcome::Ok
                && op.replica == write.replica
                && precedes(write, op)
        })
        .map(|(later, _)| (w, later))
}
