//! The linearizability checker: tiny literal histories per model and
//! semantics, budgets, witnesses, a differential test against brute force,
//! and the shared corpora with their known verdicts.

mod common;

use converge::checker::linearizable::brute;
use converge::checker::linearizable::model::{
    Compile, Compiled, Counter, CounterOp, Effect, Kv, KvOp, ModelKind, Register, RegisterOp,
    Semantics, SeqModel, Set, SetOp,
};
use converge::checker::linearizable::search::TimedOp;
use converge::checker::linearizable::{check, Explain, LinConfig};
use converge::history::lin::{LinFn, LinHistory, LinOp, LinValue};
use converge::history::Outcome;
use converge::Verdict;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Building literal histories.

/// An op from `(process, f, input, output, outcome, call, ret)`.
fn op(
    process: u64,
    f: LinFn,
    input: LinValue,
    output: LinValue,
    outcome: Outcome,
    call: u64,
    ret: Option<u64>,
) -> LinOp {
    LinOp {
        process,
        key: None,
        f,
        input,
        output,
        outcome,
        call,
        ret,
        line: call as usize + 1,
    }
}

fn int(i: i64) -> LinValue {
    LinValue::Int(i)
}

fn write(p: u64, v: i64, call: u64, ret: u64) -> LinOp {
    op(
        p,
        LinFn::Write,
        int(v),
        LinValue::Nil,
        Outcome::Ok,
        call,
        Some(ret),
    )
}

fn read(p: u64, v: LinValue, call: u64, ret: u64) -> LinOp {
    op(
        p,
        LinFn::Read,
        LinValue::Nil,
        v,
        Outcome::Ok,
        call,
        Some(ret),
    )
}

fn cas(p: u64, from: i64, to: i64, outcome: Outcome, call: u64, ret: Option<u64>) -> LinOp {
    let pair = LinValue::List(vec![int(from), int(to)]);
    op(p, LinFn::Cas, pair, LinValue::Nil, outcome, call, ret)
}

fn verdict_of(model: ModelKind, semantics: Semantics, ops: Vec<LinOp>) -> Verdict {
    let mut config = LinConfig::new(model);
    config.semantics = semantics;
    let history = LinHistory {
        ops,
        warnings: Vec::new(),
    };
    check(&history, &config, Path::new("literal"))
        .expect("literal history compiles")
        .verdict
}

fn both(model: ModelKind, ops: Vec<LinOp>) -> (Verdict, Verdict) {
    (
        verdict_of(model, Semantics::Porcupine, ops.clone()),
        verdict_of(model, Semantics::Knossos, ops),
    )
}

// ---------------------------------------------------------------------------
// Register and cas-register.

#[test]
fn sequential_write_then_read_is_linearizable() {
    let ops = vec![write(0, 1, 0, 1), read(1, int(1), 2, 3)];
    assert_eq!(
        both(ModelKind::Register, ops),
        (Verdict::Valid, Verdict::Valid)
    );
}

#[test]
fn stale_read_after_a_completed_write_is_not_linearizable() {
    let ops = vec![write(0, 1, 0, 1), write(0, 2, 2, 3), read(1, int(1), 4, 5)];
    assert_eq!(
        both(ModelKind::Register, ops),
        (Verdict::Invalid, Verdict::Invalid)
    );
}

#[test]
fn concurrent_read_may_see_either_value() {
    for seen in [1, 2] {
        let ops = vec![
            write(0, 1, 0, 1),
            write(0, 2, 2, 5),
            read(1, int(seen), 3, 4),
        ];
        assert_eq!(
            verdict_of(ModelKind::Register, Semantics::Porcupine, ops),
            Verdict::Valid
        );
    }
}

#[test]
fn reads_must_agree_on_one_order() {
    // Two writes overlap two reads; the readers see them in opposite orders
    // after both writes finished: no single order explains both.
    let ops = vec![
        write(0, 1, 0, 3),
        write(1, 2, 0, 3),
        read(2, int(1), 4, 5),
        read(3, int(2), 6, 7),
        read(2, int(1), 8, 9),
    ];
    assert_eq!(
        verdict_of(ModelKind::Register, Semantics::Porcupine, ops),
        Verdict::Invalid
    );
}

#[test]
fn nil_read_is_absent_under_porcupine_and_unknown_under_knossos() {
    // After a completed write, a nil read is stale under porcupine's
    // convention (nil = absent) but says nothing under knossos's.
    let ops = vec![write(0, 1, 0, 1), read(1, LinValue::Nil, 2, 3)];
    assert_eq!(
        both(ModelKind::Register, ops),
        (Verdict::Invalid, Verdict::Valid)
    );
    // Before any write, nil is the initial state under porcupine.
    let ops = vec![read(1, LinValue::Nil, 0, 1), write(0, 1, 2, 3)];
    assert_eq!(
        both(ModelKind::Register, ops),
        (Verdict::Valid, Verdict::Valid)
    );
}

#[test]
fn failed_cas_is_a_legal_failure_under_porcupine_and_absent_under_knossos() {
    // State is 1; cas [1 2] reported fail. porcupine: a fail cas must have
    // seen a different value, impossible here. knossos: it did not happen.
    let ops = vec![
        write(0, 1, 0, 1),
        cas(1, 1, 2, Outcome::Fail, 2, Some(3)),
        read(2, int(1), 4, 5),
    ];
    assert_eq!(
        both(ModelKind::CasRegister, ops),
        (Verdict::Invalid, Verdict::Valid)
    );
    // cas [3 2] fails legally when the state is 1, under both.
    let ops = vec![
        write(0, 1, 0, 1),
        cas(1, 3, 2, Outcome::Fail, 2, Some(3)),
        read(2, int(1), 4, 5),
    ];
    assert_eq!(
        both(ModelKind::CasRegister, ops),
        (Verdict::Valid, Verdict::Valid)
    );
}

#[test]
fn ok_cas_needs_its_precondition() {
    let ops = vec![write(0, 1, 0, 1), cas(1, 3, 2, Outcome::Ok, 2, Some(3))];
    assert_eq!(
        both(ModelKind::CasRegister, ops),
        (Verdict::Invalid, Verdict::Invalid)
    );
    let ops = vec![
        write(0, 1, 0, 1),
        cas(1, 1, 2, Outcome::Ok, 2, Some(3)),
        read(2, int(2), 4, 5),
    ];
    assert_eq!(
        both(ModelKind::CasRegister, ops),
        (Verdict::Valid, Verdict::Valid)
    );
}

#[test]
fn crashed_cas_with_a_failing_precondition_is_a_noop_not_an_illegal_step() {
    // The crashed cas [5 9] can never apply; the history must still be
    // valid, and the later read of 1 must not be blamed on it.
    let ops = vec![
        write(0, 1, 0, 1),
        cas(1, 5, 9, Outcome::Info, 2, None),
        read(2, int(1), 3, 4),
    ];
    assert_eq!(
        both(ModelKind::CasRegister, ops),
        (Verdict::Valid, Verdict::Valid)
    );
}

#[test]
fn crashed_write_may_take_effect_late_or_never() {
    let late = vec![
        write(0, 1, 0, 1),
        op(
            1,
            LinFn::Write,
            int(2),
            LinValue::Nil,
            Outcome::Info,
            2,
            None,
        ),
        read(2, int(1), 3, 4),
        read(2, int(2), 5, 6),
    ];
    assert_eq!(
        both(ModelKind::Register, late),
        (Verdict::Valid, Verdict::Valid)
    );
    let never = vec![
        write(0, 1, 0, 1),
        op(
            1,
            LinFn::Write,
            int(2),
            LinValue::Nil,
            Outcome::Info,
            2,
            None,
        ),
        read(2, int(1), 3, 4),
    ];
    assert_eq!(
        both(ModelKind::Register, never),
        (Verdict::Valid, Verdict::Valid)
    );
    // But never before its invocation.
    let early = vec![
        read(2, int(2), 0, 1),
        op(
            1,
            LinFn::Write,
            int(2),
            LinValue::Nil,
            Outcome::Info,
            2,
            None,
        ),
    ];
    assert_eq!(
        both(ModelKind::Register, early),
        (Verdict::Invalid, Verdict::Invalid)
    );
}

#[test]
fn timed_out_read_constrains_nothing() {
    let ops = vec![
        write(0, 1, 0, 1),
        op(
            1,
            LinFn::Read,
            LinValue::Nil,
            LinValue::Keyword("timed-out".into()),
            Outcome::Fail,
            2,
            Some(3),
        ),
    ];
    assert_eq!(
        both(ModelKind::Register, ops),
        (Verdict::Valid, Verdict::Valid)
    );
}

#[test]
fn failed_write_did_not_happen() {
    let ops = vec![
        write(0, 1, 0, 1),
        op(
            1,
            LinFn::Write,
            int(2),
            LinValue::Nil,
            Outcome::Fail,
            2,
            Some(3),
        ),
        read(2, int(2), 4, 5),
    ];
    assert_eq!(
        both(ModelKind::Register, ops),
        (Verdict::Invalid, Verdict::Invalid)
    );
}

#[test]
fn register_without_cas_refuses_a_cas_naming_the_line() {
    let history = LinHistory {
        ops: vec![cas(0, 1, 2, Outcome::Ok, 6, Some(7))],
        warnings: Vec::new(),
    };
    let err = check(
        &history,
        &LinConfig::new(ModelKind::Register),
        Path::new("h.edn"),
    )
    .expect_err("register has no cas");
    let text = err.to_string();
    assert!(text.contains("h.edn:7"), "{text}");
    assert!(text.contains("cas"), "{text}");
    assert_eq!(err.exit_code(), 3);
}

// ---------------------------------------------------------------------------
// kv, counter, set.

fn keyed(mut op: LinOp, key: &str) -> LinOp {
    op.key = Some(key.to_string());
    op
}

fn s(text: &str) -> LinValue {
    LinValue::Str(text.to_string())
}

#[test]
fn kv_append_concatenates_and_missing_key_reads_empty() {
    let ops = vec![
        keyed(read(0, s(""), 0, 1), "a"),
        keyed(
            op(
                0,
                LinFn::Append,
                s("x"),
                LinValue::Nil,
                Outcome::Ok,
                2,
                Some(3),
            ),
            "a",
        ),
        keyed(
            op(
                1,
                LinFn::Append,
                s("y"),
                LinValue::Nil,
                Outcome::Ok,
                4,
                Some(5),
            ),
            "a",
        ),
        keyed(read(2, s("xy"), 6, 7), "a"),
        keyed(
            op(
                1,
                LinFn::Write,
                s("z"),
                LinValue::Nil,
                Outcome::Ok,
                8,
                Some(9),
            ),
            "b",
        ),
        keyed(read(2, s("z"), 10, 11), "b"),
    ];
    assert_eq!(
        both(ModelKind::Kv, ops.clone()),
        (Verdict::Valid, Verdict::Valid)
    );
    let mut wrong = ops;
    wrong[3] = keyed(read(2, s("yx"), 6, 7), "a");
    assert_eq!(
        both(ModelKind::Kv, wrong),
        (Verdict::Invalid, Verdict::Invalid)
    );
}

#[test]
fn kv_keys_get_their_own_verdicts() {
    let ops = vec![
        keyed(
            op(
                0,
                LinFn::Write,
                s("1"),
                LinValue::Nil,
                Outcome::Ok,
                0,
                Some(1),
            ),
            "good",
        ),
        keyed(read(1, s("1"), 2, 3), "good"),
        keyed(
            op(
                0,
                LinFn::Write,
                s("1"),
                LinValue::Nil,
                Outcome::Ok,
                4,
                Some(5),
            ),
            "bad",
        ),
        keyed(read(1, s("2"), 6, 7), "bad"),
    ];
    let history = LinHistory {
        ops,
        warnings: Vec::new(),
    };
    // Every key is searched to the end only with `--explain all`; with
    // `first` or `none` the bad key may stop the good one early.
    let mut config = LinConfig::new(ModelKind::Kv);
    config.explain = Explain::All;
    let result = check(&history, &config, Path::new("kv")).unwrap();
    assert_eq!(result.verdict, Verdict::Invalid);
    let verdicts: Vec<(Option<&str>, Verdict)> = result
        .keys
        .iter()
        .map(|k| (k.key.as_deref(), k.verdict))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (Some("bad"), Verdict::Invalid),
            (Some("good"), Verdict::Valid)
        ]
    );
    assert!(result.keys[0].witness.is_some());
    assert!(result.keys[1].witness.is_none());
}

#[test]
fn counter_reads_must_match_a_prefix_sum() {
    let add = |p, d, c, r| {
        op(
            p,
            LinFn::Add,
            int(d),
            LinValue::Nil,
            Outcome::Ok,
            c,
            Some(r),
        )
    };
    let ops = vec![
        add(0, 2, 0, 3),
        add(1, 5, 0, 3),
        read(2, int(5), 1, 2),
        read(2, int(7), 4, 5),
    ];
    assert_eq!(
        both(ModelKind::Counter, ops),
        (Verdict::Valid, Verdict::Valid)
    );
    let ops = vec![add(0, 2, 0, 3), add(1, 5, 0, 3), read(2, int(3), 1, 2)];
    assert_eq!(
        both(ModelKind::Counter, ops),
        (Verdict::Invalid, Verdict::Invalid)
    );
}

#[test]
fn set_reads_must_see_completed_adds() {
    let add = |p, e, c, r| {
        op(
            p,
            LinFn::Add,
            int(e),
            LinValue::Nil,
            Outcome::Ok,
            c,
            Some(r),
        )
    };
    let set = |items: &[i64]| LinValue::List(items.iter().map(|&i| int(i)).collect());
    let ops = vec![
        add(0, 1, 0, 1),
        add(1, 2, 2, 5),
        read(2, set(&[1]), 3, 4),
        read(2, set(&[2, 1]), 6, 7),
    ];
    assert_eq!(both(ModelKind::Set, ops), (Verdict::Valid, Verdict::Valid));
    let ops = vec![add(0, 1, 0, 1), read(2, set(&[]), 2, 3)];
    assert_eq!(
        both(ModelKind::Set, ops),
        (Verdict::Invalid, Verdict::Invalid)
    );
}

// ---------------------------------------------------------------------------
// Witness and budgets.

#[test]
fn witness_names_the_op_that_cannot_be_placed() {
    let ops = vec![
        write(0, 1, 0, 1),
        write(0, 2, 2, 3),
        read(1, int(2), 4, 5),
        read(1, int(1), 6, 7),
        write(0, 3, 8, 9),
    ];
    let history = LinHistory {
        ops,
        warnings: Vec::new(),
    };
    let result = check(
        &history,
        &LinConfig::new(ModelKind::Register),
        Path::new("w"),
    )
    .unwrap();
    let witness = result.keys[0].witness.as_ref().expect("a witness");
    let blocked = witness.blocked_op.as_ref().expect("a blocked op");
    assert_eq!(blocked.index, 3, "{witness:#?}");
    assert_eq!(witness.linearization_len, 3);
    assert_eq!(witness.state_after, "2");
    let order: Vec<usize> = witness.linearization.iter().map(|o| o.index).collect();
    assert_eq!(order, vec![0, 1, 2]);
    assert!(
        witness.explanation.contains("read -> 1"),
        "{}",
        witness.explanation
    );
}

#[test]
fn witness_stays_bounded_on_a_long_history() {
    let mut ops = Vec::new();
    for i in 0..5000u64 {
        ops.push(write(0, i as i64, 4 * i, 4 * i + 1));
        ops.push(read(1, int(i as i64), 4 * i + 2, 4 * i + 3));
    }
    ops.push(read(1, int(7), 40_000, 40_001));
    let history = LinHistory {
        ops,
        warnings: Vec::new(),
    };
    let result = check(
        &history,
        &LinConfig::new(ModelKind::Register),
        Path::new("long"),
    )
    .unwrap();
    assert_eq!(result.verdict, Verdict::Invalid);
    let witness = result.keys[0].witness.as_ref().unwrap();
    assert_eq!(witness.linearization_len, 10_000);
    assert!(witness.linearization.len() <= converge::checker::linearizable::witness::WITNESS_OPS);
    assert!(witness.furthest.len() <= converge::checker::linearizable::witness::WITNESS_OPS);
    assert_eq!(witness.blocked_op.as_ref().unwrap().index, 10_000);
}

/// Many concurrent writes and a final read nobody wrote: every subset of
/// writes must be tried before the search can say no.
fn explosive_history(writers: u64) -> LinHistory {
    let mut ops: Vec<LinOp> = (0..writers)
        .map(|p| {
            op(
                p,
                LinFn::Add,
                int(1 << (p % 40)),
                LinValue::Nil,
                Outcome::Ok,
                0,
                Some(10),
            )
        })
        .collect();
    ops.push(read(writers, int(-1), 11, 12));
    LinHistory {
        ops,
        warnings: Vec::new(),
    }
}

#[test]
fn time_budget_turns_a_blow_up_into_unknown() {
    let mut config = LinConfig::new(ModelKind::Counter);
    config.timeout = Some(Duration::from_millis(200));
    config.memory_mib = 64 * 1024;
    let result = check(&explosive_history(60), &config, Path::new("x")).unwrap();
    assert_eq!(result.verdict, Verdict::Unknown);
    let reason = result.keys[0].reason.as_deref().unwrap_or("");
    assert!(reason.contains("time"), "{reason}");
}

#[test]
fn memory_budget_turns_a_blow_up_into_unknown() {
    let mut config = LinConfig::new(ModelKind::Counter);
    config.memory_mib = 1;
    config.threads = 1;
    let result = check(&explosive_history(60), &config, Path::new("x")).unwrap();
    assert_eq!(result.verdict, Verdict::Unknown);
    let reason = result.keys[0].reason.as_deref().unwrap_or("");
    assert!(reason.contains("memory"), "{reason}");
}

#[test]
fn explain_none_and_all() {
    let bad = |k: &str| {
        vec![
            keyed(
                op(
                    0,
                    LinFn::Write,
                    s("1"),
                    LinValue::Nil,
                    Outcome::Ok,
                    0,
                    Some(1),
                ),
                k,
            ),
            keyed(read(1, s("2"), 2, 3), k),
        ]
    };
    let history = LinHistory {
        ops: [bad("a"), bad("b")].concat(),
        warnings: Vec::new(),
    };
    let mut config = LinConfig::new(ModelKind::Kv);
    let witnesses = |config: &LinConfig| {
        check(&history, config, Path::new("k"))
            .unwrap()
            .keys
            .iter()
            .filter(|k| k.witness.is_some())
            .count()
    };
    assert_eq!(witnesses(&config), 1);
    config.explain = Explain::All;
    assert_eq!(witnesses(&config), 2);
    config.explain = Explain::None;
    assert_eq!(witnesses(&config), 0);
}

// ---------------------------------------------------------------------------
// Differential: the search against brute force on small random histories.

/// A history generated by running the model for real at chosen
/// linearization points, then possibly corrupting one output, so that both
/// valid and invalid histories are frequent.
#[derive(Clone, Debug)]
struct Plan {
    /// (process slot, start, length, linearization offset, kind, value)
    ops: Vec<(u8, u8, u8, u8, u8, u8)>,
    corrupt: Option<(usize, u8)>,
    crash: Option<usize>,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        prop::collection::vec((0u8..4, 0u8..12, 1u8..6, 0u8..6, 0u8..4, 0u8..3), 1..=7),
        prop::option::weighted(0.8, (0usize..4, 0u8..3)),
        prop::option::weighted(0.6, 0usize..5),
    )
        .prop_map(|(ops, corrupt, crash)| Plan {
            ops,
            corrupt,
            crash,
        })
}

/// Builds timed ops for `model` from a plan: `make(kind, value, state)`
/// gives the op and the state after it.
fn realize<M: SeqModel>(
    model: &M,
    plan: &Plan,
    make: impl Fn(u8, u8, &M::State, bool) -> (M::Op, M::State),
) -> Vec<TimedOp<M::Op>> {
    // Lay ops out per process so each process has one op in flight.
    let mut timed: Vec<(u64, u64, u64, u8, u8)> = Vec::new();
    let mut next_free = [0u64; 4];
    for &(proc_slot, start, len, lin, kind, value) in &plan.ops {
        let call = next_free[proc_slot as usize].max(start as u64);
        let ret = call + len as u64;
        next_free[proc_slot as usize] = ret + 1;
        let point = call * 16 + (lin as u64 % (len as u64 + 1)) * 16 / (len as u64 + 1);
        timed.push((call, ret, point, kind, value));
    }
    let mut by_point: Vec<usize> = (0..timed.len()).collect();
    by_point.sort_by_key(|&i| (timed[i].2, i));
    let mut state = model.init();
    let mut built: Vec<Option<M::Op>> = vec![None; timed.len()];
    for &i in &by_point {
        let (_, _, _, kind, value) = timed[i];
        let corrupt = plan.corrupt.is_some_and(|(at, _)| at == i);
        let (op, next) = make(kind, value, &state, corrupt);
        built[i] = Some(op);
        state = next;
    }
    timed
        .iter()
        .zip(built)
        .enumerate()
        .filter_map(|(i, (&(call, ret, ..), op))| {
            let crashed = plan.crash == Some(i);
            Some(TimedOp {
                op: if crashed { model.pending(&op?)? } else { op? },
                call,
                ret: if crashed { None } else { Some(ret) },
            })
        })
        .collect()
}

fn agree<M: SeqModel>(model: &M, ops: &[TimedOp<M::Op>]) -> Result<(), TestCaseError> {
    brute::compare_with_search(model, ops)
        .map(|_| ())
        .map_err(|why| TestCaseError::fail(format!("{why}; ops: {ops:?}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn search_agrees_with_brute_force_on_cas_registers(plan in plan()) {
        let model = Register::new(true);
        let ops = realize(&model, &plan, |kind, value, state, corrupt| {
            let v = value as u32 + 1;
            match kind {
                0 => (RegisterOp::Write(v), v),
                1 => {
                    let seen = if corrupt { (*state + 1) % 4 } else { *state };
                    (RegisterOp::Read(seen), *state)
                }
                _ => {
                    let from = (value as u32) % 3;
                    let to = v;
                    let applies = from == *state;
                    let effect = if applies != corrupt { Effect::Ok } else { Effect::Failed };
                    (RegisterOp::Cas { from, to, effect }, if applies { to } else { *state })
                }
            }
        });
        agree(&model, &ops)?;
    }

    #[test]
    fn search_agrees_with_brute_force_on_counters(plan in plan()) {
        let ops = realize(&Counter, &plan, |kind, value, state, corrupt| {
            if kind < 2 {
                (CounterOp::Add(value as i64 + 1), state + value as i64 + 1)
            } else {
                (CounterOp::Read(state + corrupt as i64), *state)
            }
        });
        agree(&Counter, &ops)?;
    }

    #[test]
    fn search_agrees_with_brute_force_on_kv(plan in plan()) {
        let ops = realize(&Kv, &plan, |kind, value, state, corrupt| {
            let text: Box<str> = ["a", "b", "c"][value as usize].into();
            match kind {
                0 => (KvOp::Put(text.clone()), text.to_string()),
                1 => (KvOp::Append(text.clone()), format!("{state}{text}")),
                _ => {
                    let seen = if corrupt { format!("{state}a") } else { state.clone() };
                    (KvOp::Get(seen.into()), state.clone())
                }
            }
        });
        agree(&Kv, &ops)?;
    }

    #[test]
    fn search_agrees_with_brute_force_on_sets(plan in plan()) {
        let model = Set::default();
        let ops = realize(&model, &plan, |kind, value, state, corrupt| {
            if kind < 2 {
                let add = SetOp::Add(value as u32);
                let next = model.step(state, &add).unwrap();
                (add, next)
            } else {
                let mut seen = state.to_vec();
                if corrupt {
                    seen.pop();
                }
                (SetOp::Read(seen.into_boxed_slice()), state.clone())
            }
        });
        agree(&model, &ops)?;
    }
}

#[test]
fn compile_drops_what_each_semantics_says_constrains_nothing() {
    let path = Path::new("c");
    let mut register = Register::new(true);
    let nil_read = read(0, LinValue::Nil, 0, 1);
    assert!(matches!(
        register
            .compile(&nil_read, Semantics::Porcupine, path)
            .unwrap(),
        Compiled::Keep(RegisterOp::Read(0))
    ));
    assert!(matches!(
        register
            .compile(&nil_read, Semantics::Knossos, path)
            .unwrap(),
        Compiled::Drop
    ));
    let failed_cas = cas(0, 1, 2, Outcome::Fail, 0, Some(1));
    assert!(matches!(
        register
            .compile(&failed_cas, Semantics::Porcupine, path)
            .unwrap(),
        Compiled::Keep(RegisterOp::Cas {
            effect: Effect::Failed,
            ..
        })
    ));
    assert!(matches!(
        register
            .compile(&failed_cas, Semantics::Knossos, path)
            .unwrap(),
        Compiled::Drop
    ));
}

// ---------------------------------------------------------------------------
// The shared corpora, with their known verdicts.

/// The corpus folder; under CI its absence fails the test.
fn corpus_dir() -> Option<PathBuf> {
    common::shared_dir("corpus/linearizability")
}

fn check_corpus(folder: &str, model: ModelKind, semantics: Semantics) {
    let Some(root) = corpus_dir() else { return };
    let dir = root.join(folder);
    let verdicts = std::fs::read_to_string(dir.join("verdicts.tsv")).unwrap();
    let mut checked = 0;
    for line in verdicts.lines().filter(|l| !l.trim().is_empty()) {
        let (file, expected) = line.split_once('\t').unwrap();
        let path = dir.join(file);
        let history = converge::history::detect::read_lin_history(&path, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut config = LinConfig::new(model);
        config.semantics = semantics;
        config.explain = Explain::All;
        let result = check(&history, &config, &path).unwrap();
        let want = match expected {
            "linearizable" => Verdict::Valid,
            "not-linearizable" => Verdict::Invalid,
            other => panic!("unknown verdict {other}"),
        };
        assert_eq!(result.verdict, want, "{folder}/{file}");
        for key in &result.keys {
            assert_eq!(
                key.witness.is_some(),
                key.verdict == Verdict::Invalid,
                "{file}"
            );
        }
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn etcd_corpus_verdicts_agree() {
    check_corpus("etcd", ModelKind::CasRegister, Semantics::Porcupine);
}

#[test]
fn kv_corpus_verdicts_agree() {
    check_corpus("kv", ModelKind::Kv, Semantics::Porcupine);
}

#[test]
fn knossos_corpus_verdicts_agree() {
    check_corpus("knossos", ModelKind::CasRegister, Semantics::Knossos);
}

#[test]
fn copied_corpus_files_keep_their_verdicts_without_the_shared_folder() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/linearizability");
    let cases = [
        (
            "etcd_000.log",
            ModelKind::CasRegister,
            Semantics::Porcupine,
            Verdict::Invalid,
        ),
        (
            "etcd_002.log",
            ModelKind::CasRegister,
            Semantics::Porcupine,
            Verdict::Valid,
        ),
        (
            "c01-bad.txt",
            ModelKind::Kv,
            Semantics::Porcupine,
            Verdict::Invalid,
        ),
        (
            "c01-ok.txt",
            ModelKind::Kv,
            Semantics::Porcupine,
            Verdict::Valid,
        ),
        (
            "rethink-fail-minimal.edn",
            ModelKind::CasRegister,
            Semantics::Knossos,
            Verdict::Invalid,
        ),
        (
            "cas-register-bug.edn",
            ModelKind::CasRegister,
            Semantics::Knossos,
            Verdict::Valid,
        ),
    ];
    for (file, model, semantics, want) in cases {
        let path = data.join(file);
        let history = converge::history::detect::read_lin_history(&path, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut config = LinConfig::new(model);
        config.semantics = semantics;
        assert_eq!(
            check(&history, &config, &path).unwrap().verdict,
            want,
            "{file}"
        );
    }
}

#[test]
fn differential_histories_are_a_real_mix_of_verdicts() {
    // The differential tests above only mean something if the generator
    // produces plenty of both verdicts and of crashed ops.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let model = Register::new(true);
    let (mut valid, mut invalid, mut crashed) = (0, 0, 0);
    for _ in 0..400 {
        let plan = plan().new_tree(&mut runner).unwrap().current();
        let ops = realize(&model, &plan, |kind, value, state, corrupt| {
            let v = value as u32 + 1;
            match kind {
                0 => (RegisterOp::Write(v), v),
                _ => {
                    let seen = if corrupt { (*state + 1) % 4 } else { *state };
                    (RegisterOp::Read(seen), *state)
                }
            }
        });
        crashed += ops.iter().filter(|o| o.ret.is_none()).count();
        match brute::is_linearizable(&model, &ops) {
            Some(true) => valid += 1,
            Some(false) => invalid += 1,
            None => {}
        }
    }
    assert!(
        valid > 80 && invalid > 80 && crashed > 25,
        "{valid} {invalid} {crashed}"
    );
}

// ---------------------------------------------------------------------------
// Scheduling: decide as soon as the answer is known.

#[path = "common/lin_gen.rs"]
mod lin_gen;

use converge::checker::linearizable::STOPPED_EARLY;
use lin_gen::{kv_history, KvPlan};

/// A kv key no budget of any realistic size can decide: 40 concurrent
/// appends of distinct strings, then a read nothing can produce, so every
/// order of every subset of the appends is a distinct configuration.
fn undecidable_key(key: &str) -> Vec<LinOp> {
    let mut ops: Vec<LinOp> = (0..40)
        .map(|p| {
            keyed(
                op(
                    p,
                    LinFn::Append,
                    s(&format!("<{p}>")),
                    LinValue::Nil,
                    Outcome::Ok,
                    0,
                    Some(100),
                ),
                key,
            )
        })
        .collect();
    ops.push(keyed(read(40, s("nobody wrote this"), 101, 102), key));
    ops
}

/// A kv key whose one bad read is easy to refute, but which looks costly:
/// `len` sequential puts and reads, then a read of a value overwritten long
/// before, so a cheapest-first order alone would search it last.
fn easy_invalid_key(key: &str, len: u64) -> Vec<LinOp> {
    let base = 1_000;
    let mut ops = Vec::new();
    for i in 0..len {
        let at = base + 4 * i;
        ops.push(keyed(
            op(
                41,
                LinFn::Write,
                s(&i.to_string()),
                LinValue::Nil,
                Outcome::Ok,
                at,
                Some(at + 1),
            ),
            key,
        ));
        ops.push(keyed(read(42, s(&i.to_string()), at + 2, at + 3), key));
    }
    let end = base + 4 * len;
    ops.push(keyed(read(42, s("0"), end, end + 1), key));
    ops
}

fn kv_history_of(ops: Vec<LinOp>) -> LinHistory {
    let mut ops = ops;
    ops.sort_by_key(|o| o.call);
    LinHistory {
        ops,
        warnings: Vec::new(),
    }
}

fn key_named<'a>(
    check: &'a converge::checker::linearizable::LinCheck,
    name: &str,
) -> &'a converge::checker::linearizable::KeyVerdict {
    check
        .keys
        .iter()
        .find(|k| k.key.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no key {name}"))
}

#[test]
fn one_invalid_key_settles_the_file_while_another_is_undecidable() {
    let history = kv_history_of([undecidable_key("hard"), easy_invalid_key("easy", 3000)].concat());
    for explain in [Explain::None, Explain::First] {
        for (threads, timeout) in [(1, None), (2, None), (1, Some(3.0)), (2, Some(3.0))] {
            let mut config = LinConfig::new(ModelKind::Kv);
            config.explain = explain;
            config.threads = threads;
            config.timeout = timeout.map(Duration::from_secs_f64);
            let result = check(&history, &config, Path::new("k")).unwrap();
            let what = format!("{explain:?}, {threads} threads, timeout {timeout:?}");
            assert_eq!(result.verdict, Verdict::Invalid, "{what}");
            assert_eq!(
                key_named(&result, "easy").verdict,
                Verdict::Invalid,
                "{what}"
            );
            let hard = key_named(&result, "hard");
            assert_eq!(hard.verdict, Verdict::Unknown, "{what}");
            assert_eq!(hard.reason.as_deref(), Some(STOPPED_EARLY), "{what}");
            assert_eq!(
                key_named(&result, "easy").witness.is_some(),
                explain == Explain::First,
                "{what}"
            );
        }
    }
}

/// A kv key that cannot be decided in seconds yet needs little memory:
/// 24 concurrent puts and 2,000 concurrent reads of a value nobody wrote,
/// so every subset of the puts must be tried, and each try scans the reads.
fn slow_lean_key(key: &str) -> Vec<LinOp> {
    let mut ops: Vec<LinOp> = (0..24)
        .map(|p| {
            keyed(
                op(
                    p,
                    LinFn::Write,
                    s(&format!("w{p}")),
                    LinValue::Nil,
                    Outcome::Ok,
                    0,
                    Some(100),
                ),
                key,
            )
        })
        .collect();
    ops.extend((0..2000).map(|p| keyed(read(100 + p, s("nobody wrote this"), 1, 99), key)));
    ops
}

#[test]
fn with_explain_all_every_key_gets_its_share_of_the_deadline() {
    // Two keys that cannot be decided in time and one easy invalid key:
    // the easy key is decided and explained, and the two hard keys share
    // the deadline instead of the first taking all of it.
    let history = kv_history_of(
        [
            slow_lean_key("slow-a"),
            slow_lean_key("slow-b"),
            easy_invalid_key("easy", 3000),
        ]
        .concat(),
    );
    for threads in [1, 2] {
        let mut config = LinConfig::new(ModelKind::Kv);
        config.explain = Explain::All;
        config.threads = threads;
        config.timeout = Some(Duration::from_millis(1500));
        let result = check(&history, &config, Path::new("k")).unwrap();
        assert_eq!(result.verdict, Verdict::Invalid);
        let easy = key_named(&result, "easy");
        assert_eq!(easy.verdict, Verdict::Invalid);
        assert!(easy.witness.is_some());
        let mut steps = Vec::new();
        for name in ["slow-a", "slow-b"] {
            let slow = key_named(&result, name);
            assert_eq!(slow.verdict, Verdict::Unknown, "{slow:?}");
            let reason = slow.reason.as_deref().unwrap_or("");
            assert!(reason.contains("time budget"), "{reason}");
            steps.push(slow.steps);
        }
        let (least, most) = (steps[0].min(steps[1]), steps[0].max(steps[1]));
        assert!(
            least * 3 >= most,
            "{threads} threads: one key took {most} steps, the other only {least}"
        );
    }
}

#[test]
fn a_key_that_hits_the_memory_budget_is_unknown_alone() {
    let history = kv_history_of(
        [
            undecidable_key("hard"),
            easy_invalid_key("easy", 500),
            vec![
                keyed(write(50, 1, 0, 1), "fine"),
                keyed(read(51, s("1"), 2, 3), "fine"),
            ],
        ]
        .concat(),
    );
    for threads in [1, 2] {
        let mut config = LinConfig::new(ModelKind::Kv);
        config.explain = Explain::All;
        config.threads = threads;
        config.memory_mib = 8;
        let result = check(&history, &config, Path::new("k")).unwrap();
        let hard = key_named(&result, "hard");
        assert_eq!(hard.verdict, Verdict::Unknown);
        let reason = hard.reason.as_deref().unwrap_or("");
        assert!(reason.contains("memory"), "{reason}");
        assert!(hard.memory_bytes <= 8 << 20, "{hard:?}");
        assert_eq!(key_named(&result, "easy").verdict, Verdict::Invalid);
        assert_eq!(key_named(&result, "fine").verdict, Verdict::Valid);
    }
}

#[test]
fn generated_fifty_client_history_is_invalid_on_the_corrupted_key_only() {
    let plan = KvPlan::fifty_clients();
    let history = kv_history(&plan);
    assert!(history.ops.iter().any(|o| o.outcome == Outcome::Info));
    let mut config = LinConfig::new(ModelKind::Kv);
    config.explain = Explain::None;
    let result = check(&history, &config, Path::new("generated")).unwrap();
    assert_eq!(result.verdict, Verdict::Invalid);
    // Every key is decided under `all`: the corrupted one is invalid and
    // every other one, generated from a real store, is linearizable.
    config.explain = Explain::All;
    let result = check(&history, &config, Path::new("generated")).unwrap();
    for key in &result.keys {
        let want = if key.key.as_deref() == Some("0") {
            Verdict::Invalid
        } else {
            Verdict::Valid
        };
        assert_eq!(key.verdict, want, "{key:?}");
        assert!(key.steps > 0, "{key:?}");
    }
    // Without the corruption the same history is linearizable.
    let clean = kv_history(&KvPlan {
        corrupt_key: None,
        ..plan
    });
    assert_eq!(
        check(&clean, &config, Path::new("generated"))
            .unwrap()
            .verdict,
        Verdict::Valid
    );
}

#[test]
fn generated_history_reads_back_from_its_edn() {
    // The CLI tests and the measurements in issue 16 use the EDN form; it
    // must say the same as the history it was written from. Set
    // CONVERGE_GENERATED_EDN to a path to keep the file.
    let history = kv_history(&KvPlan::fifty_clients());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifty-clients.edn");
    std::fs::write(&path, lin_gen::to_edn(&history)).unwrap();
    if let Some(keep) = std::env::var_os("CONVERGE_GENERATED_EDN") {
        std::fs::copy(&path, keep).unwrap();
    }
    let read = converge::history::detect::read_lin_history(&path, None).unwrap();
    assert_eq!(read.ops.len(), history.ops.len());
    let summary = |h: &LinHistory| {
        let mut ops: Vec<_> = h
            .ops
            .iter()
            .map(|o| {
                (
                    o.key.clone(),
                    o.f,
                    o.input.clone(),
                    // Readers keep a completion's value; only a read's means
                    // anything.
                    (o.f == LinFn::Read).then(|| o.output.clone()),
                    o.outcome,
                )
            })
            .collect();
        ops.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        ops
    };
    assert_eq!(summary(&read), summary(&history));
}
