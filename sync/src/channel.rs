//! A bounded many-to-one channel: the writers' hand-off to the history
//! recorder.
//!
//! The receiver takes the whole queue at once and works through its own
//! copy, so the lock is taken once per burst rather than once per message
//! and senders are rarely kept waiting. A message sent before the last
//! sender is dropped is always received: the receiver reports
//! "disconnected" only once the queue is empty and no sender is left.

use crate::shim::{self, Arc, Condvar, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::fmt;

/// Back-off rounds of a receiver finding the queue empty before it sleeps
/// (crossbeam's schedule: spins, then yields). One under loom: the same path
/// is checked, without multiplying the interleavings.
const BACKOFF_STEPS: u32 = if cfg!(loom) { 1 } else { 10 };

/// Creates a channel holding at most `capacity` messages the receiver has
/// not taken yet (at least one). `send` waits while it is full.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiving: true,
        }),
        filled: Condvar::new(),
        drained: Condvar::new(),
        capacity: capacity.max(1),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            taken: VecDeque::new(),
        },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when the queue stops being empty, or the last sender leaves.
    filled: Condvar,
    /// Signalled when the receiver empties the queue, or leaves.
    drained: Condvar,
    capacity: usize,
}

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receiving: bool,
}

/// The sending half; clone it for each producer. The channel disconnects
/// when every clone is dropped.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// Messages already taken from the shared queue, oldest first.
    taken: VecDeque<T>,
}

/// The receiver is gone; the message comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Every sender is gone and every message has been received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvError;

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing queued now, but senders remain.
    Empty,
    /// Nothing queued and no sender left.
    Disconnected,
}

impl<T> Sender<T> {
    /// Queues `value`, waiting while the channel is full. Fails only if the
    /// receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut state = self.shared.state.lock();
        while state.receiving && state.queue.len() >= self.shared.capacity {
            state = self.shared.drained.wait(state);
        }
        if !state.receiving {
            return Err(SendError(value));
        }
        // The receiver sleeps only on an empty queue: only the first
        // message of a burst needs to wake it.
        let wake = state.queue.is_empty();
        state.queue.push_back(value);
        drop(state);
        if wake {
            self.shared.filled.notify_one();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.state.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.senders -= 1;
        let last = state.senders == 0;
        drop(state);
        if last {
            self.shared.filled.notify_all();
        }
    }
}

impl<T> Receiver<T> {
    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(value) = self.taken.pop_front() {
            return Ok(value);
        }
        let state = self.shared.state.lock();
        if state.queue.is_empty() {
            return Err(if state.senders == 0 {
                TryRecvError::Disconnected
            } else {
                TryRecvError::Empty
            });
        }
        take_all(&self.shared, state, &mut self.taken);
        self.taken.pop_front().ok_or(TryRecvError::Empty)
    }

    /// The next message, waiting for one; fails once every sender is gone
    /// and everything sent has been received.
    pub fn recv(&mut self) -> Result<T, RecvError> {
        if let Some(value) = self.taken.pop_front() {
            return Ok(value);
        }
        let mut state = self.shared.state.lock();
        let mut step = 0;
        while state.queue.is_empty() {
            if state.senders == 0 {
                return Err(RecvError);
            }
            // Writers send in bursts: back off a little before sleeping,
            // since every sleep costs a wake-up (a syscall and a context
            // switch) on the next send.
            if step < BACKOFF_STEPS {
                drop(state);
                shim::backoff(step);
                step += 1;
                state = self.shared.state.lock();
            } else {
                state = self.shared.filled.wait(state);
            }
        }
        take_all(&self.shared, state, &mut self.taken);
        self.taken.pop_front().ok_or(RecvError)
    }
}

/// Moves the whole shared queue into `taken` and frees the senders.
fn take_all<T>(shared: &Shared<T>, mut state: MutexGuard<'_, State<T>>, taken: &mut VecDeque<T>) {
    std::mem::swap(&mut state.queue, taken);
    drop(state);
    shared.drained.notify_all();
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.state.lock().receiving = false;
        self.shared.drained.notify_all();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a channel whose receiver is gone")
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on a channel with no sender left")
    }
}

impl<T> std::error::Error for SendError<T> {}
impl std::error::Error for RecvError {}
