//! In-process target: each replica holds one model instance per key, plus the
//! per-key vector clock that stamps every update for the history.

use converge_models::{Crdt, Intent, OpMeta, Rejected, ReplicaId, UpdateCtx, VClock, Value};
use smallvec::SmallVec;

/// An update's vector clock as its message carries it: inline for up to 8
/// replicas, so the deliveries of an update read it from the message itself
/// (in the network's slab) instead of chasing a separate allocation.
pub type MsgClock = SmallVec<[u64; 8]>;

/// An update on its way from its origin to the other replicas.
#[derive(Clone, Debug)]
pub struct UpdateMsg<M: Crdt> {
    /// Origin replica.
    pub origin: ReplicaId,
    /// Key updated.
    pub key: u32,
    /// The model's op.
    pub op: M::Op,
    /// Per-key vector clock of the update.
    pub clock: MsgClock,
}

/// One key's state on one replica.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyState<M: Crdt> {
    /// The CRDT instance.
    pub model: M,
    /// Causal context of this key on this replica.
    pub clock: VClock,
}

/// What the origin replica reports about a successful update.
#[derive(Debug)]
pub struct Applied<M: Crdt> {
    /// The message to ship to the other replicas.
    pub msg: UpdateMsg<M>,
    /// What the history records of it.
    pub stamp: Stamp,
}

/// What the history records of a successful update.
#[derive(Debug)]
pub struct Stamp {
    /// Dot, timestamp or observed dots, as the model reports them.
    pub meta: OpMeta,
    /// Sum of the update's clock.
    pub clock_sum: u64,
    /// The update's clock.
    pub clock: MsgClock,
}

/// One replica: a model per key. Its outbox is kept beside it, in the
/// [`ReplicaCell`](converge_sync::ReplicaCell) the cluster holds it in.
#[derive(Clone, Debug)]
pub struct Replica<M: Crdt> {
    /// Replica id.
    pub id: ReplicaId,
    /// Per-key state, indexed by key.
    pub keys: Vec<KeyState<M>>,
}

impl<M: Crdt> Replica<M> {
    /// An empty replica with `keys` keys in a cluster of `replicas`.
    pub fn new(id: ReplicaId, keys: u32, replicas: usize) -> Self {
        Replica {
            id,
            keys: (0..keys)
                .map(|_| KeyState {
                    model: M::new(id),
                    clock: VClock::new(replicas),
                })
                .collect(),
        }
    }

    /// Performs an update at this replica (its origin). On success the
    /// caller ships the returned message.
    pub fn update(&mut self, key: u32, intent: &Intent) -> Result<Applied<M>, Rejected> {
        let id = self.id;
        let state = self
            .keys
            .get_mut(key as usize)
            .ok_or(Rejected::Unsupported)?;
        // The key's clock advances in place (undone if the model rejects
        // the intent): the update's clock is the key's clock afterwards.
        let dot = state.clock.increment(id);
        let ctx = UpdateCtx {
            replica: id,
            dot,
            clock: &state.clock,
        };
        let op = match state.model.update(intent, &ctx) {
            Ok(op) => op,
            Err(rejected) => {
                state.clock.0[id as usize] -= 1;
                return Err(rejected);
            }
        };
        let clock = MsgClock::from_slice(&state.clock.0);
        let stamp = Stamp {
            meta: M::meta(&op),
            clock_sum: state.clock.total(),
            clock: clock.clone(),
        };
        Ok(Applied {
            msg: UpdateMsg {
                origin: id,
                key,
                op,
                clock,
            },
            stamp,
        })
    }

    /// Applies an update that originated elsewhere.
    pub fn deliver(&mut self, msg: &UpdateMsg<M>) {
        if let Some(state) = self.keys.get_mut(msg.key as usize) {
            state.model.apply(&msg.op);
            state.clock.merge_entries(&msg.clock);
        }
    }

    /// State-based merge of another replica's keys into this one.
    pub fn merge_from(&mut self, other: &Replica<M>) {
        for (mine, theirs) in self.keys.iter_mut().zip(&other.keys) {
            mine.model.merge(&theirs.model);
            mine.clock.merge(&theirs.clock);
        }
    }

    /// Reads one key.
    pub fn read(&self, key: u32) -> Option<Value> {
        self.keys.get(key as usize).map(|s| s.model.read())
    }

    /// True when every key's model equals the other's (clocks are bookkeeping).
    pub fn same_state(&self, other: &Replica<M>) -> bool {
        self.keys
            .iter()
            .zip(&other.keys)
            .all(|(a, b)| a.model == b.model)
    }

    /// A copy, for gossip and snapshots.
    pub fn snapshot(&self) -> Replica<M> {
        self.clone()
    }
}
