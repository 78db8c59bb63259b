//! The verifier loses nothing, leaks nothing and leaves nothing behind:
//! bad `check` inputs (bounded memory, the line named), cut histories,
//! closed pipes and full disks, one run per output folder, secrets in every
//! form masked in every output, and out-of-range flags.

mod common;

use common::{cli, converge, finish, parse_json, Out};
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn header(end_line: bool) -> String {
    let end = if end_line { r#","end_line":true"# } else { "" };
    format!(
        r#"{{"type":"header","schema_version":1,"seed":1,"workload":"g-counter","model":"m","target":"maelstrom","writers":1,"replicas":2,"keys":1,"ops":2,"nemesis":"none","reproduce":"converge run"{end}}}"#
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the history");
    path
}

fn check(path: &Path) -> Out {
    cli([OsStr::new("check"), path.as_os_str()])
}

/// The peak resident memory of a child, read from `/proc/<pid>/status`
/// while it runs (VmHWM is its high-water mark), then its exit code.
fn peak_rss_kib(mut child: Child) -> (u64, Out) {
    let pid = child.id();
    let mut peak = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        if child.try_wait().expect("poll").is_some() {
            break;
        }
        std::thread::yield_now();
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut stdout));
    child
        .stderr
        .take()
        .map(|mut s| s.read_to_string(&mut stderr));
    let code = child.wait().expect("reap").code().expect("no signal");
    (
        peak,
        Out {
            code,
            stdout,
            stderr,
        },
    )
}

// ------------------------------------------------------------ check inputs

#[test]
fn check_of_an_endless_line_fails_at_the_cap_with_bounded_memory() {
    let child = converge()
        .args(["check", "/dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn converge check");
    let (peak_kib, out) = peak_rss_kib(child);
    out.no_panic().expect_code(3);
    assert!(
        out.stderr.contains("/dev/zero:1:") && out.stderr.contains("longer than"),
        "the error does not name line 1 and the cap\n{}",
        out.dump()
    );
    // The line buffer may double once past the cap: three caps is a bound
    // no unbounded reader stays under.
    let cap_kib = converge::history::jsonl::MAX_LINE_BYTES as u64 / 1024;
    assert!(
        peak_kib > 0 && peak_kib < 3 * cap_kib,
        "peak RSS {peak_kib} KiB (cap {cap_kib} KiB)"
    );
}

/// A file whose `lines` are followed by one line of `len` bytes in all,
/// its tail a hole (sparse: no disk, read back as NUL bytes).
fn with_endless_line(dir: &Path, name: &str, lines: &str, len: u64) -> PathBuf {
    let path = write(dir, name, lines);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(len))
        .expect("extend the file");
    path
}

#[test]
fn check_of_edn_and_jepsen_logs_with_a_huge_line_fails_at_the_cap_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let cap_kib = converge::history::jsonl::MAX_LINE_BYTES as u64 / 1024;
    let edn = with_endless_line(
        dir.path(),
        "huge.edn",
        "[{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n{:process 1, :type :invoke, :f :write, :value \"",
        1 << 30,
    );
    let log = with_endless_line(
        dir.path(),
        "huge.log",
        "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\nINFO  jepsen.util - 1\t:invoke\t:write\t",
        1 << 30,
    );
    for (path, format) in [(&edn, "edn"), (&log, "jepsen-log")] {
        for flags in [&[][..], &["--input-format", format][..]] {
            let child = converge()
                .args(["check", "--checker", "linearizable"])
                .args(flags)
                .arg(path)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn converge check");
            let (peak_kib, out) = peak_rss_kib(child);
            out.no_panic().expect_code(3);
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(
                out.stderr.contains(&format!("{name}:3:")) && out.stderr.contains("longer than"),
                "the error does not name line 3 and the cap\n{}",
                out.dump()
            );
            assert!(
                peak_kib > 0 && peak_kib < 3 * cap_kib,
                "{name}: peak RSS {peak_kib} KiB (cap {cap_kib} KiB)"
            );
        }
    }
}

#[test]
fn check_of_one_unterminated_line_names_it_and_is_not_called_empty() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["garbage without newline", &header(true)[..40]] {
        let path = write(dir.path(), "one.jsonl", text);
        let out = check(&path);
        out.no_panic().expect_code(3);
        assert!(
            out.stderr.contains("one.jsonl:1:") && !out.stderr.contains("empty history"),
            "{}",
            out.dump()
        );
    }
}

#[test]
fn check_rejects_clocks_and_dots_the_header_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let invoke = |f: &str| {
        format!(
            r#"{{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"{f}","value":1,"time_ns":1}}"#
        )
    };
    let mv = header(true)
        .replace("g-counter", "mv-register")
        .replace("maelstrom", "in-process");
    let set = header(true)
        .replace("g-counter", "or-set")
        .replace("maelstrom", "in-process");
    let cases = [
        (
            &mv,
            invoke("write"),
            r#"{"type":"ok","op":0,"time_ns":2,"clock_sum":3,"clock":[1,1,1],"ts":5}"#,
            "vector clock of 3 entries",
        ),
        (
            &set,
            invoke("add"),
            r#"{"type":"ok","op":0,"time_ns":2,"clock_sum":1,"dot":18446744073709551615}"#,
            "dot 18446744073709551615",
        ),
        (
            &set,
            invoke("add"),
            r#"{"type":"ok","op":0,"time_ns":2,"clock_sum":1,"dot":1125899906842625}"#,
            "names replica 4",
        ),
    ];
    for (head, invoke, done, needle) in cases {
        let text = format!("{head}\n{invoke}\n{done}\n{{\"type\":\"end\"}}\n");
        let path = write(dir.path(), "bad.jsonl", &text);
        let out = check(&path);
        out.no_panic().expect_code(3);
        assert!(
            out.stderr.contains("bad.jsonl:3:") && out.stderr.contains(needle),
            "expected line 3 and `{needle}`\n{}",
            out.dump()
        );
    }
}

#[test]
fn a_history_without_its_end_line_is_interrupted_and_never_valid() {
    let dir = tempfile::tempdir().unwrap();
    let ops = concat!(
        r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"increment","value":1,"time_ns":1}"#,
        "\n",
        r#"{"type":"ok","op":0,"time_ns":2,"clock_sum":1}"#,
        "\n",
        r#"{"type":"final","replica":0,"key":0,"value":{"int":1}}"#,
        "\n",
        r#"{"type":"final","replica":1,"key":0,"value":{"int":1}}"#,
        "\n",
        r#"{"type":"quiescence","reached":true,"rounds":1,"max_rounds":5,"convergence_ns":10}"#,
        "\n",
    );
    let whole = write(
        dir.path(),
        "whole.jsonl",
        &format!("{}\n{ops}{{\"type\":\"end\"}}\n", header(true)),
    );
    check(&whole).no_panic().expect_code(0);
    // The same history by a writer that promised no end line: as before.
    let old = write(
        dir.path(),
        "old.jsonl",
        &format!("{}\n{ops}", header(false)),
    );
    check(&old).no_panic().expect_code(0);
    // Cut before the end line: what it holds is right, but it is not the run.
    let cut = write(dir.path(), "cut.jsonl", &format!("{}\n{ops}", header(true)));
    let out = check(&cut);
    out.no_panic().expect_code(2);
    assert!(out.stderr.contains("cut short"), "{}", out.dump());
    // Nothing may follow the end line.
    let after = write(
        dir.path(),
        "after.jsonl",
        &format!("{}\n{{\"type\":\"end\"}}\n{ops}", header(true)),
    );
    let out = check(&after);
    out.no_panic().expect_code(3);
    assert!(out.stderr.contains("after.jsonl:3:"), "{}", out.dump());
}

/// A kafka `ops.jsonl`, invoke-first: `lines` after the header.
fn kafka_ops(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let header = r#"{"type":"header","ops_format":2,"workload":"kafka","run":{"schema_version":1,"seed":4,"workload":"lww-register","model":"kafka.py","target":"maelstrom","writers":1,"replicas":1,"keys":1,"ops":1,"nemesis":"none","reproduce":"converge run"}}"#;
    let mut text = format!("{header}\n");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    write(dir, name, &text)
}

const SEND: &str = r#"{"type":"invoke","op":0,"process":0,"node":0,"f":"send","time_ns":10,"request":{"type":"send","key":"1","msg":5}}"#;
const SENT: &str =
    r#"{"type":"ok","op":0,"time_ns":20,"latency_ns":10,"reply":{"type":"send_ok","offset":0}}"#;
const FINAL_POLL: &str = r#"{"type":"invoke","op":1,"process":1,"node":0,"f":"poll","time_ns":30,"request":{"type":"poll","offsets":{"1":0}},"final_read":true}"#;
const SETTLED: &str = r#"{"type":"final_polls","state":"settled"}"#;
const END: &str = r#"{"type":"end"}"#;

fn final_polled(msgs: &str) -> String {
    format!(
        r#"{{"type":"ok","op":1,"time_ns":40,"latency_ns":10,"reply":{{"type":"poll_ok","msgs":{{"1":{msgs}}}}}}}"#
    )
}

#[test]
fn an_ops_jsonl_is_judged_whole_and_cut_and_its_bad_lines_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let polled = final_polled("[[0, 5]]");
    let empty = final_polled("[]");
    let whole = kafka_ops(
        dir.path(),
        "whole.jsonl",
        &[SEND, SENT, FINAL_POLL, &polled, SETTLED, END],
    );
    check(&whole).no_panic().expect_code(0);
    // Acknowledged, and missing from the settled final polls: lost.
    let lost = kafka_ops(
        dir.path(),
        "lost.jsonl",
        &[SEND, SENT, FINAL_POLL, &empty, SETTLED, END],
    );
    check(&lost).no_panic().expect_code(1).mentions("lost");
    // In flight when the run was killed, and polled: legal. Missing from
    // the final polls: not lost either, it may never have taken effect.
    for (name, msgs) in [
        ("in-flight-polled.jsonl", &polled),
        ("in-flight.jsonl", &empty),
    ] {
        let cut = kafka_ops(dir.path(), name, &[SEND, FINAL_POLL, msgs, SETTLED, END]);
        check(&cut)
            .no_panic()
            .expect_code(0)
            .stderr_mentions("never completed");
    }
    // Killed before the completion: no end line, unknown.
    let killed = kafka_ops(dir.path(), "ops.jsonl", &[SEND]);
    check(&killed)
        .no_panic()
        .expect_code(2)
        .stderr_mentions("cut short");
    // A completion never invoked, an id invoked twice: input errors.
    let orphan = kafka_ops(dir.path(), "orphan.jsonl", &[SENT]);
    check(&orphan)
        .no_panic()
        .expect_code(3)
        .stderr_mentions("orphan.jsonl:2: op 0 completed but never invoked");
    let twice = kafka_ops(dir.path(), "twice.jsonl", &[SEND, SEND]);
    check(&twice)
        .no_panic()
        .expect_code(3)
        .stderr_mentions("twice.jsonl:3: op 0 invoked twice");
    // Format 1 (one whole op per line, no header) still reads.
    let old = write(
        dir.path(),
        "old.jsonl",
        "{\"process\":0,\"f\":\"echo\",\"invoke_ns\":1,\"complete_ns\":2,\"outcome\":\"ok\",\"node\":0,\"request\":{\"type\":\"echo\",\"echo\":\"a\"},\"reply\":{\"type\":\"echo_ok\",\"echo\":\"b\"}}\n",
    );
    check(&old)
        .no_panic()
        .expect_code(1)
        .mentions("echoed something else");
}

// ------------------------------------------------------------ pipes, disks

fn small_run(out: &Path) -> Command {
    let mut cmd = converge();
    cmd.args([
        "run",
        "--workload",
        "g-counter",
        "--ops",
        "300",
        "--writers",
        "2",
        "--seed",
        "5",
    ])
    .arg("--out")
    .arg(out);
    cmd
}

/// Runs `cmd` with its stdout a pipe whose reader is already gone.
fn with_closed_stdout(cmd: &mut Command) -> Out {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .map(|mut s| s.read_to_string(&mut stderr));
    let status = child.wait().expect("reap");
    Out {
        code: status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {status:?}\n{stderr}")),
        stdout: String::new(),
        stderr,
    }
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_verdicts_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = with_closed_stdout(converge().args(["list", "workloads"]));
    out.no_panic().expect_code(0);
    let out = with_closed_stdout(&mut small_run(&dir.path().join("run")));
    out.no_panic().expect_code(0);
    assert!(dir.path().join("run/report.json").is_file());
}

#[test]
fn a_full_stdout_is_an_io_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        &mut small_run(&dir.path().join("run")),
        converge().args(["list", "workloads"]),
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = finish(cmd.stdout(full));
        out.no_panic().expect_code(3);
        assert!(out.stderr.contains("/dev/full"), "{}", out.dump());
    }
}

#[test]
fn out_of_range_threads_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let history = write(dir.path(), "h.jsonl", &format!("{}\n", header(false)));
    let h = history.to_str().unwrap();
    for args in [
        vec!["run", "--threads", "100000"],
        vec!["run", "--threads", "0"],
        vec![
            "check",
            "--checker",
            "linearizable",
            "--threads",
            "100000",
            h,
        ],
        vec!["fuzz", "--threads", "100000"],
    ] {
        let out = cli(&args);
        out.no_panic().expect_code(3).mentions("--threads");
    }
}

#[test]
fn latency_errors_speak_milliseconds_and_negative_slos_are_config_errors() {
    let out = cli(["run", "--target", "maelstrom", "--bin", "x", "--latency=-5"]);
    out.no_panic().expect_code(3);
    assert!(
        out.stderr.contains("--latency must be milliseconds") && out.stderr.contains("-5"),
        "{}",
        out.dump()
    );
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.toml",
        "workload = \"g-counter\"\nops = 100\n[target]\nkind = \"in-process\"\n[slo]\np95_ms = -1\n",
    );
    let out = cli([
        OsStr::new("run"),
        OsStr::new("--scenario"),
        scenario.as_os_str(),
        OsStr::new("--out"),
        dir.path().join("out").as_os_str(),
    ]);
    out.no_panic().expect_code(3);
    assert!(
        out.stderr.contains("p95_ms") && out.stderr.contains("-1"),
        "{}",
        out.dump()
    );
}

/// A `[target.http]` table alone (an `--http-config` file) for `converge
/// serve`, with `extra` keys added at its top.
fn http_table(extra: &str) -> String {
    format!(
        r#"workload = "pn-counter"
{extra}
[start]
command = ["{{converge}}", "serve", "--replicas", "2", "--port", "0"]
health_url = "/health"
expect_replicas = 2

[ops.increment]
method = "POST"
path = "/counters/{{key}}/increment"
body = {{ delta = "{{delta}}" }}

[ops.read]
method = "GET"
path = "/counters/{{key}}"
value = "/value"
"#
    )
}

/// Every message that echoes a time setting names it and says its value
/// in the unit the user wrote it in: `--duration 1500ms` stays `1500ms`,
/// a key in milliseconds is said in milliseconds, a flag in seconds in
/// seconds. Each is a configuration error (exit 3) before anything runs.
#[test]
fn time_settings_are_echoed_in_the_unit_the_user_typed() {
    let dir = tempfile::tempdir().unwrap();
    let http = |name: &str, extra: &str| {
        write(dir.path(), name, &http_table(extra))
            .display()
            .to_string()
    };
    let stall_past_limit = http(
        "stall.toml",
        "stall_window_ms = 20000\nsettle_limit_ms = 10000",
    );
    let quiet_past_flag = http("quiet.toml", "quiet_window_ms = 8000");
    let no_start_time = http("start.toml", "");
    std::fs::write(
        &no_start_time,
        std::fs::read_to_string(&no_start_time)
            .unwrap()
            .replace("[start]\n", "[start]\nstartup_timeout_ms = 0\n"),
    )
    .unwrap();
    let scenario = write(
        dir.path(),
        "d.toml",
        "workload = \"g-counter\"\nduration = \"0ms\"\n",
    )
    .display()
    .to_string();
    let maelstrom = ["--target", "maelstrom", "--bin", "/bin/true"];
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["--duration", "0ms"],
            &["--duration", "'0ms'", "got 0 ms"],
        ),
        (vec!["--think-time", "0ms"], &["--think-time", "got 0 ms"]),
        (
            vec!["--stage", "200h:5"],
            &["--stage", "at most 168 h, got 200 h"],
        ),
        (vec![&scenario], &["duration: '0ms'", "got 0 ms"]),
        (
            [
                &maelstrom[..],
                &["--duration", "1500ms", "--time-limit", "2"],
            ]
            .concat(),
            &["--duration 1500ms", "--time-limit 2 (seconds)"],
        ),
        (
            [&maelstrom[..], &["--latency=-5"]].concat(),
            &["--latency", "milliseconds", "-5"],
        ),
        (
            [&maelstrom[..], &["--request-timeout=-1"]].concat(),
            &["--request-timeout", "seconds", "-1"],
        ),
        (
            [
                &maelstrom[..],
                &["--stall-window", "20", "--settle-limit", "10"],
            ]
            .concat(),
            &["--stall-window 20 (seconds)", "--settle-limit 10 (seconds)"],
        ),
        (
            [&maelstrom[..], &["--quiet-window=-1"]].concat(),
            &["--quiet-window must be seconds", "-1"],
        ),
        (
            vec!["--target", "http", "--http-config", &stall_past_limit],
            &["stall_window_ms = 20000", "settle_limit_ms = 10000"],
        ),
        (
            vec![
                "--target",
                "http",
                "--http-config",
                &quiet_past_flag,
                "--settle-limit",
                "5",
            ],
            &["quiet_window_ms = 8000", "--settle-limit 5 (seconds)"],
        ),
        (
            vec!["--target", "http", "--http-config", &no_start_time],
            &["start.startup_timeout_ms"],
        ),
    ];
    for (i, (args, needles)) in cases.iter().enumerate() {
        let out_dir = dir.path().join(format!("out{i}"));
        let out = finish(converge().arg("run").args(args).arg("--out").arg(&out_dir));
        out.no_panic().expect_code(3);
        for needle in *needles {
            assert!(
                out.stderr.contains(needle),
                "{args:?}: the message does not say `{needle}`\n{}",
                out.dump()
            );
        }
        assert!(
            !out.stderr.contains("1.5s") && !out.stderr.contains("0 s,"),
            "{args:?}: a unit the user did not type\n{}",
            out.dump()
        );
    }
}

/// `converge run WORDS...` (program name included) parsed and resolved as
/// the binary does it.
fn resolved(words: &[&str]) -> Result<converge::cli::run::RunArgs, converge::error::Error> {
    let converge::cli::Command::Run(args) = converge::cli::parse_from(words)
        .unwrap_or_else(|e| panic!("{words:?} does not parse: {e}"))
        .command
    else {
        unreachable!("run")
    };
    converge::cli::run::resolve(*args)
}

fn sql_config(words: &[&str]) -> converge::target::sql::SqlRunConfig {
    resolved(words)
        .and_then(|a| converge::cli::run_sql::config_from(&a))
        .unwrap_or_else(|e| panic!("{words:?}: {e}"))
}

fn http_config(words: &[&str]) -> converge::target::http::HttpRunConfig {
    resolved(words)
        .and_then(|a| converge::cli::run_http::config_from(&a))
        .unwrap_or_else(|e| panic!("{words:?}: {e}"))
}

/// A SQL run's reproduce line, parsed again, gives the same settings:
/// the op mix (read and remove ratios included), load, seed, nemesis and
/// settle rule. A workload without removes leaves `--remove-ratio` out of
/// it, and refuses the flag.
#[test]
fn the_sql_reproduce_line_gives_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    for (scenario, extra) in [
        (
            "examples/sql-2p-set-ok.toml",
            &["--remove-ratio", "0.6"][..],
        ),
        ("examples/sql-g-counter-replicas-ok.toml", &[][..]),
    ] {
        let words = [
            &["converge", "run", scenario, "--seed", "5", "--writers", "3"][..],
            &[
                "--read-ratio",
                "0.2",
                "--hot-key-ratio",
                "0.7",
                "--duration",
                "1500ms",
            ],
            &["--out", &out],
            extra,
        ]
        .concat();
        let first = sql_config(&words);
        let line = first.reproduce.clone();
        let again = sql_config(&line.split_whitespace().collect::<Vec<_>>());
        assert_eq!(again.workload, first.workload, "{line}");
        assert_eq!(again.mix, first.mix, "{line}");
        assert_eq!(first.mix.read_ratio, 0.2, "{line}");
        assert_eq!(again.load, first.load, "{line}");
        assert_eq!(
            (again.seed, again.replicas, again.retry_fraction),
            (first.seed, first.replicas, first.retry_fraction),
            "{line}"
        );
        assert_eq!(again.nemesis.to_spec(), first.nemesis.to_spec(), "{line}");
        assert_eq!(again.settle, first.settle, "{line}");
        assert_eq!(again.reproduce, line, "the line reproduces itself");
        let removes = first.workload != converge_models::Workload::GCounter;
        assert_eq!(line.contains("--remove-ratio"), removes, "{line}");
        if removes {
            assert_eq!(first.mix.remove_ratio, 0.6, "{line}");
        } else {
            let e = resolved(&[&words[..], &["--remove-ratio", "0.5"]].concat())
                .and_then(|a| converge::cli::run_sql::config_from(&a).map(|_| ()))
                .expect_err("a g-counter has no removes");
            assert!(e.to_string().contains("--remove-ratio"), "{e}");
        }
    }
}

/// An HTTP run's reproduce line, parsed again, gives the same settings;
/// `--remove-ratio` appears only for a workload that has removes, and a
/// g-counter refuses it.
#[test]
fn the_http_reproduce_line_gives_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    let g_counter = write(
        dir.path(),
        "g.toml",
        &http_table("").replace("\"pn-counter\"", "\"g-counter\""),
    )
    .display()
    .to_string();
    let cases: [(Vec<&str>, bool); 3] = [
        (
            vec![
                "examples/http-serve-or-set-ok.toml",
                "--remove-ratio",
                "0.6",
            ],
            true,
        ),
        (vec!["examples/http-serve-counter-ok.toml"], true),
        (vec!["--target", "http", "--http-config", &g_counter], false),
    ];
    for (target, removes) in cases {
        let words = [
            &["converge", "run"][..],
            &target,
            &["--seed", "5", "--writers", "3", "--read-ratio", "0.2"],
            &["--duration", "1500ms", "--settle-limit", "7", "--out", &out],
        ]
        .concat();
        let first = http_config(&words);
        let line = first.reproduce();
        let again = http_config(&line.split_whitespace().collect::<Vec<_>>());
        assert_eq!(again.mix(), first.mix(), "{line}");
        assert_eq!(first.read_ratio, 0.2, "{line}");
        assert_eq!(again.load, first.load, "{line}");
        assert_eq!(again.seed, first.seed, "{line}");
        assert_eq!(again.faults.to_spec(), first.faults.to_spec(), "{line}");
        assert_eq!(
            again.target.settle_rule(),
            first.target.settle_rule(),
            "{line}"
        );
        assert_eq!(again.reproduce(), line, "the line reproduces itself");
        assert_eq!(line.contains("--remove-ratio"), removes, "{line}");
        if !removes {
            let e = resolved(&[&words[..], &["--remove-ratio", "0.5"]].concat())
                .and_then(|a| converge::cli::run_http::config_from(&a).map(|_| ()))
                .expect_err("a g-counter has no removes");
            assert!(e.to_string().contains("--remove-ratio"), "{e}");
        }
    }
}

// ------------------------------------------------------------ one run per folder

#[test]
fn an_output_folder_in_use_is_refused_naming_its_holder_and_a_stale_one_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    let lock = out.join(converge::history::lock::LOCK_FILE);
    // This test process is alive: its lock holds.
    let me = std::process::id();
    std::fs::write(&lock, format!("{me}\n")).unwrap();
    let refused = finish(&mut small_run(&out));
    refused.no_panic().expect_code(3);
    assert!(
        refused.stderr.contains(&format!("pid {me}")),
        "{}",
        refused.dump()
    );
    assert!(!out.join("history.jsonl").exists(), "{}", refused.dump());

    // A process that has ended holds nothing.
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(&lock, format!("{dead}\n")).unwrap();
    finish(&mut small_run(&out)).no_panic().expect_code(0);
    assert!(!lock.exists(), "the run left its lock behind");
}

#[test]
fn two_concurrent_runs_never_share_a_history() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let long = |cmd: &mut Command| {
        cmd.args([
            "run",
            "--workload",
            "g-set",
            "--ops",
            "2000000",
            "--writers",
            "4",
        ])
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
    };
    let mut first = long(&mut converge());
    let lock = out.join(converge::history::lock::LOCK_FILE);
    while !lock.exists() {
        assert!(first.try_wait().unwrap().is_none(), "the first run ended");
        std::thread::yield_now();
    }
    let second = finish(&mut small_run(&out));
    let _ = first.kill();
    let _ = first.wait();
    second.no_panic().expect_code(3);
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        second.dump()
    );
}

// ------------------------------------------------------------ secrets

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Fails if `secret` is in the run's stdout, stderr or any file it wrote.
fn assert_masked(out: &Out, dir: &Path, secret: &str, what: &str) {
    assert!(
        !out.stdout.contains(secret) && !out.stderr.contains(secret),
        "{what}: the secret reached stdout or stderr\n{}",
        out.dump()
    );
    for file in files_under(dir) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(secret),
            "{what}: the secret reached {}\n{}",
            file.display(),
            out.dump()
        );
    }
}

fn sql_scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sql-counter-upsert-ok.toml")
}

fn sql_run(dir: &Path, name: &str, url: &str) -> (Out, PathBuf) {
    let out_dir = dir.join(name);
    let out = finish(
        converge()
            .args(["run", "--scenario"])
            .arg(sql_scenario())
            .args(["--ops", "200", "--seed", "3", "--database-url", url])
            .arg("--out")
            .arg(&out_dir),
    );
    out.no_panic();
    (out, out_dir)
}

#[test]
fn sql_passwords_in_urls_and_dsns_reach_no_output() {
    let dir = tempfile::tempdir().unwrap();
    // Runs that fail fast: the database cannot be opened or reached.
    let cases = [
        (
            "sqlite-query",
            format!(
                "sqlite://{}/no/such/dir/x.db?password=Sq1iteSecret",
                dir.path().display()
            ),
            "Sq1iteSecret",
        ),
        (
            "dsn",
            "host=127.0.0.1 port=1 user=u password=DsnSecret42 dbname=test".to_string(),
            "DsnSecret42",
        ),
        (
            "dsn-quoted",
            "host=127.0.0.1 port=1 user=u password='Quoted Secret9' dbname=test".to_string(),
            "Quoted Secret9",
        ),
        (
            "userinfo",
            "postgres://u:UserinfoSecret7@127.0.0.1:1/test".to_string(),
            "UserinfoSecret7",
        ),
    ];
    for (name, url, secret) in &cases {
        let (out, out_dir) = sql_run(dir.path(), name, url);
        assert_ne!(out.code, 0, "{name}: {}", out.dump());
        assert!(
            out.stderr.contains("***"),
            "{name}: nothing masked?\n{}",
            out.dump()
        );
        assert_masked(&out, &out_dir, secret, name);
    }
}

#[test]
fn a_postgres_password_parameter_reaches_no_output_of_a_real_run() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    // Trust authentication accepts any password: a whole run with one.
    let secret = "PgQuerySecret5";
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}password={secret}");
    let dir = tempfile::tempdir().unwrap();
    let (out, out_dir) = sql_run(dir.path(), "pg", &url);
    out.expect_code(0);
    assert!(out_dir.join("history.jsonl").is_file());
    assert_masked(&out, &out_dir, secret, "postgres ?password=");
}

#[test]
fn http_userinfo_and_authorization_headers_reach_no_output() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: the run fails fast, naming the replica.
    let config = write(
        dir.path(),
        "http.toml",
        concat!(
            "workload = \"pn-counter\"\n",
            "replicas = [\"http://alice:HttpSecret3@127.0.0.1:1\"]\n",
            "[ops.increment]\nmethod = \"POST\"\npath = \"/c/{key}\"\n",
            "headers = { \"Authorization\" = \"Bearer HeaderToken8\" }\n",
            "body = { delta = \"{delta}\" }\n",
            "[ops.read]\nmethod = \"GET\"\npath = \"/c/{key}\"\nvalue = \"/value\"\n",
            "headers = { \"Authorization\" = \"Bearer HeaderToken8\" }\n",
        ),
    );
    let out_dir = dir.path().join("out");
    let out = finish(
        converge()
            .args(["run", "--target", "http", "--http-config"])
            .arg(&config)
            .args(["--ops", "50", "--seed", "1", "--out"])
            .arg(&out_dir),
    );
    out.no_panic().expect_code(4);
    assert!(out.stderr.contains("alice:***@"), "{}", out.dump());
    for secret in ["HttpSecret3", "HeaderToken8"] {
        assert_masked(&out, &out_dir, secret, "http");
    }
}

/// Secret forms a child may print: URL userinfo, a `password=` query
/// parameter, a libpq DSN `password=` keyword.
const CHILD_SECRETS: [(&str, &str); 3] = [
    ("postgres://u:LogUserinfo1@db/x", "LogUserinfo1"),
    ("sqlite://x.db?password=LogQuery2", "LogQuery2"),
    ("host=db user=u password=LogDsn3 dbname=x", "LogDsn3"),
];

#[test]
fn secrets_a_node_or_a_service_prints_reach_no_log() {
    let dir = tempfile::tempdir().unwrap();
    let said: String = CHILD_SECRETS
        .iter()
        .map(|(form, _)| format!("echo 'connecting to {form}' >&2; "))
        .collect();

    // A Maelstrom node that prints them on stderr and exits at start-up.
    let node = write(dir.path(), "node.sh", &format!("#!/bin/sh\n{said}exit 3\n"));
    let mut perms = std::fs::metadata(&node).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&node, perms).unwrap();
    let node_out = dir.path().join("node");
    let out = finish(
        converge()
            .args(["run", "--target", "maelstrom", "--bin"])
            .arg(&node)
            .args(["--nodes", "1", "--time-limit", "1", "--seed", "8", "--out"])
            .arg(&node_out),
    );
    out.no_panic().expect_code(4);
    let log = std::fs::read_to_string(node_out.join("nodes/n0.log")).expect("node log");
    assert_eq!(log.matches("***").count(), 3, "{log}\n{}", out.dump());
    for (_, secret) in CHILD_SECRETS {
        assert_masked(&out, &node_out, secret, "node log");
    }

    // A service that prints them, and a configured header's value, on
    // stdout and stderr, then exits during start-up.
    let header_secret = "LogHeader4";
    let config = write(
        dir.path(),
        "service.toml",
        &format!(
            r#"workload = "pn-counter"
[start]
command = ["sh", "-c", "{said} echo 'token {header_secret}'; echo 'auth {header_secret}' >&2; exit 5"]
health_url = "/health"
expect_replicas = 1

[ops.increment]
method = "POST"
path = "/c/{{key}}"
headers = {{ "Authorization" = "Bearer {header_secret}" }}
body = {{ delta = "{{delta}}" }}

[ops.read]
method = "GET"
path = "/c/{{key}}"
value = "/value"
"#
        ),
    );
    let service_out = dir.path().join("service");
    let out = finish(
        converge()
            .args(["run", "--target", "http", "--http-config"])
            .arg(&config)
            .args(["--ops", "10", "--seed", "9", "--out"])
            .arg(&service_out),
    );
    out.no_panic().expect_code(4);
    let log = std::fs::read_to_string(service_out.join("service.log")).expect("service log");
    assert_eq!(log.matches("***").count(), 5, "{log}\n{}", out.dump());
    for secret in CHILD_SECRETS.iter().map(|(_, s)| *s).chain([header_secret]) {
        assert_masked(&out, &service_out, secret, "service log");
    }
}

/// The default output folder is new for every run: the same seed twice
/// keeps both, `reports/latest` names the last, and the printed reproduce
/// command does not pin a folder (run again, it makes a third).
#[test]
fn default_output_folders_never_clobber_and_latest_names_the_last() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let args = [
        "run",
        "--workload",
        "g-counter",
        "--writers",
        "3",
        "--ops",
        "100",
        "--seed",
        "77",
        "--nemesis",
        "none",
        "--format",
        "json",
    ];
    let run = || {
        let out = finish(converge().args(args).current_dir(tmp.path()));
        out.no_panic().expect_code(0);
        out
    };
    let first = run();
    let second = run();
    let reports = tmp.path().join("reports");
    let mut folders: Vec<String> = std::fs::read_dir(&reports)
        .expect("reports/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "latest")
        .collect();
    folders.sort();
    assert_eq!(folders.len(), 2, "{folders:?}");
    for name in &folders {
        assert!(
            name.starts_with("g-counter-77-"),
            "{name} is not <model>-<seed>-<time>"
        );
        assert!(reports.join(name).join("history.jsonl").exists(), "{name}");
    }
    let latest = std::fs::read_link(reports.join("latest")).expect("reports/latest");
    let second_report = parse_json(&second.stdout, "second run");
    let reproduce = second_report["reproduce"].as_str().expect("reproduce");
    assert!(
        !reproduce.contains("--out"),
        "the reproduce command pins a folder: {reproduce}"
    );
    let first_report = parse_json(&first.stdout, "first run");
    assert_eq!(first_report["reproduce"], second_report["reproduce"]);
    // `latest` is the second run's folder (the newer name sorts last,
    // with a -2 suffix when both fell in the same second).
    assert_eq!(latest.to_string_lossy(), folders[1], "{folders:?}");
}

/// One vocabulary: every target lists its faults under the shared names
/// (`drop`, never `loss`), `loss` is accepted as its alias, and a fault a
/// target cannot inject is refused naming it and the target.
#[test]
fn nemeses_are_listed_per_target_under_one_set_of_names() {
    for (target, has, lacks) in [
        (
            "in-process",
            &["partition", "drop", "reorder"][..],
            &["crash"][..],
        ),
        ("maelstrom", &["drop", "crash", "pause"][..], &["loss"][..]),
        ("http", &["partition", "crash", "delay"][..], &["drop"][..]),
        (
            "sql",
            &["partition", "drop", "duplicate"][..],
            &["reorder"][..],
        ),
        ("automerge", &["drop", "duplicate"][..], &["crash"][..]),
    ] {
        let out = cli(["list", "nemeses", "--target", target, "--format", "json"]);
        out.no_panic().expect_code(0);
        let rows = parse_json(&out.stdout, "list nemeses");
        let names: Vec<&str> = rows
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["name"].as_str().expect("name"))
            .collect();
        for name in has {
            assert!(names.contains(name), "{target}: no {name} in {names:?}");
        }
        for name in lacks {
            assert!(!names.contains(name), "{target}: {name} in {names:?}");
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--workload", "g-counter", "--writers", "2"];
        args.extend_from_slice(&["--ops", "50", "--seed", "1", "--out"]);
        finish(
            converge()
                .args(&args)
                .arg(dir.path().join(extra.join("_")))
                .args(extra),
        )
    };
    run(&["--nemesis", "partition,loss"])
        .no_panic()
        .expect_code(0);
    run(&["--nemesis", "crash"])
        .no_panic()
        .expect_code(3)
        .stderr_mentions("--target in-process cannot inject 'crash'");
}

/// A flag a target does not honour is refused naming it (exit 3), whatever
/// the target; the shared ones map where the target has a twin.
#[test]
fn flags_a_target_does_not_honour_are_refused_naming_them() {
    for (args, flag) in [
        (
            &[
                "run",
                "--target",
                "maelstrom",
                "--bin",
                "x",
                "--replicas",
                "3",
            ][..],
            "--replicas",
        ),
        (&["run", "--target", "automerge", "--bin", "x"][..], "--bin"),
        (&["run", "--clients", "3"][..], "--clients"),
        (&["run", "--rate", "10"][..], "--rate"),
        (
            &["run", "--target", "sql", "--time-limit", "3"][..],
            "--time-limit",
        ),
        (
            &["run", "--target", "automerge", "--threads", "2"][..],
            "--threads",
        ),
        (&["run", "--target", "sql", "--fault", "x"][..], "--fault"),
        (&["run", "--target", "http", "--keys", "4"][..], "--keys"),
    ] {
        cli(args)
            .no_panic()
            .expect_code(3)
            .stderr_mentions(flag)
            .stderr_mentions(match flag {
                // A closed model (the default) has no rate to follow.
                "--rate" => "open model",
                _ => "does not apply",
            });
    }
}

#[test]
fn maelstrom_takes_writers_as_clients_and_duration_as_its_time_limit() {
    let parse = |words: &[&str]| {
        let mut all = vec!["converge", "run", "--target", "maelstrom", "--bin", "node"];
        all.extend_from_slice(words);
        let converge::cli::Command::Run(args) =
            converge::cli::parse_from(all).expect("parses").command
        else {
            unreachable!("run")
        };
        converge::cli::run::resolve(*args)
            .and_then(|a| converge::cli::run_maelstrom::config_from(&a))
    };
    let config = parse(&["--writers", "7", "--duration", "3s"]).expect("config");
    assert_eq!(config.load.writers, 7);
    assert_eq!(
        config.load.duration,
        Some(std::time::Duration::from_secs(3))
    );
    let config = parse(&[]).expect("config");
    assert_eq!(
        config.load.writers, 10,
        "--clients' default without --writers"
    );
    // Maelstrom's own shape is the default: the open model at 100
    // requests/s over a pool of the clients, for --time-limit.
    assert_eq!(config.load.model, converge::load::LoadModel::Open);
    assert_eq!(config.load.rate, 100.0);
    assert_eq!(config.load.max_writers, 10);
    assert_eq!(
        config.load.duration,
        Some(std::time::Duration::from_secs(10))
    );
    assert_eq!(config.load.ops, None);
    // An op budget alone bounds the run (no time limit unless given).
    let config = parse(&["--ops", "40"]).expect("config");
    assert_eq!((config.load.ops, config.load.duration), (Some(40), None));
    let config = parse(&["--ops", "40", "--time-limit", "2"]).expect("config");
    assert_eq!(
        (config.load.ops, config.load.duration),
        (Some(40), Some(std::time::Duration::from_secs(2)))
    );
    // The reproduce command gives back the same shape.
    let staged = parse(&["--stage", "2s:40", "--max-writers", "4"]).expect("config");
    let words: Vec<String> = staged
        .reproduce()
        .split_whitespace()
        // `converge run --target maelstrom --bin node`: parse adds them.
        .skip(6)
        .map(str::to_string)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let again = parse(&words).expect("again");
    assert_eq!(again.load, staged.load);
    let e = parse(&["--writers", "7", "--clients", "8"]).expect_err("disagree");
    assert!(e.to_string().contains("--clients"), "{e}");
    let e = parse(&["--duration", "3s", "--time-limit", "4"]).expect_err("disagree");
    assert!(e.to_string().contains("--time-limit"), "{e}");
}

/// `converge run --help` is one page for one job: target-only flags under
/// their own headings.
#[test]
fn run_help_groups_target_flags_under_their_headings() {
    let out = cli(["run", "--help"]);
    out.no_panic().expect_code(0);
    for heading in [
        "Load shape:",
        "Maelstrom target:",
        "HTTP target:",
        "SQL target:",
        "Settle (black-box targets: maelstrom, http, sql):",
    ] {
        assert!(out.stdout.contains(heading), "no {heading}\n{}", out.stdout);
    }
    let maelstrom = out.stdout.find("Maelstrom target:").expect("heading");
    let bin = out.stdout.find("--bin <BIN>").expect("--bin");
    assert!(
        bin > maelstrom,
        "--bin is not under its heading\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("[SCENARIO]"), "{}", out.stdout);
}
