//! `converge fuzz`: campaigns find every faulty model within a small
//! iteration budget, never flag a reference model, keep what they find with
//! a command that reproduces it, and reject bad flags with exit 3.

use converge::campaign::{run_campaign, Bounds, Budget, CampaignConfig};
use converge::models::CATALOG;
use converge::Verdict;
use serde_json::Value;

mod common;
use common::*;

/// Small runs: a campaign's worth of them stays quick on 2 busy cores.
fn small_bounds() -> Bounds {
    Bounds {
        max_writers: 64,
        max_replicas: 5,
        max_ops: 4000,
        max_keys: 16,
    }
}

fn campaign(models: &str, seed: u64, iterations: u64, dir: &std::path::Path) -> CampaignConfig {
    CampaignConfig {
        models: CATALOG
            .iter()
            .filter(|m| match models {
                "faults" => m.faulty,
                "references" => !m.faulty,
                name => m.name == name,
            })
            .collect(),
        seed,
        budget: Budget {
            time: None,
            iterations: Some(iterations),
        },
        keep_going: false,
        bounds: small_bounds(),
        out: dir.to_path_buf(),
        shrink_budget: 0,
        threads: 2,
        check_determinism: false,
    }
}

#[test]
fn every_faulty_model_is_found_within_forty_runs() {
    let dir = tempfile::tempdir().unwrap();
    for model in CATALOG.iter().filter(|m| m.faulty) {
        for seed in [1, 2] {
            let out = dir.path().join(format!("{}-{seed}", model.name));
            let summary = run_campaign(&campaign(model.name, seed, 40, &out), |_| {}).unwrap();
            assert_eq!(
                summary.verdict(),
                Verdict::Invalid,
                "{} not found in {} runs (seed {seed}): {summary:?}",
                model.name,
                summary.runs
            );
            let found = &summary.violations[0];
            assert!(!found.checks.is_empty(), "{found:?}");
            assert!(
                found.reproduce.contains(&format!("--fault {}", model.name)),
                "{found:?}"
            );
            assert!(
                std::path::Path::new(&found.dir)
                    .join("history.jsonl")
                    .exists(),
                "{found:?}"
            );
            // It stopped at the first violation.
            assert_eq!(summary.runs_to_first_violation, Some(summary.runs));
        }
    }
}

#[test]
fn reference_models_are_never_flagged() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [3, 4, 5] {
        let mut c = campaign("references", seed, 48, &dir.path().join(seed.to_string()));
        c.keep_going = true;
        let summary = run_campaign(&c, |_| {}).unwrap();
        assert_eq!(summary.runs, 48);
        assert!(
            summary.violations.is_empty()
                && summary.unknowns.is_empty()
                && summary.errors.is_empty(),
            "seed {seed}: {summary:#?}"
        );
        assert!(
            summary.runs_per_model.iter().all(|(_, n)| *n == 6),
            "{summary:?}"
        );
    }
}

#[test]
fn keep_going_collects_every_violation() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = campaign("faults", 9, 30, dir.path());
    c.keep_going = true;
    let summary = run_campaign(&c, |_| {}).unwrap();
    assert_eq!(summary.runs, 30);
    assert!(summary.violations.len() > 1, "{summary:?}");
    assert_eq!(
        summary.runs_to_first_violation,
        Some(summary.violations[0].iteration + 1)
    );
}

#[test]
fn cli_stops_on_a_violation_shrinks_it_and_prints_a_reproducing_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("campaign");
    let run = finish(
        converge()
            .args(["fuzz", "--fault", "sum-merge-counter", "--iterations", "20"])
            .args(["--seed", "7", "--max-writers", "32", "--max-ops", "2000"])
            .args(["--shrink-budget", "10", "--out"])
            .arg(&out),
    );
    run.expect_code(1).no_panic();
    assert_eq!(run.seed(), 7);
    run.mentions("first violation after")
        .mentions("replay the campaign: converge fuzz --seed 7");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let found = &summary["violations"][0];
    let reproduce = found["reproduce"].as_str().unwrap();
    assert!(run.stdout.contains(reproduce), "{}", run.dump());
    // The kept run is a complete, re-checkable record with the same verdict.
    let kept = std::path::Path::new(found["dir"].as_str().unwrap());
    finish(converge().arg("check").arg(kept.join("history.jsonl")))
        .expect_code(1)
        .no_panic();
    // Its own command reproduces it (a merge that sums is wrong on every run with gossip).
    rerun(reproduce, &dir.path().join("again"))
        .expect_code(1)
        .no_panic();
}

#[test]
fn cli_campaign_over_references_is_valid_and_writes_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("refs");
    let run = finish(
        converge()
            .args([
                "fuzz",
                "--iterations",
                "16",
                "--seed",
                "2",
                "--format",
                "json",
            ])
            .args(["--max-writers", "32", "--max-ops", "2000", "--out"])
            .arg(&out),
    );
    run.expect_code(0).no_panic();
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["runs"], 16);
    assert_eq!(summary["seed"], 2);
    assert!(summary["ops"].as_u64().unwrap() >= 16 * converge::campaign::MIN_OPS);
    assert!(out.join("summary.json").exists());
}

#[test]
fn cli_rejects_bad_flags_with_exit_3() {
    for (args, needle) in [
        (&["--max-replicas", "1"][..], "--max-replicas"),
        (&["--max-ops", "3"][..], "--max-ops"),
        (&["--time=-5"][..], "--time"),
        (&["--time", "NaN"][..], "--time"),
        (&["--iterations", "0"][..], "--iterations"),
        (&["--fault", "no-such-fault"][..], "no-such-fault"),
        (&["--workload", "no-such-workload"][..], "no-such-workload"),
    ] {
        finish(converge().arg("fuzz").args(args))
            .expect_code(3)
            .no_panic()
            .stderr_mentions(needle);
    }
}
