//! Histories of Maelstrom workloads whose ops are not CRDT updates (`echo`,
//! `unique-ids`, `kafka`): each op keeps its request and reply bodies as
//! JSON, with invoke and completion times, written one op per line to
//! `ops.jsonl`. The checkers of those workloads are pure functions of a
//! slice of [`ClientOp`]s; `echo`'s lives here.

use super::{Check, Finding};
use crate::history::Outcome;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One client operation, invoke and completion merged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientOp {
    /// Client number (the final phase's reads use the clients past the last).
    pub process: u64,
    /// Request type: `echo`, `generate`, `send`, `poll`, `commit_offsets`,
    /// `list_committed_offsets`.
    pub f: String,
    /// Nanoseconds since the run started, when the request was sent.
    pub invoke_ns: u64,
    /// When the reply came; for `info`, when the client gave up.
    pub complete_ns: u64,
    /// `ok` (a `{f}_ok` reply), `fail` (a definite error) or `info`.
    pub outcome: Outcome,
    /// The node asked.
    pub node: u32,
    /// The request body.
    pub request: Value,
    /// The reply body (`null` if none).
    pub reply: Value,
    /// True for the reads of the final phase, after every fault healed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub final_read: bool,
}

impl ClientOp {
    /// Whether this op returned before `other` was invoked (real time).
    pub fn precedes(&self, other: &ClientOp) -> bool {
        self.outcome != Outcome::Info && self.complete_ns < other.invoke_ns
    }

    /// Whether this op ended `ok`.
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// A one-line description for findings.
    pub fn describe(&self, index: usize) -> String {
        format!(
            "op {index} (client {}, node n{}, {} at {:.3}s)",
            self.process,
            self.node,
            self.f,
            self.invoke_ns as f64 / 1e9
        )
    }
}

/// Reads `ops.jsonl`; the error names the line.
pub fn read_ops(text: &str) -> Result<Vec<ClientOp>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("ops.jsonl line {}: {e}", i + 1)))
        .collect()
}

/// A check that judged nothing: unknown, saying why.
pub fn not_judged(name: &str, why: &str) -> Check {
    let mut check = Check::new(name, Verdict::Unknown, format!("not judged: {why}"));
    check.count("judged", 0);
    check
}

/// `echo`: every `echo_ok` carries back exactly the `echo` value sent.
pub fn check_echo(ops: &[ClientOp]) -> Check {
    let judged: Vec<(usize, &ClientOp)> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.f == "echo" && o.is_ok())
        .collect();
    let total = ops.iter().filter(|o| o.f == "echo").count() as u64;
    if judged.is_empty() {
        return not_judged("echo", "no echo request was answered");
    }
    let mut check = Check::new("echo", Verdict::Valid, "");
    for (i, op) in &judged {
        let sent = op.request.get("echo").unwrap_or(&Value::Null);
        let got = op.reply.get("echo").unwrap_or(&Value::Null);
        if sent != got {
            check.find(Finding {
                message: format!("{} echoed something else", op.describe(*i)),
                ops: vec![*i],
                expected: Some(sent.to_string()),
                actual: Some(got.to_string()),
                ..Finding::default()
            });
        }
    }
    check.count("judged", judged.len() as u64);
    check.count("total", total);
    check.count("wrong", check.findings_total);
    if check.findings_total > 0 {
        check.verdict = Verdict::Invalid;
        check.summary = format!(
            "{} of {} answered echoes came back changed ({} judged / {} sent)",
            check.findings_total,
            judged.len(),
            judged.len(),
            total
        );
    } else {
        check.summary = format!(
            "every answered echo came back unchanged ({} judged / {} sent)",
            judged.len(),
            total
        );
    }
    check
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A literal op: `t` is (invoke, complete) in ms.
    pub fn op(
        process: u64,
        f: &str,
        t: (u64, u64),
        outcome: Outcome,
        request: Value,
        reply: Value,
    ) -> ClientOp {
        ClientOp {
            process,
            f: f.into(),
            invoke_ns: t.0 * 1_000_000,
            complete_ns: t.1 * 1_000_000,
            outcome,
            node: 0,
            request,
            reply,
            final_read: false,
        }
    }

    #[test]
    fn echo_passes_what_comes_back_and_catches_what_changed() {
        let good = op(
            0,
            "echo",
            (0, 1),
            Outcome::Ok,
            json!({"type":"echo","echo":"hi 1"}),
            json!({"type":"echo_ok","echo":"hi 1"}),
        );
        let lost = op(
            1,
            "echo",
            (0, 9),
            Outcome::Info,
            json!({"type":"echo","echo":"hi 2"}),
            Value::Null,
        );
        assert_eq!(
            check_echo(&[good.clone(), lost.clone()]).verdict,
            Verdict::Valid
        );
        let bad = op(
            2,
            "echo",
            (2, 3),
            Outcome::Ok,
            json!({"type":"echo","echo":"hi 3"}),
            json!({"type":"echo_ok","echo":"hi"}),
        );
        let c = check_echo(&[good, bad]);
        assert_eq!(c.verdict, Verdict::Invalid);
        assert_eq!(c.findings[0].ops, vec![1]);
        assert_eq!(check_echo(&[lost]).verdict, Verdict::Unknown);
    }

    #[test]
    fn ops_round_trip_through_jsonl_and_bad_lines_are_named() {
        let o = op(
            0,
            "echo",
            (0, 1),
            Outcome::Ok,
            json!({"echo":1}),
            json!({"echo":1}),
        );
        let text = format!("{}\n", serde_json::to_string(&o).unwrap());
        assert_eq!(read_ops(&text).unwrap(), vec![o]);
        assert!(read_ops("{}\nnope").unwrap_err().contains("line 1"));
    }
}
