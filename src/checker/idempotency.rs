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
        Check::new(
            "idempotency",
            Verdict::Unknown,
            "no idempotency probes recorded (run did not finish)",
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
