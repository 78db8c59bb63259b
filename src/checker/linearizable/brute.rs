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
