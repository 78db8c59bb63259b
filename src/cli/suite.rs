//! `converge suite SUITE.toml`: runs a suite's scenarios in order, each as a
//! child `converge run` into its own folder, then writes the acceptance
//! report; the exit code is the suite's verdict.

use crate::error::Error;
use crate::suite::{self, Environment, ScenarioRecord, Source, SuiteRecord};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `converge suite`.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// The suite file (TOML with a `[suite]` table).
    pub file: PathBuf,
    /// Output folder (default: `reports/<suite>-<YYYYmmdd-HHMMSS>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs the suite and returns the exit code.
pub fn execute(args: SuiteArgs) -> anyhow::Result<i32> {
    let (file, prepared) = match suite::load(&args.file) {
        Ok(s) => s,
        Err(e) => return Ok(super::check::fail(&e)),
    };
    let name = file.suite.name.clone().unwrap_or_else(|| {
        args.file
            .file_stem()
            .map_or("suite".into(), |s| s.to_string_lossy().into_owned())
    });
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("reports").join(format!("{name}-{}", suite::utc_now(false)))
    });
    if out.join(suite::RECORD).exists() {
        return Ok(super::check::fail(&Error::Config(format!(
            "{} already holds a suite: give a new --out",
            out.display()
        ))));
    }
    if let Err(e) = std::fs::create_dir_all(&out) {
        return Ok(super::check::fail(&Error::io(&out, e)));
    }
    let exe = std::env::current_exe()?;
    let mut record = SuiteRecord {
        suite_version: 1,
        name,
        file: args.file.display().to_string(),
        criteria: file.criteria.clone(),
        stop_on_failure: file.suite.stop_on_failure,
        scenarios: Vec::new(),
        environment: Environment::here(),
        started: suite::utc_now(true),
    };
    let mut stopped: Option<String> = None;
    for p in &prepared {
        let dir = out.join(&p.name);
        let scenario_file = match &p.source {
            Source::File(f) => f.clone(),
            Source::Text(text) => {
                let f = dir.join("scenario.toml");
                let written = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&f, text));
                if let Err(e) = written {
                    return Ok(super::check::fail(&Error::io(&f, e)));
                }
                f
            }
        };
        let command = suite::child_command(&scenario_file, &dir);
        if let Some(why) = &stopped {
            eprintln!("scenario {}: not run ({why})", p.name);
            record.scenarios.push(ScenarioRecord {
                name: p.name.clone(),
                criteria: p.criteria.clone(),
                command,
                exit_code: None,
                not_run: Some(why.clone()),
                wall_s: None,
            });
            continue;
        }
        eprintln!("scenario {}: running into {}", p.name, dir.display());
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return Ok(super::check::fail(&Error::io(&dir, e)));
        }
        let log_path = dir.join("console.log");
        let log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e));
        let log = match log {
            Ok(l) => l,
            Err(e) => return Ok(super::check::fail(&e)),
        };
        let started = std::time::Instant::now();
        let status = std::process::Command::new(&exe)
            .args(&command[1..])
            .env("CI", "1")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status();
        let code = match status {
            Ok(s) => s.code().unwrap_or(crate::verdict::EXIT_TARGET_ERROR),
            Err(e) => {
                eprintln!("scenario {}: cannot start {}: {e}", p.name, exe.display());
                crate::verdict::EXIT_TARGET_ERROR
            }
        };
        let wall = started.elapsed().as_secs_f64();
        eprintln!("scenario {}: exit {code} after {wall:.1} s", p.name);
        record.scenarios.push(ScenarioRecord {
            name: p.name.clone(),
            criteria: p.criteria.clone(),
            command,
            exit_code: Some(code),
            not_run: None,
            wall_s: Some(wall),
        });
        if crate::interrupt::requested() {
            stopped = Some("the suite was interrupted".into());
        } else if file.suite.stop_on_failure && code != 0 {
            stopped = Some(format!("stop_on_failure: {} exited {code}", p.name));
        }
    }
    let record_path = out.join(suite::RECORD);
    let json = serde_json::to_string_pretty(&record)?;
    if let Err(e) = std::fs::write(&record_path, json + "\n") {
        return Ok(super::check::fail(&Error::io(&record_path, e)));
    }
    let outcomes = match crate::render::acceptance::write_suite(&record, &out) {
        Ok(o) => o,
        Err(e) => return Ok(super::check::fail(&e)),
    };
    println!(
        "suite {}: {} ({}/{} criteria met)",
        record.name, outcomes.verdict, outcomes.met.0, outcomes.met.1
    );
    for r in crate::render::acceptance::critical_rows(&outcomes) {
        println!("  {:<36} {:<14} {} [{}]", r[0], r[1], r[2], r[3]);
    }
    println!("acceptance: {}", out.join("acceptance.md").display());
    println!("report:     {}", out.join("report.html").display());
    Ok(outcomes.exit_code)
}
