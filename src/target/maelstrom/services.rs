//! The key-value services Maelstrom offers to nodes: `lin-kv`
//! (linearizable), `seq-kv` (sequentially consistent: a node's reads may be
//! stale but never go back) and `lww-kv` (reads may return any recent
//! write). All randomness comes from the run's seeded generator.

use super::protocol::{body, error_body, KEY_DOES_NOT_EXIST, NOT_SUPPORTED, PRECONDITION_FAILED};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Names nodes may address.
pub const SERVICES: [&str; 3] = ["lin-kv", "seq-kv", "lww-kv"];

/// How many recent versions an `lww-kv` read may return.
const LWW_STALENESS: usize = 3;

#[derive(Default)]
struct Store {
    /// Versions of each key in write order; `Value::Null` never appears.
    versions: HashMap<String, Vec<Value>>,
    /// `seq-kv`: the version each (node, key) last saw.
    seen: HashMap<(String, String), usize>,
}

/// All three services.
#[derive(Default)]
pub struct Services {
    stores: HashMap<&'static str, Store>,
}

fn key_of(body: &Map<String, Value>) -> String {
    match body.get("key") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "null".into(),
    }
}

impl Services {
    /// Handles one request from `node` to `service`; returns the reply body.
    pub fn handle(
        &mut self,
        service: &str,
        node: &str,
        request: &Map<String, Value>,
        rng: &mut ChaCha8Rng,
    ) -> Map<String, Value> {
        let Some(name) = SERVICES.iter().copied().find(|s| *s == service) else {
            return error_body(None, NOT_SUPPORTED, "no such service");
        };
        let msg_id = request.get("msg_id").and_then(Value::as_u64);
        let store = self.stores.entry(name).or_default();
        let key = key_of(request);
        let kind = request.get("type").and_then(Value::as_str).unwrap_or("");
        let mut reply = match kind {
            "read" => {
                let versions = store.versions.get(&key).map(Vec::as_slice).unwrap_or(&[]);
                if versions.is_empty() {
                    error_body(None, KEY_DOES_NOT_EXIST, "key does not exist")
                } else {
                    let latest = versions.len() - 1;
                    let at = match name {
                        "lin-kv" => latest,
                        "seq-kv" => {
                            let seen = store
                                .seen
                                .entry((node.to_string(), key.clone()))
                                .or_insert(0);
                            let at = rng.random_range(*seen..=latest);
                            *seen = at;
                            at
                        }
                        _ => rng.random_range(latest.saturating_sub(LWW_STALENESS - 1)..=latest),
                    };
                    body("read_ok", [("value", versions[at].clone())])
                }
            }
            "write" => {
                let value = request.get("value").cloned().unwrap_or(Value::Null);
                let versions = store.versions.entry(key.clone()).or_default();
                versions.push(value);
                let latest = versions.len() - 1;
                store.seen.insert((node.to_string(), key), latest);
                body("write_ok", [])
            }
            "cas" => {
                let from = request.get("from").cloned().unwrap_or(Value::Null);
                let to = request.get("to").cloned().unwrap_or(Value::Null);
                let create = request
                    .get("create_if_not_exists")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let versions = store.versions.entry(key.clone()).or_default();
                match versions.last() {
                    None if !create => error_body(None, KEY_DOES_NOT_EXIST, "key does not exist"),
                    Some(current) if *current != from => error_body(
                        None,
                        PRECONDITION_FAILED,
                        &format!("expected {from}, but had {current}"),
                    ),
                    _ => {
                        versions.push(to);
                        let latest = versions.len() - 1;
                        store.seen.insert((node.to_string(), key), latest);
                        body("cas_ok", [])
                    }
                }
            }
            _ => error_body(None, NOT_SUPPORTED, &format!("{name} has no `{kind}`")),
        };
        if let Some(id) = msg_id {
            reply.insert("in_reply_to".into(), Value::from(id));
        }
        reply
    }
}
