//! `[target.sql]`: what the user writes in a scenario, and its validation.

use super::template::{mentions, names, returns_rows};
use super::Backend;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// Fields of an operation a statement may name.
pub const OP_FIELDS: [&str; 9] = [
    "key", "delta", "element", "value", "op_id", "replica", "ts", "clock", "process",
];
/// Fields a read query may name.
pub const READ_FIELDS: [&str; 3] = ["key", "replica", "process"];
/// Fields a merge statement may name besides the state query's columns.
pub const MERGE_FIELDS: [&str; 2] = ["replica", "source"];

/// One statement: the same text for every backend, or one per backend.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Sql {
    /// Backend-neutral SQL.
    Same(String),
    /// Backend-specific SQL; a backend without a variant cannot run the scenario.
    PerBackend(PerBackend),
}

/// Per-backend text.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerBackend {
    /// For SQLite.
    pub sqlite: Option<String>,
    /// For PostgreSQL.
    pub postgres: Option<String>,
}

impl Sql {
    /// The text for `backend`, if the scenario has one.
    pub fn for_backend(&self, backend: Backend) -> Option<&str> {
        match self {
            Sql::Same(s) => Some(s),
            Sql::PerBackend(p) => match backend {
                Backend::Sqlite => p.sqlite.as_deref(),
                Backend::Postgres => p.postgres.as_deref(),
            },
        }
    }

    fn texts(&self) -> Vec<&str> {
        match self {
            Sql::Same(s) => vec![s],
            Sql::PerBackend(p) => p
                .sqlite
                .iter()
                .chain(&p.postgres)
                .map(|s| s.as_str())
                .collect(),
        }
    }
}

/// `[target.sql]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSpec {
    /// Database URL; `${VAR}` is taken from the environment. Absent or empty:
    /// a fresh SQLite file under the run's output directory.
    pub url: Option<String>,
    /// Backends on which the scenario's expected verdict holds (default: both).
    pub backends: Option<Vec<Backend>>,
    /// PostgreSQL schema converge creates (dropping any old one) and runs in;
    /// replica i of several uses `<schema>_r<i>`. Default `converge`.
    pub schema: Option<String>,
    /// Connections per replica (default: see the README).
    pub pool_size: Option<u32>,
    /// `none` (each statement commits on its own), or on PostgreSQL `read
    /// committed`, `repeatable read`, `serializable`; on SQLite `deferred`,
    /// `immediate`, `exclusive`. A string, or `{ sqlite = .., postgres = .. }`.
    pub isolation: Option<Sql>,
    /// A statement running longer is cancelled and the op recorded `info` (PostgreSQL).
    pub statement_timeout_ms: Option<u64>,
    /// Run once on every replica before the writers start.
    #[serde(default)]
    pub setup: Vec<Sql>,
    /// Statements per operation.
    pub ops: OpsSpec,
    /// How a key is read.
    pub read: ReadSpec,
    /// How state moves between replicas (required with several replicas).
    pub merge: Option<MergeSpec>,
}

/// `[target.sql.ops]`: statements run, in one transaction, per operation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsSpec {
    /// Counter increment (`:delta`).
    pub increment: Option<Vec<Sql>>,
    /// Set add (`:element`).
    pub add: Option<Vec<Sql>>,
    /// Set remove (`:element`).
    pub remove: Option<Vec<Sql>>,
    /// Register write (`:value`, `:ts`, `:clock`).
    pub write: Option<Vec<Sql>>,
}

/// `[target.sql.read]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSpec {
    /// The query (`:key`).
    pub sql: Sql,
    /// Column holding the value (counters: one row; sets and registers: one row per element).
    pub column: String,
    /// MV-register: column holding each sibling's vector clock (JSON object).
    pub clock_column: Option<String>,
}

/// `[target.sql.merge]`: anti-entropy from one replica to another.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeSpec {
    /// Query run on the source replica: its whole mergeable state.
    pub state: Sql,
    /// Statements run on the destination, in one transaction, per state row;
    /// they name the state's columns.
    pub apply: Vec<Sql>,
}

fn where_in(text: &str, needle: &str, path: &Path) -> String {
    let first = needle
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(needle);
    match text.find(first.trim()) {
        Some(at) => {
            let (line, col) = crate::scenario::line_col(text, at);
            format!("{}:{line}:{col}", path.display())
        }
        None => path.display().to_string(),
    }
}

impl SqlSpec {
    /// The statements of one op kind by its table key.
    pub fn op(&self, name: &str) -> Option<&Vec<Sql>> {
        match name {
            "increment" => self.ops.increment.as_ref(),
            "add" => self.ops.add.as_ref(),
            "remove" => self.ops.remove.as_ref(),
            "write" => self.ops.write.as_ref(),
            _ => None,
        }
    }

    /// Refuses any template that names a field the op does not have (or a
    /// column no earlier query of the same op mentions), naming the table
    /// key and the file:line.
    pub fn validate_templates(&self, text: &str, path: &Path) -> Result<()> {
        let check = |key: &str, stmts: &[&Sql], fixed: &[&str], columns_from: &[&str]| {
            let mut earlier: Vec<&str> = columns_from.to_vec();
            for stmt in stmts {
                for sql in stmt.texts() {
                    for name in names(sql) {
                        let known = fixed.contains(&name.as_str())
                            || earlier.iter().any(|q| mentions(q, &name));
                        if !known {
                            return Err(Error::Config(format!(
                                "scenario {}: {key}: parameter :{name} is not a field of this operation (fields: {}){}",
                                where_in(text, sql, path),
                                fixed.join(", "),
                                if columns_from.is_empty() && fixed == OP_FIELDS {
                                    ", nor a column of an earlier SELECT in it"
                                } else {
                                    ""
                                }
                            )));
                        }
                    }
                }
                for sql in stmt.texts() {
                    if returns_rows(sql) {
                        earlier.push(sql);
                    }
                }
            }
            Ok(())
        };
        let setup: Vec<&Sql> = self.setup.iter().collect();
        check("target.sql.setup", &setup, &[], &[])?;
        for name in ["increment", "add", "remove", "write"] {
            if let Some(stmts) = self.op(name) {
                let stmts: Vec<&Sql> = stmts.iter().collect();
                check(&format!("target.sql.ops.{name}"), &stmts, &OP_FIELDS, &[])?;
            }
        }
        check("target.sql.read.sql", &[&self.read.sql], &READ_FIELDS, &[])?;
        if let Some(merge) = &self.merge {
            check("target.sql.merge.state", &[&merge.state], &[], &[])?;
            let state = merge.state.texts();
            let apply: Vec<&Sql> = merge.apply.iter().collect();
            check("target.sql.merge.apply", &apply, &MERGE_FIELDS, &state)?;
        }
        Ok(())
    }
}

/// `${VAR}` in a URL, from the environment (unset: empty).
pub fn expand_env(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                let var = &rest[start + 2..start + end];
                out.push_str(&std::env::var(var).unwrap_or_default());
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A URL or libpq DSN with its secrets masked ([`crate::secrets::mask`]),
/// fit for logs and reports.
pub fn redact_url(url: &str) -> String {
    crate::secrets::mask(url).into_owned()
}

/// The password inside a URL (userinfo or `password=` parameter) or a libpq
/// DSN, if any (to scrub it from driver messages); registered with
/// [`crate::secrets::register`] so every output masks it.
pub fn password_of(url: &str) -> Option<String> {
    crate::secrets::register_in(url);
    crate::secrets::secrets_in(url)
        .into_iter()
        .find(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_and_found() {
        let url = "postgres://alice:s3cr:et@db.example:5432/app?sslmode=disable";
        assert_eq!(
            redact_url(url),
            "postgres://alice:***@db.example:5432/app?sslmode=disable"
        );
        assert_eq!(password_of(url).as_deref(), Some("s3cr:et"));
        assert_eq!(redact_url("postgres://bob@h/db"), "postgres://bob@h/db");
        assert_eq!(password_of("postgres://bob@h/db"), None);
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn environment_placeholders_expand() {
        assert_eq!(expand_env("${CONVERGE_SURELY_UNSET_VAR}"), "");
        assert_eq!(expand_env("a${CONVERGE_SURELY_UNSET_VAR}b"), "ab");
        assert_eq!(expand_env("plain"), "plain");
    }
}
