//! Configuration mistakes seen from the answers of a black-box target.
//!
//! A read query or JSON pointer that never yields a value, or writes that
//! mostly fail with one and the same error (a missing table, a wrong path),
//! say nothing about the target's data: the run ends with a configuration
//! error (exit 3) naming the statement or template, or a target error
//! (exit 4) when the one error is the target's (connections refused, 5xx).
//! The history recorded so far stays on disk.

use crate::error::Error;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Fewest failures of one cause that can make a run a configuration error:
/// a handful of failed writes is a finding, not a pattern.
pub const MIN_FAILURES: u64 = 5;

/// Whose mistake a failure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Blame {
    /// The user's statement or template (a missing table, HTTP 404).
    Config,
    /// The target (a refused connection, HTTP 503, a timeout).
    Target,
}

/// Counts writes and their failures by cause, from any number of tasks.
#[derive(Debug, Default)]
pub struct FailureTally {
    writes: AtomicU64,
    causes: Mutex<HashMap<String, (u64, Blame)>>,
}

/// Most distinct causes kept; past it new causes are not counted (writes
/// failing in thousands of different ways are no single mistake).
const MAX_CAUSES: usize = 256;

impl FailureTally {
    /// A write was attempted.
    pub fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// A write failed (or its outcome is unknown) because of `cause`.
    pub fn failed(&self, cause: String, blame: Blame) {
        let mut causes = self.causes.lock();
        if causes.len() >= MAX_CAUSES && !causes.contains_key(&cause) {
            return;
        }
        causes.entry(cause).or_insert((0, blame)).0 += 1;
    }

    /// The error to end the run with when more than half of all writes
    /// failed with one cause; `component` names the target for exit 4.
    pub fn verdict(&self, component: &str) -> Option<Error> {
        let writes = self.writes.load(Ordering::Relaxed);
        let causes = self.causes.lock();
        let (cause, (count, blame)) = causes.iter().max_by_key(|(c, (n, _))| (*n, *c))?;
        judge(writes, cause, *count, *blame, component)
    }
}

/// The rule, over plain figures: `count` of `writes` failed with `cause`.
pub fn judge(writes: u64, cause: &str, count: u64, blame: Blame, component: &str) -> Option<Error> {
    if count < MIN_FAILURES || count * 2 <= writes {
        return None;
    }
    let what = format!("{count} of {writes} writes failed with the same error: {cause}");
    Some(match blame {
        Blame::Config => Error::Config(format!(
            "{what} (a configuration mistake, not a verdict about the data)"
        )),
        Blame::Target => Error::Target {
            component: component.to_string(),
            message: what,
        },
    })
}

/// Counts reads that yielded a value and answered reads that did not.
#[derive(Debug, Default)]
pub struct ReadTally {
    yielded: AtomicU64,
    empty: AtomicU64,
    first_why: Mutex<Option<String>>,
}

impl ReadTally {
    /// A read answered and yielded a value.
    pub fn yielded(&self) {
        self.yielded.fetch_add(1, Ordering::Relaxed);
    }

    /// A read was answered but nothing in the answer was a value.
    pub fn empty(&self, why: &str) {
        self.empty.fetch_add(1, Ordering::Relaxed);
        self.first_why.lock().get_or_insert_with(|| why.to_string());
    }

    /// Whether answered reads so far never yielded a value.
    pub fn never_yielded(&self) -> bool {
        self.empty.load(Ordering::Relaxed) > 0 && self.yielded.load(Ordering::Relaxed) == 0
    }

    /// A configuration error naming `what` (the read template or query)
    /// when answered reads never yielded a value.
    pub fn verdict(&self, what: &str) -> Option<Error> {
        if !self.never_yielded() {
            return None;
        }
        let empty = self.empty.load(Ordering::Relaxed);
        Some(Error::Config(format!(
            "{what} never yielded a value in {empty} answered read(s) (first: {})",
            self.first_why.lock().as_deref().unwrap_or("?")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_writes_failing_alike_is_a_config_error_naming_the_cause() {
        let tally = FailureTally::default();
        for i in 0..100 {
            tally.write();
            if i < 93 {
                tally.failed(
                    "INSERT INTO missing: no such table: missing".into(),
                    Blame::Config,
                );
            }
        }
        let e = tally.verdict("sql replica r0").expect("config error");
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("93 of 100"), "{e}");
        assert!(e.to_string().contains("INSERT INTO missing"), "{e}");
    }

    #[test]
    fn a_minority_or_scattered_failures_are_findings_not_config_errors() {
        let tally = FailureTally::default();
        for i in 0..100 {
            tally.write();
            if i < 50 {
                tally.failed("HTTP 404".into(), Blame::Config);
            }
        }
        assert!(tally.verdict("x").is_none(), "exactly half is not most");
        let scattered = FailureTally::default();
        for i in 0..100 {
            scattered.write();
            scattered.failed(format!("conflict {}", i % 3), Blame::Config);
        }
        assert!(scattered.verdict("x").is_none());
        assert!(judge(4, "x", 4, Blame::Config, "x").is_none(), "too few");
    }

    #[test]
    fn the_targets_own_failures_are_target_errors() {
        let e = judge(10, "HTTP 503", 9, Blame::Target, "replica 0").expect("error");
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("replica 0"), "{e}");
    }

    #[test]
    fn a_read_that_never_yields_is_a_config_error_one_that_did_is_not() {
        let never = ReadTally::default();
        never.empty("nothing at /valu");
        never.empty("nothing at /valu");
        let e = never.verdict("ops.read value = \"/valu\"").expect("error");
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("/valu") && e.to_string().contains("2 answered"));
        let sometimes = ReadTally::default();
        sometimes.empty("nothing at /value");
        sometimes.yielded();
        assert!(sometimes.verdict("x").is_none());
        assert!(
            ReadTally::default().verdict("x").is_none(),
            "no answer at all"
        );
    }
}
