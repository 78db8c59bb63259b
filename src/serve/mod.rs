//! `converge serve`: a small but real HTTP CRDT store, the reference target
//! of the HTTP path and a demo.
//!
//! Several replicas run in one process, each on its own port with its own
//! SQLite file or Postgres schema. Datatypes: PN-counters, OR-Sets,
//! 2P-Sets, LWW-registers and MV-registers (vector-clock siblings). Replicas pull
//! deltas past their vector clock from each other on a fixed period
//! ([`replication`]); admin endpoints partition and heal them; writes carry
//! an `Idempotency-Key` and apply once per key. `--fault` switches on one
//! known bug ([`ServeFault`]).
//!
//! - [`clock`]: vector clocks;
//! - [`store`]: the database of one replica;
//! - [`replication`]: anti-entropy and partition state;
//! - [`api`]: the HTTP routes (`docs/openapi.yaml`).

pub mod api;
pub mod clock;
pub mod replication;
pub mod store;

use crate::error::{Error, Result};
use parking_lot::RwLock;
use replication::Replica;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use store::{Backend, Store};

/// The known bugs `converge serve --fault NAME` switches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeFault {
    /// Counter increments read, add and write back outside any transaction
    /// or lock: concurrent increments overwrite each other.
    LostUpdate,
    /// The `Idempotency-Key` header is ignored: a retried write applies twice.
    NonIdempotentRetry,
    /// An MV-register read keeps only one of its concurrent siblings.
    SiblingDrop,
    /// After a partition heals, replicas never sync again.
    NoAntiEntropy,
    /// LWW writes land on the wrong key: the write handler namespaces the
    /// key by replica (`<key>@<replica>`), the read handler does not, so
    /// acknowledged writes are never read back.
    LwwWrongKey,
    /// An OR-Set remove tombstones the element, not the adds it observed:
    /// an element added again after any remove of it stays hidden (a
    /// 2P-Set posing as an OR-Set), so acknowledged re-adds are lost.
    TombstoneElement,
    /// Anti-entropy overwrites a replica's 2P-Set with the peer's copy
    /// instead of merging the two (the set kept as one document, the last
    /// one written wins: Riak with `allow_mult=false`, or a JSON column
    /// replicated by a plain upsert). Adds made at this replica that the
    /// peer had not seen yet are dropped although they were acknowledged.
    OverwriteMerge,
    /// Every write keeps a copy of a [`api::LEAK_BYTES`] buffer for ever (a
    /// cache that is filled and never evicted): resident memory grows
    /// steadily with the writes while every answer stays right. Only a
    /// memory gate (`service_leak_slope_mb_per_min`) catches it.
    LeakMemory,
}

impl ServeFault {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServeFault::LostUpdate => "lost-update",
            ServeFault::NonIdempotentRetry => "non-idempotent-retry",
            ServeFault::SiblingDrop => "sibling-drop",
            ServeFault::NoAntiEntropy => "no-anti-entropy",
            ServeFault::LwwWrongKey => "lww-wrong-key",
            ServeFault::TombstoneElement => "tombstone-element",
            ServeFault::OverwriteMerge => "overwrite-merge",
            ServeFault::LeakMemory => "leak-memory",
        }
    }
}

/// Everything `converge serve` needs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Replicas.
    pub replicas: u16,
    /// Address to listen on.
    pub host: String,
    /// Port of replica 0 (replica i on port + i); 0 picks free ports.
    pub port: u16,
    /// Directory of the SQLite files (a fresh temporary one when `None`
    /// and no database URL is given).
    pub data_dir: Option<PathBuf>,
    /// Postgres URL: each replica gets the schema `<schema_prefix>_r<i>`.
    pub database_url: Option<String>,
    /// Prefix of the Postgres schemas.
    pub schema_prefix: String,
    /// Drop the replicas' existing state first.
    pub reset: bool,
    /// Known bug to switch on.
    pub fault: Option<ServeFault>,
    /// Seed (jitters the anti-entropy schedule of each replica).
    pub seed: u64,
    /// Anti-entropy period.
    pub anti_entropy: Duration,
}

impl ServeConfig {
    /// Checks ranges, naming the flag.
    pub fn validate(&self) -> Result<()> {
        if self.replicas == 0 || self.replicas > 64 {
            return Err(Error::Config(format!(
                "--replicas must be in 1..=64, got {}",
                self.replicas
            )));
        }
        if self.data_dir.is_some() && self.database_url.is_some() {
            return Err(Error::Config(
                "--data-dir and --database-url exclude each other".into(),
            ));
        }
        if let Some(url) = &self.database_url {
            if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                return Err(Error::Config(
                    "--database-url must be a postgres:// URL".into(),
                ));
            }
        }
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !ident(&self.schema_prefix) {
            return Err(Error::Config(format!(
                "--schema-prefix must be lowercase letters, digits and _, got '{}'",
                self.schema_prefix
            )));
        }
        if self.anti_entropy.is_zero() {
            return Err(Error::Config("--anti-entropy-ms must be positive".into()));
        }
        Ok(())
    }
}

/// Runs the replicas until SIGTERM or SIGINT, printing one
/// `replica i listening on http://HOST:PORT` line per replica first.
pub fn run(config: &ServeConfig) -> Result<()> {
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    runtime.block_on(run_async(config))
}

fn service_error(component: String, e: impl std::fmt::Display) -> Error {
    Error::Target {
        component,
        message: e.to_string(),
    }
}

async fn run_async(config: &ServeConfig) -> Result<()> {
    let shutdown = Shutdown::listen();
    // A temporary directory lives as long as the service.
    let mut _temp = None;
    let data_dir = match (&config.data_dir, &config.database_url) {
        (Some(dir), _) => Some(dir.clone()),
        (None, None) => {
            let dir = std::env::temp_dir().join(format!(
                "converge-serve-{}-{}",
                std::process::id(),
                config.seed
            ));
            _temp = Some(TempDir(dir.clone()));
            Some(dir)
        }
        (None, Some(_)) => None,
    };
    if let Some(dir) = &data_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut listeners = Vec::new();
    let mut urls = Vec::new();
    for i in 0..config.replicas {
        let port = if config.port == 0 {
            0
        } else {
            config.port.checked_add(i).ok_or_else(|| {
                Error::Config(format!("--port {}: replica {i} has no port", config.port))
            })?
        };
        let listener = tokio::net::TcpListener::bind((config.host.as_str(), port))
            .await
            .map_err(|e| {
                Error::Config(format!(
                    "replica {i}: cannot listen on {}:{port}: {e}",
                    config.host
                ))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("listener address", e))?;
        urls.push(format!("http://{addr}"));
        listeners.push(listener);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| service_error("replication client".into(), e))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut replicas = Vec::new();
    for i in 0..config.replicas {
        let backend = match (&data_dir, &config.database_url) {
            (Some(dir), _) => Backend::Sqlite(dir.join(format!("replica-{i}.db"))),
            (None, Some(url)) => Backend::Postgres {
                url: url.clone(),
                schema: format!("{}_r{i}", config.schema_prefix),
            },
            (None, None) => unreachable!("a data directory is chosen above"),
        };
        if config.reset {
            if let Backend::Sqlite(path) = &backend {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
        let store = Store::open(&backend, i, config.replicas, config.fault, config.reset)
            .await
            .map_err(|e| service_error(format!("replica {i} database"), e))?;
        replicas.push(Arc::new(Replica {
            id: i,
            store,
            peers: urls.clone(),
            blocked: RwLock::new(BTreeSet::new()),
            was_partitioned: AtomicBool::new(false),
            syncing: AtomicBool::new(true),
            fault: config.fault,
        }));
    }
    let mut tasks = Vec::new();
    for (replica, listener) in replicas.iter().zip(listeners) {
        let app = api::router(replica.clone());
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.changed().await;
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }));
        // Replicas start their rounds at different offsets so they do not pull in lockstep.
        let offset = crate::generator::derive_seed(config.seed, replica.id as u64)
            % config.anti_entropy.as_millis().max(1) as u64;
        let (replica, client, stop, period) = (
            replica.clone(),
            client.clone(),
            stop_rx.clone(),
            config.anti_entropy,
        );
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(offset)).await;
            replication::anti_entropy(replica, client, period, stop).await;
            Ok(())
        }));
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "converge serve: {} replicas, storage {}, fault {}, seed {}",
            config.replicas,
            match &data_dir {
                Some(dir) => format!("sqlite in {}", dir.display()),
                None => format!("postgres schemas {}_r*", config.schema_prefix),
            },
            config.fault.map_or("none", ServeFault::name),
            config.seed
        );
        for (i, url) in urls.iter().enumerate() {
            let _ = writeln!(out, "replica {i} listening on {url}");
        }
        let _ = out.flush();
    }
    shutdown.wait().await;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    for replica in &replicas {
        replica.store.close().await;
    }
    Ok(())
}

/// SIGTERM and SIGINT, listened for from before the first
/// `listening on` line, so a harness may signal as soon as it reads one.
struct Shutdown {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    fn listen() -> Shutdown {
        use tokio::signal::unix::{signal, SignalKind};
        Shutdown {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Resolves on the first of the two.
    async fn wait(mut self) {
        match (self.term.as_mut(), self.int.as_mut()) {
            (Some(term), Some(int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// Removes a temporary data directory when the service stops.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
