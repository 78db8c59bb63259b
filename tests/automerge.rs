//! The automerge target: the correct wrapper is valid across seeds with the
//! nemesis on, each broken wrapper is caught, the checkers decide tiny
//! literal histories, re-delivered sync messages change nothing, and a
//! stored run replays to the same history.

mod common;

use automerge::sync::{Message, State};
use common::summary;
use converge::checker::automerge::{check_all, data_loss};
use converge::checker::{overall, Check};
use converge::history::jsonl::read_history;
use converge::history::{
    FinalRead, Function, Header, History, OpRecord, Outcome, Probe, ProbeKind, Quiescence,
    SCHEMA_VERSION,
};
use converge::models::{Dot, Value, Workload};
use converge::target::automerge::layout::{Layout, Slot};
use converge::target::automerge::replica::{genesis, MergeMode, Replica};
use converge::target::automerge::{run, AutomergeConfig, AutomergeFault};
use converge::Verdict;

fn config(seed: u64, dir: &std::path::Path) -> AutomergeConfig {
    let mut c = AutomergeConfig::new(seed, dir.join(format!("run-{seed}")));
    c.writers = 12;
    c.replicas = 4;
    c.ops = 500;
    c
}

fn verdict_of(checks: &[Check], name: &str) -> Verdict {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {}", summary(checks)))
        .verdict
}

#[test]
fn the_correct_wrapper_is_valid_across_seeds_with_the_nemesis_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut dropped, mut duplicates, mut restarts, mut redeliveries) = (0, 0, 0, 0);
    for seed in 1..=6 {
        let config = config(seed, dir.path());
        assert_eq!(config.nemesis.to_spec(), "default");
        let result = run(&config).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let checks = check_all(&result.history);
        assert_eq!(
            overall(&checks),
            Verdict::Valid,
            "seed {seed}: {}\nreproduce: {}",
            summary(&checks),
            config.reproduce()
        );
        // The recorded history re-checks to the same verdicts offline.
        let back = read_history(&config.out.join("history.jsonl")).unwrap();
        let again = check_all(&back.history);
        let verdicts = |c: &[Check]| c.iter().map(|c| c.verdict).collect::<Vec<_>>();
        assert_eq!(
            verdicts(&again),
            verdicts(&checks),
            "seed {seed}: {}",
            summary(&again)
        );
        let net = result.history.network.expect("network counters");
        dropped += net.dropped;
        duplicates += net.duplicates_delivered;
        restarts += result.links.resets;
        redeliveries += result
            .history
            .probes
            .iter()
            .filter(|p| p.probe == ProbeKind::Redeliver)
            .count();
    }
    // The nemesis did bite, and the driver had to recover from it.
    assert!(dropped > 0, "no sync message was lost");
    assert!(duplicates > 0, "no duplicate was delivered");
    assert!(restarts > 0, "no link ever restarted");
    assert!(redeliveries > 0, "no redelivery probe ran");
}

fn assert_caught(fault: AutomergeFault, must_fail: &str) {
    let dir = tempfile::tempdir().unwrap();
    for seed in 1..=3 {
        let mut config = config(seed, dir.path());
        config.fault = Some(fault);
        let result = run(&config).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let checks = check_all(&result.history);
        assert_eq!(
            verdict_of(&checks, must_fail),
            Verdict::Invalid,
            "{} seed {seed} not caught by {must_fail}: {}",
            fault.name(),
            summary(&checks)
        );
    }
}

#[test]
fn a_sync_wrapper_that_drops_every_third_message_is_caught() {
    assert_caught(AutomergeFault::DropSync, "convergence");
}

#[test]
fn a_merge_that_replaces_the_document_is_caught() {
    assert_caught(AutomergeFault::ReplaceOnMerge, "idempotency");
}

#[test]
fn redelivered_sync_messages_and_re_merges_change_nothing() {
    let layout = Layout::new(2);
    let mut base = genesis(layout).unwrap();
    let mut a = Replica::new(0, &mut base, MergeMode::Merge).unwrap();
    let mut b = Replica::new(1, &mut base, MergeMode::Merge).unwrap();
    a.increment(0, 3).unwrap();
    a.put(1, 7).unwrap();
    b.put(1, 8).unwrap();
    b.insert(0, 9).unwrap();
    b.splice_insert(0, "\u{10000}\u{10001}").unwrap();
    let (mut sa, mut sb) = (State::new(), State::new());
    let mut to_b: Vec<Vec<u8>> = Vec::new();
    let mut to_a: Vec<Vec<u8>> = Vec::new();
    for _ in 0..20 {
        let ab = a.generate(&mut sa).map(Message::encode);
        let ba = b.generate(&mut sb).map(Message::encode);
        if ab.is_none() && ba.is_none() {
            break;
        }
        if let Some(bytes) = ab {
            b.receive(&mut sb, Message::decode(&bytes).unwrap())
                .unwrap();
            to_b.push(bytes);
        }
        if let Some(bytes) = ba {
            a.receive(&mut sa, Message::decode(&bytes).unwrap())
                .unwrap();
            to_a.push(bytes);
        }
    }
    let fa = a.fingerprint().unwrap();
    assert_eq!(fa, b.fingerprint().unwrap(), "a and b did not converge");
    assert_eq!(
        a.register_tags(1).unwrap().len(),
        2,
        "concurrent puts keep both values"
    );
    for bytes in &to_a {
        a.receive(&mut sa, Message::decode(bytes).unwrap()).unwrap();
        a.receive(&mut State::new(), Message::decode(bytes).unwrap())
            .unwrap();
    }
    for bytes in &to_b {
        b.receive(&mut State::new(), Message::decode(bytes).unwrap())
            .unwrap();
    }
    assert_eq!(a.fingerprint().unwrap(), fa, "re-delivery changed a");
    assert_eq!(b.fingerprint().unwrap(), fa, "re-delivery changed b");
    let mut itself = a.fork();
    a.merge_from(&mut itself).unwrap();
    let mut other = b.fork();
    a.merge_from(&mut other).unwrap();
    a.save_and_load().unwrap();
    assert_eq!(
        a.fingerprint().unwrap(),
        fa,
        "re-merge or save/load changed a"
    );
}

// ---- checkers on tiny literal histories ----

const PER_KIND: u32 = 1;

fn layout() -> Layout {
    Layout::new(PER_KIND)
}

fn history(keys: u32) -> History {
    History::new(Header {
        schema_version: SCHEMA_VERSION,
        seed: 0,
        workload: Workload::MvRegister,
        model: "automerge".into(),
        target: "automerge".into(),
        writers: 2,
        replicas: 2,
        keys,
        ops: 0,
        nemesis: "none".into(),
        reproduce: String::new(),
        linearizable: false,
    })
}

fn op(h: &mut History, f: Function, slot: Slot, value: u64, outcome: Outcome, observed: &[u64]) {
    let record = OpRecord {
        invoke_ns: h.ops.len() as u64,
        value: value as i64,
        aux: 0,
        latency_ns: 1,
        process: 0,
        key: layout().key(slot),
        slot: 0,
        clock_sum: 0,
        replica: 0,
        f,
        outcome,
    };
    let observed: Vec<Dot> = observed.iter().map(|t| Dot::new(0, *t)).collect();
    h.push(record, None, &observed, None).unwrap();
}

/// Both replicas read `reads` (plus equal heads and document hash); quiescent.
fn finish(h: &mut History, reads: &[(Slot, Value)]) {
    for replica in 0..2 {
        for (slot, value) in reads.iter().cloned().chain([
            (Slot::Heads, Value::Elems(vec![1, 2, 3, 4])),
            (Slot::Document, Value::Int(9)),
        ]) {
            h.finals.push(FinalRead {
                replica,
                key: layout().key(slot),
                value,
            });
        }
    }
    h.probes.push(Probe {
        probe: ProbeKind::SelfMerge,
        replica: 0,
        key: layout().key(Slot::Document),
        state_changed: false,
        before: None,
        after: None,
    });
    h.quiescence = Some(Quiescence {
        reached: true,
        rounds: 3,
        max_rounds: 10,
        convergence_ns: Some(1),
    });
}

/// A run where every write is acknowledged: c0 += 2, += 3; r0 = 1, then
/// r0 = 2 having seen 1, and r0 = 3 concurrently; list [10, 11] minus 10;
/// text gets one character.
fn acknowledged() -> History {
    let mut h = history(layout().total());
    let ops: [(Function, Slot, u64, &[u64]); 9] = [
        (Function::Increment, Slot::Counter(0), 2, &[]),
        (Function::Increment, Slot::Counter(0), 3, &[]),
        (Function::Write, Slot::Register(0), 1, &[]),
        (Function::Write, Slot::Register(0), 2, &[1]),
        (Function::Write, Slot::Register(0), 3, &[]),
        (Function::Add, Slot::List, 10, &[]),
        (Function::Add, Slot::List, 11, &[]),
        (Function::Remove, Slot::List, 10, &[10]),
        (Function::Add, Slot::Text, 0x10000, &[]),
    ];
    for (f, slot, value, observed) in ops {
        op(&mut h, f, slot, value, Outcome::Ok, observed);
    }
    h
}

fn correct_reads() -> Vec<(Slot, Value)> {
    vec![
        (Slot::Counter(0), Value::Int(5)),
        (Slot::Register(0), Value::Elems(vec![2, 3])),
        (Slot::List, Value::Elems(vec![11])),
        (Slot::Text, Value::Elems(vec![0x10000])),
    ]
}

fn with_read(slot: Slot, value: Value) -> Vec<(Slot, Value)> {
    correct_reads()
        .into_iter()
        .map(|(s, v)| {
            if s == slot {
                (s, value.clone())
            } else {
                (s, v)
            }
        })
        .collect()
}

#[test]
fn every_acknowledged_change_visible_is_valid() {
    let mut h = acknowledged();
    finish(&mut h, &correct_reads());
    let checks = check_all(&h);
    assert_eq!(overall(&checks), Verdict::Valid, "{}", summary(&checks));
}

#[test]
fn a_probe_that_changed_the_document_is_not_idempotent() {
    let mut h = acknowledged();
    finish(&mut h, &correct_reads());
    h.probes[0].state_changed = true;
    let checks = check_all(&h);
    assert_eq!(verdict_of(&checks, "idempotency"), Verdict::Invalid);
}

#[test]
fn a_counter_short_of_its_acknowledged_sum_is_lost() {
    let mut h = acknowledged();
    finish(&mut h, &with_read(Slot::Counter(0), Value::Int(4)));
    let check = data_loss(&h);
    assert_eq!(check.verdict, Verdict::Invalid, "{}", check.summary);
    assert_eq!(check.counts["lost"], 2, "one lost counter per replica");
}

#[test]
fn a_dropped_concurrent_value_is_lost_and_an_overwritten_one_unexpected() {
    let mut h = acknowledged();
    finish(
        &mut h,
        &with_read(Slot::Register(0), Value::Elems(vec![1, 2])),
    );
    let check = data_loss(&h);
    assert_eq!(check.verdict, Verdict::Invalid, "{}", check.summary);
    assert_eq!(check.counts["lost"], 2, "3 was concurrent and must stay");
    assert_eq!(check.counts["unexpected"], 2, "1 was overwritten by 2");
}

#[test]
fn list_elements_missing_resurrected_or_doubled_are_invalid() {
    for (reads, counter) in [
        (vec![], "lost"),
        (vec![10, 11], "unexpected"),
        (vec![11, 11], "duplicates_in_reads"),
        (vec![11, 99], "unexpected"),
    ] {
        let mut h = acknowledged();
        finish(&mut h, &with_read(Slot::List, Value::Elems(reads.clone())));
        let check = data_loss(&h);
        assert_eq!(
            check.verdict,
            Verdict::Invalid,
            "{reads:?}: {}",
            check.summary
        );
        assert!(
            check.counts[counter] > 0,
            "{reads:?} should count {counter}"
        );
    }
}

#[test]
fn an_indeterminate_increment_may_or_may_not_count() {
    for value in [5, 9] {
        let mut h = acknowledged();
        op(
            &mut h,
            Function::Increment,
            Slot::Counter(0),
            4,
            Outcome::Info,
            &[],
        );
        finish(&mut h, &with_read(Slot::Counter(0), Value::Int(value)));
        assert_eq!(data_loss(&h).verdict, Verdict::Valid, "value {value}");
    }
}

#[test]
fn different_heads_with_equal_values_do_not_converge() {
    let mut h = acknowledged();
    finish(&mut h, &correct_reads());
    let heads = layout().key(Slot::Heads);
    let mut finals: Vec<FinalRead> = h.finals.to_vec();
    let last = finals.iter_mut().rfind(|f| f.key == heads).unwrap();
    last.value = Value::Elems(vec![1, 2, 3, 5]);
    h.finals = finals.into_iter().collect();
    let checks = check_all(&h);
    assert_eq!(
        verdict_of(&checks, "convergence"),
        Verdict::Invalid,
        "{}",
        summary(&checks)
    );
    assert_eq!(verdict_of(&checks, "data-loss"), Verdict::Valid);
}

#[test]
fn no_quiescence_or_no_layout_is_unknown() {
    let mut h = acknowledged();
    finish(&mut h, &correct_reads());
    h.quiescence = Some(Quiescence {
        reached: false,
        rounds: 10,
        max_rounds: 10,
        convergence_ns: None,
    });
    let checks = check_all(&h);
    assert_eq!(verdict_of(&checks, "convergence"), Verdict::Unknown);
    assert_eq!(verdict_of(&checks, "data-loss"), Verdict::Unknown);

    let mut odd = history(5);
    odd.quiescence = h.quiescence;
    assert_eq!(data_loss(&odd).verdict, Verdict::Unknown);
}

// ---- the command line ----

#[test]
fn the_cli_runs_rechecks_and_lists_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let small = |extra: &[&'static str]| {
        let mut args = vec!["--target", "automerge"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--writers",
            "8",
            "--replicas",
            "3",
            "--ops",
            "200",
            "--seed",
            "5",
        ]);
        args
    };
    let run = common::run_into(&out, &small(&[]));
    run.expect_code(0).no_panic();
    assert_eq!(run.seed(), 5);
    let report = common::read_json(&out.join("report.json"));
    assert_eq!(common::string(&report, "target"), "automerge");
    common::cli(["check".as_ref(), out.join("history.jsonl").as_os_str()])
        .expect_code(0)
        .no_panic();

    let bad = dir.path().join("bad");
    common::run_into(&bad, &small(&["--fault", "automerge-drop-sync"]))
        .expect_code(1)
        .mentions("reproduce: converge run --target automerge --fault automerge-drop-sync");
    common::cli(["check".as_ref(), bad.join("history.jsonl").as_os_str()]).expect_code(1);
    // The target is a seeded simulation: both runs replay from their
    // headers to the same history (only wall-clock fields differ).
    for stored in [&out, &bad] {
        common::cli(["replay".as_ref(), stored.as_os_str()])
            .no_panic()
            .expect_code(0)
            .mentions("identical");
    }

    let faults = common::cli(["list", "faults"]);
    faults.expect_code(0);
    for f in AutomergeFault::ALL {
        faults.mentions(f.name());
    }
    common::cli(["run", "--target", "automerge", "--workload", "or-set"])
        .expect_code(3)
        .mentions("fixed mix");
    common::cli([
        "run",
        "--target",
        "automerge",
        "--fault",
        "remove-wins-or-set",
    ])
    .expect_code(3)
    .mentions("automerge-drop-sync");
}
