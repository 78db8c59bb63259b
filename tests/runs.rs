//! End-to-end runs through the library: every faulty model is caught, no
//! reference model is flagged, a recorded history re-checks to the same
//! verdict, shrinking keeps the violation, and a seed replays the same run.

mod common;

use common::summary;
use converge::checker::{check_all, overall, Check};
use converge::cli::replay::first_difference;
use converge::history::jsonl::read_history;
use converge::interpreter::{run, shell_quote, RunConfig};
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

/// Runs `config` and returns its history file.
fn history_of(config: &RunConfig) -> std::path::PathBuf {
    run(config).unwrap();
    config.out.join("history.jsonl")
}

/// The done criterion of determinism: every workload and every faulty
/// model, on several seeds, with many writers and with few, run twice with
/// different thread counts, gives the same history apart from wall-clock
/// fields (its reproduce command names its own directory, mapped back).
#[test]
fn a_seed_gives_the_same_history_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    for model in CATALOG.iter() {
        for seed in [1, 2] {
            for (writers, ops) in [(300, 6000), (3, 1500)] {
                let runs: Vec<RunConfig> = [1, 3]
                    .into_iter()
                    .map(|threads| {
                        let name = format!("{}-{seed}-{writers}-{threads}", model.name);
                        let mut c =
                            RunConfig::for_model(model.name, seed, dir.path().join(name)).unwrap();
                        c.writers = writers;
                        c.ops = ops;
                        c.threads = threads;
                        c
                    })
                    .collect();
                let (a, b) = (history_of(&runs[0]), history_of(&runs[1]));
                let rename = (
                    shell_quote(&runs[1].out.display().to_string()),
                    shell_quote(&runs[0].out.display().to_string()),
                );
                let (lines, difference) = first_difference(&a, &b, Some(&rename)).unwrap();
                assert_eq!(
                    difference, None,
                    "{} seed {seed}, {writers} writers: 1 thread and 3 threads differ",
                    model.name
                );
                assert!(lines as u64 > 2 * ops, "{lines} lines");
            }
        }
    }
}

/// Wall-clock fields are the only thing the comparison forgives: a changed
/// value is found, with its line and field.
#[test]
fn the_comparison_names_the_first_line_and_field_that_differ() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RunConfig::for_model("or-set", 4, dir.path().join("a")).unwrap();
    config.writers = 50;
    config.ops = 2000;
    let a = history_of(&config);
    let text = std::fs::read_to_string(&a).unwrap();
    let b = dir.path().join("b.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    // Line 6 is the invoke of the third op.
    let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    changed[5] = changed[5].replacen("\"key\":", "\"key\":9", 1);
    std::fs::write(&b, changed.join("\n") + "\n").unwrap();
    let (_, difference) = first_difference(&a, &b, None).unwrap();
    let difference = difference.expect("a changed key is a difference");
    assert_eq!((difference.line, difference.field.as_str()), (6, "key"));
    std::fs::write(&b, lines[..10].join("\n") + "\n").unwrap();
    let (_, difference) = first_difference(&a, &b, None).unwrap();
    let difference = difference.expect("a cut history is a difference");
    assert_eq!(
        (difference.line, difference.field.as_str()),
        (11, "end of file")
    );
    // Only wall-clock fields differ between a history and itself re-timed.
    std::fs::write(&b, text.replace("\"time_ns\":1", "\"time_ns\":2")).unwrap();
    assert_eq!(first_difference(&a, &b, None).unwrap().1, None);
}

/// A killed run leaves a prefix of its history. The simulation writes each
/// tick's ops after the tick, replica by replica in the order they ran, so
/// every value a read returned comes from an op before it in the file: no
/// prefix re-checks to invalid.
#[test]
fn every_prefix_of_a_history_rechecks_without_a_false_invalid() {
    let dir = tempfile::tempdir().unwrap();
    for model in [
        "g-set",
        "2p-set",
        "or-set",
        "g-counter",
        "lww-register",
        "mv-register",
    ] {
        let mut config = RunConfig::for_model(model, 6, dir.path().join(model)).unwrap();
        config.writers = 40;
        config.ops = 4000;
        config.mix.read_ratio = 0.3;
        let bytes = std::fs::read(history_of(&config)).unwrap();
        let cut_file = dir.path().join(format!("{model}-cut.jsonl"));
        for cut in 1..25 {
            let at = bytes.len() * cut / 25;
            std::fs::write(&cut_file, &bytes[..at]).unwrap();
            let read = read_history(&cut_file).unwrap();
            let checks = check_all(&read.history);
            assert!(
                violated(&checks).is_empty(),
                "{model} cut at byte {at} of {}: {}",
                bytes.len(),
                summary(&checks)
            );
        }
    }
}

/// `converge replay`: a stored run replays identically (exit 0) with any
/// thread count; a changed history differs (exit 1, line and field named);
/// a black-box target's run or one recorded without logical time is not
/// replayable (exit 3).
#[test]
fn replay_reruns_a_stored_run_and_compares() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let args = [
        "--fault",
        "arrival-order-lww",
        "--seed",
        "2",
        "--writers",
        "100",
    ];
    common::run_into(
        &run_dir,
        &[&args[..], &["--ops", "5000", "--no-shrink"]].concat(),
    )
    .no_panic()
    .expect_code(1);
    for threads in ["1", "4"] {
        let out = dir.path().join(format!("replay-{threads}"));
        common::cli([
            "replay".as_ref(),
            run_dir.as_os_str(),
            "--threads".as_ref(),
            threads.as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
        .no_panic()
        .expect_code(0)
        .mentions("identical");
    }
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    let edited = |name: &str, text: String| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("history.jsonl"), text).unwrap();
        d
    };
    // The line that carries `delivered` (the quiescence record), wherever
    // the history puts it.
    let last = history
        .lines()
        .position(|l| l.contains("\"delivered\":"))
        .expect("a quiescence line")
        + 1;
    let changed = edited(
        "changed",
        history.replacen("\"delivered\":", "\"delivered\":1", 1),
    );
    common::cli(["replay".as_ref(), changed.as_os_str()])
        .no_panic()
        .expect_code(1)
        .mentions(&format!("line {last}, field delivered"));
    let black_box = edited(
        "black-box",
        history.replacen("\"target\":\"in-process\"", "\"target\":\"maelstrom\"", 1),
    );
    common::cli(["replay".as_ref(), black_box.as_os_str()])
        .no_panic()
        .expect_code(3)
        .mentions("cannot replay");
    let untimed: String = history
        .lines()
        .map(|l| match l.find(",\"tick\":") {
            Some(i) => format!("{}}}\n", &l[..i]),
            None => format!("{l}\n"),
        })
        .collect();
    let untimed = edited("untimed", untimed);
    common::cli(["replay".as_ref(), untimed.as_os_str()])
        .no_panic()
        .expect_code(3)
        .mentions("logical time");
}

/// The shrinker relies on determinism: the minimal counterexample it prints
/// fails again when run from that command, every time, with any thread
/// count, and replays identically.
#[test]
fn a_shrunk_counterexample_fails_again_from_its_printed_command() {
    let dir = tempfile::tempdir().unwrap();
    for (fault, seed) in [("remove-wins-or-set", 3), ("arrival-order-lww", 1)] {
        let out = dir.path().join(fault);
        let args = ["--fault", fault, "--writers", "200", "--ops", "20000"];
        let seed = seed.to_string();
        let extra = ["--seed", &seed, "--shrink-budget", "25", "--format", "json"];
        let run = common::run_into(&out, &[&args[..], &extra[..]].concat());
        run.no_panic().expect_code(1);
        let report = common::parse_json(&run.stdout, "report");
        let reproduce = common::string(&report, "counterexample.reproduce").to_string();
        for threads in [1, 2, 3] {
            let again = dir.path().join(format!("{fault}-again-{threads}"));
            common::rerun(
                &format!("{reproduce} --threads {threads} --no-shrink"),
                &again,
            )
            .no_panic()
            .expect_code(1);
        }
        common::cli(["replay".as_ref(), out.join("counterexample").as_os_str()])
            .no_panic()
            .expect_code(0);
    }
}
