//! The simulated network the verifier owns between in-process replicas.
//!
//! Each update is shipped from its origin to every other replica as an op
//! message; every copy goes through the nemesis (partition, drop with later
//! retransmission, duplicate, reorder, delay). Replicas also gossip whole
//! states now and then (state-based merge), which the nemesis can drop or
//! duplicate too. The network is driven in ticks by one thread; when a tick
//! has many copies due, the replicas take theirs side by side on rayon's
//! pool, since applying updates is most of the network's work.

use crate::history::NetworkStats;
use crate::interpreter::MAX_REPLICAS;
use crate::nemesis::{Fate, Nemesis};
use crate::target::in_process::{Replica, UpdateMsg};
use converge_models::Crdt;
use converge_sync::{Backlog, ReplicaCell};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One replica as writers and the network share it, with its outbox.
pub type Cell<M> = ReplicaCell<Replica<M>, UpdateMsg<M>>;

/// Replicas shared between writers and the network.
pub type Cluster<M> = Arc<Vec<Cell<M>>>;

/// Messages applied per acquisition of a replica's lock.
const DELIVERY_CHUNK: usize = 128;
/// From this many copies due in one tick, replicas take them in parallel:
/// below it, waking the pool costs more than it saves.
const PARALLEL_DELIVERY: usize = 2048;

/// Most snapshots kept for stale-merge idempotency probes.
pub const MAX_SNAPSHOTS: usize = 8;
/// Most delivered messages kept for redelivery probes.
pub const MAX_SAMPLED: usize = 64;

/// One copy of an update on its way to one replica: 8 bytes, since a
/// partition can hold a few hundred thousand of them.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    /// Destination replica (at most [`MAX_REPLICAS`] of them fit a byte).
    dst: u8,
    /// Origin replica.
    src: u8,
    /// The update, in [`Slab`].
    msg: u32,
    duplicate: bool,
    /// A dropped message comes back through the nemesis when it is resent.
    retransmit: bool,
}

const _: () = assert!(MAX_REPLICAS as usize <= u8::MAX as usize + 1);
const _: () = assert!(std::mem::size_of::<InFlight>() == 8);

/// Updates in flight, each stored once however many copies travel. The
/// network thread alone touches it, so a copy is an index and a plain
/// count instead of an atomically counted pointer, and freed slots are
/// reused: the messages of a run stay in a small, hot region of memory.
#[derive(Debug)]
struct Slab<M: Crdt> {
    slots: Vec<Option<Shipped<M>>>,
    free: Vec<u32>,
}

#[derive(Debug)]
struct Shipped<M: Crdt> {
    msg: UpdateMsg<M>,
    /// Copies not yet delivered.
    copies: u32,
}

impl<M: Crdt> Slab<M> {
    fn insert(&mut self, msg: UpdateMsg<M>) -> u32 {
        let shipped = Some(Shipped { msg, copies: 0 });
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = shipped;
                i
            }
            None => {
                self.slots.push(shipped);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn get(&self, i: u32) -> Option<&UpdateMsg<M>> {
        self.slots[i as usize].as_ref().map(|s| &s.msg)
    }

    fn add_copy(&mut self, i: u32) {
        if let Some(s) = self.slots[i as usize].as_mut() {
            s.copies += 1;
        }
    }

    /// One copy of update `i` was delivered; the last one frees the slot.
    fn delivered(&mut self, i: u32) {
        let slot = &mut self.slots[i as usize];
        if let Some(s) = slot.as_mut() {
            s.copies -= 1;
            if s.copies == 0 {
                *slot = None;
                self.free.push(i);
            }
        }
    }

    fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// The network between replicas.
pub struct Network<M: Crdt> {
    nemesis: Nemesis,
    replicas: usize,
    tick: u64,
    phase: u64,
    ops_per_phase: u64,
    gossip_every: u64,
    slab: Slab<M>,
    timed: BTreeMap<u64, Vec<InFlight>>,
    held: Vec<InFlight>,
    /// The partition changed since the held messages were last looked at.
    links_changed: bool,
    ready: Vec<Vec<(u32, bool)>>,
    /// Per replica, the batch being delivered. Buffers are kept between
    /// ticks so that neither the delivery queues nor the outboxes reallocate
    /// (and fault in fresh pages) every tick.
    delivering: Vec<Vec<(u32, bool)>>,
    shipped: Vec<UpdateMsg<M>>,
    backlog: Arc<Backlog>,
    /// Message counters.
    pub stats: NetworkStats,
    /// Earlier replica states, for stale-merge probes.
    pub snapshots: Vec<Replica<M>>,
    /// Delivered messages, for redelivery probes.
    pub sampled: Vec<UpdateMsg<M>>,
    /// What the nemesis did, in order.
    pub log: Vec<String>,
}

impl<M: Crdt> Network<M> {
    /// A network among `replicas` replicas. The nemesis changes its partition
    /// every `ops_per_phase` completed ops. `backlog` counts updates not yet
    /// delivered everywhere; writers slow down when it grows. At most
    /// [`MAX_REPLICAS`] replicas.
    pub fn new(
        nemesis: Nemesis,
        replicas: usize,
        ops_per_phase: u64,
        backlog: Arc<Backlog>,
    ) -> Self {
        debug_assert!(
            replicas <= MAX_REPLICAS as usize,
            "RunConfig::validate bounds replicas"
        );
        Network {
            nemesis,
            replicas,
            tick: 0,
            phase: 0,
            ops_per_phase: ops_per_phase.max(1),
            gossip_every: 64,
            slab: Slab {
                slots: Vec::new(),
                free: Vec::new(),
            },
            timed: BTreeMap::new(),
            held: Vec::new(),
            links_changed: false,
            ready: (0..replicas).map(|_| Vec::new()).collect(),
            delivering: (0..replicas).map(|_| Vec::new()).collect(),
            shipped: Vec::new(),
            backlog,
            stats: NetworkStats::default(),
            snapshots: Vec::new(),
            sampled: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Messages neither delivered nor given up on.
    pub fn in_flight(&self) -> usize {
        self.held.len()
            + self.timed.values().map(Vec::len).sum::<usize>()
            + self.ready.iter().map(Vec::len).sum::<usize>()
    }

    fn route(&mut self, m: InFlight) {
        if !self.nemesis.connected(m.src as usize, m.dst as usize) {
            self.stats.delayed += 1;
            self.hold(m);
            return;
        }
        match self.nemesis.fate() {
            Fate::Deliver => self.ready[m.dst as usize].push((m.msg, m.duplicate)),
            Fate::Delay(ticks) => {
                self.stats.delayed += 1;
                self.timed.entry(self.tick + ticks).or_default().push(m);
            }
            Fate::Drop(ticks) => {
                self.stats.dropped += 1;
                let resend = InFlight {
                    retransmit: true,
                    ..m
                };
                self.timed
                    .entry(self.tick + ticks)
                    .or_default()
                    .push(resend);
            }
        }
    }

    /// Advances the network one tick. Returns how many new updates it shipped.
    pub fn tick(&mut self, cluster: &Cluster<M>, completed_ops: u64) -> usize {
        self.tick += 1;
        let mut fresh = 0;
        let phase = completed_ops / self.ops_per_phase;
        if phase != self.phase {
            self.phase = phase;
            if let Some(event) = self.nemesis.enter_phase(phase) {
                self.log.push(format!("after {completed_ops} ops: {event}"));
                self.links_changed = true;
            }
            self.take_snapshot(cluster);
        }
        // Partitioned messages whose link is open again. Links change only
        // with the phase: looking at every held message every tick cost a
        // pass over (and a reallocation of) a queue of 100,000s.
        if self.links_changed && !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            for m in held {
                if self.nemesis.connected(m.src as usize, m.dst as usize) {
                    self.backlog.add(1);
                    self.route_released(m);
                } else {
                    self.held.push(m);
                }
            }
        }
        self.links_changed = false;
        // Delayed and retransmitted messages that are due.
        while let Some(entry) = self.timed.first_entry() {
            if *entry.key() > self.tick {
                break;
            }
            for m in entry.remove() {
                self.route_released(m);
            }
        }
        // New updates.
        let mut shipped = std::mem::take(&mut self.shipped);
        for src in 0..self.replicas {
            fresh +=
                cluster[src].ship_into(&self.backlog, (self.replicas - 1) as u64, &mut shipped);
            for msg in shipped.drain(..) {
                let msg = self.slab.insert(msg);
                for dst in (0..self.replicas).filter(|d| *d != src) {
                    self.stats.sent += 1;
                    let copy = InFlight {
                        dst: dst as u8,
                        src: src as u8,
                        msg,
                        duplicate: false,
                        retransmit: false,
                    };
                    if let Some(ticks) = self.nemesis.duplicate() {
                        self.stats.duplicated += 1;
                        self.backlog.add(1);
                        self.slab.add_copy(msg);
                        self.timed
                            .entry(self.tick + ticks)
                            .or_default()
                            .push(InFlight {
                                duplicate: true,
                                ..copy
                            });
                    }
                    self.slab.add_copy(msg);
                    self.route(copy);
                }
            }
        }
        self.shipped = shipped;
        self.deliver_ready(cluster);
        if self.tick.is_multiple_of(self.gossip_every) && self.replicas > 1 {
            self.gossip(cluster);
        }
        fresh
    }

    /// Messages held by a partition leave the backlog: writers must keep
    /// going (and so reach the heal) however much a partition holds.
    fn hold(&mut self, m: InFlight) {
        self.backlog.remove(1);
        self.held.push(m);
    }

    fn route_released(&mut self, m: InFlight) {
        if m.retransmit {
            self.route(InFlight {
                retransmit: false,
                ..m
            });
        } else if self.nemesis.connected(m.src as usize, m.dst as usize) {
            self.ready[m.dst as usize].push((m.msg, m.duplicate));
        } else {
            self.hold(m);
        }
    }

    fn deliver_ready(&mut self, cluster: &Cluster<M>) {
        // The nemesis decides in replica order, so a seed replays the same
        // reorderings however the deliveries below are scheduled.
        for dst in 0..self.replicas {
            std::mem::swap(&mut self.delivering[dst], &mut self.ready[dst]);
            let batch = &mut self.delivering[dst];
            if batch.len() > 1 && self.nemesis.reorder() {
                self.stats.reordered += 1;
                self.nemesis.shuffle(batch);
            }
        }
        let slab = &self.slab;
        let deliver = |dst: usize, batch: &Vec<(u32, bool)>| {
            // Writers on this replica wait for the lock: hold it for a
            // bounded chunk at a time, not for the whole batch.
            for chunk in batch.chunks(DELIVERY_CHUNK) {
                let mut replica = cluster[dst].lock();
                for msg in chunk.iter().filter_map(|(i, _)| slab.get(*i)) {
                    replica.deliver(msg);
                }
            }
        };
        let total: usize = self.delivering.iter().map(Vec::len).sum();
        if total >= PARALLEL_DELIVERY {
            // Each replica is applied to by one thread at a time (its
            // lock), so replicas take their updates side by side.
            self.delivering
                .par_iter()
                .enumerate()
                .for_each(|(dst, batch)| deliver(dst, batch));
        } else {
            for (dst, batch) in self.delivering.iter().enumerate() {
                deliver(dst, batch);
            }
        }
        for batch in &mut self.delivering {
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            self.stats.delivered += n;
            self.stats.duplicates_delivered += batch.iter().filter(|(_, d)| *d).count() as u64;
            self.backlog.remove(n);
            if self.sampled.len() < MAX_SAMPLED {
                let i = batch[self.nemesis.pick(batch.len())].0;
                self.sampled.extend(self.slab.get(i).cloned());
            }
            for (i, _) in batch.drain(..) {
                self.slab.delivered(i);
            }
        }
    }

    fn gossip(&mut self, cluster: &Cluster<M>) {
        let src = self.nemesis.pick(self.replicas);
        let dst = (src + 1 + self.nemesis.pick(self.replicas - 1)) % self.replicas;
        if !self.nemesis.connected(src, dst) || self.nemesis.drop_gossip() {
            return;
        }
        let state = cluster[src].lock().snapshot();
        let copies = if self.nemesis.duplicate().is_some() {
            self.stats.duplicated += 1;
            self.stats.duplicates_delivered += 1;
            2
        } else {
            1
        };
        let mut replica = cluster[dst].lock();
        for _ in 0..copies {
            replica.merge_from(&state);
            self.stats.gossip_merges += 1;
        }
    }

    fn take_snapshot(&mut self, cluster: &Cluster<M>) {
        if self.snapshots.len() < MAX_SNAPSHOTS {
            let r = self.nemesis.pick(self.replicas);
            self.snapshots.push(cluster[r].lock().snapshot());
        }
    }

    /// Heals every fault and delivers everything still in flight, including
    /// updates still in outboxes.
    pub fn heal_and_flush(&mut self, cluster: &Cluster<M>) {
        self.nemesis.heal();
        self.log.push("final phase: heal all faults".into());
        loop {
            self.tick(cluster, self.phase * self.ops_per_phase);
            let timed = std::mem::take(&mut self.timed);
            for m in timed.into_values().flatten() {
                self.route_released(m);
            }
            let held = std::mem::take(&mut self.held);
            for m in held {
                self.backlog.add(1);
                self.route_released(m);
            }
            self.deliver_ready(cluster);
            let outboxes_empty = cluster.iter().all(|r| r.outbox_is_empty());
            if self.in_flight() == 0 && outboxes_empty {
                debug_assert_eq!(self.slab.live(), 0, "every copy was delivered");
                break;
            }
        }
    }
}

/// One anti-entropy round: every replica merges every other replica's state
/// as it was at the start of the round. Returns true if any replica changed.
pub fn anti_entropy_round<M: Crdt>(cluster: &Cluster<M>) -> bool {
    let before: Vec<Replica<M>> = cluster.iter().map(|r| r.lock().snapshot()).collect();
    for (dst, replica) in cluster.iter().enumerate() {
        let mut replica = replica.lock();
        for (src, state) in before.iter().enumerate() {
            if src != dst {
                replica.merge_from(state);
            }
        }
    }
    cluster
        .iter()
        .zip(&before)
        .any(|(now, then)| !now.lock().same_state(then))
}

/// True when every replica holds the same state.
pub fn all_equal<M: Crdt>(cluster: &Cluster<M>) -> bool {
    let first = cluster[0].lock().snapshot();
    cluster.iter().skip(1).all(|r| r.lock().same_state(&first))
}
