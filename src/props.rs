//! Properties checked by the fuzz targets in `fuzz/` and replayed by
//! `tests/fuzz_corpus.rs` on the committed corpus and crash files.
//!
//! Each property takes arbitrary bytes and panics (with `assert!`) only when
//! the property is violated. Bytes are decoded leniently: a missing byte
//! reads as zero, so every input is a valid test case and the fuzzer never
//! wastes time on inputs the decoder rejects. Keeping the properties in the
//! library, rather than in the fuzz crate, lets `cargo test` on stable replay
//! the exact same checks that libFuzzer ran.

use crate::checker;
use crate::checker::linearizable::brute;
use crate::checker::linearizable::model::{
    Counter, CounterOp, Effect, ModelKind, Register, RegisterOp, Semantics, SeqModel,
};
use crate::checker::linearizable::search::TimedOp;
use crate::checker::linearizable::{self as lin, Explain, LinConfig};
use crate::error::Error;
use crate::history::lin::LinHistory;
use crate::history::{detect, jepsen, jsonl};
use converge_models::laws::{self, Step};
use converge_models::{Crdt, Intent, ModelVisitor, Workload, CATALOG};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A lenient cursor over the fuzzer's bytes: past the end it yields zeros,
/// so decoding never fails and short inputs still mean something.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bytes { data, at: 0 }
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// A value in `0..n` (`n > 0`).
    fn below(&mut self, n: u8) -> u8 {
        self.u8() % n
    }

    fn exhausted(&self) -> bool {
        self.at >= self.data.len()
    }
}

// ---------------------------------------------------------------------------
// merge_laws

/// Most steps decoded for one model: the law checks are cubic in the number
/// of states compared, so histories stay short to keep executions fast.
const MAX_STEPS: usize = 24;

/// An intent the workload's reference model supports, with the same small
/// ranges as the law tests so that conflicts (same element, same field) are
/// frequent.
fn intent(workload: Workload, b: &mut Bytes<'_>) -> Intent {
    let tag = b.u8();
    let v = b.u8();
    match workload {
        Workload::GCounter => Intent::Increment(i64::from(v % 10)),
        Workload::PnCounter => Intent::Increment(i64::from(v % 20) - 10),
        Workload::GSet => Intent::Add(u64::from(v % 8)),
        Workload::TwoPSet if tag.is_multiple_of(2) => Intent::Add(u64::from(v % 5)),
        Workload::TwoPSet => Intent::Remove(u64::from(v % 5)),
        Workload::OrSet if tag.is_multiple_of(2) => Intent::Add(u64::from(v % 4)),
        Workload::OrSet => Intent::Remove(u64::from(v % 4)),
        Workload::LwwRegister | Workload::MvRegister => Intent::Write(u64::from(v % 4)),
        Workload::LwwMap if tag.is_multiple_of(2) => Intent::Put {
            field: u32::from(v % 3),
            value: u64::from(tag / 2 % 4),
        },
        Workload::LwwMap => Intent::Delete {
            field: u32::from(v % 3),
        },
    }
}

/// The replicated histories' shape: how many replicas, which steps, and how
/// to reorder and duplicate the ops for a fresh downstream replica.
struct Scenario {
    replicas: u16,
    steps: Vec<Step>,
    /// Sort keys for the shuffled delivery.
    keys: Vec<u8>,
    /// `(op, position)` of one duplicated delivery.
    dup: (u8, u8),
}

fn scenario(workload: Workload, data: &[u8]) -> Scenario {
    let mut b = Bytes::new(data);
    let replicas = 2 + u16::from(b.below(2));
    let len = usize::from(b.u8()) % (MAX_STEPS + 1);
    let mut steps = Vec::with_capacity(len);
    for _ in 0..len {
        let kind = b.below(10);
        let (x, y) = (u16::from(b.u8()) % replicas, u16::from(b.u8()) % replicas);
        steps.push(match kind {
            0..=5 => Step::Update {
                replica: x,
                intent: intent(workload, &mut b),
            },
            6 | 7 => Step::Deliver {
                to: x,
                op: usize::from(b.u8()),
            },
            _ => Step::Sync { to: x, from: y },
        });
    }
    let dup = (b.u8(), b.u8());
    let mut keys = Vec::new();
    while !b.exhausted() && keys.len() < MAX_STEPS {
        keys.push(b.u8());
    }
    Scenario {
        replicas,
        steps,
        keys,
        dup,
    }
}

/// Checks the laws for one model type on one decoded scenario.
struct Laws<'a> {
    workload: Workload,
    data: &'a [u8],
}

impl ModelVisitor for Laws<'_> {
    type Output = ();

    fn visit<M: Crdt>(self) {
        let s = scenario(self.workload, self.data);
        let run = laws::run::<M>(s.replicas, &s.steps).unwrap_or_else(|e| panic!("{e}"));
        let n = run.ops.len();
        let mut order: Vec<usize> = (0..n).collect();
        if !s.keys.is_empty() {
            order.sort_by_key(|&i| (s.keys[i % s.keys.len()], i));
        }
        if n > 0 {
            let at = usize::from(s.dup.1) % (n + 1);
            order.insert(at, usize::from(s.dup.0) % n);
        }
        if let Err(broken) = laws::all_laws(&run, &order) {
            panic!("{}: {broken}", std::any::type_name::<M>());
        }
    }
}

/// Merge is commutative, associative and idempotent, and op delivery is
/// insensitive to order and duplicates, for every reference model.
///
/// The bytes decode into a short history of intents on 2 or 3 replicas
/// (updates, op deliveries, state merges) plus a delivery order with one
/// duplicate; the same bytes are interpreted by each model. Faulty models
/// are skipped: they break these laws on purpose.
pub fn merge_laws(data: &[u8]) {
    for info in CATALOG.iter().filter(|m| !m.faulty) {
        let laws = Laws {
            workload: info.workload,
            data,
        };
        converge_models::visit_model(info.name, laws).expect("every catalog entry can be visited");
    }
}

// ---------------------------------------------------------------------------
// readers_never_panic and checkers_never_panic

/// A temp file holding `data`, removed on drop. The name is unique per
/// process and call so parallel tests and fuzz jobs do not collide.
struct TempFile(PathBuf);

impl TempFile {
    fn with(data: &[u8]) -> Option<TempFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("converge-props-{}-{n}.jsonl", std::process::id()));
        // A full or read-only temp dir is not what the property is about.
        std::fs::write(&path, data).ok()?;
        Some(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An error must tell the user something, and a line number is 1-based.
fn assert_reported(e: &Error) {
    assert!(!e.to_string().is_empty(), "empty error message: {e:?}");
    if let Error::HistoryLine { line, .. } = e {
        assert!(*line >= 1, "line numbers are 1-based: {e:?}");
    }
}

fn check_reported<T>(result: &crate::Result<T>) {
    if let Err(e) = result {
        assert_reported(e);
    }
}

/// Every history reader returns `Ok` or a displayable `Err` on any bytes:
/// the Jepsen log and EDN parsers (in memory), the converge JSONL reader
/// (through a temp file) and the format sniffer. A panic is the violation;
/// an empty error message or a line number of 0 is one too.
pub fn readers_never_panic(data: &[u8]) {
    let _ = detect::detect_format(Path::new("fuzz.input"), data);
    check_reported(&jepsen::parse_jepsen_log(Path::new("fuzz.log"), data));
    check_reported(&jepsen::parse_edn(Path::new("fuzz.edn"), data));
    if let Some(file) = TempFile::with(data) {
        check_reported(&jsonl::read_history(&file.0));
    }
}

/// Per-check budget for fuzzed histories: small, so a hard history turns
/// into an `unknown` verdict quickly instead of slowing the fuzzer down.
const LIN_TIMEOUT: Duration = Duration::from_millis(200);
const LIN_MEMORY_MIB: usize = 16;

/// Runs the linearizability checker on `history` with every model under
/// both semantics. Errors (ops a model cannot express) are fine.
fn check_linearizable(history: &LinHistory, path: &Path) {
    use clap::ValueEnum;
    for &model in ModelKind::value_variants() {
        for &semantics in Semantics::value_variants() {
            let config = LinConfig {
                model,
                semantics,
                timeout: Some(LIN_TIMEOUT),
                memory_mib: LIN_MEMORY_MIB,
                memory_covers_process: false,
                threads: 1,
                // Witnesses for every failing key: the most code exercised.
                explain: Explain::All,
            };
            let _ = lin::check(history, &config, path);
        }
    }
}

/// The checkers never panic on anything a reader accepts: a converge JSONL
/// history goes through [`checker::check_all`] (and, converted to a client
/// history, through the linearizability checker); a Jepsen log or EDN
/// history goes through the linearizability checker with every model under
/// both semantics, with a small time and memory budget.
pub fn checkers_never_panic(data: &[u8]) {
    if let Some(file) = TempFile::with(data) {
        if let Ok(read) = jsonl::read_history(&file.0) {
            let _ = checker::check_all(&read.history);
            if let Ok(history) = crate::history::lin::from_history(&read.history) {
                check_linearizable(&history, &file.0);
            }
        }
    }
    let log = Path::new("fuzz.log");
    if let Ok(history) = jepsen::parse_jepsen_log(log, data) {
        check_linearizable(&history, log);
    }
    let edn = Path::new("fuzz.edn");
    if let Ok(history) = jepsen::parse_edn(edn, data) {
        check_linearizable(&history, edn);
    }
}

// ---------------------------------------------------------------------------
// linearizability_matches_brute_force

/// Most ops in a differential history: brute force is factorial in it.
const MAX_LIN_OPS: usize = 7;

/// One op of a tiny history before it is run against the model.
struct Planned {
    call: u64,
    ret: u64,
    /// Where in `[call, ret]` the op takes effect, scaled by 16.
    point: u64,
    kind: u8,
    value: u8,
    corrupt: bool,
    crashed: bool,
}

/// Decodes a tiny history the way `tests/linearizability.rs` generates them:
/// ops laid out per process slot (one op in flight per process), outputs
/// computed by running the model at chosen linearization points, then some
/// outputs corrupted and some ops crashed, so both linearizable and
/// non-linearizable histories are common.
fn plan(b: &mut Bytes<'_>) -> Vec<Planned> {
    let n = 1 + usize::from(b.u8()) % MAX_LIN_OPS;
    let mut next_free = [0u64; 4];
    let mut planned = Vec::with_capacity(n);
    for _ in 0..n {
        let slot = usize::from(b.below(4));
        let start = u64::from(b.below(12));
        let len = 1 + u64::from(b.below(6));
        let lin = u64::from(b.u8()) % (len + 1);
        let kind = b.u8();
        let value = b.u8();
        let flags = b.u8();
        let call = next_free[slot].max(start);
        let ret = call + len;
        next_free[slot] = ret + 1;
        planned.push(Planned {
            call,
            ret,
            point: call * 16 + lin * 16 / (len + 1),
            kind,
            value,
            corrupt: flags & 0b11 == 0b11,
            crashed: flags & 0b1100 == 0b1100,
        });
    }
    planned
}

/// Builds timed ops: `make(op, state)` gives the op and the state after it.
fn realize<M: SeqModel>(
    model: &M,
    planned: &[Planned],
    make: impl Fn(&Planned, &M::State) -> (M::Op, M::State),
) -> Vec<TimedOp<M::Op>> {
    let mut by_point: Vec<usize> = (0..planned.len()).collect();
    by_point.sort_by_key(|&i| (planned[i].point, i));
    let mut state = model.init();
    let mut built: Vec<Option<M::Op>> = vec![None; planned.len()];
    for &i in &by_point {
        let (op, next) = make(&planned[i], &state);
        built[i] = Some(op);
        state = next;
    }
    planned
        .iter()
        .zip(built)
        .filter_map(|(p, op)| {
            let op = op?;
            Some(if p.crashed {
                // A crashed read constrains nothing and is left out.
                TimedOp {
                    op: model.pending(&op)?,
                    call: p.call,
                    ret: None,
                }
            } else {
                TimedOp {
                    op,
                    call: p.call,
                    ret: Some(p.ret),
                }
            })
        })
        .collect()
}

/// The search and the brute-force oracle agree, and a linearization the
/// search returns is legal and respects real time.
fn agree<M: SeqModel>(model: &M, ops: &[TimedOp<M::Op>]) {
    if let Err(why) = brute::compare_with_search(model, ops) {
        panic!("{why} on {ops:?}");
    }
}

/// The Wing–Gong/Lowe search agrees with the brute-force oracle on tiny
/// histories (at most 7 ops) of a compare-and-set register or a counter,
/// decoded from the bytes with real-time intervals, corrupted outputs and
/// ops that never returned.
pub fn linearizability_matches_brute_force(data: &[u8]) {
    let mut b = Bytes::new(data);
    let counter = b.u8() % 2 == 1;
    let planned = plan(&mut b);
    if counter {
        let ops = realize(&Counter, &planned, |p, state| {
            if p.kind % 3 < 2 {
                let delta = i64::from(p.value % 3) + 1;
                (CounterOp::Add(delta), state + delta)
            } else {
                (CounterOp::Read(state + i64::from(p.corrupt)), *state)
            }
        });
        agree(&Counter, &ops);
    } else {
        let model = Register::new(true);
        let ops = realize(&model, &planned, |p, state| {
            let v = u32::from(p.value % 3) + 1;
            match p.kind % 3 {
                0 => (RegisterOp::Write(v), v),
                1 => {
                    let seen = if p.corrupt { (*state + 1) % 4 } else { *state };
                    (RegisterOp::Read(seen), *state)
                }
                _ => {
                    let from = u32::from(p.value / 3 % 3);
                    let applies = from == *state;
                    let effect = if applies != p.corrupt {
                        Effect::Ok
                    } else {
                        Effect::Failed
                    };
                    (
                        RegisterOp::Cas {
                            from,
                            to: v,
                            effect,
                        },
                        if applies { v } else { *state },
                    )
                }
            }
        });
        agree(&model, &ops);
    }
}
