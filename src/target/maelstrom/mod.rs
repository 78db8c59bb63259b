//! Target `maelstrom`: real node processes speaking Jepsen Maelstrom's
//! protocol, driven by seeded clients through a faulty network the verifier
//! owns, with crash and pause faults Maelstrom lacks.
//!
//! A run: start the nodes and wait for `init_ok`; then the wall-clock
//! engine ([`crate::engine`]) drives writers (Maelstrom's clients) under the
//! run's load shape while the nemesis partitions, drops, duplicates,
//! reorders, crashes and pauses ([`adapter::MaelstromAdapter`]); then every
//! fault is healed and reads are polled until all nodes agree and stay
//! agreed for a quiet window. Only then are the final reads taken. CRDT
//! workloads use the engine's generator and history; lin-kv, echo,
//! unique-ids and kafka bring their own clients and record their own
//! history, under the same load shape, nemesis and time series. The history is streamed to disk as it
//! happens (`history.jsonl` for CRDT workloads, Jepsen EDN `history.edn`
//! for lin-kv), so a run that dies leaves what it recorded.

pub mod adapter;
pub mod ops;
pub mod process;
pub mod protocol;
pub mod router;
pub mod services;
pub mod topology;
pub mod workload;

use crate::checker::client_ops::ClientOp;
use crate::checker::kafka::FinalPolls;
use crate::engine::scheduler::Client;
use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::generator::{derive_seed, Mix};
use crate::history::jsonl::HistoryWriter;
use crate::history::lin::{LinFn, LinHistory, LinOp, LinValue};
use crate::history::{Header, History, OpRecord, Outcome, SCHEMA_VERSION};
use crate::interpreter::shell_quote;
use crate::load::LoadSpec;
use crate::series::SeriesRecorder;
use crate::target::settle::{SettleReport, SettleRule, SettleState};
use adapter::MaelstromAdapter;
use parking_lot::Mutex;
use process::NodeCommand;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use router::{Command, Latency, Router, RouterReport};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::oneshot;
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
/// Length of the client phase when neither a duration, stages nor an op
/// budget bound it (`--time-limit`'s default).
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Requests per second over all clients when no `--rate` is given.
pub const DEFAULT_RATE: f64 = 100.0;

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
    /// The load shape: its writers are Maelstrom's clients, one request
    /// outstanding each (default: open model at 100 requests/s over a pool
    /// of `--clients` writers for `--time-limit`).
    pub load: LoadSpec,
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
        if self.load.peak_writers() > 100_000 {
            return bad(format!(
                "--clients must be in 1..=100000, got {}",
                self.load.peak_writers()
            ));
        }
        if self.load.rate > 10_000_000.0 || !self.load.rate.is_finite() {
            return bad(format!(
                "--rate must be in (0, 1e7], got {}",
                self.load.rate
            ));
        }
        if self
            .load
            .end()
            .is_some_and(|d| d.is_zero() || d > Duration::from_secs(86_400))
        {
            return bad("--time-limit must be in (0, 86400] seconds".into());
        }
        self.load.validate()?;
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

    /// Most clients at once: the step of Jepsen's process numbers (a
    /// client whose op ended `info` takes its number plus this).
    pub fn clients(&self) -> usize {
        self.load.peak_writers().max(1) as usize
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
            "converge run --target maelstrom --bin {} --workload {} --nodes {} --clients {}{} --latency {} --latency-dist {} --nemesis {} --read-ratio {} --quiet-window {} --stall-window {} --settle-limit {} --seed {} --out {}",
            shell_quote(&self.bin.display().to_string()),
            self.workload.name(),
            self.nodes,
            self.load.writers,
            crate::engine::load_flags(&self.load),
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

    /// The history's header.
    fn header(&self) -> Header {
        Header {
            schema_version: SCHEMA_VERSION,
            seed: self.seed,
            workload: self
                .workload
                .datatype()
                .unwrap_or(converge_models::Workload::LwwRegister),
            model: self.bin.display().to_string(),
            target: "maelstrom".into(),
            writers: self.load.peak_writers(),
            replicas: self.nodes as u16,
            keys: if self.workload == MaelstromWorkload::LinKv {
                workload::LIN_KV_KEYS as u32
            } else {
                1
            },
            ops: self.load.ops.unwrap_or(0),
            nemesis: self.faults.to_spec(),
            reproduce: self.reproduce(),
            linearizable: self.workload == MaelstromWorkload::LinKv,
        }
    }

    /// What the engine runs: the load shape, and for the CRDT workloads the
    /// generator's mix (one key: a Maelstrom workload reads its whole value;
    /// as Maelstrom's own planner, half of a PN-counter's deltas and 30 %
    /// of an OR-set's updates remove, over a small range of elements).
    fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            load: self.load.clone(),
            workload: self
                .workload
                .datatype()
                .unwrap_or(converge_models::Workload::LwwRegister),
            mix: Mix {
                keys: 1,
                hot_key_ratio: 0.0,
                read_ratio: self.read_ratio,
                remove_ratio: if self.workload == MaelstromWorkload::PnCounter {
                    0.5
                } else {
                    0.3
                },
                or_set_elements: workload::OR_SET_ELEMENTS,
                ..Mix::default()
            },
            seed: self.seed,
            settle: self.settle_rule(),
            out: self.out.clone(),
            header: self.header(),
            probe: None,
        }
    }
}

/// What a maelstrom run produced.
#[derive(Debug)]
pub struct MaelstromResult {
    /// CRDT history (for lin-kv and the body-recording workloads: ops for
    /// latency figures only).
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
    /// Open model: arrivals that found every client busy.
    pub dropped: u64,
    /// Most clients at once.
    pub writers_peak: u32,
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

/// What the clients of lin-kv and the body-recording workloads record.
struct Recorder {
    /// The run's time origin.
    start: Instant,
    /// Their ops as CRDT records, for the latency figures only.
    history: History,
    edn: Option<EdnLog>,
    lin: Vec<LinOp>,
    /// echo, unique-ids, kafka: `ops.jsonl`.
    ops_log: Option<ops::OpsLog>,
    /// echo, unique-ids, kafka: the ops so far.
    ops: Vec<ClientOp>,
}

impl Recorder {
    fn record(&mut self, record: OpRecord, read: Option<converge_models::Value>) -> Result<()> {
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

/// Kills every node and returns what the router saw.
async fn stop_router(
    commands: &UnboundedSender<Command>,
    task: tokio::task::JoinHandle<RouterReport>,
) -> RouterReport {
    let (tx, rx) = oneshot::channel();
    let _ = commands.send(Command::Stop(tx));
    let report = rx.await;
    let ended = task.await;
    match (report, ended) {
        (Ok(r), _) | (Err(_), Ok(r)) => r,
        (Err(_), Err(_)) => RouterReport::default(),
    }
}

async fn run_async(config: &MaelstromConfig) -> Result<MaelstromResult> {
    let started = Instant::now();
    let engine_config = config.engine_config();
    // The history exists before any node starts: a run killed during
    // start-up still leaves one.
    let mut ops_log = None;
    let (early, edn) = if config.workload == MaelstromWorkload::LinKv {
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
        ops_log = Some(ops::OpsLog::create(
            config.out.join("ops.jsonl"),
            config.workload.name(),
            &engine_config.header,
        )?);
        (None, None)
    } else {
        (
            Some(HistoryWriter::start(
                &config.out.join("history.jsonl"),
                engine_config.header.clone(),
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
    // `init`): the target's memory is measured from its first moment. The
    // router keeps the nodes' process roots current in it.
    let series = crate::engine::start_series(&engine_config, None::<&MaelstromAdapter>);
    let mut router = Router::new(
        command,
        config.nodes,
        config.latency,
        ChaCha8Rng::seed_from_u64(derive_seed(config.seed, 1)),
        events_tx,
    );
    if let Some(s) = &series {
        router.set_series(s.clone());
    }
    let mut inits = Vec::new();
    for i in 0..config.nodes {
        let (tx, rx) = oneshot::channel();
        router.start_node(i, Some(tx))?;
        inits.push(rx);
    }
    let router_task = tokio::spawn(router.run(commands_rx, events_rx));
    for (i, rx) in inits.into_iter().enumerate() {
        let reply = tokio::select! {
            reply = tokio::time::timeout(INIT_TIMEOUT, rx) => reply,
            _ = crate::interrupt::wait() => {
                let _ = stop_router(&commands_tx, router_task).await;
                return Err(crate::interrupt::during(format!(
                    "while waiting for node n{i} to answer init"
                )));
            }
        };
        let ok = matches!(&reply, Ok(Ok(body)) if body.get("type").and_then(Value::as_str) == Some("init_ok"));
        if !ok {
            let report = stop_router(&commands_tx, router_task).await;
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
    let adapter = Arc::new(MaelstromAdapter::new(
        commands_tx.clone(),
        config.clone(),
        started,
    ));
    if config.workload == MaelstromWorkload::Broadcast {
        // As Maelstrom: each node gets the whole map right after init; a
        // restarted node gets it again right after its new init_ok.
        let node_ids: Vec<String> = (0..config.nodes).map(|i| format!("n{i}")).collect();
        let topology = config.topology.to_json(&node_ids);
        let _ = commands_tx.send(Command::SetTopology(topology.clone()));
        for i in 0..config.nodes {
            let body = protocol::body("topology", [("topology", Value::Object(topology.clone()))]);
            let _ = adapter.request("c-topology".into(), i, body).await;
        }
    }
    // Loss, duplication and reordering last the whole writing phase.
    let mut nemesis_log = Vec::new();
    if let Some(line) = adapter.network_faults_on() {
        if let Some(s) = &series {
            s.nemesis(&line);
        }
        nemesis_log.push(format!("{:.1}s {line}", started.elapsed().as_secs_f64()));
    }
    let mut result = if let Some(early) = early {
        // The engine writes the run's history afresh.
        let _ = early.finish();
        let outcome = crate::engine::run(adapter.clone(), &engine_config, started, series).await;
        let router_report = stop_router(&commands_tx, router_task).await;
        let outcome = outcome?;
        nemesis_log.extend(outcome.nemesis_log);
        MaelstromResult {
            history: outcome.history,
            lin: None,
            router: router_report,
            client_phase: outcome.write_phase,
            total: Duration::ZERO,
            nemesis_log,
            divergence: outcome
                .settle
                .as_ref()
                .filter(|s| s.state != SettleState::Converged)
                .map(SettleReport::describe),
            ops: None,
            settle: outcome.settle,
            series: outcome.series,
            dropped: outcome.dropped,
            writers_peak: outcome.writers_peak,
        }
    } else {
        let recorder = Arc::new(Mutex::new(Recorder {
            start: started,
            history: History::new(engine_config.header.clone()),
            edn,
            lin: Vec::new(),
            ops_log,
            ops: Vec::new(),
        }));
        let written = run_own_clients(&adapter, &engine_config, started, &series, &recorder).await;
        let mut final_polls = FinalPolls::Missing;
        let written_ok = matches!(&written, Ok(w) if w.totals.is_ok());
        if written_ok && config.workload == MaelstromWorkload::Kafka {
            match ops::kafka_final_polls(&adapter, &recorder, series.as_ref()).await {
                Ok(f) => final_polls = f,
                Err(e) => {
                    return_after_stop(&commands_tx, router_task, series).await;
                    return Err(e);
                }
            }
        }
        // After the final phase: the rows cover it too.
        let summary = series.as_ref().and_then(|s| match s.finish() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("time series: {e}");
                None
            }
        });
        let router_report = stop_router(&commands_tx, router_task).await;
        let written = written?;
        let totals = written.totals?;
        nemesis_log.extend(written.nemesis_log);
        let mut rec = std::mem::replace(
            &mut *recorder.lock(),
            Recorder {
                start: started,
                history: History::new(engine_config.header.clone()),
                edn: None,
                lin: Vec::new(),
                ops_log: None,
                ops: Vec::new(),
            },
        );
        rec.history.network = Some(router_report.stats);
        if let Some(log) = rec.ops_log.as_mut() {
            let kafka = config.workload == MaelstromWorkload::Kafka;
            log.finish(kafka.then_some(final_polls))?;
        }
        let lin = rec.edn.as_ref().map(|_| LinHistory {
            ops: std::mem::take(&mut rec.lin),
            warnings: Vec::new(),
        });
        MaelstromResult {
            history: rec.history,
            lin,
            router: router_report,
            client_phase: written.length,
            total: Duration::ZERO,
            nemesis_log,
            divergence: None,
            ops: config
                .workload
                .records_bodies()
                .then(|| (std::mem::take(&mut rec.ops), final_polls)),
            settle: None,
            series: summary,
            dropped: totals.dropped,
            writers_peak: totals.writers_peak,
        }
    };
    let mut garbage = adapter.take_garbage();
    result.router.findings_total += garbage.len() as u64;
    result.router.findings.append(&mut garbage);
    result.total = started.elapsed();
    Ok(result)
}

/// Stops the router and finishes the time series of a run that ends in an
/// error.
async fn return_after_stop(
    commands: &UnboundedSender<Command>,
    task: tokio::task::JoinHandle<RouterReport>,
    series: Option<SeriesRecorder>,
) {
    if let Some(s) = &series {
        let _ = s.finish();
    }
    let _ = stop_router(commands, task).await;
}

/// The writing phase of lin-kv and the body-recording workloads: their own
/// clients under the engine's load shape and nemesis.
async fn run_own_clients(
    adapter: &Arc<MaelstromAdapter>,
    engine_config: &EngineConfig,
    start: Instant,
    series: &Option<SeriesRecorder>,
    recorder: &Arc<Mutex<Recorder>>,
) -> Result<crate::engine::WritingPhase> {
    let config = adapter.config();
    if config.workload.records_bodies() {
        let (adapter2, recorder) = (adapter.clone(), recorder.clone());
        crate::engine::run_clients(
            adapter.clone(),
            engine_config,
            start,
            series.clone(),
            move |id| ops::OpsClient::new(adapter2.clone(), recorder.clone(), id),
        )
        .await
    } else {
        let (adapter2, recorder) = (adapter.clone(), recorder.clone());
        crate::engine::run_clients(
            adapter.clone(),
            engine_config,
            start,
            series.clone(),
            move |id| LinKvClient::new(adapter2.clone(), recorder.clone(), id),
        )
        .await
    }
}

/// One lin-kv client: seeded ops on random nodes, each invocation in
/// `history.edn` before the request is sent.
struct LinKvClient {
    adapter: Arc<MaelstromAdapter>,
    recorder: Arc<Mutex<Recorder>>,
    id: u32,
    rng: ChaCha8Rng,
    seq: u64,
    /// Jepsen's process: the client's id, plus the client count each time
    /// an op of it ended `info` (the op may still be in flight).
    process: u64,
}

impl LinKvClient {
    fn new(adapter: Arc<MaelstromAdapter>, recorder: Arc<Mutex<Recorder>>, id: u32) -> Self {
        LinKvClient {
            rng: ChaCha8Rng::seed_from_u64(derive_seed(adapter.config().seed, 1000 + id as u64)),
            adapter,
            recorder,
            id,
            seq: 0,
            process: id as u64,
        }
    }
}

impl Client for LinKvClient {
    async fn one(&mut self, invoke_at: Instant) -> Result<Outcome> {
        let config = self.adapter.config();
        self.seq += 1;
        let unique = (self.id as u64) << 32 | self.seq;
        let planned = workload::plan(
            config.workload,
            &mut self.rng,
            config.read_ratio,
            unique,
            None,
        );
        let node = self.rng.random_range(0..config.nodes);
        let Some((key, f, input)) = planned.lin.clone() else {
            return Err(Error::Config(format!(
                "{} planned an op without a linearizable view",
                config.workload.name()
            )));
        };
        let name = format!("c{}", self.id);
        let (invoke_ns, call) = {
            let mut rec = self.recorder.lock();
            let invoke_ns = invoke_at.duration_since(rec.start).as_nanos() as u64;
            let call = match rec.edn.as_mut() {
                Some(edn) => edn.event(self.process, "invoke", f, key, &input)?,
                None => 0,
            };
            (invoke_ns, call)
        };
        let reply = self
            .adapter
            .request(name.clone(), node, planned.body.clone())
            .await;
        let latency_ns = u64::try_from(invoke_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let interpreted = self.adapter.interpret(&name, node, &planned, reply);
        let mut rec = self.recorder.lock();
        let kind = match interpreted.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        let shown = if f == LinFn::Read {
            &interpreted.lin_output
        } else {
            &input
        };
        let ret = rec
            .edn
            .as_mut()
            .map(|edn| edn.event(self.process, kind, f, key, shown))
            .transpose()?;
        rec.lin.push(LinOp {
            process: self.process,
            key: Some(key.to_string()),
            f,
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
            self.process += config.clients() as u64;
        }
        let record = OpRecord {
            invoke_ns,
            value: planned.value,
            aux: crate::history::UNKNOWN_AUX,
            latency_ns,
            process: self.id,
            key: key as u32,
            clock_sum: 0,
            slot: 0,
            replica: node as u16,
            f: planned.f,
            outcome: interpreted.outcome,
        };
        rec.record(record, interpreted.read)?;
        Ok(interpreted.outcome)
    }
}
