//! Counters the writers and the network thread share.

use crate::shim::{AtomicBool, AtomicU64, Ordering};

/// Update copies not yet delivered, for back-pressure: writers pause while
/// it is over their limit.
///
/// Every change is one atomic read-modify-write, so concurrent changes are
/// never lost; the order is `Relaxed` because the count is a hint, not a
/// synchronisation point. An update is counted before the network can see
/// it (see [`ReplicaCell::originate`](crate::ReplicaCell::originate)), so
/// the count never dips below zero and wraps around.
#[derive(Debug, Default)]
pub struct Backlog {
    undelivered: AtomicU64,
}

impl Backlog {
    /// An empty backlog.
    pub fn new() -> Self {
        Self::default()
    }

    /// `n` more copies on their way.
    #[inline]
    pub fn add(&self, n: u64) {
        self.undelivered.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` copies delivered, or set aside (held by a partition).
    #[inline]
    pub fn remove(&self, n: u64) {
        self.undelivered.fetch_sub(n, Ordering::Relaxed);
    }

    /// `updates` counted updates become `copies_each` counted copies each
    /// (one per other replica), in one step.
    #[inline]
    pub fn fan_out(&self, updates: u64, copies_each: u64) {
        match copies_each.checked_sub(1) {
            Some(extra) => self.add(updates * extra),
            None => self.remove(updates),
        }
    }

    /// Copies on their way now.
    #[inline]
    pub fn get(&self) -> u64 {
        self.undelivered.load(Ordering::Relaxed)
    }
}

/// Writers' progress as the network thread sees it: ops completed so far
/// (the nemesis changes phase on it) and whether writing is over.
#[derive(Debug, Default)]
pub struct Progress {
    completed: AtomicU64,
    writers_done: AtomicBool,
}

impl Progress {
    /// No op completed, writing under way.
    pub fn new() -> Self {
        Self::default()
    }

    /// `n` more ops completed.
    #[inline]
    pub fn report(&self, n: u64) {
        self.completed.fetch_add(n, Ordering::Relaxed);
    }

    /// Ops completed so far. Once [`finished`](Self::finished) has returned
    /// true, this includes every report made before [`finish`](Self::finish).
    #[inline]
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Every writer is done. Publishes their reports to whoever sees
    /// [`finished`](Self::finished) return true.
    pub fn finish(&self) {
        self.writers_done.store(true, Ordering::Release);
    }

    /// True once [`finish`](Self::finish) was called.
    #[inline]
    pub fn finished(&self) -> bool {
        self.writers_done.load(Ordering::Acquire)
    }
}
