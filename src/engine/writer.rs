//! The engine's own writer: the generator's ops applied through an
//! [`Adapter`] and recorded in `history.jsonl`, each invocation on disk
//! before the op is sent.

use super::scheduler::Client;
use super::EngineConfig;
use crate::error::Result;
use crate::generator::{Generator, Step};
use crate::history::jsonl::{record_invoke, WriterMsg};
use crate::history::{Function, OpRecord, Outcome};
use crate::target::{Adapter, Op};
use converge_sync::channel::Sender;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Instant;

/// One writer of CRDT updates: its generator, the adapter's state for it.
pub struct CrdtWriter<A: Adapter> {
    adapter: Arc<A>,
    history: Sender<WriterMsg>,
    /// The run's time origin.
    start: Instant,
    id: u32,
    seq: u64,
    generator: Generator,
    state: A::Writer,
    /// Picks the replica of each op when the adapter does not pin writers.
    rng: ChaCha8Rng,
}

impl<A: Adapter> CrdtWriter<A> {
    /// Writer `id` of a run under `config`.
    pub fn new(
        adapter: Arc<A>,
        config: &EngineConfig,
        history: Sender<WriterMsg>,
        start: Instant,
        id: u32,
    ) -> Self {
        CrdtWriter {
            state: adapter.writer(id),
            adapter,
            history,
            start,
            id,
            seq: 0,
            generator: Generator::new(config.seed, id, config.workload, config.mix.clone()),
            rng: rand::SeedableRng::seed_from_u64(crate::generator::derive_seed(
                config.seed,
                3_000_000 + id as u64,
            )),
        }
    }
}

impl<A: Adapter> Client for CrdtWriter<A> {
    async fn one(&mut self, invoke_at: Instant) -> Result<Outcome> {
        self.seq += 1;
        let step = self.generator.next_step();
        let replicas = self.adapter.replicas().max(1);
        let replica = if self.adapter.pinned() {
            self.id as usize % replicas
        } else {
            rand::RngExt::random_range(&mut self.rng, 0..replicas)
        };
        let (f, key, value, slot) = match step {
            Step::Read { key } => (Function::Read, key, 0, 0),
            Step::Update { key, intent } => {
                let (f, value, slot) = crate::interpreter::describe(&intent);
                (f, key, value, slot)
            }
        };
        let invoke_ns = invoke_at.duration_since(self.start).as_nanos() as u64;
        let mut record = OpRecord::invocation(f, self.id, replica as u16, key, value, invoke_ns);
        record.slot = slot;
        let invoked = record_invoke(&self.history, &record).await?;
        let op = Op {
            writer: self.id,
            seq: self.seq,
            replica,
            key,
            f,
            value,
            invoke_ns,
        };
        let applied = self.adapter.apply(&mut self.state, op).await;
        record.latency_ns = u64::try_from(invoke_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
        record.outcome = applied.outcome;
        record.aux = applied.aux;
        invoked.complete(&self.history, record, applied.read)?;
        Ok(applied.outcome)
    }
}
