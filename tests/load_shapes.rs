//! Load shapes on the one wall-clock engine (`crate::engine`), end to end
//! through the http, sql and maelstrom adapters: the achieved rate follows the stages,
//! an exhausted open-model pool counts dropped arrivals, and a stalled
//! target shows in the open model's p99 (latency from the intended start)
//! while the closed model shows fewer completions instead.
//!
//! Every assertion compares shapes within one run (a stage against another,
//! one second against the others), never a wall-clock latency against a
//! constant.

mod common;

use common::{converge, finish, read_json, Out};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The header and rows of `timeseries.jsonl`.
fn series(out: &Path) -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(out.join("timeseries.jsonl")).expect("timeseries.jsonl");
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"));
    let header = lines.next().expect("header");
    (header, lines.collect())
}

fn sum(rows: &[&Value], field: &str) -> u64 {
    rows.iter().map(|r| r[field].as_u64().unwrap_or(0)).sum()
}

/// Where a test reads how many ops fell in the first `t` seconds of
/// writing and how many after.
#[derive(Clone, Copy)]
enum Halves {
    /// The time series' rows (`field` of each): the series starts with
    /// the writing.
    Series,
    /// The history's invocations, from the first one: a target whose
    /// start-up is in the series' first rows (Maelstrom's nodes start
    /// after the series does, so its rows are offset by their start-up).
    History,
}

fn halves(how: Halves, out: &Path, rows: &[Value], field: &str, t: f64) -> (u64, u64) {
    match how {
        Halves::Series => {
            let (first, second) = split(rows, t);
            (sum(&first, field), sum(&second, field))
        }
        Halves::History => {
            let ops = converge::history::jsonl::read_history(&out.join("history.jsonl"))
                .expect("history")
                .history
                .ops;
            let from = ops.iter().map(|o| o.invoke_ns).min().unwrap_or(0);
            let cut = from + (t * 1e9) as u64;
            let a = ops.iter().filter(|o| o.invoke_ns < cut).count() as u64;
            (a, ops.len() as u64 - a)
        }
    }
}

/// Rows of the first `t` seconds and those after them (a row's `t_s` ends
/// its interval, a hair past the whole second).
fn split(rows: &[Value], t: f64) -> (Vec<&Value>, Vec<&Value>) {
    rows.iter()
        .partition(|r| r["t_s"].as_f64().unwrap_or(0.0) <= t + 0.5)
}

fn run(args: &[&str], out: &Path) -> Out {
    finish(converge().arg("run").args(args).arg("--out").arg(out))
}

fn http(args: &[&str], out: &Path) -> Out {
    let config = example("http-serve-counter-ok.toml");
    let mut all = vec![
        config.to_str().expect("path"),
        "--nemesis",
        "none",
        "--seed",
        "3",
    ];
    all.extend_from_slice(args);
    run(&all, out)
}

fn sql(args: &[&str], out: &Path) -> Out {
    let scenario = example("sql-counter-upsert-ok.toml");
    let mut all = vec![
        "--scenario",
        scenario.to_str().expect("path"),
        "--database-url",
        "",
        "--seed",
        "3",
        // The scenario's op count would end the run before the stages do.
        "--ops",
        "100000000",
    ];
    all.extend_from_slice(args);
    run(&all, out)
}

/// Closed model, 2 writers for 3 s then a ramp to 10 over 3 s (6 on
/// average), each thinking 50 ms: the second half completes at least
/// twice the ops of the first (ideally three times), and the writers
/// column reaches the last stage's target.
fn closed_ramp(run: impl Fn(&[&str], &Path) -> Out, how: Halves, out: &Path) {
    run(
        &[
            "--load",
            "closed",
            "--writers",
            "2",
            "--think-time",
            "50ms",
            "--stage",
            "3s:2",
            "--stage",
            "3s:10",
        ],
        out,
    )
    .no_panic()
    .expect_code(0);
    let (header, rows) = series(out);
    assert_eq!(header["load"]["model"], "closed", "{header}");
    let (a, b) = halves(how, out, &rows, "completed", 3.0);
    assert!(a > 0, "{rows:#?}");
    assert!(
        b >= 2 * a,
        "the ramp to 10 writers did not double the rate: {a} then {b}"
    );
    let peak = rows.iter().filter_map(|r| r["writers"].as_u64()).max();
    assert!(
        peak >= Some(9),
        "writers never reached the target: {peak:?}"
    );
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["verdict"], "valid", "{report:#}");
}

/// Open model, 20 ops/s for 3 s then a ramp to 80 ops/s over 3 s: 60
/// then 150 arrivals. The second half starts between 1.8 and 3.2 times
/// the ops of the first (ideally 2.5), nothing is dropped with 16
/// writers, and the total is within 15% of the 210 the shape asks for.
fn open_ramp(run: impl Fn(&[&str], &Path) -> Out, how: Halves, out: &Path) {
    run(
        &[
            "--load",
            "open",
            "--rate",
            "20",
            "--max-writers",
            "16",
            "--writers",
            "2",
            "--stage",
            "3s:20",
            "--stage",
            "3s:80",
        ],
        out,
    )
    .no_panic()
    .expect_code(0);
    let (header, rows) = series(out);
    assert_eq!(header["load"]["model"], "open", "{header}");
    let (a, b) = halves(how, out, &rows, "started", 3.0);
    let ratio = b as f64 / a.max(1) as f64;
    assert!(
        (1.8..=3.2).contains(&ratio),
        "{a} then {b} started: {rows:#?}"
    );
    let total = a + b;
    assert!(
        (178..=242).contains(&total),
        "{total} started, 210 asked for"
    );
    let all: Vec<&Value> = rows.iter().collect();
    assert_eq!(sum(&all, "dropped"), 0, "{rows:#?}");
    // report.json carries the same load: 20 ops/s for 3 s, then 20 → 80
    // over 3 s is 210 arrivals in 6 s, 35 ops/s asked for on average.
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json"),
    )
    .expect("report.json parses");
    let load = &report["load"];
    assert_eq!(load["model"], "open", "{load}");
    assert_eq!(load["clock"], "wall", "{load}");
    assert_eq!(load["target_rate"].as_f64(), Some(35.0), "{load}");
    assert_eq!(
        load["dropped"].as_u64(),
        Some(sum(&all, "dropped")),
        "{load}"
    );
    assert_eq!(load["stages"].as_array().map(Vec::len), Some(2), "{load}");
    // Achieved is per second of writing (6 s here), not of the whole
    // series, which adds the target's start-up and the final phase: the
    // target keeps up (nothing dropped), so it is the asked-for 35 ± 15%.
    assert!(
        load["achieved_rate"]
            .as_f64()
            .is_some_and(|r| (29.75..=40.25).contains(&r)),
        "{load}"
    );
    assert!(
        report["memory"]["converge"]["peak_mb"].as_f64().is_some(),
        "converge's memory comes from the series: {}",
        report["memory"]
    );
}

#[test]
fn http_closed_ramp_follows_the_stages() {
    let dir = tempfile::tempdir().expect("temp dir");
    closed_ramp(http, Halves::Series, &dir.path().join("out"));
}

#[test]
fn http_open_ramp_follows_the_stages() {
    let dir = tempfile::tempdir().expect("temp dir");
    open_ramp(http, Halves::Series, &dir.path().join("out"));
}

#[test]
fn sql_closed_ramp_follows_the_stages() {
    let dir = tempfile::tempdir().expect("temp dir");
    closed_ramp(sql, Halves::Series, &dir.path().join("out"));
}

#[test]
fn sql_open_ramp_follows_the_stages() {
    let dir = tempfile::tempdir().expect("temp dir");
    open_ramp(sql, Halves::Series, &dir.path().join("out"));
}

#[test]
fn sql_writers_share_one_budget_until_the_end() {
    // 8 writers, 400 ops: the budget is claimed op by op, so every writer
    // keeps writing until it is spent (no writer owns a fixed share).
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let scenario = example("sql-counter-upsert-ok.toml");
    run(
        &[
            "--scenario",
            scenario.to_str().expect("path"),
            "--database-url",
            "",
            "--writers",
            "8",
            "--ops",
            "400",
            "--seed",
            "5",
        ],
        &out,
    )
    .no_panic()
    .expect_code(0);
    let history = converge::history::jsonl::read_history(&out.join("history.jsonl"))
        .expect("history")
        .history;
    assert_eq!(history.ops.len(), 400, "the budget is the op count");
}

/// A counter service over plain HTTP/1.1 (keep-alive) that answers every
/// request received while `stalled` says so one second late.
struct Stalling {
    url: String,
}

impl Stalling {
    /// Stalls requests that arrive between `from` and `from + 1 s` after
    /// the first request.
    fn start(from: Duration) -> Stalling {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let value = Arc::new(AtomicI64::new(0));
        let first: Arc<std::sync::OnceLock<Instant>> = Arc::new(std::sync::OnceLock::new());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (value, first) = (value.clone(), first.clone());
                std::thread::spawn(move || serve(stream, &value, &first, from));
            }
        });
        Stalling { url }
    }
}

fn serve(
    stream: TcpStream,
    value: &AtomicI64,
    first: &std::sync::OnceLock<Instant>,
    from: Duration,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim();
            if header.is_empty() {
                break;
            }
            if let Some((name, v)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let since = first.get_or_init(Instant::now).elapsed();
        if since >= from && since < from + Duration::from_secs(1) {
            std::thread::sleep(from + Duration::from_secs(1) - since);
        }
        let answer = if line.starts_with("POST") {
            let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            value.fetch_add(doc["delta"].as_i64().unwrap_or(0), Ordering::SeqCst);
            "{}".to_string()
        } else {
            format!("{{\"value\":{}}}", value.load(Ordering::SeqCst))
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// An http config for the stalling service (one replica, one key).
fn stalling_config(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("stall.toml");
    std::fs::write(
        &path,
        format!(
            r#"workload = "g-counter"
keys = 1
replicas = ["{url}"]
timeout_ms = 5000
quiet_window_ms = 200
settle_limit_ms = 5000

[ops.increment]
method = "POST"
path = "/inc/{{key}}"
body = {{ delta = "{{delta}}" }}

[ops.read]
method = "GET"
path = "/value/{{key}}"
value = "/value"
"#
        ),
    )
    .expect("write config");
    path
}

fn stall_run(model: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = Stalling::start(Duration::from_secs(2));
    let config = stalling_config(dir.path(), &service.url);
    let out = dir.path().join("out");
    let mut args = vec![
        "--target",
        "http",
        "--http-config",
        config.to_str().expect("path"),
        "--nemesis",
        "none",
        "--read-ratio",
        "0",
        "--duration",
        "5s",
        "--seed",
        "9",
    ];
    args.extend_from_slice(model);
    run(&args, &out).no_panic().expect_code(0);
    series(&out).1
}

fn p99(row: &Value) -> Option<f64> {
    row["latency_ms"]["p99"].as_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn a_stall_shows_in_the_open_models_p99() {
    let rows = stall_run(&[
        "--load",
        "open",
        "--rate",
        "50",
        "--max-writers",
        "200",
        "--writers",
        "4",
    ]);
    let all: Vec<&Value> = rows.iter().collect();
    assert_eq!(
        sum(&all, "dropped"),
        0,
        "200 writers cover a 1 s stall at 50/s"
    );
    let p99s: Vec<f64> = rows.iter().filter_map(p99).collect();
    let worst = p99s.iter().copied().fold(0.0, f64::max);
    let typical = median(p99s.clone());
    // The ops that arrived during the stall waited for it: their latency,
    // from the intended start, is a large part of the second.
    assert!(
        worst >= 10.0 * typical.max(1.0),
        "no stall in p99 (worst {worst} ms, typical {typical} ms): {rows:#?}"
    );
    // Arrivals kept coming during the stall: no second without starts.
    let (_, body) = split(&rows, 0.0);
    assert!(
        body.iter().take(4).all(|r| r["started"].as_u64() > Some(0)),
        "{rows:#?}"
    );
}

#[test]
fn a_stall_shows_as_fewer_completions_in_the_closed_model() {
    let rows = stall_run(&["--writers", "4", "--think-time", "20ms"]);
    let inner: Vec<u64> = rows
        .iter()
        .filter(|r| {
            let t = r["t_s"].as_f64().unwrap_or(0.0);
            t > 0.5 && t < 5.0
        })
        .map(|r| r["completed"].as_u64().unwrap_or(0))
        .collect();
    let least = inner.iter().copied().min().unwrap_or(0);
    let typical = median(inner.iter().map(|&c| c as f64).collect()) as u64;
    assert!(
        least * 2 < typical,
        "the stalled second did not complete fewer ops: {inner:?}"
    );
}

#[test]
fn an_exhausted_pool_counts_dropped_arrivals() {
    let rows = stall_run(&[
        "--load",
        "open",
        "--rate",
        "50",
        "--max-writers",
        "2",
        "--writers",
        "1",
    ]);
    let all: Vec<&Value> = rows.iter().collect();
    let dropped = sum(&all, "dropped");
    // Two writers stuck for a second while 50 arrivals come: most drop.
    assert!(dropped >= 20, "{dropped} dropped: {rows:#?}");
    let peak = rows.iter().filter_map(|r| r["writers"].as_u64()).max();
    assert!(
        peak <= Some(2),
        "the pool grew past --max-writers: {peak:?}"
    );
}

/// Maelstrom's reference g-counter on 3 nodes, no faults (the caller
/// checks for python3).
fn maelstrom(args: &[&str], out: &Path) -> Out {
    let node = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("nodes")
        .join("g-counter.py");
    let mut all = vec![
        "--target",
        "maelstrom",
        "--bin",
        node.to_str().expect("path"),
        "--workload",
        "g-counter",
        "--nodes",
        "3",
        "--nemesis",
        "none",
        "--seed",
        "3",
    ];
    all.extend_from_slice(args);
    run(&all, out)
}

#[test]
fn maelstrom_closed_ramp_follows_the_stages() {
    if !common::python3() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    closed_ramp(maelstrom, Halves::History, &dir.path().join("out"));
}

#[test]
fn maelstrom_open_ramp_follows_the_stages() {
    if !common::python3() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    open_ramp(maelstrom, Halves::History, &dir.path().join("out"));
}

#[test]
fn maelstrom_ends_at_its_op_budget() {
    if !common::python3() {
        return;
    }
    // Maelstrom's default shape (100 requests/s over 10 clients) with an
    // op budget and no time bound: the run ends at exactly 40 ops.
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    maelstrom(&["--ops", "40"], &out).no_panic().expect_code(0);
    let history = converge::history::jsonl::read_history(&out.join("history.jsonl"))
        .expect("history")
        .history;
    assert_eq!(history.ops.len(), 40, "the budget is the op count");
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["verdict"], "valid", "{report:#}");
}

#[test]
fn maelstroms_exhausted_pool_counts_dropped_arrivals() {
    if !common::python3() {
        return;
    }
    // One client, every op an add that a peer must acknowledge over a
    // 50 ms link (two hops or more: at most 10 ops/s), 50 arrivals/s for
    // 2 s: most of the 100 arrivals find the client busy.
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    maelstrom(
        &[
            "--load",
            "open",
            "--rate",
            "50",
            "--max-writers",
            "1",
            "--writers",
            "1",
            "--duration",
            "2s",
            "--read-ratio",
            "0",
            "--latency",
            "50",
            "--latency-dist",
            "constant",
        ],
        &out,
    )
    .no_panic()
    .expect_code(0);
    let rows = series(&out).1;
    let all: Vec<&Value> = rows.iter().collect();
    let dropped = sum(&all, "dropped");
    assert!(dropped >= 20, "{dropped} dropped: {rows:#?}");
    let peak = rows.iter().filter_map(|r| r["writers"].as_u64()).max();
    assert!(
        peak <= Some(1),
        "the pool grew past --max-writers: {peak:?}"
    );
    let report = read_json(&out.join("report.json"));
    assert_eq!(
        report["load"]["dropped"].as_u64(),
        Some(dropped),
        "{report:#}"
    );
    assert_eq!(
        report["load"]["writers_peak"].as_u64(),
        Some(1),
        "{report:#}"
    );
}

#[test]
fn maelstrom_refuses_a_shape_that_cannot_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    run(
        &[
            "--target",
            "maelstrom",
            "--load",
            "closed",
            "--rate",
            "5",
            "--bin",
            "/bin/true",
        ],
        &dir.path().join("out"),
    )
    .no_panic()
    .expect_code(3)
    .mentions("open model");
}
