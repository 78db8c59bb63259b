//! `converge run --target maelstrom`: drive node processes, check, report.

use super::default_out;
use super::run::{random_seed, RunArgs};
use crate::checker::linearizable::{self, LinConfig};
use crate::checker::{check_all, client_ops, findings_check, kafka, unique_ids, Check, Finding};
use crate::error::Error;
use crate::report::{LiveFigures, Report};
use crate::target::maelstrom::router::Latency;
use crate::target::maelstrom::{
    run, Faults, MaelstromConfig, MaelstromResult, MaelstromWorkload, Topology,
};
use crate::verdict::Verdict;
use std::path::Path;
use std::time::Duration;

/// Shape of the one-way latency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyDist {
    /// Always the mean.
    Constant,
    /// Uniform between zero and twice the mean.
    Uniform,
    /// Exponential with the mean.
    #[default]
    Exponential,
}

fn seconds(flag: &str, value: f64) -> Result<Duration, Error> {
    if (0.0..=1e6).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(Error::Config(format!(
            "{flag} must be seconds in [0, 1e6], got {value}"
        )))
    }
}

/// The load shape of a maelstrom run. `--writers` are the clients and
/// `--duration` the client phase (`--clients`, `--time-limit`: a shared
/// flag and its maelstrom twin are refused when they disagree). Maelstrom's
/// own shape is the default: the open model at `--rate` (100 requests/s)
/// over a pool of the clients (arrivals finding all busy are dropped), for
/// `--time-limit` unless stages or `--ops` bound the run.
fn load_from(args: &RunArgs) -> Result<crate::load::LoadSpec, Error> {
    use crate::load::LoadModel;
    let given = |id: &str| args.explicit.contains(id);
    let clients = if given("writers") {
        if given("clients") && args.clients != args.writers as usize {
            return Err(Error::Config(format!(
                "--writers {} and --clients {} disagree: on --target maelstrom they are one setting",
                args.writers, args.clients
            )));
        }
        args.writers
    } else {
        u32::try_from(args.clients)
            .map_err(|_| Error::Config(format!("--clients {} is too many", args.clients)))?
    };
    if clients == 0 || clients > 100_000 {
        return Err(Error::Config(format!(
            "--clients must be in 1..=100000, got {clients}"
        )));
    }
    let duration = match args.duration {
        Some(d) => {
            if given("time_limit") && (args.time_limit - d.as_secs_f64()).abs() > 1e-9 {
                return Err(Error::Config(format!(
                    "--duration {} and --time-limit {} (seconds) disagree: on --target maelstrom they are one setting",
                    args.typed_duration("duration", d),
                    args.time_limit
                )));
            }
            Some(d)
        }
        None if given("time_limit") || (args.stages.is_empty() && args.ops.is_none()) => {
            Some(seconds("--time-limit", args.time_limit)?)
        }
        None => None,
    };
    if args.load_model.is_none() && args.think_time.is_some() {
        return Err(Error::Config(
            "--think-time is for the closed model; --target maelstrom runs the open model \
             unless told otherwise: add --load closed"
                .into(),
        ));
    }
    let model = args.load_model.unwrap_or(LoadModel::Open);
    let mut shared = args.clone();
    shared.load_model = Some(model);
    shared.writers = clients;
    shared.duration = duration;
    if model == LoadModel::Open {
        shared.rate = Some(args.rate.unwrap_or(crate::target::maelstrom::DEFAULT_RATE));
        shared.max_writers = Some(args.max_writers.unwrap_or(clients));
    }
    super::run::load_spec(&shared, 0)
}

/// Resolves the flags of a maelstrom run.
pub fn config_from(args: &RunArgs) -> Result<MaelstromConfig, Error> {
    let bin = args
        .bin
        .clone()
        .ok_or_else(|| Error::Config("--target maelstrom needs --bin PATH".into()))?;
    let name = args.workload.as_deref().unwrap_or("g-counter");
    let workload = MaelstromWorkload::from_name(name).ok_or_else(|| {
        Error::Config(format!(
            "--workload {name}: the maelstrom target has {}",
            MaelstromWorkload::names()
        ))
    })?;
    let topology = match args.topology.as_deref() {
        None => Topology::default(),
        Some(_) if workload != MaelstromWorkload::Broadcast => {
            return Err(Error::Config(format!(
                "--topology applies to --workload broadcast only, not {}",
                workload.name()
            )))
        }
        Some(name) => Topology::parse(name).ok_or_else(|| {
            Error::Config(format!(
                "--topology {name}: Maelstrom's topologies are {}",
                Topology::NAMES.join(", ")
            ))
        })?,
    };
    let spec = if args.nemesis == "default" {
        "partition,drop,duplicate,reorder"
    } else {
        args.nemesis.as_str()
    };
    // --latency is milliseconds: the error says so.
    if !(args.latency.is_finite() && (0.0..=1e9).contains(&args.latency)) {
        return Err(Error::Config(format!(
            "--latency must be milliseconds in [0, 1e9], got {}",
            args.latency
        )));
    }
    let mean = Duration::from_secs_f64(args.latency / 1e3);
    let load = load_from(args)?;
    let seed = args.seed.unwrap_or_else(random_seed);
    let settle = crate::target::settle::SettleRule::from_seconds(
        args.quiet_window,
        args.explicit
            .contains("stall_window")
            .then_some(args.stall_window),
        args.settle_limit,
    )?;
    Ok(MaelstromConfig {
        bin,
        bin_args: args.bin_args.clone(),
        workload,
        nodes: args.nodes,
        load,
        latency: match args.latency_dist {
            LatencyDist::Constant => Latency::Constant(mean),
            LatencyDist::Uniform => Latency::Uniform(mean),
            LatencyDist::Exponential => Latency::Exponential(mean),
        },
        faults: Faults::parse(spec)?,
        seed,
        out: args
            .out
            .clone()
            .unwrap_or_else(|| default_out(&format!("maelstrom-{}", workload.name()), seed)),
        read_ratio: args.read_ratio.unwrap_or(0.25),
        request_timeout: seconds("--request-timeout", args.request_timeout)?
            .max(Duration::from_millis(1)),
        quiet_window: settle.quiet,
        settle_limit: settle.limit,
        stall_window: settle.stall,
        topology,
    })
}

/// Node misbehaviour seen on the wire, as a check: only what Maelstrom
/// itself rejects (each finding names the rule). Faults Maelstrom never
/// injects are said in the summary, so a node is not blamed for one
/// without the reader knowing it.
fn protocol_check(result: &MaelstromResult, faults: Faults) -> Check {
    let report = &result.router;
    let mut check = findings_check(
        "node-protocol",
        report.findings_total,
        &report.findings,
        "every message from every node was one Maelstrom routes",
        "message(s) Maelstrom would reject",
    );
    if let Some(note) = converge_only_faults(faults) {
        check.summary.push_str("; ");
        check.summary.push_str(&note);
    }
    check
}

/// A sentence naming the faults of this run that Maelstrom never injects
/// (its nemesis only partitions), or `None` when there were none.
pub fn converge_only_faults(faults: Faults) -> Option<String> {
    let mut extra = Vec::new();
    if faults.crash {
        extra.push("crash (kill -9, then a restart with empty state: a node that keeps state only in memory loses it, which Maelstrom never causes)");
    }
    if faults.pause {
        extra.push("pause (SIGSTOP/SIGCONT)");
    }
    if faults.loss {
        extra.push("message loss");
    }
    if faults.duplicate {
        extra.push("message duplication");
    }
    if faults.reorder {
        extra.push("extra reordering");
    }
    (!extra.is_empty()).then(|| {
        format!(
            "this run used faults Maelstrom never injects (its nemesis only partitions): {}",
            extra.join(", ")
        )
    })
}

/// The checker of a workload that records bodies (`echo`, `unique-ids`,
/// `kafka`), as the run and `converge check` of its `ops.jsonl` apply it.
pub fn check_client_ops(
    workload: MaelstromWorkload,
    ops: &[client_ops::ClientOp],
    final_polls: kafka::FinalPolls,
) -> Check {
    match workload {
        MaelstromWorkload::Echo => client_ops::check_echo(ops),
        MaelstromWorkload::UniqueIds => unique_ids::check(ops),
        _ => kafka::check(ops, final_polls),
    }
}

/// Runs the maelstrom target and returns the exit code.
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
    let mut checks = match (&result.lin, &result.ops) {
        (_, Some((ops, final_polls))) => vec![check_client_ops(config.workload, ops, *final_polls)],
        (Some(lin), None) => {
            let mut lin_config = LinConfig::new(linearizable::model::ModelKind::CasRegister);
            lin_config.timeout = Some(linearizable::RUN_TIMEOUT);
            let edn = config.out.join("history.edn");
            vec![lin_check(lin, &lin_config, &edn, &config.out)]
        }
        (None, None) => check_all(&result.history),
    };
    crate::target::settle::annotate(&mut checks, result.settle.as_ref());
    checks.push(protocol_check(&result, config.faults));
    checks.extend(crate::interrupt::check());
    let live = LiveFigures {
        write_phase_s: result.client_phase.as_secs_f64(),
        duration_s: result.total.as_secs_f64(),
        rss_start_mb,
        nemesis_log: result.nemesis_log.clone(),
    };
    let mut report = Report::build(&result.history, &checks, Some(&live));
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
    let stats = result.router.stats;
    let ops = result.history.ops.len().max(1) as f64;
    println!(
        "messages: {} sent, {} delivered, {} dropped, {} duplicated, {:.1} per op",
        stats.sent,
        stats.delivered,
        stats.dropped,
        stats.duplicated,
        stats.sent as f64 / ops
    );
    let router = &result.router;
    let (harness_cpu, nodes_cpu) = crate::metrics::cpu_seconds();
    println!(
        "where the time went: harness {:.2} CPU-s (router awake {:.2} s of {:.2} s), nodes {:.2} CPU-s",
        harness_cpu,
        router.busy.as_secs_f64(),
        router.lifetime.as_secs_f64(),
        nodes_cpu
    );
    if let Some(apart) = &result.divergence {
        println!("nodes did not agree before --settle-limit: {apart}");
    }
    println!("nodes' stderr: {}", config.out.join("nodes").display());
    println!("report:  {}", config.out.join("report.md").display());
    println!("seed: {}", config.seed);
    if report.verdict != Verdict::Valid {
        println!("reproduce: {}", report.reproduce);
    }
    Ok(report.verdict.exit_code())
}

fn lin_check(
    lin: &crate::history::lin::LinHistory,
    config: &LinConfig,
    path: &Path,
    out: &Path,
) -> Check {
    let mut check = Check::new("linearizability", Verdict::Unknown, "");
    match linearizable::check(lin, config, path) {
        Ok(result) => {
            let html = out.join("linearizability.html");
            let _ = std::fs::write(&html, linearizable::html::render("history.edn", &result));
            check.verdict = result.verdict;
            let bad: Vec<&linearizable::KeyVerdict> = result
                .keys
                .iter()
                .filter(|k| k.verdict != Verdict::Valid)
                .collect();
            check.summary = format!(
                "{} of {} keys linearizable (witness view: {})",
                result.keys.len() - bad.len(),
                result.keys.len(),
                html.display()
            );
            for key in bad {
                check.find(Finding {
                    message: key
                        .witness
                        .as_ref()
                        .map(|w| w.explanation.clone())
                        .or_else(|| key.reason.clone())
                        .unwrap_or_else(|| "not linearizable".into()),
                    key: key.key.as_deref().and_then(|k| k.parse().ok()),
                    ..Finding::default()
                });
            }
        }
        Err(e) => check.summary = e.to_string(),
    }
    check
}
