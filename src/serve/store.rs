//! One replica's durable state: a SQLite file or a Postgres schema, reached
//! through sqlx's `Any` driver so both run the same statements.
//!
//! Every local update gets the next dot `(replica, seq)` of its replica; the
//! `clock` table is the replica's vector clock (its own entry counts its
//! dots, the others say how far it has heard from each peer). Update rows are
//! stamped with the dot that last changed them, so "everything since clock
//! V" is a handful of indexed range queries and applying it twice changes
//! nothing.
//!
//! All writes of a replica pass one in-process gate: SQLite serialises
//! writers anyway (and would otherwise back off in milliseconds-long busy
//! sleeps), and the gate makes a delta snapshot consistent on Postgres too.

use super::clock::Clock;
use super::ServeFault;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::{AnyConnection, Executor, Row};

/// What can go wrong inside a replica at run time (answered as HTTP 500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored JSON document (value, context, response) does not parse.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Where a replica keeps its state.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A SQLite file, created when missing.
    Sqlite(std::path::PathBuf),
    /// A schema of a Postgres database.
    Postgres {
        /// Connection URL (never printed: it may hold a password).
        url: String,
        /// Schema of this replica.
        schema: String,
    },
}

/// A client update, as the API receives it.
#[derive(Clone, Debug)]
pub enum Update {
    /// PN-counter increment (negative deltas decrement).
    Increment {
        /// Counter key.
        key: String,
        /// Signed delta.
        delta: i64,
    },
    /// OR-Set add.
    Add {
        /// Set key.
        key: String,
        /// Element (any JSON value).
        element: Value,
    },
    /// OR-Set remove of every add of the element this replica has seen.
    Remove {
        /// Set key.
        key: String,
        /// Element.
        element: Value,
    },
    /// Last-writer-wins register write.
    LwwWrite {
        /// Register key.
        key: String,
        /// Value.
        value: Value,
    },
    /// 2P-Set add.
    TwoPAdd {
        /// Set key.
        key: String,
        /// Element (any JSON value).
        element: Value,
    },
    /// 2P-Set remove: tombstones the element for good, seen added here or
    /// not (a later or concurrent add of it never shows).
    TwoPRemove {
        /// Set key.
        key: String,
        /// Element.
        element: Value,
    },
    /// Multi-value register write superseding the siblings its context covers.
    MvWrite {
        /// Register key.
        key: String,
        /// Value.
        value: Value,
        /// The context of the read the client based this write on.
        context: Clock,
    },
}

/// Rows a replica has and a peer may lack: the delta of anti-entropy.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Delta {
    /// The sender's vector clock when the delta was taken.
    pub clock: Clock,
    /// Counter entries: (key, owner, p, n, version).
    pub counters: Vec<(String, u16, i64, i64, i64)>,
    /// OR-Set add dots: (origin, seq, key, element JSON).
    pub adds: Vec<(u16, i64, String, String)>,
    /// OR-Set tombstones: (origin, seq, key, add origin, add seq).
    pub removes: Vec<(u16, i64, String, u16, i64)>,
    /// LWW writes: (origin, seq, key, value JSON, timestamp).
    pub lww: Vec<(u16, i64, String, String, i64)>,
    /// MV writes: (origin, seq, key, value JSON, context JSON).
    pub mv: Vec<(u16, i64, String, String, String)>,
    /// 2P-Set adds: (origin, seq, key, element JSON).
    #[serde(default)]
    pub tp_adds: Vec<(u16, i64, String, String)>,
    /// 2P-Set tombstones: (origin, seq, key, element JSON).
    #[serde(default)]
    pub tp_removes: Vec<(u16, i64, String, String)>,
}

impl Delta {
    /// Number of rows carried.
    pub fn rows(&self) -> usize {
        self.counters.len()
            + self.adds.len()
            + self.removes.len()
            + self.lww.len()
            + self.mv.len()
            + self.tp_adds.len()
            + self.tp_removes.len()
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS clock (origin BIGINT PRIMARY KEY, seq BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters (key TEXT NOT NULL, origin BIGINT NOT NULL, p BIGINT NOT NULL, n BIGINT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (key, origin))",
    "CREATE INDEX IF NOT EXISTS counters_by_version ON counters (origin, version)",
    "CREATE TABLE IF NOT EXISTS set_adds (origin BIGINT NOT NULL, seq BIGINT NOT NULL, key TEXT NOT NULL, element TEXT NOT NULL, PRIMARY KEY (origin, seq))",
    "CREATE INDEX IF NOT EXISTS set_adds_by_key ON set_adds (key, element)",
    "CREATE TABLE IF NOT EXISTS set_removes (origin BIGINT NOT NULL, seq BIGINT NOT NULL, key TEXT NOT NULL, add_origin BIGINT NOT NULL, add_seq BIGINT NOT NULL, PRIMARY KEY (origin, seq, add_origin, add_seq))",
    "CREATE INDEX IF NOT EXISTS set_removes_by_add ON set_removes (add_origin, add_seq)",
    "CREATE TABLE IF NOT EXISTS lww_writes (origin BIGINT NOT NULL, seq BIGINT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, ts BIGINT NOT NULL, PRIMARY KEY (origin, seq))",
    "CREATE INDEX IF NOT EXISTS lww_by_key ON lww_writes (key, ts, origin)",
    "CREATE TABLE IF NOT EXISTS mv_writes (origin BIGINT NOT NULL, seq BIGINT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, context TEXT NOT NULL, PRIMARY KEY (origin, seq))",
    "CREATE INDEX IF NOT EXISTS mv_by_key ON mv_writes (key)",
    "CREATE TABLE IF NOT EXISTS tp_adds (origin BIGINT NOT NULL, seq BIGINT NOT NULL, key TEXT NOT NULL, element TEXT NOT NULL, PRIMARY KEY (origin, seq))",
    "CREATE INDEX IF NOT EXISTS tp_adds_by_key ON tp_adds (key, element)",
    "CREATE TABLE IF NOT EXISTS tp_removes (origin BIGINT NOT NULL, seq BIGINT NOT NULL, key TEXT NOT NULL, element TEXT NOT NULL, PRIMARY KEY (origin, seq))",
    "CREATE INDEX IF NOT EXISTS tp_removes_by_key ON tp_removes (key, element)",
    "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, response TEXT NOT NULL)",
];

/// A replica's database plus its write gate.
pub struct Store {
    pool: AnyPool,
    replica: u16,
    replicas: u16,
    fault: Option<ServeFault>,
    gate: tokio::sync::Mutex<()>,
}

fn origin(row: &sqlx::any::AnyRow, column: usize) -> Result<u16, StoreError> {
    let v: i64 = row.try_get(column)?;
    u16::try_from(v).map_err(|_| {
        StoreError::Database(sqlx::Error::Protocol(format!(
            "replica id {v} out of range"
        )))
    })
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Store {
    /// Opens (creating when missing) the replica's tables.
    pub async fn open(
        backend: &Backend,
        replica: u16,
        replicas: u16,
        fault: Option<ServeFault>,
        reset: bool,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = match backend {
            Backend::Sqlite(path) => {
                let url = format!("sqlite://{}?mode=rwc", path.display());
                AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(|conn: &mut AnyConnection, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres { url, schema } => {
                // The schema must exist before connections point their search path at it.
                let setup = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await?;
                if reset {
                    let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                    setup.execute(sqlx::AssertSqlSafe(drop)).await?;
                }
                let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
                setup.execute(sqlx::AssertSqlSafe(create)).await?;
                setup.close().await;
                let search_path = format!("SET search_path TO {schema}");
                AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(move |conn: &mut AnyConnection, _| {
                        let search_path = search_path.clone();
                        Box::pin(async move {
                            conn.execute(sqlx::AssertSqlSafe(search_path)).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
        };
        for statement in SCHEMA {
            pool.execute(*statement).await?;
        }
        for r in 0..replicas {
            sqlx::query(
                "INSERT INTO clock (origin, seq) VALUES ($1, 0) ON CONFLICT (origin) DO NOTHING",
            )
            .bind(r as i64)
            .execute(&pool)
            .await?;
        }
        Ok(Store {
            pool,
            replica,
            replicas,
            fault,
            gate: tokio::sync::Mutex::new(()),
        })
    }

    /// This replica's id.
    pub fn replica(&self) -> u16 {
        self.replica
    }

    /// Applies a client update once per idempotency key and returns the
    /// response body and whether it is a stored replay.
    pub async fn apply(
        &self,
        update: &Update,
        idempotency_key: Option<&str>,
    ) -> Result<(Value, bool), StoreError> {
        if let (Some(ServeFault::LostUpdate), Update::Increment { key, delta }) =
            (self.fault, update)
        {
            return self
                .increment_unlocked(key, *delta)
                .await
                .map(|r| (r, false));
        }
        let idempotency_key =
            idempotency_key.filter(|_| self.fault != Some(ServeFault::NonIdempotentRetry));
        let _gate = self.gate.lock().await;
        let mut tx = self.pool.begin().await?;
        // A write first: SQLite takes its write lock here, not on an upgrade later.
        let seq: i64 =
            sqlx::query("UPDATE clock SET seq = seq + 1 WHERE origin = $1 RETURNING seq")
                .bind(self.replica as i64)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if let Some(k) = idempotency_key {
            let stored = sqlx::query("SELECT response FROM idempotency WHERE key = $1")
                .bind(k)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = stored {
                let text: String = row.try_get(0)?;
                tx.rollback().await?;
                return Ok((serde_json::from_str(&text)?, true));
            }
        }
        let me = self.replica as i64;
        let dot = json!([self.replica, seq]);
        let response = match update {
            Update::Increment { key, delta } => {
                let (p, n) = if *delta >= 0 {
                    (*delta, 0)
                } else {
                    (0, -*delta)
                };
                sqlx::query(
                    "INSERT INTO counters (key, origin, p, n, version) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (key, origin) DO UPDATE SET p = counters.p + excluded.p, n = counters.n + excluded.n, version = excluded.version",
                )
                .bind(key.as_str())
                .bind(me)
                .bind(p)
                .bind(n)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
                json!({"key": key, "delta": delta, "dot": dot})
            }
            Update::Add { key, element } => {
                sqlx::query(
                    "INSERT INTO set_adds (origin, seq, key, element) VALUES ($1, $2, $3, $4)",
                )
                .bind(me)
                .bind(seq)
                .bind(key.as_str())
                .bind(element.to_string())
                .execute(&mut *tx)
                .await?;
                json!({"key": key, "element": element, "dot": dot})
            }
            Update::Remove { key, element } => {
                let observed = sqlx::query(
                    "SELECT a.origin, a.seq FROM set_adds a WHERE a.key = $1 AND a.element = $2 \
                     AND NOT EXISTS (SELECT 1 FROM set_removes r WHERE r.add_origin = a.origin AND r.add_seq = a.seq)",
                )
                .bind(key.as_str())
                .bind(element.to_string())
                .fetch_all(&mut *tx)
                .await?;
                for row in &observed {
                    sqlx::query("INSERT INTO set_removes (origin, seq, key, add_origin, add_seq) VALUES ($1, $2, $3, $4, $5)")
                        .bind(me)
                        .bind(seq)
                        .bind(key.as_str())
                        .bind(row.try_get::<i64, _>(0)?)
                        .bind(row.try_get::<i64, _>(1)?)
                        .execute(&mut *tx)
                        .await?;
                }
                json!({"key": key, "element": element, "removed": observed.len(), "dot": dot})
            }
            Update::LwwWrite { key, value } => {
                // A hybrid timestamp: wall clock, but always past what this replica has seen.
                let seen: i64 = sqlx::query(
                    "SELECT CAST(COALESCE(MAX(ts), 0) AS BIGINT) FROM lww_writes WHERE key = $1",
                )
                .bind(key.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                let ts = now_micros().max(seen + 1);
                let stored_key = match self.fault {
                    Some(ServeFault::LwwWrongKey) => format!("{key}@{}", self.replica),
                    _ => key.clone(),
                };
                sqlx::query("INSERT INTO lww_writes (origin, seq, key, value, ts) VALUES ($1, $2, $3, $4, $5)")
                    .bind(me)
                    .bind(seq)
                    .bind(stored_key.as_str())
                    .bind(value.to_string())
                    .bind(ts)
                    .execute(&mut *tx)
                    .await?;
                json!({"key": key, "ts": ts, "replica": self.replica, "dot": dot})
            }
            Update::TwoPAdd { key, element } | Update::TwoPRemove { key, element } => {
                let table = if matches!(update, Update::TwoPAdd { .. }) {
                    "tp_adds"
                } else {
                    "tp_removes"
                };
                let insert = format!(
                    "INSERT INTO {table} (origin, seq, key, element) VALUES ($1, $2, $3, $4)"
                );
                sqlx::query(sqlx::AssertSqlSafe(insert))
                    .bind(me)
                    .bind(seq)
                    .bind(key.as_str())
                    .bind(element.to_string())
                    .execute(&mut *tx)
                    .await?;
                json!({"key": key, "element": element, "dot": dot})
            }
            Update::MvWrite {
                key,
                value,
                context,
            } => {
                sqlx::query("INSERT INTO mv_writes (origin, seq, key, value, context) VALUES ($1, $2, $3, $4, $5)")
                    .bind(me)
                    .bind(seq)
                    .bind(key.as_str())
                    .bind(value.to_string())
                    .bind(serde_json::to_string(context)?)
                    .execute(&mut *tx)
                    .await?;
                json!({"key": key, "dot": dot})
            }
        };
        if let Some(k) = idempotency_key {
            sqlx::query("INSERT INTO idempotency (key, response) VALUES ($1, $2)")
                .bind(k)
                .bind(response.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((response, false))
    }

    /// The `lost-update` bug: read the entry, compute, write it back, with
    /// no transaction and no gate, so concurrent increments overwrite each other.
    async fn increment_unlocked(&self, key: &str, delta: i64) -> Result<Value, StoreError> {
        let me = self.replica as i64;
        let current = sqlx::query("SELECT p, n FROM counters WHERE key = $1 AND origin = $2")
            .bind(key)
            .bind(me)
            .fetch_optional(&self.pool)
            .await?;
        let (mut p, mut n) = match current {
            Some(row) => (row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?),
            None => (0, 0),
        };
        // Real handlers do work between the read and the write (validation, a
        // call to another service); other requests run meanwhile.
        tokio::task::yield_now().await;
        if delta >= 0 {
            p += delta;
        } else {
            n -= delta;
        }
        let seq: i64 =
            sqlx::query("UPDATE clock SET seq = seq + 1 WHERE origin = $1 RETURNING seq")
                .bind(me)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        sqlx::query(
            "INSERT INTO counters (key, origin, p, n, version) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (key, origin) DO UPDATE SET p = excluded.p, n = excluded.n, version = excluded.version",
        )
        .bind(key)
        .bind(me)
        .bind(p)
        .bind(n)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(json!({"key": key, "delta": delta, "dot": [self.replica, seq]}))
    }

    /// Counter value: the sum over every replica's entry.
    pub async fn counter(&self, key: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(p - n), 0) AS BIGINT) FROM counters WHERE key = $1",
        )
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// OR-Set elements: those with an add dot no tombstone covers.
    pub async fn set(&self, key: &str) -> Result<Vec<Value>, StoreError> {
        let query = if self.fault == Some(ServeFault::TombstoneElement) {
            // The bug: any remove of the element hides every add of it.
            "SELECT DISTINCT a.element FROM set_adds a WHERE a.key = $1 \
             AND NOT EXISTS (SELECT 1 FROM set_removes r JOIN set_adds b \
             ON r.add_origin = b.origin AND r.add_seq = b.seq \
             WHERE b.key = a.key AND b.element = a.element)"
        } else {
            "SELECT DISTINCT a.element FROM set_adds a WHERE a.key = $1 \
             AND NOT EXISTS (SELECT 1 FROM set_removes r WHERE r.add_origin = a.origin AND r.add_seq = a.seq)"
        };
        let rows = sqlx::query(query).bind(key).fetch_all(&self.pool).await?;
        let mut elements = Vec::with_capacity(rows.len());
        for row in rows {
            let text: String = row.try_get(0)?;
            elements.push(serde_json::from_str(&text)?);
        }
        elements.sort_by_key(Value::to_string);
        Ok(elements)
    }

    /// 2P-Set elements: added and never removed (a tombstone is for good).
    pub async fn two_phase_set(&self, key: &str) -> Result<Vec<Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT a.element FROM tp_adds a WHERE a.key = $1 \
             AND NOT EXISTS (SELECT 1 FROM tp_removes r WHERE r.key = a.key AND r.element = a.element)",
        )
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        let mut elements = Vec::with_capacity(rows.len());
        for row in rows {
            let text: String = row.try_get(0)?;
            elements.push(serde_json::from_str(&text)?);
        }
        elements.sort_by_key(Value::to_string);
        Ok(elements)
    }

    /// LWW register: (value, timestamp, replica) of the greatest (timestamp, replica).
    pub async fn lww(&self, key: &str) -> Result<Option<(Value, i64, u16)>, StoreError> {
        let row = sqlx::query(
            "SELECT value, ts, origin FROM lww_writes WHERE key = $1 ORDER BY ts DESC, origin DESC LIMIT 1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let text: String = row.try_get(0)?;
                Ok(Some((
                    serde_json::from_str(&text)?,
                    row.try_get(1)?,
                    origin(&row, 2)?,
                )))
            }
        }
    }

    /// MV register: the sibling values (writes no other write's context
    /// covers) and the context a client passes to its next write.
    pub async fn mv(&self, key: &str) -> Result<(Vec<Value>, Clock), StoreError> {
        let rows = sqlx::query("SELECT origin, seq, value, context FROM mv_writes WHERE key = $1")
            .bind(key)
            .fetch_all(&self.pool)
            .await?;
        let mut writes = Vec::with_capacity(rows.len());
        let mut covered = Clock::new();
        let mut context = Clock::new();
        for row in &rows {
            let (o, seq) = (origin(row, 0)?, row.try_get::<i64, _>(1)?);
            let value: String = row.try_get(2)?;
            let ctx: Clock = serde_json::from_str(&row.try_get::<String, _>(3)?)?;
            covered.merge(&ctx);
            context.merge(&ctx);
            context.observe(o, seq);
            writes.push((o, seq, value));
        }
        let mut siblings: Vec<(u16, i64, String)> = writes
            .into_iter()
            .filter(|(o, seq, _)| *seq > covered.get(*o))
            .collect();
        siblings.sort_by_key(|(o, seq, _)| (*seq, *o));
        if self.fault == Some(ServeFault::SiblingDrop) && siblings.len() > 1 {
            // The bug: concurrent siblings collapse to the "newest" one.
            siblings.drain(..siblings.len() - 1);
        }
        let mut values = Vec::with_capacity(siblings.len());
        for (_, _, text) in siblings {
            values.push(serde_json::from_str(&text)?);
        }
        Ok((values, context))
    }

    /// This replica's vector clock.
    pub async fn clock(&self) -> Result<Clock, StoreError> {
        let rows = sqlx::query("SELECT origin, seq FROM clock")
            .fetch_all(&self.pool)
            .await?;
        let mut clock = Clock::new();
        for row in &rows {
            clock.observe(origin(row, 0)?, row.try_get(1)?);
        }
        Ok(clock)
    }

    /// Every row this replica has past `since`, with its clock, as one
    /// consistent snapshot (taken under the write gate).
    pub async fn delta_since(&self, since: &Clock) -> Result<Delta, StoreError> {
        let _gate = self.gate.lock().await;
        let mut conn = self.pool.acquire().await?;
        let mut delta = Delta {
            clock: Clock::new(),
            ..Delta::default()
        };
        for row in sqlx::query("SELECT origin, seq FROM clock")
            .fetch_all(&mut *conn)
            .await?
        {
            delta.clock.observe(origin(&row, 0)?, row.try_get(1)?);
        }
        let origins: Vec<(u16, i64)> = delta.clock.entries().collect();
        for (o, have) in origins {
            let after = since.get(o);
            if have <= after {
                continue;
            }
            let (o64, after) = (o as i64, after);
            for row in sqlx::query(
                "SELECT key, p, n, version FROM counters WHERE origin = $1 AND version > $2",
            )
            .bind(o64)
            .bind(after)
            .fetch_all(&mut *conn)
            .await?
            {
                delta.counters.push((
                    row.try_get(0)?,
                    o,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ));
            }
            for row in
                sqlx::query("SELECT seq, key, element FROM set_adds WHERE origin = $1 AND seq > $2")
                    .bind(o64)
                    .bind(after)
                    .fetch_all(&mut *conn)
                    .await?
            {
                delta
                    .adds
                    .push((o, row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
            }
            for row in sqlx::query("SELECT seq, key, add_origin, add_seq FROM set_removes WHERE origin = $1 AND seq > $2")
                .bind(o64)
                .bind(after)
                .fetch_all(&mut *conn)
                .await?
            {
                delta.removes.push((o, row.try_get(0)?, row.try_get(1)?, origin(&row, 2)?, row.try_get(3)?));
            }
            for row in sqlx::query(
                "SELECT seq, key, value, ts FROM lww_writes WHERE origin = $1 AND seq > $2",
            )
            .bind(o64)
            .bind(after)
            .fetch_all(&mut *conn)
            .await?
            {
                delta.lww.push((
                    o,
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ));
            }
            for (table, rows) in [
                ("tp_adds", &mut delta.tp_adds),
                ("tp_removes", &mut delta.tp_removes),
            ] {
                let select =
                    format!("SELECT seq, key, element FROM {table} WHERE origin = $1 AND seq > $2");
                for row in sqlx::query(sqlx::AssertSqlSafe(select))
                    .bind(o64)
                    .bind(after)
                    .fetch_all(&mut *conn)
                    .await?
                {
                    rows.push((o, row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
                }
            }
            for row in sqlx::query(
                "SELECT seq, key, value, context FROM mv_writes WHERE origin = $1 AND seq > $2",
            )
            .bind(o64)
            .bind(after)
            .fetch_all(&mut *conn)
            .await?
            {
                delta.mv.push((
                    o,
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ));
            }
        }
        Ok(delta)
    }

    /// Merges a peer's delta; applying the same delta again changes nothing.
    pub async fn merge(&self, delta: &Delta) -> Result<(), StoreError> {
        let _gate = self.gate.lock().await;
        let mut tx = self.pool.begin().await?;
        for (key, owner, p, n, version) in &delta.counters {
            if *owner == self.replica {
                continue;
            }
            sqlx::query(
                "INSERT INTO counters (key, origin, p, n, version) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (key, origin) DO UPDATE SET p = excluded.p, n = excluded.n, version = excluded.version \
                 WHERE excluded.version > counters.version",
            )
            .bind(key.as_str())
            .bind(*owner as i64)
            .bind(*p)
            .bind(*n)
            .bind(*version)
            .execute(&mut *tx)
            .await?;
        }
        for (o, seq, key, element) in &delta.adds {
            sqlx::query("INSERT INTO set_adds (origin, seq, key, element) VALUES ($1, $2, $3, $4) ON CONFLICT (origin, seq) DO NOTHING")
                .bind(*o as i64)
                .bind(*seq)
                .bind(key.as_str())
                .bind(element.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for (o, seq, key, ao, aseq) in &delta.removes {
            sqlx::query("INSERT INTO set_removes (origin, seq, key, add_origin, add_seq) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (origin, seq, add_origin, add_seq) DO NOTHING")
                .bind(*o as i64)
                .bind(*seq)
                .bind(key.as_str())
                .bind(*ao as i64)
                .bind(*aseq)
                .execute(&mut *tx)
                .await?;
        }
        for (o, seq, key, value, ts) in &delta.lww {
            sqlx::query("INSERT INTO lww_writes (origin, seq, key, value, ts) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (origin, seq) DO NOTHING")
                .bind(*o as i64)
                .bind(*seq)
                .bind(key.as_str())
                .bind(value.as_str())
                .bind(*ts)
                .execute(&mut *tx)
                .await?;
        }
        for (o, seq, key, value, context) in &delta.mv {
            sqlx::query("INSERT INTO mv_writes (origin, seq, key, value, context) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (origin, seq) DO NOTHING")
                .bind(*o as i64)
                .bind(*seq)
                .bind(key.as_str())
                .bind(value.as_str())
                .bind(context.as_str())
                .execute(&mut *tx)
                .await?;
        }
        if self.fault == Some(ServeFault::OverwriteMerge) {
            self.overwrite_two_phase_sets(&mut tx, delta).await?;
        }
        for (table, rows) in [
            ("tp_adds", &delta.tp_adds),
            ("tp_removes", &delta.tp_removes),
        ] {
            let insert = format!(
                "INSERT INTO {table} (origin, seq, key, element) VALUES ($1, $2, $3, $4) ON CONFLICT (origin, seq) DO NOTHING"
            );
            for (o, seq, key, element) in rows {
                sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                    .bind(*o as i64)
                    .bind(*seq)
                    .bind(key.as_str())
                    .bind(element.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for (o, seq) in delta.clock.entries() {
            if o == self.replica || o >= self.replicas {
                continue;
            }
            sqlx::query("UPDATE clock SET seq = $2 WHERE origin = $1 AND seq < $2")
                .bind(o as i64)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The `overwrite-merge` bug: each 2P-Set the peer changed replaces
    /// this replica's copy instead of being merged with it, as when a set
    /// is stored as one document and replication keeps the last document
    /// written. The rows the peer had not seen (past its clock), adds and
    /// tombstones made here concurrently, are dropped.
    async fn overwrite_two_phase_sets(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        delta: &Delta,
    ) -> Result<(), StoreError> {
        let keys: std::collections::BTreeSet<&str> = delta
            .tp_adds
            .iter()
            .chain(&delta.tp_removes)
            .map(|(_, _, key, _)| key.as_str())
            .collect();
        for key in keys {
            for o in 0..self.replicas {
                for table in ["tp_adds", "tp_removes"] {
                    let delete =
                        format!("DELETE FROM {table} WHERE key = $1 AND origin = $2 AND seq > $3");
                    sqlx::query(sqlx::AssertSqlSafe(delete))
                        .bind(key)
                        .bind(o as i64)
                        .bind(delta.clock.get(o))
                        .execute(&mut **tx)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Closes the pool, flushing SQLite's WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
