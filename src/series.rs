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
