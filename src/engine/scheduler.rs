//! The scheduler: writers under a load shape ([`LoadSpec`]).
//!
//! Closed model: `peak_writers` writer tasks exist; writer `w` works while
//! `w < writers_at(t)` and idles otherwise, so the active count follows the
//! stages; each pauses `think_time` between ops. Open model: a dispatcher
//! sleeps until each arrival's intended start and hands it to an idle
//! writer, starting a new one while the pool is below `max_writers`; an
//! arrival that finds none is dropped and counted. Latency is measured from
//! the intended start, so a stalled target shows in the percentiles.
//!
//! Both end at the op budget (claimed op by op from one counter, so every
//! writer keeps writing until the end) or at the run's end, whichever first.

use super::EngineConfig;
use crate::error::Result;
use crate::generator::{Generator, Step};
use crate::history::jsonl::{record_invoke, WriterMsg};
use crate::history::{Function, OpRecord};
use crate::load::LoadModel;
use crate::series::{Completion, SeriesRecorder};
use crate::target::{Adapter, Op};
use converge_sync::channel::Sender;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often idle closed-model writers look at the load shape again, and
/// the controller updates the time series' writers and stage.
const TICK: Duration = Duration::from_millis(10);

/// What the writing phase added up to.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// Ops started.
    pub started: u64,
    /// Arrivals dropped (open model).
    pub dropped: u64,
    /// Most writers at once.
    pub writers_peak: u32,
}

/// State every writer shares.
struct Run<A: Adapter> {
    adapter: Arc<A>,
    config: EngineConfig,
    start: Instant,
    /// When writing stops at the latest.
    deadline: Option<Instant>,
    history: Sender<WriterMsg>,
    series: Option<SeriesRecorder>,
    claimed: AtomicU64,
    over: AtomicBool,
    /// Writers working now (closed) or busy (open).
    active: AtomicU64,
    error: Mutex<Option<crate::error::Error>>,
}

impl<A: Adapter> Run<A> {
    /// Whether writing is over: budget spent, deadline passed, a stop asked
    /// for, an error, or the adapter halted.
    fn finished(&self) -> bool {
        if self.over.load(Ordering::Relaxed) {
            return true;
        }
        let done = self.deadline.is_some_and(|d| Instant::now() >= d)
            || crate::interrupt::requested()
            || self.adapter.halted()
            || self
                .config
                .load
                .ops
                .is_some_and(|ops| self.claimed.load(Ordering::Relaxed) >= ops);
        if done {
            self.over.store(true, Ordering::Relaxed);
        }
        done
    }

    /// Takes one op from the shared budget.
    fn claim(&self) -> bool {
        let n = self.claimed.fetch_add(1, Ordering::Relaxed);
        match self.config.load.ops {
            Some(ops) if n >= ops => {
                self.claimed.fetch_sub(1, Ordering::Relaxed);
                self.over.store(true, Ordering::Relaxed);
                false
            }
            _ => true,
        }
    }

    fn fail(&self, e: crate::error::Error) {
        self.error.lock().get_or_insert(e);
        self.over.store(true, Ordering::Relaxed);
    }
}

/// One writer: its generator, the adapter's state for it, its last return.
struct Writer<A: Adapter> {
    id: u32,
    seq: u64,
    generator: Generator,
    state: A::Writer,
    rng: rand_chacha::ChaCha8Rng,
    last_done: Instant,
}

impl<A: Adapter> Writer<A> {
    fn new(run: &Run<A>, id: u32) -> Self {
        let c = &run.config;
        Writer {
            id,
            seq: 0,
            generator: Generator::new(c.seed, id, c.workload, c.mix.clone()),
            state: run.adapter.writer(id),
            rng: rand::SeedableRng::seed_from_u64(crate::generator::derive_seed(
                c.seed,
                3_000_000 + id as u64,
            )),
            last_done: run.start,
        }
    }

    /// Plans, records and applies one op. `intended` is the open model's
    /// intended start: the invocation is stamped there (no earlier than
    /// this writer's last return, so a writer's ops never overlap), so
    /// the latency includes the time the op waited for a writer.
    async fn one(&mut self, run: &Run<A>, intended: Option<Instant>) -> Result<()> {
        self.seq += 1;
        let step = self.generator.next_step();
        let replicas = run.adapter.replicas().max(1);
        let replica = if run.adapter.pinned() {
            self.id as usize % replicas
        } else {
            rand::RngExt::random_range(&mut self.rng, 0..replicas)
        };
        let (f, key, value, slot) = match step {
            Step::Read { key } => (Function::Read, key, 0, 0),
            Step::Update { key, intent } => {
                let (f, value, slot) = crate::interpreter::describe(&intent);
                (f, key, value, slot)
            }
        };
        let now = Instant::now();
        let invoke_at = intended.map_or(now, |i| i.max(self.last_done).min(now));
        let invoke_ns = invoke_at.duration_since(run.start).as_nanos() as u64;
        let mut record = OpRecord::invocation(f, self.id, replica as u16, key, value, invoke_ns);
        record.slot = slot;
        let invoked = record_invoke(&run.history, &record).await?;
        if let Some(s) = &run.series {
            s.started();
        }
        let op = Op {
            writer: self.id,
            seq: self.seq,
            replica,
            key,
            f,
            value,
            invoke_ns,
        };
        let applied = run.adapter.apply(&mut self.state, op).await;
        let done = Instant::now();
        self.last_done = done;
        let latency = done.duration_since(invoke_at);
        record.latency_ns = latency.as_nanos().min(u32::MAX as u128) as u32;
        record.outcome = applied.outcome;
        record.aux = applied.aux;
        invoked.complete(&run.history, record, applied.read)?;
        if let Some(s) = &run.series {
            s.completed(
                match applied.outcome {
                    crate::history::Outcome::Ok => Completion::Ok,
                    crate::history::Outcome::Fail => Completion::Fail,
                    crate::history::Outcome::Info => Completion::Info,
                },
                latency,
            );
        }
        Ok(())
    }
}

/// Runs the writing phase under the load shape; returns once every writer
/// has stopped.
pub async fn drive<A: Adapter>(
    adapter: Arc<A>,
    config: &EngineConfig,
    start: Instant,
    history: Sender<WriterMsg>,
    series: Option<SeriesRecorder>,
) -> Result<Totals> {
    let began = Instant::now();
    let run = Arc::new(Run {
        adapter,
        config: config.clone(),
        start,
        deadline: config.load.end().map(|d| began + d),
        history,
        series,
        claimed: AtomicU64::new(0),
        over: AtomicBool::new(false),
        active: AtomicU64::new(0),
        error: Mutex::new(None),
    });
    let controller = tokio::spawn(control(run.clone(), began));
    let mut totals = match config.load.model {
        LoadModel::Closed => closed(run.clone(), began).await,
        LoadModel::Open => open(run.clone(), began).await,
    };
    run.over.store(true, Ordering::Relaxed);
    let _ = controller.await;
    totals.started = run.claimed.load(Ordering::Relaxed);
    if let Some(s) = &run.series {
        s.set_writers(0);
    }
    if let Some(e) = run.error.lock().take() {
        return Err(e);
    }
    Ok(totals)
}

/// Keeps the time series' active writers and stage current.
async fn control<A: Adapter>(run: Arc<Run<A>>, began: Instant) {
    while !run.finished() {
        if let Some(s) = &run.series {
            s.set_stage(run.config.load.stage_at(began.elapsed()));
            s.set_writers(run.active.load(Ordering::Relaxed) as u32);
        }
        tokio::time::sleep(TICK * 10).await;
    }
}

async fn closed<A: Adapter>(run: Arc<Run<A>>, began: Instant) -> Totals {
    let peak = run.config.load.peak_writers().max(1);
    let think = run.config.load.think_time;
    let mut tasks = Vec::with_capacity(peak as usize);
    for id in 0..peak {
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let mut writer: Option<Writer<A>> = None;
            let mut working = false;
            while !run.finished() {
                let wanted = id < run.config.load.writers_at(began.elapsed());
                if wanted != working {
                    working = wanted;
                    if wanted {
                        run.active.fetch_add(1, Ordering::Relaxed);
                    } else {
                        run.active.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                if !wanted {
                    tokio::time::sleep(TICK).await;
                    continue;
                }
                if !run.claim() {
                    break;
                }
                let w = writer.get_or_insert_with(|| Writer::new(&run, id));
                if let Err(e) = w.one(&run, None).await {
                    run.fail(e);
                    break;
                }
                if !think.is_zero() {
                    tokio::time::sleep(think).await;
                }
            }
            if working {
                run.active.fetch_sub(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Totals {
        writers_peak: peak,
        ..Totals::default()
    }
}

async fn open<A: Adapter>(run: Arc<Run<A>>, began: Instant) -> Totals {
    type Idle = Arc<Mutex<Vec<tokio::sync::mpsc::Sender<Instant>>>>;
    let idle: Idle = Arc::new(Mutex::new(Vec::new()));
    let max = run.config.load.max_writers.max(1);
    let mut tasks = Vec::new();
    let mut dropped = 0u64;
    let spawn = |id: u32, tasks: &mut Vec<tokio::task::JoinHandle<()>>| {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Instant>(1);
        let run = run.clone();
        let idle = idle.clone();
        let me = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut writer = Writer::new(&run, id);
            loop {
                // The writer holds its own sender (to rejoin the idle
                // list), so it also looks for the end of the run itself.
                let intended = match tokio::time::timeout(TICK * 10, rx.recv()).await {
                    Ok(Some(intended)) => intended,
                    Ok(None) => break,
                    Err(_) if run.over.load(Ordering::Relaxed) => break,
                    Err(_) => continue,
                };
                run.active.fetch_add(1, Ordering::Relaxed);
                let r = writer.one(&run, Some(intended)).await;
                run.active.fetch_sub(1, Ordering::Relaxed);
                if let Err(e) = r {
                    run.fail(e);
                    break;
                }
                if run.finished() {
                    break;
                }
                idle.lock().push(me.clone());
            }
        }));
        tx
    };
    // Writers allocated up front.
    for id in 0..run.config.load.writers.min(max) {
        let tx = spawn(id, &mut tasks);
        idle.lock().push(tx);
    }
    let mut spawned = tasks.len() as u32;
    for at in run.config.load.arrivals() {
        let intended = began + at;
        let now = Instant::now();
        if intended > now {
            // Sleep in slices so a stop or an error ends the wait.
            let mut left = intended - now;
            while !left.is_zero() && !run.finished() {
                let slice = left.min(TICK * 10);
                tokio::time::sleep(slice).await;
                left = intended.saturating_duration_since(Instant::now());
            }
        }
        if run.finished() {
            break;
        }
        let free = idle.lock().pop();
        let sender = match free {
            Some(tx) => tx,
            None if spawned < max => {
                spawned += 1;
                spawn(spawned - 1, &mut tasks)
            }
            None => {
                dropped += 1;
                if let Some(s) = &run.series {
                    s.dropped();
                }
                continue;
            }
        };
        if !run.claim() {
            break;
        }
        if sender.try_send(intended).is_err() {
            // The writer ended (an error); the run is over.
            run.claimed.fetch_sub(1, Ordering::Relaxed);
            break;
        }
    }
    // Every sender dropped: idle writers end; busy ones end after their op.
    idle.lock().clear();
    run.over.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    Totals {
        dropped,
        writers_peak: spawned,
        ..Totals::default()
    }
}
