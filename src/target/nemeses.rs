//! One nemesis vocabulary for every target: which faults each target can
//! take, under one set of names, for `converge list nemeses --target T` and
//! for refusing a fault a target cannot inject (exit 3, naming it) before
//! anything runs.
//!
//! `drop` (a message lost on the way) is the one name for message loss;
//! `loss`, the name the maelstrom target used, is accepted everywhere as an
//! alias of it. A target that learns a fault adds a row to its table here.

use crate::cli::run::TargetKind;
use crate::error::{Error, Result};

/// The name `drop` is also known by.
pub const DROP_ALIAS: &str = "loss";

/// The faults `target` can take: (name, what it does there).
pub fn catalog(target: TargetKind) -> &'static [(&'static str, &'static str)] {
    match target {
        TargetKind::InProcess => &[
            ("partition", "cut replicas into a random minority or two halves; cross messages wait for the heal"),
            ("drop", "lose 5% of messages and whole-state gossips; the model's anti-entropy retransmits later"),
            ("duplicate", "deliver an extra, late copy of 5% of messages and gossips"),
            ("reorder", "shuffle 30% of delivery batches"),
            ("delay", "hold back 10% of messages for up to 20 network ticks"),
        ],
        TargetKind::Automerge => &[
            ("partition", "cut documents into a random minority or two halves; sync messages and merges across wait for the heal"),
            ("drop", "lose 5% of sync messages and merges for good (the sync protocol is the only retransmission)"),
            ("duplicate", "deliver an extra, late copy of 5% of sync messages and merges"),
            ("reorder", "shuffle 30% of delivery batches"),
            ("delay", "hold back 10% of sync messages for up to 20 ticks"),
        ],
        TargetKind::Sql => &[
            ("partition", "no anti-entropy merge across the cut until the heal"),
            ("drop", "skip 5% of anti-entropy merges"),
            ("duplicate", "run 5% of anti-entropy merges twice"),
        ],
        TargetKind::Http => &[
            ("partition", "block replicas from each other through [target.http.admin.partition], heal through [admin.heal]"),
            ("crash", "kill -9 the service converge started ([start]) and start it again"),
            ("delay", "hold requests back on the client side"),
        ],
        TargetKind::Maelstrom => &[
            ("partition", "one node, a minority, or a majorities ring cut off from the rest"),
            ("drop", "lose 10% of node-to-node and node-to-service messages"),
            ("duplicate", "deliver 10% of messages twice"),
            ("reorder", "reorder messages by a random extra delay"),
            ("crash", "kill -9 a node and restart it empty"),
            ("pause", "SIGSTOP a node, SIGCONT it later"),
        ],
    }
}

/// The canonical name of a fault name (`loss` is `drop`).
pub fn canonical(name: &str) -> &str {
    if name == DROP_ALIAS {
        "drop"
    } else {
        name
    }
}

/// Checks a `--nemesis` spec against `target`'s faults: `none`, `default`
/// (and `all` where the target has it), or a comma-separated list of its
/// faults. A fault another target has is refused naming this target; a
/// name no target has is refused as unknown.
pub fn check(target: TargetKind, spec: &str) -> Result<()> {
    let own = catalog(target);
    let names = || own.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if matches!(name, "none" | "default")
            || (name == "all" && target != TargetKind::Maelstrom && target != TargetKind::Http)
        {
            continue;
        }
        let fault = canonical(name);
        if own.iter().any(|(n, _)| *n == fault) {
            continue;
        }
        let elsewhere = [
            TargetKind::InProcess,
            TargetKind::Automerge,
            TargetKind::Sql,
            TargetKind::Http,
            TargetKind::Maelstrom,
        ]
        .into_iter()
        .any(|t| catalog(t).iter().any(|(n, _)| *n == fault));
        let what = if elsewhere {
            format!("--target {} cannot inject '{name}'", target.name())
        } else {
            format!("unknown fault '{name}'")
        };
        return Err(Error::Config(format!(
            "--nemesis: {what} (--target {}: none, default, or a list of: {}; see `converge list nemeses --target {}`)",
            target.name(),
            names(),
            target.name()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_drop_and_a_fault_of_another_target_is_refused_by_name() {
        assert!(check(TargetKind::InProcess, "partition,loss").is_ok());
        assert!(check(TargetKind::Maelstrom, "partition,drop,pause").is_ok());
        let e = check(TargetKind::InProcess, "crash")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot inject 'crash'"), "{e}");
        let e = check(TargetKind::Sql, "reorder").unwrap_err().to_string();
        assert!(e.contains("--target sql cannot inject 'reorder'"), "{e}");
        let e = check(TargetKind::Http, "drop").unwrap_err().to_string();
        assert!(e.contains("partition, crash, delay"), "{e}");
        let e = check(TargetKind::Automerge, "bogus")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown fault 'bogus'"), "{e}");
        assert!(check(TargetKind::Http, "none").is_ok());
        assert!(check(TargetKind::Sql, "default").is_ok());
    }
}
