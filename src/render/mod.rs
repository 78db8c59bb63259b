//! Rendered outputs of a run or a suite: `report.html` (self-contained,
//! inline SVG charts), `junit.xml` (one test case per check) and
//! `summary.md` (for a CI step summary); for a suite also `acceptance.md`.
//!
//! Everything here reads what a run stored (`report.json`,
//! `timeseries.jsonl`, `history.jsonl`), so `converge report DIR` renders
//! the same files again without re-running anything. A figure that was not
//! measured is shown as "not measured (why)", never as 0.

pub mod acceptance;
pub mod charts;
pub mod html;
pub mod junit;

use crate::error::{Error, Result};
use crate::report::Report;
use crate::series::Row;
use serde_json::Value;
use std::path::Path;

/// The time series of a run folder, or why there is none.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// The header line, when the file has one.
    pub header: Option<Value>,
    /// The rows, in order.
    pub rows: Vec<Row>,
    /// Why there are no rows.
    pub missing: Option<String>,
}

/// Most rows read from one `timeseries.jsonl` (a day at one row a second):
/// a bound on memory for a file that is not what it claims.
const MAX_ROWS: usize = 86_400;

/// Reads `dir/timeseries.jsonl`. Lines that do not parse (a line cut short
/// by a kill) are skipped; a missing file is a reason, not an error.
pub fn read_series(dir: &Path) -> Series {
    let path = dir.join(crate::series::FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Series {
                missing: Some("this run wrote no timeseries.jsonl".into()),
                ..Series::default()
            }
        }
        Err(e) => {
            return Series {
                missing: Some(format!("cannot read timeseries.jsonl: {e}")),
                ..Series::default()
            }
        }
    };
    let mut series = Series::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if value.get("timeseries").is_some() {
            series.header = Some(value);
        } else if let Ok(row) = serde_json::from_value::<Row>(value) {
            if series.rows.len() < MAX_ROWS {
                series.rows.push(row);
            }
        }
    }
    if series.rows.is_empty() {
        series.missing = Some("timeseries.jsonl holds no rows".into());
    }
    series
}

/// Memory figures of one process over a run, MB.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MemFigures {
    /// At the start.
    pub initial: Option<f64>,
    /// Highest.
    pub peak: Option<f64>,
    /// At the end.
    pub final_: Option<f64>,
    /// final - initial.
    pub growth: Option<f64>,
    /// Least-squares slope of RSS over time, MB per minute.
    pub leak_slope: Option<f64>,
}

/// Least-squares slope of (t_s, mb) in MB per minute; `None` under 5
/// samples or a zero time span (too few to tell a leak from noise).
pub fn slope_per_min(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 5 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx * 60.0)
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// Memory figures of converge (`target == false`) or of the target: the
/// `memory` block of `report.json` when it has the per-process form, else
/// the older flat fields, with gaps filled from the time series.
pub fn memory(report: &Value, rows: &[Row], target: bool) -> MemFigures {
    let block = report
        .get("memory")
        .and_then(|m| m.get(if target { "target" } else { "converge" }))
        .filter(|b| b.is_object());
    let mut m = MemFigures::default();
    if let Some(b) = block {
        m.initial = num(b, "initial_mb");
        m.peak = num(b, "peak_mb");
        m.final_ = num(b, "final_mb");
        m.growth = num(b, "growth_mb");
        m.leak_slope = num(b, "leak_slope_mb_per_min");
    } else if !target {
        let flat = report.get("memory");
        m.peak = flat.and_then(|f| num(f, "rss_peak_mb"));
        m.growth = flat.and_then(|f| num(f, "rss_growth_mb"));
    } else {
        m.peak = report
            .get("memory")
            .and_then(|f| num(f, "service_rss_peak_mb"))
            .or_else(|| report.get("service").and_then(|s| num(s, "rss_peak_mb")));
    }
    let points: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            let u = if target { r.target } else { r.converge };
            u.map(|u| (r.t_s, u.rss_mb))
        })
        .collect();
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        m.initial = m.initial.or(Some(first.1));
        m.final_ = m.final_.or(Some(last.1));
        let series_peak = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        m.peak = Some(m.peak.map_or(series_peak, |p| p.max(series_peak)));
        if m.growth.is_none() {
            m.growth = Some(last.1 - first.1);
        }
        m.leak_slope = m.leak_slope.or_else(|| slope_per_min(&points));
    }
    m
}

/// Why a memory figure of converge or the target is missing.
pub fn memory_missing_why(report: &Value, series: &Series, target: bool) -> String {
    if target {
        if report.get("target").and_then(Value::as_str) == Some("in-process") {
            return "not measured (the in-process target runs inside converge)".into();
        }
        let sampled = report.get("service").is_some_and(|s| !s.is_null())
            || report
                .get("memory")
                .and_then(|m| m.get("target"))
                .is_some_and(Value::is_object)
            || series.rows.iter().any(|r| r.target.is_some());
        if !sampled {
            return "not measured (converge did not start the target, so it cannot sample it)"
                .into();
        }
    }
    match &series.missing {
        Some(why) => format!("not measured ({why})"),
        None => "not measured (no RSS samples)".into(),
    }
}

/// Formats `Some(x)` with `digits` decimals, or the reason it is missing.
pub fn fig(value: Option<f64>, digits: usize, why: &str) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => format!("not measured ({why})"),
    }
}

/// Load figures: (model, target rate, achieved rate, dropped), each `None`
/// when the run's `report.json` has no `load` block or left it null.
pub fn load(report: &Value) -> (Option<String>, Option<f64>, Option<f64>, Option<u64>) {
    let Some(l) = report.get("load").filter(|l| l.is_object()) else {
        return (None, None, None, None);
    };
    (
        l.get("model").and_then(Value::as_str).map(String::from),
        num(l, "target_rate"),
        num(l, "achieved_rate"),
        l.get("dropped").and_then(Value::as_u64),
    )
}

/// A history line of an op: (op id, invoke line, completion line), 1-based.
pub type OpLines = (u64, Option<usize>, Option<usize>);

/// Line numbers in `history.jsonl` of the ops at `indices` (indices into
/// the history's ops, which are in completion order). Reads the file once;
/// keeps only the invocations still open, so memory stays bounded by the
/// run's concurrency.
pub fn op_lines(history: &Path, indices: &[usize]) -> std::collections::BTreeMap<usize, OpLines> {
    use std::io::BufRead;
    let mut found = std::collections::BTreeMap::new();
    if indices.is_empty() {
        return found;
    }
    let Ok(file) = std::fs::File::open(history) else {
        return found;
    };
    let wanted: std::collections::BTreeSet<usize> = indices.iter().copied().collect();
    let last = *wanted.iter().next_back().unwrap_or(&0);
    let mut open: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    let mut completed = 0usize;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let (Some(kind), Some(op)) = (
            v.get("type").and_then(Value::as_str),
            v.get("op").and_then(Value::as_u64),
        ) else {
            continue;
        };
        match kind {
            "invoke" => {
                open.insert(op, i + 1);
            }
            "ok" | "fail" | "info" => {
                let invoked = open.remove(&op);
                if wanted.contains(&completed) {
                    found.insert(completed, (op, invoked, Some(i + 1)));
                }
                completed += 1;
                if completed > last {
                    break;
                }
            }
            _ => {}
        }
    }
    found
}

/// Writes `report.html`, `junit.xml` and `summary.md` of a run into `dir`
/// from its report (and the `timeseries.jsonl` and `history.jsonl` there).
pub fn write_run(report: &Report, dir: &Path) -> Result<()> {
    let value = serde_json::to_value(report).map_err(|e| Error::Config(e.to_string()))?;
    let series = read_series(dir);
    let page = html::run_page(report, &value, &series, dir);
    write(dir, "report.html", &page)?;
    let suite = junit::suite_for_run(&report_name(report, dir), report);
    write(dir, "junit.xml", &junit::document("converge", &[suite]))?;
    write(dir, "summary.md", &summary(report))?;
    Ok(())
}

/// A run's name in JUnit and the suite: its folder's name.
pub fn report_name(report: &Report, dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != ".")
        .unwrap_or_else(|| report.model.clone())
}

/// Writes one output file, secrets masked.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    let text = crate::secrets::mask(text);
    std::fs::write(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))
}

/// Markdown for a CI step summary: the verdict, the checks and the gates.
pub fn summary(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let icon = match report.verdict {
        crate::Verdict::Valid => "✅",
        crate::Verdict::Invalid => "❌",
        crate::Verdict::Unknown => "❔",
    };
    let _ = writeln!(
        md,
        "### {icon} converge: {} — `{}` on `{}` (seed {})\n",
        report.verdict.as_str().to_uppercase(),
        report.workload,
        report.target,
        report.seed
    );
    let _ = writeln!(md, "{}\n", report.verdict_explained());
    let _ = writeln!(md, "| check | verdict | judged |\n|---|---|---|");
    for c in &report.checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            c.name,
            c.shown_verdict(),
            c.judged_cell()
        );
    }
    let _ = writeln!(
        md,
        "\n| metric | target | actual | status |\n|---|---|---|---|"
    );
    for (metric, target, actual, passed) in report.acceptance() {
        let _ = writeln!(
            md,
            "| {metric} | {target} | {actual} | {} |",
            status_word(passed)
        );
    }
    let l = &report.latency_ms;
    let _ = writeln!(
        md,
        "\n{} ops ({} ok, {} fail, {} info), {:.0} ops/s, latency p50/p95/p99 {:.3}/{:.3}/{:.3} ms. Details: `report.html`, `report.md`.",
        report.counts.ops,
        report.counts.ok,
        report.counts.fail,
        report.counts.info,
        report.throughput_ops_s,
        l.p50,
        l.p95,
        l.p99
    );
    if report.verdict != crate::Verdict::Valid && !report.reproduce.is_empty() {
        let _ = writeln!(md, "\nReproduce: `{}`", report.reproduce);
    }
    md
}

/// `pass` / `FAIL` / `unknown` for an acceptance row.
pub fn status_word(passed: Option<bool>) -> &'static str {
    match passed {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "unknown",
    }
}

/// Re-renders a stored run folder: `report.md` and the outputs of
/// [`write_run`], from its `report.json`; returns the run's verdict.
pub fn rerender_run(dir: &Path) -> Result<crate::Verdict> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let report: Report = serde_json::from_str(&text).map_err(|e| {
        Error::Config(format!(
            "{}: not a converge report.json: {e}",
            path.display()
        ))
    })?;
    report.write_rendered(dir)?;
    Ok(report.verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_needs_five_samples_and_finds_a_leak() {
        assert_eq!(slope_per_min(&[(1.0, 1.0), (2.0, 2.0)]), None);
        let leak: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 100.0 + i as f64)).collect();
        let s = slope_per_min(&leak).unwrap();
        assert!((s - 60.0).abs() < 1e-9, "{s}");
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 100.0)).collect();
        assert_eq!(slope_per_min(&flat), Some(0.0));
    }

    #[test]
    fn memory_prefers_the_block_and_falls_back_to_flat_fields() {
        let block = serde_json::json!({"memory": {"converge": {"initial_mb": 1.0, "peak_mb": 5.0,
            "final_mb": 2.0, "growth_mb": 1.0, "leak_slope_mb_per_min": 0.5}, "target": null}});
        let m = memory(&block, &[], false);
        assert_eq!(
            (m.initial, m.peak, m.leak_slope),
            (Some(1.0), Some(5.0), Some(0.5))
        );
        assert_eq!(memory(&block, &[], true), MemFigures::default());
        let flat = serde_json::json!({"memory": {"rss_peak_mb": 7.0, "rss_growth_mb": 2.0}});
        let m = memory(&flat, &[], false);
        assert_eq!((m.peak, m.growth, m.initial), (Some(7.0), Some(2.0), None));
    }
}
