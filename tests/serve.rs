//! `converge serve`: the reference CRDT service, talked to over HTTP.
//! Replication is polled for (no fixed sleeps decide a verdict); the
//! end-to-end runs against it live in `tests/http_target.rs`.

mod common;

use common::BIN;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `converge serve` child, killed when dropped.
struct Serve {
    child: Child,
    urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--port", "0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start converge serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut urls = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("serve output");
            if let Some((_, url)) = line.split_once(" listening on ") {
                urls.push(url.trim().to_string());
            }
            let want: usize = args
                .windows(2)
                .find(|w| w[0] == "--replicas")
                .map_or(3, |w| w[1].parse().expect("--replicas N"));
            if urls.len() == want {
                break;
            }
        }
        assert!(!urls.is_empty(), "converge serve printed no replica URL");
        Serve {
            child,
            urls,
            _dir: dir,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .expect("client")
}

async fn post(url: &str, body: Value, key: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(k) = key {
        request = request.header("Idempotency-Key", k);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let text = response.text().await.expect("body");
    (
        status,
        replayed,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(url: &str) -> Value {
    let text = client()
        .get(url)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

/// Polls until every replica returns `want` at `path` (pointer `at`); panics
/// with what they returned after a generous bound.
async fn until_all(serve: &Serve, path: &str, at: &str, want: &Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = Vec::new();
        for url in &serve.urls {
            seen.push(get(&format!("{url}{path}")).await.pointer(at).cloned());
        }
        if seen.iter().all(|v| v.as_ref() == Some(want)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replicas never all returned {want} at {path}{at}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_with_the_same_key_applies_once_and_replays_its_answer() {
    let serve = Serve::start(&["--replicas", "2"]);
    let url = format!("{}/counters/c/increment", serve.urls[0]);
    let first = post(&url, json!({"delta": 5}), Some("op-1")).await;
    let again = post(&url, json!({"delta": 5}), Some("op-1")).await;
    assert_eq!(first.0, 200);
    assert_eq!(first.1, None);
    assert_eq!(again.1.as_deref(), Some("true"), "the retry is a replay");
    assert_eq!(first.2, again.2, "a replay returns the same answer");
    post(&url, json!({"delta": -2}), Some("op-2")).await;
    until_all(&serve, "/counters/c", "/value", &json!(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_retry_fault_applies_a_retry_twice() {
    let serve = Serve::start(&["--replicas", "1", "--fault", "non-idempotent-retry"]);
    let url = format!("{}/counters/c/increment", serve.urls[0]);
    post(&url, json!({"delta": 5}), Some("op-1")).await;
    post(&url, json!({"delta": 5}), Some("op-1")).await;
    until_all(&serve, "/counters/c", "/value", &json!(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn or_set_remove_wins_only_over_adds_it_saw() {
    let serve = Serve::start(&["--replicas", "2"]);
    let (a, b) = (&serve.urls[0], &serve.urls[1]);
    post(&format!("{a}/sets/s/add"), json!({"element": 1}), None).await;
    until_all(&serve, "/sets/s", "/elements", &json!([1])).await;
    // Replica b removes the add it saw while a adds 1 again concurrently:
    // the new add survives (add wins), 2 is added and stays.
    let mut blocked = post(
        &format!("{a}/admin/partition"),
        json!({"blocked": [1]}),
        None,
    )
    .await;
    assert_eq!(blocked.0, 200);
    blocked = post(
        &format!("{b}/admin/partition"),
        json!({"blocked": [0]}),
        None,
    )
    .await;
    assert_eq!(blocked.0, 200);
    post(&format!("{b}/sets/s/remove"), json!({"element": 1}), None).await;
    post(&format!("{a}/sets/s/add"), json!({"element": 1}), None).await;
    post(&format!("{a}/sets/s/add"), json!({"element": 2}), None).await;
    assert_eq!(get(&format!("{b}/sets/s")).await["elements"], json!([]));
    for url in [a, b] {
        post(&format!("{url}/admin/heal"), json!({}), None).await;
    }
    until_all(&serve, "/sets/s", "/elements", &json!([1, 2])).await;
}

/// Replicas a and b partitioned; a adds 1, b adds 2 and removes 3 (which
/// only a has added); then heal. Returns once each replica's clock has
/// seen the other's writes, i.e. anti-entropy ran both ways.
async fn concurrent_two_phase_updates(serve: &Serve) {
    let (a, b) = (&serve.urls[0], &serve.urls[1]);
    post(&format!("{a}/2p-sets/s/add"), json!({"element": 3}), None).await;
    until_all(serve, "/2p-sets/s", "/elements", &json!([3])).await;
    post(
        &format!("{a}/admin/partition"),
        json!({"blocked": [1]}),
        None,
    )
    .await;
    post(
        &format!("{b}/admin/partition"),
        json!({"blocked": [0]}),
        None,
    )
    .await;
    for (url, path, element) in [(a, "add", 1), (b, "add", 2), (b, "remove", 3)] {
        let (status, _, _) = post(
            &format!("{url}/2p-sets/s/{path}"),
            json!({ "element": element }),
            None,
        )
        .await;
        assert_eq!(status, 200);
    }
    for url in [a, b] {
        post(&format!("{url}/admin/heal"), json!({}), None).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ca, cb) = (
            get(&format!("{a}/replication/clock")).await,
            get(&format!("{b}/replication/clock")).await,
        );
        if ca["1"] == cb["1"] && ca["0"] == cb["0"] {
            return;
        }
        assert!(Instant::now() < deadline, "no sync after heal: {ca} {cb}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_set_merges_concurrent_adds_and_a_remove_is_for_good() {
    let serve = Serve::start(&["--replicas", "2"]);
    concurrent_two_phase_updates(&serve).await;
    until_all(&serve, "/2p-sets/s", "/elements", &json!([1, 2])).await;
    // Adding a removed element again does not bring it back.
    post(
        &format!("{}/2p-sets/s/add", serve.urls[0]),
        json!({"element": 3}),
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    until_all(&serve, "/2p-sets/s", "/elements", &json!([1, 2])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_merge_fault_drops_a_concurrent_add() {
    let serve = Serve::start(&["--replicas", "2", "--fault", "overwrite-merge"]);
    concurrent_two_phase_updates(&serve).await;
    // Both replicas have pulled from each other: a correct merge holds
    // [1, 2] everywhere (previous test); the overwrite lost an add.
    let mut seen = Vec::new();
    for url in &serve.urls {
        seen.push(get(&format!("{url}/2p-sets/s")).await["elements"].clone());
    }
    assert!(seen.iter().any(|v| v != &json!([1, 2])), "{seen:?}");
}

async fn concurrent_mv_writes(serve: &Serve) -> Value {
    let (a, b) = (&serve.urls[0], &serve.urls[1]);
    post(
        &format!("{a}/admin/partition"),
        json!({"blocked": [1]}),
        None,
    )
    .await;
    post(
        &format!("{b}/admin/partition"),
        json!({"blocked": [0]}),
        None,
    )
    .await;
    post(
        &format!("{a}/registers/mv/r"),
        json!({"value": 1, "context": {}}),
        None,
    )
    .await;
    post(
        &format!("{b}/registers/mv/r"),
        json!({"value": 2, "context": {}}),
        None,
    )
    .await;
    for url in [a, b] {
        post(&format!("{url}/admin/heal"), json!({}), None).await;
    }
    // Both writes reached both replicas once their clocks say so.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = get(&format!("{a}/registers/mv/r")).await;
        let other = get(&format!("{b}/registers/mv/r")).await;
        let both = json!({"0": 1, "1": 1});
        if read["context"] == both && other["context"] == both {
            return read["values"].clone();
        }
        assert!(Instant::now() < deadline, "never synced: {read} {other}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mv_register_keeps_concurrent_siblings_and_a_write_with_their_context_replaces_them() {
    let serve = Serve::start(&["--replicas", "2"]);
    assert_eq!(concurrent_mv_writes(&serve).await, json!([1, 2]));
    let a = &serve.urls[0];
    let context = get(&format!("{a}/registers/mv/r")).await["context"].clone();
    post(
        &format!("{a}/registers/mv/r"),
        json!({"value": 3, "context": context}),
        None,
    )
    .await;
    until_all(&serve, "/registers/mv/r", "/values", &json!([3])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sibling_drop_fault_loses_a_concurrent_sibling() {
    let serve = Serve::start(&["--replicas", "2", "--fault", "sibling-drop"]);
    let values = concurrent_mv_writes(&serve).await;
    assert_eq!(values.as_array().map(Vec::len), Some(1), "{values}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_replica_catches_up_after_heal_unless_anti_entropy_dies() {
    for (fault, heals) in [(None, true), (Some("no-anti-entropy"), false)] {
        let mut args = vec!["--replicas", "2"];
        if let Some(f) = fault {
            args.extend(["--fault", f]);
        }
        let serve = Serve::start(&args);
        let (a, b) = (&serve.urls[0], &serve.urls[1]);
        post(
            &format!("{a}/admin/partition"),
            json!({"blocked": [1]}),
            None,
        )
        .await;
        let refused = post(
            &format!("{a}/replication/pull"),
            json!({"from": 1, "since": {}}),
            None,
        )
        .await;
        assert_eq!(refused.0, 503, "a partitioned replica refuses its peer");
        post(
            &format!("{a}/counters/c/increment"),
            json!({"delta": 7}),
            None,
        )
        .await;
        post(&format!("{a}/admin/heal"), json!({}), None).await;
        post(&format!("{b}/admin/heal"), json!({}), None).await;
        post(
            &format!("{b}/counters/c/increment"),
            json!({"delta": 1}),
            None,
        )
        .await;
        if heals {
            until_all(&serve, "/counters/c", "/value", &json!(8)).await;
        } else {
            // b never was partitioned and still pulls a's 7, but a stopped
            // pulling: it never learns b's 1.
            let deadline = Instant::now() + Duration::from_secs(20);
            while get(&format!("{b}/counters/c")).await["value"] != json!(8) {
                assert!(Instant::now() < deadline, "b never pulled from a");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let state = get(&format!("{a}/admin/state")).await;
            assert_eq!(state["syncing"], json!(false), "{state}");
            assert_eq!(get(&format!("{a}/counters/c")).await["value"], json!(7));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_4xx_with_a_json_error_and_health_answers() {
    let serve = Serve::start(&["--replicas", "1"]);
    let url = &serve.urls[0];
    assert_eq!(get(&format!("{url}/health")).await["status"], json!("ok"));
    let (status, _, _) = post(
        &format!("{url}/counters/c/increment"),
        json!({"delta": "x"}),
        None,
    )
    .await;
    assert!((400..500).contains(&status), "{status}");
    let (status, _, _) = post(
        &format!("{url}/counters/c/increment"),
        json!({"delta": 1, "extra": 2}),
        None,
    )
    .await;
    assert!((400..500).contains(&status), "{status}");
    let lww = post(&format!("{url}/registers/lww/l"), json!({"value": 9}), None).await;
    assert!(lww.2["ts"].as_u64().is_some(), "{:?}", lww.2);
    assert_eq!(
        get(&format!("{url}/registers/lww/l")).await["value"],
        json!(9)
    );
}

#[test]
fn serve_stops_cleanly_on_sigterm_and_rejects_bad_flags() {
    let mut serve = Serve::start(&["--replicas", "1"]);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(serve.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = serve.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{status}");
    let out = common::cli(["serve", "--database-url", "mysql://x/y"]);
    out.expect_code(3).mentions("postgres://");
    let out = common::cli(["serve", "--replicas", "0"]);
    out.expect_code(3).mentions("--replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_replicates_between_schemas() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let prefix = format!("converge_test_serve_{}", std::process::id());
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--replicas",
            "2",
            "--port",
            "0",
            "--reset",
            "--database-url",
        ])
        .arg(&url)
        .args(["--schema-prefix", &prefix])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start converge serve");
    let mut urls = Vec::new();
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line.expect("output");
        if let Some((_, u)) = line.split_once(" listening on ") {
            urls.push(u.trim().to_string());
        }
        if urls.len() == 2 {
            break;
        }
    }
    if urls.len() < 2 {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!(
            "converge serve on Postgres did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let serve = Serve {
        child,
        urls,
        _dir: tempfile::tempdir().expect("temp dir"),
    };
    let (a, b) = (&serve.urls[0], &serve.urls[1]);
    post(
        &format!("{a}/counters/c/increment"),
        json!({"delta": 4}),
        Some("k"),
    )
    .await;
    post(
        &format!("{a}/counters/c/increment"),
        json!({"delta": 4}),
        Some("k"),
    )
    .await;
    post(&format!("{b}/sets/s/add"), json!({"element": 5}), None).await;
    until_all(&serve, "/counters/c", "/value", &json!(4)).await;
    until_all(&serve, "/sets/s", "/elements", &json!([5])).await;
    drop(serve);
    common::drop_serve_schemas(&url, &prefix, 2);
}

#[test]
fn every_route_is_in_the_openapi_description() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let api = std::fs::read_to_string(root.join("src/serve/api.rs")).expect("api.rs");
    let doc = std::fs::read_to_string(root.join("docs/openapi.yaml")).expect("openapi.yaml");
    let routes: Vec<&str> = api
        .split(".route(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(routes.len() >= 10, "routes not found in api.rs: {routes:?}");
    for route in routes {
        assert!(
            doc.contains(&format!("\n  {route}:\n")),
            "{route} is served but not described in docs/openapi.yaml"
        );
    }
}

/// Increments `serve` from 8 closed-loop writers for `secs` seconds (at
/// most 100,000 requests) while a time series watches its process; returns
/// the service's memory figures and the writes it acknowledged.
async fn soak(serve: &Serve, secs: u64) -> (converge::series::MemoryFigures, u64) {
    use converge::series::{Completion, SeriesHeader, SeriesRecorder, TargetProbe};
    let dir = tempfile::tempdir().expect("temp dir");
    let rec = SeriesRecorder::start(dir.path(), SeriesHeader::wall(json!({"model": "closed"})))
        .expect("series");
    rec.set_target(TargetProbe::Pid(serve.child.id()));
    rec.set_writers(8);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let (rec, url) = (
            rec.clone(),
            format!(
                "{}/counters/c{}/increment",
                serve.urls[w as usize % 3],
                w % 3
            ),
        );
        writers.push(tokio::spawn(async move {
            let client = client();
            for i in 0..12_500u64 {
                if Instant::now() >= deadline {
                    break;
                }
                rec.started();
                let began = Instant::now();
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("Idempotency-Key", format!("soak-{w}-{i}"))
                    .body(r#"{"delta": 1}"#)
                    .send()
                    .await;
                let outcome = match sent {
                    Ok(r) if r.status().is_success() => Completion::Ok,
                    Ok(_) => Completion::Fail,
                    Err(_) => Completion::Info,
                };
                rec.completed(outcome, began.elapsed());
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let summary = rec.finish().expect("series");
    let figures = summary.target_memory.expect("the service was measured");
    (figures, summary.completed)
}

/// A soak against `--fault leak-memory` shows a leak slope the gate fails
/// on; the correct service, under the same load, passes the same gate.
/// The gate is half the leak the fault must cause at the rate reached
/// (`LEAK_BYTES` per write), so it holds on a slow or a fast machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaking_service_fails_the_leak_slope_gate_and_the_correct_one_passes() {
    let secs = 15;
    let leaky = Serve::start(&["--replicas", "3", "--fault", "leak-memory"]);
    let (leak, leak_writes) = soak(&leaky, secs).await;
    drop(leaky);
    let correct = Serve::start(&["--replicas", "3"]);
    let (fine, fine_writes) = soak(&correct, secs).await;
    drop(correct);
    let mb_per_min = |writes: u64| {
        writes as f64 / secs as f64 * 60.0 * converge::serve::api::LEAK_BYTES as f64
            / (1024.0 * 1024.0)
    };
    let gate = mb_per_min(leak_writes.min(fine_writes)) / 2.0;
    eprintln!(
        "leaky: {leak:?} after {leak_writes} writes; correct: {fine:?} after {fine_writes} writes; gate {gate:.1} MB/min"
    );
    assert!(
        leak_writes > 1000 && fine_writes > 1000,
        "too few writes to judge"
    );
    let leak_slope = leak.leak_slope_mb_per_min.expect("15 rows give a slope");
    let fine_slope = fine.leak_slope_mb_per_min.expect("15 rows give a slope");
    assert!(
        leak_slope > gate,
        "the leak must fail the gate: {leak_slope} <= {gate}"
    );
    assert!(
        fine_slope <= gate,
        "the correct service must pass: {fine_slope} > {gate}"
    );
    assert!(leak.growth_mb > fine.growth_mb);
}
