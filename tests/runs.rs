//! End-to-end runs through the library: every faulty model is caught, no
//! reference model is flagged, a recorded history re-checks to the same
//! verdict, and shrinking keeps the violation.

mod common;

use common::summary;
use converge::checker::{check_all, overall, Check};
use converge::history::jsonl::read_history;
use converge::interpreter::{run, RunConfig};
use converge::models::CATALOG;
use converge::shrink::shrink;
use converge::Verdict;

fn violated(checks: &[Check]) -> Vec<&str> {
    checks
        .iter()
        .filter(|c| c.verdict == Verdict::Invalid)
        .map(|c| c.name.as_str())
        .collect()
}

/// Runs every catalog model with `faulty == faulty` on `seeds`, after
/// `configure`, and returns a line for each run whose checks `ok` rejects.
fn sweep(
    faulty: bool,
    seeds: std::ops::RangeInclusive<u64>,
    configure: impl Fn(&mut RunConfig),
    ok: impl Fn(&[Check]) -> bool,
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut rejected = Vec::new();
    let models: Vec<_> = CATALOG.iter().filter(|m| m.faulty == faulty).collect();
    assert!(models.len() >= 8, "at least 8 models of each kind");
    for model in models {
        for seed in seeds.clone() {
            let out = dir.path().join(format!("{}-{seed}", model.name));
            let mut config = RunConfig::for_model(model.name, seed, out).unwrap();
            configure(&mut config);
            let checks = check_all(&run(&config).unwrap().history);
            if !ok(&checks) {
                rejected.push(format!("{} seed {seed}: {}", model.name, summary(&checks)));
            }
        }
    }
    rejected
}

/// The done criterion: every fault is invalid on seeds 1 to 5 with the
/// default run (1000 writers, 100,000 ops, default nemesis), and the
/// violated check is named.
#[test]
fn every_fault_is_invalid_on_seeds_1_to_5_with_the_default_run() {
    let misses = sweep(
        true,
        1..=5,
        |_| {},
        |checks| overall(checks) == Verdict::Invalid && !violated(checks).is_empty(),
    );
    assert!(
        misses.is_empty(),
        "faults not caught:\n{}",
        misses.join("\n")
    );
}

/// No reference model is flagged, across 20 seeds with the nemesis on.
/// Smaller runs than the default keep this fast; the full default run of
/// each reference is in the next test.
#[test]
fn reference_models_are_valid_on_20_seeds_with_the_nemesis() {
    let flagged = sweep(
        false,
        1..=20,
        |config| {
            config.writers = 100;
            config.ops = 10_000;
            config.mix.keys = 8;
        },
        |checks| overall(checks) == Verdict::Valid,
    );
    assert!(
        flagged.is_empty(),
        "correct models flagged:\n{}",
        flagged.join("\n")
    );
}

#[test]
fn reference_models_are_valid_on_the_default_run() {
    let dir = tempfile::tempdir().unwrap();
    for model in CATALOG.iter().filter(|m| !m.faulty) {
        let out = dir.path().join(model.name);
        let config = RunConfig::for_model(model.name, 99, out).unwrap();
        let result = run(&config).unwrap();
        let checks = check_all(&result.history);
        assert_eq!(
            overall(&checks),
            Verdict::Valid,
            "{}: {}",
            model.name,
            summary(&checks)
        );
        // The run really exercised the faults and the conflicts.
        let net = result.history.network.unwrap();
        assert!(
            net.dropped > 0 && net.duplicates_delivered > 0 && net.delayed > 0,
            "{net:?}"
        );
        let conflicts = checks.iter().find(|c| c.name == "conflicts").unwrap();
        assert!(conflicts.counts["updates"] > 0, "{}", model.name);
        // Set adds of fresh elements touch different elements: only
        // datatypes whose updates share elements must show conflicts.
        use converge::models::Workload;
        if !matches!(model.workload, Workload::GSet | Workload::TwoPSet) {
            assert!(conflicts.counts["conflicts"] > 0, "{}", model.name);
        }
    }
}

/// Without a nemesis the run is still checked, and stays valid.
#[test]
fn reference_models_are_valid_without_a_nemesis() {
    let dir = tempfile::tempdir().unwrap();
    for model in CATALOG.iter().filter(|m| !m.faulty) {
        let mut config = RunConfig::for_model(model.name, 3, dir.path().join(model.name)).unwrap();
        config.nemesis = converge::nemesis::NemesisSpec::parse("none").unwrap();
        config.ops = 20_000;
        let result = run(&config).unwrap();
        let checks = check_all(&result.history);
        assert_eq!(
            overall(&checks),
            Verdict::Valid,
            "{}: {}",
            model.name,
            summary(&checks)
        );
        assert_eq!(result.history.network.unwrap().dropped, 0);
    }
}

/// `converge check` on the saved history reaches the same verdicts.
#[test]
fn saved_history_rechecks_to_the_same_verdict() {
    let dir = tempfile::tempdir().unwrap();
    for (model, seed) in [
        ("or-set", 4),
        ("mv-register", 4),
        ("duplicating-set", 1),
        ("remove-wins-or-set", 2),
    ] {
        let out = dir.path().join(model);
        let mut config = RunConfig::for_model(model, seed, out.clone()).unwrap();
        config.ops = 30_000;
        config.writers = 200;
        let result = run(&config).unwrap();
        let live = check_all(&result.history);
        let read = read_history(&out.join("history.jsonl")).unwrap();
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        assert_eq!(read.history.ops.len(), result.history.ops.len());
        let offline = check_all(&read.history);
        assert_eq!(live, offline, "{model}");
    }
}

/// Shrinking keeps a violated check and reduces the run.
#[test]
fn shrinking_reduces_a_failing_run_and_keeps_the_violation() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RunConfig::for_model("sum-merge-counter", 1, dir.path().join("run")).unwrap();
    config.writers = 200;
    config.ops = 20_000;
    let checks = check_all(&run(&config).unwrap().history);
    let target: Vec<String> = violated(&checks).iter().map(|s| s.to_string()).collect();
    assert!(!target.is_empty());
    let dest = dir.path().join("counterexample");
    let shrunk = shrink(&config, &target, 30, &dest)
        .unwrap()
        .expect("a smaller failing run");
    assert!(shrunk.config.ops < config.ops || shrunk.config.writers < config.writers);
    assert!(shrunk.violated.iter().any(|v| target.contains(v)));
    assert!(dest.join("history.jsonl").exists());
    let replay = check_all(&read_history(&dest.join("history.jsonl")).unwrap().history);
    assert_eq!(overall(&replay), Verdict::Invalid);
    assert!(shrunk
        .config
        .reproduce()
        .contains(&format!("--ops {}", shrunk.config.ops)));
}

/// 10,000 writers work (the scale the issue requires), with the nemesis on.
#[test]
fn ten_thousand_writers_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RunConfig::for_model("g-counter", 5, dir.path().join("run")).unwrap();
    config.writers = 10_000;
    config.ops = 200_000;
    let result = run(&config).unwrap();
    let checks = check_all(&result.history);
    assert_eq!(overall(&checks), Verdict::Valid, "{}", summary(&checks));
    let processes: std::collections::HashSet<u32> =
        result.history.ops.iter().map(|o| o.process).collect();
    assert_eq!(processes.len(), 10_000);
}
