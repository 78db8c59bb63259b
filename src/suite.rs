//! Suites: named scenarios run in order against one target, judged
//! against acceptance criteria.
//!
//! ```toml
//! [suite]
//! name = "acceptance"
//! stop_on_failure = false     # default: one failing scenario does not stop the others
//! # seed = 7                  # given to every scenario that sets none
//! # [suite.target]            # the one target, for scenarios without a [target]
//!
//! [criteria]                  # every scenario must meet these
//! p95_ms = 300
//! data_loss = 0
//!
//! [[scenarios]]
//! name = "sustained"
//! file = "acceptance-sustained.toml"   # relative to the suite file
//! criteria = { p95_ms = 500 }          # overrides, criterion by criterion
//!
//! [[scenarios]]
//! name = "quick"
//! [scenarios.run]                      # or an inline scenario table
//! workload = "pn-counter"
//! ```
//!
//! Each scenario runs as a child `converge run` into `<suite dir>/<name>/`;
//! the suite then reads its `report.json` and `timeseries.jsonl`. What the
//! suite ran is stored in `suite.json`, so `converge report DIR` renders
//! the acceptance report again without re-running anything.

use crate::error::{Error, Result};
use crate::report::Report;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of the stored suite record.
pub const RECORD: &str = "suite.json";

/// Acceptance criteria; absent means not judged by the suite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    /// Latency p95 at most this, ms.
    pub p95_ms: Option<f64>,
    /// Peak RSS of converge at most this, MB.
    pub max_rss_mb: Option<f64>,
    /// Peak RSS of the target at most this, MB.
    pub service_max_rss_mb: Option<f64>,
    /// Data-loss events at most this.
    pub data_loss: Option<f64>,
    /// (fail + info) / ops at most this.
    pub error_rate: Option<f64>,
    /// Idempotency violations at most this.
    pub idempotency_violations: Option<f64>,
    /// Convergence time after the heal at most this, ms.
    pub convergence_ms: Option<f64>,
    /// converge's RSS slope at most this, MB per minute.
    pub leak_slope_mb_per_min: Option<f64>,
    /// The target's RSS slope at most this, MB per minute.
    pub service_leak_slope_mb_per_min: Option<f64>,
}

/// Criterion ids and how the tables name them, in table order.
pub const CRITERIA: [(&str, &str); 9] = [
    ("p95_ms", "P95 latency (ms)"),
    ("max_rss_mb", "converge memory, peak (MB)"),
    ("service_max_rss_mb", "target memory, peak (MB)"),
    ("data_loss", "CRDT data loss (events)"),
    ("error_rate", "error rate"),
    ("idempotency_violations", "idempotency violations"),
    ("convergence_ms", "convergence time after heal (ms)"),
    ("leak_slope_mb_per_min", "converge leak slope (MB/min)"),
    (
        "service_leak_slope_mb_per_min",
        "target leak slope (MB/min)",
    ),
];

impl Criteria {
    /// The threshold of criterion `id`.
    pub fn get(&self, id: &str) -> Option<f64> {
        match id {
            "p95_ms" => self.p95_ms,
            "max_rss_mb" => self.max_rss_mb,
            "service_max_rss_mb" => self.service_max_rss_mb,
            "data_loss" => self.data_loss,
            "error_rate" => self.error_rate,
            "idempotency_violations" => self.idempotency_violations,
            "convergence_ms" => self.convergence_ms,
            "leak_slope_mb_per_min" => self.leak_slope_mb_per_min,
            "service_leak_slope_mb_per_min" => self.service_leak_slope_mb_per_min,
            _ => None,
        }
    }

    /// These criteria, each overridden by `over`'s where it sets one.
    pub fn overridden_by(&self, over: &Criteria) -> Criteria {
        Criteria {
            p95_ms: over.p95_ms.or(self.p95_ms),
            max_rss_mb: over.max_rss_mb.or(self.max_rss_mb),
            service_max_rss_mb: over.service_max_rss_mb.or(self.service_max_rss_mb),
            data_loss: over.data_loss.or(self.data_loss),
            error_rate: over.error_rate.or(self.error_rate),
            idempotency_violations: over.idempotency_violations.or(self.idempotency_violations),
            convergence_ms: over.convergence_ms.or(self.convergence_ms),
            leak_slope_mb_per_min: over.leak_slope_mb_per_min.or(self.leak_slope_mb_per_min),
            service_leak_slope_mb_per_min: over
                .service_leak_slope_mb_per_min
                .or(self.service_leak_slope_mb_per_min),
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        for (id, _) in CRITERIA {
            if let Some(v) = self.get(id) {
                if !v.is_finite() || (v < 0.0 && !id.contains("slope")) {
                    return Err(format!("{id} = {v}: give a finite number >= 0"));
                }
            }
        }
        Ok(())
    }
}

/// `[suite]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteTable {
    /// Name (default: the file's stem).
    pub name: Option<String>,
    /// Stop at the first scenario that fails.
    #[serde(default)]
    pub stop_on_failure: bool,
    /// Seed for scenarios that set none.
    pub seed: Option<u64>,
    /// The target, for scenarios without a `[target]` table.
    pub target: Option<toml::Table>,
}

/// One `[[scenarios]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioEntry {
    /// Name: the scenario's folder in the suite's.
    pub name: String,
    /// A scenario file, relative to the suite file.
    pub file: Option<PathBuf>,
    /// An inline scenario.
    pub run: Option<toml::Table>,
    /// Criteria overrides.
    #[serde(default)]
    pub criteria: Criteria,
}

/// A suite file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// `[suite]`.
    pub suite: SuiteTable,
    /// `[criteria]`.
    #[serde(default)]
    pub criteria: Criteria,
    /// `[[scenarios]]`.
    #[serde(default)]
    pub scenarios: Vec<ScenarioEntry>,
}

/// A scenario ready to run: its name, its scenario text and where it came from.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Name.
    pub name: String,
    /// The scenario file to give the child: the original, or one written
    /// into the scenario's folder (inline, or merged with the suite's target).
    pub source: Source,
    /// Criteria in force for it.
    pub criteria: Criteria,
}

/// Where a prepared scenario's text lives.
#[derive(Clone, Debug)]
pub enum Source {
    /// An existing file, used as it is.
    File(PathBuf),
    /// Text to write to `<scenario dir>/scenario.toml`.
    Text(String),
}

/// Whether a TOML file is a suite (it has a `[suite]` table).
pub fn is_suite(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("suite"))
}

/// Parses a suite and prepares its scenarios; every scenario is checked as
/// `converge run --scenario` would before anything runs.
pub fn load(path: &Path) -> Result<(SuiteFile, Vec<Prepared>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let suite: SuiteFile = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| crate::scenario::line_col(&text, s.start));
        let message = e.message().trim().to_string();
        match at {
            Some((l, c)) => Error::Config(format!("suite {}:{l}:{c}: {message}", path.display())),
            None => Error::Config(format!("suite {}: {message}", path.display())),
        }
    })?;
    let bad = |m: String| Error::Config(format!("suite {}: {m}", path.display()));
    suite
        .criteria
        .validate()
        .map_err(|m| bad(format!("[criteria] {m}")))?;
    if suite.scenarios.is_empty() {
        return Err(bad("no [[scenarios]]".into()));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut names = std::collections::BTreeSet::new();
    let mut prepared = Vec::new();
    for entry in &suite.scenarios {
        let name = &entry.name;
        let safe = !name.is_empty()
            && name.len() <= 100
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !safe {
            return Err(bad(format!(
                "scenario name '{name}': use letters, digits, '-', '_' or '.' (it names a folder)"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(bad(format!("scenario name '{name}' is used twice")));
        }
        entry
            .criteria
            .validate()
            .map_err(|m| bad(format!("scenario {name}: criteria: {m}")))?;
        let (mut table, file) = match (&entry.file, &entry.run) {
            (Some(f), None) => {
                let file = base.join(f);
                let t = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
                let table: toml::Table = toml::from_str(&t).map_err(|e| {
                    bad(format!(
                        "scenario {name}: {}: {}",
                        file.display(),
                        e.message()
                    ))
                })?;
                (table, Some(file))
            }
            (None, Some(run)) => (run.clone(), None),
            _ => {
                return Err(bad(format!(
                    "scenario {name}: give exactly one of `file` or a [scenarios.run] table"
                )))
            }
        };
        let mut merged = false;
        if let (Some(target), false) = (&suite.suite.target, table.contains_key("target")) {
            table.insert("target".into(), toml::Value::Table(target.clone()));
            merged = true;
        }
        if let (Some(seed), false) = (suite.suite.seed, table.contains_key("seed")) {
            let seed = i64::try_from(seed).map_err(|_| bad(format!("seed {seed} is too large")))?;
            table.insert("seed".into(), toml::Value::Integer(seed));
            merged = true;
        }
        let source = match file {
            Some(f) if !merged => Source::File(f),
            _ => Source::Text(
                toml::to_string(&table)
                    .map_err(|e| bad(format!("scenario {name}: cannot write it back: {e}")))?,
            ),
        };
        let check_text = match &source {
            Source::File(f) => std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?,
            Source::Text(t) => t.clone(),
        };
        let shown = match &source {
            Source::File(f) => f.clone(),
            Source::Text(_) => PathBuf::from(format!("{}#{name}", path.display())),
        };
        crate::scenario::parse(&check_text, &shown)?;
        prepared.push(Prepared {
            name: name.clone(),
            source,
            criteria: suite.criteria.overridden_by(&entry.criteria),
        });
    }
    Ok((suite, prepared))
}

/// What the suite ran, stored as `suite.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SuiteRecord {
    /// Format version.
    pub suite_version: u32,
    /// Name.
    pub name: String,
    /// The suite file.
    pub file: String,
    /// Suite-level criteria.
    pub criteria: Criteria,
    /// Whether the suite stops at the first failure.
    pub stop_on_failure: bool,
    /// The scenarios, in order.
    pub scenarios: Vec<ScenarioRecord>,
    /// Where it ran.
    pub environment: Environment,
    /// Start, UTC.
    pub started: String,
}

/// One scenario of a suite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioRecord {
    /// Name (its folder in the suite's).
    pub name: String,
    /// Criteria in force.
    pub criteria: Criteria,
    /// The command that ran it.
    pub command: Vec<String>,
    /// Its exit code; `None` when it did not run.
    pub exit_code: Option<i32>,
    /// Why it did not run.
    pub not_run: Option<String>,
    /// Wall time, s.
    pub wall_s: Option<f64>,
}

/// The machine and versions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Environment {
    /// converge's version.
    pub converge_version: String,
    /// Kernel release.
    pub os: Option<String>,
    /// CPU model.
    pub cpu: Option<String>,
    /// Logical CPUs.
    pub cpus: Option<usize>,
    /// Total memory, MB.
    pub memory_mb: Option<f64>,
}

impl Environment {
    /// This machine, from /proc.
    pub fn here() -> Environment {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        Environment {
            converge_version: env!("CARGO_PKG_VERSION").to_string(),
            os: read("/proc/sys/kernel/osrelease").map(|s| format!("Linux {}", s.trim())),
            cpu: read("/proc/cpuinfo").and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            }),
            cpus: std::thread::available_parallelism().ok().map(|n| n.get()),
            memory_mb: read("/proc/meminfo").and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb / 1024.0)
            }),
        }
    }
}

/// A UTC timestamp `YYYYmmdd-HHMMSS` (and `YYYY-mm-dd HH:MM:SS` when `human`).
pub fn utc_now(human: bool) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    if human {
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
    } else {
        format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
    }
}

/// One evaluated criterion of one scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    /// Criterion id (`checks` for the scenario's own verdict).
    pub id: &'static str,
    /// Threshold, shown (`≤ 300`).
    pub target: String,
    /// The figure, when measured.
    pub actual: Option<f64>,
    /// The figure shown, or "not measured (why)".
    pub shown: String,
    /// Met, missed, or not measured.
    pub status: Verdict,
}

/// A scenario's stored outputs, as read back.
pub struct Loaded {
    /// Its `report.json`, typed.
    pub report: Report,
    /// The same, as JSON (for blocks newer than this build's schema).
    pub value: serde_json::Value,
    /// Its time series.
    pub series: crate::render::Series,
}

/// Reads `dir/report.json` and the time series, or says why it cannot.
pub fn read_scenario(dir: &Path) -> std::result::Result<Loaded, String> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("no report.json ({e})"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("report.json is not JSON ({e})"))?;
    let report: Report = serde_json::from_value(value.clone())
        .map_err(|e| format!("report.json is not a converge report ({e})"))?;
    Ok(Loaded {
        report,
        value,
        series: crate::render::read_series(dir),
    })
}

/// A check's figure is a measurement only when the check judged and decided.
fn decided(report: &Report, check: &str) -> std::result::Result<(), String> {
    match report.checks.iter().find(|c| c.name == check) {
        None => Err(format!("the {check} check did not run")),
        Some(c) if c.not_judged => Err(format!("the {check} check judged nothing")),
        Some(c) if c.verdict == Verdict::Unknown => {
            Err(format!("the {check} check could not decide"))
        }
        Some(_) => Ok(()),
    }
}

/// Judges one scenario against its criteria: the scenario's own verdict
/// first (`checks`), then every criterion set.
pub fn judge(loaded: &Loaded, criteria: &Criteria) -> Vec<Judgement> {
    let r = &loaded.report;
    let mut out = vec![Judgement {
        id: "checks",
        target: "valid".into(),
        actual: None,
        shown: r.verdict.as_str().into(),
        status: r.verdict,
    }];
    let conv = crate::render::memory(&loaded.value, &loaded.series.rows, false);
    let tgt = crate::render::memory(&loaded.value, &loaded.series.rows, true);
    let why_conv = crate::render::memory_missing_why(&loaded.value, &loaded.series, false);
    let why_tgt = crate::render::memory_missing_why(&loaded.value, &loaded.series, true);
    let slope_why = |m: &crate::render::MemFigures, why: &str| {
        if loaded.series.missing.is_none() && m.peak.is_some() {
            "not measured (fewer than 5 RSS samples)".to_string()
        } else {
            why.to_string()
        }
    };
    let no_ops = "not measured (no operation completed)".to_string();
    for (id, _) in CRITERIA {
        let Some(limit) = criteria.get(id) else {
            continue;
        };
        let figure: std::result::Result<f64, String> = match id {
            "p95_ms" if r.counts.ops > 0 => Ok(r.latency_ms.p95),
            "error_rate" if r.counts.ops > 0 => Ok(r.error_rate),
            "p95_ms" | "error_rate" => Err(no_ops.clone()),
            "max_rss_mb" => conv.peak.ok_or(why_conv.clone()),
            "service_max_rss_mb" => tgt.peak.ok_or(why_tgt.clone()),
            "data_loss" => decided(r, "data-loss")
                .map(|_| r.counts.data_loss_events as f64)
                .map_err(|w| format!("not measured ({w})")),
            "idempotency_violations" => decided(r, "idempotency")
                .map(|_| r.counts.idempotency_violations as f64)
                .map_err(|w| format!("not measured ({w})")),
            "convergence_ms" => match r.convergence_ms {
                Some(ms) => Ok(ms),
                None if r
                    .checks
                    .iter()
                    .any(|c| c.name == "convergence" && c.verdict == Verdict::Invalid) =>
                {
                    Ok(f64::INFINITY)
                }
                None => Err("not measured (replicas were never seen equal after the heal)".into()),
            },
            "leak_slope_mb_per_min" => conv.leak_slope.ok_or(slope_why(&conv, &why_conv)),
            _ => tgt.leak_slope.ok_or(slope_why(&tgt, &why_tgt)),
        };
        let digits = match id {
            "error_rate" => 4,
            "data_loss" | "idempotency_violations" => 0,
            _ => 3,
        };
        out.push(match figure {
            Ok(v) => Judgement {
                id,
                target: format!("≤ {}", trim_num(limit)),
                actual: v.is_finite().then_some(v),
                shown: if v.is_finite() {
                    format!("{v:.digits$}")
                } else {
                    "never (replicas diverged)".into()
                },
                status: if v <= limit {
                    Verdict::Valid
                } else {
                    Verdict::Invalid
                },
            },
            Err(why) => Judgement {
                id,
                target: format!("≤ {}", trim_num(limit)),
                actual: None,
                shown: why,
                status: Verdict::Unknown,
            },
        });
    }
    out
}

/// A threshold without trailing zeros.
pub fn trim_num(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The command that runs one scenario into `dir`.
pub fn child_command(file: &Path, dir: &Path) -> Vec<String> {
    vec![
        "converge".into(),
        "run".into(),
        "--scenario".into(),
        file.display().to_string(),
        "--out".into(),
        dir.display().to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_criterion_by_criterion() {
        let suite = Criteria {
            p95_ms: Some(300.0),
            data_loss: Some(0.0),
            ..Criteria::default()
        };
        let over = Criteria {
            p95_ms: Some(500.0),
            ..Criteria::default()
        };
        let c = suite.overridden_by(&over);
        assert_eq!((c.p95_ms, c.data_loss), (Some(500.0), Some(0.0)));
    }

    #[test]
    fn timestamps_are_civil_dates() {
        let t = utc_now(false);
        assert_eq!(t.len(), 15, "{t}");
        assert!(t.starts_with("20"), "{t}");
    }

    #[test]
    fn a_suite_is_told_by_its_suite_table() {
        assert!(is_suite("[suite]\nname = \"x\"\n"));
        assert!(!is_suite("workload = \"or-set\"\n"));
        assert!(!is_suite("not toml ["));
    }
}
