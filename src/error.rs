//! Typed errors of the library. The CLI maps each to an exit code.

use std::path::PathBuf;

/// Everything that can go wrong outside of a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad flag value or configuration (exit 3).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A history file line that cannot be parsed (exit 3).
    #[error("{path}:{line}: {message}")]
    HistoryLine {
        /// File being read.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },

    /// A history that parses but is not coherent (exit 3).
    #[error("{path}: {message}")]
    History {
        /// File being read.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// The target misbehaved: could not be started, reached, or answered garbage (exit 4).
    #[error("target error in {component}: {message}")]
    Target {
        /// Which part failed (replica, process, connection).
        component: String,
        /// What happened.
        message: String,
    },

    /// SIGINT or SIGTERM stopped the run before any operation was sent
    /// (exit 2: nothing was judged).
    #[error("interrupted by {signal} {phase}; no operation was sent")]
    Interrupted {
        /// Which signal.
        signal: String,
        /// What the run was doing, e.g. `while node n2 started`.
        phase: String,
    },

    /// File system trouble (exit 3: it is the user's output or input path).
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Target { .. } => crate::verdict::EXIT_TARGET_ERROR,
            Error::Interrupted { .. } => crate::verdict::EXIT_UNKNOWN,
            _ => crate::verdict::EXIT_USAGE,
        }
    }
}

/// Library result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
