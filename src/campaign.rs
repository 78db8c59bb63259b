//! Fuzzing campaigns: many short runs over seeds, each with randomized
//! writers, replicas, ops, op mix and nemesis, until a time or iteration
//! budget is spent or a violation is found.
//!
//! A campaign is itself reproducible: run `i` of campaign seed `S` always
//! draws the same configuration, so `converge fuzz --seed S` replays the
//! same sequence, and every violation carries the `converge run` command of
//! its own run.

use crate::checker::check_all;
use crate::error::{Error, Result};
use crate::generator::{derive_seed, Mix};
use crate::interpreter::{run, RunConfig, MAX_REPLICAS};
use crate::nemesis::{Fault, NemesisSpec};
use crate::report::{Counterexample, Report};
use crate::shrink::counterexample;
use crate::verdict::Verdict;
use converge_models::ModelInfo;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Upper bounds the randomizer draws within.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bounds {
    /// Most concurrent writers in one run.
    pub max_writers: u32,
    /// Most replicas in one run (at least 2 are always used).
    pub max_replicas: u16,
    /// Most ops in one run.
    pub max_ops: u64,
    /// Most keys in one run.
    pub max_keys: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        // Small enough that a run takes well under a second, so a campaign
        // explores many configurations rather than a few big ones.
        Bounds {
            max_writers: 2000,
            max_replicas: 7,
            max_ops: 20_000,
            max_keys: 64,
        }
    }
}

impl Bounds {
    /// Rejects bounds the randomizer cannot draw from, naming the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.max_writers == 0 || self.max_writers > crate::interpreter::MAX_WRITERS {
            return bad(format!(
                "--max-writers must be in 1..={}, got {}",
                crate::interpreter::MAX_WRITERS,
                self.max_writers
            ));
        }
        if !(2..=MAX_REPLICAS).contains(&self.max_replicas) {
            return bad(format!(
                "--max-replicas must be in 2..={MAX_REPLICAS}, got {}",
                self.max_replicas
            ));
        }
        if self.max_ops < MIN_OPS || self.max_ops > u64::from(u32::MAX) {
            return bad(format!(
                "--max-ops must be in {MIN_OPS}..={}, got {}",
                u32::MAX,
                self.max_ops
            ));
        }
        if self.max_keys == 0 || self.max_keys > crate::interpreter::MAX_KEYS {
            return bad(format!(
                "--max-keys must be in 1..={}, got {}",
                crate::interpreter::MAX_KEYS,
                self.max_keys
            ));
        }
        Ok(())
    }
}

/// Fewest ops in a randomized run: fewer rarely exercise a fault.
pub const MIN_OPS: u64 = 50;

/// When a campaign stops.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Budget {
    /// Wall-time budget.
    pub time: Option<Duration>,
    /// Most runs.
    pub iterations: Option<u64>,
}

impl Budget {
    fn spent(&self, started: Instant, runs: u64) -> bool {
        self.time.is_some_and(|t| started.elapsed() >= t)
            || self.iterations.is_some_and(|n| runs >= n)
    }
}

/// A whole campaign.
#[derive(Clone, Debug)]
pub struct CampaignConfig {
    /// Models to cycle through (references and/or faults).
    pub models: Vec<&'static ModelInfo>,
    /// Campaign seed; run `i` uses a seed derived from it.
    pub seed: u64,
    /// Stopping rule.
    pub budget: Budget,
    /// Keep going after a violation instead of stopping.
    pub keep_going: bool,
    /// Randomization bounds.
    pub bounds: Bounds,
    /// Directory for run scratch space and kept violations.
    pub out: PathBuf,
    /// Shrinker re-runs per violation (0: do not shrink).
    pub shrink_budget: u32,
    /// Threads per run.
    pub threads: usize,
    /// Run every run a second time with another thread count and compare
    /// the histories: a difference is an error finding (the engine broke
    /// the promise that a seed replays the run).
    pub check_determinism: bool,
}

/// One run that was not valid.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// 0-based run index within the campaign.
    pub iteration: u64,
    /// Model it ran.
    pub model: String,
    /// Its verdict (`invalid` or `unknown`).
    pub verdict: Verdict,
    /// Checks that were not valid.
    pub checks: Vec<String>,
    /// Where its history and report are kept.
    pub dir: String,
    /// The `converge run` command that reproduces it.
    pub reproduce: String,
    /// Wall time from the campaign start to the end of this run, seconds.
    pub found_after_s: f64,
    /// The shrunk counterexample, when shrinking succeeded.
    pub counterexample: Option<Counterexample>,
    /// The error that stopped the run, for runs that did not finish.
    pub error: Option<String>,
}

/// What a campaign did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Campaign seed.
    pub seed: u64,
    /// Runs completed.
    pub runs: u64,
    /// Operations over all runs.
    pub ops: u64,
    /// Runs per model name.
    pub runs_per_model: Vec<(String, u64)>,
    /// Invalid runs.
    pub violations: Vec<Finding>,
    /// Runs whose verdict was unknown (no quiescence within the bound).
    pub unknowns: Vec<Finding>,
    /// Runs that stopped with an error (a crash of converge or its target),
    /// or that a second run with another thread count did not reproduce.
    pub errors: Vec<Finding>,
    /// Runs re-run with another thread count and found identical.
    pub replayed_identical: u64,
    /// Wall time of the campaign, seconds.
    pub elapsed_s: f64,
    /// Wall time until the first violation, seconds.
    pub time_to_first_violation_s: Option<f64>,
    /// Runs until (and including) the first violation.
    pub runs_to_first_violation: Option<u64>,
}

impl Summary {
    /// The campaign's overall verdict: invalid beats unknown beats valid.
    /// A run that errored leaves the campaign unknown at best.
    pub fn verdict(&self) -> Verdict {
        if !self.violations.is_empty() {
            Verdict::Invalid
        } else if !self.unknowns.is_empty() || !self.errors.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Valid
        }
    }

    /// The exit code: 1 on a violation, else 4 if a run errored, else the
    /// verdict's.
    pub fn exit_code(&self) -> i32 {
        if self.violations.is_empty() && !self.errors.is_empty() {
            crate::verdict::EXIT_TARGET_ERROR
        } else {
            self.verdict().exit_code()
        }
    }
}

/// Where a campaign is, for progress display.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// Runs completed.
    pub runs: u64,
    /// Operations so far.
    pub ops: u64,
    /// Violations so far.
    pub violations: usize,
    /// The run that just finished.
    pub last: &'a RunConfig,
}

/// Draws `x` in `lo..=hi`, uniform in log space so small and large values
/// are both explored (most bugs need few ops, some need many writers).
fn log_uniform(rng: &mut impl Rng, lo: u64, hi: u64) -> u64 {
    let hi = hi.max(lo);
    let (a, b) = ((lo as f64).ln(), (hi as f64 + 1.0).ln());
    let x = rng.random_range(a..b).exp() as u64;
    x.clamp(lo, hi)
}

/// The configuration of run `iteration`: a pure function of the campaign
/// seed, the iteration and the bounds.
pub fn randomize(
    model: &ModelInfo,
    campaign_seed: u64,
    iteration: u64,
    bounds: &Bounds,
    out: PathBuf,
) -> Result<RunConfig> {
    let run_seed = derive_seed(campaign_seed, iteration) % 1_000_000_000;
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(run_seed, 0xF022));
    let mut config = RunConfig::for_model(model.name, run_seed, out)?;
    config.writers = log_uniform(&mut rng, 1, u64::from(bounds.max_writers)) as u32;
    config.replicas = rng.random_range(2..=bounds.max_replicas);
    config.ops = log_uniform(&mut rng, MIN_OPS, bounds.max_ops);
    config.mix = Mix {
        keys: log_uniform(&mut rng, 1, u64::from(bounds.max_keys)) as u32,
        hot_key_ratio: rng.random_range(0.0..=1.0),
        read_ratio: if rng.random_bool(0.5) {
            0.0
        } else {
            rng.random_range(0.0..=0.2)
        },
        remove_ratio: rng.random_range(0.0..=0.6),
        ..Mix::default()
    };
    // One run in ten has no faults: some bugs (a bad merge) show without them.
    config.nemesis = if rng.random_bool(0.1) {
        NemesisSpec { faults: Vec::new() }
    } else {
        let mut faults: Vec<Fault> = Fault::ALL
            .into_iter()
            .filter(|_| rng.random_bool(0.6))
            .collect();
        if faults.is_empty() {
            faults.push(Fault::ALL[rng.random_range(0..Fault::ALL.len())]);
        }
        NemesisSpec { faults }
    };
    config.validate()?;
    Ok(config)
}

/// Keeps a run that was not valid: moves its directory out of the scratch slot.
fn keep(out: &Path, scratch: &Path, iteration: u64, config: &RunConfig) -> Result<PathBuf> {
    let dir = out.join(format!("run-{iteration}-{}", config.model));
    let _ = std::fs::remove_dir_all(&dir);
    if scratch.exists() {
        std::fs::rename(scratch, &dir).map_err(|e| Error::io(&dir, e))?;
    }
    Ok(dir)
}

/// Keeps a run that ended in an error (it died, or it did not replay) and
/// describes it as a finding whose verdict is unknown.
fn error_finding(
    campaign: &CampaignConfig,
    scratch: &Path,
    iteration: u64,
    config: &mut RunConfig,
    started: Instant,
    error: String,
) -> Result<Finding> {
    let dir = keep(&campaign.out, scratch, iteration, config)?;
    config.out = dir.clone();
    Ok(Finding {
        iteration,
        model: config.model.clone(),
        verdict: Verdict::Unknown,
        checks: Vec::new(),
        dir: dir.display().to_string(),
        reproduce: config.reproduce(),
        found_after_s: started.elapsed().as_secs_f64(),
        counterexample: None,
        error: Some(error),
    })
}

/// Runs `config` again into a scratch directory of its own with another
/// thread count, and describes the first difference between the two
/// histories (wall-clock fields aside), if any.
fn rerun_differs(
    campaign: &CampaignConfig,
    config: &RunConfig,
    scratch: &Path,
) -> Result<Option<String>> {
    let mut again = config.clone();
    again.threads = if campaign.threads == 1 { 2 } else { 1 };
    again.out = scratch.with_extension("again");
    let outcome = run(&again).map(|_| ());
    let rename = (
        crate::interpreter::shell_quote(&again.out.display().to_string()),
        crate::interpreter::shell_quote(&scratch.display().to_string()),
    );
    let compared = outcome.and_then(|()| {
        crate::cli::replay::first_difference(
            &scratch.join("history.jsonl"),
            &again.out.join("history.jsonl"),
            Some(&rename),
        )
    });
    let _ = std::fs::remove_dir_all(&again.out);
    Ok(match compared? {
        (_, None) => None,
        (_, Some(d)) => Some(format!(
            "not deterministic: re-run with {} threads, the history differs at line {}, field {} ({} vs {})",
            again.threads, d.line, d.field, d.original, d.replay
        )),
    })
}

/// Runs a campaign, calling `progress` after every run.
pub fn run_campaign(
    campaign: &CampaignConfig,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Summary> {
    if campaign.models.is_empty() {
        return Err(Error::Config("fuzz: no model to run".into()));
    }
    if campaign.budget.time.is_none() && campaign.budget.iterations.is_none() {
        return Err(Error::Config(
            "fuzz: give a budget (--time or --iterations)".into(),
        ));
    }
    campaign.bounds.validate()?;
    std::fs::create_dir_all(&campaign.out).map_err(|e| Error::io(&campaign.out, e))?;
    let started = Instant::now();
    let mut summary = Summary {
        seed: campaign.seed,
        runs_per_model: campaign
            .models
            .iter()
            .map(|m| (m.name.to_string(), 0))
            .collect(),
        ..Summary::default()
    };
    let scratch = campaign.out.join("current");
    while !campaign.budget.spent(started, summary.runs) {
        let iteration = summary.runs;
        let slot = (iteration % campaign.models.len() as u64) as usize;
        let model = campaign.models[slot];
        let mut config = randomize(
            model,
            campaign.seed,
            iteration,
            &campaign.bounds,
            scratch.clone(),
        )?;
        config.threads = campaign.threads;
        let outcome = run(&config);
        summary.runs += 1;
        summary.ops += config.ops;
        summary.runs_per_model[slot].1 += 1;
        let mut result = match outcome {
            Ok(r) => r,
            // A run that dies is a finding too: keep what it recorded.
            Err(e) => {
                let finding = error_finding(
                    campaign,
                    &scratch,
                    iteration,
                    &mut config,
                    started,
                    e.to_string(),
                )?;
                summary.errors.push(finding);
                if !campaign.keep_going {
                    break;
                }
                continue;
            }
        };
        if campaign.check_determinism {
            if let Some(message) = rerun_differs(campaign, &config, &scratch)? {
                let finding =
                    error_finding(campaign, &scratch, iteration, &mut config, started, message)?;
                summary.errors.push(finding);
                if !campaign.keep_going {
                    break;
                }
                continue;
            }
            summary.replayed_identical += 1;
        }
        let checks = check_all(&result.history);
        let live = result.live_figures();
        let mut report = Report::build(&result.history, &checks, Some(&live));
        report.convergence_steps = result.convergence;
        if report.verdict != Verdict::Valid {
            let found_after_s = started.elapsed().as_secs_f64();
            let dir = keep(&campaign.out, &scratch, iteration, &config)?;
            config.out = dir.clone();
            let checks_not_valid: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.verdict == report.verdict)
                .map(|c| c.name.clone())
                .collect();
            if report.verdict == Verdict::Invalid && campaign.shrink_budget > 0 {
                report.counterexample =
                    counterexample(&config, &report.violated(), campaign.shrink_budget)?;
            }
            report.reproduce = config.reproduce();
            report.write(&dir)?;
            let finding = Finding {
                iteration,
                model: config.model.clone(),
                verdict: report.verdict,
                checks: checks_not_valid,
                dir: dir.display().to_string(),
                reproduce: config.reproduce(),
                found_after_s,
                counterexample: report.counterexample.clone(),
                error: None,
            };
            if report.verdict == Verdict::Invalid {
                if summary.time_to_first_violation_s.is_none() {
                    summary.time_to_first_violation_s = Some(found_after_s);
                    summary.runs_to_first_violation = Some(summary.runs);
                }
                summary.violations.push(finding);
            } else {
                summary.unknowns.push(finding);
            }
        }
        progress(Progress {
            runs: summary.runs,
            ops: summary.ops,
            violations: summary.violations.len(),
            last: &config,
        });
        if !summary.violations.is_empty() && !campaign.keep_going {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    summary.elapsed_s = started.elapsed().as_secs_f64();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randomize_is_a_function_of_seed_and_iteration() {
        let model = converge_models::model_info("or-set").unwrap();
        let b = Bounds::default();
        let a1 = randomize(model, 7, 3, &b, "x".into()).unwrap();
        let a2 = randomize(model, 7, 3, &b, "x".into()).unwrap();
        let other = randomize(model, 7, 4, &b, "x".into()).unwrap();
        assert_eq!(a1, a2);
        assert_ne!(a1, other);
    }

    #[test]
    fn randomize_stays_within_bounds() {
        let model = converge_models::model_info("g-counter").unwrap();
        let b = Bounds {
            max_writers: 10,
            max_replicas: 3,
            max_ops: 500,
            max_keys: 4,
        };
        for i in 0..500 {
            let c = randomize(model, 1, i, &b, "x".into()).unwrap();
            assert!((1..=10).contains(&c.writers), "{c:?}");
            assert!((2..=3).contains(&c.replicas), "{c:?}");
            assert!((MIN_OPS..=500).contains(&c.ops), "{c:?}");
            assert!((1..=4).contains(&c.mix.keys), "{c:?}");
        }
    }

    #[test]
    fn bounds_out_of_range_are_config_errors() {
        for b in [
            Bounds {
                max_writers: 0,
                ..Bounds::default()
            },
            Bounds {
                max_replicas: 1,
                ..Bounds::default()
            },
            Bounds {
                max_ops: 1,
                ..Bounds::default()
            },
        ] {
            assert!(matches!(b.validate(), Err(Error::Config(_))), "{b:?}");
        }
    }
}
