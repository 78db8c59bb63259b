//! `converge run --target automerge`: drive automerge documents over their
//! sync protocol, check, report.

use super::default_out;
use super::run::{random_seed, RunArgs};
use crate::checker::check_all;
use crate::error::Error;
use crate::nemesis::NemesisSpec;
use crate::report::{LiveFigures, Report};
use crate::target::automerge::{run, AutomergeConfig, AutomergeFault};

/// Resolves the flags of an automerge run.
pub fn config_from(args: &RunArgs) -> Result<AutomergeConfig, Error> {
    if let Some(w) = &args.workload {
        return Err(Error::Config(format!(
            "--workload {w}: the automerge target has one fixed mix (counters, conflicting map keys, a list, a text)"
        )));
    }
    let fault = match &args.fault {
        None => None,
        Some(name) => Some(AutomergeFault::from_name(name).ok_or_else(|| {
            Error::Config(format!(
                "--fault {name}: the automerge target has {}",
                AutomergeFault::ALL.map(AutomergeFault::name).join(", ")
            ))
        })?),
    };
    let seed = args.seed.unwrap_or_else(random_seed);
    let name = fault.map_or("automerge", AutomergeFault::name);
    let out = args.out.clone().unwrap_or_else(|| default_out(name, seed));
    let config = AutomergeConfig {
        writers: args.writers,
        replicas: args.replicas,
        ops: args.ops.unwrap_or(crate::target::automerge::DEFAULT_OPS),
        keys: args.keys.unwrap_or(crate::target::automerge::DEFAULT_KEYS),
        hot_key_ratio: args.hot_key_ratio,
        remove_ratio: args.remove_ratio,
        seed,
        nemesis: NemesisSpec::parse(&args.nemesis)?,
        fault,
        max_rounds: args.max_rounds,
        out,
        load: None,
    };
    let mut config = config;
    if super::run::shaped(args) {
        let spec = super::run::load_spec(args, crate::target::automerge::DEFAULT_OPS)?;
        config.ops = spec.ops.unwrap_or(0);
        config.load = Some(spec);
    }
    config.validate()?;
    Ok(config)
}

/// Runs the automerge target and returns the exit code.
pub fn execute(args: &RunArgs) -> anyhow::Result<i32> {
    let config = match config_from(args) {
        Ok(c) => c,
        Err(e) => return Ok(super::check::fail(&e)),
    };
    let result = match super::start_run(
        &config.out,
        config.seed,
        || config.reproduce(),
        || run(&config),
    ) {
        Ok(r) => r,
        Err(code) => return Ok(super::after_failure(code, &config.out)),
    };
    let mut checks = check_all(&result.history);
    checks.extend(crate::interrupt::check());
    let live = LiveFigures {
        write_phase_s: result.write_phase.as_secs_f64(),
        duration_s: result.total.as_secs_f64(),
        rss_start_mb: result.rss_start_mb,
        nemesis_log: result.nemesis_log.clone(),
    };
    let mut report = Report::build(&result.history, &checks, Some(&live));
    report.fault = config.fault.map(|f| f.name().to_string());
    report.workload = "automerge".into();
    report.load = Some(super::run::simulated_load(
        config.load.as_ref(),
        &crate::load::LoadSpec {
            writers: config.writers,
            ops: Some(config.ops),
            ..crate::load::LoadSpec::default()
        },
        &result.load,
    ));
    report.memory.converge = result.load.converge_memory;
    report.reproduce = super::unpinned(&config.reproduce(), &config.out);
    if let Some(code) = super::run::publish(&mut report, args, &config.out)? {
        return Ok(code);
    }
    let links = result.links;
    println!(
        "sync: {} links, {} messages generated, {} link restarts, {} receive errors, {} dropped by the wrapper; ticks: {} writing, {} final",
        result.link_count,
        links.generated,
        links.resets,
        links.receive_errors,
        links.dropped_by_wrapper,
        result.ticks.0,
        result.ticks.1
    );
    for e in &result.link_errors {
        println!("  receive error: {e}");
    }
    if config.load.is_some() {
        println!("{}", super::run::load_line(&result.load));
    }
    super::print_footer(&config.out, config.seed, report.verdict, &report.reproduce);
    Ok(report.verdict.exit_code())
}
