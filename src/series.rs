//! The time series of a run: one row per second, streamed to
//! `timeseries.jsonl` in the run folder as it happens.
//!
//! Contract (shared by every engine and by the report renderer):
//! the first line is a [`SeriesHeader`], then one [`Row`] per interval.
//! Counts are for that interval only. Fields that were not measured are
//! `null`, never 0.
//!
//! Two ways to fill it:
//! - [`SeriesRecorder`]: wall-clock runs (HTTP, SQL, Maelstrom). Writers call
//!   [`SeriesRecorder::started`] / [`SeriesRecorder::completed`] /
//!   [`SeriesRecorder::dropped`]; a background thread closes one row per
//!   second and samples converge's and the target's RSS and CPU.
//! - [`SeriesWriter`] + [`Interval`]: simulated runs (in-process,
//!   automerge) that keep their own virtual clock and close rows themselves.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
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

/// Accumulates one interval's counts and latencies (an HDR histogram per
/// interval) and turns them into a [`Row`].
#[derive(Default)]
pub struct Interval {
    row: Row,
    latencies_us: Vec<u64>,
}

impl Interval {
    /// An op was sent.
    pub fn started(&mut self) {
        self.row.started += 1;
    }

    /// An op was answered after `latency`.
    pub fn completed(&mut self, outcome: Completion, latency: Duration) {
        self.row.completed += 1;
        match outcome {
            Completion::Ok => self.row.ok += 1,
            Completion::Fail => self.row.fail += 1,
            Completion::Info => self.row.info += 1,
        }
        self.latencies_us.push(latency.as_micros() as u64);
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
        let mut lat = std::mem::take(&mut self.latencies_us);
        row.t_s = t_s;
        row.stage = stage;
        row.writers = writers;
        row.throughput = if length_s > 0.0 {
            row.completed as f64 / length_s
        } else {
            0.0
        };
        if !lat.is_empty() {
            lat.sort_unstable();
            let at = |q: f64| {
                let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
                lat[i] as f64 / 1000.0
            };
            row.latency_ms = Some(LatencyRow {
                p50: at(0.50),
                p95: at(0.95),
                p99: at(0.99),
                max: at(1.0),
            });
        }
        row
    }
}

/// What a finished wall-clock series adds up to.
#[derive(Clone, Debug, Default)]
pub struct SeriesSummary {
    /// Rows written.
    pub rows: usize,
    /// Arrivals dropped over the run.
    pub dropped: u64,
    /// Ops completed per second over the whole series.
    pub achieved_rate: f64,
    /// converge's RSS, MB, at the end of each row.
    pub converge_rss_mb: Vec<f64>,
    /// The target's RSS, MB, at the end of each row (where measured).
    pub target_rss_mb: Vec<Option<f64>>,
}

struct RecorderState {
    interval: Interval,
    writers: u32,
    stage: Option<usize>,
    /// Roots of the target's process trees (a restart changes them).
    target_roots: Vec<u32>,
}

/// Records a wall-clock run: writers report ops, a background thread closes
/// one row per second into `timeseries.jsonl`. Cheap to clone.
#[derive(Clone)]
pub struct SeriesRecorder {
    state: std::sync::Arc<parking_lot::Mutex<RecorderState>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread:
        std::sync::Arc<parking_lot::Mutex<Option<std::thread::JoinHandle<Result<SeriesSummary>>>>>,
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
            target_roots: Vec::new(),
        }));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let period = Duration::from_secs_f64(header.interval_s.max(0.01));
        let (s, st) = (state.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("converge-series".into())
            .spawn(move || {
                let start = std::time::Instant::now();
                let mut summary = SeriesSummary::default();
                let mut completed = 0u64;
                let ticks = (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64;
                let mut last_cpu: Option<f64> = None;
                let mut last_target_cpu: Option<(Vec<u32>, f64)> = None;
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
                    let (mut row, roots) = {
                        let mut g = s.lock();
                        let (stage, writers) = (g.stage, g.writers);
                        let row = g.interval.close(t_s, length_s, stage, writers);
                        (row, g.target_roots.clone())
                    };
                    let own = crate::child::process_usage(std::process::id(), ticks);
                    row.converge = own.map(|(rss, cpu)| Usage {
                        rss_mb: rss,
                        cpu_pct: last_cpu.map_or(0.0, |l| (cpu - l).max(0.0) / length_s * 100.0),
                    });
                    last_cpu = own.map(|o| o.1);
                    let target: Option<(f64, f64)> = roots
                        .iter()
                        .filter_map(|&r| crate::child::tree_usage(r))
                        .reduce(|a, b| (a.0 + b.0, a.1 + b.1));
                    row.target = target.map(|(rss, cpu)| Usage {
                        rss_mb: rss,
                        cpu_pct: match &last_target_cpu {
                            Some((r, l)) if *r == roots => (cpu - l).max(0.0) / length_s * 100.0,
                            _ => 0.0,
                        },
                    });
                    last_target_cpu = target.map(|t| (roots.clone(), t.1));
                    completed += row.completed;
                    summary.dropped += row.dropped;
                    summary
                        .converge_rss_mb
                        .push(row.converge.map_or(0.0, |u| u.rss_mb));
                    summary.target_rss_mb.push(row.target.map(|u| u.rss_mb));
                    summary.rows += 1;
                    summary.achieved_rate = completed as f64 / t_s.max(1e-9);
                    writer.row(&row)?;
                    if stopping {
                        return Ok(summary);
                    }
                    n += 1;
                }
            })
            .map_err(|e| Error::io("time series thread", e))?;
        Ok(SeriesRecorder {
            state,
            stop,
            thread: std::sync::Arc::new(parking_lot::Mutex::new(Some(thread))),
        })
    }

    /// An op was sent.
    pub fn started(&self) {
        self.state.lock().interval.started();
    }

    /// An op was answered after `latency` (open model: from its intended start).
    pub fn completed(&self, outcome: Completion, latency: Duration) {
        self.state.lock().interval.completed(outcome, latency);
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
        self.state.lock().target_roots = roots;
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
        assert_eq!((lat.p50, lat.max), (51.0, 500.0));
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
}
