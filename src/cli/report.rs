//! `converge report DIR`: renders every output of a stored run or suite
//! folder again (report.md, report.html, junit.xml, summary.md, and a
//! suite's acceptance.md) from what it stored, without re-running it.

use crate::error::Error;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `converge report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run folder (with report.json) or a suite folder (with suite.json).
    pub dir: PathBuf,
}

/// Renders and returns the stored verdict's exit code.
pub fn execute(args: ReportArgs) -> anyhow::Result<i32> {
    let dir = &args.dir;
    let record_path = dir.join(crate::suite::RECORD);
    if record_path.exists() {
        let text = match std::fs::read_to_string(&record_path) {
            Ok(t) => t,
            Err(e) => return Ok(super::check::fail(&Error::io(&record_path, e))),
        };
        let record: crate::suite::SuiteRecord = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                return Ok(super::check::fail(&Error::Config(format!(
                    "{}: not a converge suite record: {e}",
                    record_path.display()
                ))))
            }
        };
        // Each scenario's own outputs first, then the suite's.
        for s in &record.scenarios {
            let sub = dir.join(&s.name);
            if sub.join("report.json").exists() {
                if let Err(e) = crate::render::rerender_run(&sub) {
                    return Ok(super::check::fail(&e));
                }
            }
        }
        return match crate::render::acceptance::write_suite(&record, dir) {
            Ok(o) => {
                println!("acceptance: {}", dir.join("acceptance.md").display());
                println!("report:     {}", dir.join("report.html").display());
                Ok(o.exit_code)
            }
            Err(e) => Ok(super::check::fail(&e)),
        };
    }
    if !dir.join("report.json").exists() {
        return Ok(super::check::fail(&Error::Config(format!(
            "{}: neither report.json (a run) nor suite.json (a suite) is there",
            dir.display()
        ))));
    }
    match crate::render::rerender_run(dir) {
        Ok(v) => {
            println!("report: {}", dir.join("report.html").display());
            Ok(v.exit_code())
        }
        Err(e) => Ok(super::check::fail(&e)),
    }
}
