//! The network between automerge replicas: encoded sync messages, each
//! through converge's [`Nemesis`] (partition, loss, duplication, reordering,
//! delay). Unlike the in-process network, a lost message is lost for good:
//! the sync protocol is the only retransmission there is, which is what the
//! driver's reset policy must cope with (automerge #851).

use crate::history::NetworkStats;
use crate::nemesis::{Fate, Nemesis};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most delivered messages kept for redelivery probes.
pub const MAX_SAMPLED: usize = 32;

/// One encoded sync message on one link.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Sender replica.
    pub from: u16,
    /// Receiver replica.
    pub to: u16,
    /// `sync::Message::encode()` output.
    pub bytes: Arc<Vec<u8>>,
    /// An extra copy injected by the nemesis.
    pub duplicate: bool,
}

/// Messages in flight and the nemesis deciding their fate.
pub struct Wire {
    nemesis: Nemesis,
    tick: u64,
    timed: BTreeMap<u64, Vec<Packet>>,
    held: Vec<Packet>,
    ready: Vec<Packet>,
    /// Message counters (`dropped` counts messages lost for good).
    pub stats: NetworkStats,
    /// Delivered messages kept for redelivery probes.
    pub sampled: Vec<Packet>,
    /// What the nemesis did, in order.
    pub log: Vec<String>,
}

impl Wire {
    /// A wire whose faults `nemesis` decides.
    pub fn new(nemesis: Nemesis) -> Self {
        Wire {
            nemesis,
            tick: 0,
            timed: BTreeMap::new(),
            held: Vec::new(),
            ready: Vec::new(),
            stats: NetworkStats::default(),
            sampled: Vec::new(),
            log: Vec::new(),
        }
    }

    /// The nemesis, for partition phases and whole-document gossip decisions.
    pub fn nemesis(&mut self) -> &mut Nemesis {
        &mut self.nemesis
    }

    /// Whether `a` and `b` can talk now.
    pub fn connected(&self, a: u16, b: u16) -> bool {
        self.nemesis.connected(a as usize, b as usize)
    }

    /// Messages not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.held.len() + self.ready.len() + self.timed.values().map(Vec::len).sum::<usize>()
    }

    /// Hands a message to the network.
    pub fn send(&mut self, from: u16, to: u16, bytes: Vec<u8>) {
        let packet = Packet {
            from,
            to,
            bytes: Arc::new(bytes),
            duplicate: false,
        };
        self.stats.sent += 1;
        if let Some(ticks) = self.nemesis.duplicate() {
            self.stats.duplicated += 1;
            let copy = Packet {
                duplicate: true,
                ..packet.clone()
            };
            self.timed.entry(self.tick + ticks).or_default().push(copy);
        }
        self.route(packet);
    }

    fn route(&mut self, packet: Packet) {
        if !self.connected(packet.from, packet.to) {
            self.stats.delayed += 1;
            self.held.push(packet);
            return;
        }
        match self.nemesis.fate() {
            Fate::Deliver => self.ready.push(packet),
            Fate::Delay(ticks) => {
                self.stats.delayed += 1;
                self.timed
                    .entry(self.tick + ticks)
                    .or_default()
                    .push(packet);
            }
            Fate::Drop(_) => self.stats.dropped += 1,
        }
    }

    /// Advances one tick and returns the messages delivered now, in delivery
    /// order (shuffled when the nemesis reorders).
    pub fn tick(&mut self) -> Vec<Packet> {
        self.tick += 1;
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            for packet in held {
                if self.connected(packet.from, packet.to) {
                    self.ready.push(packet);
                } else {
                    self.held.push(packet);
                }
            }
        }
        while let Some(entry) = self.timed.first_entry() {
            if *entry.key() > self.tick {
                break;
            }
            for packet in entry.remove() {
                if self.connected(packet.from, packet.to) {
                    self.ready.push(packet);
                } else {
                    self.held.push(packet);
                }
            }
        }
        let mut batch = std::mem::take(&mut self.ready);
        if batch.len() > 1 && self.nemesis.reorder() {
            self.stats.reordered += 1;
            self.nemesis.shuffle(&mut batch);
        }
        self.stats.delivered += batch.len() as u64;
        self.stats.duplicates_delivered += batch.iter().filter(|p| p.duplicate).count() as u64;
        if !batch.is_empty() && self.sampled.len() < MAX_SAMPLED {
            let i = self.nemesis.pick(batch.len());
            self.sampled.push(batch[i].clone());
        }
        batch
    }

    /// Heals every fault for good; everything held or delayed is delivered
    /// at the next tick.
    pub fn heal(&mut self) {
        self.nemesis.heal();
        self.log.push("final phase: heal all faults".into());
        let timed = std::mem::take(&mut self.timed);
        self.ready.extend(timed.into_values().flatten());
        self.ready.append(&mut self.held);
    }
}
