//! A brute-force linearizability oracle for tiny histories: it tries every
//! order that respects real time, and for each op that never returned both
//! placing it and leaving it out. Exponential, so only for tests and fuzzing
//! of the real search, which it shares nothing with but the model.

use super::model::SeqModel;
use super::search::TimedOp;

/// The largest history the oracle accepts (it is factorial in this).
pub const MAX_OPS: usize = 10;

/// Whether `ops` has a linearization under `model`; `None` when the
/// history is too long for brute force.
pub fn is_linearizable<M: SeqModel>(model: &M, ops: &[TimedOp<M::Op>]) -> Option<bool> {
    if ops.len() > MAX_OPS {
        return None;
    }
    let mut placed = vec![false; ops.len()];
    Some(extend(model, ops, &mut placed, &model.init()))
}

fn extend<M: SeqModel>(
    model: &M,
    ops: &[TimedOp<M::Op>],
    placed: &mut [bool],
    state: &M::State,
) -> bool {
    let open = |i: usize, placed: &[bool]| !placed[i] && ops[i].ret.is_some();
    if (0..ops.len()).all(|i| !open(i, placed)) {
        // Ops that never returned and are still unplaced never happened.
        return true;
    }
    for candidate in 0..ops.len() {
        if placed[candidate] {
            continue;
        }
        // Every op that returned before this one was called must come first.
        let blocked = (0..ops.len()).any(|other| {
            open(other, placed) && ops[other].ret.is_some_and(|r| r < ops[candidate].call)
        });
        if blocked {
            continue;
        }
        if let Some(next) = model.step(state, &ops[candidate].op) {
            placed[candidate] = true;
            let found = extend(model, ops, placed, &next);
            placed[candidate] = false;
            if found {
                return true;
            }
        }
    }
    false
}

/// Runs the real search without limits and the oracle on `ops`: `Ok(verdict)`
/// when they agree and any order the search returned is legal and respects
/// real time; `Err` says what went wrong. The one differential check shared
/// by the proptests and the fuzz target.
pub fn compare_with_search<M: SeqModel>(model: &M, ops: &[TimedOp<M::Op>]) -> Result<bool, String> {
    use super::search::{self, Budget, Outcome};
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let memory = search::MemoryBudget::for_check(usize::MAX);
    let budget = Budget {
        deadline: None,
        max_steps: None,
        memory: &memory,
        memory_cap: usize::MAX,
        cancel: &cancel,
    };
    let slow = is_linearizable(model, ops)
        .ok_or_else(|| format!("{} ops are too many for brute force", ops.len()))?;
    let fast = match search::search(model, ops, &budget).outcome {
        Outcome::Linearizable(order) => {
            let mut state = model.init();
            for (pos, &i) in order.iter().enumerate() {
                state = model
                    .step(&state, &ops[i as usize].op)
                    .ok_or_else(|| format!("search returned an illegal order {order:?}"))?;
                let called = ops[i as usize].call;
                if order[pos + 1..]
                    .iter()
                    .any(|&j| ops[j as usize].ret.is_some_and(|r| r < called))
                {
                    return Err(format!("order {order:?} breaks real time"));
                }
            }
            true
        }
        Outcome::NotLinearizable => false,
        Outcome::Unknown(why) => return Err(format!("unlimited search gave up: {why}")),
    };
    if fast == slow {
        Ok(fast)
    } else {
        Err(format!("search says {fast}, brute force says {slow}"))
    }
}
