//! Read bounds: a read can only return what had been written to its key by
//! the time it returned. A counter read above the sum of every positive
//! delta invoked on its key before it (or below the sum of every negative
//! one) counts updates twice or invents them; a set or register read holding
//! a value nobody had written to its key yet invents it. Bounds are per key:
//! deltas of other keys never excuse a read. A `fail` update never happened
//! and excuses nothing. Unlike data loss this needs no quiescence, so it also
//! judges runs whose nodes never settle.

use super::{Check, Finding};
use crate::history::{Function, History, Outcome};
use crate::verdict::Verdict;
use converge_models::Value;
use std::collections::HashMap;

/// Checks every read, in-run and final, against what could have reached it.
pub fn check(history: &History) -> Check {
    let mut check = Check::new("read-bounds", Verdict::Valid, "");
    // key -> (invoke time, delta) of every update that may have happened.
    let mut deltas: HashMap<u32, KeyDeltas> = HashMap::new();
    // (key, element) -> earliest invoke of an update that may have written it.
    let mut first_write: HashMap<(u32, u64), u64> = HashMap::new();
    for op in &history.ops {
        if op.outcome == Outcome::Fail {
            continue;
        }
        match op.f {
            Function::Increment => deltas
                .entry(op.key)
                .or_default()
                .deltas
                .push((op.invoke_ns, op.value)),
            Function::Add | Function::Write => {
                let t = first_write
                    .entry((op.key, op.value as u64))
                    .or_insert(op.invoke_ns);
                *t = (*t).min(op.invoke_ns);
            }
            _ => {}
        }
    }
    for key in deltas.values_mut() {
        key.sum();
    }
    let none = KeyDeltas::default();
    let mut reads = 0u64;
    let mut out_of_bounds = 0u64;
    let mut judge = |check: &mut Check,
                     value: &Value,
                     key: u32,
                     by: u64,
                     replica: u16,
                     op: Option<usize>| {
        reads += 1;
        match value {
            Value::Int(v) => {
                let (lo, hi) = deltas.get(&key).unwrap_or(&none).bounds(by);
                let v = *v as i128;
                if v > hi || v < lo {
                    out_of_bounds += 1;
                    check.find(Finding {
                        message: format!(
                            "replica {replica} read {v} from key {key}, outside [{lo}, {hi}]: the deltas invoked on that key before the read returned"
                        ),
                        key: Some(key),
                        replica: Some(replica),
                        ops: op.into_iter().collect(),
                        expected: Some(format!("[{lo}, {hi}]")),
                        actual: Some(v.to_string()),
                    });
                }
            }
            Value::Elems(items) => {
                for e in items {
                    if first_write.get(&(key, *e)).is_none_or(|&t| t > by) {
                        out_of_bounds += 1;
                        check.find(Finding {
                            message: format!(
                                "replica {replica} read {e} from key {key} before anyone had written it there"
                            ),
                            key: Some(key),
                            replica: Some(replica),
                            ops: op.into_iter().collect(),
                            actual: Some(e.to_string()),
                            ..Finding::default()
                        });
                    }
                }
            }
            Value::Map(_) => {}
        }
    };
    let mut values = history.read_cursor();
    for (i, op) in history.ops.iter().enumerate() {
        if op.f != Function::Read || op.outcome != Outcome::Ok {
            continue;
        }
        if let Some(value) = values.value(op) {
            let returned = op.invoke_ns.saturating_add(op.latency_ns);
            judge(&mut check, value, op.key, returned, op.replica, Some(i));
        }
    }
    for f in &history.finals.decode() {
        judge(&mut check, f.value, f.key, u64::MAX, f.replica, None);
    }
    check.count("reads", reads);
    check.count("out_of_bounds", out_of_bounds);
    if out_of_bounds > 0 {
        check.verdict = Verdict::Invalid;
        check.summary = format!("{out_of_bounds} read value(s) could not have been written yet");
    } else {
        check.summary = format!("{reads} reads returned only what had been written to their key");
    }
    check.judged(reads, reads, "reads", "no read returned a value");
    check
}

/// One key's deltas by invoke time, with the running sums of the positive
/// and of the negative ones.
#[derive(Default)]
struct KeyDeltas {
    deltas: Vec<(u64, i64)>,
    up: Vec<i128>,
    down: Vec<i128>,
}

impl KeyDeltas {
    fn sum(&mut self) {
        self.deltas.sort_unstable();
        let (mut u, mut d) = (0i128, 0i128);
        self.up = vec![0];
        self.down = vec![0];
        for &(_, delta) in &self.deltas {
            if delta > 0 {
                u += delta as i128;
            } else {
                d += delta as i128;
            }
            self.up.push(u);
            self.down.push(d);
        }
    }

    /// The lowest and highest value a read returning at `by` may hold.
    fn bounds(&self, by: u64) -> (i128, i128) {
        let n = self.deltas.partition_point(|&(t, _)| t <= by);
        (
            self.down.get(n).copied().unwrap_or(0),
            self.up.get(n).copied().unwrap_or(0),
        )
    }
}
