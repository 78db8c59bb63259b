//! The same primitives under real threads and real load (the loom tests
//! explore tiny cases exhaustively; these push many messages through).
#![cfg(not(loom))]

use converge_sync::channel::{self, TryRecvError};
use converge_sync::{Backlog, ReplicaCell};
use std::sync::Arc;
use std::thread;

#[test]
fn many_senders_through_a_small_channel_lose_and_reorder_nothing() {
    const SENDERS: u32 = 4;
    const EACH: u32 = 20_000;
    let (tx, mut rx) = channel::bounded::<(u32, u32)>(8);
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    tx.send((s, i)).expect("receiver alive");
                }
            })
        })
        .collect();
    drop(tx);
    let mut next = vec![0u32; SENDERS as usize];
    loop {
        let (s, i) = match rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Empty) => match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            },
            Err(TryRecvError::Disconnected) => break,
        };
        assert_eq!(i, next[s as usize], "sender {s}: out of order");
        next[s as usize] += 1;
    }
    for s in senders {
        s.join().expect("sender");
    }
    assert_eq!(next, vec![EACH; SENDERS as usize]);
}

#[test]
fn send_fails_once_the_receiver_is_gone() {
    let (tx, rx) = channel::bounded::<u8>(1);
    drop(rx);
    assert!(tx.send(1).is_err());
}

#[test]
fn writers_and_a_shipper_leave_an_empty_backlog() {
    const WRITERS: u64 = 3;
    const EACH: u64 = 10_000;
    let backlog = Arc::new(Backlog::new());
    let cell = Arc::new(ReplicaCell::<u64, u64>::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (cell, backlog) = (cell.clone(), backlog.clone());
            thread::spawn(move || {
                for i in 0..EACH {
                    cell.originate(&backlog, |n| {
                        *n += 1;
                        Ok::<_, ()>((i, ()))
                    })
                    .expect("accepted");
                    assert!(backlog.get() <= WRITERS * EACH * 2, "backlog wrapped");
                }
            })
        })
        .collect();
    let mut shipped = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        let fresh = cell.ship(&backlog, 2).len() as u64;
        assert!(backlog.get() <= WRITERS * EACH * 2, "backlog wrapped");
        backlog.remove(fresh * 2);
        shipped += fresh;
    }
    for w in writers {
        w.join().expect("writer");
    }
    let fresh = cell.ship(&backlog, 2).len() as u64;
    backlog.remove(fresh * 2);
    shipped += fresh;
    assert_eq!(shipped, WRITERS * EACH);
    assert_eq!(*cell.lock(), WRITERS * EACH);
    assert_eq!(backlog.get(), 0);
}
