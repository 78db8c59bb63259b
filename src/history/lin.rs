//! Client-level histories for the linearizability checker: each operation
//! with its call and return, as read from converge's own `history.jsonl`, a
//! Jepsen log, Jepsen EDN or porcupine's kv EDN.
//!
//! Readers keep what the file says (a `fail` stays a `fail`, a nil read stays
//! nil); what that means is decided later by the crash semantics the user
//! picks, so one reader serves both porcupine's and knossos's conventions.

use super::Outcome;
use serde::Serialize;
use std::fmt;

/// What an operation calls. `get`/`put` of a key-value store read as
/// [`LinFn::Read`]/[`LinFn::Write`] with a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinFn {
    /// Read a register, a key, a counter or a set.
    Read,
    /// Overwrite a register or a key (`put`).
    Write,
    /// Compare-and-set: input is `[from, to]`.
    Cas,
    /// Append a string to a key's value.
    Append,
    /// Add to a counter (input is the delta) or to a set (input is the element).
    Add,
}

impl LinFn {
    /// Name as written in Jepsen histories.
    pub fn as_str(self) -> &'static str {
        match self {
            LinFn::Read => "read",
            LinFn::Write => "write",
            LinFn::Cas => "cas",
            LinFn::Append => "append",
            LinFn::Add => "add",
        }
    }
}

/// A value in an operation's input or output.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum LinValue {
    /// `nil`: absent, or not given.
    Nil,
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A keyword such as `:timed-out`, without the colon.
    Keyword(String),
    /// A vector or list, e.g. a cas `[from to]` or a set read.
    List(Vec<LinValue>),
}

impl fmt::Display for LinValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinValue::Nil => f.write_str("nil"),
            LinValue::Int(i) => write!(f, "{i}"),
            LinValue::Str(s) => write!(f, "{s:?}"),
            LinValue::Keyword(k) => write!(f, ":{k}"),
            LinValue::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// One client operation: its invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinOp {
    /// Client process (Jepsen's `:process`). A crashed Jepsen process comes
    /// back under a new id, so one process has one op in flight at a time.
    pub process: u64,
    /// Key of a key-value op, or `None` for a single-object history.
    pub key: Option<String>,
    /// What it calls.
    pub f: LinFn,
    /// Value given at invocation (written value, cas pair, appended string,
    /// delta or element; `Nil` for reads).
    pub input: LinValue,
    /// Value given at completion (the read result; `Nil` when there is none).
    pub output: LinValue,
    /// How it completed: `Info` also covers an invocation with no completion.
    pub outcome: Outcome,
    /// Time of the invocation. Only the order matters: event index or ns.
    pub call: u64,
    /// Time of the completion, or `None` if the op never returned (`info` or
    /// no completion at all): it may take effect at any point after `call`.
    pub ret: Option<u64>,
    /// 1-based line of the invocation in the source file.
    pub line: usize,
}

/// The file formats a linearizability history can be read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// converge's own `history.jsonl`.
    Jsonl,
    /// Jepsen text log: `INFO jepsen.util - <process> :<type> :<f> <value>`.
    JepsenLog,
    /// Jepsen EDN: a vector, list or stream of maps (this includes porcupine's kv lines).
    Edn,
}

impl InputFormat {
    /// Name as accepted by `--input-format`.
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Jsonl => "jsonl",
            InputFormat::JepsenLog => "jepsen-log",
            InputFormat::Edn => "edn",
        }
    }
}

/// A parsed client-level history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinHistory {
    /// Operations in invocation order.
    pub ops: Vec<LinOp>,
    /// Things worth telling the user that do not stop the check (for
    /// example, invocations that never completed).
    pub warnings: Vec<String>,
}

/// Reads converge's own `history.jsonl` as a client-level history: each
/// recorded op becomes one [`LinOp`] keyed by its key. Times are the
/// recorded nanoseconds; `line` is 0 because an op spans two lines (its
/// invocation and its completion).
pub fn from_converge_jsonl(path: &std::path::Path) -> crate::Result<LinHistory> {
    let read = super::jsonl::read_history(path)?;
    let mut lin = from_history(&read.history).map_err(|message| crate::Error::History {
        path: path.to_path_buf(),
        message,
    })?;
    lin.warnings.extend(read.warnings);
    Ok(lin)
}

/// Converts an in-memory history. Map workloads are refused: their reads
/// return the whole map, not one register.
pub fn from_history(history: &super::History) -> Result<LinHistory, String> {
    use super::Function;
    use converge_models::{Value, Workload};
    if history.workload() == Some(Workload::LwwMap) {
        return Err(
            "lww-map histories cannot be checked for linearizability: a read \
                    returns the whole map"
                .into(),
        );
    }
    let mut ops = Vec::with_capacity(history.ops.len());
    let mut reads = history.read_cursor();
    for record in &history.ops {
        let f = match record.f {
            Function::Read => LinFn::Read,
            Function::Write => LinFn::Write,
            Function::Increment | Function::Add => LinFn::Add,
            other => {
                return Err(format!(
                    "op {other:?} has no sequential counterpart in the linearizability models"
                ))
            }
        };
        let output = match reads.value(record) {
            None => LinValue::Nil,
            Some(Value::Int(i)) => LinValue::Int(*i),
            Some(Value::Elems(items)) => match (history.workload(), items.as_slice()) {
                // A register read returns its value, or nothing when unset.
                (Some(Workload::LwwRegister | Workload::MvRegister), []) => LinValue::Nil,
                (Some(Workload::LwwRegister | Workload::MvRegister), [one]) => {
                    LinValue::Int(*one as i64)
                }
                _ => LinValue::List(items.iter().map(|&e| LinValue::Int(e as i64)).collect()),
            },
            Some(Value::Map(_)) => return Err("a map read has no register value".into()),
        };
        let input = match f {
            LinFn::Read => LinValue::Nil,
            _ => LinValue::Int(record.value),
        };
        let ret = match record.outcome {
            Outcome::Info => None,
            _ => Some(record.invoke_ns.saturating_add(record.latency_ns)),
        };
        ops.push(LinOp {
            process: record.process as u64,
            key: Some(record.key.to_string()),
            f,
            input,
            output,
            outcome: record.outcome,
            call: record.invoke_ns,
            ret,
            line: 0,
        });
    }
    ops.sort_by_key(|op| op.call);
    Ok(LinHistory {
        ops,
        warnings: Vec::new(),
    })
}
