//! Read bounds: a read can only return what had been written by the time it
//! returned. A counter read above the sum of every positive delta invoked
//! before it (or below the sum of every negative one) counts updates twice
//! or invents them; a set or register read holding a value nobody had
//! written yet invents it. Unlike data loss this needs no quiescence, so it
//! also judges runs whose nodes never settle.

use super::{Check, Finding};
use crate::history::{Function, History, Outcome};
use crate::verdict::Verdict;
use converge_models::Value;
use std::collections::HashMap;

/// Checks every read, in-run and final, against what could have reached it.
pub fn check(history: &History) -> Check {
    let mut check = Check::new("read-bounds", Verdict::Valid, "");
    // (invoke time, delta) of every update that may have happened.
    let mut deltas: Vec<(u64, i64)> = Vec::new();
    // element -> earliest invoke of an update that may have written it.
    let mut first_write: HashMap<u64, u64> = HashMap::new();
    for op in &history.ops {
        if op.outcome == Outcome::Fail {
            continue;
        }
        match op.f {
            Function::Increment => deltas.push((op.invoke_ns, op.value)),
            Function::Add | Function::Write => {
                let t = first_write.entry(op.value as u64).or_insert(op.invoke_ns);
                *t = (*t).min(op.invoke_ns);
            }
            _ => {}
        }
    }
    deltas.sort_unstable();
    let mut up = Vec::with_capacity(deltas.len() + 1);
    let mut down = Vec::with_capacity(deltas.len() + 1);
    let (mut u, mut d) = (0i128, 0i128);
    up.push(0);
    down.push(0);
    for &(_, delta) in &deltas {
        if delta > 0 {
            u += delta as i128;
        } else {
            d += delta as i128;
        }
        up.push(u);
        down.push(d);
    }
    let mut reads = 0u64;
    let mut out_of_bounds = 0u64;
    let mut judge = |check: &mut Check, value: &Value, by: u64, replica: u16, op: Option<usize>| {
        reads += 1;
        match value {
            Value::Int(v) => {
                let n = deltas.partition_point(|&(t, _)| t <= by);
                let (hi, lo) = (up[n], down[n]);
                let v = *v as i128;
                if v > hi || v < lo {
                    out_of_bounds += 1;
                    check.find(Finding {
                        message: format!(
                            "replica {replica} read {v}, outside [{lo}, {hi}]: the deltas invoked before the read returned"
                        ),
                        replica: Some(replica),
                        ops: op.into_iter().collect(),
                        expected: Some(format!("[{lo}, {hi}]")),
                        actual: Some(v.to_string()),
                        ..Finding::default()
                    });
                }
            }
            Value::Elems(items) => {
                for e in items {
                    if first_write.get(e).is_none_or(|&t| t > by) {
                        out_of_bounds += 1;
                        check.find(Finding {
                            message: format!(
                                "replica {replica} read {e} before anyone had written it"
                            ),
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
            let returned = op.invoke_ns + op.latency_ns as u64;
            judge(&mut check, value, returned, op.replica, Some(i));
        }
    }
    for f in &history.finals.decode() {
        judge(&mut check, f.value, u64::MAX, f.replica, None);
    }
    check.count("reads", reads);
    check.count("out_of_bounds", out_of_bounds);
    if out_of_bounds > 0 {
        check.verdict = Verdict::Invalid;
        check.summary = format!("{out_of_bounds} read value(s) could not have been written yet");
    } else {
        check.summary = format!("{reads} reads returned only what had been written");
    }
    check
}
