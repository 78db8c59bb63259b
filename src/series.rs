//! The time series of a run: one row per second, streamed to
//! `timeseries.jsonl` in the run folder as it happens.
//!
//! Contract (shared by every engine and by the report renderer):
//! the first line is a [`SeriesHeader`], then one [`Row`] per interval.
//! Counts are for that interval only. Fields that were not measured are
//! `null`, never 0.
//!
//! Two ways to fill it:
//! - [`SeriesRecorder`]: wall-clock runs (HTTP, SQL, Maelstrom, automerge,
//!   and the in-process run until it has a virtual-clock series). Writers
//!   call [`SeriesRecorder::started`] / [`SeriesRecorder::completed`] /
//!   [`SeriesRecorder::dropped`]; a background thread closes one row per
//!   second and samples converge's and the target's RSS and CPU.
//! - [`SeriesWriter`] + [`Interval`]: simulated runs that keep their own
//!   virtual clock and close rows themselves.
//!
//! Memory figures ([`MemoryFigures`]) come from the same samples: initial,
//! peak, final, growth, and a leak slope fitted by least squares on the
//! steady part of the run (after the first [`WARMUP_FRACTION`] of its
//! time; `null` with fewer than [`MIN_SLOPE_POINTS`] samples there).

use crate::error::{Error, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the time series in a run folder.
pub const FILE: &str = "timeseries.jsonl";

/// The first line of `timeseries.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeriesHeader {
    /// Schema version of the file.
    pub timeseries: u32,
    /// Seconds per row.
    pub interval_s: f64,
    /// `"wall"` or `"virtual"` (simulated targets count virtual seconds).
    pub clock: String,
    /// The load shape, as `report.json`'s `load` shows it.
    pub load: serde_json::Value,
}

/// Latency percentiles of one interval, ms.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyRow {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// Resource use of one process (tree) at the end of an interval.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    /// Resident set size, MB.
    pub rss_mb: f64,
    /// CPU over the interval, percent of one core.
    pub cpu_pct: f64,
}

/// One interval of the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Row {
    /// End of the interval, seconds since writing started.
    pub t_s: f64,
    /// Index of the active stage, if any.
    pub stage: Option<usize>,
    /// Ops sent.
    pub started: u64,
    /// Ops answered (ok + fail + info).
    pub completed: u64,
    /// Acknowledged.
    pub ok: u64,
    /// Definitely not applied.
    pub fail: u64,
    /// Outcome unknown.
    pub info: u64,
    /// Open model: arrivals that found no free writer.
    pub dropped: u64,
    /// Ops completed per second in this interval.
    pub throughput: f64,
    /// Latency of the ops completed in this interval; `None` when none did.
    pub latency_ms: Option<LatencyRow>,
    /// converge itself; `None` when not measured.
    pub converge: Option<Usage>,
    /// The target's process tree; `None` when converge does not see it.
    pub target: Option<Usage>,
    /// Writers active at the end of the interval.
    pub writers: u32,
    /// Nemesis events in this interval.
    pub nemesis: Vec<String>,
}

/// Streams a header and rows to `timeseries.jsonl`, flushing each row.
pub struct SeriesWriter {
    file: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
}

impl SeriesWriter {
    /// Creates `dir/timeseries.jsonl` and writes the header.
    pub fn create(dir: &Path, header: &SeriesHeader) -> Result<SeriesWriter> {
        let path = dir.join(FILE);
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = SeriesWriter {
            file: std::io::BufWriter::new(file),
            path,
        };
        w.line(header)?;
        Ok(w)
    }

    /// Appends one row and flushes it.
    pub fn row(&mut self, row: &Row) -> Result<()> {
        self.line(row)
    }

    fn line<T: Serialize>(&mut self, value: &T) -> Result<()> {
        use std::io::Write;
        let text = serde_json::to_string(value).map_err(|e| Error::Config(e.to_string()))?;
        writeln!(self.file, "{text}")
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Op outcome as the series counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Acknowledged.
    Ok,
    /// Definitely not applied.
    Fail,
    /// Outcome unknown.
    Info,
}

impl From<crate::history::Outcome> for Completion {
    fn from(outcome: crate::history::Outcome) -> Completion {
        match outcome {
            crate::history::Outcome::Ok => Completion::Ok,
            crate::history::Outcome::Fail => Completion::Fail,
            crate::history::Outcome::Info => Completion::Info,
        }
    }
}

/// Slowest latency an interval's histogram tells apart, µs (one hour):
/// slower ops count as this in the percentiles (the exact maximum is kept).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Accumulates one interval's counts and latencies (an HDR histogram per
/// interval, 3 significant digits, reused from one interval to the next)
/// and turns them into a [`Row`].
pub struct Interval {
    row: Row,
    latencies_us: Histogram<u64>,
    /// Exact slowest latency of the interval, µs.
    max_us: u64,
}

impl Default for Interval {
    fn default() -> Interval {
        Interval {
            row: Row::default(),
            latencies_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("1 µs to 1 hour at 3 significant digits are valid static bounds"),
            max_us: 0,
        }
    }
}

impl Interval {
    /// An op was sent.
    pub fn started(&mut self) {
        self.row.started += 1;
    }

    /// `n` ops were sent (engines that count in batches).
    pub fn started_n(&mut self, n: u64) {
        self.row.started += n;
    }

    /// An op was answered after `latency`.
    pub fn completed(&mut self, outcome: Completion, latency: Duration) {
        self.completed_n(outcome, 1);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latencies_us.saturating_record(us.min(MAX_LATENCY_US));
        self.max_us = self.max_us.max(us);
    }

    /// `n` ops were answered, each after the same `latency` (a simulated
    /// tick's ops all take one tick): one histogram update for the batch,
    /// not one per op, on the in-process target's hot path.
    pub fn completed_alike(&mut self, outcome: Completion, latency: Duration, n: u64) {
        if n == 0 {
            return;
        }
        self.completed_n(outcome, n);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latencies_us
            .saturating_record_n(us.min(MAX_LATENCY_US), n);
        self.max_us = self.max_us.max(us);
    }

    /// `n` ops were answered, latency not measured (they count in the
    /// throughput, not in the percentiles).
    pub fn completed_n(&mut self, outcome: Completion, n: u64) {
        self.row.completed += n;
        match outcome {
            Completion::Ok => self.row.ok += n,
            Completion::Fail => self.row.fail += n,
            Completion::Info => self.row.info += n,
        }
    }

    /// An arrival was dropped.
    pub fn dropped(&mut self) {
        self.row.dropped += 1;
    }

    /// A nemesis event happened.
    pub fn nemesis(&mut self, event: &str) {
        self.row.nemesis.push(event.to_string());
    }

    /// Closes the interval ending at `t_s`, `length_s` long.
    pub fn close(&mut self, t_s: f64, length_s: f64, stage: Option<usize>, writers: u32) -> Row {
        let mut row = std::mem::take(&mut self.row);
        row.t_s = t_s;
        row.stage = stage;
        row.writers = writers;
        row.throughput = if length_s > 0.0 {
            row.completed as f64 / length_s
        } else {
            0.0
        };
        let h = &self.latencies_us;
        if !h.is_empty() {
            let max_ms = self.max_us as f64 / 1000.0;
            // A histogram bucket's highest value may pass the exact maximum.
            let at = |q: f64| (h.value_at_quantile(q) as f64 / 1000.0).min(max_ms);
            row.latency_ms = Some(LatencyRow {
                p50: at(0.50),
                p95: at(0.95),
                p99: at(0.99),
                max: max_ms,
            });
        }
        self.latencies_us.reset();
        self.max_us = 0;
        row
    }
}

/// Share of a run's time, from the start of writing, taken as warm-up:
/// the leak slope is fitted only on samples at or after
/// `WARMUP_FRACTION × t_end` (start-up allocations, caches and pools
/// filling are not a leak).
pub const WARMUP_FRACTION: f64 = 0.2;
/// Fewest steady samples a leak slope is fitted on; with fewer, the slope
/// is `null` (not measured), never 0.
pub const MIN_SLOPE_POINTS: usize = 5;
/// Most points a [`MemoryTrack`] keeps: past it, neighbours are merged two
/// by two (their means), so a soak of any length costs the same memory.
pub const MAX_POINTS: usize = 1024;

/// Memory figures of one process (tree) over a run, MB, from its time
/// series (`report.json` → `memory.converge` / `memory.target`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryFigures {
    /// RSS at the first sample.
    pub initial_mb: f64,
    /// Highest RSS sampled.
    pub peak_mb: f64,
    /// RSS at the last sample.
    pub final_mb: f64,
    /// `final_mb - initial_mb` (negative when memory was given back).
    pub growth_mb: f64,
    /// Least-squares slope of RSS over time on the steady part of the run
    /// (the samples after the first [`WARMUP_FRACTION`] of its time), MB
    /// per minute; `null` with fewer than [`MIN_SLOPE_POINTS`] samples there.
    pub leak_slope_mb_per_min: Option<f64>,
}

/// The RSS samples of one process (tree) in bounded memory: exact first,
/// peak and last values, and at most [`MAX_POINTS`] (time, RSS) points for
/// the slope, each the mean of `stride` consecutive samples.
#[derive(Clone, Debug)]
pub struct MemoryTrack {
    first: Option<f64>,
    peak: f64,
    last: f64,
    points: Vec<(f64, f64)>,
    /// Samples not yet folded into a point: (sum of t, sum of RSS, count).
    pending: (f64, f64, u64),
    stride: u64,
}

impl Default for MemoryTrack {
    fn default() -> MemoryTrack {
        MemoryTrack {
            first: None,
            peak: f64::MIN,
            last: 0.0,
            points: Vec::new(),
            pending: (0.0, 0.0, 0),
            stride: 1,
        }
    }
}

impl MemoryTrack {
    /// Adds the sample `rss_mb` taken at `t_s` (non-decreasing).
    pub fn push(&mut self, t_s: f64, rss_mb: f64) {
        if !t_s.is_finite() || !rss_mb.is_finite() {
            return;
        }
        self.first.get_or_insert(rss_mb);
        self.peak = self.peak.max(rss_mb);
        self.last = rss_mb;
        let p = &mut self.pending;
        p.0 += t_s;
        p.1 += rss_mb;
        p.2 += 1;
        if p.2 == self.stride {
            let n = p.2 as f64;
            self.points.push((p.0 / n, p.1 / n));
            self.pending = (0.0, 0.0, 0);
        }
        if self.points.len() >= MAX_POINTS {
            self.points = self
                .points
                .chunks(2)
                .map(|c| {
                    let n = c.len() as f64;
                    (
                        c.iter().map(|p| p.0).sum::<f64>() / n,
                        c.iter().map(|p| p.1).sum::<f64>() / n,
                    )
                })
                .collect();
            self.stride *= 2;
        }
    }

    /// The (time, RSS) points kept, the samples not yet merged included.
    pub fn points(&self) -> Vec<(f64, f64)> {
        let mut points = self.points.clone();
        let (t, rss, n) = self.pending;
        if n > 0 {
            points.push((t / n as f64, rss / n as f64));
        }
        points
    }

    /// The figures; `None` when nothing was sampled.
    pub fn figures(&self) -> Option<MemoryFigures> {
        let initial = self.first?;
        Some(MemoryFigures {
            initial_mb: initial,
            peak_mb: self.peak,
            final_mb: self.last,
            growth_mb: self.last - initial,
            leak_slope_mb_per_min: leak_slope(&self.points()),
        })
    }
}

/// The memory figures of literal (seconds since the start of writing, RSS
/// MB) samples, in time order; `None` when there are none.
pub fn memory_figures(samples: &[(f64, f64)]) -> Option<MemoryFigures> {
    let mut track = MemoryTrack::default();
    for &(t, rss) in samples {
        track.push(t, rss);
    }
    track.figures()
}

/// Least-squares slope of RSS over time, MB per minute, on the steady part
/// of the run: the points at or after `WARMUP_FRACTION × t_end`, where
/// time 0 is the start of writing. `None` with fewer than
/// [`MIN_SLOPE_POINTS`] steady points or no spread in time.
pub fn leak_slope(points: &[(f64, f64)]) -> Option<f64> {
    let end = points.iter().map(|p| p.0).fold(f64::NAN, f64::max);
    if !end.is_finite() {
        return None;
    }
    let steady: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 >= WARMUP_FRACTION * end)
        .collect();
    if steady.len() < MIN_SLOPE_POINTS {
        return None;
    }
    let n = steady.len() as f64;
    let mean_t = steady.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_m = steady.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, m) in &steady {
        num += (t - mean_t) * (m - mean_m);
        den += (t - mean_t) * (t - mean_t);
    }
    (den > 0.0).then(|| num / den * 60.0)
}

/// Where the target's memory and CPU are read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TargetProbe {
    /// Not measured.
    #[default]
    None,
    /// Guards of process trees converge started (see [`crate::child`]):
    /// every process below each, the guard itself not counted.
    Roots(Vec<u32>),
    /// A process the user names (`--target-pid`), and everything below it.
    Pid(u32),
    /// A cgroup v2 directory (`--target-cgroup`): RSS is its working set,
    /// `memory.current` less `inactive_file` of `memory.stat` (as the
    /// kubelet counts it: page cache the kernel can drop at once is not a
    /// leak); CPU is `usage_usec` of `cpu.stat`.
    Cgroup(PathBuf),
}

impl TargetProbe {
    /// A `--target-cgroup` path: absolute, or relative to `/sys/fs/cgroup`.
    pub fn cgroup(path: &Path) -> TargetProbe {
        if path.is_absolute() {
            TargetProbe::Cgroup(path.to_path_buf())
        } else {
            TargetProbe::Cgroup(Path::new("/sys/fs/cgroup").join(path))
        }
    }

    /// (RSS MB, CPU seconds so far) now; `None` when there is nothing to
    /// measure (no such process or cgroup, or every process is gone).
    pub fn sample(&self) -> Option<(f64, f64)> {
        match self {
            TargetProbe::None => None,
            TargetProbe::Roots(roots) => roots
                .iter()
                .filter_map(|&r| crate::child::tree_usage(r))
                .reduce(|a, b| (a.0 + b.0, a.1 + b.1)),
            TargetProbe::Pid(pid) => {
                // SAFETY: sysconf has no preconditions.
                let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
                let own = crate::child::process_usage(*pid, ticks)?;
                let below = crate::child::tree_usage(*pid).unwrap_or((0.0, 0.0));
                Some((own.0 + below.0, own.1 + below.1))
            }
            TargetProbe::Cgroup(dir) => {
                let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
                let field = |text: &str, key: &str| -> Option<f64> {
                    text.lines()
                        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                        .and_then(|v| v.trim().parse().ok())
                };
                let current: f64 = read("memory.current")?.trim().parse().ok()?;
                let inactive = read("memory.stat")
                    .and_then(|s| field(&s, "inactive_file"))
                    .unwrap_or(0.0);
                let cpu_us = read("cpu.stat")
                    .and_then(|s| field(&s, "usage_usec"))
                    .unwrap_or(0.0);
                let rss = (current - inactive).max(0.0);
                Some((rss / (1024.0 * 1024.0), cpu_us / 1e6))
            }
        }
    }

    /// Refuses a probe that cannot be read now (a config mistake).
    pub fn check(&self) -> Result<()> {
        match self {
            TargetProbe::Pid(pid) if self.sample().is_none() => Err(Error::Config(format!(
                "--target-pid {pid}: no such process"
            ))),
            TargetProbe::Cgroup(dir) if self.sample().is_none() => Err(Error::Config(format!(
                "--target-cgroup {}: not a cgroup v2 directory with memory.current",
                dir.display()
            ))),
            _ => Ok(()),
        }
    }
}

/// What a finished wall-clock series adds up to. Bounded: no field grows
/// with the run's length past [`MAX_POINTS`] entries.
#[derive(Clone, Debug, Default)]
pub struct SeriesSummary {
    /// Rows written.
    pub rows: usize,
    /// Arrivals dropped over the run.
    pub dropped: u64,
    /// converge's RSS, MB, one entry per row, or once a long run passes
    /// [`MAX_POINTS`] rows, the mean of consecutive rows.
    pub converge_rss_mb: Vec<f64>,
    /// The target's RSS, MB, as `converge_rss_mb`, over the rows where it
    /// was measured.
    pub target_rss_mb: Vec<Option<f64>>,
    /// Ops sent over the run.
    pub started: u64,
    /// Ops answered over the run.
    pub completed: u64,
    /// Most writers active at the end of a row.
    pub writers_peak: u32,
    /// Seconds from the start of writing to the last row.
    pub duration_s: f64,
    /// converge's memory figures; `None` when never sampled.
    pub converge_memory: Option<MemoryFigures>,
    /// The target's memory figures; `None` when it was not measured.
    pub target_memory: Option<MemoryFigures>,
}

struct RecorderState {
    interval: Interval,
    writers: u32,
    stage: Option<usize>,
    /// Where the target is measured (a restart changes the roots).
    target: TargetProbe,
    /// The target's CPU seconds at its last sample (or when the probe was
    /// set): the next row's CPU is the difference.
    target_cpu: Option<f64>,
}

/// Stops the series thread when the last handle goes, so a caller that
/// returns early (an error) leaves no thread writing rows.
struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Records a wall-clock run: writers report ops, a background thread closes
/// one row per interval into `timeseries.jsonl` and samples converge's RSS
/// and CPU (this process alone: its children are the target's) and the
/// target's ([`TargetProbe`]). Cheap to clone; memory stays bounded
/// however long the run (rows are streamed, the summary keeps
/// [`MemoryTrack`]s).
#[derive(Clone)]
pub struct SeriesRecorder {
    state: std::sync::Arc<parking_lot::Mutex<RecorderState>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread:
        std::sync::Arc<parking_lot::Mutex<Option<std::thread::JoinHandle<Result<SeriesSummary>>>>>,
    _alive: std::sync::Arc<StopOnDrop>,
}

impl std::fmt::Debug for SeriesRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesRecorder").finish_non_exhaustive()
    }
}

/// converge's own (RSS MB, CPU seconds): this process's threads only, not
/// the children it reaped (those are the target's).
fn own_usage() -> Option<(f64, f64)> {
    let rss = crate::metrics::rss_mb()?.0;
    Some((rss, crate::metrics::cpu_seconds().0))
}

impl SeriesRecorder {
    /// Creates `dir/timeseries.jsonl` and starts closing a row every
    /// `header.interval_s` seconds from now (the start of writing).
    pub fn start(dir: &Path, header: SeriesHeader) -> Result<SeriesRecorder> {
        let mut writer = SeriesWriter::create(dir, &header)?;
        let state = std::sync::Arc::new(parking_lot::Mutex::new(RecorderState {
            interval: Interval::default(),
            writers: 0,
            stage: None,
            target: TargetProbe::None,
            target_cpu: None,
        }));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let period = Duration::from_secs_f64(header.interval_s.max(0.01));
        let (s, st) = (state.clone(), stop.clone());
        let mut last_cpu = own_usage().map(|u| u.1);
        let thread = std::thread::Builder::new()
            .name("converge-series".into())
            .spawn(move || {
                let start = std::time::Instant::now();
                let mut summary = SeriesSummary::default();
                let (mut own_track, mut target_track) =
                    (MemoryTrack::default(), MemoryTrack::default());
                let mut n = 1u32;
                loop {
                    let due = start + period * n;
                    let stopping = st.load(std::sync::atomic::Ordering::SeqCst);
                    let now = std::time::Instant::now();
                    if !stopping && now < due {
                        std::thread::sleep((due - now).min(Duration::from_millis(50)));
                        continue;
                    }
                    let t_s = now.duration_since(start).as_secs_f64();
                    let length_s = t_s - period.as_secs_f64() * (n - 1) as f64;
                    let (mut row, probe, target_cpu) = {
                        let mut g = s.lock();
                        let (stage, writers) = (g.stage, g.writers);
                        let row = g.interval.close(t_s, length_s, stage, writers);
                        (row, g.target.clone(), g.target_cpu)
                    };
                    let pct = |cpu: f64, before: Option<f64>| {
                        (cpu - before.unwrap_or(0.0)).max(0.0) / length_s.max(1e-9) * 100.0
                    };
                    let own = own_usage();
                    row.converge = own.map(|(rss, cpu)| Usage {
                        rss_mb: rss,
                        cpu_pct: pct(cpu, last_cpu),
                    });
                    last_cpu = own.map(|o| o.1).or(last_cpu);
                    let target = probe.sample();
                    row.target = target.map(|(rss, cpu)| Usage {
                        rss_mb: rss,
                        cpu_pct: pct(cpu, target_cpu),
                    });
                    if let Some((_, cpu)) = target {
                        let mut g = s.lock();
                        // A probe set meanwhile keeps its own baseline.
                        if g.target == probe {
                            g.target_cpu = Some(cpu);
                        }
                    }
                    if let Some(u) = row.converge {
                        own_track.push(t_s, u.rss_mb);
                    }
                    if let Some(u) = row.target {
                        target_track.push(t_s, u.rss_mb);
                    }
                    summary.started += row.started;
                    summary.completed += row.completed;
                    summary.dropped += row.dropped;
                    summary.writers_peak = summary.writers_peak.max(row.writers);
                    summary.rows += 1;
                    summary.duration_s = t_s;
                    writer.row(&row)?;
                    if stopping {
                        summary.converge_rss_mb = own_track.points().iter().map(|p| p.1).collect();
                        summary.target_rss_mb =
                            target_track.points().iter().map(|p| Some(p.1)).collect();
                        summary.converge_memory = own_track.figures();
                        summary.target_memory = target_track.figures();
                        return Ok(summary);
                    }
                    n += 1;
                }
            })
            .map_err(|e| Error::io("time series thread", e))?;
        Ok(SeriesRecorder {
            state,
            stop: stop.clone(),
            thread: std::sync::Arc::new(parking_lot::Mutex::new(Some(thread))),
            _alive: std::sync::Arc::new(StopOnDrop(stop)),
        })
    }

    /// An op was sent.
    pub fn started(&self) {
        self.state.lock().interval.started();
    }

    /// `n` ops were sent (engines that count in batches).
    pub fn started_n(&self, n: u64) {
        self.state.lock().interval.started_n(n);
    }

    /// An op was answered after `latency` (open model: from its intended start).
    pub fn completed(&self, outcome: Completion, latency: Duration) {
        self.state.lock().interval.completed(outcome, latency);
    }

    /// `n` ops were answered, latency not measured.
    pub fn completed_n(&self, outcome: Completion, n: u64) {
        self.state.lock().interval.completed_n(outcome, n);
    }

    /// Ops that were sent and answered within one interval (engines that
    /// work in batches), each with its outcome and latency: one lock for
    /// the batch.
    pub fn ops_done(&self, ops: impl IntoIterator<Item = (Completion, Duration)>) {
        let mut g = self.state.lock();
        for (outcome, latency) in ops {
            g.interval.started();
            g.interval.completed(outcome, latency);
        }
    }

    /// An arrival found no free writer.
    pub fn dropped(&self) {
        self.state.lock().interval.dropped();
    }

    /// A nemesis event happened (`"partition start"`, `"heal"`, ...).
    pub fn nemesis(&self, event: &str) {
        self.state.lock().interval.nemesis(event);
    }

    /// Writers active now.
    pub fn set_writers(&self, writers: u32) {
        self.state.lock().writers = writers;
    }

    /// The active stage now.
    pub fn set_stage(&self, stage: Option<usize>) {
        self.state.lock().stage = stage;
    }

    /// The roots of the target's process trees (empty: not measured).
    pub fn set_target_roots(&self, roots: Vec<u32>) {
        self.set_target(if roots.is_empty() {
            TargetProbe::None
        } else {
            TargetProbe::Roots(roots)
        });
    }

    /// Where the target is measured from now on (`--target-pid`,
    /// `--target-cgroup`, or the trees converge started).
    pub fn set_target(&self, probe: TargetProbe) {
        // Sampled outside the lock: reading /proc must not stall writers.
        let baseline = probe.sample().map(|u| u.1);
        let mut g = self.state.lock();
        g.target = probe;
        g.target_cpu = baseline;
    }

    /// Closes the last (partial) row and returns the summary. Later calls
    /// return an error.
    pub fn finish(&self) -> Result<SeriesSummary> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let handle = self.thread.lock().take();
        match handle {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(Error::Config("the time series thread died".into()))),
            None => Err(Error::Config("the time series was already finished".into())),
        }
    }
}

impl SeriesHeader {
    /// The header of a wall-clock series with one-second rows.
    pub fn wall(load: serde_json::Value) -> SeriesHeader {
        SeriesHeader {
            timeseries: 1,
            interval_s: 1.0,
            clock: "wall".into(),
            load,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_counts_and_ranks_its_latencies() {
        let mut i = Interval::default();
        for ms in 1..=100 {
            i.started();
            i.completed(Completion::Ok, Duration::from_millis(ms));
        }
        i.completed(Completion::Info, Duration::from_millis(500));
        i.dropped();
        let row = i.close(2.0, 2.0, Some(1), 7);
        assert_eq!(
            (row.started, row.completed, row.ok, row.info, row.dropped),
            (100, 101, 100, 1, 1)
        );
        let lat = row.latency_ms.expect("latencies");
        // HDR buckets at 3 significant digits: within 0.1%; the max is exact.
        assert!((lat.p50 - 51.0).abs() <= 0.051, "p50 {}", lat.p50);
        assert!((lat.p99 - 100.0).abs() <= 0.1, "p99 {}", lat.p99);
        assert_eq!(lat.max, 500.0);
        assert_eq!(row.throughput, 50.5);
        let empty = i.close(3.0, 1.0, None, 0);
        assert_eq!(empty.latency_ms, None, "no op completed: no latency, not 0");
        assert_eq!(empty.completed, 0);
    }

    #[test]
    fn a_recorder_streams_a_header_and_a_last_row() {
        let dir = std::env::temp_dir().join(format!("converge-series-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = SeriesHeader {
            timeseries: 1,
            interval_s: 1.0,
            clock: "wall".into(),
            load: serde_json::json!({"model": "closed"}),
        };
        let rec = SeriesRecorder::start(&dir, header).unwrap();
        rec.set_writers(3);
        rec.started();
        rec.completed(Completion::Fail, Duration::from_millis(2));
        let summary = rec.finish().unwrap();
        assert!(rec.finish().is_err());
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("\"timeseries\":1"));
        let rows: Vec<Row> = lines[1..]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), summary.rows);
        assert_eq!(rows.iter().map(|r| r.fail).sum::<u64>(), 1);
        assert_eq!(rows.last().unwrap().writers, 3);
        assert!(rows.last().unwrap().converge.is_some());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A steady climb after a warm-up jump: the slope is the climb's.
    fn climb(per_s: f64, seconds: u32) -> Vec<(f64, f64)> {
        (1..=seconds)
            .map(|t| {
                let warm = if t <= 3 { 10.0 * t as f64 } else { 30.0 };
                (t as f64, 100.0 + warm + per_s * t as f64)
            })
            .collect()
    }

    #[test]
    fn a_leak_has_a_positive_slope_and_a_flat_series_none() {
        let leak = memory_figures(&climb(0.5, 30)).unwrap();
        let slope = leak.leak_slope_mb_per_min.unwrap();
        assert!(
            (slope - 30.0).abs() < 1e-6,
            "0.5 MB/s is 30 MB/min: {slope}"
        );
        assert_eq!(leak.initial_mb, 110.5);
        assert_eq!(leak.final_mb, 145.0);
        assert_eq!(leak.peak_mb, 145.0);
        assert!((leak.growth_mb - 34.5).abs() < 1e-9);
        let flat = memory_figures(&climb(0.0, 30)).unwrap();
        assert_eq!(
            flat.leak_slope_mb_per_min,
            Some(0.0),
            "the warm-up jump (first 20%) is not fitted"
        );
        assert!(
            flat.growth_mb > 0.0,
            "growth counts the warm-up, the slope does not"
        );
        // Memory given back: a negative slope, a negative growth.
        let shrinking: Vec<(f64, f64)> = (1..=20).map(|t| (t as f64, 200.0 - t as f64)).collect();
        let down = memory_figures(&shrinking).unwrap();
        assert!(down.leak_slope_mb_per_min.unwrap() < 0.0);
        assert_eq!(down.growth_mb, -19.0);
    }

    #[test]
    fn too_few_samples_give_no_slope_not_zero() {
        let short: Vec<(f64, f64)> = (1..=5).map(|t| (t as f64, 100.0 + t as f64)).collect();
        // 20% of 5 s is 1 s: all 5 are steady, just enough.
        assert!(memory_figures(&short)
            .unwrap()
            .leak_slope_mb_per_min
            .is_some());
        let fewer = &short[..4];
        let f = memory_figures(fewer).unwrap();
        assert_eq!(f.leak_slope_mb_per_min, None);
        assert_eq!((f.initial_mb, f.final_mb), (101.0, 104.0));
        assert_eq!(memory_figures(&[]), None);
        // Every sample at one instant: no spread, no slope.
        let instant = vec![(1.0, 5.0); 10];
        assert_eq!(leak_slope(&instant), None);
    }

    #[test]
    fn a_long_soak_keeps_bounded_points_and_the_same_slope() {
        let mut track = MemoryTrack::default();
        let hours = 4 * 3600;
        for t in 1..=hours {
            // 0.1 MB per minute, plus a sawtooth of garbage collection.
            let rss = 500.0 + t as f64 / 600.0 + (t % 7) as f64;
            track.push(t as f64, rss);
        }
        assert!(track.points().len() <= MAX_POINTS + 1);
        let f = track.figures().unwrap();
        let slope = f.leak_slope_mb_per_min.unwrap();
        assert!((slope - 0.1).abs() < 0.01, "slope {slope}");
        assert_eq!(f.peak_mb, 500.0 + 14398.0 / 600.0 + 6.0);
        assert_eq!(f.initial_mb, 500.0 + 1.0 / 600.0 + 1.0);
    }

    #[test]
    fn a_pid_probe_measures_the_process_and_its_children() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30; wait"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let probe = TargetProbe::Pid(child.id());
        let (rss, _) = probe.sample().expect("a live process is measured");
        let (shell_only, _) =
            crate::child::process_usage(child.id(), 100.0).expect("the shell itself");
        assert!(
            rss > shell_only,
            "the sleeps below it count: {rss} vs {shell_only}"
        );
        assert!(probe.check().is_ok());
        // The sleeps first: once the shell is gone they are no longer below it.
        for pid in crate::child::descendants(child.id()) {
            // SAFETY: kill(2) on processes this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(TargetProbe::Pid(u32::MAX - 1).check().is_err());
        assert!(TargetProbe::cgroup(Path::new("no/such/cgroup"))
            .check()
            .is_err());
    }

    #[test]
    fn a_cgroup_probe_reads_the_working_set() {
        let dir = std::env::temp_dir().join(format!("converge-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.current"), "209715200\n").unwrap();
        std::fs::write(
            dir.join("memory.stat"),
            "anon 100\nfile 104857600\nactive_file 1\ninactive_file 52428800\n",
        )
        .unwrap();
        std::fs::write(dir.join("cpu.stat"), "usage_usec 2500000\nuser_usec 1\n").unwrap();
        let (rss, cpu) = TargetProbe::cgroup(&dir).sample().unwrap();
        assert_eq!((rss, cpu), (150.0, 2.5));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_recorder_measures_its_target_and_sums_memory() {
        let dir = std::env::temp_dir().join(format!("converge-series-t-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let header = SeriesHeader {
            interval_s: 0.05,
            ..SeriesHeader::wall(serde_json::json!({"model": "closed"}))
        };
        let rec = SeriesRecorder::start(&dir, header).unwrap();
        rec.set_target(TargetProbe::Pid(child.id()));
        std::thread::sleep(Duration::from_millis(400));
        let summary = rec.finish().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(summary.rows >= 5, "rows {}", summary.rows);
        let target = summary.target_memory.expect("the target was measured");
        assert!(target.peak_mb > 0.0);
        assert!(summary.converge_memory.is_some());
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        let last: Row = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert!(last.target.is_some());
        std::fs::remove_dir_all(&dir).ok();
    }
}
