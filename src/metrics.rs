//! Run metrics: HDR latency percentiles per op kind, throughput, error rates,
//! memory. Latencies are computed from the history, so `converge check`
//! reports the same figures offline.

use crate::history::{Function, History, Outcome};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Operations measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
    /// Mean (`null` when no op was measured, and in reports written before
    /// it was recorded).
    #[serde(default)]
    pub mean: Option<f64>,
}

/// Operation counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// All operations.
    pub ops: u64,
    /// Completed `ok`.
    pub ok: u64,
    /// Completed `fail`.
    pub fail: u64,
    /// Completed `info`.
    pub info: u64,
}

/// Latencies and counts derived from a history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpMetrics {
    /// Counts by outcome.
    pub counts: Counts,
    /// All operations together.
    pub latency: Latency,
    /// Per op kind (`add`, `read`, ...).
    pub latency_by_kind: BTreeMap<String, Latency>,
    /// From first invocation to last completion, in seconds.
    pub span_s: f64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .expect("1 ns to 1 hour at 3 significant digits are valid static bounds")
}

fn summarize(h: &Histogram<u64>) -> Latency {
    let ms = |ns: u64| ns as f64 / 1e6;
    Latency {
        count: h.len(),
        p50: ms(h.value_at_quantile(0.50)),
        p75: ms(h.value_at_quantile(0.75)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: (!h.is_empty()).then(|| h.mean() / 1e6),
    }
}

/// Computes op metrics from a history.
pub fn from_history(history: &History) -> OpMetrics {
    let mut all = new_histogram();
    let mut by_kind: BTreeMap<Function, Histogram<u64>> = BTreeMap::new();
    let mut counts = Counts::default();
    let (mut first, mut last) = (u64::MAX, 0u64);
    for op in &history.ops {
        counts.ops += 1;
        match op.outcome {
            Outcome::Ok => counts.ok += 1,
            Outcome::Fail => counts.fail += 1,
            Outcome::Info => counts.info += 1,
        }
        let latency = op.latency_ns.max(1);
        all.saturating_record(latency);
        by_kind
            .entry(op.f)
            .or_insert_with(new_histogram)
            .saturating_record(latency);
        first = first.min(op.invoke_ns);
        last = last.max(op.invoke_ns.saturating_add(op.latency_ns));
    }
    OpMetrics {
        counts,
        latency: summarize(&all),
        latency_by_kind: by_kind
            .iter()
            .map(|(f, h)| (format!("{f:?}").to_lowercase(), summarize(h)))
            .collect(),
        span_s: if last > first {
            (last - first) as f64 / 1e9
        } else {
            0.0
        },
    }
}

/// Resident set size of this process, from /proc: (current, peak) in MB.
pub fn rss_mb() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU seconds (user + system) used by this process itself, and by its
/// children that have been waited for, from `getrusage`.
pub fn cpu_seconds() -> (f64, f64) {
    let usage = |who| {
        // SAFETY: getrusage fills the zeroed struct we own.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut u) } != 0 {
            return 0.0;
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(u.ru_utime) + secs(u.ru_stime)
    };
    (usage(libc::RUSAGE_SELF), usage(libc::RUSAGE_CHILDREN))
}

/// Derives an `Ord` for [`Function`] so it can key a map.
impl PartialOrd for Function {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Function {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}
