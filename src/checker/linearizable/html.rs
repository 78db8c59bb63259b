//! A self-contained HTML view of a linearizability check, in the spirit of
//! porcupine's visualization: a summary, a per-key table, and for each key
//! with a witness a timeline of the ops around the one that cannot be placed.
//!
//! The page must open offline and from an untrusted history, so it carries
//! its CSS and script inline, references nothing external, and escapes every
//! value taken from the check. Its size is bounded whatever the history: the
//! witness lists are already capped, and the key table and the number of
//! witnesses shown are capped here.

use super::{KeyVerdict, LinCheck, OpView, Witness};
use crate::history::Outcome;
use crate::render::html::esc;
use crate::verdict::Verdict;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// At most this many rows in the per-key table.
const MAX_TABLE_ROWS: usize = 200;
/// At most this many witness timelines: with `--explain all` every failing
/// key may carry one, and each is tens of kilobytes.
const MAX_WITNESSES: usize = 20;
/// Width of the lane labels on the left of a timeline, in pixels.
const LABEL_W: u64 = 90;
/// Horizontal distance between two consecutive distinct times, in pixels.
const STEP: u64 = 90;
/// Height of one row of bars, in pixels.
const ROW_H: u64 = 26;
/// Height of a bar, in pixels.
const BAR_H: u64 = 20;

const STYLE: &str = "\
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 .4em}h2{font-size:1.15em;margin:1.6em 0 .4em}h3{font-size:1em;margin:1em 0 .3em}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
.summary td{padding:1px 12px 1px 0}
table.keys{border-collapse:collapse;margin:.5em 0}
table.keys th,table.keys td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
table.keys th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.v{font-weight:600;padding:1px 6px;border-radius:3px;color:#fff}
.v-valid{background:#2e8b3e}.v-unknown{background:#c98a00}.v-invalid{background:#c62828}
.note{color:#666;font-style:italic}
.explain{background:#fff6f5;border-left:4px solid #c62828;padding:6px 10px;max-width:70em}
.legend span{display:inline-block;margin-right:1.2em}
.sw{display:inline-block;width:14px;height:10px;border:1px solid #777;vertical-align:middle;margin-right:4px}
.tlwrap{overflow-x:auto;border:1px solid #ddd;margin:.5em 0;background:#fcfcfc}
.tl{position:relative}
.grid{position:absolute;top:0;bottom:0;width:0;border-left:1px dotted #ddd}
.lane{position:absolute;left:0;right:0;border-top:1px solid #eee}
.lname{position:absolute;left:4px;width:82px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;color:#555;font-size:12px;line-height:20px}
.bar{position:absolute;box-sizing:border-box;height:20px;line-height:18px;font-size:12px;padding:0 4px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;border:1px solid #5a7fa8;background:#d6e4f3;border-radius:3px;cursor:default}
.bar.ctx{background:#eee;border-color:#999}
.bar.conc{outline:2px solid #e0a000;outline-offset:0}
.bar.blk{background:#c62828;border-color:#8e0000;color:#fff;font-weight:600}
.bar.open{border-style:dashed;border-right:none;border-radius:3px 0 0 3px;background-image:repeating-linear-gradient(45deg,rgba(0,0,0,.13) 0 3px,transparent 3px 8px)}
.n{display:inline-block;min-width:14px;padding:0 3px;margin-right:4px;border-radius:7px;background:#2f4f75;color:#fff;font-size:10px;line-height:14px;text-align:center;font-weight:600}
.tick{position:absolute;width:2px;background:#2f4f75;opacity:.75}
.hl{box-shadow:0 0 0 3px #7fb3ff}
li.hl{background:#e4efff;box-shadow:none}
ol.ops li{margin:1px 0}
.meta{color:#777;font-size:.9em}
";

/// Highlights a bar together with its entries in the lists below (and the
/// other way round), so an op can be followed between the two views.
const SCRIPT: &str = "\
document.addEventListener('mouseover',function(e){
document.querySelectorAll('.hl').forEach(function(x){x.classList.remove('hl')});
var t=e.target.closest?e.target.closest('[data-op]'):null;if(!t)return;
var s=t.closest('section');if(!s)return;
s.querySelectorAll('[data-op=\"'+t.getAttribute('data-op')+'\"]').forEach(function(x){x.classList.add('hl')});
});
";

/// Renders `check` of the history in `file_name` as one self-contained HTML
/// document: a summary, a per-key table and, for each key with a witness,
/// a timeline of the ops around the op that cannot be placed.
pub fn render(file_name: &str, check: &LinCheck) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let title = format!("linearizability: {file_name}");
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    header(&mut out, file_name, check);
    key_table(&mut out, check);

    let witnessed: Vec<(usize, &KeyVerdict, &Witness)> = check
        .keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| k.witness.as_ref().map(|w| (i, k, w)))
        .collect();
    for &(i, key, witness) in witnessed.iter().take(MAX_WITNESSES) {
        witness_section(&mut out, i, key, witness);
    }
    if witnessed.len() > MAX_WITNESSES {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more witnesses not shown.</p>",
            witnessed.len() - MAX_WITNESSES
        );
    }
    let _ = write!(out, "<script>\n{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

fn verdict_badge(verdict: Verdict) -> String {
    format!("<span class=\"v v-{0}\">{0}</span>", esc(verdict.as_str()))
}

fn outcome_str(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

fn key_name(key: &KeyVerdict) -> String {
    key.key.clone().unwrap_or_else(|| "-".to_string())
}

fn header(out: &mut String, file_name: &str, check: &LinCheck) {
    let _ = write!(
        out,
        "<h1>Linearizability: <code>{}</code></h1>\n<table class=\"summary\">\n\
         <tr><td>model</td><td><code>{}</code></td></tr>\n\
         <tr><td>semantics</td><td><code>{}</code></td></tr>\n\
         <tr><td>verdict</td><td>{}</td></tr>\n\
         <tr><td>ops</td><td>{}</td></tr>\n\
         <tr><td>keys</td><td>{}</td></tr>\n\
         <tr><td>time</td><td>{:.1} ms</td></tr>\n</table>\n",
        esc(file_name),
        esc(check.model.as_str()),
        esc(check.semantics.as_str()),
        verdict_badge(check.verdict),
        check.ops,
        check.keys.len(),
        check.elapsed_ms
    );
}

fn key_table(out: &mut String, check: &LinCheck) {
    // The interesting keys first; a stable sort keeps key order within each group.
    let mut rows: Vec<usize> = (0..check.keys.len()).collect();
    rows.sort_by_key(|&i| check.keys[i].verdict == Verdict::Valid);
    out.push_str(
        "<h2>Keys</h2>\n<table class=\"keys\">\n<tr><th>key</th><th>verdict</th><th>ops</th>\
         <th>checked ops</th><th>steps</th><th>memo states</th><th>ms</th><th>reason</th></tr>\n",
    );
    for &i in rows.iter().take(MAX_TABLE_ROWS) {
        let k = &check.keys[i];
        let name = esc(&key_name(k));
        // Link to the witness only when one will actually be rendered below.
        let key_cell = if k.witness.is_some() && witness_rank(check, i) < MAX_WITNESSES {
            format!("<a href=\"#key-{i}\"><code>{name}</code></a>")
        } else {
            format!("<code>{name}</code>")
        };
        let _ = writeln!(
            out,
            "<tr><td>{key_cell}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td>\
             <td>{}</td></tr>",
            verdict_badge(k.verdict),
            k.ops,
            k.checked_ops,
            k.steps,
            k.memo_states,
            k.elapsed_ms,
            esc(k.reason.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>\n");
    if rows.len() > MAX_TABLE_ROWS {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more keys not shown.</p>",
            rows.len() - MAX_TABLE_ROWS
        );
    }
}

/// How many keys before key `i` carry a witness.
fn witness_rank(check: &LinCheck, i: usize) -> usize {
    check.keys[..i]
        .iter()
        .filter(|k| k.witness.is_some())
        .count()
}

fn witness_section(out: &mut String, i: usize, key: &KeyVerdict, w: &Witness) {
    let _ = write!(
        out,
        "<section id=\"key-{i}\">\n<h2>Key <code>{}</code> {}</h2>\n<p class=\"explain\">{}</p>\n",
        esc(&key_name(key)),
        verdict_badge(key.verdict),
        esc(&w.explanation)
    );
    if let Some(blocked) = &w.blocked_op {
        let _ = writeln!(
            out,
            "<p>Cannot be placed: <code>{}</code> <span class=\"meta\">process {}, line {}</span></p>",
            esc(&blocked.describe()),
            blocked.process,
            blocked.line
        );
        out.push_str(
            "<p class=\"legend\"><span><i class=\"sw\" style=\"background:#c62828\"></i>op that \
             cannot be placed</span><span><i class=\"sw\" style=\"background:#d6e4f3\"></i>\
             linearized (badge: position)</span><span><i class=\"sw\" style=\"background:#eee;\
             outline:2px solid #e0a000\"></i>concurrent with it</span><span><i class=\"sw\" \
             style=\"border-style:dashed\"></i>never returned (info)</span></p>\n",
        );
        timeline(out, w, blocked);
        let _ = writeln!(
            out,
            "<h3>One linearization of the longest linearizable prefix (last {} of {} ops)</h3>",
            w.linearization.len(),
            w.linearization_len
        );
        op_list(out, &w.linearization, w.linearization_len);
        let _ = writeln!(
            out,
            "<p>State after: <code>{}</code></p>",
            esc(&w.state_after)
        );
    }
    let _ = writeln!(
        out,
        "<h3>Furthest partial linearization the search reached (last {} of {} ops)</h3>",
        w.furthest.len(),
        w.furthest_len
    );
    op_list(out, &w.furthest, w.furthest_len);
    let _ = writeln!(
        out,
        "<p>State after: <code>{}</code></p>\n</section>",
        esc(&w.furthest_state)
    );
}

/// An ordered list numbered by position in the whole linearization, of
/// which `ops` is the tail.
fn op_list(out: &mut String, ops: &[OpView], total: usize) {
    if ops.is_empty() {
        out.push_str("<p class=\"note\">(empty)</p>\n");
        return;
    }
    let start = total.saturating_sub(ops.len()) + 1;
    let _ = writeln!(out, "<ol class=\"ops\" start=\"{start}\">");
    for op in ops {
        let ret = op.ret.map_or_else(|| "-".to_string(), |r| r.to_string());
        let _ = writeln!(
            out,
            "<li data-op=\"{}\"><code>{}</code> <span class=\"meta\">process {}, line {}, \
             call {}, ret {}</span></li>",
            op.index,
            esc(&op.describe()),
            op.process,
            op.line,
            op.call,
            ret
        );
    }
    out.push_str("</ol>\n");
}

fn tooltip(op: &OpView) -> String {
    let ret = op.ret.map_or_else(|| "none".to_string(), |r| r.to_string());
    esc(&format!(
        "process {}\nline {}\nf {}\ninput {}\noutput {}\noutcome {}\ncall {}\nret {}",
        op.process,
        op.line,
        op.f.as_str(),
        op.input,
        op.output,
        outcome_str(op.outcome),
        op.call,
        ret
    ))
}

/// How an op is drawn.
struct Drawn<'a> {
    op: &'a OpView,
    /// 1-based position in the full linearization, if in its shown tail.
    position: Option<usize>,
    concurrent: bool,
    blocked: bool,
}

fn timeline(out: &mut String, w: &Witness, blocked: &OpView) {
    // The union of the three lists, deduplicated by history index.
    let mut drawn: BTreeMap<usize, Drawn<'_>> = BTreeMap::new();
    let first = w.linearization_len.saturating_sub(w.linearization.len());
    let all = w
        .linearization
        .iter()
        .chain(&w.concurrent)
        .chain(std::iter::once(blocked));
    for op in all {
        drawn.entry(op.index).or_insert(Drawn {
            op,
            position: None,
            concurrent: false,
            blocked: false,
        });
    }
    for (i, op) in w.linearization.iter().enumerate() {
        if let Some(d) = drawn.get_mut(&op.index) {
            d.position = Some(first + i + 1);
        }
    }
    for op in &w.concurrent {
        if let Some(d) = drawn.get_mut(&op.index) {
            d.concurrent = true;
        }
    }
    if let Some(d) = drawn.get_mut(&blocked.index) {
        d.blocked = true;
    }

    // x by rank of the distinct times, so event indices and nanoseconds both
    // give readable bars.
    let mut times: Vec<u64> = drawn
        .values()
        .flat_map(|d| std::iter::once(d.op.call).chain(d.op.ret))
        .collect();
    times.sort_unstable();
    times.dedup();
    let rank = |t: u64| times.partition_point(|&x| x < t) as u64;
    let x_of = |r: u64| LABEL_W + STEP / 2 + r * STEP;
    // An op that never returned runs to one step past the last time.
    let right = x_of(times.len() as u64);
    let width = right + STEP / 2;

    // Lanes per process; overlapping ops of one process (possible when an
    // op never returned) get extra rows rather than drawn on top of each other.
    let mut lanes: BTreeMap<u64, Vec<Vec<&Drawn<'_>>>> = BTreeMap::new();
    let mut by_call: Vec<&Drawn<'_>> = drawn.values().collect();
    by_call.sort_by_key(|d| (d.op.call, d.op.index));
    for d in by_call {
        let rows = lanes.entry(d.op.process).or_default();
        let call = rank(d.op.call);
        let free = rows.iter().position(|row| {
            row.last()
                .is_some_and(|prev| prev.op.ret.is_some_and(|r| rank(r) <= call))
        });
        match free {
            Some(r) => rows[r].push(d),
            None => rows.push(vec![d]),
        }
    }
    let total_rows: u64 = lanes.values().map(|rows| rows.len() as u64).sum();
    let height = total_rows * ROW_H + 6;

    let _ = writeln!(
        out,
        "<div class=\"tlwrap\"><div class=\"tl\" style=\"width:{width}px;height:{height}px\">"
    );
    for (r, t) in times.iter().enumerate() {
        let _ = writeln!(
            out,
            "<div class=\"grid\" style=\"left:{}px\" title=\"time {t}\"></div>",
            x_of(r as u64)
        );
    }

    // Where each drawn op sits, for the linearization ticks below.
    let mut placed: BTreeMap<usize, (u64, u64, u64)> = BTreeMap::new();
    let mut row_index = 0u64;
    for (process, rows) in &lanes {
        let lane_top = row_index * ROW_H + 3;
        let _ = writeln!(
            out,
            "<div class=\"lane\" style=\"top:{}px\"></div><div class=\"lname\" style=\"top:{}px\" \
             title=\"process {process}\">process {process}</div>",
            lane_top.saturating_sub(2),
            lane_top
        );
        for row in rows {
            let top = row_index * ROW_H + 3;
            for d in row {
                let left = x_of(rank(d.op.call));
                let end = d.op.ret.map_or(right, |r| x_of(rank(r)));
                let bar_w = end.saturating_sub(left).max(24);
                placed.insert(d.op.index, (left, left + bar_w, top));
                bar(out, d, left, bar_w, top);
            }
            row_index += 1;
        }
    }

    // A thin tick per linearized op, non-decreasing left to right, so the
    // order can be read off the picture as well as from the badges.
    let mut prev = 0u64;
    for (i, op) in w.linearization.iter().enumerate() {
        let Some(&(left, end, top)) = placed.get(&op.index) else {
            continue;
        };
        let x = (left + 3)
            .max(prev + 4)
            .min(end.saturating_sub(4).max(left));
        prev = x;
        let _ = writeln!(
            out,
            "<div class=\"tick\" style=\"left:{x}px;top:{}px;height:{}px\" \
             title=\"linearization point {}\"></div>",
            top.saturating_sub(2),
            BAR_H + 4,
            first + i + 1
        );
    }
    out.push_str("</div></div>\n");
}

fn bar(out: &mut String, d: &Drawn<'_>, left: u64, width: u64, top: u64) {
    let mut class = String::from("bar");
    if d.position.is_none() && !d.blocked {
        class.push_str(" ctx");
    }
    if d.concurrent {
        class.push_str(" conc");
    }
    if d.blocked {
        class.push_str(" blk");
    }
    if d.op.ret.is_none() {
        class.push_str(" open");
    }
    let badge = d
        .position
        .map(|p| format!("<span class=\"n\">{p}</span>"))
        .unwrap_or_default();
    let mut label = d.op.describe();
    if d.op.ret.is_none() && d.op.outcome != Outcome::Info {
        label.push_str(" (info)");
    }
    let _ = writeln!(
        out,
        "<div class=\"{class}\" data-op=\"{}\" style=\"left:{left}px;top:{top}px;width:{width}px\" \
         title=\"{}\">{badge}{}</div>",
        d.op.index,
        tooltip(d.op),
        esc(&label)
    );
}

#[cfg(test)]
mod tests {
    use super::super::model::{ModelKind, Semantics};
    use super::super::witness::WITNESS_OPS;
    use super::*;
    use crate::history::lin::{LinFn, LinValue};

    const EVIL: &str = "<script>alert(1)</script>";

    fn op(
        index: usize,
        process: u64,
        f: LinFn,
        input: LinValue,
        call: u64,
        ret: Option<u64>,
    ) -> OpView {
        OpView {
            index,
            line: index + 1,
            process,
            f,
            input,
            output: LinValue::Nil,
            outcome: if ret.is_some() {
                Outcome::Ok
            } else {
                Outcome::Info
            },
            call,
            ret,
        }
    }

    fn key(name: Option<&str>, verdict: Verdict, witness: Option<Witness>) -> KeyVerdict {
        KeyVerdict {
            key: name.map(str::to_string),
            verdict,
            ops: 10,
            checked_ops: 9,
            steps: 123,
            attempts: 1,
            memo_states: 45,
            memory_bytes: 4096,
            elapsed_ms: 1.5,
            reason: None,
            witness,
        }
    }

    /// A witness with full 40-op lists, times in nanoseconds, one op that
    /// never returned and a hostile string in an input.
    fn witness() -> Witness {
        let linearization: Vec<OpView> = (0..WITNESS_OPS)
            .map(|i| {
                let input = if i == 3 {
                    LinValue::Str(EVIL.to_string())
                } else {
                    LinValue::Int(i as i64)
                };
                let t = 1_700_000_000_000_000_000 + i as u64 * 1_000_000;
                op(i, i as u64 % 5, LinFn::Write, input, t, Some(t + 1_500_000))
            })
            .collect();
        let concurrent: Vec<OpView> = (0..WITNESS_OPS)
            .map(|i| {
                let t = 1_700_000_000_040_000_000 + i as u64 * 10;
                let ret = (i % 7 != 0).then_some(t + 1_000);
                op(
                    100 + i,
                    5 + i as u64 % 4,
                    LinFn::Cas,
                    LinValue::List(vec![LinValue::Int(1), LinValue::Int(2)]),
                    t,
                    ret,
                )
            })
            .collect();
        let mut blocked = op(
            500,
            9,
            LinFn::Read,
            LinValue::Nil,
            1_700_000_000_040_000_005,
            Some(1_700_000_000_050_000_000),
        );
        blocked.output = LinValue::Int(77);
        Witness {
            blocked_op: Some(blocked),
            prefix_events: 300,
            prefix_ops: 150,
            furthest: linearization.clone(),
            linearization,
            linearization_len: 140,
            state_after: "3".to_string(),
            concurrent,
            furthest_len: 141,
            furthest_state: "4".to_string(),
            explanation: format!("read -> 77 cannot be placed {EVIL}"),
        }
    }

    fn check(keys: Vec<KeyVerdict>) -> LinCheck {
        LinCheck {
            model: ModelKind::CasRegister,
            semantics: Semantics::Porcupine,
            verdict: Verdict::Invalid,
            ops: 1000,
            keys,
            elapsed_ms: 12.25,
        }
    }

    #[test]
    fn html_is_self_contained_and_escaped() {
        let c = check(vec![
            key(Some("a"), Verdict::Valid, None),
            key(Some(EVIL), Verdict::Invalid, Some(witness())),
        ]);
        let html = render("hist<1>.edn", &c);
        assert!(html.starts_with("<!DOCTYPE html>"));
        for external in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!html.contains(external), "found {external}");
        }
        assert!(!html.contains(EVIL));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("hist&lt;1&gt;.edn"));
        assert!(html.contains("read -&gt; 77"));
        assert!(html.contains("cas-register") && html.contains("porcupine"));
        // Tail positions: 140 ops in all, the last 40 shown.
        assert!(html.contains("<ol class=\"ops\" start=\"101\">"));
        assert!(html.contains("<span class=\"n\">140</span>"));
        assert!(html.contains("class=\"bar ctx conc open\""));
        assert!(html.contains("class=\"bar blk\""));
        assert!(html.len() < 150_000, "{} bytes", html.len());
        eprintln!("html size: {} bytes", html.len());
    }

    #[test]
    fn html_without_blocked_op_shows_only_explanation_and_furthest() {
        let mut w = witness();
        w.blocked_op = None;
        let html = render("h", &check(vec![key(None, Verdict::Invalid, Some(w))]));
        assert!(html.contains("read -&gt; 77 cannot be placed"));
        assert!(html.contains("Furthest partial linearization"));
        assert!(!html.contains("class=\"tl\""));
        assert!(!html.contains("longest linearizable prefix"));
        assert!(html.contains("<a href=\"#key-0\"><code>-</code></a>"));
    }

    #[test]
    fn html_key_table_is_capped_with_failing_keys_first() {
        let mut keys: Vec<KeyVerdict> = (0..1000)
            .map(|i| key(Some(&format!("k{i:04}")), Verdict::Valid, None))
            .collect();
        keys.push(key(Some("zz-bad"), Verdict::Invalid, None));
        let html = render("h", &check(keys));
        assert!(html.contains("801 more keys not shown."));
        assert!(html.contains("zz-bad"));
        assert!(!html.contains("k0999"));
        assert!(html.len() < 150_000, "{} bytes", html.len());
    }
}
