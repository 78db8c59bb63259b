//! `history.jsonl`: one JSON object per line, streamed while the run goes on.
//!
//! Each operation is two lines, Jepsen style: an `invoke` line and a
//! completion (`ok`, `fail` or `info`) carrying the same `op` id. An invoke
//! with no completion (a killed run) reads back as `info`. The final phase
//! adds `final`, `probe`, `quiescence` and `network` lines.
//!
//! The writer runs on its own thread, formats op lines by hand (they are the
//! hot path) and flushes whenever its queue is empty, so a killed run loses at
//! most the batches still queued. The reader uses serde and names the line of
//! any error; a final line cut short by a kill is skipped with a warning.

use super::{
    FinalRead, Function, Header, History, NetworkStats, OpBatch, OpRecord, Outcome, Probe,
    Quiescence, ReadCursor, SCHEMA_VERSION, UNKNOWN_AUX,
};
use crate::error::{Error, Result};
use converge_models::{Dot, Value};
use converge_sync::channel::{self, Receiver, Sender, TryRecvError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// A message to the history writer thread.
#[derive(Debug)]
pub enum WriterMsg {
    /// A batch of completed operations.
    Ops(Box<OpBatch>),
    /// A final read.
    Final(FinalRead),
    /// An idempotency probe.
    Probe(Probe),
    /// End of the final phase.
    Quiescence(Quiescence),
    /// Network counters.
    Network(NetworkStats),
}

/// Streams one completed op (and the value a read returned) to the writer
/// thread as a batch of its own: live targets record ops one at a time.
pub fn send_op(sender: &Sender<WriterMsg>, record: OpRecord, read: Option<Value>) -> Result<()> {
    let mut batch = OpBatch::default();
    batch.push(record, None, &[], read);
    sender
        .send(WriterMsg::Ops(Box::new(batch)))
        .map_err(|_| Error::Target {
            component: "history writer".into(),
            message: "stopped accepting ops".into(),
        })
}

/// Most ops [`HistoryWriter::start`] reserves room for (48 MiB of records).
const MAX_RESERVED_OPS: u64 = 1 << 20;

/// Handle to the writer thread. Dropping every sender ends it.
pub struct HistoryWriter {
    sender: Sender<WriterMsg>,
    thread: JoinHandle<Result<History>>,
}

impl HistoryWriter {
    /// Creates `path`, writes the header, and starts the writer thread.
    pub fn start(path: &Path, header: Header) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        serde_json::to_writer(&mut out, &Tagged::Header(&header))
            .map_err(|e| Error::io(path, e.into()))?;
        out.write_all(b"\n").map_err(|e| Error::io(path, e))?;
        out.flush().map_err(|e| Error::io(path, e))?;
        let (sender, receiver) = channel::bounded(4096);
        let mut history = History::new(header);
        // Most runs record the ops their header plans: reserving them once
        // spares the recorder a doubling copy (and its page faults) as it
        // grows. Capped so a huge planned run does not reserve up front.
        let planned = history.header.as_ref().map_or(0, |h| h.ops);
        history
            .ops
            .reserve_exact(planned.min(MAX_RESERVED_OPS) as usize);
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || write_loop(receiver, out, history, path))
            .map_err(|e| Error::io("history-writer thread", e))?;
        Ok(HistoryWriter { sender, thread })
    }

    /// A sender for writers; cheap to clone.
    pub fn sender(&self) -> Sender<WriterMsg> {
        self.sender.clone()
    }

    /// Closes this handle's sender and waits for the thread, returning the
    /// in-memory history. Other senders must be dropped first.
    pub fn finish(self) -> Result<History> {
        drop(self.sender);
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => Err(Error::Config("history writer thread panicked".into())),
        }
    }
}

fn write_loop(
    mut receiver: Receiver<WriterMsg>,
    mut out: BufWriter<File>,
    mut history: History,
    path: PathBuf,
) -> Result<History> {
    let mut line = Vec::with_capacity(512);
    let mut next_op: u64 = 0;
    let io = |e: std::io::Error| Error::io(&path, e);
    loop {
        let msg = match receiver.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Empty) => {
                out.flush().map_err(io)?;
                match receiver.recv() {
                    Ok(msg) => msg,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        match msg {
            WriterMsg::Ops(batch) => {
                for op in batch.iter() {
                    line.clear();
                    format_parts(
                        &mut line,
                        next_op,
                        op.record,
                        op.clock,
                        op.observed.iter().copied(),
                        op.read,
                    );
                    if let Some(tick) = batch.tick {
                        add_tick(&mut line, tick);
                    }
                    out.write_all(&line).map_err(io)?;
                    next_op += 1;
                    history
                        .push(*op.record, op.clock, op.observed, op.read.cloned())
                        .map_err(|m| Error::History {
                            path: path.clone(),
                            message: m,
                        })?;
                }
            }
            WriterMsg::Final(f) => {
                write_json(&mut out, &Tagged::Final(&f)).map_err(io)?;
                history.finals.push(f);
            }
            WriterMsg::Probe(p) => {
                write_json(&mut out, &Tagged::Probe(&p)).map_err(io)?;
                history.probes.push(p);
            }
            WriterMsg::Quiescence(q) => {
                write_json(&mut out, &Tagged::Quiescence(&q)).map_err(io)?;
                history.quiescence = Some(q);
            }
            WriterMsg::Network(n) => {
                write_json(&mut out, &Tagged::Network(&n)).map_err(io)?;
                history.network = Some(n);
            }
        }
    }
    out.flush().map_err(io)?;
    history.shrink_to_fit();
    Ok(history)
}

fn write_json<T: Serialize>(out: &mut impl Write, value: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Serialization-side twin of [`Line`] for the non-op lines.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Tagged<'a> {
    Header(&'a Header),
    Final(&'a FinalRead),
    Probe(&'a Probe),
    Quiescence(&'a Quiescence),
    Network(&'a NetworkStats),
}

fn function_name(f: Function) -> &'static str {
    match f {
        Function::Increment => "increment",
        Function::Add => "add",
        Function::Remove => "remove",
        Function::Write => "write",
        Function::Put => "put",
        Function::Delete => "delete",
        Function::Read => "read",
    }
}

fn push_int(line: &mut Vec<u8>, n: impl itoa::Integer) {
    line.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Formats one operation of `src` as its invoke line and its completion line.
/// `reads` is a cursor of `src` ([`History::read_cursor`]), reused from op to
/// op so that formatting a history in order decodes each read once.
pub fn format_op(
    line: &mut Vec<u8>,
    id: u64,
    op: &OpRecord,
    src: &History,
    reads: &mut ReadCursor<'_>,
) {
    let clock = src.clock(op);
    format_parts(
        line,
        id,
        op,
        clock.as_deref(),
        src.observed(op),
        reads.value(op),
    );
}

/// Formats one operation, given its variable-size data, as its invoke line
/// and its completion line.
fn format_parts(
    line: &mut Vec<u8>,
    id: u64,
    op: &OpRecord,
    clock: Option<&[u64]>,
    observed: impl Iterator<Item = Dot>,
    read: Option<&Value>,
) {
    line.extend_from_slice(b"{\"type\":\"invoke\",\"op\":");
    push_int(line, id);
    line.extend_from_slice(b",\"process\":");
    push_int(line, op.process);
    line.extend_from_slice(b",\"replica\":");
    push_int(line, op.replica);
    line.extend_from_slice(b",\"key\":");
    push_int(line, op.key);
    line.extend_from_slice(b",\"f\":\"");
    line.extend_from_slice(function_name(op.f).as_bytes());
    line.push(b'"');
    if !matches!(op.f, Function::Read | Function::Delete) {
        line.extend_from_slice(b",\"value\":");
        push_int(line, op.value);
    }
    if matches!(op.f, Function::Put | Function::Delete) {
        line.extend_from_slice(b",\"field\":");
        push_int(line, op.field());
    }
    line.extend_from_slice(b",\"time_ns\":");
    push_int(line, op.invoke_ns);
    line.extend_from_slice(b"}\n{\"type\":\"");
    line.extend_from_slice(match op.outcome {
        Outcome::Ok => b"ok",
        Outcome::Fail => b"fail",
        Outcome::Info => b"info",
    });
    line.extend_from_slice(b"\",\"op\":");
    push_int(line, id);
    line.extend_from_slice(b",\"time_ns\":");
    push_int(line, op.invoke_ns + op.latency_ns as u64);
    if op.f.is_update() && op.outcome != Outcome::Fail {
        line.extend_from_slice(b",\"clock_sum\":");
        push_int(line, op.clock_sum);
        if let Some(clock) = clock.filter(|c| !c.is_empty()) {
            line.extend_from_slice(b",\"clock\":[");
            for (i, c) in clock.iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                push_int(line, *c);
            }
            line.push(b']');
        }
        match op.f {
            Function::Write | Function::Put | Function::Delete if op.aux != UNKNOWN_AUX => {
                line.extend_from_slice(b",\"ts\":");
                push_int(line, op.aux);
            }
            Function::Add if op.aux != 0 && op.aux != UNKNOWN_AUX => {
                line.extend_from_slice(b",\"dot\":");
                push_int(line, op.aux);
            }
            _ => {}
        }
        // A remove always says what it observed (maybe nothing); a write
        // only when it overwrote something it saw (automerge puts).
        let mut observed = observed.peekable();
        let any_observed = observed.peek().is_some();
        if op.f == Function::Remove || (op.f == Function::Write && any_observed) {
            line.extend_from_slice(b",\"observed\":[");
            for (i, d) in observed.enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                line.push(b'[');
                push_int(line, d.replica);
                line.push(b',');
                push_int(line, d.counter);
                line.push(b']');
            }
            line.push(b']');
        }
    }
    if let Some(value) = read.filter(|_| op.f == Function::Read) {
        line.extend_from_slice(b",\"read\":");
        // Serializing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *line, value);
    }
    line.extend_from_slice(b"}\n");
}

/// Adds `"tick":N` (logical time) at the end of both lines of one
/// formatted op (`{...}\n{...}\n`), beside their wall-clock `time_ns`.
fn add_tick(line: &mut Vec<u8>, tick: u64) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(tick).as_bytes();
    let field = || b",\"tick\":".iter().chain(digits).copied();
    // Each line ends in `}\n`; no value holds a newline.
    if let Some(newline) = line.iter().position(|b| *b == b'\n') {
        line.splice(newline - 1..newline - 1, field());
    }
    let end = line.len() - 2;
    line.splice(end..end, field());
}

/// One parsed line.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Header(Header),
    Invoke {
        op: u64,
        process: u32,
        replica: u16,
        key: u32,
        f: Function,
        #[serde(default)]
        value: i64,
        #[serde(default)]
        field: u32,
        time_ns: u64,
        /// Logical time (deterministic targets); checkers do not need it.
        #[serde(default, rename = "tick")]
        _tick: Option<u64>,
    },
    Ok(Completion),
    Fail(Completion),
    Info(Completion),
    Final(FinalRead),
    Probe(Probe),
    Quiescence(Quiescence),
    Network(NetworkStats),
}

#[derive(Deserialize)]
struct Completion {
    op: u64,
    time_ns: u64,
    /// Logical time (deterministic targets); checkers do not need it.
    #[serde(default, rename = "tick")]
    _tick: Option<u64>,
    #[serde(default)]
    clock_sum: u32,
    #[serde(default)]
    clock: Option<Vec<u64>>,
    #[serde(default)]
    ts: Option<u64>,
    #[serde(default)]
    dot: Option<u64>,
    #[serde(default)]
    observed: Option<Vec<(u16, u64)>>,
    #[serde(default)]
    read: Option<Value>,
    #[serde(default)]
    error: Option<String>,
}

/// A history read back from disk, with what the reader had to forgive.
#[derive(Debug)]
pub struct ReadHistory {
    /// The history.
    pub history: History,
    /// Non-fatal notes (a truncated last line, invokes without completion).
    pub warnings: Vec<String>,
}

struct Pending {
    id: u64,
    record: OpRecord,
    line: usize,
}

/// Reads `history.jsonl`. A malformed line is an error naming the line; a
/// final line with no newline that does not parse (a run killed mid-write) is
/// skipped with a warning; invokes with no completion become `info`.
pub fn read_history(path: &Path) -> Result<ReadHistory> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(512);
    let mut history = History::default();
    let mut warnings = Vec::new();
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    // Positions in `history.ops` are op ids, as findings promise. Ops are
    // pushed as soon as every lower id is in, so only completions that
    // overtook an earlier op wait, with their values: holding every read
    // until the end cost a 1M-op G-Set history 1.6 GB.
    let mut ordered = InIdOrder::default();
    let mut seen_ids: HashSet<u64> = HashSet::new();
    let mut line_no = 0usize;
    let bad = |line: usize, message: String| Error::HistoryLine {
        path: path.to_path_buf(),
        line,
        message,
    };
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let terminated = buf.last() == Some(&b'\n');
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let parsed: Line = match serde_json::from_slice(text) {
            Ok(line) => line,
            Err(e) if !terminated => {
                warnings.push(format!(
                    "{}:{line_no}: last line is cut short ({e}); skipped, as a killed run leaves it",
                    path.display()
                ));
                break;
            }
            Err(e) => return Err(bad(line_no, e.to_string())),
        };
        if line_no == 1 && !matches!(parsed, Line::Header(_)) {
            return Err(bad(line_no, "the first line must be the header".into()));
        }
        match parsed {
            Line::Header(header) => {
                if line_no != 1 {
                    return Err(bad(line_no, "a second header".into()));
                }
                if header.schema_version != SCHEMA_VERSION {
                    return Err(bad(
                        line_no,
                        format!(
                            "schema_version {} is not supported (expected {SCHEMA_VERSION})",
                            header.schema_version
                        ),
                    ));
                }
                history.keep_clocks = super::needs_clocks(header.workload);
                history.header = Some(header);
            }
            Line::Invoke {
                op,
                process,
                replica,
                key,
                f,
                value,
                field,
                time_ns,
                ..
            } => {
                check_bounds(&history, replica, key).map_err(|m| bad(line_no, m))?;
                if !seen_ids.insert(op) {
                    return Err(bad(line_no, format!("op {op} invoked twice")));
                }
                let record = OpRecord {
                    invoke_ns: time_ns,
                    value,
                    aux: if stamped(f) { UNKNOWN_AUX } else { 0 },
                    latency_ns: 0,
                    process,
                    key,
                    clock_sum: 0,
                    slot: field,
                    replica,
                    f,
                    outcome: Outcome::Info,
                };
                if pending
                    .insert(
                        op,
                        Pending {
                            id: op,
                            record,
                            line: line_no,
                        },
                    )
                    .is_some()
                {
                    return Err(bad(line_no, format!("op {op} invoked twice")));
                }
            }
            Line::Ok(c) => {
                let c = (c, Outcome::Ok, line_no);
                on_completion(&mut history, &mut pending, &mut ordered, c)
                    .map_err(|(line, m)| bad(line, m))?;
            }
            Line::Fail(c) => {
                let c = (c, Outcome::Fail, line_no);
                on_completion(&mut history, &mut pending, &mut ordered, c)
                    .map_err(|(line, m)| bad(line, m))?;
            }
            Line::Info(c) => {
                let c = (c, Outcome::Info, line_no);
                on_completion(&mut history, &mut pending, &mut ordered, c)
                    .map_err(|(line, m)| bad(line, m))?;
            }
            Line::Final(f) => {
                check_bounds(&history, f.replica, f.key).map_err(|m| bad(line_no, m))?;
                history.finals.push(f)
            }
            Line::Probe(p) => {
                check_bounds(&history, p.replica, p.key).map_err(|m| bad(line_no, m))?;
                history.probes.push(p)
            }
            Line::Quiescence(q) => history.quiescence = Some(q),
            Line::Network(n) => history.network = Some(n),
        }
    }
    if history.header.is_none() {
        return Err(Error::History {
            path: path.to_path_buf(),
            message: "empty history: no header line".into(),
        });
    }
    let mut open: Vec<Pending> = pending.into_values().collect();
    open.sort_by_key(|p| p.line);
    if !open.is_empty() {
        warnings.push(format!(
            "{}: {} invoke(s) never completed (first at line {}); treated as info",
            path.display(),
            open.len(),
            open[0].line
        ));
    }
    for p in open {
        ordered.waiting.insert(
            p.id,
            Completed {
                id: p.id,
                line: p.line,
                record: p.record,
                clock: None,
                observed: Vec::new(),
                read: None,
            },
        );
    }
    // Whatever still waits follows, in id order: ops that never completed,
    // and any after a gap in the ids.
    for c in std::mem::take(&mut ordered.waiting).into_values() {
        push_completed(&mut history, c).map_err(|(line, m)| bad(line, m))?;
    }
    history.shrink_to_fit();
    Ok(ReadHistory { history, warnings })
}

/// Matches a completion line to its invoke and hands the op to `ordered`.
fn on_completion(
    history: &mut History,
    pending: &mut HashMap<u64, Pending>,
    ordered: &mut InIdOrder,
    (c, outcome, line): (Completion, Outcome, usize),
) -> std::result::Result<(), (usize, String)> {
    let c = complete(pending, c, outcome, line)
        .and_then(|c| check_dots(history, c))
        .map_err(|m| (line, m))?;
    ordered.accept(history, c)
}

/// Observed dots must name replicas the header declares.
fn check_dots(history: &History, c: Completed) -> std::result::Result<Completed, String> {
    let replicas = history.header.as_ref().map_or(u16::MAX, |h| h.replicas);
    if let Some(d) = c.observed.iter().find(|d| d.replica >= replicas) {
        return Err(format!(
            "observed dot ({}, {}) names replica {} but the header declares {replicas} replica(s)",
            d.replica, d.counter, d.replica
        ));
    }
    Ok(c)
}

/// Replicas and keys must lie inside what the header declares.
fn check_bounds(history: &History, replica: u16, key: u32) -> std::result::Result<(), String> {
    let Some(h) = &history.header else {
        return Ok(());
    };
    if replica >= h.replicas {
        return Err(format!(
            "replica {replica} is out of range: the header declares {} replica(s)",
            h.replicas
        ));
    }
    if key >= h.keys {
        return Err(format!(
            "key {key} is out of range: the header declares {} key(s)",
            h.keys
        ));
    }
    Ok(())
}

/// Whether an op's completion carries a stamp (timestamp, dot, observed dots
/// or clock) that checkers need.
fn stamped(f: Function) -> bool {
    !matches!(f, Function::Increment | Function::Read)
}

struct Completed {
    id: u64,
    line: usize,
    record: OpRecord,
    clock: Option<Vec<u64>>,
    observed: Vec<Dot>,
    read: Option<Value>,
}

/// Completed ops on their way into the history in id order.
#[derive(Default)]
struct InIdOrder {
    /// The id the history takes next.
    next: u64,
    /// Completed ops with a higher id than `next`.
    waiting: BTreeMap<u64, Completed>,
}

impl InIdOrder {
    /// Pushes `c` if it is next, then whatever waited for it; else keeps it.
    fn accept(
        &mut self,
        history: &mut History,
        c: Completed,
    ) -> std::result::Result<(), (usize, String)> {
        if c.id != self.next {
            self.waiting.insert(c.id, c);
            return Ok(());
        }
        push_completed(history, c)?;
        self.next = self.next.wrapping_add(1);
        while let Some(c) = self.waiting.remove(&self.next) {
            push_completed(history, c)?;
            self.next = self.next.wrapping_add(1);
        }
        Ok(())
    }
}

/// Pushes one completed op; an error names its line.
fn push_completed(history: &mut History, c: Completed) -> std::result::Result<(), (usize, String)> {
    history
        .push(c.record, c.clock.as_deref(), &c.observed, c.read)
        .map_err(|m| (c.line, m))
}

fn complete(
    pending: &mut HashMap<u64, Pending>,
    c: Completion,
    outcome: Outcome,
    line: usize,
) -> std::result::Result<Completed, String> {
    let Some(Pending { mut record, .. }) = pending.remove(&c.op) else {
        return Err(format!("completion of op {} that was never invoked", c.op));
    };
    if c.time_ns < record.invoke_ns {
        return Err(format!(
            "op {} completes at {} ns, before its invocation at {} ns",
            c.op, c.time_ns, record.invoke_ns
        ));
    }
    let _ = c.error;
    record.outcome = outcome;
    record.latency_ns = u32::try_from(c.time_ns - record.invoke_ns).unwrap_or(u32::MAX);
    record.clock_sum = c.clock_sum;
    record.aux = match (c.ts.or(c.dot), outcome) {
        (Some(aux), _) => aux,
        // An indeterminate update that never learned its stamp.
        (None, Outcome::Info) if stamped(record.f) && c.clock.is_none() && c.observed.is_none() => {
            UNKNOWN_AUX
        }
        (None, _) => 0,
    };
    let read = if record.f == Function::Read {
        match (outcome, c.read) {
            (Outcome::Ok, None) => {
                return Err(format!("ok read op {} has no \"read\" value", c.op))
            }
            (_, read) => read,
        }
    } else {
        None
    };
    let observed: Vec<Dot> = c
        .observed
        .unwrap_or_default()
        .into_iter()
        .map(|(r, n)| Dot::new(r, n))
        .collect();
    Ok(Completed {
        id: c.op,
        line,
        record,
        clock: c.clock,
        observed,
        read,
    })
}
