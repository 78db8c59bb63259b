//! CRDT laws for every reference model.
//!
//! A small, correct harness runs random histories over three replicas: local
//! updates (with a per-replica vector clock incremented at the origin), op
//! deliveries (merging the op's clock), and state merges (merging both
//! clocks). On the states and ops it produces we check that:
//! - merge is commutative, associative and idempotent, with the fresh state
//!   as identity;
//! - delivering every op to a fresh replica in any order, with duplicates,
//!   gives the same state and read;
//! - the op path and the state path agree.

use converge_models::{
    counter, map, model_info, register, set, Crdt, Intent, ModelVisitor, Rejected, ReplicaId,
    UpdateCtx, VClock, Workload,
};
use proptest::prelude::*;
use proptest::sample::Index;

mod common;

use common::intent;

const REPLICAS: u16 = 3;

#[derive(Clone, Debug)]
enum Step {
    /// A local update at `replica`.
    Update { replica: ReplicaId, intent: Intent },
    /// Deliver one op produced so far to `to`.
    Deliver { to: ReplicaId, op: Index },
    /// State-merge `from` into `to`.
    Sync { to: ReplicaId, from: ReplicaId },
}

fn steps(workload: Workload) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        6 => (0..REPLICAS, intent(workload))
            .prop_map(|(replica, intent)| Step::Update { replica, intent }),
        2 => (0..REPLICAS, any::<Index>()).prop_map(|(to, op)| Step::Deliver { to, op }),
        2 => (0..REPLICAS, 0..REPLICAS).prop_map(|(to, from)| Step::Sync { to, from }),
    ];
    prop::collection::vec(step, 0..30)
}

/// How to shuffle and duplicate the ops for a downstream replica: op `i` is
/// sorted by `keys[i % len]` (ties by `i`); each `(op, position)` inserts one
/// more copy of an op.
#[derive(Clone, Debug)]
struct Delivery {
    keys: Vec<u8>,
    dups: Vec<(Index, Index)>,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        prop::collection::vec(any::<u8>(), 1..40),
        prop::collection::vec((any::<Index>(), any::<Index>()), 0..8),
    )
        .prop_map(|(keys, dups)| Delivery { keys, dups })
}

impl Delivery {
    /// The order in which to deliver `n` ops (indices, possibly repeated).
    fn order(&self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (self.keys[i % self.keys.len()], i));
        if n > 0 {
            for (op, pos) in &self.dups {
                let at = pos.index(order.len() + 1);
                order.insert(at, op.index(n));
            }
        }
        order
    }
}

/// The outcome of a history: final replicas, snapshots taken half-way, and
/// every op produced.
struct Run<M: Crdt> {
    replicas: Vec<M>,
    snapshots: Vec<M>,
    ops: Vec<M::Op>,
}

fn run<M: Crdt>(steps: &[Step]) -> Run<M> {
    let mut replicas: Vec<M> = (0..REPLICAS).map(M::new).collect();
    let mut clocks: Vec<VClock> = (0..REPLICAS)
        .map(|_| VClock::new(REPLICAS.into()))
        .collect();
    let mut ops: Vec<(M::Op, VClock)> = Vec::new();
    let mut snapshots = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if i == steps.len() / 2 {
            snapshots.extend(replicas.iter().cloned());
        }
        match step {
            Step::Update { replica, intent } => {
                let r = *replica as usize;
                let dot = clocks[r].increment(*replica);
                let ctx = UpdateCtx {
                    replica: *replica,
                    dot,
                    clock: &clocks[r],
                };
                match replicas[r].update(intent, &ctx) {
                    Ok(op) => ops.push((op, clocks[r].clone())),
                    Err(Rejected::Precondition) => {}
                    Err(Rejected::Unsupported) => panic!("{intent:?} unsupported"),
                }
            }
            Step::Deliver { to, op } => {
                if !ops.is_empty() {
                    let (op, clock) = &ops[op.index(ops.len())];
                    replicas[*to as usize].apply(op);
                    clocks[*to as usize].merge(clock);
                }
            }
            Step::Sync { to, from } => {
                let (to, from) = (*to as usize, *from as usize);
                let other = replicas[from].clone();
                replicas[to].merge(&other);
                let other = clocks[from].clone();
                clocks[to].merge(&other);
            }
        }
    }
    if snapshots.is_empty() {
        snapshots.extend(replicas.iter().cloned());
    }
    Run {
        replicas,
        snapshots,
        ops: ops.into_iter().map(|(op, _)| op).collect(),
    }
}

fn merged<M: Crdt>(a: &M, b: &M) -> M {
    let mut m = a.clone();
    m.merge(b);
    m
}

/// A fresh replica that received `ops` in the given order.
fn delivered<M: Crdt>(ops: &[M::Op], order: impl IntoIterator<Item = usize>) -> M {
    let mut m = M::new(REPLICAS);
    for i in order {
        m.apply(&ops[i]);
    }
    m
}

fn merge_laws<M: Crdt>(steps: &[Step]) -> Result<(), TestCaseError> {
    let run = run::<M>(steps);
    let pool: Vec<&M> = run.replicas.iter().chain(&run.snapshots).collect();
    let fresh = M::new(0);
    for a in &pool {
        prop_assert_eq!(&merged(*a, *a), *a, "merge is not idempotent");
        prop_assert_eq!(
            &merged(*a, &fresh),
            *a,
            "the fresh state is not an identity"
        );
        prop_assert_eq!(
            &merged(&fresh, *a),
            *a,
            "the fresh state is not an identity"
        );
        for b in &pool {
            let ab = merged(*a, *b);
            let ba = merged(*b, *a);
            prop_assert_eq!(&ab, &ba, "merge is not commutative");
            prop_assert_eq!(ab.read(), ba.read());
            prop_assert_eq!(&merged(&ab, *a), &ab, "merge is not an upper bound");
            for c in &pool {
                let left = merged(&ab, *c);
                let right = merged(*a, &merged(*b, *c));
                prop_assert_eq!(&left, &right, "merge is not associative");
            }
        }
    }
    Ok(())
}

fn delivery_order<M: Crdt>(steps: &[Step], d: &Delivery) -> Result<(), TestCaseError> {
    let run = run::<M>(steps);
    let n = run.ops.len();
    let in_order: M = delivered(&run.ops, 0..n);
    let shuffled: M = delivered(&run.ops, d.order(n));
    prop_assert_eq!(
        &shuffled,
        &in_order,
        "delivery order or duplicates changed the state"
    );
    prop_assert_eq!(shuffled.read(), in_order.read());
    let reversed: M = delivered(&run.ops, (0..n).rev().flat_map(|i| [i, i]));
    prop_assert_eq!(
        &reversed,
        &in_order,
        "reverse delivery with duplicates changed the state"
    );
    // Re-applying everything is a no-op.
    let mut again = in_order.clone();
    for op in &run.ops {
        again.apply(op);
    }
    prop_assert_eq!(&again, &in_order, "redelivery is not idempotent");
    Ok(())
}

fn paths_agree<M: Crdt>(steps: &[Step], d: &Delivery) -> Result<(), TestCaseError> {
    let run = run::<M>(steps);
    let n = run.ops.len();
    let by_ops: M = delivered(&run.ops, d.order(n));
    let mut by_state = M::new(REPLICAS);
    for r in &run.replicas {
        by_state.merge(r);
    }
    prop_assert_eq!(
        &by_state,
        &by_ops,
        "merging all replicas != applying all ops"
    );
    prop_assert_eq!(by_state.read(), by_ops.read());
    // Any replica or snapshot catches up by ops, or by merging the full state.
    for r in run.replicas.iter().chain(&run.snapshots) {
        let mut caught_up = r.clone();
        for i in d.order(n) {
            caught_up.apply(&run.ops[i]);
        }
        prop_assert_eq!(&caught_up, &by_ops, "apply after merge diverged");
        prop_assert_eq!(&merged(r, &by_ops), &by_ops, "merge after apply diverged");
        prop_assert_eq!(&merged(&by_ops, r), &by_ops, "merge after apply diverged");
    }
    Ok(())
}

/// Returns the visited type's name.
struct TypeName;

impl ModelVisitor for TypeName {
    type Output = &'static str;
    fn visit<M: Crdt>(self) -> &'static str {
        std::any::type_name::<M>()
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

macro_rules! laws {
    ($( $module:ident => $ty:ty, $workload:expr; )*) => {$(
        mod $module {
            use super::*;

            #[test]
            fn is_the_catalog_reference() {
                let w: Workload = $workload;
                let info = model_info(w.name()).expect("reference listed under the workload name");
                assert!(!info.faulty);
                assert_eq!(info.workload, w);
                assert_eq!(
                    converge_models::visit_model(w.name(), TypeName),
                    Some(std::any::type_name::<$ty>())
                );
            }

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn merge_is_a_join(steps in steps($workload)) {
                    merge_laws::<$ty>(&steps)?;
                }

                #[test]
                fn delivery_order_and_duplicates_do_not_matter(
                    steps in steps($workload),
                    d in delivery(),
                ) {
                    delivery_order::<$ty>(&steps, &d)?;
                }

                #[test]
                fn op_path_and_state_path_agree(steps in steps($workload), d in delivery()) {
                    paths_agree::<$ty>(&steps, &d)?;
                }
            }
        }
    )*};
}

laws! {
    g_counter => counter::GCounter, Workload::GCounter;
    pn_counter => counter::PnCounter, Workload::PnCounter;
    g_set => set::GSet, Workload::GSet;
    two_p_set => set::TwoPSet, Workload::TwoPSet;
    or_set => set::OrSet, Workload::OrSet;
    lww_register => register::LwwRegister, Workload::LwwRegister;
    mv_register => register::MvRegister, Workload::MvRegister;
    lww_map => map::LwwMap, Workload::LwwMap;
}

// A few exact expectations, beyond the laws.

fn ctx_update<M: Crdt>(
    m: &mut M,
    clock: &mut VClock,
    replica: ReplicaId,
    intent: Intent,
) -> Result<M::Op, Rejected> {
    let dot = clock.increment(replica);
    m.update(
        &intent,
        &UpdateCtx {
            replica,
            dot,
            clock,
        },
    )
}

#[test]
fn g_counter_rejects_negative_deltas() {
    let mut c = counter::GCounter::new(0);
    let mut clock = VClock::new(2);
    assert_eq!(
        ctx_update(&mut c, &mut clock, 0, Intent::Increment(-1)).err(),
        Some(Rejected::Unsupported)
    );
    assert!(ctx_update(&mut c, &mut clock, 0, Intent::Increment(5)).is_ok());
    assert_eq!(c.read(), converge_models::Value::Int(5));
}

#[test]
fn two_p_set_preconditions() {
    let mut s = set::TwoPSet::new(0);
    let mut clock = VClock::new(1);
    let mut up = |s: &mut set::TwoPSet, i| ctx_update(s, &mut clock, 0, i).err();
    assert_eq!(up(&mut s, Intent::Remove(1)), Some(Rejected::Precondition));
    assert_eq!(up(&mut s, Intent::Add(1)), None);
    assert_eq!(up(&mut s, Intent::Remove(1)), None);
    assert_eq!(up(&mut s, Intent::Remove(1)), Some(Rejected::Precondition));
    assert_eq!(up(&mut s, Intent::Add(1)), Some(Rejected::Precondition));
    assert_eq!(s.read(), converge_models::Value::Elems(vec![]));
    // A remove delivered before its add still wins.
    let mut late = set::TwoPSet::new(1);
    late.apply(&set::TwoPSetOp::Remove(1));
    late.apply(&set::TwoPSetOp::Add(1));
    assert_eq!(late, s);
}

#[test]
fn or_set_add_wins_over_concurrent_remove() {
    let (mut a, mut b) = (set::OrSet::new(0), set::OrSet::new(1));
    let (mut ca, mut cb) = (VClock::new(2), VClock::new(2));
    let add_a = ctx_update(&mut a, &mut ca, 0, Intent::Add(7)).unwrap();
    b.apply(&add_a);
    cb.merge(&ca);
    let rm_b = ctx_update(&mut b, &mut cb, 1, Intent::Remove(7)).unwrap();
    let add_a2 = ctx_update(&mut a, &mut ca, 0, Intent::Add(7)).unwrap();
    assert_eq!(
        <set::OrSet as Crdt>::meta(&rm_b),
        converge_models::OpMeta::Observed(vec![converge_models::Dot::new(0, 1)])
    );
    a.apply(&rm_b);
    b.apply(&add_a2);
    assert_eq!(a, b);
    assert_eq!(a.read(), converge_models::Value::Elems(vec![7]));
}

#[test]
fn mv_register_keeps_concurrent_siblings() {
    let (mut a, mut b) = (register::MvRegister::new(0), register::MvRegister::new(1));
    let (mut ca, mut cb) = (VClock::new(2), VClock::new(2));
    let wa = ctx_update(&mut a, &mut ca, 0, Intent::Write(3)).unwrap();
    let wb = ctx_update(&mut b, &mut cb, 1, Intent::Write(3)).unwrap();
    a.apply(&wb);
    b.apply(&wa);
    assert_eq!(a, b);
    assert_eq!(a.read(), converge_models::Value::Elems(vec![3, 3]));
    ca.merge(&cb);
    ctx_update(&mut a, &mut ca, 0, Intent::Write(9)).unwrap();
    assert_eq!(a.read(), converge_models::Value::Elems(vec![9]));
}

#[test]
fn lww_map_delete_is_a_timestamped_tombstone() {
    let (mut a, mut b) = (map::LwwMap::new(0), map::LwwMap::new(1));
    let (mut ca, mut cb) = (VClock::new(2), VClock::new(2));
    let put = ctx_update(&mut a, &mut ca, 0, Intent::Put { field: 1, value: 5 }).unwrap();
    let del = ctx_update(&mut a, &mut ca, 0, Intent::Delete { field: 1 }).unwrap();
    assert!(put.write.ts < del.write.ts);
    b.apply(&del);
    b.apply(&put);
    assert_eq!(a, b);
    assert_eq!(b.read(), converge_models::Value::Map(vec![]));
    // A put on another field at b is stamped past everything b saw.
    let put2 = ctx_update(&mut b, &mut cb, 1, Intent::Put { field: 2, value: 1 }).unwrap();
    assert!(put2.write.ts > del.write.ts);
}
