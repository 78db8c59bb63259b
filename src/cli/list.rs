//! `converge list workloads|faults|nemeses`.

use super::Format;
use crate::target::automerge::AutomergeFault;
use clap::{Args, ValueEnum};
use converge_models::{Workload, CATALOG};
use serde_json::json;

/// What to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Listing {
    /// Datatypes with a reference model.
    Workloads,
    /// Deliberately faulty models, with the bug each imitates.
    Faults,
    /// Faults the nemesis can inject.
    Nemeses,
}

/// Arguments of `converge list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list.
    #[arg(value_enum)]
    pub what: Listing,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// With `nemeses`: the faults this target takes (default: in-process).
    #[arg(long, value_enum)]
    pub target: Option<super::run::TargetKind>,
}

/// Rows of (name, workload or "", description); nemeses are the in-process
/// target's (see [`nemesis_rows`] for another target's).
pub fn rows(what: Listing) -> Vec<(String, String, String)> {
    match what {
        Listing::Workloads => Workload::ALL
            .iter()
            .map(|w| (w.name().into(), String::new(), w.description().into()))
            .collect(),
        Listing::Faults => CATALOG
            .iter()
            .filter(|m| m.faulty)
            .map(|m| {
                (
                    m.name.into(),
                    m.workload.name().into(),
                    m.description.into(),
                )
            })
            .chain(
                AutomergeFault::ALL
                    .iter()
                    .map(|f| (f.name().into(), "automerge".into(), f.description().into())),
            )
            .collect(),
        Listing::Nemeses => nemesis_rows(super::run::TargetKind::InProcess),
    }
}

/// The faults `--nemesis` takes on `target`, as rows of [`rows`].
pub fn nemesis_rows(target: super::run::TargetKind) -> Vec<(String, String, String)> {
    crate::target::nemeses::catalog(target)
        .iter()
        .map(|(name, what)| ((*name).into(), String::new(), (*what).into()))
        .collect()
}

/// Runs `converge list` and returns the exit code.
pub fn execute(args: ListArgs) -> anyhow::Result<i32> {
    let rows = match (args.what, args.target) {
        (Listing::Nemeses, Some(target)) => nemesis_rows(target),
        (_, None) => rows(args.what),
        (_, Some(_)) => {
            return Ok(super::check::fail(&crate::error::Error::Config(
                "--target is for `converge list nemeses`".into(),
            )))
        }
    };
    match args.format {
        Format::Json => {
            let items: Vec<_> = rows
                .iter()
                .map(|(name, workload, description)| {
                    if workload.is_empty() {
                        json!({ "name": name, "description": description })
                    } else {
                        json!({ "name": name, "workload": workload, "description": description })
                    }
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&items)?);
        }
        Format::Human => {
            let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
            let wwidth = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
            for (name, workload, description) in rows {
                if wwidth == 0 {
                    println!("{name:<width$}  {description}");
                } else {
                    println!("{name:<width$}  {workload:<wwidth$}  {description}");
                }
            }
        }
    }
    Ok(0)
}
