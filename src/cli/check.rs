//! `converge check`: re-check a recorded history offline.

use super::Format;
use crate::checker::check_all;
use crate::error::Error;
use crate::history::jsonl::read_history;
use crate::report::Report;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `converge check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A `history.jsonl` written by `converge run`.
    pub history: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also write report.json and report.md into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Prints an error and returns its exit code.
pub fn fail(e: &Error) -> i32 {
    eprintln!("error: {e}");
    e.exit_code()
}

/// Runs `converge check` and returns the exit code.
pub fn execute(args: CheckArgs) -> anyhow::Result<i32> {
    let read = match read_history(&args.history) {
        Ok(r) => r,
        Err(e) => return Ok(fail(&e)),
    };
    for w in &read.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(h) = &read.history.header {
        eprintln!("seed: {}", h.seed);
    }
    let checks = check_all(&read.history);
    let report = Report::build(&read.history, &checks, None);
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
