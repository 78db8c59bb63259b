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
use crate::history::Outcome;
use crate::load::LoadModel;
use crate::series::SeriesRecorder;
use crate::target::Adapter;
use parking_lot::Mutex;
use std::future::Future;
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
struct Run<A: Adapter, C> {
    adapter: Arc<A>,
    config: EngineConfig,
    start: Instant,
    /// When writing stops at the latest.
    deadline: Option<Instant>,
    /// Makes writer `id`'s client.
    make: Box<dyn Fn(u32) -> C + Send + Sync>,
    series: Option<SeriesRecorder>,
    claimed: AtomicU64,
    over: AtomicBool,
    /// Writers working now (closed) or busy (open).
    active: AtomicU64,
    error: Mutex<Option<crate::error::Error>>,
}

impl<A: Adapter, C: Client> Run<A, C> {
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

    /// Writer `id`, ready for its first op.
    fn writer(&self, id: u32) -> Writer<C> {
        Writer {
            client: (self.make)(id),
            last_done: self.start,
        }
    }
}

/// One writer of the scheduler: it sends one op at a time and says how it
/// ended. The engine's own is [`super::writer::CrdtWriter`] (the
/// generator's ops through an [`Adapter`], recorded in `history.jsonl`); a
/// target whose ops are not CRDT updates (Maelstrom's lin-kv, echo,
/// unique-ids, kafka) brings its own and records its own history, under the
/// same load shape, budget, nemesis and time series.
pub trait Client: Send + 'static {
    /// Sends one op invoked at `invoke_at` (recorded there: the open
    /// model's intended start, never before this writer's last return).
    /// The invocation must be on disk before the op is sent; an error ends
    /// the run (the history can no longer be written).
    fn one(&mut self, invoke_at: Instant) -> impl Future<Output = Result<Outcome>> + Send;
}

/// A client with the time its last op returned.
struct Writer<C> {
    client: C,
    last_done: Instant,
}

impl<C: Client> Writer<C> {
    /// Sends one op and puts it in the time series. `intended` is the open
    /// model's intended start: the invocation is stamped there (no earlier
    /// than this writer's last return, so a writer's ops never overlap), so
    /// the latency includes the time the op waited for a writer.
    async fn one<A: Adapter>(&mut self, run: &Run<A, C>, intended: Option<Instant>) -> Result<()> {
        let now = Instant::now();
        let invoke_at = intended.map_or(now, |i| i.max(self.last_done).min(now));
        if let Some(s) = &run.series {
            s.started();
        }
        let outcome = self.client.one(invoke_at).await?;
        let done = Instant::now();
        self.last_done = done;
        if let Some(s) = &run.series {
            s.completed(outcome.into(), done.duration_since(invoke_at));
        }
        Ok(())
    }
}

/// Runs the writing phase under the load shape; returns once every writer
/// has stopped.
pub async fn drive<A: Adapter, C: Client>(
    adapter: Arc<A>,
    config: &EngineConfig,
    start: Instant,
    series: Option<SeriesRecorder>,
    make: impl Fn(u32) -> C + Send + Sync + 'static,
) -> Result<Totals> {
    let began = Instant::now();
    let run = Arc::new(Run {
        adapter,
        config: config.clone(),
        start,
        deadline: config.load.end().map(|d| began + d),
        make: Box::new(make),
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
async fn control<A: Adapter, C: Client>(run: Arc<Run<A, C>>, began: Instant) {
    while !run.finished() {
        if let Some(s) = &run.series {
            s.set_stage(run.config.load.stage_at(began.elapsed()));
            s.set_writers(run.active.load(Ordering::Relaxed) as u32);
        }
        tokio::time::sleep(TICK * 10).await;
    }
}

async fn closed<A: Adapter, C: Client>(run: Arc<Run<A, C>>, began: Instant) -> Totals {
    let peak = run.config.load.peak_writers().max(1);
    let think = run.config.load.think_time;
    let mut tasks = Vec::with_capacity(peak as usize);
    for id in 0..peak {
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let mut writer: Option<Writer<C>> = None;
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
                let w = writer.get_or_insert_with(|| run.writer(id));
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

async fn open<A: Adapter, C: Client>(run: Arc<Run<A, C>>, began: Instant) -> Totals {
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
            let mut writer = run.writer(id);
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
