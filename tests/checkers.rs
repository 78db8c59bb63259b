//! Checker integration tests: tiny literal histories, built in code or written
//! as `history.jsonl` by hand, with precise verdicts, counts and findings.

use converge::checker::{
    check_all, conflicts, convergence, data_loss, idempotency, overall, Check, Finding,
};
use converge::history::jsonl::{format_op, read_history, ReadHistory};
use converge::history::{
    FinalRead, Function, Header, History, NetworkStats, OpRecord, Outcome, Probe, ProbeKind,
    Quiescence, SCHEMA_VERSION,
};
use converge::models::{Dot, Value, Workload};
use converge::{Error, Verdict};
use std::io::Write;

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

fn header(workload: Workload, replicas: u16) -> Header {
    Header {
        schema_version: SCHEMA_VERSION,
        seed: 42,
        workload,
        model: workload.name().to_string(),
        target: "in-process".to_string(),
        writers: 2,
        replicas,
        keys: 2,
        ops: 0,
        nemesis: "none".to_string(),
        reproduce: format!("converge run --workload {}", workload.name()),
        linearizable: false,
    }
}

/// An operation with no timing, aux, field or clock sum.
fn op(f: Function, outcome: Outcome, replica: u16, key: u32, value: i64) -> OpRecord {
    OpRecord {
        invoke_ns: 0,
        value,
        aux: 0,
        latency_ns: 0,
        process: u32::from(replica),
        key,
        clock_sum: 0,
        slot: 0,
        replica,
        f,
        outcome,
    }
}

fn ok(f: Function, replica: u16, key: u32, value: i64) -> OpRecord {
    op(f, Outcome::Ok, replica, key, value)
}

fn info(f: Function, replica: u16, key: u32, value: i64) -> OpRecord {
    op(f, Outcome::Info, replica, key, value)
}

fn fail(f: Function, replica: u16, key: u32, value: i64) -> OpRecord {
    op(f, Outcome::Fail, replica, key, value)
}

/// Same op with `aux` (LWW timestamp or OR-Set dot counter).
fn aux(mut record: OpRecord, aux: u64) -> OpRecord {
    record.aux = aux;
    record
}

/// Same op invoked at `invoke_ns`, completing `latency_ns` later.
fn at(mut record: OpRecord, invoke_ns: u64, latency_ns: u64) -> OpRecord {
    record.invoke_ns = invoke_ns;
    record.latency_ns = latency_ns;
    record
}

/// Same op with a clock sum.
fn csum(mut record: OpRecord, clock_sum: u32) -> OpRecord {
    record.clock_sum = clock_sum;
    record
}

/// An LWW-Map put or delete: field, value, timestamp.
fn put(outcome: Outcome, replica: u16, field: u32, value: i64, ts: u64) -> OpRecord {
    let mut r = op(Function::Put, outcome, replica, 0, value);
    r.slot = field;
    r.aux = ts;
    r
}

fn delete(outcome: Outcome, replica: u16, field: u32, ts: u64) -> OpRecord {
    let mut r = op(Function::Delete, outcome, replica, 0, 0);
    r.slot = field;
    r.aux = ts;
    r
}

fn elems(e: &[u64]) -> Value {
    Value::Elems(e.to_vec())
}

fn map(m: &[(u32, u64)]) -> Value {
    Value::Map(m.to_vec())
}

fn quiescence(reached: bool) -> Quiescence {
    Quiescence {
        reached,
        rounds: 3,
        max_rounds: 50,
        convergence_ns: Some(7_000),
    }
}

/// Chained history builder.
struct Hb(History);

impl Hb {
    fn new(workload: Workload, replicas: u16) -> Self {
        Hb(History::new(header(workload, replicas)))
    }

    fn op(mut self, record: OpRecord) -> Self {
        self.0.push(record, None, &[], None).unwrap();
        self
    }

    fn clocked(mut self, record: OpRecord, clock: &[u64]) -> Self {
        self.0.push(record, Some(clock), &[], None).unwrap();
        self
    }

    fn remove(mut self, record: OpRecord, observed: &[(u16, u64)]) -> Self {
        let dots: Vec<Dot> = observed.iter().map(|&(r, c)| Dot::new(r, c)).collect();
        self.0.push(record, None, &dots, None).unwrap();
        self
    }

    fn read(mut self, record: OpRecord, value: Value) -> Self {
        self.0.push(record, None, &[], Some(value)).unwrap();
        self
    }

    fn fin(mut self, replica: u16, key: u32, value: Value) -> Self {
        self.0.finals.push(FinalRead {
            replica,
            key,
            value,
        });
        self
    }

    fn probe(mut self, probe: ProbeKind, replica: u16, state_changed: bool) -> Self {
        let (before, after) = if state_changed {
            (Some(Value::Int(3)), Some(Value::Int(6)))
        } else {
            (None, None)
        };
        self.0.probes.push(Probe {
            probe,
            replica,
            key: 0,
            state_changed,
            before,
            after,
        });
        self
    }

    fn quiesced(mut self) -> Self {
        self.0.quiescence = Some(quiescence(true));
        self
    }

    /// The history, its header declaring exactly the keys it uses.
    fn build(mut self) -> History {
        let h = &self.0;
        let max_key = h
            .ops
            .iter()
            .map(|o| o.key)
            .chain(h.finals.keys())
            .chain(h.probes.iter().map(|p| p.key))
            .max()
            .unwrap_or(0);
        if let Some(header) = self.0.header.as_mut() {
            header.keys = max_key + 1;
        }
        self.0
    }
}

/// A copy of `base` after quiescence whose final reads of `key` are
/// `values[i]` on replica `i` (other keys' finals are kept).
fn with_finals(base: &History, key: u32, values: &[Value]) -> History {
    let mut h = base.clone();
    h.finals.retain(|f| f.key != key);
    for (i, v) in values.iter().enumerate() {
        h.finals.push(FinalRead {
            replica: i as u16,
            key,
            value: v.clone(),
        });
    }
    h.quiescence = Some(quiescence(true));
    h
}

/// The data-loss check of `base` with every replica reading `value` for key 0.
fn loss(base: &History, value: Value) -> Check {
    let replicas = base.header.as_ref().unwrap().replicas as usize;
    data_loss::check(&with_finals(base, 0, &vec![value; replicas]))
}

fn named<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check named {name}"))
}

fn count(check: &Check, name: &str) -> u64 {
    *check
        .counts
        .get(name)
        .unwrap_or_else(|| panic!("{} has no count {name}: {:?}", check.name, check.counts))
}

/// Asserts the verdict and the lost / unexpected / duplicate counts of a data-loss check.
#[track_caller]
fn assert_loss(check: &Check, verdict: Verdict, lost: u64, unexpected: u64, duplicates: u64) {
    assert_eq!(check.name, "data-loss");
    assert_eq!(
        (
            check.verdict,
            count(check, "lost"),
            count(check, "unexpected"),
            count(check, "duplicates_in_reads"),
        ),
        (verdict, lost, unexpected, duplicates),
        "summary: {}; findings: {:#?}",
        check.summary,
        check.findings
    );
    if verdict == Verdict::Invalid {
        assert_eq!(check.findings_total, lost + unexpected + duplicates);
    }
}

#[track_caller]
fn only_finding(check: &Check) -> &Finding {
    assert_eq!(check.findings.len(), 1, "findings: {:#?}", check.findings);
    &check.findings[0]
}

// ---------------------------------------------------------------------------
// Convergence
// ---------------------------------------------------------------------------

fn counter_base(replicas: u16) -> Hb {
    Hb::new(Workload::GCounter, replicas)
        .op(ok(Function::Increment, 0, 0, 3))
        .op(ok(Function::Increment, 1, 1, 4))
}

#[test]
fn convergence_equal_finals_is_valid() {
    let h = counter_base(2)
        .fin(0, 0, Value::Int(3))
        .fin(1, 0, Value::Int(3))
        .fin(0, 1, Value::Int(4))
        .fin(1, 1, Value::Int(4))
        .quiesced()
        .build();
    let c = convergence::check(&h);
    assert_eq!(c.verdict, Verdict::Valid, "{}", c.summary);
    assert_eq!(count(&c, "keys"), 2);
    assert_eq!(count(&c, "diverged_keys"), 0);
    assert_eq!(count(&c, "anti_entropy_rounds"), 3);
    assert_eq!(count(&c, "convergence_us"), 7);
    assert!(c.findings.is_empty());
    assert_eq!(overall(&check_all(&h)), Verdict::Unknown, "no probes");
}

#[test]
fn convergence_differing_finals_after_quiescence_is_invalid() {
    let h = counter_base(3)
        .fin(0, 0, Value::Int(3))
        .fin(1, 0, Value::Int(3))
        .fin(2, 0, Value::Int(3))
        .fin(0, 1, Value::Int(4))
        .fin(1, 1, Value::Int(4))
        .fin(2, 1, Value::Int(9))
        .quiesced()
        .build();
    let c = convergence::check(&h);
    assert_eq!(c.verdict, Verdict::Invalid);
    assert_eq!(count(&c, "keys"), 2);
    assert_eq!(count(&c, "diverged_keys"), 1);
    assert_eq!(c.findings_total, 1);
    let f = only_finding(&c);
    assert_eq!(f.key, Some(1));
    assert_eq!(f.replica, Some(2));
    assert_eq!(f.expected.as_deref(), Some("4"));
    assert_eq!(f.actual.as_deref(), Some("9"));
    assert!(f.message.contains("key 1"), "{}", f.message);
}

#[test]
fn convergence_without_reaching_quiescence_is_unknown() {
    // Even differing finals are not judged: anti-entropy had not finished.
    let mut h = counter_base(2)
        .fin(0, 0, Value::Int(3))
        .fin(1, 0, Value::Int(1))
        .build();
    h.quiescence = Some(quiescence(false));
    let c = convergence::check(&h);
    assert_eq!(c.verdict, Verdict::Unknown);
    assert!(c.summary.contains("50"), "names max_rounds: {}", c.summary);
    assert_eq!(count(&c, "diverged_keys"), 1);
}

#[test]
fn convergence_without_quiescence_record_is_unknown() {
    let h = counter_base(2)
        .fin(0, 0, Value::Int(3))
        .fin(1, 0, Value::Int(3))
        .build();
    let c = convergence::check(&h);
    assert_eq!(c.verdict, Verdict::Unknown);
    assert!(c.summary.contains("no quiescence record"), "{}", c.summary);
    assert!(!c.counts.contains_key("anti_entropy_rounds"));
}

#[test]
fn convergence_with_a_missing_replica_final_is_unknown() {
    let h = counter_base(2)
        .fin(0, 0, Value::Int(3))
        .fin(1, 0, Value::Int(3))
        .fin(0, 1, Value::Int(4))
        .quiesced()
        .build();
    let c = convergence::check(&h);
    assert_eq!(c.verdict, Verdict::Unknown);
    assert!(
        c.summary.contains("key 1") && c.summary.contains("1 replica(s)"),
        "{}",
        c.summary
    );
}

#[test]
fn convergence_with_no_final_reads_is_unknown() {
    let h = counter_base(2).quiesced().build();
    let c = convergence::check(&h);
    assert_eq!(c.verdict, Verdict::Unknown);
    assert!(c.summary.contains("no final reads"), "{}", c.summary);
    assert_eq!(
        data_loss::check(&h).verdict,
        Verdict::Unknown,
        "data loss cannot be judged either"
    );
}

// ---------------------------------------------------------------------------
// Data loss: counters
// ---------------------------------------------------------------------------

#[test]
fn counter_exact_ok_sum_is_valid_and_fail_ops_are_ignored() {
    let base = Hb::new(Workload::GCounter, 2)
        .op(ok(Function::Increment, 0, 0, 3))
        .op(fail(Function::Increment, 1, 0, 100))
        .op(ok(Function::Increment, 1, 0, 4))
        .op(ok(Function::Read, 0, 0, 0))
        .build();
    let c = loss(&base, Value::Int(7));
    assert_loss(&c, Verdict::Valid, 0, 0, 0);
    assert_eq!(count(&c, "keys"), 1);
    // The failed increment did not happen: counting it is not acceptable.
    let c = loss(&base, Value::Int(107));
    assert_loss(&c, Verdict::Invalid, 0, 2, 0);
    assert_eq!(c.findings[0].expected.as_deref(), Some("7"));
    assert_eq!(c.findings[0].actual.as_deref(), Some("107"));
}

#[test]
fn counter_value_below_ok_sum_is_lost() {
    let base = Hb::new(Workload::GCounter, 2)
        .op(ok(Function::Increment, 0, 0, 3))
        .op(ok(Function::Increment, 1, 0, 4))
        .build();
    let h = with_finals(&base, 0, &[Value::Int(7), Value::Int(5)]);
    let c = data_loss::check(&h);
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    let f = only_finding(&c);
    assert_eq!((f.key, f.replica), (Some(0), Some(1)));
    assert_eq!(f.expected.as_deref(), Some("7"));
    assert_eq!(f.actual.as_deref(), Some("5"));
    assert!(f.message.contains("lost 2"), "{}", f.message);
}

#[test]
fn counter_value_is_ok_sum_plus_a_subset_of_info_deltas() {
    let base = Hb::new(Workload::GCounter, 1)
        .op(ok(Function::Increment, 0, 0, 10))
        .op(info(Function::Increment, 0, 0, 5))
        .op(info(Function::Increment, 0, 0, 7))
        .build();
    for v in [10, 15, 17, 22] {
        assert_loss(&loss(&base, Value::Int(v)), Verdict::Valid, 0, 0, 0);
    }
    for v in [11, 12, 16, 21, 23] {
        let c = loss(&base, Value::Int(v));
        assert_loss(&c, Verdict::Invalid, 0, 1, 0);
        let f = only_finding(&c);
        assert_eq!(f.expected.as_deref(), Some("a subset sum in [10, 22]"));
        assert_eq!(f.actual, Some(v.to_string()));
    }
    let c = loss(&base, Value::Int(9));
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    assert!(only_finding(&c).message.contains("lost 1"));
}

#[test]
fn pn_counter_negative_info_deltas() {
    let base = Hb::new(Workload::PnCounter, 1)
        .op(ok(Function::Increment, 0, 0, 10))
        .op(ok(Function::Increment, 0, 0, -4))
        .op(info(Function::Increment, 0, 0, -3))
        .op(fail(Function::Increment, 0, 0, -1))
        .build();
    for v in [3, 6] {
        assert_loss(&loss(&base, Value::Int(v)), Verdict::Valid, 0, 0, 0);
    }
    assert_loss(&loss(&base, Value::Int(4)), Verdict::Invalid, 0, 1, 0);
    assert_loss(&loss(&base, Value::Int(5)), Verdict::Invalid, 0, 1, 0);
    assert_loss(&loss(&base, Value::Int(7)), Verdict::Invalid, 0, 1, 0);
    assert_loss(&loss(&base, Value::Int(2)), Verdict::Invalid, 1, 0, 0);
}

#[test]
fn counter_read_that_is_not_an_integer_is_unexpected() {
    let base = Hb::new(Workload::GCounter, 1)
        .op(ok(Function::Increment, 0, 0, 1))
        .build();
    let c = loss(&base, elems(&[1]));
    assert_loss(&c, Verdict::Invalid, 0, 1, 0);
    assert_eq!(only_finding(&c).expected.as_deref(), Some("an integer"));
}

#[test]
fn data_loss_is_unknown_without_quiescence_and_without_header() {
    let mut h = Hb::new(Workload::GCounter, 1)
        .op(ok(Function::Increment, 0, 0, 1))
        .fin(0, 0, Value::Int(0))
        .build();
    // Would be a loss, but the run did not finish.
    assert_loss(&data_loss::check(&h), Verdict::Unknown, 0, 0, 0);
    h.quiescence = Some(quiescence(false));
    assert_loss(&data_loss::check(&h), Verdict::Unknown, 0, 0, 0);
    h.quiescence = Some(quiescence(true));
    assert_loss(&data_loss::check(&h), Verdict::Invalid, 1, 0, 0);
    h.header = None;
    let c = data_loss::check(&h);
    assert_eq!(c.verdict, Verdict::Unknown);
    assert!(c.summary.contains("no header"), "{}", c.summary);
}

// ---------------------------------------------------------------------------
// Data loss: G-Set and 2P-Set
// ---------------------------------------------------------------------------

fn gset_base() -> History {
    Hb::new(Workload::GSet, 2)
        .op(ok(Function::Add, 0, 0, 1)) // 0
        .op(ok(Function::Add, 1, 0, 2)) // 1
        .op(info(Function::Add, 1, 0, 3)) // 2
        .op(fail(Function::Add, 0, 0, 4)) // 3
        .build()
}

#[test]
fn gset_acked_adds_present_and_info_add_either_way_is_valid() {
    let base = gset_base();
    let c = loss(&base, elems(&[1, 2]));
    assert_loss(&c, Verdict::Valid, 0, 0, 0);
    assert_eq!(count(&c, "stable"), 4, "2 acked adds x 2 replicas");
    assert_loss(&loss(&base, elems(&[1, 2, 3])), Verdict::Valid, 0, 0, 0);
}

#[test]
fn gset_acked_add_missing_is_lost() {
    let h = with_finals(&gset_base(), 0, &[elems(&[1, 2]), elems(&[1, 3])]);
    let c = data_loss::check(&h);
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    let f = only_finding(&c);
    assert_eq!((f.key, f.replica), (Some(0), Some(1)));
    assert_eq!(f.ops, vec![1], "names the acknowledged add of 2");
    assert_eq!(f.expected.as_deref(), Some("contains 2"));
    assert_eq!(count(&c, "stable"), 3);
}

#[test]
fn gset_element_never_added_or_failed_is_unexpected() {
    let c = loss(&gset_base(), elems(&[1, 2, 9]));
    assert_loss(&c, Verdict::Invalid, 0, 2, 0);
    assert!(c.findings.iter().all(|f| f.message.contains("never added")));
    assert_eq!(c.findings[0].expected.as_deref(), Some("no 9"));
    // The add of 4 failed: it definitely did not happen.
    let c = loss(&gset_base(), elems(&[1, 2, 4]));
    assert_loss(&c, Verdict::Invalid, 0, 2, 0);
    assert_eq!(c.findings[0].actual.as_deref(), Some("contains 4"));
}

#[test]
fn two_p_set_removed_element_present_is_invalid() {
    let base = Hb::new(Workload::TwoPSet, 1)
        .op(ok(Function::Add, 0, 0, 1))
        .op(ok(Function::Remove, 0, 0, 1))
        .op(ok(Function::Add, 0, 0, 2))
        .op(info(Function::Remove, 0, 0, 2))
        .op(ok(Function::Add, 0, 0, 3))
        .op(fail(Function::Remove, 0, 0, 3))
        .build();
    for fin in [&[3][..], &[2, 3]] {
        assert_loss(&loss(&base, elems(fin)), Verdict::Valid, 0, 0, 0);
    }
    let c = loss(&base, elems(&[1, 2, 3]));
    assert_loss(&c, Verdict::Invalid, 0, 1, 0);
    let f = only_finding(&c);
    assert!(f.message.contains("1 was removed"), "{}", f.message);
    // A failed remove did not happen: 3 must still be there.
    let c = loss(&base, elems(&[2]));
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    assert_eq!(only_finding(&c).ops, vec![4]);
}

#[test]
fn duplicates_in_an_in_run_read_are_invalid_without_quiescence() {
    let h = Hb::new(Workload::GSet, 2)
        .op(ok(Function::Add, 0, 1, 5))
        .read(ok(Function::Read, 1, 1, 0), elems(&[5, 5]))
        .read(ok(Function::Read, 0, 1, 0), elems(&[5]))
        .build();
    assert!(h.quiescence.is_none());
    let checks = check_all(&h);
    let c = named(&checks, "data-loss");
    assert_loss(c, Verdict::Invalid, 0, 0, 1);
    let f = only_finding(c);
    assert_eq!(
        (f.key, f.replica, f.ops.clone()),
        (Some(1), Some(1), vec![1])
    );
    assert_eq!(f.actual.as_deref(), Some("[5, 5]"));
    assert_eq!(named(&checks, "convergence").verdict, Verdict::Unknown);
    assert_eq!(overall(&checks), Verdict::Invalid);
}

#[test]
fn duplicates_in_a_final_read_and_in_map_fields_are_invalid() {
    let base = Hb::new(Workload::GSet, 1)
        .op(ok(Function::Add, 0, 0, 5))
        .build();
    let c = loss(&base, elems(&[5, 5]));
    assert_loss(&c, Verdict::Invalid, 0, 0, 1);
    assert!(c.findings[0].message.contains("final read"));
    let base = Hb::new(Workload::LwwMap, 1)
        .op(put(Outcome::Ok, 0, 1, 10, 1))
        .build();
    let c = loss(&base, map(&[(1, 10), (1, 10)]));
    assert_eq!(count(&c, "duplicates_in_reads"), 1);
    assert_eq!(c.verdict, Verdict::Invalid);
}

#[test]
fn stale_reads_are_counted_but_do_not_invalidate() {
    let base = Hb::new(Workload::GSet, 1)
        .op(at(ok(Function::Add, 0, 0, 1), 0, 10)) // acked at t=10
        .read(at(ok(Function::Read, 0, 0, 0), 5, 1), elems(&[])) // began before the ack
        .read(at(ok(Function::Read, 0, 0, 0), 20, 1), elems(&[])) // stale
        .read(at(ok(Function::Read, 0, 0, 0), 30, 1), elems(&[1])) // fresh
        .build();
    let c = loss(&base, elems(&[1]));
    assert_loss(&c, Verdict::Valid, 0, 0, 0);
    assert_eq!(count(&c, "stale_reads"), 1);
    assert_eq!(count(&c, "never_read"), 0);
    let c = loss(&base, elems(&[]));
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    assert_eq!(count(&c, "stale_reads"), 1);
}

#[test]
fn stale_reads_are_counted_along_each_replicas_reads_as_sets_shrink_grow_and_disorder() {
    // The checker follows each replica's sorted reads by their differences;
    // an unsorted read restarts the replica's chain.
    let read = |replica, t, e: &[u64]| (at(ok(Function::Read, replica, 0, 0), t, 1), elems(e));
    let mut b = Hb::new(Workload::GSet, 2)
        .op(at(ok(Function::Add, 0, 0, 1), 0, 10))
        .op(at(ok(Function::Add, 1, 0, 2), 0, 10))
        .op(at(ok(Function::Add, 0, 0, 3), 40, 10));
    for (replica, t, e) in [
        (0, 20, &[1, 2][..]), // fresh
        (1, 21, &[1]),        // stale: misses 2
        (0, 22, &[1]),        // stale: 2 disappeared
        (0, 23, &[2, 1]),     // fresh, out of order
        (0, 24, &[1, 2]),     // fresh
        (0, 60, &[1, 2]),     // stale: 3 was acknowledged at 50
        (1, 61, &[1, 2, 3]),  // fresh
    ] {
        let (op, value) = read(replica, t, e);
        b = b.read(op, value);
    }
    let c = loss(&b.build(), elems(&[1, 2, 3]));
    assert_loss(&c, Verdict::Valid, 0, 0, 0);
    assert_eq!(count(&c, "stale_reads"), 3);
    assert_eq!(count(&c, "never_read"), 0);
}

#[test]
fn stale_read_is_not_masked_by_a_duplicate() {
    // 1 and 2 are acknowledged before the read starts; the read misses 2 but
    // repeats 1, so `seen` (2) equals `known` (2) and it is not counted stale.
    let base = Hb::new(Workload::GSet, 1)
        .op(at(ok(Function::Add, 0, 0, 1), 0, 10))
        .op(at(ok(Function::Add, 0, 0, 2), 0, 10))
        .read(at(ok(Function::Read, 0, 0, 0), 20, 1), elems(&[1, 1]))
        .build();
    let c = loss(&base, elems(&[1, 2]));
    assert_eq!(count(&c, "duplicates_in_reads"), 1);
    assert_eq!(count(&c, "stale_reads"), 1);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// Stale reads, counted by following each replica's reads by their
    /// differences, agree with the definition applied read by read: some add
    /// acknowledged before the read began is missing from it. Up to 200
    /// elements, so the ranks span several bitmap words; reversed reads take
    /// the unsorted path and restart a replica's chain.
    #[test]
    fn stale_reads_match_their_definition_read_by_read(
        acks in proptest::collection::vec(0u64..1_000, 1..200),
        reads in proptest::collection::vec(
            (
                0u16..2,
                0u64..1_100,
                proptest::prop_oneof![
                    // A random subset: mostly stale.
                    proptest::collection::vec(proptest::bool::ANY, 200),
                    // All but a few: stale exactly when one of those few was
                    // acknowledged, which finds an off-by-one anywhere.
                    proptest::strategy::Strategy::prop_map(
                        // Near rank-bitmap word boundaries, more often than not.
                        proptest::collection::vec(
                            proptest::prop_oneof![0usize..200, 60usize..68, 124usize..132],
                            0..3,
                        ),
                        |dropped| (0..200).map(|e| !dropped.contains(&e)).collect(),
                    ),
                ],
                proptest::bool::ANY,
            ),
            0..40,
        ),
    ) {
        let mut b = Hb::new(Workload::GSet, 2);
        for (e, ack) in acks.iter().enumerate() {
            // Invoked at 0, so acknowledged at `ack`.
            b = b.op(at(ok(Function::Add, 0, 0, e as i64), 0, *ack));
        }
        let mut expected = 0;
        for (replica, t, keep, reversed) in &reads {
            let mut held: Vec<u64> = (0..acks.len()).filter(|e| keep[*e]).map(|e| e as u64).collect();
            if *reversed {
                held.reverse();
            }
            if acks.iter().enumerate().any(|(e, ack)| *ack < *t && !keep[e]) {
                expected += 1;
            }
            b = b.read(at(ok(Function::Read, *replica, 0, 0), *t, 1), elems(&held));
        }
        let all: Vec<u64> = (0..acks.len() as u64).collect();
        let c = loss(&b.build(), elems(&all));
        proptest::prop_assert_eq!(count(&c, "stale_reads"), expected);
    }
}

// ---------------------------------------------------------------------------
// Data loss: OR-Set
// ---------------------------------------------------------------------------

#[test]
fn or_set_add_observed_by_remove_must_be_absent() {
    let base = Hb::new(Workload::OrSet, 2)
        .op(aux(ok(Function::Add, 0, 0, 5), 1))
        .remove(ok(Function::Remove, 1, 0, 5), &[(0, 1)])
        .build();
    assert_loss(&loss(&base, elems(&[])), Verdict::Valid, 0, 0, 0);
    let c = loss(&base, elems(&[5]));
    assert_loss(&c, Verdict::Invalid, 0, 2, 0);
    assert!(c.findings[0]
        .message
        .contains("every add of it was removed"));
    assert_eq!(c.findings[0].expected.as_deref(), Some("no 5"));
}

#[test]
fn or_set_concurrent_add_not_observed_must_be_present() {
    let base = Hb::new(Workload::OrSet, 2)
        .op(aux(ok(Function::Add, 0, 0, 5), 1)) // dot (0,1)
        .op(aux(ok(Function::Add, 1, 0, 5), 1)) // dot (1,1), concurrent with the remove
        .remove(ok(Function::Remove, 0, 0, 5), &[(0, 1)])
        .build();
    assert_loss(&loss(&base, elems(&[5])), Verdict::Valid, 0, 0, 0);
    let h = with_finals(&base, 0, &[elems(&[5]), elems(&[])]);
    let c = data_loss::check(&h);
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    let f = only_finding(&c);
    assert_eq!(
        (f.key, f.replica, f.ops.clone()),
        (Some(0), Some(1), vec![1])
    );
    assert_eq!(f.expected.as_deref(), Some("contains 5"));
}

#[test]
fn or_set_element_never_added_is_unexpected_and_failed_add_does_not_count() {
    let base = Hb::new(Workload::OrSet, 1)
        .op(aux(fail(Function::Add, 0, 0, 6), 0))
        .build();
    // No update may have happened: an empty read is no loss, but nothing
    // was judged, which is no pass.
    let c = loss(&base, elems(&[]));
    assert_loss(&c, Verdict::Unknown, 0, 0, 0);
    assert!(c.not_judged, "{c:?}");
    assert_loss(&loss(&base, elems(&[6])), Verdict::Invalid, 0, 1, 0);
}

#[test]
fn or_set_info_remove_of_the_only_dot_allows_both() {
    let base = Hb::new(Workload::OrSet, 1)
        .op(aux(ok(Function::Add, 0, 0, 5), 1))
        .remove(info(Function::Remove, 0, 0, 5), &[(0, 1)])
        .op(aux(info(Function::Add, 0, 0, 8), 2))
        .build();
    for fin in [&[][..], &[5], &[8], &[5, 8]] {
        assert_loss(&loss(&base, elems(fin)), Verdict::Valid, 0, 0, 0);
    }
    assert_loss(&loss(&base, elems(&[5, 7])), Verdict::Invalid, 0, 1, 0);
}

#[test]
fn or_set_re_add_after_remove_must_be_present() {
    let base = Hb::new(Workload::OrSet, 1)
        .op(aux(ok(Function::Add, 0, 0, 5), 1))
        .remove(ok(Function::Remove, 0, 0, 5), &[(0, 1)])
        .op(aux(ok(Function::Add, 0, 0, 5), 3))
        .build();
    assert_loss(&loss(&base, elems(&[5])), Verdict::Valid, 0, 0, 0);
    let c = loss(&base, elems(&[]));
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    assert_eq!(only_finding(&c).ops, vec![2]);
}

// ---------------------------------------------------------------------------
// Data loss: LWW-Register
// ---------------------------------------------------------------------------

#[test]
fn lww_register_greatest_timestamp_wins() {
    let base = Hb::new(Workload::LwwRegister, 1)
        .op(aux(ok(Function::Write, 0, 0, 10), 5))
        .op(aux(ok(Function::Write, 1, 0, 20), 7)) // winner
        .op(aux(ok(Function::Write, 2, 0, 30), 6))
        .op(aux(fail(Function::Write, 2, 0, 40), 99))
        .build();
    assert_loss(&loss(&base, elems(&[20])), Verdict::Valid, 0, 0, 0);
    for v in [10, 30, 40] {
        let c = loss(&base, elems(&[v]));
        assert_loss(&c, Verdict::Invalid, 1, 0, 0);
        let f = only_finding(&c);
        assert_eq!(f.ops, vec![1]);
        assert_eq!(f.expected.as_deref(), Some("20"));
        assert_eq!(f.actual, Some(v.to_string()));
        assert!(f.message.contains("ts 7, replica 1"), "{}", f.message);
    }
    let c = loss(&base, elems(&[]));
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    assert_eq!(only_finding(&c).actual.as_deref(), Some("nothing"));
    let c = loss(&base, elems(&[20, 30]));
    assert_loss(&c, Verdict::Invalid, 0, 1, 0);
}

#[test]
fn lww_register_equal_timestamps_tie_broken_by_replica() {
    let base = Hb::new(Workload::LwwRegister, 1)
        .op(aux(ok(Function::Write, 2, 0, 20), 5))
        .op(aux(ok(Function::Write, 0, 0, 10), 5))
        .op(aux(ok(Function::Write, 1, 0, 15), 5))
        .build();
    assert_loss(&loss(&base, elems(&[20])), Verdict::Valid, 0, 0, 0);
    let c = loss(&base, elems(&[15]));
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    assert_eq!(only_finding(&c).ops, vec![0]);
}

#[test]
fn lww_register_info_write_with_greater_timestamp_may_win() {
    let base = Hb::new(Workload::LwwRegister, 1)
        .op(aux(ok(Function::Write, 0, 0, 10), 5))
        .op(aux(info(Function::Write, 1, 0, 40), 9))
        .op(aux(info(Function::Write, 1, 0, 50), 3))
        .build();
    assert_loss(&loss(&base, elems(&[10])), Verdict::Valid, 0, 0, 0);
    assert_loss(&loss(&base, elems(&[40])), Verdict::Valid, 0, 0, 0);
    // An info write older than the acknowledged winner cannot win.
    assert_loss(&loss(&base, elems(&[50])), Verdict::Invalid, 1, 0, 0);
}

#[test]
fn lww_register_with_only_info_writes() {
    let base = Hb::new(Workload::LwwRegister, 1)
        .op(aux(info(Function::Write, 0, 0, 40), 9))
        .build();
    assert_loss(&loss(&base, elems(&[])), Verdict::Valid, 0, 0, 0);
    assert_loss(&loss(&base, elems(&[40])), Verdict::Valid, 0, 0, 0);
    let c = loss(&base, elems(&[41]));
    assert_loss(&c, Verdict::Invalid, 0, 1, 0);
    assert!(only_finding(&c).message.contains("nobody wrote"));
}

// ---------------------------------------------------------------------------
// Data loss: MV-Register
// ---------------------------------------------------------------------------

#[test]
fn mv_register_history_keeps_clocks() {
    assert!(History::new(header(Workload::MvRegister, 2)).keep_clocks);
    assert!(!History::new(header(Workload::LwwRegister, 2)).keep_clocks);
    let h = Hb::new(Workload::MvRegister, 2)
        .clocked(ok(Function::Write, 0, 0, 1), &[1, 0])
        .build();
    assert_eq!(h.clock(&h.ops[0]), Some(vec![1u64, 0]));
}

/// The varint arena gives back exactly what was pushed: entries that fall,
/// entries near 2^64, dots near 2^48, a remove's clock and dots together,
/// and a put's field beside another op's payload.
#[test]
fn history_arena_round_trips_clocks_dots_and_fields() {
    let mut h = History::new(header(Workload::MvRegister, 3));
    let clock = [u64::MAX - 1, 0, 1 << 40];
    let dots = [Dot::new(2, (1 << 48) - 1), Dot::new(0, 0), Dot::new(1, 300)];
    h.push(ok(Function::Write, 0, 0, 1), Some(&clock), &[], None)
        .unwrap();
    h.push(ok(Function::Remove, 1, 0, 7), Some(&[3, 2, 1]), &dots, None)
        .unwrap();
    h.push(put(Outcome::Ok, 2, 9, 5, 4), Some(&[1, 1, 1]), &[], None)
        .unwrap();
    h.push(
        ok(Function::Read, 0, 0, 0),
        None,
        &[],
        Some(Value::Elems(vec![1])),
    )
    .unwrap();
    assert_eq!(h.clock(&h.ops[0]), Some(clock.to_vec()));
    assert_eq!(h.observed(&h.ops[0]).count(), 0);
    assert_eq!(h.clock(&h.ops[1]), Some(vec![3, 2, 1]));
    assert_eq!(h.observed(&h.ops[1]).collect::<Vec<_>>(), dots.to_vec());
    assert_eq!(h.ops[2].field(), 9);
    assert_eq!(h.clock(&h.ops[2]), None);
    assert_eq!(
        h.read_cursor().value(&h.ops[3]),
        Some(&Value::Elems(vec![1]))
    );
    assert_eq!(h.ops[3].field(), 0);
    assert!(h.bytes_per_op() >= std::mem::size_of::<OpRecord>() as f64);
}

#[test]
fn mv_register_concurrent_writes_are_both_siblings() {
    let base = Hb::new(Workload::MvRegister, 2)
        .clocked(ok(Function::Write, 0, 0, 1), &[1, 0])
        .clocked(ok(Function::Write, 1, 0, 2), &[0, 1])
        .build();
    assert_loss(&loss(&base, elems(&[1, 2])), Verdict::Valid, 0, 0, 0);
    let h = with_finals(&base, 0, &[elems(&[1, 2]), elems(&[1])]);
    let c = data_loss::check(&h);
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    let f = only_finding(&c);
    assert_eq!(
        (f.key, f.replica, f.ops.clone()),
        (Some(0), Some(1), vec![1])
    );
    assert_eq!(f.expected.as_deref(), Some("{1, 2}"));
    assert_eq!(f.actual.as_deref(), Some("{1}"));
}

#[test]
fn mv_register_dominated_write_is_not_a_sibling() {
    let base = Hb::new(Workload::MvRegister, 2)
        .clocked(ok(Function::Write, 0, 0, 1), &[1, 0])
        .clocked(ok(Function::Write, 1, 0, 2), &[1, 1])
        .build();
    assert_loss(&loss(&base, elems(&[2])), Verdict::Valid, 0, 0, 0);
    let c = loss(&base, elems(&[1, 2]));
    assert_loss(&c, Verdict::Invalid, 0, 2, 0);
    assert!(c.findings[0].message.contains("sibling 1"));
    assert_loss(&loss(&base, elems(&[1])), Verdict::Invalid, 2, 2, 0);
}

#[test]
fn mv_register_pairwise_fallback_without_unique_dots() {
    // Clocks whose own entry is zero defeat the dot shortcut; the pairwise
    // comparison must give the same answer.
    let base = Hb::new(Workload::MvRegister, 1)
        .clocked(ok(Function::Write, 0, 0, 1), &[0, 1, 0])
        .clocked(ok(Function::Write, 0, 0, 2), &[0, 0, 1])
        .clocked(ok(Function::Write, 0, 0, 3), &[0, 1, 1])
        .build();
    assert_loss(&loss(&base, elems(&[3])), Verdict::Valid, 0, 0, 0);
    assert_loss(&loss(&base, elems(&[1, 2])), Verdict::Invalid, 1, 2, 0);
}

#[test]
fn mv_register_info_write_counts_when_shown() {
    let base = Hb::new(Workload::MvRegister, 1)
        .clocked(ok(Function::Write, 0, 0, 1), &[1, 0])
        .clocked(info(Function::Write, 1, 0, 2), &[0, 1])
        .build();
    assert_loss(&loss(&base, elems(&[1])), Verdict::Valid, 0, 0, 0);
    assert_loss(&loss(&base, elems(&[1, 2])), Verdict::Valid, 0, 0, 0);
    assert_loss(&loss(&base, elems(&[2])), Verdict::Invalid, 1, 0, 0);
}

#[test]
fn mv_register_equal_sibling_values_are_not_duplicates() {
    let base = Hb::new(Workload::MvRegister, 2)
        .clocked(ok(Function::Write, 0, 0, 7), &[1, 0])
        .clocked(ok(Function::Write, 1, 0, 7), &[0, 1])
        .read(ok(Function::Read, 0, 0, 0), elems(&[7, 7]))
        .build();
    let c = loss(&base, elems(&[7, 7]));
    assert_loss(&c, Verdict::Valid, 0, 0, 0);
    // The same reads in a set workload are duplicates (one in-run, two finals).
    let mut set = base.clone();
    set.header = Some(header(Workload::GSet, 2));
    let c = loss(&set, elems(&[7, 7]));
    assert_eq!(count(&c, "duplicates_in_reads"), 3);
    assert_eq!(c.verdict, Verdict::Invalid);
}

// ---------------------------------------------------------------------------
// Data loss: LWW-Map
// ---------------------------------------------------------------------------

fn lww_map_base() -> History {
    Hb::new(Workload::LwwMap, 1)
        .op(put(Outcome::Ok, 0, 1, 10, 1)) // 0
        .op(put(Outcome::Ok, 1, 1, 11, 2)) // 1: field 1 = 11
        .op(put(Outcome::Ok, 0, 2, 20, 1)) // 2
        .op(delete(Outcome::Ok, 1, 2, 3)) // 3: field 2 deleted
        .op(delete(Outcome::Ok, 0, 3, 4)) // 4
        .op(put(Outcome::Ok, 1, 3, 30, 4)) // 5: field 3 = 30 (replica 1 > 0)
        .op(put(Outcome::Fail, 1, 4, 40, 9)) // 6: never happened
        .build()
}

#[test]
fn lww_map_per_field_last_write_is_valid() {
    let c = loss(&lww_map_base(), map(&[(1, 11), (3, 30)]));
    assert_loss(&c, Verdict::Valid, 0, 0, 0);
}

#[test]
fn lww_map_deleted_field_present_is_invalid() {
    let c = loss(&lww_map_base(), map(&[(1, 11), (2, 20), (3, 30)]));
    // The delete is the update that was lost.
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    let f = only_finding(&c);
    assert_eq!(f.ops, vec![3]);
    assert_eq!(f.expected.as_deref(), Some("absent"));
    assert_eq!(f.actual.as_deref(), Some("20"));
    assert!(f.message.contains("field 2"), "{}", f.message);
}

#[test]
fn lww_map_missing_field_is_lost_and_wrong_value_unexpected() {
    let c = loss(&lww_map_base(), map(&[(3, 30)]));
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    let f = only_finding(&c);
    assert_eq!(f.ops, vec![1]);
    assert_eq!(f.expected.as_deref(), Some("11"));
    assert_eq!(f.actual.as_deref(), Some("absent"));
    let c = loss(&lww_map_base(), map(&[(1, 10), (3, 30)]));
    assert_loss(&c, Verdict::Invalid, 0, 1, 0);
    assert_eq!(only_finding(&c).ops, vec![1]);
}

#[test]
fn lww_map_unwritten_or_failed_field_present_is_unexpected() {
    let c = loss(&lww_map_base(), map(&[(1, 11), (3, 30), (9, 1)]));
    assert_loss(&c, Verdict::Invalid, 0, 1, 0);
    assert!(only_finding(&c)
        .message
        .contains("field 9 was never written"));
    let c = loss(&lww_map_base(), map(&[(1, 11), (3, 30), (4, 40)]));
    assert_loss(&c, Verdict::Invalid, 0, 1, 0);
}

#[test]
fn lww_map_info_put_and_delete_may_win() {
    let base = Hb::new(Workload::LwwMap, 1)
        .op(put(Outcome::Ok, 0, 1, 10, 5))
        .op(delete(Outcome::Info, 0, 1, 6))
        .op(put(Outcome::Info, 0, 2, 20, 1))
        .build();
    for fin in [&[(1, 10)][..], &[], &[(1, 10), (2, 20)], &[(2, 20)]] {
        assert_loss(&loss(&base, map(fin)), Verdict::Valid, 0, 0, 0);
    }
    // A value nobody wrote: invalid (classified as lost here, as unexpected
    // by the LWW-Register checker; only the total is pinned).
    let c = loss(&base, map(&[(1, 10), (2, 21)]));
    assert_eq!(c.verdict, Verdict::Invalid);
    assert_eq!(count(&c, "lost") + count(&c, "unexpected"), 1);
    assert_eq!(only_finding(&c).actual.as_deref(), Some("21"));
}

// ---------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------

#[test]
fn idempotency_unchanged_probes_are_valid() {
    let h = Hb::new(Workload::GCounter, 2)
        .probe(ProbeKind::SelfMerge, 0, false)
        .probe(ProbeKind::StaleMerge, 1, false)
        .probe(ProbeKind::Redeliver, 1, false)
        .build();
    let c = idempotency::check(&h);
    assert_eq!(c.verdict, Verdict::Valid);
    assert_eq!(count(&c, "probes"), 3);
    assert_eq!(count(&c, "violations"), 0);
    assert!(c.findings.is_empty());
}

#[test]
fn idempotency_changed_probe_is_invalid_and_named() {
    for (kind, name) in [
        (ProbeKind::SelfMerge, "self_merge_violations"),
        (ProbeKind::StaleMerge, "stale_merge_violations"),
        (ProbeKind::Redeliver, "redelivery_violations"),
    ] {
        let mut h = Hb::new(Workload::GCounter, 2)
            .probe(ProbeKind::SelfMerge, 0, false)
            .probe(ProbeKind::StaleMerge, 0, false)
            .probe(ProbeKind::Redeliver, 0, false)
            .probe(kind, 1, true)
            .build();
        h.network = Some(NetworkStats {
            duplicates_delivered: 12,
            ..NetworkStats::default()
        });
        let c = idempotency::check(&h);
        assert_eq!(c.verdict, Verdict::Invalid, "{kind:?}");
        assert_eq!(count(&c, "violations"), 1);
        assert_eq!(count(&c, "probes"), 4);
        assert_eq!(count(&c, "duplicates_delivered"), 12);
        for other in [
            "self_merge_violations",
            "stale_merge_violations",
            "redelivery_violations",
        ] {
            assert_eq!(
                count(&c, other),
                u64::from(other == name),
                "{kind:?} {other}"
            );
        }
        let f = only_finding(&c);
        assert_eq!((f.key, f.replica), (Some(0), Some(1)));
        assert_eq!(f.expected.as_deref(), Some("3"));
        assert_eq!(f.actual.as_deref(), Some("6"));
    }
}

#[test]
fn idempotency_differing_before_after_is_a_violation_even_if_flag_is_false() {
    let mut h = Hb::new(Workload::GCounter, 1).build();
    h.probes.push(Probe {
        probe: ProbeKind::Redeliver,
        replica: 0,
        key: 1,
        state_changed: false,
        before: Some(Value::Int(1)),
        after: Some(Value::Int(2)),
    });
    let c = idempotency::check(&h);
    assert_eq!(c.verdict, Verdict::Invalid);
    assert_eq!(count(&c, "redelivery_violations"), 1);
}

#[test]
fn idempotency_without_probes_is_unknown() {
    let h = counter_base(1).quiesced().build();
    let c = idempotency::check(&h);
    assert_eq!(c.verdict, Verdict::Unknown);
    assert_eq!(count(&c, "probes"), 0);
    assert_eq!(count(&c, "violations"), 0);
}

// ---------------------------------------------------------------------------
// Conflicts
// ---------------------------------------------------------------------------

fn conflicts_of(ops: &[OpRecord]) -> Check {
    let mut b = Hb::new(Workload::GCounter, 3);
    for o in ops {
        b = b.op(*o);
    }
    conflicts::check(&b.build())
}

#[test]
fn conflicts_two_concurrent_updates() {
    let c = conflicts_of(&[
        csum(ok(Function::Increment, 0, 0, 1), 1),
        csum(ok(Function::Increment, 1, 0, 1), 1),
    ]);
    assert_eq!(c.verdict, Verdict::Valid);
    // Both updates were concurrent with another one: 2 of 2, not 1 pair.
    assert_eq!(count(&c, "conflicts"), 2);
    assert_eq!(count(&c, "updates"), 2);
}

#[test]
fn conflicts_causally_ordered_updates() {
    let c = conflicts_of(&[
        csum(ok(Function::Increment, 0, 0, 1), 1),
        csum(ok(Function::Increment, 1, 0, 1), 2),
    ]);
    assert_eq!(count(&c, "conflicts"), 0);
}

#[test]
fn conflicts_three_mutually_concurrent_and_per_key() {
    let c = conflicts_of(&[
        csum(ok(Function::Increment, 0, 0, 1), 1),
        csum(ok(Function::Increment, 1, 0, 1), 1),
        csum(ok(Function::Increment, 0, 1, 1), 1),
        csum(ok(Function::Increment, 1, 1, 1), 1),
        csum(ok(Function::Increment, 2, 1, 1), 1),
        // Ignored: reads, failures, and updates with no clock sum.
        ok(Function::Read, 2, 0, 0),
        fail(Function::Increment, 2, 0, 1),
        ok(Function::Increment, 2, 0, 1),
    ]);
    assert_eq!(count(&c, "conflicts"), 5);
    assert_eq!(count(&c, "hottest_key"), 1);
    assert_eq!(count(&c, "hottest_key_conflicts"), 3);
    let c = conflicts_of(&[
        csum(ok(Function::Increment, 0, 0, 1), 1),
        csum(ok(Function::Increment, 1, 0, 1), 1),
        csum(ok(Function::Increment, 2, 0, 1), 1),
    ]);
    assert_eq!(count(&c, "conflicts"), 3);
}

#[test]
fn conflicts_are_bounded_by_the_updates_however_many_pairs() {
    // 40 mutually concurrent updates are 780 concurrent pairs, but 40
    // updates that conflicted: the figure never exceeds the updates.
    let ops: Vec<OpRecord> = (0..40)
        .map(|r| csum(ok(Function::Increment, r % 3, 0, 1), 1))
        .collect();
    let c = conflicts_of(&ops);
    assert_eq!(count(&c, "conflicts"), 40);
    assert_eq!(count(&c, "updates"), 40);
    // A chain of 40 (each update saw every earlier one) has none.
    let chain: Vec<OpRecord> = (0..40)
        .map(|i| csum(ok(Function::Increment, (i % 3) as u16, 0, 1), i + 1))
        .collect();
    assert_eq!(count(&conflicts_of(&chain), "conflicts"), 0);
}

#[test]
fn conflicts_on_sets_are_per_element_and_black_box_ones_are_not_measured() {
    // Adds of different elements by two replicas, concurrent by clock, do
    // not conflict: they touch different elements.
    let h = Hb::new(Workload::GSet, 2)
        .op(csum(ok(Function::Add, 0, 0, 1), 1))
        .op(csum(ok(Function::Add, 1, 0, 2), 1))
        .build();
    assert_eq!(count(&conflicts::check(&h), "conflicts"), 0);
    // The same element from two replicas does.
    let h = Hb::new(Workload::GSet, 2)
        .op(csum(ok(Function::Add, 0, 0, 1), 1))
        .op(csum(ok(Function::Add, 1, 0, 1), 1))
        .build();
    assert_eq!(count(&conflicts::check(&h), "conflicts"), 2);
    let mut h = h;
    h.header.as_mut().unwrap().target = "http".into();
    let c = conflicts::check(&h);
    assert!(c.not_judged, "{c:?}");
    assert!(!c.counts.contains_key("conflicts"), "{c:?}");
}

#[test]
fn conflicts_with_an_info_update_in_the_causal_past() {
    // I (info, applied: clock_sum 1) -> A (ok, clock_sum 2); B (ok, clock_sum 1)
    // is concurrent with both. Ok pairs: (A, B) = 1 conflict; counting every
    // update that carries a clock: (I, B), (A, B) = 2. The checker takes n = 2
    // ok updates (1 pair) minus A's 1 ordered predecessor (I, not counted in
    // n) and reports 0.
    let c = conflicts_of(&[
        csum(info(Function::Increment, 0, 0, 1), 1),
        csum(ok(Function::Increment, 0, 0, 1), 2),
        csum(ok(Function::Increment, 1, 0, 1), 1),
    ]);
    // I || B and A || B: all three were concurrent with another update.
    assert_eq!(count(&c, "conflicts"), 3);
}

// ---------------------------------------------------------------------------
// Overall verdict
// ---------------------------------------------------------------------------

#[test]
fn overall_invalid_dominates_unknown_dominates_valid() {
    let c = |v| Check::new("x", v, "");
    use Verdict::{Invalid, Unknown, Valid};
    // Nothing judged is no pass.
    assert_eq!(overall(&[]), Unknown);
    assert_eq!(overall(&[c(Valid), c(Valid)]), Valid);
    assert_eq!(overall(&[c(Valid), c(Unknown)]), Unknown);
    assert_eq!(overall(&[c(Unknown), c(Valid)]), Unknown);
    assert_eq!(overall(&[c(Unknown), c(Invalid), c(Valid)]), Invalid);
    assert_eq!(overall(&[c(Invalid), c(Unknown)]), Invalid);
    assert_eq!(Valid.and(Invalid), Invalid);
    assert_eq!([Valid, Invalid, Unknown].map(Verdict::exit_code), [0, 1, 2]);
}

#[test]
fn check_all_runs_every_checker_on_a_complete_valid_history() {
    let h = Hb::new(Workload::GSet, 2)
        .op(csum(ok(Function::Add, 0, 0, 1), 1))
        .op(csum(ok(Function::Add, 1, 0, 2), 1))
        .fin(0, 0, elems(&[1, 2]))
        .fin(1, 0, elems(&[1, 2]))
        .probe(ProbeKind::SelfMerge, 0, false)
        .probe(ProbeKind::SelfMerge, 1, false)
        .quiesced()
        .build();
    let checks = check_all(&h);
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["convergence", "data-loss", "idempotency", "conflicts"]
    );
    assert!(
        checks.iter().all(|c| c.verdict == Verdict::Valid),
        "{checks:#?}"
    );
    assert_eq!(overall(&checks), Verdict::Valid);
    // Adds of different elements never conflict.
    assert_eq!(count(named(&checks, "conflicts"), "conflicts"), 0);
}

#[test]
fn key_with_updates_but_no_final_reads_is_not_valid() {
    // Key 1 has an acknowledged add, but no replica's final read of key 1 is
    // in the history. Convergence only looks at keys that have finals, and
    // data loss judges no read, so both are valid and so is the run, although
    // nothing shows that the add survived. One missing replica read of a key
    // gives unknown; all of them missing should not give less.
    let h = Hb::new(Workload::GSet, 2)
        .op(ok(Function::Add, 0, 0, 1))
        .op(ok(Function::Add, 0, 1, 2))
        .fin(0, 0, elems(&[1]))
        .fin(1, 0, elems(&[1]))
        .probe(ProbeKind::SelfMerge, 0, false)
        .quiesced()
        .build();
    let checks = check_all(&h);
    assert_ne!(overall(&checks), Verdict::Valid, "{checks:#?}");
}

// ---------------------------------------------------------------------------
// JSONL
// ---------------------------------------------------------------------------

fn header_line(workload: &str, replicas: u16) -> String {
    header_line_keys(workload, replicas, 1)
}

fn header_line_keys(workload: &str, replicas: u16, keys: u32) -> String {
    format!(
        r#"{{"type":"header","schema_version":1,"seed":42,"workload":"{workload}","model":"{workload}","target":"in-process","writers":2,"replicas":{replicas},"keys":{keys},"ops":0,"nemesis":"none","reproduce":"converge run --workload {workload}"}}"#
    )
}

fn tail_lines(probes: usize) -> String {
    let mut s = String::new();
    for r in 0..probes {
        s += &format!(
            "{{\"type\":\"probe\",\"probe\":\"self-merge\",\"replica\":{r},\"key\":0,\"state_changed\":false}}\n"
        );
    }
    s += r#"{"type":"quiescence","reached":true,"rounds":3,"max_rounds":50,"convergence_ns":7000}
{"type":"network","sent":4,"delivered":5,"dropped":1,"duplicated":1,"duplicates_delivered":1,"delayed":0,"reordered":0,"gossip_merges":2}
"#;
    s
}

fn write_tmp(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}

fn read_text(text: &str) -> converge::Result<ReadHistory> {
    let f = write_tmp(text);
    read_history(f.path())
}

/// The line number and message of a `HistoryLine` error.
#[track_caller]
fn line_error(text: &str) -> (usize, String) {
    match read_text(text) {
        Err(Error::HistoryLine { line, message, .. }) => (line, message),
        other => panic!("expected a HistoryLine error, got {other:?}"),
    }
}

/// Sets the quiescence, network and probes the `tail_lines` text describes.
fn with_tail(mut h: History, probes: u16) -> History {
    for r in 0..probes {
        h.probes.push(Probe {
            probe: ProbeKind::SelfMerge,
            replica: r,
            key: 0,
            state_changed: false,
            before: None,
            after: None,
        });
    }
    h.quiescence = Some(quiescence(true));
    h.network = Some(NetworkStats {
        sent: 4,
        delivered: 5,
        dropped: 1,
        duplicated: 1,
        duplicates_delivered: 1,
        delayed: 0,
        reordered: 0,
        gossip_merges: 2,
    });
    h
}

#[track_caller]
fn assert_same_checks(read: &History, mem: &History) {
    assert_eq!(read.ops, mem.ops);
    assert_eq!(read.arena, mem.arena);
    assert_eq!(read.reads, mem.reads);
    assert_eq!(read.finals, mem.finals);
    assert_eq!(read.probes, mem.probes);
    assert_eq!(read.quiescence, mem.quiescence);
    assert_eq!(read.network, mem.network);
    assert_eq!(read.header, mem.header);
    assert_eq!(read.keep_clocks, mem.keep_clocks);
    assert_eq!(check_all(read), check_all(mem));
}

const COUNTER_OPS: &str = r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"increment","value":10,"time_ns":100}
{"type":"ok","op":0,"time_ns":150,"clock_sum":1}
{"type":"invoke","op":1,"process":1,"replica":1,"key":0,"f":"increment","value":5,"time_ns":120}
{"type":"info","op":1,"time_ns":400,"clock_sum":1,"error":"timeout"}
{"type":"invoke","op":2,"process":1,"replica":1,"key":0,"f":"increment","value":7,"time_ns":500}
{"type":"info","op":2,"time_ns":900,"clock_sum":2}
{"type":"invoke","op":3,"process":0,"replica":0,"key":0,"f":"increment","value":100,"time_ns":600}
{"type":"fail","op":3,"time_ns":650,"error":"rejected"}
{"type":"invoke","op":4,"process":0,"replica":0,"key":0,"f":"read","time_ns":700}
{"type":"ok","op":4,"time_ns":710,"read":{"int":15}}
"#;

fn counter_memory(final_value: i64) -> History {
    let h = Hb::new(Workload::GCounter, 2)
        .op(csum(at(ok(Function::Increment, 0, 0, 10), 100, 50), 1))
        .op(csum(at(info(Function::Increment, 1, 0, 5), 120, 280), 1))
        .op(csum(at(info(Function::Increment, 1, 0, 7), 500, 400), 2))
        .op(at(fail(Function::Increment, 0, 0, 100), 600, 50))
        .read(at(ok(Function::Read, 0, 0, 0), 700, 10), Value::Int(15))
        .fin(0, 0, Value::Int(final_value))
        .fin(1, 0, Value::Int(final_value))
        .build();
    with_tail(h, 2)
}

#[test]
fn jsonl_counter_round_trip_matches_memory() {
    for (value, verdict) in [
        (15, Verdict::Valid),
        (22, Verdict::Valid),
        (11, Verdict::Invalid),
    ] {
        let text = format!(
            "{}\n{COUNTER_OPS}{{\"type\":\"final\",\"replica\":0,\"key\":0,\"value\":{{\"int\":{value}}}}}\n{{\"type\":\"final\",\"replica\":1,\"key\":0,\"value\":{{\"int\":{value}}}}}\n{}",
            header_line("g-counter", 2),
            tail_lines(2)
        );
        let read = read_text(&text).unwrap();
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        let mem = counter_memory(value);
        assert_same_checks(&read.history, &mem);
        let checks = check_all(&read.history);
        assert_eq!(
            named(&checks, "data-loss").verdict,
            verdict,
            "final {value}"
        );
        assert_eq!(named(&checks, "convergence").verdict, Verdict::Valid);
        assert_eq!(named(&checks, "idempotency").verdict, Verdict::Valid);
        assert_eq!(
            count(named(&checks, "idempotency"), "duplicates_delivered"),
            1
        );
        assert_eq!(overall(&checks), verdict);
    }
}

#[test]
fn jsonl_or_set_round_trip_matches_memory() {
    let text = format!(
        r#"{}
{{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"add","value":5,"time_ns":10}}
{{"type":"ok","op":0,"time_ns":20,"clock_sum":1,"dot":1}}
{{"type":"invoke","op":1,"process":1,"replica":1,"key":0,"f":"add","value":5,"time_ns":11}}
{{"type":"ok","op":1,"time_ns":21,"clock_sum":1,"dot":1}}
{{"type":"invoke","op":2,"process":0,"replica":0,"key":0,"f":"remove","value":5,"time_ns":30}}
{{"type":"ok","op":2,"time_ns":40,"clock_sum":2,"observed":[[0,1]]}}
{{"type":"invoke","op":3,"process":1,"replica":1,"key":1,"f":"add","value":6,"time_ns":50}}
{{"type":"ok","op":3,"time_ns":60,"clock_sum":1,"dot":2}}
{{"type":"invoke","op":4,"process":1,"replica":1,"key":1,"f":"remove","value":6,"time_ns":70}}
{{"type":"ok","op":4,"time_ns":80,"clock_sum":2,"observed":[[1,2]]}}
{{"type":"final","replica":0,"key":0,"value":{{"elems":[5]}}}}
{{"type":"final","replica":1,"key":0,"value":{{"elems":[]}}}}
{{"type":"final","replica":0,"key":1,"value":{{"elems":[6]}}}}
{{"type":"final","replica":1,"key":1,"value":{{"elems":[6]}}}}
{}"#,
        header_line_keys("or-set", 2, 2),
        tail_lines(1)
    );
    let read = read_text(&text).unwrap();
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    let mem = Hb::new(Workload::OrSet, 2)
        .op(csum(aux(at(ok(Function::Add, 0, 0, 5), 10, 10), 1), 1))
        .op(csum(aux(at(ok(Function::Add, 1, 0, 5), 11, 10), 1), 1))
        .remove(
            csum(at(ok(Function::Remove, 0, 0, 5), 30, 10), 2),
            &[(0, 1)],
        )
        .op(csum(aux(at(ok(Function::Add, 1, 1, 6), 50, 10), 2), 1))
        .remove(
            csum(at(ok(Function::Remove, 1, 1, 6), 70, 10), 2),
            &[(1, 2)],
        )
        .fin(0, 0, elems(&[5]))
        .fin(1, 0, elems(&[]))
        .fin(0, 1, elems(&[6]))
        .fin(1, 1, elems(&[6]))
        .build();
    let mem = with_tail(mem, 1);
    assert_same_checks(&read.history, &mem);
    let checks = check_all(&read.history);
    let conv = named(&checks, "convergence");
    assert_eq!(conv.verdict, Verdict::Invalid);
    assert_eq!(count(conv, "diverged_keys"), 1);
    let dl = named(&checks, "data-loss");
    // Key 0: replica 1 lost the unobserved add (op 1). Key 1: 6 was removed.
    assert_loss(dl, Verdict::Invalid, 1, 2, 0);
    assert_eq!(dl.findings[0].ops, vec![1]);
    assert_eq!(dl.findings[0].replica, Some(1));
    // Key 0: the two adds of 5 are concurrent, and the remove saw only one
    // of them: all three conflicted; one add won over the remove.
    assert_eq!(count(named(&checks, "conflicts"), "conflicts"), 3);
    assert_eq!(count(named(&checks, "conflicts"), "or_set_add_wins"), 1);
    assert_eq!(overall(&checks), Verdict::Invalid);
}

#[test]
fn jsonl_mv_register_and_lww_map_round_trips_match_memory() {
    let mv = format!(
        r#"{}
{{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"write","value":1,"time_ns":10}}
{{"type":"ok","op":0,"time_ns":20,"clock_sum":1,"clock":[1,0],"ts":0}}
{{"type":"invoke","op":1,"process":1,"replica":1,"key":0,"f":"write","value":2,"time_ns":10}}
{{"type":"ok","op":1,"time_ns":20,"clock_sum":1,"clock":[0,1],"ts":0}}
{{"type":"invoke","op":2,"process":1,"replica":1,"key":1,"f":"write","value":3,"time_ns":30}}
{{"type":"ok","op":2,"time_ns":40,"clock_sum":1,"clock":[0,1],"ts":0}}
{{"type":"invoke","op":3,"process":0,"replica":0,"key":1,"f":"write","value":4,"time_ns":50}}
{{"type":"ok","op":3,"time_ns":60,"clock_sum":2,"clock":[1,1],"ts":0}}
{{"type":"final","replica":0,"key":0,"value":{{"elems":[1,2]}}}}
{{"type":"final","replica":1,"key":0,"value":{{"elems":[1,2]}}}}
{{"type":"final","replica":0,"key":1,"value":{{"elems":[4]}}}}
{{"type":"final","replica":1,"key":1,"value":{{"elems":[4]}}}}
{}"#,
        header_line_keys("mv-register", 2, 2),
        tail_lines(2)
    );
    let read = read_text(&mv).unwrap();
    assert!(read.history.keep_clocks);
    let mem = Hb::new(Workload::MvRegister, 2)
        .clocked(csum(at(ok(Function::Write, 0, 0, 1), 10, 10), 1), &[1, 0])
        .clocked(csum(at(ok(Function::Write, 1, 0, 2), 10, 10), 1), &[0, 1])
        .clocked(csum(at(ok(Function::Write, 1, 1, 3), 30, 10), 1), &[0, 1])
        .clocked(csum(at(ok(Function::Write, 0, 1, 4), 50, 10), 2), &[1, 1])
        .fin(0, 0, elems(&[1, 2]))
        .fin(1, 0, elems(&[1, 2]))
        .fin(0, 1, elems(&[4]))
        .fin(1, 1, elems(&[4]))
        .build();
    let mem = with_tail(mem, 2);
    assert_same_checks(&read.history, &mem);
    let checks = check_all(&read.history);
    assert_eq!(overall(&checks), Verdict::Valid, "{checks:#?}");
    // Key 0's two writes were concurrent; key 1's were ordered.
    assert_eq!(count(named(&checks, "conflicts"), "conflicts"), 2);
    assert_eq!(count(named(&checks, "conflicts"), "mv_final_siblings"), 6);

    let map_text = format!(
        r#"{}
{{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"put","value":10,"field":1,"time_ns":10}}
{{"type":"ok","op":0,"time_ns":20,"clock_sum":1,"ts":5}}
{{"type":"invoke","op":1,"process":0,"replica":0,"key":0,"f":"delete","field":1,"time_ns":30}}
{{"type":"ok","op":1,"time_ns":40,"clock_sum":2,"ts":6}}
{{"type":"invoke","op":2,"process":0,"replica":0,"key":0,"f":"put","value":20,"field":2,"time_ns":50}}
{{"type":"ok","op":2,"time_ns":60,"clock_sum":3,"ts":7}}
{{"type":"final","replica":0,"key":0,"value":{{"map":[[1,10],[2,20]]}}}}
{}"#,
        header_line("lww-map", 1),
        tail_lines(1)
    );
    let read = read_text(&map_text).unwrap();
    let del = csum(at(delete(Outcome::Ok, 0, 1, 6), 30, 10), 2);
    let mem = Hb::new(Workload::LwwMap, 1)
        .op(csum(at(put(Outcome::Ok, 0, 1, 10, 5), 10, 10), 1))
        .op(del)
        .op(csum(at(put(Outcome::Ok, 0, 2, 20, 7), 50, 10), 3))
        .fin(0, 0, map(&[(1, 10), (2, 20)]))
        .build();
    let mem = with_tail(mem, 1);
    assert_same_checks(&read.history, &mem);
    let checks = check_all(&read.history);
    let dl = named(&checks, "data-loss");
    assert_loss(dl, Verdict::Invalid, 1, 0, 0);
    assert_eq!(only_finding(dl).ops, vec![1]);
}

/// Serializes a history with the writer's own op formatter.
fn to_jsonl(h: &History) -> String {
    fn tagged<T: serde::Serialize>(kind: &str, value: &T) -> String {
        let mut v = serde_json::to_value(value).unwrap();
        v.as_object_mut()
            .unwrap()
            .insert("type".into(), kind.into());
        serde_json::to_string(&v).unwrap() + "\n"
    }
    let mut out = tagged("header", h.header.as_ref().unwrap()).into_bytes();
    let mut reads = h.read_cursor();
    for (i, o) in h.ops.iter().enumerate() {
        format_op(&mut out, i as u64, o, h, &mut reads);
    }
    let mut s = String::from_utf8(out).unwrap();
    for f in &h.finals.decode() {
        s += &tagged("final", &f);
    }
    for p in &h.probes {
        s += &tagged("probe", p);
    }
    if let Some(q) = &h.quiescence {
        s += &tagged("quiescence", q);
    }
    if let Some(n) = &h.network {
        s += &tagged("network", n);
    }
    s
}

#[test]
fn jsonl_writer_format_round_trips_every_workload() {
    let histories = [
        counter_memory(17),
        Hb::new(Workload::TwoPSet, 1)
            .op(csum(at(ok(Function::Add, 0, 0, 1), 1, 2), 1))
            .op(csum(at(ok(Function::Remove, 0, 0, 1), 5, 2), 2))
            .op(at(fail(Function::Remove, 0, 0, 2), 9, 1))
            .read(at(ok(Function::Read, 0, 0, 0), 20, 1), elems(&[1, 1]))
            .op(at(fail(Function::Read, 0, 0, 0), 30, 1))
            .fin(0, 0, elems(&[1]))
            .quiesced()
            .build(),
        Hb::new(Workload::OrSet, 1)
            .op(csum(aux(ok(Function::Add, 0, 0, 3), 1), 1))
            .remove(csum(info(Function::Remove, 0, 0, 3), 2), &[(0, 1), (0, 9)])
            .fin(0, 0, elems(&[]))
            .quiesced()
            .build(),
        Hb::new(Workload::LwwRegister, 1)
            .op(csum(aux(ok(Function::Write, 0, 0, 3), 8), 1))
            .op(csum(aux(info(Function::Write, 0, 0, 4), 9), 2))
            .fin(0, 0, elems(&[4]))
            .probe(ProbeKind::StaleMerge, 0, true)
            .quiesced()
            .build(),
        Hb::new(Workload::MvRegister, 2)
            .clocked(csum(ok(Function::Write, 0, 0, 1), 1), &[1, 0])
            .clocked(csum(info(Function::Write, 1, 0, 2), 1), &[0, 1])
            .fin(0, 0, elems(&[1, 2]))
            .fin(1, 0, elems(&[1]))
            .quiesced()
            .build(),
        Hb::new(Workload::LwwMap, 1)
            .op(csum(put(Outcome::Ok, 0, 3, 30, 2), 1))
            .op(csum(delete(Outcome::Info, 0, 3, 3), 2))
            .fin(0, 0, map(&[]))
            .build(),
    ];
    let mut verdicts = Vec::new();
    for mem in &histories {
        let read = read_text(&to_jsonl(mem)).unwrap();
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        assert_same_checks(&read.history, mem);
        verdicts.push(overall(&check_all(&read.history)));
    }
    use Verdict::{Invalid, Unknown, Valid};
    assert_eq!(
        verdicts,
        [Valid, Invalid, Unknown, Invalid, Invalid, Unknown]
    );
}

#[test]
fn jsonl_malformed_line_in_the_middle_names_the_line() {
    let text = format!(
        "{}\n{}{{\"type\":\"final\",\"replica\":0,\"key\":0,\n{{\"type\":\"final\",\"replica\":0,\"key\":0,\"value\":{{\"int\":15}}}}\n",
        header_line("g-counter", 2),
        COUNTER_OPS
    );
    let (line, message) = line_error(&text);
    assert_eq!(line, 12);
    assert!(message.contains("EOF"), "{message}");
    // Unknown type, unknown function and unknown field are malformed too.
    for (bad, why) in [
        (r#"{"type":"nonsense","op":0}"#, "nonsense"),
        (
            r#"{"type":"invoke","op":9,"process":0,"replica":0,"key":0,"f":"explode","time_ns":1}"#,
            "explode",
        ),
        (
            r#"{"type":"invoke","op":9,"process":0,"replica":0,"key":0,"f":"read","time_ns":1,"extra":true}"#,
            "extra",
        ),
    ] {
        let text = format!("{}\n{bad}\n{}", header_line("g-counter", 1), tail_lines(0));
        let (line, message) = line_error(&text);
        assert_eq!(line, 2, "{bad}");
        assert!(message.contains(why), "{bad}: {message}");
    }
}

#[test]
fn jsonl_truncated_last_line_is_skipped_with_a_warning() {
    let text = format!(
        "{}\n{COUNTER_OPS}{{\"type\":\"final\",\"replica\":0,\"key\":0,\"value\":{{\"int\":15}}}}\n{{\"type\":\"final\",\"replica\":1,\"ke",
        header_line("g-counter", 2)
    );
    let read = read_text(&text).unwrap();
    assert_eq!(read.warnings.len(), 1, "{:?}", read.warnings);
    assert!(read.warnings[0].contains(":13:"), "{}", read.warnings[0]);
    assert!(
        read.warnings[0].contains("cut short"),
        "{}",
        read.warnings[0]
    );
    assert_eq!(read.history.ops.len(), 5);
    assert_eq!(read.history.finals.len(), 1);
    assert!(read.history.quiescence.is_none());
    let checks = check_all(&read.history);
    assert_eq!(named(&checks, "convergence").verdict, Verdict::Unknown);
    assert_eq!(overall(&checks), Verdict::Unknown);

    // The same cut line followed by a newline is an error, not a kill.
    let (line, _) = line_error(&format!("{text}\n"));
    assert_eq!(line, 13);
    // A complete last line without a newline is simply read.
    let text = format!(
        "{}\n{COUNTER_OPS}{}",
        header_line("g-counter", 2),
        tail_lines(0).trim_end()
    );
    let read = read_text(&text).unwrap();
    assert!(read.warnings.is_empty());
    assert!(read.history.network.is_some());
}

#[test]
fn jsonl_invoke_without_completion_is_info() {
    let text = |final_value: i64| {
        format!(
            r#"{}
{{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"increment","value":10,"time_ns":100}}
{{"type":"ok","op":0,"time_ns":150,"clock_sum":1}}
{{"type":"invoke","op":1,"process":1,"replica":0,"key":0,"f":"increment","value":5,"time_ns":120}}
{{"type":"final","replica":0,"key":0,"value":{{"int":{final_value}}}}}
{}"#,
            header_line("g-counter", 1),
            tail_lines(1)
        )
    };
    let read = read_text(&text(15)).unwrap();
    assert_eq!(read.warnings.len(), 1);
    assert!(
        read.warnings[0].contains("1 invoke(s) never completed (first at line 4)"),
        "{}",
        read.warnings[0]
    );
    let ops = &read.history.ops;
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[1].outcome, Outcome::Info);
    assert_eq!((ops[1].value, ops[1].invoke_ns), (5, 120));
    for (value, verdict, lost, unexpected) in [
        (15, Verdict::Valid, 0, 0),
        (10, Verdict::Valid, 0, 0),
        (16, Verdict::Invalid, 0, 1),
        (9, Verdict::Invalid, 1, 0),
    ] {
        let read = read_text(&text(value)).unwrap();
        assert_loss(
            &data_loss::check(&read.history),
            verdict,
            lost,
            unexpected,
            0,
        );
    }
}

#[test]
fn jsonl_completion_of_unknown_op_names_the_line() {
    let text = format!(
        "{}\n{COUNTER_OPS}{{\"type\":\"ok\",\"op\":77,\"time_ns\":1000}}\n",
        header_line("g-counter", 2)
    );
    let (line, message) = line_error(&text);
    assert_eq!(line, 12);
    assert!(message.contains("op 77"), "{message}");
    // A second completion of a completed op is also unknown by then.
    let text = format!(
        "{}\n{COUNTER_OPS}{{\"type\":\"ok\",\"op\":0,\"time_ns\":1000}}\n",
        header_line("g-counter", 2)
    );
    assert_eq!(line_error(&text).0, 12);
}

#[test]
fn jsonl_numbers_out_of_range_name_the_line() {
    for (bad, number) in [
        (
            r#"{"type":"invoke","op":0,"process":0,"replica":70000,"key":0,"f":"increment","value":1,"time_ns":1}"#,
            "70000",
        ),
        (
            r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":-1,"f":"increment","value":1,"time_ns":1}"#,
            "-1",
        ),
        (
            r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"increment","value":9223372036854775808,"time_ns":1}"#,
            "9223372036854775808",
        ),
        (
            r#"{"type":"invoke","op":0,"process":-3,"replica":0,"key":0,"f":"increment","value":1,"time_ns":1}"#,
            "-3",
        ),
        (
            r#"{"type":"final","replica":0,"key":4294967296,"value":{"int":1}}"#,
            "4294967296",
        ),
        (
            r#"{"type":"ok","op":0,"time_ns":5,"observed":[[65536,1]]}"#,
            "65536",
        ),
    ] {
        let text = format!(
            "{}\n{{\"type\":\"invoke\",\"op\":0,\"process\":0,\"replica\":0,\"key\":0,\"f\":\"remove\",\"value\":1,\"time_ns\":1}}\n{bad}\n",
            header_line("or-set", 1)
        );
        let (line, message) = line_error(&text);
        assert_eq!(line, 3, "{bad}");
        assert!(message.contains(number), "{bad}: {message}");
    }
}

#[test]
fn jsonl_incoherent_lines_name_the_line() {
    let h = header_line("g-set", 1);
    let invoke =
        r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"read","time_ns":100}"#;
    let cases = [
        // Completion before invocation.
        (
            format!("{h}\n{invoke}\n{{\"type\":\"ok\",\"op\":0,\"time_ns\":99,\"read\":{{\"elems\":[]}}}}\n"),
            3,
            "before its invocation",
        ),
        // Ok read without a value.
        (
            format!("{h}\n{invoke}\n{{\"type\":\"ok\",\"op\":0,\"time_ns\":101}}\n"),
            3,
            "no \"read\" value",
        ),
        // The same op invoked twice.
        (format!("{h}\n{invoke}\n{invoke}\n"), 3, "op 0 invoked twice"),
        // A second header.
        (format!("{h}\n{invoke}\n{h}\n"), 3, "a second header"),
        // Not starting with a header.
        (format!("{invoke}\n{h}\n"), 1, "must be the header"),
        // OR-Set dot counter beyond 48 bits.
        (
            format!(
                "{h}\n{}\n{{\"type\":\"ok\",\"op\":0,\"time_ns\":101,\"observed\":[[0,281474976710656]]}}\n",
                invoke.replace("\"read\"", "\"remove\",\"value\":1")
            ),
            3,
            "exceeds 2^48",
        ),
    ];
    for (text, expected, why) in cases {
        let (line, message) = line_error(&text);
        assert_eq!(line, expected, "{text}");
        assert!(message.contains(why), "{text}: {message}");
    }
}

#[test]
fn jsonl_empty_file_and_wrong_schema_version_are_errors() {
    for text in ["", "\n\n"] {
        match read_text(text) {
            Err(Error::History { message, .. }) => {
                assert!(message.contains("empty history"), "{message}")
            }
            other => panic!("expected an empty-history error, got {other:?}"),
        }
    }
    let text = header_line("g-counter", 1).replace("\"schema_version\":1", "\"schema_version\":2");
    let (line, message) = line_error(&format!("{text}\n"));
    assert_eq!(line, 1);
    assert!(message.contains("schema_version 2"), "{message}");
    let missing = header_line("g-counter", 1).replace("\"schema_version\":1,", "");
    let (line, message) = line_error(&format!("{missing}\n"));
    assert_eq!(line, 1);
    assert!(message.contains("schema_version"), "{message}");
    let bad_workload = header_line("b-tree", 1);
    let (line, message) = line_error(&format!("{bad_workload}\n"));
    assert_eq!(line, 1);
    assert!(message.contains("b-tree"), "{message}");
}

// ---------------------------------------------------------------------------
// Known checker bugs (ignored until fixed)
// ---------------------------------------------------------------------------

#[test]
fn finding_op_indices_are_jsonl_op_ids() {
    // checker/mod.rs: findings name "op indices (positions in history.ops,
    // equal to the op ids of history.jsonl)". read_history pushes ops in
    // completion order, so interleaved invokes (Jepsen style) shift them.
    let text = format!(
        r#"{}
{{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"add","value":1,"time_ns":10}}
{{"type":"invoke","op":1,"process":1,"replica":0,"key":0,"f":"add","value":2,"time_ns":11}}
{{"type":"ok","op":1,"time_ns":20}}
{{"type":"ok","op":0,"time_ns":30}}
{{"type":"final","replica":0,"key":0,"value":{{"elems":[2]}}}}
{}"#,
        header_line("g-set", 1),
        tail_lines(1)
    );
    let read = read_text(&text).unwrap();
    let c = data_loss::check(&read.history);
    assert_loss(&c, Verdict::Invalid, 1, 0, 0);
    assert_eq!(only_finding(&c).ops, vec![0], "the add of 1 is op 0");
}

#[test]
fn ops_land_in_id_order_past_uncompleted_ops_and_gaps_in_the_ids() {
    // read_history pushes an op once every lower id is in: an op that never
    // completes (op 0), completions that overtake (op 4 before op 1) and an
    // id never used (op 3) must still leave the ops sorted by id.
    let text = format!(
        r#"{}
{{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"add","value":10,"time_ns":10}}
{{"type":"invoke","op":1,"process":1,"replica":0,"key":0,"f":"add","value":11,"time_ns":11}}
{{"type":"invoke","op":4,"process":2,"replica":0,"key":0,"f":"add","value":14,"time_ns":12}}
{{"type":"ok","op":4,"time_ns":20}}
{{"type":"invoke","op":2,"process":3,"replica":0,"key":0,"f":"read","time_ns":13}}
{{"type":"ok","op":1,"time_ns":21}}
{{"type":"ok","op":2,"time_ns":22,"read":{{"elems":[11,14]}}}}
{{"type":"final","replica":0,"key":0,"value":{{"elems":[10,11,14]}}}}
{}"#,
        header_line("g-set", 1),
        tail_lines(1)
    );
    let read = read_text(&text).unwrap();
    let history = &read.history;
    let values: Vec<i64> = history.ops.iter().map(|op| op.value).collect();
    assert_eq!(values, vec![10, 11, 0, 14]);
    assert_eq!(history.ops[0].outcome, Outcome::Info);
    assert_eq!(
        history.read_cursor().value(&history.ops[2]),
        Some(&elems(&[11, 14]))
    );
}

#[test]
fn duplicates_in_an_unsorted_read_are_detected() {
    // history.jsonl is an input of `converge check`, and nothing checks that
    // a read is sorted; windows(2) only sees adjacent repeats.
    let text = format!(
        r#"{}
{{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"add","value":1,"time_ns":10}}
{{"type":"ok","op":0,"time_ns":20}}
{{"type":"invoke","op":1,"process":0,"replica":0,"key":0,"f":"read","time_ns":30}}
{{"type":"ok","op":1,"time_ns":40,"read":{{"elems":[1,2,1]}}}}
"#,
        header_line("g-set", 1)
    );
    let read = read_text(&text).unwrap();
    let c = data_loss::check(&read.history);
    assert_eq!(count(&c, "duplicates_in_reads"), 1);
    assert_eq!(c.verdict, Verdict::Invalid);
}

/// A history whose op 1 was invoked but never completed: read back as info
/// with no timestamp, dot, observed dots or clock.
fn uncompleted(workload: &str, ops: &str, finals: &str) -> History {
    let text = format!(
        "{}\n{ops}{finals}{}",
        header_line(workload, 1),
        tail_lines(1)
    );
    let read = read_text(&text).unwrap();
    assert_eq!(read.warnings.len(), 1, "{:?}", read.warnings);
    assert!(read
        .history
        .ops
        .iter()
        .skip(1)
        .all(|o| o.outcome == Outcome::Info));
    read.history
}

#[test]
fn lww_uncompleted_write_may_win() {
    let h = uncompleted(
        "lww-register",
        r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"write","value":10,"time_ns":10}
{"type":"ok","op":0,"time_ns":20,"clock_sum":1,"ts":5}
{"type":"invoke","op":1,"process":0,"replica":0,"key":0,"f":"write","value":20,"time_ns":30}
"#,
        "{\"type\":\"final\",\"replica\":0,\"key\":0,\"value\":{\"elems\":[20]}}\n",
    );
    // The write of 20 may have happened, stamped later than ts 5.
    assert_loss(&data_loss::check(&h), Verdict::Valid, 0, 0, 0);
}

#[test]
fn or_set_uncompleted_remove_may_have_removed() {
    let h = uncompleted(
        "or-set",
        r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"add","value":5,"time_ns":10}
{"type":"ok","op":0,"time_ns":20,"clock_sum":1,"dot":1}
{"type":"invoke","op":1,"process":0,"replica":0,"key":0,"f":"remove","value":5,"time_ns":30}
"#,
        "{\"type\":\"final\",\"replica\":0,\"key\":0,\"value\":{\"elems\":[]}}\n",
    );
    assert_loss(&data_loss::check(&h), Verdict::Valid, 0, 0, 0);
}

#[test]
fn or_set_uncompleted_adds_do_not_collide() {
    let h = uncompleted(
        "or-set",
        r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"add","value":4,"time_ns":10}
{"type":"ok","op":0,"time_ns":20,"clock_sum":1,"dot":1}
{"type":"invoke","op":1,"process":0,"replica":0,"key":0,"f":"add","value":5,"time_ns":30}
{"type":"invoke","op":2,"process":1,"replica":0,"key":0,"f":"add","value":6,"time_ns":31}
"#,
        "{\"type\":\"final\",\"replica\":0,\"key\":0,\"value\":{\"elems\":[4,5,6]}}\n",
    );
    assert_loss(&data_loss::check(&h), Verdict::Valid, 0, 0, 0);
}

#[test]
fn mv_uncompleted_write_may_supersede() {
    let h = uncompleted(
        "mv-register",
        r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"write","value":1,"time_ns":10}
{"type":"ok","op":0,"time_ns":20,"clock_sum":1,"clock":[1]}
{"type":"invoke","op":1,"process":0,"replica":0,"key":0,"f":"write","value":2,"time_ns":30}
"#,
        "{\"type\":\"final\",\"replica\":0,\"key\":0,\"value\":{\"elems\":[2]}}\n",
    );
    // Write 2 happened after write 1 on the same replica: it replaced it.
    assert_loss(&data_loss::check(&h), Verdict::Valid, 0, 0, 0);
}

#[test]
fn jsonl_lines_that_contradict_the_header_name_the_line() {
    let header = header_line("or-set", 2);
    // A replica the header does not declare.
    let text = format!(
        "{header}\n{}\n",
        r#"{"type":"invoke","op":0,"process":0,"replica":7,"key":0,"f":"add","value":1,"time_ns":1}"#
    );
    let (line, message) = line_error(&text);
    assert_eq!(line, 2);
    assert!(message.contains("replica 7"), "{message}");
    // A key the header does not declare, in a final read.
    let text = format!(
        "{header}\n{}\n",
        r#"{"type":"final","replica":0,"key":3,"value":{"elems":[]}}"#
    );
    let (line, message) = line_error(&text);
    assert_eq!(line, 2);
    assert!(message.contains("key 3"), "{message}");
    // An op id reused after its completion.
    let text = format!(
        "{header}\n{}\n{}\n{}\n",
        r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"add","value":1,"time_ns":1}"#,
        r#"{"type":"ok","op":0,"time_ns":2,"clock_sum":1,"dot":1}"#,
        r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"add","value":2,"time_ns":3}"#
    );
    let (line, message) = line_error(&text);
    assert_eq!(line, 4);
    assert!(message.contains("op 0 invoked twice"), "{message}");
    // An observed dot from an undeclared replica.
    let text = format!(
        "{header}\n{}\n{}\n",
        r#"{"type":"invoke","op":0,"process":0,"replica":0,"key":0,"f":"remove","value":1,"time_ns":1}"#,
        r#"{"type":"ok","op":0,"time_ns":2,"clock_sum":1,"observed":[[65000,1]]}"#
    );
    let (line, message) = line_error(&text);
    assert_eq!(line, 3);
    assert!(message.contains("replica 65000"), "{message}");
}
