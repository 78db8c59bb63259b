//! The CRDT laws, as a harness shared by the proptest suite
//! (`models/tests/laws.rs`) and the `merge_laws` fuzz target
//! (`converge::props`).
//!
//! A small, correct causal harness runs a history of steps over a few
//! replicas: local updates (with a per-replica vector clock incremented at
//! the origin), op deliveries (merging the op's clock), and state merges
//! (merging both clocks). The checks then ask of the states and ops it
//! produced that:
//! - merge is commutative, associative and idempotent, with the fresh state
//!   as identity, and an upper bound;
//! - delivering every op to a fresh replica in any order, with duplicates,
//!   gives the same state and read, and redelivery changes nothing;
//! - the op path and the state path agree, and any replica catches up by
//!   either.
//!
//! Each check returns the law it found broken, so callers decide how to
//! fail (a proptest case error, or a fuzzer panic).

use crate::{Crdt, Intent, Rejected, ReplicaId, UpdateCtx, VClock};

/// One step of a replicated history.
#[derive(Clone, Debug)]
pub enum Step {
    /// A local update at `replica`.
    Update {
        /// Where the update happens.
        replica: ReplicaId,
        /// What it does.
        intent: Intent,
    },
    /// Deliver op number `op` (modulo the ops produced so far) to `to`.
    Deliver {
        /// Receiving replica.
        to: ReplicaId,
        /// Op index, reduced modulo the ops so far.
        op: usize,
    },
    /// State-merge `from` into `to`.
    Sync {
        /// Receiving replica.
        to: ReplicaId,
        /// Sending replica.
        from: ReplicaId,
    },
}

/// The outcome of a history: final replicas, snapshots taken half-way, and
/// every op produced.
#[derive(Clone, Debug)]
pub struct Run<M: Crdt> {
    /// Final state of each replica.
    pub replicas: Vec<M>,
    /// Every replica's state half-way through (or at the end of an empty history).
    pub snapshots: Vec<M>,
    /// Every op produced, in production order.
    pub ops: Vec<M::Op>,
    /// A replica id no step used, for fresh downstream replicas.
    pub fresh_id: ReplicaId,
}

/// A broken law, named.
pub type Broken = &'static str;

/// Runs `steps` over `replicas` replicas. Replica ids in the steps must be
/// below `replicas`. An intent the model does not support is reported, as
/// the caller generated an intent for the wrong workload.
pub fn run<M: Crdt>(replicas: u16, steps: &[Step]) -> Result<Run<M>, Broken> {
    let mut states: Vec<M> = (0..replicas).map(M::new).collect();
    let mut clocks: Vec<VClock> = (0..replicas)
        .map(|_| VClock::new(replicas.into()))
        .collect();
    let mut ops: Vec<(M::Op, VClock)> = Vec::new();
    let mut snapshots = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if i == steps.len() / 2 {
            snapshots.extend(states.iter().cloned());
        }
        match step {
            Step::Update { replica, intent } => {
                let r = usize::from(*replica);
                let dot = clocks[r].increment(*replica);
                let ctx = UpdateCtx {
                    replica: *replica,
                    dot,
                    clock: &clocks[r],
                };
                match states[r].update(intent, &ctx) {
                    Ok(op) => ops.push((op, clocks[r].clone())),
                    Err(Rejected::Precondition) => {}
                    Err(Rejected::Unsupported) => {
                        return Err("the model rejected an intent of its own workload")
                    }
                }
            }
            Step::Deliver { to, op } => {
                if !ops.is_empty() {
                    let (op, clock) = &ops[op % ops.len()];
                    states[usize::from(*to)].apply(op);
                    clocks[usize::from(*to)].merge(clock);
                }
            }
            Step::Sync { to, from } => {
                let (to, from) = (usize::from(*to), usize::from(*from));
                let other = states[from].clone();
                states[to].merge(&other);
                let other = clocks[from].clone();
                clocks[to].merge(&other);
            }
        }
    }
    if snapshots.is_empty() {
        snapshots.extend(states.iter().cloned());
    }
    Ok(Run {
        replicas: states,
        snapshots,
        ops: ops.into_iter().map(|(op, _)| op).collect(),
        fresh_id: replicas,
    })
}

/// `a` merged with `b`, leaving both alone.
pub fn merged<M: Crdt>(a: &M, b: &M) -> M {
    let mut m = a.clone();
    m.merge(b);
    m
}

/// A fresh replica `id` that received `ops` in `order`.
pub fn delivered<M: Crdt>(id: ReplicaId, ops: &[M::Op], order: &[usize]) -> M {
    let mut m = M::new(id);
    for &i in order {
        m.apply(&ops[i]);
    }
    m
}

fn law(holds: bool, name: Broken) -> Result<(), Broken> {
    if holds {
        Ok(())
    } else {
        Err(name)
    }
}

/// Merge is a join over every final state and snapshot of the run.
pub fn merge_is_a_join<M: Crdt>(run: &Run<M>) -> Result<(), Broken> {
    let pool: Vec<&M> = run.replicas.iter().chain(&run.snapshots).collect();
    let fresh = M::new(run.fresh_id);
    for &a in &pool {
        law(&merged(a, a) == a, "merge is not idempotent")?;
        law(
            &merged(a, &fresh) == a,
            "the fresh state is not an identity",
        )?;
        law(
            &merged(&fresh, a) == a,
            "the fresh state is not an identity",
        )?;
        for &b in &pool {
            let ab = merged(a, b);
            let ba = merged(b, a);
            law(
                ab == ba && ab.read() == ba.read(),
                "merge is not commutative",
            )?;
            law(merged(&ab, a) == ab, "merge is not an upper bound")?;
            for &c in &pool {
                law(
                    merged(&ab, c) == merged(a, &merged(b, c)),
                    "merge is not associative",
                )?;
            }
        }
    }
    Ok(())
}

/// Delivering the ops in `order` (a permutation of the ops, possibly with
/// duplicates), in reverse with every op twice, or all again, gives the
/// state of delivering them once in production order.
pub fn delivery_order_does_not_matter<M: Crdt>(
    run: &Run<M>,
    order: &[usize],
) -> Result<(), Broken> {
    let n = run.ops.len();
    let in_order_idx: Vec<usize> = (0..n).collect();
    let in_order: M = delivered(run.fresh_id, &run.ops, &in_order_idx);
    let shuffled: M = delivered(run.fresh_id, &run.ops, order);
    law(
        shuffled == in_order && shuffled.read() == in_order.read(),
        "delivery order or a duplicate changed the state",
    )?;
    let reversed_idx: Vec<usize> = (0..n).rev().flat_map(|i| [i, i]).collect();
    law(
        delivered::<M>(run.fresh_id, &run.ops, &reversed_idx) == in_order,
        "reverse delivery with duplicates changed the state",
    )?;
    let mut again = in_order.clone();
    for op in &run.ops {
        again.apply(op);
    }
    law(again == in_order, "redelivery is not idempotent")
}

/// Merging every replica equals applying every op (in `order`), and any
/// replica or snapshot catches up by applying the ops or merging the full
/// state.
pub fn op_path_and_state_path_agree<M: Crdt>(run: &Run<M>, order: &[usize]) -> Result<(), Broken> {
    let by_ops: M = delivered(run.fresh_id, &run.ops, order);
    let mut by_state = M::new(run.fresh_id);
    for r in &run.replicas {
        by_state.merge(r);
    }
    law(
        by_state == by_ops && by_state.read() == by_ops.read(),
        "merging all replicas != applying all ops",
    )?;
    for r in run.replicas.iter().chain(&run.snapshots) {
        let mut caught_up = r.clone();
        for &i in order {
            caught_up.apply(&run.ops[i]);
        }
        law(caught_up == by_ops, "apply after merge diverged")?;
        law(merged(r, &by_ops) == by_ops, "merge after apply diverged")?;
        law(merged(&by_ops, r) == by_ops, "merge after apply diverged")?;
    }
    Ok(())
}

/// Every law above, with `order` as the shuffled delivery.
pub fn all_laws<M: Crdt>(run: &Run<M>, order: &[usize]) -> Result<(), Broken> {
    merge_is_a_join(run)?;
    delivery_order_does_not_matter(run, order)?;
    op_path_and_state_path_agree(run, order)
}
