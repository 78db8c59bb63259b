//! `converge fuzz`: a campaign of randomized runs for long unattended use.

use super::{check::fail, Format};
use crate::campaign::{run_campaign, Bounds, Budget, CampaignConfig, Summary};
use crate::error::Error;
use clap::Args;
use converge_models::{model_info, reference_for, ModelInfo, Workload, CATALOG};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `converge fuzz`.
#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// A workload to fuzz with its reference model (repeatable; default: all).
    #[arg(long)]
    pub workload: Vec<String>,
    /// A faulty model to fuzz (repeatable; see `converge list faults`).
    #[arg(long)]
    pub fault: Vec<String>,
    /// Fuzz every faulty model in turn.
    #[arg(long)]
    pub all_faults: bool,
    /// Time budget in seconds (default 60 when --iterations is not given).
    #[arg(long)]
    pub time: Option<f64>,
    /// Most runs.
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Campaign seed; random when omitted (always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep going after a violation.
    #[arg(long)]
    pub keep_going: bool,
    /// Most writers in a run.
    #[arg(long, default_value_t = Bounds::default().max_writers)]
    pub max_writers: u32,
    /// Most replicas in a run.
    #[arg(long, default_value_t = Bounds::default().max_replicas)]
    pub max_replicas: u16,
    /// Most ops in a run.
    #[arg(long, default_value_t = Bounds::default().max_ops)]
    pub max_ops: u64,
    /// Most keys in a run.
    #[arg(long, default_value_t = Bounds::default().max_keys)]
    pub max_keys: u32,
    /// Shrinker re-runs per violation (0: keep the violation unshrunk).
    #[arg(long, default_value_t = 40)]
    pub shrink_budget: u32,
    /// Threads per run (default: available cores).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
    /// Run every run twice, the second time with another thread count, and
    /// report any difference between the histories as an error.
    #[arg(long)]
    pub check_determinism: bool,
    /// Output directory (default: a new `reports/fuzz-<seed>-<YYYYmmdd-HHMMSS>`,
    /// linked from `reports/latest`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// The models named by the flags, in catalog order within each group.
fn models(args: &FuzzArgs) -> Result<Vec<&'static ModelInfo>, Error> {
    let mut models = Vec::new();
    for name in &args.workload {
        let workload = Workload::from_name(name).ok_or_else(|| {
            Error::Config(format!(
                "--workload: unknown workload '{name}' (see `converge list workloads`)"
            ))
        })?;
        models.push(reference_for(workload));
    }
    for name in &args.fault {
        let info = model_info(name).filter(|m| m.faulty).ok_or_else(|| {
            Error::Config(format!(
                "--fault: unknown fault '{name}' (see `converge list faults`)"
            ))
        })?;
        models.push(info);
    }
    if args.all_faults {
        models.extend(CATALOG.iter().filter(|m| m.faulty));
    }
    if models.is_empty() {
        models.extend(CATALOG.iter().filter(|m| !m.faulty));
    }
    Ok(models)
}

/// Resolves the flags into a campaign, naming the bad flag on error.
pub fn campaign_from(args: &FuzzArgs) -> Result<CampaignConfig, Error> {
    let time = match (args.time, args.iterations) {
        (None, None) => Some(60.0),
        (t, _) => t,
    };
    let time = time
        .map(|t| {
            if t.is_finite() && t > 0.0 && t <= 1e9 {
                Ok(Duration::from_secs_f64(t))
            } else {
                Err(Error::Config(format!(
                    "--time must be a positive number of seconds, got {t}"
                )))
            }
        })
        .transpose()?;
    if args.iterations == Some(0) {
        return Err(Error::Config("--iterations must be at least 1".into()));
    }
    if args.threads == Some(0) {
        return Err(Error::Config("--threads must be at least 1".into()));
    }
    let seed = args.seed.unwrap_or_else(super::run::random_seed);
    let bounds = Bounds {
        max_writers: args.max_writers,
        max_replicas: args.max_replicas,
        max_ops: args.max_ops,
        max_keys: args.max_keys,
    };
    bounds.validate()?;
    Ok(CampaignConfig {
        models: models(args)?,
        seed,
        budget: Budget {
            time,
            iterations: args.iterations,
        },
        keep_going: args.keep_going,
        bounds,
        out: args
            .out
            .clone()
            .unwrap_or_else(|| super::default_out("fuzz", seed)),
        shrink_budget: args.shrink_budget,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        check_determinism: args.check_determinism,
    })
}

fn human_summary(summary: &Summary) -> String {
    let mut out = format!(
        "fuzz: {} runs, {} ops in {:.1} s; {} violations, {} unknown, {} errors\n",
        summary.runs,
        summary.ops,
        summary.elapsed_s,
        summary.violations.len(),
        summary.unknowns.len(),
        summary.errors.len()
    );
    let per_model: Vec<String> = summary
        .runs_per_model
        .iter()
        .map(|(m, n)| format!("{m} {n}"))
        .collect();
    out += &format!("runs per model: {}\n", per_model.join(", "));
    if summary.replayed_identical > 0 {
        out += &format!(
            "determinism: {} runs re-run with another thread count, identical\n",
            summary.replayed_identical
        );
    }
    if let (Some(t), Some(n)) = (
        summary.time_to_first_violation_s,
        summary.runs_to_first_violation,
    ) {
        out += &format!("first violation after {t:.2} s ({n} runs)\n");
    }
    for f in summary
        .violations
        .iter()
        .chain(&summary.unknowns)
        .chain(&summary.errors)
    {
        let what = match &f.error {
            Some(e) => format!("error: {e}"),
            None => format!("{}: {}", f.verdict, f.checks.join(", ")),
        };
        out += &format!(
            "run {} ({}) {} [{}]\n  kept: {}\n  reproduce: {}\n",
            f.iteration,
            f.model,
            what,
            format_args!("after {:.2} s", f.found_after_s),
            f.dir,
            f.reproduce
        );
        if let Some(cx) = &f.counterexample {
            out += &format!(
                "  minimal counterexample ({} writers, {} ops, nemesis {}): {}\n",
                cx.writers, cx.ops, cx.nemesis, cx.reproduce
            );
        }
    }
    out
}

/// Runs `converge fuzz` and returns the exit code.
pub fn execute(args: FuzzArgs) -> anyhow::Result<i32> {
    let campaign = match campaign_from(&args) {
        Ok(c) => c,
        Err(e) => return Ok(fail(&e)),
    };
    eprintln!("seed: {}", campaign.seed);
    let bar =
        (super::progress::wanted() && args.format == Format::Human).then(super::progress::spinner);
    let mut last_line = Instant::now();
    let quiet = args.format == Format::Json;
    let result = run_campaign(&campaign, |p| {
        let line = format!(
            "{} runs, {} ops, {} violations; last: {} {}w {}r {}ops nemesis {}",
            p.runs,
            p.ops,
            p.violations,
            p.last.model,
            p.last.writers,
            p.last.replicas,
            p.last.ops,
            p.last.nemesis.to_spec()
        );
        match &bar {
            Some(bar) => bar.set_message(line),
            // Without a terminal, a line every half minute shows a long run is alive.
            None if !quiet && last_line.elapsed() >= Duration::from_secs(30) => {
                eprintln!("{line}");
                last_line = Instant::now();
            }
            None => {}
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut summary = match result {
        Ok(s) => s,
        Err(e) => return Ok(fail(&e)),
    };
    // Commands that reproduce a kept run make a new folder, not write over it.
    for f in summary
        .violations
        .iter_mut()
        .chain(summary.unknowns.iter_mut())
        .chain(summary.errors.iter_mut())
    {
        f.reproduce = super::unpinned(&f.reproduce, Path::new(&f.dir));
        if let Some(cx) = &mut f.counterexample {
            let dir = Path::new(&cx.history).parent().unwrap_or(Path::new(""));
            cx.reproduce = super::unpinned(&cx.reproduce, dir);
        }
    }
    let summary_path = campaign.out.join("summary.json");
    let json = serde_json::to_string_pretty(&summary)?;
    if let Err(e) = std::fs::write(&summary_path, &json) {
        return Ok(fail(&Error::io(&summary_path, e)));
    }
    match args.format {
        Format::Json => println!("{json}"),
        Format::Human => {
            print!("{}", human_summary(&summary));
            println!("summary: {}", summary_path.display());
            println!("seed: {}", summary.seed);
            if summary.exit_code() != 0 {
                println!(
                    "replay the campaign: converge fuzz --seed {} {}",
                    summary.seed,
                    replay_flags(&args)
                );
            }
        }
    }
    Ok(summary.exit_code())
}

/// The flags that fix a campaign's sequence of runs (everything but the seed).
fn replay_flags(args: &FuzzArgs) -> String {
    let mut flags = Vec::new();
    for w in &args.workload {
        flags.push(format!("--workload {w}"));
    }
    for f in &args.fault {
        flags.push(format!("--fault {f}"));
    }
    if args.all_faults {
        flags.push("--all-faults".into());
    }
    if let Some(n) = args.iterations {
        flags.push(format!("--iterations {n}"));
    }
    if let Some(t) = args.time {
        flags.push(format!("--time {t}"));
    }
    if args.keep_going {
        flags.push("--keep-going".into());
    }
    if args.check_determinism {
        flags.push("--check-determinism".into());
    }
    let b = Bounds::default();
    for (flag, value, default) in [
        (
            "--max-writers",
            args.max_writers as u64,
            b.max_writers as u64,
        ),
        (
            "--max-replicas",
            args.max_replicas as u64,
            b.max_replicas as u64,
        ),
        ("--max-ops", args.max_ops, b.max_ops),
        ("--max-keys", args.max_keys as u64, b.max_keys as u64),
    ] {
        if value != default {
            flags.push(format!("{flag} {value}"));
        }
    }
    flags.join(" ")
}
