//! Evidence for a non-linearizable key: the longest linearizable prefix of
//! its history, one linearization of that prefix, and the op that cannot be
//! placed after it.
//!
//! Linearizability is prefix-closed, so the shortest failing prefix is found
//! by binary search over event counts; in a prefix, an op that has not
//! returned yet is pending (it may take effect later, or never). The last
//! event of the shortest failing prefix is the return of the op that cannot
//! be placed. Every list in a witness is capped at [`WITNESS_OPS`] so that it
//! stays small however long the history is.

use super::model::SeqModel;
use super::search::{self, Budget, Outcome, TimedOp};
use crate::history::lin::{LinFn, LinOp, LinValue};
use crate::history::Outcome as OpOutcome;
use serde::Serialize;

/// At most this many ops appear in each list of a witness.
pub const WITNESS_OPS: usize = 40;

/// One op as shown in a witness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpView {
    /// Position of the op in the history (invocation order).
    pub index: usize,
    /// 1-based line of its invocation in the file.
    pub line: usize,
    /// Client process.
    pub process: u64,
    /// Function called.
    pub f: LinFn,
    /// Input value.
    pub input: LinValue,
    /// Output value.
    pub output: LinValue,
    /// How it completed.
    pub outcome: OpOutcome,
    /// Invocation time.
    pub call: u64,
    /// Completion time, if it returned.
    pub ret: Option<u64>,
}

impl OpView {
    /// The view of `history[index]`.
    pub fn of(history: &[LinOp], index: usize) -> OpView {
        let op = &history[index];
        OpView {
            index,
            line: op.line,
            process: op.process,
            f: op.f,
            input: op.input.clone(),
            output: op.output.clone(),
            outcome: op.outcome,
            call: op.call,
            ret: op.ret,
        }
    }

    /// `line 12`, or `op 7` when the reader does not track lines.
    pub fn location(&self) -> String {
        if self.line > 0 {
            format!("line {}", self.line)
        } else {
            format!("op {}", self.index)
        }
    }

    /// `read -> 3`, `write 4`, `cas [1 2] (fail)` and so on.
    pub fn describe(&self) -> String {
        let mut text = match self.f {
            LinFn::Read => format!("read -> {}", self.output),
            f => format!("{} {}", f.as_str(), self.input),
        };
        match self.outcome {
            OpOutcome::Ok => {}
            OpOutcome::Fail => text.push_str(" (fail)"),
            OpOutcome::Info => text.push_str(" (info)"),
        }
        text
    }
}

/// Why a key is not linearizable, in a bounded form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Witness {
    /// The op that cannot be placed after any linearization of the
    /// longest linearizable prefix; `None` if the prefix search ran out of
    /// budget.
    pub blocked_op: Option<OpView>,
    /// Events (calls and returns) in the longest linearizable prefix.
    pub prefix_events: usize,
    /// Ops invoked within that prefix.
    pub prefix_ops: usize,
    /// The tail of one linearization of that prefix, in order.
    pub linearization: Vec<OpView>,
    /// Length of that linearization (ops shown may be fewer).
    pub linearization_len: usize,
    /// Model state after that linearization.
    pub state_after: String,
    /// Ops whose intervals overlap the blocked op (candidates to reorder).
    pub concurrent: Vec<OpView>,
    /// The tail of the longest partial linearization the full search found.
    pub furthest: Vec<OpView>,
    /// Length of that partial linearization.
    pub furthest_len: usize,
    /// Model state after it.
    pub furthest_state: String,
    /// A sentence for people.
    pub explanation: String,
}

fn tail(indices: &[usize], history: &[LinOp]) -> Vec<OpView> {
    let from = indices.len().saturating_sub(WITNESS_OPS);
    indices[from..]
        .iter()
        .map(|&i| OpView::of(history, i))
        .collect()
}

/// Applies `order` from the initial state; stops at the first illegal step
/// (there is none for a linearization the search produced).
fn replay<M: SeqModel>(model: &M, ops: &[TimedOp<M::Op>], order: &[u32]) -> M::State {
    let mut state = model.init();
    for &i in order {
        match model.step(&state, &ops[i as usize].op) {
            Some(next) => state = next,
            None => break,
        }
    }
    state
}

/// Builds the witness for a key already found not linearizable. `ops` are
/// the key's compiled ops, `origin[i]` the history index of `ops[i]`, and
/// `furthest` the deepest partial linearization of the full search.
pub fn explain<M: SeqModel>(
    model: &M,
    ops: &[TimedOp<M::Op>],
    origin: &[usize],
    history: &[LinOp],
    furthest: &[u32],
    budget: &Budget<'_>,
) -> Option<Witness> {
    if ops.is_empty() {
        return None;
    }
    let mut order: Vec<(u64, u8, u32)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.call, 0, i as u32));
        order.push((op.ret.unwrap_or(u64::MAX), 1, i as u32));
    }
    order.sort_unstable();
    let mut call_pos = vec![0usize; ops.len()];
    let mut ret_pos = vec![0usize; ops.len()];
    for (pos, &(_, kind, i)) in order.iter().enumerate() {
        if kind == 0 {
            call_pos[i as usize] = pos;
        } else {
            ret_pos[i as usize] = pos;
        }
    }
    // The prefix of the first `events` events, with the key's op index of
    // each prefix op.
    let prefix = |events: usize| -> (Vec<TimedOp<M::Op>>, Vec<u32>) {
        let mut kept = Vec::new();
        let mut index = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if call_pos[i] >= events {
                continue;
            }
            if ret_pos[i] < events {
                kept.push(op.clone());
            } else if let Some(pending) = model.pending(&op.op) {
                kept.push(TimedOp {
                    op: pending,
                    call: op.call,
                    ret: None,
                });
            } else {
                continue;
            }
            index.push(i as u32);
        }
        (kept, index)
    };

    let (mut lo, mut hi) = (0usize, order.len());
    let mut lo_linearization: Vec<u32> = Vec::new();
    let mut lo_ops: (Vec<TimedOp<M::Op>>, Vec<u32>) = (Vec::new(), Vec::new());
    let mut budget_ran_out = false;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let (prefix_ops, index) = prefix(mid);
        match search::search(model, &prefix_ops, budget).outcome {
            Outcome::Linearizable(found) => {
                lo = mid;
                lo_linearization = found;
                lo_ops = (prefix_ops, index);
            }
            Outcome::NotLinearizable => hi = mid,
            Outcome::Unknown(_) => {
                budget_ran_out = true;
                break;
            }
        }
    }

    let furthest_origin: Vec<usize> = furthest.iter().map(|&i| origin[i as usize]).collect();
    let furthest_state = model.describe(&replay(model, ops, furthest));
    let mut witness = Witness {
        blocked_op: None,
        prefix_events: 0,
        prefix_ops: 0,
        linearization: Vec::new(),
        linearization_len: 0,
        state_after: String::new(),
        concurrent: Vec::new(),
        furthest: tail(&furthest_origin, history),
        furthest_len: furthest.len(),
        furthest_state,
        explanation: String::new(),
    };
    if budget_ran_out {
        witness.explanation = format!(
            "not linearizable; the budget ran out while narrowing it down. The longest \
             partial linearization found has {} ops.",
            furthest.len()
        );
        return Some(witness);
    }

    let blocked = order[hi - 1].2 as usize;
    let (prefix_ops, prefix_index) = lo_ops;
    let linearization: Vec<usize> = lo_linearization
        .iter()
        .map(|&p| origin[prefix_index[p as usize] as usize])
        .collect();
    let state_after = model.describe(&replay(model, &prefix_ops, &lo_linearization));
    let (b_call, b_ret) = (call_pos[blocked], ret_pos[blocked]);
    let mut concurrent: Vec<usize> = (0..ops.len())
        .filter(|&i| i != blocked && call_pos[i] < b_ret && ret_pos[i] > b_call)
        .collect();
    // Keep the ops closest in time to the blocked op.
    concurrent.sort_by_key(|&i| call_pos[i].abs_diff(b_call));
    concurrent.truncate(WITNESS_OPS);
    concurrent.sort_by_key(|&i| call_pos[i]);

    let blocked_view = OpView::of(history, origin[blocked]);
    witness.explanation = format!(
        "{} by process {} ({}) cannot be placed: the first {} events of this key \
         are linearizable, but no order of them lets this op return what it returned. \
         After one linearization of that prefix the state is {}.",
        blocked_view.describe(),
        blocked_view.process,
        blocked_view.location(),
        lo,
        state_after
    );
    witness.blocked_op = Some(blocked_view);
    witness.prefix_events = lo;
    witness.prefix_ops = prefix_index.len();
    witness.linearization_len = linearization.len();
    witness.linearization = tail(&linearization, history);
    witness.state_after = state_after;
    witness.concurrent = concurrent
        .into_iter()
        .map(|i| OpView::of(history, origin[i]))
        .collect();
    Some(witness)
}
