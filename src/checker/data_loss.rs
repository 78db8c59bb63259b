//! Zero data loss: every acknowledged update survives in every final read,
//! as the datatype defines it. `info` updates may or may not have happened;
//! `fail` updates did not.
//!
//! - counters: the value is the definite sum plus some subset of `info` deltas;
//! - G-Set / 2P-Set: Jepsen set-full (stable / lost / never-read / stale),
//!   plus duplicates inside any read, which Jepsen's check misses;
//! - OR-Set: an element is present iff one of its add dots was observed by no remove;
//! - MV-Register: exactly the writes that are maximal by vector clock;
//! - LWW-Register / LWW-Map: the write with the greatest (timestamp, replica).

use super::{finals_by_key, finals_undecidable, ops_by_key, Check, Finding};
use crate::history::reads::{difference, strictly_increasing};
use crate::history::{Function, History, OpRecord, Outcome, SetDiff};
use crate::report::short_value;
use crate::verdict::Verdict;
use converge_models::{Dot, Value, Workload};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::{BTreeMap, BTreeSet};

/// Runs the data-loss checker of the history's workload.
pub fn check(history: &History) -> Check {
    let Some(workload) = history.workload() else {
        return Check::new("data-loss", Verdict::Unknown, "history has no header");
    };
    let mut check = Check::new("data-loss", Verdict::Valid, "");
    let mut lost = 0u64;
    let mut unexpected = 0u64;
    let mut undecided = 0u64;
    let mut keys = 0u64;
    // Updates that may have happened, and those on keys a final read judged.
    let (mut judged, mut total) = (0u64, 0u64);
    // Duplicates inside a set read are a violation whether or not the run
    // quiesced. MV-Register siblings are per write, so equal values may repeat.
    let duplicates = if workload == Workload::MvRegister {
        0
    } else {
        check_duplicates(history, &mut check)
    };
    let undecidable = finals_undecidable(history);
    let decoded = history.finals.decode();
    let finals = finals_by_key(&decoded);
    if undecidable.is_none() {
        let by_key = ops_by_key(history);
        let empty = Vec::new();
        let all_keys: BTreeSet<u32> = by_key.keys().chain(finals.keys()).copied().collect();
        for key in all_keys {
            keys += 1;
            let ops = by_key.get(&key).unwrap_or(&empty);
            let reads = finals.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let updates = ops
                .iter()
                .filter(|&&i| {
                    let op = &history.ops[i];
                    op.f.is_update() && op.outcome != Outcome::Fail
                })
                .count() as u64;
            total += updates;
            if reads.is_empty() {
                // Updates with no final read at all: nothing shows they survived.
                undecided += 1;
                check.find(Finding {
                    message: format!("key {key} has operations but no final read"),
                    key: Some(key),
                    ops: ops.iter().take(8).copied().collect(),
                    ..Finding::default()
                });
                continue;
            }
            judged += updates;
            let judge = KeyJudge {
                history,
                key,
                ops,
                reads,
                workload,
            };
            let (l, u, d) = match workload {
                Workload::GCounter | Workload::PnCounter => judge.counter(&mut check),
                Workload::GSet | Workload::TwoPSet => judge.set(&mut check),
                Workload::OrSet => judge.or_set(&mut check),
                Workload::LwwRegister => judge.lww(&mut check),
                Workload::MvRegister => judge.mv(&mut check),
                Workload::LwwMap => judge.lww_map(&mut check),
            };
            lost += l;
            unexpected += u;
            undecided += d;
        }
    }
    check.count("keys", keys);
    check.count("lost", lost);
    check.count("unexpected", unexpected);
    check.count("duplicates_in_reads", duplicates);
    check.count("undecided_keys", undecided);
    check.verdict = if lost + unexpected + duplicates > 0 {
        Verdict::Invalid
    } else if undecidable.is_some() || undecided > 0 {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    check.summary = match (&undecidable, check.verdict) {
        (_, Verdict::Invalid) => format!(
            "{lost} acknowledged update(s) lost, {unexpected} unexpected value(s), {duplicates} read(s) with duplicates"
        ),
        (Some(why), _) => format!("final values not judged: {why}"),
        (None, Verdict::Unknown) => format!(
            "{undecided} key(s) could not be judged (no final read)"
        ),
        _ => format!("every acknowledged update survives on every replica ({keys} keys)"),
    };
    if undecidable.is_some() {
        total = history
            .ops
            .iter()
            .filter(|op| op.f.is_update() && op.outcome != Outcome::Fail)
            .count() as u64;
    }
    if check.verdict == Verdict::Unknown {
        // Keep the reason the final reads could not be judged.
        check.count("judged", judged);
        check.count("total", total);
        check.judged = Some(super::Judged {
            judged,
            total,
            of: "updates".into(),
        });
        check.not_judged = judged == 0;
    } else {
        check.judged(
            judged,
            total,
            "updates",
            "nothing to judge: no update and no final read",
        );
    }
    check
}

/// Flags every read (in-run or final) that repeats an element.
fn check_duplicates(history: &History, check: &mut Check) -> u64 {
    let mut count = 0;
    // Reads from a file need not be sorted; most are, and a strictly
    // increasing list has no duplicate, which one pass over it shows.
    let has_dup = |v: &Value| match v {
        Value::Elems(e) if strictly_increasing(e) => false,
        Value::Elems(e) => {
            let mut seen = HashSet::with_capacity_and_hasher(e.len(), Default::default());
            !e.iter().all(|x| seen.insert(*x))
        }
        Value::Map(m) => {
            let mut seen = HashSet::with_capacity_and_hasher(m.len(), Default::default());
            !m.iter().all(|(f, _)| seen.insert(*f))
        }
        Value::Int(_) => false,
    };
    let mut values = history.read_cursor();
    // A read stored as a diff is a strictly increasing set: no need to
    // build it.
    for (i, op) in history.ops.iter().enumerate() {
        if values.is_diff(op) {
            continue;
        }
        if let Some(v) = values.value(op).filter(|v| has_dup(v)) {
            count += 1;
            check.find(Finding {
                message: "a read returned the same element twice".into(),
                key: Some(op.key),
                replica: Some(op.replica),
                ops: vec![i],
                actual: Some(short_value(v)),
                ..Finding::default()
            });
        }
    }
    for f in history.finals.decode().iter().filter(|f| has_dup(f.value)) {
        count += 1;
        check.find(Finding {
            message: "a final read returned the same element twice".into(),
            key: Some(f.key),
            replica: Some(f.replica),
            actual: Some(short_value(f.value)),
            ..Finding::default()
        });
    }
    count
}

struct KeyJudge<'a> {
    history: &'a History,
    key: u32,
    ops: &'a [usize],
    reads: &'a [(u16, &'a Value)],
    workload: Workload,
}

impl<'a> KeyJudge<'a> {
    fn updates(&self) -> impl Iterator<Item = (usize, &'a OpRecord)> + '_ {
        self.ops
            .iter()
            .map(|&i| (i, &self.history.ops[i]))
            .filter(|(_, op)| op.f.is_update() && op.outcome != Outcome::Fail)
    }

    fn wrong_shape(&self, check: &mut Check, replica: u16, value: &Value, shape: &str) {
        self.lost(
            check,
            replica,
            format!("final read is not {shape}"),
            vec![],
            shape.into(),
            short_value(value),
        );
    }

    fn lost(
        &self,
        check: &mut Check,
        replica: u16,
        message: String,
        ops: Vec<usize>,
        expected: String,
        actual: String,
    ) {
        check.find(Finding {
            message,
            key: Some(self.key),
            replica: Some(replica),
            ops,
            expected: Some(expected),
            actual: Some(actual),
        });
    }

    /// Counters: definite sum plus a subset of indeterminate deltas.
    fn counter(&self, check: &mut Check) -> (u64, u64, u64) {
        let mut definite: i128 = 0;
        let mut maybe: Vec<i64> = Vec::new();
        for (_, op) in self.updates() {
            match op.outcome {
                Outcome::Ok => definite += op.value as i128,
                _ => maybe.push(op.value),
            }
        }
        let acceptable = SubsetSums::new(definite, &maybe);
        let (mut lost, mut unexpected) = (0, 0);
        for (replica, value) in self.reads {
            let Value::Int(v) = value else {
                unexpected += 1;
                self.wrong_shape(check, *replica, value, "an integer");
                continue;
            };
            if !acceptable.contains(*v as i128) {
                let too_low = (*v as i128) < acceptable.low;
                if too_low {
                    lost += 1;
                } else {
                    unexpected += 1;
                }
                self.lost(
                    check,
                    *replica,
                    match (too_low, self.workload) {
                        (true, Workload::GCounter) => format!(
                            "counter lost {} of its acknowledged increments",
                            acceptable.low - *v as i128
                        ),
                        (true, _) => format!(
                            "counter is {} below the least the acknowledged updates allow: an increment lost or a decrement applied more than once",
                            acceptable.low - *v as i128
                        ),
                        (false, _) if (*v as i128) > acceptable.high => format!(
                            "counter is {} above the most the acknowledged and indeterminate updates allow: {}",
                            *v as i128 - acceptable.high,
                            if self.workload == Workload::GCounter {
                                "some increment was applied more than once"
                            } else {
                                "an increment applied more than once or a decrement lost"
                            }
                        ),
                        (false, _) => "counter value is not the acknowledged sum plus any subset of indeterminate deltas".into(),
                    },
                    vec![],
                    acceptable.describe(),
                    v.to_string(),
                );
            }
        }
        (lost, unexpected, 0)
    }

    /// G-Set and 2P-Set: set-full classification against final reads.
    ///
    /// Every element any update names gets one entry in [`SetFates`],
    /// sorted by element; reads are sorted too, so each read is judged by
    /// walking the two side by side instead of hashing every element it
    /// holds (a 1M-op G-Set history reads hundreds of millions of them).
    fn set(&self, check: &mut Check) -> (u64, u64, u64) {
        let mut named: Vec<(u64, usize)> = self
            .updates()
            .filter(|(_, op)| matches!(op.f, Function::Add | Function::Remove))
            .map(|(i, op)| (op.value as u64, i))
            .collect();
        named.sort_unstable();
        let mut fates = SetFates::default();
        for (e, i) in named {
            if fates.elements.last() != Some(&e) {
                fates.push(e);
            }
            let fate = fates.fates.last_mut().expect("pushed above");
            let op = &self.history.ops[i];
            match (op.f, op.outcome) {
                (Function::Add, Outcome::Ok) => {
                    let done = op.invoke_ns.saturating_add(op.latency_ns);
                    // Ops come in index order: on equal times the first wins.
                    if fate.first_ok_add.is_none_or(|(_, t)| done < t) {
                        fate.first_ok_add = Some((i, done));
                    }
                    fate.added = true;
                }
                (Function::Add, _) => fate.added = true,
                (Function::Remove, outcome) => {
                    fate.removed = true;
                    fate.removed_ok |= outcome == Outcome::Ok;
                }
                _ => {}
            }
        }
        // Stale: in-run reads that began after an add was acknowledged and
        // miss it. Acknowledged adds no remove touched are ranked by their
        // acknowledgement time; each replica's reads are followed by their
        // differences (see `ReadChain`).
        let mut by_time: Vec<(u64, usize)> = fates
            .fates
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.removed)
            .filter_map(|(at, f)| f.first_ok_add.map(|(_, t)| (t, at)))
            .collect();
        by_time.sort_unstable();
        for (rank, (_, at)) in by_time.iter().enumerate() {
            fates.ranks[*at] = rank as u32;
        }
        let ack_times: Vec<u64> = by_time.iter().map(|(t, _)| *t).collect();
        let mut stale_reads = 0u64;
        let mut chains: HashMap<u16, ReadChain> = HashMap::default();
        let mut values = self.history.read_cursor();
        let mut diff = SetDiff::default();
        for &i in self.ops {
            let op = &self.history.ops[i];
            let Some(read) = values.read_number(op) else {
                continue;
            };
            let known = ack_times.partition_point(|t| *t < op.invoke_ns);
            let chain = chains
                .entry(op.replica)
                .or_insert_with(|| ReadChain::new(ack_times.len()));
            // Most set reads are stored as the change from the replica's
            // previous read of the key: when the chain is at that read, the
            // stored change is all there is to follow; otherwise the change
            // is worked out from the full values.
            if !(values.diff(op, &mut diff) && diff.base == chain.at) {
                let earlier = chain.at.and_then(|at| match values.read(at as usize) {
                    Some(Value::Elems(e)) => Some(e.clone()),
                    _ => None,
                });
                let Some(Value::Elems(elems)) = values.value(op) else {
                    continue;
                };
                if strictly_increasing(elems) {
                    (diff.removed, diff.added) =
                        difference(earlier.as_deref().unwrap_or(&[]), elems);
                } else {
                    // Duplicates or disorder (an external target): count
                    // this read on its own; the chain stays at the
                    // replica's last sorted read, which the next one is
                    // compared with.
                    let elems = sorted_distinct(elems);
                    let mut seen = 0;
                    fates.walk(&elems, |fates, at| {
                        fates.read[at] = true;
                        seen += usize::from(fates.rank(at).is_some_and(|r| r < known));
                    });
                    if seen < known {
                        stale_reads += 1;
                    }
                    continue;
                }
            }
            chain.follow(&mut fates, &diff.removed, -1);
            chain.follow(&mut fates, &diff.added, 1);
            chain.at = Some(read);
            if !chain.has_all_below(known) {
                stale_reads += 1;
            }
        }
        let (mut lost, mut unexpected) = (0u64, 0u64);
        let mut stable = 0u64;
        for (replica, value) in self.reads {
            let Value::Elems(elems) = value else {
                unexpected += 1;
                self.wrong_shape(check, *replica, value, "a list of elements");
                continue;
            };
            let distinct;
            let elems: &[u64] = if strictly_increasing(elems) {
                elems
            } else {
                distinct = sorted_distinct(elems);
                &distinct
            };
            let mut next = 0;
            for (&e, fate) in fates.elements.iter().zip(&fates.fates) {
                let Some((i, _)) = fate.first_ok_add.filter(|_| !fate.removed) else {
                    continue;
                };
                next = seek(elems, next, |x| *x < e);
                if elems.get(next) == Some(&e) {
                    stable += 1;
                } else {
                    lost += 1;
                    self.lost(
                        check,
                        *replica,
                        format!("acknowledged add of {e} is missing from the final read"),
                        vec![i],
                        format!("contains {e}"),
                        format!("{} elements without {e}", elems.len()),
                    );
                }
            }
            let mut next = 0;
            for &e in elems {
                next = seek(&fates.elements, next, |x| *x < e);
                let (added, removed_ok) = if fates.elements.get(next) == Some(&e) {
                    fates.read[next] = true;
                    (fates.fates[next].added, fates.fates[next].removed_ok)
                } else {
                    (false, false)
                };
                if !added || removed_ok {
                    unexpected += 1;
                    self.lost(
                        check,
                        *replica,
                        if removed_ok {
                            format!("element {e} was removed but is present")
                        } else {
                            format!("element {e} was never added but is present")
                        },
                        vec![],
                        format!("no {e}"),
                        format!("contains {e}"),
                    );
                }
            }
        }
        let never_read = fates
            .fates
            .iter()
            .zip(&fates.read)
            .filter(|(f, read)| f.added && !f.removed && !**read)
            .count() as u64;
        for (name, n) in [
            ("stable", stable),
            ("stale_reads", stale_reads),
            ("never_read", never_read),
        ] {
            *check.counts.entry(name.into()).or_insert(0) += n;
        }
        (lost, unexpected, 0)
    }

    /// OR-Set: an element must be present iff one of its add dots survives every remove.
    fn or_set(&self, check: &mut Check) -> (u64, u64, u64) {
        // dot -> (element, op index, outcome)
        let mut adds: HashMap<Dot, (u64, usize, Outcome)> = HashMap::default();
        let mut removed_ok: HashSet<Dot> = HashSet::default();
        let mut removed_any: HashSet<Dot> = HashSet::default();
        // Indeterminate ops that never reported their dots: an add may be
        // present under any dot; a remove may have removed any dot of its element.
        let mut maybe_added: HashSet<u64> = HashSet::default();
        let mut maybe_removed: HashSet<u64> = HashSet::default();
        for (i, op) in self.updates() {
            if op.meta_unknown() {
                match op.f {
                    Function::Add => maybe_added.insert(op.value as u64),
                    _ => maybe_removed.insert(op.value as u64),
                };
                continue;
            }
            match op.f {
                Function::Add => {
                    adds.insert(
                        Dot::new(op.replica, op.aux),
                        (op.value as u64, i, op.outcome),
                    );
                }
                Function::Remove => {
                    for dot in self.history.observed(op) {
                        removed_any.insert(dot);
                        if op.outcome == Outcome::Ok {
                            removed_ok.insert(dot);
                        }
                    }
                }
                _ => {}
            }
        }
        // element -> (must be present: a surviving ok add; may be present)
        let mut must: BTreeMap<u64, usize> = BTreeMap::new();
        let mut may: HashSet<u64> = maybe_added;
        for (dot, (e, i, outcome)) in &adds {
            if !removed_ok.contains(dot) {
                may.insert(*e);
            }
            if *outcome == Outcome::Ok && !removed_any.contains(dot) && !maybe_removed.contains(e) {
                must.entry(*e)
                    .and_modify(|first| *first = (*first).min(*i))
                    .or_insert(*i);
            }
        }
        let (mut lost, mut unexpected) = (0, 0);
        for (replica, value) in self.reads {
            let Value::Elems(elems) = value else {
                unexpected += 1;
                self.wrong_shape(check, *replica, value, "a list of elements");
                continue;
            };
            let present: HashSet<u64> = elems.iter().copied().collect();
            for (e, i) in &must {
                if !present.contains(e) {
                    lost += 1;
                    self.lost(
                        check,
                        *replica,
                        format!("element {e} has an add no remove observed, yet it is absent"),
                        vec![*i],
                        format!("contains {e}"),
                        short_value(value),
                    );
                }
            }
            for e in BTreeSet::from_iter(present.iter().copied())
                .iter()
                .filter(|e| !may.contains(e))
            {
                unexpected += 1;
                self.lost(
                    check,
                    *replica,
                    format!("element {e} is present though every add of it was removed"),
                    vec![],
                    format!("no {e}"),
                    short_value(value),
                );
            }
        }
        (lost, unexpected, 0)
    }

    /// LWW-Register: the write with the greatest (timestamp, replica) wins.
    fn lww(&self, check: &mut Check) -> (u64, u64, u64) {
        let mut best_ok: Option<(u64, u16, i64, usize)> = None;
        let mut info: Vec<(u64, u16, i64)> = Vec::new();
        for (i, op) in self.updates() {
            let w = (op.aux, op.replica, op.value, i);
            if op.outcome == Outcome::Ok {
                if best_ok.is_none_or(|b| (w.0, w.1) > (b.0, b.1)) {
                    best_ok = Some(w);
                }
            } else {
                info.push((w.0, w.1, w.2));
            }
        }
        let (mut lost, mut unexpected) = (0, 0);
        for (replica, value) in self.reads {
            let actual: Option<i64> = match value {
                Value::Elems(e) if e.len() <= 1 => e.first().map(|v| *v as i64),
                _ => {
                    unexpected += 1;
                    self.lost(
                        check,
                        *replica,
                        "an LWW read must hold at most one value".into(),
                        vec![],
                        "0 or 1 value".into(),
                        short_value(value),
                    );
                    continue;
                }
            };
            let ok = match (best_ok, actual) {
                (None, None) => true,
                (None, Some(v)) => info.iter().any(|w| w.2 == v),
                (Some(_), None) => false,
                (Some(b), Some(v)) => {
                    v == b.2 || info.iter().any(|w| w.2 == v && (w.0, w.1) > (b.0, b.1))
                }
            };
            if !ok {
                match best_ok {
                    Some(b) => {
                        lost += 1;
                        self.lost(
                            check,
                            *replica,
                            format!("the winning write (ts {}, replica {}) was lost", b.0, b.1),
                            vec![b.3],
                            b.2.to_string(),
                            actual.map_or("nothing".into(), |v| v.to_string()),
                        );
                    }
                    None => {
                        unexpected += 1;
                        self.lost(
                            check,
                            *replica,
                            "a value nobody wrote".into(),
                            vec![],
                            "nothing".into(),
                            short_value(value),
                        );
                    }
                }
            }
        }
        (lost, unexpected, 0)
    }

    /// MV-Register: exactly the writes that no other write's clock dominates.
    fn mv(&self, check: &mut Check) -> (u64, u64, u64) {
        // Clocks decoded once per key into one buffer, not once per comparison.
        let mut flat = Vec::new();
        let mut spans = Vec::new();
        for (i, op) in self.updates() {
            let start = flat.len();
            self.history.clock_into(op, &mut flat);
            spans.push((i, op, start..flat.len()));
        }
        let (unknown, writes): (Vec<Indexed<'_>>, Vec<Indexed<'_>>) = spans
            .into_iter()
            .map(|(i, op, span)| (i, op, &flat[span]))
            .partition(|(_, op, _)| op.meta_unknown());
        let has_info = writes.iter().any(|(_, op, _)| op.outcome == Outcome::Info);
        // Without indeterminate writes the maxima are the same for every read.
        let definite: Vec<&Indexed<'_>> = writes.iter().collect();
        // Dots unique among all writes are unique among any subset of them.
        let all_unique = unique_dots(&definite);
        let shared = (!has_info).then(|| maximal_writes(&definite, all_unique));
        // Replicas that agree read the same siblings, whose maxima are the same.
        let mut memo: Vec<(BTreeSet<u64>, Vec<Indexed<'_>>)> = Vec::new();
        let (mut lost, mut unexpected) = (0, 0);
        for (replica, value) in self.reads {
            let Value::Elems(actual) = value else {
                unexpected += 1;
                self.wrong_shape(check, *replica, value, "a list of siblings");
                continue;
            };
            let actual_set: BTreeSet<u64> = actual.iter().copied().collect();
            let memoized = memo
                .iter()
                .find(|(seen, _)| *seen == actual_set)
                .map(|(_, maximal)| maximal.clone());
            let maximal = match (&shared, memoized) {
                (Some(maximal), _) => maximal.clone(),
                (None, Some(maximal)) => maximal,
                (None, None) => {
                    // Indeterminate writes count as taken effect when the read
                    // shows them or something that descends from them.
                    let shown: Vec<&[u64]> = writes
                        .iter()
                        .filter(|(_, op, _)| actual_set.contains(&(op.value as u64)))
                        .map(|(_, _, clock)| *clock)
                        .collect();
                    let effective: Vec<&Indexed<'_>> = writes
                        .iter()
                        .filter(|(_, op, clock)| {
                            op.outcome == Outcome::Ok
                                || shown.iter().any(|s| s == clock || dominated_by(clock, s))
                        })
                        .collect();
                    let maximal = maximal_writes(&effective, all_unique);
                    memo.push((actual_set.clone(), maximal.clone()));
                    maximal
                }
            };
            let expected: BTreeSet<u64> =
                maximal.iter().map(|(_, op, _)| op.value as u64).collect();
            // A shown write with an unknown clock may descend from any write,
            // so expected siblings that are missing may have been superseded.
            let unknown_shown: BTreeSet<u64> = unknown
                .iter()
                .map(|(_, op, _)| op.value as u64)
                .filter(|v| actual_set.contains(v))
                .collect();
            if unknown_shown.is_empty() {
                for (i, op, _) in &maximal {
                    if !actual_set.contains(&(op.value as u64)) {
                        lost += 1;
                        self.lost(
                            check,
                            *replica,
                            format!("concurrent write of {} is not among the siblings", op.value),
                            vec![*i],
                            format!("{expected:?}"),
                            format!("{actual_set:?}"),
                        );
                    }
                }
            }
            for v in actual_set
                .difference(&expected)
                .filter(|v| !unknown_shown.contains(v))
            {
                unexpected += 1;
                self.lost(
                    check,
                    *replica,
                    format!("sibling {v} is not a maximal write"),
                    vec![],
                    format!("{expected:?}"),
                    format!("{actual_set:?}"),
                );
            }
        }
        (lost, unexpected, 0)
    }

    /// LWW-Map: per field, the greatest (timestamp, replica) put or delete wins.
    fn lww_map(&self, check: &mut Check) -> (u64, u64, u64) {
        // field -> (best ok (ts, replica, Some(value)|None, idx), info writes)
        type W = (u64, u16, Option<i64>, usize);
        let mut fields: BTreeMap<u32, (Option<W>, Vec<W>)> = BTreeMap::new();
        for (i, op) in self.updates() {
            let v = (op.f == Function::Put).then_some(op.value);
            let w = (op.aux, op.replica, v, i);
            let entry = fields.entry(op.field()).or_default();
            if op.outcome == Outcome::Ok {
                if entry.0.is_none_or(|b| (w.0, w.1) > (b.0, b.1)) {
                    entry.0 = Some(w);
                }
            } else {
                entry.1.push(w);
            }
        }
        let (mut lost, mut unexpected) = (0, 0);
        for (replica, value) in self.reads {
            let Value::Map(entries) = value else {
                unexpected += 1;
                self.wrong_shape(check, *replica, value, "a map");
                continue;
            };
            let actual: BTreeMap<u32, i64> = entries.iter().map(|(f, v)| (*f, *v as i64)).collect();
            for (field, (best, info)) in &fields {
                let got = actual.get(field).copied();
                let ok = match best {
                    None => got.is_none() || info.iter().any(|w| w.2 == got),
                    Some(b) => {
                        got == b.2 || info.iter().any(|w| w.2 == got && (w.0, w.1) > (b.0, b.1))
                    }
                };
                if !ok {
                    let expected = best.and_then(|b| b.2);
                    if got.is_none() || expected.is_none() {
                        lost += 1;
                    } else {
                        unexpected += 1;
                    }
                    self.lost(
                        check,
                        *replica,
                        format!("field {field} does not hold its last (ts, replica) write"),
                        best.map(|b| vec![b.3]).unwrap_or_default(),
                        expected.map_or("absent".into(), |v| v.to_string()),
                        got.map_or("absent".into(), |v| v.to_string()),
                    );
                }
            }
            for field in actual.keys().filter(|f| !fields.contains_key(f)) {
                unexpected += 1;
                self.lost(
                    check,
                    *replica,
                    format!("field {field} was never written"),
                    vec![],
                    "absent".into(),
                    "present".into(),
                );
            }
        }
        (lost, unexpected, 0)
    }
}

/// An update: its index in the history, its record and its decoded clock
/// (empty when unknown).
type Indexed<'a> = (usize, &'a OpRecord, &'a [u64]);

/// A write's dot as its clock states it: `clock[replica]`.
fn dot_of(op: &OpRecord, clock: &[u64]) -> u64 {
    clock.get(op.replica as usize).copied().unwrap_or(0)
}

/// True when every write has a dot and no two share one.
fn unique_dots(writes: &[&Indexed<'_>]) -> bool {
    let mut seen = HashSet::with_capacity_and_hasher(writes.len(), Default::default());
    writes.iter().all(|(_, op, clock)| {
        let dot = dot_of(op, clock);
        dot > 0 && seen.insert((op.replica, dot))
    })
}

/// True when clock `a` happened strictly before clock `b`.
fn dominated_by(a: &[u64], b: &[u64]) -> bool {
    let len = a.len().max(b.len());
    let get = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..len).all(|i| get(a, i) <= get(b, i)) && (0..len).any(|i| get(a, i) < get(b, i))
}

/// Writes not dominated by any other. Uses the dot shortcut when every write's
/// dot is `(replica, clock[replica])` and unique: then a write is dominated
/// iff another write's clock has seen its dot, which the two largest values
/// of each clock entry decide in O(n * replicas). Falls back to pairwise.
/// `known_unique` says a superset of `writes` was already found to have
/// unique dots.
fn maximal_writes<'a>(writes: &[&Indexed<'a>], known_unique: bool) -> Vec<Indexed<'a>> {
    if !(known_unique || unique_dots(writes)) {
        return writes
            .iter()
            .filter(|(i, _, a)| !writes.iter().any(|(j, _, b)| i != j && dominated_by(a, b)))
            .map(|w| **w)
            .collect();
    }
    // top[r] = the two largest clock[r] values, with the write holding each.
    let width = writes
        .iter()
        .map(|(_, _, clock)| clock.len())
        .max()
        .unwrap_or(0);
    let mut top: Vec<[(u64, usize); 2]> = vec![[(0, usize::MAX); 2]; width];
    for (k, (_, _, clock)) in writes.iter().enumerate() {
        for (r, v) in clock.iter().enumerate() {
            let t = &mut top[r];
            if *v > t[0].0 {
                t[1] = t[0];
                t[0] = (*v, k);
            } else if *v > t[1].0 {
                t[1] = (*v, k);
            }
        }
    }
    writes
        .iter()
        .enumerate()
        .filter(|(k, (_, op, clock))| {
            let t = top[op.replica as usize];
            let best_other = if t[0].1 == *k { t[1].0 } else { t[0].0 };
            best_other < dot_of(op, clock)
        })
        .map(|(_, w)| **w)
        .collect()
}

/// The set of counter values reachable as `base` plus a subset of `maybe`.
struct SubsetSums {
    low: i128,
    high: i128,
    /// Exact reachable offsets from `low`, when small enough to enumerate.
    exact: Option<Vec<bool>>,
}

const EXACT_LIMIT: i128 = 1 << 22;
const EXACT_WORK_LIMIT: i128 = 1 << 28;

impl SubsetSums {
    fn new(base: i128, maybe: &[i64]) -> Self {
        let neg: i128 = maybe.iter().filter(|d| **d < 0).map(|d| *d as i128).sum();
        let pos: i128 = maybe.iter().filter(|d| **d > 0).map(|d| *d as i128).sum();
        let (low, high) = (base + neg, base + pos);
        let span = high - low;
        let work = span.saturating_mul(maybe.len() as i128);
        let exact = (span <= EXACT_LIMIT && work <= EXACT_WORK_LIMIT).then(|| {
            let mut reach = vec![false; span as usize + 1];
            // Offset of `base` from `low` is -neg.
            reach[(-neg) as usize] = true;
            for d in maybe {
                let d = *d as i128;
                if d > 0 {
                    for s in (0..reach.len()).rev() {
                        if reach[s] && ((s as i128 + d) as usize) < reach.len() {
                            reach[(s as i128 + d) as usize] = true;
                        }
                    }
                } else if d < 0 {
                    for s in 0..reach.len() {
                        if reach[s] && s as i128 + d >= 0 {
                            reach[(s as i128 + d) as usize] = true;
                        }
                    }
                }
            }
            reach
        });
        SubsetSums { low, high, exact }
    }

    fn contains(&self, v: i128) -> bool {
        if v < self.low || v > self.high {
            return false;
        }
        match &self.exact {
            Some(reach) => reach[(v - self.low) as usize],
            // Too many indeterminate deltas to enumerate: accept the interval.
            None => true,
        }
    }

    fn describe(&self) -> String {
        if self.low == self.high {
            self.low.to_string()
        } else {
            format!("a subset sum in [{}, {}]", self.low, self.high)
        }
    }
}

/// One replica's in-run reads of a set, followed by their differences: the
/// last strictly increasing read, as the acknowledgement ranks its
/// elements have (a bitmap), and the lowest rank that may be missing.
///
/// A read is stale when an element acknowledged before it began is
/// missing, that is when the lowest missing rank is below the number of
/// acknowledgements by then. Elements mostly appear and stay, so the lowest
/// missing rank moves forward a word at a time and rarely back.
struct ReadChain {
    /// The read number of the sorted read the chain is at; `None` before
    /// the first (the empty set).
    at: Option<u32>,
    /// Bit `r` set: the element of rank `r` is in the read.
    present: Vec<u64>,
    /// Every rank below it is present.
    lowest_missing: usize,
}

impl ReadChain {
    fn new(ranks: usize) -> Self {
        ReadChain {
            at: None,
            present: vec![0; ranks.div_ceil(64)],
            lowest_missing: 0,
        }
    }

    fn mark(&mut self, rank: usize, present: bool) {
        let (word, bit) = (rank / 64, 1u64 << (rank % 64));
        if present {
            self.present[word] |= bit;
        } else {
            self.present[word] &= !bit;
            self.lowest_missing = self.lowest_missing.min(rank);
        }
    }

    /// True when the read holds every element whose rank is below `rank`.
    fn has_all_below(&mut self, rank: usize) -> bool {
        while self.lowest_missing < rank {
            let (word, bit) = (self.lowest_missing / 64, self.lowest_missing % 64);
            let Some(bits) = self.present.get(word) else {
                break;
            };
            let run = (!(bits >> bit)).trailing_zeros() as usize;
            self.lowest_missing += run.min(64 - bit);
            if run < 64 - bit {
                break;
            }
        }
        self.lowest_missing >= rank
    }

    /// Counts `changed` (strictly increasing) as appeared (`delta` 1, which
    /// also marks them read) or disappeared (-1).
    fn follow(&mut self, fates: &mut SetFates, changed: &[u64], delta: i64) {
        fates.walk(changed, |fates, at| {
            fates.read[at] |= delta > 0;
            if let Some(rank) = fates.rank(at) {
                self.mark(rank, delta > 0);
            }
        });
    }
}

/// What the updates of one key did to one element.
#[derive(Clone, Copy, Debug, Default)]
struct ElementFate {
    /// Op index and completion time of the earliest acknowledged add.
    first_ok_add: Option<(usize, u64)>,
    /// Some add of it may have happened (ok or info).
    added: bool,
    /// Some remove of it may have happened.
    removed: bool,
    /// Some remove of it was acknowledged.
    removed_ok: bool,
}

/// The elements of one key, sorted, each with its [`ElementFate`]. What a
/// walk over a read touches is kept in narrow parallel vectors: a hot key
/// holds hundreds of thousands of elements, and the walk is bound by the
/// memory it streams through.
#[derive(Debug, Default)]
struct SetFates {
    elements: Vec<u64>,
    fates: Vec<ElementFate>,
    /// Rank by acknowledgement time among acknowledged adds of elements no
    /// remove names; [`NO_RANK`] for the others.
    ranks: Vec<u32>,
    /// Some read, in-run or final, returned it.
    read: Vec<bool>,
}

/// [`SetFates::ranks`] of an element with no acknowledgement rank.
const NO_RANK: u32 = u32::MAX;

impl SetFates {
    fn push(&mut self, element: u64) {
        self.elements.push(element);
        self.fates.push(ElementFate::default());
        self.ranks.push(NO_RANK);
        self.read.push(false);
    }

    fn rank(&self, at: usize) -> Option<usize> {
        (self.ranks[at] != NO_RANK).then_some(self.ranks[at] as usize)
    }

    /// Calls `f` with the position of each element of `elems` (strictly
    /// increasing) that has a fate.
    fn walk(&mut self, elems: &[u64], mut f: impl FnMut(&mut Self, usize)) {
        let mut at = 0;
        for &e in elems {
            at = seek(&self.elements, at, |x| *x < e);
            if self.elements.get(at) == Some(&e) {
                f(self, at);
            }
        }
    }
}

/// The first position at or after `from` whose item is not `before` the
/// sought one; `items` must be sorted so that `before` holds on a prefix.
/// Gallops: the sought items of a read come in order and are usually near
/// the last one found.
fn seek<T>(items: &[T], from: usize, before: impl Fn(&T) -> bool) -> usize {
    let rest = &items[from.min(items.len())..];
    let mut step = 1;
    while step < rest.len() && before(&rest[step]) {
        step *= 2;
    }
    from + rest[..step.min(rest.len())].partition_point(before)
}

/// The distinct elements of `elems`, in increasing order.
fn sorted_distinct(elems: &[u64]) -> Vec<u64> {
    let mut sorted = elems.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}
