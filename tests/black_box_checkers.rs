//! The checks for black-box targets (read bounds, monotonic reads, and the
//! OR-Set / LWW / MV rules that need no dots or clocks) on tiny literal
//! histories: valid, invalid and undecided cases for each.

mod common;

use converge::checker::{bounds, check_all, idempotency, monotonic, opaque, overall, Check};
use converge::history::{
    FinalRead, Function, Header, History, OpRecord, Outcome, Quiescence, SCHEMA_VERSION,
    UNKNOWN_AUX,
};
use converge::models::{Value, Workload};
use converge::Verdict;

fn header(workload: Workload, nemesis: &str) -> Header {
    header_on("maelstrom", workload, nemesis)
}

fn header_on(target: &str, workload: Workload, nemesis: &str) -> Header {
    Header {
        schema_version: SCHEMA_VERSION,
        seed: 1,
        workload,
        model: "nodes/x.py".into(),
        target: target.into(),
        writers: 2,
        replicas: 2,
        keys: 1,
        ops: 0,
        nemesis: nemesis.into(),
        reproduce: String::new(),
        linearizable: false,
    }
}

/// `f` on `replica`, invoked at `t` and returning at `t + 1`.
fn op(f: Function, outcome: Outcome, replica: u16, value: i64, t: u64) -> OpRecord {
    OpRecord {
        invoke_ns: t,
        value,
        aux: UNKNOWN_AUX,
        latency_ns: 1,
        process: 0,
        key: 0,
        clock_sum: 0,
        slot: 0,
        replica,
        f,
        outcome,
    }
}

struct Hb(History);

impl Hb {
    fn new(workload: Workload) -> Self {
        Hb(History::new(header(workload, "partition")))
    }

    /// A history recorded by `target` (maelstrom, http, sql, in-process).
    fn on(target: &str, workload: Workload) -> Self {
        Hb(History::new(header_on(target, workload, "partition")))
    }

    fn with_nemesis(workload: Workload, nemesis: &str) -> Self {
        Hb(History::new(header(workload, nemesis)))
    }

    fn op(mut self, record: OpRecord) -> Self {
        self.0.push(record, None, &[], None).unwrap();
        self
    }

    fn read(mut self, replica: u16, value: Value, t: u64) -> Self {
        let record = op(Function::Read, Outcome::Ok, replica, 0, t);
        self.0.push(record, None, &[], Some(value)).unwrap();
        self
    }

    fn fin(mut self, replica: u16, value: Value) -> Self {
        self.0.finals.push(FinalRead {
            replica,
            key: 0,
            value,
        });
        self
    }

    fn quiesced(mut self, reached: bool) -> History {
        self.0.quiescence = Some(Quiescence {
            reached,
            rounds: 3,
            max_rounds: 10,
            convergence_ns: None,
        });
        self.0
    }
}

fn add(replica: u16, delta: i64, t: u64) -> OpRecord {
    op(Function::Increment, Outcome::Ok, replica, delta, t)
}

fn elems(e: &[u64]) -> Value {
    Value::Elems(e.to_vec())
}

// ---------------------------------------------------------------------------
// read-bounds

#[test]
fn counter_read_within_the_deltas_invoked_before_it_is_valid() {
    let h = Hb::new(Workload::PnCounter)
        .op(add(0, 5, 10))
        .op(add(1, -2, 20))
        .read(0, Value::Int(3), 30)
        .read(1, Value::Int(-2), 31)
        .fin(0, Value::Int(3))
        .quiesced(true);
    let c = bounds::check(&h);
    assert_eq!(c.verdict, Verdict::Valid, "{c:?}");
    assert_eq!(c.counts["reads"], 3);
}

#[test]
fn counter_read_above_every_delta_invoked_before_it_is_invalid() {
    // 7 > 5: only the add of 5 was invoked before the read returned; the
    // add of 2 came later.
    let h = Hb::new(Workload::GCounter)
        .op(add(0, 5, 10))
        .read(1, Value::Int(7), 20)
        .op(add(0, 2, 40))
        .fin(0, Value::Int(7))
        .quiesced(true);
    let c = bounds::check(&h);
    assert_eq!(c.verdict, Verdict::Invalid, "{c:?}");
    assert_eq!(c.counts["out_of_bounds"], 1);
    assert!(c.findings[0].message.contains("read 7"), "{c:?}");
}

#[test]
fn info_deltas_count_as_possibly_applied_and_failed_ones_do_not() {
    let h = Hb::new(Workload::GCounter)
        .op(op(Function::Increment, Outcome::Info, 0, 4, 10))
        .read(1, Value::Int(4), 20)
        .quiesced(true);
    assert_eq!(bounds::check(&h).verdict, Verdict::Valid);
    let h = Hb::new(Workload::GCounter)
        .op(op(Function::Increment, Outcome::Fail, 0, 4, 10))
        .read(1, Value::Int(4), 20)
        .quiesced(true);
    assert_eq!(bounds::check(&h).verdict, Verdict::Invalid);
}

#[test]
fn set_read_of_an_element_not_yet_added_is_invalid() {
    let early = Hb::new(Workload::GSet)
        .read(0, elems(&[9]), 5)
        .op(op(Function::Add, Outcome::Ok, 1, 9, 10))
        .quiesced(true);
    assert_eq!(bounds::check(&early).verdict, Verdict::Invalid);
    let after = Hb::new(Workload::GSet)
        .op(op(Function::Add, Outcome::Ok, 1, 9, 10))
        .read(0, elems(&[9]), 15)
        .quiesced(true);
    assert_eq!(bounds::check(&after).verdict, Verdict::Valid);
}

// ---------------------------------------------------------------------------
// monotonic reads

#[test]
fn a_g_counter_read_that_goes_back_on_its_node_is_invalid() {
    let h = Hb::new(Workload::GCounter)
        .op(add(0, 5, 1))
        .read(0, Value::Int(5), 10)
        .read(0, Value::Int(3), 20)
        .quiesced(true);
    let c = monotonic::check(&h);
    assert_eq!(c.verdict, Verdict::Invalid, "{c:?}");
    assert_eq!(c.counts["decreases"], 1);
}

#[test]
fn reads_on_different_nodes_or_overlapping_in_time_may_differ() {
    let h = Hb::new(Workload::GCounter)
        .op(add(0, 5, 1))
        .read(0, Value::Int(5), 10)
        .read(1, Value::Int(3), 20)
        .quiesced(true);
    assert_ne!(monotonic::check(&h).verdict, Verdict::Invalid);
    // Both reads in flight at once on one node: neither came first.
    let mut h = Hb::new(Workload::GCounter).op(add(0, 5, 1));
    let mut slow = op(Function::Read, Outcome::Ok, 0, 0, 10);
    slow.latency_ns = 100;
    h.0.push(slow, None, &[], Some(Value::Int(5))).unwrap();
    let h = h.read(0, Value::Int(3), 20).quiesced(true);
    assert_ne!(monotonic::check(&h).verdict, Verdict::Invalid);
    // The later read on node 0 is judged: a read that returned before it.
    let h = Hb::new(Workload::GCounter)
        .op(add(0, 5, 1))
        .read(0, Value::Int(3), 10)
        .read(0, Value::Int(5), 20)
        .quiesced(true);
    let c = monotonic::check(&h);
    assert_eq!(c.verdict, Verdict::Valid, "{c:?}");
    assert_eq!(c.counts["judged"], 1, "{c:?}");
}

#[test]
fn monotonic_reads_are_skipped_when_crashes_restart_nodes_empty() {
    let h = Hb::with_nemesis(Workload::GCounter, "partition,crash")
        .op(add(0, 5, 1))
        .read(0, Value::Int(5), 10)
        .read(0, Value::Int(0), 20)
        .quiesced(true);
    let c = monotonic::check(&h);
    // Skipped is not judged: never a pass.
    assert_eq!(c.verdict, Verdict::Unknown);
    assert!(c.not_judged, "{c:?}");
    assert!(c.summary.contains("skipped"), "{c:?}");
}

// ---------------------------------------------------------------------------
// opaque data loss

#[test]
fn or_set_add_with_no_later_remove_must_survive() {
    let base = || {
        Hb::new(Workload::OrSet)
            .op(op(Function::Remove, Outcome::Ok, 0, 1, 5))
            .op(op(Function::Add, Outcome::Ok, 1, 1, 10))
    };
    let lost = base().fin(0, elems(&[])).fin(1, elems(&[])).quiesced(true);
    let c = opaque::check(&lost);
    assert_eq!(c.verdict, Verdict::Invalid, "{c:?}");
    assert_eq!(c.counts["lost"], 2);
    let kept = base()
        .fin(0, elems(&[1]))
        .fin(1, elems(&[1]))
        .quiesced(true);
    assert_eq!(opaque::check(&kept).verdict, Verdict::Valid);
    // A remove invoked after the add may have observed it: absent is no
    // loss, but nothing is left to judge either.
    let removed = base()
        .op(op(Function::Remove, Outcome::Ok, 0, 1, 20))
        .fin(0, elems(&[]))
        .quiesced(true);
    let c = opaque::check(&removed);
    assert_eq!(c.counts["lost"], 0, "{c:?}");
    assert!(c.not_judged, "{c:?}");
}

#[test]
fn final_value_nobody_wrote_is_unexpected_and_no_quiescence_is_unknown() {
    let h = Hb::new(Workload::OrSet).fin(0, elems(&[42])).quiesced(true);
    let c = opaque::check(&h);
    assert_eq!(c.verdict, Verdict::Invalid);
    assert_eq!(c.counts["unexpected"], 1);
    let h = Hb::new(Workload::OrSet)
        .op(op(Function::Add, Outcome::Ok, 1, 1, 10))
        .fin(0, elems(&[]))
        .quiesced(false);
    assert_eq!(opaque::check(&h).verdict, Verdict::Unknown);
}

#[test]
fn lww_final_value_must_carry_the_greatest_reported_timestamp() {
    let write = |replica, value, t, ts| {
        let mut w = op(Function::Write, Outcome::Ok, replica, value, t);
        w.aux = ts;
        w
    };
    let h = |final_value: u64| {
        Hb::new(Workload::LwwRegister)
            .op(write(0, 1, 10, 500))
            .op(write(1, 2, 11, 400))
            .fin(0, elems(&[final_value]))
            .fin(1, elems(&[final_value]))
            .quiesced(true)
    };
    assert_eq!(opaque::check(&h(1)).verdict, Verdict::Valid);
    let c = opaque::check(&h(2));
    assert_eq!(c.verdict, Verdict::Invalid, "{c:?}");
    assert!(
        c.findings[0].message.contains("greatest timestamp"),
        "{c:?}"
    );
}

#[test]
fn lww_rules_are_judged_per_key_and_findings_name_the_key_and_its_ops() {
    // Key 0: writes 1 (ts 500, replica 0) then 2 (ts 400, replica 1); key
    // 1: write 3 (ts 100). Key-blind, the greatest timestamp of key 0 would
    // condemn key 1's value.
    let write = |key, replica, value, t, ts| {
        let mut w = op(Function::Write, Outcome::Ok, replica, value, t);
        w.key = key;
        w.aux = ts;
        w
    };
    let h = |key0_final: u64| {
        let mut h = Hb::new(Workload::LwwRegister)
            .op(write(0, 0, 1, 10, 500))
            .op(write(1, 0, 3, 11, 100))
            .op(write(0, 1, 2, 12, 400))
            .quiesced(true);
        for (key, value) in [(0, key0_final), (1, 3)] {
            h.finals.push(FinalRead {
                replica: 0,
                key,
                value: elems(&[value]),
            });
        }
        h
    };
    let c = opaque::check(&h(1));
    assert_eq!(c.verdict, Verdict::Valid, "{c:?}");
    let c = opaque::check(&h(2));
    assert_eq!(c.verdict, Verdict::Invalid, "{c:?}");
    assert_eq!(c.findings[0].key, Some(0), "{c:?}");
    // The op index is the write of 1 in the whole history, not in key 0's part.
    assert_eq!(c.findings[0].ops, vec![0], "{c:?}");
    assert_eq!(c.counts["lost"], 1, "{c:?}");
}

#[test]
fn lww_without_timestamps_still_knows_a_later_write_on_the_same_node_wins() {
    let h = Hb::new(Workload::LwwRegister)
        .op(op(Function::Write, Outcome::Ok, 0, 1, 10))
        .op(op(Function::Write, Outcome::Ok, 0, 2, 20))
        .fin(0, elems(&[1]))
        .quiesced(true);
    assert_eq!(opaque::check(&h).verdict, Verdict::Invalid);
    let h = Hb::new(Workload::LwwRegister)
        .op(op(Function::Write, Outcome::Ok, 0, 1, 10))
        .op(op(Function::Write, Outcome::Ok, 1, 2, 20))
        .fin(0, elems(&[1]))
        .quiesced(true);
    assert_eq!(opaque::check(&h).verdict, Verdict::Valid);
}

#[test]
fn mv_write_no_context_could_cover_must_survive() {
    // aux of an MV write: when the read that gave its context returned.
    let write = |replica, value, t, context_read| {
        let mut w = op(Function::Write, Outcome::Ok, replica, value, t);
        w.aux = context_read;
        w
    };
    // Write 2 (t=20) was based on a read at 5, before write 1 (t=10)
    // existed: the two are concurrent siblings, both must survive.
    let concurrent = || {
        Hb::new(Workload::MvRegister)
            .op(write(0, 1, 10, 0))
            .op(write(1, 2, 20, 5))
    };
    let dropped = concurrent().fin(0, elems(&[2])).quiesced(true);
    assert_eq!(opaque::check(&dropped).verdict, Verdict::Invalid);
    let both = concurrent().fin(0, elems(&[1, 2])).quiesced(true);
    assert_eq!(opaque::check(&both).verdict, Verdict::Valid);
    // Write 2 based on a read at 15, after write 1 was invoked: it may
    // supersede write 1.
    let superseded = Hb::new(Workload::MvRegister)
        .op(write(0, 1, 10, 0))
        .op(write(1, 2, 20, 15))
        .fin(0, elems(&[2]))
        .quiesced(true);
    assert_eq!(opaque::check(&superseded).verdict, Verdict::Valid);
}

#[test]
fn check_all_on_a_black_box_history_has_no_idempotency_probe_to_demand() {
    let h = Hb::new(Workload::GCounter)
        .op(add(0, 5, 1))
        .fin(0, Value::Int(5))
        .fin(1, Value::Int(5))
        .quiesced(true);
    let checks = check_all(&h);
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["convergence", "read-bounds", "data-loss", "monotonic-reads"]
    );
    // No in-run read: monotonic reads judged nothing, which is shown as
    // such and leaves the verdict to the checks that judged something.
    let monotonic = &checks[3];
    assert!(monotonic.not_judged, "{monotonic:?}");
    assert!(
        checks[..3].iter().all(|c| c.verdict == Verdict::Valid),
        "{checks:#?}"
    );
    assert_eq!(overall(&checks), Verdict::Valid);
}

// ---------------------------------------------------------------------------
// Issue 13: a sound black-box rule for every workload, on every target kind
// that records it. Each case runs in both directions.

/// Targets that record each workload.
const COUNTER_TARGETS: [&str; 3] = ["maelstrom", "http", "sql"];
const SET_TARGETS: [&str; 3] = ["maelstrom", "http", "sql"];
const REGISTER_TARGETS: [&str; 3] = ["maelstrom", "http", "sql"];

fn data_loss_of(h: &History) -> Check {
    check_all(h)
        .into_iter()
        .find(|c| c.name == "data-loss")
        .expect("a data-loss check")
}

/// `f` with outcome `outcome` on `replica` over [t, t + latency].
fn timed(
    f: Function,
    outcome: Outcome,
    replica: u16,
    value: i64,
    t: u64,
    latency: u64,
) -> OpRecord {
    let mut o = op(f, outcome, replica, value, t);
    o.latency_ns = latency;
    o
}

#[test]
fn two_p_set_acknowledged_adds_missing_from_every_final_read_are_lost() {
    // 2P-Set runs on the sql and http targets (and in-process, which has
    // its own rule); the same history is invalid on each.
    for target in ["sql", "http", "in-process"] {
        let base = || {
            Hb::on(target, Workload::TwoPSet)
                .op(op(Function::Add, Outcome::Ok, 0, 1, 10))
                .op(op(Function::Add, Outcome::Ok, 1, 2, 20))
                .op(op(Function::Add, Outcome::Ok, 0, 3, 30))
        };
        let lost = base().fin(0, elems(&[])).fin(1, elems(&[])).quiesced(true);
        let c = data_loss_of(&lost);
        assert_eq!(c.verdict, Verdict::Invalid, "{target}: {c:?}");
        assert_eq!(c.counts["lost"], 6, "{target}: {c:?}");
        let kept = base()
            .fin(0, elems(&[1, 2, 3]))
            .fin(1, elems(&[1, 2, 3]))
            .quiesced(true);
        let c = data_loss_of(&kept);
        assert_eq!(c.verdict, Verdict::Valid, "{target}: {c:?}");
    }
}

#[test]
fn two_p_set_removes_only_excuse_adds_they_could_have_seen() {
    // Add of 1 over [10, 11]. A remove is an excuse when it is ok or info
    // and did not return before the add was called.
    // Element 2, never removed, must survive and does: the check judged it.
    let with_remove = |remove: OpRecord| {
        Hb::on("sql", Workload::TwoPSet)
            .op(remove)
            .op(op(Function::Add, Outcome::Ok, 1, 1, 10))
            .op(op(Function::Add, Outcome::Ok, 1, 2, 12))
            .fin(0, elems(&[2]))
            .fin(1, elems(&[2]))
            .quiesced(true)
    };
    let excused = [
        (
            "ok remove after the add",
            timed(Function::Remove, Outcome::Ok, 0, 1, 20, 1),
        ),
        (
            "ok remove overlapping the add",
            timed(Function::Remove, Outcome::Ok, 0, 1, 5, 10),
        ),
        (
            "info remove after the add",
            timed(Function::Remove, Outcome::Info, 0, 1, 20, 1),
        ),
        (
            "info remove called before the add",
            timed(Function::Remove, Outcome::Info, 0, 1, 2, 1),
        ),
    ];
    for (what, remove) in excused {
        let c = data_loss_of(&with_remove(remove));
        assert_eq!(c.verdict, Verdict::Valid, "{what}: {c:?}");
    }
    let no_excuse = [
        (
            "failed remove after the add",
            timed(Function::Remove, Outcome::Fail, 0, 1, 20, 1),
        ),
        (
            "ok remove entirely before the add",
            timed(Function::Remove, Outcome::Ok, 0, 1, 2, 1),
        ),
    ];
    for (what, remove) in no_excuse {
        let c = data_loss_of(&with_remove(remove));
        assert_eq!(c.verdict, Verdict::Invalid, "{what}: {c:?}");
        assert_eq!(c.counts["lost"], 2, "{what}: {c:?}");
    }
}

#[test]
fn or_set_a_failed_remove_is_no_excuse_for_a_missing_add() {
    for target in SET_TARGETS {
        // Element 2, never removed, is judged in every case.
        let h = |remove: Outcome, fin: &[u64]| {
            Hb::on(target, Workload::OrSet)
                .op(op(Function::Add, Outcome::Ok, 1, 1, 10))
                .op(op(Function::Add, Outcome::Ok, 1, 2, 12))
                .op(op(Function::Remove, remove, 0, 1, 20))
                .fin(0, elems(fin))
                .fin(1, elems(fin))
                .quiesced(true)
        };
        let c = data_loss_of(&h(Outcome::Fail, &[2]));
        assert_eq!(c.verdict, Verdict::Invalid, "{target}: {c:?}");
        assert_eq!(c.counts["lost"], 2, "{target}: {c:?}");
        assert_eq!(
            data_loss_of(&h(Outcome::Fail, &[1, 2])).verdict,
            Verdict::Valid
        );
        // The same remove acknowledged may have observed the add.
        assert_eq!(data_loss_of(&h(Outcome::Ok, &[2])).verdict, Verdict::Valid);
    }
}

#[test]
fn or_set_a_remove_whose_call_overlaps_the_add_may_have_observed_it() {
    for target in SET_TARGETS {
        // Remove over [5, 50] covers the whole add [10, 11]: it may have
        // seen the add and removed its dot.
        let h = |remove: OpRecord| {
            Hb::on(target, Workload::OrSet)
                .op(remove)
                .op(op(Function::Add, Outcome::Ok, 1, 1, 10))
                .op(op(Function::Add, Outcome::Ok, 1, 2, 12))
                .fin(0, elems(&[2]))
                .fin(1, elems(&[2]))
                .quiesced(true)
        };
        let overlapping = timed(Function::Remove, Outcome::Ok, 0, 1, 5, 45);
        let c = data_loss_of(&h(overlapping));
        assert_eq!(c.verdict, Verdict::Valid, "{target}: {c:?}");
        // Returned before the add was called: it could not see it.
        let before = timed(Function::Remove, Outcome::Ok, 0, 1, 5, 2);
        let c = data_loss_of(&h(before));
        assert_eq!(c.verdict, Verdict::Invalid, "{target}: {c:?}");
    }
}

#[test]
fn or_set_an_info_remove_may_take_effect_later() {
    for target in SET_TARGETS {
        // Called (and timed out) before the add was called; it may still
        // arrive after the add and remove it.
        let h = Hb::on(target, Workload::OrSet)
            .op(timed(Function::Remove, Outcome::Info, 0, 1, 2, 1))
            .op(op(Function::Add, Outcome::Ok, 1, 1, 10))
            .fin(0, elems(&[]))
            .fin(1, elems(&[]))
            .quiesced(true);
        let c = data_loss_of(&h);
        assert_eq!(c.counts["lost"], 0, "{target}: {c:?}");
        // Every acknowledged add was excused and is gone: nothing was
        // judged, so the run is not valid either.
        assert!(c.not_judged, "{target}: {c:?}");
        assert_eq!(c.verdict, Verdict::Unknown, "{target}: {c:?}");
        assert_eq!(overall(&check_all(&h)), Verdict::Unknown);
        // With an add that must survive and does, the same remove is valid.
        let h = Hb::on(target, Workload::OrSet)
            .op(timed(Function::Remove, Outcome::Info, 0, 1, 2, 1))
            .op(op(Function::Add, Outcome::Ok, 1, 1, 10))
            .op(op(Function::Add, Outcome::Ok, 1, 2, 12))
            .fin(0, elems(&[2]))
            .fin(1, elems(&[2]))
            .quiesced(true);
        assert_eq!(data_loss_of(&h).verdict, Verdict::Valid, "{target}");
    }
}

#[test]
fn lww_an_empty_final_read_after_an_acknowledged_write_is_a_loss() {
    for target in REGISTER_TARGETS {
        let h = |write: Outcome| {
            Hb::on(target, Workload::LwwRegister)
                .op(op(Function::Write, write, 0, 7, 10))
                .fin(0, elems(&[]))
                .fin(1, elems(&[]))
                .quiesced(true)
        };
        let c = data_loss_of(&h(Outcome::Ok));
        assert_eq!(c.verdict, Verdict::Invalid, "{target}: {c:?}");
        assert_eq!(c.counts["lost"], 2, "{target}: {c:?}");
        // A write that failed never happened; one that timed out may not have.
        for outcome in [Outcome::Fail, Outcome::Info] {
            let c = data_loss_of(&h(outcome));
            assert_eq!(c.verdict, Verdict::Valid, "{target} {outcome:?}: {c:?}");
        }
    }
}

#[test]
fn lww_a_final_read_with_two_values_is_unexpected() {
    for target in REGISTER_TARGETS {
        let h = |fin: &[u64]| {
            Hb::on(target, Workload::LwwRegister)
                .op(op(Function::Write, Outcome::Ok, 0, 1, 10))
                .op(op(Function::Write, Outcome::Ok, 1, 2, 10))
                .fin(0, elems(fin))
                .fin(1, elems(fin))
                .quiesced(true)
        };
        let c = data_loss_of(&h(&[1, 2]));
        assert_eq!(c.verdict, Verdict::Invalid, "{target}: {c:?}");
        assert!(c.counts["unexpected"] >= 2, "{target}: {c:?}");
        let c = data_loss_of(&h(&[2]));
        assert_eq!(c.verdict, Verdict::Valid, "{target}: {c:?}");
        assert_eq!(c.judged.as_ref().map(|j| j.judged), Some(2), "{c:?}");
    }
}

#[test]
fn a_value_only_a_failed_write_wrote_is_unexpected() {
    for target in REGISTER_TARGETS {
        let h = |outcome: Outcome| {
            Hb::on(target, Workload::LwwRegister)
                .op(op(Function::Write, outcome, 0, 9, 10))
                .fin(0, elems(&[9]))
                .quiesced(true)
        };
        assert_eq!(data_loss_of(&h(Outcome::Fail)).verdict, Verdict::Invalid);
        assert_eq!(data_loss_of(&h(Outcome::Info)).verdict, Verdict::Valid);
    }
}

#[test]
fn mv_register_judges_every_acknowledged_write_against_the_final_siblings() {
    let write = |replica, value, t, context_read| {
        let mut w = op(Function::Write, Outcome::Ok, replica, value, t);
        w.aux = context_read;
        w
    };
    for target in REGISTER_TARGETS {
        // Write 3's context was read at 35, after writes 1 and 2 were
        // called: the final sibling 3 may cover both. The old rule judged
        // only writes called after the latest context (write 3 alone).
        let base = || {
            Hb::on(target, Workload::MvRegister)
                .op(write(0, 1, 10, 0))
                .op(write(1, 2, 20, 0))
                .op(write(0, 3, 40, 35))
        };
        let c = data_loss_of(&base().fin(0, elems(&[3])).quiesced(true));
        assert_eq!(c.verdict, Verdict::Valid, "{target}: {c:?}");
        assert_eq!(c.counts["judged"], 3, "{target}: {c:?}");
        assert_eq!(c.counts["total"], 3, "{target}: {c:?}");
        // A write whose context was read late but which is not a final
        // sibling covers nothing: write 4 (context 55) is absent, and the
        // sibling 5 was based on a read at 5, before writes 1..4.
        let h = base()
            .op(write(1, 4, 60, 55))
            .op(write(0, 5, 70, 5))
            .fin(0, elems(&[5]))
            .quiesced(true);
        let c = data_loss_of(&h);
        assert_eq!(c.verdict, Verdict::Invalid, "{target}: {c:?}");
        assert_eq!(c.counts["lost"], 4, "{target}: {c:?}");
    }
}

#[test]
fn counter_read_bounds_are_per_key() {
    for target in COUNTER_TARGETS {
        // Key 0 got +5, key 1 only +1: a read of 6 on key 1 is out of
        // bounds, though the pooled sum of deltas is 6.
        let h = |read: i64| {
            let mut one = add(0, 1, 5);
            one.key = 1;
            let mut r = op(Function::Read, Outcome::Ok, 0, 0, 20);
            r.key = 1;
            let mut h = Hb::on(target, Workload::GCounter).op(add(0, 5, 1)).op(one);
            h.0.push(r, None, &[], Some(Value::Int(read))).unwrap();
            h.quiesced(true)
        };
        let c = bounds::check(&h(6));
        assert_eq!(c.verdict, Verdict::Invalid, "{target}: {c:?}");
        assert_eq!(c.findings[0].key, Some(1), "{c:?}");
        let c = bounds::check(&h(1));
        assert_eq!(c.verdict, Verdict::Valid, "{target}: {c:?}");
    }
}

#[test]
fn applied_more_than_once_is_said_only_of_a_g_counter() {
    let h = |workload| {
        Hb::on("http", workload)
            .op(add(0, 5, 1))
            .fin(0, Value::Int(10))
            .fin(1, Value::Int(10))
            .quiesced(true)
    };
    let g = idempotency::black_box(&h(Workload::GCounter));
    assert_eq!(g.verdict, Verdict::Invalid, "{g:?}");
    assert!(
        g.findings[0].message.contains("applied more than once"),
        "{g:?}"
    );
    assert!(!g.findings[0].message.contains("decrement"), "{g:?}");
    let pn = idempotency::black_box(&h(Workload::PnCounter));
    assert_eq!(pn.verdict, Verdict::Invalid, "{pn:?}");
    assert!(
        pn.findings[0].message.contains("decrement was lost"),
        "{pn:?}"
    );
    let c = data_loss_of(&h(Workload::PnCounter));
    assert!(
        c.findings[0].message.contains("or a decrement lost"),
        "{c:?}"
    );
}

#[test]
fn idempotency_of_a_set_on_http_is_not_judged() {
    let h = Hb::on("http", Workload::GSet)
        .op(op(Function::Add, Outcome::Ok, 0, 1, 1))
        .fin(0, elems(&[1]))
        .fin(1, elems(&[1]))
        .quiesced(true);
    let checks = check_all(&h);
    let idem = checks.iter().find(|c| c.name == "idempotency").unwrap();
    assert!(idem.not_judged, "{idem:?}");
    assert_eq!(idem.verdict, Verdict::Unknown);
    // Not counted as a pass, nor as a reason to doubt the judged checks.
    assert_eq!(overall(&checks), Verdict::Valid, "{checks:#?}");
}

#[test]
fn g_set_acknowledged_add_missing_is_lost_on_every_target() {
    for target in SET_TARGETS {
        let h = |fin: &[u64]| {
            Hb::on(target, Workload::GSet)
                .op(op(Function::Add, Outcome::Ok, 0, 1, 1))
                .op(op(Function::Add, Outcome::Fail, 0, 2, 3))
                .fin(0, elems(fin))
                .fin(1, elems(fin))
                .quiesced(true)
        };
        assert_eq!(data_loss_of(&h(&[])).verdict, Verdict::Invalid, "{target}");
        assert_eq!(data_loss_of(&h(&[1])).verdict, Verdict::Valid, "{target}");
    }
}

#[test]
fn lww_map_field_with_an_acknowledged_put_must_survive() {
    let put = |outcome, field: u32, value: i64, t| {
        let mut p = op(Function::Put, outcome, 0, value, t);
        p.slot = field;
        p
    };
    let h = |fin: Value, delete: Option<Outcome>| {
        let mut h = Hb::on("sql", Workload::LwwMap).op(put(Outcome::Ok, 3, 7, 10));
        if let Some(outcome) = delete {
            let mut d = op(Function::Delete, outcome, 1, 0, 20);
            d.slot = 3;
            h = h.op(d);
        }
        h.fin(0, fin).quiesced(true)
    };
    let c = opaque::check(&h(Value::Map(vec![]), None));
    assert_eq!(c.verdict, Verdict::Invalid, "{c:?}");
    assert_eq!(
        opaque::check(&h(Value::Map(vec![(3, 7)]), None)).verdict,
        Verdict::Valid
    );
    assert_eq!(
        opaque::check(&h(Value::Map(vec![]), Some(Outcome::Ok))).verdict,
        Verdict::Valid
    );
    // A failed delete never happened.
    assert_eq!(
        opaque::check(&h(Value::Map(vec![]), Some(Outcome::Fail))).verdict,
        Verdict::Invalid
    );
    // A value no put wrote there.
    assert_eq!(
        opaque::check(&h(Value::Map(vec![(3, 8)]), None)).verdict,
        Verdict::Invalid
    );
}

#[test]
fn a_replica_without_a_final_read_leaves_convergence_unknown() {
    // Two replicas in the header. Replica 0 read twice stands in for
    // nobody: replica 1 was never read.
    for target in COUNTER_TARGETS {
        let h = |second: u16| {
            Hb::on(target, Workload::GCounter)
                .op(add(0, 5, 1))
                .fin(0, Value::Int(5))
                .fin(second, Value::Int(5))
                .quiesced(true)
        };
        let c = convergence_of(&h(0));
        assert_eq!(c.verdict, Verdict::Unknown, "{target}: {c:?}");
        assert!(c.summary.contains("1 replica(s) of 2"), "{c:?}");
        let c = convergence_of(&h(1));
        assert_eq!(c.verdict, Verdict::Valid, "{target}: {c:?}");
        assert_eq!(c.counts["judged"], 1, "{c:?}");
    }
}

fn convergence_of(h: &History) -> Check {
    converge::checker::convergence::check(h)
}

#[test]
fn a_history_with_nothing_to_judge_is_unknown_and_says_why() {
    let h = Hb::on("http", Workload::GCounter).quiesced(true);
    let checks = check_all(&h);
    assert_eq!(overall(&checks), Verdict::Unknown);
    assert!(checks.iter().all(|c| c.not_judged), "{checks:#?}");
    assert!(
        checks[0].summary.contains("nothing to judge"),
        "{checks:#?}"
    );
}

#[test]
fn a_data_loss_check_that_judged_nothing_never_passes_the_acceptance_table() {
    use converge::report::Report;
    // Never quiesced: data loss unknown, 0 events counted.
    let h = Hb::on("sql", Workload::TwoPSet)
        .op(op(Function::Add, Outcome::Ok, 0, 1, 1))
        .fin(0, elems(&[]))
        .quiesced(false);
    let checks = check_all(&h);
    let report = Report::build(&h, &checks, None);
    let rows = report.acceptance();
    let events = rows.iter().find(|r| r.0 == "data-loss events").unwrap();
    assert_ne!(events.3, Some(true), "{rows:?}");
    assert_ne!(events.2, "0", "{rows:?}");
    let md = report.markdown();
    assert!(!md.contains("| data-loss events | 0 | 0 | pass |"), "{md}");
    assert!(md.contains("not judged"), "{md}");
}

#[test]
fn every_check_shows_judged_over_total_in_report_md() {
    use converge::report::Report;
    let h = Hb::on("http", Workload::GCounter)
        .op(add(0, 5, 1))
        .read(0, Value::Int(5), 10)
        .read(0, Value::Int(5), 20)
        .fin(0, Value::Int(5))
        .fin(1, Value::Int(5))
        .quiesced(true);
    let checks = check_all(&h);
    let report = Report::build(&h, &checks, None);
    let md = report.markdown();
    assert!(
        md.contains("| check | verdict | judged | summary |"),
        "{md}"
    );
    for c in &report.checks {
        let j = c
            .judged
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no judged/total", c.name));
        assert!(md.contains(&j.to_string()), "{}: {md}", c.name);
    }
    let json = serde_json::to_value(&report).unwrap();
    let data_loss = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "data-loss")
        .unwrap();
    assert_eq!(data_loss["details"]["counts"]["judged"], 1, "{data_loss}");
    assert_eq!(data_loss["details"]["counts"]["total"], 1, "{data_loss}");
    // Black-box: conflicts were not measured, so they are null, not 0.
    assert!(json["counts"]["conflicts"].is_null(), "{json}");
}

#[test]
fn a_required_check_that_was_not_judged_fails_its_gate() {
    use converge::report::Report;
    use converge::slo::SloSpec;
    let h = Hb::with_nemesis(Workload::GCounter, "partition,crash")
        .op(add(0, 5, 1))
        .read(0, Value::Int(5), 10)
        .fin(0, Value::Int(5))
        .fin(1, Value::Int(5))
        .quiesced(true);
    let checks = check_all(&h);
    let mut report = Report::build(&h, &checks, None);
    assert_eq!(report.verdict, Verdict::Valid);
    let mut spec = SloSpec::parse_flags(&["require=monotonic-reads".into()]).unwrap();
    report.apply_slo(&spec);
    assert_eq!(report.verdict, Verdict::Invalid, "{:?}", report.slo);
    // Requiring a check that judged something passes.
    spec = SloSpec::parse_flags(&["require=data-loss,convergence".into()]).unwrap();
    let mut report = Report::build(&h, &checks, None);
    report.apply_slo(&spec);
    assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.slo);
    // A name that is no check is a configuration error.
    assert!(SloSpec::parse_flags(&["require=data-los".into()]).is_err());
}

#[test]
fn leak_gates_fail_a_leak_pass_a_flat_series_and_never_pass_unmeasured() {
    use converge::report::Report;
    use converge::series::memory_figures;
    use converge::slo::SloSpec;
    let h = Hb::with_nemesis(Workload::GCounter, "partition")
        .op(add(0, 5, 1))
        .read(0, Value::Int(5), 10)
        .fin(0, Value::Int(5))
        .fin(1, Value::Int(5))
        .quiesced(true);
    let checks = check_all(&h);
    // 30 one-second rows: the leak climbs 1 MB/s (60 MB/min), the flat
    // service wobbles around 80 MB.
    let leak: Vec<(f64, f64)> = (1..=30).map(|t| (t as f64, 50.0 + t as f64)).collect();
    let flat: Vec<(f64, f64)> = (1..=30)
        .map(|t| (t as f64, 80.0 + (t % 3) as f64 * 0.1))
        .collect();
    let spec = SloSpec::parse_flags(&[
        "service_leak_slope_mb_per_min=5".into(),
        "service_memory_growth_mb=10".into(),
        "leak_slope_mb_per_min=5".into(),
    ])
    .unwrap();
    let gate = |report: &Report, name: &str| {
        report
            .slo
            .iter()
            .find(|r| r.metric == name)
            .unwrap_or_else(|| panic!("no {name} row: {:?}", report.slo))
            .clone()
    };
    let judged = |target: &[(f64, f64)]| {
        let mut report = Report::build(&h, &checks, None);
        report.memory.converge = memory_figures(&flat);
        report.memory.target = memory_figures(target);
        report.apply_slo(&spec);
        report
    };
    let leaky = judged(&leak);
    assert_eq!(leaky.verdict, Verdict::Invalid, "{:?}", leaky.slo);
    let slope = gate(&leaky, "service_leak_slope_mb_per_min");
    assert_eq!(slope.status, Verdict::Invalid);
    assert!((slope.actual.unwrap() - 60.0).abs() < 1e-6, "{slope:?}");
    assert_eq!(gate(&leaky, "leak_slope_mb_per_min").status, Verdict::Valid);
    let fine = judged(&flat);
    assert_eq!(fine.verdict, Verdict::Valid, "{:?}", fine.slo);
    // Unmeasured target, and a series too short for a slope: unknown, not pass.
    let mut blind = Report::build(&h, &checks, None);
    blind.memory.converge = memory_figures(&flat[..3]);
    blind.apply_slo(&spec);
    assert_eq!(blind.verdict, Verdict::Unknown, "{:?}", blind.slo);
    assert!(blind.slo.iter().all(|r| r.status == Verdict::Unknown));
    let json = serde_json::to_value(&blind).unwrap();
    assert!(json["memory"]["target"].is_null(), "{json}");
    assert!(json["memory"]["converge"]["leak_slope_mb_per_min"].is_null());
    assert!(blind.markdown().contains("| target | not measured"));
}

// ---------------------------------------------------------------------------
// `converge check` on literal history files.

fn history_file(target: &str, body: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        r#"{{"type":"header","schema_version":1,"seed":7,"workload":"g-counter","model":"x","target":"{target}","writers":2,"replicas":2,"keys":1,"ops":0,"nemesis":"partition","reproduce":""}}"#
    )
    .unwrap();
    f.write_all(body.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}

const ONE_INCREMENT: &str = r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"increment","value":5,"time_ns":10}
{"type":"ok","op":0,"time_ns":20}
"#;

const QUIESCED: &str = r#"{"type":"quiescence","reached":true,"rounds":1,"max_rounds":10,"convergence_ns":null}
"#;

#[test]
fn converge_check_refuses_a_replica_read_twice_as_an_input_error() {
    for target in ["http", "sql", "maelstrom"] {
        let twice = format!(
            "{ONE_INCREMENT}{}{}{QUIESCED}",
            r#"{"type":"final","replica":0,"key":0,"value":{"int":5}}
"#,
            r#"{"type":"final","replica":0,"key":0,"value":{"int":5}}
"#
        );
        let f = history_file(target, &twice);
        common::cli(["check".as_ref(), f.path().as_os_str()])
            .expect_code(3)
            .no_panic()
            .mentions("replica 0 has more than one final read of key 0");
        // Each replica read once: valid.
        let once = twice.replacen(
            r#"{"type":"final","replica":0"#,
            r#"{"type":"final","replica":1"#,
            1,
        );
        let f = history_file(target, &once);
        common::cli(["check".as_ref(), f.path().as_os_str()]).expect_code(0);
    }
}

#[test]
fn converge_check_of_a_history_with_nothing_to_judge_is_unknown() {
    let f = history_file("http", QUIESCED);
    common::cli(["check".as_ref(), f.path().as_os_str()])
        .expect_code(2)
        .no_panic()
        .mentions("nothing to judge");
}
