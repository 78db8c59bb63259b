//! Thread-shared types: loom's under `cfg(loom)`, std's and parking_lot's
//! otherwise. The wrappers give both the same infallible `lock` so the code
//! above them is written once.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub use std::sync::Arc;

use std::ops::{Deref, DerefMut};

/// Waits a moment before checking a condition again: `2^step` spin hints for
/// the first steps, then a yield of the thread.
#[inline]
pub fn backoff(step: u32) {
    #[cfg(loom)]
    {
        let _ = step;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    if step <= 6 {
        for _ in 0..1u32 << step {
            std::hint::spin_loop();
        }
    } else {
        std::thread::yield_now();
    }
}

#[cfg(loom)]
type InnerMutex<T> = loom::sync::Mutex<T>;
#[cfg(loom)]
type InnerGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
#[cfg(not(loom))]
type InnerMutex<T> = parking_lot::Mutex<T>;
#[cfg(not(loom))]
type InnerGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

/// A mutual-exclusion lock whose `lock` cannot fail (no poisoning).
#[derive(Debug, Default)]
pub struct Mutex<T>(InnerMutex<T>);

/// Holds a [`Mutex`] until dropped.
#[derive(Debug)]
pub struct MutexGuard<'a, T>(InnerGuard<'a, T>);

impl<T> Mutex<T> {
    /// A lock around `value`.
    pub fn new(value: T) -> Self {
        Mutex(InnerMutex::new(value))
    }

    /// Blocks until the lock is held.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(loom)]
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        #[cfg(not(loom))]
        let guard = self.0.lock();
        MutexGuard(guard)
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// A condition variable paired with a [`Mutex`].
#[derive(Debug, Default)]
pub struct Condvar(
    #[cfg(loom)] loom::sync::Condvar,
    #[cfg(not(loom))] parking_lot::Condvar,
);

impl Condvar {
    /// A condition variable nobody waits on yet.
    pub fn new() -> Self {
        #[cfg(loom)]
        return Condvar(loom::sync::Condvar::new());
        #[cfg(not(loom))]
        return Condvar(parking_lot::Condvar::new());
    }

    /// Releases `guard`, sleeps until notified (or spuriously), and locks
    /// again. Callers re-check their condition in a loop.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        #[cfg(loom)]
        return MutexGuard(self.0.wait(guard.0).unwrap_or_else(|e| e.into_inner()));
        #[cfg(not(loom))]
        {
            let mut guard = guard;
            self.0.wait(&mut guard.0);
            guard
        }
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.0.notify_one();
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.0.notify_all();
    }
}
