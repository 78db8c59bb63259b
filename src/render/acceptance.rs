//! A suite's outputs: `acceptance.md` (the acceptance report, every cell a
//! measured figure or "not measured (why)"), `report.html`, `junit.xml`
//! and `summary.md`, all from `suite.json` and the scenarios' folders.

use super::html::{self, esc};
use super::junit::{self, Case, Outcome};
use super::{fig, memory, memory_missing_why};
use crate::error::Result;
use crate::suite::{judge, read_scenario, trim_num, Judgement, Loaded, SuiteRecord, CRITERIA};
use crate::verdict::{Verdict, EXIT_TARGET_ERROR, EXIT_UNKNOWN, EXIT_USAGE};
use std::fmt::Write as _;
use std::path::Path;

/// A Markdown table read back: (section title, header cells, rows).
pub type MdTable<'a> = (&'a str, Vec<String>, Vec<Vec<String>>);

/// One scenario as the suite report sees it.
pub struct Scenario {
    /// Its record.
    pub record: crate::suite::ScenarioRecord,
    /// Its outputs, or why there are none.
    pub loaded: std::result::Result<Loaded, String>,
    /// Its judged criteria (empty when it has no report).
    pub judged: Vec<Judgement>,
}

/// The suite's overall result.
pub struct Outcomes {
    /// The scenarios.
    pub scenarios: Vec<Scenario>,
    /// Overall verdict.
    pub verdict: Verdict,
    /// Exit code: the verdict's, or 4 (3) when a scenario's target failed
    /// (its configuration was refused) and nothing was found invalid.
    pub exit_code: i32,
    /// (met, total) over the suite's criteria.
    pub met: (usize, usize),
}

/// Criterion name as the tables show it.
pub fn criterion_name(id: &str) -> &str {
    if id == "checks" {
        return "all checks valid";
    }
    CRITERIA.iter().find(|c| c.0 == id).map_or(id, |c| c.1)
}

/// Reads every scenario of a suite folder and judges it.
pub fn evaluate(record: &SuiteRecord, dir: &Path) -> Outcomes {
    let mut scenarios = Vec::new();
    let mut verdict = Verdict::Valid;
    let mut failed_code = None;
    for s in &record.scenarios {
        let loaded = match &s.not_run {
            Some(why) => Err(format!("not run ({why})")),
            None => read_scenario(&dir.join(&s.name)).map_err(|why| {
                format!(
                    "{why}; the run exited {} (see {}/console.log)",
                    s.exit_code.map_or("?".into(), |c| c.to_string()),
                    s.name
                )
            }),
        };
        let judged = match &loaded {
            Ok(l) => judge(l, &s.criteria),
            Err(_) => Vec::new(),
        };
        match &loaded {
            Ok(_) => {
                for j in &judged {
                    verdict = verdict.and(j.status);
                }
            }
            Err(_) => {
                verdict = verdict.and(Verdict::Unknown);
                if let Some(c @ (EXIT_USAGE | EXIT_TARGET_ERROR)) = s.exit_code {
                    failed_code = Some(failed_code.map_or(c, |f: i32| f.max(c)));
                }
            }
        }
        scenarios.push(Scenario {
            record: s.clone(),
            loaded,
            judged,
        });
    }
    let ids = criteria_ids(&scenarios);
    let met = ids
        .iter()
        .filter(|id| overall(&scenarios, id).0 == Verdict::Valid)
        .count();
    let exit_code = match (verdict, failed_code) {
        (Verdict::Invalid, _) => verdict.exit_code(),
        (_, Some(code)) => code,
        (Verdict::Unknown, None) => EXIT_UNKNOWN,
        (v, None) => v.exit_code(),
    };
    Outcomes {
        scenarios,
        verdict,
        exit_code,
        met: (met, ids.len()),
    }
}

/// Criterion ids any scenario is judged on, in table order (`checks` first).
fn criteria_ids(scenarios: &[Scenario]) -> Vec<&'static str> {
    let mut ids = vec!["checks"];
    for (id, _) in CRITERIA {
        if scenarios
            .iter()
            .any(|s| s.record.criteria.get(id).is_some())
        {
            ids.push(id);
        }
    }
    ids
}

/// A criterion over all scenarios: met only when met in every one; the
/// worst scenario's figure is the one shown.
fn overall<'a>(scenarios: &'a [Scenario], id: &str) -> (Verdict, Option<(&'a str, &'a Judgement)>) {
    let mut v = Verdict::Valid;
    let mut worst: Option<(&str, &Judgement)> = None;
    let mut any = false;
    for s in scenarios {
        let wants = id == "checks" || s.record.criteria.get(id).is_some();
        if !wants {
            continue;
        }
        match s.judged.iter().find(|j| j.id == id) {
            Some(j) => {
                any = true;
                v = v.and(j.status);
                let worse = worst.is_none_or(|(_, w)| {
                    j.status > w.status
                        || (j.status == w.status
                            && j.actual.unwrap_or(f64::INFINITY)
                                > w.actual.unwrap_or(f64::INFINITY))
                });
                if worse {
                    worst = Some((s.record.name.as_str(), j));
                }
            }
            None => v = v.and(Verdict::Unknown),
        }
    }
    if !any {
        v = Verdict::Unknown;
    }
    (v, worst)
}

fn status_cell(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "✅ met",
        Verdict::Invalid => "❌ missed",
        Verdict::Unknown => "❔ not measured",
    }
}

fn row(md: &mut String, cells: &[String]) {
    let _ = writeln!(md, "| {} |", cells.join(" | "));
}

fn header(md: &mut String, cells: &[&str]) {
    let _ = writeln!(
        md,
        "| {} |\n|{}",
        cells.join(" | "),
        "---|".repeat(cells.len())
    );
}

/// What a cell shows when a scenario left no report.
fn no_report(s: &Scenario) -> String {
    match &s.loaded {
        Err(why) => format!("not measured ({why})"),
        Ok(_) => String::new(),
    }
}

/// The critical metrics table: (criterion, target, actual, status) rows.
pub fn critical_rows(o: &Outcomes) -> Vec<[String; 4]> {
    criteria_ids(&o.scenarios)
        .into_iter()
        .map(|id| {
            let (v, worst) = overall(&o.scenarios, id);
            let targets: Vec<String> = {
                let mut t: Vec<String> = o
                    .scenarios
                    .iter()
                    .filter_map(|s| s.record.criteria.get(id).map(trim_num))
                    .collect();
                t.dedup();
                t
            };
            let target = if id == "checks" {
                "valid in every scenario".to_string()
            } else if targets.len() == 1 {
                format!("≤ {}", targets[0])
            } else {
                let per: Vec<String> = o
                    .scenarios
                    .iter()
                    .filter_map(|s| {
                        s.record
                            .criteria
                            .get(id)
                            .map(|t| format!("{}: ≤ {}", s.record.name, trim_num(t)))
                    })
                    .collect();
                per.join(", ")
            };
            let actual = match worst {
                Some((name, j)) => format!("{} ({name})", j.shown),
                None => "not measured (no scenario left a report)".into(),
            };
            [
                criterion_name(id).to_string(),
                target,
                actual,
                status_cell(v).to_string(),
            ]
        })
        .collect()
}

/// `acceptance.md`.
pub fn markdown(record: &SuiteRecord, o: &Outcomes) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Acceptance report: {}\n", record.name);
    let _ = writeln!(md, "## Executive summary\n");
    let word = match o.verdict {
        Verdict::Valid => "✅ PASSED",
        Verdict::Invalid => "❌ FAILED",
        Verdict::Unknown => "❔ UNDECIDED (something was not measured or not judged: never a pass)",
    };
    let _ = writeln!(
        md,
        "- Overall status: **{word}**\n- **{}/{} criteria met** over {} scenario(s)\n- Suite file: `{}`, started {}\n",
        o.met.0,
        o.met.1,
        o.scenarios.len(),
        record.file,
        record.started
    );
    let _ = writeln!(md, "## Critical metrics\n");
    header(
        &mut md,
        &["criterion", "target", "actual (worst scenario)", "status"],
    );
    for r in critical_rows(o) {
        row(&mut md, &r);
    }
    let _ = writeln!(md, "\n## Per-scenario results\n");
    let names: Vec<&str> = o.scenarios.iter().map(|s| s.record.name.as_str()).collect();
    let mut head = vec!["metric"];
    head.extend(names.iter());
    header(&mut md, &head);
    for (metric, cells) in per_scenario_rows(o) {
        let mut r = vec![metric.to_string()];
        r.extend(cells);
        row(&mut md, &r);
    }
    for s in &o.scenarios {
        if s.judged.iter().any(|j| j.status == Verdict::Invalid) {
            let _ = writeln!(md, "\n### {}: missed\n", s.record.name);
            for j in s.judged.iter().filter(|j| j.status == Verdict::Invalid) {
                let _ = writeln!(
                    md,
                    "- {}: {} (target {})",
                    criterion_name(j.id),
                    j.shown,
                    j.target
                );
            }
            if let Ok(l) = &s.loaded {
                for c in l
                    .report
                    .checks
                    .iter()
                    .filter(|c| c.verdict == Verdict::Invalid)
                {
                    if let Some(f) = c
                        .details
                        .get("findings")
                        .and_then(|f| f.as_array())
                        .and_then(|f| f.first())
                    {
                        let _ = writeln!(md, "- {} finding: `{}`", c.name, f);
                    }
                }
            }
            let _ = writeln!(
                md,
                "- evidence: [`{0}/report.html`]({0}/report.html), [`{0}/history.jsonl`]({0}/history.jsonl)",
                s.record.name
            );
        }
    }
    let _ = writeln!(md, "\n## Latency distribution (ms)\n");
    header(&mut md, &["scenario", "ops", "p50", "p95", "p99", "max"]);
    for s in &o.scenarios {
        let cells = match &s.loaded {
            Ok(l) if l.report.counts.ops > 0 => {
                let lat = &l.report.latency_ms;
                vec![
                    l.report.counts.ops.to_string(),
                    format!("{:.3}", lat.p50),
                    format!("{:.3}", lat.p95),
                    format!("{:.3}", lat.p99),
                    format!("{:.3}", lat.max),
                ]
            }
            Ok(l) => {
                let mut c = vec![l.report.counts.ops.to_string()];
                c.extend(std::iter::repeat_n(
                    "not measured (no operation completed)".to_string(),
                    4,
                ));
                c
            }
            Err(_) => std::iter::repeat_n(no_report(s), 5).collect(),
        };
        let mut r = vec![s.record.name.clone()];
        r.extend(cells);
        row(&mut md, &r);
    }
    let _ = writeln!(md, "\n## Throughput\n");
    header(
        &mut md,
        &[
            "scenario",
            "load model",
            "target rate (ops/s)",
            "actual rate (ops/s)",
            "efficiency",
        ],
    );
    for s in &o.scenarios {
        let mut r = vec![s.record.name.clone()];
        r.extend(throughput_cells(s));
        row(&mut md, &r);
    }
    let _ = writeln!(md, "\n## Memory (MB)\n");
    header(
        &mut md,
        &[
            "scenario",
            "process",
            "initial",
            "peak",
            "final",
            "growth",
            "leak slope (MB/min)",
        ],
    );
    for s in &o.scenarios {
        match &s.loaded {
            Ok(l) => {
                for cells in html::memory_rows(&l.value, &l.series) {
                    let mut r = vec![s.record.name.clone()];
                    r.extend(cells);
                    row(&mut md, &r);
                }
            }
            Err(_) => {
                let mut r = vec![s.record.name.clone(), "-".into()];
                r.extend(std::iter::repeat_n(no_report(s), 5));
                row(&mut md, &r);
            }
        }
    }
    let _ = writeln!(md, "\n## Environment\n");
    let e = &record.environment;
    let unknown = |v: &Option<String>| {
        v.clone()
            .unwrap_or_else(|| "not measured (not readable from /proc)".into())
    };
    let _ = writeln!(
        md,
        "- converge {}\n- machine: {}, {} CPU(s) ({}), {} MB memory",
        e.converge_version,
        unknown(&e.os),
        e.cpus.map_or("?".into(), |c| c.to_string()),
        unknown(&e.cpu),
        fig(e.memory_mb, 0, "not readable from /proc")
    );
    let _ = writeln!(md);
    header(
        &mut md,
        &["scenario", "target", "seed", "exit", "reproduce"],
    );
    for s in &o.scenarios {
        let (target, seed, reproduce) = match &s.loaded {
            Ok(l) => (
                l.report.target.clone(),
                l.report.seed.to_string(),
                if l.report.reproduce.is_empty() {
                    s.record.command.join(" ")
                } else {
                    l.report.reproduce.clone()
                },
            ),
            Err(_) => (no_report(s), no_report(s), s.record.command.join(" ")),
        };
        row(
            &mut md,
            &[
                s.record.name.clone(),
                target,
                seed,
                s.record
                    .exit_code
                    .map_or("not run".into(), |c| c.to_string()),
                format!("`{}`", reproduce.replace('|', "\\|")),
            ],
        );
    }
    md
}

/// Target rate, actual rate and efficiency of one scenario.
fn throughput_cells(s: &Scenario) -> Vec<String> {
    let Ok(l) = &s.loaded else {
        return std::iter::repeat_n(no_report(s), 4).collect();
    };
    let (model, target_rate, achieved, _) = super::load(&l.value);
    let actual = achieved.unwrap_or(l.report.throughput_ops_s);
    let no_target = match model.as_deref() {
        Some("closed") => "not measured (closed model: no target rate)",
        Some(_) => "not measured (no target rate recorded)",
        None => "not measured (no load block in report.json)",
    };
    vec![
        model.unwrap_or_else(|| "not measured (no load block)".into()),
        fig(
            target_rate.filter(|t| *t > 0.0),
            1,
            no_target
                .trim_start_matches("not measured (")
                .trim_end_matches(')'),
        ),
        format!("{actual:.1}"),
        match target_rate.filter(|t| *t > 0.0) {
            Some(t) => format!("{:.1}%", actual / t * 100.0),
            None => no_target.to_string(),
        },
    ]
}

/// Per-scenario rows: (metric, one cell per scenario).
pub fn per_scenario_rows(o: &Outcomes) -> Vec<(&'static str, Vec<String>)> {
    type Cell = fn(&Loaded) -> String;
    let rows: [(&'static str, Cell); 13] = [
        ("verdict", |l| l.report.verdict.as_str().to_string()),
        ("requests", |l| l.report.counts.ops.to_string()),
        ("success rate", |l| {
            if l.report.counts.ops == 0 {
                "not measured (no operation)".into()
            } else {
                format!(
                    "{:.2}%",
                    l.report.counts.ok as f64 / l.report.counts.ops as f64 * 100.0
                )
            }
        }),
        ("average latency (ms)", |l| match l.report.latency_ms.mean {
            Some(mean) => format!("{mean:.3}"),
            None => "not measured (no op measured, or a report.json without a mean)".into(),
        }),
        ("p95 latency (ms)", |l| {
            format!("{:.3}", l.report.latency_ms.p95)
        }),
        ("p99 latency (ms)", |l| {
            format!("{:.3}", l.report.latency_ms.p99)
        }),
        ("dropped requests", |l| match super::load(&l.value).3 {
            Some(d) => d.to_string(),
            None => "not measured (this run's report.json has no load block)".into(),
        }),
        ("converge memory growth (MB)", |l| {
            let m = memory(&l.value, &l.series.rows, false);
            match m.growth {
                Some(g) => format!("{g:.1}"),
                None => memory_missing_why(&l.value, &l.series, false),
            }
        }),
        ("conflicts detected", |l| l.report.conflicts_shown()),
        ("data-loss events", |l| {
            figure_of(l, "data-loss", l.report.counts.data_loss_events)
        }),
        ("idempotency violations", |l| {
            figure_of(l, "idempotency", l.report.counts.idempotency_violations)
        }),
        ("convergence time (ms)", |l| {
            fig(
                l.report.convergence_ms,
                2,
                "replicas were never seen equal after the heal",
            )
        }),
        ("throughput (ops/s)", |l| {
            format!("{:.1}", l.report.throughput_ops_s)
        }),
    ];
    rows.iter()
        .map(|(name, f)| {
            (
                *name,
                o.scenarios
                    .iter()
                    .map(|s| match &s.loaded {
                        Ok(l) => f(l),
                        Err(_) => no_report(s),
                    })
                    .collect(),
            )
        })
        .collect()
}

/// A check's count, or why it is not a measurement.
fn figure_of(l: &Loaded, check: &str, n: u64) -> String {
    match l.report.checks.iter().find(|c| c.name == check) {
        None => format!("not measured (the {check} check did not run)"),
        Some(c) if c.not_judged => format!("not measured (the {check} check judged nothing)"),
        Some(c) if c.verdict == Verdict::Unknown => {
            format!("not measured (the {check} check could not decide)")
        }
        Some(_) => n.to_string(),
    }
}

/// The suite's `report.html`: the acceptance tables, then per scenario its
/// charts and a link to its own report.
pub fn html_page(record: &SuiteRecord, o: &Outcomes, md_tables: &[MdTable<'_>]) -> String {
    let mut h = html::open(&format!("converge suite {}", record.name));
    let _ = writeln!(
        h,
        "<h1>Suite {}: <span class=\"{}\">{}</span></h1><p><b>{}/{} criteria met</b> over {} scenario(s). Suite file <code>{}</code>, started {}.</p>",
        esc(&record.name),
        o.verdict.as_str(),
        o.verdict.as_str().to_uppercase(),
        o.met.0,
        o.met.1,
        o.scenarios.len(),
        esc(&record.file),
        esc(&record.started)
    );
    h.push_str("<p>Full text: <a href=\"acceptance.md\">acceptance.md</a> · <a href=\"junit.xml\">junit.xml</a></p>\n");
    let crit: Vec<Vec<String>> = critical_rows(o)
        .into_iter()
        .map(|r| {
            let mut r = r.to_vec();
            r[3] = match r[3].as_str() {
                s if s.contains("met") && !s.contains("not") => "pass".into(),
                s if s.contains("missed") => "FAIL".into(),
                _ => "unknown".into(),
            };
            r
        })
        .collect();
    h.push_str("<h2 id=\"acceptance\">Critical metrics</h2>\n");
    h.push_str(&html::table(
        &["criterion", "target", "actual (worst scenario)", "status"],
        &crit,
    ));
    for (title, head, rows) in md_tables {
        let _ = writeln!(h, "<h2>{}</h2>", esc(title));
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        h.push_str(&html::table(&head, rows));
    }
    for s in &o.scenarios {
        let _ = writeln!(
            h,
            "<h2 id=\"scenario-{0}\">Scenario {0}</h2><p><a href=\"{0}/report.html\">{0}/report.html</a></p>",
            esc(&s.record.name)
        );
        match &s.loaded {
            Ok(l) => {
                let judged: Vec<Vec<String>> = s
                    .judged
                    .iter()
                    .map(|j| {
                        vec![
                            criterion_name(j.id).to_string(),
                            j.target.clone(),
                            j.shown.clone(),
                            match j.status {
                                Verdict::Valid => "pass",
                                Verdict::Invalid => "FAIL",
                                Verdict::Unknown => "unknown",
                            }
                            .to_string(),
                        ]
                    })
                    .collect();
                h.push_str(&html::table(
                    &["criterion", "target", "actual", "status"],
                    &judged,
                ));
                let why = memory_missing_why(&l.value, &l.series, true);
                h.push_str(
                    &html::charts_section(&l.series, &why)
                        .replace("<h2 id=\"charts\">Over time</h2>", "<h3>Over time</h3>"),
                );
            }
            Err(why) => {
                let _ = writeln!(h, "<p class=\"missing\">{}</p>", esc(why));
            }
        }
    }
    h.push_str(html::CLOSE);
    h
}

/// The suite's JUnit: one test suite per scenario, a case per check and
/// per criterion.
pub fn junit_doc(record: &SuiteRecord, o: &Outcomes) -> String {
    let suites: Vec<junit::Suite> = o
        .scenarios
        .iter()
        .map(|s| {
            let mut suite = match &s.loaded {
                Ok(l) => junit::suite_for_run(&s.record.name, &l.report),
                Err(why) => junit::Suite {
                    name: s.record.name.clone(),
                    cases: vec![Case {
                        name: "run".into(),
                        outcome: if s.record.not_run.is_some() {
                            Outcome::Skipped(why.clone())
                        } else {
                            Outcome::Unknown(why.clone())
                        },
                    }],
                },
            };
            suite
                .cases
                .extend(s.judged.iter().filter(|j| j.id != "checks").map(|j| Case {
                    name: format!("criterion {}", j.id),
                    outcome: match j.status {
                        Verdict::Valid => Outcome::Pass,
                        Verdict::Invalid => Outcome::Failure(
                            format!(
                                "{}: {} (target {})",
                                criterion_name(j.id),
                                j.shown,
                                j.target
                            ),
                            String::new(),
                        ),
                        Verdict::Unknown => {
                            Outcome::Unknown(format!("{}: {}", criterion_name(j.id), j.shown))
                        }
                    },
                }));
            suite
        })
        .collect();
    junit::document(&record.name, &suites)
}

/// Writes `acceptance.md`, `report.html`, `junit.xml` and `summary.md` of
/// the suite in `dir`; returns the outcomes.
pub fn write_suite(record: &SuiteRecord, dir: &Path) -> Result<Outcomes> {
    let o = evaluate(record, dir);
    let md = markdown(record, &o);
    super::write(dir, "acceptance.md", &md)?;
    // The HTML shows the same tables as the Markdown: parse them back out
    // of it, so the two can never disagree.
    let tables = md_tables(&md);
    super::write(dir, "report.html", &html_page(record, &o, &tables))?;
    super::write(dir, "junit.xml", &junit_doc(record, &o))?;
    let summary = md
        .split("\n## Latency distribution")
        .next()
        .unwrap_or(&md)
        .to_string()
        + "\nDetails: `acceptance.md`, `report.html`.\n";
    super::write(dir, "summary.md", &summary)?;
    Ok(o)
}

/// The `##` sections after the critical metrics table, as (title, header, rows).
fn md_tables(md: &str) -> Vec<MdTable<'_>> {
    let mut out = Vec::new();
    for section in md.split("\n## ").skip(1) {
        let title = section.lines().next().unwrap_or("");
        if matches!(title, "Critical metrics" | "Executive summary") {
            continue;
        }
        let lines: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .collect();
        if lines.len() < 2 {
            continue;
        }
        let cells = |l: &str| -> Vec<String> {
            l.trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').replace("\\|", "|"))
                .collect()
        };
        let head = cells(lines[0]);
        let rows = lines[2..].iter().map(|l| cells(l)).collect();
        out.push((title, head, rows));
    }
    out
}
