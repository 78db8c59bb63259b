//! Clients of the workloads that record request and reply bodies (`echo`,
//! `unique-ids`, `kafka`), with Maelstrom's message shapes, and the final
//! polls of `kafka`. The clients run under the engine's load shape
//! ([`crate::engine::run_clients`]). Each op goes to `ops.jsonl`
//! invoke-first (its invocation before the request is sent, its completion
//! when it returns; the format is in [`crate::checker::client_ops`]), and
//! to the in-memory CRDT history only for latency figures.

use super::adapter::MaelstromAdapter;
use super::protocol::{body, is_indefinite, quote};
use super::{MaelstromConfig, MaelstromWorkload, Recorder};
use crate::checker::client_ops::{
    ClientOp, OpCompletion, OpInvoke, OpsHeader, OpsLine, OPS_FORMAT,
};
use crate::checker::kafka::FinalPolls;
use crate::engine::scheduler::Client;
use crate::error::{Error, Result};
use crate::generator::derive_seed;
use crate::history::{Header, Outcome};
use crate::series::SeriesRecorder;
use parking_lot::Mutex;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys of the kafka workload (strings, as Maelstrom's kafka client sends).
pub const KAFKA_KEYS: u64 = 4;
/// Most pages one final poll of one key reads from one node.
const FINAL_POLL_PAGES: usize = 10_000;

/// `ops.jsonl`, written invoke-first; every line is flushed as it is
/// written, so a killed run leaves every op that may have taken effect.
pub(super) struct OpsLog {
    out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    next_op: u64,
}

impl OpsLog {
    /// Creates the file and writes its header: call it before any node
    /// starts, so a run killed during start-up still leaves one.
    pub(super) fn create(path: PathBuf, workload: &str, run: &Header) -> Result<OpsLog> {
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut log = OpsLog {
            out: std::io::BufWriter::new(file),
            path,
            next_op: 0,
        };
        log.line(&OpsLine::Header(OpsHeader {
            ops_format: OPS_FORMAT,
            workload: workload.to_string(),
            run: run.clone(),
        }))?;
        Ok(log)
    }

    fn line(&mut self, line: &OpsLine) -> Result<()> {
        let text = serde_json::to_string(line).map_err(|e| Error::io(&self.path, e.into()))?;
        let text = match line {
            OpsLine::Header(_) => crate::secrets::mask(&text).into_owned(),
            _ => text,
        };
        writeln!(self.out, "{text}")
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Writes the invocation of a request about to be sent and returns its
    /// id, once the line is in the file.
    pub(super) fn invoke(
        &mut self,
        process: u64,
        node: usize,
        time_ns: u64,
        request: &Map<String, Value>,
        final_read: bool,
    ) -> Result<u64> {
        let op = self.next_op;
        self.next_op += 1;
        self.line(&OpsLine::Invoke(OpInvoke {
            op,
            process,
            node: node as u32,
            f: request
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            time_ns,
            request: Value::Object(request.clone()),
            final_read,
        }))?;
        Ok(op)
    }

    /// Writes how the op invoked as `id` ended.
    pub(super) fn complete(&mut self, id: u64, op: &ClientOp) -> Result<()> {
        let completion = OpCompletion {
            op: id,
            time_ns: op.complete_ns,
            latency_ns: op.complete_ns.saturating_sub(op.invoke_ns),
            reply: op.reply.clone(),
        };
        self.line(&match op.outcome {
            Outcome::Ok => OpsLine::Ok(completion),
            Outcome::Fail => OpsLine::Fail(completion),
            Outcome::Info => OpsLine::Info(completion),
        })
    }

    /// Closes the file: how kafka's final polls ended, then the end line.
    pub(super) fn finish(&mut self, final_polls: Option<FinalPolls>) -> Result<()> {
        if let Some(state) = final_polls {
            self.line(&OpsLine::FinalPolls { state })?;
        }
        self.line(&OpsLine::End {})
    }
}

/// Checks a reply against Maelstrom's response schema for `f`: its type is
/// `{f}_ok` (or `error` with an integer code) and it has the fields the
/// workload reads. `Err` says what is wrong.
pub fn judge_reply(
    f: &str,
    reply: Option<&Map<String, Value>>,
) -> std::result::Result<Outcome, String> {
    let Some(reply) = reply else {
        return Ok(Outcome::Info);
    };
    let kind = reply.get("type").and_then(Value::as_str);
    if kind == Some("error") {
        let code = reply
            .get("code")
            .and_then(Value::as_i64)
            .ok_or("error reply without an integer `code`")?;
        return Ok(if is_indefinite(code) {
            Outcome::Info
        } else {
            Outcome::Fail
        });
    }
    if kind != Some(format!("{f}_ok").as_str()) {
        return Err(format!(
            "expected `{f}_ok` or `error`, got {}",
            kind.map_or("no `type`".to_string(), |k| format!("`{k}`"))
        ));
    }
    let field = |name: &str| reply.get(name).ok_or(format!("`{f}_ok` without `{name}`"));
    let offset_map = |v: &Value, name: &str| -> std::result::Result<(), String> {
        let map = v.as_object().ok_or(format!("`{name}` is not an object"))?;
        match map.values().find(|o| o.as_i64().is_none()) {
            Some(bad) => Err(format!("`{name}` holds {bad}, not an integer offset")),
            None => Ok(()),
        }
    };
    match f {
        "echo" => {
            field("echo")?;
        }
        "generate" => {
            field("id")?;
        }
        "send" => {
            let o = field("offset")?;
            o.as_i64()
                .ok_or(format!("`offset` is {o}, not an integer"))?;
        }
        "poll" => {
            let msgs = field("msgs")?
                .as_object()
                .ok_or("`msgs` is not an object of keys to [offset, msg] lists")?;
            for (k, pairs) in msgs {
                let ok = pairs.as_array().is_some_and(|a| {
                    a.iter().all(|p| {
                        p.as_array()
                            .is_some_and(|p| p.len() == 2 && p[0].as_i64().is_some())
                    })
                });
                if !ok {
                    return Err(format!(
                        "`msgs` of key {k:?} is {pairs}, not a list of [offset, msg]"
                    ));
                }
            }
        }
        "list_committed_offsets" => offset_map(field("offsets")?, "offsets")?,
        _ => {}
    }
    Ok(Outcome::Ok)
}

/// A kafka client's reading position: key to the next offset to poll.
#[derive(Default)]
struct Position {
    next: BTreeMap<String, i64>,
}

fn keys() -> Vec<String> {
    (0..KAFKA_KEYS).map(|k| k.to_string()).collect()
}

impl Position {
    fn poll_body(&self) -> Map<String, Value> {
        let offsets: Map<String, Value> = keys()
            .into_iter()
            .map(|k| {
                let o = self.next.get(&k).copied().unwrap_or(0);
                (k, Value::from(o))
            })
            .collect();
        body("poll", [("offsets", Value::Object(offsets))])
    }

    /// Advances past what a poll returned; returns the commit to make:
    /// each key's highest offset polled (as Maelstrom's client commits).
    fn advance(&mut self, reply: &Map<String, Value>) -> Map<String, Value> {
        let mut commit = Map::new();
        let msgs = reply.get("msgs").and_then(Value::as_object);
        for (k, pairs) in msgs.into_iter().flatten() {
            let top = pairs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.get(0)?.as_i64())
                .max();
            if let Some(top) = top {
                let next = self.next.entry(k.clone()).or_insert(0);
                *next = (*next).max(top + 1);
                commit.insert(k.clone(), Value::from(top));
            }
        }
        commit
    }

    /// Maelstrom's assign: keep the position of a key we read, else start
    /// at its committed offset.
    fn assign(&mut self, reply: &Map<String, Value>) {
        let offsets = reply.get("offsets").and_then(Value::as_object);
        for (k, o) in offsets.into_iter().flatten() {
            if let Some(o) = o.as_i64() {
                self.next.entry(k.clone()).or_insert(o);
            }
        }
    }
}

/// Sends one request invoked at `invoke_at`, records it, and returns how
/// it ended with the reply if it was `ok`. `series` counts it in the time
/// series (the final polls; the scheduler counts the clients' ops).
#[allow(clippy::too_many_arguments)]
async fn call(
    adapter: &MaelstromAdapter,
    recorder: &Mutex<Recorder>,
    series: Option<&SeriesRecorder>,
    process: u64,
    client_name: &str,
    node: usize,
    request_body: Map<String, Value>,
    final_read: bool,
    invoke_at: Instant,
) -> Result<(Outcome, Option<Map<String, Value>>)> {
    let f = request_body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(s) = series {
        s.started();
    }
    let invoked = {
        let mut rec = recorder.lock();
        let invoke_ns = invoke_at.duration_since(rec.start).as_nanos() as u64;
        match rec.ops_log.as_mut() {
            Some(log) => Some(log.invoke(process, node, invoke_ns, &request_body, final_read)?),
            None => None,
        }
    };
    let reply = adapter
        .request(client_name.to_string(), node, request_body.clone())
        .await;
    let outcome = match judge_reply(&f, reply.as_ref()) {
        Ok(o) => o,
        Err(why) => {
            let quoted = reply
                .as_ref()
                .map(|b| Value::Object(b.clone()).to_string())
                .unwrap_or_default();
            adapter.garbage(format!(
                "node n{node} answered a client with a malformed reply ({why}; rule: a reply is `{f}_ok` with Maelstrom's fields, or `error` with a code): {}",
                quote(&quoted)
            ));
            Outcome::Info
        }
    };
    if let Some(s) = series {
        s.completed(outcome.into(), invoke_at.elapsed());
    }
    let mut rec = recorder.lock();
    let invoke_ns = invoke_at.duration_since(rec.start).as_nanos() as u64;
    let complete_ns = rec.start.elapsed().as_nanos() as u64;
    let op = ClientOp {
        process,
        f: f.clone(),
        invoke_ns,
        complete_ns,
        outcome,
        node: node as u32,
        request: Value::Object(request_body),
        reply: reply.clone().map_or(Value::Null, Value::Object),
        final_read,
    };
    if let (Some(log), Some(id)) = (rec.ops_log.as_mut(), invoked) {
        log.complete(id, &op)?;
    }
    let record = op.latency_record();
    rec.ops.push(op);
    // No history.jsonl for these workloads: ops.jsonl holds them, invoke-first.
    rec.record(record, None)?;
    Ok((outcome, (outcome == Outcome::Ok).then_some(reply).flatten()))
}

/// One client of a body-recording workload: one request per op; a kafka
/// client commits what a poll returned as its next op, on the same node.
pub(super) struct OpsClient {
    adapter: Arc<MaelstromAdapter>,
    recorder: Arc<Mutex<Recorder>>,
    id: u32,
    rng: ChaCha8Rng,
    seq: u64,
    position: Position,
    /// The commit a poll asked for, with the node polled.
    commit: Option<(usize, Map<String, Value>)>,
}

impl OpsClient {
    pub(super) fn new(
        adapter: Arc<MaelstromAdapter>,
        recorder: Arc<Mutex<Recorder>>,
        id: u32,
    ) -> Self {
        OpsClient {
            rng: ChaCha8Rng::seed_from_u64(derive_seed(adapter.config().seed, 1000 + id as u64)),
            adapter,
            recorder,
            id,
            seq: 0,
            position: Position::default(),
            commit: None,
        }
    }

    /// The next request and the node it goes to.
    fn plan(&mut self) -> (usize, Map<String, Value>) {
        if let Some((node, commit)) = self.commit.take() {
            return (
                node,
                body("commit_offsets", [("offsets", Value::Object(commit))]),
            );
        }
        let config = self.adapter.config();
        self.seq += 1;
        let unique = (self.id as u64) << 32 | self.seq;
        let rng = &mut self.rng;
        let node = rng.random_range(0..config.nodes);
        let request = match config.workload {
            MaelstromWorkload::Echo => body(
                "echo",
                [("echo", Value::from(format!("Please echo {unique}")))],
            ),
            MaelstromWorkload::UniqueIds => body("generate", []),
            _ => {
                let roll: f64 = rng.random_range(0.0..1.0);
                if roll < 1.0 - config.read_ratio {
                    let key = rng.random_range(0..KAFKA_KEYS).to_string();
                    body(
                        "send",
                        [("key", Value::from(key)), ("msg", Value::from(unique))],
                    )
                } else if roll < 1.0 - config.read_ratio / 5.0 {
                    self.position.poll_body()
                } else {
                    body("list_committed_offsets", [("keys", Value::from(keys()))])
                }
            }
        };
        (node, request)
    }
}

impl Client for OpsClient {
    async fn one(&mut self, invoke_at: Instant) -> Result<Outcome> {
        let (node, request) = self.plan();
        let f = request
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = format!("c{}", self.id);
        let (outcome, reply) = call(
            &self.adapter,
            &self.recorder,
            None,
            self.id as u64,
            &name,
            node,
            request,
            false,
            invoke_at,
        )
        .await?;
        if let Some(reply) = reply {
            match f.as_str() {
                "poll" => {
                    let commit = self.position.advance(&reply);
                    if !commit.is_empty() {
                        self.commit = Some((node, commit));
                    }
                }
                "list_committed_offsets" => self.position.assign(&reply),
                _ => {}
            }
        }
        Ok(outcome)
    }
}

/// How long the final polls must stop changing before what they lack is
/// lost: the quiet window, but never under 10 s, so that a node that
/// replicates lazily is not taken for one that lost a send.
pub fn stall_window(config: &MaelstromConfig) -> Duration {
    config.quiet_window.max(Duration::from_secs(10))
}

/// Kafka's final phase, after every fault healed: every node is polled for
/// every key from offset 0 to the end, in rounds, until every acknowledged
/// send has been polled, or what the polls return has not changed for the
/// stall window (`Settled`), or the settle limit passes (`StillChanging`).
pub(super) async fn kafka_final_polls(
    adapter: &MaelstromAdapter,
    recorder: &Mutex<Recorder>,
    series: Option<&SeriesRecorder>,
) -> Result<FinalPolls> {
    let config = adapter.config();
    let healed = Instant::now();
    let acknowledged: BTreeSet<(String, i64)> = {
        let rec = recorder.lock();
        rec.ops
            .iter()
            .filter(|o| o.f == "send" && o.is_ok())
            .filter_map(|o| {
                Some((
                    o.request.get("key")?.as_str()?.to_string(),
                    o.reply.get("offset")?.as_i64()?,
                ))
            })
            .collect()
    };
    let mut seen: BTreeSet<(String, i64)> = BTreeSet::new();
    let mut unchanged_since = Instant::now();
    let process_base = config.clients() as u64;
    loop {
        if crate::interrupt::requested() {
            // Stopped by the user: what the polls lack is not judged.
            return Ok(FinalPolls::Missing);
        }
        let before = seen.len();
        for node in 0..config.nodes {
            let process = process_base + node as u64;
            let name = format!("c-final-{node}");
            for key in keys() {
                let mut from = 0i64;
                for _ in 0..FINAL_POLL_PAGES {
                    let mut offsets = Map::new();
                    offsets.insert(key.clone(), Value::from(from));
                    let b = body("poll", [("offsets", Value::Object(offsets))]);
                    let (_, reply) = call(
                        adapter,
                        recorder,
                        series,
                        process,
                        &name,
                        node,
                        b,
                        true,
                        Instant::now(),
                    )
                    .await?;
                    let Some(reply) = reply else {
                        break;
                    };
                    let pairs: Vec<i64> = reply
                        .get("msgs")
                        .and_then(|m| m.get(&key))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.get(0)?.as_i64())
                        .collect();
                    let Some(&top) = pairs.iter().max() else {
                        break;
                    };
                    seen.extend(pairs.iter().map(|o| (key.clone(), *o)));
                    if top < from {
                        break;
                    }
                    from = top + 1;
                }
            }
        }
        if acknowledged.is_subset(&seen) {
            return Ok(FinalPolls::Settled);
        }
        if seen.len() != before {
            unchanged_since = Instant::now();
        } else if unchanged_since.elapsed() >= stall_window(config) {
            return Ok(FinalPolls::Settled);
        }
        if healed.elapsed() >= config.settle_limit {
            return Ok(FinalPolls::StillChanging);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn replies_are_judged_by_maelstroms_response_schemas() {
        let ok = |f: &str, v: Value| judge_reply(f, Some(&obj(v)));
        assert_eq!(
            ok("echo", json!({"type":"echo_ok","echo":"x"})),
            Ok(Outcome::Ok)
        );
        assert_eq!(
            ok("generate", json!({"type":"generate_ok","id":[1,"a"]})),
            Ok(Outcome::Ok)
        );
        assert_eq!(
            ok(
                "poll",
                json!({"type":"poll_ok","msgs":{"1":[[0,5],[2,"x"]]}})
            ),
            Ok(Outcome::Ok)
        );
        assert_eq!(
            ok("send", json!({"type":"error","code":11})),
            Ok(Outcome::Fail)
        );
        assert_eq!(
            ok("send", json!({"type":"error","code":13})),
            Ok(Outcome::Info)
        );
        assert_eq!(judge_reply("send", None), Ok(Outcome::Info));
        for (f, v, why) in [
            ("echo", json!({"echo":"x"}), "no `type`"),
            ("echo", json!({"type":"echo_ok"}), "without `echo`"),
            ("generate", json!({"type":"generate_ok"}), "without `id`"),
            (
                "send",
                json!({"type":"send_ok","offset":"3"}),
                "not an integer",
            ),
            (
                "poll",
                json!({"type":"poll_ok","msgs":{"1":[[0]]}}),
                "not a list of [offset, msg]",
            ),
            (
                "list_committed_offsets",
                json!({"type":"list_committed_offsets_ok","offsets":{"1":null}}),
                "not an integer offset",
            ),
            ("send", json!({"type":"error"}), "integer `code`"),
        ] {
            let err = ok(f, v).unwrap_err();
            assert!(err.contains(why), "{f}: {err}");
        }
    }

    #[test]
    fn a_kafka_client_polls_on_from_what_it_saw_and_commits_it() {
        let mut p = Position::default();
        let commit = p.advance(&obj(json!({"msgs":{"1":[[3,9],[5,1]],"2":[]}})));
        assert_eq!(Value::Object(commit), json!({"1":5}));
        p.assign(&obj(json!({"offsets":{"1":2,"3":7}})));
        let poll = Value::Object(p.poll_body());
        assert_eq!(poll["offsets"], json!({"0":0,"1":6,"2":0,"3":7}));
    }

    #[test]
    fn the_ops_log_is_invoke_first_and_reads_back_whole_or_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops.jsonl");
        let run = Header {
            schema_version: crate::history::SCHEMA_VERSION,
            seed: 3,
            workload: converge_models::Workload::LwwRegister,
            model: "kafka.py".into(),
            target: "maelstrom".into(),
            writers: 2,
            replicas: 1,
            keys: 1,
            ops: 2,
            nemesis: String::new(),
            reproduce: "converge run --url postgres://u:hunter2@h/db".into(),
            linearizable: false,
        };
        let mut log = OpsLog::create(path.clone(), "kafka", &run).unwrap();
        let send = obj(json!({"type":"send","key":"1","msg":7}));
        let a = log.invoke(0, 0, 10, &send, false).unwrap();
        let b = log.invoke(1, 0, 11, &send, false).unwrap();
        // The invocation is in the file before the request goes out.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let done = ClientOp {
            process: 0,
            f: "send".into(),
            invoke_ns: 10,
            complete_ns: 25,
            outcome: Outcome::Ok,
            node: 0,
            request: Value::Object(send.clone()),
            reply: json!({"type":"send_ok","offset":0}),
            final_read: false,
        };
        log.complete(a, &done).unwrap();
        let cut = crate::checker::client_ops::read_ops(&path).unwrap();
        assert_eq!(cut.ops.len(), 2);
        assert_eq!(cut.ops[0], done);
        assert_eq!((cut.ops[1].process, cut.ops[1].outcome), (1, Outcome::Info));
        assert!(cut.interrupted.is_some());
        log.complete(
            b,
            &ClientOp {
                process: 1,
                invoke_ns: 11,
                complete_ns: 40,
                outcome: Outcome::Info,
                reply: Value::Null,
                ..done.clone()
            },
        )
        .unwrap();
        log.finish(Some(FinalPolls::Settled)).unwrap();
        let whole = crate::checker::client_ops::read_ops(&path).unwrap();
        assert_eq!(whole.ops.len(), 2);
        assert_eq!(whole.ops[1].complete_ns, 40);
        assert_eq!(whole.final_polls, FinalPolls::Settled);
        assert_eq!(whole.header.unwrap().workload, "kafka");
        assert!(whole.interrupted.is_none() && whole.warnings.is_empty());
    }
}
