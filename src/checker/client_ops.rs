//! Histories of Maelstrom workloads whose ops are not CRDT updates (`echo`,
//! `unique-ids`, `kafka`): each op keeps its request and reply bodies as
//! JSON, with invoke and completion times, in `ops.jsonl`. The checkers of
//! those workloads are pure functions of a slice of [`ClientOp`]s; `echo`'s
//! lives here.
//!
//! `ops.jsonl` is written invoke-first, as Jepsen records histories and as
//! `history.jsonl` is: every line is a JSON object tagged by `type`:
//!
//! - `header` (first line): `ops_format` (2), the Maelstrom `workload` and
//!   the run's history header (`run`: seed, nodes, clients, reproduce line);
//!   it promises an `end` line;
//! - `invoke`: `op` (an id unique in the file), `process`, `node`, `f`,
//!   `time_ns` and the `request` body, written and flushed before the
//!   request is sent (and `final_read` for the final phase's polls);
//! - `ok` / `fail` / `info`: the same `op`, `time_ns` when it returned,
//!   `latency_ns` and the `reply` body (`null` if none);
//! - `final_polls` (kafka): how the final polls ended (`state`);
//! - `end`: the run closed the file.
//!
//! An invocation with no completion (a killed run) reads back as `info`: it
//! may or may not have taken effect. Files of format 1, one line per
//! completed op with no `type` (a whole [`ClientOp`]), still read.

use super::kafka::FinalPolls;
use super::{Check, Finding};
use crate::error::{Error, Result};
use crate::history::jsonl::{read_line_capped, MAX_LINE_BYTES};
use crate::history::{Function, Header, OpRecord, Outcome, UNKNOWN_AUX};
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;

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
    /// When the reply came; for `info`, when the client gave up, and
    /// [`NEVER_COMPLETED`] for an op whose completion is not in the file
    /// (a run cut short).
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

/// [`ClientOp::complete_ns`] of an op that never returned.
pub const NEVER_COMPLETED: u64 = u64::MAX;

/// The `ops.jsonl` line format this build writes (see the module docs);
/// format 1 had no header and one untagged line per completed op.
pub const OPS_FORMAT: u32 = 2;

/// One line of `ops.jsonl` (format 2), tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpsLine {
    /// The first line.
    Header(OpsHeader),
    /// An op about to be sent.
    Invoke(OpInvoke),
    /// A `{f}_ok` reply.
    Ok(OpCompletion),
    /// A definite error.
    Fail(OpCompletion),
    /// No reply, an indefinite error or a malformed reply.
    Info(OpCompletion),
    /// How kafka's final polls ended.
    FinalPolls {
        /// Settled, still changing, or not taken.
        state: FinalPolls,
    },
    /// The run closed the file.
    End {},
}

/// The `header` line of `ops.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpsHeader {
    /// [`OPS_FORMAT`] of the writer.
    pub ops_format: u32,
    /// The Maelstrom workload: `echo`, `unique-ids` or `kafka`.
    pub workload: String,
    /// The run's parameters, as in `history.jsonl`'s header.
    pub run: Header,
}

/// The `invoke` line of an op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpInvoke {
    /// The op's id in the file.
    pub op: u64,
    /// Client number.
    pub process: u64,
    /// The node asked.
    pub node: u32,
    /// Request type.
    pub f: String,
    /// Nanoseconds since the run started, when the request was sent.
    pub time_ns: u64,
    /// The request body.
    pub request: Value,
    /// True for the reads of the final phase.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub final_read: bool,
}

/// The completion line (`ok`, `fail` or `info`) of an op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpCompletion {
    /// The id of its invocation.
    pub op: u64,
    /// Nanoseconds since the run started, when it returned.
    pub time_ns: u64,
    /// `time_ns` less the invocation's, for readers of the file alone.
    #[serde(default)]
    pub latency_ns: u64,
    /// The reply body (`null` if none).
    pub reply: Value,
}

/// `ops.jsonl` read back, with what the reader had to forgive.
#[derive(Debug, Default)]
pub struct ReadOps {
    /// Ops in the order they completed (as the run holds them), then the
    /// ops that never completed, as `info`, in the order they were invoked.
    pub ops: Vec<ClientOp>,
    /// The header line (format 2).
    pub header: Option<OpsHeader>,
    /// How kafka's final polls ended; `Missing` when the file does not say
    /// (format 1, or a run cut short before them).
    pub final_polls: FinalPolls,
    /// Non-fatal notes: a truncated last line, invocations never completed.
    pub warnings: Vec<String>,
    /// Why the file is known to be cut short: its header promises an `end`
    /// line and there is none.
    pub interrupted: Option<String>,
}

/// Whether `path` holds Maelstrom client ops rather than a CRDT history:
/// it is named `ops.jsonl`, or its first line is an `ops.jsonl` header, an
/// `invoke` with a request body, or a format-1 op.
pub fn is_ops_file(path: &Path) -> bool {
    if path.file_name().is_some_and(|n| n == "ops.jsonl") {
        return true;
    }
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut reader = std::io::BufReader::new(file);
    let mut first = Vec::new();
    // A first line over 1 MiB is no header; the history reader reports it.
    if !read_line_capped(&mut reader, &mut first, 1 << 20).unwrap_or(false) {
        return false;
    }
    let Ok(Value::Object(line)) = serde_json::from_slice::<Value>(first.trim_ascii()) else {
        return false;
    };
    match line.get("type").and_then(Value::as_str) {
        Some("header") => line.contains_key("ops_format"),
        Some("invoke") => line.contains_key("request"),
        Some(_) => false,
        None => line.contains_key("f") && line.contains_key("request"),
    }
}

/// Reads `ops.jsonl` (either format). A malformed line, a completion with
/// no invocation, an op id invoked or completed twice are errors naming the
/// line; a final line with no newline that does not parse (a run killed
/// mid-write) is skipped with a warning, as in `history.jsonl`.
pub fn read_ops(path: &Path) -> Result<ReadOps> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    parse_ops(std::io::BufReader::new(file), path, MAX_LINE_BYTES)
}

/// An op whose invocation was read and whose completion was not (yet).
struct OpenOp {
    invoke: OpInvoke,
    line: usize,
}

/// [`read_ops`] of any reader; `path` names it in errors and warnings;
/// lines are at most `max_line` bytes long.
pub fn parse_ops(mut reader: impl BufRead, path: &Path, max_line: usize) -> Result<ReadOps> {
    let mut read = ReadOps::default();
    let mut buf = Vec::with_capacity(512);
    let mut open: HashMap<u64, OpenOp> = HashMap::new();
    let mut invoked: HashSet<u64> = HashSet::new();
    let mut untagged_lines = 0usize;
    let mut ended_at: Option<usize> = None;
    let mut line_no = 0usize;
    let bad = |line: usize, message: String| Error::HistoryLine {
        path: path.to_path_buf(),
        line,
        message,
    };
    loop {
        buf.clear();
        let whole =
            read_line_capped(&mut reader, &mut buf, max_line).map_err(|e| Error::io(path, e))?;
        if buf.is_empty() && whole {
            break;
        }
        line_no += 1;
        if !whole {
            return Err(bad(
                line_no,
                format!("line is longer than {max_line} bytes; no ops.jsonl line is that long"),
            ));
        }
        let terminated = buf.last() == Some(&b'\n');
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        if let Some(end) = ended_at {
            return Err(bad(
                line_no,
                format!("a line after the end line (line {end})"),
            ));
        }
        let parsed = serde_json::from_slice::<Value>(text).and_then(|v| {
            if v.get("type").is_some() {
                serde_json::from_value::<OpsLine>(v).map(Ok)
            } else {
                serde_json::from_value::<ClientOp>(v).map(Err)
            }
        });
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) if !terminated => {
                read.warnings.push(format!(
                    "{}:{line_no}: last line is cut short ({e}); skipped, as a killed run leaves it",
                    path.display()
                ));
                break;
            }
            Err(e) => return Err(bad(line_no, e.to_string())),
        };
        let line = match parsed {
            Err(op) => {
                if read.header.is_some() {
                    return Err(bad(
                        line_no,
                        "a line without `type` in a format-2 file".into(),
                    ));
                }
                untagged_lines += 1;
                read.ops.push(op);
                continue;
            }
            Ok(line) => line,
        };
        if untagged_lines > 0 {
            return Err(bad(
                line_no,
                "a `type` line in a format-1 file (one untagged op per line)".into(),
            ));
        }
        let (completion, outcome) = match line {
            OpsLine::Header(header) => {
                if line_no != 1 {
                    return Err(bad(line_no, "the header must be the first line".into()));
                }
                if header.ops_format > OPS_FORMAT {
                    return Err(bad(
                        line_no,
                        format!(
                            "ops_format {} is newer than this converge reads ({OPS_FORMAT})",
                            header.ops_format
                        ),
                    ));
                }
                read.header = Some(header);
                continue;
            }
            OpsLine::Invoke(invoke) => {
                if !invoked.insert(invoke.op) {
                    return Err(bad(line_no, format!("op {} invoked twice", invoke.op)));
                }
                open.insert(
                    invoke.op,
                    OpenOp {
                        invoke,
                        line: line_no,
                    },
                );
                continue;
            }
            OpsLine::FinalPolls { state } => {
                read.final_polls = state;
                continue;
            }
            OpsLine::End {} => {
                ended_at = Some(line_no);
                continue;
            }
            OpsLine::Ok(c) => (c, Outcome::Ok),
            OpsLine::Fail(c) => (c, Outcome::Fail),
            OpsLine::Info(c) => (c, Outcome::Info),
        };
        let Some(OpenOp { invoke, .. }) = open.remove(&completion.op) else {
            let why = if invoked.contains(&completion.op) {
                "completed twice"
            } else {
                "completed but never invoked"
            };
            return Err(bad(line_no, format!("op {} {why}", completion.op)));
        };
        if completion.time_ns < invoke.time_ns {
            return Err(bad(
                line_no,
                format!(
                    "op {} returns at {} ns, before it was invoked ({} ns)",
                    completion.op, completion.time_ns, invoke.time_ns
                ),
            ));
        }
        read.ops.push(ClientOp {
            process: invoke.process,
            f: invoke.f,
            invoke_ns: invoke.time_ns,
            complete_ns: completion.time_ns,
            outcome,
            node: invoke.node,
            request: invoke.request,
            reply: completion.reply,
            final_read: invoke.final_read,
        });
    }
    let mut never: Vec<OpenOp> = open.into_values().collect();
    never.sort_by_key(|o| o.line);
    if let Some(first) = never.first() {
        read.warnings.push(format!(
            "{}: {} invoke(s) never completed (first at line {}); treated as info",
            path.display(),
            never.len(),
            first.line
        ));
    }
    read.ops.extend(never.into_iter().map(|o| ClientOp {
        process: o.invoke.process,
        f: o.invoke.f,
        invoke_ns: o.invoke.time_ns,
        complete_ns: NEVER_COMPLETED,
        outcome: Outcome::Info,
        node: o.invoke.node,
        request: o.invoke.request,
        reply: Value::Null,
        final_read: o.invoke.final_read,
    }));
    if read.header.is_some() && ended_at.is_none() {
        read.interrupted = Some(format!(
            "{}: the ops stop at line {line_no} without their end line: \
             the run was cut short (killed or still running)",
            path.display()
        ));
    }
    Ok(read)
}

impl ClientOp {
    /// The op as a CRDT history record, for latency and throughput figures
    /// (sends count as adds, commits as writes, the rest as reads); an op
    /// that never returned has no latency.
    pub fn latency_record(&self) -> OpRecord {
        let latency = match self.complete_ns {
            NEVER_COMPLETED => 0,
            done => done.saturating_sub(self.invoke_ns),
        };
        OpRecord {
            invoke_ns: self.invoke_ns,
            value: 0,
            aux: UNKNOWN_AUX,
            latency_ns: latency,
            process: self.process as u32,
            key: 0,
            clock_sum: 0,
            slot: 0,
            replica: self.node as u16,
            f: match self.f.as_str() {
                "send" => Function::Add,
                "commit_offsets" => Function::Write,
                _ => Function::Read,
            },
            outcome: self.outcome,
        }
    }
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

    fn parse(text: &str) -> Result<ReadOps> {
        parse_ops(text.as_bytes(), Path::new("ops.jsonl"), MAX_LINE_BYTES)
    }

    fn bad_line(text: &str) -> (usize, String) {
        match parse(text) {
            Err(Error::HistoryLine { line, message, .. }) => (line, message),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    const HEADER: &str = r#"{"type":"header","ops_format":2,"workload":"echo","run":{"schema_version":1,"seed":7,"workload":"lww-register","model":"echo.py","target":"maelstrom","writers":2,"replicas":1,"keys":1,"ops":10,"nemesis":"","reproduce":""}}"#;

    fn invoke(id: u64, process: u64, t: u64, echo: &str) -> String {
        format!(
            r#"{{"type":"invoke","op":{id},"process":{process},"node":0,"f":"echo","time_ns":{t},"request":{{"type":"echo","echo":"{echo}"}}}}"#
        )
    }

    fn ok(id: u64, t: u64, echo: &str) -> String {
        format!(
            r#"{{"type":"ok","op":{id},"time_ns":{t},"latency_ns":1,"reply":{{"type":"echo_ok","echo":"{echo}"}}}}"#
        )
    }

    #[test]
    fn format_1_files_of_whole_ops_still_read_and_bad_lines_are_named() {
        let o = op(
            0,
            "echo",
            (0, 1),
            Outcome::Ok,
            json!({"echo":1}),
            json!({"echo":1}),
        );
        let text = format!("{}\n", serde_json::to_string(&o).unwrap());
        let read = parse(&text).unwrap();
        assert_eq!(read.ops, vec![o]);
        assert!(read.header.is_none() && read.interrupted.is_none());
        assert_eq!(read.final_polls, FinalPolls::Missing);
        assert_eq!(bad_line("{}\nnope\n").0, 1);
        assert_eq!(bad_line(&format!("{text}{}\n", invoke(0, 0, 1, "x"))).0, 2);
    }

    #[test]
    fn invocations_pair_with_completions_and_unanswered_ones_are_info() {
        let text = [
            HEADER.to_string(),
            invoke(0, 0, 10, "a"),
            invoke(1, 1, 11, "b"),
            ok(1, 15, "b"),
            ok(0, 20, "a"),
            invoke(2, 0, 30, "c"),
            // Killed here: op 2 never returned, the last line is cut short.
            invoke(3, 1, 31, "d")[..40].to_string(),
        ]
        .join("\n");
        let read = parse(&text).unwrap();
        let ids: Vec<_> = read.ops.iter().map(|o| o.request["echo"].clone()).collect();
        // Completion order, then the op never completed.
        assert_eq!(ids, vec![json!("b"), json!("a"), json!("c")]);
        let last = &read.ops[2];
        assert_eq!(
            (last.outcome, last.complete_ns),
            (Outcome::Info, NEVER_COMPLETED)
        );
        assert_eq!(last.reply, Value::Null);
        assert!(!last.precedes(&read.ops[0]));
        assert_eq!(last.latency_record().latency_ns, 0);
        assert_eq!(read.ops[0].latency_record().latency_ns, 4);
        assert_eq!(read.header.as_ref().unwrap().run.seed, 7);
        assert!(read.interrupted.as_ref().unwrap().contains("line 7"));
        assert_eq!(read.warnings.len(), 2, "{:?}", read.warnings);
        assert!(read.warnings[0].contains(":7: last line is cut short"));
        assert!(read.warnings[1].contains("1 invoke(s) never completed (first at line 6)"));
        // The unanswered echo is not judged; the answered ones are.
        let c = check_echo(&read.ops);
        assert_eq!(c.verdict, Verdict::Valid, "{c:?}");
        assert_eq!((c.counts["judged"], c.counts["total"]), (2, 3));
        // Closed with its end line: not interrupted.
        let done = format!(
            "{HEADER}\n{}\n{}\n{{\"type\":\"end\"}}\n",
            invoke(0, 0, 1, "a"),
            ok(0, 2, "a")
        );
        let read = parse(&done).unwrap();
        assert!(
            read.interrupted.is_none() && read.warnings.is_empty(),
            "{read:?}"
        );
    }

    #[test]
    fn orphan_completions_repeated_ids_and_malformed_lines_are_errors_naming_the_line() {
        let cases = [
            (
                vec![HEADER.into(), ok(0, 2, "a")],
                2,
                "completed but never invoked",
            ),
            (
                vec![HEADER.into(), invoke(0, 0, 1, "a"), invoke(0, 1, 2, "b")],
                3,
                "invoked twice",
            ),
            (
                vec![
                    HEADER.into(),
                    invoke(0, 0, 1, "a"),
                    ok(0, 2, "a"),
                    ok(0, 3, "a"),
                ],
                4,
                "completed twice",
            ),
            (
                vec![HEADER.into(), invoke(0, 0, 5, "a"), ok(0, 2, "a")],
                3,
                "before it was invoked",
            ),
            // Cut short but followed by more: not a kill, a broken file.
            (
                vec![
                    HEADER.into(),
                    invoke(0, 0, 1, "a")[..30].into(),
                    ok(0, 2, "a"),
                ],
                2,
                "",
            ),
            (vec![invoke(0, 0, 1, "a"), HEADER.into()], 2, "first line"),
            (
                vec![
                    HEADER.into(),
                    r#"{"type":"end"}"#.into(),
                    invoke(0, 0, 1, "a"),
                ],
                3,
                "after the end line",
            ),
            (
                vec![HEADER.replace("\"ops_format\":2", "\"ops_format\":9")],
                1,
                "newer",
            ),
        ];
        for (lines, line, why) in cases {
            let text = lines.join("\n") + "\n";
            let (at, message) = bad_line(&text);
            assert_eq!(at, line, "{text}: {message}");
            assert!(message.contains(why), "{text}: {message}");
        }
    }
}
