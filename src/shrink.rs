//! Counterexample shrinking: re-run the same seed with fewer ops, writers,
//! keys, replicas and faults (greedy delta debugging), keeping each reduction
//! that still violates one of the originally violated checks. It relies on
//! the engine's determinism: a configuration that failed once fails again,
//! so the minimum it prints reproduces from its command.

use crate::checker::{check_all, Check};
use crate::error::{Error, Result};
use crate::interpreter::{run, RunConfig};
use crate::nemesis::NemesisSpec;
use crate::report::Counterexample;
use crate::verdict::Verdict;
use std::path::Path;

/// A minimal failing run.
#[derive(Debug)]
pub struct Shrunk {
    /// Its configuration (its `out` holds its history).
    pub config: RunConfig,
    /// Checks it violates.
    pub violated: Vec<String>,
    /// Runs attempted.
    pub attempts: u32,
}

fn violated(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.verdict == Verdict::Invalid)
        .map(|c| c.name.clone())
        .collect()
}

fn candidates(c: &RunConfig) -> Vec<RunConfig> {
    let mut out = Vec::new();
    let mut push = |f: &dyn Fn(&mut RunConfig)| {
        let mut next = c.clone();
        f(&mut next);
        if next != *c {
            out.push(next);
        }
    };
    push(&|n| n.ops = (n.ops / 2).max(1));
    push(&|n| n.writers = (n.writers / 2).max(1));
    push(&|n| n.mix.keys = (n.mix.keys / 2).max(1));
    push(&|n| n.replicas = (n.replicas - 1).max(2).min(n.replicas));
    for fault in &c.nemesis.faults {
        push(&|n| {
            n.nemesis = NemesisSpec {
                faults: n
                    .nemesis
                    .faults
                    .iter()
                    .copied()
                    .filter(|f| f != fault)
                    .collect(),
            }
        });
    }
    push(&|n| n.ops = (n.ops * 3 / 4).max(1));
    push(&|n| n.writers = (n.writers * 3 / 4).max(1));
    out
}

/// Shrinks a failing run. `target` names the checks the original run
/// violated; a reduction is kept if it violates any of them. The minimal
/// run's history ends up in `dest`.
pub fn shrink(
    original: &RunConfig,
    target: &[String],
    budget: u32,
    dest: &Path,
) -> Result<Option<Shrunk>> {
    let scratch = dest.with_extension("attempt");
    let mut best = original.clone();
    best.progress = false;
    best.series = false;
    let mut best_violated = target.to_vec();
    let mut attempts = 0;
    'outer: loop {
        for mut candidate in candidates(&best) {
            if attempts >= budget {
                break 'outer;
            }
            attempts += 1;
            candidate.out = scratch.clone();
            let result = run(&candidate)?;
            let found = violated(&check_all(&result.history));
            if found.iter().any(|v| target.contains(v)) {
                best = candidate;
                best_violated = found;
                continue 'outer;
            }
        }
        break;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if best.ops == original.ops
        && best.writers == original.writers
        && best.mix.keys == original.mix.keys
        && best.replicas == original.replicas
        && best.nemesis == original.nemesis
    {
        return Ok(None);
    }
    // Re-run the minimum into its final place so its history is on disk.
    best.out = dest.to_path_buf();
    let result = run(&best)?;
    let found = violated(&check_all(&result.history));
    if found.is_empty() {
        return Err(Error::Target {
            component: "shrinker".into(),
            message: format!(
                "the minimal run passed when re-run, so the engine broke its promise that a seed replays the run; last failing checks were {best_violated:?}"
            ),
        });
    }
    Ok(Some(Shrunk {
        config: best,
        violated: found,
        attempts,
    }))
}

/// Shrinks a failing run into `<config.out>/counterexample` and describes
/// the minimum for the report; `None` when no reduction still fails.
pub fn counterexample(
    config: &RunConfig,
    violated: &[String],
    budget: u32,
) -> Result<Option<Counterexample>> {
    let dest = config.out.join("counterexample");
    Ok(
        shrink(config, violated, budget, &dest)?.map(|s| Counterexample {
            history: dest.join("history.jsonl").display().to_string(),
            reproduce: s.config.reproduce(),
            writers: s.config.writers,
            ops: s.config.ops,
            keys: s.config.mix.keys,
            nemesis: s.config.nemesis.to_spec(),
            violated: s.violated,
            attempts: s.attempts,
        }),
    )
}
