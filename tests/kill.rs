//! Killing `converge run`, and targets that misbehave: the verifier loses
//! nothing, leaks nothing and leaves nothing behind.
//!
//! Each target kind (in-process, SQL on SQLite, HTTP with `converge serve`
//! started by the run, Maelstrom nodes) is killed with SIGKILL and stopped
//! with SIGINT at three moments: during start-up, mid-run, and late (the
//! final phase where the target has one that lasts). The moment is only
//! aimed at: whatever phase the signal lands in, the same must hold:
//!
//! - the history on disk re-checks as valid or unknown, never invalid;
//! - SIGINT ends the run with exit 2 and a report whose `interrupted` check
//!   is unknown (or exit 0 when the run had already finished);
//! - no process the run started survives (each run's children carry a
//!   marker in their environment, found through /proc).
//!
//! The bad-target tests measure converge's own peak RSS through /proc while
//! a node or a replica floods it.

mod common;

use common::{converge, finish, read_json};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Signal {
    Kill,
    Int,
}

/// A run started with a marker in its environment.
struct Victim {
    child: Child,
    marker: String,
    out: PathBuf,
    started: Instant,
}

fn start(dir: &Path, name: &str, args: &[String]) -> Victim {
    let out = dir.join(name);
    let marker = format!("{}-{name}-{}", std::process::id(), unique());
    let child = converge()
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(&out)
        .env("CONVERGE_KILL_TEST", &marker)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join(format!("{name}.stdout"))).expect("stdout file"))
        .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).expect("stderr file"))
        .spawn()
        .expect("converge starts");
    Victim {
        child,
        marker,
        out,
        started: Instant::now(),
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Pids of live (not zombie) processes whose environment holds `marker`.
fn marked(marker: &str) -> Vec<u32> {
    let needle = format!("CONVERGE_KILL_TEST={marker}\0");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !environ
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            continue;
        }
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if !zombie {
            found.push(pid);
        }
    }
    found
}

/// Describes processes for a failure message.
fn describe(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            let state = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().map(|r| r.trim().chars().next()))
                .flatten()
                .unwrap_or('?');
            format!("{p} [{state}] {cmd}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What one kill left, for the matrix printed at the end of each test.
struct Outcome {
    line: String,
}

/// Signals the run `after` its start, waits for it, and asserts the
/// invariants of the module docs.
fn strike(dir: &Path, name: &str, args: &[String], after: Duration, signal: Signal) -> Outcome {
    let mut victim = start(dir, name, args);
    let deadline = victim.started + after;
    while Instant::now() < deadline {
        if victim.child.try_wait().expect("try_wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = victim.child.try_wait().expect("try_wait").is_none();
    if sent {
        let number = match signal {
            Signal::Kill => libc::SIGKILL,
            Signal::Int => libc::SIGINT,
        };
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(victim.child.id() as libc::pid_t, number) };
    }
    // A stopped run finishes its in-flight ops (each bounded by its
    // timeout) and writes its report: generous, never a timing assertion.
    let status = wait_for(&mut victim.child, Duration::from_secs(60));
    let stderr = std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default();
    let context = format!(
        "{name} ({signal:?} after {after:?}, sent {sent}): {status:?}\n--- stderr ---\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic reached stderr: {context}"
    );

    // Nothing the run started survives it.
    let mut survivors = marked(&victim.marker);
    let until = Instant::now() + Duration::from_secs(10);
    while !survivors.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
        survivors = marked(&victim.marker);
    }
    assert!(
        survivors.is_empty(),
        "processes of the run survived it:\n{}\n{context}",
        describe(&survivors)
    );

    let code = status.code();
    match (signal, sent) {
        (Signal::Kill, true) => assert_eq!(status.signal(), Some(libc::SIGKILL), "{context}"),
        // Before converge installs its handler (its first milliseconds, when
        // nothing is started yet) SIGINT kills it like any process.
        (Signal::Int, true) if status.signal() == Some(libc::SIGINT) => assert!(
            recorded(&victim.out).is_none(),
            "SIGINT killed converge after it had started the run: {context}"
        ),
        (Signal::Int, true) => {
            assert!(
                matches!(code, Some(0) | Some(2)),
                "SIGINT must end the run unknown (2), or valid (0) if it had finished: {context}"
            );
        }
        (_, false) => assert!(
            matches!(code, Some(0)),
            "a correct target ran to a verdict other than valid: {context}"
        ),
    }
    if signal == Signal::Int && sent && code == Some(2) {
        let report = victim.out.join("report.json");
        if recorded(&victim.out).is_some() {
            let report = read_json(&report);
            let checks = report["checks"].as_array().expect("checks");
            assert!(
                checks
                    .iter()
                    .any(|c| c["name"] == "interrupted" && c["verdict"] == "unknown"),
                "the partial report is not marked interrupted: {report:#}\n{context}"
            );
        } else {
            assert!(
                stderr.contains("interrupted"),
                "no history and no word of the interruption: {context}"
            );
        }
    }

    // The history re-checks without a false invalid.
    let recheck = if let Some(history) = recorded(&victim.out) {
        let out = finish(converge().arg("check").arg(&history));
        assert!(
            matches!(out.code, 0 | 2),
            "the history of a killed run re-checks as exit {}:\n{}\n{context}",
            out.code,
            out.dump()
        );
        format!("re-check exit {}", out.code)
    } else {
        "no history".to_string()
    };
    Outcome {
        line: format!(
            "{name}: {signal:?} at {after:?} -> {}, {recheck}, no survivor",
            match (sent, status.signal()) {
                (false, _) => format!("finished first (exit {code:?})"),
                (true, Some(s)) => format!("killed by signal {s}"),
                (true, None) => format!("exit {}", code.unwrap_or(-1)),
            }
        ),
    }
}

/// The history a run left in `out`: `history.jsonl`, or `ops.jsonl` for
/// the Maelstrom workloads that record bodies (echo, unique-ids, kafka).
fn recorded(out: &Path) -> Option<PathBuf> {
    ["history.jsonl", "ops.jsonl"]
        .iter()
        .map(|name| out.join(name))
        .find(|path| path.exists())
}

fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            panic!("converge did not end within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Runs each (moment, args) case with both signals and prints the matrix.
fn matrix(kind: &str, cases: &[(&str, Duration, Vec<String>)]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut lines = Vec::new();
    for (moment, after, args) in cases {
        for signal in [Signal::Kill, Signal::Int] {
            let name = format!("{kind}-{moment}-{signal:?}").to_lowercase();
            lines.push(strike(dir.path(), &name, args, *after, signal).line);
        }
    }
    eprintln!("kill matrix, {kind}:\n  {}", lines.join("\n  "));
}

#[test]
fn in_process_runs_killed_or_stopped_at_any_moment() {
    let long = strings(&[
        "--workload",
        "g-counter",
        "--ops",
        "50000000",
        "--writers",
        "8",
        "--seed",
        "1",
    ]);
    let short = strings(&["--workload", "or-set", "--ops", "200000", "--seed", "2"]);
    matrix(
        "in-process",
        &[
            ("start-up", Duration::from_millis(100), long.clone()),
            ("mid-run", Duration::from_millis(400), long),
            ("late", Duration::from_millis(700), short),
        ],
    );
}

#[test]
fn sql_runs_killed_or_stopped_at_any_moment() {
    let scenario = repo("examples/sql-counter-upsert-ok.toml")
        .display()
        .to_string();
    let args = |ops: &str| {
        strings(&[
            "--scenario",
            &scenario,
            "--ops",
            ops,
            "--writers",
            "4",
            "--seed",
            "3",
        ])
    };
    matrix(
        "sql",
        &[
            ("start-up", Duration::from_millis(100), args("1000000")),
            ("mid-run", Duration::from_millis(1500), args("1000000")),
            ("late", Duration::from_millis(1200), args("3000")),
        ],
    );
}

/// An HTTP scenario starting `converge serve` through `sh -c` (so the
/// service is a grandchild), with a long quiet window so the final phase
/// lasts.
fn http_config(dir: &Path, never_healthy: bool) -> PathBuf {
    let mut text =
        std::fs::read_to_string(repo("examples/http-serve-counter-ok.toml")).expect("example");
    let start = r#"command = ["{converge}", "serve", "--replicas", "3", "--port", "0", "--data-dir", "{out}/serve-data"]"#;
    assert!(text.contains(start), "the example's start command changed");
    let replacement = if never_healthy {
        r#"command = ["sh", "-c", "sleep 600 & sleep 600; echo never"]
startup_timeout_ms = 60000"#
    } else {
        r#"command = ["sh", "-c", "'{converge}' serve --replicas 3 --port 0 --data-dir '{out}/serve-data'; echo exited"]"#
    };
    text = text.replace(start, replacement);
    text = text.replace(
        "nemesis_step_ms = 300",
        "nemesis_step_ms = 300\nquiet_window_ms = 3000",
    );
    let path = dir.join(if never_healthy {
        "never-healthy.toml"
    } else {
        "sh-serve.toml"
    });
    std::fs::write(&path, text).expect("config");
    path
}

#[test]
fn http_runs_killed_or_stopped_at_any_moment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = http_config(dir.path(), false).display().to_string();
    let never = http_config(dir.path(), true).display().to_string();
    let args = |config: &str, ops: &str| {
        strings(&[
            "--target",
            "http",
            config,
            "--ops",
            ops,
            "--writers",
            "4",
            "--nemesis",
            "partition,crash",
            "--seed",
            "4",
        ])
    };
    matrix(
        "http",
        &[
            ("start-up", Duration::from_millis(800), args(&never, "1000")),
            (
                "mid-run",
                Duration::from_millis(2000),
                args(&serve, "1000000"),
            ),
            ("final", Duration::from_millis(2500), args(&serve, "200")),
        ],
    );
}

#[test]
fn maelstrom_runs_killed_or_stopped_at_any_moment() {
    if !common::python3() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // A node that never answers init, through a shell (a grandchild).
    let silent = dir.path().join("silent-node.sh");
    std::fs::write(&silent, "#!/bin/sh\nsleep 600 &\nsleep 600\n").expect("script");
    make_executable(&silent);
    let node = repo("nodes/g-counter.py").display().to_string();
    let silent = silent.display().to_string();
    let args = |bin: &str, time_limit: &str, nemesis: &str| {
        strings(&[
            "--target",
            "maelstrom",
            "--bin",
            bin,
            "--workload",
            "g-counter",
            "--nodes",
            "3",
            "--rate",
            "50",
            "--time-limit",
            time_limit,
            "--nemesis",
            nemesis,
            "--quiet-window",
            "3",
            "--seed",
            "5",
        ])
    };
    matrix(
        "maelstrom",
        &[
            (
                "start-up",
                Duration::from_millis(800),
                args(&silent, "2", "none"),
            ),
            (
                "mid-run",
                Duration::from_millis(2500),
                args(&node, "30", "partition,pause,crash"),
            ),
            (
                "final",
                Duration::from_millis(2500),
                args(&node, "1", "pause"),
            ),
        ],
    );
}

/// A kafka run records `ops.jsonl` invoke-first: killed with sends in
/// flight (some already polled by other clients), it re-checks as unknown,
/// never as a message nobody sent or a lost send.
#[test]
fn maelstrom_kafka_runs_killed_or_stopped_leave_ops_that_recheck() {
    if !common::python3() {
        return;
    }
    let node = repo("nodes/kafka.py").display().to_string();
    let args = |time_limit: &str| {
        strings(&[
            "--target",
            "maelstrom",
            "--bin",
            &node,
            "--workload",
            "kafka",
            "--nodes",
            "3",
            "--rate",
            "100",
            "--time-limit",
            time_limit,
            "--nemesis",
            "partition",
            "--quiet-window",
            "2",
            "--seed",
            "6",
        ])
    };
    matrix(
        "maelstrom-kafka",
        &[
            ("mid-run", Duration::from_millis(2000), args("30")),
            ("final", Duration::from_millis(1800), args("1")),
        ],
    );
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = std::fs::metadata(path).expect("script").permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms).expect("chmod");
}

/// Runs converge to its end while sampling its RSS from /proc; returns
/// (exit code, stdout+stderr, peak RSS in MB).
fn run_measured(dir: &Path, name: &str, args: &[String]) -> (i32, String, f64) {
    let mut victim = start(dir, name, args);
    let pid = victim.child.id();
    let mut peak_kb: u64 = 0;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for field in ["VmHWM:", "VmRSS:"] {
                if let Some(kb) = status
                    .lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    peak_kb = peak_kb.max(kb);
                }
            }
        }
        if let Some(status) = victim.child.try_wait().expect("try_wait") {
            break status;
        }
        if victim.started.elapsed() > Duration::from_secs(120) {
            let _ = victim.child.kill();
            panic!("{name} did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    for stream in ["stdout", "stderr"] {
        let _ = std::fs::File::open(dir.join(format!("{name}.{stream}")))
            .and_then(|mut f| f.read_to_string(&mut text));
    }
    assert!(
        marked(&victim.marker).is_empty(),
        "{name} left processes behind"
    );
    let code = status
        .code()
        .unwrap_or_else(|| panic!("{name} died by a signal: {status:?}\n{text}"));
    (code, text, peak_kb as f64 / 1024.0)
}

/// Peak RSS a flooded run may reach: far above a quiet run's (tens of MB),
/// far below what an unbounded buffer reaches in the same time (GBs).
const FLOOD_RSS_LIMIT_MB: f64 = 400.0;

fn flooding_node(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    let script = format!(
        "#!/usr/bin/env python3\nimport json, sys\nmsg = json.loads(sys.stdin.readline())\nsys.stdout.write(json.dumps({{'src': msg['body']['node_id'], 'dest': msg['src'], 'body': {{'type': 'init_ok', 'in_reply_to': msg['body']['msg_id']}}}}) + '\\n')\nsys.stdout.flush()\n{body}\n"
    );
    std::fs::write(&path, script).expect("node script");
    make_executable(&path);
    path.display().to_string()
}

#[test]
fn a_node_flooding_stdout_keeps_converge_memory_bounded() {
    if !common::python3() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let endless_line = flooding_node(
        dir.path(),
        "endless-line.py",
        "chunk = 'x' * 65536\nwhile True:\n    sys.stdout.write(chunk)",
    );
    let many_lines = flooding_node(
        dir.path(),
        "many-lines.py",
        "chunk = ('{\"src\": \"n0\", \"dest\": \"n0\", \"body\": {\"type\": \"junk\"}}\\n' + 'not json\\n') * 4096\nwhile True:\n    sys.stdout.write(chunk)",
    );
    for (name, bin, finding) in [
        (
            // Line 1 of its stdout is its init_ok.
            "endless-line",
            &endless_line,
            "wrote a line over 1 MiB at line 2",
        ),
        ("many-lines", &many_lines, "Maelstrom cannot route"),
    ] {
        let args = strings(&[
            "--target",
            "maelstrom",
            "--bin",
            bin,
            "--nodes",
            "1",
            "--time-limit",
            "3",
            "--nemesis",
            "none",
            "--settle-limit",
            "2",
            "--request-timeout",
            "0.5",
            "--seed",
            "6",
        ]);
        let (code, text, peak_mb) = run_measured(dir.path(), name, &args);
        eprintln!("{name}: exit {code}, converge peak RSS {peak_mb:.1} MB");
        assert!(
            peak_mb < FLOOD_RSS_LIMIT_MB,
            "{name}: converge reached {peak_mb:.1} MB under a flooding node\n{text}"
        );
        assert_eq!(
            code, 1,
            "{name}: a flooding node is a finding (invalid)\n{text}"
        );
        let report =
            std::fs::read_to_string(dir.path().join(name).join("report.json")).expect("report");
        assert!(
            report.contains(finding),
            "{name}: no `{finding}` finding\n{report}"
        );
    }
}

/// A server answering every request with `size` bytes of JSON-ish junk,
/// streamed; returns its base URL.
fn flooding_server(size: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                );
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b' '; 1 << 16];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if stream.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    url
}

#[test]
fn a_replica_answering_huge_bodies_keeps_converge_memory_bounded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = flooding_server(1 << 30);
    let config = dir.path().join("huge.toml");
    std::fs::write(
        &config,
        format!(
            r#"workload = "pn-counter"
keys = 1
replicas = ["{url}"]
timeout_ms = 5000

[ops.increment]
method = "POST"
path = "/counters/{{key}}/increment"
body = {{ delta = "{{delta}}" }}

[ops.read]
method = "GET"
path = "/counters/{{key}}"
value = "/value"
"#
        ),
    )
    .expect("config");
    let args = strings(&[
        "--target",
        "http",
        "--http-config",
        &config.display().to_string(),
        "--ops",
        "40",
        "--writers",
        "4",
        "--nemesis",
        "none",
        "--seed",
        "7",
    ]);
    let (code, text, peak_mb) = run_measured(dir.path(), "huge", &args);
    eprintln!("huge answers: exit {code}, converge peak RSS {peak_mb:.1} MB");
    assert!(
        peak_mb < FLOOD_RSS_LIMIT_MB,
        "converge reached {peak_mb:.1} MB reading huge answers\n{text}"
    );
    // Either the pre-flight read already fails (a target error naming the
    // replica, exit 4) or the run's answers are findings: never a pass.
    assert!(
        matches!(code, 1 | 2 | 4),
        "huge answers are not a pass\n{text}"
    );
    let report =
        std::fs::read_to_string(dir.path().join("huge").join("report.json")).unwrap_or_default();
    assert!(
        report.contains("an answer over 4 MiB") || text.contains("an answer over 4 MiB"),
        "nothing names the oversized answer\n{text}\n{report}"
    );
}

#[test]
fn a_child_that_exits_during_start_up_is_reported_at_once_with_its_status_and_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = dir.path().join("dies.sh");
    std::fs::write(
        &node,
        "#!/bin/sh\necho 'cannot open the frobnicator' >&2\nexit 3\n",
    )
    .expect("script");
    make_executable(&node);
    let out = finish(
        converge()
            .args(["run", "--target", "maelstrom", "--bin"])
            .arg(&node)
            .args(["--nodes", "2", "--time-limit", "1", "--seed", "8", "--out"])
            .arg(dir.path().join("node")),
    );
    out.expect_code(4)
        .no_panic()
        .stderr_mentions("node n0")
        .stderr_mentions("exit status: 3")
        .stderr_mentions("cannot open the frobnicator");
    assert!(
        !out.stderr.contains("within 10 s"),
        "a node that exited is not a timeout\n{}",
        out.dump()
    );

    let config = dir.path().join("dies.toml");
    let text = std::fs::read_to_string(repo("examples/http-serve-counter-ok.toml"))
        .expect("example")
        .replace(
            r#"command = ["{converge}", "serve", "--replicas", "3", "--port", "0", "--data-dir", "{out}/serve-data"]"#,
            r#"command = ["sh", "-c", "echo 'no database here' >&2; exit 5"]"#,
        );
    std::fs::write(&config, text).expect("config");
    let out = finish(
        converge()
            .args(["run", "--target", "http"])
            .arg(&config)
            .args(["--ops", "10", "--seed", "9", "--out"])
            .arg(dir.path().join("service")),
    );
    out.expect_code(4)
        .no_panic()
        .stderr_mentions("service")
        .stderr_mentions("exit status: 5")
        .stderr_mentions("no database here");
}

#[test]
fn an_sql_run_killed_while_it_connects_leaves_a_history() {
    // A "database" that accepts the connection and never answers: the run
    // stays in start-up (connecting) until the kill. Its history must
    // already exist, and must not hold the password of the URL.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = repo("examples/sql-counter-upsert-ok.toml");
    for signal in [Signal::Kill, Signal::Int] {
        let name = format!("connecting-{signal:?}").to_lowercase();
        let out = dir.path().join(&name);
        let marker = format!("{}-{name}-{}", std::process::id(), unique());
        let mut child = converge()
            .args(["run", "--scenario"])
            .arg(&scenario)
            .args(["--ops", "100", "--seed", "10", "--out"])
            .arg(&out)
            .env("CONVERGE_KILL_TEST", &marker)
            .env(
                "DATABASE_URL",
                format!("postgres://walrus:hunter2sql@127.0.0.1:{port}/nowhere"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.stderr"))).unwrap())
            .spawn()
            .expect("converge starts");
        let history = out.join("history.jsonl");
        // Wait (bounded, never asserted as a time) for the history, while
        // converge is still connecting.
        let until = Instant::now() + Duration::from_secs(60);
        while !history.exists() && Instant::now() < until {
            assert!(
                child.try_wait().expect("try_wait").is_none(),
                "converge ended before its history existed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(history.exists(), "no history while connecting");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "converge is no longer connecting: the test did not strike start-up"
        );
        let number = match signal {
            Signal::Kill => libc::SIGKILL,
            Signal::Int => libc::SIGINT,
        };
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, number) };
        let status = wait_for(&mut child, Duration::from_secs(60));
        let stderr =
            std::fs::read_to_string(dir.path().join(format!("{name}.stderr"))).unwrap_or_default();
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(!stderr.contains("hunter2sql"), "{name}: password in stderr");
        match signal {
            Signal::Kill => assert_eq!(status.signal(), Some(libc::SIGKILL)),
            // SIGINT ends the start-up: the run is not judged, and the
            // partial report says why.
            Signal::Int => {
                assert_eq!(status.code(), Some(2), "{name}: {status:?}\n{stderr}");
                let report = read_json(&out.join("report.json"));
                let checks = report["checks"].as_array().expect("checks");
                assert!(
                    checks
                        .iter()
                        .any(|c| c["name"] == "interrupted" && c["verdict"] == "unknown"),
                    "{name}: the partial report is not marked interrupted: {report:#}"
                );
            }
        }
        let text = std::fs::read_to_string(&history).expect("history");
        assert!(text.starts_with("{\"type\":\"header\""), "{name}: {text}");
        assert!(!text.contains("hunter2sql"), "{name}: password in history");
        let recheck = finish(converge().arg("check").arg(&history));
        assert!(
            matches!(recheck.code, 0 | 2),
            "{name}: the history of a run killed while connecting re-checks as exit {}\n{}",
            recheck.code,
            recheck.dump()
        );
        assert!(marked(&marker).is_empty(), "{name} left processes behind");
        eprintln!(
            "{name}: {status:?}, history kept, re-check exit {}",
            recheck.code
        );
    }
    drop(listener);
}
