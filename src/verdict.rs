//! Tri-state verdicts and the exit codes they map to.

use serde::{Deserialize, Serialize};

/// Exit code: every check valid.
pub const EXIT_VALID: i32 = 0;
/// Exit code: a violation was found.
pub const EXIT_INVALID: i32 = 1;
/// Exit code: could not decide.
pub const EXIT_UNKNOWN: i32 = 2;
/// Exit code: usage, configuration or input error.
pub const EXIT_USAGE: i32 = 3;
/// Exit code: the target could not be started, reached, or answered garbage.
pub const EXIT_TARGET_ERROR: i32 = 4;

/// Outcome of a check. `Invalid` dominates `Unknown`, which dominates `Valid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The property holds.
    Valid,
    /// The evidence does not decide (for example, no quiescence).
    Unknown,
    /// The property is violated.
    Invalid,
}

impl Verdict {
    /// Combines two verdicts: the worse one wins.
    pub fn and(self, other: Verdict) -> Verdict {
        self.max(other)
    }

    /// The exit code for this verdict.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Valid => EXIT_VALID,
            Verdict::Invalid => EXIT_INVALID,
            Verdict::Unknown => EXIT_UNKNOWN,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Unknown => "unknown",
            Verdict::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
