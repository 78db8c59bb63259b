//! Clients of the workloads that record request and reply bodies (`echo`,
//! `unique-ids`, `kafka`), with Maelstrom's message shapes, and the final
//! polls of `kafka`. Each op goes to `ops.jsonl` as it completes, and to
//! the CRDT history only for latency figures.

use super::protocol::{body, is_indefinite, quote};
use super::router::Command;
use super::{request, MaelstromConfig, MaelstromWorkload, Pace, Recorder};
use crate::checker::client_ops::ClientOp;
use crate::checker::kafka::FinalPolls;
use crate::error::{Error, Result};
use crate::history::{Function, OpRecord, Outcome};
use rand::RngExt;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// Keys of the kafka workload (strings, as Maelstrom's kafka client sends).
pub const KAFKA_KEYS: u64 = 4;
/// Most pages one final poll of one key reads from one node.
const FINAL_POLL_PAGES: usize = 10_000;

/// `ops.jsonl`, one op per line, flushed as it is written.
pub(super) struct OpsLog {
    out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

impl OpsLog {
    pub(super) fn create(path: PathBuf) -> Result<OpsLog> {
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(OpsLog {
            out: std::io::BufWriter::new(file),
            path,
        })
    }

    fn write(&mut self, op: &ClientOp) -> Result<()> {
        let line = serde_json::to_string(op).map_err(|e| Error::Config(e.to_string()))?;
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io(&self.path, e))
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

/// Sends one request, records it, and returns the reply if it was `ok`.
#[allow(clippy::too_many_arguments)]
async fn call(
    config: &MaelstromConfig,
    commands: &UnboundedSender<Command>,
    recorder: &Arc<Mutex<Recorder>>,
    process: u64,
    client_name: &str,
    node: usize,
    request_body: Map<String, Value>,
    final_read: bool,
) -> Result<Option<Map<String, Value>>> {
    let f = request_body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let series = recorder
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .series
        .clone();
    if let Some(s) = &series {
        s.started();
    }
    let invoke_at = Instant::now();
    let reply = request(
        commands,
        client_name.to_string(),
        node,
        request_body.clone(),
        config.request_timeout,
    )
    .await;
    let mut rec = recorder.lock().unwrap_or_else(|p| p.into_inner());
    let invoke_ns = invoke_at.duration_since(rec.start).as_nanos() as u64;
    let complete_ns = rec.start.elapsed().as_nanos() as u64;
    let outcome = match judge_reply(&f, reply.as_ref()) {
        Ok(o) => o,
        Err(why) => {
            let quoted = reply
                .as_ref()
                .map(|b| Value::Object(b.clone()).to_string())
                .unwrap_or_default();
            rec.garbage.push(format!(
                "node n{node} answered a client with a malformed reply ({why}; rule: a reply is `{f}_ok` with Maelstrom's fields, or `error` with a code): {}",
                quote(&quoted)
            ));
            Outcome::Info
        }
    };
    if let Some(s) = &series {
        s.completed(outcome.into(), invoke_at.elapsed());
    }
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
    if let Some(log) = rec.ops_log.as_mut() {
        log.write(&op)?;
    }
    rec.ops.push(op);
    let record = OpRecord {
        invoke_ns,
        value: 0,
        aux: crate::history::UNKNOWN_AUX,
        latency_ns: complete_ns - invoke_ns,
        process: process as u32,
        key: 0,
        clock_sum: 0,
        slot: 0,
        replica: node as u16,
        f: match f.as_str() {
            "send" => Function::Add,
            "commit_offsets" => Function::Write,
            _ => Function::Read,
        },
        outcome,
    };
    // No history.jsonl for these workloads (writer is None): ops.jsonl
    // holds them, written as they complete.
    rec.record(None, record, None)?;
    Ok((outcome == Outcome::Ok).then_some(reply).flatten())
}

/// One client of a body-recording workload, until the deadline.
pub(super) async fn client_task(
    config: MaelstromConfig,
    client: usize,
    commands: UnboundedSender<Command>,
    recorder: Arc<Mutex<Recorder>>,
    deadline: Instant,
) -> Result<()> {
    let mut pace = Pace::new(&config, client);
    let name = format!("c{client}");
    let process = client as u64;
    let mut seq = 0u64;
    let mut position = Position::default();
    while pace.wait(deadline).await {
        let rng = &mut pace.rng;
        seq += 1;
        let unique = (client as u64) << 32 | seq;
        let node = rng.random_range(0..config.nodes);
        let request_body = match config.workload {
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
                    position.poll_body()
                } else {
                    body("list_committed_offsets", [("keys", Value::from(keys()))])
                }
            }
        };
        let f = request_body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let reply = call(
            &config,
            &commands,
            &recorder,
            process,
            &name,
            node,
            request_body,
            false,
        )
        .await?;
        let Some(reply) = reply else { continue };
        match f.as_str() {
            "poll" => {
                let commit = position.advance(&reply);
                if !commit.is_empty() && Instant::now() < deadline {
                    let b = body("commit_offsets", [("offsets", Value::Object(commit))]);
                    call(
                        &config, &commands, &recorder, process, &name, node, b, false,
                    )
                    .await?;
                }
            }
            "list_committed_offsets" => position.assign(&reply),
            _ => {}
        }
    }
    Ok(())
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
    config: &MaelstromConfig,
    commands: &UnboundedSender<Command>,
    recorder: &Arc<Mutex<Recorder>>,
) -> Result<FinalPolls> {
    let healed = Instant::now();
    let acknowledged: BTreeSet<(String, i64)> = {
        let rec = recorder.lock().unwrap_or_else(|p| p.into_inner());
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
    let process_base = config.clients as u64;
    loop {
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
                    let Some(reply) =
                        call(config, commands, recorder, process, &name, node, b, true).await?
                    else {
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
}
