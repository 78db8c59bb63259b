//! Stateful tests: every model against its sequential specification.
//!
//! proptest-state-machine drives three replicas of a model through local
//! updates, op deliveries (in causal order, duplicates included) and state
//! merges (self-merges included). The reference machine is the sequential
//! specification: it keeps only which updates each replica has seen and the
//! causal past of each update, and derives the value from them (a counter is
//! the sum of the increments seen, a one-replica OR-Set is a plain set, an
//! LWW register holds the highest-stamped write, ...). After every step each
//! replica must read its specified value, and replicas that have seen the
//! same updates must hold equal states. On failure proptest shrinks to a
//! minimal sequence of steps.
//!
//! The faulty models are run against the same specifications and each must
//! be caught (`faulty_*` tests), which shows the tests can fail.

mod common;

use common::intent;
use converge_models::counter::{GCounter, PnCounter};
use converge_models::faulty::*;
use converge_models::map::LwwMap;
use converge_models::register::{LwwRegister, MvRegister};
use converge_models::set::{GSet, OrSet, TwoPSet};
use converge_models::{Crdt, Intent, Rejected, ReplicaId, UpdateCtx, VClock, Value, Workload};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRng, TestRunner};
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

const REPLICAS: u16 = 3;

/// Steps per generated case.
const STEPS: std::ops::Range<usize> = 1..30;

/// A workload's sequential specification, chosen by type.
trait Spec: 'static {
    const WORKLOAD: Workload;
}

macro_rules! specs {
    ($($spec:ident => $workload:ident;)*) => {
        $(
            #[doc = concat!("The specification of ", stringify!($workload), ".")]
            struct $spec;
            impl Spec for $spec {
                const WORKLOAD: Workload = Workload::$workload;
            }
        )*
    };
}

specs! {
    GCounterSpec => GCounter;
    PnCounterSpec => PnCounter;
    GSetSpec => GSet;
    TwoPSetSpec => TwoPSet;
    OrSetSpec => OrSet;
    LwwRegisterSpec => LwwRegister;
    MvRegisterSpec => MvRegister;
    LwwMapSpec => LwwMap;
}

/// A transition of the system.
#[derive(Clone, Debug)]
enum Step {
    /// A local update at `replica`.
    Update { replica: ReplicaId, intent: Intent },
    /// The `nth` update issued at `origin` reaches `to` (maybe again).
    /// Named per origin, so shrinking away another replica's update does
    /// not make it name a different one.
    Deliver {
        to: ReplicaId,
        origin: ReplicaId,
        nth: usize,
    },
    /// `to` merges `from`'s whole state.
    Merge { from: ReplicaId, to: ReplicaId },
}

/// An update as the specification records it.
#[derive(Clone, Debug)]
struct Issued {
    origin: ReplicaId,
    intent: Intent,
    /// False when the origin refused it (a 2P-Set precondition).
    accepted: bool,
    /// Updates the origin had seen when it issued this one.
    past: BTreeSet<usize>,
    /// Last-writer-wins stamp: one more than the highest in `past`.
    ts: u64,
}

/// The reference state: every update issued, and which each replica has seen.
#[derive(Clone, Debug)]
struct World {
    workload: Workload,
    ops: Vec<Issued>,
    /// Per replica; always closed under `past` (deliveries are causal).
    seen: Vec<BTreeSet<usize>>,
}

impl World {
    /// The index of the `nth` update issued at `origin`.
    fn find(&self, origin: ReplicaId, nth: usize) -> Option<usize> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.origin == origin)
            .nth(nth)
            .map(|(i, _)| i)
    }

    fn seen_ops(&self, replica: usize) -> impl Iterator<Item = (usize, &Issued)> {
        self.seen[replica].iter().map(|&i| (i, &self.ops[i]))
    }

    /// Would an update with causal past `past` be accepted at its origin?
    fn accepts(&self, past: &BTreeSet<usize>, intent: &Intent) -> bool {
        let has = |wanted: Intent| past.iter().any(|&i| self.ops[i].intent == wanted);
        match (self.workload, *intent) {
            (Workload::TwoPSet, Intent::Add(e)) => !has(Intent::Remove(e)),
            (Workload::TwoPSet, Intent::Remove(e)) => {
                has(Intent::Add(e)) && !has(Intent::Remove(e))
            }
            _ => true,
        }
    }

    /// Was update `i` overwritten by (is it in the causal past of) an update
    /// `replica` has seen that `covers` it?
    fn overwritten(&self, replica: usize, i: usize, covers: impl Fn(&Intent) -> bool) -> bool {
        self.seen_ops(replica)
            .any(|(_, later)| covers(&later.intent) && later.past.contains(&i))
    }

    /// The highest-stamped seen update among those `pick` selects.
    fn last_writer<'a>(
        &'a self,
        replica: usize,
        pick: impl Fn(&Intent) -> bool + 'a,
    ) -> Option<&'a Issued> {
        self.seen_ops(replica)
            .map(|(_, op)| op)
            .filter(|op| pick(&op.intent))
            .max_by_key(|op| (op.ts, op.origin))
    }

    /// What `replica` must read.
    fn expected(&self, replica: usize) -> Value {
        let seen = || self.seen_ops(replica);
        match self.workload {
            Workload::GCounter | Workload::PnCounter => Value::Int(
                seen()
                    .map(|(_, op)| match op.intent {
                        Intent::Increment(d) => d,
                        _ => 0,
                    })
                    .sum(),
            ),
            Workload::GSet => Value::Elems(sorted_unique(seen().filter_map(|(_, op)| added(op)))),
            Workload::TwoPSet => {
                let removed: BTreeSet<u64> = seen().filter_map(|(_, op)| removed(op)).collect();
                Value::Elems(sorted_unique(
                    seen()
                        .filter_map(|(_, op)| added(op))
                        .filter(|e| !removed.contains(e)),
                ))
            }
            // Add wins: an add survives unless a remove of its element
            // observed it.
            Workload::OrSet => Value::Elems(sorted_unique(seen().filter_map(|(i, op)| {
                let e = added(op)?;
                let observed_by_remove =
                    self.overwritten(replica, i, |later| *later == Intent::Remove(e));
                (!observed_by_remove).then_some(e)
            }))),
            Workload::LwwRegister => Value::Elems(
                self.last_writer(replica, |_| true)
                    .and_then(written)
                    .into_iter()
                    .collect(),
            ),
            // Every write no later write has seen, concurrent ones side by side.
            Workload::MvRegister => {
                let mut values: Vec<u64> = seen()
                    .filter(|(i, _)| !self.overwritten(replica, *i, |_| true))
                    .filter_map(|(_, op)| written(op))
                    .collect();
                values.sort_unstable();
                Value::Elems(values)
            }
            Workload::LwwMap => {
                let fields: BTreeSet<u32> = seen().filter_map(|(_, op)| field(op)).collect();
                Value::Map(
                    fields
                        .into_iter()
                        .filter_map(|f| {
                            let last =
                                self.last_writer(replica, move |i| field_of(i) == Some(f))?;
                            match last.intent {
                                Intent::Put { value, .. } => Some((f, value)),
                                _ => None,
                            }
                        })
                        .collect(),
                )
            }
        }
    }
}

fn added(op: &Issued) -> Option<u64> {
    match op.intent {
        Intent::Add(e) => Some(e),
        _ => None,
    }
}

fn removed(op: &Issued) -> Option<u64> {
    match op.intent {
        Intent::Remove(e) => Some(e),
        _ => None,
    }
}

fn written(op: &Issued) -> Option<u64> {
    match op.intent {
        Intent::Write(v) => Some(v),
        _ => None,
    }
}

fn field_of(intent: &Intent) -> Option<u32> {
    match *intent {
        Intent::Put { field, .. } | Intent::Delete { field } => Some(field),
        _ => None,
    }
}

fn field(op: &Issued) -> Option<u32> {
    field_of(&op.intent)
}

fn sorted_unique(elems: impl Iterator<Item = u64>) -> Vec<u64> {
    elems.collect::<BTreeSet<_>>().into_iter().collect()
}

/// The reference state machine of specification `S`.
struct Reference<S>(PhantomData<S>);

impl<S: Spec> ReferenceStateMachine for Reference<S> {
    type State = World;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<World> {
        Just(World {
            workload: S::WORKLOAD,
            ops: Vec::new(),
            seen: vec![BTreeSet::new(); REPLICAS as usize],
        })
        .boxed()
    }

    fn transitions(state: &World) -> BoxedStrategy<Step> {
        let update = (0..REPLICAS, intent(S::WORKLOAD))
            .prop_map(|(replica, intent)| Step::Update { replica, intent });
        let merge = (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::Merge { from, to });
        let mut issued = vec![0; REPLICAS as usize];
        let named: Vec<(ReplicaId, usize)> = state
            .ops
            .iter()
            .map(|op| {
                let nth = issued[op.origin as usize];
                issued[op.origin as usize] += 1;
                (op.origin, nth)
            })
            .collect();
        let deliverable: Vec<Step> = (0..REPLICAS)
            .flat_map(|to| {
                named
                    .iter()
                    .map(move |&(origin, nth)| Step::Deliver { to, origin, nth })
                    .filter(|step| Self::preconditions(state, step))
            })
            .collect();
        if deliverable.is_empty() {
            prop_oneof![3 => update, 1 => merge].boxed()
        } else {
            prop_oneof![
                3 => update,
                3 => proptest::sample::select(deliverable),
                2 => merge,
            ]
            .boxed()
        }
    }

    fn apply(mut state: World, step: &Step) -> World {
        match *step {
            Step::Update { replica, intent } => {
                let r = replica as usize;
                let past = state.seen[r].clone();
                let accepted = state.accepts(&past, &intent);
                let ts = past.iter().map(|&i| state.ops[i].ts).max().unwrap_or(0) + 1;
                let i = state.ops.len();
                state.ops.push(Issued {
                    origin: replica,
                    intent,
                    accepted,
                    past,
                    ts,
                });
                if accepted {
                    state.seen[r].insert(i);
                }
            }
            Step::Deliver { to, origin, nth } => {
                let op = state.find(origin, nth).expect("preconditions hold");
                state.seen[to as usize].insert(op);
            }
            Step::Merge { from, to } => {
                let theirs = state.seen[from as usize].clone();
                state.seen[to as usize].extend(theirs);
            }
        }
        state
    }

    /// Deliveries are causal: an update reaches a replica only after
    /// everything its origin had seen. Shrinking may remove the update a
    /// delivery refers to; this rejects the delivery then.
    fn preconditions(state: &World, step: &Step) -> bool {
        match *step {
            Step::Deliver { to, origin, nth } => state.find(origin, nth).is_some_and(|op| {
                let issued = &state.ops[op];
                issued.accepted && issued.past.is_subset(&state.seen[to as usize])
            }),
            Step::Update { .. } | Step::Merge { .. } => true,
        }
    }
}

/// Replicas of model `M` as converge's in-process target keeps them: one
/// model and one vector clock each, plus every update's op and clock.
struct Replicas<M: Crdt> {
    models: Vec<M>,
    clocks: Vec<VClock>,
    /// `None` for an update the origin refused.
    ops: Vec<Option<(M::Op, VClock)>>,
}

/// Model `M` checked against specification `S`.
struct Machine<M, S>(PhantomData<(M, S)>);

impl<M: Crdt, S: Spec> StateMachineTest for Machine<M, S> {
    type SystemUnderTest = Replicas<M>;
    type Reference = Reference<S>;

    fn init_test(_: &World) -> Replicas<M> {
        Replicas {
            models: (0..REPLICAS).map(M::new).collect(),
            clocks: (0..REPLICAS)
                .map(|_| VClock::new(REPLICAS.into()))
                .collect(),
            ops: Vec::new(),
        }
    }

    fn apply(mut sut: Replicas<M>, world: &World, step: Step) -> Replicas<M> {
        match step {
            Step::Update { replica, intent } => {
                let r = replica as usize;
                let mut clock = sut.clocks[r].clone();
                let dot = clock.increment(replica);
                let ctx = UpdateCtx {
                    replica,
                    dot,
                    clock: &clock,
                };
                let outcome = sut.models[r].update(&intent, &ctx);
                let expected = world.ops.last().expect("the update just issued");
                assert_eq!(
                    outcome.is_ok(),
                    expected.accepted,
                    "replica {r} answered {outcome:?} to {intent:?}"
                );
                match outcome {
                    Ok(op) => {
                        sut.clocks[r].merge(&clock);
                        sut.ops.push(Some((op, clock)));
                    }
                    Err(Rejected::Precondition) => sut.ops.push(None),
                    Err(Rejected::Unsupported) => panic!("{intent:?} unsupported"),
                }
            }
            Step::Deliver { to, origin, nth } => {
                let op = world.find(origin, nth).expect("preconditions hold");
                let (op, clock) = sut.ops[op].as_ref().expect("only accepted updates travel");
                sut.models[to as usize].apply(op);
                sut.clocks[to as usize].merge(clock);
            }
            Step::Merge { from, to } => {
                let (model, clock) = (
                    sut.models[from as usize].clone(),
                    sut.clocks[from as usize].clone(),
                );
                sut.models[to as usize].merge(&model);
                sut.clocks[to as usize].merge(&clock);
            }
        }
        sut
    }

    fn check_invariants(sut: &Replicas<M>, world: &World) {
        for (r, model) in sut.models.iter().enumerate() {
            assert_eq!(
                model.read(),
                world.expected(r),
                "replica {r} reads a value its updates do not specify"
            );
        }
        for a in 0..sut.models.len() {
            for b in a + 1..sut.models.len() {
                if world.seen[a] == world.seen[b] {
                    assert_eq!(
                        sut.models[a], sut.models[b],
                        "replicas {a} and {b} saw the same updates but hold different states"
                    );
                }
            }
        }
    }
}

fn config() -> Config {
    Config {
        cases: 128,
        ..Config::default()
    }
}

prop_state_machine! {
    #![proptest_config(config())]

    #[test]
    fn g_counter_is_the_sum_of_seen_increments(sequential STEPS => Machine<GCounter, GCounterSpec>);
    #[test]
    fn pn_counter_is_the_sum_of_seen_increments(sequential STEPS => Machine<PnCounter, PnCounterSpec>);
    #[test]
    fn g_set_is_the_union_of_seen_adds(sequential STEPS => Machine<GSet, GSetSpec>);
    #[test]
    fn two_p_set_is_seen_adds_minus_seen_removes(sequential STEPS => Machine<TwoPSet, TwoPSetSpec>);
    #[test]
    fn or_set_keeps_adds_no_seen_remove_observed(sequential STEPS => Machine<OrSet, OrSetSpec>);
    #[test]
    fn lww_register_holds_the_highest_stamped_write(sequential STEPS => Machine<LwwRegister, LwwRegisterSpec>);
    #[test]
    fn mv_register_holds_every_write_not_overwritten(sequential STEPS => Machine<MvRegister, MvRegisterSpec>);
    #[test]
    fn lww_map_holds_each_fields_highest_stamped_put(sequential STEPS => Machine<LwwMap, LwwMapSpec>);
}

/// Runs the state machine of model `M` against specification `S` from a
/// fixed seed. Returns the shortest failing case seen while shrinking (its
/// panic message and steps), or `None` if every case passed.
///
/// The shortest failing case is recorded here rather than taken from the
/// runner's result: proptest-state-machine 0.9.0 can report a case one
/// simplification past the last failing one (when a shrunk step passes and
/// cannot be complicated back, its simplified value stays in the sequence).
fn hunt<M: Crdt, S: Spec>() -> Option<(String, Vec<Step>)> {
    let config = Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config.clone(), rng);
    let shortest: RefCell<Option<(String, Vec<Step>)>> = RefCell::new(None);
    let outcome = runner.run(
        &Reference::<S>::sequential_strategy(STEPS),
        |(world, steps, seen)| {
            let tried = steps.clone();
            let run = catch_unwind(AssertUnwindSafe(|| {
                Machine::<M, S>::test_sequential(config.clone(), world, steps, seen)
            }));
            let Err(panic) = run else { return Ok(()) };
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let mut shortest = shortest.borrow_mut();
            if shortest
                .as_ref()
                .is_none_or(|(_, s)| tried.len() <= s.len())
            {
                *shortest = Some((why.clone(), tried));
            }
            Err(TestCaseError::fail(why))
        },
    );
    match outcome {
        Ok(()) => None,
        Err(TestError::Fail(..)) => shortest.into_inner(),
        Err(TestError::Abort(why)) => panic!("the runner gave up: {why}"),
    }
}

/// A faulty model must fail its workload's specification, and the failure
/// must shrink to a handful of steps.
fn caught<M: Crdt, S: Spec>(name: &str) {
    let (why, steps) = hunt::<M, S>().unwrap_or_else(|| panic!("{name} passed its specification"));
    eprintln!(
        "{name}: {why}\nminimal failing steps ({}): {steps:?}",
        steps.len()
    );
    assert!(
        steps.len() <= 6,
        "{name}: not shrunk to a minimal sequence: {steps:?}"
    );
}

macro_rules! faults {
    ($($test:ident: $model:ty, $spec:ty, $name:literal;)*) => {
        $(
            #[test]
            fn $test() {
                caught::<$model, $spec>($name);
            }
        )*

        /// Every faulty model of the catalog has a `faulty_*` test above.
        #[test]
        fn every_faulty_model_is_hunted() {
            let hunted: BTreeSet<&str> = [$($name),*].into_iter().collect();
            let faulty: BTreeSet<&str> = converge_models::CATALOG
                .iter()
                .filter(|m| m.faulty)
                .map(|m| m.name)
                .collect();
            assert_eq!(hunted, faulty);
        }
    };
}

faults! {
    faulty_sum_merge_counter: SumMergeCounter, GCounterSpec, "sum-merge-counter";
    faulty_replace_on_gossip_set: ReplaceOnGossipSet, GSetSpec, "replace-on-gossip-set";
    faulty_remove_wins_or_set: RemoveWinsOrSet, OrSetSpec, "remove-wins-or-set";
    faulty_sibling_drop_mv_register: SiblingDropMvRegister, MvRegisterSpec, "sibling-drop-mv-register";
    faulty_arrival_order_lww: ArrivalOrderLww, LwwRegisterSpec, "arrival-order-lww";
    faulty_total_order_clock_mv_register: TotalOrderClockMvRegister, MvRegisterSpec, "total-order-clock-mv-register";
    faulty_duplicating_set: DuplicatingSet, GSetSpec, "duplicating-set";
    faulty_signed_max_pn_counter: SignedMaxPnCounter, PnCounterSpec, "signed-max-pn-counter";
    faulty_no_tombstone_or_set: NoTombstoneOrSet, OrSetSpec, "no-tombstone-or-set";
    faulty_no_tombstone_lww_map: NoTombstoneLwwMap, LwwMapSpec, "no-tombstone-lww-map";
}
