//! The interpreter: runs the writers against in-process replicas as a
//! deterministic simulation (see [`crate::network`]), streams every op into
//! the history, then heals, lets the network drain, runs anti-entropy until
//! quiescence, reads every replica and probes idempotency.
//!
//! A seed is a promise here: the same configuration gives the same history,
//! byte for byte apart from wall-clock fields (`time_ns`, `convergence_ns`),
//! whatever the machine and the thread count. Each op line carries the tick
//! that made it (`tick`), the logical time the simulation used.

use crate::error::{Error, Result};
use crate::generator::{Generator, Mix, Step};
use crate::history::jsonl::{HistoryWriter, WriterMsg};
use crate::history::{
    FinalRead, Function, Header, History, OpBatch, OpRecord, Outcome, Probe, ProbeKind, Quiescence,
    SCHEMA_VERSION,
};
use crate::load::LoadSpec;
use crate::nemesis::{Nemesis, NemesisSpec, MAX_DELAY_TICKS, RETRANSMIT_TICKS};
use crate::network::{Network, Site, TickCtx};
use crate::report::ConvergenceSteps;
use crate::target::in_process::Replica;
use crate::vload::{Plan, Schedule};
use converge_models::{Crdt, Intent, ModelVisitor, OpMeta, Workload};
use converge_sync::channel::Sender;
use rayon::prelude::*;
use std::path::PathBuf;
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
    /// Threads the replicas run on (the run is the same for any count).
    pub threads: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Whether `--fault` named the model (for the reproduce command).
    pub is_fault: bool,
    /// The target claims linearizability, so it is checked too.
    pub linearizable: bool,
    /// A load shape on virtual time (see [`crate::vload`]): closed with
    /// stages or think time, or open. `None`: every writer makes an op
    /// every tick until `ops`. Its `writers` and `ops` are ignored: this
    /// configuration's own fields hold them (so the shrinker can vary them).
    pub load: Option<LoadSpec>,
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
            load: None,
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
        let timed = self.load.as_ref().is_some_and(|l| l.end().is_some());
        if (self.ops == 0 && !timed) || self.ops > u32::MAX as u64 {
            return bad(format!(
                "--ops must be in 1..={}, got {}",
                u32::MAX,
                self.ops
            ));
        }
        if let Some(load) = &self.load {
            let spec = self.effective_load();
            spec.validate()?;
            if load.max_writers > MAX_WRITERS {
                return bad(format!(
                    "--max-writers must be at most {MAX_WRITERS}, got {}",
                    load.max_writers
                ));
            }
            if spec.peak_writers() > MAX_WRITERS {
                return bad(format!(
                    "a stage asks for {} writers; at most {MAX_WRITERS}",
                    spec.peak_writers()
                ));
            }
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

    /// The load the run follows: the shape, with this configuration's
    /// writers and op budget (`ops` 0: bounded by time only).
    pub fn effective_load(&self) -> LoadSpec {
        let mut spec = self.load.clone().unwrap_or_default();
        spec.writers = self.writers;
        spec.ops = (self.ops > 0).then_some(self.ops);
        spec
    }

    /// The command line that reproduces this run.
    pub fn reproduce(&self) -> String {
        let model = if self.is_fault {
            format!("--fault {}", self.model)
        } else {
            format!("--workload {}", self.workload.name())
        };
        format!(
            "converge run {model} --writers {} --replicas {}{} --keys {} --hot-key-ratio {} --read-ratio {} --remove-ratio {} --max-rounds {} --seed {} --nemesis {}{} --out {}",
            self.writers,
            self.replicas,
            if self.ops > 0 {
                format!(" --ops {}", self.ops)
            } else {
                String::new()
            },
            self.mix.keys,
            self.mix.hot_key_ratio,
            self.mix.read_ratio,
            self.mix.remove_ratio,
            self.max_rounds,
            self.seed,
            self.nemesis.to_spec(),
            self.load
                .as_ref()
                .map_or(String::new(), |l| l.flags(crate::load::FlagClock::Virtual)),
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
    /// How the replicas converged after the heal, in simulation steps
    /// (`None` if they did not reach quiescence).
    pub convergence: Option<ConvergenceSteps>,
    /// Ticks the simulation ran, final phase included.
    pub ticks: u64,
    /// What the load added up to, in virtual time.
    pub load: crate::vload::LoadSummary,
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

/// From this much work in a tick (writer ops plus copies to route), the
/// replicas take their share side by side on the pool: below it, waking
/// the pool costs more than it saves. Either way the run is the same.
const PARALLEL_WORK: usize = 256;
/// A flush after the heal ends within the longest delay plus a
/// retransmission; past this many ticks something is wrong in the engine.
const MAX_FLUSH_TICKS: u64 = 4 * (MAX_DELAY_TICKS + RETRANSMIT_TICKS + 2);

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
    let writer = HistoryWriter::start(&config.out.join("history.jsonl"), header)?;
    let start = Instant::now();
    // `simulate` owns the only other sender and drops it on every path, so
    // the history on disk is complete up to a failure, whatever happened.
    let outcome = simulate::<M>(config, writer.sender(), start);
    let history = writer.finish()?;
    let mut result = outcome?;
    result.history = history;
    result.total = start.elapsed();
    result.rss_start_mb = rss_start_mb;
    Ok(result)
}

/// The run as a deterministic simulation in ticks (see [`crate::network`]):
/// in each tick every replica takes the copies due to it and its writers
/// make one op each, interleaved in a fixed order; replicas do so side by
/// side, each with its own random streams, so the thread count cannot
/// change the run. The history gets each tick's ops replica by replica, in
/// the order they ran, once the tick is over: every value a read returns
/// comes from an update of an earlier tick or an earlier op of its own
/// replica in this one, so any prefix of the file (a killed run) holds the
/// sources of every read in it.
fn simulate<M: Crdt>(
    config: &RunConfig,
    sender: Sender<WriterMsg>,
    start: Instant,
) -> Result<RunResult> {
    let replicas = config.replicas as usize;
    let nemesis = Nemesis::new(config.nemesis.clone(), config.seed, replicas);
    let sites = (0..config.replicas)
        .map(|id| Replica::new(id, config.mix.keys, replicas))
        .collect();
    let spec = config.effective_load();
    let mut schedule = Schedule::new(&spec, Some(&config.out))?;
    let mut network = Network::<M>::new(nemesis, sites, (config.ops / 8).max(1));
    if let Some(end) = schedule.last_tick() {
        network.phase_by_ticks(end / 8);
    }
    let mut groups: Vec<Group> = (0..config.replicas)
        .map(|replica| Group {
            replica,
            writers: Vec::new(),
            active: 0,
            acting: Vec::new(),
            listed: false,
            fails: 0,
            clock_len: replicas,
            batch: OpBatch::default(),
            latest_ns: 0,
        })
        .collect();
    // Writer w works on replica w mod replicas; a group holds its writers
    // in id order, so writers 0..n acting are a prefix of every group.
    let mut needed = schedule.writers_needed();
    if config.ops > 0 {
        needed = needed.min(u32::try_from(config.ops).unwrap_or(u32::MAX));
    }
    for w in 0..needed {
        groups[(w % config.replicas as u32) as usize]
            .writers
            .push(Writer {
                process: w,
                generator: Generator::new(config.seed, w, config.workload, config.mix.clone()),
            });
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.max(1))
        .thread_name(|i| format!("replica-{i}"))
        .build()
        .map_err(|e| Error::Target {
            component: "simulation thread pool".into(),
            message: e.to_string(),
        })?;
    let bar = (config.progress && config.ops > 0).then(|| crate::cli::progress::bar(config.ops));
    let mut sim = Sim {
        pool,
        start,
        clock_floor_ns: 0,
        sender,
    };
    let mut completed = 0u64;
    // SIGINT/SIGTERM stops the writers; the final phase still runs (it is
    // in memory and quick), so the ops done so far are judged in full.
    while !crate::interrupt::requested() {
        let Some(plan) = schedule.begin_tick() else {
            break;
        };
        match plan {
            Plan::Prefix(n) => {
                for g in groups.iter_mut() {
                    let r = g.replica as u32;
                    g.listed = false;
                    g.active = if n > r {
                        ((n - r - 1) / config.replicas as u32 + 1) as usize
                    } else {
                        0
                    };
                }
            }
            Plan::List => {
                for g in groups.iter_mut() {
                    g.listed = true;
                    g.acting.clear();
                }
                for &w in schedule.acting() {
                    let g = &mut groups[(w % config.replicas as u32) as usize];
                    g.acting.push(w / config.replicas as u32);
                }
                for g in groups.iter_mut() {
                    g.active = g.acting.len();
                }
            }
        }
        let logged = network.log.len();
        let (made, fails) = sim.tick(&mut network, &mut groups, completed)?;
        for event in &network.log[logged..] {
            schedule.nemesis(event);
        }
        schedule.complete_all(fails);
        schedule.end_tick()?;
        completed += made;
        if let Some(bar) = &bar {
            bar.set_position(completed);
        }
    }
    for g in groups.iter_mut() {
        g.active = 0;
        g.listed = false;
    }
    let load = schedule.finish()?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let write_phase = start.elapsed();
    let write_ticks = network.tick();

    // Final phase: heal, let every copy in flight arrive, then anti-entropy
    // until quiescence. Convergence is timed from the heal, in wall time,
    // ticks, messages and rounds.
    network.heal();
    let healed_at = Instant::now();
    let delivered_at_heal = network.stats().delivered;
    let steps = |network: &Network<M>, rounds| ConvergenceSteps {
        ticks: network.tick() - write_ticks,
        messages: network.stats().delivered - delivered_at_heal,
        rounds,
    };
    let mut converged = network.all_equal().then(|| (0u64, steps(&network, 0)));
    while !network.drained() {
        if network.tick() - write_ticks > MAX_FLUSH_TICKS {
            return Err(Error::Target {
                component: "simulated network".into(),
                message: format!(
                    "{} copies still in flight {MAX_FLUSH_TICKS} ticks after the heal",
                    network.in_flight()
                ),
            });
        }
        sim.tick(&mut network, &mut groups, completed)?;
        if converged.is_none() && network.all_equal() {
            converged = Some((elapsed_ns(healed_at), steps(&network, 0)));
        }
    }
    let mut rounds = 0;
    let mut reached = false;
    // Equal-but-still-changing replicas have not converged: the time counts
    // only if quiescence follows.
    while rounds < config.max_rounds {
        rounds += 1;
        let changed = network.anti_entropy_round();
        if converged.is_none() && network.all_equal() {
            converged = Some((elapsed_ns(healed_at), steps(&network, rounds)));
        }
        if !changed {
            reached = true;
            break;
        }
    }
    if !reached {
        converged = None;
    }
    let sender = &sim.sender;
    let closed = |_| Error::Config("history writer stopped early".into());
    for site in &network.sites {
        for key in 0..config.mix.keys {
            if let Some(value) = site.replica.read(key) {
                sender
                    .send(WriterMsg::Final(FinalRead {
                        replica: site.replica.id,
                        key,
                        value,
                    }))
                    .map_err(closed)?;
            }
        }
    }
    for probe in idempotency_probes(&network) {
        sender.send(WriterMsg::Probe(probe)).map_err(closed)?;
    }
    sender
        .send(WriterMsg::Quiescence(Quiescence {
            reached,
            rounds,
            max_rounds: config.max_rounds,
            convergence_ns: converged.map(|(ns, _)| ns),
        }))
        .map_err(closed)?;
    sender
        .send(WriterMsg::Network(network.stats()))
        .map_err(closed)?;
    Ok(RunResult {
        history: History::default(),
        write_phase,
        total: Duration::ZERO,
        nemesis_log: std::mem::take(&mut network.log),
        rss_start_mb: 0.0,
        convergence: converged.map(|(_, steps)| steps),
        ticks: network.tick(),
        load,
    })
}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What drives the ticks: the pool the replicas share, the wall clock the
/// history's `time_ns` comes from, and the history writer.
struct Sim {
    pool: rayon::ThreadPool,
    start: Instant,
    /// Every op recorded so far completed before this (ns since `start`).
    clock_floor_ns: u64,
    sender: Sender<WriterMsg>,
}

impl Sim {
    /// Runs one tick and records its ops; returns how many it made and
    /// how many of them failed.
    fn tick<M: Crdt>(
        &mut self,
        network: &mut Network<M>,
        groups: &mut [Group],
        completed: u64,
    ) -> Result<(u64, u64)> {
        // Every op of a tick is recorded as invoked when the tick began:
        // after every op of the previous ticks had returned, and before
        // any of this one's did. So the real-time order the history shows
        // is the tick order, which a seed fixes, not the schedule of the
        // threads; an op's latency is still its own measured duration.
        let invoked_ns = elapsed_ns(self.start).max(self.clock_floor_ns + 1);
        let (sites, ctx) = network.begin_tick(completed);
        let work = ctx.work() + groups.iter().map(|g| g.active).sum::<usize>();
        let step = |(site, group): (&mut Site<M>, &mut Group)| {
            site.receive(&ctx);
            group.tick(site, &ctx, invoked_ns);
        };
        if work >= PARALLEL_WORK {
            self.pool.install(|| {
                sites
                    .par_iter_mut()
                    .zip(groups.par_iter_mut())
                    .for_each(step)
            });
        } else {
            sites.iter_mut().zip(groups.iter_mut()).for_each(&step);
        }
        let tick = ctx.tick();
        network.end_tick();
        let mut made = 0;
        let mut fails = 0;
        for group in groups.iter_mut() {
            fails += std::mem::take(&mut group.fails);
            self.clock_floor_ns = self.clock_floor_ns.max(group.latest_ns);
            if group.batch.ops.is_empty() {
                continue;
            }
            made += group.batch.ops.len() as u64;
            let mut batch = OpBatch::with_capacity(group.active, group.clock_len);
            std::mem::swap(&mut batch, &mut group.batch);
            batch.tick = Some(tick);
            self.sender
                .send(WriterMsg::Ops(Box::new(batch)))
                .map_err(|_| Error::Target {
                    component: "history writer".into(),
                    message: "stopped accepting ops".into(),
                })?;
        }
        Ok((made, fails))
    }
}

/// One writer: a logical client bound to one replica, with its own op stream.
struct Writer {
    process: u32,
    generator: Generator,
}

/// The writers of one replica and the ops they made this tick.
struct Group {
    replica: u16,
    /// By id.
    writers: Vec<Writer>,
    /// Writers acting this tick: the first `active` (a prefix), or those
    /// `acting` lists when `listed`.
    active: usize,
    acting: Vec<u32>,
    listed: bool,
    /// Ops that failed this tick.
    fails: u64,
    /// Entries of an update's clock (one per replica).
    clock_len: usize,
    batch: OpBatch,
    /// Latest completion recorded this tick, ns since the run started.
    latest_ns: u64,
}

impl Group {
    /// Each writer with ops left makes one op on `site`, in id order; the
    /// copies the site gathered are applied spread evenly between them.
    fn tick<M: Crdt>(&mut self, site: &mut Site<M>, ctx: &TickCtx<'_, M>, invoked_ns: u64) {
        let ready = site.ready();
        let n = self.active;
        for i in 0..n {
            site.deliver_until(ctx, ready * (i + 1) / (n + 1));
            let began = Instant::now();
            let w = if self.listed {
                self.acting[i] as usize
            } else {
                i
            };
            let writer = &mut self.writers[w];
            let mut record = OpRecord {
                invoke_ns: invoked_ns,
                value: 0,
                aux: 0,
                latency_ns: 0,
                process: writer.process,
                key: 0,
                clock_sum: 0,
                slot: 0,
                replica: self.replica,
                f: Function::Read,
                outcome: Outcome::Ok,
            };
            match writer.generator.next_step() {
                Step::Read { key } => {
                    record.key = key;
                    let value = site.replica.read(key);
                    record.latency_ns = latency(began);
                    if value.is_none() {
                        record.outcome = Outcome::Fail;
                        self.fails += 1;
                    }
                    self.batch.push(record, None, &[], value);
                }
                Step::Update { key, intent } => {
                    record.key = key;
                    (record.f, record.value, record.slot) = describe(&intent);
                    let applied = site.replica.update(key, &intent);
                    record.latency_ns = latency(began);
                    match applied {
                        Ok(applied) => {
                            let stamp = applied.stamp;
                            site.outbox.push(applied.msg);
                            record.clock_sum = u32::try_from(stamp.clock_sum).unwrap_or(u32::MAX);
                            let mut observed = Vec::new();
                            match stamp.meta {
                                OpMeta::None => {}
                                OpMeta::Dot(d) => record.aux = d.counter,
                                OpMeta::Timestamp(ts) => record.aux = ts,
                                OpMeta::Observed(dots) => observed = dots,
                            }
                            self.batch.push(record, Some(&stamp.clock), &observed, None);
                        }
                        Err(_) => {
                            record.outcome = Outcome::Fail;
                            self.fails += 1;
                            self.batch.push(record, None, &[], None);
                        }
                    }
                }
            }
            self.latest_ns = self
                .latest_ns
                .max(invoked_ns.saturating_add(record.latency_ns));
        }
        site.deliver_until(ctx, ready);
    }
}

fn latency(began: Instant) -> u64 {
    u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX)
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
fn idempotency_probes<M: Crdt>(network: &Network<M>) -> Vec<Probe> {
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
    for replica in network.sites.iter().map(|s| &s.replica) {
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
