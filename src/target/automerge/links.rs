//! Sync links: one `automerge::sync::State` per (replica, peer), the policy
//! that decides when to generate a message, and the policy that recovers
//! from lost messages.
//!
//! The sync protocol assumes a reliable, in-order stream (its docs; automerge
//! #851): a lost message can leave a state `in_flight` forever, or believing
//! the peer has changes it never got. A real deployment reconnects, which
//! starts the link from its persisted form (`State::encode`/`decode` keeps
//! only the heads both sides confirmed). The robust policy does that when it
//! suspects a loss; the faulty one never does.

use super::replica::Replica;
use super::wire::{Packet, Wire};
use automerge::sync::{Message, State};

/// Replicas up to this many sync with every other one; more use a sparse,
/// connected topology of logarithmic degree.
pub const FULL_MESH_MAX: u16 = 8;

/// Ticks without hearing from a peer before a robust link suspects a loss.
/// Longer than the nemesis's longest delay, so a delayed reply usually wins.
pub const RESET_AFTER_TICKS: u64 = 24;

/// How a link treats loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Reconnect (restart from the persisted state) every
    /// [`RESET_AFTER_TICKS`] while a reply is awaited or the peer is not
    /// known to hold our heads.
    Robust,
    /// A fault: every third message is dropped by the wrapper, for good, and
    /// no link ever restarts.
    DropEveryThird,
}

/// Counters of what the links did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Sync messages generated.
    pub generated: u64,
    /// Messages the faulty wrapper swallowed.
    pub dropped_by_wrapper: u64,
    /// Link restarts after a suspected loss.
    pub resets: u64,
    /// Messages that failed to decode or apply.
    pub receive_errors: u64,
}

/// The peers replica `r` of `n` syncs with: everyone when `n` is small,
/// else `r ± 2^k`, which is symmetric and connected with diameter O(log n).
pub fn neighbours(r: u16, n: u16) -> Vec<u16> {
    if n <= FULL_MESH_MAX {
        return (0..n).filter(|p| *p != r).collect();
    }
    let (r, n) = (r as u32, n as u32);
    let mut peers = Vec::new();
    let mut offset = 1;
    while offset < n {
        for p in [(r + offset) % n, (r + n - offset) % n] {
            if p != r && !peers.contains(&(p as u16)) {
                peers.push(p as u16);
            }
        }
        offset *= 2;
    }
    peers.sort_unstable();
    peers
}

struct Link {
    peer: u16,
    state: State,
    last_reset: u64,
    seen_version: u64,
    reply_due: bool,
}

/// Every link of every replica.
pub struct Links {
    links: Vec<Vec<Link>>,
    policy: SyncPolicy,
    /// What the links did.
    pub stats: LinkStats,
    /// The first few receive errors, verbatim.
    pub errors: Vec<String>,
}

/// Receive errors kept verbatim.
const MAX_ERRORS: usize = 8;

impl Links {
    /// Fresh links for `replicas` replicas.
    pub fn new(replicas: u16, policy: SyncPolicy) -> Self {
        let links = (0..replicas)
            .map(|r| {
                neighbours(r, replicas)
                    .into_iter()
                    .map(|peer| Link {
                        peer,
                        state: State::new(),
                        last_reset: 0,
                        seen_version: u64::MAX,
                        reply_due: false,
                    })
                    .collect()
            })
            .collect();
        Links {
            links,
            policy,
            stats: LinkStats::default(),
            errors: Vec::new(),
        }
    }

    /// Links in total.
    pub fn count(&self) -> usize {
        self.links.iter().map(Vec::len).sum()
    }

    /// Whether `a` syncs with `b`.
    pub fn linked(&self, a: u16, b: u16) -> bool {
        self.links[a as usize].iter().any(|l| l.peer == b)
    }

    /// The peers of replica `r`.
    pub fn peers(&self, r: u16) -> impl Iterator<Item = u16> + '_ {
        self.links[r as usize].iter().map(|l| l.peer)
    }

    /// Lets every link that owes its peer a reply, or whose replica changed
    /// (at most every `throttle` ticks, as applications batch), generate its
    /// next message and send it.
    pub fn pump(&mut self, tick: u64, throttle: u64, replicas: &mut [Replica], wire: &mut Wire) {
        let throttle = throttle.max(1);
        for (r, links) in self.links.iter_mut().enumerate() {
            let replica = &mut replicas[r];
            for link in links.iter_mut() {
                if self.policy == SyncPolicy::Robust && suspects_loss(link, tick, replica) {
                    link.state = restart(&link.state);
                    link.last_reset = tick;
                    link.reply_due = true;
                    self.stats.resets += 1;
                }
                let due = (tick + r as u64).is_multiple_of(throttle);
                if !link.reply_due && (link.seen_version == replica.version || !due) {
                    continue;
                }
                link.reply_due = false;
                link.seen_version = replica.version;
                let Some(message) = replica.generate(&mut link.state) else {
                    continue;
                };
                self.stats.generated += 1;
                if self.policy == SyncPolicy::DropEveryThird
                    && self.stats.generated.is_multiple_of(3)
                {
                    self.stats.dropped_by_wrapper += 1;
                    continue;
                }
                wire.send(r as u16, link.peer, message.encode());
            }
        }
    }

    /// Applies a delivered message at its receiver.
    pub fn deliver(&mut self, packet: &Packet, replicas: &mut [Replica]) {
        let Some(link) = self.links[packet.to as usize]
            .iter_mut()
            .find(|l| l.peer == packet.from)
        else {
            return;
        };
        link.reply_due = true;
        let result = Message::decode(&packet.bytes)
            .map_err(|e| format!("decode: {e}"))
            .and_then(|m| {
                replicas[packet.to as usize]
                    .receive(&mut link.state, m)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            self.stats.receive_errors += 1;
            if self.errors.len() < MAX_ERRORS {
                self.errors
                    .push(format!("message {} -> {}: {e}", packet.from, packet.to));
            }
            if self.policy == SyncPolicy::Robust {
                link.state = State::new();
            }
        }
    }

    /// Re-applies an already delivered message at its receiver, for an
    /// idempotency probe: through the live link state, then a fresh one.
    pub fn redeliver(&mut self, packet: &Packet, replica: &mut Replica) -> Result<(), String> {
        let message = || Message::decode(&packet.bytes).map_err(|e| format!("decode: {e}"));
        if let Some(link) = self.links[packet.to as usize]
            .iter_mut()
            .find(|l| l.peer == packet.from)
        {
            replica
                .receive(&mut link.state, message()?)
                .map_err(|e| e.to_string())?;
        }
        replica
            .receive(&mut State::new(), message()?)
            .map_err(|e| e.to_string())
    }
}

/// The robust policy's test, at most once per [`RESET_AFTER_TICKS`]: a reply
/// is still awaited, or the peer is not known to hold our heads. A busy link
/// is no proof of progress: after a lost message the protocol keeps talking
/// but never resends what it believes it sent (automerge #851), so the test
/// does not wait for silence.
fn suspects_loss(link: &Link, tick: u64, replica: &mut Replica) -> bool {
    if tick.saturating_sub(link.last_reset) < RESET_AFTER_TICKS {
        return false;
    }
    if link.state.in_flight {
        return true;
    }
    let mut ours = replica.heads();
    ours.sort();
    match &link.state.their_heads {
        Some(theirs) => {
            let mut theirs = theirs.clone();
            theirs.sort();
            theirs != ours
        }
        None => true,
    }
}

/// A reconnect: the state as a peer would reload it from storage.
fn restart(state: &State) -> State {
    State::decode(&state.encode()).unwrap_or_default()
}
