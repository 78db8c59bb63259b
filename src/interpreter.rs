//! The interpreter: runs the writers as tokio tasks against in-process
//! replicas, drives the network on its own thread, streams every op into the
//! history, then heals, polls anti-entropy until quiescence, reads every
//! replica and probes idempotency.

use crate::error::{Error, Result};
use crate::generator::{Generator, Mix, Step};
use crate::history::jsonl::{HistoryWriter, WriterMsg};
use crate::history::{
    FinalRead, Function, Header, History, OpBatch, OpRecord, Outcome, Probe, ProbeKind, Quiescence,
    SCHEMA_VERSION,
};
use crate::nemesis::{Nemesis, NemesisSpec};
use crate::network::{all_equal, anti_entropy_round, Cluster, Network};
use crate::target::in_process::Replica;
use converge_models::{Crdt, Intent, ModelVisitor, OpMeta, Workload};
use converge_sync::channel::Sender;
use converge_sync::{Backlog, Progress, ReplicaCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a run needs. Built by the CLI; the shrinker varies it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// Catalog name of the model (a workload's reference, or a fault).
    pub model: String,
    /// Workload of that model.
    pub workload: Workload,
    /// Concurrent writers (tokio tasks).
    pub writers: u32,
    /// Replicas.
    pub replicas: u16,
    /// Total operations over all writers.
    pub ops: u64,
    /// Seed for every random choice.
    pub seed: u64,
    /// Faults.
    pub nemesis: NemesisSpec,
    /// Op mix.
    pub mix: Mix,
    /// Output directory.
    pub out: PathBuf,
    /// Bound on final anti-entropy rounds before the verdict is `unknown`.
    pub max_rounds: u32,
    /// Tokio worker threads.
    pub threads: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Whether `--fault` named the model (for the reproduce command).
    pub is_fault: bool,
    /// The target claims linearizability, so it is checked too.
    pub linearizable: bool,
}

/// Default number of concurrent writers.
pub const DEFAULT_WRITERS: u32 = 1000;
/// Default number of replicas.
pub const DEFAULT_REPLICAS: u16 = 5;
/// Default total operations.
pub const DEFAULT_OPS: u64 = 100_000;
/// Default bound on final anti-entropy rounds.
pub const DEFAULT_MAX_ROUNDS: u32 = 50;

/// Bounds checked before a run starts.
pub const MAX_WRITERS: u32 = 1_000_000;
/// See [`MAX_WRITERS`].
pub const MAX_REPLICAS: u16 = 64;
/// See [`MAX_WRITERS`].
pub const MAX_KEYS: u32 = 1_000_000;

impl RunConfig {
    /// The default run of a catalog model (reference or fault): 1000
    /// writers, 5 replicas, 100,000 ops, the default nemesis and op mix.
    pub fn for_model(model: &str, seed: u64, out: PathBuf) -> Result<Self> {
        let info = converge_models::model_info(model)
            .ok_or_else(|| Error::Config(format!("unknown model '{model}'")))?;
        Ok(RunConfig {
            model: info.name.to_string(),
            workload: info.workload,
            writers: DEFAULT_WRITERS,
            replicas: DEFAULT_REPLICAS,
            ops: DEFAULT_OPS,
            seed,
            nemesis: NemesisSpec::parse("default")?,
            mix: Mix::default(),
            out,
            max_rounds: DEFAULT_MAX_ROUNDS,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            progress: false,
            is_fault: info.faulty,
            linearizable: false,
        })
    }

    /// Rejects values out of range with a message naming the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.linearizable && crate::checker::linearizable::model_for(self.workload).is_none() {
            return bad(format!(
                "--linearizable: workload {} has no sequential model (use a counter, g-set or register)",
                self.workload.name()
            ));
        }
        if self.writers == 0 || self.writers > MAX_WRITERS {
            return bad(format!(
                "--writers must be in 1..={MAX_WRITERS}, got {}",
                self.writers
            ));
        }
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return bad(format!(
                "--replicas must be in 1..={MAX_REPLICAS}, got {}",
                self.replicas
            ));
        }
        if self.ops == 0 || self.ops > u32::MAX as u64 {
            return bad(format!(
                "--ops must be in 1..={}, got {}",
                u32::MAX,
                self.ops
            ));
        }
        if self.mix.keys == 0 || self.mix.keys > MAX_KEYS {
            return bad(format!(
                "--keys must be in 1..={MAX_KEYS}, got {}",
                self.mix.keys
            ));
        }
        for (flag, v) in [
            ("--hot-key-ratio", self.mix.hot_key_ratio),
            ("--read-ratio", self.mix.read_ratio),
            ("--remove-ratio", self.mix.remove_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) || v.is_nan() {
                return bad(format!("{flag} must be in 0..=1, got {v}"));
            }
        }
        if self.max_rounds == 0 {
            return bad("--max-rounds must be at least 1".into());
        }
        Ok(())
    }

    /// The command line that reproduces this run.
    pub fn reproduce(&self) -> String {
        let model = if self.is_fault {
            format!("--fault {}", self.model)
        } else {
            format!("--workload {}", self.workload.name())
        };
        format!(
            "converge run {model} --writers {} --replicas {} --ops {} --keys {} --hot-key-ratio {} --read-ratio {} --remove-ratio {} --max-rounds {} --seed {} --nemesis {} --out {}",
            self.writers,
            self.replicas,
            self.ops,
            self.mix.keys,
            self.mix.hot_key_ratio,
            self.mix.read_ratio,
            self.mix.remove_ratio,
            self.max_rounds,
            self.seed,
            self.nemesis.to_spec(),
            shell_quote(&self.out.display().to_string())
        ) + if self.linearizable { " --linearizable" } else { "" }
    }
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// What a run produced besides the history on disk.
#[derive(Debug)]
pub struct RunResult {
    /// The history (also in `<out>/history.jsonl`).
    pub history: History,
    /// Wall time of the writing phase.
    pub write_phase: Duration,
    /// Wall time of the whole run.
    pub total: Duration,
    /// What the nemesis did.
    pub nemesis_log: Vec<String>,
    /// Resident memory before the run, MB.
    pub rss_start_mb: f64,
}

impl RunResult {
    /// The live figures for the report; takes the nemesis log.
    pub fn live_figures(&mut self) -> crate::report::LiveFigures {
        crate::report::LiveFigures {
            write_phase_s: self.write_phase.as_secs_f64(),
            duration_s: self.total.as_secs_f64(),
            rss_start_mb: self.rss_start_mb,
            nemesis_log: std::mem::take(&mut self.nemesis_log),
        }
    }
}

/// Below this many new updates per tick the network thread naps.
const NETWORK_BATCH: usize = 1024;
/// Writers yield to the other writers every this many ops: often enough
/// that 1000 writers interleave finely, seldom enough that the scheduler
/// does not cost more than the ops.
const YIELD_EVERY: u64 = 4;
/// Writers report progress every this many ops (the nemesis phases on it).
const PROGRESS_EVERY: u64 = 16;
/// Ops buffered by all writers together before they reach the history
/// writer; each writer's batch is this divided by the writer count, within
/// [`MIN_BATCH`, `BATCH`], so 10,000 writers do not hold 10,000 full batches.
const BUFFERED_OPS: usize = 1 << 16;
/// Smallest per-writer history batch.
const MIN_BATCH: usize = 4;
/// Largest per-writer history batch.
const BATCH: usize = 256;
/// Writers pause while this many update copies per replica are undelivered.
const BACKLOG_PER_REPLICA: u64 = 1 << 16;

/// Runs the configured model. The history is on disk before this returns.
pub fn run(config: &RunConfig) -> Result<RunResult> {
    config.validate()?;
    std::fs::create_dir_all(&config.out).map_err(|e| Error::io(&config.out, e))?;
    converge_models::visit_model(&config.model, Runner { config })
        .ok_or_else(|| Error::Config(format!("unknown model '{}'", config.model)))?
}

struct Runner<'a> {
    config: &'a RunConfig,
}

impl ModelVisitor for Runner<'_> {
    type Output = Result<RunResult>;
    fn visit<M: Crdt>(self) -> Result<RunResult> {
        run_model::<M>(self.config)
    }
}

fn run_model<M: Crdt>(config: &RunConfig) -> Result<RunResult> {
    let rss_start_mb = crate::metrics::rss_mb().map_or(0.0, |r| r.0);
    let header = Header {
        schema_version: SCHEMA_VERSION,
        seed: config.seed,
        workload: config.workload,
        model: config.model.clone(),
        target: "in-process".into(),
        linearizable: config.linearizable,
        writers: config.writers,
        replicas: config.replicas,
        keys: config.mix.keys,
        ops: config.ops,
        nemesis: config.nemesis.to_spec(),
        reproduce: config.reproduce(),
    };
    let history_path = config.out.join("history.jsonl");
    let writer = HistoryWriter::start(&history_path, header)?;
    let replicas = config.replicas as usize;
    let cluster: Cluster<M> = Arc::new(
        (0..config.replicas)
            .map(|id| ReplicaCell::new(Replica::new(id, config.mix.keys, replicas)))
            .collect(),
    );
    let start = Instant::now();
    let progress = Arc::new(Progress::new());
    let backlog = Arc::new(Backlog::new());

    // The network thread.
    let nemesis = Nemesis::new(config.nemesis.clone(), config.seed, replicas);
    let ops_per_phase = (config.ops / 8).max(1);
    let mut network = Network::new(nemesis, replicas, ops_per_phase, backlog.clone());
    let net_thread = {
        let cluster = cluster.clone();
        let progress = progress.clone();
        std::thread::Builder::new()
            .name("network".into())
            .spawn(move || {
                // Small batches cost a core in overhead; let them grow while
                // the writers have the CPU.
                while !progress.finished() {
                    if network.tick(&cluster, progress.completed()) < NETWORK_BATCH {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                network
            })
            .map_err(|e| Error::io("network thread", e))?
    };

    let bar = config
        .progress
        .then(|| crate::cli::progress::bar(config.ops));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads.max(1))
        .enable_time()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    let write_result: Result<()> = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        let per_writer = config.ops / config.writers as u64;
        let extra = config.ops % config.writers as u64;
        for w in 0..config.writers {
            let ops = per_writer + u64::from((w as u64) < extra);
            if ops == 0 {
                continue;
            }
            let ctx = WriterCtx {
                cluster: cluster.clone(),
                history: writer.sender(),
                progress: progress.clone(),
                backlog: backlog.clone(),
                backlog_limit: BACKLOG_PER_REPLICA * replicas as u64,
                batch_size: (BUFFERED_OPS / config.writers as usize).clamp(MIN_BATCH, BATCH),
                clock_len: replicas,
                start,
                replica: (w % config.replicas as u32) as u16,
                process: w,
                ops,
                generator: Generator::new(config.seed, w, config.workload, config.mix.clone()),
            };
            tasks.spawn(writer_task::<M>(ctx));
        }
        let ticker = bar.clone().map(|bar| {
            let progress = progress.clone();
            tokio::spawn(async move {
                loop {
                    bar.set_position(progress.completed());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        });
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => {
                    result = Err(Error::Target {
                        component: "writer task".into(),
                        message: e.to_string(),
                    })
                }
            }
        }
        if let Some(t) = ticker {
            t.abort();
        }
        result
    });
    drop(runtime);
    let write_phase = start.elapsed();
    progress.finish();
    let mut network = net_thread.join().map_err(|_| Error::Target {
        component: "network thread".into(),
        message: "panicked".into(),
    })?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let sender = writer.sender();
    if let Err(e) = write_result {
        // Keep what was recorded: close the history before reporting.
        drop(sender);
        let _ = writer.finish();
        return Err(e);
    }

    // Final phase: heal, drain, anti-entropy until quiescence.
    network.heal_and_flush(&cluster);
    let healed_at = Instant::now();
    let mut convergence_ns = all_equal(&cluster).then_some(0u64);
    let mut rounds = 0;
    let mut reached = false;
    // Equal-but-still-changing replicas have not converged: the time counts
    // only if quiescence follows.
    while rounds < config.max_rounds {
        rounds += 1;
        let changed = anti_entropy_round(&cluster);
        if convergence_ns.is_none() && all_equal(&cluster) {
            convergence_ns = Some(healed_at.elapsed().as_nanos() as u64);
        }
        if !changed {
            reached = true;
            break;
        }
    }
    if !reached {
        convergence_ns = None;
    }
    let closed = |_| Error::Config("history writer stopped early".into());
    for (id, replica) in cluster.iter().enumerate() {
        let replica = replica.lock();
        for key in 0..config.mix.keys {
            if let Some(value) = replica.read(key) {
                sender
                    .send(WriterMsg::Final(FinalRead {
                        replica: id as u16,
                        key,
                        value,
                    }))
                    .map_err(closed)?;
            }
        }
    }
    for probe in idempotency_probes(&cluster, &network) {
        sender.send(WriterMsg::Probe(probe)).map_err(closed)?;
    }
    sender
        .send(WriterMsg::Quiescence(Quiescence {
            reached,
            rounds,
            max_rounds: config.max_rounds,
            convergence_ns,
        }))
        .map_err(closed)?;
    sender
        .send(WriterMsg::Network(network.stats))
        .map_err(closed)?;
    drop(sender);
    let history = writer.finish()?;
    Ok(RunResult {
        history,
        write_phase,
        total: start.elapsed(),
        nemesis_log: std::mem::take(&mut network.log),
        rss_start_mb,
    })
}

struct WriterCtx<M: Crdt> {
    cluster: Cluster<M>,
    history: Sender<WriterMsg>,
    progress: Arc<Progress>,
    backlog: Arc<Backlog>,
    backlog_limit: u64,
    batch_size: usize,
    /// Entries of an update's clock (one per replica).
    clock_len: usize,
    start: Instant,
    replica: u16,
    process: u32,
    ops: u64,
    generator: Generator,
}

async fn writer_task<M: Crdt>(mut ctx: WriterCtx<M>) -> Result<()> {
    let mut batch = OpBatch::with_capacity(ctx.batch_size, ctx.clock_len);
    let mut unreported = 0u64;
    let send = |history: &Sender<WriterMsg>, batch: OpBatch| {
        history
            .send(WriterMsg::Ops(Box::new(batch)))
            .map_err(|_| Error::Target {
                component: "history writer".into(),
                message: "stopped accepting ops".into(),
            })
    };
    for done in 1..=ctx.ops {
        // The backlog is written by every thread: reading it once per
        // progress report instead of once per op spares a cache miss per op
        // and lets the backlog overshoot by at most that many ops a writer.
        while unreported == 0 && ctx.backlog.get() > ctx.backlog_limit {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let step = ctx.generator.next_step();
        let invoke = ctx.start.elapsed();
        let mut record = OpRecord {
            invoke_ns: invoke.as_nanos() as u64,
            value: 0,
            aux: 0,
            latency_ns: 0,
            process: ctx.process,
            key: 0,
            clock_sum: 0,
            slot: 0,
            replica: ctx.replica,
            f: Function::Read,
            outcome: Outcome::Ok,
        };
        match step {
            Step::Read { key } => {
                record.key = key;
                let value = ctx.cluster[ctx.replica as usize].lock().read(key);
                record.latency_ns = latency_since(ctx.start, invoke);
                if value.is_none() {
                    record.outcome = Outcome::Fail;
                }
                batch.push(record, None, &[], value);
            }
            Step::Update { key, intent } => {
                record.key = key;
                (record.f, record.value, record.slot) = describe(&intent);
                let applied = ctx.cluster[ctx.replica as usize].originate(&ctx.backlog, |r| {
                    r.update(key, &intent).map(|a| (a.msg, a.stamp))
                });
                record.latency_ns = latency_since(ctx.start, invoke);
                match applied {
                    Ok(stamp) => {
                        record.clock_sum = u32::try_from(stamp.clock_sum).unwrap_or(u32::MAX);
                        let mut observed = Vec::new();
                        match stamp.meta {
                            OpMeta::None => {}
                            OpMeta::Dot(d) => record.aux = d.counter,
                            OpMeta::Timestamp(ts) => record.aux = ts,
                            OpMeta::Observed(dots) => observed = dots,
                        }
                        batch.push(record, Some(&stamp.clock), &observed, None);
                    }
                    Err(_) => {
                        record.outcome = Outcome::Fail;
                        batch.push(record, None, &[], None);
                    }
                }
            }
        }
        unreported += 1;
        if unreported >= PROGRESS_EVERY {
            ctx.progress.report(unreported);
            unreported = 0;
        }
        if batch.ops.len() >= ctx.batch_size {
            let next = OpBatch::with_capacity(ctx.batch_size, ctx.clock_len);
            send(&ctx.history, std::mem::replace(&mut batch, next))?;
        }
        if done.is_multiple_of(YIELD_EVERY) {
            // SIGINT/SIGTERM: stop sending; the ops done so far are checked.
            if crate::interrupt::requested() {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    ctx.progress.report(unreported);
    if !batch.ops.is_empty() {
        send(&ctx.history, batch)?;
    }
    Ok(())
}

fn latency_since(start: Instant, invoke: Duration) -> u32 {
    let ns = start.elapsed().saturating_sub(invoke).as_nanos();
    u32::try_from(ns).unwrap_or(u32::MAX)
}

/// How an intent is written in the history: (function, value, field).
pub fn describe(intent: &Intent) -> (Function, i64, u32) {
    match *intent {
        Intent::Increment(d) => (Function::Increment, d, 0),
        Intent::Add(e) => (Function::Add, e as i64, 0),
        Intent::Remove(e) => (Function::Remove, e as i64, 0),
        Intent::Write(v) => (Function::Write, v as i64, 0),
        Intent::Put { field, value } => (Function::Put, value as i64, field),
        Intent::Delete { field } => (Function::Delete, 0, field),
    }
}

/// Re-merges every final state with itself and with earlier snapshots, and
/// re-delivers sampled ops; records whether anything changed.
fn idempotency_probes<M: Crdt>(cluster: &Cluster<M>, network: &Network<M>) -> Vec<Probe> {
    let mut probes = Vec::new();
    let mut record = |probe, replica, key, before: &M, after: &M| {
        let changed = before != after;
        probes.push(Probe {
            probe,
            replica,
            key,
            state_changed: changed,
            before: changed.then(|| before.read()),
            after: changed.then(|| after.read()),
        });
    };
    // Earlier states must be idempotent too: a final state can hide a
    // non-idempotent merge (a saturated sum looks stable).
    for snapshot in &network.snapshots {
        for (key, state) in snapshot.keys.iter().enumerate() {
            let mut merged = state.model.clone();
            merged.merge(&state.model);
            record(
                ProbeKind::SelfMerge,
                snapshot.id,
                key as u32,
                &state.model,
                &merged,
            );
        }
    }
    for replica in cluster.iter() {
        let replica = replica.lock();
        for (key, state) in replica.keys.iter().enumerate() {
            let mut merged = state.model.clone();
            merged.merge(&state.model);
            record(
                ProbeKind::SelfMerge,
                replica.id,
                key as u32,
                &state.model,
                &merged,
            );
            for snapshot in &network.snapshots {
                let mut merged = state.model.clone();
                merged.merge(&snapshot.keys[key].model);
                record(
                    ProbeKind::StaleMerge,
                    replica.id,
                    key as u32,
                    &state.model,
                    &merged,
                );
            }
        }
        for msg in &network.sampled {
            if let Some(state) = replica.keys.get(msg.key as usize) {
                let mut again = state.model.clone();
                again.apply(&msg.op);
                record(
                    ProbeKind::Redeliver,
                    replica.id,
                    msg.key,
                    &state.model,
                    &again,
                );
            }
        }
    }
    probes
}
