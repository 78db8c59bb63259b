//! `HttpTargetConfig`: how workload ops map onto a service's HTTP API. It
//! deserialises from a TOML table (the whole `--http-config` file today,
//! `[target.http]` of a scenario file later) and rejects unknown keys.

use super::template::{BodyTemplate, Template};
use crate::error::{Error, Result};
use converge_models::Workload;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The HTTP target's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTargetConfig {
    /// Base URLs of the replicas (`http://host:port`). May be empty when
    /// `start.expect_replicas` is set: the URLs are then read from the
    /// service's output.
    #[serde(default)]
    pub replicas: Vec<String>,
    /// Datatype: g-counter, pn-counter, g-set, 2p-set, or-set, lww-register, mv-register.
    pub workload: String,
    /// Keys (objects); more than one only for counters and g-set, whose
    /// black-box checks are per key.
    #[serde(default = "one")]
    pub keys: u32,
    /// Prefix of the key names sent (`{key}` is prefix, seed, a per-run
    /// nonce and the key index, so runs never share keys).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Per-request timeout, ms; past it the op is `info`.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Fraction of writes sent a second time with the same op id
    /// (idempotency key), as client and webhook retries do.
    #[serde(default)]
    pub retry_fraction: f64,
    /// A 5xx answer means the write did not happen (`fail`), not `info`.
    #[serde(default)]
    pub definite_5xx: bool,
    /// Speak HTTP/2 without TLS (prior knowledge, h2c).
    #[serde(default)]
    pub http2: bool,
    /// Most connections (and requests in flight) per replica.
    #[serde(default = "default_max_connections")]
    pub max_connections_per_host: usize,
    /// Final reads must agree and stay put this long, ms.
    #[serde(default = "default_quiet_window_ms")]
    pub quiet_window_ms: u64,
    /// Bound on the final wait, ms; past it the verdict is unknown.
    #[serde(default = "default_settle_limit_ms")]
    pub settle_limit_ms: u64,
    /// Replicas that disagree while no value changes this long have
    /// diverged, ms (long enough for the service's slowest anti-entropy).
    /// Default: 10 s, or `settle_limit_ms` when that is shorter.
    #[serde(default)]
    pub stall_window_ms: Option<u64>,
    /// Length of one nemesis step (a partition lasts one step), ms.
    #[serde(default = "default_nemesis_step_ms")]
    pub nemesis_step_ms: u64,
    /// Start the service: converge runs it, waits for health, samples it,
    /// and stops it at the end.
    #[serde(default)]
    pub start: Option<StartConfig>,
    /// One request template per op kind.
    pub ops: OpsConfig,
    /// Admin endpoints the nemesis partitions and heals through.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
}

/// How converge starts the service.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartConfig {
    /// Program and arguments (no shell). `{converge}` is this converge
    /// binary; `{out}` the run's output directory.
    pub command: Vec<String>,
    /// Health URL: absolute, or a path tried on every replica.
    pub health_url: String,
    /// With no `replicas` listed: how many `listening on URL` lines to read
    /// from the service's standard output.
    #[serde(default)]
    pub expect_replicas: Option<usize>,
    /// How long the service may take to become healthy, ms.
    #[serde(default = "default_startup_ms")]
    pub startup_timeout_ms: u64,
    /// Between SIGTERM and SIGKILL at the end, ms.
    #[serde(default = "default_grace_ms")]
    pub grace_ms: u64,
}

/// A request template.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path (appended to the replica's base URL), with placeholders.
    pub path: String,
    /// Headers, values with placeholders.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body; strings are templates.
    #[serde(default)]
    pub body: Option<Value>,
    /// Reads: JSON pointer to the value in the response.
    #[serde(default)]
    pub value: Option<String>,
    /// Reads: JSON pointer to the causal context (MV-register) in the response.
    #[serde(default)]
    pub context: Option<String>,
    /// LWW writes: JSON pointer to the write's timestamp in the response.
    #[serde(default)]
    pub stamp: Option<String>,
}

/// Templates per op kind; the workload says which are required.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// Counter increment (fields: key, delta, op_id, replica).
    #[serde(default)]
    pub increment: Option<RequestConfig>,
    /// Set add (key, element, op_id, replica).
    #[serde(default)]
    pub add: Option<RequestConfig>,
    /// Set remove (key, element, op_id, replica).
    #[serde(default)]
    pub remove: Option<RequestConfig>,
    /// Register write (key, value, context, op_id, replica).
    #[serde(default)]
    pub write: Option<RequestConfig>,
    /// Read (key, replica).
    pub read: RequestConfig,
}

/// The nemesis's admin endpoints.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Sent to every replica; `{blocked}` is the list of replica indices it
    /// must not reach, `{replica}` its own index.
    pub partition: RequestConfig,
    /// Sent to every replica to lift the partition (`{replica}`).
    pub heal: RequestConfig,
}

fn one() -> u32 {
    1
}
fn default_key_prefix() -> String {
    "converge-".into()
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_max_connections() -> usize {
    256
}
fn default_quiet_window_ms() -> u64 {
    1000
}
fn default_settle_limit_ms() -> u64 {
    crate::target::settle::DEFAULT_LIMIT.as_millis() as u64
}

fn default_nemesis_step_ms() -> u64 {
    400
}
fn default_startup_ms() -> u64 {
    20_000
}
fn default_grace_ms() -> u64 {
    5000
}
fn default_method() -> String {
    "POST".into()
}

/// The kinds of request a run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Counter increment.
    Increment,
    /// Set add.
    Add,
    /// Set remove.
    Remove,
    /// Register write.
    Write,
    /// Read.
    Read,
    /// Admin: partition.
    Partition,
    /// Admin: heal.
    Heal,
}

impl OpKind {
    /// Name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Increment => "ops.increment",
            OpKind::Add => "ops.add",
            OpKind::Remove => "ops.remove",
            OpKind::Write => "ops.write",
            OpKind::Read => "ops.read",
            OpKind::Partition => "admin.partition",
            OpKind::Heal => "admin.heal",
        }
    }

    /// The fields its templates may name.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            OpKind::Increment => &["key", "delta", "op_id", "replica"],
            OpKind::Add | OpKind::Remove => &["key", "element", "op_id", "replica"],
            OpKind::Write => &["key", "value", "context", "op_id", "replica"],
            OpKind::Read => &["key", "replica"],
            OpKind::Partition => &["blocked", "replica"],
            OpKind::Heal => &["replica"],
        }
    }
}

/// A request template, parsed and checked.
#[derive(Clone, Debug)]
pub struct Request {
    /// Which op it serves.
    pub kind: OpKind,
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path template.
    pub path: Template,
    /// The path as written in the configuration, to name the template in errors.
    pub source: String,
    /// Header templates.
    pub headers: Vec<(reqwest::header::HeaderName, Template)>,
    /// Body template.
    pub body: Option<BodyTemplate>,
    /// Pointer to a read's value.
    pub value: Option<String>,
    /// Pointer to a read's causal context.
    pub context: Option<String>,
    /// Pointer to a write's timestamp.
    pub stamp: Option<String>,
}

fn pointer(kind: OpKind, what: &str, p: &Option<String>) -> Result<Option<String>> {
    match p {
        Some(p) if !p.is_empty() && !p.starts_with('/') => Err(Error::Config(format!(
            "{}.{what}: \"{p}\" is not a JSON pointer (it starts with '/', e.g. \"/value\")",
            kind.name()
        ))),
        other => Ok(other.clone()),
    }
}

impl Request {
    /// Parses a template for an op kind, naming the op and field on error.
    pub fn parse(kind: OpKind, config: &RequestConfig) -> Result<Request> {
        let err = |what: &str, e: String| Error::Config(format!("{}.{what}: {e}", kind.name()));
        let method = reqwest::Method::from_bytes(config.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                err(
                    "method",
                    format!("'{}' is not an HTTP method", config.method),
                )
            })?;
        if !config.path.starts_with('/') {
            return Err(err(
                "path",
                format!("\"{}\" must start with '/'", config.path),
            ));
        }
        let path = Template::parse(&config.path, kind.fields()).map_err(|e| err("path", e))?;
        let mut headers = Vec::new();
        for (name, value) in &config.headers {
            crate::secrets::register_header(name, value);
            let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err("headers", format!("'{name}' is not a header name")))?;
            let template = Template::parse(value, kind.fields())
                .map_err(|e| err(&format!("headers.{name}"), e))?;
            headers.push((header, template));
        }
        let body = config
            .body
            .as_ref()
            .map(|b| BodyTemplate::parse(b, kind.fields()))
            .transpose()
            .map_err(|e| err("body", e))?;
        Ok(Request {
            kind,
            method,
            path,
            source: config.path.clone(),
            headers,
            body,
            value: pointer(kind, "value", &config.value)?,
            context: pointer(kind, "context", &config.context)?,
            stamp: pointer(kind, "stamp", &config.stamp)?,
        })
    }
}

/// The templates a run uses, parsed.
#[derive(Clone, Debug)]
pub struct Requests {
    /// Increment, add or write (the workload's update).
    pub update: Request,
    /// Remove (2P-Set and OR-Set).
    pub remove: Option<Request>,
    /// Read.
    pub read: Request,
    /// Partition and heal.
    pub admin: Option<(Request, Request)>,
}

impl HttpTargetConfig {
    /// The settle rule of the final phase (`quiet_window_ms`,
    /// `stall_window_ms`, `settle_limit_ms`).
    pub fn settle_rule(&self) -> crate::target::settle::SettleRule {
        use std::time::Duration;
        let limit = Duration::from_millis(self.settle_limit_ms);
        crate::target::settle::SettleRule {
            quiet: Duration::from_millis(self.quiet_window_ms),
            stall: self.stall_window_ms.map_or_else(
                || crate::target::settle::default_stall(limit),
                Duration::from_millis,
            ),
            limit,
        }
    }

    /// Reads and checks a TOML file.
    pub fn load(path: &Path) -> Result<HttpTargetConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: HttpTargetConfig =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        config.validate()?;
        Ok(config)
    }

    /// The datatype the workload name stands for.
    pub fn datatype(&self) -> Result<Workload> {
        match Workload::from_name(&self.workload) {
            Some(
                w @ (Workload::GCounter
                | Workload::PnCounter
                | Workload::GSet
                | Workload::TwoPSet
                | Workload::OrSet
                | Workload::LwwRegister
                | Workload::MvRegister),
            ) => Ok(w),
            _ => Err(Error::Config(format!(
                "workload: '{}' is not one the http target drives (g-counter, pn-counter, g-set, 2p-set, or-set, lww-register, mv-register)",
                self.workload
            ))),
        }
    }

    /// Parses every template and checks ranges, naming the key at fault.
    pub fn requests(&self) -> Result<Requests> {
        let workload = self.datatype()?;
        let need = |kind: OpKind, r: &Option<RequestConfig>| {
            r.as_ref()
                .ok_or_else(|| {
                    Error::Config(format!(
                        "the {} workload needs [{}]",
                        self.workload,
                        kind.name()
                    ))
                })
                .and_then(|r| Request::parse(kind, r))
        };
        let (update, remove) = match workload {
            Workload::GCounter | Workload::PnCounter => {
                (need(OpKind::Increment, &self.ops.increment)?, None)
            }
            Workload::GSet => (need(OpKind::Add, &self.ops.add)?, None),
            Workload::TwoPSet | Workload::OrSet => (
                need(OpKind::Add, &self.ops.add)?,
                Some(need(OpKind::Remove, &self.ops.remove)?),
            ),
            _ => (need(OpKind::Write, &self.ops.write)?, None),
        };
        let read = Request::parse(OpKind::Read, &self.ops.read)?;
        if read.value.is_none() {
            return Err(Error::Config(
                "ops.read.value: a JSON pointer to the value in the read's response is required"
                    .into(),
            ));
        }
        let admin = self
            .admin
            .as_ref()
            .map(|a| {
                Ok::<_, Error>((
                    Request::parse(OpKind::Partition, &a.partition)?,
                    Request::parse(OpKind::Heal, &a.heal)?,
                ))
            })
            .transpose()?;
        Ok(Requests {
            update,
            remove,
            read,
            admin,
        })
    }

    /// Checks ranges and templates.
    pub fn validate(&self) -> Result<()> {
        for url in &self.replicas {
            crate::secrets::register_in(url);
        }
        let bad = |m: String| Err(Error::Config(m));
        let workload = self.datatype()?;
        self.requests()?;
        if self.keys == 0 || self.keys > 1_000_000 {
            return bad(format!("keys must be in 1..=1000000, got {}", self.keys));
        }
        if self.keys > 1
            && !matches!(
                workload,
                Workload::GCounter | Workload::PnCounter | Workload::GSet
            )
        {
            return bad(format!(
                "keys = {}: the black-box checks of {} judge one key; use keys = 1",
                self.keys, self.workload
            ));
        }
        if !(0.0..=1.0).contains(&self.retry_fraction) {
            return bad(format!(
                "retry_fraction must be in [0, 1], got {}",
                self.retry_fraction
            ));
        }
        if self.timeout_ms == 0 {
            return bad("timeout_ms must be positive".into());
        }
        if self.max_connections_per_host == 0 {
            return bad("max_connections_per_host must be positive".into());
        }
        if self.nemesis_step_ms == 0 {
            return bad("nemesis_step_ms must be positive".into());
        }
        self.settle_rule()
            .validate_as(&crate::target::settle::HTTP_KEY_NAMES)?;
        if let Some(start) = &self.start {
            if start.startup_timeout_ms == 0 {
                return bad("start.startup_timeout_ms must be positive".into());
            }
        }
        for url in &self.replicas {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return bad(format!("replicas: '{url}' is not an http:// URL"));
            }
        }
        match &self.start {
            None if self.replicas.is_empty() => {
                bad("replicas: list the base URLs, or give [start] with expect_replicas".into())
            }
            Some(s) if s.command.is_empty() => bad("start.command is empty".into()),
            Some(s) if self.replicas.is_empty() && s.expect_replicas.unwrap_or(0) == 0 => bad(
                "start.expect_replicas: needed (>= 1) when replicas is empty, to read the URLs the service prints".into(),
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
[target.http]
workload = "g-counter"
replicas = ["http://127.0.0.1:1"]

[target.http.ops.increment]
path = "/c/{key}"
body = { delta = "{delta}" }

[target.http.ops.read]
method = "GET"
path = "/c/{key}"
value = "/value"
"#;

    #[derive(Deserialize)]
    struct Scenario {
        target: Targets,
    }

    #[derive(Deserialize)]
    struct Targets {
        http: HttpTargetConfig,
    }

    #[test]
    fn mounts_as_a_target_http_table_of_a_scenario_file() {
        let scenario: Scenario = toml::from_str(TABLE).expect("parses");
        let config = scenario.target.http;
        config.validate().expect("valid");
        assert_eq!(config.keys, 1);
        assert_eq!(config.timeout_ms, 2000);
        let requests = config.requests().expect("templates");
        assert_eq!(requests.update.kind, OpKind::Increment);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_rejected_naming_them() {
        let typo = TABLE.replace("workload =", "workloda = \"x\"\nworkload =");
        let e = toml::from_str::<Scenario>(&typo)
            .err()
            .expect("rejected")
            .to_string();
        assert!(e.contains("workloda"), "{e}");
        let typed = TABLE.replace("[\"http://127.0.0.1:1\"]", "\"http://127.0.0.1:1\"");
        let e = toml::from_str::<Scenario>(&typed)
            .err()
            .expect("rejected")
            .to_string();
        assert!(e.contains("replicas"), "{e}");
    }
}
