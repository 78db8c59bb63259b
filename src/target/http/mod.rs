//! Target `http`: a real service behind HTTP, driven through request
//! templates ([`config::HttpTargetConfig`]) and judged as a black box.
//!
//! A run: optionally start the service and wait for health; check every
//! replica answers; then [`crate::engine`] drives the [`Adapter`] this
//! module implements under the run's load shape: each op goes to a seeded
//! random replica, with the op id as idempotency key and a fraction of
//! writes sent twice with it. The nemesis partitions through the service's
//! admin endpoints, kills and restarts a service converge started, or
//! delays requests. The engine heals, settles and records the history.
//!
//! Outcomes: 2xx is `ok`; 4xx is `fail`; 5xx is `info` (or `fail` with
//! `definite_5xx`); a timeout or a connection error is `info`. Reads that
//! do not answer a usable value are `fail`, and a 2xx answer that is not
//! what the templates promise is a finding quoting it.

pub mod config;
pub mod service;
pub mod template;

use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::generator::{derive_seed, Mix};
use crate::history::jsonl::HistoryWriter;
use crate::history::{Function, Header, History, Outcome, SCHEMA_VERSION, UNKNOWN_AUX};
use crate::interpreter::shell_quote;
use crate::load::LoadSpec;
use crate::report::ServiceFigures;
use crate::target::misconfig::{Blame, FailureTally, ReadTally};
use crate::target::settle::{SettleReport, SettleState};
use crate::target::{Adapter, Applied, Op};
pub use config::HttpTargetConfig;
use config::{Request, Requests};
use converge_models::{Value as CrdtValue, Workload};
use parking_lot::{Mutex, RwLock};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use service::Service;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use template::Fields;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Faults the http nemesis can inject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpFaults {
    /// Partitions between replicas, through the admin endpoints.
    pub partition: bool,
    /// Kill -9 the service converge started, and start it again.
    pub crash: bool,
    /// Random client-side delays before requests.
    pub delay: bool,
}

impl HttpFaults {
    /// Parses `none`, `default` or a list of `partition`, `crash`, `delay`;
    /// `default` is partition where admin endpoints exist, else delay.
    pub fn parse(spec: &str, target: &HttpTargetConfig) -> Result<HttpFaults> {
        let mut faults = HttpFaults::default();
        for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "none" => {}
                "default" if target.admin.is_some() => faults.partition = true,
                "default" => faults.delay = true,
                "partition" => faults.partition = true,
                "crash" => faults.crash = true,
                "delay" => faults.delay = true,
                other => {
                    return Err(Error::Config(format!(
                        "--nemesis: unknown fault '{other}' (http target: partition, crash, delay, none, default; duplicates come from retry_fraction)"
                    )))
                }
            }
        }
        if faults.partition && target.admin.is_none() {
            return Err(Error::Config(
                "--nemesis partition: the http config has no [admin.partition] and [admin.heal] endpoints".into(),
            ));
        }
        if faults.crash && target.start.is_none() {
            return Err(Error::Config(
                "--nemesis crash: converge can only crash a service it starts ([start])".into(),
            ));
        }
        Ok(faults)
    }

    /// The spec that parses back to these faults.
    pub fn to_spec(self) -> String {
        crate::nemesis::spec_of(&[
            (self.partition, "partition"),
            (self.crash, "crash"),
            (self.delay, "delay"),
        ])
    }
}

/// Everything an http run needs.
#[derive(Clone, Debug)]
pub struct HttpRunConfig {
    /// The target's configuration.
    pub target: HttpTargetConfig,
    /// Where it was read from, as the flag that names it (`--http-config
    /// FILE` or `--scenario FILE`), for the reproduce command.
    pub config_flag: String,
    /// The load shape: writers, rate, stages, op budget, duration.
    pub load: LoadSpec,
    /// Fraction of ops on the hot key (key 0).
    pub hot_key_ratio: f64,
    /// Fraction of ops that are reads.
    pub read_ratio: f64,
    /// Fraction of OR-Set and 2P-Set updates that are removes.
    pub remove_ratio: f64,
    /// Nemesis faults.
    pub faults: HttpFaults,
    /// Seed of every random choice.
    pub seed: u64,
    /// Output directory.
    pub out: PathBuf,
    /// Where the target's memory is read from, when the user named it.
    pub probe: Option<crate::series::TargetProbe>,
}

impl HttpRunConfig {
    /// Checks ranges, naming the flag.
    pub fn validate(&self) -> Result<()> {
        self.target.validate()?;
        let writers = self.load.peak_writers();
        if writers == 0 || writers > 100_000 {
            return Err(Error::Config(format!(
                "--writers must be in 1..=100000, got {writers}"
            )));
        }
        if self.load.ops == Some(0) {
            return Err(Error::Config("--ops must be positive".into()));
        }
        self.load.validate()?;
        for (flag, v) in [
            ("--hot-key-ratio", self.hot_key_ratio),
            ("--read-ratio", self.read_ratio),
            ("--remove-ratio", self.remove_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Config(format!("{flag} must be in [0, 1], got {v}")));
            }
        }
        Ok(())
    }

    /// The command that reproduces this run (`--remove-ratio` only for a
    /// workload that has removes: the others refuse it).
    pub fn reproduce(&self) -> String {
        let removes = if self
            .target
            .datatype()
            .is_ok_and(crate::generator::takes_removes)
        {
            format!(" --remove-ratio {}", self.remove_ratio)
        } else {
            String::new()
        };
        format!(
            "converge run --target http {} --quiet-window {} --stall-window {} --settle-limit {} --writers {}{} --hot-key-ratio {} --read-ratio {}{removes} --nemesis {} --seed {} --out {}",
            self.config_flag,
            self.target.settle_rule().quiet.as_secs_f64(),
            self.target.settle_rule().stall.as_secs_f64(),
            self.target.settle_rule().limit.as_secs_f64(),
            self.load.writers,
            crate::engine::load_flags(&self.load),
            self.hot_key_ratio,
            self.read_ratio,
            self.faults.to_spec(),
            self.seed,
            shell_quote(&self.out.display().to_string())
        )
    }

    /// The generator's op mix.
    pub fn mix(&self) -> Mix {
        Mix {
            keys: self.target.keys,
            hot_key_ratio: self.hot_key_ratio,
            read_ratio: self.read_ratio,
            remove_ratio: self.remove_ratio,
            or_set_elements: OR_SET_ELEMENTS,
            ..Mix::default()
        }
    }
}

/// The open-files limit before and after converge raised it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdLimit {
    /// Soft limit at start.
    pub before: u64,
    /// Soft limit now.
    pub after: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: thousands of writers
/// need sockets, and the soft default (often 1024) is a convention, not a
/// resource. Connections are bounded per replica on top of it.
pub fn raise_fd_limit() -> FdLimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return FdLimit::default();
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        FdLimit {
            before,
            after: limit.rlim_cur,
            hard: limit.rlim_max,
        }
    }
}

/// What an http run produced.
#[derive(Debug)]
pub struct HttpResult {
    /// The history (also on disk).
    pub history: History,
    /// Answers that made no sense, each naming the replica and quoting it.
    pub garbage: Vec<String>,
    /// How many there were (`garbage` keeps the first few).
    pub garbage_total: u64,
    /// Client phase length.
    pub client_phase: Duration,
    /// Whole run.
    pub total: Duration,
    /// Nemesis actions, in order.
    pub nemesis_log: Vec<String>,
    /// How far apart replicas were at the end, if they were.
    pub divergence: Option<String>,
    /// What the settle phase decided (none when the client phase failed).
    pub settle: Option<SettleReport>,
    /// Figures of a service converge started.
    pub service: Option<ServiceFigures>,
    /// Writes sent a second time with the same idempotency key.
    pub retries: u64,
    /// The open-files limit.
    pub fd_limit: FdLimit,
    /// Connections allowed per replica.
    pub connections_per_host: usize,
    /// Replica base URLs (as discovered last).
    pub replicas: Vec<String>,
    /// Open model: arrivals that found no free writer.
    pub dropped: u64,
    /// Most writers at once.
    pub writers_peak: u32,
    /// The time series\' summary (`None` when it could not be written).
    pub series: Option<crate::series::SeriesSummary>,
}

/// Garbage answers kept in the result.
const MAX_GARBAGE: usize = 25;

/// Longest answer converge reads from a replica, in bytes: with one
/// request in flight per writer, converge holds at most writers times this.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// An answer, or why there was none.
enum Reply {
    Answer { status: u16, body: Vec<u8> },
    Transport(String),
}

/// State the clients, the nemesis and the final phase share.
struct Shared {
    client: reqwest::Client,
    urls: RwLock<Vec<String>>,
    permits: Vec<Semaphore>,
    requests: Requests,
    workload: Workload,
    definite_5xx: bool,
    retry_fraction: f64,
    key_names: Vec<String>,
    run_id: String,
    start: Instant,
    delay: AtomicBool,
    retries: AtomicU64,
    garbage: Mutex<Vec<String>>,
    garbage_total: AtomicU64,
    /// Writes and why they failed, for a run that is a configuration mistake.
    failures: FailureTally,
    /// Reads that yielded a value, and answered ones that did not.
    reads: ReadTally,
}

/// The error and its causes, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// At most 200 characters of an answer, for findings.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut short: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        short.push_str("...");
    }
    format!("{short:?}")
}

impl Shared {
    fn url(&self, replica: usize) -> String {
        self.urls.read()[replica].clone()
    }

    async fn send(&self, replica: usize, request: &Request, fields: &Fields) -> Reply {
        let url = format!("{}{}", self.url(replica), request.path.render(fields));
        let Ok(_permit) = self.permits[replica].acquire().await else {
            return Reply::Transport("connection pool closed".into());
        };
        let mut builder = self.client.request(request.method.clone(), &url);
        for (name, template) in &request.headers {
            builder = builder.header(name.clone(), template.render(fields));
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.render(fields).to_string());
        }
        match builder.send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let mut body = Vec::new();
                loop {
                    match response.chunk().await {
                        Ok(Some(chunk)) if body.len() + chunk.len() > MAX_RESPONSE_BYTES => {
                            // Bounded memory whatever a replica sends: the
                            // answer is a finding and the op's outcome unknown.
                            body.extend_from_slice(&chunk[..chunk.len().min(200)]);
                            let why = format!(
                                "an answer over {} MiB, not read further",
                                MAX_RESPONSE_BYTES >> 20
                            );
                            self.garbage(replica, request, fields, &why, &body);
                            return Reply::Transport(why);
                        }
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        Ok(None) => return Reply::Answer { status, body },
                        Err(e) => return Reply::Transport(error_chain(&e)),
                    }
                }
            }
            Err(e) => Reply::Transport(error_chain(&e)),
        }
    }

    fn garbage(&self, replica: usize, request: &Request, fields: &Fields, why: &str, body: &[u8]) {
        let message = format!(
            "replica {replica} ({}) answered {} {} with garbage ({why}): {}",
            self.url(replica),
            request.method,
            request.path.render(fields),
            quote(body)
        );
        tracing::warn!("{message}");
        self.garbage_total.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.garbage.lock();
        if kept.len() < MAX_GARBAGE {
            kept.push(message);
        }
    }

    fn fields(&self, key: u32, replica: usize) -> Fields {
        Fields::from([
            ("key", Value::String(self.key_names[key as usize].clone())),
            ("replica", json!(replica)),
        ])
    }
}

/// What an update's answer means.
struct Answered {
    outcome: Outcome,
    stamp: Option<u64>,
}

fn interpret_update(
    shared: &Shared,
    replica: usize,
    request: &Request,
    fields: &Fields,
    reply: &Reply,
) -> Answered {
    shared.failures.write();
    let template = format!(
        "{} ({} {})",
        request.kind.name(),
        request.method,
        request.source
    );
    let (status, body) = match reply {
        Reply::Transport(_) => {
            shared
                .failures
                .failed(format!("{template}: no answer"), Blame::Target);
            return Answered {
                outcome: Outcome::Info,
                stamp: None,
            };
        }
        Reply::Answer { status, body } => (*status, body),
    };
    let outcome = match status {
        200..=299 => Outcome::Ok,
        400..=499 => Outcome::Fail,
        500..=599 if shared.definite_5xx => Outcome::Fail,
        _ => Outcome::Info,
    };
    if outcome != Outcome::Ok {
        // A request the API refuses (404, 400, 405, 422) is the template's
        // mistake; timeouts, conflicts, throttling and 5xx are the service's.
        let blame = match status {
            408 | 409 | 423 | 425 | 429 => Blame::Target,
            400..=499 => Blame::Config,
            _ => Blame::Target,
        };
        shared
            .failures
            .failed(format!("{template} answered HTTP {status}"), blame);
    }
    let mut stamp = None;
    if let (Outcome::Ok, Some(pointer)) = (outcome, &request.stamp) {
        match serde_json::from_slice::<Value>(body) {
            Ok(doc) => match doc.pointer(pointer).and_then(Value::as_u64) {
                Some(s) => stamp = Some(s),
                None => shared.garbage(
                    replica,
                    request,
                    fields,
                    &format!("no unsigned integer timestamp at {pointer}"),
                    body,
                ),
            },
            Err(e) => shared.garbage(replica, request, fields, &format!("not JSON: {e}"), body),
        }
    }
    Answered { outcome, stamp }
}

/// How [`parse_read`] says a pointer found nothing (the template's
/// mistake when no answer ever has it), as opposed to an answer that is
/// not JSON or holds the wrong type (the service's).
const NOTHING_AT: &str = "nothing at";
/// See [`NOTHING_AT`].
const NO_CONTEXT_AT: &str = "no causal context at";

fn pointer_missed(why: &str) -> bool {
    why.starts_with(NOTHING_AT) || why.starts_with(NO_CONTEXT_AT)
}

/// A read's value and context from a 2xx answer; `Err` says what is wrong.
fn parse_read(
    workload: Workload,
    request: &Request,
    body: &[u8],
) -> std::result::Result<(CrdtValue, Option<Value>), String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let pointer = request.value.as_deref().unwrap_or("");
    let value = doc
        .pointer(pointer)
        .ok_or_else(|| format!("{NOTHING_AT} {pointer}"))?;
    let unsigned = |v: &Value| {
        v.as_u64()
            .ok_or_else(|| format!("{pointer} holds {v}, not an unsigned integer"))
    };
    let list = |v: &Value| -> std::result::Result<Vec<u64>, String> {
        let items = v
            .as_array()
            .ok_or_else(|| format!("{pointer} holds {v}, not a list"))?;
        let mut out = items
            .iter()
            .map(unsigned)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        out.sort_unstable();
        Ok(out)
    };
    let read = match workload {
        Workload::GCounter | Workload::PnCounter => CrdtValue::Int(
            value
                .as_i64()
                .ok_or_else(|| format!("{pointer} holds {value}, not an integer"))?,
        ),
        Workload::LwwRegister if value.is_null() => CrdtValue::Elems(Vec::new()),
        Workload::LwwRegister => CrdtValue::Elems(vec![unsigned(value)?]),
        _ => CrdtValue::Elems(list(value)?),
    };
    let context = match &request.context {
        Some(p) => Some(
            doc.pointer(p)
                .cloned()
                .ok_or_else(|| format!("{NO_CONTEXT_AT} {p}"))?,
        ),
        None => None,
    };
    Ok((read, context))
}

/// Reads one key on one replica: the value, or `None` (a `fail` read).
async fn read(shared: &Shared, replica: usize, key: u32) -> (Option<CrdtValue>, Option<Value>) {
    let fields = shared.fields(key, replica);
    let request = &shared.requests.read;
    match shared.send(replica, request, &fields).await {
        Reply::Answer { status, body } if (200..300).contains(&status) => {
            match parse_read(shared.workload, request, &body) {
                Ok((value, context)) => {
                    shared.reads.yielded();
                    (Some(value), context)
                }
                Err(why) => {
                    if pointer_missed(&why) {
                        shared.reads.empty(&why);
                    }
                    shared.garbage(replica, request, &fields, &why, &body);
                    (None, None)
                }
            }
        }
        _ => (None, None),
    }
}

/// Runs the target and returns what it recorded. Errors before the first
/// op (a service that does not start, a replica that cannot be reached)
/// are target errors naming the replica.
pub fn run(config: &HttpRunConfig) -> Result<HttpResult> {
    config.validate()?;
    let fd_limit = raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    runtime.block_on(run_async(config, fd_limit))
}

/// The history header of a run (written before the service starts, so a
/// run stopped or killed during start-up still leaves one).
fn header(config: &HttpRunConfig, workload: Workload) -> Header {
    let target = &config.target;
    Header {
        schema_version: SCHEMA_VERSION,
        seed: config.seed,
        workload,
        model: match (&target.start, target.replicas.first()) {
            (Some(s), _) => s.command.join(" "),
            (None, Some(url)) => format!("http {url}"),
            (None, None) => "http".into(),
        },
        target: "http".into(),
        writers: config.load.peak_writers(),
        replicas: match &target.start {
            Some(s) if target.replicas.is_empty() => s.expect_replicas.unwrap_or(1),
            _ => target.replicas.len(),
        } as u16,
        keys: target.keys,
        ops: config.load.ops.unwrap_or(0),
        nemesis: config.faults.to_spec(),
        reproduce: config.reproduce(),
        linearizable: false,
    }
}

async fn run_async(config: &HttpRunConfig, fd_limit: FdLimit) -> Result<HttpResult> {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(&config.out).map_err(|e| Error::io(&config.out, e))?;
    let target = &config.target;
    let workload = target.datatype()?;
    // The history exists before the service starts: a run stopped or
    // killed during start-up still leaves one.
    let early = HistoryWriter::start(&config.out.join("history.jsonl"), header(config, workload))?;
    let service = match &target.start {
        Some(start) => Some(Service::start(start, &target.replicas, &config.out).await?),
        None => None,
    };
    // The engine writes the run's history afresh.
    let _ = early.finish();
    let urls = service
        .as_ref()
        .map_or_else(|| target.replicas.clone(), |s| s.urls.clone());
    let sampler = service
        .as_ref()
        .map(|s| service::sample(s.pid.clone(), Duration::from_millis(100)));
    let service = Arc::new(tokio::sync::Mutex::new(service));
    let outcome = drive(config, workload, urls, service.clone(), fd_limit, started).await;
    let figures = match sampler {
        Some((stop, figures)) => {
            let _ = stop.send(());
            let f = figures.lock().clone();
            Some(f)
        }
        None => None,
    };
    let mut guard = service.lock().await;
    let restarts = guard.as_ref().map_or(0, |s| s.restarts);
    if let Some(s) = guard.as_mut() {
        let how = s.stop().await;
        tracing::info!("service {how}");
    }
    let mut result = outcome?;
    result.service = figures.map(|f| ServiceFigures { restarts, ..f });
    result.total = started.elapsed();
    Ok(result)
}

fn build_client(target: &HttpTargetConfig, per_host: usize) -> Result<reqwest::Client> {
    let timeout = Duration::from_millis(target.timeout_ms);
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .pool_max_idle_per_host(per_host)
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_keepalive(Duration::from_secs(30))
        .tcp_nodelay(true)
        .no_proxy();
    if target.http2 {
        builder = builder.http2_prior_knowledge();
    }
    builder.build().map_err(|e| Error::Target {
        component: "http client".into(),
        message: error_chain(&e),
    })
}

async fn drive(
    config: &HttpRunConfig,
    workload: Workload,
    urls: Vec<String>,
    service: Arc<tokio::sync::Mutex<Option<Service>>>,
    fd_limit: FdLimit,
    started: std::time::Instant,
) -> Result<HttpResult> {
    let target = &config.target;
    let requests = target.requests()?;
    let replicas = urls.len();
    // Leave room for the history file, the service's pipes and the runtime.
    let fd_room = (fd_limit.after.saturating_sub(128) as usize / replicas.max(1)).max(1);
    let per_host = target.max_connections_per_host.min(fd_room);
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 1_000_000);
    let run_id = format!("{}-{nonce}", config.seed);
    let shared = Arc::new(Shared {
        client: build_client(target, per_host)?,
        urls: RwLock::new(urls),
        permits: (0..replicas).map(|_| Semaphore::new(per_host)).collect(),
        requests,
        workload,
        definite_5xx: target.definite_5xx,
        retry_fraction: target.retry_fraction,
        key_names: (0..target.keys)
            .map(|k| format!("{}{run_id}-{k}", target.key_prefix))
            .collect(),
        run_id,
        start: Instant::from_std(started),
        delay: AtomicBool::new(false),
        retries: AtomicU64::new(0),
        garbage: Mutex::new(Vec::new()),
        garbage_total: AtomicU64::new(0),
        failures: FailureTally::default(),
        reads: ReadTally::default(),
    });
    // Every replica must answer before the run starts: a dead URL is a
    // target error naming it, not a history full of `info`.
    for replica in 0..replicas {
        let fields = shared.fields(0, replica);
        if let Reply::Transport(why) = shared.send(replica, &shared.requests.read, &fields).await {
            return Err(Error::Target {
                component: format!("replica {replica} ({})", shared.url(replica)),
                message: why,
            });
        }
    }
    let service_pid = service.lock().await.as_ref().map(|s| s.pid.clone());
    let adapter = Arc::new(HttpAdapter {
        shared: shared.clone(),
        service_pid,
        service,
        faults: config.faults,
        step: Duration::from_millis(target.nemesis_step_ms),
        partitioned: AtomicBool::new(false),
        seed: config.seed,
    });
    if config.faults.delay {
        shared.delay.store(true, Ordering::Relaxed);
    }
    let engine_config = EngineConfig {
        load: config.load.clone(),
        workload,
        mix: config.mix(),
        seed: config.seed,
        settle: target.settle_rule(),
        out: config.out.clone(),
        header: header(config, workload),
        probe: config.probe.clone(),
    };
    let mut nemesis_log = Vec::new();
    if config.faults.delay {
        nemesis_log.push("0.0s client-side delays on".to_string());
    }
    let outcome = crate::engine::run(adapter, &engine_config, started, None).await?;
    nemesis_log.extend(outcome.nemesis_log);
    let garbage = std::mem::take(&mut *shared.garbage.lock());
    let replicas_now = shared.urls.read().clone();
    let settled = outcome.settle;
    Ok(HttpResult {
        history: outcome.history,
        garbage,
        garbage_total: shared.garbage_total.load(Ordering::Relaxed),
        client_phase: outcome.write_phase,
        total: started.elapsed(),
        nemesis_log,
        divergence: settled
            .as_ref()
            .filter(|s| s.state != SettleState::Converged)
            .map(SettleReport::describe),
        settle: settled,
        service: None,
        retries: shared.retries.load(Ordering::Relaxed),
        fd_limit,
        connections_per_host: per_host,
        replicas: replicas_now,
        dropped: outcome.dropped,
        series: outcome.series.clone(),
        writers_peak: outcome.writers_peak,
    })
}

/// Elements of the or-set workload are below this, so removes hit adds.
pub const OR_SET_ELEMENTS: u64 = 16;

/// The http target behind the engine's [`Adapter`] trait.
struct HttpAdapter {
    shared: Arc<Shared>,
    service: Arc<tokio::sync::Mutex<Option<Service>>>,
    faults: HttpFaults,
    step: Duration,
    partitioned: AtomicBool,
    /// The service's pid, when converge started it (a restart updates it).
    service_pid: Option<Arc<std::sync::atomic::AtomicU32>>,
    seed: u64,
}

/// One http writer: its retry and delay coins, and the causal context of
/// its last read (and when that read returned).
struct HttpWriter {
    rng: ChaCha8Rng,
    context: Value,
    context_ns: u64,
}

impl HttpAdapter {
    /// The fields an update's templates render.
    fn fields_of(&self, op: &Op, context: &Value) -> Fields {
        let shared = &self.shared;
        let mut fields = shared.fields(op.key, op.replica);
        fields.insert(
            "op_id",
            json!(format!("{}-{}-{}", shared.run_id, op.writer, op.seq)),
        );
        match op.f {
            Function::Increment => fields.insert("delta", json!(op.value)),
            Function::Add | Function::Remove => fields.insert("element", json!(op.value)),
            _ => {
                fields.insert("context", context.clone());
                fields.insert("value", json!(op.value))
            }
        };
        fields
    }

    fn authority(&self) -> &str {
        "the service"
    }
}

impl Adapter for HttpAdapter {
    type Writer = HttpWriter;

    fn replicas(&self) -> usize {
        self.shared.permits.len()
    }

    fn writer(&self, id: u32) -> HttpWriter {
        HttpWriter {
            rng: ChaCha8Rng::seed_from_u64(derive_seed(self.seed, 1000 + id as u64)),
            context: json!({}),
            context_ns: 0,
        }
    }

    async fn apply(&self, w: &mut HttpWriter, op: Op) -> Applied {
        let shared = &self.shared;
        if shared.delay.load(Ordering::Relaxed) && w.rng.random_bool(0.5) {
            tokio::time::sleep(Duration::from_millis(w.rng.random_range(1..=20))).await;
        }
        if op.f == Function::Read {
            let (value, ctx) = read(shared, op.replica, op.key).await;
            if let Some(ctx) = ctx {
                w.context = ctx;
                w.context_ns = shared.start.elapsed().as_nanos() as u64;
            }
            return Applied {
                outcome: if value.is_some() {
                    Outcome::Ok
                } else {
                    Outcome::Fail
                },
                aux: UNKNOWN_AUX,
                read: value,
            };
        }
        let retry = w.rng.random_bool(shared.retry_fraction);
        let fields = self.fields_of(&op, &w.context);
        let request = if op.f == Function::Remove {
            shared
                .requests
                .remove
                .as_ref()
                .unwrap_or(&shared.requests.update)
        } else {
            &shared.requests.update
        };
        let reply = shared.send(op.replica, request, &fields).await;
        let mut applied = interpret_update(shared, op.replica, request, &fields, &reply);
        if retry {
            // A client or webhook retry: the same op id, so the same idempotency key.
            shared.retries.fetch_add(1, Ordering::Relaxed);
            let again = shared.send(op.replica, request, &fields).await;
            let second = interpret_update(shared, op.replica, request, &fields, &again);
            applied = match (applied.outcome, second.outcome) {
                (Outcome::Ok, _) => applied,
                (_, Outcome::Ok) | (_, Outcome::Info) => second,
                _ => applied,
            };
        }
        Applied {
            outcome: applied.outcome,
            aux: match shared.workload {
                Workload::MvRegister => w.context_ns,
                Workload::LwwRegister => applied.stamp.unwrap_or(UNKNOWN_AUX),
                _ => UNKNOWN_AUX,
            },
            read: None,
        }
    }

    async fn read(&self, replica: usize, key: u32) -> Option<CrdtValue> {
        read(&self.shared, replica, key).await.0
    }

    fn nemesis_phase(&self, _end: Option<Duration>) -> Duration {
        self.step
    }

    async fn inject(&self, rng: &mut ChaCha8Rng) -> Vec<String> {
        let shared = &self.shared;
        let replicas = shared.permits.len();
        let mut actions = Vec::new();
        if self.faults.partition && replicas > 1 {
            actions.push("partition");
        }
        if self.faults.crash {
            actions.push("crash");
        }
        if actions.is_empty() {
            return Vec::new();
        }
        match actions[rng.random_range(0..actions.len())] {
            "partition" => {
                let Some((partition, _)) = shared.requests.admin.as_ref() else {
                    return Vec::new();
                };
                // Isolate one replica, or split off a random minority.
                let mut group = vec![0u8; replicas];
                let isolated = rng.random_range(0..replicas);
                group[isolated] = 1;
                if rng.random_bool(0.5) {
                    for g in group.iter_mut().take((replicas - 1) / 2) {
                        *g = 1;
                    }
                }
                let side: Vec<usize> = (0..replicas).filter(|i| group[*i] == 1).collect();
                let failed = admin_all(shared, partition, |r| {
                    (0..replicas).filter(|o| group[*o] != group[r]).collect()
                })
                .await;
                self.partitioned.store(true, Ordering::Relaxed);
                vec![format!(
                    "partition {side:?} from the rest{}",
                    failures(&failed)
                )]
            }
            _ => {
                let mut guard = self.service.lock().await;
                let Some(s) = guard.as_mut() else {
                    return Vec::new();
                };
                let mut log = vec!["crash the service (kill -9) and restart it".to_string()];
                match s.crash_and_restart().await {
                    Ok(()) => {
                        *shared.urls.write() = s.urls.clone();
                        log.push("service healthy again".into());
                    }
                    Err(e) => log.push(format!("restart failed: {e}")),
                }
                log
            }
        }
    }

    async fn heal(&self, for_good: bool) -> Vec<String> {
        let mut log = Vec::new();
        if for_good && self.shared.delay.swap(false, Ordering::Relaxed) {
            log.push("client-side delays off".to_string());
        }
        let was = self.partitioned.swap(false, Ordering::Relaxed);
        if let (true, Some((_, heal))) = (
            was || (for_good && self.faults.partition),
            self.shared.requests.admin.as_ref(),
        ) {
            let failed = admin_all(&self.shared, heal, |_| Vec::new()).await;
            let what = if for_good { "final heal" } else { "healed" };
            log.push(format!("{what}{}", failures(&failed)));
        }
        log
    }

    fn mistake(&self) -> Option<Error> {
        let shared = &self.shared;
        if let Some(e) = shared.failures.verdict(self.authority()) {
            return Some(e);
        }
        let read = &shared.requests.read;
        let read_template = format!(
            "{} ({} {}, value = {:?})",
            read.kind.name(),
            read.method,
            read.source,
            read.value.as_deref().unwrap_or("")
        );
        shared.reads.verdict(&read_template)
    }

    fn pids(&self) -> Vec<u32> {
        self.service_pid
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .filter(|&p| p != 0)
            .collect()
    }
}

/// Sends an admin request to every replica; returns what failed.
async fn admin_all(
    shared: &Shared,
    request: &Request,
    blocked_of: impl Fn(usize) -> Vec<usize>,
) -> Vec<String> {
    let mut failed = Vec::new();
    for replica in 0..shared.permits.len() {
        let fields = Fields::from([
            ("replica", json!(replica)),
            ("blocked", json!(blocked_of(replica))),
        ]);
        match shared.send(replica, request, &fields).await {
            Reply::Answer { status, .. } if (200..300).contains(&status) => {}
            Reply::Answer { status, .. } => {
                failed.push(format!("replica {replica}: HTTP {status}"))
            }
            Reply::Transport(why) => failed.push(format!("replica {replica}: {why}")),
        }
    }
    failed
}

/// ` (failed: ...)` after a nemesis action whose admin requests failed.
fn failures(failed: &[String]) -> String {
    if failed.is_empty() {
        String::new()
    } else {
        format!(" (failed: {})", failed.join("; "))
    }
}
