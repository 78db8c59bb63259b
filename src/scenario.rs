//! Scenario files: a whole `converge run` described in TOML.
//!
//! Top-level keys are the flags of `converge run` (snake_case); target
//! specifics live in `[target.<kind>]` tables and SLO gates in `[slo]`. A
//! flag given on the command line overrides the file: [`apply`] only fills
//! fields whose clap value source is not the command line.
//!
//! One format for every target: `[target.maelstrom]`, `[target.sql]`,
//! `[target.http]` and `[target.automerge]`; a table alone says which
//! target runs (or `kind`). Extension point: a new target kind adds its own
//! table next to them in [`TargetTable`], and its `kind` to
//! `cli::run::TargetKind`.
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
    /// How long to write (`"30s"`, `"2m"`, or seconds); the run stops at
    /// `ops` or `duration`, whichever comes first.
    pub duration: Option<crate::load::DurationSpec>,
    /// Load model: `"closed"` (default) or `"open"`.
    pub load: Option<crate::load::LoadModel>,
    /// Open model: ops per second.
    pub rate: Option<f64>,
    /// Open model: the writer pool's cap.
    pub max_writers: Option<u32>,
    /// Closed model: pause between one writer's ops (`"100ms"`).
    pub think_time: Option<crate::load::DurationSpec>,
    /// `[[stages]]`: `duration` and `target` (writers, or ops per second).
    pub stages: Option<Vec<crate::load::StageSpec>>,
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
    /// Anti-entropy bound (in-process and automerge targets).
    pub max_rounds: Option<u32>,
    /// Black-box targets: agreeing final reads unchanged this many seconds have converged.
    pub quiet_window: Option<f64>,
    /// Black-box targets: disagreeing final reads unchanged this many seconds have diverged.
    pub stall_window: Option<f64>,
    /// Black-box targets: bound on the final wait, seconds.
    pub settle_limit: Option<f64>,
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
    /// `[target.automerge]`.
    pub automerge: Option<AutomergeTable>,
}

/// `[target.automerge]`: the automerge target's own settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomergeTable {
    /// A broken sync wrapper (`automerge-drop-sync`,
    /// `automerge-replace-on-merge`; see `converge list faults`).
    pub fault: Option<String>,
    /// Bound on the final sync phase, in rounds, before the verdict is unknown.
    pub max_rounds: Option<u32>,
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
    /// Broadcast topology: grid, line, total, tree2, tree3, tree4.
    pub topology: Option<String>,
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
    if crate::suite::is_suite(text) {
        return Err(Error::Config(format!(
            "{} is a suite (it has a [suite] table): run it with `converge run {}` (or `converge suite`)",
            path.display(),
            path.display()
        )));
    }
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
    resolve_durations(&scenario)
        .map_err(|m| Error::Config(format!("scenario {}: {m}", path.display())))?;
    if let Some(slo) = &scenario.slo {
        slo.validate()
            .map_err(|m| Error::Config(format!("scenario {}: [slo] {m}", path.display())))?;
    }
    Ok(scenario)
}

/// The scenario's durations and stages, checked.
struct ResolvedDurations {
    duration: Option<std::time::Duration>,
    think_time: Option<std::time::Duration>,
    stages: Vec<crate::load::Stage>,
}

fn resolve_durations(s: &Scenario) -> std::result::Result<ResolvedDurations, String> {
    let duration = s
        .duration
        .as_ref()
        .map(|d| d.resolve().map_err(|e| format!("duration: {e}")))
        .transpose()?;
    let think_time = s
        .think_time
        .as_ref()
        .map(|d| d.resolve().map_err(|e| format!("think_time: {e}")))
        .transpose()?;
    let stages = s
        .stages
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, st)| st.resolve().map_err(|e| format!("stages[{i}]: {e}")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(ResolvedDurations {
        duration,
        think_time,
        stages,
    })
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
    // parse() has checked them already; a scenario built in code that is
    // wrong keeps the flags' values.
    let resolved = resolve_durations(&s).unwrap_or(ResolvedDurations {
        duration: None,
        think_time: None,
        stages: Vec::new(),
    });
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
    fill!(s, retry_fraction, quiet_window, stall_window, settle_limit);
    fill_opt!(s, workload, fault, read_ratio, seed, out, threads, ops, keys);
    fill_opt!(s, rate, max_writers);
    if !given("duration") {
        if let (Some(d), Some(spec)) = (resolved.duration, &s.duration) {
            args.duration = Some(d);
            args.typed.insert("duration".into(), spec.as_typed());
            filled.push("duration");
        }
    }
    if !given("think_time") {
        if let Some(d) = resolved.think_time {
            args.think_time = Some(d);
            filled.push("think_time");
        }
    }
    if !given("stages") && !resolved.stages.is_empty() {
        args.stages = resolved.stages;
        filled.push("stages");
    }
    if !given("load_model") {
        if let Some(m) = s.load {
            args.load_model = Some(m);
            filled.push("load_model");
        }
    }
    let target = s.target.unwrap_or_default();
    if !given("target") {
        if let Some(kind) = target.kind {
            args.target = kind;
        } else if target.sql.is_some() {
            args.target = TargetKind::Sql;
        } else if target.http.is_some() {
            args.target = TargetKind::Http;
        } else if target.automerge.is_some() {
            args.target = TargetKind::Automerge;
        } else if target.maelstrom.is_some() {
            args.target = TargetKind::Maelstrom;
        }
    }
    if let Some(m) = target.maelstrom {
        fill!(
            m,
            bin_args,
            nodes,
            clients,
            time_limit,
            latency,
            latency_dist
        );
        fill!(m, request_timeout, quiet_window, settle_limit);
        fill_opt!(m, bin, topology, rate);
    }
    if let Some(a) = target.automerge {
        fill!(a, max_rounds);
        fill_opt!(a, fault);
    }
    args.sql = target.sql;
    args.http = target.http;
    args.explicit.extend(filled.into_iter().map(String::from));
    if let Some(slo) = s.slo {
        // Gates from flags win over the file's, gate by gate.
        args.slo_spec = slo.overridden_by(&args.slo_spec);
    }
}
