//! The checks for black-box targets (read bounds, monotonic reads, and the
//! OR-Set / LWW / MV rules that need no dots or clocks) on tiny literal
//! histories: valid, invalid and undecided cases for each.

use converge::checker::{bounds, check_all, monotonic, opaque};
use converge::history::{
    FinalRead, Function, Header, History, OpRecord, Outcome, Quiescence, SCHEMA_VERSION,
    UNKNOWN_AUX,
};
use converge::models::{Value, Workload};
use converge::Verdict;

fn header(workload: Workload, nemesis: &str) -> Header {
    Header {
        schema_version: SCHEMA_VERSION,
        seed: 1,
        workload,
        model: "nodes/x.py".into(),
        target: "maelstrom".into(),
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
    assert_eq!(monotonic::check(&h).verdict, Verdict::Valid);
    // Both reads in flight at once on one node: neither came first.
    let mut h = Hb::new(Workload::GCounter).op(add(0, 5, 1));
    let mut slow = op(Function::Read, Outcome::Ok, 0, 0, 10);
    slow.latency_ns = 100;
    h.0.push(slow, None, &[], Some(Value::Int(5))).unwrap();
    let h = h.read(0, Value::Int(3), 20).quiesced(true);
    assert_eq!(monotonic::check(&h).verdict, Verdict::Valid);
}

#[test]
fn monotonic_reads_are_skipped_when_crashes_restart_nodes_empty() {
    let h = Hb::with_nemesis(Workload::GCounter, "partition,crash")
        .op(add(0, 5, 1))
        .read(0, Value::Int(5), 10)
        .read(0, Value::Int(0), 20)
        .quiesced(true);
    let c = monotonic::check(&h);
    assert_eq!(c.verdict, Verdict::Valid);
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
    // A remove invoked after the add may have observed it: absent is fine.
    let removed = base()
        .op(op(Function::Remove, Outcome::Ok, 0, 1, 20))
        .fin(0, elems(&[]))
        .quiesced(true);
    assert_eq!(opaque::check(&removed).verdict, Verdict::Valid);
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
    assert!(
        checks.iter().all(|c| c.verdict == Verdict::Valid),
        "{checks:#?}"
    );
}
