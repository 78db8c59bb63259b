//! The nemesis: which faults are on, and the seeded decisions that inject
//! them. Faults are verbs: partition, drop, duplicate, reorder, delay. The
//! final phase heals them all.

use crate::error::{Error, Result};
use crate::generator::derive_seed;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// A fault the nemesis can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// Cut the replicas into two sides (a random minority, or halves); messages across wait for the heal.
    Partition,
    /// Drop messages; each dropped message is retransmitted later.
    Drop,
    /// Deliver extra copies of messages.
    Duplicate,
    /// Shuffle the order of messages delivered together.
    Reorder,
    /// Hold messages back for a while.
    Delay,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 5] = [
        Fault::Partition,
        Fault::Drop,
        Fault::Duplicate,
        Fault::Reorder,
        Fault::Delay,
    ];

    /// CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Drop => "drop",
            Fault::Duplicate => "duplicate",
            Fault::Reorder => "reorder",
            Fault::Delay => "delay",
        }
    }

    /// One-line description for `converge list nemeses`.
    pub fn description(self) -> &'static str {
        match self {
            Fault::Partition => "cut replicas into a random minority or two halves; cross messages wait for the heal",
            Fault::Drop => "drop 5% of messages and whole-state gossips; dropped messages are retransmitted later",
            Fault::Duplicate => "deliver an extra, late copy of 5% of messages and gossips",
            Fault::Reorder => "shuffle 30% of delivery batches",
            Fault::Delay => "hold back 10% of messages for up to 20 network ticks",
        }
    }
}

/// Which faults are on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NemesisSpec {
    /// Faults, in canonical order.
    pub faults: Vec<Fault>,
}

impl NemesisSpec {
    /// Parses `none`, `default`, or a comma-separated list of faults.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let faults = match text {
            "none" | "" => Vec::new(),
            "default" | "all" => Fault::ALL.to_vec(),
            list => {
                let mut faults = Vec::new();
                for name in list.split(',').map(str::trim) {
                    // `loss` is the other name of `drop` (one vocabulary on every target).
                    let canonical = crate::target::nemeses::canonical(name);
                    let fault = Fault::ALL
                        .into_iter()
                        .find(|f| f.name() == canonical)
                        .ok_or_else(|| {
                            Error::Config(format!(
                                "--nemesis: unknown fault '{name}' (expected none, default, or a list of: {})",
                                Fault::ALL.map(Fault::name).join(", ")
                            ))
                        })?;
                    if !faults.contains(&fault) {
                        faults.push(fault);
                    }
                }
                faults
            }
        };
        let mut faults = faults;
        faults.sort_by_key(|f| Fault::ALL.iter().position(|g| g == f));
        Ok(NemesisSpec { faults })
    }

    /// The canonical text form (`none`, `default`, or a list).
    pub fn to_spec(&self) -> String {
        if self.faults.is_empty() {
            "none".into()
        } else if self.faults.len() == Fault::ALL.len() {
            "default".into()
        } else {
            self.faults
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(",")
        }
    }

    /// Whether `fault` is on.
    pub fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }
}

/// The spec of a target's fault flags: the names of those on, comma
/// separated, or `none`.
pub fn spec_of(flags: &[(bool, &str)]) -> String {
    let names: Vec<&str> = flags
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// Probabilities used when the corresponding fault is on.
pub const DROP_PROBABILITY: f64 = 0.05;
/// See [`DROP_PROBABILITY`].
pub const DUPLICATE_PROBABILITY: f64 = 0.05;
/// See [`DROP_PROBABILITY`].
pub const REORDER_PROBABILITY: f64 = 0.3;
/// See [`DROP_PROBABILITY`].
pub const DELAY_PROBABILITY: f64 = 0.1;
/// Longest delay, in network ticks.
pub const MAX_DELAY_TICKS: u64 = 20;
/// Ticks before a dropped message is sent again.
pub const RETRANSMIT_TICKS: u64 = 10;

/// What happens to one message on one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered at the next delivery.
    Deliver,
    /// Held for `ticks`.
    Delay(u64),
    /// Lost now, sent again after `ticks`.
    Drop(u64),
}

/// The nemesis at run time: the faults plus a seeded random source.
///
/// Partitions, gossip choices and snapshots draw from the nemesis's own
/// stream. A simulation that decides many messages side by side draws each
/// link's and each replica's decisions from a stream of its own instead
/// ([`Nemesis::link_stream`], [`Nemesis::replica_stream`] and the `*_from`
/// methods), so the order in which threads reach them cannot change them.
pub struct Nemesis {
    spec: NemesisSpec,
    seed: u64,
    rng: ChaCha8Rng,
    replicas: usize,
    /// `side[r]` is replica r's side of the current partition.
    side: Vec<bool>,
    partitioned: bool,
    healed: bool,
}

impl Nemesis {
    /// A nemesis for `replicas` replicas, seeded from the run seed.
    pub fn new(spec: NemesisSpec, seed: u64, replicas: usize) -> Self {
        Nemesis {
            spec,
            seed,
            rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, u64::MAX - 1)),
            replicas,
            side: vec![false; replicas],
            partitioned: false,
            healed: false,
        }
    }

    /// Whether a message may cross from `a` to `b` now.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        !self.partitioned || self.side[a] == self.side[b]
    }

    /// Whether a partition is in force.
    pub fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    /// Called when the run enters phase `phase`: odd phases partition, even
    /// ones heal. Returns a description of the change, if any.
    pub fn enter_phase(&mut self, phase: u64) -> Option<String> {
        if self.healed || !self.spec.has(Fault::Partition) || self.replicas < 2 {
            return None;
        }
        if phase.is_multiple_of(2) {
            if self.partitioned {
                self.partitioned = false;
                return Some("heal partition".into());
            }
            return None;
        }
        let mut order: Vec<usize> = (0..self.replicas).collect();
        order.shuffle(&mut self.rng);
        let minority = self.rng.random_bool(0.5);
        let cut = if minority {
            // With two replicas the strict minority is empty; isolate one.
            self.rng.random_range(1..=((self.replicas - 1) / 2).max(1))
        } else {
            self.replicas / 2
        };
        self.side = vec![false; self.replicas];
        for r in &order[..cut] {
            self.side[*r] = true;
        }
        self.partitioned = true;
        let mut isolated: Vec<usize> = order[..cut].to_vec();
        isolated.sort_unstable();
        Some(format!(
            "partition {} {:?} from the rest",
            if minority { "minority" } else { "halves" },
            isolated
        ))
    }

    /// Heals every fault for good (the final phase).
    pub fn heal(&mut self) {
        self.healed = true;
        self.partitioned = false;
    }

    /// Decides the fate of one message on one link.
    pub fn fate(&mut self) -> Fate {
        fate(&self.spec, self.healed, &mut self.rng)
    }

    /// Whether to inject a late duplicate, and after how many ticks.
    pub fn duplicate(&mut self) -> Option<u64> {
        duplicate(&self.spec, self.healed, &mut self.rng)
    }

    /// Whether to shuffle a delivery batch.
    pub fn reorder(&mut self) -> bool {
        reorder(&self.spec, self.healed, &mut self.rng)
    }

    /// The random stream of the link from replica `src` to replica `dst`.
    pub fn link_stream(&self, src: usize, dst: usize) -> ChaCha8Rng {
        let link = ((src as u64) << 32) | dst as u64;
        ChaCha8Rng::seed_from_u64(derive_seed(derive_seed(self.seed, LINK_STREAMS), link))
    }

    /// The random stream of replica `replica` (reordering its deliveries,
    /// sampling them for probes).
    pub fn replica_stream(&self, replica: usize) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(derive_seed(
            derive_seed(self.seed, REPLICA_STREAMS),
            replica as u64,
        ))
    }

    /// [`Nemesis::fate`], drawn from `rng` (a link's stream).
    pub fn fate_from(&self, rng: &mut ChaCha8Rng) -> Fate {
        fate(&self.spec, self.healed, rng)
    }

    /// [`Nemesis::duplicate`], drawn from `rng` (a link's stream).
    pub fn duplicate_from(&self, rng: &mut ChaCha8Rng) -> Option<u64> {
        duplicate(&self.spec, self.healed, rng)
    }

    /// [`Nemesis::reorder`], drawn from `rng` (a replica's stream).
    pub fn reorder_from(&self, rng: &mut ChaCha8Rng) -> bool {
        reorder(&self.spec, self.healed, rng)
    }

    /// Whether every fault is healed for good.
    pub fn is_healed(&self) -> bool {
        self.healed
    }

    /// Shuffles a batch with the nemesis's random source.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        items.shuffle(&mut self.rng);
    }

    /// A random index below `n` (gossip partner choice).
    pub fn pick(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }

    /// Whether a whole-state gossip is lost.
    pub fn drop_gossip(&mut self) -> bool {
        !self.healed && self.spec.has(Fault::Drop) && self.rng.random_bool(DROP_PROBABILITY)
    }
}

/// Stream tags under the run seed: each link's and each replica's stream
/// is derived from one of these, apart from the writers' streams (small
/// numbers) and the nemesis's own.
const LINK_STREAMS: u64 = u64::MAX - 2;
/// See [`LINK_STREAMS`].
const REPLICA_STREAMS: u64 = u64::MAX - 3;

fn fate(spec: &NemesisSpec, healed: bool, rng: &mut ChaCha8Rng) -> Fate {
    if healed {
        return Fate::Deliver;
    }
    if spec.has(Fault::Drop) && rng.random_bool(DROP_PROBABILITY) {
        return Fate::Drop(RETRANSMIT_TICKS);
    }
    if spec.has(Fault::Delay) && rng.random_bool(DELAY_PROBABILITY) {
        return Fate::Delay(rng.random_range(1..=MAX_DELAY_TICKS));
    }
    Fate::Deliver
}

fn duplicate(spec: &NemesisSpec, healed: bool, rng: &mut ChaCha8Rng) -> Option<u64> {
    (!healed && spec.has(Fault::Duplicate) && rng.random_bool(DUPLICATE_PROBABILITY))
        .then(|| rng.random_range(1..=MAX_DELAY_TICKS))
}

fn reorder(spec: &NemesisSpec, healed: bool, rng: &mut ChaCha8Rng) -> bool {
    !healed && spec.has(Fault::Reorder) && rng.random_bool(REORDER_PROBABILITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `converge fuzz`: two replicas made the minority range empty.
    #[test]
    fn every_partition_splits_the_replicas_into_two_nonempty_sides() {
        for replicas in 2..=9 {
            for seed in 0..50 {
                let mut n = Nemesis::new(NemesisSpec::parse("partition").unwrap(), seed, replicas);
                for phase in 1..8 {
                    n.enter_phase(phase);
                    if n.is_partitioned() {
                        let isolated = (0..replicas).filter(|&r| n.side[r]).count();
                        assert!(
                            (1..replicas).contains(&isolated),
                            "{replicas} replicas, seed {seed}: {isolated} isolated"
                        );
                        assert!(!n.connected(0, 1) || (0..replicas).any(|r| !n.connected(0, r)));
                    }
                }
            }
        }
    }
}
