//! `converge run`: stress an in-process model, check it, report, shrink.

use super::{default_out, Format};
use crate::checker::check_all;
use crate::error::Error;
use crate::generator::Mix;
use crate::interpreter::{
    run, RunConfig, DEFAULT_MAX_ROUNDS, DEFAULT_OPS, DEFAULT_REPLICAS, DEFAULT_WRITERS,
};
use crate::nemesis::NemesisSpec;
use crate::report::{Counterexample, LiveFigures, Report};
use crate::shrink::shrink;
use crate::verdict::Verdict;
use clap::Args;
use converge_models::{model_info, reference_for, Workload};
use std::path::PathBuf;

/// What a run drives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    /// CRDT models inside this process (the embedded default).
    #[default]
    InProcess,
    /// Node processes speaking Jepsen Maelstrom's protocol (`--bin`).
    Maelstrom,
    /// automerge documents syncing over its real sync protocol.
    Automerge,
}

/// Arguments of `converge run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// What to drive.
    #[arg(long, value_enum, default_value_t = TargetKind::InProcess)]
    pub target: TargetKind,
    /// Maelstrom: the node binary or script.
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Maelstrom: an argument for each node (repeatable).
    #[arg(long = "bin-arg", allow_hyphen_values = true)]
    pub bin_args: Vec<String>,
    /// Maelstrom: node processes.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Maelstrom: clients, one request outstanding each.
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Maelstrom: requests per second over all clients.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
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
    /// Maelstrom: final reads must agree and stay put this many seconds.
    #[arg(long, default_value_t = 1.0)]
    pub quiet_window: f64,
    /// Maelstrom: bound on the final wait, seconds; past it the verdict is unknown.
    #[arg(long, default_value_t = 30.0)]
    pub settle_limit: f64,
    /// Datatype: g-counter, pn-counter, g-set, 2p-set, or-set, lww-register, mv-register, lww-map;
    /// maelstrom also broadcast and lin-kv.
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
    #[arg(long)]
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
    if let Some(threads) = args.threads {
        config.threads = threads;
    }
    config.progress = super::progress::wanted() && args.format == Format::Human;
    config.validate()?;
    Ok(config)
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
    // An automerge fault implies its target, as a model's fault implies its workload.
    let automerge_fault = args
        .fault
        .as_deref()
        .and_then(crate::target::automerge::AutomergeFault::from_name)
        .is_some();
    match args.target {
        TargetKind::Maelstrom => return super::run_maelstrom::execute(&args),
        TargetKind::Automerge => return super::run_automerge::execute(&args),
        TargetKind::InProcess if automerge_fault => return super::run_automerge::execute(&args),
        TargetKind::InProcess => {}
    }
    let config = match config_from(&args) {
        Ok(c) => c,
        Err(e) => return Ok(super::check::fail(&e)),
    };
    eprintln!("seed: {}", config.seed);
    let result = match run(&config) {
        Ok(r) => r,
        Err(e) => return Ok(super::check::fail(&e)),
    };
    let checks = check_all(&result.history);
    let live = LiveFigures {
        write_phase_s: result.write_phase.as_secs_f64(),
        duration_s: result.total.as_secs_f64(),
        rss_start_mb: result.rss_start_mb,
        nemesis_log: result.nemesis_log,
    };
    let mut report = Report::build(&result.history, &checks, Some(&live));
    if report.verdict == Verdict::Invalid && !args.no_shrink {
        if args.format == Format::Human {
            eprintln!("invalid: shrinking to a minimal counterexample...");
        }
        let dest = config.out.join("counterexample");
        match shrink(&config, &report.violated(), args.shrink_budget, &dest) {
            Ok(Some(s)) => {
                report.counterexample = Some(Counterexample {
                    history: dest.join("history.jsonl").display().to_string(),
                    reproduce: s.config.reproduce(),
                    writers: s.config.writers,
                    ops: s.config.ops,
                    keys: s.config.mix.keys,
                    nemesis: s.config.nemesis.to_spec(),
                    violated: s.violated,
                    attempts: s.attempts,
                })
            }
            Ok(None) => {}
            Err(e) => eprintln!("shrinking stopped: {e}"),
        }
    }
    if let Err(e) = report.write(&config.out) {
        return Ok(super::check::fail(&e));
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Human => {
            print!("{}", report.human());
            super::print_footer(&config.out, config.seed, report.verdict, &report.reproduce);
            if report.verdict != Verdict::Valid {
                if let Some(cx) = &report.counterexample {
                    println!(
                        "minimal counterexample ({} writers, {} ops, nemesis {}): {}",
                        cx.writers, cx.ops, cx.nemesis, cx.reproduce
                    );
                }
            }
        }
    }
    Ok(report.verdict.exit_code())
}
