//! The linearizability checker: is there one total order of the operations,
//! consistent with real time, that a sequential model accepts?
//!
//! The history is split by key (P-compositionality: a history is
//! linearizable iff each key's sub-history is) and the keys are searched in
//! parallel, each with [`search::search`] under a shared time budget and a
//! per-thread memory budget. A key whose search runs out of budget is
//! `unknown`, never a hang. For a key that is not linearizable,
//! [`witness`] finds the longest linearizable prefix and the op that cannot
//! be placed after it.

pub mod brute;
pub mod html;
pub mod model;
pub mod search;
pub mod witness;

use super::{Check, Finding};
use crate::error::Result;
use crate::history::lin::{LinHistory, LinOp};
use crate::history::History;
use crate::verdict::Verdict;
use converge_models::Workload;
use model::{Compile, Compiled, Counter, Kv, ModelKind, Register, Semantics, SeqModel, Set};
use search::{Budget, Outcome, TimedOp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
pub use witness::{OpView, Witness};

/// Default memory budget for the search memos, all threads together.
pub const DEFAULT_MEMORY_MIB: usize = 768;

/// Histories with fewer ops than this are checked on the calling thread.
const PARALLEL_FROM_OPS: usize = 2048;

/// Which non-linearizable keys get a witness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Explain {
    /// The first key (in key order) that is not linearizable.
    #[default]
    First,
    /// Every key that is not linearizable.
    All,
    /// None: verdicts only.
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
    /// Memory budget for the memos, all threads together.
    pub memory_mib: usize,
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
    /// Configurations the search expanded.
    pub steps: u64,
    /// Configurations remembered.
    pub memo_states: usize,
    /// Search time in milliseconds.
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

/// A key's verdict and, when it failed, its furthest partial linearization.
type Checked = (KeyVerdict, Vec<u32>);

/// One key's compiled ops, with the index of each in the history.
struct Part<O> {
    key: Option<String>,
    total_ops: usize,
    ops: Vec<TimedOp<O>>,
    origin: Vec<usize>,
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

fn run<M: Compile>(
    mut model: M,
    history: &LinHistory,
    config: &LinConfig,
    path: &Path,
) -> Result<LinCheck> {
    let started = Instant::now();
    let parts = partition(&mut model, &history.ops, config.semantics, path)?;
    let model = &model;
    let total: usize = parts.iter().map(|p| p.ops.len()).sum();
    // Spawning threads costs more than checking a small history.
    let threads = if total < PARALLEL_FROM_OPS {
        1
    } else {
        config.threads.clamp(1, parts.len().max(1))
    };
    let cancel = AtomicBool::new(false);
    let budget = Budget {
        deadline: config.timeout.map(|t| started + t),
        memo_bytes: (config.memory_mib << 20) / threads,
        cancel: &cancel,
    };
    // Biggest keys first, so one large key does not start last.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts[i].ops.len()));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Checked>>> = Mutex::new(vec![None; parts.len()]);
    let worker = || {
        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            let explain = config.explain == Explain::All;
            let verdict = check_part(model, &parts[i], &history.ops, &budget, explain);
            if let Ok(mut slots) = results.lock() {
                slots[i] = Some(verdict);
            }
        }
    };
    if threads == 1 {
        worker();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(worker);
            }
        });
    }
    let (mut keys, furthest): (Vec<KeyVerdict>, Vec<Vec<u32>>) = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .flatten()
        .unzip();
    if config.explain == Explain::First {
        if let Some(i) = keys.iter().position(|k| k.verdict == Verdict::Invalid) {
            let part = &parts[i];
            keys[i].witness = witness::explain(
                model,
                &part.ops,
                &part.origin,
                &history.ops,
                &furthest[i],
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

fn check_part<M: SeqModel>(
    model: &M,
    part: &Part<M::Op>,
    history: &[LinOp],
    budget: &Budget<'_>,
    explain: bool,
) -> Checked {
    let started = Instant::now();
    let searched = search::search(model, &part.ops, budget);
    let (verdict, reason) = match &searched.outcome {
        Outcome::Linearizable(_) => (Verdict::Valid, None),
        Outcome::NotLinearizable => (Verdict::Invalid, None),
        Outcome::Unknown(why) => (Verdict::Unknown, Some(why.clone())),
    };
    let witness = if explain && verdict == Verdict::Invalid {
        witness::explain(
            model,
            &part.ops,
            &part.origin,
            history,
            &searched.furthest,
            budget,
        )
    } else {
        None
    };
    // Only a failing key's furthest linearization is kept for its witness.
    let furthest = if verdict == Verdict::Invalid {
        searched.furthest
    } else {
        Vec::new()
    };
    let key = KeyVerdict {
        key: part.key.clone(),
        verdict,
        ops: part.total_ops,
        checked_ops: part.ops.len(),
        steps: searched.steps,
        memo_states: searched.memo_states,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        reason,
        witness,
    };
    (key, furthest)
}

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
