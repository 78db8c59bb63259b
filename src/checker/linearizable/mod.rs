//! The linearizability checker: is there one total order of the operations,
//! consistent with real time, that a sequential model accepts?
//!
//! The history is split by key (P-compositionality: a history is
//! linearizable iff each key's sub-history is) and the keys are searched in
//! parallel with [`search::search`] whenever two or more need a search.
//!
//! Keys are scheduled so that the answer comes as soon as it is known:
//! cheap keys go first, and each key is searched in attempts with a step
//! quota that grows eightfold, so a hard key cannot hold a core while an
//! easy one waits; each attempt also gets only its share of what is left
//! of the deadline. With `--explain none` or `first`, the first key proven
//! not linearizable settles the file and cancels the rest. A key whose
//! search runs out of time or memory is `unknown`, never a hang; memory is
//! one [`memory::MemoryBudget`] that every search draws on. For a key that
//! is not linearizable, [`witness`] finds the longest linearizable prefix
//! and the op that cannot be placed after it.

pub mod brute;
pub mod html;
pub mod memory;
pub mod model;
pub mod search;
pub mod witness;

use super::{Check, Finding};
use crate::error::Result;
use crate::history::lin::{LinHistory, LinOp};
use crate::history::History;
use crate::verdict::Verdict;
use converge_models::Workload;
use memory::MemoryBudget;
use model::{Compile, Compiled, Counter, Kv, ModelKind, Register, Semantics, SeqModel, Set};
use search::{Budget, Outcome, Stop, TimedOp};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
pub use witness::{OpView, Witness};

/// Default memory budget of a check, in MiB.
pub const DEFAULT_MEMORY_MIB: usize = 768;

/// Step quota of a key's first attempt.
const FIRST_QUOTA: u64 = 1 << 16;
/// Each further attempt of a key gets this many times the quota of the last.
const QUOTA_GROWTH: u64 = 8;
/// Attempts with a step quota; the next one has none.
const QUOTA_ROUNDS: u32 = 4;
/// The round of keys whose share of the deadline ran out before the
/// deadline did: they get what the other keys left.
const LEFTOVER_ROUND: u32 = QUOTA_ROUNDS + 1;

/// Why a key that was never decided was left alone.
pub const STOPPED_EARLY: &str = "not decided (stopped early): another key is not linearizable";

/// Which non-linearizable keys get a witness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Explain {
    /// The first key found not linearizable; the others are not searched
    /// further.
    #[default]
    First,
    /// Every key that is not linearizable; every key is searched.
    All,
    /// None: verdicts only; the first key found not linearizable settles the
    /// file.
    None,
}

/// How to check.
#[derive(Clone, Debug)]
pub struct LinConfig {
    /// Sequential model.
    pub model: ModelKind,
    /// Crash semantics.
    pub semantics: Semantics,
    /// Wall-clock budget for the whole history; undecided keys are unknown.
    pub timeout: Option<Duration>,
    /// Memory budget, all threads together.
    pub memory_mib: usize,
    /// Whether the memory budget covers the whole process (its resident
    /// size, history included) rather than only the check's structures.
    /// Right for the CLI, which owns its process.
    pub memory_covers_process: bool,
    /// Worker threads (keys are checked in parallel).
    pub threads: usize,
    /// Which failing keys get a witness.
    pub explain: Explain,
}

impl LinConfig {
    /// Defaults for a model: porcupine semantics, no timeout, every core.
    pub fn new(model: ModelKind) -> Self {
        LinConfig {
            model,
            semantics: Semantics::default(),
            timeout: None,
            memory_mib: DEFAULT_MEMORY_MIB,
            memory_covers_process: false,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            explain: Explain::default(),
        }
    }
}

/// The verdict for one key.
#[derive(Clone, Debug, Serialize)]
pub struct KeyVerdict {
    /// The key, or `None` for a single-object history.
    pub key: Option<String>,
    /// Verdict.
    pub verdict: Verdict,
    /// Ops of this key in the history.
    pub ops: usize,
    /// Ops left after the semantics dropped those that constrain nothing.
    pub checked_ops: usize,
    /// Steps the search took, over all its attempts.
    pub steps: u64,
    /// Attempts the search took (each with a larger step quota).
    pub attempts: u32,
    /// Configurations remembered by the last attempt.
    pub memo_states: usize,
    /// The most bytes one attempt held, as charged to the memory budget.
    pub memory_bytes: usize,
    /// Search time in milliseconds, over all attempts.
    pub elapsed_ms: f64,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Evidence for a non-linearizable key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<Witness>,
}

/// The linearizability verdict for one history.
#[derive(Clone, Debug, Serialize)]
pub struct LinCheck {
    /// Model checked against.
    pub model: ModelKind,
    /// Crash semantics used.
    pub semantics: Semantics,
    /// Worst verdict over the keys.
    pub verdict: Verdict,
    /// Ops in the history.
    pub ops: usize,
    /// Per-key verdicts, in key order.
    pub keys: Vec<KeyVerdict>,
    /// Total check time in milliseconds.
    pub elapsed_ms: f64,
}

/// One key's compiled ops, with the index of each in the history.
struct Part<O> {
    key: Option<String>,
    total_ops: usize,
    ops: Vec<TimedOp<O>>,
    origin: Vec<usize>,
}

impl<O> Part<O> {
    /// A guess at the search's cost: ops times the most ops open at once
    /// (an op that never returned stays open).
    fn cost(&self) -> u64 {
        let mut events: Vec<(u64, bool)> = Vec::with_capacity(2 * self.ops.len());
        for op in &self.ops {
            events.push((op.call, false));
            events.push((op.ret.unwrap_or(u64::MAX), true));
        }
        events.sort_unstable();
        let (mut open, mut widest) = (0u64, 0u64);
        for (_, is_return) in events {
            if is_return {
                open = open.saturating_sub(1);
            } else {
                open += 1;
                widest = widest.max(open);
            }
        }
        self.ops.len() as u64 * widest
    }
}

/// Checks `history` for linearizability. `path` names the file in errors
/// about ops the model cannot express.
pub fn check(history: &LinHistory, config: &LinConfig, path: &Path) -> Result<LinCheck> {
    match config.model {
        ModelKind::Register => run(Register::new(false), history, config, path),
        ModelKind::CasRegister => run(Register::new(true), history, config, path),
        ModelKind::Kv => run(Kv, history, config, path),
        ModelKind::Counter => run(Counter, history, config, path),
        ModelKind::Set => run(Set::default(), history, config, path),
    }
}

/// Splits the history by key and compiles each op under the semantics.
fn partition<M: Compile>(
    model: &mut M,
    ops: &[LinOp],
    semantics: Semantics,
    path: &Path,
) -> Result<Vec<Part<M::Op>>> {
    let mut parts: BTreeMap<Option<&str>, Part<M::Op>> = BTreeMap::new();
    for (index, op) in ops.iter().enumerate() {
        let part = parts.entry(op.key.as_deref()).or_insert_with(|| Part {
            key: op.key.clone(),
            total_ops: 0,
            ops: Vec::new(),
            origin: Vec::new(),
        });
        part.total_ops += 1;
        if let Compiled::Keep(compiled) = model.compile(op, semantics, path)? {
            part.ops.push(TimedOp {
                op: compiled,
                call: op.call,
                ret: op.ret,
            });
            part.origin.push(index);
        }
    }
    Ok(parts.into_values().collect())
}

/// One attempt at one key, waiting in the scheduler's queue. Attempts are
/// taken in this field order: exclusive ones last, lower rounds first,
/// cheaper keys first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Task {
    /// Runs alone with the whole memory budget (a retry after the key ran
    /// out of its share of memory while other keys ran beside it).
    exclusive: bool,
    /// Step quota round; [`LEFTOVER_ROUND`] for keys whose share of the
    /// deadline ran out.
    round: u32,
    cost: u64,
    part: usize,
}

/// What is known of one key so far.
#[derive(Clone, Debug, Default)]
struct Progress {
    steps: u64,
    attempts: u32,
    memo_states: usize,
    memory_bytes: usize,
    elapsed: Duration,
    /// Verdict and reason once decided (or given up).
    settled: Option<(Verdict, Option<String>)>,
    witness: Option<Witness>,
    /// The furthest partial linearization of a key found not linearizable.
    furthest: Vec<u32>,
}

struct Queue {
    waiting: BinaryHeap<Reverse<Task>>,
    running: usize,
    progress: Vec<Progress>,
    /// The first key found not linearizable.
    first_invalid: Option<usize>,
}

/// The shared state of the workers of one check.
struct Scheduler<'a, M: SeqModel> {
    model: &'a M,
    parts: &'a [Part<M::Op>],
    history: &'a [LinOp],
    config: &'a LinConfig,
    deadline: Option<Instant>,
    memory: &'a MemoryBudget,
    threads: usize,
    cancel: AtomicBool,
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl<M: SeqModel> Scheduler<'_, M> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next attempt to run and how many attempts are still to finish
    /// (this one included); `None` when all work is done or cancelled.
    fn next(&self) -> Option<(Task, usize)> {
        let mut queue = self.lock();
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return None;
            }
            let runnable = match queue.waiting.peek() {
                Some(Reverse(task)) => !task.exclusive || queue.running == 0,
                None if queue.running == 0 => return None,
                None => false,
            };
            if runnable {
                let Reverse(task) = queue.waiting.pop()?;
                queue.running += 1;
                let pending = queue.waiting.len() + queue.running;
                return Some((task, pending));
            }
            queue = self
                .changed
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn work(&self) {
        while let Some((task, pending)) = self.next() {
            self.attempt(task, pending);
        }
    }

    /// This attempt's share of what is left of the deadline: all of it when
    /// no more attempts are waiting than there are threads.
    fn share(&self, pending: usize) -> Option<Instant> {
        let deadline = self.deadline?;
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        let share = left.mul_f64(self.threads as f64 / pending.max(self.threads) as f64);
        Some(now + share)
    }

    fn memory_cap(&self, task: Task) -> usize {
        if task.exclusive {
            self.memory.limit()
        } else {
            self.memory.limit() / self.threads
        }
    }

    fn attempt(&self, task: Task, pending: usize) {
        let part = &self.parts[task.part];
        let started = Instant::now();
        let budget = Budget {
            deadline: self.share(pending),
            max_steps: (task.round < QUOTA_ROUNDS)
                .then(|| FIRST_QUOTA * QUOTA_GROWTH.pow(task.round)),
            memory: self.memory,
            memory_cap: self.memory_cap(task),
            cancel: &self.cancel,
        };
        let searched = search::search(self.model, &part.ops, &budget);
        memory::return_freed_memory();
        let deadline_passed = self.deadline.is_some_and(|d| Instant::now() >= d);
        let mut again = None;
        let settled: Option<(Verdict, Option<Stop>)> = match &searched.outcome {
            Outcome::Linearizable(_) => Some((Verdict::Valid, None)),
            Outcome::NotLinearizable => Some((Verdict::Invalid, None)),
            Outcome::Unknown(Stop::Steps) => {
                again = Some(Task {
                    round: task.round + 1,
                    ..task
                });
                None
            }
            Outcome::Unknown(Stop::Time) if !deadline_passed && task.round < LEFTOVER_ROUND => {
                again = Some(Task {
                    round: LEFTOVER_ROUND,
                    ..task
                });
                None
            }
            Outcome::Unknown(Stop::Memory { .. }) if !task.exclusive && self.threads > 1 => {
                again = Some(Task {
                    exclusive: true,
                    ..task
                });
                None
            }
            Outcome::Unknown(stop) => Some((Verdict::Unknown, Some(stop.clone()))),
        };
        let invalid = matches!(searched.outcome, Outcome::NotLinearizable);
        if invalid && self.config.explain != Explain::All {
            // The file is settled: stop every other key.
            self.cancel.store(true, Ordering::Relaxed);
        }
        let witness = if invalid && self.config.explain == Explain::All {
            let never = AtomicBool::new(false);
            let budget = Budget {
                deadline: self.deadline,
                max_steps: None,
                cancel: &never,
                ..budget
            };
            witness::explain(
                self.model,
                &part.ops,
                &part.origin,
                self.history,
                &searched.furthest,
                &budget,
            )
        } else {
            None
        };
        let mut queue = self.lock();
        let progress = &mut queue.progress[task.part];
        progress.steps += searched.steps;
        progress.attempts += 1;
        progress.memo_states = searched.memo_states;
        progress.memory_bytes = progress.memory_bytes.max(searched.memory_bytes);
        progress.elapsed += started.elapsed();
        if let Some((verdict, stop)) = settled {
            let reason = stop.map(|stop| match stop {
                Stop::Cancelled => STOPPED_EARLY.to_string(),
                Stop::Time => format!("time budget ran out after {} steps", progress.steps),
                stop => format!("{stop}, after {} states", searched.memo_states),
            });
            progress.settled = Some((verdict, reason));
            progress.witness = witness;
            if invalid {
                progress.furthest = searched.furthest;
                queue.first_invalid.get_or_insert(task.part);
            }
        }
        if let Some(task) = again {
            queue.waiting.push(Reverse(task));
        }
        queue.running -= 1;
        self.changed.notify_all();
    }
}

fn run<M: Compile>(
    mut model: M,
    history: &LinHistory,
    config: &LinConfig,
    path: &Path,
) -> Result<LinCheck> {
    let started = Instant::now();
    if history.ops.is_empty() {
        // A well-formed history with no client operation (only nemesis
        // events, say) has nothing to judge: unknown, never valid.
        return Ok(LinCheck {
            model: config.model,
            semantics: config.semantics,
            verdict: Verdict::Unknown,
            ops: 0,
            keys: vec![KeyVerdict {
                key: None,
                verdict: Verdict::Unknown,
                ops: 0,
                checked_ops: 0,
                steps: 0,
                attempts: 0,
                memo_states: 0,
                memory_bytes: 0,
                elapsed_ms: 0.0,
                reason: Some(NOTHING_TO_JUDGE.into()),
                witness: None,
            }],
            elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        });
    }
    let parts = partition(&mut model, &history.ops, config.semantics, path)?;
    let model = &model;
    let memory_bytes = config.memory_mib.saturating_mul(memory::MIB);
    let memory = if config.memory_covers_process {
        MemoryBudget::for_process(memory_bytes)
    } else {
        MemoryBudget::for_check(memory_bytes)
    };
    let searching = parts.iter().filter(|p| !p.ops.is_empty()).count();
    let threads = config.threads.clamp(1, searching.max(1));
    let waiting = parts
        .iter()
        .enumerate()
        .map(|(part, p)| {
            Reverse(Task {
                exclusive: false,
                round: 0,
                cost: p.cost(),
                part,
            })
        })
        .collect();
    let scheduler = Scheduler {
        model,
        parts: &parts,
        history: &history.ops,
        config,
        deadline: config.timeout.map(|t| started + t),
        memory: &memory,
        threads,
        cancel: AtomicBool::new(false),
        queue: Mutex::new(Queue {
            waiting,
            running: 0,
            progress: vec![Progress::default(); parts.len()],
            first_invalid: None,
        }),
        changed: Condvar::new(),
    };
    if threads == 1 {
        scheduler.work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| scheduler.work());
            }
        });
    }
    let queue = scheduler
        .queue
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut keys: Vec<KeyVerdict> = parts
        .iter()
        .zip(&queue.progress)
        .map(|(part, progress)| {
            let (verdict, reason) = progress
                .settled
                .clone()
                .unwrap_or((Verdict::Unknown, Some(STOPPED_EARLY.into())));
            KeyVerdict {
                key: part.key.clone(),
                verdict,
                ops: part.total_ops,
                checked_ops: part.ops.len(),
                steps: progress.steps,
                attempts: progress.attempts,
                memo_states: progress.memo_states,
                memory_bytes: progress.memory_bytes,
                elapsed_ms: progress.elapsed.as_secs_f64() * 1e3,
                reason,
                witness: progress.witness.clone(),
            }
        })
        .collect();
    if config.explain == Explain::First {
        if let Some(i) = queue.first_invalid {
            let part = &parts[i];
            let never = AtomicBool::new(false);
            let budget = Budget {
                deadline: scheduler.deadline,
                max_steps: None,
                memory: &memory,
                memory_cap: memory.limit(),
                cancel: &never,
            };
            keys[i].witness = witness::explain(
                model,
                &part.ops,
                &part.origin,
                &history.ops,
                &queue.progress[i].furthest,
                &budget,
            );
        }
    }
    let verdict = keys.iter().fold(Verdict::Valid, |v, k| v.and(k.verdict));
    Ok(LinCheck {
        model: config.model,
        semantics: config.semantics,
        verdict,
        ops: history.ops.len(),
        keys,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// Why a history without client operations is unknown.
pub const NOTHING_TO_JUDGE: &str =
    "not judged: nothing to judge, the history has no client operation";

/// Witness ops shown per list in human output (JSON and HTML have more).
const HUMAN_WITNESS_OPS: usize = 12;

/// Keys listed one per line in human output before the rest are summed up.
const HUMAN_KEYS: usize = 20;

/// The result for people: a verdict line for the file, per-key verdicts
/// (every key when there are few, else those not valid), and the witness.
pub fn human(file: &str, check: &LinCheck) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{file}: {} ({} model, {} semantics, {} ops, {} keys, {:.1} ms)",
        check.verdict,
        check.model.as_str(),
        check.semantics.as_str(),
        check.ops,
        check.keys.len(),
        check.elapsed_ms
    );
    let listed: Vec<&KeyVerdict> = if check.keys.len() <= HUMAN_KEYS {
        check.keys.iter().collect()
    } else {
        check
            .keys
            .iter()
            .filter(|k| k.verdict != Verdict::Valid)
            .collect()
    };
    for key in &listed {
        let _ = write!(
            out,
            "  key {}: {} ({} ops, {} checked, {} steps",
            key.key.as_deref().unwrap_or("-"),
            key.verdict,
            key.ops,
            key.checked_ops,
            key.steps
        );
        if let Some(reason) = &key.reason {
            let _ = write!(out, "; {reason}");
        }
        out.push_str(")\n");
    }
    let unlisted = check.keys.len() - listed.len();
    if unlisted > 0 {
        let _ = writeln!(out, "  {unlisted} more keys, all valid");
    }
    for key in &check.keys {
        let Some(witness) = &key.witness else {
            continue;
        };
        let name = key.key.as_deref().unwrap_or("-");
        let _ = writeln!(out, "  witness for key {name}: {}", witness.explanation);
        if !witness.linearization.is_empty() {
            let shown = witness.linearization.len().min(HUMAN_WITNESS_OPS);
            let _ = writeln!(
                out,
                "    linearizable prefix, last {shown} of {} ops in order:",
                witness.linearization_len
            );
            for op in &witness.linearization[witness.linearization.len() - shown..] {
                let _ = writeln!(out, "      {}", op_line(op));
            }
        }
        if let Some(op) = &witness.blocked_op {
            let _ = writeln!(out, "    cannot be placed: {}", op_line(op));
        }
        if !witness.concurrent.is_empty() {
            let _ = writeln!(out, "    concurrent with it:");
            for op in witness.concurrent.iter().take(HUMAN_WITNESS_OPS) {
                let _ = writeln!(out, "      {}", op_line(op));
            }
        }
        let _ = writeln!(
            out,
            "    furthest partial linearization: {} ops, state {}",
            witness.furthest_len, witness.furthest_state
        );
    }
    out
}

fn op_line(op: &OpView) -> String {
    let ret = op
        .ret
        .map_or_else(|| "never".to_string(), |r| r.to_string());
    format!(
        "{}, process {} {} [call {}, return {}]",
        op.location(),
        op.process,
        op.describe(),
        op.call,
        ret
    )
}

/// Wall-clock budget for the linearizability check inside a run.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The sequential model for a CRDT workload whose target claims
/// linearizability; `None` for workloads with removes or whole-map reads.
pub fn model_for(workload: Workload) -> Option<ModelKind> {
    match workload {
        Workload::GCounter | Workload::PnCounter => Some(ModelKind::Counter),
        Workload::GSet => Some(ModelKind::Set),
        Workload::LwwRegister | Workload::MvRegister => Some(ModelKind::Register),
        Workload::TwoPSet | Workload::OrSet | Workload::LwwMap => None,
    }
}

/// The linearizability check of a converge run, as one [`Check`] among the
/// CRDT checks: a finding per key that is not linearizable or undecided.
pub fn check_run(history: &History) -> Check {
    let mut result = Check::new("linearizability", Verdict::Valid, "");
    let Some(model) = history.workload().and_then(model_for) else {
        result.verdict = Verdict::Unknown;
        result.summary = "the workload has no sequential model to check against".into();
        return result;
    };
    let lin = match crate::history::lin::from_history(history) {
        Ok(lin) => lin,
        Err(message) => {
            result.verdict = Verdict::Unknown;
            result.summary = message;
            return result;
        }
    };
    let mut config = LinConfig::new(model);
    config.timeout = Some(RUN_TIMEOUT);
    // A run's report counts and lists every key, so no key may be left
    // undecided because another one failed first.
    config.explain = Explain::All;
    let checked = match check(&lin, &config, Path::new("history.jsonl")) {
        Ok(checked) => checked,
        Err(e) => {
            result.verdict = Verdict::Unknown;
            result.summary = e.to_string();
            return result;
        }
    };
    result.verdict = checked.verdict;
    let count = |v: Verdict| checked.keys.iter().filter(|k| k.verdict == v).count() as u64;
    result
        .counts
        .insert("keys".into(), checked.keys.len() as u64);
    result
        .counts
        .insert("keys_invalid".into(), count(Verdict::Invalid));
    result
        .counts
        .insert("keys_unknown".into(), count(Verdict::Unknown));
    result.summary = format!(
        "{} of {} keys linearizable against the {} model ({} semantics)",
        count(Verdict::Valid),
        checked.keys.len(),
        model.as_str(),
        checked.semantics.as_str()
    );
    for key in checked.keys.iter().filter(|k| k.verdict != Verdict::Valid) {
        let (message, ops, actual) = match &key.witness {
            Some(w) => (
                w.explanation.clone(),
                w.blocked_op.iter().map(|o| o.index).collect(),
                w.blocked_op.as_ref().map(|o| o.output.to_string()),
            ),
            None => (
                key.reason
                    .clone()
                    .unwrap_or_else(|| "not linearizable".to_string()),
                Vec::new(),
                None,
            ),
        };
        result.find(Finding {
            message,
            key: key.key.as_deref().and_then(|k| k.parse().ok()),
            ops,
            expected: key.witness.as_ref().map(|w| w.state_after.clone()),
            actual,
            ..Finding::default()
        });
    }
    result
}
