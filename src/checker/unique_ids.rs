//! `unique-ids` (Maelstrom's `checker/unique-ids`): every id a node handed
//! out in a `generate_ok` is different from every other, whatever its JSON
//! type. Ids of requests that timed out are unknown and not judged.

use super::client_ops::{not_judged, ClientOp};
use super::{Check, Finding};
use crate::verdict::Verdict;
use serde_json::Value;
use std::collections::HashMap;

/// Judges every answered `generate`.
pub fn check(ops: &[ClientOp]) -> Check {
    let total = ops.iter().filter(|o| o.f == "generate").count() as u64;
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut check = Check::new("unique-ids", Verdict::Valid, "");
    let mut judged = 0u64;
    let mut duplicated = 0u64;
    for (i, op) in ops.iter().enumerate() {
        if op.f != "generate" || !op.is_ok() {
            continue;
        }
        judged += 1;
        // serde_json's maps keep keys sorted, so equal JSON values print equal.
        let id = op.reply.get("id").unwrap_or(&Value::Null).to_string();
        match first.get(&id) {
            Some(&j) => {
                duplicated += 1;
                check.find(Finding {
                    message: format!(
                        "id {id} was handed out twice: by {} and by {}",
                        ops[j].describe(j),
                        op.describe(i)
                    ),
                    ops: vec![j, i],
                    expected: Some("a fresh id".into()),
                    actual: Some(id),
                    ..Finding::default()
                });
            }
            None => {
                first.insert(id, i);
            }
        }
    }
    if judged == 0 {
        return not_judged("unique-ids", "no generate request was answered");
    }
    check.count("judged", judged);
    check.count("total", total);
    check.count("duplicated", duplicated);
    if duplicated > 0 {
        check.verdict = Verdict::Invalid;
        check.summary = format!(
            "{duplicated} id(s) handed out more than once ({judged} judged / {total} requested)"
        );
    } else {
        check.summary =
            format!("all {judged} ids are distinct ({judged} judged / {total} requested)");
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::client_ops::tests::op;
    use crate::history::Outcome;
    use serde_json::json;

    fn generated(process: u64, id: Value) -> ClientOp {
        op(
            process,
            "generate",
            (0, 1),
            Outcome::Ok,
            json!({"type":"generate"}),
            json!({"type":"generate_ok","id":id}),
        )
    }

    #[test]
    fn distinct_ids_of_any_type_are_valid_and_a_repeat_is_caught() {
        let ops = vec![
            generated(0, json!(1)),
            generated(1, json!("1")),
            generated(2, json!([1, "n0"])),
            generated(3, json!({"a": 1, "b": 2})),
            op(
                4,
                "generate",
                (0, 5),
                Outcome::Info,
                json!({"type":"generate"}),
                Value::Null,
            ),
        ];
        let c = check(&ops);
        assert_eq!(c.verdict, Verdict::Valid, "{c:?}");
        assert_eq!(c.counts["judged"], 4);
        let mut dup = ops.clone();
        dup.push(generated(5, json!({"b": 2, "a": 1})));
        let c = check(&dup);
        assert_eq!(c.verdict, Verdict::Invalid);
        assert_eq!(c.findings[0].ops, vec![3, 5]);
        assert_eq!(check(&ops[4..]).verdict, Verdict::Unknown);
    }
}
