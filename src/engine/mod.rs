//! The one wall-clock engine. A target is an [`Adapter`]; this module does
//! everything else, the same way for every adapter:
//!
//! - the **generator** ([`crate::generator::Generator`]): what each writer
//!   does next, seeded per writer, the same op stream whatever the target;
//! - the **scheduler** ([`scheduler`]): the load shape of [`LoadSpec`]:
//!   closed-model writers ramping with the stages plus think time, or
//!   open-model arrivals handed to a pool of writers that grows up to
//!   `max_writers` (arrivals finding none free are dropped and counted;
//!   latency runs from the intended start). The run ends at its op budget,
//!   shared by every writer as it goes, or at its duration, whichever first;
//! - the **nemesis schedule**: phases of [`Adapter::nemesis_phase`], faults
//!   injected in odd phases and healed in even ones, healed for good before
//!   the final phase;
//! - the **final phase**: heal, poll every key on every replica under the
//!   shared settle rule ([`crate::target::settle`]), record the final reads,
//!   run the idempotency probes;
//! - the **history** (`history.jsonl`, each invocation on disk before the
//!   op is sent) and the **time series** (`timeseries.jsonl`, through
//!   [`SeriesRecorder`]).

pub mod scheduler;
pub mod writer;

use crate::error::{Error, Result};
use crate::generator::{derive_seed, Mix};
use crate::history::jsonl::{HistoryWriter, WriterMsg};
use crate::history::{FinalRead, Header, History};
use crate::load::LoadSpec;
use crate::series::{SeriesHeader, SeriesRecorder, SeriesSummary};
use crate::target::settle::{Reads, SettleReport, SettleRule, Settler};
use crate::target::Adapter;
use converge_models::{Value, Workload};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the engine needs besides the adapter.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The load shape (and the run's op and time bounds).
    pub load: LoadSpec,
    /// Datatype the generator plans ops for.
    pub workload: Workload,
    /// Keys, hot-key ratio, read and remove ratios.
    pub mix: Mix,
    /// Seed of the generator and the nemesis.
    pub seed: u64,
    /// When the final reads have converged, diverged, or are still changing.
    pub settle: SettleRule,
    /// Run folder (`history.jsonl`, `timeseries.jsonl`).
    pub out: PathBuf,
    /// The history's header.
    pub header: Header,
    /// Where the target's memory and CPU are read from when the user named
    /// it (`--target-pid`, `--target-cgroup`); `None`: the process trees
    /// the adapter started, if any.
    pub probe: Option<crate::series::TargetProbe>,
}

/// Tells the time series where the target is measured now.
fn measure_target<A: Adapter>(series: &SeriesRecorder, config: &EngineConfig, adapter: Option<&A>) {
    match (&config.probe, adapter) {
        (Some(probe), _) => series.set_target(probe.clone()),
        (None, Some(adapter)) => series.set_target_roots(adapter.pids()),
        (None, None) => {}
    }
}

/// What the engine produced.
#[derive(Debug)]
pub struct EngineOutcome {
    /// The history (also on disk).
    pub history: History,
    /// Length of the writing phase.
    pub write_phase: Duration,
    /// Nemesis actions, in order, each with its time.
    pub nemesis_log: Vec<String>,
    /// What the final phase decided (`None`: interrupted before it).
    pub settle: Option<SettleReport>,
    /// The time series' totals (`None` when it could not be written).
    pub series: Option<SeriesSummary>,
    /// Ops planned (started) over all writers.
    pub started: u64,
    /// Open model: arrivals that found no free writer.
    pub dropped: u64,
    /// Most writers that existed at once.
    pub writers_peak: u32,
}

/// The flags that reproduce a load shape on the wall-clock engine, each
/// with a leading space: [`LoadSpec::flags`] on [`crate::load::FlagClock::Wall`] (the
/// simulated targets write theirs on virtual time with the same function).
pub fn load_flags(load: &LoadSpec) -> String {
    load.flags(crate::load::FlagClock::Wall)
}

/// Starts the run's time series (`timeseries.jsonl` in the run folder),
/// measuring the target as `config` says. A target started before the
/// engine runs starts it first, so its start-up is in the first rows;
/// `None` (with a warning) when the file cannot be written: the run goes on.
pub fn start_series<A: Adapter>(
    config: &EngineConfig,
    adapter: Option<&A>,
) -> Option<SeriesRecorder> {
    let series = SeriesRecorder::start(
        &config.out,
        SeriesHeader {
            timeseries: 1,
            interval_s: 1.0,
            clock: "wall".into(),
            load: config.load.describe(),
        },
    )
    .map_err(|e| {
        tracing::warn!("no time series: {e}");
        e
    })
    .ok();
    if let Some(s) = &series {
        measure_target(s, config, adapter);
    }
    series
}

/// Runs `adapter` under `config` on the current tokio runtime: writing
/// phase, final phase, history and time series. `start` is the run's time
/// origin (the adapter's clock too); `series` is the one
/// [`start_series`] started, or `None` to start it now. A configuration
/// mistake the adapter reports ends the run with that error once the
/// history is on disk.
pub async fn run<A: Adapter>(
    adapter: Arc<A>,
    config: &EngineConfig,
    start: Instant,
    series: Option<SeriesRecorder>,
) -> Result<EngineOutcome> {
    config.load.validate()?;
    std::fs::create_dir_all(&config.out).map_err(|e| Error::io(&config.out, e))?;
    let history = HistoryWriter::start(&config.out.join("history.jsonl"), config.header.clone())?;
    let series = series.or_else(|| start_series(config, Some(adapter.as_ref())));
    let make = {
        let (adapter, config, sender) = (adapter.clone(), config.clone(), history.sender());
        move |id| writer::CrdtWriter::new(adapter.clone(), &config, sender.clone(), start, id)
    };
    let written = writing_phase(adapter.clone(), config, start, series.clone(), make).await;
    // A run that failed or already shows a configuration mistake does not
    // wait for the settle limit: it ends with the error below.
    let settled = if written.totals.is_err() || adapter.mistake().is_some() {
        None
    } else {
        final_phase(adapter.as_ref(), config, &history).await
    };
    if let Some(stats) = adapter.network().await {
        let _ = history.sender().send(WriterMsg::Network(stats));
    }
    let series_summary = series.as_ref().and_then(|s| s.finish().ok());
    let mistake = adapter.mistake();
    let history = history.finish()?;
    let totals = written.totals?;
    if let Some(e) = mistake {
        return Err(e);
    }
    Ok(EngineOutcome {
        history,
        write_phase: written.length,
        nemesis_log: written.nemesis_log,
        settle: settled,
        series: series_summary,
        started: totals.started,
        dropped: totals.dropped,
        writers_peak: totals.writers_peak,
    })
}

/// What the writing phase of [`run_clients`] produced; the caller runs its
/// own final phase and finishes `series`.
#[derive(Debug)]
pub struct WritingPhase {
    /// Ops started, arrivals dropped, most writers at once; an error a
    /// client returned (the history could not be written).
    pub totals: Result<scheduler::Totals>,
    /// Its length.
    pub length: Duration,
    /// Nemesis actions, in order, each with its time; the heal for good last.
    pub nemesis_log: Vec<String>,
}

/// The writing phase for clients a target brings itself (see
/// [`scheduler::Client`]): the load shape, the shared op budget, the nemesis
/// schedule, the heal for good and the time series, as [`run`] does them.
/// The clients record their own history; the caller runs the final phase.
pub async fn run_clients<A: Adapter, C: scheduler::Client>(
    adapter: Arc<A>,
    config: &EngineConfig,
    start: Instant,
    series: Option<SeriesRecorder>,
    make: impl Fn(u32) -> C + Send + Sync + 'static,
) -> Result<WritingPhase> {
    config.load.validate()?;
    Ok(writing_phase(adapter, config, start, series, make).await)
}

/// Writers under the load shape while the nemesis runs and the adapter
/// replicates in the background; then every fault healed for good.
async fn writing_phase<A: Adapter, C: scheduler::Client>(
    adapter: Arc<A>,
    config: &EngineConfig,
    start: Instant,
    series: Option<SeriesRecorder>,
    make: impl Fn(u32) -> C + Send + Sync + 'static,
) -> WritingPhase {
    let write_start = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = {
        let adapter = adapter.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move { adapter.background(stop).await })
    };
    let nemesis = tokio::spawn(nemesis_schedule(
        adapter.clone(),
        config.load.end(),
        config.seed,
        start,
        series.clone(),
        config.probe.is_some(),
        stop_rx,
    ));
    let totals = scheduler::drive(adapter.clone(), config, start, series.clone(), make).await;
    let length = write_start.elapsed();
    let _ = stop_tx.send(true);
    let mut nemesis_log = nemesis.await.unwrap_or_default();
    let _ = background.await;
    for event in adapter.heal(true).await {
        note(&mut nemesis_log, series.as_ref(), start, event);
    }
    WritingPhase {
        totals,
        length,
        nemesis_log,
    }
}

/// Logs a nemesis event with its time and puts it in the time series.
fn note(log: &mut Vec<String>, series: Option<&SeriesRecorder>, start: Instant, event: String) {
    if let Some(s) = series {
        s.nemesis(&event);
    }
    log.push(format!("{:.1}s {event}", start.elapsed().as_secs_f64()));
}

/// Odd phases inject, even phases heal, until the writers are done.
async fn nemesis_schedule<A: Adapter>(
    adapter: Arc<A>,
    end: Option<Duration>,
    seed: u64,
    start: Instant,
    series: Option<SeriesRecorder>,
    user_probe: bool,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, 2));
    let mut log = Vec::new();
    let phase = adapter.nemesis_phase(end).max(Duration::from_millis(1));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(phase) => {}
            _ = done.changed() => break,
        }
        if *done.borrow() {
            break;
        }
        n += 1;
        let events = if n % 2 == 1 {
            adapter.inject(&mut rng).await
        } else {
            adapter.heal(false).await
        };
        let changed = !events.is_empty();
        for event in events {
            note(&mut log, series.as_ref(), start, event);
        }
        if let (true, false, Some(s)) = (changed, user_probe, &series) {
            // A restart changes the target's process tree (an adapter
            // that tells the series itself returns none).
            let pids = adapter.pids();
            if !pids.is_empty() {
                s.set_target_roots(pids);
            }
        }
    }
    log
}

/// Polls every key on every replica until the settle rule decides; writes
/// the final reads, the probes and the quiescence to the history. `None`
/// when the adapter reports a mistake meanwhile.
async fn final_phase<A: Adapter>(
    adapter: &A,
    config: &EngineConfig,
    history: &HistoryWriter,
) -> Option<SettleReport> {
    let healed = Instant::now();
    let mut settler = Settler::new(config.settle);
    let replicas = adapter.replicas();
    let keys = config.mix.keys.max(1);
    let settled = loop {
        if crate::interrupt::requested() {
            // A stop asked for ends the final phase: no final reads.
            break settler.interrupted(healed.elapsed());
        }
        adapter.before_poll().await;
        let mut reads: Reads<Value> = Vec::with_capacity(replicas);
        for replica in 0..replicas {
            let mut row = Vec::with_capacity(keys as usize);
            for key in 0..keys {
                row.push(adapter.read(replica, key).await);
            }
            reads.push(row);
        }
        if adapter.mistake().is_some() {
            return None;
        }
        if let Some(settled) = settler.observe(healed.elapsed(), reads) {
            break settled;
        }
        tokio::time::sleep(config.settle.poll_interval()).await;
    };
    let sender = history.sender();
    for (replica, row) in settled.reads.iter().enumerate() {
        for (key, value) in row.iter().enumerate() {
            if let Some(value) = value {
                let _ = sender.send(WriterMsg::Final(FinalRead {
                    replica: replica as u16,
                    key: key as u32,
                    value: value.clone(),
                }));
            }
        }
    }
    if !crate::interrupt::requested() {
        for probe in adapter.probes().await {
            let _ = sender.send(WriterMsg::Probe(probe));
        }
    }
    let _ = sender.send(WriterMsg::Quiescence(settled.report.quiescence()));
    Some(settled.report)
}
