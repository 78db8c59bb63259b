//! Load shapes on the simulated targets (in-process and automerge), in
//! virtual time: the achieved rate in `timeseries.jsonl` follows the
//! stages, dropped arrivals are counted when the writer pool is too small,
//! the op budget is exact, and a staged run replays identically.
//!
//! Virtual time is deterministic, so the tolerances below cover rounding
//! (writers rounded to whole numbers, think time to whole ticks, text
//! inserts of several characters), never the machine's speed.

mod common;

use serde_json::Value;
use std::path::Path;

/// The header and rows of a run's `timeseries.jsonl`.
fn series(dir: &Path) -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(dir.join("timeseries.jsonl")).expect("timeseries.jsonl");
    let mut lines = text
        .lines()
        .map(|l| common::parse_json(l, "a time series line"));
    let header = lines.next().expect("a header");
    (header, lines.collect())
}

fn num(row: &Value, key: &str) -> f64 {
    common::field(row, key)
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {row}"))
}

fn sum(rows: &[Value], key: &str) -> f64 {
    rows.iter().map(|r| num(r, key)).sum()
}

/// Checks each row's throughput is `expected[i]` within `tolerance` (a fraction).
fn follows(rows: &[Value], expected: &[f64], tolerance: f64) {
    assert_eq!(
        rows.len(),
        expected.len(),
        "one row per virtual second: {rows:?}"
    );
    for (i, (row, want)) in rows.iter().zip(expected).enumerate() {
        let got = num(row, "throughput");
        assert!(
            (got - want).abs() <= want * tolerance,
            "second {}: {got} ops/s, expected {want} ± {}%: {rows:#?}",
            i + 1,
            tolerance * 100.0
        );
    }
}

fn run(dir: &Path, args: &[&str]) -> Value {
    let out = common::run_into(dir, &[args, &["--format", "json", "--no-shrink"]].concat());
    out.no_panic().expect_code(0);
    common::parse_json(&out.stdout, "report")
}

/// A simulated target lives in converge's process: report.json's
/// `memory.converge` holds the RSS the series sampled (peak the highest
/// row, initial the first), and no separate target is claimed.
fn converge_memory_is_reported(report: &Value, rows: &[Value]) {
    let memory = &report["memory"]["converge"];
    let sampled: Vec<f64> = rows.iter().map(|r| num(r, "converge.rss_mb")).collect();
    let peak = sampled.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(memory["peak_mb"].as_f64(), Some(peak), "{memory:#}");
    assert_eq!(
        memory["initial_mb"].as_f64(),
        Some(sampled[0]),
        "{memory:#}"
    );
    assert!(report["memory"]["target"].is_null(), "{report:#}");
}

const IN_PROCESS: &[&str] = &["--workload", "g-counter", "--replicas", "3", "--seed", "4"];

/// Closed model: 5 writers for 2 s, then a ramp to 25 over 2 s, each
/// thinking 9 ms (one op every 10 ticks: 100 ops/s a writer). The ramp's
/// seconds average 10 and 20 writers: 500, 500, 1000, 2000 ops/s, within
/// 10% (writers are whole, the ramp's are rounded).
#[test]
fn in_process_closed_ramp_follows_the_writers() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        IN_PROCESS,
        &[
            "--writers",
            "5",
            "--load",
            "closed",
            "--think-time",
            "9ms",
            "--stage",
            "2s:5",
            "--stage",
            "2s:25",
        ],
    ]
    .concat();
    let report = run(dir.path(), &args);
    let (header, rows) = series(dir.path());
    assert_eq!(common::string(&header, "clock"), "virtual");
    assert_eq!(num(&header, "load.tick_ms"), 1.0);
    follows(&rows, &[500.0, 500.0, 1000.0, 2000.0], 0.10);
    converge_memory_is_reported(&report, &rows);
    let stages: Vec<Value> = rows.iter().map(|r| r["stage"].clone()).collect();
    assert_eq!(stages, [0, 0, 1, 1].map(Value::from));
    assert_eq!(num(&rows[3], "writers"), 25.0);
    assert_eq!(sum(&rows, "dropped"), 0.0, "a closed model drops nothing");
    assert_eq!(sum(&rows, "started"), sum(&rows, "completed"));
}

/// Open model: 200 ops/s for 2 s, then a ramp to 1000 over 2 s (400 and
/// 800 arrivals in its seconds). Arrivals are the integral of the rate, so
/// each second is within 1%; a pool of 50 never runs out (one arrival a
/// tick at most), and latency, from each intended start to the end of its
/// tick, is at most one tick of virtual time.
#[test]
fn in_process_open_ramp_follows_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        IN_PROCESS,
        &[
            "--writers",
            "5",
            "--load",
            "open",
            "--rate",
            "200",
            "--max-writers",
            "50",
            "--stage",
            "2s:200",
            "--stage",
            "2s:1000",
        ],
    ]
    .concat();
    run(dir.path(), &args);
    let (_, rows) = series(dir.path());
    follows(&rows, &[200.0, 200.0, 400.0, 800.0], 0.01);
    assert_eq!(sum(&rows, "dropped"), 0.0);
    for row in &rows {
        let max = num(row, "latency_ms.max");
        assert!(max > 0.0 && max <= 1.0, "virtual latency {max} ms: {row}");
    }
}

/// Open model with a pool of 2: 4.5 arrivals a tick, 2 served, the rest
/// dropped and counted (2500 of 4500 over one virtual second, ±1 for the
/// last arrival's rounding); the human report says so too.
#[test]
fn in_process_open_model_counts_dropped_arrivals() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        IN_PROCESS,
        &[
            "--writers",
            "2",
            "--load",
            "open",
            "--rate",
            "4500",
            "--max-writers",
            "2",
            "--duration",
            "1s",
        ],
    ]
    .concat();
    let out = common::run_into(dir.path(), &args);
    out.no_panic().expect_code(0).mentions("dropped");
    let (_, rows) = series(dir.path());
    assert_eq!(sum(&rows, "completed"), 2000.0);
    let dropped = sum(&rows, "dropped");
    assert!((2499.0..=2501.0).contains(&dropped), "dropped {dropped}");
    assert_eq!(num(&rows[0], "writers"), 2.0);
}

/// `--ops` and `--duration` bound a run together: whichever comes first.
#[test]
fn in_process_ends_at_its_op_budget_within_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        IN_PROCESS,
        &["--writers", "7", "--duration", "10s", "--ops", "300"],
    ]
    .concat();
    let report = run(dir.path(), &args);
    let (_, rows) = series(dir.path());
    assert_eq!(sum(&rows, "completed"), 300.0);
    assert_eq!(rows.len(), 1, "300 ops at 7 a tick end in the first second");
    assert!(common::string(&report, "reproduce").contains("--duration 10000ms"));
}

/// A staged run replays identically, on both simulated targets.
#[test]
fn a_staged_run_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let runs: [(&str, Vec<&str>); 2] = [
        (
            "in-process",
            [
                &[
                    "--fault",
                    "arrival-order-lww",
                    "--seed",
                    "2",
                    "--writers",
                    "4",
                ][..],
                &["--load", "open", "--rate", "300", "--max-writers", "20"],
                &["--stage", "1s:300", "--stage", "1500ms:3000"],
            ]
            .concat(),
        ),
        (
            "automerge",
            [
                &["--target", "automerge", "--seed", "2", "--writers", "3"][..],
                &[
                    "--think-time",
                    "4ms",
                    "--stage",
                    "500ms:3",
                    "--stage",
                    "1s:9",
                ],
            ]
            .concat(),
        ),
    ];
    for (name, args) in runs {
        let run_dir = dir.path().join(name);
        let out = common::run_into(&run_dir, &[&args[..], &["--no-shrink"]].concat());
        out.no_panic();
        assert!(matches!(out.code, 0 | 1), "{name}: {}", out.dump());
        let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
        assert!(
            history.contains("--stage"),
            "{name}: the reproduce command keeps the stages"
        );
        common::cli([
            "replay".as_ref(),
            run_dir.as_os_str(),
            "--out".as_ref(),
            dir.path().join(format!("{name}-replay")).as_os_str(),
        ])
        .no_panic()
        .expect_code(0)
        .mentions("identical");
    }
}

const AUTOMERGE: &[&str] = &["--target", "automerge", "--replicas", "3", "--seed", "5"];

/// Rows of an automerge run count history ops: a text insert of up to
/// three characters is up to three ops, so a second's count is its
/// actions times 1 to 3. The checks compare seconds with each other (the
/// mix is the same in each) within 20%.
fn ratios(rows: &[Value], expected: &[f64]) {
    let base = num(&rows[0], "throughput");
    assert!(base > 0.0, "{rows:#?}");
    for (i, (row, want)) in rows.iter().zip(expected).enumerate() {
        let ratio = num(row, "throughput") / base;
        assert!(
            (ratio - want).abs() <= want * 0.2,
            "second {}: {ratio} × the first second, expected {want} ± 20%: {rows:#?}",
            i + 1
        );
    }
    assert_eq!(rows.len(), expected.len(), "{rows:#?}");
}

/// Closed model on automerge: 2 writers thinking 9 ms for 1 s, then a
/// ramp to 8 over 2 s (seconds averaging 3.5 and 6.5 writers).
#[test]
fn automerge_closed_ramp_follows_the_writers() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        AUTOMERGE,
        &[
            "--writers",
            "2",
            "--think-time",
            "9ms",
            "--stage",
            "1s:2",
            "--stage",
            "2s:8",
        ],
    ]
    .concat();
    let report = run(dir.path(), &args);
    let (header, rows) = series(dir.path());
    assert_eq!(common::string(&header, "clock"), "virtual");
    ratios(&rows, &[1.0, 1.75, 3.25]);
    converge_memory_is_reported(&report, &rows);
    assert_eq!(num(&rows[2], "writers"), 8.0);
}

/// Open model on automerge: 100 arrivals/s for 1 s, then a ramp to 500
/// (300 arrivals in that second); then a pool of 2 under 4.5 arrivals a
/// tick drops 1250 of 2250 arrivals in half a virtual second.
#[test]
fn automerge_open_ramp_follows_the_rate_and_counts_drops() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        AUTOMERGE,
        &[
            "--writers",
            "2",
            "--load",
            "open",
            "--rate",
            "100",
            "--max-writers",
            "10",
            "--stage",
            "1s:100",
            "--stage",
            "1s:500",
        ],
    ]
    .concat();
    run(dir.path(), &args);
    let (_, rows) = series(dir.path());
    ratios(&rows, &[1.0, 3.0]);
    assert_eq!(sum(&rows, "dropped"), 0.0);

    let small = dir.path().join("small");
    let args = [
        AUTOMERGE,
        &["--writers", "2", "--load", "open", "--rate", "4500"],
        &["--max-writers", "2", "--duration", "500ms"],
    ]
    .concat();
    run(&small, &args);
    let (_, rows) = series(&small);
    let dropped = sum(&rows, "dropped");
    assert!((1249.0..=1251.0).contains(&dropped), "dropped {dropped}");
    // 1000 actions served, each one to three history ops.
    let completed = sum(&rows, "completed");
    assert!(
        (1000.0..=3000.0).contains(&completed),
        "completed {completed}"
    );
}

/// `--ops N` is N history ops on automerge, text inserts included (it
/// was 5,672 for 5000), with or without a load shape.
#[test]
fn automerge_runs_exactly_its_op_budget() {
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("plain", &[][..]),
        ("shaped", &["--think-time", "2ms", "--duration", "1h"][..]),
    ] {
        let out = dir.path().join(name);
        let args = [
            &["--target", "automerge", "--seed", "1", "--ops", "5000"][..],
            extra,
        ]
        .concat();
        run(&out, &args);
        let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
        let ops = history
            .lines()
            .filter(|l| l.contains("\"type\":\"invoke\""))
            .count();
        assert_eq!(ops, 5000, "{name}");
        let (_, rows) = series(&out);
        assert_eq!(sum(&rows, "completed"), 5000.0, "{name}");
    }
}
