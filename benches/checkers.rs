//! Checker speed: history events (invoke + completion = 2 per op) checked per
//! second, on recorded G-Counter, G-Set, 2P-Set, OR-Set and MV-Register
//! histories; and the history's memory (bytes per op) for every reference
//! workload.
//!
//! `cargo bench --bench checkers`; the speed is in "thrpt" (events/s), the
//! memory on stderr, one line per workload, before the timings.

use converge::checker::check_all;
use converge::history::History;
use converge::interpreter::{run, RunConfig};
use converge::models::CATALOG;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Workloads whose checkers are timed; the others only have their memory
/// printed, which keeps the bench short.
const TIMED: [&str; 5] = ["g-counter", "g-set", "2p-set", "or-set", "mv-register"];

fn bench_checkers(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut timed: Vec<(&str, History)> = Vec::new();
    for model in CATALOG.iter().filter(|m| !m.faulty).map(|m| m.name) {
        let mut config =
            RunConfig::for_model(model, 1, dir.path().join(model)).expect("catalog model");
        config.ops = 1_000_000;
        let history = run(&config).expect("run").history;
        eprintln!(
            "{model}: {} ops, {:.1} bytes/op in memory",
            history.ops.len(),
            history.bytes_per_op()
        );
        if TIMED.contains(&model) {
            timed.push((model, history));
        }
    }
    let mut group = c.benchmark_group("check_all");
    group.sample_size(20);
    for (model, history) in &timed {
        group.throughput(Throughput::Elements(2 * history.ops.len() as u64));
        group.bench_function(format!("{model} 1M ops"), |b| b.iter(|| check_all(history)));
    }
    group.finish();
}

criterion_group!(benches, bench_checkers);
criterion_main!(benches);
