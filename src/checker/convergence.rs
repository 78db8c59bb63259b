//! Convergence: after healing and quiescence, every replica returns the same
//! value for every key.

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
    let mut incomplete = by_key
        .iter()
        .find(|(_, reads)| replicas.is_some_and(|r| reads.len() != r))
        .map(|(key, reads)| (*key, reads.len()));
    if incomplete.is_none() {
        // Each distinct key is looked up once, in the order it first appears.
        let mut seen = FxHashSet::default();
        incomplete = history
            .ops
            .iter()
            .map(|o| o.key)
            .chain(keys.map_or(0..0, |k| 0..k))
            .filter(|k| seen.insert(*k))
            .find(|k| !by_key.contains_key(k))
            .map(|k| (k, 0));
    }
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
                format!("key {key} has final reads from {n} replica(s) only"),
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
    check
}
