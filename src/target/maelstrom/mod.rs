//! Target `maelstrom`: real node processes speaking Jepsen Maelstrom's
//! protocol, driven by seeded clients through a faulty network the verifier
//! owns, with crash and pause faults Maelstrom lacks.
//!
//! A run: start the nodes and wait for `init_ok`; clients send requests at
//! the chosen rate while the nemesis partitions, drops, duplicates,
//! reorders, crashes and pauses; then every fault is healed and reads are
//! polled until all nodes agree and stay agreed for a quiet window. Only
//! then are the final reads taken. The history is streamed to disk as it
//! happens (`history.jsonl` for CRDT workloads, Jepsen EDN `history.edn`
//! for lin-kv), so a run that dies leaves what it recorded.

pub mod ops;
pub mod process;
pub mod protocol;
pub mod router;
pub mod services;
pub mod topology;
pub mod workload;

use crate::checker::client_ops::ClientOp;
use crate::checker::kafka::FinalPolls;
use crate::error::{Error, Result};
use crate::generator::derive_seed;
use crate::history::jsonl::{record_invoke, HistoryWriter, Invoked, WriterMsg};
use crate::history::lin::{LinFn, LinHistory, LinOp, LinValue};
use crate::history::{FinalRead, Function, Header, History, OpRecord, Outcome, SCHEMA_VERSION};
use crate::interpreter::shell_quote;
use crate::target::settle::{Reads, SettleReport, SettleRule, SettleState, Settled, Settler};
use process::NodeCommand;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use router::{Command, Latency, Partition, Router, RouterReport};
use serde_json::{Map, Value};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::oneshot;
use tokio::time::Instant;
pub use topology::Topology;
pub use workload::MaelstromWorkload;

/// Faults the maelstrom nemesis can inject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Partitions: one node, a minority, or a majorities ring.
    pub partition: bool,
    /// Message loss.
    pub loss: bool,
    /// Message duplication.
    pub duplicate: bool,
    /// Reordering by random extra delay.
    pub reorder: bool,
    /// kill -9 a node and restart it empty.
    pub crash: bool,
    /// SIGSTOP a node, SIGCONT it later.
    pub pause: bool,
}

impl Faults {
    /// Parses `none` or a comma-separated list of fault names.
    pub fn parse(spec: &str) -> Result<Faults> {
        let mut faults = Faults::default();
        for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "none" => {}
                "partition" => faults.partition = true,
                // One name for message loss on every target; `loss` is its alias.
                "drop" | "loss" => faults.loss = true,
                "duplicate" => faults.duplicate = true,
                "reorder" => faults.reorder = true,
                "crash" => faults.crash = true,
                "pause" => faults.pause = true,
                other => {
                    return Err(Error::Config(format!(
                        "--nemesis: unknown fault '{other}' (maelstrom target: partition, drop (alias loss), duplicate, reorder, crash, pause, none)"
                    )))
                }
            }
        }
        Ok(faults)
    }

    /// The spec that parses back to these faults.
    pub fn to_spec(self) -> String {
        crate::nemesis::spec_of(&[
            (self.partition, "partition"),
            (self.loss, "drop"),
            (self.duplicate, "duplicate"),
            (self.reorder, "reorder"),
            (self.crash, "crash"),
            (self.pause, "pause"),
        ])
    }
}

/// Loss probability while the `drop` fault is on.
pub const LOSS: f64 = 0.1;
/// Duplication probability while the `duplicate` fault is on.
pub const DUPLICATE: f64 = 0.1;
/// Maelstrom's limit for answering `init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a maelstrom run needs.
#[derive(Clone, Debug)]
pub struct MaelstromConfig {
    /// Node binary and arguments.
    pub bin: PathBuf,
    /// Arguments for each node.
    pub bin_args: Vec<String>,
    /// Workload.
    pub workload: MaelstromWorkload,
    /// Node processes.
    pub nodes: usize,
    /// Clients (one request outstanding each).
    pub clients: usize,
    /// Requests per second over all clients.
    pub rate: f64,
    /// Length of the client phase.
    pub time_limit: Duration,
    /// Network latency.
    pub latency: Latency,
    /// Faults during the client phase.
    pub faults: Faults,
    /// Seed of every random choice.
    pub seed: u64,
    /// Output directory.
    pub out: PathBuf,
    /// Fraction of client ops that are reads.
    pub read_ratio: f64,
    /// A client gives up on a request after this long.
    pub request_timeout: Duration,
    /// Final reads must agree and stay put this long.
    pub quiet_window: Duration,
    /// Bound on the final wait; past it the verdict is unknown.
    pub settle_limit: Duration,
    /// Nodes that disagree while no value changes this long have diverged.
    pub stall_window: Duration,
    /// The broadcast workload's `topology` (Maelstrom's default: grid).
    pub topology: Topology,
}

impl MaelstromConfig {
    /// Checks ranges, naming the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.nodes == 0 || self.nodes > 256 {
            return bad(format!("--nodes must be in 1..=256, got {}", self.nodes));
        }
        if self.clients == 0 || self.clients > 100_000 {
            return bad(format!(
                "--clients must be in 1..=100000, got {}",
                self.clients
            ));
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 10_000_000.0) {
            return bad(format!("--rate must be in (0, 1e7], got {}", self.rate));
        }
        if self.time_limit.is_zero() || self.time_limit > Duration::from_secs(86_400) {
            return bad("--time-limit must be in (0, 86400] seconds".into());
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return bad(format!(
                "--read-ratio must be in [0, 1], got {}",
                self.read_ratio
            ));
        }
        if !self.bin.exists() {
            return bad(format!("--bin {}: no such file", self.bin.display()));
        }
        self.settle_rule().validate()
    }

    /// The settle rule of the final phase.
    pub fn settle_rule(&self) -> SettleRule {
        SettleRule {
            quiet: self.quiet_window,
            stall: self.stall_window,
            limit: self.settle_limit,
        }
    }

    /// The command that reproduces this run.
    pub fn reproduce(&self) -> String {
        let mut cmd = format!(
            "converge run --target maelstrom --bin {} --workload {} --nodes {} --clients {} --rate {} --time-limit {} --latency {} --latency-dist {} --nemesis {} --read-ratio {} --quiet-window {} --stall-window {} --settle-limit {} --seed {} --out {}",
            shell_quote(&self.bin.display().to_string()),
            self.workload.name(),
            self.nodes,
            self.clients,
            self.rate,
            self.time_limit.as_secs_f64(),
            self.latency.mean().as_secs_f64() * 1e3,
            match self.latency {
                Latency::Constant(_) => "constant",
                Latency::Uniform(_) => "uniform",
                Latency::Exponential(_) => "exponential",
            },
            self.faults.to_spec(),
            self.read_ratio,
            self.quiet_window.as_secs_f64(),
            self.stall_window.as_secs_f64(),
            self.settle_limit.as_secs_f64(),
            self.seed,
            shell_quote(&self.out.display().to_string())
        );
        if self.workload == MaelstromWorkload::Broadcast {
            cmd.push_str(" --topology ");
            cmd.push_str(&self.topology.name());
        }
        for arg in &self.bin_args {
            cmd.push_str(" --bin-arg ");
            cmd.push_str(&shell_quote(arg));
        }
        cmd
    }
}

/// What a maelstrom run produced.
#[derive(Debug)]
pub struct MaelstromResult {
    /// CRDT history (for lin-kv: ops for latency figures only).
    pub history: History,
    /// lin-kv: the client-level history for the linearizability checker.
    pub lin: Option<LinHistory>,
    /// What the router saw.
    pub router: RouterReport,
    /// Client phase length.
    pub client_phase: Duration,
    /// Whole run.
    pub total: Duration,
    /// Nemesis actions, in order.
    pub nemesis_log: Vec<String>,
    /// How far apart the nodes were when the final wait gave up.
    pub divergence: Option<String>,
    /// echo, unique-ids, kafka: every op with its bodies, and how kafka's
    /// final polls ended (`Missing` for the others).
    pub ops: Option<(Vec<ClientOp>, FinalPolls)>,
    /// What the settle phase decided (none for lin-kv, the body-recording
    /// workloads or a failed client phase).
    pub settle: Option<SettleReport>,
    /// The time series' summary (`None` if writing it failed).
    pub series: Option<crate::series::SeriesSummary>,
}

/// Streams a lin-kv history as Jepsen EDN, one event per line.
struct EdnLog {
    out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    events: u64,
}

impl EdnLog {
    fn event(
        &mut self,
        process: u64,
        kind: &str,
        f: LinFn,
        key: u64,
        value: &LinValue,
    ) -> Result<u64> {
        let value = match value {
            LinValue::Nil => "nil".to_string(),
            other => other.to_string(),
        };
        writeln!(
            self.out,
            "{{:process {process}, :type :{kind}, :f :{}, :key {key}, :value {value}}}",
            f.as_str()
        )
        .and_then(|_| self.out.flush())
        .map_err(|e| Error::io(&self.path, e))?;
        self.events += 1;
        Ok(self.events - 1)
    }
}

/// The recorder clients share.
struct Recorder {
    start: Instant,
    writer: Option<converge_sync::channel::Sender<WriterMsg>>,
    history: History,
    edn: Option<EdnLog>,
    lin: Vec<LinOp>,
    /// Replies that made no sense, each naming the node and quoting it.
    garbage: Vec<String>,
    /// echo, unique-ids, kafka: `ops.jsonl`.
    ops_log: Option<ops::OpsLog>,
    /// echo, unique-ids, kafka: the ops so far.
    ops: Vec<ClientOp>,
    /// The time series (started, completed, latency per second).
    series: Option<crate::series::SeriesRecorder>,
}

impl Recorder {
    fn record(
        &mut self,
        invoked: Option<Invoked>,
        record: OpRecord,
        read: Option<converge_models::Value>,
    ) -> Result<()> {
        if let (Some(writer), Some(invoked)) = (&self.writer, invoked) {
            invoked.complete(writer, record, read.clone())?;
        }
        self.history
            .push(record, None, &[], read)
            .map_err(Error::Config)
    }
}

/// Runs the target and returns what it recorded. Errors only for problems
/// before the first op (a node that cannot start or never answers `init`)
/// or writing the history; node misbehaviour after that is a finding.
pub fn run(config: &MaelstromConfig) -> Result<MaelstromResult> {
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    runtime.block_on(run_async(config))
}

async fn run_async(config: &MaelstromConfig) -> Result<MaelstromResult> {
    let started = Instant::now();
    let header = Header {
        schema_version: SCHEMA_VERSION,
        seed: config.seed,
        workload: config
            .workload
            .datatype()
            .unwrap_or(converge_models::Workload::LwwRegister),
        model: config.bin.display().to_string(),
        target: "maelstrom".into(),
        writers: config.clients as u32,
        replicas: config.nodes as u16,
        keys: if config.workload == MaelstromWorkload::LinKv {
            workload::LIN_KV_KEYS as u32
        } else {
            1
        },
        ops: (config.rate * config.time_limit.as_secs_f64()) as u64,
        nemesis: config.faults.to_spec(),
        reproduce: config.reproduce(),
        linearizable: config.workload == MaelstromWorkload::LinKv,
    };
    // The history exists before any node starts: a run killed during
    // start-up still leaves one.
    let (writer, edn) = if config.workload == MaelstromWorkload::LinKv {
        crate::history::lock::claim(&config.out)?;
        let path = config.out.join("history.edn");
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        (
            None,
            Some(EdnLog {
                out: std::io::BufWriter::new(file),
                path,
                events: 0,
            }),
        )
    } else if config.workload.records_bodies() {
        // Their ops go to `ops.jsonl`; a CRDT history would misdescribe them.
        crate::history::lock::claim(&config.out)?;
        (None, None)
    } else {
        (
            Some(HistoryWriter::start(
                &config.out.join("history.jsonl"),
                header.clone(),
            )?),
            None,
        )
    };
    std::fs::create_dir_all(process::log_dir(&config.out))
        .map_err(|e| Error::io(process::log_dir(&config.out), e))?;
    let command = NodeCommand {
        bin: config.bin.clone(),
        args: config.bin_args.clone(),
        log_dir: process::log_dir(&config.out),
    };
    let (events_tx, events_rx) = unbounded_channel();
    let (commands_tx, commands_rx) = unbounded_channel();
    // Rows start with the nodes (the first row holds their start-up and
    // `init`): the target's memory is measured from its first moment.
    let series = crate::series::SeriesRecorder::start(
        &config.out,
        crate::series::SeriesHeader::wall(serde_json::json!({
            "model": "open", "rate": config.rate, "writers": config.clients,
            "duration_s": config.time_limit.as_secs_f64(),
        })),
    )?;
    let mut router = Router::new(
        command,
        config.nodes,
        config.latency,
        ChaCha8Rng::seed_from_u64(derive_seed(config.seed, 1)),
        events_tx,
    );
    router.set_series(series.clone());
    let mut inits = Vec::new();
    for i in 0..config.nodes {
        let (tx, rx) = oneshot::channel();
        router.start_node(i, Some(tx))?;
        inits.push(rx);
    }
    let router_task = tokio::spawn(router.run(commands_rx, events_rx));
    let stop_router = |commands: &UnboundedSender<Command>| {
        let (tx, rx) = oneshot::channel();
        let _ = commands.send(Command::Stop(tx));
        rx
    };
    for (i, rx) in inits.into_iter().enumerate() {
        let reply = tokio::select! {
            reply = tokio::time::timeout(INIT_TIMEOUT, rx) => reply,
            _ = crate::interrupt::wait() => {
                let _ = stop_router(&commands_tx).await;
                let _ = router_task.await;
                return Err(crate::interrupt::during(format!(
                    "while waiting for node n{i} to answer init"
                )));
            }
        };
        let ok = matches!(&reply, Ok(Ok(body)) if body.get("type").and_then(Value::as_str) == Some("init_ok"));
        if !ok {
            let report = stop_router(&commands_tx).await.unwrap_or_default();
            let _ = router_task.await;
            let why = match reply {
                Err(_) => format!("did not answer init within {} s", INIT_TIMEOUT.as_secs()),
                Ok(Err(_)) => {
                    let prefix = format!("node n{i} ");
                    let exit = report
                        .unexpected_exits
                        .iter()
                        .find_map(|e| e.strip_prefix(&prefix))
                        .unwrap_or("exited");
                    format!("{exit} before answering init")
                }
                Ok(Ok(body)) => format!("answered init with {}", Value::Object(body)),
            };
            let log = process::log_dir(&config.out).join(format!("n{i}.log"));
            return Err(Error::Target {
                component: format!("node n{i}"),
                message: format!("{why}; {}", crate::child::describe_log(&log)),
            });
        }
    }
    if config.workload == MaelstromWorkload::Broadcast {
        // As Maelstrom: each node gets the whole map right after init; a
        // restarted node gets it again right after its new init_ok.
        let node_ids: Vec<String> = (0..config.nodes).map(|i| format!("n{i}")).collect();
        let topology = config.topology.to_json(&node_ids);
        let _ = commands_tx.send(Command::SetTopology(topology.clone()));
        for i in 0..config.nodes {
            let (tx, rx) = oneshot::channel();
            let _ = commands_tx.send(Command::Request {
                client: "c-topology".into(),
                node: i,
                body: protocol::body("topology", [("topology", Value::Object(topology.clone()))]),
                reply: tx,
            });
            let _ = tokio::time::timeout(config.request_timeout, rx).await;
        }
    }

    let recorder = Arc::new(Mutex::new(Recorder {
        start: started,
        writer: writer.as_ref().map(HistoryWriter::sender),
        history: History::new(header),
        edn,
        lin: Vec::new(),
        garbage: Vec::new(),
        ops_log: if config.workload.records_bodies() {
            Some(ops::OpsLog::create(config.out.join("ops.jsonl"))?)
        } else {
            None
        },
        ops: Vec::new(),
        series: Some(series.clone()),
    }));

    // Client phase.
    let client_start = Instant::now();
    let deadline = client_start + config.time_limit;
    series.set_writers(config.clients as u32);
    let nemesis = tokio::spawn(nemesis_task(
        config.clone(),
        commands_tx.clone(),
        deadline,
        series.clone(),
    ));
    let mut clients = Vec::new();
    for c in 0..config.clients {
        let (config, commands, recorder) = (config.clone(), commands_tx.clone(), recorder.clone());
        clients.push(if config.workload.records_bodies() {
            tokio::spawn(ops::client_task(config, c, commands, recorder, deadline))
        } else {
            tokio::spawn(client_task(config, c, commands, recorder, deadline))
        });
    }
    let mut client_error = None;
    for task in clients {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => client_error = Some(e),
            Err(e) => client_error = Some(Error::Config(format!("client task failed: {e}"))),
        }
    }
    let nemesis_log = nemesis.await.unwrap_or_default();
    let client_phase = client_start.elapsed();
    series.set_writers(0);

    // Final phase: heal, then wait for agreement that holds for a quiet window.
    let _ = commands_tx.send(Command::Heal);
    let mut divergence = None;
    let mut settle_report = None;
    let mut final_polls = FinalPolls::Missing;
    if client_error.is_none() && config.workload == MaelstromWorkload::Kafka {
        match ops::kafka_final_polls(config, &commands_tx, &recorder).await {
            Ok(f) => final_polls = f,
            Err(e) => client_error = Some(e),
        }
    }
    if client_error.is_none()
        && config.workload != MaelstromWorkload::LinKv
        && !config.workload.records_bodies()
    {
        let settled = settle(config, &commands_tx).await;
        let quiescence = settled.report.quiescence();
        divergence =
            (settled.report.state != SettleState::Converged).then(|| settled.report.describe());
        let finals = finals_of(&settled.reads);
        settle_report = Some(settled.report);
        let mut rec = recorder.lock().unwrap_or_else(|p| p.into_inner());
        for f in finals {
            if let Some(w) = &rec.writer {
                let _ = w.send(WriterMsg::Final(f.clone()));
            }
            rec.history.finals.push(f);
        }
        if let Some(w) = &rec.writer {
            let _ = w.send(WriterMsg::Quiescence(quiescence));
        }
        rec.history.quiescence = Some(quiescence);
    }
    let mut router_report = stop_router(&commands_tx).await.unwrap_or_default();
    drop(commands_tx);
    let _ = router_task.await;
    // After the final phase: the rows cover the settle wait too.
    let series = series.finish();

    let mut rec = match Arc::try_unwrap(recorder) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(_) => return Err(Error::Config("a client outlived the run".into())),
    };
    if let Some(w) = rec.writer.take() {
        let _ = w.send(WriterMsg::Network(router_report.stats));
    }
    rec.history.network = Some(router_report.stats);
    router_report.findings_total += rec.garbage.len() as u64;
    router_report.findings.append(&mut rec.garbage);
    if let Some(writer) = writer {
        // The writer's history: ops in id (invocation) order, as `check` reads them back.
        rec.history = writer.finish()?;
    }
    if let Some(e) = client_error {
        return Err(e);
    }
    let series = match series {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("time series: {e}");
            None
        }
    };
    let ops = config
        .workload
        .records_bodies()
        .then(|| (std::mem::take(&mut rec.ops), final_polls));
    let lin = rec.edn.as_ref().map(|_| LinHistory {
        ops: std::mem::take(&mut rec.lin),
        warnings: Vec::new(),
    });
    Ok(MaelstromResult {
        history: rec.history,
        lin,
        router: router_report,
        client_phase,
        total: started.elapsed(),
        nemesis_log,
        divergence,
        ops,
        settle: settle_report,
        series,
    })
}

async fn request(
    commands: &UnboundedSender<Command>,
    client: String,
    node: usize,
    body: Map<String, Value>,
    timeout: Duration,
) -> Option<Map<String, Value>> {
    let (tx, rx) = oneshot::channel();
    commands
        .send(Command::Request {
            client,
            node,
            body,
            reply: tx,
        })
        .ok()?;
    tokio::time::timeout(timeout, rx).await.ok()?.ok()
}

/// A client's seeded randomness and schedule: one request every
/// `clients / rate` seconds, from a random phase, until the deadline.
struct Pace {
    rng: ChaCha8Rng,
    interval: Duration,
    next: Instant,
}

impl Pace {
    fn new(config: &MaelstromConfig, client: usize) -> Pace {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(config.seed, 1000 + client as u64));
        let interval = Duration::from_secs_f64(config.clients as f64 / config.rate);
        let next = Instant::now() + interval.mul_f64(rng.random_range(0.0..1.0));
        Pace {
            rng,
            interval,
            next,
        }
    }

    /// Sleeps until the next request is due; false once the deadline passed.
    async fn wait(&mut self, deadline: Instant) -> bool {
        tokio::time::sleep_until(self.next).await;
        self.next += self.interval;
        // SIGINT/SIGTERM: stop sending; the ops in flight still complete.
        Instant::now() < deadline && !crate::interrupt::requested()
    }
}

async fn client_task(
    config: MaelstromConfig,
    client: usize,
    commands: UnboundedSender<Command>,
    recorder: Arc<Mutex<Recorder>>,
    deadline: Instant,
) -> Result<()> {
    let mut pace = Pace::new(&config, client);
    let name = format!("c{client}");
    let mut seq = 0u64;
    let mut process = client as u64;
    let mut context: Option<Value> = None;
    // When the read that gave `context` returned: a write can only
    // supersede values that existed by then.
    let mut context_ns = 0u64;
    while pace.wait(deadline).await {
        let rng = &mut pace.rng;
        seq += 1;
        let unique = (client as u64) << 32 | seq;
        let planned = workload::plan(
            config.workload,
            rng,
            config.read_ratio,
            unique,
            context.as_ref(),
        );
        let node = rng.random_range(0..config.nodes);
        let invoke_at = Instant::now();
        let (invoke_ns, call, writer) = {
            let mut rec = recorder.lock().unwrap_or_else(|p| p.into_inner());
            let invoke_ns = invoke_at.duration_since(rec.start).as_nanos() as u64;
            if let Some(s) = &rec.series {
                s.started();
            }
            let call = match (&planned.lin, rec.edn.as_mut()) {
                (Some((key, f, input)), Some(edn)) => {
                    Some(edn.event(process, "invoke", *f, *key, input)?)
                }
                _ => None,
            };
            (invoke_ns, call, rec.writer.clone())
        };
        let key = planned.lin.as_ref().map_or(0, |(k, _, _)| *k as u32);
        let invoked = match &writer {
            Some(w) => {
                let invocation = OpRecord::invocation(
                    planned.f,
                    client as u32,
                    node as u16,
                    key,
                    planned.value,
                    invoke_ns,
                );
                Some(record_invoke(w, &invocation).await?)
            }
            None => None,
        };
        let reply = request(
            &commands,
            name.clone(),
            node,
            planned.body.clone(),
            config.request_timeout,
        )
        .await;
        let latency_ns = u64::try_from(invoke_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let interpreted = match workload::interpret(config.workload, &planned, reply.as_ref()) {
            Ok(i) => i,
            Err(why) => {
                let quoted = reply
                    .map(|b| Value::Object(b).to_string())
                    .unwrap_or_default();
                tracing::warn!("node n{node} answered {name} with garbage ({why}): {quoted}");
                let mut rec = recorder.lock().unwrap_or_else(|p| p.into_inner());
                rec.garbage.push(format!(
                    "node n{node} answered a client with garbage ({why}; rule: a reply is `<type>_ok` with the workload's fields, or `error` with a code): {}",
                    protocol::quote(&quoted)
                ));
                workload::Interpreted::unanswered(&planned)
            }
        };
        if interpreted.context.is_some() {
            context = interpreted.context.clone();
            context_ns = invoke_ns.saturating_add(latency_ns);
        }
        let mut rec = recorder.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = &rec.series {
            s.completed(interpreted.outcome.into(), invoke_at.elapsed());
        }
        if let (Some((key, f, input)), Some(call)) = (&planned.lin, call) {
            let kind = match interpreted.outcome {
                Outcome::Ok => "ok",
                Outcome::Fail => "fail",
                Outcome::Info => "info",
            };
            let shown = if *f == LinFn::Read {
                &interpreted.lin_output
            } else {
                input
            };
            let ret = rec
                .edn
                .as_mut()
                .map(|edn| edn.event(process, kind, *f, *key, shown))
                .transpose()?;
            rec.lin.push(LinOp {
                process,
                key: Some(key.to_string()),
                f: *f,
                input: input.clone(),
                output: interpreted.lin_output.clone(),
                outcome: interpreted.outcome,
                call,
                ret: if interpreted.outcome == Outcome::Info {
                    None
                } else {
                    ret
                },
                line: call as usize + 1,
            });
            if interpreted.outcome == Outcome::Info {
                // The op may still be in flight: Jepsen retires the process.
                process += config.clients as u64;
            }
        }
        let record = OpRecord {
            invoke_ns,
            value: planned.value,
            aux: match (config.workload, planned.f) {
                (MaelstromWorkload::MvRegister, Function::Write) => context_ns,
                (MaelstromWorkload::LwwRegister, Function::Write) => {
                    interpreted.stamp.unwrap_or(crate::history::UNKNOWN_AUX)
                }
                _ => crate::history::UNKNOWN_AUX,
            },
            latency_ns,
            process: client as u32,
            key,
            clock_sum: 0,
            slot: 0,
            replica: node as u16,
            f: planned.f,
            outcome: interpreted.outcome,
        };
        rec.record(invoked, record, interpreted.read)?;
    }
    Ok(())
}

/// Polls every node's read until the shared settle rule decides
/// ([`crate::target::settle`]). Gossip still flowing does not matter: only
/// whether the values change.
async fn settle(config: &MaelstromConfig, commands: &UnboundedSender<Command>) -> Settled {
    let healed = Instant::now();
    let rule = config.settle_rule();
    let mut settler = Settler::new(rule);
    let planned = workload::Planned {
        body: config.workload.read_request(),
        f: Function::Read,
        value: 0,
        lin: None,
    };
    loop {
        if crate::interrupt::requested() {
            // A stop asked for ends the final phase: no final reads.
            return settler.interrupted(healed.elapsed());
        }
        let mut reads = Vec::with_capacity(config.nodes);
        for node in 0..config.nodes {
            let reply = request(
                commands,
                format!("c-final-{node}"),
                node,
                config.workload.read_request(),
                config.request_timeout,
            )
            .await;
            let value = workload::interpret(config.workload, &planned, reply.as_ref())
                .ok()
                .and_then(|i| i.read);
            // One key per node: the maelstrom workloads read the whole value.
            reads.push(vec![value]);
        }
        if let Some(settled) = settler.observe(healed.elapsed(), reads) {
            return settled;
        }
        tokio::time::sleep(rule.poll_interval()).await;
    }
}

fn finals_of(reads: &Reads<converge_models::Value>) -> Vec<FinalRead> {
    reads
        .iter()
        .enumerate()
        .filter_map(|(node, row)| {
            row.first().cloned().flatten().map(|value| FinalRead {
                replica: node as u16,
                key: 0,
                value,
            })
        })
        .collect()
}

/// Schedules partitions, crashes and pauses during the client phase, and
/// keeps loss, duplication and reordering on throughout it.
async fn nemesis_task(
    config: MaelstromConfig,
    commands: UnboundedSender<Command>,
    deadline: Instant,
    series: crate::series::SeriesRecorder,
) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(config.seed, 2));
    let mut log = NemesisLog {
        lines: Vec::new(),
        series,
    };
    let faults = config.faults;
    if faults.loss || faults.duplicate || faults.reorder {
        let _ = commands.send(Command::Faults {
            loss: if faults.loss { LOSS } else { 0.0 },
            duplicate: if faults.duplicate { DUPLICATE } else { 0.0 },
            reorder: faults.reorder,
        });
        log.push(format!("0.0s network faults on: {}", faults.to_spec()));
    }
    let phase = (config.time_limit / 6).max(Duration::from_millis(200));
    let start = Instant::now();
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
    while !actions.is_empty() && Instant::now() + phase < deadline && !crate::interrupt::requested()
    {
        crate::interrupt::sleep(phase / 2).await;
        let at = start.elapsed().as_secs_f64();
        let node = rng.random_range(0..config.nodes);
        match actions[rng.random_range(0..actions.len())] {
            "partition" => {
                let n = config.nodes;
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
                log.push(format!("{at:.1}s partition: {}", partition.description));
                let _ = commands.send(Command::Partition(Some(partition)));
                crate::interrupt::sleep(phase).await;
                let _ = commands.send(Command::Partition(None));
                log.push(format!(
                    "{:.1}s partition healed",
                    start.elapsed().as_secs_f64()
                ));
            }
            "crash" => {
                log.push(format!("{at:.1}s crash n{node} (kill -9, restart empty)"));
                let _ = commands.send(Command::Crash(node));
                crate::interrupt::sleep(phase / 2).await;
            }
            _ => {
                log.push(format!("{at:.1}s pause n{node} (SIGSTOP)"));
                let _ = commands.send(Command::Pause(node));
                crate::interrupt::sleep(phase / 2).await;
                let _ = commands.send(Command::Resume(node));
                log.push(format!(
                    "{:.1}s resume n{node} (SIGCONT)",
                    start.elapsed().as_secs_f64()
                ));
            }
        }
    }
    log.lines
}

/// The nemesis log, each line also a nemesis event of the time series.
struct NemesisLog {
    lines: Vec<String>,
    series: crate::series::SeriesRecorder,
}

impl NemesisLog {
    fn push(&mut self, line: String) {
        self.series.nemesis(&line);
        self.lines.push(line);
    }
}
