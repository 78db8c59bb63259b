//! Target `automerge`: every replica is an `automerge::AutoCommit` document.
//!
//! Writers increment counters, put conflicting values on shared map keys,
//! insert into and delete from a shared list, and splice text. Replicas talk
//! the real sync protocol (`generate_sync_message` / `receive_sync_message`,
//! messages encoded to bytes and decoded on receipt) across converge's
//! network and nemesis; now and then a replica merges a whole document, or
//! saves and reloads its own. The final phase heals, syncs until no head
//! changes for a while (bounded: past the bound the verdict is `unknown`),
//! reads every replica and probes idempotency. Everything lands in the
//! history, so the checkers ([`crate::checker::automerge`]) are pure
//! functions of it.
//!
//! The run is a seeded interleaving on one thread: writers take turns in an
//! order drawn from the seed, so a seed replays the very same run, and the
//! concurrency that matters here (between replicas) is what the network and
//! the sync protocol produce.
//!
//! - [`layout`]: which converge key is which automerge object;
//! - [`replica`]: the document wrapper (where `automerge-replace-on-merge` breaks merge);
//! - [`links`]: sync states and the loss-recovery policy (where
//!   `automerge-drop-sync` breaks sync);
//! - [`wire`]: encoded messages through the nemesis;
//! - [`driver`]: the run itself.

pub mod driver;
pub mod layout;
pub mod links;
pub mod replica;
pub mod wire;

use crate::error::{Error, Result};
use crate::interpreter::shell_quote;
use crate::nemesis::NemesisSpec;
use std::path::PathBuf;

pub use driver::{run, AutomergeResult};

/// A deliberately broken wrapper around automerge, which must be caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutomergeFault {
    /// The sync wrapper drops every third message for good and never restarts a link.
    DropSync,
    /// Whole-document merge replaces the document with the other one.
    ReplaceOnMerge,
}

impl AutomergeFault {
    /// Every fault.
    pub const ALL: [AutomergeFault; 2] = [AutomergeFault::DropSync, AutomergeFault::ReplaceOnMerge];

    /// CLI name, as `--fault` takes it.
    pub fn name(self) -> &'static str {
        match self {
            AutomergeFault::DropSync => "automerge-drop-sync",
            AutomergeFault::ReplaceOnMerge => "automerge-replace-on-merge",
        }
    }

    /// The fault named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// One line for `converge list faults`.
    pub fn description(self) -> &'static str {
        match self {
            AutomergeFault::DropSync => "sync wrapper loses every third message and never resets sync::State (automerge #851: the protocol assumes reliable in-order delivery)",
            AutomergeFault::ReplaceOnMerge => "whole-document merge replaces the local document instead of merging, losing its unsynced changes",
        }
    }
}

/// Everything an automerge run needs.
#[derive(Clone, Debug, PartialEq)]
pub struct AutomergeConfig {
    /// Logical writers; writer `w` uses replica `w % replicas`.
    pub writers: u32,
    /// Replicas (documents).
    pub replicas: u16,
    /// Total operations.
    pub ops: u64,
    /// Counters, and as many registers.
    pub keys: u32,
    /// Fraction of counter and register ops on counter 0 / register 0.
    pub hot_key_ratio: f64,
    /// Fraction of list and text ops that delete.
    pub remove_ratio: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Faults between replicas.
    pub nemesis: NemesisSpec,
    /// A broken wrapper, or `None` for the correct one.
    pub fault: Option<AutomergeFault>,
    /// Bound on the final phase, in rounds of [`links::RESET_AFTER_TICKS`] ticks.
    pub max_rounds: u32,
    /// Output directory.
    pub out: PathBuf,
    /// A load shape on virtual time (see [`crate::vload`]); `None`: up to
    /// four writers per replica, picked at random, act every tick until
    /// `ops`. Its `writers` and `ops` are ignored for this
    /// configuration's own.
    pub load: Option<crate::load::LoadSpec>,
}

/// Default counters (and registers): few, so that writers collide.
pub const DEFAULT_KEYS: u32 = 4;
/// Default operations.
pub const DEFAULT_OPS: u64 = 5_000;

impl AutomergeConfig {
    /// Defaults for `seed`, written to `out`.
    pub fn new(seed: u64, out: PathBuf) -> Self {
        AutomergeConfig {
            writers: 100,
            replicas: 5,
            ops: DEFAULT_OPS,
            keys: DEFAULT_KEYS,
            hot_key_ratio: 0.5,
            remove_ratio: 0.3,
            seed,
            nemesis: NemesisSpec::parse("default").unwrap_or(NemesisSpec { faults: Vec::new() }),
            fault: None,
            max_rounds: 50,
            out,
            load: None,
        }
    }

    /// The model name in the history header and report.
    pub fn model(&self) -> &'static str {
        self.fault.map_or("automerge", AutomergeFault::name)
    }

    /// Rejects values the run cannot honour, naming the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.writers == 0 {
            return bad("--writers must be at least 1".into());
        }
        if self.replicas == 0 {
            return bad("--replicas must be at least 1".into());
        }
        if self.keys == 0 || self.keys > 1 << 20 {
            return bad(format!("--keys must be in 1..=1048576, got {}", self.keys));
        }
        if !(0.0..=1.0).contains(&self.hot_key_ratio) {
            return bad(format!(
                "--hot-key-ratio must be in [0, 1], got {}",
                self.hot_key_ratio
            ));
        }
        if !(0.0..=1.0).contains(&self.remove_ratio) {
            return bad(format!(
                "--remove-ratio must be in [0, 1], got {}",
                self.remove_ratio
            ));
        }
        if self.max_rounds == 0 {
            return bad("--max-rounds must be at least 1".into());
        }
        if self.ops >= 1 << 40 {
            return bad(format!("--ops must be below 2^40, got {}", self.ops));
        }
        let timed = self.load.as_ref().is_some_and(|l| l.end().is_some());
        if self.ops == 0 && !timed {
            return bad("--ops must be at least 1 (or bound the run by --duration)".into());
        }
        if self.load.is_some() {
            let spec = self.effective_load();
            spec.validate()?;
            if spec.peak_writers() > crate::interpreter::MAX_WRITERS {
                return bad(format!(
                    "the load asks for {} writers; at most {}",
                    spec.peak_writers(),
                    crate::interpreter::MAX_WRITERS
                ));
            }
        }
        Ok(())
    }

    /// Writers acting together in a tick without a load shape: up to four
    /// per replica, so with one writer per replica every writer acts
    /// concurrently.
    pub fn burst(&self) -> u32 {
        self.writers.min(4 * self.replicas as u32).max(1)
    }

    /// The load the run follows. Without a shape: a closed model of
    /// [`AutomergeConfig::burst`] writers (picked at random among all the
    /// writers every tick) until `ops`.
    pub fn effective_load(&self) -> crate::load::LoadSpec {
        let mut spec = self.load.clone().unwrap_or_default();
        spec.writers = match self.load {
            Some(_) => self.writers,
            None => self.burst(),
        };
        spec.ops = (self.ops > 0).then_some(self.ops);
        spec
    }

    /// The command line that replays this run.
    pub fn reproduce(&self) -> String {
        let fault = self
            .fault
            .map_or(String::new(), |f| format!(" --fault {}", f.name()));
        format!(
            "converge run --target automerge{fault} --writers {} --replicas {}{} --keys {} --hot-key-ratio {} --remove-ratio {} --max-rounds {} --seed {} --nemesis {}{} --out {}",
            self.writers,
            self.replicas,
            if self.ops > 0 {
                format!(" --ops {}", self.ops)
            } else {
                String::new()
            },
            self.keys,
            self.hot_key_ratio,
            self.remove_ratio,
            self.max_rounds,
            self.seed,
            self.nemesis.to_spec(),
            self.load
                .as_ref()
                .map_or(String::new(), |l| l.flags(crate::load::FlagClock::Virtual)),
            shell_quote(&self.out.display().to_string())
        )
    }
}
