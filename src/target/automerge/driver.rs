//! The run: seeded writers, sync pumping, gossip merges and save/load
//! round trips, then the final phase (heal, sync to quiescence, read, probe).

use super::layout::{Layout, Slot};
use super::links::{LinkStats, Links, SyncPolicy, RESET_AFTER_TICKS};
use super::replica::{genesis, Fingerprint, MergeMode, Replica};
use super::wire::Wire;
use super::{AutomergeConfig, AutomergeFault};
use crate::error::{Error, Result};
use crate::generator::derive_seed;
use crate::history::jsonl::{HistoryWriter, WriterMsg};
use crate::history::OpBatch;
use crate::history::{
    FinalRead, Function, Header, History, OpRecord, Outcome, Probe, ProbeKind, Quiescence,
    SCHEMA_VERSION,
};
use crate::nemesis::Nemesis;
use automerge::AutoCommit;
use converge_models::{Dot, Workload};
use converge_sync::channel::Sender;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

/// Ticks between whole-document gossip merges.
const MERGE_EVERY_TICKS: u64 = 16;
/// Ticks between save/load round trips.
const SAVE_EVERY_TICKS: u64 = 32;
/// While writers run, a replica offers its new changes to a peer at most
/// this often (replies to the peer go out at once).
const SYNC_EVERY_TICKS: u64 = 4;
/// Earlier documents kept for stale-merge probes.
const MAX_SNAPSHOTS: usize = 8;
/// Replicas the final idempotency probes visit.
const MAX_PROBED: usize = 8;
/// Ops per history batch.
const BATCH: usize = 1024;
/// Without a head change for this many ticks, every link has had the time to
/// notice a loss, restart and finish a round trip: the run is quiescent.
pub const QUIET_TICKS: u64 = 2 * RESET_AFTER_TICKS + 2;
/// First code point used for text: every character a writer inserts is a
/// distinct supplementary-plane code point, so the checker can follow each.
pub const FIRST_CHAR: u32 = 0x1_0000;

/// What a run produced besides its history file.
pub struct AutomergeResult {
    /// The history, as the checkers see it.
    pub history: History,
    /// Time writers ran.
    pub write_phase: Duration,
    /// Whole run.
    pub total: Duration,
    /// RSS before the run, MB.
    pub rss_start_mb: f64,
    /// What the nemesis did.
    pub nemesis_log: Vec<String>,
    /// What the sync links did.
    pub links: LinkStats,
    /// Sync links (replica, peer) in the topology.
    pub link_count: usize,
    /// The first receive errors, verbatim.
    pub link_errors: Vec<String>,
    /// Ticks of the write phase and of the final phase.
    pub ticks: (u64, u64),
    /// What the load added up to, in virtual time.
    pub load: crate::vload::LoadSummary,
}

/// Who issued an op, where, and when.
#[derive(Clone, Copy)]
struct Origin {
    writer: u32,
    replica: u16,
    invoke: Duration,
}

struct Run<'a> {
    config: &'a AutomergeConfig,
    layout: Layout,
    rng: ChaCha8Rng,
    start: Instant,
    replicas: Vec<Replica>,
    wire: Wire,
    links: Links,
    snapshots: Vec<AutoCommit>,
    batch: OpBatch,
    sender: Sender<WriterMsg>,
    next_tag: u64,
    next_char: u32,
    tick: u64,
}

fn closed() -> Error {
    Error::Config("history writer stopped early".into())
}

/// Runs the automerge target and records its history in `config.out`.
pub fn run(config: &AutomergeConfig) -> Result<AutomergeResult> {
    config.validate()?;
    std::fs::create_dir_all(&config.out).map_err(|e| Error::io(&config.out, e))?;
    let rss_start_mb = crate::metrics::rss_mb().map_or(0.0, |r| r.0);
    let layout = Layout::new(config.keys);
    let header = Header {
        schema_version: SCHEMA_VERSION,
        seed: config.seed,
        // The header needs a workload; MV-register is the closest: conflicting
        // puts keep every concurrent value (`get_all`).
        workload: Workload::MvRegister,
        model: config.model().into(),
        target: "automerge".into(),
        writers: config.writers,
        replicas: config.replicas,
        keys: layout.total(),
        ops: config.ops,
        nemesis: config.nemesis.to_spec(),
        reproduce: config.reproduce(),
        linearizable: false,
    };
    let writer = HistoryWriter::start(&config.out.join("history.jsonl"), header)?;
    let start = Instant::now();
    // `drive` owns the only other sender and drops it on every path, so the
    // history on disk is complete up to a failure, whatever happened.
    let outcome = drive(config, layout, writer.sender(), start);
    let history = writer.finish()?;
    let mut result = outcome?;
    result.history = history;
    result.total = start.elapsed();
    result.rss_start_mb = rss_start_mb;
    Ok(result)
}

fn drive(
    config: &AutomergeConfig,
    layout: Layout,
    sender: Sender<WriterMsg>,
    start: Instant,
) -> Result<AutomergeResult> {
    let merge_mode = match config.fault {
        Some(AutomergeFault::ReplaceOnMerge) => MergeMode::Replace,
        _ => MergeMode::Merge,
    };
    let policy = match config.fault {
        Some(AutomergeFault::DropSync) => SyncPolicy::DropEveryThird,
        _ => SyncPolicy::Robust,
    };
    let mut base = genesis(layout)?;
    let replicas = (0..config.replicas)
        .map(|id| Replica::new(id, &mut base, merge_mode))
        .collect::<Result<Vec<_>>>()?;
    let nemesis = Nemesis::new(
        config.nemesis.clone(),
        config.seed,
        config.replicas as usize,
    );
    let mut run = Run {
        config,
        layout,
        rng: ChaCha8Rng::seed_from_u64(derive_seed(config.seed, 1)),
        start,
        replicas,
        wire: Wire::new(nemesis),
        links: Links::new(config.replicas, policy),
        snapshots: Vec::new(),
        batch: OpBatch::default(),
        sender,
        next_tag: 1,
        next_char: FIRST_CHAR,
        tick: 0,
    };
    let load = run.write_phase()?;
    let write_phase = run.start.elapsed();
    let write_ticks = run.tick;
    run.final_phase()?;
    Ok(AutomergeResult {
        history: History::default(),
        write_phase,
        total: Duration::ZERO,
        rss_start_mb: 0.0,
        nemesis_log: std::mem::take(&mut run.wire.log),
        links: run.links.stats,
        link_count: run.links.count(),
        link_errors: std::mem::take(&mut run.links.errors),
        ticks: (write_ticks, run.tick - write_ticks),
        load,
    })
}

impl Run<'_> {
    /// Writes until the load's end or op budget; each tick is
    /// [`crate::vload::TICK`] of virtual time.
    fn write_phase(&mut self) -> Result<crate::vload::LoadSummary> {
        let config = self.config;
        let spec = config.effective_load();
        let mut schedule = crate::vload::Schedule::new(&spec, Some(&config.out))?;
        let ops_per_phase = (config.ops / 8).max(1);
        // A run bounded in time changes phase by ticks: it has no op count
        // to divide.
        let ticks_per_phase = schedule.last_tick().map(|e| (e / 8).max(1));
        let mut done = 0u64;
        let mut phase = 0u64;
        // SIGINT/SIGTERM: stop writing; what was done is checked.
        while !crate::interrupt::requested() {
            let Some(plan) = schedule.begin_tick() else {
                break;
            };
            self.tick += 1;
            let logged = self.wire.log.len();
            let n = match plan {
                crate::vload::Plan::Prefix(n) => n as usize,
                crate::vload::Plan::List => schedule.acting().len(),
            };
            for i in 0..n {
                // The budget counts history ops: a text insert of several
                // characters is several, so the last one may be cut short.
                let room = schedule.ops_left().unwrap_or(u64::MAX);
                if room == 0 {
                    break;
                }
                let writer = match plan {
                    // Without a shape, the acting writers are picked at random.
                    crate::vload::Plan::Prefix(_) if config.load.is_none() => {
                        self.rng.random_range(0..config.writers)
                    }
                    crate::vload::Plan::Prefix(_) => i as u32,
                    crate::vload::Plan::List => schedule.acting()[i],
                };
                let records = self.apply_op(writer, room)?;
                schedule.complete(i, records, 0);
                done += records;
            }
            let now = match ticks_per_phase {
                Some(t) => (self.tick - 1) / t,
                None => done / ops_per_phase,
            };
            if now != phase {
                phase = now;
                if let Some(event) = self.wire.nemesis().enter_phase(phase) {
                    self.wire.log.push(match ticks_per_phase {
                        Some(_) => format!("at tick {}: {event}", self.tick),
                        None => format!("after {done} ops: {event}"),
                    });
                }
                if self.snapshots.len() < MAX_SNAPSHOTS {
                    let r = self.wire.nemesis().pick(self.replicas.len());
                    let snapshot = self.replicas[r].fork();
                    self.snapshots.push(snapshot);
                }
            }
            self.sync_tick(SYNC_EVERY_TICKS);
            if self.tick.is_multiple_of(MERGE_EVERY_TICKS) {
                self.gossip_merge()?;
            }
            if self.tick.is_multiple_of(SAVE_EVERY_TICKS) {
                let r = self.wire.nemesis().pick(self.replicas.len());
                self.round_trip(r)?;
            }
            if self.batch.ops.len() >= BATCH {
                self.flush()?;
            }
            for event in &self.wire.log[logged..] {
                schedule.nemesis(event);
            }
            schedule.end_tick()?;
        }
        self.flush()?;
        schedule.finish()
    }

    fn sync_tick(&mut self, throttle: u64) {
        self.links
            .pump(self.tick, throttle, &mut self.replicas, &mut self.wire);
        for packet in self.wire.tick() {
            self.links.deliver(&packet, &mut self.replicas);
        }
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.ops.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.sender
            .send(WriterMsg::Ops(Box::new(batch)))
            .map_err(|_| closed())
    }

    fn record(
        &mut self,
        origin: Origin,
        f: Function,
        key: u32,
        value: u64,
        observed: &[u64],
    ) -> Result<()> {
        let Origin {
            writer,
            replica,
            invoke,
        } = origin;
        let now = self.start.elapsed();
        let record = OpRecord {
            invoke_ns: invoke.as_nanos() as u64,
            value: value as i64,
            aux: 0,
            latency_ns: u64::try_from((now - invoke).as_nanos()).unwrap_or(u64::MAX),
            process: writer,
            key,
            slot: 0,
            clock_sum: 0,
            replica,
            f,
            outcome: Outcome::Ok,
        };
        let observed: Vec<Dot> = observed.iter().map(|t| Dot::new(0, *t)).collect();
        // A batch carries one tick (the ops' logical time): a new tick
        // starts a new batch.
        if self.batch.tick != Some(self.tick) {
            self.flush()?;
            self.batch.tick = Some(self.tick);
        }
        self.batch.push(record, None, &observed, None);
        Ok(())
    }

    fn key_index(&mut self) -> u32 {
        if self.rng.random_bool(self.config.hot_key_ratio) {
            0
        } else {
            self.rng.random_range(0..self.config.keys)
        }
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag - 1
    }

    /// One writer op on the writer's replica; every op commits (is
    /// acknowledged). Returns the history ops it made (a text insert makes
    /// one per character, at most `room`).
    fn apply_op(&mut self, writer: u32, room: u64) -> Result<u64> {
        let r = (writer % self.config.replicas as u32) as u16;
        let origin = Origin {
            writer,
            replica: r,
            invoke: self.start.elapsed(),
        };
        let layout = self.layout;
        let roll = self.rng.random_range(0..100u32);
        let at = self.rng.random::<u64>();
        let remove = self.rng.random_bool(self.config.remove_ratio);
        let text_room = self.next_char + 3 <= char::MAX as u32;
        match roll {
            0..30 => {
                let i = self.key_index();
                let delta = self.rng.random_range(1..=5i64);
                self.replicas[r as usize].increment(i, delta)?;
                let key = layout.key(Slot::Counter(i));
                self.record(origin, Function::Increment, key, delta as u64, &[])
                    .map(|()| 1)
            }
            30..55 => {
                let i = self.key_index();
                let tag = self.tag();
                let observed = self.replicas[r as usize].put(i, tag)?;
                let key = layout.key(Slot::Register(i));
                self.record(origin, Function::Write, key, tag, &observed)
                    .map(|()| 1)
            }
            roll if roll < 80 || !text_room => {
                let key = layout.key(Slot::List);
                if remove {
                    if let Some(tag) = self.replicas[r as usize].delete(at)? {
                        return self
                            .record(origin, Function::Remove, key, tag, &[tag])
                            .map(|()| 1);
                    }
                }
                let tag = self.tag();
                self.replicas[r as usize].insert(at, tag)?;
                self.record(origin, Function::Add, key, tag, &[])
                    .map(|()| 1)
            }
            _ => {
                let key = layout.key(Slot::Text);
                if remove {
                    if let Some(c) = self.replicas[r as usize].splice_delete(at)? {
                        let code = c as u64;
                        return self
                            .record(origin, Function::Remove, key, code, &[code])
                            .map(|()| 1);
                    }
                }
                let n = self
                    .rng
                    .random_range(1..=3u32)
                    .min(u32::try_from(room).unwrap_or(u32::MAX));
                let chars: String = (self.next_char..self.next_char + n)
                    .filter_map(char::from_u32)
                    .collect();
                self.next_char += n;
                self.replicas[r as usize].splice_insert(at, &chars)?;
                let mut made = 0;
                for c in chars.chars() {
                    self.record(origin, Function::Add, key, c as u64, &[])?;
                    made += 1;
                }
                Ok(made)
            }
        }
    }

    /// Whole-document anti-entropy between two replicas, which the nemesis
    /// can cut (partition), lose or duplicate like any message.
    fn gossip_merge(&mut self) -> Result<()> {
        let n = self.replicas.len();
        if n < 2 {
            return Ok(());
        }
        let src = self.wire.nemesis().pick(n);
        let dst = (src + 1 + self.wire.nemesis().pick(n - 1)) % n;
        if !self.wire.connected(src as u16, dst as u16) || self.wire.nemesis().drop_gossip() {
            return Ok(());
        }
        let copies = if self.wire.nemesis().duplicate().is_some() {
            self.wire.stats.duplicated += 1;
            self.wire.stats.duplicates_delivered += 1;
            2
        } else {
            1
        };
        let mut state = self.replicas[src].fork();
        for _ in 0..copies {
            self.replicas[dst].merge_from(&mut state)?;
            self.wire.stats.gossip_merges += 1;
        }
        Ok(())
    }

    fn probe(
        &self,
        kind: ProbeKind,
        replica: u16,
        before: Fingerprint,
        after: Fingerprint,
    ) -> Result<()> {
        let changed = before != after;
        let probe = Probe {
            probe: kind,
            replica,
            key: self.layout.key(Slot::Document),
            state_changed: changed,
            before: changed.then(|| before.to_value()),
            after: changed.then(|| after.to_value()),
        };
        self.sender
            .send(WriterMsg::Probe(probe))
            .map_err(|_| closed())
    }

    /// Saves and reloads replica `r`; the round trip must change nothing.
    fn round_trip(&mut self, r: usize) -> Result<()> {
        let before = self.replicas[r].fingerprint()?;
        self.replicas[r].save_and_load()?;
        let after = self.replicas[r].fingerprint()?;
        self.probe(ProbeKind::SaveLoad, r as u16, before, after)
    }

    fn final_phase(&mut self) -> Result<()> {
        self.wire.heal();
        let healed = Instant::now();
        let bound = self.config.max_rounds as u64 * RESET_AFTER_TICKS;
        let mut heads: Vec<_> = self.replicas.iter_mut().map(Replica::heads).collect();
        let mut versions: Vec<u64> = self.replicas.iter().map(|r| r.version).collect();
        let mut last_change = healed;
        let mut quiet = 0;
        let mut ticks = 0;
        let reached = loop {
            if quiet >= QUIET_TICKS {
                break true;
            }
            if ticks >= bound {
                break false;
            }
            self.tick += 1;
            ticks += 1;
            self.sync_tick(1);
            let mut changed = false;
            for (i, replica) in self.replicas.iter_mut().enumerate() {
                if replica.version != versions[i] {
                    versions[i] = replica.version;
                    let now = replica.heads();
                    if now != heads[i] {
                        heads[i] = now;
                        changed = true;
                    }
                }
            }
            if changed {
                quiet = 0;
                last_change = Instant::now();
            } else {
                quiet += 1;
            }
        };
        let quiescence = Quiescence {
            reached,
            rounds: u32::try_from(ticks).unwrap_or(u32::MAX),
            max_rounds: u32::try_from(bound).unwrap_or(u32::MAX),
            convergence_ns: reached.then(|| (last_change - healed).as_nanos() as u64),
        };
        for r in 0..self.replicas.len() {
            for (key, value) in self.replicas[r].read_all(self.layout)? {
                let read = FinalRead {
                    replica: r as u16,
                    key,
                    value,
                };
                self.sender
                    .send(WriterMsg::Final(read))
                    .map_err(|_| closed())?;
            }
        }
        self.idempotency_probes()?;
        self.sender
            .send(WriterMsg::Quiescence(quiescence))
            .map_err(|_| closed())?;
        self.sender
            .send(WriterMsg::Network(self.wire.stats))
            .map_err(|_| closed())
    }

    /// Self-merge (with a fork), stale merge (with earlier documents),
    /// re-delivery of sync messages (through the live link and a fresh one),
    /// and a save/load round trip, on a spread of replicas.
    fn idempotency_probes(&mut self) -> Result<()> {
        let n = self.replicas.len();
        let step = n.div_ceil(MAX_PROBED).max(1);
        for r in (0..n).step_by(step) {
            let before = self.replicas[r].fingerprint()?;
            let mut itself = self.replicas[r].fork();
            self.replicas[r].merge_from(&mut itself)?;
            let after = self.replicas[r].fingerprint()?;
            self.probe(ProbeKind::SelfMerge, r as u16, before, after)?;
            for s in 0..self.snapshots.len() {
                let before = self.replicas[r].fingerprint()?;
                let mut stale = self.snapshots[s].fork();
                self.replicas[r].merge_from(&mut stale)?;
                let after = self.replicas[r].fingerprint()?;
                self.probe(ProbeKind::StaleMerge, r as u16, before, after)?;
            }
            self.round_trip(r)?;
        }
        let sampled = self.wire.sampled.clone();
        for packet in &sampled {
            let r = packet.to as usize;
            let before = self.replicas[r].fingerprint()?;
            // A message the replica once accepted must be accepted again:
            // an error is as much a violation as a change, and is recorded so.
            let failed = self.links.redeliver(packet, &mut self.replicas[r]).is_err();
            let mut after = self.replicas[r].fingerprint()?;
            if failed {
                after.document = !after.document;
            }
            self.probe(ProbeKind::Redeliver, r as u16, before, after)?;
        }
        Ok(())
    }
}
