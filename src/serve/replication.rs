//! Replication: each replica pulls, from every peer it can reach, the rows
//! past its own vector clock, on a fixed period (anti-entropy). Partitions
//! are set through the admin endpoints so an outside nemesis can drive them.

use super::clock::Clock;
use super::store::{Delta, Store};
use super::ServeFault;
use parking_lot::RwLock;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One replica: its store, its peers, and its partition state.
pub struct Replica {
    /// Replica id (its index).
    pub id: u16,
    /// Durable state.
    pub store: Store,
    /// Base URLs of every replica, by id (its own included).
    pub peers: Vec<String>,
    /// Peers this replica neither pulls from nor serves.
    pub blocked: RwLock<BTreeSet<u16>>,
    /// Whether a partition was ever set.
    pub was_partitioned: AtomicBool,
    /// Whether anti-entropy runs.
    pub syncing: AtomicBool,
    /// The known bug switched on, if any.
    pub fault: Option<ServeFault>,
}

impl Replica {
    /// Lifts the partition. Under `no-anti-entropy` a replica that was ever
    /// partitioned stops syncing here: the bug of a sync loop that died on
    /// the errors the partition caused and was never restarted.
    pub fn heal(&self) {
        self.blocked.write().clear();
        if self.fault == Some(ServeFault::NoAntiEntropy)
            && self.was_partitioned.load(Ordering::SeqCst)
        {
            self.syncing.store(false, Ordering::SeqCst);
        }
    }
}

/// Pulls one peer's delta and merges it; errors are the peer's or the
/// network's and only delay convergence, so they are returned for logging.
async fn pull_from(
    replica: &Replica,
    client: &reqwest::Client,
    peer: u16,
) -> Result<usize, String> {
    let since: Clock = replica.store.clock().await.map_err(|e| e.to_string())?;
    let body = serde_json::json!({"from": replica.id, "since": since});
    let url = format!("{}/replication/pull", replica.peers[peer as usize]);
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}"));
    }
    let delta: Delta =
        serde_json::from_slice(&bytes).map_err(|e| format!("{url}: bad delta: {e}"))?;
    let rows = delta.rows();
    replica
        .store
        .merge(&delta)
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows)
}

/// Runs anti-entropy until `stop` turns true.
pub async fn anti_entropy(
    replica: Arc<Replica>,
    client: reqwest::Client,
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if !replica.syncing.load(Ordering::SeqCst) {
            continue;
        }
        for peer in 0..replica.peers.len() as u16 {
            if peer == replica.id || replica.blocked.read().contains(&peer) {
                continue;
            }
            if let Err(why) = pull_from(&replica, &client, peer).await {
                tracing::debug!("replica {} could not pull from {peer}: {why}", replica.id);
            }
        }
    }
}
