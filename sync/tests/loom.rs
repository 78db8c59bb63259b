//! Model checks of the primitives the in-process run shares between
//! threads, under every interleaving loom can reach (preemption bound 3).
//!
//! `RUSTFLAGS="--cfg loom" cargo test --release -p converge-sync --test loom`
//!
//! Each test plays the real roles with the real types: writer threads
//! (`ReplicaCell::originate`, `Sender::send`, `Progress::report`), the
//! network thread (`ReplicaCell::ship`, `Backlog::remove`) and the history
//! recorder (`Receiver::try_recv` then `recv`, as `write_loop` does). Two
//! broken variants are expected to fail, to show loom finds such bugs.
#![cfg(loom)]

use converge_sync::channel::{self, Receiver, TryRecvError};
use converge_sync::shim::{Arc, AtomicU64, Ordering};
use converge_sync::{Backlog, Progress, ReplicaCell};
use loom::thread;

fn check(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Drains `rx` the way the history writer's loop does: take what is queued,
/// sleep in `recv` only when nothing is, stop once disconnected.
fn record_all<T>(rx: &mut Receiver<T>) -> Vec<T> {
    let mut recorded = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(msg) => recorded.push(msg),
            Err(TryRecvError::Empty) => match rx.recv() {
                Ok(msg) => recorded.push(msg),
                Err(_) => break,
            },
            Err(TryRecvError::Disconnected) => break,
        }
    }
    recorded
}

#[test]
fn recorder_gets_every_batch_in_send_order_then_stops() {
    check(|| {
        // Capacity 2: with three batches in flight a sender may wait.
        let (tx, mut rx) = channel::bounded::<(u8, u8)>(2);
        let writers: Vec<_> = (0..2u8)
            .map(|w| {
                let tx = tx.clone();
                thread::spawn(move || {
                    // Writer 0 sends two batches, writer 1 one.
                    for batch in 0..2 - w {
                        tx.send((w, batch)).expect("recorder is alive");
                    }
                })
            })
            .collect();
        drop(tx);
        let recorded = record_all(&mut rx);
        for w in writers {
            w.join().expect("writer");
        }
        let from =
            |w: u8| -> Vec<u8> { recorded.iter().filter(|m| m.0 == w).map(|m| m.1).collect() };
        assert_eq!(from(0), [0, 1], "writer 0's batches lost or out of order");
        assert_eq!(from(1), [0], "writer 1's batch lost");
    });
}

#[test]
fn last_batch_sent_before_disconnect_is_recorded() {
    check(|| {
        let (tx, mut rx) = channel::bounded::<u8>(4);
        let writer = thread::spawn(move || {
            tx.send(7).expect("recorder is alive");
            // `tx` drops here: the disconnect races the recorder's drain.
        });
        assert_eq!(record_all(&mut rx), [7]);
        writer.join().expect("writer");
    });
}

#[test]
fn sender_blocked_on_a_full_channel_is_released_when_recorder_quits() {
    check(|| {
        let (tx, mut rx) = channel::bounded::<u8>(1);
        let writer = thread::spawn(move || {
            let first = tx.send(1).is_ok();
            let second = tx.send(2).is_ok();
            (first, second)
        });
        let got = rx.recv().ok();
        drop(rx);
        let (first, second) = writer.join().expect("writer never blocked for good");
        assert!(first, "the first send fits the capacity");
        if second {
            // Only a send accepted before the recorder left may succeed.
            assert_eq!(got, Some(1));
        }
    });
}

/// Two replicas, one writer each, and the network thread shipping and
/// delivering while they write; then the final flush. Every update reaches
/// the other replica exactly once, and the backlog never goes below zero
/// (it would wrap to a huge value and stall every writer).
#[test]
fn every_update_is_shipped_once_and_backlog_never_wraps() {
    check(|| {
        let backlog = Arc::new(Backlog::new());
        let cells: Arc<[ReplicaCell<Vec<u8>, u8>; 2]> =
            Arc::new([ReplicaCell::new(Vec::new()), ReplicaCell::new(Vec::new())]);
        const COPIES: u64 = 2;
        let writers: Vec<_> = (0..2u8)
            .map(|r| {
                let (cells, backlog) = (cells.clone(), backlog.clone());
                thread::spawn(move || {
                    cells[r as usize]
                        .originate(&backlog, |applied| {
                            applied.push(r);
                            Ok::<_, ()>((r, ()))
                        })
                        .expect("update accepted");
                    assert!(backlog.get() <= COPIES, "backlog wrapped");
                })
            })
            .collect();
        let deliver_all = || {
            for src in 0..2 {
                for update in cells[src].ship(&backlog, 1) {
                    assert!(backlog.get() <= COPIES, "backlog wrapped");
                    cells[1 - src].lock().push(update);
                    backlog.remove(1);
                    assert!(backlog.get() <= COPIES, "backlog wrapped");
                }
            }
        };
        deliver_all();
        for w in writers {
            w.join().expect("writer");
        }
        deliver_all();
        for cell in cells.iter() {
            assert!(cell.outbox_is_empty());
            let mut applied = cell.lock().clone();
            applied.sort_unstable();
            assert_eq!(applied, [0, 1], "an update was lost or doubled");
        }
        assert_eq!(backlog.get(), 0);
    });
}

/// How a writer counts an update it originated.
#[derive(Clone, Copy)]
enum Counting {
    /// The real way: inside `originate`, under the replica's lock.
    UnderTheLock,
    /// BROKEN, as the run did before this crate: after the lock is released,
    /// so the network can ship and deliver an update not yet counted.
    AfterTheLock,
}

/// One replica alone (updates fan out to zero copies): the writer
/// originates, the network ships concurrently. The backlog must never wrap.
fn lone_replica_backlog(counting: Counting) {
    check(move || {
        let backlog = Arc::new(Backlog::new());
        let cell = Arc::new(ReplicaCell::<(), u8>::new(()));
        let writer = {
            let (cell, backlog) = (cell.clone(), backlog.clone());
            thread::spawn(move || match counting {
                Counting::UnderTheLock => {
                    cell.originate(&backlog, |_| Ok::<_, ()>((1, ()))).unwrap();
                }
                Counting::AfterTheLock => {
                    cell.originate(&Backlog::new(), |_| Ok::<_, ()>((1, ())))
                        .unwrap();
                    backlog.add(1);
                }
            })
        };
        let shipped = cell.ship(&backlog, 0).len();
        assert!(backlog.get() <= 1, "backlog wrapped to {}", backlog.get());
        writer.join().expect("writer");
        let shipped = shipped + cell.ship(&backlog, 0).len();
        assert_eq!(shipped, 1);
        assert_eq!(backlog.get(), 0);
    });
}

#[test]
fn counting_under_the_lock_keeps_a_lone_replica_backlog_sane() {
    lone_replica_backlog(Counting::UnderTheLock);
}

#[test]
#[should_panic(expected = "backlog wrapped")]
fn counting_after_the_lock_lets_the_backlog_wrap() {
    lone_replica_backlog(Counting::AfterTheLock);
}

/// What the back-pressure test needs of a counter.
trait Counter: Send + Sync + 'static {
    fn add(&self, n: u64);
    fn get(&self) -> u64;
}

impl Counter for Backlog {
    fn add(&self, n: u64) {
        Backlog::add(self, n)
    }
    fn get(&self) -> u64 {
        Backlog::get(self)
    }
}

/// BROKEN: a load then a store, so concurrent additions overwrite each other.
#[derive(Default)]
struct LoadThenStoreCounter(AtomicU64);

impl Counter for LoadThenStoreCounter {
    fn add(&self, n: u64) {
        let seen = self.0.load(Ordering::Relaxed);
        self.0.store(seen + n, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Two writers count their updates at the same time; none may be lost.
fn concurrent_counts<C: Counter>(new: fn() -> C) {
    check(move || {
        let counter = Arc::new(new());
        let other = {
            let counter = counter.clone();
            thread::spawn(move || counter.add(1))
        };
        counter.add(1);
        other.join().expect("writer");
        assert_eq!(counter.get(), 2, "an update was not counted");
    });
}

#[test]
fn backlog_counts_concurrent_updates() {
    concurrent_counts(Backlog::new);
}

#[test]
#[should_panic(expected = "an update was not counted")]
fn load_then_store_counter_loses_an_update() {
    concurrent_counts(LoadThenStoreCounter::default);
}

/// The network thread polls progress while a writer reports; once it sees
/// the run finished, it sees every report, and its readings never go back.
#[test]
fn progress_is_complete_once_finished_is_seen() {
    check(|| {
        let progress = Arc::new(Progress::new());
        let writer = {
            let progress = progress.clone();
            thread::spawn(move || {
                progress.report(1);
                progress.report(2);
            })
        };
        let network = {
            let progress = progress.clone();
            thread::spawn(move || {
                let mut last = 0;
                loop {
                    let finished = progress.finished();
                    let seen = progress.completed();
                    assert!(seen >= last, "completed went back");
                    last = seen;
                    if finished {
                        assert_eq!(seen, 3, "finished before every report was visible");
                        break;
                    }
                    thread::yield_now();
                }
            })
        };
        writer.join().expect("writer");
        progress.finish();
        network.join().expect("network");
    });
}
