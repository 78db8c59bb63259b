//! `converge run --target http` end to end: against `converge serve`
//! (started by converge from the examples), a dead URL, a service that
//! answers garbage, and bad configurations.

mod common;

use common::{converge, finish, read_json, string, Out};
use converge::history::jsonl::read_history;
use converge::history::{Function, Outcome};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// `converge run SCENARIO ARGS --out DIR` for a scenario with
/// `[target.http]`, `converge run --target http --http-config FILE ARGS
/// --out DIR` for a file holding that table alone.
fn run_http(config: &Path, out: &Path, args: &[&str]) -> Out {
    let text = std::fs::read_to_string(config).expect("config");
    let mut command = converge();
    if text.contains("[target.http]") {
        command.arg("run").arg(config);
    } else {
        command
            .args(["run", "--target", "http", "--http-config"])
            .arg(config);
    }
    finish(command.args(args).arg("--out").arg(out))
}

/// A copy of an example with some lines replaced.
fn variant(dir: &Path, name: &str, replace: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(example(name)).expect("example");
    for (from, to) in replace {
        assert!(text.contains(from), "{name} has no `{from}`");
        text = text.replace(from, to);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write variant");
    path
}

fn check_verdict(out_dir: &Path, check: &str) -> String {
    let report = read_json(&out_dir.join("report.json"));
    let checks = report["checks"].as_array().expect("checks");
    let entry = checks
        .iter()
        .find(|c| c["name"] == check)
        .unwrap_or_else(|| panic!("no check {check} in {report:#}"));
    string(entry, "verdict").to_string()
}

#[test]
fn the_reference_service_is_valid_with_the_nemesis_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, seeds, nemesis) in [
        ("http-serve-counter-ok.toml", ["1", "2"], "partition,crash"),
        ("http-serve-or-set-ok.toml", ["1", "2"], "partition,delay"),
        ("http-serve-mv-register-ok.toml", ["1", "2"], "partition"),
        ("http-serve-lww-register-ok.toml", ["1", "2"], "partition"),
        ("http-serve-2p-set-ok.toml", ["1", "2"], "partition,delay"),
    ] {
        for seed in seeds {
            let out = dir.path().join(format!("{name}-{seed}"));
            let result = run_http(
                &example(name),
                &out,
                &[
                    "--writers",
                    "10",
                    "--ops",
                    "1500",
                    "--read-ratio",
                    "0.3",
                    "--seed",
                    seed,
                    "--nemesis",
                    nemesis,
                ],
            );
            result.no_panic().expect_code(0);
            let report = read_json(&out.join("report.json"));
            assert_eq!(report["target"], "http");
            assert!(
                report["service"]["samples"].as_u64() > Some(0),
                "{report:#}"
            );
            assert!(out.join("history.jsonl").exists());
        }
    }
}

/// Acknowledged MV-register writes invoked after the latest causal context
/// any write was based on: the only writes whose loss a black-box run can
/// prove (see `checker::opaque`).
fn judgeable_mv_writes(out_dir: &Path) -> usize {
    let history = read_history(&out_dir.join("history.jsonl"))
        .expect("history")
        .history;
    let writes = || history.ops.iter().filter(|op| op.f == Function::Write);
    let latest_context = writes()
        .filter(|op| op.outcome != Outcome::Fail)
        .map(|op| op.aux)
        .max()
        .unwrap_or(0);
    writes()
        .filter(|op| op.outcome == Outcome::Ok && op.invoke_ns > latest_context)
        .count()
}

#[test]
fn each_serve_fault_is_invalid() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, check) in [
        ("http-serve-bug-lost-update.toml", "data-loss"),
        ("http-serve-bug-non-idempotent-retry.toml", "idempotency"),
        ("http-serve-bug-sibling-drop.toml", "data-loss"),
        ("http-serve-bug-no-anti-entropy.toml", "convergence"),
        ("http-serve-bug-lww-wrong-key.toml", "data-loss"),
        ("http-serve-bug-tombstone-element.toml", "data-loss"),
        ("http-serve-bug-2p-set-overwrite-merge.toml", "data-loss"),
    ] {
        let out = dir.path().join(name);
        // The point here is each bug, not the default stall window: a
        // short one keeps the stuck replicas of no-anti-entropy quick.
        let result = run_http(
            &example(name),
            &out,
            &[
                "--writers",
                "10",
                "--ops",
                "2000",
                "--read-ratio",
                "0.3",
                "--seed",
                "1",
                "--stall-window",
                "3",
            ],
        );
        result.no_panic();
        if name == "http-serve-bug-sibling-drop.toml" {
            // Two judgeable writes are concurrent and the fault keeps one
            // sibling, so one of them is a provable loss. With fewer, the
            // verdict hangs on which sibling the fault happens to keep.
            let judgeable = judgeable_mv_writes(&out);
            assert!(
                judgeable >= 2,
                "test setup: {name} left {judgeable} write(s) the checker can judge; \
                 its writes must be concurrent by construction, not by timing"
            );
        }
        result
            .expect_code(1)
            .mentions("reproduce: converge run --target http");
        assert_eq!(
            check_verdict(&out, check),
            "invalid",
            "{name}\n{}",
            result.dump()
        );
    }
}

#[test]
fn a_service_with_three_second_anti_entropy_is_valid_with_the_default_settle_rule() {
    // Replicas pull from each other every 3 s: after each heal they
    // disagree, unchanged, for up to 3 s at a time. No settle flag is
    // given: the defaults themselves must call this slow, not broken.
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("slow");
    let result = run_http(
        &example("http-serve-counter-slow-anti-entropy-ok.toml"),
        &out,
        &[
            "--writers",
            "10",
            "--ops",
            "1500",
            "--read-ratio",
            "0.3",
            "--seed",
            "1",
            "--nemesis",
            "partition",
        ],
    );
    result.no_panic().expect_code(0);
    assert_eq!(check_verdict(&out, "convergence"), "valid");
    let report = read_json(&out.join("report.json"));
    assert!(report["convergence_ms"].as_f64().is_some(), "{report:#}");
    assert!(
        string(&report, "reproduce").contains("--stall-window 10"),
        "the reproduce line carries the default settle windows\n{report:#}"
    );
}

#[test]
fn replicas_stuck_apart_are_invalid_only_after_the_stall_window() {
    // no-anti-entropy: replicas never sync after a partition heals. Their
    // values sit apart, unchanged: diverged once the stall window passes,
    // long before the settle limit, though nothing proves they will never
    // move again.
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "http-serve-bug-no-anti-entropy.toml";
    let args = |stall: &'static str| {
        [
            "--writers",
            "10",
            "--ops",
            "2000",
            "--seed",
            "1",
            "--nemesis",
            "partition",
            "--stall-window",
            stall,
            "--settle-limit",
            "30",
        ]
    };
    let stuck = dir.path().join("stuck");
    let result = run_http(&example(name), &stuck, &args("2"));
    result.no_panic().expect_code(1);
    assert_eq!(check_verdict(&stuck, "convergence"), "invalid");
    let report = std::fs::read_to_string(stuck.join("report.md")).expect("report.md");
    assert!(report.contains("no value changed for"), "{report}");
    let json = read_json(&stuck.join("report.json"));
    assert_eq!(json["quiescent"], true, "{json:#}");
}

#[test]
fn a_read_pointer_that_never_yields_and_writes_the_api_refuses_are_config_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "http-serve-counter-ok.toml";
    let args = [
        "--writers",
        "4",
        "--ops",
        "200",
        "--seed",
        "1",
        "--nemesis",
        "none",
    ];
    let misspelled = variant(
        dir.path(),
        name,
        &[("value = \"/value\"", "value = \"/valeu\"")],
    );
    let out = dir.path().join("pointer");
    run_http(&misspelled, &out, &args)
        .no_panic()
        .expect_code(3)
        .stderr_mentions("ops.read")
        .stderr_mentions("/valeu");
    assert!(out.join("history.jsonl").exists(), "the history is kept");
    let wrong_path = variant(
        dir.path(),
        name,
        &[(
            "path = \"/counters/{key}/increment\"",
            "path = \"/counter/{key}/increment\"",
        )],
    );
    run_http(&wrong_path, &dir.path().join("path"), &args)
        .no_panic()
        .expect_code(3)
        .stderr_mentions("ops.increment")
        .stderr_mentions("HTTP 404");
}

#[test]
fn settle_flags_are_refused_where_they_do_not_apply() {
    let out = finish(converge().args(["run", "--stall-window", "5", "--ops", "10"]));
    out.no_panic()
        .expect_code(3)
        .stderr_mentions("--stall-window");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run_http(
        &example("http-serve-counter-ok.toml"),
        &dir.path().join("out"),
        &[
            "--stall-window",
            "90",
            "--settle-limit",
            "60",
            "--ops",
            "10",
        ],
    );
    out.no_panic()
        .expect_code(3)
        .stderr_mentions("--stall-window");
}

#[test]
fn the_retry_fraction_exposes_non_idempotent_retry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "http-serve-bug-non-idempotent-retry.toml";
    let no_retries = variant(
        dir.path(),
        name,
        &[("retry_fraction = 0.2", "retry_fraction = 0.0")],
    );
    let args = [
        "--writers",
        "10",
        "--ops",
        "1500",
        "--seed",
        "7",
        "--nemesis",
        "none",
    ];
    let out = dir.path().join("without");
    run_http(&no_retries, &out, &args).no_panic().expect_code(0);
    assert_eq!(check_verdict(&out, "idempotency"), "valid");
    let out = dir.path().join("with");
    run_http(&example(name), &out, &args)
        .no_panic()
        .expect_code(1);
    assert_eq!(check_verdict(&out, "idempotency"), "invalid");
    let report = read_json(&out.join("report.json"));
    assert!(
        report["counts"]["idempotency_violations"].as_u64() > Some(0),
        "{report:#}"
    );
}

const MINIMAL: &str = r#"
workload = "g-counter"
replicas = ["URL"]
timeout_ms = 500
quiet_window_ms = 100
settle_limit_ms = 500

[ops.increment]
path = "/c/{key}"
body = { delta = "{delta}" }

[ops.read]
method = "GET"
path = "/c/{key}"
value = "/value"
"#;

#[test]
fn a_dead_url_is_a_target_error_naming_the_replica() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Bind and drop a listener: its port is closed now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("dead.toml");
    std::fs::write(&config, MINIMAL.replace("URL", &url)).expect("write");
    run_http(
        &config,
        &dir.path().join("out"),
        &["--ops", "10", "--writers", "2"],
    )
    .no_panic()
    .expect_code(4)
    .stderr_mentions(&url);
}

/// A server answering every request with 200 and `body`, until the test ends.
fn garbage_server(body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // One request per connection, then close.
                let _ = stream.read(&mut buf);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

#[test]
fn garbage_answers_are_findings_quoting_them_never_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (body, quoted) in [
        ("this is not json {", "this is not json {"),
        ("{\"value\": \"seven\"}", "seven"),
    ] {
        let url = garbage_server(body);
        let config = dir.path().join("garbage.toml");
        std::fs::write(&config, MINIMAL.replace("URL", &url)).expect("write");
        let out = dir.path().join("out");
        let result = run_http(
            &config,
            &out,
            &[
                "--ops",
                "40",
                "--writers",
                "4",
                "--read-ratio",
                "0.5",
                "--seed",
                "1",
            ],
        );
        result.no_panic();
        assert_ne!(result.code, 0, "{}", result.dump());
        assert_eq!(check_verdict(&out, "target-responses"), "invalid");
        let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
        assert!(report.contains("garbage"), "{report}");
        assert!(report.contains(quoted), "the answer is quoted\n{report}");
    }
}

#[test]
fn bad_configurations_are_exit_3_naming_the_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (MINIMAL.replace("{delta}", "{delat}"), "{delat}"),
        (
            MINIMAL.replace("{delta}", "{element}"),
            "does not exist for this operation",
        ),
        (
            MINIMAL.replace("timeout_ms = 500", "timeout_ms = 500\ntimout = 1"),
            "timout",
        ),
        (
            MINIMAL.replace("timeout_ms = 500", "timeout_ms = \"fast\""),
            "timeout_ms",
        ),
        (
            MINIMAL.replace("value = \"/value\"", "value = \"value\""),
            "JSON pointer",
        ),
        (MINIMAL.replace("g-counter", "lin-kv"), "workload"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&config, text.replace("URL", "http://127.0.0.1:9")).expect("write");
        run_http(&config, &dir.path().join("out"), &["--ops", "10"])
            .no_panic()
            .expect_code(3)
            .stderr_mentions(needle);
    }
    let out = finish(converge().args(["run", "--target", "http"]));
    out.expect_code(3).mentions("--http-config");
}

#[test]
fn every_http_example_is_covered_by_the_tests_above() {
    let known = [
        "http-serve-counter-ok.toml",
        "http-serve-or-set-ok.toml",
        "http-serve-mv-register-ok.toml",
        "http-serve-lww-register-ok.toml",
        "http-serve-bug-lost-update.toml",
        "http-serve-bug-non-idempotent-retry.toml",
        "http-serve-bug-sibling-drop.toml",
        "http-serve-bug-no-anti-entropy.toml",
        "http-serve-bug-lww-wrong-key.toml",
        "http-serve-bug-tombstone-element.toml",
        "http-serve-counter-slow-anti-entropy-ok.toml",
        "http-serve-2p-set-ok.toml",
        "http-serve-bug-2p-set-overwrite-merge.toml",
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("http-") {
            assert!(
                known.contains(&name.as_str()),
                "examples/{name} is not run by any test"
            );
        }
    }
}

#[test]
fn the_reference_service_on_postgres_is_valid_and_its_lost_update_is_caught() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, code) in [
        ("http-serve-counter-ok.toml", 0),
        ("http-serve-bug-lost-update.toml", 1),
    ] {
        let prefix = format!("converge_test_http_{}_{code}", std::process::id());
        let storage = format!(
            "\"--database-url\", \"{url}\", \"--schema-prefix\", \"{prefix}\", \"--reset\""
        );
        let config = variant(
            dir.path(),
            name,
            &[("\"--data-dir\", \"{out}/serve-data\"", storage.as_str())],
        );
        let out = dir.path().join(format!("out-{code}"));
        let result = run_http(
            &config,
            &out,
            &[
                "--writers",
                "10",
                "--ops",
                "1500",
                "--seed",
                "5",
                "--nemesis",
                "partition",
            ],
        );
        common::drop_serve_schemas(&url, &prefix, 3);
        result.no_panic().expect_code(code);
        // The service's log and converge's report never show a password.
        if let Some((_, after_scheme)) = url.split_once("://") {
            if let Some((credentials, _)) = after_scheme.split_once('@') {
                if let Some((_, password)) = credentials.split_once(':') {
                    let log = std::fs::read_to_string(out.join("service.log")).unwrap_or_default();
                    let report = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
                    assert!(!log.contains(password) && !report.contains(password));
                }
            }
        }
    }
}

/// An example scenario with its top-level run keys replaced by `run_keys`
/// (`[target.http]` and below kept as they are).
fn as_scenario(dir: &Path, name: &str, run_keys: &str) -> PathBuf {
    let text = std::fs::read_to_string(example(name)).expect("example");
    let (_, table) = text
        .split_once("[target.http]")
        .expect("the example has [target.http]");
    let scenario = format!("{run_keys}\n[target.http]{table}");
    let path = dir.join(format!("scenario-{name}"));
    std::fs::write(&path, scenario).expect("write scenario");
    path
}

#[test]
fn a_scenario_with_target_http_runs_and_its_slo_gates_decide_the_exit_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run_keys = "writers = 8\nops = 600\nseed = 4\nnemesis = \"partition\"";
    let scenario = as_scenario(dir.path(), "http-serve-counter-ok.toml", run_keys);
    let met = dir.path().join("met");
    let result = finish(
        converge()
            .args(["run", "--scenario"])
            .arg(&scenario)
            .args(["--slo", "p95_ms=60000", "--slo", "data_loss=0", "--out"])
            .arg(&met),
    );
    result.no_panic().expect_code(0);
    assert_eq!(result.seed(), 4);
    let report = read_json(&met.join("report.json"));
    assert_eq!(report["target"], "http");
    let slo = report["slo"].as_array().expect("slo rows");
    assert!(slo.iter().all(|row| row["status"] == "valid"), "{report:#}");

    // The same run with a gate nobody meets: exit 1, the row says so.
    let missed = dir.path().join("missed");
    let result = finish(
        converge()
            .args(["run", "--scenario"])
            .arg(&scenario)
            .args(["--slo", "p95_ms=0.000001", "--out"])
            .arg(&missed),
    );
    result.no_panic().expect_code(1);
    let markdown = std::fs::read_to_string(missed.join("report.md")).expect("report.md");
    let row = markdown
        .lines()
        .find(|l| l.contains("SLO p95_ms") && l.contains("FAIL"))
        .unwrap_or_else(|| panic!("no missed p95 row in\n{markdown}"));
    assert!(row.contains("0.000001"), "{row}");
    result.mentions(&format!(
        "reproduce: converge run --target http {}",
        scenario.display()
    ));
}

/// The leak soak through the CLI: a 20 s soak against `converge serve
/// --fault leak-memory` fails the `service_leak_slope_mb_per_min` gate,
/// the correct service passes it. (`tests/serve.rs` also soaks the service
/// directly.)
#[test]
fn a_soak_catches_a_leaking_service_with_the_slope_gate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let leaky = variant(
        dir.path(),
        "http-serve-counter-ok.toml",
        &[(
            r#""serve", "--replicas""#,
            r#""serve", "--fault", "leak-memory", "--replicas""#,
        )],
    );
    let args = [
        "--writers",
        "8",
        "--duration",
        "20s",
        // The example's own op count would end the soak in seconds.
        "--ops",
        "100000000",
        "--nemesis",
        "none",
        "--seed",
        "1",
        // 4 KiB a write: any machine reaching 100 writes a second leaks
        // over 20 MB a minute; the correct service stays far below.
        "--slo",
        "service_leak_slope_mb_per_min=20",
    ];
    let gate = |out: &Path| {
        let report = read_json(&out.join("report.json"));
        let row = report["slo"]
            .as_array()
            .and_then(|rows| {
                rows.iter()
                    .find(|r| r["metric"] == "service_leak_slope_mb_per_min")
            })
            .cloned()
            .unwrap_or_else(|| panic!("no leak gate in {report}"));
        (row["status"].as_str().unwrap_or("").to_string(), report)
    };
    let out = dir.path().join("leaky");
    let result = run_http(&leaky, &out, &args);
    result.no_panic().expect_code(1);
    let (status, report) = gate(&out);
    assert_eq!(status, "invalid", "{report}");
    assert!(
        report["memory"]["target"]["leak_slope_mb_per_min"]
            .as_f64()
            .is_some_and(|s| s > 20.0),
        "{report}"
    );
    assert!(out.join("timeseries.jsonl").exists());
    let out = dir.path().join("correct");
    let result = run_http(&example("http-serve-counter-ok.toml"), &out, &args);
    result.no_panic().expect_code(0);
    assert_eq!(gate(&out).0, "valid", "{}", result.dump());
}
