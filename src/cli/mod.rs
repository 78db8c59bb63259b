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
use std::path::{Path, PathBuf};

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
    /// Run a scenario against a target (in-process by default) and check it.
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

/// Where run outputs go by default: a folder of its own for every run,
/// `reports/<name>-<seed>-<YYYYmmdd-HHMMSS>` (UTC), with `-2`, `-3`, ...
/// when that exists already, so running the same seed twice keeps both.
/// The folder is created here (so two runs in the same second cannot pick
/// the same one) and `reports/latest` is pointed at it.
pub fn default_out(model: &str, seed: u64) -> PathBuf {
    default_out_in(
        Path::new(REPORTS),
        model,
        seed,
        std::time::SystemTime::now(),
    )
}

/// The folder default output folders live in.
pub const REPORTS: &str = "reports";

/// The link to the last run's default folder, inside [`REPORTS`].
pub const LATEST: &str = "latest";

/// [`default_out`] under `root` at time `now`.
pub fn default_out_in(root: &Path, model: &str, seed: u64, now: std::time::SystemTime) -> PathBuf {
    let stamp = utc_stamp(now);
    let base = format!("{model}-{seed}-{stamp}");
    let _ = std::fs::create_dir_all(root);
    let mut name = base.clone();
    // A bounded search: past it, the last name is returned and claiming it
    // reports whatever is wrong with the folder.
    for n in 2..1000 {
        match std::fs::create_dir(root.join(&name)) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                name = format!("{base}-{n}");
            }
            Err(_) => break,
        }
    }
    point_latest(root, &name);
    root.join(name)
}

/// Points `<root>/latest` at `<root>/<name>` (a relative symbolic link,
/// replaced in one rename so readers never see it missing). Best effort:
/// a file system without links just has no `latest`.
fn point_latest(root: &Path, name: &str) {
    #[cfg(unix)]
    {
        let draft = root.join(format!(".{LATEST}.{}", std::process::id()));
        let _ = std::fs::remove_file(&draft);
        if std::os::unix::fs::symlink(name, &draft).is_ok()
            && std::fs::rename(&draft, root.join(LATEST)).is_err()
        {
            let _ = std::fs::remove_file(&draft);
        }
    }
    #[cfg(not(unix))]
    let _ = (root, name);
}

/// `YYYYmmdd-HHMMSS` in UTC.
pub fn utc_stamp(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Whether `dir` is, or lies inside, a default output folder
/// (`reports/<name>-<seed>-<YYYYmmdd-HHMMSS>[-N]/...`).
pub fn in_default_out(dir: &Path) -> bool {
    let mut parts = dir.components().map(|c| c.as_os_str().to_string_lossy());
    if parts.next().as_deref() != Some(REPORTS) {
        return false;
    }
    let Some(name) = parts.next() else {
        return false;
    };
    // <name>-<seed>-<8 digits>-<6 digits>, then an optional -N.
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let words: Vec<&str> = name.split('-').collect();
    let stamped = |w: &[&str]| {
        w.len() >= 4
            && digits(w[w.len() - 1], 6)
            && digits(w[w.len() - 2], 8)
            && w[w.len() - 3].parse::<u64>().is_ok()
    };
    stamped(&words)
        || (words.len() > 4
            && words[words.len() - 1].parse::<u32>().is_ok()
            && stamped(&words[..words.len() - 1]))
}

/// A reproduce command that does not pin a default output folder: `--out
/// DIR` is dropped when DIR is (inside) one, so running the command again
/// makes a new folder instead of writing over the run it reproduces.
/// Commands naming a folder the user chose keep it.
pub fn unpinned(reproduce: &str, out: &Path) -> String {
    if !in_default_out(out) {
        return reproduce.to_string();
    }
    let pinned = format!(
        " --out {}",
        crate::interpreter::shell_quote(&out.display().to_string())
    );
    match reproduce.find(&pinned) {
        Some(at) => {
            let end = at + pinned.len();
            // Only a whole word: `--out reports/a` must not cut `reports/ab`.
            if reproduce[end..].is_empty() || reproduce[end..].starts_with(' ') {
                format!("{}{}", &reproduce[..at], &reproduce[end..])
            } else {
                reproduce.to_string()
            }
        }
        None => reproduce.to_string(),
    }
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
        run.typed = run
            .explicit
            .iter()
            .filter_map(|id| {
                let last = sub.get_raw(id)?.next_back()?;
                Some((id.clone(), last.to_string_lossy().into_owned()))
            })
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
        eprintln!("reproduce: {}", unpinned(&reproduce(), out));
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
        println!("reproduce: {}", unpinned(reproduce, out));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_time() {
        let at = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(utc_stamp(at(0)), "19700101-000000");
        // 2024-02-29 23:59:59 UTC, a leap day.
        assert_eq!(utc_stamp(at(1_709_251_199)), "20240229-235959");
    }

    #[test]
    fn only_default_folders_are_unpinned() {
        let cmd = "converge run --seed 3 --out reports/or-set-3-20261206-084050 --linearizable";
        let dir = Path::new("reports/or-set-3-20261206-084050");
        assert_eq!(unpinned(cmd, dir), "converge run --seed 3 --linearizable");
        let suffixed = Path::new("reports/fuzz-5-20261206-084050-2/run-3-g-counter");
        assert!(in_default_out(suffixed));
        let mine = Path::new("mine/or-set-3");
        let cmd = "converge run --seed 3 --out mine/or-set-3";
        assert_eq!(unpinned(cmd, mine), cmd);
        assert!(!in_default_out(Path::new("reports/or-set-3")));
    }

    #[test]
    fn the_same_second_twice_gets_a_suffix_and_latest_follows() {
        let root = tempfile::tempdir().expect("temp dir");
        let now = std::time::SystemTime::now();
        let a = default_out_in(root.path(), "m", 1, now);
        let b = default_out_in(root.path(), "m", 1, now);
        assert_ne!(a, b);
        assert!(b.to_string_lossy().ends_with("-2"), "{}", b.display());
        let latest = std::fs::read_link(root.path().join(LATEST)).expect("latest");
        assert_eq!(root.path().join(latest), b);
    }
}
