//! The simulated network between in-process replicas, as a deterministic
//! simulation in bulk-synchronous ticks.
//!
//! Each update is shipped from its origin to every other replica as an op
//! message; every copy goes through the nemesis (partition, drop with later
//! retransmission, duplicate, reorder, delay). Replicas also gossip whole
//! states now and then (state-based merge), which the nemesis can drop or
//! duplicate too.
//!
//! A tick has three steps:
//! 1. [`Network::begin_tick`], on one thread: partition changes, snapshots
//!    and gossip, from the nemesis's own random stream;
//! 2. each [`Site`] on its own, side by side on rayon's pool: it routes the
//!    copies sent to it (the updates shipped in the previous tick, and the
//!    delayed, retransmitted and released ones due now) with the random
//!    stream of each link, reorders them with its own stream, and applies
//!    them, interleaved with its writers' ops (see the interpreter);
//! 3. [`Network::end_tick`], on one thread: frees delivered copies and
//!    ships the updates made this tick.
//!
//! A site reads only what the tick shares read-only ([`TickCtx`]) and writes
//! only itself, and every random choice comes from a stream owned by one
//! link, one replica or the nemesis: however many threads run the sites, in
//! whatever order, a seed gives the same run.

use crate::history::NetworkStats;
use crate::interpreter::MAX_REPLICAS;
use crate::nemesis::{Fate, Nemesis, MAX_DELAY_TICKS, RETRANSMIT_TICKS};
use crate::target::in_process::{Replica, UpdateMsg};
use converge_models::Crdt;
use rand::seq::SliceRandom;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Most snapshots kept for stale-merge idempotency probes.
pub const MAX_SNAPSHOTS: usize = 8;
/// Most delivered messages kept for redelivery probes.
pub const MAX_SAMPLED: usize = 64;
/// Ticks between two whole-state gossips.
pub const GOSSIP_EVERY: u64 = 64;
/// Slots of a site's timer wheel: more than the longest delay, so a slot
/// holds the copies of one tick only.
const WHEEL: usize = 32;
const _: () = assert!(MAX_DELAY_TICKS < WHEEL as u64);
const _: () = assert!(RETRANSMIT_TICKS < WHEEL as u64);

/// One copy of an update on its way to one replica (the site holding it):
/// 8 bytes, since a partition can hold a few hundred thousand of them.
#[derive(Clone, Copy, Debug)]
pub struct InFlight {
    /// The update, in the network's slab.
    msg: u32,
    /// Origin replica (at most [`MAX_REPLICAS`] of them fit a byte).
    src: u8,
    duplicate: bool,
    /// A dropped message comes back through the nemesis when it is resent.
    retransmit: bool,
}

const _: () = assert!(MAX_REPLICAS as usize <= u8::MAX as usize + 1);
const _: () = assert!(std::mem::size_of::<InFlight>() == 8);

/// Updates in flight, each stored once however many copies travel: a copy
/// is an index and a plain count, and freed slots are reused, so the
/// messages of a run stay in a small, hot region of memory. Only
/// [`Network::end_tick`] changes it; sites read it.
#[derive(Debug)]
pub struct Slab<M: Crdt> {
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
    fn insert(&mut self, msg: UpdateMsg<M>, copies: u32) -> u32 {
        let shipped = Some(Shipped { msg, copies });
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

/// What every site of a tick reads and none writes.
pub struct TickCtx<'a, M: Crdt> {
    slab: &'a Slab<M>,
    nemesis: &'a Nemesis,
    /// Updates shipped in the previous tick: (origin, slab index).
    shipped: &'a [(u8, u32)],
    tick: u64,
    /// Copies of each shipped update (one per other replica).
    copies: usize,
    /// The partition changed since the last tick: held copies may go.
    links_changed: bool,
    /// Sites sample one delivered update each for redelivery probes.
    sample: bool,
}

impl<M: Crdt> TickCtx<'_, M> {
    /// The tick.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// New copies the sites route this tick (a measure of its work).
    pub fn work(&self) -> usize {
        self.shipped.len() * self.copies
    }
}

/// One replica and the network's end of it: the copies on their way to it,
/// the streams of its incoming links, and the updates it made this tick.
pub struct Site<M: Crdt> {
    /// The replica.
    pub replica: Replica<M>,
    /// Updates made this tick, shipped at its end.
    pub outbox: Vec<UpdateMsg<M>>,
    /// Random stream of each incoming link, by origin.
    links: Vec<ChaCha8Rng>,
    /// This replica's own stream: reordering, sampling.
    rng: ChaCha8Rng,
    /// Delayed and retransmitted copies, by due tick modulo [`WHEEL`].
    wheel: Vec<Vec<InFlight>>,
    timed: usize,
    /// Copies a partition holds back.
    held: Vec<InFlight>,
    /// Copies to deliver this tick, in delivery order; `applied` of them so far.
    ready: Vec<InFlight>,
    applied: usize,
    /// Updates given an extra copy this tick (the slab counts them at its end).
    duplicated: Vec<u32>,
    sample: Option<UpdateMsg<M>>,
    stats: NetworkStats,
}

impl<M: Crdt> Site<M> {
    fn new(replica: Replica<M>, nemesis: &Nemesis, replicas: usize) -> Self {
        let dst = replica.id as usize;
        Site {
            links: (0..replicas)
                .map(|src| nemesis.link_stream(src, dst))
                .collect(),
            rng: nemesis.replica_stream(dst),
            replica,
            outbox: Vec::new(),
            wheel: (0..WHEEL).map(|_| Vec::new()).collect(),
            timed: 0,
            held: Vec::new(),
            ready: Vec::new(),
            applied: 0,
            duplicated: Vec::new(),
            sample: None,
            stats: NetworkStats::default(),
        }
    }

    /// Copies on their way here, delivered this tick or not.
    fn in_flight(&self) -> usize {
        self.held.len() + self.timed + self.ready.len() - self.applied
    }

    fn schedule(&mut self, tick: u64, after: u64, copy: InFlight) {
        self.wheel[((tick + after) % WHEEL as u64) as usize].push(copy);
        self.timed += 1;
    }

    /// A copy on a link: held by a partition, or its fate drawn from the link's stream.
    fn route(&mut self, ctx: &TickCtx<'_, M>, copy: InFlight) {
        let dst = self.replica.id as usize;
        if !ctx.nemesis.connected(copy.src as usize, dst) {
            self.stats.delayed += 1;
            self.held.push(copy);
            return;
        }
        match ctx.nemesis.fate_from(&mut self.links[copy.src as usize]) {
            Fate::Deliver => self.ready.push(copy),
            Fate::Delay(ticks) => {
                self.stats.delayed += 1;
                self.schedule(ctx.tick, ticks, copy);
            }
            Fate::Drop(ticks) => {
                self.stats.dropped += 1;
                let resend = InFlight {
                    retransmit: true,
                    ..copy
                };
                self.schedule(ctx.tick, ticks, resend);
            }
        }
    }

    /// A delayed, retransmitted or held copy whose time has come.
    fn release(&mut self, ctx: &TickCtx<'_, M>, copy: InFlight) {
        if copy.retransmit {
            self.route(
                ctx,
                InFlight {
                    retransmit: false,
                    ..copy
                },
            );
        } else if ctx
            .nemesis
            .connected(copy.src as usize, self.replica.id as usize)
        {
            self.ready.push(copy);
        } else {
            self.held.push(copy);
        }
    }

    /// Gathers the copies to deliver this tick: held ones whose link is
    /// open again, delayed and retransmitted ones that are due, and the
    /// updates shipped in the previous tick; then reorders them if the
    /// nemesis says so. Call [`Site::deliver_until`] to apply them.
    pub fn receive(&mut self, ctx: &TickCtx<'_, M>) {
        // Links change only with the partition: looking at every held copy
        // every tick would cost a pass over a queue of 100,000s.
        if ctx.links_changed && !self.held.is_empty() {
            for copy in std::mem::take(&mut self.held) {
                self.release(ctx, copy);
            }
        }
        let slot = (ctx.tick % WHEEL as u64) as usize;
        let due = std::mem::take(&mut self.wheel[slot]);
        self.timed -= due.len();
        for &copy in &due {
            self.release(ctx, copy);
        }
        // Hand the slot's buffer back, so the wheel does not reallocate.
        let mut due = due;
        due.clear();
        if self.wheel[slot].is_empty() {
            self.wheel[slot] = due;
        }
        let dst = self.replica.id as usize;
        for &(src, msg) in ctx.shipped {
            if src as usize == dst {
                continue;
            }
            let copy = InFlight {
                msg,
                src,
                duplicate: false,
                retransmit: false,
            };
            if let Some(ticks) = ctx.nemesis.duplicate_from(&mut self.links[src as usize]) {
                self.stats.duplicated += 1;
                self.duplicated.push(msg);
                self.schedule(
                    ctx.tick,
                    ticks,
                    InFlight {
                        duplicate: true,
                        ..copy
                    },
                );
            }
            self.route(ctx, copy);
        }
        if self.ready.len() > 1 && ctx.nemesis.reorder_from(&mut self.rng) {
            self.stats.reordered += 1;
            self.ready.shuffle(&mut self.rng);
        }
        if ctx.sample && !self.ready.is_empty() {
            let i = self.rng.random_range(0..self.ready.len());
            self.sample = ctx.slab.get(self.ready[i].msg).cloned();
        }
    }

    /// Copies gathered this tick by [`Site::receive`].
    pub fn ready(&self) -> usize {
        self.ready.len()
    }

    /// Applies the copies gathered this tick, up to the `upto`-th.
    pub fn deliver_until(&mut self, ctx: &TickCtx<'_, M>, upto: usize) {
        let upto = upto.min(self.ready.len());
        for copy in &self.ready[self.applied.min(upto)..upto] {
            if let Some(msg) = ctx.slab.get(copy.msg) {
                self.replica.deliver(msg);
            }
            self.stats.delivered += 1;
            self.stats.duplicates_delivered += u64::from(copy.duplicate);
        }
        self.applied = self.applied.max(upto);
    }
}

/// The network between the replicas, and the replicas themselves.
pub struct Network<M: Crdt> {
    /// The nemesis: partitions, gossip choices, snapshots.
    pub nemesis: Nemesis,
    /// Every replica with its end of the network, by id.
    pub sites: Vec<Site<M>>,
    slab: Slab<M>,
    /// Updates shipped in the last tick, routed in the next.
    shipped: Vec<(u8, u32)>,
    links_changed: bool,
    tick: u64,
    phase: u64,
    ops_per_phase: u64,
    /// A run bounded in virtual time changes phase every this many ticks
    /// instead (see [`Network::phase_by_ticks`]).
    ticks_per_phase: Option<u64>,
    /// Gossip counters; the sites keep the rest until [`Network::stats`].
    gossip_stats: NetworkStats,
    /// Earlier replica states, for stale-merge probes.
    pub snapshots: Vec<Replica<M>>,
    /// Delivered messages, for redelivery probes.
    pub sampled: Vec<UpdateMsg<M>>,
    /// What the nemesis did, in order.
    pub log: Vec<String>,
}

impl<M: Crdt> Network<M> {
    /// A network among `replicas` (at most [`MAX_REPLICAS`]). The nemesis
    /// changes its partition every `ops_per_phase` completed ops.
    pub fn new(nemesis: Nemesis, replicas: Vec<Replica<M>>, ops_per_phase: u64) -> Self {
        debug_assert!(
            replicas.len() <= MAX_REPLICAS as usize,
            "RunConfig::validate bounds replicas"
        );
        let n = replicas.len();
        Network {
            sites: replicas
                .into_iter()
                .map(|r| Site::new(r, &nemesis, n))
                .collect(),
            nemesis,
            slab: Slab {
                slots: Vec::new(),
                free: Vec::new(),
            },
            shipped: Vec::new(),
            links_changed: false,
            tick: 0,
            phase: 0,
            ops_per_phase: ops_per_phase.max(1),
            ticks_per_phase: None,
            gossip_stats: NetworkStats::default(),
            snapshots: Vec::new(),
            sampled: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Changes the partition every `ticks` ticks rather than by completed
    /// ops: a run bounded in virtual time (a load shape) has no op count
    /// to divide, and its ops per tick vary.
    pub fn phase_by_ticks(&mut self, ticks: u64) {
        self.ticks_per_phase = Some(ticks.max(1));
    }

    /// The current tick (logical time); 0 before the first.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Starts the next tick, `completed_ops` ops into the run: moves the
    /// partition on at a phase boundary, snapshots a replica for the
    /// probes, gossips; then hands out the sites and what they share.
    pub fn begin_tick(&mut self, completed_ops: u64) -> (&mut [Site<M>], TickCtx<'_, M>) {
        self.tick += 1;
        let phase = match self.ticks_per_phase {
            Some(t) => (self.tick - 1) / t,
            None => completed_ops / self.ops_per_phase,
        };
        // After the heal, ticks still pass (the flush) but time phases do
        // not. (An op phase can still turn once, at the last op: it always
        // has, and the snapshot it takes is part of recorded histories.)
        let frozen = self.ticks_per_phase.is_some() && self.nemesis.is_healed();
        if phase != self.phase && !frozen {
            self.phase = phase;
            if let Some(event) = self.nemesis.enter_phase(phase) {
                self.log.push(match self.ticks_per_phase {
                    Some(_) => format!("at tick {}: {event}", self.tick),
                    None => format!("after {completed_ops} ops: {event}"),
                });
                self.links_changed = true;
            }
            if self.snapshots.len() < MAX_SNAPSHOTS {
                let r = self.nemesis.pick(self.sites.len());
                self.snapshots.push(self.sites[r].replica.snapshot());
            }
        }
        if self.tick.is_multiple_of(GOSSIP_EVERY) && self.sites.len() > 1 {
            self.gossip();
        }
        let ctx = TickCtx {
            slab: &self.slab,
            nemesis: &self.nemesis,
            shipped: &self.shipped,
            tick: self.tick,
            copies: self.sites.len() - 1,
            links_changed: self.links_changed,
            sample: self.sampled.len() < MAX_SAMPLED,
        };
        (&mut self.sites, ctx)
    }

    /// Ends the tick: delivers what a site left undelivered, counts the
    /// extra copies, frees the delivered ones, and ships the updates made
    /// this tick (to be routed in the next).
    pub fn end_tick(&mut self) {
        self.links_changed = false;
        for site in &mut self.sites {
            for msg in site.duplicated.drain(..) {
                self.slab.add_copy(msg);
            }
        }
        let copies = (self.sites.len() - 1) as u32;
        self.shipped.clear();
        for (src, site) in self.sites.iter_mut().enumerate() {
            debug_assert_eq!(site.applied, site.ready.len(), "every ready copy applied");
            for copy in site.ready.drain(..) {
                self.slab.delivered(copy.msg);
            }
            site.applied = 0;
            if let Some(sample) = site.sample.take() {
                if self.sampled.len() < MAX_SAMPLED {
                    self.sampled.push(sample);
                }
            }
            if copies == 0 {
                site.outbox.clear();
                continue;
            }
            for msg in site.outbox.drain(..) {
                self.gossip_stats.sent += copies as u64;
                let i = self.slab.insert(msg, copies);
                self.shipped.push((src as u8, i));
            }
        }
    }

    /// Whole-state gossip between two replicas the nemesis picks.
    fn gossip(&mut self) {
        let n = self.sites.len();
        let src = self.nemesis.pick(n);
        let dst = (src + 1 + self.nemesis.pick(n - 1)) % n;
        if !self.nemesis.connected(src, dst) || self.nemesis.drop_gossip() {
            return;
        }
        let copies = if self.nemesis.duplicate().is_some() {
            self.gossip_stats.duplicated += 1;
            self.gossip_stats.duplicates_delivered += 1;
            2
        } else {
            1
        };
        let (from, to) = pair(&mut self.sites, src, dst);
        for _ in 0..copies {
            to.replica.merge_from(&from.replica);
            self.gossip_stats.gossip_merges += 1;
        }
    }

    /// Heals every fault for good: partitioned copies go at the next tick,
    /// delayed ones when due.
    pub fn heal(&mut self) {
        self.nemesis.heal();
        self.links_changed = true;
        self.log.push("final phase: heal all faults".into());
    }

    /// Copies neither delivered nor given up on, including updates shipped
    /// but not yet routed.
    pub fn in_flight(&self) -> usize {
        self.shipped.len() * (self.sites.len() - 1)
            + self.sites.iter().map(Site::in_flight).sum::<usize>()
    }

    /// Message counters so far.
    pub fn stats(&self) -> NetworkStats {
        let mut total = self.gossip_stats;
        for s in self.sites.iter().map(|s| &s.stats) {
            total.delivered += s.delivered;
            total.dropped += s.dropped;
            total.duplicated += s.duplicated;
            total.duplicates_delivered += s.duplicates_delivered;
            total.delayed += s.delayed;
            total.reordered += s.reordered;
        }
        total
    }

    /// True when every copy ever sent was delivered.
    pub fn drained(&self) -> bool {
        self.in_flight() == 0 && self.slab.live() == 0
    }

    /// True when every replica holds the same state.
    pub fn all_equal(&self) -> bool {
        let first = &self.sites[0].replica;
        self.sites[1..].iter().all(|s| s.replica.same_state(first))
    }

    /// One anti-entropy round: every replica merges every other replica's
    /// state as it was at the start of the round. Returns true if any
    /// replica changed.
    pub fn anti_entropy_round(&mut self) -> bool {
        let before: Vec<Replica<M>> = self.sites.iter().map(|s| s.replica.snapshot()).collect();
        for (dst, site) in self.sites.iter_mut().enumerate() {
            for (src, state) in before.iter().enumerate() {
                if src != dst {
                    site.replica.merge_from(state);
                }
            }
        }
        self.sites
            .iter()
            .zip(&before)
            .any(|(now, then)| !now.replica.same_state(then))
    }
}

/// Two distinct sites, the first to read and the second to change.
fn pair<T>(items: &mut [T], a: usize, b: usize) -> (&T, &mut T) {
    debug_assert_ne!(a, b);
    if a < b {
        let (left, right) = items.split_at_mut(b);
        (&left[a], &mut right[0])
    } else {
        let (left, right) = items.split_at_mut(a);
        (&right[0], &mut left[b])
    }
}
