//! Reports: `report.json` (stable schema), `report.md` (human summary with an
//! acceptance table) and the terminal summary; [`Report::write`] also
//! renders `report.html`, `junit.xml` and `summary.md` ([`crate::render`]).

use crate::checker::{overall, Check, Judged};
use crate::error::{Error, Result};
use crate::history::{History, NetworkStats, SCHEMA_VERSION};
use crate::metrics::{self, Latency};
use crate::slo::{SloRow, SloSpec};
use crate::verdict::Verdict;
use converge_models::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Operation and finding counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportCounts {
    /// All operations.
    pub ops: u64,
    /// `ok` operations.
    pub ok: u64,
    /// `fail` operations.
    pub fail: u64,
    /// `info` operations.
    pub info: u64,
    /// Updates concurrent with at least one other update to the same
    /// element (key, set element, map field); `null` when the target
    /// records no causal order to measure it by.
    pub conflicts: Option<u64>,
    /// `conflicts` as a share of the updates it was measured over.
    #[serde(default)]
    pub conflict_share: Option<f64>,
    /// Acknowledged updates missing, plus unexpected values, plus duplicate reads.
    pub data_loss_events: u64,
    /// Idempotency probes that changed a state.
    pub idempotency_violations: u64,
    /// Duplicate message copies that reached a replica.
    pub duplicates_delivered: u64,
}

/// Memory figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Peak resident set size of the verifier, MB (`null` offline).
    pub rss_peak_mb: Option<f64>,
    /// Resident set growth over the run, MB (`null` offline).
    pub rss_growth_mb: Option<f64>,
    /// In-memory history size per operation, bytes.
    pub history_bytes_per_op: f64,
    /// Peak resident set size of the service under test, MB, when converge
    /// started it and could sample it (`null` otherwise).
    #[serde(default)]
    pub service_rss_peak_mb: Option<f64>,
    /// converge's figures from the time series (`null` without one).
    #[serde(default)]
    pub converge: Option<crate::series::MemoryFigures>,
    /// The target's figures from the time series (`null` when converge
    /// could not measure it: in-process, or a service it did not start
    /// and was not told about with `--target-pid` / `--target-cgroup`).
    #[serde(default)]
    pub target: Option<crate::series::MemoryFigures>,
}

/// Figures of a service converge started itself, sampled from /proc.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceFigures {
    /// Peak resident set size, MB.
    pub rss_peak_mb: f64,
    /// Mean resident set size over the samples, MB.
    pub rss_mean_mb: f64,
    /// CPU seconds (user + system) used during the run.
    pub cpu_s: f64,
    /// Samples taken.
    pub samples: u64,
    /// Kill-and-restart cycles (the `crash` fault).
    pub restarts: u32,
}

/// A shrunk failing run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counterexample {
    /// Path of its history.
    pub history: String,
    /// Command that reproduces it.
    pub reproduce: String,
    /// Writers in the minimal run.
    pub writers: u32,
    /// Operations in the minimal run.
    pub ops: u64,
    /// Keys in the minimal run.
    pub keys: u32,
    /// Nemesis of the minimal run.
    pub nemesis: String,
    /// Checks that failed in it.
    pub violated: Vec<String>,
    /// Shrinking attempts made.
    pub attempts: u32,
}

/// One entry of `checks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckEntry {
    /// Checker name.
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// What it judged out of what there was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged: Option<Judged>,
    /// True when it judged nothing or was skipped: never a pass.
    #[serde(default)]
    pub not_judged: bool,
    /// Summary, counts and findings.
    pub details: serde_json::Value,
}

impl CheckEntry {
    /// True when the check judged something.
    pub fn judged(&self) -> bool {
        !self.not_judged
    }

    /// The verdict as a reader should see it: `not judged` for a check that
    /// judged nothing.
    pub fn shown_verdict(&self) -> &'static str {
        if self.not_judged {
            "not judged"
        } else {
            self.verdict.as_str()
        }
    }

    /// `judged/total of`, or empty.
    pub fn shown_judged(&self) -> String {
        self.judged
            .as_ref()
            .map_or(String::new(), |j| j.to_string())
    }

    /// [`Self::shown_judged`] as a table cell: `-` when the check counts none.
    pub fn judged_cell(&self) -> String {
        let judged = self.shown_judged();
        if judged.is_empty() {
            "-".into()
        } else {
            judged
        }
    }
}

/// `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Format version.
    pub schema_version: u32,
    /// Overall verdict.
    pub verdict: Verdict,
    /// Run seed.
    pub seed: u64,
    /// Target kind.
    pub target: String,
    /// Workload.
    pub workload: String,
    /// Model name (reference or fault).
    pub model: String,
    /// Fault name, when the model is a faulty variant.
    pub fault: Option<String>,
    /// Writers.
    pub writers: u32,
    /// Replicas.
    pub replicas: u16,
    /// Keys.
    pub keys: u32,
    /// Nemesis specification.
    pub nemesis: String,
    /// What the nemesis did.
    pub nemesis_log: Vec<String>,
    /// Counts.
    pub counts: ReportCounts,
    /// Latency over all ops, ms.
    pub latency_ms: Latency,
    /// Latency per op kind, ms.
    pub latency_by_kind_ms: BTreeMap<String, Latency>,
    /// Operations per second over the writing phase.
    pub throughput_ops_s: f64,
    /// (fail + info) / ops.
    pub error_rate: f64,
    /// fail / ops.
    pub fail_rate: f64,
    /// info / ops.
    pub info_rate: f64,
    /// From heal until all replicas were equal, ms (`null` if never).
    pub convergence_ms: Option<f64>,
    /// Convergence after the heal in simulation steps (deterministic
    /// targets only; set by the run, `null` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convergence_steps: Option<ConvergenceSteps>,
    /// Whether anti-entropy reached quiescence.
    pub quiescent: Option<bool>,
    /// Anti-entropy rounds run.
    pub anti_entropy_rounds: Option<u32>,
    /// Memory.
    pub memory: Memory,
    /// Network counters.
    pub network: Option<NetworkStats>,
    /// Network messages sent per operation (the message cost of the protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_op: Option<f64>,
    /// Check results.
    pub checks: Vec<CheckEntry>,
    /// Shrunk counterexample, on an invalid verdict.
    pub counterexample: Option<Counterexample>,
    /// Command that reproduces this run.
    pub reproduce: String,
    /// Wall time of the writing phase, s (`null` offline).
    pub write_phase_s: Option<f64>,
    /// Wall time of the whole run, s (`null` offline).
    pub duration_s: Option<f64>,
    /// SLO gates, evaluated on measured figures (see [`Report::apply_slo`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slo: Vec<SloRow>,
    /// The service under test, when converge started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceFigures>,
    /// The load shape the run was driven with and what it achieved
    /// (`null` offline: a history alone does not say).
    #[serde(default)]
    pub load: Option<LoadFigures>,
}

/// The load of a run: what was asked and what was achieved.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadFigures {
    /// `closed` or `open`.
    pub model: String,
    /// `wall`, or `virtual` for the simulated targets (their seconds are
    /// virtual seconds: see `crate::vload`).
    pub clock: String,
    /// The stages, in order.
    pub stages: Vec<StageFigure>,
    /// Open model: ops per second asked for, averaged over the run's
    /// length; `null` for the closed model (it asks for writers, not a rate).
    pub target_rate: Option<f64>,
    /// Ops completed per second of writing (in the run's clock).
    pub achieved_rate: Option<f64>,
    /// Open model: arrivals that found no free writer.
    pub dropped: u64,
    /// Most writers active at once.
    pub writers_peak: u32,
}

/// One stage of a load shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageFigure {
    /// Length, s.
    pub duration_s: f64,
    /// Writers (closed) or ops per second (open) at its end.
    pub target: f64,
}

impl LoadFigures {
    /// The figures of a run driven by `spec` in `clock`.
    pub fn of(
        spec: &crate::load::LoadSpec,
        clock: &str,
        achieved_rate: Option<f64>,
        dropped: u64,
        writers_peak: u32,
    ) -> LoadFigures {
        LoadFigures {
            model: spec.model.name().into(),
            clock: clock.into(),
            stages: spec
                .stages
                .iter()
                .map(|s| StageFigure {
                    duration_s: s.duration.as_secs_f64(),
                    target: s.target,
                })
                .collect(),
            target_rate: spec.mean_rate(),
            achieved_rate,
            dropped,
            writers_peak,
        }
    }
}

/// How a simulated run converged after the heal, in its own units: what
/// `convergence_ms` took, independent of the machine's speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvergenceSteps {
    /// Network ticks from the heal until every replica held the same state.
    pub ticks: u64,
    /// Op messages delivered in those ticks.
    pub messages: u64,
    /// Anti-entropy rounds it took on top (0 when the ticks sufficed).
    pub rounds: u32,
}

impl ConvergenceSteps {
    fn describe(&self) -> String {
        format!(
            "{} ticks, {} messages, {} anti-entropy rounds",
            self.ticks, self.messages, self.rounds
        )
    }
}

/// Figures only a live run knows.
#[derive(Clone, Debug, Default)]
pub struct LiveFigures {
    /// Writing phase, s.
    pub write_phase_s: f64,
    /// Whole run, s.
    pub duration_s: f64,
    /// RSS before the run, MB.
    pub rss_start_mb: f64,
    /// What the nemesis did.
    pub nemesis_log: Vec<String>,
}

impl Report {
    /// Builds the report from a history and its checks.
    pub fn build(history: &History, checks: &[Check], live: Option<&LiveFigures>) -> Report {
        let ops = metrics::from_history(history);
        let header = history.header.clone();
        let get = |name: &str, key: &str| {
            checks
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.counts.get(key).copied())
                .unwrap_or(0)
        };
        let data_loss = get("data-loss", "lost")
            + get("data-loss", "unexpected")
            + get("data-loss", "duplicates_in_reads");
        let n = ops.counts.ops.max(1) as f64;
        // (conflicts, updates) where the conflicts check measured them.
        let conflicts = checks
            .iter()
            .find(|c| c.name == "conflicts" && !c.not_judged)
            .and_then(|c| Some((*c.counts.get("conflicts")?, *c.counts.get("updates")?)));
        let rss = metrics::rss_mb();
        let (model, fault) = match &header {
            Some(h) => {
                let faulty = converge_models::model_info(&h.model).is_some_and(|m| m.faulty);
                (h.model.clone(), faulty.then(|| h.model.clone()))
            }
            None => (String::new(), None),
        };
        let throughput = match live {
            Some(l) if l.write_phase_s > 0.0 => ops.counts.ops as f64 / l.write_phase_s,
            _ if ops.span_s > 0.0 => ops.counts.ops as f64 / ops.span_s,
            _ => 0.0,
        };
        Report {
            schema_version: SCHEMA_VERSION,
            verdict: overall(checks),
            seed: header.as_ref().map_or(0, |h| h.seed),
            target: header.as_ref().map_or(String::new(), |h| h.target.clone()),
            workload: header
                .as_ref()
                .map_or(String::new(), |h| h.workload.name().to_string()),
            model,
            fault,
            writers: header.as_ref().map_or(0, |h| h.writers),
            replicas: header.as_ref().map_or(0, |h| h.replicas),
            keys: header.as_ref().map_or(0, |h| h.keys),
            nemesis: header.as_ref().map_or(String::new(), |h| h.nemesis.clone()),
            nemesis_log: live.map(|l| l.nemesis_log.clone()).unwrap_or_default(),
            counts: ReportCounts {
                ops: ops.counts.ops,
                ok: ops.counts.ok,
                fail: ops.counts.fail,
                info: ops.counts.info,
                conflicts: conflicts.map(|(c, _)| c),
                conflict_share: conflicts.map(|(c, u)| c as f64 / u.max(1) as f64),
                data_loss_events: data_loss,
                idempotency_violations: get("idempotency", "violations"),
                duplicates_delivered: history.network.map_or(0, |n| n.duplicates_delivered),
            },
            latency_ms: ops.latency,
            latency_by_kind_ms: ops.latency_by_kind,
            throughput_ops_s: throughput,
            error_rate: (ops.counts.fail + ops.counts.info) as f64 / n,
            fail_rate: ops.counts.fail as f64 / n,
            info_rate: ops.counts.info as f64 / n,
            convergence_ms: history
                .quiescence
                .and_then(|q| q.convergence_ns)
                .map(|ns| ns as f64 / 1e6),
            convergence_steps: None,
            quiescent: history.quiescence.map(|q| q.reached),
            anti_entropy_rounds: history.quiescence.map(|q| q.rounds),
            memory: Memory {
                rss_peak_mb: live.and(rss.map(|r| r.1)),
                rss_growth_mb: live.and_then(|l| rss.map(|r| (r.0 - l.rss_start_mb).max(0.0))),
                history_bytes_per_op: history.bytes_per_op(),
                service_rss_peak_mb: None,
                converge: None,
                target: None,
            },
            load: None,
            network: history.network,
            messages_per_op: history
                .network
                .filter(|_| !history.ops.is_empty())
                .map(|n| n.sent as f64 / history.ops.len() as f64),
            checks: checks
                .iter()
                .map(|c| CheckEntry {
                    name: c.name.clone(),
                    verdict: c.verdict,
                    judged: c.judged.clone(),
                    not_judged: c.not_judged,
                    details: serde_json::json!({
                        "summary": c.summary,
                        "counts": c.counts,
                        "findings": c.findings,
                        "findings_total": c.findings_total,
                    }),
                })
                .collect(),
            counterexample: None,
            reproduce: header
                .as_ref()
                .map_or(String::new(), |h| h.reproduce.clone()),
            write_phase_s: live.map(|l| l.write_phase_s),
            duration_s: live.map(|l| l.duration_s),
            slo: Vec::new(),
            service: None,
        }
    }

    /// Evaluates the SLO gates and folds them into the verdict: a missed
    /// gate makes the run invalid, an unmeasured one unknown.
    pub fn apply_slo(&mut self, spec: &SloSpec) {
        self.slo = spec.evaluate(self);
        for row in &self.slo {
            self.verdict = self.verdict.and(row.status);
        }
    }

    /// Takes the memory figures of a finished time series.
    pub fn attach_series(&mut self, summary: &crate::series::SeriesSummary) {
        self.memory.converge = summary.converge_memory;
        self.memory.target = summary.target_memory;
    }

    /// Names of the checks that are invalid.
    pub fn violated(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::Invalid)
            .map(|c| c.name.clone())
            .collect()
    }

    /// Writes `report.json` and `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json_path = dir.join("report.json");
        let json =
            serde_json::to_string_pretty(self).map_err(|e| Error::io(&json_path, e.into()))?;
        let json = crate::secrets::mask(&json) + "\n";
        std::fs::write(&json_path, json.as_bytes()).map_err(|e| Error::io(&json_path, e))?;
        self.write_rendered(dir)
    }

    /// Writes everything rendered from the report into `dir`: `report.md`,
    /// and `report.html`, `junit.xml` and `summary.md` (see
    /// [`crate::render`]); `converge report DIR` calls this alone.
    pub fn write_rendered(&self, dir: &Path) -> Result<()> {
        let md_path = dir.join("report.md");
        let md = crate::secrets::mask(&self.markdown()).into_owned();
        std::fs::write(&md_path, md).map_err(|e| Error::io(&md_path, e))?;
        crate::render::write_run(self, dir)
    }

    /// Acceptance rows: (metric, target, actual, passed). A check that
    /// judged nothing, and a figure of such a check, is never a pass.
    pub fn acceptance(&self) -> Vec<(String, String, String, Option<bool>)> {
        let check = |name: &str| self.checks.iter().find(|c| c.name == name);
        let verdict_row = |name: &str, what: &str| {
            let c = check(name);
            (
                what.to_string(),
                "valid".to_string(),
                c.map_or("not run".into(), |c| {
                    let judged = c.shown_judged();
                    if judged.is_empty() {
                        c.shown_verdict().to_string()
                    } else {
                        format!("{} ({judged} judged)", c.shown_verdict())
                    }
                }),
                c.and_then(|c| match c.verdict {
                    Verdict::Valid if c.judged() => Some(true),
                    Verdict::Invalid => Some(false),
                    _ => None,
                }),
            )
        };
        // A count is a figure only when its check judged something and decided.
        let figure_row = |name: &str, what: &str, n: u64| {
            let decided = check(name).filter(|c| c.judged());
            match decided.map(|c| c.verdict) {
                Some(Verdict::Valid) | Some(Verdict::Invalid) => (
                    what.to_string(),
                    "0".to_string(),
                    n.to_string(),
                    Some(n == 0),
                ),
                Some(Verdict::Unknown) => (what.into(), "0".into(), "unknown".into(), None),
                None => (
                    what.into(),
                    "0".into(),
                    check(name).map_or("not run", |_| "not judged").into(),
                    None,
                ),
            }
        };
        let mut rows = vec![
            verdict_row(
                "convergence",
                "convergence (all replicas equal after quiescence)",
            ),
            verdict_row("data-loss", "zero data loss"),
            verdict_row("idempotency", "idempotency"),
            figure_row(
                "data-loss",
                "data-loss events",
                self.counts.data_loss_events,
            ),
            figure_row(
                "idempotency",
                "idempotency violations",
                self.counts.idempotency_violations,
            ),
            (
                "quiescence reached".into(),
                "yes".into(),
                match self.quiescent {
                    Some(true) => "yes".into(),
                    Some(false) => format!("no ({} rounds)", self.anti_entropy_rounds.unwrap_or(0)),
                    None => "never reached the final phase".into(),
                },
                self.quiescent,
            ),
        ];
        rows.extend(self.slo.iter().map(|g| {
            (
                format!("SLO {}", g.metric),
                g.target.clone(),
                g.actual
                    .map_or("not measured".into(), |a| format!("{a:.4}")),
                match g.status {
                    Verdict::Valid => Some(true),
                    Verdict::Invalid => Some(false),
                    Verdict::Unknown => None,
                },
            )
        }));
        rows
    }

    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# converge report: {}\n",
            self.verdict.as_str().to_uppercase()
        );
        let _ = writeln!(
            md,
            "- workload `{}`, model `{}`{}, target `{}`",
            self.workload,
            self.model,
            self.fault
                .as_ref()
                .map_or(String::new(), |_| " (faulty variant)".into()),
            self.target
        );
        let _ = writeln!(
            md,
            "- {} writers, {} replicas, {} keys, nemesis `{}`, seed `{}`",
            self.writers, self.replicas, self.keys, self.nemesis, self.seed
        );
        let _ = writeln!(md, "- reproduce: `{}`\n", self.reproduce);
        let _ = writeln!(md, "{}\n", self.verdict_explained());
        let _ = writeln!(
            md,
            "## Acceptance\n\n| metric | target | actual | status |\n|---|---|---|---|"
        );
        for (metric, target, actual, passed) in self.acceptance() {
            let status = match passed {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "unknown",
            };
            let _ = writeln!(md, "| {metric} | {target} | {actual} | {status} |");
        }
        let _ = writeln!(
            md,
            "\n## Checks\n\n| check | verdict | judged | summary |\n|---|---|---|---|"
        );
        for c in &self.checks {
            let summary = c
                .details
                .get("summary")
                .and_then(|s| s.as_str())
                .unwrap_or("");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                c.name,
                c.shown_verdict(),
                c.judged_cell(),
                summary
            );
        }
        for c in self.checks.iter().filter(|c| c.verdict == Verdict::Invalid) {
            let _ = writeln!(md, "\n### {} findings\n", c.name);
            if let Some(findings) = c.details.get("findings").and_then(|f| f.as_array()) {
                for f in findings {
                    let _ = writeln!(md, "- `{f}`");
                }
            }
        }
        let l = &self.latency_ms;
        let _ = writeln!(md, "\n## Measurements\n\n| figure | value |\n|---|---|");
        let rows = [
            (
                "operations (ok / fail / info)",
                format!(
                    "{} ({} / {} / {})",
                    self.counts.ops, self.counts.ok, self.counts.fail, self.counts.info
                ),
            ),
            ("throughput", format!("{:.0} ops/s", self.throughput_ops_s)),
            (
                "latency p50 / p95 / p99 / p999 / max",
                format!(
                    "{:.4} / {:.4} / {:.4} / {:.4} / {:.4} ms",
                    l.p50, l.p95, l.p99, l.p999, l.max
                ),
            ),
            (
                "error rate (fail / info)",
                format!(
                    "{:.4} ({:.4} / {:.4})",
                    self.error_rate, self.fail_rate, self.info_rate
                ),
            ),
            (
                "convergence time after heal",
                self.convergence_ms
                    .map_or("never".into(), |ms| format!("{ms:.2} ms"))
                    + &self
                        .convergence_steps
                        .map_or(String::new(), |c| format!(" ({})", c.describe())),
            ),
            (
                "conflicts (updates concurrent with another update of the same element)",
                self.conflicts_shown(),
            ),
            (
                "duplicates delivered",
                self.counts.duplicates_delivered.to_string(),
            ),
            (
                "peak RSS / growth",
                match (self.memory.rss_peak_mb, self.memory.rss_growth_mb) {
                    (Some(p), Some(g)) => format!("{p:.1} MB / {g:.1} MB"),
                    _ => "not measured (offline check)".into(),
                },
            ),
            (
                "history in memory",
                format!("{:.1} bytes/op", self.memory.history_bytes_per_op),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        if let Some(s) = &self.service {
            let _ = writeln!(
                md,
                "| service RSS peak / mean | {:.1} MB / {:.1} MB |\n| service CPU | {:.2} s ({} samples, {} restarts) |",
                s.rss_peak_mb, s.rss_mean_mb, s.cpu_s, s.samples, s.restarts
            );
        }
        if !self.latency_by_kind_ms.is_empty() {
            let _ = writeln!(md, "\n| op | count | p50 ms | p75 | p95 | p99 | p999 | max |\n|---|---|---|---|---|---|---|---|");
            for (kind, l) in &self.latency_by_kind_ms {
                let _ = writeln!(
                    md,
                    "| {kind} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
                    l.count, l.p50, l.p75, l.p95, l.p99, l.p999, l.max
                );
            }
        }
        if self.memory.converge.is_some() || self.memory.target.is_some() {
            let _ = writeln!(
                md,
                "\n## Memory (time series)\n\n| process | initial MB | peak MB | final MB | growth MB | leak slope MB/min |\n|---|---|---|---|---|---|"
            );
            for (who, m) in [
                ("converge", self.memory.converge),
                ("target", self.memory.target),
            ] {
                let _ = match m {
                    Some(m) => writeln!(
                        md,
                        "| {who} | {:.1} | {:.1} | {:.1} | {:+.1} | {} |",
                        m.initial_mb,
                        m.peak_mb,
                        m.final_mb,
                        m.growth_mb,
                        m.leak_slope_mb_per_min
                            .map_or("not measured (too few samples)".into(), |s| format!(
                                "{s:+.2}"
                            ))
                    ),
                    None => writeln!(md, "| {who} | not measured | | | | |"),
                };
            }
            let _ = writeln!(
                md,
                "\nThe leak slope is a least-squares fit of RSS over time on the steady part of the run: \
                 the samples after the first {:.0}% of its time (warm-up); with fewer than {} samples there it is not measured.",
                crate::series::WARMUP_FRACTION * 100.0,
                crate::series::MIN_SLOPE_POINTS
            );
        }
        if let Some(cx) = &self.counterexample {
            let _ = writeln!(
                md,
                "\n## Minimal counterexample\n\n{} writers, {} ops, {} keys, nemesis `{}` still violate {:?} (after {} attempts).\n\n- history: `{}`\n- reproduce: `{}`",
                cx.writers, cx.ops, cx.keys, cx.nemesis, cx.violated, cx.attempts, cx.history, cx.reproduce
            );
        }
        if !self.nemesis_log.is_empty() {
            let _ = writeln!(md, "\n## Nemesis\n");
            for line in &self.nemesis_log {
                let _ = writeln!(md, "- {line}");
            }
        }
        md
    }

    /// `conflicts` with its share of updates, or why it is missing.
    pub fn conflicts_shown(&self) -> String {
        match (self.counts.conflicts, self.counts.conflict_share) {
            (Some(c), Some(share)) => format!("{c} ({:.1}% of updates)", share * 100.0),
            (Some(c), None) => c.to_string(),
            _ => "not measured (the target records no causal order)".into(),
        }
    }

    /// One paragraph on what the verdict means and what it rests on.
    pub fn verdict_explained(&self) -> String {
        let not_judged: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| c.not_judged)
            .map(|c| c.name.as_str())
            .collect();
        let mut text = match self.verdict {
            Verdict::Valid => "**Valid**: every check that judged something found nothing wrong, and convergence and data loss were both judged.".to_string(),
            Verdict::Invalid => format!(
                "**Invalid**: a violation was found ({}); see the findings below.",
                {
                    let v = self.violated();
                    if v.is_empty() {
                        "an SLO gate was missed".to_string()
                    } else {
                        v.join(", ")
                    }
                }
            ),
            Verdict::Unknown => "**Unknown**: converge could not decide; nothing was found wrong, but a check that the verdict needs was not judged or could not decide (see its summary).".to_string(),
        };
        if !not_judged.is_empty() {
            let _ = write!(
                text,
                " Not judged (not counted as a pass): {}.",
                not_judged.join(", ")
            );
        }
        text
    }

    /// A short terminal summary.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "verdict: {}", self.verdict);
        for c in &self.checks {
            let summary = c
                .details
                .get("summary")
                .and_then(|s| s.as_str())
                .unwrap_or("");
            let judged = c.shown_judged();
            let _ = writeln!(
                s,
                "  {:<12} {:<10} {}{}",
                c.name,
                c.shown_verdict(),
                summary,
                if judged.is_empty() {
                    String::new()
                } else {
                    format!(" [{judged} judged]")
                }
            );
            if c.verdict == Verdict::Invalid {
                if let Some(first) = c
                    .details
                    .get("findings")
                    .and_then(|f| f.as_array())
                    .and_then(|f| f.first())
                {
                    let _ = writeln!(s, "               first finding: {first}");
                }
            }
        }
        let _ = writeln!(
            s,
            "ops: {} (ok {}, fail {}, info {})  throughput: {:.0} ops/s  p50/p95/p99: {:.4}/{:.4}/{:.4} ms",
            self.counts.ops, self.counts.ok, self.counts.fail, self.counts.info,
            self.throughput_ops_s, self.latency_ms.p50, self.latency_ms.p95, self.latency_ms.p99
        );
        for g in &self.slo {
            let _ = writeln!(
                s,
                "  slo {:<22} {:<8} target {}, actual {}",
                g.metric,
                g.status.as_str(),
                g.target,
                g.actual
                    .map_or("not measured".into(), |a| format!("{a:.4}"))
            );
        }
        let _ = writeln!(
            s,
            "conflicts: {}  duplicates delivered: {}  convergence: {}  peak RSS: {}",
            self.conflicts_shown(),
            self.counts.duplicates_delivered,
            self.convergence_ms
                .map_or("never".into(), |ms| format!("{ms:.2} ms"))
                + &self
                    .convergence_steps
                    .map_or(String::new(), |c| format!(" ({})", c.describe())),
            self.memory
                .rss_peak_mb
                .map_or("n/a".into(), |m| format!("{m:.1} MB"))
        );
        s
    }
}

/// A value abbreviated for findings: long element lists are cut.
pub fn short_value(value: &Value) -> String {
    const SHOW: usize = 12;
    match value {
        Value::Int(v) => v.to_string(),
        Value::Elems(e) if e.len() > SHOW => {
            format!("{:?} ... ({} elements)", &e[..SHOW], e.len())
        }
        Value::Elems(e) => format!("{e:?}"),
        Value::Map(m) if m.len() > SHOW => format!("{:?} ... ({} fields)", &m[..SHOW], m.len()),
        Value::Map(m) => format!("{m:?}"),
    }
}
