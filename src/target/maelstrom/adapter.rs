//! The maelstrom target behind the engine's [`Adapter`] trait: requests go
//! to the router, replies are read by [`workload::interpret`], and the
//! nemesis commands the router's network and node processes.

use super::router::{Command, Partition};
use super::workload::{self, MaelstromWorkload, Planned};
use super::{protocol, MaelstromConfig, DUPLICATE, LOSS};
use crate::error::Error;
use crate::history::{Function, NetworkStats, Outcome, UNKNOWN_AUX};
use crate::target::{Adapter, Applied, Op};
use converge_models::Value as CrdtValue;
use parking_lot::Mutex;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

/// The maelstrom nodes as one engine target: replicas are nodes, a writer
/// picks a random node per op, the nemesis partitions, crashes and pauses
/// them through the router.
pub struct MaelstromAdapter {
    commands: UnboundedSender<Command>,
    config: MaelstromConfig,
    /// The run's time origin (the engine's too).
    start: Instant,
    /// Replies that made no sense, each naming the node and quoting it.
    garbage: Mutex<Vec<String>>,
    /// Whether a partition is on (healed in the next even phase).
    partitioned: AtomicBool,
    /// The node paused now, resumed in the next even phase.
    paused: Mutex<Option<usize>>,
}

/// One writer of CRDT updates: the causal context of its last read, for
/// the mv-register's writes, and when that read returned.
pub struct MaelstromWriter {
    context: Option<Value>,
    /// ns since the run started; a write can only supersede values that
    /// existed by then.
    context_ns: u64,
}

impl MaelstromAdapter {
    /// An adapter sending to the router behind `commands`.
    pub fn new(
        commands: UnboundedSender<Command>,
        config: MaelstromConfig,
        start: Instant,
    ) -> Self {
        MaelstromAdapter {
            commands,
            config,
            start,
            garbage: Mutex::new(Vec::new()),
            partitioned: AtomicBool::new(false),
            paused: Mutex::new(None),
        }
    }

    /// The run's configuration.
    pub fn config(&self) -> &MaelstromConfig {
        &self.config
    }

    /// The router's command channel.
    pub fn commands(&self) -> &UnboundedSender<Command> {
        &self.commands
    }

    /// Sends a client request to `node`; `None` when no reply came within
    /// the request timeout.
    pub async fn request(
        &self,
        client: String,
        node: usize,
        body: Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Request {
                client,
                node,
                body,
                reply: tx,
            })
            .ok()?;
        tokio::time::timeout(self.config.request_timeout, rx)
            .await
            .ok()?
            .ok()
    }

    /// Keeps a finding about a reply that made no sense.
    pub fn garbage(&self, finding: String) {
        self.garbage.lock().push(finding);
    }

    /// The garbage findings so far, taken.
    pub fn take_garbage(&self) -> Vec<String> {
        std::mem::take(&mut *self.garbage.lock())
    }

    /// Interprets a reply to `planned` from `node`; garbage becomes a
    /// finding and the op an unanswered one.
    pub fn interpret(
        &self,
        client: &str,
        node: usize,
        planned: &Planned,
        reply: Option<Map<String, Value>>,
    ) -> workload::Interpreted {
        match workload::interpret(self.config.workload, planned, reply.as_ref()) {
            Ok(i) => i,
            Err(why) => {
                let quoted = reply
                    .map(|b| Value::Object(b).to_string())
                    .unwrap_or_default();
                tracing::warn!("node n{node} answered {client} with garbage ({why}): {quoted}");
                self.garbage(format!(
                    "node n{node} answered a client with garbage ({why}; rule: a reply is `<type>_ok` with the workload's fields, or `error` with a code): {}",
                    protocol::quote(&quoted)
                ));
                workload::Interpreted::unanswered(planned)
            }
        }
    }

    /// Turns loss, duplication and reordering on for the writing phase;
    /// the nemesis line saying so, if any is enabled.
    pub fn network_faults_on(&self) -> Option<String> {
        let faults = self.config.faults;
        if !(faults.loss || faults.duplicate || faults.reorder) {
            return None;
        }
        let _ = self.commands.send(Command::Faults {
            loss: if faults.loss { LOSS } else { 0.0 },
            duplicate: if faults.duplicate { DUPLICATE } else { 0.0 },
            reorder: faults.reorder,
        });
        Some(format!("network faults on: {}", faults.to_spec()))
    }

    /// The request body of an engine op (reads are `read`).
    fn body_of(&self, op: &Op, writer: &MaelstromWriter) -> Map<String, Value> {
        use protocol::body;
        let value = op.value;
        match (self.config.workload, op.f) {
            (_, Function::Read) => self.config.workload.read_request(),
            (MaelstromWorkload::Broadcast, _) => body("broadcast", [("message", value.into())]),
            (_, Function::Increment) => body("add", [("delta", value.into())]),
            (_, Function::Remove) => body("remove", [("element", value.into())]),
            (MaelstromWorkload::MvRegister, _) => body(
                "write",
                [
                    ("value", value.into()),
                    (
                        "context",
                        writer
                            .context
                            .clone()
                            .unwrap_or_else(|| Value::Object(Map::new())),
                    ),
                ],
            ),
            (_, Function::Write) => body("write", [("value", value.into())]),
            _ => body("add", [("element", value.into())]),
        }
    }
}

impl Adapter for MaelstromAdapter {
    type Writer = MaelstromWriter;

    fn replicas(&self) -> usize {
        self.config.nodes
    }

    fn writer(&self, _id: u32) -> MaelstromWriter {
        MaelstromWriter {
            context: None,
            context_ns: 0,
        }
    }

    async fn apply(&self, w: &mut MaelstromWriter, op: Op) -> Applied {
        let planned = Planned {
            body: self.body_of(&op, w),
            f: op.f,
            value: op.value,
            lin: None,
        };
        let client = format!("c{}", op.writer);
        let reply = self
            .request(client.clone(), op.replica, planned.body.clone())
            .await;
        let interpreted = self.interpret(&client, op.replica, &planned, reply);
        if interpreted.context.is_some() {
            w.context = interpreted.context.clone();
            w.context_ns = self.start.elapsed().as_nanos() as u64;
        }
        Applied {
            outcome: interpreted.outcome,
            aux: match (self.config.workload, op.f) {
                (MaelstromWorkload::MvRegister, Function::Write) => w.context_ns,
                (MaelstromWorkload::LwwRegister, Function::Write) => {
                    interpreted.stamp.unwrap_or(UNKNOWN_AUX)
                }
                _ => UNKNOWN_AUX,
            },
            read: interpreted.read,
        }
    }

    async fn read(&self, replica: usize, _key: u32) -> Option<CrdtValue> {
        let planned = Planned {
            body: self.config.workload.read_request(),
            f: Function::Read,
            value: 0,
            lin: None,
        };
        let reply = self
            .request(format!("c-final-{replica}"), replica, planned.body.clone())
            .await;
        // The maelstrom workloads read the whole value: one key per node.
        workload::interpret(self.config.workload, &planned, reply.as_ref())
            .ok()
            .filter(|i| i.outcome == Outcome::Ok)
            .and_then(|i| i.read)
    }

    fn nemesis_phase(&self, end: Option<Duration>) -> Duration {
        let length = end.unwrap_or(super::DEFAULT_TIME_LIMIT);
        (length / 6).max(Duration::from_millis(200))
    }

    async fn inject(&self, rng: &mut ChaCha8Rng) -> Vec<String> {
        let faults = self.config.faults;
        let mut actions: Vec<&str> = Vec::new();
        if faults.partition {
            actions.push("partition");
        }
        if faults.crash {
            actions.push("crash");
        }
        if faults.pause {
            actions.push("pause");
        }
        if actions.is_empty() {
            return Vec::new();
        }
        let n = self.config.nodes;
        let node = rng.random_range(0..n);
        match actions[rng.random_range(0..actions.len())] {
            "partition" => {
                let partition = match rng.random_range(0..3) {
                    0 => {
                        let group: Vec<usize> = (0..n).map(|i| usize::from(i == node)).collect();
                        Partition::groups(n, &group, format!("isolate n{node}"))
                    }
                    1 => {
                        let minority = (n.saturating_sub(1)) / 2;
                        let mut order: Vec<usize> = (0..n).collect();
                        for i in (1..n).rev() {
                            order.swap(i, rng.random_range(0..=i));
                        }
                        let mut group = vec![0; n];
                        for &i in order.iter().take(minority.max(1)) {
                            group[i] = 1;
                        }
                        let names: Vec<String> = order
                            .iter()
                            .take(minority.max(1))
                            .map(|i| format!("n{i}"))
                            .collect();
                        Partition::groups(n, &group, format!("minority {}", names.join(" ")))
                    }
                    _ => Partition::majorities_ring(n),
                };
                let line = format!("partition: {}", partition.description);
                let _ = self.commands.send(Command::Partition(Some(partition)));
                self.partitioned.store(true, Ordering::Relaxed);
                vec![line]
            }
            "crash" => {
                let _ = self.commands.send(Command::Crash(node));
                vec![format!("crash n{node} (kill -9, restart empty)")]
            }
            _ => {
                let _ = self.commands.send(Command::Pause(node));
                *self.paused.lock() = Some(node);
                vec![format!("pause n{node} (SIGSTOP)")]
            }
        }
    }

    async fn heal(&self, for_good: bool) -> Vec<String> {
        let mut log = Vec::new();
        if self.partitioned.swap(false, Ordering::Relaxed) {
            let _ = self.commands.send(Command::Partition(None));
            log.push("partition healed".to_string());
        }
        if let Some(node) = self.paused.lock().take() {
            let _ = self.commands.send(Command::Resume(node));
            log.push(format!("resume n{node} (SIGCONT)"));
        }
        if for_good {
            // Also ends loss, duplication and reordering, and restarts a
            // node that is down.
            let _ = self.commands.send(Command::Heal);
            let faults = self.config.faults;
            if faults.loss || faults.duplicate || faults.reorder {
                log.push("network faults off".to_string());
            }
        }
        log
    }

    fn mistake(&self) -> Option<Error> {
        None
    }

    async fn network(&self) -> Option<NetworkStats> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Stats(tx)).ok()?;
        rx.await.ok()
    }
}
