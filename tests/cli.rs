//! End-to-end tests of the `converge` binary: flags, exit codes, report
//! files, `check` on recorded (and damaged) histories, `list`, and what a
//! killed run leaves behind.
//!
//! Every child gets `CI=1`, so no progress bar is drawn. No test asserts a
//! wall-clock time.

use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// A small but non-trivial run, used wherever the defaults are not required.
const SMALL: [&str; 4] = ["--writers", "100", "--ops", "20000"];

fn number(value: &Value, path: &str) -> f64 {
    field(value, path)
        .as_f64()
        .unwrap_or_else(|| panic!("`{path}` is not a number in {value:#}"))
}

/// (name, verdict) of every entry of `checks`.
fn check_verdicts(report: &Value) -> Vec<(String, String)> {
    field(report, "checks")
        .as_array()
        .unwrap_or_else(|| panic!("`checks` is not an array in {report:#}"))
        .iter()
        .map(|c| {
            (
                string(c, "name").to_owned(),
                string(c, "verdict").to_owned(),
            )
        })
        .collect()
}

/// Every invoke of a history with its op id and time removed, sorted: what
/// the generator asked for, independent of scheduling.
fn invokes(history: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(history)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", history.display()));
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| l.contains(r#""type":"invoke""#))
        .map(|l| {
            let mut v = parse_json(l, "an invoke line");
            let obj = v.as_object_mut().expect("an invoke line is an object");
            obj.remove("op");
            obj.remove("time_ns");
            v.to_string()
        })
        .collect();
    out.sort();
    out
}

/// A finished small history to damage: `g-counter`, 10 writers, 200 ops.
fn small_history(dir: &Path) -> (PathBuf, Vec<String>) {
    let out = dir.join("run");
    run_into(
        &out,
        &[
            "--workload",
            "g-counter",
            "--writers",
            "10",
            "--ops",
            "200",
            "--seed",
            "11",
        ],
    )
    .no_panic()
    .expect_code(0);
    let path = out.join("history.jsonl");
    let text = std::fs::read_to_string(&path).expect("history.jsonl of the small run");
    let lines = text.lines().map(str::to_owned).collect();
    (path, lines)
}

/// Writes `lines`, each followed by a newline, plus `tail` without one.
fn write_history(path: &Path, lines: &[String], tail: &str) {
    let mut text = lines.join("\n");
    if !lines.is_empty() {
        text.push('\n');
    }
    text.push_str(tail);
    std::fs::write(path, text).expect("write a damaged history");
}

// 1. The bare default run.

#[test]
fn default_run_is_valid_and_writes_a_complete_report() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let out = run_into(&dir, &[]);
    out.no_panic().expect_code(0);
    let seed = out.seed();

    let r = read_json(&dir.join("report.json"));
    assert_eq!(field(&r, "schema_version"), 1, "{r:#}");
    assert_eq!(string(&r, "verdict"), "valid");
    assert_eq!(field(&r, "seed").as_u64(), Some(seed), "seed on stderr");
    assert!(!string(&r, "target").is_empty(), "target is empty");
    assert_eq!(string(&r, "workload"), "or-set");
    assert_eq!(field(&r, "writers"), 1000);
    assert_eq!(field(&r, "replicas"), 5);

    for c in [
        "ops",
        "ok",
        "fail",
        "info",
        "conflicts",
        "data_loss_events",
        "idempotency_violations",
        "duplicates_delivered",
    ] {
        assert!(
            field(&r, &format!("counts.{c}")).is_u64(),
            "counts.{c} is not a count in {r:#}"
        );
    }
    let count = |c: &str| field(&r, &format!("counts.{c}")).as_u64().unwrap();
    assert_eq!(count("ops"), 100_000, "the default is 100k ops");
    assert_eq!(count("ok") + count("fail") + count("info"), count("ops"));
    assert_eq!(count("data_loss_events"), 0);
    assert_eq!(count("idempotency_violations"), 0);

    for l in ["p50", "p95", "p99", "max"] {
        assert!(number(&r, &format!("latency_ms.{l}")) >= 0.0);
    }
    assert!(number(&r, "latency_ms.p50") <= number(&r, "latency_ms.max"));
    assert!(number(&r, "throughput_ops_s") > 0.0, "{r:#}");
    let error_rate = number(&r, "error_rate");
    assert!((0.0..=1.0).contains(&error_rate), "error_rate {error_rate}");
    assert!(number(&r, "convergence_ms") >= 0.0, "a valid run converged");
    assert!(number(&r, "memory.rss_peak_mb") > 0.0, "{r:#}");
    assert!(number(&r, "memory.rss_growth_mb") >= 0.0, "{r:#}");

    let checks = field(&r, "checks").as_array().expect("checks is an array");
    for c in checks {
        assert!(field(c, "details").is_object(), "details of {c:#}");
    }
    let names: BTreeSet<String> = check_verdicts(&r)
        .into_iter()
        .map(|(name, verdict)| {
            assert_eq!(verdict, "valid", "check {name} in a valid run");
            name
        })
        .collect();
    for name in ["convergence", "data-loss", "idempotency", "conflicts"] {
        assert!(names.contains(name), "no `{name}` check in {names:?}");
    }
    assert!(field(&r, "counterexample").is_null(), "{r:#}");
    let reproduce = string(&r, "reproduce");
    assert!(
        reproduce.contains(&format!("--seed {seed}")),
        "reproduce: {reproduce}"
    );

    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(md.contains("| metric | target | actual | status |"), "{md}");

    let history = std::fs::read_to_string(dir.join("history.jsonl")).expect("history.jsonl");
    let header = parse_json(history.lines().next().unwrap_or(""), "the first line");
    assert_eq!(string(&header, "type"), "header");
    assert_eq!(field(&header, "seed").as_u64(), Some(seed));
    let invoked = history
        .lines()
        .filter(|l| l.contains(r#""type":"invoke""#))
        .count();
    assert_eq!(invoked, 100_000, "every op is in history.jsonl");
}

// 2. A fixed seed.

#[test]
fn fixed_seed_is_printed_and_generates_the_same_ops() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--workload",
        "g-counter",
        "--writers",
        "50",
        "--ops",
        "5000",
        "--seed",
        "7",
    ];
    let mut histories = Vec::new();
    for i in 0..2 {
        let dir = tmp.path().join(format!("run{i}"));
        let out = run_into(&dir, &args);
        out.no_panic().expect_code(0);
        assert!(
            out.stderr.lines().any(|l| l == "seed: 7"),
            "no `seed: 7` line\n{}",
            out.dump()
        );
        assert_eq!(out.seed(), 7);
        let r = read_json(&dir.join("report.json"));
        assert_eq!(field(&r, "seed"), 7);
        let reproduce = string(&r, "reproduce");
        assert!(reproduce.contains("--seed 7"), "reproduce: {reproduce}");
        histories.push(invokes(&dir.join("history.jsonl")));
    }
    assert_eq!(histories[0].len(), 5000);
    assert!(
        histories[0] == histories[1],
        "the same seed generated different operations"
    );
}

// 3. `check` agrees with the run that wrote the history.

fn check_agrees_with_run(args: &[&str], code: i32) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    run_into(&dir, args).no_panic().expect_code(code);
    let run_report = read_json(&dir.join("report.json"));

    let checked = cli([
        OsStr::new("check"),
        dir.join("history.jsonl").as_os_str(),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    checked.no_panic().expect_code(code);
    let check_report = parse_json(&checked.stdout, "`check --format json` output");

    assert_eq!(
        check_verdicts(&check_report),
        check_verdicts(&run_report),
        "per-check verdicts of `check` differ from the run's"
    );
    for key in [
        "verdict",
        "seed",
        "workload",
        "model",
        "writers",
        "replicas",
        "counts",
        "reproduce",
    ] {
        assert_eq!(
            field(&check_report, key),
            field(&run_report, key),
            "`{key}` of `check` differs from the run's"
        );
    }
}

#[test]
fn check_agrees_with_a_valid_run() {
    let mut args = vec!["--workload", "or-set", "--seed", "3"];
    args.extend(SMALL);
    check_agrees_with_run(&args, 0);
}

#[test]
fn check_agrees_with_an_invalid_run() {
    let mut args = vec!["--fault", "duplicating-set", "--seed", "1", "--no-shrink"];
    args.extend(SMALL);
    check_agrees_with_run(&args, 1);
}

// 4. Shrinking.

#[test]
fn invalid_run_is_shrunk_to_a_counterexample_that_reproduces() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut args = vec!["--fault", "sum-merge-counter", "--seed", "1"];
    args.extend(SMALL);
    let out = run_into(&dir, &args);
    out.no_panic().expect_code(1);
    assert!(
        out.stdout.contains("reproduce: converge run"),
        "{}",
        out.dump()
    );

    let r = read_json(&dir.join("report.json"));
    assert_eq!(string(&r, "verdict"), "invalid");
    let cx = field(&r, "counterexample");
    assert!(cx.is_object(), "no counterexample in {r:#}");
    let cx_history = PathBuf::from(string(cx, "history"));
    assert!(
        cx_history.is_file(),
        "counterexample history {} does not exist",
        cx_history.display()
    );
    let cx_reproduce = string(cx, "reproduce");
    assert!(
        cx_reproduce.starts_with("converge run") && cx_reproduce.contains("--seed 1"),
        "counterexample reproduce: {cx_reproduce}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("minimal counterexample") && l.contains(cx_reproduce)),
        "no minimal counterexample line naming {cx_reproduce}\n{}",
        out.dump()
    );
    let violated: Vec<&str> = field(cx, "violated")
        .as_array()
        .expect("counterexample.violated is an array")
        .iter()
        .map(|v| v.as_str().expect("a check name"))
        .collect();
    assert!(!violated.is_empty(), "{cx:#}");

    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    let invalid: Vec<String> = check_verdicts(&r)
        .into_iter()
        .filter(|(_, v)| v == "invalid")
        .map(|(n, _)| n)
        .collect();
    assert!(!invalid.is_empty(), "an invalid run with no invalid check");
    for name in &invalid {
        assert!(
            md.contains(&format!("| {name} | invalid |")),
            "report.md does not name the violated check {name}:\n{md}"
        );
    }
    assert!(
        md.contains(cx_reproduce),
        "report.md lacks the counterexample"
    );

    // The counterexample's own history re-checks as invalid.
    cli([OsStr::new("check"), cx_history.as_os_str()])
        .no_panic()
        .expect_code(1);

    // And its command reproduces the violation.
    let again_dir = tmp.path().join("again");
    rerun(cx_reproduce, &again_dir).no_panic().expect_code(1);
    let again = read_json(&again_dir.join("report.json"));
    let again_invalid: Vec<String> = check_verdicts(&again)
        .into_iter()
        .filter(|(_, v)| v == "invalid")
        .map(|(n, _)| n)
        .collect();
    for name in &violated {
        assert!(
            again_invalid.iter().any(|n| n == name),
            "re-running the counterexample no longer violates {name}: {again_invalid:?}"
        );
    }
}

// 5. `list`.

const WORKLOADS: [&str; 8] = [
    "g-counter",
    "pn-counter",
    "g-set",
    "2p-set",
    "or-set",
    "lww-register",
    "mv-register",
    "lww-map",
];

fn list_json(what: &str) -> Vec<Value> {
    let out = cli(["list", what, "--format", "json"]);
    out.no_panic().expect_code(0);
    match parse_json(&out.stdout, "`list --format json` output") {
        Value::Array(items) => items,
        other => panic!("`list {what} --format json` is not an array: {other:#}"),
    }
}

#[test]
fn list_faults_names_each_fault_with_its_workload() {
    let out = cli(["list", "faults"]);
    out.no_panic().expect_code(0);
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(lines.len() >= 8, "fewer than 8 faults:\n{}", out.stdout);
    for line in &lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.len() >= 3 && (WORKLOADS.contains(&words[1]) || words[1] == "automerge"),
            "fault line without a workload: {line}"
        );
    }

    let items = list_json("faults");
    assert_eq!(items.len(), lines.len(), "human and json lists differ");
    for item in &items {
        let name = string(item, "name");
        assert!(!name.is_empty());
        assert!(
            WORKLOADS.contains(&string(item, "workload"))
                || string(item, "workload") == "automerge",
            "unknown workload in {item:#}"
        );
        assert!(!string(item, "description").is_empty(), "{item:#}");
        // Every listed fault is accepted by `run --fault`.
        let tmp = tempfile::tempdir().unwrap();
        let out = run_into(
            tmp.path(),
            &[
                "--fault",
                name,
                "--writers",
                "10",
                "--ops",
                "200",
                "--seed",
                "1",
                "--no-shrink",
            ],
        );
        out.no_panic();
        assert!(
            matches!(out.code, 0..=2),
            "`run --fault {name}` was refused\n{}",
            out.dump()
        );
    }
}

#[test]
fn list_workloads_has_the_eight_datatypes() {
    let out = cli(["list", "workloads"]);
    out.no_panic().expect_code(0);
    let human: BTreeSet<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let expected: BTreeSet<&str> = WORKLOADS.into_iter().collect();
    assert_eq!(human, expected);

    let json: BTreeSet<String> = list_json("workloads")
        .iter()
        .map(|w| string(w, "name").to_owned())
        .collect();
    assert_eq!(json, expected.iter().map(|s| s.to_string()).collect());
}

#[test]
fn list_nemeses_has_the_five_faults() {
    let out = cli(["list", "nemeses"]);
    out.no_panic().expect_code(0);
    let human: BTreeSet<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let json: BTreeSet<String> = list_json("nemeses")
        .iter()
        .map(|w| string(w, "name").to_owned())
        .collect();
    for name in ["partition", "drop", "duplicate", "reorder", "delay"] {
        assert!(human.contains(name), "`list nemeses` lacks {name}");
        assert!(
            json.contains(name),
            "`list nemeses --format json` lacks {name}"
        );
    }
}

// 6. Bad input: exit 3 with a message naming the problem, never a panic.

/// Asserts exit 3, no panic, and every needle on stderr.
fn rejected(out: &Out, needles: &[&str]) {
    out.no_panic().expect_code(3);
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "the message does not name `{needle}`\n{}",
            out.dump()
        );
    }
}

#[test]
fn run_rejects_bad_flags_with_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--workload", "nope"], &["--workload", "nope"]),
        (&["--fault", "nope"], &["--fault", "nope"]),
        (&["--writers", "0"], &["--writers"]),
        (&["--replicas", "0"], &["--replicas"]),
        (&["--ops", "0"], &["--ops"]),
        (&["--hot-key-ratio", "1.5"], &["--hot-key-ratio", "1.5"]),
        (&["--nemesis", "partition,bogus"], &["--nemesis", "bogus"]),
        (
            &["--fault", "sum-merge-counter", "--workload", "or-set"],
            &["sum-merge-counter", "or-set"],
        ),
        (&["--writers", "abc"], &["--writers", "abc"]),
    ];
    for (i, (args, needles)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}"));
        let out = run_into(&dir, args);
        rejected(&out, needles);
        assert!(
            !dir.join("history.jsonl").exists(),
            "{args:?} was refused but still wrote a history"
        );
    }
}

#[test]
fn check_rejects_a_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("no-such-history.jsonl");
    let out = cli([OsStr::new("check"), path.as_os_str()]);
    rejected(&out, &["no-such-history.jsonl"]);
}

#[test]
fn check_rejects_a_garbage_line_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lines) = small_history(tmp.path());
    let mut damaged = lines[..2].to_vec();
    damaged.push("this is not json".into());
    damaged.extend_from_slice(&lines[2..]);
    let path = tmp.path().join("garbage.jsonl");
    write_history(&path, &damaged, "");
    let out = cli([OsStr::new("check"), path.as_os_str()]);
    rejected(&out, &["garbage.jsonl:3:"]);
}

#[test]
fn check_rejects_an_out_of_range_number_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, mut lines) = small_history(tmp.path());
    let target = lines
        .iter()
        .position(|l| l.contains(r#""type":"invoke""#) && l.contains(r#""replica":"#))
        .expect("an invoke line");
    let before = lines[target].clone();
    let start = before.find(r#""replica":"#).unwrap() + r#""replica":"#.len();
    let end = start + before[start..].find(|c: char| !c.is_ascii_digit()).unwrap();
    lines[target] = format!("{}99999999999{}", &before[..start], &before[end..]);
    let path = tmp.path().join("range.jsonl");
    write_history(&path, &lines, "");
    let out = cli([OsStr::new("check"), path.as_os_str()]);
    rejected(
        &out,
        &[&format!("range.jsonl:{}:", target + 1), "99999999999"],
    );
}

#[test]
fn check_rejects_an_empty_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("empty.jsonl");
    std::fs::write(&path, "").unwrap();
    let out = cli([OsStr::new("check"), path.as_os_str()]);
    rejected(&out, &["empty.jsonl", "empty"]);
}

#[test]
fn unknown_subcommand_is_a_usage_error_and_help_is_not() {
    rejected(&cli(["bogus-subcommand"]), &["bogus-subcommand"]);
    let help = cli(["--help"]);
    help.no_panic().expect_code(0);
    for sub in ["run", "check", "list"] {
        assert!(
            help.stdout.contains(sub),
            "--help lacks {sub}\n{}",
            help.dump()
        );
    }
}

// 7. What a killed run leaves.

/// Kills the child if a test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

#[test]
fn killed_run_leaves_a_checkable_history() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let history = dir.join("history.jsonl");
    let mut child = KillOnDrop(
        converge()
            .args([
                "run",
                "--workload",
                "g-set",
                "--writers",
                "1000",
                "--ops",
                "50000000",
                "--out",
            ])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn converge run"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = 0;
    while lines <= 1000 {
        if let Some(status) = child.0.try_wait().expect("poll the run") {
            panic!("the run ended on its own ({status}) before it could be killed");
        }
        assert!(
            Instant::now() < deadline,
            "history.jsonl still has {lines} lines after 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
        lines = count_lines(&history);
    }
    child.0.kill().expect("SIGKILL the run");
    let status = child.0.wait().expect("reap the run");
    assert!(status.code().is_none(), "the run was not killed: {status}");

    let out = cli([
        OsStr::new("check"),
        history.as_os_str(),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    out.no_panic();
    assert_ne!(
        out.code,
        3,
        "a killed run's history was refused\n{}",
        out.dump()
    );
    out.expect_code(2);
    let r = parse_json(&out.stdout, "`check --format json` output");
    assert_eq!(string(&r, "verdict"), "unknown");
    assert!(
        field(&r, "counts.ops").as_u64().unwrap_or(0) > 0,
        "no ops recovered from a killed run: {r:#}"
    );
}

#[test]
fn check_skips_a_cut_last_line_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lines) = small_history(tmp.path());
    // Header, 10 whole ops, then half of the next invoke with no newline.
    let keep = 21;
    assert!(
        lines[keep].contains(r#""type":"invoke""#),
        "{}",
        lines[keep]
    );
    let half = &lines[keep][..lines[keep].len() / 2];
    let path = tmp.path().join("cut.jsonl");
    write_history(&path, &lines[..keep], half);
    let out = cli([
        OsStr::new("check"),
        path.as_os_str(),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    out.no_panic().expect_code(2);
    assert!(
        out.stderr.contains("warning") && out.stderr.contains(&format!("cut.jsonl:{}:", keep + 1)),
        "no warning naming the cut line\n{}",
        out.dump()
    );
    let r = parse_json(&out.stdout, "`check --format json` output");
    assert_eq!(field(&r, "counts.ops"), 10, "{r:#}");
}

#[test]
fn check_treats_an_invoke_without_completion_as_info() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lines) = small_history(tmp.path());
    // Header, 10 whole ops, then the next invoke alone.
    let keep = 22;
    assert!(lines[keep - 1].contains(r#""type":"invoke""#));
    let path = tmp.path().join("open.jsonl");
    write_history(&path, &lines[..keep], "");
    let out = cli([
        OsStr::new("check"),
        path.as_os_str(),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    out.no_panic().expect_code(2);
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("never completed"),
        "no warning about the open invoke\n{}",
        out.dump()
    );
    let r = parse_json(&out.stdout, "`check --format json` output");
    assert_eq!(field(&r, "counts.ops"), 11, "{r:#}");
    assert_eq!(field(&r, "counts.info"), 1, "{r:#}");
}

// 8. A line cut in the middle of the file is an error, not a kill.

#[test]
fn check_rejects_a_line_cut_in_the_middle() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, mut lines) = small_history(tmp.path());
    let middle = lines.len() / 2;
    let whole = lines[middle].clone();
    lines[middle] = whole[..whole.len() / 2].to_owned();
    let path = tmp.path().join("middle.jsonl");
    write_history(&path, &lines, "");
    let out = cli([OsStr::new("check"), path.as_os_str()]);
    rejected(&out, &[&format!("middle.jsonl:{}:", middle + 1)]);
}

// 9. `--format json` on run.

#[test]
fn run_format_json_prints_exactly_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut args = vec!["--workload", "g-set", "--format", "json"];
    args.extend(SMALL);
    let out = run_into(&dir, &args);
    out.no_panic().expect_code(0);
    // from_str refuses trailing text: stdout is one document.
    let printed = parse_json(&out.stdout, "`run --format json` stdout");
    let written = read_json(&dir.join("report.json"));
    assert_eq!(field(&printed, "verdict"), field(&written, "verdict"));
    assert_eq!(field(&printed, "seed"), field(&written, "seed"));
    assert_eq!(field(&printed, "seed").as_u64(), Some(out.seed()));
    assert_eq!(printed, written, "stdout and report.json differ");
}

// 10. No progress bar in logs.

#[test]
fn no_progress_bar_on_a_pipe() {
    for ci in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = converge();
        if !ci {
            cmd.env_remove("CI");
        }
        cmd.args(["run", "--workload", "pn-counter"])
            .args(SMALL)
            .arg("--out")
            .arg(tmp.path());
        let out = finish(&mut cmd);
        out.no_panic().expect_code(0);
        assert!(
            !out.stderr.contains('\r') && !out.stdout.contains('\r'),
            "progress output with CI {}\n{:?}",
            if ci { "set" } else { "unset" },
            out.stderr
        );
    }
}

// Reproduce commands.

#[test]
fn reproduce_command_keeps_the_operation_mix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let args = [
        "--workload",
        "g-counter",
        "--writers",
        "10",
        "--ops",
        "2000",
        "--seed",
        "5",
        "--read-ratio",
        "0.9",
        "--nemesis",
        "none",
    ];
    run_into(&dir, &args).no_panic().expect_code(0);
    let reproduce = string(&read_json(&dir.join("report.json")), "reproduce").to_owned();
    let again = tmp.path().join("again");
    rerun(&reproduce, &again).no_panic().expect_code(0);
    let reads = |h: &[String]| h.iter().filter(|l| l.contains(r#""f":"read""#)).count();
    let first = invokes(&dir.join("history.jsonl"));
    let second = invokes(&again.join("history.jsonl"));
    assert!(
        first == second,
        "`{reproduce}` generated other ops: {} reads instead of {}",
        reads(&second),
        reads(&first)
    );
}

#[test]
fn reproduce_command_survives_an_out_dir_with_a_space() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("with space");
    let args = [
        "--workload",
        "g-counter",
        "--writers",
        "10",
        "--ops",
        "200",
        "--seed",
        "5",
    ];
    run_into(&dir, &args).no_panic().expect_code(0);
    let reproduce = string(&read_json(&dir.join("report.json")), "reproduce").to_owned();
    let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let out = finish(
        Command::new("sh")
            .arg("-c")
            .arg(&reproduce)
            .env("PATH", path)
            .env("CI", "1"),
    );
    out.no_panic();
    assert_eq!(
        out.code,
        0,
        "pasting `{reproduce}` into a shell fails\n{}",
        out.dump()
    );
}

// 9. An op slower than 4.29 s keeps its latency (no 32-bit saturation).

#[test]
fn a_five_second_op_round_trips_through_the_history_and_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, mut lines) = small_history(tmp.path());
    let last_ok = lines
        .iter()
        .rposition(|l| l.contains(r#""type":"ok""#))
        .expect("a completion");
    let mut completion = parse_json(&lines[last_ok], "a completion line");
    let done = number(&completion, "time_ns") as u64 + 5_000_000_000;
    completion["time_ns"] = done.into();
    lines[last_ok] = completion.to_string();
    let path = tmp.path().join("slow.jsonl");
    write_history(&path, &lines, "");
    let out = cli([
        OsStr::new("check"),
        path.as_os_str(),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    out.no_panic().expect_code(0);
    let r = parse_json(&out.stdout, "`check --format json` output");
    let max = number(&r, "latency_ms.max");
    assert!(
        max >= 5000.0,
        "a 5 s op shows as {max} ms (a 32-bit latency saturates at 4294.967 ms)\n{r:#}"
    );
}
