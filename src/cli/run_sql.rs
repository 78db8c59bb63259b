//! `converge run --target sql`: drive a database with the scenario's
//! statements, check the history, gate on the SLOs, report.

use super::default_out;
use super::run::{random_seed, RunArgs};
use crate::checker::check_all;
use crate::error::Error;
use crate::generator::{takes_removes, Mix};
use crate::interpreter::shell_quote;
use crate::nemesis::NemesisSpec;
use crate::report::{LiveFigures, Report};
use crate::target::settle::{SettleRule, SettleState};
use crate::target::sql::spec::expand_env;
use crate::target::sql::{redact_url, run, SqlRunConfig};
use crate::verdict::Verdict;
use converge_models::Workload;

/// Writers when neither flag nor scenario says.
pub const SQL_DEFAULT_WRITERS: u32 = 16;
/// Keys when neither flag nor scenario says.
pub const SQL_DEFAULT_KEYS: u32 = 4;
/// Operations when neither flag nor scenario says.
pub const SQL_DEFAULT_OPS: u64 = 10_000;

/// Resolves the flags (and scenario) of a SQL run, naming the bad setting.
pub fn config_from(args: &RunArgs) -> Result<SqlRunConfig, Error> {
    let mut args = args.clone();
    // The in-process defaults (1000 writers, 5 replicas, 64 keys, 100,000
    // ops) suit models in memory, not a database: smaller ones here.
    let given = |id: &str| args.explicit.contains(id);
    if !given("writers") {
        args.writers = SQL_DEFAULT_WRITERS;
    }
    if !given("replicas") {
        args.replicas = 1;
    }
    let keys = args.keys.unwrap_or(SQL_DEFAULT_KEYS);
    let load = super::run::load_spec(&args, SQL_DEFAULT_OPS)?;
    let args = &args;
    let spec = args.sql.clone().ok_or_else(|| {
        Error::Config(
            "--target sql needs a scenario with a [target.sql] table (--scenario FILE)".into(),
        )
    })?;
    let name = args.workload.as_deref().unwrap_or("g-counter");
    let workload = Workload::from_name(name).ok_or_else(|| {
        Error::Config(format!(
            "workload: unknown workload '{name}' (see `converge list workloads`)"
        ))
    })?;
    let bad = |m: String| Err(Error::Config(m));
    if args.writers == 0 || args.writers > 100_000 {
        return bad(format!(
            "writers must be in 1..=100000, got {}",
            args.writers
        ));
    }
    if args.replicas == 0 || args.replicas > 64 {
        return bad(format!("replicas must be in 1..=64, got {}", args.replicas));
    }
    if keys == 0 || keys > 100_000 {
        return bad(format!("keys must be in 1..=100000, got {keys}"));
    }
    for (flag, v) in [
        ("retry_fraction", args.retry_fraction),
        ("hot_key_ratio", args.hot_key_ratio),
        ("remove_ratio", args.remove_ratio),
        ("read_ratio", args.read_ratio.unwrap_or(0.0)),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return bad(format!("{flag} must be in [0, 1], got {v}"));
        }
    }
    let url = args
        .database_url
        .clone()
        .or_else(|| spec.url.as_deref().map(expand_env))
        .filter(|u| !u.trim().is_empty());
    let model = args
        .scenario
        .as_ref()
        .and_then(|p| p.file_stem())
        .map_or("sql".to_string(), |s| s.to_string_lossy().into_owned());
    let seed = args.seed.unwrap_or_else(random_seed);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&model, seed));
    let removes = takes_removes(workload);
    if args.explicit.contains("remove_ratio") && !removes {
        return bad(format!(
            "--remove-ratio does not apply to workload {name}: it has no removes"
        ));
    }
    let mix = Mix {
        keys,
        hot_key_ratio: args.hot_key_ratio,
        read_ratio: args.read_ratio.unwrap_or(0.1),
        remove_ratio: args.remove_ratio,
        ..Mix::default()
    };
    let nemesis = NemesisSpec::parse(&args.nemesis)?;
    let settle = SettleRule::from_seconds(
        args.quiet_window,
        args.explicit
            .contains("stall_window")
            .then_some(args.stall_window),
        args.settle_limit,
    )?;
    // Every setting of the op mix, so the line reproduces the run whatever
    // the scenario's defaults (`--remove-ratio` only where it applies).
    let mut reproduce = format!(
        "converge run {} --workload {} --seed {seed} --writers {} --replicas {}{} --keys {} --hot-key-ratio {} --read-ratio {}{} --nemesis {} --retry-fraction {} --quiet-window {} --stall-window {} --settle-limit {} --out {}",
        shell_quote(&args.scenario.as_ref().map_or(String::new(), |p| p.display().to_string())),
        workload.name(),
        args.writers,
        args.replicas,
        crate::engine::load_flags(&load),
        keys,
        mix.hot_key_ratio,
        mix.read_ratio,
        if removes {
            format!(" --remove-ratio {}", mix.remove_ratio)
        } else {
            String::new()
        },
        nemesis.to_spec(),
        args.retry_fraction,
        settle.quiet.as_secs_f64(),
        settle.stall.as_secs_f64(),
        settle.limit.as_secs_f64(),
        shell_quote(&out.display().to_string()),
    );
    if let Some(url) = &args.database_url {
        reproduce.push_str(&format!(
            " --database-url {}",
            shell_quote(&redact_url(url))
        ));
    }
    Ok(SqlRunConfig {
        spec,
        url,
        workload,
        model,
        replicas: args.replicas,
        load,
        mix,
        retry_fraction: args.retry_fraction,
        seed,
        nemesis,
        settle,
        out,
        probe: super::run::target_probe(args)?,
        reproduce,
    })
}

/// Runs the SQL target and returns the exit code.
pub fn execute(args: &RunArgs) -> anyhow::Result<i32> {
    let config = match config_from(args) {
        Ok(c) => c,
        Err(e) => return Ok(super::check::fail(&e)),
    };
    let result = match super::start_run(
        &config.out,
        config.seed,
        || config.reproduce.clone(),
        || run(&config),
    ) {
        Ok(r) => r,
        Err(code) => return Ok(super::after_failure(code, &config.out)),
    };
    let mut checks = check_all(&result.history);
    crate::target::settle::annotate(&mut checks, Some(&result.settle));
    checks.extend(crate::interrupt::check());
    let live = LiveFigures {
        write_phase_s: result.write_phase.as_secs_f64(),
        duration_s: result.total.as_secs_f64(),
        rss_start_mb: result.rss_start_mb,
        nemesis_log: result.nemesis_log.clone(),
    };
    let mut report = Report::build(&result.history, &checks, Some(&live));
    report.reproduce = super::unpinned(&config.reproduce, &config.out);
    super::run::attach_wall_figures(
        &mut report,
        &config.load,
        result.series.as_ref(),
        result.dropped,
        result.writers_peak,
    );
    if let Some(code) = super::run::publish(&mut report, args, &config.out)? {
        return Ok(code);
    }
    println!(
        "database: {} ({} connections per replica)",
        result.backend.name(),
        result.pool_size
    );
    for e in &result.errors {
        println!("database error: {e}");
    }
    if result.settle.state != SettleState::Converged {
        println!("replicas did not agree: {}", result.settle.describe());
    }
    println!("history: {}", config.out.join("history.jsonl").display());
    println!("report:  {}", config.out.join("report.md").display());
    println!("seed: {}", config.seed);
    if report.verdict != Verdict::Valid {
        println!("reproduce: {}", report.reproduce);
    }
    Ok(report.verdict.exit_code())
}
