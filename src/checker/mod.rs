//! Checkers: pure functions of a [`History`]. Each returns a [`Check`] with a
//! tri-state verdict and findings that name the key, the replica, the op
//! indices (positions in `history.ops`, equal to the `op` ids of
//! `history.jsonl`) and expected vs actual values.

pub mod automerge;
pub mod bounds;
pub mod client_ops;
pub mod conflicts;
pub mod convergence;
pub mod data_loss;
pub mod idempotency;
pub mod kafka;
pub mod linearizable;
pub mod monotonic;
pub mod opaque;
pub mod unique_ids;

use crate::history::{DecodedFinals, History};
use crate::verdict::Verdict;
use converge_models::Value;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many findings are kept per check; `findings_total` counts all.
pub const MAX_FINDINGS: usize = 25;

/// One concrete piece of evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What is wrong, in a sentence.
    pub message: String,
    /// Key concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<u32>,
    /// Replica concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<u16>,
    /// Indices of the operations involved.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub ops: Vec<usize>,
    /// What the datatype's semantics require.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What the target returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

/// A checker's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Checker name, e.g. `convergence`.
    pub name: String,
    /// Verdict.
    pub verdict: Verdict,
    /// One line for humans.
    pub summary: String,
    /// Named figures (lost, stale, conflicts, ...).
    pub counts: BTreeMap<String, u64>,
    /// Evidence, at most [`MAX_FINDINGS`].
    pub findings: Vec<Finding>,
    /// Number of findings before truncation.
    pub findings_total: u64,
    /// What the check judged out of what there was, when it counts items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged: Option<Judged>,
    /// True when the check judged nothing or was skipped: its verdict is
    /// `unknown` and it is never counted as a pass.
    #[serde(default)]
    pub not_judged: bool,
    /// True for a check the verdict can do without (read bounds, monotonic
    /// reads, value-based idempotency, conflicts): when it judged nothing it
    /// is shown as not judged and left out of the overall verdict. A check
    /// that is not optional and judged nothing makes the run unknown.
    #[serde(default)]
    pub optional: bool,
}

/// How much of what there was a check judged: `judged` of `total` `of`
/// (writes, elements, keys, replicas, reads, probes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judged {
    /// Items the check could decide about.
    pub judged: u64,
    /// Items there were.
    pub total: u64,
    /// What the items are, plural (`writes`, `keys`, ...).
    pub of: String,
}

impl std::fmt::Display for Judged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} {}", self.judged, self.total, self.of)
    }
}

/// Every check name a gate may require.
pub const CHECK_NAMES: [&str; 9] = [
    "convergence",
    "data-loss",
    "idempotency",
    "read-bounds",
    "monotonic-reads",
    "conflicts",
    "linearizability",
    "node-protocol",
    "target-responses",
];

impl Check {
    /// A check with no findings yet.
    pub fn new(name: &str, verdict: Verdict, summary: impl Into<String>) -> Self {
        Check {
            name: name.to_string(),
            verdict,
            summary: summary.into(),
            counts: BTreeMap::new(),
            findings: Vec::new(),
            findings_total: 0,
            judged: None,
            not_judged: false,
            optional: false,
        }
    }

    /// Marks the check optional (see [`Check::optional`]).
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// A check that judged nothing: `unknown`, flagged as not judged, with
    /// the reason as its summary.
    pub fn not_judged(name: &str, why: impl std::fmt::Display) -> Self {
        let mut check = Check::new(name, Verdict::Unknown, format!("not judged: {why}"));
        check.not_judged = true;
        check
    }

    /// Records what the check judged (also as the `judged` and `total`
    /// counts). A check that found nothing wrong but judged nothing becomes
    /// not judged, with `why` as its reason.
    pub fn judged(&mut self, judged: u64, total: u64, of: &str, why: &str) {
        self.count("judged", judged);
        self.count("total", total);
        self.judged = Some(Judged {
            judged,
            total,
            of: of.to_string(),
        });
        if judged == 0 && self.verdict != Verdict::Invalid {
            self.verdict = Verdict::Unknown;
            self.not_judged = true;
            self.summary = format!("not judged: {why}");
        }
    }

    /// Records a finding (kept if under the cap, always counted).
    pub fn find(&mut self, finding: Finding) {
        self.findings_total += 1;
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(finding);
        }
    }

    /// Sets a named figure.
    pub fn count(&mut self, name: &str, value: u64) {
        self.counts.insert(name.to_string(), value);
    }
}

/// Targets whose internals converge cannot see (node processes, databases,
/// HTTP services): no dots, timestamps of their own or merge probes.
pub const BLACK_BOX_TARGETS: [&str; 3] = ["maelstrom", "sql", "http"];

/// Runs every checker that applies to the history's workload. A history
/// with no client operation and no final read has nothing to judge: its
/// convergence and data loss are not judged (unknown), and say why.
pub fn check_all(history: &History) -> Vec<Check> {
    if history.ops.is_empty() && history.finals.is_empty() {
        let why = "nothing to judge: the history has no client operation and no final read";
        return vec![
            Check::not_judged("convergence", why),
            Check::not_judged("data-loss", why),
        ];
    }
    if let Some("automerge") = history.header.as_ref().map(|h| h.target.as_str()) {
        return automerge::check_all(history);
    }
    if history
        .header
        .as_ref()
        .is_some_and(|h| BLACK_BOX_TARGETS.contains(&h.target.as_str()))
    {
        return check_black_box(history);
    }
    let mut checks = vec![
        convergence::check(history),
        data_loss::check(history),
        idempotency::check(history),
        conflicts::check(history).optional(),
    ];
    if history.header.as_ref().is_some_and(|h| h.linearizable) {
        checks.push(linearizable::check_run(history));
    }
    checks
}

/// Checks for a target whose internals are hidden: there are no dots,
/// timestamps or clocks of its own in the history, so datatypes that need
/// them get the black-box checks of [`opaque`]; counters and G-Sets need
/// none and keep the in-process rules. Idempotency is judged where the
/// harness could probe it (re-sent writes, recorded as probes).
fn check_black_box(history: &History) -> Vec<Check> {
    use converge_models::Workload;
    let mut checks = vec![
        convergence::check(history),
        bounds::check(history).optional(),
    ];
    match history.workload() {
        Some(Workload::GCounter | Workload::PnCounter | Workload::GSet) => {
            checks.push(data_loss::check(history));
        }
        _ => checks.push(opaque::check(history)),
    }
    if history.workload() == Some(Workload::GCounter) {
        checks.push(monotonic::check(history).optional());
    }
    if !history.probes.is_empty() {
        checks.push(idempotency::check(history));
    } else if history.header.as_ref().is_some_and(|h| h.target == "http") {
        // HTTP retries carry no probes: double application shows in the values.
        checks.push(idempotency::black_box(history).optional());
    }
    checks
}

/// A check made of messages a live run collected (node protocol errors,
/// garbage answers): valid when there were none, else invalid with the
/// first few as findings and `total` counted.
pub fn findings_check(
    name: &str,
    total: u64,
    kept: &[String],
    valid: &str,
    invalid: &str,
) -> Check {
    let mut check = if total == 0 {
        Check::new(name, Verdict::Valid, valid)
    } else {
        Check::new(name, Verdict::Invalid, format!("{total} {invalid}"))
    };
    for text in kept {
        check.find(Finding {
            message: text.clone(),
            ..Finding::default()
        });
    }
    check.findings_total = total;
    check.count("findings", total);
    check
}

/// The combined verdict: the worst of the checks that count. A check that
/// judged nothing counts (as unknown) unless it is optional; an optional
/// one is left out, never counted as a pass. With nothing that counts the
/// verdict is unknown.
pub fn overall(checks: &[Check]) -> Verdict {
    let counted: Vec<&Check> = checks
        .iter()
        .filter(|c| !(c.not_judged && c.optional))
        .collect();
    if counted.is_empty() {
        return Verdict::Unknown;
    }
    counted
        .iter()
        .fold(Verdict::Valid, |acc, c| acc.and(c.verdict))
}

/// Operation indices grouped by key, in history order.
pub fn ops_by_key(history: &History) -> BTreeMap<u32, Vec<usize>> {
    // Hashing per op and ordering the few keys once is several times cheaper
    // than a B-tree descent per op.
    let mut by_key: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
    for (i, op) in history.ops.iter().enumerate() {
        by_key.entry(op.key).or_default().push(i);
    }
    by_key.into_iter().collect()
}

/// Final reads grouped by key: (replica, value) in history order. Takes
/// the decoded finals ([`crate::history::Finals::decode`]) the values are
/// lent from.
pub fn finals_by_key<'a>(finals: &'a DecodedFinals<'_>) -> BTreeMap<u32, Vec<(u16, &'a Value)>> {
    let mut by_key: BTreeMap<u32, Vec<(u16, &Value)>> = BTreeMap::new();
    for f in finals {
        by_key.entry(f.key).or_default().push((f.replica, f.value));
    }
    by_key
}

/// The first (replica, key) with more than one final read, if any: a
/// history must read each key once per replica, so a second read is an
/// input error, not evidence.
pub fn duplicated_final(history: &History) -> Option<(u16, u32)> {
    let mut seen = rustc_hash::FxHashSet::default();
    history
        .finals
        .replicas_and_keys()
        .find(|pair| !seen.insert(*pair))
}

/// Why final reads cannot be judged, if they cannot.
pub fn finals_undecidable(history: &History) -> Option<String> {
    match history.quiescence {
        None => Some("the run never reached its final phase (no quiescence record)".into()),
        Some(q) if !q.reached => Some(format!(
            "replicas did not quiesce within {} anti-entropy rounds",
            q.max_rounds
        )),
        Some(_) if history.finals.is_empty() => Some("no final reads recorded".into()),
        Some(_) => None,
    }
}
