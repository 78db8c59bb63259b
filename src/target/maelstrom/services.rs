//! The services Maelstrom offers to nodes: `lin-kv` (linearizable),
//! `seq-kv` (sequentially consistent over the whole store: each node sees
//! the store's states in order, possibly late, never going back), `lww-kv`
//! (reads may return any recent write) and `lin-tso` (a linearizable
//! timestamp oracle counting from 0). Keys keep their JSON type: `1` and
//! `"1"` are different keys, as in Maelstrom. All randomness comes from the
//! run's seeded generator.

use super::protocol::{body, error_body, KEY_DOES_NOT_EXIST, NOT_SUPPORTED, PRECONDITION_FAILED};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Names nodes may address.
pub const SERVICES: [&str; 4] = ["lin-kv", "seq-kv", "lww-kv", "lin-tso"];

/// How many recent versions an `lww-kv` read may return.
const LWW_STALENESS: usize = 3;
/// How many past states of the whole store a `seq-kv` read may see
/// (Maelstrom keeps a ring buffer of 32).
pub const SEQ_KV_STATES: u64 = 32;

/// One key-value store. Every change makes a new state of the whole
/// store, numbered from 1; each key keeps the states at which it changed.
#[derive(Default)]
struct Store {
    /// Key (canonical JSON) to `(state, value)` in state order.
    versions: HashMap<String, Vec<(u64, Value)>>,
    /// Number of the latest state (0: the empty store).
    latest: u64,
    /// `seq-kv`: the state each client last saw.
    seen: HashMap<String, u64>,
}

impl Store {
    /// A key's value in state `at`.
    fn value_at(&self, key: &str, at: u64) -> Option<&Value> {
        let versions = self.versions.get(key)?;
        let i = versions.partition_point(|(state, _)| *state <= at);
        (i > 0).then(|| &versions[i - 1].1)
    }

    fn set(&mut self, key: String, value: Value) {
        self.latest += 1;
        self.versions
            .entry(key)
            .or_default()
            .push((self.latest, value));
    }
}

/// All four services.
#[derive(Default)]
pub struct Services {
    stores: HashMap<&'static str, Store>,
    next_ts: u64,
}

/// A key as Maelstrom compares keys: by JSON value, so `1` and `"1"` differ.
fn key_of(body: &Map<String, Value>) -> String {
    body.get("key").unwrap_or(&Value::Null).to_string()
}

impl Services {
    /// Handles one request from `client` (the message's `src`) to
    /// `service`; returns the reply body.
    pub fn handle(
        &mut self,
        service: &str,
        client: &str,
        request: &Map<String, Value>,
        rng: &mut ChaCha8Rng,
    ) -> Map<String, Value> {
        let msg_id = request.get("msg_id").cloned();
        let kind = request.get("type").and_then(Value::as_str).unwrap_or("");
        let mut reply = match SERVICES.iter().copied().find(|s| *s == service) {
            None => error_body(None, NOT_SUPPORTED, "no such service"),
            Some("lin-tso") if kind == "ts" => {
                self.next_ts += 1;
                body("ts_ok", [("ts", Value::from(self.next_ts - 1))])
            }
            Some("lin-tso") => error_body(None, NOT_SUPPORTED, &format!("lin-tso has no `{kind}`")),
            Some(name) => {
                let store = self.stores.entry(name).or_default();
                // The state this request acts on: the latest, except for
                // seq-kv, where a node may see any state since its last.
                let at = match name {
                    "seq-kv" => {
                        let floor = store.latest.saturating_sub(SEQ_KV_STATES - 1);
                        let seen = store.seen.get(client).copied().unwrap_or(0).max(floor);
                        rng.random_range(seen..=store.latest)
                    }
                    _ => store.latest,
                };
                let reply = kv(store, name, kind, request, at, rng);
                if name == "seq-kv" {
                    store.seen.insert(client.to_string(), reply.1);
                }
                reply.0
            }
        };
        // Maelstrom answers `in_reply_to` = the request's `msg_id`, whatever it is.
        reply.insert("in_reply_to".into(), msg_id.unwrap_or(Value::Null));
        reply
    }
}

/// One key-value request against `store` seen at state `at`; returns the
/// reply and the state the client has now seen. A change always applies
/// to the latest state (as Maelstrom's sequential store does: a request
/// that would change a stale state is re-run on the latest).
fn kv(
    store: &mut Store,
    name: &str,
    kind: &str,
    request: &Map<String, Value>,
    at: u64,
    rng: &mut ChaCha8Rng,
) -> (Map<String, Value>, u64) {
    let key = key_of(request);
    match kind {
        "read" => {
            let value = if name == "lww-kv" {
                let versions = store.versions.get(&key).map(Vec::as_slice).unwrap_or(&[]);
                (!versions.is_empty()).then(|| {
                    let latest = versions.len() - 1;
                    let i = rng.random_range(latest.saturating_sub(LWW_STALENESS - 1)..=latest);
                    &versions[i].1
                })
            } else {
                store.value_at(&key, at)
            };
            let reply = match value {
                Some(v) => body("read_ok", [("value", v.clone())]),
                None => error_body(None, KEY_DOES_NOT_EXIST, "key does not exist"),
            };
            (reply, at)
        }
        "write" => {
            let value = request.get("value").cloned().unwrap_or(Value::Null);
            store.set(key, value);
            (body("write_ok", []), store.latest)
        }
        "cas" => {
            let from = request.get("from").cloned().unwrap_or(Value::Null);
            let to = request.get("to").cloned().unwrap_or(Value::Null);
            let create = request
                .get("create_if_not_exists")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let outcome = |current: Option<&Value>| match current {
                None if !create => Err(error_body(None, KEY_DOES_NOT_EXIST, "key does not exist")),
                Some(current) if *current != from => Err(error_body(
                    None,
                    PRECONDITION_FAILED,
                    &format!("expected {from}, but had {current}"),
                )),
                _ => Ok(()),
            };
            // A cas that fails changes nothing, so it may fail on the state seen.
            if let Err(reply) = outcome(store.value_at(&key, at)) {
                return (reply, at);
            }
            let latest = store.latest;
            match outcome(store.value_at(&key, latest)) {
                Err(reply) => (reply, latest),
                Ok(()) => {
                    store.set(key, to);
                    (body("cas_ok", []), store.latest)
                }
            }
        }
        _ => (
            error_body(None, NOT_SUPPORTED, &format!("{name} has no `{kind}`")),
            at,
        ),
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
    fn seq_kv_is_sequential_over_the_whole_store_not_per_key() {
        let mut s = Services::default();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let write = |k: &str, v: i64| req("write", &[("key", k.into()), ("value", v.into())]);
        s.handle("seq-kv", "n0", &write("a", 1), &mut rng);
        for _ in 0..20 {
            s.handle("seq-kv", "n0", &write("filler", 0), &mut rng);
        }
        // n1 writes a fresh key, so it has seen every state up to now: its
        // read of another key cannot be stale any more.
        s.handle("seq-kv", "n1", &write("fresh", 9), &mut rng);
        for _ in 0..50 {
            let r = s.handle(
                "seq-kv",
                "n1",
                &req("read", &[("key", "a".into())]),
                &mut rng,
            );
            assert_eq!(r["value"], 1, "{r:?}");
        }
        // A node that has seen nothing may read the empty store (each of
        // these nodes reads once)...
        let stale = |s: &mut Services, rng: &mut ChaCha8Rng, prefix: &str| {
            (0..200).any(|i| {
                let node = format!("{prefix}{i}");
                let r = s.handle("seq-kv", &node, &req("read", &[("key", "a".into())]), rng);
                code(&r) == Some(KEY_DOES_NOT_EXIST)
            })
        };
        assert!(
            stale(&mut s, &mut rng, "m"),
            "seq-kv never served a stale state"
        );
        // ...but never one older than the last 32 states.
        for _ in 0..SEQ_KV_STATES {
            s.handle("seq-kv", "n0", &write("filler", 0), &mut rng);
        }
        assert!(!stale(&mut s, &mut rng, "z"));
    }

    #[test]
    fn keys_keep_their_json_type_and_lin_tso_counts_from_zero() {
        let mut s = Services::default();
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        s.handle(
            "lin-kv",
            "n0",
            &req("write", &[("key", 1.into()), ("value", 10.into())]),
            &mut rng,
        );
        let read = |k: Value| req("read", &[("key", k)]);
        assert_eq!(
            s.handle("lin-kv", "n0", &read(1.into()), &mut rng)["value"],
            10
        );
        assert_eq!(
            code(&s.handle("lin-kv", "n0", &read("1".into()), &mut rng)),
            Some(KEY_DOES_NOT_EXIST)
        );
        let ts: Vec<Value> = (0..3)
            .map(|_| s.handle("lin-tso", "n1", &req("ts", &[]), &mut rng)["ts"].clone())
            .collect();
        assert_eq!(ts, vec![Value::from(0), 1.into(), 2.into()]);
        let reply = s.handle("lin-tso", "n1", &req("ts", &[]), &mut rng);
        assert_eq!(
            (reply["type"].clone(), reply["in_reply_to"].clone()),
            ("ts_ok".into(), 7.into())
        );
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
