//! `history.jsonl`: one JSON object per line, streamed while the run goes on.
//!
//! Each operation is two lines, Jepsen style: an `invoke` line and a
//! completion (`ok`, `fail` or `info`) carrying the same `op` id. An invoke
//! with no completion (a killed run) reads back as `info`. The final phase
//! adds `final`, `probe`, `quiescence` and `network` lines, and the writer
//! closes the file with an `end` line (its header promises one with
//! `"end_line": true`), so a history cut short by a kill is recognised.
//!
//! Black-box targets (Maelstrom nodes, HTTP services, SQL databases) record
//! an op's invocation before they send it ([`record_invoke`], which returns
//! once the line is written to the file) and its completion when it returns
//! ([`Invoked::complete`]): a killed run leaves every op that may have taken
//! effect on disk. The in-process engine, whose ops cannot outlive it, hands
//! over completed ops in batches ([`WriterMsg::Ops`]).
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
    /// The invocation of an op about to be sent (only its invoke fields
    /// count): the writer writes its line, hands it to the file, and only
    /// then answers with the op's id.
    Invoke(OpRecord, tokio::sync::oneshot::Sender<u64>),
    /// The completion of an op invoked with [`WriterMsg::Invoke`]: a batch
    /// of that one op.
    Complete(u64, Box<OpBatch>),
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
        .map_err(|_| writer_gone())
}

fn writer_gone() -> Error {
    Error::Target {
        component: "history writer".into(),
        message: "stopped accepting ops".into(),
    }
}

/// An op whose invocation is in the history file: complete it with
/// [`Invoked::complete`] once it returns. One dropped without completing
/// reads back as `info`.
#[derive(Debug)]
#[must_use = "an invoked op is completed with Invoked::complete"]
pub struct Invoked {
    id: u64,
}

impl Invoked {
    /// The op's id in the history file.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Records how the op ended: its outcome, latency, stamp and read. The
    /// fields the invocation recorded (process, replica, key, function,
    /// value, invocation time) are taken from the invocation.
    pub fn complete(
        self,
        sender: &Sender<WriterMsg>,
        record: OpRecord,
        read: Option<Value>,
    ) -> Result<()> {
        let mut batch = OpBatch::default();
        batch.push(record, None, &[], read);
        sender
            .send(WriterMsg::Complete(self.id, Box::new(batch)))
            .map_err(|_| writer_gone())
    }
}

/// Writes the invocation of `record` (its process, replica, key, function,
/// value and invocation time) to the history file and returns once the line
/// has been handed to the file: call it before sending the op, so a killed
/// run leaves every op that may have taken effect on disk, as Jepsen does.
pub async fn record_invoke(sender: &Sender<WriterMsg>, record: &OpRecord) -> Result<Invoked> {
    let (ack, written) = tokio::sync::oneshot::channel();
    sender
        .send(WriterMsg::Invoke(*record, ack))
        .map_err(|_| writer_gone())?;
    match written.await {
        Ok(id) => Ok(Invoked { id }),
        Err(_) => Err(writer_gone()),
    }
}

/// Most ops [`HistoryWriter::start`] reserves room for (48 MiB of records).
const MAX_RESERVED_OPS: u64 = 1 << 20;

/// Handle to the writer thread. Dropping every sender ends it.
pub struct HistoryWriter {
    sender: Sender<WriterMsg>,
    thread: JoinHandle<Result<History>>,
}

impl HistoryWriter {
    /// Claims the folder of `path` for this run ([`super::lock::claim`]),
    /// creates `path`, writes the header, and starts the writer thread.
    pub fn start(path: &Path, header: Header) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            super::lock::claim(dir)?;
        }
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let first = HeaderLine {
            header: header.clone(),
            end_line: true,
        };
        let first = serde_json::to_string(&Tagged::Header(&first))
            .map_err(|e| Error::io(path, e.into()))?;
        out.write_all(crate::secrets::mask(&first).as_bytes())
            .map_err(|e| Error::io(path, e))?;
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

/// Invocations the writer hands to the file before answering: more than
/// this many waiting for an answer are flushed at once, so a writer never
/// waits on a queue that does not empty.
const MAX_UNANSWERED_INVOKES: usize = 256;

fn write_loop(
    mut receiver: Receiver<WriterMsg>,
    mut out: BufWriter<File>,
    mut history: History,
    path: PathBuf,
) -> Result<History> {
    let mut line = Vec::with_capacity(512);
    let mut next_op: u64 = 0;
    // Invocations whose completion has not come yet.
    let mut open: HashMap<u64, OpRecord> = HashMap::new();
    // Positions in `history.ops` are op ids, as in a history read back: a
    // completion waits here until every lower id is in.
    let mut ordered = InIdOrder::default();
    // Writers waiting to hear that their invocation is in the file.
    let mut unanswered: Vec<(tokio::sync::oneshot::Sender<u64>, u64)> = Vec::new();
    let io = |e: std::io::Error| Error::io(&path, e);
    let incoherent = |(_, message): (usize, String)| Error::History {
        path: path.clone(),
        message,
    };
    let answer = |out: &mut BufWriter<File>,
                  unanswered: &mut Vec<(tokio::sync::oneshot::Sender<u64>, u64)>|
     -> Result<()> {
        out.flush().map_err(io)?;
        for (ack, id) in unanswered.drain(..) {
            let _ = ack.send(id);
        }
        Ok(())
    };
    loop {
        let msg = match receiver.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Empty) => {
                answer(&mut out, &mut unanswered)?;
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
                    format_invoke(&mut line, next_op, op.record);
                    format_completion(
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
                    if ordered.next == next_op && ordered.waiting.is_empty() {
                        // The in-process engine's path: no op is ever open.
                        history
                            .push(*op.record, op.clock, op.observed, op.read.cloned())
                            .map_err(|m| incoherent((0, m)))?;
                        ordered.next += 1;
                    } else {
                        ordered
                            .accept(&mut history, Completed::written(next_op, *op.record, &op))
                            .map_err(incoherent)?;
                    }
                    next_op += 1;
                }
            }
            WriterMsg::Invoke(record, ack) => {
                line.clear();
                format_invoke(&mut line, next_op, &record);
                out.write_all(&line).map_err(io)?;
                open.insert(next_op, record);
                unanswered.push((ack, next_op));
                next_op += 1;
                if unanswered.len() >= MAX_UNANSWERED_INVOKES {
                    answer(&mut out, &mut unanswered)?;
                }
            }
            WriterMsg::Complete(id, batch) => {
                let Some(invoked) = open.remove(&id) else {
                    return Err(incoherent((
                        0,
                        format!("completion of op {id} that was never invoked"),
                    )));
                };
                for op in batch.iter() {
                    let record = OpRecord {
                        outcome: op.record.outcome,
                        latency_ns: op.record.latency_ns,
                        aux: op.record.aux,
                        clock_sum: op.record.clock_sum,
                        ..invoked
                    };
                    line.clear();
                    format_completion(
                        &mut line,
                        id,
                        &record,
                        op.clock,
                        op.observed.iter().copied(),
                        op.read,
                    );
                    out.write_all(&line).map_err(io)?;
                    ordered
                        .accept(&mut history, Completed::written(id, record, &op))
                        .map_err(incoherent)?;
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
    // An op still open when every sender is gone was never answered: as
    // in a history read back, it is `info`, in id order with the rest.
    for (id, record) in open {
        ordered.waiting.insert(id, never_completed(id, 0, record));
    }
    for c in std::mem::take(&mut ordered.waiting).into_values() {
        push_completed(&mut history, c).map_err(incoherent)?;
    }
    write_json(&mut out, &Tagged::End {}).map_err(io)?;
    answer(&mut out, &mut unanswered)?;
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
    Header(&'a HeaderLine),
    Final(&'a FinalRead),
    Probe(&'a Probe),
    Quiescence(&'a Quiescence),
    Network(&'a NetworkStats),
    End {},
}

/// The first line: the run's parameters, and whether the writer promises
/// to close the file with an `end` line (histories written before it did,
/// and by hand, make no promise).
#[derive(Serialize, Deserialize)]
struct HeaderLine {
    #[serde(flatten)]
    header: Header,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    end_line: bool,
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
    format_invoke(line, id, op);
    format_completion(line, id, op, clock, observed, read);
}

/// Formats the invoke line of an operation: what is known before it is sent.
fn format_invoke(line: &mut Vec<u8>, id: u64, op: &OpRecord) {
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
    line.extend_from_slice(b"}\n");
}

/// Formats the completion line of an operation.
fn format_completion(
    line: &mut Vec<u8>,
    id: u64,
    op: &OpRecord,
    clock: Option<&[u64]>,
    observed: impl Iterator<Item = Dot>,
    read: Option<&Value>,
) {
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(match op.outcome {
        Outcome::Ok => b"ok",
        Outcome::Fail => b"fail",
        Outcome::Info => b"info",
    });
    line.extend_from_slice(b"\",\"op\":");
    push_int(line, id);
    line.extend_from_slice(b",\"time_ns\":");
    push_int(line, op.invoke_ns.saturating_add(op.latency_ns));
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
    Header(HeaderLine),
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
    End {},
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
    /// Why the history is known to be cut short: its header promises an
    /// `end` line and there is none (a killed run). What it holds may be
    /// judged, but it cannot be the whole run.
    pub interrupted: Option<String>,
}

/// Longest line [`read_history`] accepts by default: far above any line a
/// run writes (a read of a 4-million-element set), and a bound on the
/// memory a file without newlines (`/dev/zero`) can take.
pub const MAX_LINE_BYTES: usize = 64 << 20;

struct Pending {
    id: u64,
    record: OpRecord,
    line: usize,
}

/// Reads `history.jsonl`. A malformed line is an error naming the line; a
/// final line with no newline that does not parse (a run killed mid-write) is
/// skipped with a warning; invokes with no completion become `info`. Lines
/// are at most [`MAX_LINE_BYTES`] long.
pub fn read_history(path: &Path) -> Result<ReadHistory> {
    read_history_with_limit(path, MAX_LINE_BYTES)
}

/// [`read_history`] with another bound on line length: a longer line is an
/// error naming it, read no further than the bound.
pub fn read_history_with_limit(path: &Path, max_line: usize) -> Result<ReadHistory> {
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
    let mut promises_end = false;
    let mut ended_at: Option<usize> = None;
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
        let terminated = buf.last() == Some(&b'\n');
        if !whole {
            return Err(bad(
                line_no,
                format!(
                    "line is longer than {} bytes; no history line is that long \
                     (is this a history file?)",
                    max_line
                ),
            ));
        }
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
        let parsed: Line = match serde_json::from_slice(text) {
            Ok(line) => line,
            Err(e) if !terminated && line_no == 1 => {
                return Err(bad(
                    line_no,
                    format!(
                        "the header line is cut short (no newline, {} bytes): {e}",
                        text.len()
                    ),
                ));
            }
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
            Line::Header(HeaderLine { header, end_line }) => {
                promises_end = end_line;
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
            Line::End {} => ended_at = Some(line_no),
        }
    }
    let interrupted = (promises_end && ended_at.is_none()).then(|| {
        format!(
            "{}: the history stops at line {line_no} without its end line: \
             the run was cut short (killed or still running)",
            path.display()
        )
    });
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
        ordered
            .waiting
            .insert(p.id, never_completed(p.id, p.line, p.record));
    }
    // Whatever still waits follows, in id order: ops that never completed,
    // and any after a gap in the ids.
    for c in std::mem::take(&mut ordered.waiting).into_values() {
        push_completed(&mut history, c).map_err(|(line, m)| bad(line, m))?;
    }
    history.shrink_to_fit();
    Ok(ReadHistory {
        history,
        warnings,
        interrupted,
    })
}

/// Reads a whole text file whose lines are at most `max_line` bytes long
/// (the EDN and Jepsen log readers, which parse the file in one piece): a
/// longer line is an error naming it, read no further than the bound, so a
/// file without newlines (`/dev/zero`, a corrupt dump) cannot take memory
/// without end.
pub fn read_file_capped(path: &Path, max_line: usize) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut src = Vec::new();
    let mut line_no = 0usize;
    loop {
        let start = src.len();
        let whole =
            read_line_capped(&mut reader, &mut src, max_line).map_err(|e| Error::io(path, e))?;
        if src.len() == start && whole {
            return Ok(src);
        }
        line_no += 1;
        if !whole {
            return Err(Error::HistoryLine {
                path: path.to_path_buf(),
                line: line_no,
                message: format!(
                    "line is longer than {}; no history line is that long \
                     (is this a history file?)",
                    if max_line.is_multiple_of(1 << 20) {
                        format!("{} MiB", max_line >> 20)
                    } else {
                        format!("{max_line} bytes")
                    }
                ),
            });
        }
    }
}

/// Appends one line (with its newline) to `buf`; false when it is longer
/// than `max_line` bytes, having read no further than the bound (nothing
/// appended and true at the end of the input). Every line reader of a
/// recorded file uses it, so none takes unbounded memory.
pub(crate) fn read_line_capped(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max_line: usize,
) -> std::io::Result<bool> {
    let start = buf.len();
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(true);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() - start + take > max_line + 1 {
            return Ok(false);
        }
        buf.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        if done {
            return Ok(true);
        }
    }
}

/// An invoked op that never completed: `info`, whose stamp is unknown.
fn never_completed(id: u64, line: usize, record: OpRecord) -> Completed {
    Completed {
        id,
        line,
        record: OpRecord {
            outcome: Outcome::Info,
            latency_ns: 0,
            clock_sum: 0,
            aux: if stamped(record.f) { UNKNOWN_AUX } else { 0 },
            ..record
        },
        clock: None,
        observed: Vec::new(),
        read: None,
    }
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

/// Dots (an add's, a remove's observed ones) must name replicas the header
/// declares, and a vector clock has at most one entry per replica.
fn check_dots(history: &History, c: Completed) -> std::result::Result<Completed, String> {
    let Some(replicas) = history.header.as_ref().map(|h| h.replicas) else {
        return Ok(c);
    };
    if let Some(d) = c.observed.iter().find(|d| d.replica >= replicas) {
        return Err(format!(
            "observed dot ({}, {}) names replica {} but the header declares {replicas} replica(s)",
            d.replica, d.counter, d.replica
        ));
    }
    if c.record.f == Function::Add && c.record.aux != 0 && c.record.aux != UNKNOWN_AUX {
        let dot = super::unpack_dot(c.record.aux);
        if dot.replica >= replicas {
            return Err(format!(
                "dot {} (replica {}, counter {}) names replica {} but the header declares \
                 {replicas} replica(s)",
                c.record.aux, dot.replica, dot.counter, dot.replica
            ));
        }
    }
    if let Some(clock) = c.clock.as_ref().filter(|k| k.len() > usize::from(replicas)) {
        return Err(format!(
            "op {}: a vector clock of {} entries, but the header declares {replicas} replica(s)",
            c.id,
            clock.len()
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

impl Completed {
    /// An op the writer has just put on disk: `record` with the variable
    /// data of its batch entry.
    fn written(id: u64, record: OpRecord, op: &crate::history::BatchOp<'_>) -> Completed {
        Completed {
            id,
            line: 0,
            record,
            clock: op.clock.map(<[u64]>::to_vec),
            observed: op.observed.to_vec(),
            read: op.read.cloned(),
        }
    }
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
    if let Some(stamp) = c.ts.or(c.dot).filter(|&s| s == UNKNOWN_AUX) {
        let name = if c.ts.is_some() { "ts" } else { "dot" };
        return Err(format!(
            "op {}: {name} {stamp} is out of range (u64::MAX stands for an unknown stamp)",
            c.op
        ));
    }
    record.outcome = outcome;
    record.latency_ns = c.time_ns - record.invoke_ns;
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
