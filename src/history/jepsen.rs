//! Jepsen-style histories (text logs and EDN, porcupine's kv lines included)
//! turned into a [`LinHistory`].
//!
//! Both formats are a sequence of events: an `invoke` opens an operation for
//! its process and the next `ok`, `fail` or `info` of that process closes it.
//! Events are numbered in file order, and that number is the op's `call` and
//! `ret`, so times from the two formats compare the same way.
//!
//! Events whose process is not an integer (`:nemesis`) are skipped without
//! being numbered: they are fault injections, not client operations.

use super::edn::{self, Edn, EdnError, EdnKind, Events};
use super::jsonl::{read_file_capped, MAX_LINE_BYTES};
use super::lin::{LinFn, LinHistory, LinOp, LinValue};
use super::Outcome;
use crate::error::{Error, Result};
use rustc_hash::FxHashMap;
use std::path::Path;

/// What marks an operation line in a Jepsen text log.
pub const LOG_MARKER: &str = "jepsen.util - ";

/// The `:type` of a Jepsen event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The operation starts.
    Invoke,
    /// It completed and took effect.
    Ok,
    /// It completed and did not take effect.
    Fail,
    /// It may or may not have taken effect.
    Info,
}

/// Reads a `:type` name (without the colon).
pub fn event_type(name: &str) -> Option<EventType> {
    match name {
        "invoke" => Some(EventType::Invoke),
        "ok" => Some(EventType::Ok),
        "fail" => Some(EventType::Fail),
        "info" => Some(EventType::Info),
        _ => None,
    }
}

/// Reads an `:f` name (without the colon), including porcupine's kv names
/// (`get`, `put`) and counter or set names (`add`, `increment`).
pub fn lin_fn(name: &str) -> Option<LinFn> {
    match name {
        "read" | "get" => Some(LinFn::Read),
        "write" | "put" => Some(LinFn::Write),
        "cas" => Some(LinFn::Cas),
        "append" => Some(LinFn::Append),
        "add" | "increment" => Some(LinFn::Add),
        _ => None,
    }
}

/// Converts an EDN value to an operation value. Vectors, lists and sets
/// become [`LinValue::List`] (sets in source order); booleans, floats,
/// symbols, maps and tagged values have no [`LinValue`] and are refused.
pub fn lin_value(value: &Edn<'_>) -> std::result::Result<LinValue, String> {
    Ok(match &value.kind {
        EdnKind::Nil => LinValue::Nil,
        EdnKind::Int(i) => LinValue::Int(*i),
        EdnKind::Str(s) => LinValue::Str(s.to_string()),
        EdnKind::Keyword(k) => LinValue::Keyword(k.to_string()),
        EdnKind::Vector(items) | EdnKind::List(items) | EdnKind::Set(items) => {
            LinValue::List(items.iter().map(lin_value).collect::<Result<_, _>>()?)
        }
        _ => {
            return Err(format!(
                "unsupported operation value: {} (expected nil, an integer, a string, a keyword or a vector of those)",
                value.describe()
            ))
        }
    })
}

fn line_error(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::HistoryLine {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

fn edn_error(path: &Path, e: EdnError) -> Error {
    line_error(path, e.line, e.message)
}

/// Finds `needle` in `hay` (both bytes): log lines need not be UTF-8, and
/// only marked lines must be.
pub(crate) fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(off) = hay.get(from..)?.iter().position(|&b| b == first) {
        let at = from + off;
        if hay.get(at..at.checked_add(needle.len())?) == Some(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Validates UTF-8, naming the line of the first bad byte.
fn utf8<'s>(path: &Path, src: &'s [u8]) -> Result<&'s str> {
    std::str::from_utf8(src).map_err(|e| {
        let before = src.get(..e.valid_up_to()).unwrap_or_default();
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        line_error(path, line, "not valid UTF-8")
    })
}

/// One client event, ready for pairing.
struct Event<'e, 'a> {
    line: usize,
    process: u64,
    ty: EventType,
    f: LinFn,
    key: Option<String>,
    /// The `:value`, absent counting as `nil`.
    value: Option<&'e Edn<'a>>,
}

/// Pairs invocations with completions, one op in flight per process.
struct Pairer<'p> {
    path: &'p Path,
    ops: Vec<LinOp>,
    /// Index in `ops` of each process's open invocation.
    open: FxHashMap<u64, usize>,
    next_index: u64,
    /// Events of non-client processes (`:nemesis`) skipped so far.
    skipped: usize,
}

impl<'p> Pairer<'p> {
    fn new(path: &'p Path) -> Self {
        Pairer {
            path,
            ops: Vec::new(),
            open: FxHashMap::default(),
            next_index: 0,
            skipped: 0,
        }
    }

    fn value(&self, event: &Event<'_, '_>) -> Result<LinValue> {
        match event.value {
            None => Ok(LinValue::Nil),
            Some(v) => lin_value(v).map_err(|m| line_error(self.path, v.line, m)),
        }
    }

    fn event(&mut self, event: Event<'_, '_>) -> Result<()> {
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        let process = event.process;
        if event.ty == EventType::Invoke {
            if let Some(&open) = self.open.get(&process) {
                let since = self.ops.get(open).map_or(0, |op| op.line);
                return Err(line_error(
                    self.path,
                    event.line,
                    format!(
                        "process {process} invokes again while its invocation of line {since} is still open"
                    ),
                ));
            }
            // A read's input carries nothing (knossos files sometimes repeat
            // the expected value there); keeping it would only mislead.
            let input = if event.f == LinFn::Read {
                LinValue::Nil
            } else {
                self.value(&event)?
            };
            self.open.insert(process, self.ops.len());
            self.ops.push(LinOp {
                process,
                key: event.key,
                f: event.f,
                input,
                output: LinValue::Nil,
                outcome: Outcome::Info,
                call: index,
                ret: None,
                line: event.line,
            });
            return Ok(());
        }
        let Some(at) = self.open.remove(&process) else {
            return Err(line_error(
                self.path,
                event.line,
                format!("completion for process {process}, which has no open invocation"),
            ));
        };
        let (invoked_f, invoked_key, invoked_line) = match self.ops.get(at) {
            Some(op) => (op.f, op.key.clone(), op.line),
            None => {
                return Err(line_error(
                    self.path,
                    event.line,
                    "internal error: lost track of an open invocation",
                ))
            }
        };
        if invoked_f != event.f {
            return Err(line_error(
                self.path,
                event.line,
                format!(
                    "completion has :f :{} but the invocation of process {process} on line {invoked_line} has :f :{}",
                    event.f.as_str(),
                    invoked_f.as_str()
                ),
            ));
        }
        if let (Some(done), Some(invoked)) = (&event.key, &invoked_key) {
            if done != invoked {
                return Err(line_error(
                    self.path,
                    event.line,
                    format!(
                        "completion has :key {done:?} but the invocation on line {invoked_line} has :key {invoked:?}"
                    ),
                ));
            }
        }
        let (outcome, ret) = match event.ty {
            EventType::Ok => (Outcome::Ok, Some(index)),
            EventType::Fail => (Outcome::Fail, Some(index)),
            _ => (Outcome::Info, None),
        };
        // What an indeterminate read returned is meaningless (`:timed-out`).
        let output = if outcome == Outcome::Info && event.f == LinFn::Read {
            LinValue::Nil
        } else {
            self.value(&event)?
        };
        if let Some(op) = self.ops.get_mut(at) {
            op.outcome = outcome;
            op.ret = ret;
            op.output = output;
        }
        Ok(())
    }

    /// A non-client (nemesis) event: well-formed, not an operation.
    fn skip(&mut self) {
        self.skipped = self.skipped.saturating_add(1);
    }

    /// The history. With no client operation it is an error unless the
    /// file held nemesis events: then it is a well-formed history with
    /// nothing to judge, which the checker reports as unknown.
    fn finish(self) -> Result<LinHistory> {
        if self.ops.is_empty() && self.skipped > 0 {
            return Ok(LinHistory {
                ops: Vec::new(),
                warnings: vec![format!(
                    "no client operation: only {} nemesis event(s)",
                    self.skipped
                )],
            });
        }
        if self.ops.is_empty() {
            return Err(Error::History {
                path: self.path.to_path_buf(),
                message: "no client operations found".into(),
            });
        }
        let mut warnings = Vec::new();
        if !self.open.is_empty() {
            warnings.push(format!(
                "{} invocations never completed; treated as info",
                self.open.len()
            ));
        }
        Ok(LinHistory {
            ops: self.ops,
            warnings,
        })
    }
}

/// Reads a Jepsen text log from a file; lines are at most
/// [`MAX_LINE_BYTES`] long.
pub fn read_jepsen_log(path: &Path) -> Result<LinHistory> {
    let src = read_file_capped(path, MAX_LINE_BYTES)?;
    parse_jepsen_log(path, &src)
}

/// Parses a Jepsen text log: every line containing [`LOG_MARKER`] is an
/// event `<process> :<type> :<f> <value>` (tabs or runs of spaces between
/// fields); other lines are skipped. `path` only names the file in errors.
pub fn parse_jepsen_log(path: &Path, src: &[u8]) -> Result<LinHistory> {
    let mut pairer = Pairer::new(path);
    for (i, raw) in src.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let Some(at) = find_bytes(raw, LOG_MARKER.as_bytes()) else {
            continue;
        };
        let text =
            std::str::from_utf8(raw).map_err(|_| line_error(path, line, "not valid UTF-8"))?;
        let rest = text.get(at + LOG_MARKER.len()..).unwrap_or_default().trim();
        let Some(fields) = log_fields(path, line, rest)? else {
            pairer.skip();
            continue;
        };
        let value = edn::parse_one(fields.value, line).map_err(|e| edn_error(path, e))?;
        pairer.event(Event {
            line,
            process: fields.process,
            ty: fields.ty,
            f: fields.f,
            key: None,
            value: Some(&value),
        })?;
    }
    pairer.finish()
}

struct LogFields<'t> {
    process: u64,
    ty: EventType,
    f: LinFn,
    value: &'t str,
}

fn split_field(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find([' ', '\t']) {
        Some(n) => (
            s.get(..n).unwrap_or_default(),
            s.get(n..).unwrap_or_default(),
        ),
        None => (s, ""),
    }
}

/// Splits what follows the marker; `None` for a non-client (nemesis) line.
fn log_fields<'t>(path: &Path, line: usize, rest: &'t str) -> Result<Option<LogFields<'t>>> {
    const SHAPE: &str = "expected `<process> :<type> :<f> <value>` after `jepsen.util - `";
    let (process, rest) = split_field(rest);
    if process.is_empty() {
        return Err(line_error(path, line, SHAPE));
    }
    let process = if process.bytes().all(|b| b.is_ascii_digit()) {
        process
            .parse::<u64>()
            .map_err(|_| line_error(path, line, format!("process id {process} is out of range")))?
    } else if process.len() > 1 && process.starts_with(':') {
        return Ok(None);
    } else {
        return Err(line_error(
            path,
            line,
            format!(
                "process `{process}` is neither a non-negative integer nor a keyword such as :nemesis; {SHAPE}"
            ),
        ));
    };
    let (ty, rest) = split_field(rest);
    let (f, rest) = split_field(rest);
    let value = rest.trim();
    if ty.is_empty() || f.is_empty() || value.is_empty() {
        return Err(line_error(path, line, SHAPE));
    }
    let ty = ty.strip_prefix(':').and_then(event_type).ok_or_else(|| {
        line_error(
            path,
            line,
            format!("unknown type `{ty}`: expected :invoke, :ok, :fail or :info"),
        )
    })?;
    let f = f
        .strip_prefix(':')
        .and_then(lin_fn)
        .ok_or_else(|| line_error(path, line, unknown_f_message(f)))?;
    Ok(Some(LogFields {
        process,
        ty,
        f,
        value,
    }))
}

fn unknown_f_message(f: &str) -> String {
    format!(
        "unknown :f `{f}`: expected :read, :write, :cas, :append, :add, :increment, :get or :put"
    )
}

/// Reads a Jepsen EDN history from a file; lines are at most
/// [`MAX_LINE_BYTES`] long.
pub fn read_edn(path: &Path) -> Result<LinHistory> {
    let src = read_file_capped(path, MAX_LINE_BYTES)?;
    parse_edn(path, &src)
}

/// Parses a Jepsen EDN history: one vector or list of op maps, or a stream
/// of op maps (porcupine's kv lines are the latter). Keys may come in any
/// order and unknown keys are ignored. `path` only names the file in errors.
pub fn parse_edn(path: &Path, src: &[u8]) -> Result<LinHistory> {
    let text = utf8(path, src)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut events = Events::new(text);
    let mut pairer = Pairer::new(path);
    while let Some(node) = events.next_event().map_err(|e| edn_error(path, e))? {
        match edn_event(path, &node)? {
            Some(event) => pairer.event(event)?,
            None => pairer.skip(),
        }
    }
    pairer.finish()
}

/// Reads one op map; `None` for a non-client (nemesis) event.
fn edn_event<'e, 'a>(path: &Path, node: &'e Edn<'a>) -> Result<Option<Event<'e, 'a>>> {
    let Some(entries) = node.map_entries() else {
        return Err(line_error(
            path,
            node.line,
            format!(
                "expected an operation map such as {{:process 0, :type :invoke, :f :read, :value nil}}, found {}",
                node.describe()
            ),
        ));
    };
    let (mut process, mut ty, mut f, mut value, mut key) = (None, None, None, None, None);
    for (k, v) in entries {
        let EdnKind::Keyword(name) = k.kind else {
            continue;
        };
        let slot = match name {
            "process" => &mut process,
            "type" => &mut ty,
            "f" => &mut f,
            "value" => &mut value,
            "key" => &mut key,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(line_error(path, k.line, format!("duplicate key :{name}")));
        }
    }
    let missing = |name: &str| line_error(path, node.line, format!("operation has no :{name}"));
    let process = process.ok_or_else(|| missing("process"))?;
    let process = match process.kind {
        EdnKind::Int(p) => u64::try_from(p)
            .map_err(|_| line_error(path, process.line, format!("process {p} is negative")))?,
        _ => return Ok(None),
    };
    let ty_node: &Edn<'a> = ty.ok_or_else(|| missing("type"))?;
    let ty = match ty_node.kind {
        EdnKind::Keyword(k) => event_type(k),
        _ => None,
    }
    .ok_or_else(|| {
        line_error(
            path,
            ty_node.line,
            format!(
                "unknown :type {}: expected :invoke, :ok, :fail or :info",
                ty_node.describe()
            ),
        )
    })?;
    let f_node: &Edn<'a> = f.ok_or_else(|| missing("f"))?;
    let f = match f_node.kind {
        EdnKind::Keyword(k) => lin_fn(k),
        _ => None,
    }
    .ok_or_else(|| line_error(path, f_node.line, unknown_f_message(&f_node.describe())))?;
    let key = match key.map(|k| (k, &k.kind)) {
        None | Some((_, EdnKind::Nil)) => None,
        Some((_, EdnKind::Str(s))) => Some(s.to_string()),
        Some((_, EdnKind::Int(i))) => Some(i.to_string()),
        Some((k, _)) => {
            return Err(line_error(
                path,
                k.line,
                format!(
                    "unsupported :key {}: expected a string or an integer",
                    k.describe()
                ),
            ))
        }
    };
    Ok(Some(Event {
        line: node.line,
        process,
        ty,
        f,
        key,
        value,
    }))
}
