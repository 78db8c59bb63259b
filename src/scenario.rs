//! Scenario files: a whole `converge run` described in TOML.
//!
//! Top-level keys are the flags of `converge run` (snake_case); target
//! specifics live in `[target.<kind>]` tables and SLO gates in `[slo]`. A
//! flag given on the command line overrides the file: [`apply`] only fills
//! fields whose clap value source is not the command line.
//!
//! Extension point: a new target kind adds its own table next to
//! `[target.sql]` and `[target.maelstrom]` in [`TargetTable`] (for example
//! `http: Option<HttpSpec>`), and its `kind` to `cli::run::TargetKind`.
//! Unknown keys, wrong types and missing required keys are refused with the
//! file, line and column, before anything runs.

use crate::cli::run::{RunArgs, TargetKind};
use crate::error::{Error, Result};
use crate::slo::SloSpec;
use crate::target::sql::SqlSpec;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A parsed scenario file. Every field is optional: flags and defaults fill the rest.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the run drives, and its own settings.
    pub target: Option<TargetTable>,
    /// Datatype.
    pub workload: Option<String>,
    /// A faulty in-process model.
    pub fault: Option<String>,
    /// Concurrent writers.
    pub writers: Option<u32>,
    /// Replicas.
    pub replicas: Option<u16>,
    /// Total operations.
    pub ops: Option<u64>,
    /// Seconds of writing (SQL target); the run stops at `ops` or `duration`, whichever comes first.
    pub duration: Option<f64>,
    /// Keys.
    pub keys: Option<u32>,
    /// Fraction of ops on the hot key.
    pub hot_key_ratio: Option<f64>,
    /// Fraction of reads.
    pub read_ratio: Option<f64>,
    /// Fraction of removes.
    pub remove_ratio: Option<f64>,
    /// Fraction of writes sent a second time with the same op id.
    pub retry_fraction: Option<f64>,
    /// Seed.
    pub seed: Option<u64>,
    /// Nemesis specification.
    pub nemesis: Option<String>,
    /// Output directory.
    pub out: Option<PathBuf>,
    /// Output format.
    pub format: Option<crate::cli::Format>,
    /// Anti-entropy bound.
    pub max_rounds: Option<u32>,
    /// Worker threads.
    pub threads: Option<usize>,
    /// Do not shrink.
    pub no_shrink: Option<bool>,
    /// The target claims linearizability.
    pub linearizable: Option<bool>,
    /// Shrinker budget.
    pub shrink_budget: Option<u32>,
    /// SLO gates.
    pub slo: Option<SloSpec>,
}

/// `[target]`: the kind plus one table per target kind.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetTable {
    /// `in-process`, `maelstrom`, `sql`, `http` or `automerge`.
    pub kind: Option<TargetKind>,
    /// `[target.maelstrom]`.
    pub maelstrom: Option<MaelstromTable>,
    /// `[target.sql]`.
    pub sql: Option<SqlSpec>,
    /// `[target.http]`: the same table as an `--http-config` file.
    pub http: Option<crate::target::http::HttpTargetConfig>,
}

/// `[target.maelstrom]`: the maelstrom flags.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaelstromTable {
    /// Node binary.
    pub bin: Option<PathBuf>,
    /// Node arguments.
    pub bin_args: Option<Vec<String>>,
    /// Node processes.
    pub nodes: Option<usize>,
    /// Clients.
    pub clients: Option<usize>,
    /// Requests per second.
    pub rate: Option<f64>,
    /// Seconds of client traffic.
    pub time_limit: Option<f64>,
    /// Mean latency, ms.
    pub latency: Option<f64>,
    /// Latency distribution.
    pub latency_dist: Option<crate::cli::run_maelstrom::LatencyDist>,
    /// Request timeout, s.
    pub request_timeout: Option<f64>,
    /// Quiet window, s.
    pub quiet_window: Option<f64>,
    /// Settle limit, s.
    pub settle_limit: Option<f64>,
}

/// 1-based (line, column) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Reads and parses a scenario file; errors name the file, line and key.
pub fn load(path: &Path) -> Result<Scenario> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(&text, path)
}

/// Parses scenario text (`path` only names it in errors).
pub fn parse(text: &str, path: &Path) -> Result<Scenario> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| line_col(text, s.start));
        let message = e.message().trim().to_string();
        match at {
            Some((line, col)) => Error::Config(format!(
                "scenario {}:{line}:{col}: {message}",
                path.display()
            )),
            None => Error::Config(format!("scenario {}: {message}", path.display())),
        }
    })?;
    if let Some(sql) = scenario.target.as_ref().and_then(|t| t.sql.as_ref()) {
        sql.validate_templates(text, path)?;
    }
    if let Some(slo) = &scenario.slo {
        slo.validate()
            .map_err(|m| Error::Config(format!("scenario {}: [slo] {m}", path.display())))?;
    }
    Ok(scenario)
}

/// Fills every field of `args` not given on the command line from the scenario.
/// `explicit` holds the clap ids of the flags the user typed.
/// Every id the file fills is added to `args.explicit`, so target-specific
/// defaults apply only to settings nobody gave.
pub fn apply(scenario: Scenario, args: &mut RunArgs, explicit: &BTreeSet<String>) {
    let given = |id: &str| explicit.contains(id);
    let mut filled: Vec<&str> = Vec::new();
    macro_rules! fill {
        ($src:expr, $($field:ident),*) => {$(
            if !given(stringify!($field)) {
                if let Some(v) = $src.$field {
                    args.$field = v;
                    filled.push(stringify!($field));
                }
            }
        )*};
    }
    macro_rules! fill_opt {
        ($src:expr, $($field:ident),*) => {$(
            if !given(stringify!($field)) {
                if let Some(v) = $src.$field {
                    args.$field = Some(v);
                    filled.push(stringify!($field));
                }
            }
        )*};
    }
    let s = scenario;
    fill!(s, writers, replicas, hot_key_ratio, remove_ratio);
    fill!(
        s,
        nemesis,
        format,
        max_rounds,
        no_shrink,
        linearizable,
        shrink_budget
    );
    fill!(s, retry_fraction);
    fill_opt!(s, workload, fault, read_ratio, seed, out, threads, duration, ops, keys);
    let target = s.target.unwrap_or_default();
    if !given("target") {
        if let Some(kind) = target.kind {
            args.target = kind;
        } else if target.sql.is_some() {
            args.target = TargetKind::Sql;
        } else if target.http.is_some() {
            args.target = TargetKind::Http;
        }
    }
    if let Some(m) = target.maelstrom {
        fill!(
            m,
            bin_args,
            nodes,
            clients,
            rate,
            time_limit,
            latency,
            latency_dist
        );
        fill!(m, request_timeout, quiet_window, settle_limit);
        fill_opt!(m, bin);
    }
    args.sql = target.sql;
    args.http = target.http;
    args.explicit.extend(filled.into_iter().map(String::from));
    if let Some(slo) = s.slo {
        // Gates from flags win over the file's, gate by gate.
        args.slo_spec = slo.overridden_by(&args.slo_spec);
    }
}
