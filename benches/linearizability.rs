//! Linearizability checker speed on the shared corpora (porcupine's figures
//! on this kind of machine are in issue 3), on a 100,000-op register
//! history with 10 clients and 100 keys, and on a generated 50-client kv
//! history with 10 keys, crashed puts, hard keys and one corrupted read
//! (issue 16).
//!
//! `cargo bench --bench linearizability`. Parsing is excluded: each history
//! is read once, then only `check` is timed.

use converge::checker::linearizable::model::{ModelKind, Semantics};
use converge::checker::linearizable::{check, Explain, LinConfig};
use converge::history::detect::read_lin_history;
use converge::history::lin::{LinFn, LinHistory, LinOp, LinValue};
use converge::history::Outcome;
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::{Path, PathBuf};

#[path = "../tests/common/lin_gen.rs"]
mod lin_gen;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/linearizability")
}

fn read_folder(folder: &str) -> Vec<(PathBuf, LinHistory)> {
    let dir = corpus().join(folder);
    let Ok(verdicts) = std::fs::read_to_string(dir.join("verdicts.tsv")) else {
        eprintln!("notice: {} not found; skipped", dir.display());
        return Vec::new();
    };
    verdicts
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(|file| {
            let path = dir.join(file);
            let history = read_lin_history(&path, None).expect("corpus file parses");
            (path, history)
        })
        .collect()
}

fn config(model: ModelKind, semantics: Semantics) -> LinConfig {
    let mut config = LinConfig::new(model);
    config.semantics = semantics;
    config.explain = Explain::None;
    config
}

/// A linearizable register history: 10 clients over 100 keys, each op
/// taking effect at its midpoint, with overlapping intervals.
fn register_history(ops: usize) -> LinHistory {
    let mut state = [0i64; 100];
    let mut seed = 42u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut history = Vec::with_capacity(ops);
    for i in 0..ops {
        let key = (next() % 100) as usize;
        let call = i as u64 * 10;
        let (f, input, output) = if next() % 2 == 0 {
            let v = i as i64 + 1;
            state[key] = v;
            (LinFn::Write, LinValue::Int(v), LinValue::Nil)
        } else {
            let seen = match state[key] {
                0 => LinValue::Nil,
                v => LinValue::Int(v),
            };
            (LinFn::Read, LinValue::Nil, seen)
        };
        history.push(LinOp {
            process: (i % 10) as u64,
            key: Some(key.to_string()),
            f,
            input,
            output,
            outcome: Outcome::Ok,
            call,
            // Intervals of about ten neighbours overlap.
            ret: Some(call + 5 + next() % 95),
            line: i + 1,
        });
    }
    LinHistory {
        ops: history,
        warnings: Vec::new(),
    }
}

fn bench_linearizability(c: &mut Criterion) {
    let mut group = c.benchmark_group("linearizable");
    group.sample_size(10);
    let etcd = read_folder("etcd");
    let cas = config(ModelKind::CasRegister, Semantics::Porcupine);
    if !etcd.is_empty() {
        group.bench_function(format!("etcd corpus, {} histories", etcd.len()), |b| {
            b.iter(|| {
                for (path, history) in &etcd {
                    check(history, &cas, path).expect("checks");
                }
            })
        });
        if let Some((path, history)) = etcd.iter().find(|(p, _)| p.ends_with("etcd_002.log")) {
            group.bench_function("etcd_002", |b| b.iter(|| check(history, &cas, path)));
        }
    }
    let kv = config(ModelKind::Kv, Semantics::Porcupine);
    for (path, history) in read_folder("kv") {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        group.bench_function(format!("kv {}", name.unwrap_or_default()), |b| {
            b.iter(|| check(&history, &kv, &path))
        });
    }
    let knossos = read_folder("knossos");
    let knossos_config = config(ModelKind::CasRegister, Semantics::Knossos);
    if !knossos.is_empty() {
        group.bench_function(
            format!("knossos corpus, {} histories", knossos.len()),
            |b| {
                b.iter(|| {
                    for (path, history) in &knossos {
                        check(history, &knossos_config, path).expect("checks");
                    }
                })
            },
        );
    }
    let register = register_history(100_000);
    let register_config = config(ModelKind::Register, Semantics::Porcupine);
    group.bench_function("register 100k ops, 10 clients, 100 keys", |b| {
        b.iter(|| check(&register, &register_config, Path::new("generated")))
    });
    let fifty = lin_gen::kv_history(&lin_gen::KvPlan::fifty_clients());
    let mut fifty_config = config(ModelKind::Kv, Semantics::Porcupine);
    for explain in [Explain::None, Explain::All] {
        fifty_config.explain = explain;
        group.bench_function(
            format!("kv 50 clients, 10 keys, one invalid, explain {explain:?}"),
            |b| b.iter(|| check(&fifty, &fifty_config, Path::new("generated"))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_linearizability);
criterion_main!(benches);
