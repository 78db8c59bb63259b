//! `converge check`: re-check recorded histories offline, with the CRDT
//! checkers (convergence, data loss, idempotency) or for linearizability.

use super::Format;
use crate::checker::linearizable::model::{ModelKind, Semantics};
use crate::checker::linearizable::{self, html, Explain, LinCheck, LinConfig, DEFAULT_MEMORY_MIB};
use crate::checker::{check_all, client_ops};
use crate::error::Error;
use crate::history::detect::read_lin_history;
use crate::history::jsonl::read_history;
use crate::history::lin::{InputFormat, LinFn, LinHistory, LinValue};
use crate::history::History;
use crate::report::Report;
use crate::target::maelstrom::MaelstromWorkload;
use crate::verdict::{Verdict, EXIT_USAGE};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which property `converge check` decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum CheckerKind {
    /// Convergence, zero data loss and idempotency of a converge run.
    #[default]
    Crdt,
    /// Linearizability against a sequential model.
    Linearizable,
}

/// Arguments of `converge check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// History files: converge `history.jsonl`, or the `ops.jsonl` of a
    /// Maelstrom echo, unique-ids or kafka run; for `--checker
    /// linearizable` also Jepsen logs, Jepsen EDN and porcupine kv EDN.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Property to check.
    #[arg(long, value_enum, default_value_t = CheckerKind::Crdt)]
    pub checker: CheckerKind,
    /// Sequential model for `--checker linearizable` (inferred from the ops when omitted).
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// What nil reads, `fail` and `info` ops mean.
    #[arg(long, value_enum, default_value_t = Semantics::Porcupine)]
    pub semantics: Semantics,
    /// Time budget per file in seconds, shared out among the keys;
    /// undecided keys become `unknown`.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Memory budget in MiB for the whole process (the history read, every
    /// search, the witness); a key that would pass it is `unknown`.
    #[arg(long, default_value_t = DEFAULT_MEMORY_MIB)]
    pub memory_mib: usize,
    /// Which non-linearizable keys get a witness.
    #[arg(long, value_enum, default_value_t = Explain::First)]
    pub explain: Explain,
    /// Worker threads for the per-key search (default: available cores).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
    /// Input format (detected from the content when omitted).
    #[arg(long, value_enum)]
    pub input_format: Option<InputFormat>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also write reports here: report.json and report.md for the CRDT
    /// checkers; `<file>.linearizability.json` and `<file>.html` for
    /// linearizability.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Prints an error and returns its exit code.
pub fn fail(e: &Error) -> i32 {
    eprintln!("error: {e}");
    e.exit_code()
}

/// Runs `converge check` and returns the exit code: the worst over files,
/// with an unreadable file counting as a usage error.
pub fn execute(args: CheckArgs) -> anyhow::Result<i32> {
    match args.checker {
        CheckerKind::Crdt => {
            let mut worst = 0;
            for file in &args.files {
                worst = worst.max(check_crdt(&args, file)?);
            }
            Ok(worst)
        }
        CheckerKind::Linearizable => check_linearizable(&args),
    }
}

fn check_crdt(args: &CheckArgs, file: &Path) -> anyhow::Result<i32> {
    if client_ops::is_ops_file(file) {
        return check_ops(args, file);
    }
    let read = match read_history(file) {
        Ok(r) => r,
        Err(e) => return Ok(fail(&e)),
    };
    for w in &read.warnings {
        eprintln!("warning: {w}");
    }
    if let Some((replica, key)) = crate::checker::duplicated_final(&read.history) {
        return Ok(fail(&Error::History {
            path: file.to_path_buf(),
            message: format!(
                "replica {replica} has more than one final read of key {key}: each replica's final value must be read once"
            ),
        }));
    }
    if let Some(h) = &read.history.header {
        eprintln!("seed: {}", h.seed);
    }
    let mut checks = check_all(&read.history);
    if let Some(why) = &read.interrupted {
        eprintln!("warning: {why}");
        checks.push(interrupted_check(why));
    }
    write_report(args, file, &read.history, &checks)
}

/// Writes the report of `checks` on `history` as `--out` and `--format`
/// ask, and returns the exit code of its verdict.
fn write_report(
    args: &CheckArgs,
    file: &Path,
    history: &History,
    checks: &[crate::checker::Check],
) -> anyhow::Result<i32> {
    let mut report = Report::build(history, checks, None);
    // A history in a default output folder: its command makes a new one.
    report.reproduce = super::unpinned(&report.reproduce, file.parent().unwrap_or(file));
    if let Some(out) = &args.out {
        if let Err(e) = std::fs::create_dir_all(out)
            .map_err(|e| Error::io(out, e))
            .and_then(|_| report.write(out))
        {
            return Ok(fail(&e));
        }
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Human => {
            print!("{}", report.human());
            if !report.reproduce.is_empty() {
                println!("reproduce: {}", report.reproduce);
            }
        }
    }
    Ok(report.verdict.exit_code())
}

/// `ops.jsonl` of a Maelstrom `echo`, `unique-ids` or `kafka` run: judged
/// by the checker of its workload (from the header, or from the ops of a
/// format-1 file), with kafka's loss judged only when the file says the
/// final polls settled.
fn check_ops(args: &CheckArgs, file: &Path) -> anyhow::Result<i32> {
    let read = match client_ops::read_ops(file) {
        Ok(r) => r,
        Err(e) => return Ok(fail(&e)),
    };
    for w in &read.warnings {
        eprintln!("warning: {w}");
    }
    let named = read.header.as_ref().map(|h| h.workload.as_str());
    let workload = match named {
        Some(name) => match MaelstromWorkload::from_name(name).filter(|w| w.records_bodies()) {
            Some(w) => Some(w),
            None => {
                return Ok(fail(&Error::HistoryLine {
                    path: file.to_path_buf(),
                    line: 1,
                    message: format!(
                        "workload {name:?}: ops.jsonl holds echo, unique-ids or kafka ops"
                    ),
                }))
            }
        },
        None => match workload_of(&read.ops) {
            Ok(w) => w,
            Err(message) => {
                return Ok(fail(&Error::History {
                    path: file.to_path_buf(),
                    message,
                }))
            }
        },
    };
    let mut history = match &read.header {
        Some(h) => {
            eprintln!("seed: {}", h.run.seed);
            History::new(h.run.clone())
        }
        None => History::default(),
    };
    for op in &read.ops {
        if let Err(message) = history.push(op.latency_record(), None, &[], None) {
            return Ok(fail(&Error::History {
                path: file.to_path_buf(),
                message,
            }));
        }
    }
    let mut checks = vec![match workload {
        Some(w) => super::run_maelstrom::check_client_ops(w, &read.ops, read.final_polls),
        None => client_ops::not_judged("client-ops", "the file holds no op"),
    }];
    if let Some(why) = &read.interrupted {
        eprintln!("warning: {why}");
        checks.push(interrupted_check(why));
    }
    write_report(args, file, &history, &checks)
}

/// The workload of format-1 ops (no header), from their request types:
/// `None` for no op, an error when they mix workloads.
fn workload_of(ops: &[client_ops::ClientOp]) -> Result<Option<MaelstromWorkload>, String> {
    let mut found = None;
    for op in ops {
        let w = match op.f.as_str() {
            "echo" => MaelstromWorkload::Echo,
            "generate" => MaelstromWorkload::UniqueIds,
            "send" | "poll" | "commit_offsets" | "list_committed_offsets" => {
                MaelstromWorkload::Kafka
            }
            other => {
                return Err(format!(
                    "an op of type {other:?}, of no workload ops.jsonl records"
                ))
            }
        };
        match found {
            Some(before) if before != w => {
                return Err(format!(
                    "ops of two workloads ({} and {})",
                    MaelstromWorkload::name(before),
                    w.name()
                ))
            }
            _ => found = Some(w),
        }
    }
    Ok(found)
}

/// A cut history (no end line) may show a violation, but its silence is
/// not a pass: the part of the run it lacks was never judged.
fn interrupted_check(why: &str) -> crate::checker::Check {
    let mut check = crate::checker::Check::new(
        "complete-history",
        Verdict::Unknown,
        format!("not judged: {why}"),
    );
    check.count("judged", 0);
    check
}

/// One file's linearizability result, as printed with `--format json`.
#[derive(Debug, Serialize)]
struct FileResult {
    file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<LinCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn check_linearizable(args: &CheckArgs) -> anyhow::Result<i32> {
    if let Err(e) = lin_budget(args) {
        return Ok(fail(&e));
    }
    let mut worst = 0;
    let mut results = Vec::new();
    for file in &args.files {
        match check_lin_file(args, file) {
            Ok(check) => {
                worst = worst.max(check.verdict.exit_code());
                if args.format == Format::Human {
                    print!(
                        "{}",
                        linearizable::human(&file.display().to_string(), &check)
                    );
                }
                results.push(FileResult {
                    file: file.clone(),
                    check: Some(check),
                    error: None,
                });
            }
            Err(e) => {
                worst = worst.max(fail(&e));
                results.push(FileResult {
                    file: file.clone(),
                    check: None,
                    error: Some(e.to_string()),
                });
            }
        }
    }
    if args.format == Format::Json {
        let errors = results.iter().filter(|r| r.error.is_some()).count();
        // An unreadable file leaves the answer open, whatever the others say.
        let floor = if errors > 0 {
            Verdict::Unknown
        } else {
            Verdict::Valid
        };
        let verdict = results
            .iter()
            .filter_map(|r| r.check.as_ref())
            .fold(floor, |v, c| v.and(c.verdict));
        let doc = serde_json::json!({ "verdict": verdict, "errors": errors, "files": results });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(if worst == EXIT_USAGE {
        EXIT_USAGE
    } else {
        worst
    })
}

fn check_lin_file(args: &CheckArgs, file: &Path) -> Result<LinCheck, Error> {
    let history = read_lin_history(file, args.input_format)?;
    for w in &history.warnings {
        eprintln!("warning: {}: {w}", file.display());
    }
    let model = match args.model {
        Some(model) => model,
        None => {
            let model = infer_model(&history);
            eprintln!(
                "note: {}: checking against model {} (inferred; pass --model to choose)",
                file.display(),
                model.as_str()
            );
            model
        }
    };
    let timeout = lin_budget(args)?;
    let mut config = LinConfig::new(model);
    config.semantics = args.semantics;
    config.timeout = timeout;
    config.memory_mib = args.memory_mib;
    config.memory_covers_process = true;
    config.explain = args.explain;
    if let Some(threads) = args.threads {
        config.threads = threads.max(1);
    }
    let check = linearizable::check(&history, &config, file)?;
    if let Some(out) = &args.out {
        write_lin_outputs(out, file, &check)?;
    }
    Ok(check)
}

/// The validated `--timeout`, after checking `--memory-mib`.
fn lin_budget(args: &CheckArgs) -> Result<Option<Duration>, Error> {
    if args.memory_mib == 0 {
        return Err(Error::Config("--memory-mib must be at least 1".into()));
    }
    match args.timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t > 0.0 && t < 1e9 => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(Error::Config(format!("--timeout {t}: give seconds > 0"))),
    }
}

fn write_lin_outputs(out: &Path, file: &Path, check: &LinCheck) -> Result<(), Error> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let name = file
        .file_name()
        .map_or_else(|| "history".into(), |n| n.to_string_lossy().into_owned());
    let json_path = out.join(format!("{name}.linearizability.json"));
    let json = serde_json::to_string_pretty(check)
        .map_err(|e| Error::Config(format!("cannot encode the result: {e}")))?;
    std::fs::write(&json_path, json).map_err(|e| Error::io(&json_path, e))?;
    let html_path = out.join(format!("{name}.html"));
    std::fs::write(&html_path, html::render(&name, check)).map_err(|e| Error::io(&html_path, e))?;
    eprintln!("wrote {} and {}", json_path.display(), html_path.display());
    Ok(())
}

/// Picks the model an unannotated history most likely needs.
fn infer_model(history: &LinHistory) -> ModelKind {
    let has = |f: LinFn| history.ops.iter().any(|op| op.f == f);
    let strings = history
        .ops
        .iter()
        .any(|op| matches!(op.input, LinValue::Str(_)) || matches!(op.output, LinValue::Str(_)));
    if has(LinFn::Append) || strings {
        ModelKind::Kv
    } else if has(LinFn::Cas) {
        ModelKind::CasRegister
    } else if has(LinFn::Add) {
        let list_reads = history
            .ops
            .iter()
            .any(|op| op.f == LinFn::Read && matches!(op.output, LinValue::List(_)));
        if list_reads {
            ModelKind::Set
        } else {
            ModelKind::Counter
        }
    } else {
        ModelKind::CasRegister
    }
}
