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

use super::memory::Ledger;
use super::model::SeqModel;
use hashbrown::HashTable;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub use super::memory::MemoryBudget;

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
    /// Give up after this many steps (one attempt of a key that may be
    /// resumed later with a larger quota).
    pub max_steps: Option<u64>,
    /// The check's memory budget, which every search draws on.
    pub memory: &'a MemoryBudget,
    /// The most this search may hold of `memory`, in bytes.
    pub memory_cap: usize,
    /// Give up when another part of the check asks everyone to stop.
    pub cancel: &'a AtomicBool,
}

/// Which limit stopped a search before it could decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The deadline passed.
    Time,
    /// The step quota of this attempt ran out.
    Steps,
    /// The memory budget ran out.
    Memory {
        /// The search's own cap, in bytes.
        cap: usize,
        /// The whole-process resident size that tripped the budget, when
        /// that is what stopped it.
        resident: Option<usize>,
    },
    /// Another part of the check asked everyone to stop.
    Cancelled,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Time => f.write_str("time budget ran out"),
            Stop::Steps => f.write_str("step quota ran out"),
            Stop::Memory {
                resident: Some(resident),
                ..
            } => write!(
                f,
                "memory budget ran out: the process holds {} MiB",
                resident >> 20
            ),
            Stop::Memory { cap, .. } => write!(
                f,
                "memory budget ran out: the search may hold {:.1} MiB",
                *cap as f64 / (1 << 20) as f64
            ),
            Stop::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// What a search concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A legal order exists; this is one (indices into the ops), without
    /// the never-returned ops that were left out.
    Linearizable(Vec<u32>),
    /// No legal order exists.
    NotLinearizable,
    /// A limit stopped the search first.
    Unknown(Stop),
}

/// The search's result with what it learned on the way.
#[derive(Clone, Debug)]
pub struct Searched {
    /// Verdict of the search.
    pub outcome: Outcome,
    /// The longest partial linearization found (indices into the ops).
    pub furthest: Vec<u32>,
    /// Steps taken: events visited while looking for an op to linearize.
    pub steps: u64,
    /// Configurations remembered in the memo.
    pub memo_states: usize,
    /// The most bytes the search held at once, as charged to its ledger.
    pub memory_bytes: usize,
}

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
/// How often the clock and the cancel flag are consulted.
const BUDGET_CHECK_EVERY: u64 = 4096;
/// How many budget checks pass between two reads of the resident size.
const RESIDENT_CHECK_EVERY: u64 = 16;

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

/// One move of the search: the op linearized, the state before it, and the
/// phase it was found in.
struct Frame<S> {
    op: u32,
    previous: S,
    phase: Phase,
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

    fn sync<S>(&mut self, stack: &[Frame<S>]) {
        if self.pending {
            self.ops.truncate(self.common);
            self.ops.extend(stack[self.common..].iter().map(|f| f.op));
            self.common = stack.len();
            self.pending = false;
        }
    }

    fn popping<S>(&mut self, stack: &[Frame<S>]) {
        self.sync(stack);
        self.common = self.common.min(stack.len() - 1);
    }
}

fn state_hash<S: Hash>(state: &S) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    state.hash(&mut h);
    splitmix(h.finish())
}

/// Bytes a hashbrown table of `capacity` entries of `T` allocates.
fn table_bytes<T>(capacity: usize) -> usize {
    let buckets = match capacity {
        0 => return 0,
        c if c < 8 => (c + 1).next_power_of_two(),
        c => (c * 8 / 7).next_power_of_two(),
    };
    buckets * (std::mem::size_of::<T>() + 1) + 16
}

/// Heap bytes of a state as charged: its own bytes plus the allocator's
/// per-allocation overhead.
fn heap_bytes<M: SeqModel>(model: &M, state: &M::State) -> usize {
    match model.state_bytes(state) {
        0 => 0,
        n => n + 16,
    }
}

/// Which candidates a scan of the event list considers. Every candidate of
/// a configuration is tried in exactly one phase, so the order changes the
/// steps, never the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Ops that never change the state (reads, failed cas), when legal now:
    /// linearizing one now loses nothing (see [`search`]), so it is the
    /// configuration's only move.
    Observe,
    /// Every other op, in the order of their calls. (Trying ops that
    /// never returned last was tried and costs steps: a crashed write that
    /// took effect is then found only after every other order failed.)
    Others,
}

/// Decides whether `ops` has a linearization under `model`, within `budget`.
///
/// On top of Lowe's search, two orderings cut the steps on hard histories:
///
/// - A candidate that never changes the state (a read, a failed cas) and is
///   legal now is linearized at once, with no alternative tried. This loses
///   nothing: it is a candidate, so no remaining op returned before it was
///   called, and moving it to the front of any linearization of the rest
///   keeps every state and every real-time order. If the configuration
///   after it fails, so does the one before.
pub fn search<M: SeqModel>(model: &M, ops: &[TimedOp<M::Op>], budget: &Budget<'_>) -> Searched {
    let n = ops.len();
    let mut ledger = Ledger::new(budget.memory, budget.memory_cap);
    let frame_size = std::mem::size_of::<Frame<M::State>>();
    // Event list (and the sort that builds it), Zobrist keys, bitset, op
    // classes, the stack and the furthest linearization, none longer than
    // `n`.
    let fixed = (2 * n + 1) * 13 + n * (8 + 32 + 8 + 2 + frame_size + 4) + n.div_ceil(64) * 8;
    if !ledger.charge(fixed) {
        return Searched {
            outcome: Outcome::Unknown(Stop::Memory {
                cap: budget.memory_cap,
                resident: None,
            }),
            furthest: Vec::new(),
            steps: 0,
            memo_states: 0,
            memory_bytes: ledger.peak(),
        };
    }
    let mut events = Events::build(ops);
    let zobrist: Vec<u64> = (0..n as u64).map(splitmix).collect();
    let observes: Vec<bool> = ops.iter().map(|o| model.observes(&o.op)).collect();
    let crashed: Vec<bool> = ops.iter().map(|o| o.ret.is_none()).collect();
    let any_observer = observes.iter().any(|&o| o);
    let mut bits = vec![0u64; n.div_ceil(64)];
    let mut bits_hash = 0u64;
    let mut memo: HashTable<MemoEntry<M::State>> = HashTable::new();
    let mut memo_words: Vec<u64> = Vec::new();
    let mut stack: Vec<Frame<M::State>> = Vec::with_capacity(n);
    let mut furthest = Furthest::default();
    let mut state = model.init();
    let mut phase = if any_observer {
        Phase::Observe
    } else {
        Phase::Others
    };
    let mut entry = events.next[HEAD as usize];
    let mut steps = 0u64;
    let out_of_memory = |resident| {
        Outcome::Unknown(Stop::Memory {
            cap: budget.memory_cap,
            resident,
        })
    };

    let outcome = 'search: loop {
        steps += 1;
        if steps.is_multiple_of(BUDGET_CHECK_EVERY) {
            if budget.cancel.load(Ordering::Relaxed) {
                break Outcome::Unknown(Stop::Cancelled);
            }
            if budget.deadline.is_some_and(|d| Instant::now() >= d) {
                break Outcome::Unknown(Stop::Time);
            }
            if budget.max_steps.is_some_and(|max| steps >= max) {
                break Outcome::Unknown(Stop::Steps);
            }
            if steps.is_multiple_of(BUDGET_CHECK_EVERY * RESIDENT_CHECK_EVERY) {
                if let Some(resident) = budget.memory.resident_exceeded() {
                    break out_of_memory(Some(resident));
                }
            }
        }
        let at_call = entry != NIL && events.is_call[entry as usize];
        if !at_call {
            // The end of the candidates of this configuration.
            if entry == NIL || crashed[events.op[entry as usize] as usize] {
                // Every op left never returned: each may be taken to have
                // never happened.
                break Outcome::Linearizable(stack.iter().map(|f| f.op).collect());
            }
            match phase {
                Phase::Observe => {
                    phase = Phase::Others;
                    entry = events.next[HEAD as usize];
                    continue;
                }
                // Nothing left to try here: undo the last move.
                Phase::Others => {}
            }
        } else {
            let op = events.op[entry as usize];
            let o = op as usize;
            let eligible = match phase {
                Phase::Observe => observes[o],
                Phase::Others => !observes[o],
            };
            let mut backtrack = false;
            let next_state = if eligible {
                model.step(&state, &ops[o].op)
            } else {
                None
            };
            if let Some(next_state) = next_state {
                let (word, bit) = (o / 64, 1u64 << (op % 64));
                bits[word] |= bit;
                bits_hash ^= zobrist[o];
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
                    let tail_len = used.max(full_words) - full_words;
                    // Charge what the insertion allocates before it. A
                    // table or arena that grows leaves its old allocation to
                    // the allocator, which may keep it resident, so what
                    // was charged for it is not given back.
                    let mut growth = 2 * heap_bytes(model, &next_state);
                    if memo.len() == memo.capacity() {
                        growth += table_bytes::<MemoEntry<M::State>>((memo.capacity() + 1) * 2);
                    }
                    if memo_words.len() + tail_len > memo_words.capacity() {
                        growth += (memo_words.capacity() * 2).max(memo_words.len() + tail_len) * 8;
                    }
                    if !ledger.charge(growth) {
                        break 'search out_of_memory(None);
                    }
                    let tail = &bits[full_words..full_words + tail_len];
                    let tail_at = memo_words.len() as u32;
                    memo_words.extend_from_slice(tail);
                    memo.insert_unique(
                        hash,
                        MemoEntry {
                            hash,
                            full_words: full_words as u32,
                            tail_at,
                            tail_len: tail_len as u32,
                            state: next_state.clone(),
                        },
                        |e| e.hash,
                    );
                    let previous = std::mem::replace(&mut state, next_state);
                    stack.push(Frame {
                        op,
                        previous,
                        phase,
                    });
                    furthest.pushed(stack.len());
                    events.lift(op);
                    phase = if any_observer {
                        Phase::Observe
                    } else {
                        Phase::Others
                    };
                    entry = events.next[HEAD as usize];
                    continue;
                }
                bits[word] &= !bit;
                bits_hash ^= zobrist[o];
                // A forced move already explored and failed: so did this
                // configuration.
                backtrack = phase == Phase::Observe;
            }
            if !backtrack {
                entry = events.next[entry as usize];
                continue;
            }
        }
        // Undo moves until one leaves an alternative to try.
        loop {
            if stack.is_empty() {
                break 'search Outcome::NotLinearizable;
            }
            furthest.popping(&stack);
            let Some(Frame {
                op: top,
                previous,
                phase: top_phase,
            }) = stack.pop()
            else {
                break 'search Outcome::NotLinearizable;
            };
            // The state dropped here is freed and reused at once.
            ledger.release(heap_bytes(model, &state));
            state = previous;
            bits[top as usize / 64] &= !(1u64 << (top % 64));
            bits_hash ^= zobrist[top as usize];
            events.unlift(top);
            if top_phase != Phase::Observe {
                phase = top_phase;
                entry = events.next[events.call_entry[top as usize] as usize];
                break;
            }
        }
    };
    furthest.sync(&stack);
    Searched {
        outcome,
        furthest: furthest.ops,
        steps,
        memo_states: memo.len(),
        memory_bytes: ledger.peak(),
    }
}
