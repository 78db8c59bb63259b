//! `junit.xml`: a test case per check (and per SLO gate or suite
//! criterion), the finding as the failure message. A check that judged
//! nothing is `skipped` (never a pass); one that judged but could not
//! decide is an `error` of type `unknown`.

use crate::report::Report;
use crate::verdict::Verdict;
use serde_json::Value;
use std::fmt::Write as _;

/// Escapes text for XML content and attribute values, dropping the
/// control characters XML 1.0 cannot carry.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Outcome of one test case.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed, with a message and details.
    Failure(String, String),
    /// Could not decide.
    Unknown(String),
    /// Not judged.
    Skipped(String),
}

/// One test case.
#[derive(Clone, Debug)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// Its outcome.
    pub outcome: Outcome,
}

/// One `<testsuite>`.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Its name (the run or scenario).
    pub name: String,
    /// Its test cases.
    pub cases: Vec<Case>,
}

/// The test cases of a run: its checks, then its SLO gates.
pub fn suite_for_run(name: &str, report: &Report) -> Suite {
    let mut cases: Vec<Case> = report
        .checks
        .iter()
        .map(|c| {
            let summary = c
                .details
                .get("summary")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let outcome = if c.not_judged {
                Outcome::Skipped(format!("not judged (never a pass): {summary}"))
            } else {
                match c.verdict {
                    Verdict::Valid => Outcome::Pass,
                    Verdict::Unknown => Outcome::Unknown(summary),
                    Verdict::Invalid => {
                        let findings = c
                            .details
                            .get("findings")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        let first = findings
                            .first()
                            .and_then(|f| f.get("message"))
                            .and_then(Value::as_str)
                            .unwrap_or(&summary)
                            .to_string();
                        let mut body = format!("{summary}\n");
                        for f in &findings {
                            let _ = writeln!(body, "{f}");
                        }
                        if !report.reproduce.is_empty() {
                            let _ = writeln!(body, "reproduce: {}", report.reproduce);
                        }
                        Outcome::Failure(first, body)
                    }
                }
            };
            Case {
                name: c.name.clone(),
                outcome,
            }
        })
        .collect();
    cases.extend(report.slo.iter().map(|g| {
        let actual = g
            .actual
            .map_or("not measured".into(), |a| format!("{a:.4}"));
        Case {
            name: format!("slo {}", g.metric),
            outcome: match g.status {
                Verdict::Valid => Outcome::Pass,
                Verdict::Invalid => Outcome::Failure(
                    format!("{}: {actual}, target {}", g.metric, g.target),
                    String::new(),
                ),
                Verdict::Unknown => Outcome::Unknown(format!("{}: {actual}", g.metric)),
            },
        }
    }));
    Suite {
        name: name.to_string(),
        cases,
    }
}

/// The `junit.xml` document.
pub fn document(name: &str, suites: &[Suite]) -> String {
    let count = |f: &dyn Fn(&Outcome) -> bool| -> usize {
        suites
            .iter()
            .flat_map(|s| &s.cases)
            .filter(|c| f(&c.outcome))
            .count()
    };
    let tests = count(&|_| true);
    let failures = count(&|o| matches!(o, Outcome::Failure(..)));
    let errors = count(&|o| matches!(o, Outcome::Unknown(_)));
    let skipped = count(&|o| matches!(o, Outcome::Skipped(_)));
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">",
        esc(name)
    );
    for s in suites {
        let n = |f: &dyn Fn(&Outcome) -> bool| s.cases.iter().filter(|c| f(&c.outcome)).count();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
            esc(&s.name),
            s.cases.len(),
            n(&|o| matches!(o, Outcome::Failure(..))),
            n(&|o| matches!(o, Outcome::Unknown(_))),
            n(&|o| matches!(o, Outcome::Skipped(_)))
        );
        for c in &s.cases {
            let open = format!(
                "    <testcase classname=\"converge.{}\" name=\"{}\"",
                esc(&s.name),
                esc(&c.name)
            );
            match &c.outcome {
                Outcome::Pass => {
                    let _ = writeln!(x, "{open}/>");
                }
                Outcome::Failure(message, body) => {
                    let _ = writeln!(
                        x,
                        "{open}>\n      <failure type=\"invalid\" message=\"{}\">{}</failure>\n    </testcase>",
                        esc(message),
                        esc(body).replace("&#10;", "\n")
                    );
                }
                Outcome::Unknown(message) => {
                    let _ = writeln!(
                        x,
                        "{open}>\n      <error type=\"unknown\" message=\"{}\"/>\n    </testcase>",
                        esc(message)
                    );
                }
                Outcome::Skipped(message) => {
                    let _ = writeln!(
                        x,
                        "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>",
                        esc(message)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_xml_cannot_hold_raw() {
        assert_eq!(
            esc("a<b & \"c\" 'd'\u{1}"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;?"
        );
    }

    #[test]
    fn counts_each_outcome() {
        let suite = Suite {
            name: "s".into(),
            cases: vec![
                Case {
                    name: "a".into(),
                    outcome: Outcome::Pass,
                },
                Case {
                    name: "b".into(),
                    outcome: Outcome::Failure("lost <1>".into(), "x".into()),
                },
                Case {
                    name: "c".into(),
                    outcome: Outcome::Skipped("no".into()),
                },
            ],
        };
        let x = document("converge", &[suite]);
        assert!(
            x.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""),
            "{x}"
        );
        assert!(x.contains("message=\"lost &lt;1&gt;\""), "{x}");
    }
}
