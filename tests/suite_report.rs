//! Suites and rendered reports: `converge suite` against `converge serve`,
//! acceptance.md carrying the figures of each scenario's report.json,
//! junit.xml read by a real XML parser, report.html with one SVG per chart
//! (and opened in headless Chromium), `converge report DIR` re-rendering.

mod common;

use common::{cli, converge, finish, read_json, requirement, run_into};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The cells of the Markdown table row whose first cell is `first`, in the
/// section titled `section`.
fn md_row(md: &str, section: &str, first: &str) -> Vec<String> {
    let body = md
        .split(&format!("## {section}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no section {section}\n{md}"));
    let body = body.split("\n## ").next().unwrap_or("");
    body.lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in {section}\n{md}"))
}

fn num(cell: &str) -> f64 {
    cell.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|e| panic!("'{cell}' is not a number: {e}"))
}

fn close(cell: &str, want: f64, digits: i32) {
    let got = num(cell);
    assert!(
        (got - want).abs() <= 0.51 * 10f64.powi(-digits),
        "table shows {got}, report.json has {want}"
    );
}

/// A copy of an example suite with the timing criteria made loose, so the
/// outcome depends on correctness, not on how busy the machine is.
fn loose_suite(dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(example(name)).expect("example suite");
    let text = text
        .replace("p95_ms = 300", "p95_ms = 600000")
        .replace("{ p95_ms = 500 }", "{ p95_ms = 600000 }")
        .replace("_rss_mb = 512", "_rss_mb = 100000")
        .replace("convergence_ms = 10000", "convergence_ms = 600000")
        .replace("error_rate = 0.05", "error_rate = 0.5");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write suite");
    path
}

/// (test case name, the tag of its outcome element: failure, error, skipped).
type CaseOutcome = (String, Option<String>);

fn junit(path: &Path) -> Vec<(String, Vec<CaseOutcome>)> {
    let text = std::fs::read_to_string(path).expect("junit.xml");
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("junit.xml is not XML: {e}\n{text}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    root.children()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|s| {
            let cases = s
                .children()
                .filter(|n| n.has_tag_name("testcase"))
                .map(|c| {
                    let outcome = c
                        .children()
                        .find(|n| n.is_element())
                        .map(|n| n.tag_name().name().to_string());
                    (c.attribute("name").unwrap_or("").to_string(), outcome)
                })
                .collect();
            (s.attribute("name").unwrap_or("").to_string(), cases)
        })
        .collect()
}

#[test]
fn a_suite_of_two_serve_scenarios_fills_the_acceptance_tables_from_their_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let suite = loose_suite(dir.path(), "suite-serve-quick.toml");
    let out = dir.path().join("out");
    let result = finish(converge().arg("suite").arg(&suite).arg("--out").arg(&out));
    result.no_panic().expect_code(0);
    let md = std::fs::read_to_string(out.join("acceptance.md")).expect("acceptance.md");
    assert!(md.contains("Overall status: **✅ PASSED**"), "{md}");
    // 1 (all checks valid) + 7 criteria set in the suite.
    assert!(md.contains("**8/8 criteria met**"), "{md}");
    let mut ids = Vec::new();
    for name in ["light", "busy"] {
        let report = read_json(&out.join(name).join("report.json"));
        let f = |p: &str| common::field(&report, p).clone();
        let col = if name == "light" { 1 } else { 2 };
        let per = |metric: &str| md_row(&md, "Per-scenario results", metric)[col].clone();
        assert_eq!(num(&per("requests")), f("counts.ops").as_f64().unwrap());
        close(
            &per("p95 latency (ms)"),
            f("latency_ms.p95").as_f64().unwrap(),
            3,
        );
        close(
            &per("p99 latency (ms)"),
            f("latency_ms.p99").as_f64().unwrap(),
            3,
        );
        close(
            &per("average latency (ms)"),
            f("latency_ms.mean").as_f64().expect("a mean latency"),
            3,
        );
        assert_eq!(
            num(&per("data-loss events")),
            f("counts.data_loss_events").as_f64().unwrap()
        );
        assert_eq!(
            num(&per("idempotency violations")),
            f("counts.idempotency_violations").as_f64().unwrap()
        );
        let ok = f("counts.ok").as_f64().unwrap() / f("counts.ops").as_f64().unwrap();
        close(&per("success rate"), ok * 100.0, 2);
        let lat = md_row(&md, "Latency distribution (ms)", name);
        assert_eq!(num(&lat[1]), f("counts.ops").as_f64().unwrap());
        for (i, p) in ["p50", "p95", "p99", "max"].iter().enumerate() {
            close(
                &lat[2 + i],
                f(&format!("latency_ms.{p}")).as_f64().unwrap(),
                3,
            );
        }
        let thr = md_row(&md, "Throughput", name);
        let actual = report
            .get("load")
            .and_then(|l| l.get("achieved_rate"))
            .and_then(Value::as_f64)
            .unwrap_or_else(|| f("throughput_ops_s").as_f64().unwrap());
        close(&thr[3], actual, 1);
        let env = md_row(&md, "Environment", name);
        assert_eq!(env[2], f("seed").to_string(), "seed of {name}");
        let memory = md_row(&md, "Memory (MB)", name);
        assert_eq!(memory[1], "converge");
        // Each scenario's own outputs are there too.
        for file in ["report.html", "junit.xml", "summary.md", "console.log"] {
            assert!(out.join(name).join(file).is_file(), "{name}/{file}");
        }
        let checks: Vec<String> = f("checks")
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        ids.push((name, checks));
    }
    // The critical metrics table carries the worst scenario's p95.
    let worst = ["light", "busy"]
        .iter()
        .map(|n| {
            let r = read_json(&out.join(n).join("report.json"));
            (common::field(&r, "latency_ms.p95").as_f64().unwrap(), *n)
        })
        .fold((f64::MIN, ""), |a, b| if b.0 > a.0 { b } else { a });
    let row = md_row(&md, "Critical metrics", "P95 latency (ms)");
    assert_eq!(row[2], format!("{:.3} ({})", worst.0, worst.1), "{md}");
    assert!(row[3].contains("met"), "{row:?}");

    let suites = junit(&out.join("junit.xml"));
    assert_eq!(
        suites.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["light", "busy"]
    );
    for ((name, cases), (want_name, checks)) in suites.iter().zip(&ids) {
        assert_eq!(name, want_name);
        for check in checks {
            assert!(
                cases.iter().any(|c| &c.0 == check),
                "no testcase {check} in {name}: {cases:?}"
            );
        }
        let crit = cases
            .iter()
            .find(|c| c.0 == "criterion data_loss")
            .expect("data_loss case");
        assert_eq!(crit.1, None, "data_loss passed: no child element");
        assert!(
            cases.iter().all(|c| c.1.as_deref() != Some("failure")),
            "{cases:?}"
        );
    }

    // report.html: self-contained, one chart per series where a series exists.
    for name in ["light", "busy"] {
        let page = std::fs::read_to_string(out.join(name).join("report.html")).unwrap();
        assert_self_contained(&page);
        if out.join(name).join("timeseries.jsonl").is_file() {
            assert_eq!(page.matches("<svg").count(), 4, "{name}: one svg per chart");
        } else {
            assert!(page
                .contains("Charts not drawn: not measured (this run wrote no timeseries.jsonl)"));
        }
    }
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("8/8 criteria met"), "suite page");
    // Re-rendering from the folder gives the same acceptance report.
    std::fs::remove_file(out.join("acceptance.md")).unwrap();
    cli(["report".as_ref(), out.as_os_str()]).expect_code(0);
    let again = std::fs::read_to_string(out.join("acceptance.md")).unwrap();
    assert_eq!(again, md);
}

fn assert_self_contained(page: &str) {
    assert!(page.starts_with("<!DOCTYPE html>"));
    for bad in ["<script", "<link", " src=", "url(", "@import"] {
        assert!(!page.contains(bad), "report.html loads something: {bad}");
    }
}

#[test]
fn the_faulty_serve_suite_fails_on_the_data_loss_criterion_with_evidence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let suite = loose_suite(dir.path(), "suite-serve-faulty.toml");
    let out = dir.path().join("out");
    let result = finish(converge().arg("suite").arg(&suite).arg("--out").arg(&out));
    result.no_panic().expect_code(1);
    let md = std::fs::read_to_string(out.join("acceptance.md")).unwrap();
    assert!(md.contains("❌ FAILED"), "{md}");
    let row = md_row(&md, "Critical metrics", "CRDT data loss (events)");
    assert!(row[3].contains("missed"), "{row:?}");
    assert!(num(row[2].split(' ').next().unwrap()) > 0.0, "{row:?}");
    // The criteria that have nothing to do with the bug are met.
    let idem = md_row(&md, "Critical metrics", "idempotency violations");
    assert!(idem[3].contains("met"), "{idem:?}");
    assert!(md.contains("/report.html)"), "evidence linked\n{md}");
    let suites = junit(&out.join("junit.xml"));
    assert!(suites.iter().any(|(_, cases)| cases
        .iter()
        .any(|c| c.0 == "criterion data_loss" && c.1.as_deref() == Some("failure"))));
    assert!(suites.iter().any(|(_, cases)| cases
        .iter()
        .any(|c| c.0 == "data-loss" && c.1.as_deref() == Some("failure"))));
}

fn in_process_suite(dir: &Path, stop: bool) -> PathBuf {
    let path = dir.join("suite.toml");
    std::fs::write(
        &path,
        format!(
            "[suite]\nname = \"inproc\"\nstop_on_failure = {stop}\n\n[criteria]\ndata_loss = 0\n\n\
             [[scenarios]]\nname = \"bad\"\n[scenarios.run]\nfault = \"sum-merge-counter\"\nops = 2000\nseed = 3\nno_shrink = true\n\n\
             [[scenarios]]\nname = \"good\"\n[scenarios.run]\nworkload = \"g-counter\"\nops = 2000\nseed = 3\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn stop_on_failure_leaves_the_rest_not_run_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = cli(["list", "faults"]);
    assert!(
        faults.stdout.contains("sum-merge-counter"),
        "test setup: the fault is gone\n{}",
        faults.dump()
    );
    for stop in [true, false] {
        let out = dir.path().join(format!("out-{stop}"));
        let suite = in_process_suite(dir.path(), stop);
        finish(converge().arg("suite").arg(&suite).arg("--out").arg(&out))
            .no_panic()
            .expect_code(1);
        let md = std::fs::read_to_string(out.join("acceptance.md")).unwrap();
        let verdict = md_row(&md, "Per-scenario results", "verdict");
        assert_eq!(verdict[1], "invalid");
        if stop {
            assert!(
                verdict[2].starts_with("not measured (not run (stop_on_failure"),
                "{verdict:?}"
            );
            assert!(!out.join("good").join("report.json").exists());
        } else {
            assert_eq!(verdict[2], "valid");
        }
    }
}

#[test]
fn a_bad_suite_is_a_config_error_before_anything_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (text, needle) in [
        ("[suite]\n[[scenarios]]\nname = \"a\"\n[scenarios.run]\nops = 1\n[[scenarios]]\nname = \"a\"\n[scenarios.run]\nops = 1\n", "used twice"),
        ("[suite]\nbogus = 1\n", "bogus"),
        ("[suite]\n[[scenarios]]\nname = \"../x\"\n[scenarios.run]\nops = 1\n", "names a folder"),
        ("[suite]\n[[scenarios]]\nname = \"a\"\n[scenarios.run]\nwriterz = 1\n", "writerz"),
        ("[suite]\n[criteria]\np95_ms = -1\n[[scenarios]]\nname = \"a\"\n[scenarios.run]\nops = 1\n", "p95_ms"),
        ("[suite]\n", "no [[scenarios]]"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = dir.path().join("never");
        finish(converge().arg("suite").arg(&path).arg("--out").arg(&out))
            .no_panic()
            .expect_code(3)
            .stderr_mentions(needle);
        assert!(!out.exists(), "nothing ran for {text}");
    }
    cli(["report", dir.path().join("nothing-here").to_str().unwrap()])
        .no_panic()
        .expect_code(3);
    // `converge run SUITE` runs it as `converge suite` does (here: a suite
    // with nothing in it), and refuses run flags its scenarios own.
    let path = dir.path().join("s.toml");
    std::fs::write(&path, "[suite]\n").unwrap();
    cli(["run".as_ref(), path.as_os_str()])
        .expect_code(3)
        .stderr_mentions("no [[scenarios]]");
    cli([
        "run".as_ref(),
        path.as_os_str(),
        "--writers".as_ref(),
        "3".as_ref(),
    ])
    .expect_code(3)
    .stderr_mentions("--writers does not apply");
}

/// An in-process run, then a time series written through the real
/// writer (two stages, a partition window, both processes' RSS), then
/// `converge report DIR` renders it.
fn run_with_series(dir: &Path) -> PathBuf {
    use converge::series::{LatencyRow, Row, SeriesHeader, SeriesWriter, Usage};
    let out = dir.join("run");
    run_into(
        &out,
        &["--workload", "or-set", "--ops", "3000", "--seed", "5"],
    )
    .expect_code(0);
    let mut w = SeriesWriter::create(
        &out,
        &SeriesHeader {
            timeseries: 1,
            interval_s: 1.0,
            clock: "wall".into(),
            load: serde_json::json!({"model": "closed"}),
        },
    )
    .unwrap();
    for t in 1..=20u32 {
        let nemesis = match t {
            5 => vec!["partition start".to_string()],
            9 => vec!["heal".to_string()],
            _ => vec![],
        };
        w.row(&Row {
            t_s: t as f64,
            stage: Some(usize::from(t > 10)),
            started: 100,
            completed: 100,
            ok: 97,
            fail: 2,
            info: 1,
            dropped: 0,
            throughput: 100.0 + t as f64,
            latency_ms: Some(LatencyRow {
                p50: 1.0,
                p95: 2.0,
                p99: 3.0,
                max: 4.0,
            }),
            converge: Some(Usage {
                rss_mb: 50.0 + t as f64,
                cpu_pct: 10.0,
            }),
            target: Some(Usage {
                rss_mb: 80.0,
                cpu_pct: 5.0,
            }),
            writers: 4,
            nemesis,
        })
        .unwrap();
    }
    drop(w);
    // The series above replaces the run's own, from which report.json's
    // memory figures were computed: drop those so the page takes its
    // figures from this series, as it does for a report without them.
    let mut report = read_json(&out.join("report.json"));
    report["memory"]["converge"] = serde_json::Value::Null;
    std::fs::write(out.join("report.json"), report.to_string()).unwrap();
    cli(["report".as_ref(), out.as_os_str()]).expect_code(0);
    out
}

#[test]
fn report_html_has_one_svg_per_chart_and_report_rerenders_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run_with_series(dir.path());
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_self_contained(&page);
    assert_eq!(page.matches("<svg").count(), 4, "one svg per chart");
    for id in [
        "chart-throughput",
        "chart-latency",
        "chart-errors",
        "chart-rss",
    ] {
        assert!(page.contains(&format!("<figure id=\"{id}\"><svg")), "{id}");
    }
    assert!(page.contains("nemesis window"), "the partition is shaded");
    // Memory from the series: converge 51 -> 70 MB, 1 MB/s = 60 MB/min.
    // (The peak may be report.json's higher high-water mark; growth is report.json's.)
    let row = page
        .split("<tr><td>converge</td>")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("converge memory row");
    let cells: Vec<&str> = row
        .split("<td>")
        .filter_map(|c| c.strip_suffix("</td>"))
        .collect();
    // initial, peak, final, growth, leak slope
    assert_eq!(cells.len(), 5, "{row}");
    assert_eq!(
        (cells[0], cells[2], cells[4]),
        ("51.0", "70.0", "60.000"),
        "{row}"
    );
    assert!(num(cells[1]) >= 70.0, "peak at least the series' {row}");
    let report = read_json(&out.join("report.json"));
    let checks: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let suites = junit(&out.join("junit.xml"));
    assert_eq!(suites.len(), 1);
    let names: Vec<&str> = suites[0].1.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, checks);
    // Everything rendered comes back from the stored files alone.
    let json_before = std::fs::read_to_string(out.join("report.json")).unwrap();
    for f in ["report.html", "junit.xml", "summary.md", "report.md"] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    cli(["report".as_ref(), out.as_os_str()]).expect_code(0);
    for f in ["report.html", "junit.xml", "summary.md", "report.md"] {
        assert!(out.join(f).is_file(), "{f} re-rendered");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        json_before
    );
    assert_eq!(
        std::fs::read_to_string(out.join("report.html")).unwrap(),
        page
    );
}

/// Chromium's binary, after [`requirement`] has reported it missing.
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    requirement(
        found
            .is_none()
            .then(|| "chromium is not installed".to_string()),
    )
    .then_some(found)
    .flatten()
}

#[test]
fn report_html_renders_in_headless_chromium_with_every_chart() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run_with_series(dir.path());
    let page = out.join("report.html").canonicalize().unwrap();
    let profile = dir.path().join("chromium-profile");
    let dump = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    // A load error gives Chromium's own error page, not ours.
    assert!(dom.contains("converge report"), "page did not load:\n{dom}");
    for id in [
        "chart-throughput",
        "chart-latency",
        "chart-errors",
        "chart-rss",
    ] {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} missing"));
        assert!(
            dom[at..]
                .trim_start_matches(|c| c != '>')
                .get(1..)
                .is_some_and(|rest| rest.trim_start().starts_with("<svg")),
            "{id} has no svg in the DOM"
        );
    }
    assert_eq!(dom.matches("<svg").count(), 4);
    // A missing page is told apart (the test can fail).
    let missing = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}/nope.html", out.display()))
        .output()
        .expect("run chromium");
    assert!(!String::from_utf8_lossy(&missing.stdout).contains("converge report"));
}
