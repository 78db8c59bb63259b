//! Convergence: after healing and quiescence, every replica returns the same
//! value for every key. A key is judged when every replica was read once; a
//! replica with no final read makes the key (and the check) unknown.

use super::{finals_by_key, finals_undecidable, Check, Finding};
use crate::history::History;
use crate::verdict::Verdict;
use rustc_hash::FxHashSet;

/// Checks that all final reads of each key are equal.
pub fn check(history: &History) -> Check {
    let finals = history.finals.decode();
    let by_key = finals_by_key(&finals);
    let mut diverged = Vec::new();
    for (key, reads) in &by_key {
        let first = reads[0].1;
        if let Some((replica, value)) = reads.iter().find(|(_, v)| *v != first) {
            diverged.push(Finding {
                message: format!(
                    "replica {} and replica {} disagree on key {key}",
                    reads[0].0, replica
                ),
                key: Some(*key),
                replica: Some(*replica),
                expected: Some(crate::report::short_value(first)),
                actual: Some(crate::report::short_value(value)),
                ..Finding::default()
            });
        }
    }
    // Every key of the run must be read on every replica.
    let replicas = history.header.as_ref().map(|h| h.replicas as usize);
    let keys = history.header.as_ref().map(|h| h.keys);
    // Replicas are counted once each: a replica read twice does not stand
    // in for one never read.
    let read_by = |reads: &[(u16, &converge_models::Value)]| {
        reads
            .iter()
            .map(|(r, _)| *r)
            .collect::<FxHashSet<u16>>()
            .len()
    };
    let complete =
        |reads: &[(u16, &converge_models::Value)]| replicas.is_none_or(|r| read_by(reads) >= r);
    let mut incomplete = by_key
        .iter()
        .find(|(_, reads)| !complete(reads))
        .map(|(key, reads)| (*key, read_by(reads)));
    // Each distinct key is looked up once, in the order it first appears.
    let mut seen = FxHashSet::default();
    let expected: Vec<u32> = history
        .ops
        .iter()
        .map(|o| o.key)
        .chain(keys.map_or(0..0, |k| 0..k))
        .chain(by_key.keys().copied())
        .filter(|k| seen.insert(*k))
        .collect();
    if incomplete.is_none() {
        incomplete = expected
            .iter()
            .find(|k| !by_key.contains_key(k))
            .map(|k| (*k, 0));
    }
    let judged_keys = by_key.values().filter(|reads| complete(reads)).count() as u64;
    let mut check = match finals_undecidable(history) {
        Some(why) => Check::new("convergence", Verdict::Unknown, why),
        None if !diverged.is_empty() => Check::new(
            "convergence",
            Verdict::Invalid,
            format!(
                "{} key(s) differ across replicas after quiescence",
                diverged.len()
            ),
        ),
        None => match incomplete {
            Some((key, n)) => Check::new(
                "convergence",
                Verdict::Unknown,
                format!(
                    "key {key} has final reads from {n} replica(s) of {}: convergence not decided",
                    replicas.unwrap_or(0)
                ),
            ),
            None => Check::new(
                "convergence",
                Verdict::Valid,
                format!("{} key(s) equal on every replica", by_key.len()),
            ),
        },
    };
    check.count("keys", by_key.len() as u64);
    check.count("diverged_keys", diverged.len() as u64);
    if let Some(q) = history.quiescence {
        check.count("anti_entropy_rounds", q.rounds as u64);
        if let Some(ns) = q.convergence_ns {
            check.count("convergence_us", ns / 1000);
        }
    }
    for f in diverged {
        check.find(f);
    }
    if check.verdict == Verdict::Invalid || judged_keys > 0 {
        check.judged(judged_keys, expected.len() as u64, "keys", "no final reads");
    } else {
        check.count("judged", 0);
        check.count("total", expected.len() as u64);
        check.judged = Some(super::Judged {
            judged: 0,
            total: expected.len() as u64,
            of: "keys".into(),
        });
        check.not_judged = true;
        if check.verdict == Verdict::Valid {
            check.verdict = Verdict::Unknown;
            check.summary = "not judged: no final reads".into();
        }
    }
    check
}
