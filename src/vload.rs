//! Load shapes on virtual time, for the simulated targets (in-process and
//! automerge), and their time series.
//!
//! **Virtual time.** One tick of a simulation is [`TICK`] (1 ms) of virtual
//! time: tick `t` (counted from 1) covers `[(t−1)·TICK, t·TICK)`. Every op a
//! tick starts has completed by the tick's end. The wall clock never enters
//! the schedule, so a seed gives the same run on any machine, at any speed,
//! and `converge replay` reproduces it.
//!
//! - **Closed model:** in tick `t`, writers `0..writers_at((t−1)·TICK)` are
//!   active; an active writer makes one op per tick, except after an op it
//!   thinks for `round(think_time / TICK)` ticks. Latency is one tick.
//! - **Open model:** the arrivals ([`LoadSpec::arrivals`]) whose intended
//!   start falls in the tick's window each take a writer from the pool.
//!   Every writer is free when a tick starts (its op ended with the last
//!   one), so a tick serves at most `max_writers` arrivals; the others find
//!   no free writer and are *dropped* (counted, never run). The pool starts
//!   at `writers` and grows up to `max_writers` as arrivals need it; arrivals
//!   take its writers round-robin, so every replica keeps being written.
//!   Latency runs from the intended start to the tick's end.
//! - The run ends when a tick would start at or after [`LoadSpec::end`], or
//!   when the op budget is spent (shared by every writer as it goes).
//!
//! [`Schedule`] also writes `timeseries.jsonl` (clock `"virtual"`): one row
//! per virtual second ([`TICKS_PER_ROW`] ticks), the last one partial.

use crate::error::Result;
use crate::load::{Arrivals, LoadModel, LoadSpec};
use crate::series::{Completion, Interval, MemoryTrack, Row, SeriesHeader, SeriesWriter, Usage};
use std::iter::Peekable;
use std::path::Path;
use std::time::{Duration, Instant};

/// Virtual time one tick stands for.
pub const TICK: Duration = Duration::from_millis(1);
/// Ticks per time-series row: one virtual second.
pub const TICKS_PER_ROW: u64 = 1000;

/// Which writers act in a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Writers `0..n` each make one op, started at the tick's start.
    Prefix(u32),
    /// The writers [`Schedule::acting`] lists, in that order.
    List,
}

/// What a shaped run added up to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadSummary {
    /// `closed` or `open`.
    pub model: &'static str,
    /// Ops started (history ops; each completes in the tick it starts).
    pub started: u64,
    /// Open model: arrivals that found no free writer.
    pub dropped: u64,
    /// Most writers at once (closed: active; open: the pool).
    pub writers_peak: u32,
    /// Virtual seconds written.
    pub virtual_s: f64,
    /// Ops completed per virtual second.
    pub achieved_rate: f64,
    /// Rows of `timeseries.jsonl`.
    pub rows: usize,
    /// converge's own memory (the simulated target lives in its process),
    /// sampled at each row's close against the wall clock: memory grows in
    /// real time, whatever the virtual clock says.
    pub converge_memory: Option<crate::series::MemoryFigures>,
}

/// The load of a simulated run, tick by tick, and its time series.
pub struct Schedule<'a> {
    spec: &'a LoadSpec,
    tick: u64,
    end_tick: Option<u64>,
    ops_left: Option<u64>,
    think_ticks: u64,
    /// Closed model with think time: the first tick each writer may act in.
    next_free: Vec<u64>,
    arrivals: Peekable<Arrivals<'a>>,
    /// Open model: writers allocated so far, and the next one to take.
    pool: u32,
    cursor: u32,
    acting: Vec<u32>,
    /// Intended start of each acting writer's op (open model).
    intended: Vec<Duration>,
    plan: Plan,
    writers_now: u32,
    series: Option<SeriesWriter>,
    interval: Interval,
    row_start: u64,
    summary: LoadSummary,
    completed: u64,
    wall: Instant,
    last_cpu: Option<f64>,
    /// When the schedule began, on the wall clock (time of memory samples).
    began: Instant,
    memory: MemoryTrack,
}

/// Virtual time at the start of tick `tick + 1` (the end of tick `tick`).
pub fn at(tick: u64) -> Duration {
    Duration::from_nanos(tick.saturating_mul(TICK.as_nanos() as u64))
}

fn ticks_of(d: Duration) -> u64 {
    d.as_nanos().div_ceil(TICK.as_nanos()) as u64
}

/// The load shape as the time series header and reports show it.
pub fn describe(spec: &LoadSpec) -> serde_json::Value {
    let mut d = spec.describe();
    d["tick_ms"] = serde_json::json!(TICK.as_secs_f64() * 1000.0);
    d
}

impl<'a> Schedule<'a> {
    /// A schedule for `spec`; with `series_dir`, streams the time series
    /// there.
    pub fn new(spec: &'a LoadSpec, series_dir: Option<&Path>) -> Result<Schedule<'a>> {
        let series = match series_dir {
            Some(dir) => Some(SeriesWriter::create(
                dir,
                &SeriesHeader {
                    timeseries: 1,
                    interval_s: TICKS_PER_ROW as f64 * TICK.as_secs_f64(),
                    clock: "virtual".into(),
                    load: describe(spec),
                },
            )?),
            None => None,
        };
        let think_ticks = (spec.think_time.as_secs_f64() / TICK.as_secs_f64()).round() as u64;
        let next_free = if spec.model == LoadModel::Closed && think_ticks > 0 {
            vec![0; spec.peak_writers() as usize]
        } else {
            Vec::new()
        };
        Ok(Schedule {
            spec,
            tick: 0,
            end_tick: spec.end().map(ticks_of),
            ops_left: spec.ops,
            think_ticks,
            next_free,
            arrivals: spec.arrivals().peekable(),
            pool: spec.writers.clamp(1, spec.max_writers.max(1)),
            cursor: 0,
            acting: Vec::new(),
            intended: Vec::new(),
            plan: Plan::Prefix(0),
            writers_now: 0,
            series,
            interval: Interval::default(),
            row_start: 0,
            summary: LoadSummary {
                model: spec.model.name(),
                ..LoadSummary::default()
            },
            completed: 0,
            wall: Instant::now(),
            last_cpu: None,
            began: Instant::now(),
            memory: MemoryTrack::default(),
        })
    }

    /// Writer structures a run needs: the most writers ever acting.
    pub fn writers_needed(&self) -> u32 {
        self.spec.peak_writers().max(1)
    }

    /// Ticks begun so far.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// The tick after which the run ends by time, if it does.
    pub fn last_tick(&self) -> Option<u64> {
        self.end_tick
    }

    /// Ops the budget still allows (`None`: no op bound).
    pub fn ops_left(&self) -> Option<u64> {
        self.ops_left
    }

    /// The writers of a [`Plan::List`] tick, in acting order.
    pub fn acting(&self) -> &[u32] {
        &self.acting
    }

    /// Starts the next tick and says who acts in it; `None` when the run is
    /// over (its end reached or its budget spent).
    pub fn begin_tick(&mut self) -> Option<Plan> {
        if self.ops_left == Some(0) || self.end_tick.is_some_and(|e| self.tick >= e) {
            return None;
        }
        self.tick += 1;
        let start = at(self.tick - 1);
        let budget = self.ops_left.unwrap_or(u64::MAX);
        self.acting.clear();
        self.intended.clear();
        self.plan = match self.spec.model {
            LoadModel::Closed => {
                let active = self.spec.writers_at(start);
                self.writers_now = active;
                if self.think_ticks == 0 {
                    Plan::Prefix((active as u64).min(budget) as u32)
                } else {
                    let limit = (active as usize).min(self.next_free.len());
                    for w in 0..limit {
                        if self.acting.len() as u64 >= budget {
                            break;
                        }
                        if self.next_free[w] <= self.tick {
                            self.next_free[w] = self.tick + 1 + self.think_ticks;
                            self.acting.push(w as u32);
                        }
                    }
                    Plan::List
                }
            }
            LoadModel::Open => {
                let window_end = at(self.tick);
                while let Some(&arrival) = self.arrivals.peek() {
                    if arrival >= window_end {
                        break;
                    }
                    self.arrivals.next();
                    if self.acting.len() as u64 >= budget {
                        // Past the op budget the run is over: not dropped.
                        continue;
                    }
                    if self.acting.len() >= self.spec.max_writers as usize {
                        self.summary.dropped += 1;
                        self.interval.dropped();
                        continue;
                    }
                    self.intended.push(arrival);
                    self.acting.push(u32::MAX);
                }
                let n = self.acting.len() as u32;
                if n > self.pool {
                    self.pool = n.min(self.spec.max_writers);
                }
                for slot in self.acting.iter_mut() {
                    *slot = self.cursor;
                    self.cursor = (self.cursor + 1) % self.pool;
                }
                self.writers_now = self.pool;
                Plan::List
            }
        };
        self.summary.writers_peak = self.summary.writers_peak.max(self.writers_now);
        Some(self.plan)
    }

    /// Latency of the `i`-th op of this tick: from its intended start to
    /// the tick's end.
    fn latency(&self, i: usize) -> Duration {
        match self.intended.get(i) {
            Some(&intended) => at(self.tick).saturating_sub(intended),
            None => TICK,
        }
    }

    /// The `i`-th op of this tick made `records` history ops, `fails` of
    /// them failed (the automerge driver, op by op).
    pub fn complete(&mut self, i: usize, records: u64, fails: u64) {
        let latency = self.latency(i);
        for r in 0..records {
            self.interval.started();
            let outcome = if r < fails {
                Completion::Fail
            } else {
                Completion::Ok
            };
            self.interval.completed(outcome, latency);
        }
        self.completed += records;
        self.summary.started += records;
        if let Some(left) = &mut self.ops_left {
            *left = left.saturating_sub(records);
        }
    }

    /// Every op of this tick completed, one history op each, `fails` of
    /// them failed (the in-process engine).
    pub fn complete_all(&mut self, fails: u64) {
        let n = match self.plan {
            Plan::Prefix(n) => n as usize,
            Plan::List => self.acting.len(),
        };
        if self.intended.is_empty() {
            // No intended starts (the closed model): every op took one
            // tick, so the tick's ops are counted in two batches.
            let n = n as u64;
            let failed = fails.min(n);
            self.interval.started_n(n);
            self.interval
                .completed_alike(Completion::Fail, TICK, failed);
            self.interval
                .completed_alike(Completion::Ok, TICK, n - failed);
        } else {
            let mut fails = fails;
            for i in 0..n {
                let outcome = if fails > 0 {
                    fails -= 1;
                    Completion::Fail
                } else {
                    Completion::Ok
                };
                let latency = self.latency(i);
                self.interval.started();
                self.interval.completed(outcome, latency);
            }
        }
        self.completed += n as u64;
        self.summary.started += n as u64;
        if let Some(left) = &mut self.ops_left {
            *left = left.saturating_sub(n as u64);
        }
    }

    /// A nemesis event happened in this tick.
    pub fn nemesis(&mut self, event: &str) {
        self.interval.nemesis(event);
    }

    /// Ends the tick; closes a row at each virtual second.
    pub fn end_tick(&mut self) -> Result<()> {
        if self.tick - self.row_start >= TICKS_PER_ROW {
            self.close_row()?;
        }
        Ok(())
    }

    fn close_row(&mut self) -> Result<()> {
        let ticks = self.tick - self.row_start;
        let length_s = ticks as f64 * TICK.as_secs_f64();
        let t_s = self.tick as f64 * TICK.as_secs_f64();
        let last_start = at(self.tick.max(1) - 1);
        let stage = self.spec.stage_at(last_start);
        let mut row: Row = self.interval.close(t_s, length_s, stage, self.writers_now);
        self.row_start = self.tick;
        self.summary.rows += 1;
        if let Some(series) = &mut self.series {
            // converge's own use, measured on the wall clock at the row's
            // close: not part of the schedule, never of the history.
            let ticks_s = (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64;
            let own = crate::child::process_usage(std::process::id(), ticks_s);
            let wall_s = self.wall.elapsed().as_secs_f64().max(1e-9);
            self.wall = Instant::now();
            row.converge = own.map(|(rss, cpu)| Usage {
                rss_mb: rss,
                cpu_pct: self
                    .last_cpu
                    .map_or(0.0, |l| (cpu - l).max(0.0) / wall_s * 100.0),
            });
            self.last_cpu = own.map(|o| o.1);
            if let Some((rss, _)) = own {
                self.memory.push(self.began.elapsed().as_secs_f64(), rss);
            }
            series.row(&row)?;
        }
        Ok(())
    }

    /// Closes the last (partial) row and sums the run up.
    pub fn finish(mut self) -> Result<LoadSummary> {
        if self.tick > self.row_start || self.summary.rows == 0 {
            self.close_row()?;
        }
        let mut summary = self.summary;
        summary.converge_memory = self.memory.figures();
        summary.virtual_s = self.tick as f64 * TICK.as_secs_f64();
        summary.achieved_rate = if summary.virtual_s > 0.0 {
            self.completed as f64 / summary.virtual_s
        } else {
            0.0
        };
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Stage;

    fn run(spec: &LoadSpec) -> (Vec<u64>, LoadSummary) {
        let mut s = Schedule::new(spec, None).unwrap();
        let mut per_tick = Vec::new();
        while let Some(plan) = s.begin_tick() {
            per_tick.push(match plan {
                Plan::Prefix(n) => n as u64,
                Plan::List => s.acting().len() as u64,
            });
            s.complete_all(0);
            s.end_tick().unwrap();
        }
        (per_tick, s.finish().unwrap())
    }

    #[test]
    fn a_closed_tick_counts_its_ops_and_failures_in_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LoadSpec {
            writers: 5,
            ops: Some(10),
            ..LoadSpec::default()
        };
        let mut s = Schedule::new(&spec, Some(dir.path())).unwrap();
        while s.begin_tick().is_some() {
            s.complete_all(2);
            s.end_tick().unwrap();
        }
        s.finish().unwrap();
        let text = std::fs::read_to_string(dir.path().join("timeseries.jsonl")).unwrap();
        let row: serde_json::Value =
            serde_json::from_str(text.lines().nth(1).expect("a row")).unwrap();
        assert_eq!(
            (&row["started"], &row["ok"], &row["fail"]),
            (&10.into(), &6.into(), &4.into()),
            "{row}"
        );
        assert_eq!(row["latency_ms"]["p50"], 1.0, "one tick each: {row}");
        assert_eq!(row["latency_ms"]["max"], 1.0, "{row}");
    }

    #[test]
    fn a_closed_ramp_follows_its_writers_and_thinks() {
        let spec = LoadSpec {
            writers: 0,
            think_time: Duration::from_millis(4),
            stages: vec![Stage {
                duration: Duration::from_millis(100),
                target: 10.0,
            }],
            ..LoadSpec::default()
        };
        let (ticks, summary) = run(&spec);
        assert_eq!(ticks.len(), 100, "the stage bounds the run in virtual time");
        // One op per writer every 5 ticks; the second half averages 7.5
        // writers: 75 ops, give or take the rounding of the ramp.
        let late: u64 = ticks[50..].iter().sum();
        assert!((65..=85).contains(&late), "{late} ops: {ticks:?}");
        assert_eq!(ticks[0], 0, "no writer at the start of the ramp");
        for (t, &n) in ticks.iter().enumerate() {
            let active = spec.writers_at(at(t as u64)) as u64;
            assert!(n <= active, "tick {}: {n} ops, {active} writers", t + 1);
        }
        assert_eq!(summary.writers_peak, 10);
    }

    #[test]
    fn an_open_model_drops_what_the_pool_cannot_take_and_keeps_the_budget() {
        let spec = LoadSpec {
            model: LoadModel::Open,
            writers: 1,
            // 4.65 arrivals a tick: none on a tick's boundary.
            rate: 4650.0,
            max_writers: 3,
            duration: Some(Duration::from_millis(10)),
            ..LoadSpec::default()
        };
        let (ticks, summary) = run(&spec);
        assert_eq!(ticks, vec![3; 10]);
        assert_eq!(summary.dropped, 47 - 30, "47 arrivals, 3 writers a tick");
        let budget = LoadSpec {
            ops: Some(7),
            duration: None,
            ..spec
        };
        let (ticks, summary) = run(&budget);
        assert_eq!(ticks.iter().sum::<u64>(), 7);
        assert_eq!(summary.dropped, 4, "ops past the budget are not dropped");
    }
}
