//! `converge run --target http`: drive a service over HTTP, check, report.

use super::run::{random_seed, RunArgs};
use super::{default_out, Format};
use crate::checker::{check_all, findings_check};
use crate::error::Error;
use crate::generator::Mix;
use crate::report::{LiveFigures, Report};
use crate::target::http::{run, HttpFaults, HttpRunConfig, HttpTargetConfig};
use crate::verdict::Verdict;

/// Resolves the flags and the `--http-config` file of an http run.
pub fn config_from(args: &RunArgs) -> Result<HttpRunConfig, Error> {
    let path = args
        .http_config
        .clone()
        .ok_or_else(|| Error::Config("--target http needs --http-config FILE.toml".into()))?;
    let target = HttpTargetConfig::load(&path)?;
    if let Some(w) = &args.workload {
        if *w != target.workload {
            return Err(Error::Config(format!(
                "--workload {w} differs from workload = \"{}\" in {}",
                target.workload,
                path.display()
            )));
        }
    }
    let seed = args.seed.unwrap_or_else(random_seed);
    let faults = HttpFaults::parse(&args.nemesis, &target)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&format!("http-{}", target.workload), seed));
    let config = HttpRunConfig {
        writers: args.writers,
        ops: args.ops.unwrap_or(crate::interpreter::DEFAULT_OPS),
        read_ratio: args.read_ratio.unwrap_or(0.1),
        remove_ratio: if args.remove_ratio == Mix::default().remove_ratio {
            0.3
        } else {
            args.remove_ratio
        },
        faults,
        seed,
        out,
        config_path: path,
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
    eprintln!("seed: {}", config.seed);
    let result = match run(&config) {
        Ok(r) => r,
        Err(e) => {
            let code = super::check::fail(&e);
            eprintln!("reproduce: {}", config.reproduce());
            return Ok(code);
        }
    };
    let mut checks = check_all(&result.history);
    super::run_maelstrom::note_divergence(&mut checks, result.divergence.as_deref());
    checks.push(findings_check(
        "target-responses",
        result.garbage_total,
        &result.garbage,
        "every 2xx answer had what the templates point at",
        "answer(s) did not have what the templates point at",
    ));
    let live = LiveFigures {
        write_phase_s: result.client_phase.as_secs_f64(),
        duration_s: result.total.as_secs_f64(),
        rss_start_mb: 0.0,
        nemesis_log: result.nemesis_log.clone(),
    };
    let mut report = Report::build(&result.history, &checks, Some(&live));
    report.service = result.service.clone();
    if let Err(e) = report.write(&config.out) {
        return Ok(super::check::fail(&e));
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Human => {
            print!("{}", report.human());
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
            println!("history: {}", config.out.join("history.jsonl").display());
            println!("report:  {}", config.out.join("report.md").display());
            println!("seed: {}", config.seed);
            if report.verdict != Verdict::Valid {
                println!("reproduce: {}", config.reproduce());
            }
        }
    }
    Ok(report.verdict.exit_code())
}
