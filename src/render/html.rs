//! `report.html`: one self-contained page (inline CSS and SVG, no script,
//! no network, no other file needed to show it).

use super::charts::{self, Span};
use super::{fig, memory, memory_missing_why, Series};
use crate::report::Report;
use crate::verdict::Verdict;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}\
h1 .valid{color:#2a7d2a}h1 .invalid{color:#b22}h1 .unknown{color:#a67c00}\
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.pass{background:#e6f4e6}td.FAIL{background:#fbe3e3}td.unknown{background:#fdf5d8}\
figure{margin:8px 0 20px}figure svg{max-width:100%;height:auto;border:1px solid #ddd}\
.missing{color:#8a6d00;font-style:italic}code{background:#f5f5f5;padding:1px 3px}\
li.finding{font-family:monospace;font-size:13px;margin-bottom:4px}";

/// The page's head and opening body.
pub fn open(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    )
}

/// Closes the page.
pub const CLOSE: &str = "</body></html>\n";

fn verdict_span(v: Verdict) -> String {
    format!(
        "<span class=\"{0}\">{1}</span>",
        v.as_str(),
        v.as_str().to_uppercase()
    )
}

/// The charts of a series: one `<figure>` with one `<svg>` per chart, or a
/// paragraph saying why a chart is missing.
pub fn charts_section(series: &Series, why_rss_target: &str) -> String {
    let mut h = String::from("<h2 id=\"charts\">Over time</h2>\n");
    if let Some(why) = &series.missing {
        let _ = writeln!(
            h,
            "<p class=\"missing\">Charts not drawn: not measured ({}).</p>",
            esc(why)
        );
        return h;
    }
    let spans: Vec<Span> = charts::spans(&series.rows);
    if spans.iter().any(|s| s.nemesis) {
        h.push_str("<p>Shaded red: nemesis windows. Grey bands: load stages.</p>\n");
    } else if !spans.is_empty() {
        h.push_str("<p>Grey bands: load stages. No nemesis event was recorded.</p>\n");
    }
    for chart in charts::run_charts(&series.rows) {
        let _ = write!(h, "<figure id=\"{}\">", chart.id);
        match charts::draw(&chart, &spans) {
            Some(svg) => {
                h.push_str(&svg);
                let empty: Vec<&str> = chart
                    .lines
                    .iter()
                    .filter(|l| l.points.is_empty())
                    .map(|l| l.name)
                    .collect();
                if chart.id == "chart-rss" && empty.contains(&"target") {
                    let _ = write!(
                        h,
                        "<figcaption class=\"missing\">target RSS: {}</figcaption>",
                        esc(why_rss_target)
                    );
                }
            }
            None => {
                let _ = write!(
                    h,
                    "<p class=\"missing\">{}: not measured (no sample in timeseries.jsonl)</p>",
                    esc(chart.title)
                );
            }
        }
        h.push_str("</figure>\n");
    }
    h
}

/// A table from a header row and body rows; cells are escaped, and a cell
/// of the `status` column gets its class.
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut h = String::from("<table><tr>");
    for c in head {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>\n");
    let status_col = head.iter().position(|c| *c == "status");
    for r in rows {
        h.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            if Some(i) == status_col {
                let _ = write!(h, "<td class=\"{0}\">{0}</td>", esc(c));
            } else {
                let _ = write!(h, "<td>{}</td>", esc(c));
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    h
}

/// Checks with judged/total and their findings, each finding's ops linked
/// to their lines in `history.jsonl`.
pub fn checks_section(report: &Report, dir: &Path) -> String {
    let mut h = String::from("<h2 id=\"checks\">Checks</h2>\n");
    let rows: Vec<Vec<String>> = report
        .checks
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.shown_verdict().to_string(),
                c.judged_cell(),
                c.details
                    .get("summary")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ]
        })
        .collect();
    h.push_str(&table(&["check", "verdict", "judged", "summary"], &rows));
    let history = dir.join("history.jsonl");
    for c in report
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Invalid)
    {
        let findings = c
            .details
            .get("findings")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = c
            .details
            .get("findings_total")
            .and_then(Value::as_u64)
            .unwrap_or(findings.len() as u64);
        let _ = writeln!(
            h,
            "<h3 id=\"findings-{0}\">{0}: {1} finding(s), {2} shown</h3><ul>",
            esc(&c.name),
            total,
            findings.len()
        );
        let indices: Vec<usize> = findings
            .iter()
            .flat_map(|f| {
                f.get("ops")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .map(|i| i as usize)
            })
            .collect();
        let lines = super::op_lines(&history, &indices);
        for f in &findings {
            let message = f.get("message").and_then(Value::as_str).unwrap_or("");
            let mut extra = String::new();
            for key in ["key", "replica", "expected", "actual"] {
                if let Some(v) = f.get(key).filter(|v| !v.is_null()) {
                    let shown = v.as_str().map_or_else(|| v.to_string(), String::from);
                    let _ = write!(extra, " {key}={shown}");
                }
            }
            let ops: Vec<String> = f
                .get("ops")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .map(|i| match lines.get(&(i as usize)) {
                    Some((id, inv, done)) => format!(
                        "op {id} (history.jsonl lines {}–{})",
                        inv.map_or("?".into(), |l| l.to_string()),
                        done.map_or("?".into(), |l| l.to_string())
                    ),
                    None => format!("op index {i} (not in history.jsonl)"),
                })
                .collect();
            let _ = writeln!(
                h,
                "<li class=\"finding\">{}{}{}</li>",
                esc(message),
                esc(&extra),
                if ops.is_empty() {
                    String::new()
                } else {
                    format!(
                        "<br>ops: <a href=\"history.jsonl\">{}</a>",
                        esc(&ops.join("; "))
                    )
                }
            );
        }
        h.push_str("</ul>\n");
    }
    if let Some(cx) = &report.counterexample {
        let _ = writeln!(
            h,
            "<h3 id=\"counterexample\">Minimal counterexample</h3><p>{} writers, {} ops, {} keys, nemesis <code>{}</code> still violate {} (after {} shrinking attempts).</p>\
<p>history: <a href=\"{}\"><code>{}</code></a><br>reproduce: <code>{}</code></p>",
            cx.writers,
            cx.ops,
            cx.keys,
            esc(&cx.nemesis),
            esc(&cx.violated.join(", ")),
            cx.attempts,
            esc(&relative_link(dir, &cx.history)),
            esc(&cx.history),
            esc(&cx.reproduce)
        );
    }
    h
}

/// A link to `path` relative to `dir` when it lies inside it.
fn relative_link(dir: &Path, path: &str) -> String {
    let p = Path::new(path);
    p.strip_prefix(dir)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| path.to_string())
}

/// HTML files `converge check --out DIR` left in the run folder (the
/// linearizability explanation), to link from the report.
fn linearizability_pages(dir: &Path) -> Vec<String> {
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".html") && n != "report.html")
        .collect();
    pages.sort();
    pages
}

/// The memory rows (process, initial, peak, final, growth, leak slope).
pub fn memory_rows(value: &Value, series: &Series) -> Vec<Vec<String>> {
    [("converge", false), ("target", true)]
        .into_iter()
        .map(|(name, target)| {
            let m = memory(value, &series.rows, target);
            let why = memory_missing_why(value, series, target);
            let why = why
                .trim_start_matches("not measured (")
                .trim_end_matches(')');
            vec![
                name.to_string(),
                fig(m.initial, 1, why),
                fig(m.peak, 1, why),
                fig(m.final_, 1, why),
                fig(m.growth, 1, why),
                fig(
                    m.leak_slope,
                    3,
                    if series.missing.is_none() && m.peak.is_some() {
                        "fewer than 5 RSS samples"
                    } else {
                        why
                    },
                ),
            ]
        })
        .collect()
}

/// The whole `report.html` of a run.
pub fn run_page(report: &Report, value: &Value, series: &Series, dir: &Path) -> String {
    let mut h = open(&format!(
        "converge {}: {} on {}",
        report.verdict, report.workload, report.target
    ));
    let _ = writeln!(
        h,
        "<h1>converge report: {}</h1>\n<p>workload <code>{}</code>, model <code>{}</code>{}, target <code>{}</code>; {} writers, {} replicas, {} keys, nemesis <code>{}</code>, seed <code>{}</code></p>\n<p>reproduce: <code>{}</code></p>\n<p>{}</p>",
        verdict_span(report.verdict),
        esc(&report.workload),
        esc(&report.model),
        if report.fault.is_some() { " (faulty variant)" } else { "" },
        esc(&report.target),
        report.writers,
        report.replicas,
        report.keys,
        esc(&report.nemesis),
        report.seed,
        esc(&report.reproduce),
        esc(&report.verdict_explained().replace("**", ""))
    );
    h.push_str("<p><a href=\"#acceptance\">acceptance</a> · <a href=\"#charts\">charts</a> · <a href=\"#checks\">checks</a> · <a href=\"#figures\">figures</a> · <a href=\"report.json\">report.json</a> · <a href=\"history.jsonl\">history.jsonl</a></p>\n");
    let _ = writeln!(h, "<h2 id=\"acceptance\">Acceptance</h2>");
    let rows: Vec<Vec<String>> = report
        .acceptance()
        .into_iter()
        .map(|(m, t, a, p)| vec![m, t, a, super::status_word(p).to_string()])
        .collect();
    h.push_str(&table(&["metric", "target", "actual", "status"], &rows));
    let target_why = memory_missing_why(value, series, true);
    h.push_str(&charts_section(series, &target_why));
    h.push_str(&checks_section(report, dir));
    let pages = linearizability_pages(dir);
    if !pages.is_empty() {
        h.push_str("<p>Linearizability explanation (from <code>converge check</code>): ");
        for p in &pages {
            let _ = write!(h, "<a href=\"{0}\">{0}</a> ", esc(p));
        }
        h.push_str("</p>\n");
    }
    h.push_str(&figures_section(report, value, series));
    if !report.nemesis_log.is_empty() {
        h.push_str("<h2>Nemesis</h2><ul>");
        for line in &report.nemesis_log {
            let _ = write!(h, "<li>{}</li>", esc(line));
        }
        h.push_str("</ul>\n");
    }
    h.push_str(CLOSE);
    h
}

/// Measured figures: counts, rates, latency, convergence, memory, load.
fn figures_section(report: &Report, value: &Value, series: &Series) -> String {
    let mut h = String::from("<h2 id=\"figures\">Figures</h2>\n");
    let l = &report.latency_ms;
    let (model, target_rate, achieved, dropped) = super::load(value);
    let no_load = "this run's report.json has no load block";
    let rows = vec![
        vec![
            "operations (ok / fail / info)".into(),
            format!(
                "{} ({} / {} / {})",
                report.counts.ops, report.counts.ok, report.counts.fail, report.counts.info
            ),
        ],
        vec![
            "throughput".into(),
            format!("{:.1} ops/s", report.throughput_ops_s),
        ],
        vec![
            "latency p50 / p95 / p99 / max".into(),
            format!(
                "{:.3} / {:.3} / {:.3} / {:.3} ms",
                l.p50, l.p95, l.p99, l.max
            ),
        ],
        vec!["error rate".into(), format!("{:.4}", report.error_rate)],
        vec![
            "convergence time after heal".into(),
            fig(
                report.convergence_ms,
                2,
                "replicas were never seen equal after the heal",
            ) + if report.convergence_ms.is_some() {
                " ms"
            } else {
                ""
            },
        ],
        vec!["conflicts".into(), report.conflicts_shown()],
        vec![
            "load model".into(),
            model.unwrap_or_else(|| format!("not measured ({no_load})")),
        ],
        vec!["target rate".into(), fig(target_rate, 1, no_load)],
        vec!["achieved rate".into(), fig(achieved, 1, no_load)],
        vec![
            "dropped arrivals".into(),
            dropped.map_or(format!("not measured ({no_load})"), |d| d.to_string()),
        ],
    ];
    h.push_str(&table(&["figure", "value"], &rows));
    h.push_str("<h3>Memory (MB)</h3>\n");
    h.push_str(&table(
        &[
            "process",
            "initial",
            "peak",
            "final",
            "growth",
            "leak slope MB/min",
        ],
        &memory_rows(value, series),
    ));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
