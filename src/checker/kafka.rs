//! `kafka` (Maelstrom's Kafka-style log workload): judges sends, polls,
//! commits and committed-offset lists, by the anomalies of Jepsen's Kafka
//! checker that a single-op client can show:
//!
//! - **lost**: an acknowledged send that no poll ever returned, although
//!   the final polls (after every fault healed) stopped changing;
//! - **offset reuse**: two different messages at one offset of a key;
//! - **duplicate**: one message at two offsets of a key;
//! - **nonmonotonic**: a poll whose offsets do not strictly increase, or
//!   start before the offset asked for; a client's sends to a key whose
//!   offsets do not strictly increase;
//! - **skip**: a poll that passed over an offset whose send was
//!   acknowledged before the poll began;
//! - **committed offset went back**: a `list_committed_offsets` below an
//!   offset whose `commit_offsets` was acknowledged before the list began.
//!
//! Message values are compared as JSON; keys are strings, as in Maelstrom.

use super::client_ops::{not_judged, ClientOp};
use super::{Check, Finding};
use crate::verdict::Verdict;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// How the final polls ended (recorded in `ops.jsonl` as a `final_polls`
/// line, so that `converge check` judges loss as the run did).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalPolls {
    /// They returned the same messages for a quiet window: what they lack
    /// is lost.
    Settled,
    /// Still returning new messages at the settle limit: a send not seen
    /// yet may still appear, so it is unknown, not lost.
    StillChanging,
    /// None were taken (the run stopped early), or the record does not
    /// say: loss is not judged.
    #[default]
    Missing,
}

/// `[offset, msg]` pairs of a poll reply, per key.
fn polled(op: &ClientOp) -> Vec<(&str, Vec<(i64, &Value)>)> {
    let Some(msgs) = op.reply.get("msgs").and_then(Value::as_object) else {
        return Vec::new();
    };
    msgs.iter()
        .map(|(k, pairs)| {
            let pairs = pairs
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| Some((p.get(0)?.as_i64()?, p.get(1)?)))
                        .collect()
                })
                .unwrap_or_default();
            (k.as_str(), pairs)
        })
        .collect()
}

/// The offset map of a body field (`offsets`), key to offset.
fn offsets(body: &Value) -> impl Iterator<Item = (&str, i64)> {
    body.get("offsets")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, o)| Some((k.as_str(), o.as_i64()?)))
}

/// An acknowledged send: key, offset, message, op index.
struct Sent<'a> {
    key: &'a str,
    offset: i64,
    msg: &'a Value,
    op: usize,
}

fn sends(ops: &[ClientOp]) -> Vec<Sent<'_>> {
    ops.iter()
        .enumerate()
        .filter(|(_, o)| o.f == "send" && o.is_ok())
        .filter_map(|(i, o)| {
            Some(Sent {
                key: o.request.get("key")?.as_str()?,
                offset: o.reply.get("offset")?.as_i64()?,
                msg: o.request.get("msg")?,
                op: i,
            })
        })
        .collect()
}

/// Judges a kafka history.
pub fn check(ops: &[ClientOp], finals: FinalPolls) -> Check {
    let mut check = Check::new("kafka", Verdict::Valid, "");
    let mut count = BTreeMap::<&str, u64>::new();
    let mut flag = |check: &mut Check, kind: &'static str, finding: Finding| {
        *count.entry(kind).or_default() += 1;
        check.find(finding);
    };
    let sent = sends(ops);
    let polls: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].f == "poll" && ops[i].is_ok())
        .collect();

    // Every (key, offset) -> msg seen, and (key, msg) -> offsets.
    let mut at: HashMap<(&str, i64), Vec<(String, usize)>> = HashMap::new();
    let mut place: HashMap<(&str, String), Vec<(i64, usize)>> = HashMap::new();
    let mut observe = |key, offset, msg: &Value, op| {
        let text = msg.to_string();
        let here = at.entry((key, offset)).or_default();
        if !here.iter().any(|(m, _)| *m == text) {
            here.push((text.clone(), op));
        }
        let places = place.entry((key, text)).or_default();
        if !places.iter().any(|(o, _)| *o == offset) {
            places.push((offset, op));
        }
    };
    for s in &sent {
        observe(s.key, s.offset, s.msg, s.op);
    }
    for &i in &polls {
        for (key, pairs) in polled(&ops[i]) {
            for (offset, msg) in pairs {
                observe(key, offset, msg, i);
            }
        }
    }
    let mut reused: Vec<_> = at.iter().filter(|(_, m)| m.len() > 1).collect();
    reused.sort_by_key(|((k, o), _)| (*k, *o));
    for ((key, offset), msgs) in reused {
        flag(
            &mut check,
            "offset-reuse",
            Finding {
                message: format!(
                    "offset {offset} of key {key:?} holds {} different messages",
                    msgs.len()
                ),
                ops: msgs.iter().map(|(_, op)| *op).collect(),
                expected: Some("one message per offset".into()),
                actual: Some(
                    msgs.iter()
                        .map(|(m, _)| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                ..Finding::default()
            },
        );
    }
    let mut duplicated: Vec<_> = place.iter().filter(|(_, o)| o.len() > 1).collect();
    duplicated.sort_by(|a, b| a.0.cmp(b.0));
    for ((key, msg), places) in duplicated {
        flag(
            &mut check,
            "duplicate",
            Finding {
                message: format!(
                    "message {msg} of key {key:?} is at {} offsets",
                    places.len()
                ),
                ops: places.iter().map(|(_, op)| *op).collect(),
                expected: Some("one offset per message".into()),
                actual: Some(format!(
                    "{:?}",
                    places.iter().map(|(o, _)| *o).collect::<Vec<_>>()
                )),
                ..Finding::default()
            },
        );
    }

    // Each key's acknowledged sends by offset, for skips.
    let mut by_key: HashMap<&str, Vec<&Sent>> = HashMap::new();
    for s in &sent {
        by_key.entry(s.key).or_default().push(s);
    }
    for list in by_key.values_mut() {
        list.sort_by_key(|s| s.offset);
    }
    for &i in &polls {
        let op = &ops[i];
        let asked: HashMap<&str, i64> = offsets(&op.request).collect();
        for (key, pairs) in polled(op) {
            let start = asked.get(key).copied().unwrap_or(0);
            let seq: Vec<i64> = pairs.iter().map(|(o, _)| *o).collect();
            if seq.windows(2).any(|w| w[1] <= w[0]) || seq.first().is_some_and(|f| *f < start) {
                flag(
                    &mut check,
                    "nonmonotonic",
                    Finding {
                        message: format!(
                            "{} of key {key:?} from offset {start} returned offsets out of order",
                            op.describe(i)
                        ),
                        ops: vec![i],
                        expected: Some(format!("strictly increasing offsets from {start}")),
                        actual: Some(format!("{seq:?}")),
                        ..Finding::default()
                    },
                );
            }
            let Some(&last) = seq.iter().max() else {
                continue;
            };
            for s in by_key.get(key).map(Vec::as_slice).unwrap_or(&[]) {
                if s.offset >= start
                    && s.offset <= last
                    && !seq.contains(&s.offset)
                    && ops[s.op].precedes(op)
                {
                    flag(
                        &mut check,
                        "skip",
                        Finding {
                            message: format!(
                                "{} of key {key:?} skipped offset {} ({} was acknowledged before the poll began)",
                                op.describe(i),
                                s.offset,
                                s.msg
                            ),
                            ops: vec![s.op, i],
                            expected: Some(format!("offset {} in {seq:?}", s.offset)),
                            actual: Some(format!("{seq:?}")),
                            ..Finding::default()
                        },
                    );
                }
            }
        }
    }

    // A client's sends to one key get increasing offsets.
    let mut last_send: HashMap<(u64, &str), (i64, usize)> = HashMap::new();
    for s in &sent {
        let process = ops[s.op].process;
        if let Some((before, j)) = last_send.insert((process, s.key), (s.offset, s.op)) {
            if s.offset <= before {
                flag(
                    &mut check,
                    "nonmonotonic",
                    Finding {
                        message: format!(
                            "client {process}'s sends to key {key:?} got offset {before} then {}",
                            s.offset,
                            key = s.key
                        ),
                        ops: vec![j, s.op],
                        expected: Some(format!("an offset above {before}")),
                        actual: Some(s.offset.to_string()),
                        ..Finding::default()
                    },
                );
            }
        }
    }

    // Committed offsets never go back behind an acknowledged commit.
    let mut commits: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].f == "commit_offsets" && ops[i].is_ok())
        .collect();
    commits.sort_by_key(|&i| ops[i].complete_ns);
    let mut lists: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].f == "list_committed_offsets" && ops[i].is_ok())
        .collect();
    lists.sort_by_key(|&i| ops[i].invoke_ns);
    let mut floor: HashMap<&str, (i64, usize)> = HashMap::new();
    let mut next = 0;
    for &l in &lists {
        while next < commits.len() && ops[commits[next]].precedes(&ops[l]) {
            let c = commits[next];
            for (key, offset) in offsets(&ops[c].request) {
                let slot = floor.entry(key).or_insert((offset, c));
                if offset > slot.0 {
                    *slot = (offset, c);
                }
            }
            next += 1;
        }
        let listed: HashMap<&str, i64> = offsets(&ops[l].reply).collect();
        let asked: Vec<&str> = ops[l]
            .request
            .get("keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for key in asked {
            if let Some(&(committed, c)) = floor.get(key) {
                let got = listed.get(key).copied();
                if got.is_none_or(|g| g < committed) {
                    flag(
                        &mut check,
                        "committed-went-back",
                        Finding {
                            message: format!(
                                "{} listed key {key:?} below offset {committed}, committed before it began",
                                ops[l].describe(l)
                            ),
                            ops: vec![c, l],
                            expected: Some(format!("at least {committed}")),
                            actual: Some(got.map_or("no offset".into(), |g| g.to_string())),
                            ..Finding::default()
                        },
                    );
                }
            }
        }
    }

    // Acknowledged sends no poll returned.
    let mut seen: HashMap<(&str, i64), bool> = HashMap::new();
    let mut finally_polled: HashMap<&str, bool> = HashMap::new();
    for &i in &polls {
        if ops[i].final_read {
            for key in offsets(&ops[i].request).map(|(k, _)| k) {
                finally_polled.insert(key, true);
            }
        }
        for (key, pairs) in polled(&ops[i]) {
            for (offset, _) in pairs {
                seen.insert((key, offset), true);
            }
        }
    }
    let mut undecided = 0u64;
    for s in &sent {
        if seen.contains_key(&(s.key, s.offset)) {
            continue;
        }
        if finals == FinalPolls::Settled && finally_polled.contains_key(s.key) {
            flag(
                &mut check,
                "lost",
                Finding {
                    message: format!(
                        "send of {} to key {:?} was acknowledged at offset {} but no poll ever returned it",
                        s.msg, s.key, s.offset
                    ),
                    ops: vec![s.op],
                    expected: Some(format!("offset {} in the final polls", s.offset)),
                    actual: Some("never polled".into()),
                    ..Finding::default()
                },
            );
        } else {
            undecided += 1;
        }
    }

    let judged = (sent.len() + polls.len() + lists.len()) as u64;
    if judged == 0 {
        return not_judged(
            "kafka",
            "no send, poll or list_committed_offsets was answered",
        );
    }
    check.count("judged", judged);
    check.count("total", ops.len() as u64);
    check.count("acknowledged_sends", sent.len() as u64);
    check.count("unjudged_sends", undecided);
    for kind in [
        "lost",
        "offset-reuse",
        "duplicate",
        "nonmonotonic",
        "skip",
        "committed-went-back",
    ] {
        check.count(kind, count.get(kind).copied().unwrap_or(0));
    }
    let anomalies: Vec<String> = count.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let of = format!("{judged} judged / {} ops", ops.len());
    if !anomalies.is_empty() {
        check.verdict = Verdict::Invalid;
        check.summary = format!("{} ({of})", anomalies.join(", "));
    } else if undecided > 0 {
        check.verdict = Verdict::Unknown;
        check.summary = format!(
            "{undecided} acknowledged send(s) not polled yet and the final polls {} ({of})",
            match finals {
                FinalPolls::StillChanging => "were still changing at the settle limit",
                _ => "were not taken",
            }
        );
    } else {
        check.summary = format!(
            "every acknowledged send was polled once, at its offset, in order; commits held ({of})"
        );
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::client_ops::tests::op;
    use crate::history::Outcome;
    use serde_json::json;

    fn send(p: u64, t: (u64, u64), key: &str, msg: i64, offset: i64) -> ClientOp {
        op(
            p,
            "send",
            t,
            Outcome::Ok,
            json!({"type":"send","key":key,"msg":msg}),
            json!({"type":"send_ok","offset":offset}),
        )
    }

    fn poll(p: u64, t: (u64, u64), from: Value, msgs: Value) -> ClientOp {
        op(
            p,
            "poll",
            t,
            Outcome::Ok,
            json!({"type":"poll","offsets":from}),
            json!({"type":"poll_ok","msgs":msgs}),
        )
    }

    fn final_poll(key: &str, msgs: Value) -> ClientOp {
        let mut o = poll(9, (100, 101), json!({key: 0}), msgs);
        o.final_read = true;
        o
    }

    fn good() -> Vec<ClientOp> {
        vec![
            send(0, (0, 2), "1", 10, 0),
            send(1, (1, 3), "1", 11, 1),
            // Concurrent with the second send: may miss it.
            poll(2, (2, 4), json!({"1": 0}), json!({"1": [[0, 10]]})),
            send(0, (5, 6), "1", 12, 4),
            op(
                1,
                "commit_offsets",
                (7, 8),
                Outcome::Ok,
                json!({"type":"commit_offsets","offsets":{"1": 1}}),
                json!({"type":"commit_offsets_ok"}),
            ),
            op(
                2,
                "list_committed_offsets",
                (9, 10),
                Outcome::Ok,
                json!({"type":"list_committed_offsets","keys":["1"]}),
                json!({"type":"list_committed_offsets_ok","offsets":{"1": 1}}),
            ),
            final_poll("1", json!({"1": [[0, 10], [1, 11], [4, 12]]})),
        ]
    }

    fn kinds(c: &Check) -> Vec<&str> {
        c.counts
            .iter()
            .filter(|(k, n)| {
                **n > 0 && !["judged", "total", "acknowledged_sends"].contains(&k.as_str())
            })
            .map(|(k, _)| k.as_str())
            .collect()
    }

    #[test]
    fn a_legal_history_with_sparse_offsets_and_a_concurrent_miss_is_valid() {
        let c = check(&good(), FinalPolls::Settled);
        assert_eq!(c.verdict, Verdict::Valid, "{c:?}");
        assert_eq!(c.counts["judged"], 6);
    }

    #[test]
    fn each_anomaly_is_caught() {
        // Lost: acknowledged, never polled, final polls settled.
        let mut lost = good();
        lost[6] = final_poll("1", json!({"1": [[0, 10], [1, 11]]}));
        assert_eq!(kinds(&check(&lost, FinalPolls::Settled)), vec!["lost"]);
        // ... but unknown while the final polls were still changing.
        let c = check(&lost, FinalPolls::StillChanging);
        assert_eq!(c.verdict, Verdict::Unknown, "{c:?}");
        // Offset reuse: another message at offset 1.
        let mut reuse = good();
        reuse.push(send(3, (11, 12), "1", 13, 1));
        assert!(kinds(&check(&reuse, FinalPolls::Settled)).contains(&"offset-reuse"));
        // Duplicate: message 12 at two offsets.
        let mut dup = good();
        dup[6] = final_poll("1", json!({"1": [[0, 10], [1, 11], [4, 12], [5, 12]]}));
        assert_eq!(kinds(&check(&dup, FinalPolls::Settled)), vec!["duplicate"]);
        // Reordered poll.
        let mut order = good();
        order[6] = final_poll("1", json!({"1": [[1, 11], [0, 10], [4, 12]]}));
        assert_eq!(
            kinds(&check(&order, FinalPolls::Settled)),
            vec!["nonmonotonic"]
        );
        // A poll that starts before what was asked.
        let mut early = good();
        early[2] = poll(2, (2, 4), json!({"1": 1}), json!({"1": [[0, 10]]}));
        assert_eq!(
            kinds(&check(&early, FinalPolls::Settled)),
            vec!["nonmonotonic"]
        );
        // A client's later send gets a lower offset.
        let mut back = good();
        back[3] = send(0, (5, 6), "1", 12, 0);
        assert!(kinds(&check(&back, FinalPolls::Settled)).contains(&"nonmonotonic"));
        // Skip: offset 1 was acknowledged before this poll, which passes it.
        let mut skip = good();
        skip.push(poll(
            2,
            (20, 21),
            json!({"1": 0}),
            json!({"1": [[0, 10], [4, 12]]}),
        ));
        assert_eq!(kinds(&check(&skip, FinalPolls::Settled)), vec!["skip"]);
        // Committed offset went back.
        let mut went_back = good();
        went_back[5].reply = json!({"type":"list_committed_offsets_ok","offsets":{"1": 0}});
        assert_eq!(
            kinds(&check(&went_back, FinalPolls::Settled)),
            vec!["committed-went-back"]
        );
        // Concurrent commit and list: no requirement.
        let mut concurrent = went_back.clone();
        concurrent[4].complete_ns = 9_500_000;
        assert_eq!(
            check(&concurrent, FinalPolls::Settled).verdict,
            Verdict::Valid
        );
    }

    /// A send whose invocation is in a cut history and whose completion is
    /// not (`ops.jsonl` read back after a kill).
    fn in_flight_send(p: u64, t: u64, key: &str, msg: i64) -> ClientOp {
        let mut o = op(
            p,
            "send",
            (t, t),
            Outcome::Info,
            json!({"type":"send","key":key,"msg":msg}),
            Value::Null,
        );
        o.complete_ns = crate::checker::client_ops::NEVER_COMPLETED;
        o
    }

    #[test]
    fn an_in_flight_send_another_client_polled_is_legal_and_an_acknowledged_one_missing_is_lost() {
        // Killed while client 0's send of 20 was in flight: it reached the
        // node, and client 1 polled it. Not a message nobody sent.
        let mut cut = good();
        cut.push(poll(
            1,
            (12, 13),
            json!({"1": 4}),
            json!({"1": [[4, 12], [5, 20]]}),
        ));
        cut.push(in_flight_send(0, 11, "1", 20));
        for finals in [FinalPolls::Missing, FinalPolls::Settled] {
            let c = check(&cut, finals);
            assert_eq!(c.verdict, Verdict::Valid, "{finals:?}: {c:?}");
        }
        // Whether or not the final polls return it, it is never lost.
        cut[6] = final_poll("1", json!({"1": [[0, 10], [1, 11], [4, 12]]}));
        assert_eq!(check(&cut, FinalPolls::Settled).verdict, Verdict::Valid);
        // The same send acknowledged at offset 5 and missing from every
        // final poll, with no other poll returning it, is lost.
        let mut lost = good();
        lost.push(send(0, (11, 12), "1", 20, 5));
        lost.push(in_flight_send(1, 13, "1", 21));
        let c = check(&lost, FinalPolls::Settled);
        assert_eq!(kinds(&c), vec!["lost"], "{c:?}");
        assert_eq!(c.findings[0].ops, vec![7]);
    }

    #[test]
    fn nothing_answered_is_not_judged() {
        let ops = vec![op(
            0,
            "send",
            (0, 5),
            Outcome::Info,
            json!({"type":"send","key":"1","msg":1}),
            Value::Null,
        )];
        assert_eq!(check(&ops, FinalPolls::Settled).verdict, Verdict::Unknown);
    }
}
