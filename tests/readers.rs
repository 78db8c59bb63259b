//! Readers of linearizability histories: Jepsen logs, Jepsen EDN, porcupine
//! kv EDN, format detection, malformed input, and the shared corpus.

mod common;

use converge::error::Error;
use converge::history::detect::{detect_format, read_lin_history};
use converge::history::edn::{parse_one, EdnKind, Events};
use converge::history::lin::{InputFormat, LinFn, LinHistory, LinOp, LinValue};
use converge::history::Outcome;
use std::path::{Path, PathBuf};

fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write test input");
    path
}

fn read(name: &str, content: &str, format: Option<InputFormat>) -> converge::Result<LinHistory> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir, name, content);
    read_lin_history(&path, format)
}

fn read_ok(name: &str, content: &str) -> LinHistory {
    match read(name, content, None) {
        Ok(h) => h,
        Err(e) => panic!("{name} should parse: {e}"),
    }
}

/// Asserts the input is rejected as a malformed line `line` with exit code 3.
#[track_caller]
fn assert_line_error(name: &str, content: &str, line: usize, needle: &str) {
    let err = read(name, content, None).expect_err("input should be rejected");
    assert_eq!(err.exit_code(), 3, "exit code of {err}");
    match &err {
        Error::HistoryLine {
            line: got, message, ..
        } => {
            assert_eq!(*got, line, "line of `{err}`");
            assert!(
                message.contains(needle),
                "message `{message}` should mention `{needle}`"
            );
        }
        other => panic!("expected a HistoryLine error, got {other:?}"),
    }
}

fn int(i: i64) -> LinValue {
    LinValue::Int(i)
}

// ---------------------------------------------------------------- Jepsen log

const LOG: &str = "\
2015-01-01 INFO  jepsen.core - Running test
INFO  jepsen.util - 0\t:invoke\t:read\tnil
INFO  jepsen.util - 1\t:invoke\t:cas\t[1 4]
INFO  jepsen.util - :nemesis\t:info\t:start\t\"cut off n1\"
INFO  jepsen.util - 0\t:ok\t:read\t3
INFO  jepsen.util -   1   :fail   :cas   [1 4]
some unrelated line
INFO  jepsen.util - 2\t:invoke\t:write\t4
INFO  jepsen.util - 2\t:info\t:write\t:timed-out
INFO  jepsen.util - 3\t:invoke\t:read\tnil
INFO  jepsen.util - 3\t:info\t:read\t:timed-out
INFO  jepsen.util - 4\t:invoke\t:write\t1\r
";

#[test]
fn jepsen_log_pairs_events() {
    let h = read_ok("etcd.log", LOG);
    let expected = vec![
        LinOp {
            process: 0,
            key: None,
            f: LinFn::Read,
            input: LinValue::Nil,
            output: int(3),
            outcome: Outcome::Ok,
            call: 0,
            ret: Some(2),
            line: 2,
        },
        LinOp {
            process: 1,
            key: None,
            f: LinFn::Cas,
            input: LinValue::List(vec![int(1), int(4)]),
            output: LinValue::List(vec![int(1), int(4)]),
            outcome: Outcome::Fail,
            call: 1,
            ret: Some(3),
            line: 3,
        },
        LinOp {
            process: 2,
            key: None,
            f: LinFn::Write,
            input: int(4),
            output: LinValue::Keyword("timed-out".into()),
            outcome: Outcome::Info,
            call: 4,
            ret: None,
            line: 8,
        },
        LinOp {
            process: 3,
            key: None,
            f: LinFn::Read,
            input: LinValue::Nil,
            output: LinValue::Nil,
            outcome: Outcome::Info,
            call: 6,
            ret: None,
            line: 10,
        },
        LinOp {
            process: 4,
            key: None,
            f: LinFn::Write,
            input: int(1),
            output: LinValue::Nil,
            outcome: Outcome::Info,
            call: 8,
            ret: None,
            line: 12,
        },
    ];
    assert_eq!(h.ops, expected);
    assert_eq!(
        h.warnings,
        vec!["1 invocations never completed; treated as info".to_string()]
    );
}

#[test]
fn jepsen_log_maps_kv_and_counter_names() {
    let log = "\
INFO  jepsen.util - 0 :invoke :get nil
INFO  jepsen.util - 0 :ok :get \"x y\"
INFO  jepsen.util - 1 :invoke :put 5
INFO  jepsen.util - 1 :ok :put 5
INFO  jepsen.util - 2 :invoke :increment -3
INFO  jepsen.util - 2 :ok :increment -3
INFO  jepsen.util - 3 :invoke :append \"z\"
INFO  jepsen.util - 3 :ok :append \"z\"
";
    let h = read_ok("kv.log", log);
    let fs: Vec<LinFn> = h.ops.iter().map(|op| op.f).collect();
    assert_eq!(fs, [LinFn::Read, LinFn::Write, LinFn::Add, LinFn::Append]);
    assert_eq!(h.ops[0].output, LinValue::Str("x y".into()));
    assert_eq!(h.ops[2].input, int(-3));
    assert!(h.warnings.is_empty());
}

// ------------------------------------------------------------------ EDN

/// A vector spanning many lines, with comments, commas, a multi-line
/// nemesis map, extra keys, keys in any order, a discard and a set.
const EDN_VECTOR: &str = r#"; a comment before the history
[{:process 0, :type :invoke, :f :write, :value 1, :time 10}
 {:type :ok, :value 1, :process 0, :f :write, :index 1}
 ; a comment between events
 {:process :nemesis,
  :type :info,
  :f :start,
  :value "Cut off [:n1 #[:n2]]"}
 #_ {:process 9, :type :invoke, :f :read}
 {:process 1 :type :invoke :f :cas :value [1 2]}
 {:process 1, :type :fail, :f :cas, :value [1 2],
  :error [:not-found "no \"such\" key\n"]}
 {:process 2, :type :invoke, :f :read, :value 7}
 {:process 2, :type :ok, :f :read, :value #{3 4}}
]
"#;

#[test]
fn edn_vector_with_comments_nemesis_and_multiline_maps() {
    let h = read_ok("history.edn", EDN_VECTOR);
    let summary: Vec<_> = h
        .ops
        .iter()
        .map(|op| (op.process, op.f, op.outcome, op.call, op.ret, op.line))
        .collect();
    assert_eq!(
        summary,
        [
            (0, LinFn::Write, Outcome::Ok, 0, Some(1), 2),
            (1, LinFn::Cas, Outcome::Fail, 2, Some(3), 10),
            (2, LinFn::Read, Outcome::Ok, 4, Some(5), 13),
        ]
    );
    assert_eq!(h.ops[1].input, LinValue::List(vec![int(1), int(2)]));
    // A read's invocation value is dropped; its completion value is the result.
    assert_eq!(h.ops[2].input, LinValue::Nil);
    assert_eq!(h.ops[2].output, LinValue::List(vec![int(3), int(4)]));
    assert!(h.warnings.is_empty());
}

#[test]
fn edn_list_and_stream_read_alike() {
    let stream = "\
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0,
 :type :ok, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
";
    let list = format!("({stream})");
    let a = read_ok("a.edn", stream);
    let b = read_ok("b.edn", &list);
    assert_eq!(a, b);
    assert_eq!(a.ops.len(), 2);
    assert_eq!(a.ops[1].outcome, Outcome::Info);
    assert_eq!(a.ops[1].ret, None);
    assert_eq!(a.ops[1].line, 4);
    assert_eq!(a.warnings.len(), 1);
}

#[test]
fn porcupine_kv_lines() {
    let kv = r#"{:process 9, :type :invoke, :f :append, :key "0", :value "x 9 0 y"}
{:process 4, :type :invoke, :f :get, :key 7, :value nil}
{:process 9, :type :ok, :f :append, :key "0", :value "x 9 0 y"}
{:process 4, :type :ok, :f :get, :key 7, :value ""}
{:process 2, :type :invoke, :f :put, :value "v"}
{:process 2, :type :ok, :f :put, :value "v"}
"#;
    let h = read_ok("c10-ok.txt", kv);
    assert_eq!(h.ops.len(), 3);
    assert_eq!(h.ops[0].key.as_deref(), Some("0"));
    assert_eq!(h.ops[0].f, LinFn::Append);
    assert_eq!(h.ops[0].input, LinValue::Str("x 9 0 y".into()));
    assert_eq!(h.ops[1].key.as_deref(), Some("7"));
    assert_eq!(h.ops[1].f, LinFn::Read);
    assert_eq!(h.ops[1].output, LinValue::Str(String::new()));
    assert_eq!(h.ops[2].key, None);
    assert_eq!(h.ops[2].f, LinFn::Write);
}

#[test]
fn edn_parser_values_and_lines() {
    let v = parse_one(
        "{:a/b \"s\\u00e9\\t\" :n -42 :big 7N :f 1.5\n :s #{nil true} :c \\c :l (sym)}",
        5,
    )
    .expect("parses");
    assert_eq!(v.line, 5);
    let get = |k: &str| &v.get(k).unwrap_or_else(|| panic!("key {k}")).kind;
    assert!(matches!(get("a/b"), EdnKind::Str(s) if s == "s\u{e9}\t"));
    assert_eq!(get("n"), &EdnKind::Int(-42));
    assert_eq!(get("big"), &EdnKind::Int(7));
    assert_eq!(get("f"), &EdnKind::Float(1.5));
    assert!(matches!(get("c"), EdnKind::Str(s) if s == "c"));
    assert_eq!(v.get("s").map(|s| s.line), Some(6));
    let mut events = Events::new("[1\n2,\n\n3] 4 (5)");
    let mut lines = Vec::new();
    while let Some(e) = events.next_event().expect("parses") {
        lines.push((e.line, e.kind));
    }
    assert_eq!(
        lines,
        [
            (1, EdnKind::Int(1)),
            (2, EdnKind::Int(2)),
            (4, EdnKind::Int(3)),
            (4, EdnKind::Int(4)),
            (4, EdnKind::Int(5)),
        ]
    );
    assert_eq!(
        parse_one(&"[".repeat(100_000), 1)
            .map(|_| ())
            .unwrap_err()
            .line,
        1
    );
}

// ------------------------------------------------------------- detection

#[test]
fn detects_formats_from_content() {
    let p = Path::new("history");
    let cases: &[(&str, Option<InputFormat>)] = &[
        (
            "{\"type\":\"header\",\"schema_version\":1}\n",
            Some(InputFormat::Jsonl),
        ),
        ("\n  { \"type\": \"invoke\"}", Some(InputFormat::Jsonl)),
        (LOG, Some(InputFormat::JepsenLog)),
        (
            "[2015-01-01] INFO  jepsen.util - 0\t:invoke\t:read\tnil",
            Some(InputFormat::JepsenLog),
        ),
        (EDN_VECTOR, Some(InputFormat::Edn)),
        ("({:type :invoke})", Some(InputFormat::Edn)),
        ("\n\n{:process 0, :type :invoke}", Some(InputFormat::Edn)),
        ("#jepsen.history.Op{:index 0}", Some(InputFormat::Edn)),
        ("hello world\n", None),
        ("", None),
    ];
    for (head, want) in cases {
        assert_eq!(detect_format(p, head.as_bytes()), *want, "head {head:?}");
    }
    assert_eq!(
        detect_format(Path::new("x.edn"), b"hello"),
        Some(InputFormat::Edn)
    );
}

#[test]
fn empty_and_undetectable_files_name_the_file() {
    for content in ["", "  \n\n\t"] {
        let err = read("empty.edn", content, None).expect_err("empty");
        assert_eq!(err.exit_code(), 3);
        assert!(matches!(&err, Error::History { path, .. } if path.ends_with("empty.edn")));
        let err = read("empty.edn", content, Some(InputFormat::Edn)).expect_err("empty");
        assert!(matches!(err, Error::History { .. }));
    }
    let err = read("mystery.txt", "hello world\n", None).expect_err("undetectable");
    assert_eq!(err.exit_code(), 3);
    let text = err.to_string();
    assert!(
        text.contains("mystery.txt") && text.contains("--input-format"),
        "{text}"
    );
}

/// Only nemesis events: a well-formed history with no client operation.
/// It reads (the checker calls it unknown, with the reason); a file with
/// no event at all is still an input error.
#[test]
fn only_nemesis_events_reads_as_a_history_with_no_client_operation() {
    let h = read_ok(
        "n.edn",
        "[{:process :nemesis, :type :info, :f :start, :value nil}]",
    );
    assert!(h.ops.is_empty(), "{:?}", h.ops);
    assert!(
        h.warnings.iter().any(|w| w.contains("1 nemesis event")),
        "{:?}",
        h.warnings
    );
    let err = read("n.edn", "[]", None).expect_err("no events at all");
    assert!(matches!(err, Error::History { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 3);
}

#[test]
fn explicit_format_overrides_detection() {
    let h = read(
        "x.txt",
        "{:process 0, :type :invoke, :f :read}\n",
        Some(InputFormat::Edn),
    )
    .expect("parses");
    assert_eq!(h.ops.len(), 1);
    let err = read(
        "x.txt",
        "{:process 0, :type :invoke, :f :read}\n",
        Some(InputFormat::JepsenLog),
    )
    .expect_err("no jepsen.util lines");
    assert!(matches!(err, Error::History { .. }));
}

// ------------------------------------------------------------- malformed

const INV0: &str = "{:process 0, :type :invoke, :f :write, :value 1}\n";

#[test]
fn bad_type() {
    let edn = format!("{INV0}\n{{:process 0, :type :done, :f :write, :value 1}}\n");
    assert_line_error("t.edn", &edn, 3, ":done");
    let log =
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:okay\t:read\t3\n";
    assert_line_error("t.log", log, 2, ":okay");
}

#[test]
fn unbalanced_brackets() {
    // Never closed: the error names the line of the opening bracket.
    let edn = format!("[{INV0} {{:process 0, :type :ok, :f :write, :value 1}}\n");
    assert_line_error("u.edn", &edn, 1, "never closed");
    let edn = format!("{INV0}{{:process 0, :type :ok,\n :f :write, :value [1 2}}\n");
    assert_line_error("u.edn", &edn, 3, "expected `]`");
    let edn = format!("{INV0}]\n");
    assert_line_error("u.edn", &edn, 2, "no matching opening");
    let log = "INFO  jepsen.util - 1\t:invoke\t:cas\t[1 4\n";
    assert_line_error("u.log", log, 1, "never closed");
}

#[test]
fn unterminated_string() {
    let edn = format!("{INV0}\n{{:process 0, :type :ok, :f :write, :value \"abc}}\n\n");
    assert_line_error("s.edn", &edn, 3, "never closed");
    let edn = format!("{INV0}{{:process 0, :type :ok, :f :write, :value \"\\q\"}}\n");
    assert_line_error("s.edn", &edn, 2, "unknown escape");
}

#[test]
fn integer_overflow() {
    let edn =
        format!("{INV0}{{:process 1, :type :invoke, :f :write,\n :value 99999999999999999999}}\n");
    assert_line_error("o.edn", &edn, 3, "64-bit");
    let log = "INFO  jepsen.util - 0\t:invoke\t:write\t-9223372036854775809\n";
    assert_line_error("o.log", log, 1, "64-bit");
    let log = "INFO  jepsen.util - 99999999999999999999\t:invoke\t:write\t1\n";
    assert_line_error("o.log", log, 1, "out of range");
}

#[test]
fn completion_without_invoke() {
    let edn = format!("{INV0}{{:process 0, :type :ok, :f :write, :value 1}}\n{{:process 0, :type :ok, :f :write, :value 1}}\n");
    assert_line_error("c.edn", &edn, 3, "no open invocation");
    let log = "\nINFO  jepsen.util - 5\t:info\t:cas\t:timed-out\n";
    assert_line_error("c.log", log, 2, "no open invocation");
}

#[test]
fn double_invoke() {
    let edn = format!("{INV0}; still open\n{INV0}");
    assert_line_error("d.edn", &edn, 3, "line 1");
    let log =
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n";
    assert_line_error("d.log", log, 2, "still open");
}

#[test]
fn unknown_f() {
    let edn = format!("{INV0}{{:process 1, :type :invoke, :f :frobnicate}}\n");
    assert_line_error("f.edn", &edn, 2, "frobnicate");
    let log = "INFO  jepsen.util - 0\t:invoke\t:frobnicate\tnil\n";
    assert_line_error("f.log", log, 1, "frobnicate");
    let log = "INFO  jepsen.util - 0\t:invoke\tread\tnil\n";
    assert_line_error("f.log", log, 1, "unknown :f");
}

#[test]
fn completion_f_differs_from_invoke() {
    let edn = format!("{INV0}{{:process 0, :type :ok, :f :read, :value 1}}\n");
    assert_line_error("m.edn", &edn, 2, "line 1");
}

#[test]
fn garbage_lines() {
    let edn = format!("{INV0}hello\n");
    assert_line_error("g.edn", &edn, 2, "symbol `hello`");
    let edn = format!("{INV0}@#$\n");
    assert_line_error("g.edn", &edn, 2, "unexpected character");
    let edn = format!("{INV0}{{:process 0 :type}}\n");
    assert_line_error("g.edn", &edn, 2, "missing its value");
    let log = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - what is this\n";
    assert_line_error("g.log", log, 2, "process `what`");
    let log = "INFO  jepsen.util - 0\t:invoke\n";
    assert_line_error("g.log", log, 1, "expected `<process>");
    let log = "INFO  jepsen.util - 0\t:invoke\t:write\t1 2\n";
    assert_line_error("g.log", log, 1, "unexpected text");
    let log = "INFO  jepsen.util - 0\t:invoke\t:write\t{:a 1}\n";
    assert_line_error("g.log", log, 1, "unsupported operation value");
}

#[test]
fn odd_inputs_never_panic() {
    let inputs = [
        "{",
        "}",
        "#",
        "#_",
        "#{",
        "\\",
        "\"",
        ":",
        "::",
        "[#_]",
        "#tag",
        "##Foo",
        "1/2",
        "1.2.3",
        "-",
        "+1",
        "\u{feff}[]",
        "(((",
        "{:process -1, :type :invoke, :f :read}",
        "{:process 0, :type :invoke, :f :read, :key [1]}",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\\newline",
        "\\uzzzz",
        "{:process 0 :process 1}",
        "[1 2 3]",
    ];
    for input in inputs {
        let _ = read("odd.edn", input, Some(InputFormat::Edn));
        let _ = read(
            "odd.log",
            &format!("INFO  jepsen.util - {input}"),
            Some(InputFormat::JepsenLog),
        );
    }
    let err = read("bad.edn", "[\n\u{0}\u{ff}", None);
    assert!(err.is_err());
    let bytes_dir = tempfile::tempdir().expect("tempdir");
    let path = bytes_dir.path().join("latin1.edn");
    std::fs::write(
        &path,
        b"[{:process 0, :type :invoke, :f :read}\n {:value \"\xe9\"}]",
    )
    .expect("write");
    match read_lin_history(&path, None) {
        Err(Error::HistoryLine { line: 2, .. }) => {}
        other => panic!("expected a line-2 UTF-8 error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- corpus

/// The corpus folder; under CI its absence fails the test.
fn corpus_dir() -> Option<PathBuf> {
    common::shared_dir("corpus/linearizability")
}

fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read corpus dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Checks one corpus file: detected format, op count (one op per client
/// invocation, so nothing from the nemesis), the functions used, ordering.
fn check_corpus_file(path: &Path, format: InputFormat, allowed: &[LinFn]) -> LinHistory {
    let bytes = std::fs::read(path).expect("read corpus file");
    assert_eq!(
        detect_format(path, &bytes),
        Some(format),
        "format of {}",
        path.display()
    );
    let h = read_lin_history(path, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(!h.ops.is_empty(), "{}: no ops", path.display());
    let text = String::from_utf8_lossy(&bytes);
    let invokes = text.matches(":invoke").count();
    assert_eq!(
        h.ops.len(),
        invokes,
        "{}: one op per invocation",
        path.display()
    );
    for op in &h.ops {
        assert!(
            allowed.contains(&op.f),
            "{}: unexpected {:?}",
            path.display(),
            op.f
        );
        assert_eq!(op.ret.is_none(), op.outcome == Outcome::Info, "{op:?}");
        assert!(op.ret.is_none_or(|r| r > op.call), "{op:?}");
        assert!(op.line > 0);
    }
    assert!(
        h.ops.windows(2).all(|w| w[0].call < w[1].call),
        "{}: ordered by call",
        path.display()
    );
    h
}

#[test]
fn corpus_etcd_logs() {
    let Some(dir) = corpus_dir() else { return };
    let logs = files(&dir.join("etcd"), &["log"]);
    assert_eq!(logs.len(), 60);
    for path in logs {
        let h = check_corpus_file(
            &path,
            InputFormat::JepsenLog,
            &[LinFn::Read, LinFn::Write, LinFn::Cas],
        );
        assert!(h.ops.iter().all(|op| op.key.is_none()));
    }
}

#[test]
fn corpus_kv() {
    let Some(dir) = corpus_dir() else { return };
    let histories = files(&dir.join("kv"), &["txt"]);
    assert_eq!(histories.len(), 4);
    for path in histories {
        let h = check_corpus_file(
            &path,
            InputFormat::Edn,
            &[LinFn::Read, LinFn::Write, LinFn::Append],
        );
        assert!(h.ops.iter().all(|op| op.key.is_some()));
    }
}

#[test]
fn corpus_knossos() {
    let Some(dir) = corpus_dir() else { return };
    let histories = files(&dir.join("knossos"), &["edn"]);
    assert_eq!(histories.len(), 61);
    for path in histories {
        check_corpus_file(
            &path,
            InputFormat::Edn,
            &[LinFn::Read, LinFn::Write, LinFn::Cas],
        );
    }
}

#[test]
fn corpus_knossos_specifics() {
    let Some(dir) = corpus_dir() else { return };
    let knossos = dir.join("knossos");

    // Nemesis events (two of them multi-line maps) and comments.
    let h = read_lin_history(&knossos.join("bad/cas-failure.edn"), None).expect("parses");
    let write2 = h
        .ops
        .iter()
        .find(|op| op.line == 468)
        .expect("op invoked on line 468");
    assert_eq!(
        (write2.process, write2.f, write2.outcome),
        (76, LinFn::Write, Outcome::Ok)
    );
    assert_eq!(write2.input, int(2));

    // A `(...)` list with comments between its elements.
    let h = read_lin_history(&knossos.join("bad/rethink-fail-minimal.edn"), None).expect("parses");
    let summary: Vec<_> = h
        .ops
        .iter()
        .map(|op| (op.process, op.call, op.ret, op.line, op.output.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (0, 0, Some(1), 1, int(0)),
            (1, 2, Some(4), 4, int(3)),
            (2, 3, Some(5), 5, int(4)),
            (3, 6, Some(7), 12, int(4)),
        ]
    );

    // A leading comment line; reads whose invocation carries a value.
    let h = read_lin_history(&knossos.join("bad/bad-analysis.edn"), None).expect("parses");
    assert!(h
        .ops
        .iter()
        .filter(|op| op.f == LinFn::Read)
        .all(|op| op.input == LinValue::Nil));
    assert_eq!(
        h.warnings,
        ["2 invocations never completed; treated as info"]
    );
    let h = read_lin_history(&knossos.join("good/cas-register-bug.edn"), None).expect("parses");
    assert_eq!(h.ops[0].line, 2);

    // An extra :error key with a vector value.
    let h = read_lin_history(&knossos.join("bad/immediate-failure.edn"), None).expect("parses");
    assert_eq!(h.ops.len(), 2);
    assert_eq!(h.ops[1].outcome, Outcome::Fail);
}
