//! The maelstrom target end to end: the reference nodes in `nodes/` (Python)
//! under partitions, loss and duplication; every buggy node caught by the
//! check its bug breaks; crash and pause faults; and nodes that misbehave on
//! the wire. Runs are short and several run at once; no test asserts a
//! wall-clock time.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_converge");

/// One test's runs at a time: each already runs several node clusters at
/// once, and starving the nodes of CPU would only make requests time out.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether python3 is there; under CI its absence fails the test.
fn python_available() -> bool {
    common::python3()
}

/// What one run left.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    out: PathBuf,
    report: Option<Value>,
}

impl Run {
    fn dump(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn check(&self, name: &str) -> &Value {
        let report = self
            .report
            .as_ref()
            .unwrap_or_else(|| panic!("no report\n{}", self.dump()));
        report["checks"]
            .as_array()
            .and_then(|checks| checks.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no check {name}\n{}", self.dump()))
    }

    fn verdict_of(&self, name: &str) -> String {
        self.check(name)["verdict"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn invalid_checks(&self) -> Vec<String> {
        self.report
            .as_ref()
            .and_then(|r| r["checks"].as_array())
            .map(|checks| {
                checks
                    .iter()
                    .filter(|c| c["verdict"] == "invalid")
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "{}",
            self.dump()
        );
    }
}

fn run(node: &str, workload: &str, seed: u64, extra: &[&str], dir: &Path) -> Run {
    let out = dir.join(format!("{}-{seed}", node.replace('/', "_")));
    let bin = root().join("nodes").join(node);
    let mut flags: Vec<(String, String)> = [
        ("--workload", workload),
        ("--nodes", "3"),
        ("--clients", "5"),
        ("--rate", "100"),
        ("--time-limit", "2"),
        ("--settle-limit", "15"),
        ("--nemesis", "partition,loss,duplicate"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // `extra` flags replace the defaults above; `--bin-arg` adds.
    for pair in extra.chunks(2) {
        let (flag, value) = (pair[0].to_string(), pair[1].to_string());
        match flags
            .iter_mut()
            .find(|(k, _)| *k == flag && flag != "--bin-arg")
        {
            Some(slot) => slot.1 = value,
            None => flags.push((flag, value)),
        }
    }
    let mut args: Vec<String> = vec!["run".into(), "--target".into(), "maelstrom".into()];
    for (k, v) in flags {
        args.push(k);
        args.push(v);
    }
    args.extend([
        "--bin".into(),
        bin.display().to_string(),
        "--seed".into(),
        seed.to_string(),
        "--out".into(),
        out.display().to_string(),
    ]);
    let output = Command::new(BIN)
        .args(&args)
        .env("CI", "1")
        .output()
        .expect("converge runs");
    let report = std::fs::read_to_string(out.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        out,
        report,
    }
}

/// Runs jobs on a few threads (each job starts its own node processes).
fn parallel<T: Send, R: Send>(jobs: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let jobs = std::sync::Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let Some((i, job)) = jobs.lock().unwrap().pop() else {
                    break;
                };
                let r = f(job);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

const WORKLOADS: [&str; 8] = [
    "g-counter",
    "pn-counter",
    "g-set",
    "broadcast",
    "lin-kv",
    "or-set",
    "lww-register",
    "mv-register",
];

#[test]
fn correct_reference_nodes_are_valid_under_partition_loss_and_duplication() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Every workload's reference node, plus the Fly.io-style counter that
    // keeps its state in the seq-kv service.
    let nodes: Vec<(String, &str)> = WORKLOADS
        .iter()
        .map(|w| (format!("{w}.py"), *w))
        .chain([("g-counter-seq-kv.py".to_string(), "g-counter")])
        .collect();
    let jobs: Vec<(String, &str, u64)> = nodes
        .iter()
        .flat_map(|(n, w)| [(n.clone(), *w, 1u64), (n.clone(), *w, 2u64)])
        .collect();
    // Seed 1 with the faults the issue names, seed 2 with reordering too.
    let runs = parallel(jobs, |(node, w, seed): (String, &str, u64)| {
        let nemesis: &[&str] = if seed == 2 {
            &["--nemesis", REORDERING]
        } else {
            &[]
        };
        let r = run(&node, w, seed, nemesis, dir.path());
        (node, seed, r)
    });
    for (w, seed, r) in runs {
        r.no_panic();
        assert_eq!(r.code, 0, "{w} seed {seed} should be valid\n{}", r.dump());
        assert!(r.stderr.contains(&format!("seed: {seed}")), "{}", r.dump());
    }
}

/// Faults under which every bug shows: crossing gossip is what exposes
/// arrival-order merges.
const REORDERING: &str = "partition,loss,duplicate,reorder";

/// Each buggy node, with the check its bug must trip.
const BUGS: [(&str, &str, &[&str]); 11] = [
    (
        "g-counter-bug-sum-merge.py",
        "g-counter",
        &["read-bounds", "data-loss"],
    ),
    (
        "g-counter-bug-no-retry.py",
        "g-counter",
        &["convergence", "data-loss"],
    ),
    (
        "pn-counter-bug-max-total.py",
        "pn-counter",
        &["data-loss", "read-bounds"],
    ),
    (
        "g-set-bug-fire-and-forget.py",
        "g-set",
        &["convergence", "data-loss"],
    ),
    (
        "broadcast-bug-no-retry.py",
        "broadcast",
        &["convergence", "data-loss"],
    ),
    ("broadcast-bug-duplicates.py", "broadcast", &["data-loss"]),
    ("lin-kv-bug-local-reads.py", "lin-kv", &["linearizability"]),
    ("lin-kv-bug-lww-backend.py", "lin-kv", &["linearizability"]),
    ("or-set-bug-remove-wins.py", "or-set", &["data-loss"]),
    (
        "lww-register-bug-arrival-order.py",
        "lww-register",
        &["convergence", "data-loss"],
    ),
    (
        "mv-register-bug-drop-siblings.py",
        "mv-register",
        &["data-loss"],
    ),
];

#[test]
fn every_buggy_node_is_caught_by_the_check_its_bug_breaks() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let jobs: Vec<(&str, &str, &[&str])> = BUGS.to_vec();
    let outcomes = parallel(jobs, |(node, w, checks)| {
        // A bug shows up on a few seeds; stop at the first that shows it.
        let mut tried = Vec::new();
        for seed in 1..=3 {
            let r = run(node, w, seed, &["--nemesis", REORDERING], dir.path());
            r.no_panic();
            if r.code == 1 {
                return (node, checks, Some(r), tried);
            }
            tried.push(r.dump());
        }
        (node, checks, None, tried)
    });
    for (node, checks, found, tried) in outcomes {
        let Some(r) = found else {
            panic!(
                "{node} was never invalid on seeds 1..=3\n{}",
                tried.join("\n")
            );
        };
        let invalid = r.invalid_checks();
        assert!(
            invalid.iter().any(|c| checks.contains(&c.as_str())),
            "{node}: invalid checks {invalid:?}, expected one of {checks:?}\n{}",
            r.dump()
        );
        // The report names the values involved.
        let findings = &r.check(&invalid[0])["details"]["findings"];
        assert!(
            findings.as_array().is_some_and(|f| !f.is_empty()),
            "{node}: no findings\n{}",
            r.dump()
        );
        assert!(
            r.stdout
                .contains("reproduce: converge run --target maelstrom"),
            "{}",
            r.dump()
        );
    }
}

#[test]
fn crash_and_pause_faults_kill_restart_and_stop_nodes() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        "g-counter.py",
        "g-counter",
        5,
        &["--nemesis", "crash,pause", "--time-limit", "3"],
        dir.path(),
    );
    r.no_panic();
    let log: Vec<String> = r.report.as_ref().unwrap()["nemesis_log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    assert!(
        log.iter().any(|l| l.contains("crash n")),
        "{log:?}\n{}",
        r.dump()
    );
    assert!(
        log.iter().any(|l| l.contains("pause n")),
        "{log:?}\n{}",
        r.dump()
    );
    assert!(
        log.iter().any(|l| l.contains("resume n")),
        "{log:?}\n{}",
        r.dump()
    );
    // A crashed node comes back: its log shows a second init.
    let crashed = log
        .iter()
        .find_map(|l| l.split("crash n").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    let stderr = std::fs::read_to_string(r.out.join("nodes").join(format!("n{crashed}.log")))
        .unwrap_or_default();
    assert!(
        r.out.join("nodes").join(format!("n{crashed}.log")).exists(),
        "{stderr}"
    );
    // The reference node acknowledges only what a peer holds, so a crash
    // that restarts a node empty loses nothing.
    assert_eq!(r.code, 0, "{}", r.dump());
}

fn misbehave(mode: &str, dir: &Path) -> Run {
    run(
        "bad/misbehave.py",
        "g-counter",
        1,
        &[
            "--nodes",
            "1",
            "--clients",
            "2",
            "--rate",
            "50",
            "--time-limit",
            "1",
            "--settle-limit",
            "3",
            "--nemesis",
            "none",
            "--bin-arg",
            mode,
        ],
        dir,
    )
}

#[test]
fn bad_messages_from_a_node_are_findings_that_name_it_and_quote_the_line() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases = vec![
        ("garbage", "\"this is not json {\""),
        ("garbage", "missing `body`"),
        ("unknown-reply", "replied to unknown msg_id"),
        ("huge-number", "not an integer that fits in 64 bits"),
        ("exit", "exited on its own"),
    ];
    let runs = parallel(cases, |(mode, expect)| {
        (mode, expect, misbehave(mode, dir.path()))
    });
    for (mode, expect, r) in runs {
        r.no_panic();
        assert_eq!(r.code, 1, "{mode}\n{}", r.dump());
        let findings: Vec<&str> = r.check("node-protocol")["details"]["findings"]
            .as_array()
            .map(|f| f.iter().filter_map(|x| x["message"].as_str()).collect())
            .unwrap_or_default();
        let findings = findings.join("\n");
        assert!(findings.contains("node n0"), "{mode}: {findings}");
        assert!(
            findings.contains(expect),
            "{mode}: expected {expect} in {findings}"
        );
        // What was recorded before is kept.
        let history = std::fs::read_to_string(r.out.join("history.jsonl")).unwrap();
        assert!(history.lines().count() > 10, "{mode}: history lost");
    }
}

#[test]
fn a_node_that_never_answers_init_is_a_target_error_naming_it() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = misbehave("silent-init", dir.path());
    r.no_panic();
    assert_eq!(r.code, 4, "{}", r.dump());
    assert!(r.stderr.contains("node n0"), "{}", r.dump());
    assert!(r.stderr.contains("init"), "{}", r.dump());
}

#[test]
fn a_node_that_hangs_leaves_the_verdict_unknown_not_lost() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = misbehave("hang", dir.path());
    r.no_panic();
    assert_eq!(r.code, 2, "{}", r.dump());
    assert_ne!(r.verdict_of("data-loss"), "invalid", "{}", r.dump());
}

#[test]
fn lin_kv_history_is_jepsen_edn_that_check_reads_back() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        "lin-kv-bug-lww-backend.py",
        "lin-kv",
        1,
        &["--nemesis", "none"],
        dir.path(),
    );
    r.no_panic();
    let edn = r.out.join("history.edn");
    assert!(edn.exists(), "{}", r.dump());
    assert!(r.out.join("linearizability.html").exists(), "{}", r.dump());
    let recheck = Command::new(BIN)
        .args([
            "check",
            "--checker",
            "linearizable",
            "--model",
            "cas-register",
        ])
        .arg(&edn)
        .env("CI", "1")
        .output()
        .unwrap();
    let verdict = if r.verdict_of("linearizability") == "invalid" {
        1
    } else {
        0
    };
    assert_eq!(
        recheck.status.code(),
        Some(verdict),
        "{}",
        String::from_utf8_lossy(&recheck.stdout)
    );
}

#[test]
fn flags_are_checked_before_anything_starts() {
    let _turn = exclusive();
    let dir = tempfile::tempdir().unwrap();
    for (args, expect) in [
        (vec!["--workload", "g-counter"], "--bin"),
        (
            vec!["--workload", "nope", "--bin", "nodes/g-counter.py"],
            "--workload",
        ),
        (
            vec!["--workload", "g-counter", "--bin", "/no/such/node"],
            "--bin",
        ),
        (
            vec![
                "--workload",
                "g-counter",
                "--bin",
                "nodes/g-counter.py",
                "--nodes",
                "0",
            ],
            "--nodes",
        ),
        (
            vec![
                "--workload",
                "g-counter",
                "--bin",
                "nodes/g-counter.py",
                "--nemesis",
                "flood",
            ],
            "--nemesis",
        ),
        (
            vec![
                "--workload",
                "g-counter",
                "--bin",
                "nodes/g-counter.py",
                "--rate",
                "0",
            ],
            "--rate",
        ),
    ] {
        let output = Command::new(BIN)
            .current_dir(root())
            .args(["run", "--target", "maelstrom", "--out"])
            .arg(dir.path().join("x"))
            .args(&args)
            .env("CI", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}
