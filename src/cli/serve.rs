//! `converge serve`: run the reference CRDT service until SIGTERM.

use crate::serve::{run, ServeConfig, ServeFault};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `converge serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Replicas, each on its own port with its own database.
    #[arg(long, default_value_t = 3)]
    pub replicas: u16,
    /// Port of replica 0 (replica i listens on PORT + i); 0 picks free ports.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Directory of the replicas' SQLite files (default: a temporary
    /// directory removed at exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A postgres:// URL instead of SQLite: replica i uses the schema
    /// `<schema-prefix>_r<i>`.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Prefix of the Postgres schemas.
    #[arg(long, default_value = "converge_serve")]
    pub schema_prefix: String,
    /// Start from empty databases (drops existing files or schemas).
    #[arg(long)]
    pub reset: bool,
    /// Switch on a known bug.
    #[arg(long, value_enum)]
    pub fault: Option<ServeFault>,
    /// Seed (printed; jitters the anti-entropy schedule).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Anti-entropy period, ms.
    #[arg(long, default_value_t = 50)]
    pub anti_entropy_ms: u64,
}

/// Runs `converge serve` and returns the exit code.
pub fn execute(args: ServeArgs) -> anyhow::Result<i32> {
    let config = ServeConfig {
        replicas: args.replicas,
        host: args.host,
        port: args.port,
        data_dir: args.data_dir,
        database_url: args.database_url,
        schema_prefix: args.schema_prefix,
        reset: args.reset,
        fault: args.fault,
        seed: args.seed,
        anti_entropy: Duration::from_millis(args.anti_entropy_ms),
    };
    match run(&config) {
        Ok(()) => Ok(0),
        Err(e) => Ok(super::check::fail(&e)),
    }
}
