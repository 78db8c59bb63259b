//! Idempotency: re-merging a final state with itself or with an earlier
//! state, or re-delivering an op, must change nothing. The harness runs the
//! probes and records them; this checker judges the records.

use super::{Check, Finding};
use crate::history::{History, ProbeKind};
use crate::verdict::Verdict;

/// Judges the recorded idempotency probes.
pub fn check(history: &History) -> Check {
    let violations: Vec<_> = history
        .probes
        .iter()
        .filter(|p| p.state_changed || p.before != p.after)
        .collect();
    let mut check = if history.probes.is_empty() {
        Check::not_judged(
            "idempotency",
            "no idempotency probes recorded (the run did not finish)",
        )
    } else if violations.is_empty() {
        Check::new(
            "idempotency",
            Verdict::Valid,
            format!(
                "{} probes (self-merge, stale merge, redelivery) changed nothing",
                history.probes.len()
            ),
        )
    } else {
        Check::new(
            "idempotency",
            Verdict::Invalid,
            format!(
                "{} of {} probes changed the state",
                violations.len(),
                history.probes.len()
            ),
        )
    };
    for kind in [
        ProbeKind::SelfMerge,
        ProbeKind::StaleMerge,
        ProbeKind::Redeliver,
        ProbeKind::SaveLoad,
    ] {
        let name = match kind {
            ProbeKind::SelfMerge => "self_merge_violations",
            ProbeKind::StaleMerge => "stale_merge_violations",
            ProbeKind::Redeliver => "redelivery_violations",
            ProbeKind::SaveLoad => "save_load_violations",
        };
        check.count(
            name,
            violations.iter().filter(|p| p.probe == kind).count() as u64,
        );
    }
    check.count("probes", history.probes.len() as u64);
    check.count("violations", violations.len() as u64);
    let probes = history.probes.len() as u64;
    check.judged(
        probes,
        probes,
        "probes",
        "no idempotency probes recorded (the run did not finish)",
    );
    if let Some(net) = history.network {
        check.count("duplicates_delivered", net.duplicates_delivered);
    }
    for p in violations {
        let what = match p.probe {
            ProbeKind::SelfMerge => "merging the final state with itself",
            ProbeKind::StaleMerge => "merging the final state with an earlier snapshot",
            ProbeKind::Redeliver => "re-delivering an already applied op",
            ProbeKind::SaveLoad => "saving the state and loading it back",
        };
        check.find(Finding {
            message: format!("{what} changed the state"),
            key: Some(p.key),
            replica: Some(p.replica),
            expected: p.before.as_ref().map(crate::report::short_value),
            actual: p.after.as_ref().map(crate::report::short_value),
            ..Finding::default()
        });
    }
    check
}

/// Idempotency of a black-box target (an HTTP service), judged from values
/// since there are no probes. Retries resend an op with the same
/// idempotency key and are recorded as that one op, so a double application
/// shows as:
/// - counters: a final value above the definite sum plus every positive
///   `info` delta (for a PN-counter a lost decrement shows the same way;
///   a value below the bounds is data-loss's business);
/// - MV-register: a read holding the same written value twice (values are
///   unique per write, so two siblings with it are one write applied twice).
///
/// A second application of the same set add or LWW write leaves the value
/// as it was, so for those datatypes nothing is visible and the check is
/// not judged. Only a G-Counter's excess has one explanation (an update
/// applied more than once); a PN-counter's may also be a lost decrement.
pub fn black_box(history: &History) -> Check {
    use crate::history::{Function, Outcome};
    use converge_models::{Value, Workload};
    use std::collections::BTreeMap;
    let mut check = Check::new("idempotency", Verdict::Valid, "");
    let workload = history.workload();
    let mut violations = 0u64;
    let (mut judged, mut total) = (0u64, 0u64);
    let mut unit = "final reads";
    match workload {
        Some(Workload::GCounter | Workload::PnCounter) => {
            // key -> definite sum plus every positive indeterminate delta
            let mut highest: BTreeMap<u32, i128> = BTreeMap::new();
            for op in history.ops.iter().filter(|o| o.f == Function::Increment) {
                let d = op.value as i128;
                match op.outcome {
                    Outcome::Ok => *highest.entry(op.key).or_default() += d,
                    Outcome::Info if d > 0 => *highest.entry(op.key).or_default() += d,
                    _ => {}
                }
            }
            let why = if workload == Some(Workload::GCounter) {
                "some increment was applied more than once"
            } else {
                "an increment was applied more than once or a decrement was lost"
            };
            for f in &history.finals.decode() {
                total += 1;
                let &Value::Int(v) = f.value else { continue };
                judged += 1;
                let hi = highest.get(&f.key).copied().unwrap_or_default();
                let v = v as i128;
                if v > hi {
                    violations += 1;
                    check.find(Finding {
                        message: format!(
                            "replica {} ended key {} at {v}, above {hi} (acknowledged sum plus every positive indeterminate delta): {why}",
                            f.replica, f.key
                        ),
                        key: Some(f.key),
                        replica: Some(f.replica),
                        expected: Some(format!("<= {hi}")),
                        actual: Some(v.to_string()),
                        ..Finding::default()
                    });
                }
            }
            check.summary = if violations == 0 {
                "no final counter exceeds the acknowledged sum plus every positive indeterminate delta (double application from retries or re-delivery)"
                    .into()
            } else {
                format!("{violations} final counter value(s) exceed what was added: {why}")
            };
        }
        Some(Workload::MvRegister) => {
            // Read values are lent by a cursor one at a time, so in-run
            // reads and final reads are judged in two loops.
            unit = "reads";
            let mut judge = |op: Option<usize>, replica: u16, value: &Value| {
                total += 1;
                let Value::Elems(items) = value else { return };
                judged += 1;
                if let Some(w) = items.windows(2).find(|w| w[0] == w[1]) {
                    violations += 1;
                    check.find(Finding {
                        message: format!(
                            "replica {replica} returned write {} twice among its siblings: one write applied twice",
                            w[0]
                        ),
                        replica: Some(replica),
                        ops: op.into_iter().collect(),
                        actual: Some(format!("{items:?}")),
                        ..Finding::default()
                    });
                }
            };
            let mut values = history.read_cursor();
            for (i, op) in history.ops.iter().enumerate() {
                if let Some(value) = values.value(op) {
                    judge(Some(i), op.replica, value);
                }
            }
            for f in &history.finals.decode() {
                judge(None, f.replica, f.value);
            }
            check.summary = if violations == 0 {
                "no MV-register read holds the same write twice".into()
            } else {
                format!("{violations} read(s) hold a write applied twice")
            };
        }
        _ => {}
    }
    check.count("violations", violations);
    if violations > 0 {
        check.verdict = Verdict::Invalid;
    }
    check.judged(
        judged,
        total,
        unit,
        &format!(
            "a repeated {} update does not change its value, so double application is not observable without probes",
            workload.map_or("?", |w| w.name())
        ),
    );
    check
}
