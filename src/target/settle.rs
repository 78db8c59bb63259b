//! The settle rule every black-box target (HTTP, SQL, Maelstrom) shares.
//!
//! After the nemesis heals, the target polls a final read of every key on
//! every replica until this rule decides:
//!
//! - **converged**: every replica answered, they agree on every key, and no
//!   value has changed for the quiet window;
//! - **diverged** (invalid): every replica answered, they disagree, and no
//!   value has changed for the stall window. Whether the nodes still gossip
//!   does not matter: a node that never gossips out, or a counter that
//!   never replicates its decrements, reads the same forever;
//! - **still changing** at the settle limit: unknown, with how far apart
//!   the replicas were.
//!
//! The stall window is long (10 s by default) because a correct service may
//! run anti-entropy every few seconds; it never exceeds the settle limit,
//! whose default leaves several stall windows of room.
//!
//! [`Settler`] is a pure state machine over a sequence of polls stamped
//! with their time since the heal, so the rule is tested without a clock.

use crate::checker::{Check, Finding};
use crate::error::{Error, Result};
use crate::history::Quiescence;
use converge_models::Value;
use rustc_hash::FxHashSet;
use std::time::Duration;

/// Default quiet window: agreeing values must stay put this long.
pub const DEFAULT_QUIET: Duration = Duration::from_secs(1);
/// Default stall window: disagreeing values unchanged this long have diverged.
pub const DEFAULT_STALL: Duration = Duration::from_secs(10);
/// Default settle limit: past it, values still changing are unknown.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(60);

/// The three bounds of the settle rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleRule {
    /// Agreeing values unchanged this long have converged.
    pub quiet: Duration,
    /// Disagreeing values unchanged this long have diverged.
    pub stall: Duration,
    /// Bound on the whole wait after the heal.
    pub limit: Duration,
}

impl Default for SettleRule {
    fn default() -> Self {
        SettleRule {
            quiet: DEFAULT_QUIET,
            stall: DEFAULT_STALL,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// The stall window when none is given: [`DEFAULT_STALL`], or the settle
/// limit when that is shorter.
pub fn default_stall(limit: Duration) -> Duration {
    DEFAULT_STALL.min(limit)
}

/// How the user gave one setting of the rule, so that a message names it
/// and says its value in the unit it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettleSetting {
    /// A flag, or the scenario key of the same name: seconds.
    Seconds(&'static str),
    /// A key of `[target.http]`: milliseconds.
    Millis(&'static str),
}

impl SettleSetting {
    /// `--settle-limit 30 (seconds)` or `settle_limit_ms = 30000`.
    fn show(self, value: Duration) -> String {
        match self {
            SettleSetting::Seconds(flag) => format!("{flag} {} (seconds)", value.as_secs_f64()),
            SettleSetting::Millis(key) => format!("{key} = {}", value.as_millis()),
        }
    }

    /// A setting out of range: `v` is in seconds, the message in the unit given.
    fn out_of_range(self, v: f64) -> Error {
        Error::Config(match self {
            SettleSetting::Seconds(flag) => {
                format!("{flag} must be seconds in [0, 86400], got {v}")
            }
            SettleSetting::Millis(key) => format!(
                "{key} must be milliseconds in [0, 86400000], got {}",
                (v * 1000.0).round()
            ),
        })
    }
}

/// The names of the rule's three settings, as the user gave them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleNames {
    /// The quiet window.
    pub quiet: SettleSetting,
    /// The stall window.
    pub stall: SettleSetting,
    /// The settle limit.
    pub limit: SettleSetting,
}

/// The flags (`--quiet-window`, ...; scenario keys of the same names), in seconds.
pub const FLAG_NAMES: SettleNames = SettleNames {
    quiet: SettleSetting::Seconds("--quiet-window"),
    stall: SettleSetting::Seconds("--stall-window"),
    limit: SettleSetting::Seconds("--settle-limit"),
};

/// The keys of `[target.http]` (`quiet_window_ms`, ...), in milliseconds.
pub const HTTP_KEY_NAMES: SettleNames = SettleNames {
    quiet: SettleSetting::Millis("quiet_window_ms"),
    stall: SettleSetting::Millis("stall_window_ms"),
    limit: SettleSetting::Millis("settle_limit_ms"),
};

impl SettleRule {
    /// Checks that the windows fit in the limit, naming the flags.
    pub fn validate(&self) -> Result<()> {
        self.validate_as(&FLAG_NAMES)
    }

    /// Checks that the windows fit in the limit, naming each setting as
    /// the user gave it, in its own unit.
    pub fn validate_as(&self, names: &SettleNames) -> Result<()> {
        if self.limit.is_zero() {
            return Err(Error::Config(format!(
                "{} must be positive",
                names.limit.show(self.limit)
            )));
        }
        if self.stall.is_zero() || self.stall > self.limit {
            return Err(Error::Config(format!(
                "{} must be more than 0 and at most {}",
                names.stall.show(self.stall),
                names.limit.show(self.limit)
            )));
        }
        if self.quiet > self.limit {
            return Err(Error::Config(format!(
                "{} must not exceed {}",
                names.quiet.show(self.quiet),
                names.limit.show(self.limit)
            )));
        }
        Ok(())
    }

    /// The rule from `--quiet-window`, `--stall-window` and `--settle-limit`
    /// (seconds), validated. A stall window nobody gave is the default,
    /// capped at the settle limit.
    pub fn from_seconds(quiet: f64, stall: Option<f64>, limit: f64) -> Result<SettleRule> {
        SettleRule::from_seconds_as(quiet, stall, limit, &FLAG_NAMES)
    }

    /// [`SettleRule::from_seconds`], with errors naming each setting as
    /// `names` says the user gave it.
    pub fn from_seconds_as(
        quiet: f64,
        stall: Option<f64>,
        limit: f64,
        names: &SettleNames,
    ) -> Result<SettleRule> {
        let seconds = |setting: SettleSetting, v: f64| {
            if v.is_finite() && (0.0..=86_400.0).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(setting.out_of_range(v))
            }
        };
        let limit = seconds(names.limit, limit)?;
        let rule = SettleRule {
            quiet: seconds(names.quiet, quiet)?,
            stall: match stall {
                Some(v) => seconds(names.stall, v)?,
                None => default_stall(limit),
            },
            limit,
        };
        rule.validate_as(names)?;
        Ok(rule)
    }

    /// Time between two polls: a quarter of the quiet window, within 10..=100 ms.
    pub fn poll_interval(&self) -> Duration {
        (self.quiet / 4).clamp(Duration::from_millis(10), Duration::from_millis(100))
    }

    /// Most polls the limit allows at the poll interval.
    pub fn max_polls(&self) -> u32 {
        (self.limit.as_secs_f64() / self.poll_interval().as_secs_f64())
            .ceil()
            .min(u32::MAX as f64) as u32
            + 1
    }
}

/// One poll: per replica, per key, the value read, or `None` when the
/// replica did not answer.
pub type Reads<V> = Vec<Vec<Option<V>>>;

/// How the wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettleState {
    /// Agreed and stayed put for the quiet window.
    Converged,
    /// Disagreed while nothing changed for the stall window.
    Diverged,
    /// Still changing (or a replica still silent) at the settle limit.
    Unsettled,
}

/// What the settle phase found, without the values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettleReport {
    /// The decision.
    pub state: SettleState,
    /// The rule applied.
    pub rule: SettleRule,
    /// Polls taken.
    pub polls: u32,
    /// How long the values had not changed at the last poll.
    pub stable_for: Duration,
    /// From the heal to the first poll of the final run of polls on which
    /// every replica read the same (converged runs only).
    pub converged_after: Option<Duration>,
    /// How far apart the replicas were at the end (diverged or unsettled).
    pub apart: Option<String>,
}

impl SettleReport {
    /// The history's quiescence record: diverged values have quiesced too
    /// (they stopped changing); only still-changing ones have not.
    pub fn quiescence(&self) -> Quiescence {
        Quiescence {
            reached: self.state != SettleState::Unsettled,
            rounds: self.polls,
            max_rounds: self.rule.max_polls(),
            convergence_ns: self.converged_after.map(|d| d.as_nanos() as u64),
        }
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        // Measured times to a tenth of a second; the rule's windows as
        // settings are written (`250ms`, `10s`), so a window given in
        // milliseconds never reads as a rounded number of seconds.
        let s = |d: Duration| format!("{:.1} s", d.as_secs_f64());
        let setting = crate::load::human_duration;
        match self.state {
            SettleState::Converged => format!(
                "replicas agreed {} after the heal; values stable for {} (quiet window {})",
                self.converged_after.map_or("?".into(), s),
                s(self.stable_for),
                setting(self.rule.quiet)
            ),
            SettleState::Diverged => format!(
                "replicas disagreed while no value changed for {} (stall window {}): {}",
                s(self.stable_for),
                setting(self.rule.stall),
                self.apart.as_deref().unwrap_or("")
            ),
            SettleState::Unsettled => format!(
                "values still changing at the settle limit ({}; last change {} before it): {}",
                setting(self.rule.limit),
                s(self.stable_for),
                self.apart.as_deref().unwrap_or("")
            ),
        }
    }
}

/// The decision and the last poll's reads.
#[derive(Clone, Debug)]
pub struct Settled {
    /// What was decided.
    pub report: SettleReport,
    /// The last poll.
    pub reads: Reads<Value>,
}

/// Applies the settle rule to polls fed one by one.
#[derive(Clone, Debug)]
pub struct Settler {
    rule: SettleRule,
    polls: u32,
    /// Per cell, the last value a replica answered.
    known: Reads<Value>,
    /// When a known value last changed (or was first learned).
    last_change: Duration,
    /// First poll of the current run of agreeing polls.
    agreed_since: Option<Duration>,
}

impl Settler {
    /// A settler that has seen no poll.
    pub fn new(rule: SettleRule) -> Self {
        Settler {
            rule,
            polls: 0,
            known: Vec::new(),
            last_change: Duration::ZERO,
            agreed_since: None,
        }
    }

    /// Feeds the poll taken `at` after the heal; returns the decision once
    /// the rule reaches one (always at or past the settle limit).
    pub fn observe(&mut self, at: Duration, reads: Reads<Value>) -> Option<Settled> {
        self.polls += 1;
        if self.known.len() != reads.len() {
            self.known = reads.iter().map(|row| vec![None; row.len()]).collect();
        }
        let mut changed = self.polls == 1;
        for (known_row, row) in self.known.iter_mut().zip(&reads) {
            if known_row.len() != row.len() {
                *known_row = vec![None; row.len()];
                changed = true;
            }
            for (known, now) in known_row.iter_mut().zip(row) {
                // A replica that did not answer this time changed nothing
                // we know of; its next answer is compared with its last.
                if now.is_some() && known != now {
                    *known = now.clone();
                    changed = true;
                }
            }
        }
        if changed {
            self.last_change = at;
        }
        let stable_for = at.saturating_sub(self.last_change);
        let answered = reads.iter().all(|row| row.iter().all(Option::is_some));
        let agreed = answered && reads.windows(2).all(|w| w[0] == w[1]);
        if agreed {
            self.agreed_since.get_or_insert(at);
        } else {
            self.agreed_since = None;
        }
        let state = if agreed && stable_for >= self.rule.quiet {
            SettleState::Converged
        } else if answered && !agreed && stable_for >= self.rule.stall {
            SettleState::Diverged
        } else if at >= self.rule.limit {
            SettleState::Unsettled
        } else {
            return None;
        };
        let apart = (state != SettleState::Converged).then(|| describe_reads(&reads));
        Some(Settled {
            report: SettleReport {
                state,
                rule: self.rule,
                polls: self.polls,
                stable_for,
                converged_after: self
                    .agreed_since
                    .filter(|_| state == SettleState::Converged),
                apart,
            },
            reads,
        })
    }
}

impl Settler {
    /// The decision when a stop (SIGINT/SIGTERM) comes before the rule
    /// decides: unsettled, with no reads, so nothing is judged on them.
    pub fn interrupted(&self, at: Duration) -> Settled {
        Settled {
            report: SettleReport {
                state: SettleState::Unsettled,
                rule: self.rule,
                polls: self.polls,
                stable_for: at.saturating_sub(self.last_change),
                converged_after: None,
                apart: Some(
                    "the final wait was stopped by a signal before the rule decided".into(),
                ),
            },
            reads: Vec::new(),
        }
    }
}

/// Applies the rule to a whole sequence of polls; `None` when the sequence
/// ends before the rule decides.
pub fn judge(
    rule: SettleRule,
    polls: impl IntoIterator<Item = (Duration, Reads<Value>)>,
) -> Option<Settled> {
    let mut settler = Settler::new(rule);
    polls
        .into_iter()
        .find_map(|(at, reads)| settler.observe(at, reads))
}

/// How far apart the replicas are: per key that differs, what each replica
/// read (at most four keys), then silent replicas.
pub fn describe_reads(reads: &Reads<Value>) -> String {
    let keys = reads.iter().map(Vec::len).max().unwrap_or(0);
    let mut parts = Vec::new();
    let mut differing = 0usize;
    for key in 0..keys {
        let cells: Vec<Option<&Value>> = reads
            .iter()
            .map(|row| row.get(key).and_then(Option::as_ref))
            .collect();
        let first = cells.first().copied().flatten();
        if cells.iter().all(|c| c.is_some() && *c == first) {
            continue;
        }
        differing += 1;
        if differing > 4 {
            continue;
        }
        let shown: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(replica, c)| match (c, first) {
                (None, _) => format!("r{replica}=no answer"),
                (Some(v), Some(base)) if replica > 0 => {
                    format!("r{replica}={}", against(base, v))
                }
                (Some(v), _) => format!("r{replica}={}", crate::report::short_value(v)),
            })
            .collect();
        parts.push(format!("key {key}: {}", shown.join(" ")));
    }
    if differing > 4 {
        parts.push(format!("{} more key(s) differ", differing - 4));
    }
    if parts.is_empty() {
        "replicas agree".into()
    } else {
        parts.join("; ")
    }
}

/// A replica's set as its size and what it lacks or adds against the
/// first replica's (sets of hundreds of elements differ in a few); any
/// other value as itself.
fn against(base: &Value, value: &Value) -> String {
    let (Value::Elems(base), Value::Elems(elems)) = (base, value) else {
        return crate::report::short_value(value);
    };
    let (in_base, in_elems): (FxHashSet<u64>, FxHashSet<u64>) = (
        base.iter().copied().collect(),
        elems.iter().copied().collect(),
    );
    let lacks: Vec<u64> = base
        .iter()
        .filter(|e| !in_elems.contains(e))
        .copied()
        .collect();
    let adds: Vec<u64> = elems
        .iter()
        .filter(|e| !in_base.contains(e))
        .copied()
        .collect();
    let few = |v: &[u64]| match v.len() {
        0..=5 => format!("{v:?}"),
        n => format!("{:?} and {} more", &v[..5], n - 5),
    };
    format!(
        "{} elements (lacks {} of r0's, has {} r0 lacks)",
        elems.len(),
        few(&lacks),
        few(&adds)
    )
}

/// Puts the settle phase into the convergence check: how long the values
/// were stable, and how far apart the replicas ended when they did not
/// agree, so `report.json` and `report.md` say it, not only the terminal.
pub fn annotate(checks: &mut [Check], report: Option<&SettleReport>) {
    let Some(report) = report else { return };
    let Some(convergence) = checks.iter_mut().find(|c| c.name == "convergence") else {
        return;
    };
    convergence.count("settle_polls", report.polls as u64);
    convergence.count("stable_ms", report.stable_for.as_millis() as u64);
    convergence.count("stall_window_ms", report.rule.stall.as_millis() as u64);
    if report.state != SettleState::Converged {
        convergence.summary = format!("{}; {}", convergence.summary, report.describe());
        convergence.find(Finding {
            message: format!("final reads: {}", report.describe()),
            ..Finding::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_millis(100);

    fn rule(stall_s: u64, limit_s: u64) -> SettleRule {
        SettleRule {
            quiet: Duration::from_secs(1),
            stall: Duration::from_secs(stall_s),
            limit: Duration::from_secs(limit_s),
        }
    }

    /// Polls every 100 ms from the heal; `reads_at(ms)` gives each poll.
    fn polls(
        until_ms: u64,
        reads_at: impl Fn(u64) -> Reads<Value>,
    ) -> impl Iterator<Item = (Duration, Reads<Value>)> {
        (0..=until_ms / 100).map(move |i| {
            let ms = i * 100;
            (Duration::from_millis(ms), reads_at(ms))
        })
    }

    fn counters(values: &[i64]) -> Reads<Value> {
        values.iter().map(|v| vec![Some(Value::Int(*v))]).collect()
    }

    #[test]
    fn the_summary_gives_the_windows_as_settings_are_written() {
        let quick = SettleRule {
            quiet: Duration::from_millis(250),
            ..rule(10, 60)
        };
        let settled = judge(quick, polls(60_000, |_| counters(&[3, 3]))).expect("decided");
        let line = settled.report.describe();
        assert!(line.contains("quiet window 250ms"), "{line}");
        let stuck = judge(rule(10, 60), polls(60_000, |_| counters(&[3, 4]))).expect("decided");
        let line = stuck.report.describe();
        assert!(line.contains("stall window 10s"), "{line}");
    }

    #[test]
    fn slow_anti_entropy_every_three_seconds_converges() {
        // Three replicas; each anti-entropy round (every 3 s) brings one
        // more replica up to date; between rounds nothing changes for 2.9 s.
        let settled = judge(
            rule(10, 60),
            polls(60_000, |ms| match ms / 3000 {
                0 => counters(&[7, 3, 1]),
                1 => counters(&[7, 7, 1]),
                _ => counters(&[7, 7, 7]),
            }),
        )
        .expect("decided");
        assert_eq!(settled.report.state, SettleState::Converged);
        assert_eq!(settled.report.converged_after, Some(Duration::from_secs(6)));
        assert!(settled.report.stable_for >= Duration::from_secs(1));
        assert_eq!(
            settled.report.quiescence().convergence_ns,
            Some(6_000_000_000)
        );
        assert!(settled.report.quiescence().reached);
    }

    #[test]
    fn disagreement_unchanged_for_less_than_the_stall_window_is_not_a_verdict() {
        // Values stay apart and unchanged for 9.9 s, then agree.
        let settled = judge(
            rule(10, 60),
            polls(60_000, |ms| {
                if ms < 10_000 {
                    counters(&[5, 4])
                } else {
                    counters(&[5, 5])
                }
            }),
        )
        .expect("decided");
        assert_eq!(settled.report.state, SettleState::Converged);
    }

    #[test]
    fn stuck_and_disagreeing_is_diverged_after_the_stall_window() {
        // A replica that never gossips out: values change once, then sit apart.
        let settled = judge(
            rule(10, 60),
            polls(60_000, |ms| {
                if ms < 500 {
                    counters(&[9, 2, 2])
                } else {
                    counters(&[9, 4, 4])
                }
            }),
        )
        .expect("decided");
        assert_eq!(settled.report.state, SettleState::Diverged);
        assert_eq!(settled.report.stable_for, Duration::from_secs(10));
        assert_eq!(settled.report.polls, 106);
        assert!(settled.report.quiescence().reached);
        assert_eq!(settled.report.quiescence().convergence_ns, None);
        let apart = settled.report.apart.expect("apart");
        assert!(apart.contains("r0=9") && apart.contains("r1=4"), "{apart}");
    }

    #[test]
    fn still_changing_at_the_limit_is_unsettled_with_how_far_apart() {
        // Replica 1 keeps moving (a counter gossiping forever), never agreeing.
        let settled = judge(
            rule(10, 30),
            polls(60_000, |ms| counters(&[100, (ms / 500) as i64])),
        )
        .expect("decided");
        assert_eq!(settled.report.state, SettleState::Unsettled);
        assert!(!settled.report.quiescence().reached);
        assert!(settled.report.stable_for < Duration::from_secs(1));
        assert!(settled.report.describe().contains("still changing"));
        assert!(settled.report.apart.expect("apart").contains("r0=100"));
    }

    #[test]
    fn agreeing_values_that_still_move_have_not_converged_yet() {
        // Both replicas read the same growing value until 5 s.
        let settled = judge(
            rule(10, 60),
            polls(60_000, |ms| {
                let v = (ms.min(5000) / 100) as i64;
                counters(&[v, v])
            }),
        )
        .expect("decided");
        assert_eq!(settled.report.state, SettleState::Converged);
        assert_eq!(settled.report.converged_after, Some(Duration::ZERO));
        assert_eq!(settled.report.polls, 61);
    }

    #[test]
    fn a_silent_replica_is_never_called_diverged() {
        let settled = judge(
            rule(10, 30),
            polls(60_000, |_| vec![vec![Some(Value::Int(1))], vec![None]]),
        )
        .expect("decided");
        assert_eq!(settled.report.state, SettleState::Unsettled);
        assert!(settled.report.apart.expect("apart").contains("no answer"));
    }

    #[test]
    fn sets_apart_are_described_by_what_each_lacks() {
        let reads = vec![
            vec![Some(Value::Elems((0..100).collect()))],
            vec![Some(Value::Elems(
                (0..100).filter(|e| *e != 42).chain([500]).collect(),
            ))],
        ];
        let text = describe_reads(&reads);
        assert!(
            text.contains("100 elements (lacks [42] of r0's, has [500] r0 lacks)"),
            "{text}"
        );
        assert_eq!(describe_reads(&counters(&[3, 3])), "replicas agree");
    }

    #[test]
    fn a_missed_answer_does_not_restart_the_stall_window() {
        // Replica 1 misses every other poll; its answers never change.
        let settled = judge(
            rule(10, 60),
            polls(60_000, |ms| {
                let r1 = (ms % 200 == 0).then_some(Value::Int(2));
                vec![vec![Some(Value::Int(1))], vec![r1]]
            }),
        )
        .expect("decided");
        assert_eq!(settled.report.state, SettleState::Diverged);
        assert_eq!(settled.report.stable_for, Duration::from_secs(10));
    }

    #[test]
    fn windows_must_fit_in_the_limit() {
        assert!(SettleRule::default().validate().is_ok());
        assert!(DEFAULT_STALL >= Duration::from_secs(10));
        assert!(DEFAULT_LIMIT >= DEFAULT_STALL * 3);
        let err = rule(40, 30).validate().expect_err("stall past limit");
        assert!(err.to_string().contains("--stall-window"), "{err}");
        assert!(rule(0, 30).validate().is_err());
        assert_eq!(POLL, SettleRule::default().poll_interval());
    }

    #[test]
    fn an_unstated_stall_window_shrinks_to_a_short_limit_a_stated_one_is_refused() {
        let short = SettleRule::from_seconds(1.0, None, 3.0).expect("valid");
        assert_eq!(short.stall, Duration::from_secs(3));
        let default = SettleRule::from_seconds(1.0, None, 60.0).expect("valid");
        assert_eq!(default.stall, DEFAULT_STALL);
        let err = SettleRule::from_seconds(1.0, Some(5.0), 3.0).expect_err("refused");
        assert!(err.to_string().contains("--stall-window"), "{err}");
        // Keys in milliseconds are named, and valued, in milliseconds.
        let err = rule(40, 30)
            .validate_as(&HTTP_KEY_NAMES)
            .expect_err("stall past limit");
        assert_eq!(
            err.to_string(),
            "invalid configuration: stall_window_ms = 40000 must be more than 0 and at most settle_limit_ms = 30000"
        );
        assert!(SettleRule::from_seconds(f64::NAN, None, 3.0).is_err());
    }
}
