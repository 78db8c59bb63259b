//! The history's compact read store and deduplicated final reads: every read
//! decodes to exactly what was pushed, in any order; final reads keep one
//! line per replica and key on disk; and set workloads stay within the
//! 64-bytes-per-op budget.

use converge::checker::check_all;
use converge::history::jsonl::{read_history, HistoryWriter, WriterMsg};
use converge::history::{
    FinalRead, Function, Header, History, OpRecord, Outcome, Quiescence, SCHEMA_VERSION,
};
use converge::interpreter::{run, RunConfig};
use converge::models::{Value, Workload};
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::BTreeSet;

fn header(workload: Workload, replicas: u16, keys: u32) -> Header {
    Header {
        schema_version: SCHEMA_VERSION,
        seed: 7,
        workload,
        model: workload.name().to_string(),
        target: "in-process".to_string(),
        writers: 2,
        replicas,
        keys,
        ops: 0,
        nemesis: "none".to_string(),
        reproduce: String::new(),
        linearizable: false,
    }
}

fn record(f: Function, replica: u16, key: u32, outcome: Outcome) -> OpRecord {
    OpRecord {
        invoke_ns: 0,
        value: 1,
        aux: 0,
        latency_ns: 1,
        process: 0,
        key,
        clock_sum: 0,
        slot: 0,
        replica,
        f,
        outcome,
    }
}

/// What the next op of a generated history does to one `(replica, key)`.
#[derive(Clone, Debug)]
enum Step {
    /// Adds elements to the pair's set and reads it (sorted).
    Grow(Vec<u64>),
    /// Removes some of the set's elements and reads it (sorted).
    Shrink(Vec<Index>),
    /// Reads the set in reverse order (not sorted).
    Reversed,
    /// Reads the set with one element twice (not strictly increasing).
    Duplicated(Index),
    /// Reads arbitrary elements as a target returned them.
    Raw(Vec<u64>),
    /// A counter read.
    Int(i64),
    /// A map read.
    Map(Vec<(u32, u64)>),
    /// A read that returned nothing (failed).
    Failed,
    /// An update, whose slot points into the arena, not the read store.
    Update,
}

fn element() -> impl Strategy<Value = u64> {
    // Small values give one-byte gaps, large ones ten-byte varints.
    prop_oneof![0u64..64, any::<u64>(), (u64::MAX - 4)..=u64::MAX]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => prop::collection::vec(element(), 0..6).prop_map(Step::Grow),
        2 => prop::collection::vec(any::<Index>(), 0..4).prop_map(Step::Shrink),
        1 => Just(Step::Reversed),
        1 => any::<Index>().prop_map(Step::Duplicated),
        1 => prop::collection::vec(element(), 0..5).prop_map(Step::Raw),
        1 => any::<i64>().prop_map(Step::Int),
        1 => prop::collection::vec((0u32..8, element()), 0..4).prop_map(Step::Map),
        1 => Just(Step::Failed),
        1 => Just(Step::Update),
    ]
}

/// Pushes the steps, each on one of three replicas and two keys, and
/// returns the history with what each op's read should decode to.
fn build(steps: &[(u16, u32, Step)], shrink_at: Option<usize>) -> (History, Vec<Option<Value>>) {
    let mut h = History::new(header(Workload::GSet, 3, 2));
    let mut sets = vec![BTreeSet::new(); 6];
    let mut expected = Vec::new();
    for (n, (replica, key, step)) in steps.iter().enumerate() {
        if shrink_at == Some(n) {
            h.shrink_to_fit();
        }
        let set = &mut sets[*replica as usize * 2 + *key as usize];
        let sorted = |s: &BTreeSet<u64>| Value::Elems(s.iter().copied().collect());
        let value = match step {
            Step::Grow(adds) => {
                set.extend(adds);
                Some(sorted(set))
            }
            Step::Shrink(picks) => {
                let all: Vec<u64> = set.iter().copied().collect();
                if !all.is_empty() {
                    for pick in picks {
                        set.remove(&all[pick.index(all.len())]);
                    }
                }
                Some(sorted(set))
            }
            Step::Reversed => Some(Value::Elems(set.iter().rev().copied().collect())),
            Step::Duplicated(pick) => {
                let mut all: Vec<u64> = set.iter().copied().collect();
                if !all.is_empty() {
                    let at = pick.index(all.len());
                    all.insert(at, all[at]);
                }
                Some(Value::Elems(all))
            }
            Step::Raw(elems) => Some(Value::Elems(elems.clone())),
            Step::Int(v) => Some(Value::Int(*v)),
            Step::Map(entries) => Some(Value::Map(entries.clone())),
            Step::Failed | Step::Update => None,
        };
        let (f, outcome) = match step {
            Step::Update => (Function::Add, Outcome::Ok),
            Step::Failed => (Function::Read, Outcome::Fail),
            _ => (Function::Read, Outcome::Ok),
        };
        h.push(record(f, *replica, *key, outcome), None, &[], value.clone())
            .unwrap();
        expected.push(value);
    }
    (h, expected)
}

fn steps() -> impl Strategy<Value = Vec<(u16, u32, Step)>> {
    prop::collection::vec((0u16..3, 0u32..2, step()), 0..80)
}

fn strictly_increasing(v: &Option<Value>) -> bool {
    matches!(v, Some(Value::Elems(e)) if e.windows(2).all(|w| w[0] < w[1]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every read decodes to what was pushed, visiting ops in order, and
    /// sorted set reads are the ones stored as diffs.
    #[test]
    fn reads_round_trip_in_order(steps in steps(), shrink in any::<Option<Index>>()) {
        let shrink_at = shrink.map(|i| i.index(steps.len().max(1)));
        let (h, expected) = build(&steps, shrink_at);
        let mut cursor = h.read_cursor();
        for (op, want) in h.ops.iter().zip(&expected) {
            prop_assert_eq!(cursor.value(op), want.as_ref());
        }
        let sorted = expected.iter().filter(|v| strictly_increasing(v)).count();
        prop_assert_eq!(h.reads.diff_reads(), sorted);
        prop_assert_eq!(h.reads.len(), expected.iter().filter(|v| v.is_some()).count());
    }

    /// The same, visiting ops in a random order with repeats and backward
    /// jumps, one cursor for the whole visit.
    #[test]
    fn reads_round_trip_in_any_order(
        steps in steps(),
        visits in prop::collection::vec(any::<Index>(), 0..120),
    ) {
        let (h, expected) = build(&steps, None);
        prop_assume!(!h.ops.is_empty());
        let mut cursor = h.read_cursor();
        for visit in visits {
            let i = visit.index(h.ops.len());
            prop_assert_eq!(cursor.value(&h.ops[i]), expected[i].as_ref(), "op {}", i);
        }
    }

    /// A history cut to one key keeps that key's reads.
    #[test]
    fn only_key_keeps_the_reads(steps in steps()) {
        let (h, expected) = build(&steps, None);
        for key in 0..2 {
            let (sub, index) = h.only_key(key);
            let mut cursor = sub.read_cursor();
            for (op, &i) in sub.ops.iter().zip(&index) {
                prop_assert_eq!(cursor.value(op), expected[i].as_ref());
            }
        }
    }
}

#[test]
fn the_recording_cache_is_counted_until_shrink_frees_it() {
    let mut h = History::new(header(Workload::GSet, 1, 1));
    let set: Vec<u64> = (0..10_000).collect();
    for n in 1..=10 {
        h.push(
            record(Function::Read, 0, 0, Outcome::Ok),
            None,
            &[],
            Some(Value::Elems(set[..n * 1000].to_vec())),
        )
        .unwrap();
    }
    let recording = h.bytes_per_op();
    h.shrink_to_fit();
    let done = h.bytes_per_op();
    // The cache holds the last 10,000-element read: 8 KB per op of ten.
    assert!(
        recording > done + 7_000.0,
        "recording {recording}, after shrink {done}"
    );
    // Ten reads growing by 1000 consecutive elements: about a byte each.
    assert!(done < 2_000.0, "{done} bytes/op");
    assert_eq!(
        h.read_cursor().value(&h.ops[9]),
        Some(&Value::Elems(set.clone()))
    );
}

/// Three replicas read five keys: sets (delta-coded) on keys 0 to 2, where
/// replica 2 disagrees on key 1; a counter on key 3, where replica 2
/// disagrees; an unsorted list (kept as is) on key 4.
fn final_reads() -> Vec<FinalRead> {
    let mut reads = Vec::new();
    for replica in 0..3 {
        for key in 0..5u32 {
            let value = match key {
                0..=2 => {
                    let mut elems: Vec<u64> = (0..100 * (key as u64 + 1)).collect();
                    if key == 1 && replica == 2 {
                        elems.pop();
                    }
                    Value::Elems(elems)
                }
                3 => Value::Int(if replica == 2 { 9 } else { 8 }),
                _ => Value::Elems(vec![3, 1, 2, 1]),
            };
            reads.push(FinalRead {
                replica,
                key,
                value,
            });
        }
    }
    reads
}

#[test]
fn finals_share_equal_values_and_keep_one_line_per_replica_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let writer = HistoryWriter::start(&path, header(Workload::GSet, 3, 5)).unwrap();
    let sender = writer.sender();
    for read in final_reads() {
        sender.send(WriterMsg::Final(read)).unwrap();
    }
    sender
        .send(WriterMsg::Quiescence(Quiescence {
            reached: true,
            rounds: 1,
            max_rounds: 10,
            convergence_ns: Some(1),
        }))
        .unwrap();
    drop(sender);
    let mem = writer.finish().unwrap();

    // In memory: every read, in order, and one value per key plus the two
    // that disagreed.
    assert_eq!(mem.finals.to_vec(), final_reads());
    assert_eq!(mem.finals.len(), 15);
    assert_eq!(mem.finals.distinct_values(), 7);

    // On disk: one line per replica and key, as the reads serialize.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(r#"{"type":"final""#))
        .collect();
    assert_eq!(lines.len(), 15);
    for (line, read) in lines.iter().zip(final_reads()) {
        let value = match &read.value {
            Value::Elems(elems) => {
                let list: Vec<String> = elems.iter().map(u64::to_string).collect();
                format!(r#"{{"elems":[{}]}}"#, list.join(","))
            }
            Value::Int(v) => format!(r#"{{"int":{v}}}"#),
            Value::Map(_) => unreachable!(),
        };
        assert_eq!(
            *line,
            format!(
                r#"{{"type":"final","replica":{},"key":{},"value":{value}}}"#,
                read.replica, read.key
            )
        );
    }

    // Read back: the same reads, shared the same way, the same verdicts.
    let back = read_history(&path).unwrap().history;
    assert_eq!(back.finals, mem.finals);
    assert_eq!(back.finals.distinct_values(), 7);
    assert_eq!(check_all(&back), check_all(&mem));
}

#[test]
fn finals_retain_and_collect_keep_order_and_values() {
    let mut finals: converge::history::Finals = final_reads().into_iter().collect();
    finals.retain(|f| f.key != 0);
    let want: Vec<FinalRead> = final_reads().into_iter().filter(|f| f.key != 0).collect();
    assert_eq!(finals.to_vec(), want);
    assert_eq!(finals.distinct_values(), 6);
    // Pushing after shrink_to_fit (which drops the push index) still shares.
    finals.shrink_to_fit();
    for read in &want[..4] {
        finals.push(read.clone());
    }
    assert_eq!(finals.distinct_values(), 6);
    assert_eq!(finals.len(), 16);
    assert_eq!(finals.to_vec()[12..], want[..4]);
}

/// A moderately sized set run: 200 writers, 200,000 ops, the default mix.
fn set_run_bytes_per_op(model: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RunConfig::for_model(model, 1, dir.path().join(model)).unwrap();
    config.writers = 200;
    config.ops = 200_000;
    let history = run(&config).unwrap().history;
    assert_eq!(history.ops.len(), 200_000);
    assert!(history.reads.diff_reads() > 0, "{model}: no read is a diff");
    history.bytes_per_op()
}

#[test]
fn g_set_history_stays_within_64_bytes_per_op() {
    let bytes = set_run_bytes_per_op("g-set");
    assert!(bytes <= 64.0, "g-set: {bytes:.1} bytes/op");
}

#[test]
fn two_p_set_history_stays_within_64_bytes_per_op() {
    let bytes = set_run_bytes_per_op("2p-set");
    assert!(bytes <= 64.0, "2p-set: {bytes:.1} bytes/op");
}

// Invocation first: what a killed black-box run leaves.

#[test]
fn an_invocation_is_in_the_file_before_record_invoke_returns_and_reads_back_as_info() {
    use converge::history::jsonl::record_invoke;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let mut head = header(Workload::GCounter, 2, 1);
    head.target = "maelstrom".into();
    let writer = HistoryWriter::start(&path, head).unwrap();
    let sender = writer.sender();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let first = OpRecord::invocation(Function::Increment, 0, 0, 0, 3, 10);
    let second = OpRecord::invocation(Function::Increment, 1, 1, 0, 4, 11);
    let done = runtime.block_on(record_invoke(&sender, &first)).unwrap();
    let open = runtime.block_on(record_invoke(&sender, &second)).unwrap();
    // Both invocations are in the file now, before either op was "sent":
    // a kill at this point leaves them (a copy is what a kill leaves).
    let cut = dir.path().join("cut.jsonl");
    std::fs::copy(&path, &cut).unwrap();
    let text = std::fs::read_to_string(&cut).unwrap();
    assert_eq!(text.matches(r#""type":"invoke""#).count(), 2, "{text}");
    let read = read_history(&cut).unwrap();
    assert!(read.interrupted.is_some(), "a cut history is interrupted");
    assert_eq!(read.history.ops.len(), 2);
    assert!(read
        .history
        .ops
        .iter()
        .all(|op| op.outcome == Outcome::Info));

    // The first completes; the second never does (its client died).
    let mut finished = first;
    finished.outcome = Outcome::Ok;
    finished.latency_ns = 5;
    done.complete(&sender, finished, None).unwrap();
    drop(open);
    drop(sender);
    let live = writer.finish().unwrap();
    let back = read_history(&path).unwrap();
    assert_eq!(back.interrupted, None, "a closed history has its end line");
    for history in [&live, &back.history] {
        let outcomes: Vec<_> = history.ops.iter().map(|op| op.outcome).collect();
        assert_eq!(outcomes, [Outcome::Ok, Outcome::Info]);
        assert_eq!(history.ops[0].value, 3);
        assert_eq!(history.ops[0].latency_ns, 5);
        assert_eq!(history.ops[1].process, 1);
    }
}
