//! `converge run --target http`: drive a service over HTTP, check, report.

use super::default_out;
use super::run::{random_seed, RunArgs};
use crate::checker::{check_all, findings_check};
use crate::error::Error;
use crate::generator::takes_removes;
use crate::interpreter::shell_quote;
use crate::report::{LiveFigures, Report};
use crate::target::http::{run, HttpFaults, HttpRunConfig, HttpTargetConfig};
use crate::target::settle::{SettleNames, SettleRule, SettleSetting};

/// Resolves the flags and the `[target.http]` table of an http run: from
/// the scenario, or alone in an `--http-config` file (the same table, one
/// format either way).
pub fn config_from(args: &RunArgs) -> Result<HttpRunConfig, Error> {
    let quoted = |p: &std::path::Path| shell_quote(&p.display().to_string());
    let (target, config_flag) = match (&args.http_config, &args.http, &args.scenario) {
        (Some(path), _, _) => (
            HttpTargetConfig::load(path)?,
            format!("--http-config {}", quoted(path)),
        ),
        (None, Some(table), Some(scenario)) => {
            table.validate()?;
            (table.clone(), quoted(scenario))
        }
        _ => {
            return Err(Error::Config(
                "--target http needs a scenario with a [target.http] table (`converge run \
                 SCENARIO.toml`), or --http-config FILE holding that table alone"
                    .into(),
            ))
        }
    };
    // The settle flags (or scenario keys) override the table's windows.
    let mut target = target;
    let given = |id: &str| args.explicit.contains(id);
    if ["quiet_window", "stall_window", "settle_limit"]
        .iter()
        .any(|id| given(id))
    {
        let table = target.settle_rule();
        let pick = |id: &str, flag: f64, table: std::time::Duration| {
            if given(id) {
                flag
            } else {
                table.as_secs_f64()
            }
        };
        // An error names each setting where it was given: the flag (or
        // scenario key) in seconds, or the table's key in milliseconds.
        let named = |id: &str, flag: &'static str, key: &'static str| {
            if given(id) {
                SettleSetting::Seconds(flag)
            } else {
                SettleSetting::Millis(key)
            }
        };
        let names = SettleNames {
            quiet: named("quiet_window", "--quiet-window", "quiet_window_ms"),
            stall: named("stall_window", "--stall-window", "stall_window_ms"),
            limit: named("settle_limit", "--settle-limit", "settle_limit_ms"),
        };
        let rule = SettleRule::from_seconds_as(
            pick("quiet_window", args.quiet_window, table.quiet),
            (given("stall_window") || target.stall_window_ms.is_some())
                .then(|| pick("stall_window", args.stall_window, table.stall)),
            pick("settle_limit", args.settle_limit, table.limit),
            &names,
        )?;
        target.quiet_window_ms = rule.quiet.as_millis() as u64;
        target.stall_window_ms = Some(rule.stall.as_millis() as u64);
        target.settle_limit_ms = rule.limit.as_millis() as u64;
    }
    if let Some(w) = &args.workload {
        if *w != target.workload {
            return Err(Error::Config(format!(
                "--workload {w} differs from workload = \"{}\" of {config_flag}",
                target.workload
            )));
        }
    }
    let removes = takes_removes(target.datatype()?);
    if given("remove_ratio") && !removes {
        return Err(Error::Config(format!(
            "--remove-ratio does not apply to workload = \"{}\" of {config_flag}: it has no removes",
            target.workload
        )));
    }
    let seed = args.seed.unwrap_or_else(random_seed);
    let faults = HttpFaults::parse(&args.nemesis, &target)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&format!("http-{}", target.workload), seed));
    let config = HttpRunConfig {
        load: super::run::load_spec(args, crate::interpreter::DEFAULT_OPS)?,
        hot_key_ratio: args.hot_key_ratio,
        read_ratio: args.read_ratio.unwrap_or(0.1),
        remove_ratio: args.remove_ratio,
        faults,
        seed,
        out,
        probe: super::run::target_probe(args)?,
        config_flag,
        target,
    };
    config.validate()?;
    Ok(config)
}

/// Runs the http target and returns the exit code.
pub fn execute(args: &RunArgs) -> anyhow::Result<i32> {
    let config = match config_from(args) {
        Ok(c) => c,
        Err(e) => return Ok(super::check::fail(&e)),
    };
    // Taken before the run, so that rss_growth_mb is growth, not the peak.
    let rss_start_mb = crate::metrics::rss_mb().map_or(0.0, |r| r.0);
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
    crate::target::settle::annotate(&mut checks, result.settle.as_ref());
    checks.push(findings_check(
        "target-responses",
        result.garbage_total,
        &result.garbage,
        "every 2xx answer had what the templates point at",
        "answer(s) did not have what the templates point at",
    ));
    checks.extend(crate::interrupt::check());
    let live = LiveFigures {
        write_phase_s: result.client_phase.as_secs_f64(),
        duration_s: result.total.as_secs_f64(),
        rss_start_mb,
        nemesis_log: result.nemesis_log.clone(),
    };
    let mut report = Report::build(&result.history, &checks, Some(&live));
    report.memory.service_rss_peak_mb = result.service.as_ref().map(|s| s.rss_peak_mb);
    report.service = result.service.clone();
    super::run::attach_wall_figures(
        &mut report,
        &config.load,
        result.series.as_ref(),
        result.dropped,
        result.writers_peak,
    );
    report.reproduce = super::unpinned(&config.reproduce(), &config.out);
    // JSON output (or a write error) is complete; the human report gets the
    // target's own lines.
    if let Some(code) = super::run::publish(&mut report, args, &config.out)? {
        return Ok(code);
    }
    println!("replicas: {}", result.replicas.join(" "));
    println!(
        "retries: {} writes sent twice with the same idempotency key",
        result.retries
    );
    let fd = result.fd_limit;
    println!(
        "open files: soft limit {} -> {} (hard {}); at most {} connections per replica",
        fd.before, fd.after, fd.hard, result.connections_per_host
    );
    if let Some(s) = &result.service {
        println!(
            "service: RSS peak {:.1} MB, mean {:.1} MB, CPU {:.2} s, {} restarts (log: {})",
            s.rss_peak_mb,
            s.rss_mean_mb,
            s.cpu_s,
            s.restarts,
            config.out.join("service.log").display()
        );
    }
    if let Some(apart) = &result.divergence {
        println!("replicas did not agree: {apart}");
    }
    super::print_footer(&config.out, config.seed, report.verdict, &report.reproduce);
    Ok(report.verdict.exit_code())
}
