//! Generated key-value histories for the linearizability checker's tests and
//! bench: many clients on a few keys, each op taking effect at a random
//! point inside its interval on a real sequential store, so the history is
//! linearizable until something is corrupted on purpose. Included with
//! `#[path]` by `tests/linearizability.rs`, `tests/cli_linearizable.rs` and
//! `benches/linearizability.rs`.

#![allow(dead_code)]

use converge::history::lin::{LinFn, LinHistory, LinOp, LinValue};
use converge::history::Outcome;
use std::fmt::Write;

/// The shape of a generated kv history.
#[derive(Clone, Debug)]
pub struct KvPlan {
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// Concurrent client processes.
    pub clients: u64,
    /// Keys `"0"`, `"1"`, ...
    pub keys: u64,
    /// Ops in the history.
    pub ops: usize,
    /// Per key, the chance in percent that a put crashes (`info`, never
    /// returns; it takes effect or not, half and half). Keys past the end
    /// of the list use its last entry.
    pub crash_percent: Vec<u64>,
    /// Per key, how many ops it gets relative to the others (same
    /// convention for missing entries).
    pub weight: Vec<u64>,
    /// Corrupt one completed read of this key: it returns a value no one
    /// wrote, so that key (and only it) is not linearizable.
    pub corrupt_key: Option<u64>,
}

impl KvPlan {
    /// The bench's class of history (issue 16): 50 clients, 10 keys, about
    /// 2,000 ops, crashed puts everywhere and most puts crashed on keys 1 and 2, and one
    /// corrupted read on key 0.
    pub fn fifty_clients() -> KvPlan {
        KvPlan {
            seed: 16,
            clients: 50,
            keys: 10,
            ops: 2000,
            crash_percent: vec![10, 60, 60, 10],
            weight: vec![1, 2, 2, 1],
            corrupt_key: Some(0),
        }
    }
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn per_key(list: &[u64], key: u64) -> u64 {
    list.get(key as usize).or(list.last()).copied().unwrap_or(0)
}

struct Planned {
    process: u64,
    key: u64,
    write: bool,
    call: u64,
    effect: u64,
    ret: u64,
    crashed: bool,
    takes_effect: bool,
}

/// Builds the history `plan` describes.
pub fn kv_history(plan: &KvPlan) -> LinHistory {
    let mut rng = Lcg(plan.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let total_weight: u64 = (0..plan.keys).map(|k| per_key(&plan.weight, k)).sum();
    let pick_key = |rng: &mut Lcg| {
        let mut x = rng.below(total_weight);
        for k in 0..plan.keys {
            let w = per_key(&plan.weight, k);
            if x < w {
                return k;
            }
            x -= w;
        }
        plan.keys - 1
    };
    // Each client runs one op at a time; a crashed client comes back under
    // a new process id, as in Jepsen.
    let mut clock: Vec<u64> = (0..plan.clients).map(|c| c * 3).collect();
    let mut process: Vec<u64> = (0..plan.clients).collect();
    let mut next_process = plan.clients;
    let mut planned = Vec::with_capacity(plan.ops);
    for i in 0..plan.ops {
        let client = (rng.below(plan.clients)) as usize;
        let key = pick_key(&mut rng);
        let write = rng.below(2) == 0;
        let call = clock[client] + 1 + rng.below(40);
        let effect = call + 1 + rng.below(60);
        let ret = effect + 1 + rng.below(60);
        let crashed = write && rng.below(100) < per_key(&plan.crash_percent, key);
        let takes_effect = !crashed || rng.below(2) == 0;
        planned.push(Planned {
            process: process[client],
            key,
            write,
            call,
            effect,
            ret,
            crashed,
            takes_effect,
        });
        clock[client] = ret;
        if crashed {
            process[client] = next_process;
            next_process += 1;
        }
        let _ = i;
    }
    // Apply the ops at their effect points to a real sequential store.
    let mut by_effect: Vec<usize> = (0..planned.len()).collect();
    by_effect.sort_by_key(|&i| (planned[i].effect, i));
    let mut store: Vec<String> = vec![String::new(); plan.keys as usize];
    let mut outputs: Vec<LinValue> = vec![LinValue::Nil; planned.len()];
    for &i in &by_effect {
        let p = &planned[i];
        if p.write {
            if p.takes_effect {
                store[p.key as usize] = format!("v{i}");
            }
        } else {
            outputs[i] = LinValue::Str(store[p.key as usize].clone());
        }
    }
    if let Some(bad) = plan.corrupt_key {
        // The last read of the key in the middle third of the history.
        let third = planned.len() / 3;
        if let Some(i) = (third..2 * third)
            .rev()
            .find(|&i| planned[i].key == bad && !planned[i].write)
        {
            outputs[i] = LinValue::Str("never written".into());
        }
    }
    let mut ops: Vec<LinOp> = planned
        .iter()
        .zip(outputs)
        .enumerate()
        .map(|(i, (p, output))| LinOp {
            process: p.process,
            key: Some(p.key.to_string()),
            f: if p.write { LinFn::Write } else { LinFn::Read },
            input: if p.write {
                LinValue::Str(format!("v{i}"))
            } else {
                LinValue::Nil
            },
            output,
            outcome: if p.crashed {
                Outcome::Info
            } else {
                Outcome::Ok
            },
            call: p.call,
            ret: (!p.crashed).then_some(p.ret),
            line: 0,
        })
        .collect();
    ops.sort_by_key(|op| op.call);
    for (i, op) in ops.iter_mut().enumerate() {
        op.line = 2 * i + 1;
    }
    LinHistory {
        ops,
        warnings: Vec::new(),
    }
}

/// The history as porcupine kv EDN, one event map per line, events in time
/// order; a crashed put's `info` comes at the end.
pub fn to_edn(history: &LinHistory) -> String {
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, op) in history.ops.iter().enumerate() {
        events.push((op.call, 1, i));
        events.push((op.ret.unwrap_or(u64::MAX), 0, i));
    }
    // Completions before invocations at equal times keep each process's
    // ops apart.
    events.sort();
    let mut out = String::new();
    for (_, kind, i) in events {
        let op = &history.ops[i];
        let f = match op.f {
            LinFn::Read => "get",
            LinFn::Write => "put",
            LinFn::Append => "append",
            other => other.as_str(),
        };
        let key = op.key.as_deref().unwrap_or("0");
        let (ty, value) = match (kind, op.outcome) {
            (1, _) => ("invoke", &op.input),
            (_, Outcome::Info) => ("info", &op.input),
            (_, Outcome::Fail) => ("fail", &op.input),
            (_, Outcome::Ok) if op.f == LinFn::Read => ("ok", &op.output),
            (_, Outcome::Ok) => ("ok", &op.input),
        };
        let value = match value {
            LinValue::Str(s) => format!("{s:?}"),
            LinValue::Nil => "nil".to_string(),
            other => other.to_string(),
        };
        let _ = writeln!(
            out,
            "{{:process {}, :type :{ty}, :f :{f}, :key {key:?}, :value {value}}}",
            op.process
        );
    }
    out
}
