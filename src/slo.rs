//! SLO gates: thresholds on measured figures, declared in a scenario's
//! `[slo]` table or with `--slo NAME=VALUE`. A gate whose figure was not
//! measured is `unknown`: it never passes by default. A missed gate makes
//! the run invalid.
//!
//! `require = ["data-loss", "idempotency"]` (or `--slo require=data-loss,idempotency`)
//! demands that those checks judged something: a required check that was
//! not judged, or did not run, fails its gate.

use crate::error::{Error, Result};
use crate::report::Report;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};

/// The gates a run must meet. Every field is optional; absent means no gate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Latency p50 at most this, ms.
    pub p50_ms: Option<f64>,
    /// Latency p95 at most this, ms.
    pub p95_ms: Option<f64>,
    /// Latency p99 at most this, ms.
    pub p99_ms: Option<f64>,
    /// Peak RSS of converge itself at most this, MB.
    pub max_rss_mb: Option<f64>,
    /// Peak RSS of the service under test at most this, MB (when converge can measure it).
    pub service_max_rss_mb: Option<f64>,
    /// Data-loss events at most this (normally 0).
    pub data_loss: Option<f64>,
    /// (fail + info) / ops at most this.
    pub error_rate: Option<f64>,
    /// Idempotency violations at most this (normally 0).
    pub idempotency_violations: Option<f64>,
    /// Throughput at least this, ops/s.
    pub min_throughput: Option<f64>,
    /// converge's RSS growth over the run (final - initial, from the time
    /// series) at most this, MB.
    pub memory_growth_mb: Option<f64>,
    /// converge's leak slope (least squares of RSS over the steady part of
    /// the run, see [`crate::series::leak_slope`]) at most this, MB/min.
    pub leak_slope_mb_per_min: Option<f64>,
    /// The target's RSS growth over the run at most this, MB (when
    /// converge measures the target).
    pub service_memory_growth_mb: Option<f64>,
    /// The target's leak slope at most this, MB/min (when converge
    /// measures the target).
    pub service_leak_slope_mb_per_min: Option<f64>,
    /// Checks that must have judged something (names as in the report).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "check_names"
    )]
    pub require: Vec<String>,
}

/// Deserializes `require`, refusing names that are not checks.
fn check_names<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    validate_required(&names).map_err(serde::de::Error::custom)?;
    Ok(names)
}

/// Refuses a required name that is no check's.
fn validate_required(names: &[String]) -> std::result::Result<(), String> {
    match names
        .iter()
        .find(|n| !crate::checker::CHECK_NAMES.contains(&n.as_str()))
    {
        Some(bad) => Err(format!(
            "require: '{bad}' is not a check (checks: {})",
            crate::checker::CHECK_NAMES.join(", ")
        )),
        None => Ok(()),
    }
}

/// One evaluated gate: a row of the acceptance table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloRow {
    /// Gate name, as in the scenario.
    pub metric: String,
    /// The threshold, with its comparison (`<= 300`).
    pub target: String,
    /// The measured figure; `None` when it was not measured.
    pub actual: Option<f64>,
    /// `valid` (met), `invalid` (missed) or `unknown` (not measured).
    pub status: Verdict,
}

/// Gate names, in table order, with their direction (true: the figure must be at most the target).
const GATES: [(&str, bool); 13] = [
    ("p50_ms", true),
    ("p95_ms", true),
    ("p99_ms", true),
    ("max_rss_mb", true),
    ("service_max_rss_mb", true),
    ("data_loss", true),
    ("error_rate", true),
    ("idempotency_violations", true),
    ("min_throughput", false),
    ("memory_growth_mb", true),
    ("leak_slope_mb_per_min", true),
    ("service_memory_growth_mb", true),
    ("service_leak_slope_mb_per_min", true),
];

impl SloSpec {
    fn slot(&mut self, name: &str) -> Option<&mut Option<f64>> {
        Some(match name {
            "p50_ms" => &mut self.p50_ms,
            "p95_ms" => &mut self.p95_ms,
            "p99_ms" => &mut self.p99_ms,
            "max_rss_mb" => &mut self.max_rss_mb,
            "service_max_rss_mb" => &mut self.service_max_rss_mb,
            "data_loss" => &mut self.data_loss,
            "error_rate" => &mut self.error_rate,
            "idempotency_violations" => &mut self.idempotency_violations,
            "min_throughput" => &mut self.min_throughput,
            "memory_growth_mb" => &mut self.memory_growth_mb,
            "leak_slope_mb_per_min" => &mut self.leak_slope_mb_per_min,
            "service_memory_growth_mb" => &mut self.service_memory_growth_mb,
            "service_leak_slope_mb_per_min" => &mut self.service_leak_slope_mb_per_min,
            _ => return None,
        })
    }

    fn get(&self, name: &str) -> Option<f64> {
        self.clone().slot(name).and_then(|s| *s)
    }

    /// Parses `--slo NAME=VALUE` flags.
    pub fn parse_flags(flags: &[String]) -> Result<SloSpec> {
        let mut spec = SloSpec::default();
        for flag in flags {
            let (name, value) = flag.split_once('=').ok_or_else(|| {
                Error::Config(format!(
                    "--slo {flag}: expected NAME=VALUE, e.g. p95_ms=300"
                ))
            })?;
            if name.trim() == "require" {
                let names: Vec<String> = value
                    .split(',')
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect();
                validate_required(&names)
                    .map_err(|m| Error::Config(format!("--slo {flag}: {m}")))?;
                spec.require.extend(names);
                continue;
            }
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|_| Error::Config(format!("--slo {flag}: '{value}' is not a number")))?;
            if !value.is_finite() || value < 0.0 {
                return Err(Error::Config(format!(
                    "--slo {flag}: must be a finite number >= 0"
                )));
            }
            let names: Vec<&str> = GATES.iter().map(|g| g.0).collect();
            *spec.slot(name.trim()).ok_or_else(|| {
                Error::Config(format!(
                    "--slo {flag}: unknown gate '{name}' (gates: {})",
                    names.join(", ")
                ))
            })? = Some(value);
        }
        Ok(spec)
    }

    /// Every gate must be a finite number >= 0 (a gate set from a file
    /// skips [`SloSpec::parse_flags`]); the error names the first that is not.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, _) in GATES {
            if let Some(value) = self.get(name).filter(|v| !v.is_finite() || *v < 0.0) {
                return Err(format!("{name} = {value}: must be a finite number >= 0"));
            }
        }
        Ok(())
    }

    /// This spec with every gate `other` sets replaced by `other`'s, and
    /// the checks either requires.
    pub fn overridden_by(mut self, other: &SloSpec) -> SloSpec {
        for (name, _) in GATES {
            if let Some(v) = other.get(name) {
                *self.slot(name).expect("gate names are slots") = Some(v);
            }
        }
        for name in &other.require {
            if !self.require.contains(name) {
                self.require.push(name.clone());
            }
        }
        self
    }

    /// True when no gate is set.
    pub fn is_empty(&self) -> bool {
        GATES.iter().all(|(name, _)| self.get(name).is_none()) && self.require.is_empty()
    }

    /// Evaluates every gate against the report's measured figures, then
    /// every required check: judged (its own verdict counts separately) or
    /// a missed gate.
    pub fn evaluate(&self, report: &Report) -> Vec<SloRow> {
        let required = self.require.iter().map(|name| {
            let check = report.checks.iter().find(|c| &c.name == name);
            let judged = check.is_some_and(|c| c.judged());
            SloRow {
                metric: format!("require {name}"),
                target: "judged".into(),
                // How many items it judged (0 when it judged nothing or
                // did not run); `None` when the check gives no count.
                actual: match check {
                    None => Some(0.0),
                    Some(c) if !c.judged() => Some(0.0),
                    Some(c) => c.judged.as_ref().map(|j| j.judged as f64),
                },
                status: if judged {
                    Verdict::Valid
                } else {
                    Verdict::Invalid
                },
            }
        });
        let gates: Vec<SloRow> = GATES
            .iter()
            .filter_map(|&(name, at_most)| {
                let target = self.get(name)?;
                let actual = measured(report, name);
                let status = match actual {
                    None => Verdict::Unknown,
                    Some(a) if (at_most && a <= target) || (!at_most && a >= target) => {
                        Verdict::Valid
                    }
                    Some(_) => Verdict::Invalid,
                };
                Some(SloRow {
                    metric: name.to_string(),
                    target: format!("{} {target}", if at_most { "<=" } else { ">=" }),
                    actual,
                    status,
                })
            })
            .collect();
        gates.into_iter().chain(required).collect()
    }
}

/// The figure a gate reads, if the run measured it.
fn measured(report: &Report, gate: &str) -> Option<f64> {
    // A figure of a check counts only when the check judged something and
    // decided: "0 lost" from a check that judged nothing is no figure.
    let check_ran = |name: &str| {
        report
            .checks
            .iter()
            .any(|c| c.name == name && c.judged() && c.verdict != Verdict::Unknown)
    };
    let has_ops = report.counts.ops > 0;
    match gate {
        "p50_ms" => has_ops.then_some(report.latency_ms.p50),
        "p95_ms" => has_ops.then_some(report.latency_ms.p95),
        "p99_ms" => has_ops.then_some(report.latency_ms.p99),
        "max_rss_mb" => report.memory.rss_peak_mb,
        "service_max_rss_mb" => report
            .memory
            .service_rss_peak_mb
            .or(report.memory.target.map(|m| m.peak_mb)),
        "data_loss" => check_ran("data-loss").then_some(report.counts.data_loss_events as f64),
        "error_rate" => has_ops.then_some(report.error_rate),
        "idempotency_violations" => {
            check_ran("idempotency").then_some(report.counts.idempotency_violations as f64)
        }
        "min_throughput" => {
            (has_ops && report.write_phase_s.is_some()).then_some(report.throughput_ops_s)
        }
        // From the time series; a slope with too few samples is no figure.
        "memory_growth_mb" => report.memory.converge.map(|m| m.growth_mb),
        "leak_slope_mb_per_min" => report.memory.converge.and_then(|m| m.leak_slope_mb_per_min),
        "service_memory_growth_mb" => report.memory.target.map(|m| m.growth_mb),
        "service_leak_slope_mb_per_min" => {
            report.memory.target.and_then(|m| m.leak_slope_mb_per_min)
        }
        _ => None,
    }
}
