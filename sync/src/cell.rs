//! A replica's state behind its lock, with the outbox the network drains.

use crate::counters::Backlog;
use crate::shim::{Mutex, MutexGuard};
use std::ops::{Deref, DerefMut};

/// One replica shared by its writers (who update it and queue the update
/// for the other replicas) and the network thread (which takes the queued
/// updates, delivers others' updates, and merges gossip).
#[derive(Debug)]
pub struct ReplicaCell<S, U> {
    slot: Mutex<Slot<S, U>>,
}

#[derive(Debug)]
struct Slot<S, U> {
    state: S,
    /// Updates originated here and not yet taken by the network.
    outbox: Vec<U>,
}

/// The replica's state, locked. The outbox is out of reach: updates enter
/// it only through [`ReplicaCell::originate`], which counts them.
#[derive(Debug)]
pub struct StateGuard<'a, S, U>(MutexGuard<'a, Slot<S, U>>);

impl<S, U> ReplicaCell<S, U> {
    /// A cell holding `state` and an empty outbox.
    pub fn new(state: S) -> Self {
        ReplicaCell {
            slot: Mutex::new(Slot {
                state,
                outbox: Vec::new(),
            }),
        }
    }

    /// Locks the state, to read it, deliver to it or merge into it.
    #[inline]
    pub fn lock(&self) -> StateGuard<'_, S, U> {
        StateGuard(self.slot.lock())
    }

    /// Performs an update at this replica, its origin. `update` returns the
    /// message to ship to the other replicas and what the caller wants
    /// back; the message is queued and counted in `backlog` before the lock
    /// is released, so the network never takes an uncounted update.
    #[inline]
    pub fn originate<T, E>(
        &self,
        backlog: &Backlog,
        update: impl FnOnce(&mut S) -> Result<(U, T), E>,
    ) -> Result<T, E> {
        let mut slot = self.slot.lock();
        let (message, out) = update(&mut slot.state)?;
        backlog.add(1);
        slot.outbox.push(message);
        Ok(out)
    }

    /// Takes every queued update, turning each into `copies_each` counted
    /// copies in `backlog` (one per other replica).
    pub fn ship(&self, backlog: &Backlog, copies_each: u64) -> Vec<U> {
        let mut fresh = Vec::new();
        self.ship_into(backlog, copies_each, &mut fresh);
        fresh
    }

    /// [`ship`](Self::ship) into `into`, which must be empty: the outbox
    /// and `into` swap buffers, so a network that hands back its drained
    /// buffer every time makes no allocation per shipment. Returns how many
    /// updates were taken.
    pub fn ship_into(&self, backlog: &Backlog, copies_each: u64, into: &mut Vec<U>) -> usize {
        debug_assert!(into.is_empty());
        std::mem::swap(&mut self.slot.lock().outbox, into);
        if !into.is_empty() {
            backlog.fan_out(into.len() as u64, copies_each);
        }
        into.len()
    }

    /// True when no update waits for the network.
    pub fn outbox_is_empty(&self) -> bool {
        self.slot.lock().outbox.is_empty()
    }
}

impl<S, U> Deref for StateGuard<'_, S, U> {
    type Target = S;
    #[inline]
    fn deref(&self) -> &S {
        &self.0.state
    }
}

impl<S, U> DerefMut for StateGuard<'_, S, U> {
    #[inline]
    fn deref_mut(&mut self) -> &mut S {
        &mut self.0.state
    }
}
