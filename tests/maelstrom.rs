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

/// Whether `program` runs; under CI a missing interpreter fails the test
/// instead of skipping it.
fn interpreter_available(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    common::requirement((!ok).then(|| format!("{program} is not installed")))
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
    run_bin(&root().join("nodes").join(node), workload, seed, extra, dir)
}

/// Runs any node program; the output directory is named after it, the
/// seed and the extra flags, so runs of one test never share one.
fn run_bin(bin: &Path, workload: &str, seed: u64, extra: &[&str], dir: &Path) -> Run {
    let tag: String = format!("{}-{seed}-{}", bin.display(), extra.join("_"))
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    // Long tags keep their end (the program name) plus a hash of the whole,
    // so two runs that differ only early in the tag (the seed) never share
    // an output folder.
    let tag = if tag.len() > 120 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        tag.hash(&mut h);
        format!("{:016x}-{}", h.finish(), &tag[tag.len() - 100..])
    } else {
        tag
    };
    let out = dir.join(tag);
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

const WORKLOADS: [&str; 11] = [
    "echo",
    "unique-ids",
    "kafka",
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
const BUGS: [(&str, &str, &[&str]); 14] = [
    (
        "unique-ids-bug-duplicates.py",
        "unique-ids",
        &["unique-ids"],
    ),
    ("kafka-bug-offset-reuse.py", "kafka", &["kafka"]),
    ("kafka-bug-lost-sends.py", "kafka", &["kafka"]),
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
    // Two cases share a mode: each gets its own folder, since an output
    // folder belongs to one run at a time.
    let cases: Vec<_> = cases.into_iter().enumerate().collect();
    let runs = parallel(cases, |(i, (mode, expect))| {
        let case_dir = dir.path().join(i.to_string());
        std::fs::create_dir_all(&case_dir).unwrap();
        (mode, expect, misbehave(mode, &case_dir))
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
        // A topology only means something to broadcast nodes.
        (
            vec![
                "--workload",
                "g-counter",
                "--bin",
                "nodes/g-counter.py",
                "--topology",
                "line",
            ],
            "--topology applies to --workload broadcast only",
        ),
        (
            vec![
                "--workload",
                "broadcast",
                "--bin",
                "nodes/broadcast.py",
                "--topology",
                "ring",
            ],
            "grid, line, total, tree, tree2, tree3, tree4",
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

fn protocol_findings(r: &Run) -> String {
    r.check("node-protocol")["details"]["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["message"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn rules_run(mode: &str, dir: &Path) -> Run {
    run(
        "bad/maelstrom-rules.py",
        "g-counter",
        1,
        &[
            "--clients",
            "3",
            "--rate",
            "60",
            "--time-limit",
            "1.5",
            "--settle-limit",
            "5",
            "--nemesis",
            "none",
            "--bin-arg",
            mode,
        ],
        dir,
    )
}

#[test]
fn maelstroms_network_liberties_are_routed_and_only_what_it_rejects_is_a_finding() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases = vec![
        ("lenient", None),
        (
            "unknown-dest",
            Some("unknown destination \"n99\" (rule: `dest` must name a node"),
        ),
        (
            "unknown-src",
            Some("unknown source \"n99\" (rule: `src` must name a node"),
        ),
        (
            "no-in-reply-to",
            Some("answers nothing (rule: a message to a client is a reply"),
        ),
        ("reply-no-type", Some("rule: a reply is `<type>_ok`")),
    ];
    let runs = parallel(cases, |(mode, expect)| {
        (mode, expect, rules_run(mode, dir.path()))
    });
    for (mode, expect, r) in runs {
        r.no_panic();
        let findings = protocol_findings(&r);
        match expect {
            // Typeless bodies, null ids, a client's request forwarded under
            // the client's name and answered by another node, a duplicate
            // reply, a service request with a null msg_id: all routed.
            None => {
                assert_eq!(r.code, 0, "{mode}: {findings}\n{}", r.dump());
                assert_eq!(r.verdict_of("node-protocol"), "valid", "{findings}");
                let counts = &r.report.as_ref().unwrap()["counts"];
                let (ok, ops) = (
                    counts["ok"].as_u64().unwrap(),
                    counts["ops"].as_u64().unwrap(),
                );
                assert!(
                    ok * 10 >= ops * 9,
                    "forwarded requests went unanswered: {ok} ok of {ops}\n{}",
                    r.dump()
                );
            }
            Some(rule) => {
                assert_eq!(r.code, 1, "{mode}\n{}", r.dump());
                assert_eq!(r.verdict_of("node-protocol"), "invalid");
                assert!(
                    findings.contains(rule),
                    "{mode}: expected {rule:?} in\n{findings}"
                );
            }
        }
    }
}

/// The neighbours Maelstrom's `line` topology gives node i of n.
fn line_neighbours(i: usize, n: usize) -> Vec<String> {
    [i.checked_sub(1), Some(i + 1).filter(|&j| j < n)]
        .into_iter()
        .flatten()
        .map(|j| format!("n{j}"))
        .collect()
}

#[test]
fn topology_is_maelstroms_shape_and_is_resent_right_after_every_restart() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        "bad/topology-log.py",
        "broadcast",
        4,
        &[
            "--nodes",
            "4",
            "--topology",
            "line",
            "--nemesis",
            "crash",
            "--time-limit",
            "3",
            "--settle-limit",
            "3",
        ],
        dir.path(),
    );
    r.no_panic();
    assert!(
        r.stdout.contains("reproduce: ") && r.stdout.contains("--topology line"),
        "{}",
        r.dump()
    );
    let mut restarted = 0;
    for i in 0..4 {
        let log = std::fs::read_to_string(r.out.join("nodes").join(format!("n{i}.log"))).unwrap();
        let events: Vec<(&str, Value)> = log
            .lines()
            .filter_map(|l| {
                let (kind, json) = l.split_once(' ')?;
                Some((kind, serde_json::from_str(json).ok()?))
            })
            .filter(|(k, _)| *k == "init" || *k == "topology")
            .collect();
        let inits = events.iter().filter(|(k, _)| *k == "init").count();
        assert!(inits >= 1, "n{i}: {log}");
        restarted += usize::from(inits > 1);
        // Every init (the first and each restart's) is followed by a topology.
        for (at, (kind, _)) in events.iter().enumerate() {
            if *kind == "init" {
                assert_eq!(
                    events.get(at + 1).map(|(k, _)| *k),
                    Some("topology"),
                    "n{i}: an init without a topology after it\n{log}"
                );
            }
        }
        for (kind, body) in &events {
            if *kind == "topology" {
                let mine: Vec<String> = body["topology"][format!("n{i}")]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(mine, line_neighbours(i, 4), "n{i}");
            }
        }
    }
    assert!(
        restarted > 0,
        "no node was crashed and restarted\n{}",
        r.dump()
    );
    // The report says the run used a fault Maelstrom never injects.
    let summary = r.check("node-protocol")["details"]["summary"]
        .as_str()
        .unwrap_or("");
    assert!(
        summary.contains("Maelstrom never injects") && summary.contains("empty state"),
        "{summary}"
    );
}

#[test]
fn a_kafka_node_that_acknowledges_before_its_write_lands_loses_sends() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        "kafka-bug-lost-sends.py",
        "kafka",
        1,
        &["--nemesis", "loss", "--settle-limit", "20"],
        dir.path(),
    );
    r.no_panic();
    assert_eq!(r.code, 1, "{}", r.dump());
    let check = r.check("kafka");
    assert!(
        check["details"]["counts"]["lost"].as_u64().unwrap_or(0) > 0,
        "{check}"
    );
    // Every op, with its bodies, is in ops.jsonl, and re-checks as lost.
    let ops = std::fs::read_to_string(r.out.join("ops.jsonl")).unwrap();
    assert!(ops.lines().any(|l| l.contains("\"send_ok\"")), "{ops}");
    let again = recheck(&r.out.join("ops.jsonl"));
    again.expect_code(1);
    let report = common::parse_json(&again.stdout, "check report");
    assert_eq!(
        check_of(&report, "kafka")["details"]["counts"]["lost"],
        check["details"]["counts"]["lost"],
        "{}",
        again.dump()
    );
}

/// `converge check` of a file, with its report as JSON on stdout.
fn recheck(path: &Path) -> common::Out {
    let out = common::cli([
        "check".as_ref(),
        path.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    out.no_panic();
    out
}

fn check_of<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// The line `ops.jsonl` records a request's invocation with, and the line
/// its completion is on, for the `nth` request of type `f`.
fn invocation_and_completion(lines: &[&str], f: &str, nth: usize) -> (usize, usize) {
    let (at, invoke) = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"type\":\"invoke\"") && l.contains(&format!("\"f\":\"{f}\"")))
        .nth(nth)
        .unwrap_or_else(|| panic!("fewer than {} {f} invocations", nth + 1));
    let id = common::parse_json(invoke, "invoke line")["op"].clone();
    let done = lines
        .iter()
        .enumerate()
        .skip(at + 1)
        .find(|(_, l)| {
            let v = common::parse_json(l, "ops line");
            v["op"] == id && v["type"] != "invoke"
        })
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("op {id} never completed"));
    (at, done)
}

/// A run's `ops.jsonl` re-checks as the run judged it; cut as a kill cuts
/// it (inside a line, or between an op's invocation and its completion) it
/// re-checks as unknown, never as a false invalid; and a kafka send whose
/// completion is missing, although other clients polled it, is legal.
#[test]
fn ops_jsonl_rechecks_as_the_run_did_and_cut_short_never_falsely_invalid() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let jobs = vec![
        ("echo.py", "echo", "echo"),
        ("unique-ids.py", "unique-ids", "generate"),
        ("kafka.py", "kafka", "send"),
    ];
    let runs = parallel(jobs, |(node, w, f)| {
        (w, f, run(node, w, 3, &[], dir.path()))
    });
    for (w, f, r) in runs {
        r.no_panic();
        assert_eq!(r.code, 0, "{w} should be valid\n{}", r.dump());
        let path = r.out.join("ops.jsonl");
        let whole = recheck(&path);
        whole.expect_code(0);
        let report = common::parse_json(&whole.stdout, "check report");
        assert_eq!(
            check_of(&report, w)["details"]["counts"],
            r.check(w)["details"]["counts"],
            "{w}: {}",
            whole.dump()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cut = |name: &str, body: &str| {
            let p = dir.path().join(format!("{w}-{name}.jsonl"));
            std::fs::write(&p, body).unwrap();
            recheck(&p)
        };
        // Killed mid-write: the last line stops inside.
        let (at, done) = invocation_and_completion(&lines, f, 2);
        let mid_line = lines[..at].iter().map(|l| l.len() + 1).sum::<usize>() + lines[at].len() / 2;
        let out = cut("mid-line", &text[..mid_line]);
        out.expect_code(2).stderr_mentions("last line is cut short");
        assert_eq!(
            check_of(
                &common::parse_json(&out.stdout, "report"),
                "complete-history"
            )["verdict"],
            "unknown"
        );
        // Killed between an invocation and its completion: info.
        let between: String = lines[..done].iter().map(|l| format!("{l}\n")).collect();
        let out = cut("in-flight", &between);
        out.expect_code(2).stderr_mentions("never completed");
        assert_ne!(
            check_of(&common::parse_json(&out.stdout, "report"), w)["verdict"],
            "invalid"
        );
        if w == "kafka" {
            // The send's completion never reached the file, but its message
            // did reach a node and every final poll returned it.
            let mut rest = lines.clone();
            rest.remove(done);
            let body: String = rest.iter().map(|l| format!("{l}\n")).collect();
            let out = cut("polled-in-flight", &body);
            out.expect_code(0)
                .stderr_mentions("1 invoke(s) never completed");
        }
    }
}

/// Maelstrom's own demo nodes, vendored unmodified (EPL-1.0).
fn demo(path: &str) -> PathBuf {
    root().join("tests/data/maelstrom-demos").join(path)
}

/// The JavaScript demos start with `#!/usr/bin/node`; run them through
/// whatever `node` is on the PATH instead.
fn node_binary() -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v node"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// Runs a demo: `.py` files directly, `.js` files under node.
fn run_demo(path: &str, workload: &str, seed: u64, extra: &[&str], dir: &Path) -> Run {
    if path.ends_with(".js") {
        let node = node_binary().expect("node");
        let script = demo(path).display().to_string();
        let mut flags: Vec<&str> = extra.to_vec();
        flags.extend(["--bin-arg", script.as_str()]);
        run_bin(&node, workload, seed, &flags, dir)
    } else {
        run_bin(&demo(path), workload, seed, extra, dir)
    }
}

/// Each correct demo with its workload and the wait its gossip needs:
/// the CRDT demos send their state every 5 s, so their final reads agree
/// only after a round, and agreement is only trusted for longer than that.
const DEMOS: [(&str, &str, &[&str]); 6] = [
    ("python/echo.py", "echo", &[]),
    ("js/echo.js", "echo", &[]),
    ("python/broadcast.py", "broadcast", &[]),
    ("js/gossip.js", "broadcast", &[]),
    (
        "js/crdt_gset.js",
        "g-set",
        &["--quiet-window", "6", "--settle-limit", "30"],
    ),
    (
        "js/crdt_pn_counter.js",
        "pn-counter",
        &["--quiet-window", "6", "--settle-limit", "30"],
    ),
];

#[test]
fn maelstroms_demo_nodes_are_valid_without_faults_and_under_partition_loss_and_duplication() {
    let _turn = exclusive();
    if !python_available() || !interpreter_available("node") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Seed 1 without faults; seeds 1 to 3 under the faults the issue names.
    let mut jobs = Vec::new();
    for (path, workload, wait) in DEMOS {
        jobs.push((path, workload, wait, 1, "none"));
        for seed in 1..=3 {
            jobs.push((path, workload, wait, seed, "partition,loss,duplicate"));
        }
    }
    let runs = parallel(jobs, |(path, workload, wait, seed, nemesis)| {
        let mut flags = vec!["--nemesis", nemesis];
        flags.extend_from_slice(wait);
        (
            path,
            seed,
            nemesis,
            run_demo(path, workload, seed, &flags, dir.path()),
        )
    });
    for (path, seed, nemesis, r) in runs {
        r.no_panic();
        assert_eq!(
            r.code,
            0,
            "{path} seed {seed} nemesis {nemesis} should be valid\n{}",
            r.dump()
        );
        assert_eq!(r.verdict_of("node-protocol"), "valid", "{}", r.dump());
    }
}

#[test]
fn a_broadcast_node_without_retries_is_invalid_under_loss() {
    let _turn = exclusive();
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runs = parallel(vec![1u64, 2, 3], |seed| {
        (
            seed,
            run(
                "broadcast-bug-no-retry.py",
                "broadcast",
                seed,
                &["--nemesis", "loss"],
                dir.path(),
            ),
        )
    });
    for (seed, r) in runs {
        r.no_panic();
        assert_eq!(r.code, 1, "seed {seed}\n{}", r.dump());
        let invalid = r.invalid_checks();
        assert!(
            invalid
                .iter()
                .any(|c| c == "convergence" || c == "data-loss"),
            "seed {seed}: {invalid:?}\n{}",
            r.dump()
        );
    }
}
