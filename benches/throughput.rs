//! End-to-end throughput of an in-process run, history recording included:
//! 1000 writers, 5 replicas, default nemesis, for G-Counter and OR-Set.
//!
//! Two figures per model, both in "thrpt" (ops/s):
//! - `sustained`: ops over the write phase, the span in which the writers,
//!   the network with its nemesis and the history recorder all run (what
//!   `throughput_ops_s` in report.json says);
//! - `whole run`: ops over all of `interpreter::run`, which adds the heal,
//!   anti-entropy to quiescence, final reads and idempotency probes.
//!
//! `cargo bench --bench throughput`.

use converge::interpreter::{run, RunConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

const OPS: u64 = 1_000_000;

fn bench_runs(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("in-process run");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(OPS));
    for model in ["g-counter", "or-set"] {
        let mut config =
            RunConfig::for_model(model, 1, dir.path().join(model)).expect("catalog model");
        config.ops = OPS;
        group.bench_function(format!("{model} 1000 writers {OPS} ops sustained"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| run(&config).expect("run").write_phase)
                    .sum()
            })
        });
        group.bench_function(format!("{model} 1000 writers {OPS} ops whole run"), |b| {
            b.iter(|| run(&config).expect("run"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_runs);
criterion_main!(benches);
