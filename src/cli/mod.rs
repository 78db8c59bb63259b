//! The command line: argument definitions and one module per subcommand.

pub mod check;
pub mod fuzz;
pub mod list;
pub mod progress;
pub mod replay;
pub mod report;
pub mod run;
pub mod run_automerge;
pub mod run_http;
pub mod run_maelstrom;
pub mod run_sql;
pub mod serve;
pub mod suite;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// converge: a CRDT stress and correctness verifier.
#[derive(Debug, Parser)]
#[command(name = "converge", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Text for people.
    Human,
    /// One JSON document on stdout.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a stress test against in-process replicas and check it.
    Run(Box<run::RunArgs>),
    /// Re-check a recorded history offline.
    Check(check::CheckArgs),
    /// A fuzzing campaign: many randomized runs until a budget is spent or a bug is found.
    Fuzz(Box<fuzz::FuzzArgs>),
    /// List workloads, faulty models or nemesis faults.
    List(list::ListArgs),
    /// Run the reference HTTP CRDT service (several replicas in one process).
    Serve(serve::ServeArgs),
    /// Re-run a stored in-process or automerge run from its history header
    /// and compare: exit 0 identical, 1 different, 3 not replayable.
    Replay(replay::ReplayArgs),
    /// Run a suite of scenarios (a TOML file with a `[suite]` table) and
    /// write its acceptance report; the exit code is the suite's verdict.
    Suite(suite::SuiteArgs),
    /// Render a stored run or suite folder's outputs again (report.md,
    /// report.html, junit.xml, summary.md, acceptance.md) without re-running.
    Report(report::ReportArgs),
}

/// Most worker threads `--threads` accepts: far past any useful number on
/// one machine, and below what spawning would fail at.
pub const MAX_THREADS: usize = 1024;

/// Parses `--threads`: 1 to [`MAX_THREADS`] (a usage error otherwise, exit 3).
pub fn parse_threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!("give a number of threads from 1 to {MAX_THREADS}")),
    }
}

/// Where run outputs go by default.
pub fn default_out(model: &str, seed: u64) -> PathBuf {
    PathBuf::from("reports").join(format!("{model}-{seed}"))
}

/// Parses arguments like [`Parser::try_parse_from`], and also records which
/// `run` flags were typed (so they override a scenario file).
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let (Command::Run(run), Some(("run", sub))) = (&mut cli.command, matches.subcommand()) {
        run.explicit = sub
            .ids()
            .filter(|id| {
                sub.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|id| id.as_str().to_string())
            .collect();
    }
    Ok(cli)
}

/// Claims the output folder ([`crate::history::lock::claim`]: one run per
/// folder), prints the seed, then runs; a run that fails before its verdict
/// prints the error and the command that reproduces it, and gives the exit
/// code.
pub fn start_run<R>(
    out: &std::path::Path,
    seed: u64,
    reproduce: impl FnOnce() -> String,
    run: impl FnOnce() -> Result<R, crate::error::Error>,
) -> Result<R, i32> {
    if let Err(e) = crate::history::lock::claim(out) {
        return Err(check::fail(&e));
    }
    eprintln!("seed: {seed}");
    run().map_err(|e| {
        let code = check::fail(&e);
        eprintln!("reproduce: {}", reproduce());
        code
    })
}

/// After a run that ended in an error: when a stop was asked for
/// (SIGINT/SIGTERM) and a history is on disk, judges what it holds and
/// writes a partial report beside it, marked interrupted; returns the exit
/// code (the error's, or the partial verdict's).
pub fn after_failure(code: i32, out: &std::path::Path) -> i32 {
    let path = out.join("history.jsonl");
    if !crate::interrupt::requested() || !path.exists() {
        return code;
    }
    let Ok(read) = crate::history::jsonl::read_history(&path) else {
        return code;
    };
    let mut checks = crate::checker::check_all(&read.history);
    checks.extend(crate::interrupt::check());
    let report = crate::report::Report::build(&read.history, &checks, None);
    if let Err(e) = report.write(out) {
        return check::fail(&e);
    }
    eprintln!(
        "partial report: {} ({})",
        out.join("report.md").display(),
        report.verdict
    );
    report.verdict.exit_code()
}

/// The last lines of a human run report: where the files are, the seed,
/// and the reproduce command unless the verdict is valid.
pub fn print_footer(out: &std::path::Path, seed: u64, verdict: crate::Verdict, reproduce: &str) {
    println!("history: {}", out.join("history.jsonl").display());
    println!("report:  {}", out.join("report.md").display());
    println!("seed: {seed}");
    if verdict != crate::Verdict::Valid {
        println!("reproduce: {reproduce}");
    }
}

/// Runs the parsed command and returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let code = match cli.command {
        Command::Run(args) => {
            // SIGINT/SIGTERM stop a run gracefully (see `interrupt`).
            crate::interrupt::install();
            run::execute(*args)
        }
        Command::Check(args) => check::execute(args),
        Command::Fuzz(args) => fuzz::execute(*args),
        Command::List(args) => list::execute(args),
        Command::Serve(args) => serve::execute(args),
        Command::Replay(args) => replay::execute(args),
        Command::Suite(args) => {
            crate::interrupt::install();
            suite::execute(args)
        }
        Command::Report(args) => report::execute(args),
    };
    // No child outlives the command, whatever path ended it.
    crate::child::kill_all();
    code
}
