//! Target `http`: a real service behind HTTP, driven through request
//! templates ([`config::HttpTargetConfig`]) and judged as a black box.
//!
//! A run: optionally start the service and wait for health; check every
//! replica answers; then `writers` closed-loop clients share `ops`
//! operations, each sent to a seeded random replica, with the op id as
//! idempotency key and a fraction of writes sent twice with it. The
//! nemesis partitions through the service's admin endpoints, kills and
//! restarts a service converge started, or delays requests. At the end
//! every fault is healed and every key is read on every replica until they
//! agree and stay agreed for a quiet window. Every op streams to
//! `history.jsonl` as it completes.
//!
//! Outcomes: 2xx is `ok`; 4xx is `fail`; 5xx is `info` (or `fail` with
//! `definite_5xx`); a timeout or a connection error is `info`. Reads that
//! do not answer a usable value are `fail`, and a 2xx answer that is not
//! what the templates promise is a finding quoting it.

pub mod config;
pub mod service;
pub mod template;

use crate::error::{Error, Result};
use crate::generator::derive_seed;
use crate::history::jsonl::{record_invoke, HistoryWriter, WriterMsg};
use crate::history::{
    FinalRead, Function, Header, History, OpRecord, Outcome, SCHEMA_VERSION, UNKNOWN_AUX,
};
use crate::interpreter::shell_quote;
use crate::report::ServiceFigures;
use crate::target::misconfig::{Blame, FailureTally, ReadTally};
use crate::target::settle::{Reads, SettleReport, SettleState, Settled, Settler};
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
    /// Concurrent clients (each one request in flight).
    pub writers: u32,
    /// Operations over all clients.
    pub ops: u64,
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
}

impl HttpRunConfig {
    /// Checks ranges, naming the flag.
    pub fn validate(&self) -> Result<()> {
        self.target.validate()?;
        if self.writers == 0 || self.writers > 100_000 {
            return Err(Error::Config(format!(
                "--writers must be in 1..=100000, got {}",
                self.writers
            )));
        }
        if self.ops == 0 {
            return Err(Error::Config("--ops must be positive".into()));
        }
        for (flag, v) in [
            ("--read-ratio", self.read_ratio),
            ("--remove-ratio", self.remove_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Config(format!("{flag} must be in [0, 1], got {v}")));
            }
        }
        Ok(())
    }

    /// The command that reproduces this run.
    pub fn reproduce(&self) -> String {
        format!(
            "converge run --target http {} --quiet-window {} --stall-window {} --settle-limit {} --writers {} --ops {} --read-ratio {} --remove-ratio {} --nemesis {} --seed {} --out {}",
            self.config_flag,
            self.target.settle_rule().quiet.as_secs_f64(),
            self.target.settle_rule().stall.as_secs_f64(),
            self.target.settle_rule().limit.as_secs_f64(),
            self.writers,
            self.ops,
            self.read_ratio,
            self.remove_ratio,
            self.faults.to_spec(),
            self.seed,
            shell_quote(&self.out.display().to_string())
        )
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
    next_op: AtomicU64,
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
struct Applied {
    outcome: Outcome,
    stamp: Option<u64>,
}

fn interpret_update(
    shared: &Shared,
    replica: usize,
    request: &Request,
    fields: &Fields,
    reply: &Reply,
) -> Applied {
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
            return Applied {
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
    Applied { outcome, stamp }
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

async fn run_async(config: &HttpRunConfig, fd_limit: FdLimit) -> Result<HttpResult> {
    let started = Instant::now();
    std::fs::create_dir_all(&config.out).map_err(|e| Error::io(&config.out, e))?;
    let target = &config.target;
    let workload = target.datatype()?;
    // The history exists before the service starts: a run stopped or
    // killed during start-up still leaves one.
    let header = Header {
        schema_version: SCHEMA_VERSION,
        seed: config.seed,
        workload,
        model: match (&target.start, target.replicas.first()) {
            (Some(s), _) => s.command.join(" "),
            (None, Some(url)) => format!("http {url}"),
            (None, None) => "http".into(),
        },
        target: "http".into(),
        writers: config.writers,
        replicas: match &target.start {
            Some(s) if target.replicas.is_empty() => s.expect_replicas.unwrap_or(1),
            _ => target.replicas.len(),
        } as u16,
        keys: target.keys,
        ops: config.ops,
        nemesis: config.faults.to_spec(),
        reproduce: config.reproduce(),
        linearizable: false,
    };
    let writer = HistoryWriter::start(&config.out.join("history.jsonl"), header)?;
    let service = match &target.start {
        Some(start) => Some(Service::start(start, &target.replicas, &config.out).await?),
        None => None,
    };
    let urls = service
        .as_ref()
        .map_or_else(|| target.replicas.clone(), |s| s.urls.clone());
    let sampler = service
        .as_ref()
        .map(|s| service::sample(s.pid.clone(), Duration::from_millis(100)));
    let service = Arc::new(tokio::sync::Mutex::new(service));
    let outcome = drive(
        config,
        workload,
        urls,
        service.clone(),
        fd_limit,
        started,
        writer,
    )
    .await;
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
    started: Instant,
    writer: HistoryWriter,
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
        start: started,
        delay: AtomicBool::new(false),
        next_op: AtomicU64::new(0),
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

    let client_start = Instant::now();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let nemesis = tokio::spawn(nemesis_task(
        shared.clone(),
        service.clone(),
        config.faults,
        Duration::from_millis(target.nemesis_step_ms),
        config.seed,
        done_rx,
    ));
    let mut clients = Vec::new();
    for w in 0..config.writers {
        clients.push(tokio::spawn(client_task(
            shared.clone(),
            config.clone(),
            w,
            writer.sender(),
        )));
    }
    let mut client_error = None;
    for task in clients {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => client_error = Some(e),
            Err(e) => client_error = Some(Error::Config(format!("client task failed: {e}"))),
        }
    }
    let client_phase = client_start.elapsed();
    let _ = done_tx.send(true);
    let nemesis_log = nemesis.await.unwrap_or_default();

    let mut settled = None;
    // A run that already shows a configuration mistake does not wait for
    // the settle limit: it ends with the mistake below.
    let mistaken = shared.failures.verdict("the service").is_some();
    if client_error.is_none() && !mistaken {
        if let Some(outcome) = settle(&shared, target).await {
            let sender = writer.sender();
            for f in finals_of(&outcome.reads) {
                let _ = sender.send(WriterMsg::Final(f));
            }
            let _ = sender.send(WriterMsg::Quiescence(outcome.report.quiescence()));
            settled = Some(outcome.report);
        }
    }
    let history = writer.finish()?;
    if let Some(e) = client_error {
        return Err(e);
    }
    // The history is on disk; a run that only shows a configuration
    // mistake ends with it, not with a verdict about data.
    if let Some(e) = shared.failures.verdict("the service") {
        return Err(e);
    }
    let read = &shared.requests.read;
    let read_template = format!(
        "{} ({} {}, value = {:?})",
        read.kind.name(),
        read.method,
        read.source,
        read.value.as_deref().unwrap_or("")
    );
    if let Some(e) = shared.reads.verdict(&read_template) {
        return Err(e);
    }
    let garbage = std::mem::take(&mut *shared.garbage.lock());
    let replicas_now = shared.urls.read().clone();
    Ok(HttpResult {
        history,
        garbage,
        garbage_total: shared.garbage_total.load(Ordering::Relaxed),
        client_phase,
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
    })
}

/// One planned op: its history function and value, its fields, and which
/// template sends it.
struct Planned {
    f: Function,
    value: i64,
    key: u32,
    fields: Fields,
    remove: bool,
}

/// Elements of the or-set workload are below this, so removes hit adds.
pub const OR_SET_ELEMENTS: u64 = 16;

/// Elements a client added to a 2P-Set and has not removed yet (at most
/// this many), so that its removes name elements that were added: a
/// 2P-Set remove tombstones an element for good, and one of an element
/// nobody added tests nothing.
const TWO_P_SET_RECENT: usize = 64;

#[allow(clippy::too_many_arguments)]
fn plan(
    shared: &Shared,
    config: &HttpRunConfig,
    rng: &mut ChaCha8Rng,
    writer: u32,
    seq: u64,
    replica: usize,
    context: &Value,
    recent_adds: &mut Vec<u64>,
) -> Planned {
    let key = rng.random_range(0..config.target.keys);
    let mut fields = shared.fields(key, replica);
    let planned = |f, value, fields| Planned {
        f,
        value,
        key,
        fields,
        remove: false,
    };
    if rng.random_bool(config.read_ratio) {
        return planned(Function::Read, 0, fields);
    }
    fields.insert("op_id", json!(format!("{}-{writer}-{seq}", shared.run_id)));
    let unique = ((writer as u64) << 32) | seq;
    match shared.workload {
        Workload::GCounter | Workload::PnCounter => {
            let delta = if shared.workload == Workload::GCounter {
                rng.random_range(1..=5i64)
            } else {
                let d = rng.random_range(-5..=4i64);
                if d >= 0 {
                    d + 1
                } else {
                    d
                }
            };
            fields.insert("delta", json!(delta));
            planned(Function::Increment, delta, fields)
        }
        Workload::OrSet => {
            let element = rng.random_range(0..OR_SET_ELEMENTS);
            fields.insert("element", json!(element));
            let remove = rng.random_bool(config.remove_ratio);
            Planned {
                f: if remove {
                    Function::Remove
                } else {
                    Function::Add
                },
                value: element as i64,
                key,
                fields,
                remove,
            }
        }
        Workload::GSet => {
            fields.insert("element", json!(unique));
            planned(Function::Add, unique as i64, fields)
        }
        Workload::TwoPSet => {
            // Unique elements; a remove names one this client added
            // earlier (its add has returned, so the remove follows it).
            let remove = !recent_adds.is_empty() && rng.random_bool(config.remove_ratio);
            let element = if remove {
                let i = rng.random_range(0..recent_adds.len());
                recent_adds.swap_remove(i)
            } else {
                if recent_adds.len() < TWO_P_SET_RECENT {
                    recent_adds.push(unique);
                }
                unique
            };
            fields.insert("element", json!(element));
            Planned {
                f: if remove {
                    Function::Remove
                } else {
                    Function::Add
                },
                value: element as i64,
                key,
                fields,
                remove,
            }
        }
        _ => {
            fields.insert("value", json!(unique));
            fields.insert("context", context.clone());
            planned(Function::Write, unique as i64, fields)
        }
    }
}

async fn client_task(
    shared: Arc<Shared>,
    config: HttpRunConfig,
    writer: u32,
    history: converge_sync::channel::Sender<WriterMsg>,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(config.seed, 1000 + writer as u64));
    let replicas = shared.permits.len();
    let mut seq = 0u64;
    // The causal context of this client's last read, and when that read returned.
    let mut context = json!({});
    let mut context_ns = 0u64;
    let mut recent_adds = Vec::new();
    while !crate::interrupt::requested()
        && shared.next_op.fetch_add(1, Ordering::Relaxed) < config.ops
    {
        seq += 1;
        let replica = rng.random_range(0..replicas);
        let planned = plan(
            &shared,
            &config,
            &mut rng,
            writer,
            seq,
            replica,
            &context,
            &mut recent_adds,
        );
        let retry = planned.f != Function::Read && rng.random_bool(shared.retry_fraction);
        if shared.delay.load(Ordering::Relaxed) && rng.random_bool(0.5) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(1..=20))).await;
        }
        let invoke = Instant::now();
        let invoke_ns = invoke.duration_since(shared.start).as_nanos() as u64;
        let invocation = OpRecord::invocation(
            planned.f,
            writer,
            replica as u16,
            planned.key,
            planned.value,
            invoke_ns,
        );
        let invoked = record_invoke(&history, &invocation).await?;
        let (outcome, aux, read_value) = if planned.f == Function::Read {
            let (value, ctx) = read(&shared, replica, planned.key).await;
            if let Some(ctx) = ctx {
                context = ctx;
                context_ns = shared.start.elapsed().as_nanos() as u64;
            }
            let outcome = if value.is_some() {
                Outcome::Ok
            } else {
                Outcome::Fail
            };
            (outcome, UNKNOWN_AUX, value)
        } else {
            let request = if planned.remove {
                shared
                    .requests
                    .remove
                    .as_ref()
                    .unwrap_or(&shared.requests.update)
            } else {
                &shared.requests.update
            };
            let reply = shared.send(replica, request, &planned.fields).await;
            let mut applied = interpret_update(&shared, replica, request, &planned.fields, &reply);
            if retry {
                // A client or webhook retry: the same op id, so the same idempotency key.
                shared.retries.fetch_add(1, Ordering::Relaxed);
                let again = shared.send(replica, request, &planned.fields).await;
                let second = interpret_update(&shared, replica, request, &planned.fields, &again);
                applied = match (applied.outcome, second.outcome) {
                    (Outcome::Ok, _) => applied,
                    (_, Outcome::Ok) | (_, Outcome::Info) => second,
                    _ => applied,
                };
            }
            let aux = match shared.workload {
                Workload::MvRegister => context_ns,
                Workload::LwwRegister => applied.stamp.unwrap_or(UNKNOWN_AUX),
                _ => UNKNOWN_AUX,
            };
            (applied.outcome, aux, None)
        };
        let record = OpRecord {
            invoke_ns,
            value: planned.value,
            aux,
            latency_ns: invoke.elapsed().as_nanos().min(u32::MAX as u128) as u32,
            process: writer,
            key: planned.key,
            slot: 0,
            clock_sum: 0,
            replica: replica as u16,
            f: planned.f,
            outcome,
        };
        invoked.complete(&history, record, read_value)?;
    }
    Ok(())
}

/// Polls every key on every replica until the shared settle rule decides
/// ([`crate::target::settle`]); `None` when the read template has never
/// yielded a value (a configuration mistake, reported by the caller).
async fn settle(shared: &Shared, target: &HttpTargetConfig) -> Option<Settled> {
    let healed = Instant::now();
    let rule = target.settle_rule();
    let mut settler = Settler::new(rule);
    let replicas = shared.permits.len();
    loop {
        if crate::interrupt::requested() {
            // A stop asked for ends the final phase: no final reads.
            return Some(settler.interrupted(healed.elapsed()));
        }
        let mut now: Reads<CrdtValue> = Vec::with_capacity(replicas);
        for replica in 0..replicas {
            let mut row = Vec::with_capacity(target.keys as usize);
            for key in 0..target.keys {
                row.push(read(shared, replica, key).await.0);
            }
            now.push(row);
        }
        if shared.reads.never_yielded() {
            return None;
        }
        if let Some(settled) = settler.observe(healed.elapsed(), now) {
            return Some(settled);
        }
        tokio::time::sleep(rule.poll_interval()).await;
    }
}

fn finals_of(values: &[Vec<Option<CrdtValue>>]) -> Vec<FinalRead> {
    let mut finals = Vec::new();
    for (replica, row) in values.iter().enumerate() {
        for (key, value) in row.iter().enumerate() {
            if let Some(value) = value {
                finals.push(FinalRead {
                    replica: replica as u16,
                    key: key as u32,
                    value: value.clone(),
                });
            }
        }
    }
    finals
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

/// Partitions, crashes and delays until the clients are done, then heals.
async fn nemesis_task(
    shared: Arc<Shared>,
    service: Arc<tokio::sync::Mutex<Option<Service>>>,
    faults: HttpFaults,
    step: Duration,
    seed: u64,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, 2));
    let mut log = Vec::new();
    let at = |shared: &Shared| shared.start.elapsed().as_secs_f64();
    if faults.delay {
        shared.delay.store(true, Ordering::Relaxed);
        log.push(format!("{:.1}s client-side delays on", at(&shared)));
    }
    let mut actions = Vec::new();
    if faults.partition {
        actions.push("partition");
    }
    if faults.crash {
        actions.push("crash");
    }
    let replicas = shared.permits.len();
    let finished = |done: &tokio::sync::watch::Receiver<bool>| *done.borrow();
    while !actions.is_empty() && !finished(&done) {
        tokio::select! {
            _ = tokio::time::sleep(step / 2) => {}
            _ = done.changed() => break,
        }
        match actions[rng.random_range(0..actions.len())] {
            "partition" if replicas > 1 => {
                let Some((partition, heal)) = shared.requests.admin.as_ref() else {
                    break;
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
                let failed = admin_all(&shared, partition, |r| {
                    (0..replicas).filter(|o| group[*o] != group[r]).collect()
                })
                .await;
                log.push(format!(
                    "{:.1}s partition {side:?} from the rest{}",
                    at(&shared),
                    failures(&failed)
                ));
                tokio::select! {
                    _ = tokio::time::sleep(step) => {}
                    _ = done.changed() => {}
                }
                let failed = admin_all(&shared, heal, |_| Vec::new()).await;
                log.push(format!("{:.1}s healed{}", at(&shared), failures(&failed)));
            }
            "crash" => {
                let mut guard = service.lock().await;
                if let Some(s) = guard.as_mut() {
                    log.push(format!(
                        "{:.1}s crash the service (kill -9) and restart it",
                        at(&shared)
                    ));
                    match s.crash_and_restart().await {
                        Ok(()) => {
                            *shared.urls.write() = s.urls.clone();
                            log.push(format!("{:.1}s service healthy again", at(&shared)));
                        }
                        Err(e) => log.push(format!("{:.1}s restart failed: {e}", at(&shared))),
                    }
                }
            }
            _ => break,
        }
    }
    shared.delay.store(false, Ordering::Relaxed);
    if let (true, Some((_, heal))) = (faults.partition, shared.requests.admin.as_ref()) {
        let failed = admin_all(&shared, heal, |_| Vec::new()).await;
        log.push(format!(
            "{:.1}s final heal{}",
            at(&shared),
            failures(&failed)
        ));
    }
    log
}

fn failures(failed: &[String]) -> String {
    if failed.is_empty() {
        String::new()
    } else {
        format!(" (failed: {})", failed.join("; "))
    }
}
