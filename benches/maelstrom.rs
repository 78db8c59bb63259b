//! How many messages per second the maelstrom router moves: each message is
//! parsed from a node's line, queued on the network with its latency, and
//! serialized for the receiving node. No processes are started, so this is
//! the harness's own cost per message.
//!
//! `cargo bench --bench maelstrom`; the figure is in "thrpt" (messages/s).

use converge::target::maelstrom::router::{Latency, Router};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

const NODES: usize = 25;
const BATCH: usize = 10_000;

fn bench_router(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let (events, _events_rx) = tokio::sync::mpsc::unbounded_channel();
    let command = converge::target::maelstrom::process::NodeCommand {
        bin: "/bin/true".into(),
        args: Vec::new(),
        log_dir: std::env::temp_dir(),
    };
    let mut router = Router::new(
        command,
        NODES,
        Latency::Constant(Duration::ZERO),
        ChaCha8Rng::seed_from_u64(1),
        events,
    );
    let lines: Vec<(usize, String)> = (0..BATCH)
        .map(|i| {
            let from = i % NODES;
            let to = (i + 1) % NODES;
            let line = format!(
                r#"{{"src":"n{from}","dest":"n{to}","body":{{"type":"gossip","msg_id":{i},"counts":{{"n0":{i},"n1":3,"n2":7}}}}}}"#
            );
            (from, line)
        })
        .collect();
    let mut group = c.benchmark_group("maelstrom router");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("route + deliver, 25 nodes", |b| {
        b.iter(|| {
            for (node, line) in &lines {
                router.route_line(*node, line);
            }
            router.deliver_due(tokio::time::Instant::now() + Duration::from_secs(1))
        })
    });
    group.finish();
    eprintln!("stats: {:?}", router.stats());
}

criterion_group!(benches, bench_router);
criterion_main!(benches);
