//! The Wing–Gong search with Lowe's just-in-time linearization and memo.
//!
//! Call and return events sit in one doubly linked list in time order. The
//! search walks it: at a call it tries to linearize that op now (apply the
//! model step, lift the op's two events out of the list, restart from the
//! head); at a return whose op is still in the list it backtracks, because
//! that op would have to take effect after it returned. The memo remembers
//! every (set of linearized ops, state) pair already explored, so no
//! configuration is expanded twice; the set is a bitset with an incremental
//! Zobrist hash, and equal hashes are resolved by comparing bitset and state.

use super::model::SeqModel;
use hashbrown::HashTable;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// An op ready for the search: the compiled op and its real-time interval.
#[derive(Clone, Debug)]
pub struct TimedOp<O> {
    /// Compiled op.
    pub op: O,
    /// Invocation time.
    pub call: u64,
    /// Completion time, `None` if it never returned.
    pub ret: Option<u64>,
}

/// Limits one search must stay within; past them the verdict is unknown.
#[derive(Debug)]
pub struct Budget<'a> {
    /// Give up at this instant.
    pub deadline: Option<Instant>,
    /// Give up when the memo holds more than this many bytes.
    pub memo_bytes: usize,
    /// Give up when another part of the check asks everyone to stop.
    pub cancel: &'a AtomicBool,
}

/// What a search concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A legal order exists; this is one (indices into the ops), without
    /// the never-returned ops that were left out.
    Linearizable(Vec<u32>),
    /// No legal order exists.
    NotLinearizable,
    /// The budget ran out first; the reason says which limit.
    Unknown(String),
}

/// The search's result with what it learned on the way.
#[derive(Clone, Debug)]
pub struct Searched {
    /// Verdict of the search.
    pub outcome: Outcome,
    /// The longest partial linearization found (indices into the ops).
    pub furthest: Vec<u32>,
    /// Configurations expanded.
    pub steps: u64,
    /// Configurations remembered in the memo.
    pub memo_states: usize,
    /// Approximate bytes the memo held at the end.
    pub memo_bytes: usize,
}

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
/// How often the clock and the cancel flag are consulted.
const BUDGET_CHECK_EVERY: u64 = 4096;

struct MemoEntry<S> {
    hash: u64,
    /// Leading bitset words that are all ones (the linearized prefix).
    full_words: u32,
    /// Where the remaining words start in the memo's word arena; trailing
    /// zero words are trimmed. An arena rather than a box per entry keeps
    /// insertion free of allocation.
    tail_at: u32,
    tail_len: u32,
    state: S,
}

fn same_bits(full_words: u32, tail: &[u64], bits: &[u64]) -> bool {
    let full = full_words as usize;
    if full + tail.len() > bits.len() {
        return false;
    }
    bits[..full].iter().all(|&w| w == u64::MAX)
        && bits[full..full + tail.len()] == *tail
        && bits[full + tail.len()..].iter().all(|&w| w == 0)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The event list: entry 0 is the head; entries 1..=2n are calls and returns.
struct Events {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Op of each entry.
    op: Vec<u32>,
    is_call: Vec<bool>,
    call_entry: Vec<u32>,
    ret_entry: Vec<u32>,
}

impl Events {
    fn build<O>(ops: &[TimedOp<O>]) -> Events {
        let n = ops.len();
        // At equal times calls sort first: the ops overlap, which is the
        // only safe reading of a tie.
        let mut order: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, 0, i as u32));
            order.push((op.ret.unwrap_or(u64::MAX), 1, i as u32));
        }
        order.sort_unstable();
        let len = 2 * n + 1;
        let mut events = Events {
            next: vec![NIL; len],
            prev: vec![NIL; len],
            op: vec![NIL; len],
            is_call: vec![false; len],
            call_entry: vec![NIL; n],
            ret_entry: vec![NIL; n],
        };
        for (pos, &(_, kind, op)) in order.iter().enumerate() {
            let entry = pos as u32 + 1;
            events.op[entry as usize] = op;
            events.is_call[entry as usize] = kind == 0;
            if kind == 0 {
                events.call_entry[op as usize] = entry;
            } else {
                events.ret_entry[op as usize] = entry;
            }
            events.prev[entry as usize] = entry - 1;
            events.next[entry as usize - 1] = entry;
        }
        events
    }

    fn unlink(&mut self, entry: u32) {
        let (p, n) = (self.prev[entry as usize], self.next[entry as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, entry: u32) {
        let (p, n) = (self.prev[entry as usize], self.next[entry as usize]);
        self.next[p as usize] = entry;
        if n != NIL {
            self.prev[n as usize] = entry;
        }
    }

    fn lift(&mut self, op: u32) {
        self.unlink(self.call_entry[op as usize]);
        self.unlink(self.ret_entry[op as usize]);
    }

    fn unlift(&mut self, op: u32) {
        self.relink(self.ret_entry[op as usize]);
        self.relink(self.call_entry[op as usize]);
    }
}

/// Keeps a copy of the deepest stack seen, copying only what changed since
/// the last copy so the cost stays proportional to the search's own moves.
#[derive(Default)]
struct Furthest {
    ops: Vec<u32>,
    /// Depth of the deepest stack seen.
    best: usize,
    /// `stack[..common]` is known to equal `ops[..common]`.
    common: usize,
    /// The stack is deeper than `ops` and not copied yet.
    pending: bool,
}

impl Furthest {
    fn pushed(&mut self, depth: usize) {
        if depth > self.best {
            self.best = depth;
            self.pending = true;
        }
    }

    fn sync<S>(&mut self, stack: &[(u32, S)]) {
        if self.pending {
            self.ops.truncate(self.common);
            self.ops
                .extend(stack[self.common..].iter().map(|(op, _)| *op));
            self.common = stack.len();
            self.pending = false;
        }
    }

    fn popping<S>(&mut self, stack: &[(u32, S)]) {
        self.sync(stack);
        self.common = self.common.min(stack.len() - 1);
    }
}

fn state_hash<S: Hash>(state: &S) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    state.hash(&mut h);
    splitmix(h.finish())
}

/// Decides whether `ops` has a linearization under `model`, within `budget`.
pub fn search<M: SeqModel>(model: &M, ops: &[TimedOp<M::Op>], budget: &Budget<'_>) -> Searched {
    let n = ops.len();
    let mut events = Events::build(ops);
    let zobrist: Vec<u64> = (0..n as u64).map(splitmix).collect();
    let mut bits = vec![0u64; n.div_ceil(64)];
    let mut bits_hash = 0u64;
    let mut memo: HashTable<MemoEntry<M::State>> = HashTable::new();
    let mut memo_words: Vec<u64> = Vec::new();
    let mut memo_bytes = 0usize;
    let mut stack: Vec<(u32, M::State)> = Vec::new();
    let mut furthest = Furthest::default();
    let mut state = model.init();
    let mut entry = events.next[HEAD as usize];
    let mut steps = 0u64;

    let outcome = loop {
        if entry == NIL {
            break Outcome::Linearizable(stack.iter().map(|(op, _)| *op).collect());
        }
        steps += 1;
        if steps.is_multiple_of(BUDGET_CHECK_EVERY) {
            if budget.cancel.load(Ordering::Relaxed) {
                break Outcome::Unknown("cancelled".into());
            }
            if budget.deadline.is_some_and(|d| Instant::now() >= d) {
                break Outcome::Unknown(format!("time budget ran out after {steps} steps"));
            }
        }
        let op = events.op[entry as usize];
        if events.is_call[entry as usize] {
            if let Some(next_state) = model.step(&state, &ops[op as usize].op) {
                let (word, bit) = (op as usize / 64, 1u64 << (op % 64));
                bits[word] |= bit;
                bits_hash ^= zobrist[op as usize];
                let hash = bits_hash ^ state_hash(&next_state);
                let seen = memo
                    .find(hash, |e| {
                        e.hash == hash
                            && e.state == next_state
                            && same_bits(
                                e.full_words,
                                &memo_words[e.tail_at as usize..(e.tail_at + e.tail_len) as usize],
                                &bits,
                            )
                    })
                    .is_some();
                if !seen {
                    let full_words = bits.iter().take_while(|&&w| w == u64::MAX).count();
                    let used = bits.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
                    let tail = &bits[full_words..used.max(full_words)];
                    let tail_at = memo_words.len() as u32;
                    memo_words.extend_from_slice(tail);
                    memo_bytes += std::mem::size_of::<MemoEntry<M::State>>()
                        + tail.len() * 8
                        + model.state_bytes(&next_state);
                    memo.insert_unique(
                        hash,
                        MemoEntry {
                            hash,
                            full_words: full_words as u32,
                            tail_at,
                            tail_len: tail.len() as u32,
                            state: next_state.clone(),
                        },
                        |e| e.hash,
                    );
                    if memo_bytes > budget.memo_bytes {
                        break Outcome::Unknown(format!(
                            "memory budget of {} MiB ran out after {} states",
                            budget.memo_bytes >> 20,
                            memo.len()
                        ));
                    }
                    let previous = std::mem::replace(&mut state, next_state);
                    stack.push((op, previous));
                    furthest.pushed(stack.len());
                    events.lift(op);
                    entry = events.next[HEAD as usize];
                    continue;
                }
                bits[word] &= !bit;
                bits_hash ^= zobrist[op as usize];
            }
            entry = events.next[entry as usize];
        } else {
            if ops[op as usize].ret.is_none() {
                // Every op still in the list never returned: each may be
                // taken to have never happened.
                break Outcome::Linearizable(stack.iter().map(|(op, _)| *op).collect());
            }
            if stack.is_empty() {
                break Outcome::NotLinearizable;
            }
            furthest.popping(&stack);
            let Some((top, previous)) = stack.pop() else {
                break Outcome::NotLinearizable;
            };
            state = previous;
            bits[top as usize / 64] &= !(1u64 << (top % 64));
            bits_hash ^= zobrist[top as usize];
            events.unlift(top);
            entry = events.next[events.call_entry[top as usize] as usize];
        }
    };
    furthest.sync(&stack);
    Searched {
        outcome,
        furthest: furthest.ops,
        steps,
        memo_states: memo.len(),
        memo_bytes,
    }
}
