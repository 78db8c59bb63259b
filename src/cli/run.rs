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
    /// A service behind HTTP, mapped by `--http-config FILE.toml`.
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
    /// A scenario file (TOML) describing the run; flags given here override it.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// What to drive.
    #[arg(long, value_enum, default_value_t = TargetKind::InProcess)]
    pub target: TargetKind,
    /// Maelstrom: the node binary or script.
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Maelstrom: an argument for each node (repeatable).
    #[arg(long = "bin-arg", allow_hyphen_values = true)]
    pub bin_args: Vec<String>,
    /// Http: the target's configuration (TOML: replicas, request templates, start command).
    #[arg(long)]
    pub http_config: Option<PathBuf>,
    /// Maelstrom: node processes.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Maelstrom: clients, one request outstanding each.
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Open model: ops per second arriving over all writers (Maelstrom:
    /// requests per second over all clients, default 100).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Maelstrom: seconds of client traffic.
    #[arg(long, default_value_t = 10.0)]
    pub time_limit: f64,
    /// Maelstrom: mean one-way network latency, ms.
    #[arg(long, default_value_t = 5.0)]
    pub latency: f64,
    /// Maelstrom: latency distribution.
    #[arg(long, value_enum, default_value_t = super::run_maelstrom::LatencyDist::Exponential)]
    pub latency_dist: super::run_maelstrom::LatencyDist,
    /// Maelstrom: a client gives up on a request after this many seconds.
    #[arg(long, default_value_t = 1.0)]
    pub request_timeout: f64,
    /// Maelstrom, http, sql: final reads that agree and stay put this many
    /// seconds have converged.
    #[arg(long, default_value_t = crate::target::settle::DEFAULT_QUIET.as_secs_f64())]
    pub quiet_window: f64,
    /// Maelstrom, http, sql: final reads that disagree while no value changes
    /// for this many seconds have diverged (long enough for the target's
    /// slowest anti-entropy; at most --settle-limit).
    #[arg(long, default_value_t = crate::target::settle::DEFAULT_STALL.as_secs_f64())]
    pub stall_window: f64,
    /// Maelstrom, http, sql: bound on the final wait, seconds; values still
    /// changing then make the verdict unknown.
    #[arg(long, default_value_t = crate::target::settle::DEFAULT_LIMIT.as_secs_f64())]
    pub settle_limit: f64,
    /// Maelstrom broadcast: the `topology` nodes get, as Maelstrom computes
    /// it: grid (Maelstrom's default), line, total, tree2, tree3, tree4.
    #[arg(long)]
    pub topology: Option<String>,
    /// Datatype: g-counter, pn-counter, g-set, 2p-set, or-set, lww-register, mv-register, lww-map;
    /// maelstrom also echo, unique-ids, broadcast, lin-kv and kafka.
    #[arg(long)]
    pub workload: Option<String>,
    /// A faulty model (see `converge list faults`); implies its workload.
    #[arg(long)]
    pub fault: Option<String>,
    /// Concurrent writers.
    #[arg(long, default_value_t = DEFAULT_WRITERS)]
    pub writers: u32,
    /// Replicas.
    #[arg(long, default_value_t = DEFAULT_REPLICAS)]
    pub replicas: u16,
    /// Total operations (default: 100000; automerge 5000).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Keys (objects); key 0 is the hot key (default: 64; automerge: 4
    /// counters and 4 registers).
    #[arg(long)]
    pub keys: Option<u32>,
    /// Fraction of ops on the hot key.
    #[arg(long, default_value_t = Mix::default().hot_key_ratio)]
    pub hot_key_ratio: f64,
    /// Fraction of ops that are reads.
    /// (Default: 0.001 in-process, 0.25 maelstrom.)
    #[arg(long)]
    pub read_ratio: Option<f64>,
    /// Fraction of updates that remove or delete (where the workload has them).
    #[arg(long, default_value_t = Mix::default().remove_ratio)]
    pub remove_ratio: f64,
    /// Seed; random when omitted (always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// none, default, or a comma-separated list of: partition, drop, duplicate, reorder, delay
    /// (maelstrom: partition, loss, duplicate, reorder, crash, pause).
    #[arg(long, default_value = "default")]
    pub nemesis: String,
    /// Output directory (default: `reports/<model>-<seed>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Bound on final anti-entropy rounds before the verdict is unknown.
    #[arg(long, default_value_t = DEFAULT_MAX_ROUNDS)]
    pub max_rounds: u32,
    /// Worker threads (default: available cores).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
    /// Do not shrink a failing run.
    #[arg(long)]
    pub no_shrink: bool,
    /// The target claims linearizability: also check it (counter, g-set
    /// and register workloads; reads come from the replica the writer uses).
    #[arg(long)]
    pub linearizable: bool,
    /// Most re-runs the shrinker may make.
    #[arg(long, default_value_t = 40)]
    pub shrink_budget: u32,
    /// How long to write (500ms, 30s, 2m, 1h, or seconds); the run stops
    /// at --ops or here, whichever comes first.
    #[arg(long, value_parser = crate::load::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Load model: closed (writers loop as fast as the target answers) or
    /// open (ops arrive at --rate whatever the target does).
    #[arg(long = "load", value_enum)]
    pub load_model: Option<crate::load::LoadModel>,
    /// A load stage DURATION:TARGET (repeatable), e.g. `30s:50`: move to
    /// TARGET writers (closed) or ops per second (open) over DURATION.
    #[arg(long = "stage", value_parser = crate::load::parse_stage)]
    pub stages: Vec<crate::load::Stage>,
    /// Open model: the writer pool's cap; an arrival finding every writer
    /// busy is dropped (and counted).
    #[arg(long)]
    pub max_writers: Option<u32>,
    /// Closed model: pause between one writer's ops (e.g. 100ms).
    #[arg(long, value_parser = crate::load::parse_duration)]
    pub think_time: Option<std::time::Duration>,
    /// SQL: fraction of writes sent a second time with the same op id (a retry).
    #[arg(long, default_value_t = 0.0)]
    pub retry_fraction: f64,
    /// SQL: database URL (postgres://... or sqlite:...), overriding the scenario's.
    #[arg(long)]
    pub database_url: Option<String>,
    /// An SLO gate, NAME=VALUE (repeatable): p50_ms, p95_ms, p99_ms, max_rss_mb,
    /// service_max_rss_mb, data_loss, error_rate, idempotency_violations, min_throughput,
    /// memory_growth_mb, leak_slope_mb_per_min, service_memory_growth_mb,
    /// service_leak_slope_mb_per_min (MB per minute, least squares over the
    /// run after its first 20%).
    #[arg(long = "slo", value_name = "GATE=VALUE")]
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
}

/// The load shape the flags (and scenario) describe. `default_ops` bounds a
/// run that gives neither an op count nor a duration nor stages.
pub fn load_spec(args: &RunArgs, default_ops: u64) -> Result<crate::load::LoadSpec, Error> {
    use crate::load::{LoadModel, LoadSpec};
    let model = args.load_model.unwrap_or_default();
    let bounded_in_time = args.duration.is_some() || !args.stages.is_empty();
    let spec = LoadSpec {
        model,
        writers: args.writers,
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
    if model == LoadModel::Closed && args.rate.is_some() && args.target != TargetKind::Maelstrom {
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

/// Targets whose run feeds a time series and can measure a target named
/// by `--target-pid` / `--target-cgroup` (the engine that records the
/// HTTP and SQL series calls [`target_probe`]; until then, none).
const PROBED_TARGETS: [TargetKind; 0] = [];

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
    if let Some(path) = args.scenario.clone() {
        let scenario = crate::scenario::load(&path)?;
        let explicit = args.explicit.clone();
        crate::scenario::apply(scenario, &mut args, &explicit);
    }
    let sql_only = args.retry_fraction != 0.0 || args.database_url.is_some();
    if args.topology.is_some() && args.target != TargetKind::Maelstrom {
        return Err(Error::Config(
            "--topology is for --target maelstrom --workload broadcast".into(),
        ));
    }
    if args.target != TargetKind::Sql && sql_only {
        return Err(Error::Config(
            "--retry-fraction and --database-url are for --target sql".into(),
        ));
    }
    // Load shapes reach the targets one by one; until a target honours a
    // setting, it refuses it rather than ignore it.
    let shaped = [
        ("load_model", "--load"),
        ("stages", "--stage"),
        ("max_writers", "--max-writers"),
        ("think_time", "--think-time"),
    ];
    // The simulated targets follow every shape on virtual time
    // (crate::vload); http and sql on the one wall-clock engine (crate::engine).
    let honours_shapes = matches!(
        args.target,
        TargetKind::InProcess | TargetKind::Automerge | TargetKind::Sql | TargetKind::Http
    );
    let honours_duration = honours_shapes;
    if let Some((_, flag)) = shaped
        .iter()
        .find(|(id, _)| !honours_shapes && args.explicit.contains(*id))
        .or(if args.duration.is_some() && !honours_duration {
            Some(&("duration", "--duration"))
        } else {
            None
        })
    {
        return Err(Error::Config(format!(
            "{flag} is not supported by --target {} yet",
            args.target.name()
        )));
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
    let black_box = matches!(
        args.target,
        TargetKind::Maelstrom | TargetKind::Http | TargetKind::Sql
    );
    let settle_given = ["quiet_window", "stall_window", "settle_limit"]
        .into_iter()
        .find(|id| args.explicit.contains(*id));
    if black_box && args.explicit.contains("max_rounds") {
        return Err(Error::Config(
            "--max-rounds is for the in-process and automerge targets; black-box targets \
             settle by time (--quiet-window, --stall-window, --settle-limit)"
                .into(),
        ));
    }
    if let (false, Some(id)) = (black_box, settle_given) {
        return Err(Error::Config(format!(
            "--{}: the settle windows are for black-box targets (maelstrom, http, sql); \
             the in-process and automerge targets settle in --max-rounds",
            id.replace('_', "-")
        )));
    }
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
