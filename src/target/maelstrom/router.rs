//! The network between nodes, clients and services. Every node-to-node and
//! node-to-service message passes through here: latency, loss, duplication,
//! reordering and partitions apply to them. Client requests and replies do
//! not suffer faults, as in Maelstrom. A single task owns all state, so
//! routing needs no locks.

use super::process::{NodeCommand, NodeEvent, NodeProcess};
use super::protocol::{body, quote, Envelope};
use super::services::{Services, SERVICES};
use crate::history::NetworkStats;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// At most this many protocol findings are kept; all are counted.
pub const MAX_PROTOCOL_FINDINGS: usize = 50;

/// One-way message latency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Always this long.
    Constant(Duration),
    /// Uniform between zero and twice this.
    Uniform(Duration),
    /// Exponential with this mean.
    Exponential(Duration),
}

impl Latency {
    fn sample(self, rng: &mut ChaCha8Rng) -> Duration {
        match self {
            Latency::Constant(d) => d,
            Latency::Uniform(d) => d.mul_f64(rng.random_range(0.0..2.0)),
            Latency::Exponential(mean) => {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                mean.mul_f64(-u.ln()).min(mean * 50)
            }
        }
    }

    /// The mean latency.
    pub fn mean(self) -> Duration {
        match self {
            Latency::Constant(d) | Latency::Uniform(d) | Latency::Exponential(d) => d,
        }
    }
}

/// Which node pairs can talk during a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// `allowed[a][b]`: a message from node a reaches node b.
    pub allowed: Vec<Vec<bool>>,
    /// For the nemesis log.
    pub description: String,
}

impl Partition {
    /// Nodes split into groups; only nodes in the same group can talk.
    pub fn groups(nodes: usize, group_of: &[usize], description: String) -> Partition {
        let allowed = (0..nodes)
            .map(|a| (0..nodes).map(|b| group_of[a] == group_of[b]).collect())
            .collect();
        Partition {
            allowed,
            description,
        }
    }

    /// Maelstrom's majorities ring: each node sees a majority (itself and
    /// its ring neighbours), and no two nodes see the same majority.
    pub fn majorities_ring(nodes: usize) -> Partition {
        // The smallest ring radius whose neighbourhood (1 + 2r nodes) is a majority.
        let reach = (nodes / 2).div_ceil(2);
        let allowed = (0..nodes)
            .map(|a| {
                (0..nodes)
                    .map(|b| {
                        let d = a.abs_diff(b);
                        d.min(nodes - d) <= reach
                    })
                    .collect()
            })
            .collect();
        Partition {
            allowed,
            description: "majorities ring".into(),
        }
    }
}

/// Requests to the router.
pub enum Command {
    /// A client request to a node; the reply body comes back on `reply`.
    Request {
        /// Client name, e.g. `c3`.
        client: String,
        /// Node index.
        node: usize,
        /// Body without `msg_id` (the router assigns it).
        body: Map<String, Value>,
        /// Where the reply goes; dropping the receiver abandons the request.
        reply: oneshot::Sender<Map<String, Value>>,
    },
    /// Start or end a partition.
    Partition(Option<Partition>),
    /// Message loss and duplication probabilities, and reordering.
    Faults {
        /// Probability a message is dropped.
        loss: f64,
        /// Probability a message is delivered twice.
        duplicate: f64,
        /// Whether deliveries get extra random delay, so they overtake each other.
        reorder: bool,
    },
    /// kill -9 a node and start it again, empty.
    Crash(usize),
    /// SIGSTOP a node.
    Pause(usize),
    /// SIGCONT a node.
    Resume(usize),
    /// End every fault and restart nodes that are down.
    Heal,
    /// How long since a node last sent a node or service message, and how
    /// many messages are still in flight.
    Idle(oneshot::Sender<(Duration, usize)>),
    /// The `topology` body to re-send to every node restarted from now on.
    SetTopology(Map<String, Value>),
    /// The message counters so far.
    Stats(oneshot::Sender<NetworkStats>),
    /// Kill every node and report.
    Stop(oneshot::Sender<RouterReport>),
}

/// What the router saw.
#[derive(Clone, Debug, Default)]
pub struct RouterReport {
    /// Message counters.
    pub stats: NetworkStats,
    /// Protocol violations by nodes, each naming the node and quoting the line.
    pub findings: Vec<String>,
    /// All protocol violations, kept or not.
    pub findings_total: u64,
    /// Nodes that exited without being crashed by the nemesis.
    pub unexpected_exits: Vec<String>,
    /// Time the router spent working (not waiting): where the harness's
    /// own time goes.
    pub busy: Duration,
    /// Time from the router's start to its stop.
    pub lifetime: Duration,
}

struct Pending {
    /// Taken by the first reply; later replies to the same request are
    /// ignored, as Maelstrom's client ignores them.
    reply: Option<oneshot::Sender<Map<String, Value>>>,
    /// For the `init` of a restarted node: that node's index, so that its
    /// `init_ok` is followed at once by the topology.
    restarted: Option<usize>,
}

/// The router's state; see the module docs.
pub struct Router {
    command: NodeCommand,
    node_ids: Vec<String>,
    nodes: Vec<Option<NodeProcess>>,
    incarnations: Vec<u32>,
    events_tx: UnboundedSender<NodeEvent>,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    in_flight: HashMap<usize, Envelope>,
    next_slot: usize,
    next_seq: u64,
    next_msg_id: u64,
    pending: HashMap<(String, u64), Pending>,
    /// Every client name that has sent a request: valid `src` and `dest`.
    clients: HashSet<String>,
    /// The time series, told of every node's process tree.
    series: Option<crate::series::SeriesRecorder>,
    /// The broadcast workload's `topology` body, re-sent after every restart.
    topology: Option<Map<String, Value>>,
    partition: Option<Partition>,
    loss: f64,
    duplicate: f64,
    reorder: bool,
    latency: Latency,
    last_node_send: Instant,
    rng: ChaCha8Rng,
    services: Services,
    report: RouterReport,
}

impl Router {
    /// A router for `nodes` nodes started with `command`.
    pub fn new(
        command: NodeCommand,
        nodes: usize,
        latency: Latency,
        rng: ChaCha8Rng,
        events_tx: UnboundedSender<NodeEvent>,
    ) -> Router {
        Router {
            command,
            node_ids: (0..nodes).map(|i| format!("n{i}")).collect(),
            nodes: (0..nodes).map(|_| None).collect(),
            incarnations: vec![0; nodes],
            events_tx,
            queue: BinaryHeap::new(),
            in_flight: HashMap::new(),
            next_slot: 0,
            next_seq: 0,
            next_msg_id: 1,
            pending: HashMap::new(),
            clients: HashSet::new(),
            series: None,
            topology: None,
            partition: None,
            loss: 0.0,
            duplicate: 0.0,
            reorder: false,
            latency,
            last_node_send: Instant::now(),
            rng,
            services: Services::default(),
            report: RouterReport::default(),
        }
    }

    /// The node names, `n0` up.
    pub fn node_ids(&self) -> &[String] {
        &self.node_ids
    }

    /// The `topology` body a node gets right after its `init_ok` whenever
    /// it is restarted (the first one is the run's to send and await).
    pub fn set_topology(&mut self, topology: Map<String, Value>) {
        self.topology = Some(topology);
    }

    /// Tells `series` of every node's process tree from now on.
    pub fn set_series(&mut self, series: crate::series::SeriesRecorder) {
        self.series = Some(series);
    }

    /// Starts node `i` (again) and sends it `init`; the `init_ok` goes to
    /// `reply`. A restart (`reply` is `None`) is followed by the topology.
    pub fn start_node(
        &mut self,
        i: usize,
        reply: Option<oneshot::Sender<Map<String, Value>>>,
    ) -> crate::Result<()> {
        let incarnation = self.incarnations[i];
        self.incarnations[i] += 1;
        let process = NodeProcess::spawn(&self.command, i, incarnation, self.events_tx.clone())?;
        self.nodes[i] = Some(process);
        if let Some(series) = &self.series {
            // A restart changes a tree: the target is every node's tree now.
            series.set_target_roots(self.nodes.iter().flatten().map(|n| n.group_id()).collect());
        }
        let init = body(
            "init",
            [
                ("node_id", Value::from(self.node_ids[i].as_str())),
                (
                    "node_ids",
                    Value::from(
                        self.node_ids
                            .iter()
                            .map(|s| Value::from(s.as_str()))
                            .collect::<Vec<_>>(),
                    ),
                ),
            ],
        );
        let restarted = reply.is_none().then_some(i);
        self.send_request(format!("c-init-{i}"), i, init, reply, restarted);
        Ok(())
    }

    fn send_from_client(
        &mut self,
        client: String,
        node: usize,
        body: Map<String, Value>,
        reply: Option<oneshot::Sender<Map<String, Value>>>,
    ) {
        self.send_request(client, node, body, reply, None);
    }

    fn send_request(
        &mut self,
        client: String,
        node: usize,
        mut body: Map<String, Value>,
        reply: Option<oneshot::Sender<Map<String, Value>>>,
        restarted: Option<usize>,
    ) {
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        body.insert("msg_id".into(), Value::from(msg_id));
        let envelope = Envelope {
            src: client.clone(),
            dest: self.node_ids[node].clone(),
            body,
        };
        if !self.clients.contains(&client) {
            self.clients.insert(client.clone());
        }
        self.pending
            .insert((client, msg_id), Pending { reply, restarted });
        self.write_to_node(node, &envelope);
    }

    fn write_to_node(&mut self, node: usize, envelope: &Envelope) {
        self.next_seq += 1;
        let line = envelope.to_line(self.next_seq);
        if let Some(process) = &mut self.nodes[node] {
            process.send(line);
        }
    }

    fn finding(&mut self, text: String) {
        self.report.findings_total += 1;
        if self.report.findings.len() < MAX_PROTOCOL_FINDINGS {
            tracing::warn!("{text}");
            self.report.findings.push(text);
        }
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        name.strip_prefix('n')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&i| i < self.node_ids.len() && self.node_ids[i] == name)
    }

    /// Puts a message on the faulty network.
    fn transmit(&mut self, envelope: Envelope, from: Option<usize>, to: Option<usize>) {
        self.report.stats.sent += 1;
        if let (Some(a), Some(b), Some(p)) = (from, to, &self.partition) {
            if !p.allowed[a][b] {
                self.report.stats.dropped += 1;
                return;
            }
        }
        if self.loss > 0.0 && self.rng.random_bool(self.loss) {
            self.report.stats.dropped += 1;
            return;
        }
        let copies = if self.duplicate > 0.0 && self.rng.random_bool(self.duplicate) {
            self.report.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut envelope = Some(envelope);
        for copy in 0..copies {
            let mut delay = self.latency.sample(&mut self.rng);
            if self.reorder {
                let extra = self.latency.mean().max(Duration::from_millis(1)) * 5;
                delay += extra.mul_f64(self.rng.random_range(0.0..1.0));
                self.report.stats.reordered += 1;
            }
            if copy > 0 {
                delay += Duration::from_millis(1);
            }
            if delay > Duration::ZERO {
                self.report.stats.delayed += 1;
            }
            let slot = self.next_slot;
            self.next_slot += 1;
            // The last copy takes the envelope itself.
            let this = if copy + 1 == copies {
                envelope.take()
            } else {
                envelope.clone()
            };
            if let Some(this) = this {
                self.in_flight.insert(slot, this);
            }
            self.next_seq += 1;
            self.queue
                .push(Reverse((Instant::now() + delay, self.next_seq, slot)));
        }
    }

    fn deliver(&mut self, envelope: Envelope) {
        self.report.stats.delivered += 1;
        if let Some(node) = self.node_index(&envelope.dest) {
            self.write_to_node(node, &envelope);
            return;
        }
        if SERVICES.contains(&envelope.dest.as_str()) {
            let reply_body =
                self.services
                    .handle(&envelope.dest, &envelope.src, &envelope.body, &mut self.rng);
            let reply = Envelope {
                src: envelope.dest.clone(),
                dest: envelope.src.clone(),
                body: reply_body,
            };
            let to = self.node_index(&reply.dest);
            self.transmit(reply, None, to);
        } else if self.clients.contains(&envelope.dest) {
            // A service answering a request a node sent in a client's name.
            let line = Value::Object(envelope.body.clone()).to_string();
            let from = envelope.src.clone();
            self.reply_to_client(&from, envelope, &line);
        }
    }

    /// Routes one line node `node` wrote, by Maelstrom's rules: any body to
    /// any known node or service, from any known `src` (a node may forward
    /// a client's request under the client's name); a message to a client
    /// must answer one of its requests. Only what Maelstrom itself cannot
    /// route is a finding, and the finding names the rule.
    pub fn route_line(&mut self, node: usize, line: &str) {
        let name = self.node_ids[node].clone();
        let envelope = match Envelope::parse(line) {
            Ok(e) => e,
            Err(why) => {
                self.finding(format!(
                    "node {name} wrote a line Maelstrom cannot route ({why}; rule: each line is one JSON object with string `src` and `dest` and an object `body`): {}",
                    quote(line)
                ));
                return;
            }
        };
        if !self.is_known(&envelope.src) {
            self.finding(format!(
                "node {name} sent a message from unknown source {:?} (rule: `src` must name a node, client or service on the network): {}",
                envelope.src,
                quote(line)
            ));
            return;
        }
        if let Some(dest) = self.node_index(&envelope.dest) {
            self.last_node_send = Instant::now();
            // Faults act on the link the message really takes: from the
            // node that wrote it, whatever `src` it carries.
            self.transmit(envelope, Some(node), Some(dest));
        } else if SERVICES.contains(&envelope.dest.as_str()) {
            self.last_node_send = Instant::now();
            self.transmit(envelope, Some(node), None);
        } else if self.clients.contains(&envelope.dest) {
            self.reply_to_client(&name, envelope, line);
        } else {
            self.finding(format!(
                "node {name} sent a message to unknown destination {:?} (rule: `dest` must name a node, client or service on the network): {}",
                envelope.dest,
                quote(line)
            ));
        }
    }

    fn is_known(&self, name: &str) -> bool {
        self.node_index(name).is_some() || SERVICES.contains(&name) || self.clients.contains(name)
    }

    /// A client takes a message only as the reply to a request it sent; a
    /// second reply to the same request is ignored, as Maelstrom's client
    /// ignores it (a duplicated forward can cause one).
    fn reply_to_client(&mut self, name: &str, envelope: Envelope, line: &str) {
        let Some(id) = envelope.in_reply_to() else {
            self.finding(format!(
                "node {name} sent client {} a message that answers nothing (rule: a message to a client is a reply and needs the integer `in_reply_to` of its request): {}",
                envelope.dest,
                quote(line)
            ));
            return;
        };
        let key = (envelope.dest.clone(), id);
        let Some(pending) = self.pending.get_mut(&key) else {
            self.finding(format!(
                "node {name} replied to unknown msg_id {id} of {} (rule: a reply must answer a request the client sent): {}",
                envelope.dest,
                quote(line)
            ));
            return;
        };
        let restarted = pending.restarted.take();
        if let Some(tx) = pending.reply.take() {
            let _ = tx.send(envelope.body);
        }
        if let (Some(i), Some(topology)) = (restarted, self.topology.clone()) {
            let body = body("topology", [("topology", Value::Object(topology))]);
            self.send_from_client(format!("c-topology-{i}"), i, body, None);
        }
    }

    /// Delivers every message due by `now`; returns how many.
    pub fn deliver_due(&mut self, now: Instant) -> usize {
        let mut delivered = 0;
        while let Some(Reverse((t, _, slot))) = self.queue.peek().copied() {
            if t > now {
                break;
            }
            self.queue.pop();
            if let Some(envelope) = self.in_flight.remove(&slot) {
                self.deliver(envelope);
                delivered += 1;
            }
        }
        delivered
    }

    /// Message counters so far.
    pub fn stats(&self) -> NetworkStats {
        self.report.stats
    }

    async fn handle(&mut self, command: Command) -> Option<oneshot::Sender<RouterReport>> {
        match command {
            Command::Request {
                client,
                node,
                body,
                reply,
            } => self.send_from_client(client, node, body, Some(reply)),
            Command::Partition(p) => self.partition = p,
            Command::Faults {
                loss,
                duplicate,
                reorder,
            } => {
                self.loss = loss;
                self.duplicate = duplicate;
                self.reorder = reorder;
            }
            Command::Crash(i) => {
                if let Some(mut process) = self.nodes[i].take() {
                    process.kill().await;
                }
                if let Err(e) = self.start_node(i, None) {
                    self.finding(format!("node n{i} could not be restarted: {e}"));
                }
            }
            Command::Pause(i) => {
                if let Some(p) = &mut self.nodes[i] {
                    p.pause();
                }
            }
            Command::Resume(i) => {
                if let Some(p) = &mut self.nodes[i] {
                    p.resume();
                }
            }
            Command::Heal => {
                self.partition = None;
                self.loss = 0.0;
                self.duplicate = 0.0;
                self.reorder = false;
                for i in 0..self.nodes.len() {
                    match &mut self.nodes[i] {
                        Some(p) => p.resume(),
                        None => {
                            if let Err(e) = self.start_node(i, None) {
                                self.finding(format!("node n{i} could not be restarted: {e}"));
                            }
                        }
                    }
                }
            }
            Command::Idle(tx) => {
                let _ = tx.send((self.last_node_send.elapsed(), self.in_flight.len()));
            }
            Command::SetTopology(t) => self.set_topology(t),
            Command::Stats(tx) => {
                let _ = tx.send(self.stats());
            }
            Command::Stop(tx) => return Some(tx),
        }
        None
    }

    /// Routes until [`Command::Stop`] or until every command sender is gone.
    pub async fn run(
        mut self,
        mut commands: UnboundedReceiver<Command>,
        mut events: UnboundedReceiver<NodeEvent>,
    ) -> RouterReport {
        let born = Instant::now();
        let stop = loop {
            let next = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let woke;
            tokio::select! {
                command = commands.recv() => { woke = Instant::now(); match command {
                    Some(command) => {
                        if let Some(tx) = self.handle(command).await {
                            break Some(tx);
                        }
                    }
                    None => break None,
                }},
                Some(event) = events.recv() => { woke = Instant::now(); match event {
                    NodeEvent::Line { node, incarnation, line } => {
                        if incarnation + 1 == self.incarnations[node] {
                            self.route_line(node, &line);
                        }
                    }
                    NodeEvent::Oversized { node, incarnation, line } => {
                        if incarnation + 1 == self.incarnations[node] {
                            self.finding(format!(
                                "node n{node} wrote a line over {} MiB at line {line} of its stdout: skipped",
                                super::process::MAX_LINE_BYTES >> 20
                            ));
                        }
                    }
                    NodeEvent::Exited { node, incarnation, .. } => {
                        if incarnation + 1 == self.incarnations[node] {
                            if let Some(mut process) = self.nodes[node].take() {
                                let status = process.exit_status().await;
                                let text = format!("node n{node} exited on its own ({status})");
                                self.report.unexpected_exits.push(text.clone());
                                self.finding(text);
                                // Whoever waits for this node's `init_ok` hears now.
                                let init = format!("c-init-{node}");
                                self.pending.retain(|(client, _), _| *client != init);
                            }
                        }
                    }
                }},
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    woke = Instant::now();
                    self.deliver_due(woke);
                }
            }
            self.report.busy += woke.elapsed();
        };
        self.report.lifetime = born.elapsed();
        for process in self.nodes.iter_mut().flatten() {
            process.kill().await;
        }
        let report = std::mem::take(&mut self.report);
        if let Some(tx) = stop {
            let _ = tx.send(report.clone());
        }
        report
    }
}
