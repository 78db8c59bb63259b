//! Target `sql`: a user's schema and statements on PostgreSQL or SQLite,
//! driven by concurrent writers and judged from the outside.
//!
//! The user supplies (in `[target.sql]`) the setup SQL, the statements of
//! each operation with named parameters, the read query and the isolation
//! level. Replicas are either one shared database under concurrent
//! writers, or several databases (SQLite files) or schemas (PostgreSQL)
//! plus a merge: a state query on one replica whose rows feed merge
//! statements on another. converge runs that anti-entropy between them
//! under its nemesis (a partition suppresses it, drops skip a round,
//! duplicates run it twice), heals, and then runs a round before every poll
//! of the final reads until the shared settle rule
//! ([`crate::target::settle`]) decides.
//!
//! The ops, their schedule under the load shape, the nemesis phases, the
//! final phase and the history come from [`crate::engine`]; this module is
//! the [`Adapter`]: statements, reads, anti-entropy and its faults.
//!
//! Writers are tokio tasks; each replica has one connection pool of
//! `pool_size` connections (default on PostgreSQL, whose default
//! `max_connections` is 100: one per writer up to 64 over all replicas,
//! plus one per replica for anti-entropy; on SQLite, whose writers
//! serialise anyway, at most 8 per file). When the pool has a connection
//! for every writer of its replica and one to spare, each writer keeps its
//! own for the whole run, as pgbench's clients do; otherwise a writer holds
//! one only for the statements of one op.

pub mod spec;
pub mod template;

use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::generator::{derive_seed, Mix};
use crate::history::{
    Function, Header, History, Outcome, Probe, ProbeKind, SCHEMA_VERSION, UNKNOWN_AUX,
};
use crate::load::LoadSpec;
use crate::nemesis::{Nemesis, NemesisSpec};
use crate::target::misconfig::{Blame, FailureTally, ReadTally};
use crate::target::settle::{SettleReport, SettleRule, Settler};
use crate::target::{Adapter, Applied, Op};
use converge_models::{Value, Workload};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
pub use spec::{redact_url, SqlSpec};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Column, Row};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use template::{returns_rows, translate, Template};

/// A database engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// SQLite (a file).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend a URL names.
    pub fn of_url(url: &str) -> Result<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(Error::Config(format!(
                "database URL {}: expected postgres://... or sqlite:...",
                redact_url(url)
            )))
        }
    }
}

/// Most redelivery probes run in the final phase.
pub const MAX_PROBES: usize = 20;
/// Nemesis phase length when the run has no `duration` (ops-bound runs
/// against a local database are short: a partition must fit in them).
const PHASE: Duration = Duration::from_millis(40);
/// Pause between anti-entropy rounds during the writing phase.
const GOSSIP_PAUSE: Duration = Duration::from_millis(20);

/// Everything a SQL run needs.
#[derive(Clone, Debug)]
pub struct SqlRunConfig {
    /// The scenario's `[target.sql]`.
    pub spec: SqlSpec,
    /// Database URL; `None`: fresh SQLite files under `out`.
    pub url: Option<String>,
    /// Datatype.
    pub workload: Workload,
    /// Name recorded as the model (the scenario's file stem).
    pub model: String,
    /// Replicas.
    pub replicas: u16,
    /// The load shape: writers, rate, stages, op budget, duration.
    pub load: LoadSpec,
    /// Keys, hot-key ratio, read ratio, remove ratio.
    pub mix: Mix,
    /// Fraction of writes sent twice with the same op id.
    pub retry_fraction: f64,
    /// Seed.
    pub seed: u64,
    /// Faults on anti-entropy (partition, drop, duplicate).
    pub nemesis: NemesisSpec,
    /// When the final reads have converged, diverged, or are still changing.
    pub settle: SettleRule,
    /// Output directory.
    pub out: PathBuf,
    /// Where the target's memory is read from, when the user named it.
    pub probe: Option<crate::series::TargetProbe>,
    /// Command that reproduces the run.
    pub reproduce: String,
}

/// What a SQL run produced.
#[derive(Debug)]
pub struct SqlResult {
    /// The recorded history (also on disk).
    pub history: History,
    /// Writing phase.
    pub write_phase: Duration,
    /// Whole run.
    pub total: Duration,
    /// RSS before the run, MB.
    pub rss_start_mb: f64,
    /// Nemesis actions.
    pub nemesis_log: Vec<String>,
    /// The first distinct database errors, passwords scrubbed.
    pub errors: Vec<String>,
    /// Backend used.
    pub backend: Backend,
    /// Connections per replica.
    pub pool_size: u32,
    /// What the settle phase decided.
    pub settle: SettleReport,
    /// Open model: arrivals that found no free writer.
    pub dropped: u64,
    /// Most writers at once.
    pub writers_peak: u32,
    /// The time series\' summary (`None` when it could not be written).
    pub series: Option<crate::series::SeriesSummary>,
}

/// A bound parameter value.
#[derive(Clone, Debug, PartialEq)]
enum Param {
    Int(i64),
    Text(String),
    Float(f64),
    Null,
}

type Env = Vec<(String, Param)>;

fn lookup<'a>(env: &'a Env, name: &str) -> &'a Param {
    env.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map_or(&Param::Null, |(_, p)| p)
}

/// The scenario's SQL, translated for one backend.
struct Prepared {
    begin: Option<String>,
    setup: Vec<String>,
    ops: HashMap<Function, Vec<Template>>,
    read: Template,
    read_column: String,
    clock_column: Option<String>,
    merge: Option<(Template, Vec<Template>)>,
}

fn isolation_begin(spec: &SqlSpec, backend: Backend) -> Result<Option<String>> {
    let level = match &spec.isolation {
        None => "none".to_string(),
        Some(sql) => sql
            .for_backend(backend)
            .ok_or_else(|| {
                Error::Config(format!(
                    "target.sql.isolation has no {} entry",
                    backend.name()
                ))
            })?
            .trim()
            .to_ascii_lowercase(),
    };
    let allowed: &[&str] = match backend {
        Backend::Postgres => &["none", "read committed", "repeatable read", "serializable"],
        Backend::Sqlite => &["none", "deferred", "immediate", "exclusive"],
    };
    if !allowed.contains(&level.as_str()) {
        return Err(Error::Config(format!(
            "target.sql.isolation '{level}' is not a {} level (one of: {})",
            backend.name(),
            allowed.join(", ")
        )));
    }
    Ok(match (level.as_str(), backend) {
        ("none", _) => None,
        (level, Backend::Postgres) => Some(format!(
            "BEGIN ISOLATION LEVEL {}",
            level.to_ascii_uppercase()
        )),
        (level, Backend::Sqlite) => Some(format!("BEGIN {}", level.to_ascii_uppercase())),
    })
}

/// Which `[target.sql.ops]` entry an op function uses.
fn op_key(f: Function) -> &'static str {
    match f {
        Function::Increment => "increment",
        Function::Add => "add",
        Function::Remove => "remove",
        _ => "write",
    }
}

impl Prepared {
    fn new(config: &SqlRunConfig, backend: Backend) -> Result<Prepared> {
        let spec = &config.spec;
        let text = |sql: &spec::Sql, key: &str| {
            sql.for_backend(backend).map(str::to_string).ok_or_else(|| {
                Error::Config(format!(
                    "{key} has no {} variant: this scenario does not run on {}",
                    backend.name(),
                    backend.name()
                ))
            })
        };
        let functions: &[Function] = match config.workload {
            Workload::GCounter | Workload::PnCounter => &[Function::Increment],
            Workload::GSet => &[Function::Add],
            Workload::TwoPSet | Workload::OrSet => &[Function::Add, Function::Remove],
            Workload::LwwRegister | Workload::MvRegister => &[Function::Write],
            Workload::LwwMap => {
                return Err(Error::Config(
                    "the sql target has g-counter, pn-counter, g-set, 2p-set, or-set, lww-register and mv-register".into(),
                ))
            }
        };
        let mut ops = HashMap::new();
        for &f in functions {
            let key = format!("target.sql.ops.{}", op_key(f));
            let stmts = spec.op(op_key(f)).ok_or_else(|| {
                Error::Config(format!(
                    "{key} is required for the {} workload",
                    config.workload.name()
                ))
            })?;
            let translated = stmts
                .iter()
                .map(|s| text(s, &key).map(|t| translate(&t, backend)))
                .collect::<Result<Vec<_>>>()?;
            ops.insert(f, translated);
        }
        let merge = match (&spec.merge, config.replicas) {
            (Some(m), _) => Some((
                translate(&text(&m.state, "target.sql.merge.state")?, backend),
                m.apply
                    .iter()
                    .map(|s| text(s, "target.sql.merge.apply").map(|t| translate(&t, backend)))
                    .collect::<Result<Vec<_>>>()?,
            )),
            (None, 1) => None,
            (None, _) => {
                return Err(Error::Config(format!(
                    "{} replicas need [target.sql.merge] (state query and apply statements)",
                    config.replicas
                )))
            }
        };
        if config.workload == Workload::MvRegister && spec.read.clock_column.is_none() {
            return Err(Error::Config(
                "target.sql.read.clock_column is required for mv-register (the siblings' clocks)"
                    .into(),
            ));
        }
        Ok(Prepared {
            begin: isolation_begin(spec, backend)?,
            setup: spec
                .setup
                .iter()
                .map(|s| text(s, "target.sql.setup"))
                .collect::<Result<_>>()?,
            ops,
            read: translate(&text(&spec.read.sql, "target.sql.read.sql")?, backend),
            read_column: spec.read.column.clone(),
            clock_column: spec.read.clock_column.clone(),
            merge,
        })
    }
}

/// Shared state of a run.
struct Shared {
    config: SqlRunConfig,
    prepared: Prepared,
    pools: Vec<AnyPool>,
    start: Instant,
    last_ts: AtomicU64,
    errors: Mutex<Vec<String>>,
    error_count: AtomicU64,
    samples: Mutex<Vec<(u16, u32, Function, Env)>>,
    password: Option<String>,
    /// Every writer can keep a connection of its own.
    hold_connections: bool,
    /// Writes and why they failed, for a run that is a configuration mistake.
    failures: FailureTally,
    /// Reads that yielded a value, and answered ones that did not.
    reads: ReadTally,
    /// A configuration mistake seen during the run; writers stop at once.
    misconfigured: Mutex<Option<String>>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// A timestamp greater than every one handed out before, close to now.
    fn next_ts(&self) -> u64 {
        let now = self.now_ns();
        let prev = self
            .last_ts
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.max(now - 1) + 1)
            })
            .unwrap_or(now);
        prev.max(now - 1) + 1
    }

    fn scrub(&self, message: String) -> String {
        match &self.password {
            Some(p) => message.replace(p.as_str(), "***"),
            None => message,
        }
    }

    fn note_error(&self, what: &str, e: &sqlx::Error) {
        self.error_count.fetch_add(1, Ordering::Relaxed);
        let text = self.scrub(format!("{what}: {e}"));
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() < 5 && !errors.contains(&text) {
            tracing::warn!("{text}");
            errors.push(text);
        }
    }
}

fn bind_all<'q>(
    template: &'q Template,
    env: &'q Env,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let mut query = sqlx::query(AssertSqlSafe(template.sql.as_str()));
    for name in &template.params {
        query = match lookup(env, name) {
            Param::Int(i) => query.bind(*i),
            Param::Text(s) => query.bind(s.as_str()),
            Param::Float(f) => query.bind(*f),
            Param::Null => query.bind(Option::<i64>::None),
        };
    }
    query
}

fn column_value(row: &AnyRow, index: usize) -> Param {
    if let Ok(v) = row.try_get::<Option<i64>, _>(index) {
        return v.map_or(Param::Null, Param::Int);
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(index) {
        return v.map_or(Param::Null, Param::Text);
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(index) {
        return v.map_or(Param::Null, Param::Float);
    }
    Param::Null
}

fn row_env(row: &AnyRow) -> Env {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name().to_string(), column_value(row, i)))
        .collect()
}

/// How an error ends an op: a definite abort is `fail`, anything that may
/// have committed is `info`.
fn classify(e: &sqlx::Error, maybe_applied: bool) -> Outcome {
    match e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // query_canceled: a statement timeout; we cannot tell how far it got.
            Some("57014") => Outcome::Info,
            // serialization_failure, deadlock_detected: the transaction is rolled back.
            Some("40001" | "40P01") if !maybe_applied => Outcome::Fail,
            _ if maybe_applied => Outcome::Info,
            _ => Outcome::Fail,
        },
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => Outcome::Fail,
        _ => Outcome::Info,
    }
}

/// A writer's connection: kept across ops when the pool has one per writer
/// (as pgbench keeps its clients'), else returned after every op.
type Held = Option<sqlx::pool::PoolConnection<sqlx::Any>>;

/// Runs statements in one transaction (or each on its own with isolation
/// `none`), binding `env` and the columns of earlier rows.
async fn execute(
    shared: &Shared,
    replica: usize,
    held: &mut Held,
    stmts: &[Template],
    env: &mut Env,
) -> (Outcome, Option<Cause>) {
    let Some(conn) = connection(shared, replica, held).await else {
        return (
            Outcome::Fail,
            Some((
                format!("no connection to replica r{replica}"),
                Blame::Target,
            )),
        );
    };
    let (outcome, broken, cause) = run_statements(shared, conn, stmts, env).await;
    release(shared, held, broken);
    (outcome, cause)
}

/// A configuration mistake the run has shown so far: a read column absent
/// from the read query's rows, writes mostly failing alike, or a read query
/// that never yielded a value.
fn mistake(shared: &Shared) -> Option<Error> {
    let misconfigured = shared
        .misconfigured
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(why) = misconfigured {
        return Some(Error::Config(why));
    }
    let component = format!(
        "database ({})",
        shared
            .config
            .url
            .as_deref()
            .map_or("sqlite".into(), redact_url)
    );
    shared.failures.verdict(&component).or_else(|| {
        shared
            .reads
            .verdict(&format!("target.sql.read ({})", shared.prepared.read.sql))
    })
}

/// Why a write failed, and whose mistake that is.
type Cause = (String, Blame);

/// The cause of a failed statement: a database error names the statement
/// (the user's SQL); contention (serialization failures, deadlocks, a busy
/// SQLite file) is no mistake and not counted; anything else (a lost
/// connection, a timeout) is the database's.
fn cause_of(statement: &str, e: &sqlx::Error) -> Option<Cause> {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let contention = code.starts_with("40")
                || code == "57014"
                || matches!(code.as_ref(), "5" | "6" | "261" | "262" | "517" | "773");
            (!contention).then(|| (format!("{statement}: {}", db.message()), Blame::Config))
        }
        other => Some((format!("{statement}: {other}"), Blame::Target)),
    }
}

/// The writer's connection, acquired if it holds none.
async fn connection<'h>(
    shared: &Shared,
    replica: usize,
    held: &'h mut Held,
) -> Option<&'h mut sqlx::pool::PoolConnection<sqlx::Any>> {
    if held.is_none() {
        match shared.pools[replica].acquire().await {
            Ok(c) => *held = Some(c),
            Err(e) => {
                shared.note_error("acquiring a connection", &e);
                return None;
            }
        }
    }
    held.as_mut()
}

/// Gives the connection back to the pool unless the writer keeps it; a
/// broken one is closed.
fn release(shared: &Shared, held: &mut Held, broken: bool) {
    if let Some(conn) = held.as_mut() {
        if broken {
            conn.close_on_drop();
        }
    }
    if broken || !shared.hold_connections {
        *held = None;
    }
}

/// The statements of one op on one connection; also whether the connection
/// should not be used again.
async fn run_statements(
    shared: &Shared,
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    stmts: &[Template],
    env: &mut Env,
) -> (Outcome, bool, Option<Cause>) {
    let begin = shared.prepared.begin.as_deref();
    if let Some(begin) = begin {
        if let Err(e) = sqlx::raw_sql(AssertSqlSafe(begin))
            .execute(&mut **conn)
            .await
        {
            shared.note_error("BEGIN", &e);
            return (classify(&e, false), true, cause_of("BEGIN", &e));
        }
    }
    let mut maybe_applied = false;
    for stmt in stmts {
        let result = if returns_rows(&stmt.sql) {
            match bind_all(stmt, env).fetch_optional(&mut **conn).await {
                Ok(Some(row)) => {
                    env.extend(row_env(&row));
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            bind_all(stmt, env).execute(&mut **conn).await.map(|_| ())
        };
        if let Err(e) = result {
            shared.note_error("statement", &e);
            let outcome = classify(&e, maybe_applied);
            let mut broken = !matches!(e, sqlx::Error::Database(_));
            if begin.is_some() && !broken {
                broken = sqlx::raw_sql(AssertSqlSafe("ROLLBACK"))
                    .execute(&mut **conn)
                    .await
                    .is_err();
            }
            return (outcome, broken, cause_of(&stmt.sql, &e));
        }
        if begin.is_none()
            && !stmt
                .sql
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("select")
        {
            maybe_applied = true;
        }
    }
    if begin.is_some() {
        if let Err(e) = sqlx::raw_sql(AssertSqlSafe("COMMIT"))
            .execute(&mut **conn)
            .await
        {
            shared.note_error("COMMIT", &e);
            // A COMMIT refused by the server rolled back; a lost connection may have committed.
            let outcome = match &e {
                sqlx::Error::Database(_) => classify(&e, false),
                _ => Outcome::Info,
            };
            return (outcome, true, cause_of("COMMIT", &e));
        }
    }
    (Outcome::Ok, false, None)
}

/// Reads one key on one replica: the value, and for MV registers the merged clock.
async fn read_key(
    shared: &Shared,
    replica: usize,
    held: &mut Held,
    key: u32,
    process: u32,
) -> Option<(Value, BTreeMap<String, u64>)> {
    let env: Env = vec![
        ("key".into(), Param::Int(key as i64)),
        ("replica".into(), Param::Int(replica as i64)),
        ("process".into(), Param::Int(process as i64)),
    ];
    let conn = connection(shared, replica, held).await?;
    let read = bind_all(&shared.prepared.read, &env)
        .fetch_all(&mut **conn)
        .await;
    release(
        shared,
        held,
        read.as_ref()
            .is_err_and(|e| !matches!(e, sqlx::Error::Database(_))),
    );
    let rows = match read {
        Ok(rows) => rows,
        Err(e) => {
            shared.note_error("read", &e);
            if matches!(e, sqlx::Error::Database(_)) {
                shared.reads.empty(&shared.scrub(e.to_string()));
            }
            return None;
        }
    };
    let column = shared.prepared.read_column.as_str();
    if let Some(row) = rows.first() {
        if !row.columns().iter().any(|c| c.name() == column) {
            let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
            shared.misconfigured.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| {
                format!(
                    "target.sql.read: column = \"{column}\" is not in the rows of the read query (it returns: {}): {}",
                    names.join(", "),
                    shared.prepared.read.sql
                )
            });
            return None;
        }
    }
    shared.reads.yielded();
    let value_of = |row: &AnyRow| -> Option<i64> {
        let index = row.columns().iter().position(|c| c.name() == column)?;
        match column_value(row, index) {
            Param::Int(i) => Some(i),
            Param::Text(t) => t.trim().parse().ok(),
            Param::Float(f) => Some(f as i64),
            Param::Null => None,
        }
    };
    let value = match shared.config.workload {
        Workload::GCounter | Workload::PnCounter => {
            Value::Int(rows.first().and_then(value_of).unwrap_or(0))
        }
        _ => {
            let mut items: Vec<u64> = rows.iter().filter_map(value_of).map(|v| v as u64).collect();
            items.sort_unstable();
            Value::Elems(items)
        }
    };
    let mut clock = BTreeMap::new();
    if let Some(clock_column) = &shared.prepared.clock_column {
        for row in &rows {
            let text = row
                .columns()
                .iter()
                .position(|c| c.name() == clock_column)
                .and_then(|i| match column_value(row, i) {
                    Param::Text(t) => Some(t),
                    _ => None,
                });
            let parsed: BTreeMap<String, u64> = text
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            for (k, v) in parsed {
                let slot = clock.entry(k).or_insert(0);
                *slot = (*slot).max(v);
            }
        }
    }
    Some((value, clock))
}

/// One SQL writer: its connection (when it keeps one), its retry coin, and
/// for MV registers the clock it last saw per key and when it saw it.
struct SqlWriter {
    held: Held,
    rng: ChaCha8Rng,
    contexts: HashMap<u32, (BTreeMap<String, u64>, u64)>,
    me: String,
}

/// The SQL target behind the engine's [`Adapter`] trait. Writers keep to
/// one replica (`writer % replicas`), as clients of one database do.
struct SqlAdapter {
    shared: Arc<Shared>,
    /// The faults on anti-entropy (partition, drop, duplicate).
    nemesis: Mutex<Nemesis>,
    /// Nemesis phases entered so far.
    phase: AtomicU64,
}

impl Adapter for SqlAdapter {
    type Writer = SqlWriter;

    fn replicas(&self) -> usize {
        self.shared.config.replicas as usize
    }

    fn pinned(&self) -> bool {
        true
    }

    fn writer(&self, id: u32) -> SqlWriter {
        SqlWriter {
            held: None,
            rng: ChaCha8Rng::seed_from_u64(derive_seed(
                self.shared.config.seed,
                7_000_000 + id as u64,
            )),
            contexts: HashMap::new(),
            me: format!("w{id}"),
        }
    }

    async fn apply(&self, w: &mut SqlWriter, op: Op) -> Applied {
        let shared = &self.shared;
        let config = &shared.config;
        let (replica, key) = (op.replica, op.key);
        if op.f == Function::Read {
            let read = read_key(shared, replica, &mut w.held, key, op.writer).await;
            let outcome = if read.is_some() {
                Outcome::Ok
            } else {
                Outcome::Fail
            };
            let value = read.map(|(value, clock)| {
                if config.workload == Workload::MvRegister {
                    w.contexts.insert(key, (clock, shared.now_ns()));
                }
                value
            });
            return Applied {
                outcome,
                aux: UNKNOWN_AUX,
                read: value,
            };
        }
        let ts = shared.next_ts();
        let (mut clock, context_ns) = w.contexts.remove(&key).unwrap_or_default();
        let mine = clock.get(&w.me).copied().unwrap_or(0) + 1;
        clock.insert(w.me.clone(), mine);
        let clock_json = serde_json::to_string(&clock).unwrap_or_else(|_| "{}".into());
        let aux = match config.workload {
            Workload::LwwRegister => ts,
            Workload::MvRegister => context_ns,
            _ => UNKNOWN_AUX,
        };
        let env: Env = vec![
            ("key".into(), Param::Int(key as i64)),
            ("delta".into(), Param::Int(op.value)),
            ("element".into(), Param::Int(op.value)),
            ("value".into(), Param::Int(op.value)),
            (
                "op_id".into(),
                Param::Text(format!("{}-{}-{}", config.seed, op.writer, op.seq)),
            ),
            ("replica".into(), Param::Int(replica as i64)),
            ("ts".into(), Param::Int(ts as i64)),
            ("clock".into(), Param::Text(clock_json)),
            ("process".into(), Param::Int(op.writer as i64)),
        ];
        let Some(stmts) = shared.prepared.ops.get(&op.f) else {
            return Applied {
                outcome: Outcome::Fail,
                aux,
                read: None,
            };
        };
        let (mut outcome, cause) =
            execute(shared, replica, &mut w.held, stmts, &mut env.clone()).await;
        shared.failures.write();
        if let Some((cause, blame)) = cause {
            shared.failures.failed(cause, blame);
        }
        if config.retry_fraction > 0.0 && w.rng.random_bool(config.retry_fraction) {
            // A client or webhook retry: the same op id again.
            let (again, _) = execute(shared, replica, &mut w.held, stmts, &mut env.clone()).await;
            outcome = match (outcome, again) {
                (Outcome::Ok, _) | (_, Outcome::Ok) => Outcome::Ok,
                (Outcome::Fail, Outcome::Fail) => Outcome::Fail,
                _ => Outcome::Info,
            };
        }
        if config.workload == Workload::MvRegister {
            // A later write of this writer supersedes this one: its
            // context covers it from the moment it returned.
            w.contexts
                .insert(key, (clock, shared.now_ns().max(context_ns)));
        }
        if outcome == Outcome::Ok {
            let mut samples = shared.samples.lock().unwrap_or_else(|p| p.into_inner());
            if samples.len() < MAX_PROBES && w.rng.random_bool(0.05) {
                samples.push((replica as u16, key, op.f, env));
            }
        }
        Applied {
            outcome,
            aux,
            read: None,
        }
    }

    async fn read(&self, replica: usize, key: u32) -> Option<Value> {
        read_key(&self.shared, replica, &mut None, key, u32::MAX)
            .await
            .map(|(v, _)| v)
    }

    async fn background(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.replicas() < 2 {
            return;
        }
        while !*stop.borrow() {
            anti_entropy_round(&self.shared, &self.nemesis).await;
            tokio::select! {
                _ = tokio::time::sleep(GOSSIP_PAUSE) => {}
                _ = stop.changed() => {}
            }
        }
    }

    fn nemesis_phase(&self, end: Option<Duration>) -> Duration {
        // Eight phases over a timed run, as the in-process nemesis does.
        end.map_or(PHASE, |d| (d / 8).max(PHASE))
    }

    async fn inject(&self, _rng: &mut ChaCha8Rng) -> Vec<String> {
        self.enter_next(true)
    }

    async fn heal(&self, for_good: bool) -> Vec<String> {
        if for_good {
            self.nemesis
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .heal();
            return vec!["heal; final anti-entropy".into()];
        }
        self.enter_next(false)
    }

    async fn before_poll(&self) {
        if self.replicas() > 1 {
            anti_entropy_round(&self.shared, &self.nemesis).await;
        }
    }

    async fn probes(&self) -> Vec<Probe> {
        // Redelivery probes: only a scenario that retries claims idempotency.
        let shared = &self.shared;
        if shared.config.retry_fraction <= 0.0 {
            return Vec::new();
        }
        let samples =
            std::mem::take(&mut *shared.samples.lock().unwrap_or_else(|p| p.into_inner()));
        let mut probes = Vec::new();
        for (replica, key, f, env) in samples {
            let r = replica as usize;
            let before = self.read(r, key).await;
            let stmts = &shared.prepared.ops[&f];
            let _ = execute(shared, r, &mut None, stmts, &mut env.clone()).await;
            let after = self.read(r, key).await;
            let changed = before != after;
            probes.push(Probe {
                probe: ProbeKind::Redeliver,
                replica,
                key,
                state_changed: changed,
                before: if changed { before } else { None },
                after: if changed { after } else { None },
            });
        }
        probes
    }

    fn mistake(&self) -> Option<Error> {
        mistake(&self.shared)
    }

    fn halted(&self) -> bool {
        self.shared
            .misconfigured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

impl SqlAdapter {
    /// Enters the next odd (fault) or even (heal) nemesis phase.
    fn enter_next(&self, odd: bool) -> Vec<String> {
        let mut phase = self.phase.load(Ordering::Relaxed) + 1;
        if (phase % 2 == 1) != odd {
            phase += 1;
        }
        self.phase.store(phase, Ordering::Relaxed);
        self.nemesis
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .enter_phase(phase)
            .into_iter()
            .collect()
    }
}

/// State of `from` merged into `to`. Returns false if anything failed.
async fn merge_pair(shared: &Shared, from: usize, to: usize) -> bool {
    let Some((state, apply)) = &shared.prepared.merge else {
        return true;
    };
    let rows = match bind_all(state, &Vec::new())
        .fetch_all(&shared.pools[from])
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            shared.note_error("merge state query", &e);
            return false;
        }
    };
    let mut conn = match shared.pools[to].acquire().await {
        Ok(c) => c,
        Err(e) => {
            shared.note_error("merge", &e);
            return false;
        }
    };
    let begin = match shared.config.url.as_deref().map(Backend::of_url) {
        Some(Ok(Backend::Postgres)) => "BEGIN",
        _ => "BEGIN IMMEDIATE",
    };
    if let Err(e) = sqlx::raw_sql(AssertSqlSafe(begin))
        .execute(&mut *conn)
        .await
    {
        shared.note_error("merge BEGIN", &e);
        return false;
    }
    for row in &rows {
        let mut env = row_env(row);
        env.push(("replica".into(), Param::Int(to as i64)));
        env.push(("source".into(), Param::Int(from as i64)));
        for stmt in apply {
            if let Err(e) = bind_all(stmt, &env).execute(&mut *conn).await {
                shared.note_error("merge apply", &e);
                let _ = sqlx::raw_sql(AssertSqlSafe("ROLLBACK"))
                    .execute(&mut *conn)
                    .await;
                return false;
            }
        }
    }
    if let Err(e) = sqlx::raw_sql(AssertSqlSafe("COMMIT"))
        .execute(&mut *conn)
        .await
    {
        shared.note_error("merge COMMIT", &e);
        return false;
    }
    true
}

/// One anti-entropy round over every ordered pair the nemesis lets through.
async fn anti_entropy_round(shared: &Shared, nemesis: &Mutex<Nemesis>) {
    let n = shared.config.replicas as usize;
    // The nemesis decides every pair first: its lock is not held across a merge.
    let mut pairs = Vec::new();
    {
        let mut nemesis = nemesis.lock().unwrap_or_else(|p| p.into_inner());
        for from in 0..n {
            for to in 0..n {
                if from == to || !nemesis.connected(from, to) || nemesis.drop_gossip() {
                    continue;
                }
                pairs.push((from, to, nemesis.duplicate().is_some()));
            }
        }
    }
    for (from, to, twice) in pairs {
        merge_pair(shared, from, to).await;
        if twice {
            merge_pair(shared, from, to).await;
        }
    }
}

/// A replica's URL and, on PostgreSQL, its schema.
type Location = (String, Option<String>);

/// Where each replica lives.
fn replica_locations(config: &SqlRunConfig) -> Result<(Backend, Vec<Location>)> {
    let n = config.replicas as usize;
    let Some(url) = config.url.as_deref().filter(|u| !u.trim().is_empty()) else {
        let dir = config.out.join("sqlite");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut urls = Vec::new();
        for i in 0..n {
            let path = dir.join(format!("r{i}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                if file.exists() {
                    std::fs::remove_file(&file).map_err(|e| Error::io(&file, e))?;
                }
            }
            urls.push((format!("sqlite://{}?mode=rwc", path.display()), None));
        }
        return Ok((Backend::Sqlite, urls));
    };
    let backend = Backend::of_url(url)?;
    let urls = match backend {
        Backend::Sqlite if n == 1 => vec![(url.to_string(), None)],
        Backend::Sqlite => {
            let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
            (0..n)
                .map(|i| (format!("{base}-r{i}{query}"), None))
                .collect()
        }
        Backend::Postgres => {
            let schema = config.spec.schema.as_deref().unwrap_or("converge");
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(Error::Config(format!(
                    "target.sql.schema '{schema}': letters, digits and _ only"
                )));
            }
            (0..n)
                .map(|i| {
                    let name = if n == 1 {
                        schema.to_string()
                    } else {
                        format!("{schema}_r{i}")
                    };
                    (url.to_string(), Some(name))
                })
                .collect()
        }
    };
    Ok((backend, urls))
}

/// Default connections per replica (see the module docs).
fn default_pool_size(backend: Backend, writers: u32, replicas: u16) -> u32 {
    let per_replica = writers.div_ceil(replicas as u32).max(1);
    match backend {
        // One per writer plus one for anti-entropy, so writers keep theirs.
        Backend::Postgres => (per_replica + 1).min((64 / replicas as u32).max(2) + 1),
        Backend::Sqlite => per_replica.min(8),
    }
}

async fn connect(
    config: &SqlRunConfig,
    backend: Backend,
    locations: &[Location],
    setup: &[String],
    pool_size: u32,
    password: Option<&str>,
) -> Result<Vec<AnyPool>> {
    let scrub = |m: String| match password {
        Some(p) => m.replace(p, "***"),
        None => m,
    };
    let mut pools = Vec::new();
    for (i, (url, schema)) in locations.iter().enumerate() {
        let component = match schema {
            Some(s) => format!("sql replica r{i} ({}, schema {s})", redact_url(url)),
            None => format!("sql replica r{i} ({})", redact_url(url)),
        };
        let unreachable = |e: sqlx::Error| Error::Target {
            component: component.clone(),
            message: scrub(e.to_string()),
        };
        // One plain connection first: its error says why (refused, no such
        // database, authentication) where a pool would only time out.
        let probe = tokio::time::timeout(
            Duration::from_secs(10),
            <sqlx::AnyConnection as sqlx::Connection>::connect(url),
        )
        .await
        .map_err(|_| Error::Target {
            component: component.clone(),
            message: "no connection within 10 s".into(),
        })?
        .map_err(unreachable)?;
        let _ = sqlx::Connection::close(probe).await;
        if let Some(schema) = schema {
            let admin = AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(unreachable)?;
            sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; CREATE SCHEMA \"{schema}\""
            )))
            .execute(&admin)
            .await
            .map_err(unreachable)?;
            admin.close().await;
        }
        let mut session = Vec::new();
        match backend {
            Backend::Postgres => {
                if let Some(schema) = schema {
                    session.push(format!("SET search_path TO \"{schema}\""));
                }
                if let Some(ms) = config.spec.statement_timeout_ms {
                    session.push(format!("SET statement_timeout = {ms}"));
                }
            }
            Backend::Sqlite => {
                session.push("PRAGMA busy_timeout = 10000".into());
                session.push("PRAGMA journal_mode = WAL".into());
                session.push("PRAGMA synchronous = NORMAL".into());
            }
        }
        let session = Arc::new(session);
        let pool = AnyPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                let session = session.clone();
                Box::pin(async move {
                    for stmt in session.iter() {
                        sqlx::raw_sql(AssertSqlSafe(stmt.as_str()))
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(unreachable)?;
        for (j, stmt) in setup.iter().enumerate() {
            sqlx::raw_sql(AssertSqlSafe(stmt.as_str()))
                .execute(&pool)
                .await
                .map_err(|e| {
                    Error::Config(format!(
                        "target.sql.setup[{j}] failed on {component}: {}",
                        scrub(e.to_string())
                    ))
                })?;
        }
        pools.push(pool);
    }
    Ok(pools)
}

/// Runs the scenario against the database and returns the recorded history.
/// Errors before the first op are configuration (exit 3) or an unreachable
/// database (exit 4); database errors during the run become `fail` or `info`.
pub fn run(config: &SqlRunConfig) -> Result<SqlResult> {
    sqlx::any::install_default_drivers();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    runtime.block_on(run_async(config))
}

async fn run_async(config: &SqlRunConfig) -> Result<SqlResult> {
    let rss_start_mb = crate::metrics::rss_mb().map_or(0.0, |r| r.0);
    let started = Instant::now();
    std::fs::create_dir_all(&config.out).map_err(|e| Error::io(&config.out, e))?;
    let (backend, locations) = replica_locations(config)?;
    if let Some(backends) = &config.spec.backends {
        if !backends.contains(&backend) {
            return Err(Error::Config(format!(
                "this scenario declares backends {:?}; it does not hold on {}",
                backends.iter().map(|b| b.name()).collect::<Vec<_>>(),
                backend.name()
            )));
        }
    }
    if let (Backend::Sqlite, Some(ms)) = (backend, config.spec.statement_timeout_ms) {
        // Never silently dropped: the user asked for a bound SQLite cannot set.
        return Err(Error::Config(format!(
            "target.sql.statement_timeout_ms = {ms} applies to PostgreSQL only: SQLite has no \
             statement timeout (it waits up to 10000 ms for a lock)"
        )));
    }
    let prepared = Prepared::new(config, backend)?;
    // The pool serves the most writers the load shape ever has at once.
    let writers = config.load.peak_writers().max(1);
    let password = config.url.as_deref().and_then(spec::password_of);
    let pool_size = config
        .spec
        .pool_size
        .unwrap_or_else(|| default_pool_size(backend, writers, config.replicas))
        .max(1);
    // The history exists before the first connection: a run stopped or
    // killed while it connects (or runs the setup) still leaves one.
    let header = Header {
        schema_version: SCHEMA_VERSION,
        seed: config.seed,
        workload: config.workload,
        model: config.model.clone(),
        target: "sql".into(),
        writers,
        replicas: config.replicas,
        keys: config.mix.keys,
        ops: config.load.ops.unwrap_or(0),
        nemesis: config.nemesis.to_spec(),
        reproduce: config.reproduce.clone(),
        linearizable: false,
    };
    let history_writer = crate::history::jsonl::HistoryWriter::start(
        &config.out.join("history.jsonl"),
        header.clone(),
    )?;
    let connected = tokio::select! {
        pools = connect(
            config,
            backend,
            &locations,
            &prepared.setup,
            pool_size,
            password.as_deref(),
        ) => pools,
        // A stop asked for while connecting ends the start-up at once.
        _ = crate::interrupt::wait() => {
            Err(crate::interrupt::during("while connecting to the database"))
        }
    };
    // The engine writes the run's history from its start; this one only
    // covers the start-up.
    let _ = history_writer.finish();
    let pools = connected?;
    let shared = Arc::new(Shared {
        config: config.clone(),
        prepared,
        pools,
        start: started,
        last_ts: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
        error_count: AtomicU64::new(0),
        samples: Mutex::new(Vec::new()),
        password,
        // One spare connection per replica for anti-entropy.
        hold_connections: pool_size > writers.div_ceil(config.replicas as u32),
        failures: FailureTally::default(),
        reads: ReadTally::default(),
        misconfigured: Mutex::new(None),
    });
    let adapter = Arc::new(SqlAdapter {
        shared: shared.clone(),
        nemesis: Mutex::new(Nemesis::new(
            config.nemesis.clone(),
            config.seed,
            config.replicas as usize,
        )),
        phase: AtomicU64::new(0),
    });
    let engine_config = EngineConfig {
        load: config.load.clone(),
        workload: config.workload,
        mix: config.mix.clone(),
        seed: config.seed,
        settle: config.settle,
        out: config.out.clone(),
        header,
        probe: config.probe.clone(),
    };
    let outcome = crate::engine::run(adapter, &engine_config, started, None).await;
    for pool in &shared.pools {
        pool.close().await;
    }
    let outcome = outcome?;
    let mut nemesis_log = outcome.nemesis_log;
    let errors = std::mem::take(&mut *shared.errors.lock().unwrap_or_else(|p| p.into_inner()));
    let error_count = shared.error_count.load(Ordering::Relaxed);
    if error_count > errors.len() as u64 {
        nemesis_log.push(format!("{error_count} database errors in all"));
    }
    let settle = match outcome.settle {
        Some(s) => s,
        None => {
            Settler::new(config.settle)
                .interrupted(Duration::ZERO)
                .report
        }
    };
    Ok(SqlResult {
        history: outcome.history,
        write_phase: outcome.write_phase,
        total: started.elapsed(),
        rss_start_mb,
        nemesis_log,
        errors,
        backend,
        pool_size,
        settle,
        dropped: outcome.dropped,
        series: outcome.series.clone(),
        writers_peak: outcome.writers_peak,
    })
}
