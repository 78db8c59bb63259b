//! CRDT laws for every reference model: proptest generates histories of
//! steps over three replicas and delivery orders, and the shared harness in
//! `converge_models::laws` (also behind the `merge_laws` fuzz target) checks
//! that merge is a join, that delivery order and duplicates do not matter,
//! and that the op path and the state path agree. Failures shrink to a
//! minimal history.

use converge_models::laws::{self, Step};
use converge_models::{
    counter, map, model_info, register, set, Crdt, Intent, ModelVisitor, Rejected, ReplicaId,
    UpdateCtx, VClock, Workload,
};
use proptest::prelude::*;

mod common;
use common::intent;
use proptest::sample::Index;

const REPLICAS: u16 = 3;

fn steps(workload: Workload) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        6 => (0..REPLICAS, intent(workload))
            .prop_map(|(replica, intent)| Step::Update { replica, intent }),
        2 => (0..REPLICAS, any::<usize>()).prop_map(|(to, op)| Step::Deliver { to, op }),
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

/// Runs the steps and checks one law, as a proptest result.
fn check<M: Crdt>(
    steps: &[Step],
    law: impl FnOnce(&laws::Run<M>) -> Result<(), laws::Broken>,
) -> Result<(), TestCaseError> {
    let run = laws::run::<M>(REPLICAS, steps).map_err(TestCaseError::fail)?;
    law(&run).map_err(TestCaseError::fail)
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
                    check::<$ty>(&steps, laws::merge_is_a_join)?;
                }

                #[test]
                fn delivery_order_and_duplicates_do_not_matter(
                    steps in steps($workload),
                    d in delivery(),
                ) {
                    check::<$ty>(&steps, |run| {
                        laws::delivery_order_does_not_matter(run, &d.order(run.ops.len()))
                    })?;
                }

                #[test]
                fn op_path_and_state_path_agree(steps in steps($workload), d in delivery()) {
                    check::<$ty>(&steps, |run| {
                        laws::op_path_and_state_path_agree(run, &d.order(run.ops.len()))
                    })?;
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
