//! Maelstrom workloads: which requests clients send, and what a reply means
//! for the history.

use super::protocol::{body, is_indefinite, KEY_DOES_NOT_EXIST};
use crate::history::lin::{LinFn, LinValue};
use crate::history::{Function, Outcome};
use converge_models::{Value as CrdtValue, Workload};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

/// The workloads `converge run --target maelstrom` drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum MaelstromWorkload {
    /// Grow-only counter: `add{delta}`, `read`.
    GCounter,
    /// Counter with negative deltas: `add{delta}`, `read`.
    PnCounter,
    /// Grow-only set: `add{element}`, `read`.
    GSet,
    /// Broadcast: `broadcast{message}`, `read` (plus `topology`).
    Broadcast,
    /// Linearizable key-value store: `read{key}`, `write{key,value}`, `cas{key,from,to}`.
    LinKv,
    /// Add-wins observed-remove set (converge's own): `add`, `remove`, `read`.
    OrSet,
    /// Last-writer-wins register (converge's own): `write{value}`, `read`.
    LwwRegister,
    /// Multi-value register with causal context (converge's own).
    MvRegister,
    /// Maelstrom's `echo`: `echo{echo}` answered `echo_ok{echo}`.
    Echo,
    /// Maelstrom's `unique-ids`: `generate` answered `generate_ok{id}`.
    UniqueIds,
    /// Maelstrom's `kafka`: `send`, `poll`, `commit_offsets`,
    /// `list_committed_offsets`.
    Kafka,
}

impl MaelstromWorkload {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MaelstromWorkload::GCounter => "g-counter",
            MaelstromWorkload::PnCounter => "pn-counter",
            MaelstromWorkload::GSet => "g-set",
            MaelstromWorkload::Broadcast => "broadcast",
            MaelstromWorkload::LinKv => "lin-kv",
            MaelstromWorkload::OrSet => "or-set",
            MaelstromWorkload::LwwRegister => "lww-register",
            MaelstromWorkload::MvRegister => "mv-register",
            MaelstromWorkload::Echo => "echo",
            MaelstromWorkload::UniqueIds => "unique-ids",
            MaelstromWorkload::Kafka => "kafka",
        }
    }

    /// Parses a `--workload` name.
    pub fn from_name(name: &str) -> Option<Self> {
        <Self as clap::ValueEnum>::value_variants()
            .iter()
            .copied()
            .find(|w| w.name() == name)
    }

    /// The CRDT datatype whose checkers judge it; `None` for lin-kv.
    pub fn datatype(self) -> Option<Workload> {
        match self {
            MaelstromWorkload::GCounter => Some(Workload::GCounter),
            MaelstromWorkload::PnCounter => Some(Workload::PnCounter),
            MaelstromWorkload::GSet | MaelstromWorkload::Broadcast => Some(Workload::GSet),
            MaelstromWorkload::OrSet => Some(Workload::OrSet),
            MaelstromWorkload::LwwRegister => Some(Workload::LwwRegister),
            MaelstromWorkload::MvRegister => Some(Workload::MvRegister),
            MaelstromWorkload::LinKv
            | MaelstromWorkload::Echo
            | MaelstromWorkload::UniqueIds
            | MaelstromWorkload::Kafka => None,
        }
    }

    /// Whether ops are recorded as request and reply bodies (`ops.jsonl`)
    /// and judged by the workload's own checker, not as CRDT updates.
    pub fn records_bodies(self) -> bool {
        matches!(
            self,
            MaelstromWorkload::Echo | MaelstromWorkload::UniqueIds | MaelstromWorkload::Kafka
        )
    }

    /// Every workload's name, for error messages.
    pub fn names() -> String {
        <Self as clap::ValueEnum>::value_variants()
            .iter()
            .map(|w| w.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The read request.
    pub fn read_request(self) -> Map<String, Value> {
        body("read", [])
    }
}

/// Keys of the lin-kv workload.
pub const LIN_KV_KEYS: u64 = 5;
/// Values written by the lin-kv workload are below this.
pub const LIN_KV_VALUES: i64 = 5;
/// Elements of the or-set workload are below this, so removes hit adds.
pub const OR_SET_ELEMENTS: u64 = 16;

/// One client operation before it is sent.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Request body (without `msg_id`).
    pub body: Map<String, Value>,
    /// Function for the CRDT history.
    pub f: Function,
    /// Delta, element or value.
    pub value: i64,
    /// Linearizability view (lin-kv only): key, function, input.
    pub lin: Option<(u64, LinFn, LinValue)>,
}

/// Chooses the next op of a client. `unique` yields values no other op uses.
pub fn plan(
    workload: MaelstromWorkload,
    rng: &mut ChaCha8Rng,
    read_ratio: f64,
    unique: u64,
    context: Option<&Value>,
) -> Planned {
    let read = rng.random_bool(read_ratio.clamp(0.0, 1.0));
    let crdt = |body: Map<String, Value>, f: Function, value: i64| Planned {
        body,
        f,
        value,
        lin: None,
    };
    if (read && workload != MaelstromWorkload::LinKv) || workload.records_bodies() {
        // Workloads that record bodies are planned in `ops`.
        return crdt(workload.read_request(), Function::Read, 0);
    }
    match workload {
        MaelstromWorkload::GCounter => {
            let delta = rng.random_range(1..=5i64);
            crdt(
                body("add", [("delta", delta.into())]),
                Function::Increment,
                delta,
            )
        }
        MaelstromWorkload::PnCounter => {
            let mut delta = rng.random_range(-5..=4i64);
            if delta >= 0 {
                delta += 1;
            }
            crdt(
                body("add", [("delta", delta.into())]),
                Function::Increment,
                delta,
            )
        }
        MaelstromWorkload::GSet => crdt(
            body("add", [("element", unique.into())]),
            Function::Add,
            unique as i64,
        ),
        MaelstromWorkload::Broadcast => crdt(
            body("broadcast", [("message", unique.into())]),
            Function::Add,
            unique as i64,
        ),
        MaelstromWorkload::OrSet => {
            let element = rng.random_range(0..OR_SET_ELEMENTS);
            if rng.random_bool(0.3) {
                crdt(
                    body("remove", [("element", element.into())]),
                    Function::Remove,
                    element as i64,
                )
            } else {
                crdt(
                    body("add", [("element", element.into())]),
                    Function::Add,
                    element as i64,
                )
            }
        }
        MaelstromWorkload::LwwRegister => crdt(
            body("write", [("value", unique.into())]),
            Function::Write,
            unique as i64,
        ),
        MaelstromWorkload::MvRegister => crdt(
            body(
                "write",
                [
                    ("value", unique.into()),
                    (
                        "context",
                        context
                            .cloned()
                            .unwrap_or_else(|| Value::Object(Map::new())),
                    ),
                ],
            ),
            Function::Write,
            unique as i64,
        ),
        MaelstromWorkload::Echo | MaelstromWorkload::UniqueIds | MaelstromWorkload::Kafka => {
            crdt(workload.read_request(), Function::Read, 0)
        }
        MaelstromWorkload::LinKv => {
            let key = rng.random_range(0..LIN_KV_KEYS);
            let roll: f64 = rng.random();
            let value = rng.random_range(0..LIN_KV_VALUES);
            let (b, f, input) = if roll < read_ratio.max(0.3) {
                (
                    body("read", [("key", key.into())]),
                    LinFn::Read,
                    LinValue::Nil,
                )
            } else if roll < 0.7 {
                (
                    body("write", [("key", key.into()), ("value", value.into())]),
                    LinFn::Write,
                    LinValue::Int(value),
                )
            } else {
                let from = rng.random_range(0..LIN_KV_VALUES);
                (
                    body(
                        "cas",
                        [
                            ("key", key.into()),
                            ("from", from.into()),
                            ("to", value.into()),
                        ],
                    ),
                    LinFn::Cas,
                    LinValue::List(vec![LinValue::Int(from), LinValue::Int(value)]),
                )
            };
            Planned {
                body: b,
                f: if f == LinFn::Read {
                    Function::Read
                } else {
                    Function::Write
                },
                value,
                lin: Some((key, f, input)),
            }
        }
    }
}

/// What a reply means.
#[derive(Clone, Debug, PartialEq)]
pub struct Interpreted {
    /// How the op ended.
    pub outcome: Outcome,
    /// Read result for the CRDT history.
    pub read: Option<CrdtValue>,
    /// Read result for the linearizability history.
    pub lin_output: LinValue,
    /// The mv-register read context, kept by the client for its next write.
    pub context: Option<Value>,
    /// The timestamp an lww-register write reports (`write_ok{ts}`: a
    /// number, or `[clock, replica]`).
    pub stamp: Option<u64>,
}

impl Interpreted {
    /// An op with no usable answer: a write may have happened (`info`), a
    /// read returned nothing (`fail`).
    pub fn unanswered(planned: &Planned) -> Interpreted {
        Interpreted {
            outcome: if planned.f == Function::Read {
                Outcome::Fail
            } else {
                Outcome::Info
            },
            read: None,
            lin_output: LinValue::Nil,
            context: None,
            stamp: None,
        }
    }
}

/// Interprets a reply body (`None` = timed out). `Err` means the node
/// answered garbage; the text says what is wrong.
pub fn interpret(
    workload: MaelstromWorkload,
    planned: &Planned,
    reply: Option<&Map<String, Value>>,
) -> Result<Interpreted, String> {
    let is_read = planned.f == Function::Read;
    let unknown = Interpreted::unanswered(planned);
    let Some(reply) = reply else {
        return Ok(unknown);
    };
    let kind = reply.get("type").and_then(Value::as_str).unwrap_or("");
    let request = planned
        .body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind == "error" {
        let code = reply
            .get("code")
            .and_then(Value::as_i64)
            .ok_or_else(|| "error reply without an integer `code`".to_string())?;
        if workload == MaelstromWorkload::LinKv && is_read && code == KEY_DOES_NOT_EXIST {
            // A missing key reads as absent.
            return Ok(Interpreted {
                outcome: Outcome::Ok,
                ..unknown
            });
        }
        if is_indefinite(code) {
            return Ok(unknown);
        }
        return Ok(Interpreted {
            outcome: Outcome::Fail,
            ..unknown
        });
    }
    if kind != format!("{request}_ok") {
        return Err(format!("expected `{request}_ok` or `error`, got `{kind}`"));
    }
    if !is_read {
        let stamp = match reply.get("ts") {
            Some(Value::Array(parts)) => parts.first().and_then(Value::as_u64),
            Some(other) => other.as_u64(),
            None => None,
        };
        return Ok(Interpreted {
            outcome: Outcome::Ok,
            read: None,
            lin_output: LinValue::Nil,
            context: None,
            stamp,
        });
    }
    let field = if workload == MaelstromWorkload::Broadcast {
        "messages"
    } else {
        "value"
    };
    let value = reply
        .get(field)
        .ok_or_else(|| format!("`read_ok` without `{field}`"))?;
    let int = |v: &Value| -> Result<i64, String> {
        v.as_i64()
            .ok_or_else(|| format!("`{field}` holds {v}, not an integer that fits in 64 bits"))
    };
    let elements = |v: &Value| -> Result<Vec<u64>, String> {
        let items = v
            .as_array()
            .ok_or_else(|| format!("`{field}` is {v}, not a list"))?;
        items
            .iter()
            .map(|e| {
                e.as_u64().ok_or_else(|| {
                    format!("`{field}` holds {e}, not an unsigned integer that fits in 64 bits")
                })
            })
            .collect()
    };
    let (read, lin_output) = match workload {
        MaelstromWorkload::GCounter | MaelstromWorkload::PnCounter => {
            (Some(CrdtValue::Int(int(value)?)), LinValue::Nil)
        }
        MaelstromWorkload::GSet
        | MaelstromWorkload::Broadcast
        | MaelstromWorkload::OrSet
        | MaelstromWorkload::MvRegister => {
            let mut items = elements(value)?;
            items.sort_unstable();
            (Some(CrdtValue::Elems(items)), LinValue::Nil)
        }
        MaelstromWorkload::LwwRegister => {
            let items = if value.is_null() {
                Vec::new()
            } else {
                vec![value.as_u64().ok_or_else(|| {
                    format!("`value` holds {value}, not an unsigned integer that fits in 64 bits")
                })?]
            };
            (Some(CrdtValue::Elems(items)), LinValue::Nil)
        }
        MaelstromWorkload::Echo | MaelstromWorkload::UniqueIds | MaelstromWorkload::Kafka => {
            (None, LinValue::Nil)
        }
        MaelstromWorkload::LinKv => {
            let output = if value.is_null() {
                LinValue::Nil
            } else {
                LinValue::Int(int(value)?)
            };
            (None, output)
        }
    };
    Ok(Interpreted {
        outcome: Outcome::Ok,
        read,
        lin_output,
        context: reply.get("context").cloned(),
        stamp: None,
    })
}
