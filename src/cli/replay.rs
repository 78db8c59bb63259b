//! `converge replay DIR`: re-runs a stored run from its history header and
//! says whether the new history is the same.
//!
//! The in-process and automerge targets are deterministic simulations: the
//! header's `reproduce` command holds every setting of the run (seed,
//! workload or fault, writers, replicas, ops, keys, op mix, nemesis,
//! bounds), and the same settings give the same history, byte for byte
//! apart from wall-clock fields. Replay parses that command as `converge
//! run` would, runs it into a directory of its own, and compares the two
//! histories line by line with the wall-clock fields ([`WALL_CLOCK_FIELDS`])
//! removed, naming the first line and field that differ.
//!
//! Exit codes: 0 identical, 1 different, 3 not replayable (a black-box
//! target's run, a history recorded without logical time, a bad header),
//! 4 the replayed run failed.

use super::run::{config_from, RunArgs, TargetKind};
use super::{check::fail, parse_from, Command, Format};
use crate::error::{Error, Result};
use crate::history::Header;
use crate::interpreter::shell_quote;
use crate::verdict::{EXIT_INVALID, EXIT_VALID};
use clap::Args;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Fields measured in wall-clock time, which a replay cannot reproduce.
pub const WALL_CLOCK_FIELDS: [&str; 2] = ["time_ns", "convergence_ns"];

/// Arguments of `converge replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The run's directory (holding `history.jsonl`), or the history file.
    pub dir: PathBuf,
    /// Where the replay writes its run (default: `<DIR>/replay`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Threads for the replay (default: available cores); the history must
    /// not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// The first place two histories differ.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    /// 1-based line number.
    pub line: usize,
    /// The first field (in name order) that differs; `type` when the
    /// lines are different kinds; `end of file` when one history stops.
    pub field: String,
    /// Its value in the first history (`null` if absent).
    pub original: Value,
    /// Its value in the second history (`null` if absent).
    pub replay: Value,
}

/// What a replay found.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayOutcome {
    /// The stored history.
    pub original: String,
    /// The replay's history.
    pub replay: String,
    /// Lines compared.
    pub lines: usize,
    /// The first difference, `None` when identical.
    pub difference: Option<Difference>,
}

/// Why a run cannot be replayed (exit 3): the history is not the record of
/// a deterministic run, or its header cannot be turned back into one.
fn not_replayable(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: cannot replay: {why}", path.display()))
}

/// The history file of `dir` (a run directory or the file itself).
fn history_path(dir: &Path) -> PathBuf {
    if dir.is_dir() {
        dir.join("history.jsonl")
    } else {
        dir.to_path_buf()
    }
}

/// Reads the header, and checks the history was recorded by a simulation
/// (its op lines carry logical time).
fn replayable_header(path: &Path) -> Result<Header> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut lines = BufReader::new(file).lines();
    let first = lines
        .next()
        .transpose()
        .map_err(|e| Error::io(path, e))?
        .ok_or_else(|| not_replayable(path, "the history is empty"))?;
    let header: Header = match serde_json::from_str::<Value>(&first) {
        Ok(v) if v.get("type").and_then(Value::as_str) == Some("header") => {
            serde_json::from_value(v)
                .map_err(|e| not_replayable(path, format!("line 1: bad header: {e}")))?
        }
        _ => return Err(not_replayable(path, "line 1 is not a history header")),
    };
    if !matches!(header.target.as_str(), "in-process" | "automerge") {
        return Err(not_replayable(
            path,
            format!(
                "target '{}' is a live system converge does not simulate; only in-process and automerge runs replay",
                header.target
            ),
        ));
    }
    for (i, line) in lines.enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v.get("type").and_then(Value::as_str) == Some("invoke") {
            if v.get("tick").is_none() {
                return Err(not_replayable(
                    path,
                    format!(
                        "line {}: ops carry no logical time (\"tick\"): recorded before runs were deterministic",
                        i + 2
                    ),
                ));
            }
            return Ok(header);
        }
    }
    Err(not_replayable(path, "the history holds no op"))
}

/// Splits a command line written with [`shell_quote`] into its words.
fn split_words(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next().ok_or("a trailing backslash")?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The `converge run` arguments the header's reproduce command gives.
fn run_args(path: &Path, header: &Header) -> Result<RunArgs> {
    let words = split_words(&header.reproduce)
        .map_err(|e| not_replayable(path, format!("reproduce command: {e}")))?;
    if words.len() < 2 || words[0] != "converge" || words[1] != "run" {
        return Err(not_replayable(
            path,
            format!(
                "the header's reproduce command is not `converge run ...`: {}",
                header.reproduce
            ),
        ));
    }
    let cli = parse_from(&words).map_err(|e| {
        not_replayable(
            path,
            format!("the header's reproduce command does not parse: {e}"),
        )
    })?;
    match cli.command {
        Command::Run(args) => Ok(*args),
        _ => unreachable!("the words start with `converge run`"),
    }
}

/// Everything one replay needs: the run to make and where the original is.
enum Rerun {
    InProcess(Box<crate::interpreter::RunConfig>),
    Automerge(Box<crate::target::automerge::AutomergeConfig>),
}

/// Checks that the configuration rebuilt from the reproduce command is the
/// one the header describes: a hand-edited header must not replay as
/// something else.
fn agrees(path: &Path, header: &Header, rebuilt: &Header) -> Result<()> {
    let fields = [
        ("seed", header.seed.to_string(), rebuilt.seed.to_string()),
        ("model", header.model.clone(), rebuilt.model.clone()),
        ("target", header.target.clone(), rebuilt.target.clone()),
        (
            "writers",
            header.writers.to_string(),
            rebuilt.writers.to_string(),
        ),
        (
            "replicas",
            header.replicas.to_string(),
            rebuilt.replicas.to_string(),
        ),
        ("keys", header.keys.to_string(), rebuilt.keys.to_string()),
        ("ops", header.ops.to_string(), rebuilt.ops.to_string()),
        ("nemesis", header.nemesis.clone(), rebuilt.nemesis.clone()),
    ];
    for (name, stored, replay) in fields {
        if stored != replay {
            return Err(not_replayable(
                path,
                format!("the header says {name} {stored} but its reproduce command gives {replay}"),
            ));
        }
    }
    Ok(())
}

fn rerun(path: &Path, header: &Header, out: &Path, threads: Option<usize>) -> Result<Rerun> {
    let mut args = run_args(path, header)?;
    args.out = Some(out.to_path_buf());
    args.format = Format::Json;
    let automerge = header.target == "automerge";
    if automerge != (args.target == TargetKind::Automerge) {
        return Err(not_replayable(
            path,
            "the header's target and its reproduce command's target differ",
        ));
    }
    let bad = |e: Error| not_replayable(path, e);
    if automerge {
        let config = super::run_automerge::config_from(&args).map_err(bad)?;
        let rebuilt = Header {
            seed: config.seed,
            model: config.model().into(),
            target: "automerge".into(),
            writers: config.writers,
            replicas: config.replicas,
            ops: config.ops,
            nemesis: config.nemesis.to_spec(),
            // The layout turns the counters into more keys: not comparable.
            keys: header.keys,
            ..header.clone()
        };
        agrees(path, header, &rebuilt)?;
        Ok(Rerun::Automerge(Box::new(config)))
    } else {
        let mut config = config_from(&args).map_err(bad)?;
        config.progress = false;
        if let Some(threads) = threads {
            config.threads = threads.max(1);
        }
        let rebuilt = Header {
            seed: config.seed,
            model: config.model.clone(),
            target: "in-process".into(),
            writers: config.writers,
            replicas: config.replicas,
            keys: config.mix.keys,
            ops: config.ops,
            nemesis: config.nemesis.to_spec(),
            ..header.clone()
        };
        agrees(path, header, &rebuilt)?;
        Ok(Rerun::InProcess(Box::new(config)))
    }
}

/// Re-runs the run recorded in `dir` into `out` and compares the histories.
/// A run that cannot be replayed is a configuration error; a replayed run
/// that fails is a target error.
pub fn replay(dir: &Path, out: &Path, threads: Option<usize>) -> Result<ReplayOutcome> {
    let original = history_path(dir);
    let header = replayable_header(&original)?;
    if out.canonicalize().ok().is_some_and(|o| {
        original
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .is_some_and(|p| p == o)
    }) {
        return Err(Error::Config(format!(
            "--out {}: the replay would overwrite the run it replays",
            out.display()
        )));
    }
    let stored_out = run_args(&original, &header)?.out;
    match rerun(&original, &header, out, threads)? {
        Rerun::InProcess(config) => {
            crate::interpreter::run(&config)?;
        }
        Rerun::Automerge(config) => {
            crate::target::automerge::run(&config)?;
        }
    }
    let replayed = out.join("history.jsonl");
    // The reproduce command names the run's own directory: the replay's
    // names another, which is no difference.
    let rename = stored_out.map(|stored| {
        (
            shell_quote(&out.display().to_string()),
            shell_quote(&stored.display().to_string()),
        )
    });
    let (lines, difference) = first_difference(&original, &replayed, rename.as_ref())?;
    Ok(ReplayOutcome {
        original: original.display().to_string(),
        replay: replayed.display().to_string(),
        lines,
        difference,
    })
}

/// Compares two histories line by line without their wall-clock fields;
/// returns the lines compared and the first difference. `rename` maps the
/// second history's output directory in its header's reproduce command to
/// the first's.
pub fn first_difference(
    original: &Path,
    replay: &Path,
    rename: Option<&(String, String)>,
) -> Result<(usize, Option<Difference>)> {
    let open = |p: &Path| -> Result<_> {
        Ok(BufReader::new(File::open(p).map_err(|e| Error::io(p, e))?).lines())
    };
    let (mut a, mut b) = (open(original)?, open(replay)?);
    let mut line = 0;
    loop {
        line += 1;
        let next = |lines: &mut std::io::Lines<BufReader<File>>, p: &Path| {
            lines.next().transpose().map_err(|e| Error::io(p, e))
        };
        let (x, y) = (next(&mut a, original)?, next(&mut b, replay)?);
        let (x, y) = match (x, y) {
            (None, None) => return Ok((line - 1, None)),
            (Some(x), Some(y)) => (x, y),
            (x, y) => {
                let end = |l: &Option<String>| match l {
                    Some(_) => Value::String("more lines".into()),
                    None => Value::String("end of file".into()),
                };
                return Ok((
                    line - 1,
                    Some(Difference {
                        line,
                        field: "end of file".into(),
                        original: end(&x),
                        replay: end(&y),
                    }),
                ));
            }
        };
        if x == y {
            continue;
        }
        let parse = |text: &str, p: &Path| {
            serde_json::from_str::<Map<String, Value>>(text).map_err(|e| Error::HistoryLine {
                path: p.to_path_buf(),
                line,
                message: e.to_string(),
            })
        };
        let (mut x, mut y) = (parse(&x, original)?, parse(&y, replay)?);
        for field in WALL_CLOCK_FIELDS {
            x.remove(field);
            y.remove(field);
        }
        if let (Some((to, from)), Some(Value::String(r))) = (rename, y.get_mut("reproduce")) {
            *r = r.replace(to.as_str(), from);
        }
        if x == y {
            continue;
        }
        let field = if x.get("type") != y.get("type") {
            "type".to_string()
        } else {
            let mut names: Vec<&String> = x.keys().chain(y.keys()).collect();
            names.sort();
            names
                .into_iter()
                .find(|k| x.get(*k) != y.get(*k))
                .cloned()
                .unwrap_or_default()
        };
        return Ok((
            line,
            Some(Difference {
                line,
                original: x.get(&field).cloned().unwrap_or(Value::Null),
                replay: y.get(&field).cloned().unwrap_or(Value::Null),
                field,
            }),
        ));
    }
}

fn abbreviate(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 120 {
        format!("{}...", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

/// Runs `converge replay` and returns the exit code.
pub fn execute(args: ReplayArgs) -> anyhow::Result<i32> {
    if args.threads == Some(0) {
        return Ok(fail(&Error::Config("--threads must be at least 1".into())));
    }
    let out = args.out.clone().unwrap_or_else(|| {
        if args.dir.is_dir() {
            args.dir.join("replay")
        } else {
            args.dir.with_extension("replay")
        }
    });
    let outcome = match replay(&args.dir, &out, args.threads) {
        Ok(o) => o,
        Err(e) => return Ok(fail(&e)),
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
        Format::Human => match &outcome.difference {
            None => println!(
                "identical: {} lines the same, apart from wall-clock fields ({})\nreplay: {}",
                outcome.lines,
                WALL_CLOCK_FIELDS.join(", "),
                outcome.replay
            ),
            Some(d) => println!(
                "differs at line {}, field {}: original {}, replay {}\noriginal: {}\nreplay:   {}",
                d.line,
                d.field,
                abbreviate(&d.original),
                abbreviate(&d.replay),
                outcome.original,
                outcome.replay
            ),
        },
    }
    Ok(if outcome.difference.is_none() {
        EXIT_VALID
    } else {
        EXIT_INVALID
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_back_as_shell_quote_wrote_them() {
        let dir = "/tmp/it's a dir";
        let line = format!("converge run --seed 1 --out {}", shell_quote(dir));
        assert_eq!(
            split_words(&line).unwrap(),
            ["converge", "run", "--seed", "1", "--out", dir]
        );
        assert!(split_words("converge run --out 'open").is_err());
    }
}
