//! Sequential specifications the search checks a history against, and the
//! crash semantics that decide what `nil` reads, `fail` and `info` ops mean.
//!
//! Each model compiles a [`LinOp`] into a compact op (values interned to
//! integers where possible) so the search step is a few comparisons.

use crate::error::{Error, Result};
use crate::history::lin::{LinFn, LinOp, LinValue};
use crate::history::Outcome;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::fmt::Debug;
use std::hash::Hash;
use std::path::Path;

/// How nil reads, `fail` ops and `info` ops are interpreted. The two
/// conventions disagree on purpose; see `../shared/corpus/README.md`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Semantics {
    /// porcupine's: a nil read means "absent"; a `fail` cas is a legal
    /// failure (its expected value differed at its linearization point); a
    /// `fail` read returned an unknown value; a `fail` write did not happen.
    #[default]
    Porcupine,
    /// knossos's: a nil read is an unknown read; every `fail` op did not happen.
    Knossos,
}

impl Semantics {
    /// Name as accepted by `--semantics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Semantics::Porcupine => "porcupine",
            Semantics::Knossos => "knossos",
        }
    }
}

/// The sequential models `--model` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A register with read and write.
    Register,
    /// A register with read, write and compare-and-set.
    CasRegister,
    /// A string key-value store with get, put and append (missing key reads "").
    Kv,
    /// A counter with add(delta) and read.
    Counter,
    /// A set with add(element) and read (the whole set).
    Set,
}

impl ModelKind {
    /// Name as accepted by `--model`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::Counter => "counter",
            ModelKind::Set => "set",
        }
    }
}

/// A sequential specification: an initial state and a step function that
/// says whether an op with its recorded output is legal in a state.
pub trait SeqModel: Sync {
    /// Model state; hashed and compared by the search's memo.
    type State: Clone + Eq + Hash + Send + Debug;
    /// A compiled op: input plus expected output.
    type Op: Clone + Send + Sync + Debug;

    /// State before any op.
    fn init(&self) -> Self::State;
    /// The state after `op`, or `None` if `op` cannot return what it
    /// returned in `state`.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
    /// The op as if it had never returned: `None` when it then constrains
    /// nothing and changes nothing (a read), else the op with its output
    /// unknown.
    fn pending(&self, op: &Self::Op) -> Option<Self::Op>;
    /// Whether `op` never changes the state: wherever it is legal, its step
    /// returns the state it was given (a read, a cas known to have failed).
    /// The search linearizes such an op as soon as it is legal, so a wrong
    /// `true` would be a wrong verdict; `false` only costs steps.
    fn observes(&self, _op: &Self::Op) -> bool {
        false
    }
    /// Approximate heap bytes a state holds, for the memory budget.
    fn state_bytes(&self, state: &Self::State) -> usize;
    /// A state for people.
    fn describe(&self, state: &Self::State) -> String;
}

/// What compiling one [`LinOp`] gives.
#[derive(Clone, Debug)]
pub enum Compiled<O> {
    /// Check this op.
    Keep(O),
    /// The op constrains nothing and changes nothing under the semantics
    /// (an unknown read, a `fail` op that did not happen).
    Drop,
}

/// Turns parsed ops into a model's compact ops under a crash semantics.
pub trait Compile: SeqModel {
    /// Compiles one op; an op the model cannot express is an error naming
    /// its line.
    fn compile(
        &mut self,
        op: &LinOp,
        semantics: Semantics,
        path: &Path,
    ) -> Result<Compiled<Self::Op>>;
}

fn unsupported(path: &Path, op: &LinOp, model: &str) -> Error {
    Error::HistoryLine {
        path: path.to_path_buf(),
        line: op.line,
        message: format!(
            "model {model} has no `{}` operation (input {})",
            op.f.as_str(),
            op.input
        ),
    }
}

fn bad_value(path: &Path, op: &LinOp, what: &str, got: &LinValue) -> Error {
    Error::HistoryLine {
        path: path.to_path_buf(),
        line: op.line,
        message: format!("{} expects {what}, got {got}", op.f.as_str()),
    }
}

/// What a read is allowed to return after the semantics are applied.
enum ReadOutput<'a> {
    /// The read returned this value.
    Value(&'a LinValue),
    /// The read returned "absent" (porcupine's nil).
    Absent,
    /// The read constrains nothing: drop it.
    Unknown,
}

fn read_output(op: &LinOp, semantics: Semantics) -> ReadOutput<'_> {
    if op.outcome != Outcome::Ok {
        // A failed or crashed read returned nothing usable under both
        // conventions, and reads do not change state.
        return ReadOutput::Unknown;
    }
    match (&op.output, semantics) {
        (LinValue::Nil, Semantics::Porcupine) => ReadOutput::Absent,
        (LinValue::Nil, Semantics::Knossos) => ReadOutput::Unknown,
        (v, _) => ReadOutput::Value(v),
    }
}

/// Whether an update took effect, as far as the history says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// It returned ok.
    Ok,
    /// It returned a legal failure (porcupine's `fail` cas).
    Failed,
    /// Unknown: it may take effect after its call, or never.
    Unknown,
}

/// `None` when the update certainly did not happen and is dropped.
fn update_effect(op: &LinOp, semantics: Semantics, fail_is_legal: bool) -> Option<Effect> {
    match (op.outcome, semantics) {
        (Outcome::Ok, _) => Some(Effect::Ok),
        (Outcome::Info, _) => Some(Effect::Unknown),
        (Outcome::Fail, Semantics::Porcupine) if fail_is_legal => Some(Effect::Failed),
        (Outcome::Fail, _) => None,
    }
}

/// Interns values so register states and ops are small integers. Id 0 is
/// "absent".
#[derive(Debug, Default)]
pub struct Interner {
    ids: FxHashMap<LinValue, u32>,
    values: Vec<LinValue>,
}

/// The interned id of "absent".
pub const ABSENT: u32 = 0;

impl Interner {
    fn id(&mut self, value: &LinValue) -> u32 {
        if *value == LinValue::Nil {
            return ABSENT;
        }
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        self.values.push(value.clone());
        let id = self.values.len() as u32;
        self.ids.insert(value.clone(), id);
        id
    }

    fn describe(&self, id: u32) -> String {
        match id {
            ABSENT => "absent".to_string(),
            _ => self.values[id as usize - 1].to_string(),
        }
    }
}

/// A read/write register, optionally with compare-and-set.
#[derive(Debug, Default)]
pub struct Register {
    /// Whether `cas` is part of the model.
    pub with_cas: bool,
    values: Interner,
}

impl Register {
    /// A register model; `with_cas` adds compare-and-set.
    pub fn new(with_cas: bool) -> Self {
        Register {
            with_cas,
            values: Interner::default(),
        }
    }
}

/// A compiled register op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// Read that returned this value id ([`ABSENT`] for absent).
    Read(u32),
    /// Write of this value id.
    Write(u32),
    /// Compare-and-set.
    Cas {
        /// Expected value id.
        from: u32,
        /// New value id.
        to: u32,
        /// What the history says about its outcome.
        effect: Effect,
    },
}

impl SeqModel for Register {
    type State = u32;
    type Op = RegisterOp;

    fn init(&self) -> u32 {
        ABSENT
    }

    fn step(&self, state: &u32, op: &RegisterOp) -> Option<u32> {
        match *op {
            RegisterOp::Read(v) => (v == *state).then_some(*state),
            RegisterOp::Write(v) => Some(v),
            RegisterOp::Cas { from, to, effect } => {
                let matches = from == *state;
                match effect {
                    Effect::Ok => matches.then_some(to),
                    Effect::Failed => (!matches).then_some(*state),
                    // A crashed cas whose precondition fails is a no-op.
                    Effect::Unknown => Some(if matches { to } else { *state }),
                }
            }
        }
    }

    fn pending(&self, op: &RegisterOp) -> Option<RegisterOp> {
        match *op {
            RegisterOp::Read(_) => None,
            RegisterOp::Write(_) => Some(*op),
            RegisterOp::Cas { from, to, .. } => Some(RegisterOp::Cas {
                from,
                to,
                effect: Effect::Unknown,
            }),
        }
    }

    fn observes(&self, op: &RegisterOp) -> bool {
        matches!(
            op,
            RegisterOp::Read(_)
                | RegisterOp::Cas {
                    effect: Effect::Failed,
                    ..
                }
        )
    }

    fn state_bytes(&self, _: &u32) -> usize {
        0
    }

    fn describe(&self, state: &u32) -> String {
        self.values.describe(*state)
    }
}

impl Compile for Register {
    fn compile(
        &mut self,
        op: &LinOp,
        semantics: Semantics,
        path: &Path,
    ) -> Result<Compiled<RegisterOp>> {
        let name = if self.with_cas {
            "cas-register"
        } else {
            "register"
        };
        Ok(match op.f {
            LinFn::Read => match read_output(op, semantics) {
                ReadOutput::Unknown => Compiled::Drop,
                ReadOutput::Absent => Compiled::Keep(RegisterOp::Read(ABSENT)),
                ReadOutput::Value(v) => Compiled::Keep(RegisterOp::Read(self.values.id(v))),
            },
            LinFn::Write => match update_effect(op, semantics, false) {
                None => Compiled::Drop,
                Some(_) => Compiled::Keep(RegisterOp::Write(self.values.id(&op.input))),
            },
            LinFn::Cas if self.with_cas => {
                let LinValue::List(pair) = &op.input else {
                    return Err(bad_value(path, op, "[from to]", &op.input));
                };
                let [from, to] = pair.as_slice() else {
                    return Err(bad_value(path, op, "[from to]", &op.input));
                };
                match update_effect(op, semantics, true) {
                    None => Compiled::Drop,
                    Some(effect) => Compiled::Keep(RegisterOp::Cas {
                        from: self.values.id(from),
                        to: self.values.id(to),
                        effect,
                    }),
                }
            }
            _ => return Err(unsupported(path, op, name)),
        })
    }
}

/// A string key-value store (one key per partition): get, put, append.
#[derive(Debug, Default)]
pub struct Kv;

/// A compiled kv op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Get that returned this string.
    Get(Box<str>),
    /// Put of this string.
    Put(Box<str>),
    /// Append of this string.
    Append(Box<str>),
}

fn as_text(path: &Path, op: &LinOp, value: &LinValue) -> Result<Box<str>> {
    match value {
        LinValue::Str(s) => Ok(s.as_str().into()),
        LinValue::Int(i) => Ok(i.to_string().into()),
        // porcupine's kv: a missing key reads as the empty string.
        LinValue::Nil => Ok("".into()),
        other => Err(bad_value(path, op, "a string", other)),
    }
}

impl SeqModel for Kv {
    type State = String;
    type Op = KvOp;

    fn init(&self) -> String {
        String::new()
    }

    fn step(&self, state: &String, op: &KvOp) -> Option<String> {
        match op {
            KvOp::Get(v) => (**v == **state).then(|| state.clone()),
            KvOp::Put(v) => Some(v.to_string()),
            KvOp::Append(v) => {
                let mut next = String::with_capacity(state.len() + v.len());
                next.push_str(state);
                next.push_str(v);
                Some(next)
            }
        }
    }

    fn pending(&self, op: &KvOp) -> Option<KvOp> {
        match op {
            KvOp::Get(_) => None,
            _ => Some(op.clone()),
        }
    }

    fn observes(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get(_))
    }

    fn state_bytes(&self, state: &String) -> usize {
        state.capacity()
    }

    fn describe(&self, state: &String) -> String {
        format!("{state:?}")
    }
}

impl Compile for Kv {
    fn compile(&mut self, op: &LinOp, semantics: Semantics, path: &Path) -> Result<Compiled<KvOp>> {
        Ok(match op.f {
            LinFn::Read => match read_output(op, semantics) {
                ReadOutput::Unknown => Compiled::Drop,
                ReadOutput::Absent => Compiled::Keep(KvOp::Get("".into())),
                ReadOutput::Value(v) => Compiled::Keep(KvOp::Get(as_text(path, op, v)?)),
            },
            LinFn::Write | LinFn::Append => match update_effect(op, semantics, false) {
                None => Compiled::Drop,
                Some(_) => {
                    let text = as_text(path, op, &op.input)?;
                    Compiled::Keep(if op.f == LinFn::Write {
                        KvOp::Put(text)
                    } else {
                        KvOp::Append(text)
                    })
                }
            },
            _ => return Err(unsupported(path, op, "kv")),
        })
    }
}

/// A counter: add(delta) and read.
#[derive(Debug, Default)]
pub struct Counter;

/// A compiled counter op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterOp {
    /// Read that returned this total.
    Read(i64),
    /// Add of this delta.
    Add(i64),
}

fn as_int(path: &Path, op: &LinOp, value: &LinValue) -> Result<i64> {
    match value {
        LinValue::Int(i) => Ok(*i),
        other => Err(bad_value(path, op, "an integer", other)),
    }
}

impl SeqModel for Counter {
    type State = i64;
    type Op = CounterOp;

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, op: &CounterOp) -> Option<i64> {
        match *op {
            CounterOp::Read(v) => (v == *state).then_some(*state),
            // Overflow cannot be a legal total; treat it as an illegal step.
            CounterOp::Add(d) => state.checked_add(d),
        }
    }

    fn pending(&self, op: &CounterOp) -> Option<CounterOp> {
        match op {
            CounterOp::Read(_) => None,
            CounterOp::Add(_) => Some(*op),
        }
    }

    fn observes(&self, op: &CounterOp) -> bool {
        matches!(op, CounterOp::Read(_))
    }

    fn state_bytes(&self, _: &i64) -> usize {
        0
    }

    fn describe(&self, state: &i64) -> String {
        state.to_string()
    }
}

impl Compile for Counter {
    fn compile(
        &mut self,
        op: &LinOp,
        semantics: Semantics,
        path: &Path,
    ) -> Result<Compiled<CounterOp>> {
        Ok(match op.f {
            LinFn::Read => match read_output(op, semantics) {
                ReadOutput::Unknown => Compiled::Drop,
                ReadOutput::Absent => Compiled::Keep(CounterOp::Read(0)),
                ReadOutput::Value(v) => Compiled::Keep(CounterOp::Read(as_int(path, op, v)?)),
            },
            LinFn::Add => match update_effect(op, semantics, false) {
                None => Compiled::Drop,
                Some(_) => Compiled::Keep(CounterOp::Add(as_int(path, op, &op.input)?)),
            },
            _ => return Err(unsupported(path, op, "counter")),
        })
    }
}

/// A grow-only set: add(element) and read of the whole set.
#[derive(Debug, Default)]
pub struct Set {
    elements: Interner,
}

/// A compiled set op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetOp {
    /// Read that returned these element ids, sorted and deduplicated.
    Read(Box<[u32]>),
    /// Add of this element id.
    Add(u32),
}

impl SeqModel for Set {
    type State = Box<[u32]>;
    type Op = SetOp;

    fn init(&self) -> Box<[u32]> {
        Box::new([])
    }

    fn step(&self, state: &Box<[u32]>, op: &SetOp) -> Option<Box<[u32]>> {
        match op {
            SetOp::Read(v) => (v == state).then(|| state.clone()),
            SetOp::Add(e) => Some(match state.binary_search(e) {
                Ok(_) => state.clone(),
                Err(at) => {
                    let mut next = Vec::with_capacity(state.len() + 1);
                    next.extend_from_slice(&state[..at]);
                    next.push(*e);
                    next.extend_from_slice(&state[at..]);
                    next.into_boxed_slice()
                }
            }),
        }
    }

    fn pending(&self, op: &SetOp) -> Option<SetOp> {
        match op {
            SetOp::Read(_) => None,
            SetOp::Add(_) => Some(op.clone()),
        }
    }

    fn observes(&self, op: &SetOp) -> bool {
        matches!(op, SetOp::Read(_))
    }

    fn state_bytes(&self, state: &Box<[u32]>) -> usize {
        state.len() * 4
    }

    fn describe(&self, state: &Box<[u32]>) -> String {
        let items: Vec<String> = state.iter().map(|&e| self.elements.describe(e)).collect();
        format!("#{{{}}}", items.join(" "))
    }
}

impl Compile for Set {
    fn compile(
        &mut self,
        op: &LinOp,
        semantics: Semantics,
        path: &Path,
    ) -> Result<Compiled<SetOp>> {
        Ok(match op.f {
            LinFn::Read => match read_output(op, semantics) {
                ReadOutput::Unknown => Compiled::Drop,
                ReadOutput::Absent => Compiled::Keep(SetOp::Read(Box::new([]))),
                ReadOutput::Value(LinValue::List(items)) => {
                    let mut ids: Vec<u32> = items.iter().map(|e| self.elements.id(e)).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    Compiled::Keep(SetOp::Read(ids.into_boxed_slice()))
                }
                ReadOutput::Value(other) => return Err(bad_value(path, op, "a list", other)),
            },
            LinFn::Add => match update_effect(op, semantics, false) {
                None => Compiled::Drop,
                Some(_) => Compiled::Keep(SetOp::Add(self.elements.id(&op.input))),
            },
            _ => return Err(unsupported(path, op, "set")),
        })
    }
}
