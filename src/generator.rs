//! Seeded op streams. Each writer owns a generator derived from the run seed
//! and its writer id, so the ops a writer issues depend on nothing else.
//!
//! A hot-key ratio sends that fraction of ops to key 0, the rest spread
//! uniformly: concurrent conflicting updates on the hot key are frequent.

use converge_models::{Intent, Workload};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Op-mix parameters shared by all writers.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    /// Number of keys (objects).
    pub keys: u32,
    /// Fraction of ops sent to key 0.
    pub hot_key_ratio: f64,
    /// Fraction of ops that are reads.
    pub read_ratio: f64,
    /// Fraction of updates that remove or delete, where the workload has them.
    pub remove_ratio: f64,
    /// Distinct elements per key for OR-Set (small, so adds and removes collide).
    pub or_set_elements: u64,
    /// Distinct fields per LWW-Map key.
    pub map_fields: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            keys: 64,
            hot_key_ratio: 0.5,
            read_ratio: 0.001,
            remove_ratio: 0.3,
            or_set_elements: 32,
            map_fields: 8,
        }
    }
}

/// Whether `--remove-ratio` means anything for `workload`: the share of
/// its updates that decrement (PN-counter), remove (2P-Set, OR-Set) or
/// delete (LWW-Map). Other workloads have no such update, so a black-box
/// target refuses the flag for them and its reproduce line leaves it out.
pub fn takes_removes(workload: Workload) -> bool {
    matches!(
        workload,
        Workload::PnCounter | Workload::TwoPSet | Workload::OrSet | Workload::LwwMap
    )
}

/// What a writer does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// An update of `key`.
    Update {
        /// Key updated.
        key: u32,
        /// The update.
        intent: Intent,
    },
    /// A read of `key`.
    Read {
        /// Key read.
        key: u32,
    },
}

/// One writer's op stream.
pub struct Generator {
    rng: ChaCha8Rng,
    workload: Workload,
    mix: Mix,
    writer: u32,
    seq: u64,
    /// Elements this writer added to a 2P-Set, so removes name real elements.
    recent_adds: Vec<u64>,
}

/// Derives a per-purpose seed from the run seed (SplitMix64 finalizer).
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Generator {
    /// The stream of writer `writer` in a run seeded with `seed`.
    pub fn new(seed: u64, writer: u32, workload: Workload, mix: Mix) -> Self {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, writer as u64)),
            workload,
            mix,
            writer,
            seq: 0,
            recent_adds: Vec::new(),
        }
    }

    /// A value no other writer or op of this writer produces.
    fn unique(&mut self) -> u64 {
        self.seq += 1;
        ((self.writer as u64) << 32) | self.seq
    }

    fn key(&mut self) -> u32 {
        if self.mix.keys <= 1 || self.rng.random_bool(self.mix.hot_key_ratio) {
            0
        } else {
            self.rng.random_range(1..self.mix.keys)
        }
    }

    /// The next step.
    pub fn next_step(&mut self) -> Step {
        let key = self.key();
        if self.rng.random_bool(self.mix.read_ratio) {
            return Step::Read { key };
        }
        let remove = self.rng.random_bool(self.mix.remove_ratio);
        let intent = match self.workload {
            Workload::GCounter => Intent::Increment(self.rng.random_range(1..=5)),
            Workload::PnCounter => {
                let d: i64 = self.rng.random_range(1..=5);
                Intent::Increment(if remove { -d } else { d })
            }
            Workload::GSet => Intent::Add(self.unique()),
            Workload::TwoPSet => match (remove, self.recent_adds.is_empty()) {
                (true, false) => {
                    let i = self.rng.random_range(0..self.recent_adds.len());
                    Intent::Remove(self.recent_adds.swap_remove(i))
                }
                _ => {
                    let e = self.unique();
                    if self.recent_adds.len() < 64 {
                        self.recent_adds.push(e);
                    }
                    Intent::Add(e)
                }
            },
            Workload::OrSet => {
                let e = self.rng.random_range(0..self.mix.or_set_elements.max(1));
                if remove {
                    Intent::Remove(e)
                } else {
                    Intent::Add(e)
                }
            }
            Workload::LwwRegister | Workload::MvRegister => Intent::Write(self.unique()),
            Workload::LwwMap => {
                let field = self.rng.random_range(0..self.mix.map_fields.max(1));
                if remove {
                    Intent::Delete { field }
                } else {
                    Intent::Put {
                        field,
                        value: self.unique(),
                    }
                }
            }
        };
        Step::Update { key, intent }
    }
}
