//! Checker speed: history events (invoke + completion = 2 per op) checked per
//! second, on a recorded OR-Set and G-Counter history.
//!
//! `cargo bench --bench checkers`; the figure is in "thrpt" (events/s).

use converge::checker::check_all;
use converge::interpreter::{run, RunConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench_checkers(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("check_all");
    group.sample_size(20);
    for model in ["g-counter", "or-set", "mv-register"] {
        let mut config =
            RunConfig::for_model(model, 1, dir.path().join(model)).expect("catalog model");
        config.ops = 1_000_000;
        let history = run(&config).expect("run").history;
        eprintln!(
            "{model}: {} ops, {:.1} bytes/op in memory",
            history.ops.len(),
            history.bytes_per_op()
        );
        group.throughput(Throughput::Elements(2 * history.ops.len() as u64));
        group.bench_function(format!("{model} 1M ops"), |b| {
            b.iter(|| check_all(&history))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_checkers);
criterion_main!(benches);
