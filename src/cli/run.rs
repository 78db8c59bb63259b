//! `converge run`: stress an in-process model, check it, report, shrink.

use super::{default_out, Format};
use crate::checker::check_all;
use crate::error::Error;
use crate::generator::Mix;
use crate::interpreter::{
    run, RunConfig, DEFAULT_MAX_ROUNDS, DEFAULT_OPS, DEFAULT_REPLICAS, DEFAULT_WRITERS,
};
use crate::nemesis::NemesisSpec;
use crate::report::Report;
use crate::shrink::counterexample;
use crate::verdict::Verdict;
use clap::Args;
use converge_models::{model_info, reference_for, Workload};
use std::path::{Path, PathBuf};

/// What a run drives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// CRDT models inside this process (the embedded default).
    #[default]
    InProcess,
    /// Node processes speaking Jepsen Maelstrom's protocol (`--bin`).
    Maelstrom,
    /// A SQL database (PostgreSQL or SQLite) driven by the scenario's statements.
    Sql,
    /// A service behind HTTP, mapped by the scenario's `[target.http]`.
    Http,
    /// automerge documents syncing over its real sync protocol.
    Automerge,
}

impl TargetKind {
    /// The name used on the command line and in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::InProcess => "in-process",
            TargetKind::Maelstrom => "maelstrom",
            TargetKind::Sql => "sql",
            TargetKind::Http => "http",
            TargetKind::Automerge => "automerge",
        }
    }
}

/// Arguments of `converge run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML) describing the run, any target
    /// (`converge run examples/http-serve-counter-ok.toml`); flags given
    /// here override it key by key.
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// The scenario file, as a flag (the same as the positional SCENARIO).
    #[arg(
        long = "scenario",
        value_name = "FILE",
        conflicts_with = "scenario",
        hide = true
    )]
    pub scenario_flag: Option<PathBuf>,
    /// What to drive.
    #[arg(long, value_enum, default_value_t = TargetKind::InProcess)]
    pub target: TargetKind,
    /// The node binary or script.
    #[arg(long, help_heading = "Maelstrom target")]
    pub bin: Option<PathBuf>,
    /// An argument for each node (repeatable).
    #[arg(
        long = "bin-arg",
        allow_hyphen_values = true,
        help_heading = "Maelstrom target"
    )]
    pub bin_args: Vec<String>,
    /// The `[target.http]` table alone, in a file of its own (replicas,
    /// request templates, start command); a scenario file holds the same
    /// table under `[target.http]`.
    #[arg(long, help_heading = "HTTP target")]
    pub http_config: Option<PathBuf>,
    /// Node processes.
    #[arg(long, default_value_t = 5, help_heading = "Maelstrom target")]
    pub nodes: usize,
    /// Clients, one request outstanding each (`--writers` sets it too).
    #[arg(long, default_value_t = 10, help_heading = "Maelstrom target")]
    pub clients: usize,
    /// Open model: ops per second arriving over all writers (Maelstrom:
    /// requests per second over all clients, default 100).
    #[arg(long, help_heading = "Load shape")]
    pub rate: Option<f64>,
    /// Seconds of client traffic (`--duration` sets it too).
    #[arg(long, default_value_t = 10.0, help_heading = "Maelstrom target")]
    pub time_limit: f64,
    /// Mean one-way network latency, ms.
    #[arg(long, default_value_t = 5.0, help_heading = "Maelstrom target")]
    pub latency: f64,
    /// Latency distribution.
    #[arg(long, value_enum, default_value_t = super::run_maelstrom::LatencyDist::Exponential, help_heading = "Maelstrom target")]
    pub latency_dist: super::run_maelstrom::LatencyDist,
    /// A client gives up on a request after this many seconds.
    #[arg(long, default_value_t = 1.0, help_heading = "Maelstrom target")]
    pub request_timeout: f64,
    /// Maelstrom, http, sql: final reads that agree and stay put this many
    /// seconds have converged.
    #[arg(long, default_value_t = crate::target::settle::DEFAULT_QUIET.as_secs_f64(), help_heading = "Settle (black-box targets: maelstrom, http, sql)")]
    pub quiet_window: f64,
    /// Maelstrom, http, sql: final reads that disagree while no value changes
    /// for this many seconds have diverged (long enough for the target's
    /// slowest anti-entropy; at most --settle-limit).
    #[arg(long, default_value_t = crate::target::settle::DEFAULT_STALL.as_secs_f64(), help_heading = "Settle (black-box targets: maelstrom, http, sql)")]
    pub stall_window: f64,
    /// Maelstrom, http, sql: bound on the final wait, seconds; values still
    /// changing then make the verdict unknown.
    #[arg(long, default_value_t = crate::target::settle::DEFAULT_LIMIT.as_secs_f64(), help_heading = "Settle (black-box targets: maelstrom, http, sql)")]
    pub settle_limit: f64,
    /// Maelstrom broadcast: the `topology` nodes get, as Maelstrom computes
    /// it: grid (Maelstrom's default), line, total, tree2, tree3, tree4.
    #[arg(long, help_heading = "Maelstrom target")]
    pub topology: Option<String>,
    /// Datatype: g-counter, pn-counter, g-set, 2p-set, or-set, lww-register, mv-register, lww-map;
    /// maelstrom also echo, unique-ids, broadcast, lin-kv and kafka.
    #[arg(long)]
    pub workload: Option<String>,
    /// A faulty model (see `converge list faults`); implies its workload.
    #[arg(long)]
    pub fault: Option<String>,
    /// Concurrent writers.
    #[arg(long, default_value_t = DEFAULT_WRITERS, help_heading = "Load shape")]
    pub writers: u32,
    /// Replicas.
    #[arg(long, default_value_t = DEFAULT_REPLICAS)]
    pub replicas: u16,
    /// Total operations (default: 100000; automerge 5000).
    #[arg(long, help_heading = "Load shape")]
    pub ops: Option<u64>,
    /// Keys (objects); key 0 is the hot key (default: 64; automerge: 4
    /// counters and 4 registers).
    #[arg(long, help_heading = "Operation mix")]
    pub keys: Option<u32>,
    /// Fraction of ops on the hot key.
    #[arg(long, default_value_t = Mix::default().hot_key_ratio, help_heading = "Operation mix")]
    pub hot_key_ratio: f64,
    /// Fraction of ops that are reads.
    /// (Default: 0.001 in-process, 0.25 maelstrom.)
    #[arg(long, help_heading = "Operation mix")]
    pub read_ratio: Option<f64>,
    /// Fraction of updates that remove or delete (where the workload has them).
    #[arg(long, default_value_t = Mix::default().remove_ratio, help_heading = "Operation mix")]
    pub remove_ratio: f64,
    /// Seed; random when omitted (always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// none, default, or a comma-separated list of faults, one vocabulary on
    /// every target: partition, drop (alias loss), duplicate, reorder,
    /// delay, crash, pause; each target takes those it can inject (see
    /// `converge list nemeses --target T`).
    #[arg(long, default_value = "default")]
    pub nemesis: String,
    /// Output directory (default: a new `reports/<model>-<seed>-<YYYYmmdd-HHMMSS>`,
    /// linked from `reports/latest`).
    #[arg(long, help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human, help_heading = "Output")]
    pub format: Format,
    /// Bound on final anti-entropy rounds before the verdict is unknown.
    #[arg(long, default_value_t = DEFAULT_MAX_ROUNDS, help_heading = "Settle (in-process and automerge)")]
    pub max_rounds: u32,
    /// Worker threads (default: available cores).
    #[arg(long, value_parser = super::parse_threads, help_heading = "Checking and shrinking")]
    pub threads: Option<usize>,
    /// Do not shrink a failing run.
    #[arg(long, help_heading = "Checking and shrinking")]
    pub no_shrink: bool,
    /// The target claims linearizability: also check it (counter, g-set
    /// and register workloads; reads come from the replica the writer uses).
    #[arg(long, help_heading = "Checking and shrinking")]
    pub linearizable: bool,
    /// Most re-runs the shrinker may make.
    #[arg(long, default_value_t = 40, help_heading = "Checking and shrinking")]
    pub shrink_budget: u32,
    /// How long to write (500ms, 30s, 2m, 1h, or seconds); the run stops
    /// at --ops or here, whichever comes first.
    #[arg(long, value_parser = crate::load::parse_duration, help_heading = "Load shape")]
    pub duration: Option<std::time::Duration>,
    /// Load model: closed (writers loop as fast as the target answers) or
    /// open (ops arrive at --rate whatever the target does).
    #[arg(long = "load", value_enum, help_heading = "Load shape")]
    pub load_model: Option<crate::load::LoadModel>,
    /// A load stage DURATION:TARGET (repeatable), e.g. `30s:50`: move to
    /// TARGET writers (closed) or ops per second (open) over DURATION.
    #[arg(long = "stage", value_parser = crate::load::parse_stage, help_heading = "Load shape")]
    pub stages: Vec<crate::load::Stage>,
    /// Open model: the writer pool's cap; an arrival finding every writer
    /// busy is dropped (and counted).
    #[arg(long, help_heading = "Load shape")]
    pub max_writers: Option<u32>,
    /// Closed model: pause between one writer's ops (e.g. 100ms).
    #[arg(long, value_parser = crate::load::parse_duration, help_heading = "Load shape")]
    pub think_time: Option<std::time::Duration>,
    /// Fraction of writes sent a second time with the same op id (a retry).
    #[arg(long, default_value_t = 0.0, help_heading = "SQL target")]
    pub retry_fraction: f64,
    /// Database URL (postgres://... or sqlite:...), overriding the scenario's.
    #[arg(long, help_heading = "SQL target")]
    pub database_url: Option<String>,
    /// An SLO gate, NAME=VALUE (repeatable): p50_ms, p95_ms, p99_ms, max_rss_mb,
    /// service_max_rss_mb, data_loss, error_rate, idempotency_violations, min_throughput,
    /// memory_growth_mb, leak_slope_mb_per_min, service_memory_growth_mb,
    /// service_leak_slope_mb_per_min (MB per minute, least squares over the
    /// run after its first 20%).
    #[arg(long = "slo", value_name = "GATE=VALUE", help_heading = "Output")]
    pub slo: Vec<String>,
    /// Http, sql: measure the target's memory and CPU in the time series
    /// from this process and everything below it (a service converge did
    /// not start).
    #[arg(long, conflicts_with = "target_cgroup")]
    pub target_pid: Option<u32>,
    /// Http, sql: measure the target from this cgroup v2 directory
    /// (absolute, or relative to /sys/fs/cgroup): working set
    /// (memory.current less inactive_file) and cpu.stat.
    #[arg(long)]
    pub target_cgroup: Option<PathBuf>,
    /// `[target.sql]` of the scenario.
    #[arg(skip)]
    pub sql: Option<crate::target::sql::SqlSpec>,
    /// `[target.http]` of the scenario.
    #[arg(skip)]
    pub http: Option<crate::target::http::HttpTargetConfig>,
    /// The SLO gates in force (scenario, overridden gate by gate by `--slo`).
    #[arg(skip)]
    pub slo_spec: crate::slo::SloSpec,
    /// Clap ids of the settings the user gave: flags typed on the command
    /// line, plus (after [`resolve`]) keys set by the scenario file.
    #[arg(skip)]
    pub explicit: std::collections::BTreeSet<String>,
    /// The text the user wrote for a setting, by clap id (the flag's value
    /// as typed, or the scenario key's), so that a message can echo it in
    /// the user's own unit: `--duration 1500ms`, not `1.5s`.
    #[arg(skip)]
    pub typed: std::collections::BTreeMap<String, String>,
}

impl RunArgs {
    /// A duration setting as the user wrote it; the value itself when
    /// nobody wrote it (a default).
    pub fn typed_duration(&self, id: &str, value: std::time::Duration) -> String {
        self.typed
            .get(id)
            .cloned()
            .unwrap_or_else(|| crate::load::human_duration(value))
    }
}

/// The load shape the flags (and scenario) describe. `default_ops` bounds a
/// run that gives neither an op count nor a duration nor stages.
pub fn load_spec(args: &RunArgs, default_ops: u64) -> Result<crate::load::LoadSpec, Error> {
    use crate::load::{LoadModel, LoadSpec};
    let model = args.load_model.unwrap_or_default();
    let bounded_in_time = args.duration.is_some() || !args.stages.is_empty();
    // The open model starts its pool at --writers; a default that is more
    // than the --max-writers the user gave is cut to it, a --writers typed
    // above it is refused by validate().
    let writers = match (model, args.max_writers) {
        (LoadModel::Open, Some(max)) if !args.explicit.contains("writers") => args.writers.min(max),
        _ => args.writers,
    };
    let spec = LoadSpec {
        model,
        writers,
        rate: match model {
            LoadModel::Open => args.rate.unwrap_or(0.0),
            LoadModel::Closed => 0.0,
        },
        max_writers: match model {
            LoadModel::Open => args.max_writers.unwrap_or(args.writers.max(1)),
            LoadModel::Closed => args.max_writers.unwrap_or(0),
        },
        think_time: args.think_time.unwrap_or_default(),
        stages: args.stages.clone(),
        duration: args.duration,
        ops: args.ops.or((!bounded_in_time).then_some(default_ops)),
    };
    if model == LoadModel::Closed && args.rate.is_some() {
        return Err(Error::Config(
            "--rate is for the open model: add --load open".into(),
        ));
    }
    spec.validate()?;
    Ok(spec)
}

/// Whether the run follows a load shape (any load setting given) rather
/// than every writer writing as fast as it can until `--ops`.
pub fn shaped(args: &RunArgs) -> bool {
    args.load_model.is_some()
        || !args.stages.is_empty()
        || args.max_writers.is_some()
        || args.think_time.is_some()
        || args.duration.is_some()
        || args.rate.is_some()
}

/// Which targets take a setting, for every setting that not every target
/// takes: (clap id, flag, the targets that honour it). A setting given (on
/// the command line or by the scenario) for a target not in its row is
/// refused with exit 3 naming the flag, never silently ignored. Whoever
/// makes a target honour a setting adds the target to its row, here and
/// nowhere else.
pub const FLAG_TARGETS: &[(&str, &str, &[TargetKind])] = {
    use TargetKind::{Automerge, Http, InProcess, Maelstrom, Sql};
    &[
        // The shared load shape (src/load.rs), reaching the targets one by one.
        // The simulated targets follow it on virtual time (crate::vload),
        // http, sql and maelstrom on the one wall-clock engine (crate::engine).
        (
            "load_model",
            "--load",
            &[InProcess, Automerge, Http, Sql, Maelstrom],
        ),
        (
            "stages",
            "--stage",
            &[InProcess, Automerge, Http, Sql, Maelstrom],
        ),
        (
            "max_writers",
            "--max-writers",
            &[InProcess, Automerge, Http, Sql, Maelstrom],
        ),
        (
            "think_time",
            "--think-time",
            &[InProcess, Automerge, Http, Sql, Maelstrom],
        ),
        // Maelstrom: its open model's rate (default 100 requests/s).
        (
            "rate",
            "--rate",
            &[InProcess, Automerge, Http, Sql, Maelstrom],
        ),
        // Maelstrom: the client phase's length (--time-limit).
        (
            "duration",
            "--duration",
            &[InProcess, Automerge, Http, Sql, Maelstrom],
        ),
        (
            "ops",
            "--ops",
            &[InProcess, Automerge, Http, Sql, Maelstrom],
        ),
        // Maelstrom: its clients.
        (
            "writers",
            "--writers",
            &[InProcess, Automerge, Http, Sql, Maelstrom],
        ),
        // Maelstrom: --nodes; http: the service's own replicas.
        ("replicas", "--replicas", &[InProcess, Automerge, Sql]),
        // http: `keys` of [target.http].
        ("keys", "--keys", &[InProcess, Automerge, Sql]),
        (
            "hot_key_ratio",
            "--hot-key-ratio",
            &[InProcess, Automerge, Http, Sql],
        ),
        (
            "remove_ratio",
            "--remove-ratio",
            &[InProcess, Automerge, Http, Sql],
        ),
        (
            "read_ratio",
            "--read-ratio",
            &[InProcess, Maelstrom, Http, Sql],
        ),
        ("fault", "--fault", &[InProcess, Automerge]),
        ("threads", "--threads", &[InProcess]),
        ("shrink_budget", "--shrink-budget", &[InProcess]),
        ("linearizable", "--linearizable", &[InProcess]),
        ("max_rounds", "--max-rounds", &[InProcess, Automerge]),
        ("quiet_window", "--quiet-window", &[Maelstrom, Http, Sql]),
        ("stall_window", "--stall-window", &[Maelstrom, Http, Sql]),
        ("settle_limit", "--settle-limit", &[Maelstrom, Http, Sql]),
        ("bin", "--bin", &[Maelstrom]),
        ("bin_args", "--bin-arg", &[Maelstrom]),
        ("nodes", "--nodes", &[Maelstrom]),
        ("clients", "--clients", &[Maelstrom]),
        ("time_limit", "--time-limit", &[Maelstrom]),
        ("latency", "--latency", &[Maelstrom]),
        ("latency_dist", "--latency-dist", &[Maelstrom]),
        ("request_timeout", "--request-timeout", &[Maelstrom]),
        ("topology", "--topology", &[Maelstrom]),
        ("http_config", "--http-config", &[Http]),
        ("retry_fraction", "--retry-fraction", &[Sql]),
        ("database_url", "--database-url", &[Sql]),
    ]
};

/// Why a setting does not apply to a target: the hint after the refusal.
fn refusal(id: &str, flag: &str, target: TargetKind, honoured_by: &[TargetKind]) -> String {
    let t = target.name();
    let hint = match (id, target) {
        // The shared load shape: targets learn it one by one.
        ("load_model" | "stages" | "max_writers" | "think_time" | "rate" | "duration", _) => {
            return format!("{flag} is not supported by --target {t} yet")
        }
        ("replicas", TargetKind::Maelstrom) => ": give --nodes",
        ("replicas" | "keys", TargetKind::Http) => ": the service and `[target.http]` decide it",
        ("max_rounds", _) => {
            ": black-box targets settle by time (--quiet-window, --stall-window, --settle-limit)"
        }
        ("quiet_window" | "stall_window" | "settle_limit", _) => {
            ": the settle windows are for black-box targets; the in-process and automerge \
             targets settle in --max-rounds"
        }
        ("topology", _) => ": it is for --target maelstrom --workload broadcast",
        _ => "",
    };
    let names: Vec<&str> = honoured_by.iter().map(|k| k.name()).collect();
    format!(
        "{flag} does not apply to --target {t} (it is for --target {}){hint}",
        names.join(", ")
    )
}

/// Targets whose run feeds a time series and can measure a target named
/// by `--target-pid` / `--target-cgroup` (the engine that records the
/// HTTP and SQL series calls [`target_probe`]).
const PROBED_TARGETS: [TargetKind; 2] = [TargetKind::Http, TargetKind::Sql];

/// The target probe `--target-pid` / `--target-cgroup` name, checked: a
/// process or cgroup that cannot be read is a config error (exit 3).
pub fn target_probe(args: &RunArgs) -> Result<Option<crate::series::TargetProbe>, Error> {
    use crate::series::TargetProbe;
    let probe = match (args.target_pid, &args.target_cgroup) {
        (Some(pid), _) => TargetProbe::Pid(pid),
        (None, Some(path)) => TargetProbe::cgroup(path),
        (None, None) => return Ok(None),
    };
    probe.check()?;
    Ok(Some(probe))
}

/// Loads the scenario (if any) under the typed flags and resolves the SLO gates.
pub fn resolve(mut args: RunArgs) -> Result<RunArgs, Error> {
    args.slo_spec = crate::slo::SloSpec::parse_flags(&args.slo)?;
    if let Some(path) = args.scenario_flag.take() {
        args.scenario = Some(path);
    }
    if let Some(path) = args.scenario.clone() {
        let scenario = crate::scenario::load(&path)?;
        let explicit = args.explicit.clone();
        crate::scenario::apply(scenario, &mut args, &explicit);
    }
    for (id, flag, honoured_by) in FLAG_TARGETS {
        if args.explicit.contains(*id) && !honoured_by.contains(&args.target) {
            return Err(Error::Config(refusal(id, flag, args.target, honoured_by)));
        }
    }
    if args.target_pid.is_some() || args.target_cgroup.is_some() {
        let flag = match args.target_pid {
            Some(_) => "--target-pid",
            None => "--target-cgroup",
        };
        match args.target {
            TargetKind::InProcess | TargetKind::Automerge => {
                return Err(Error::Config(format!(
                    "{flag}: the {} target runs inside converge; there is no other process to measure",
                    args.target.name()
                )))
            }
            TargetKind::Maelstrom => {
                return Err(Error::Config(format!(
                    "{flag}: converge starts the maelstrom nodes and measures their process trees itself"
                )))
            }
            t if !PROBED_TARGETS.contains(&t) => {
                return Err(Error::Config(format!(
                    "{flag} is not supported by --target {} yet",
                    t.name()
                )))
            }
            _ => {
                target_probe(&args)?;
            }
        }
    }
    crate::target::nemeses::check(args.target, &args.nemesis)?;
    Ok(args)
}

/// Resolves flags into a run configuration, naming the bad flag on error.
pub fn config_from(args: &RunArgs) -> Result<RunConfig, Error> {
    // The catalog entry decides workload and fault-ness; flags override the defaults.
    let model = match (&args.fault, &args.workload) {
        (Some(fault), workload) => {
            let info = model_info(fault).filter(|m| m.faulty).ok_or_else(|| {
                Error::Config(format!(
                    "--fault: unknown fault '{fault}' (see `converge list faults`)"
                ))
            })?;
            if let Some(w) = workload {
                if w != info.workload.name() {
                    return Err(Error::Config(format!(
                        "--fault {fault} is a {} model but --workload is {w}",
                        info.workload.name()
                    )));
                }
            }
            info.name
        }
        (None, workload) => {
            let name = workload.as_deref().unwrap_or("or-set");
            let workload = Workload::from_name(name).ok_or_else(|| {
                Error::Config(format!(
                    "--workload: unknown workload '{name}' (see `converge list workloads`)"
                ))
            })?;
            reference_for(workload).name
        }
    };
    let seed = args.seed.unwrap_or_else(random_seed);
    let out = args.out.clone().unwrap_or_else(|| default_out(model, seed));
    let mut config = RunConfig::for_model(model, seed, out)?;
    config.writers = args.writers;
    config.replicas = args.replicas;
    config.ops = args.ops.unwrap_or(DEFAULT_OPS);
    config.nemesis = NemesisSpec::parse(&args.nemesis)?;
    config.mix = Mix {
        keys: args.keys.unwrap_or(Mix::default().keys),
        hot_key_ratio: args.hot_key_ratio,
        read_ratio: args.read_ratio.unwrap_or(Mix::default().read_ratio),
        remove_ratio: args.remove_ratio,
        ..Mix::default()
    };
    config.max_rounds = args.max_rounds;
    config.linearizable = args.linearizable;
    if shaped(args) {
        let spec = load_spec(args, DEFAULT_OPS)?;
        config.ops = spec.ops.unwrap_or(0);
        config.load = Some(spec);
    }
    if let Some(threads) = args.threads {
        config.threads = threads;
    }
    config.progress = super::progress::wanted() && args.format == Format::Human;
    config.validate()?;
    Ok(config)
}

/// Applies the SLO gates, writes `report.json` and `report.md` into `out`,
/// and prints the report: all of it as JSON (returning the exit code), or
/// the human summary (returning `None`: the caller adds its own lines).
pub fn publish(report: &mut Report, args: &RunArgs, out: &Path) -> anyhow::Result<Option<i32>> {
    report.apply_slo(&args.slo_spec);
    if let Err(e) = report.write(out) {
        return Ok(Some(super::check::fail(&e)));
    }
    match args.format {
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(Some(report.verdict.exit_code()))
        }
        Format::Human => {
            print!("{}", report.human());
            Ok(None)
        }
    }
}

/// Puts a wall-clock engine run's figures in its report: the memory of
/// converge and of the target from the time series, and the `load` block
/// (the shape asked for, the rate achieved, arrivals dropped, most writers).
pub fn attach_wall_figures(
    report: &mut Report,
    load: &crate::load::LoadSpec,
    series: Option<&crate::series::SeriesSummary>,
    dropped: u64,
    writers_peak: u32,
) {
    if let Some(series) = series {
        report.attach_series(series);
    }
    // Ops per second of writing: the series' own seconds also cover the
    // target's start-up and the final phase, and would understate it.
    report.load = Some(crate::report::LoadFigures::of(
        load,
        "wall",
        Some(report.throughput_ops_s),
        dropped,
        writers_peak,
    ));
}

/// The load figures of a simulated run (virtual clock).
pub fn simulated_load(
    shaped: Option<&crate::load::LoadSpec>,
    plain: &crate::load::LoadSpec,
    load: &crate::vload::LoadSummary,
) -> crate::report::LoadFigures {
    crate::report::LoadFigures::of(
        shaped.unwrap_or(plain),
        "virtual",
        (load.virtual_s > 0.0).then_some(load.achieved_rate),
        load.dropped,
        load.writers_peak,
    )
}

/// A run without a shape, as a load spec: every writer, closed, until `ops`.
fn config_spec(config: &RunConfig) -> crate::load::LoadSpec {
    crate::load::LoadSpec {
        writers: config.writers,
        ops: Some(config.ops),
        ..crate::load::LoadSpec::default()
    }
}

/// One line on what a shaped simulated run did, in virtual time.
pub fn load_line(load: &crate::vload::LoadSummary) -> String {
    format!(
        "load ({}, virtual time): {} ops started over {:.3} s, {:.1} ops/s achieved, {} dropped, {} writers at most; per second in {}",
        load.model,
        load.started,
        load.virtual_s,
        load.achieved_rate,
        load.dropped,
        load.writers_peak,
        crate::series::FILE
    )
}

/// A fresh seed when none is given.
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    crate::generator::derive_seed(nanos, std::process::id() as u64) % 1_000_000_000
}

/// Runs `converge run` and returns the exit code.
pub fn execute(args: RunArgs) -> anyhow::Result<i32> {
    // `converge run SUITE.toml` runs the suite, as `converge suite` does:
    // one command for every file in examples/.
    if let Some(file) = args.scenario.clone().or_else(|| args.scenario_flag.clone()) {
        let is_suite = std::fs::read_to_string(&file).is_ok_and(|t| crate::suite::is_suite(&t));
        if is_suite {
            if let Some(flag) = args
                .explicit
                .iter()
                .find(|id| !["scenario", "scenario_flag", "out", "RunArgs"].contains(&id.as_str()))
            {
                return Ok(super::check::fail(&Error::Config(format!(
                    "{} is a suite: its scenarios carry their own settings; --{} does not apply (only --out does)",
                    file.display(),
                    flag.replace('_', "-")
                ))));
            }
            return super::suite::execute(super::suite::SuiteArgs {
                file,
                out: args.out.clone(),
            });
        }
    }
    let args = match resolve(args) {
        Ok(a) => a,
        Err(e) => return Ok(super::check::fail(&e)),
    };
    // An automerge fault implies its target, as a model's fault implies its workload.
    let automerge_fault = args
        .fault
        .as_deref()
        .and_then(crate::target::automerge::AutomergeFault::from_name)
        .is_some();
    match args.target {
        TargetKind::Maelstrom => return super::run_maelstrom::execute(&args),
        TargetKind::Sql => return super::run_sql::execute(&args),
        TargetKind::Http => return super::run_http::execute(&args),
        TargetKind::Automerge => return super::run_automerge::execute(&args),
        TargetKind::InProcess if automerge_fault => return super::run_automerge::execute(&args),
        TargetKind::InProcess => {}
    }
    let config = match config_from(&args) {
        Ok(c) => c,
        Err(e) => return Ok(super::check::fail(&e)),
    };
    eprintln!("seed: {}", config.seed);
    let mut result = match run(&config) {
        Ok(r) => r,
        Err(e) => return Ok(super::after_failure(super::check::fail(&e), &config.out)),
    };
    let mut checks = check_all(&result.history);
    checks.extend(crate::interrupt::check());
    let live = result.live_figures();
    let load = std::mem::take(&mut result.load);
    let mut report = Report::build(&result.history, &checks, Some(&live));
    report.convergence_steps = result.convergence;
    report.load = Some(simulated_load(
        config.load.as_ref(),
        &config_spec(&config),
        &load,
    ));
    report.memory.converge = load.converge_memory;
    if report.verdict == Verdict::Invalid && !args.no_shrink && !crate::interrupt::requested() {
        if args.format == Format::Human {
            eprintln!("invalid: shrinking to a minimal counterexample...");
        }
        match counterexample(&config, &report.violated(), args.shrink_budget) {
            // Re-runs cut short by a stop prove nothing about the minimum.
            Ok(Some(_)) if crate::interrupt::requested() => {}
            Ok(Some(cx)) => report.counterexample = Some(cx),
            Ok(None) => {}
            Err(e) => eprintln!("shrinking stopped: {e}"),
        }
    }
    report.reproduce = super::unpinned(&report.reproduce, &config.out);
    if let Some(cx) = &mut report.counterexample {
        cx.reproduce = super::unpinned(&cx.reproduce, &config.out.join("counterexample"));
    }
    if let Some(code) = publish(&mut report, &args, &config.out)? {
        return Ok(code);
    }
    if config.load.is_some() {
        println!("{}", load_line(&load));
    }
    super::print_footer(&config.out, config.seed, report.verdict, &report.reproduce);
    if report.verdict != Verdict::Valid {
        if let Some(cx) = &report.counterexample {
            println!(
                "minimal counterexample ({} writers, {} ops, nemesis {}): {}",
                cx.writers, cx.ops, cx.nemesis, cx.reproduce
            );
        }
    }
    Ok(report.verdict.exit_code())
}
