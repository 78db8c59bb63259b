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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn req(kind: &str, fields: &[(&'static str, Value)]) -> Map<String, Value> {
        let mut b = body(kind, fields.iter().cloned());
        b.insert("msg_id".into(), Value::from(7));
        b
    }

    fn code(reply: &Map<String, Value>) -> Option<i64> {
        reply.get("code").and_then(Value::as_i64)
    }

    #[test]
    fn lin_kv_reads_the_latest_write_and_cas_checks_its_precondition() {
        let mut s = Services::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let read = req("read", &[("key", 1.into())]);
        assert_eq!(
            code(&s.handle("lin-kv", "n0", &read, &mut rng)),
            Some(KEY_DOES_NOT_EXIST)
        );
        let cas = req(
            "cas",
            &[("key", 1.into()), ("from", 1.into()), ("to", 2.into())],
        );
        assert_eq!(
            code(&s.handle("lin-kv", "n0", &cas, &mut rng)),
            Some(KEY_DOES_NOT_EXIST)
        );
        let write = req("write", &[("key", 1.into()), ("value", 1.into())]);
        assert_eq!(
            s.handle("lin-kv", "n0", &write, &mut rng)["type"],
            "write_ok"
        );
        let reply = s.handle("lin-kv", "n1", &read, &mut rng);
        assert_eq!(
            (reply["type"].clone(), reply["value"].clone()),
            ("read_ok".into(), 1.into())
        );
        assert_eq!(reply["in_reply_to"], 7);
        assert_eq!(s.handle("lin-kv", "n1", &cas, &mut rng)["type"], "cas_ok");
        assert_eq!(
            code(&s.handle("lin-kv", "n1", &cas, &mut rng)),
            Some(PRECONDITION_FAILED)
        );
        let create = req(
            "cas",
            &[
                ("key", 9.into()),
                ("from", 0.into()),
                ("to", 5.into()),
                ("create_if_not_exists", true.into()),
            ],
        );
        assert_eq!(
            s.handle("lin-kv", "n1", &create, &mut rng)["type"],
            "cas_ok"
        );
    }

    #[test]
    fn seq_kv_reads_may_be_stale_but_never_go_back_for_a_node() {
        let mut s = Services::default();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for v in 0..50 {
            let write = req("write", &[("key", "k".into()), ("value", v.into())]);
            s.handle("seq-kv", "n0", &write, &mut rng);
        }
        let read = req("read", &[("key", "k".into())]);
        let mut last = -1;
        let mut stale = false;
        for _ in 0..200 {
            let v = s.handle("seq-kv", "n1", &read, &mut rng)["value"]
                .as_i64()
                .unwrap();
            assert!(v >= last, "seq-kv went back from {last} to {v}");
            stale |= v < 49;
            last = v;
        }
        assert!(stale, "seq-kv never returned a stale value");
        // The writer reads its own write.
        assert_eq!(s.handle("seq-kv", "n0", &read, &mut rng)["value"], 49);
    }

    #[test]
    fn lww_kv_reads_return_one_of_the_recent_writes() {
        let mut s = Services::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for v in 0..10 {
            let write = req("write", &[("key", 0.into()), ("value", v.into())]);
            s.handle("lww-kv", "n0", &write, &mut rng);
        }
        let read = req("read", &[("key", 0.into())]);
        let seen: std::collections::BTreeSet<i64> = (0..100)
            .map(|_| {
                s.handle("lww-kv", "n2", &read, &mut rng)["value"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert!(
            seen.len() > 1 && seen.iter().all(|v| *v >= 10 - LWW_STALENESS as i64),
            "{seen:?}"
        );
    }

    #[test]
    fn unknown_service_ops_are_not_supported() {
        let mut s = Services::default();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let reply = s.handle("lin-kv", "n0", &req("frobnicate", &[]), &mut rng);
        assert_eq!(code(&reply), Some(NOT_SUPPORTED));
    }
}
