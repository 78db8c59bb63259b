//! Load shapes, as k6 names them: how many writers run (closed model), or how
//! fast ops arrive (open model), at each moment of a run.
//!
//! - **Closed model** (k6 `ramping-vus`): `writers` virtual users loop
//!   op → think time → op. With `[[stages]]`, the number of writers moves
//!   linearly from the previous stage's target to this stage's target over
//!   the stage's duration.
//! - **Open model** (k6 `constant-arrival-rate` / `ramping-arrival-rate`):
//!   ops arrive at `rate` per second whatever the target does; each arrival
//!   takes a free writer from a pool that grows up to `max_writers`. An
//!   arrival that finds no free writer is *dropped* and counted. Latency is
//!   measured from the arrival's intended start (see [`Arrivals`]), so a
//!   stalled target shows in the percentiles (no coordinated omission).
//!
//! Every run ends at its op count or its duration, whichever comes first;
//! with stages and no duration, the stages' total is the duration.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::time::Duration;

/// Which load model drives the writers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LoadModel {
    /// Writers loop as fast as the target answers (plus think time).
    #[default]
    Closed,
    /// Ops arrive at a rate, whatever the target does.
    Open,
}

impl LoadModel {
    /// The name used on the command line, in scenarios and in reports.
    pub fn name(self) -> &'static str {
        match self {
            LoadModel::Closed => "closed",
            LoadModel::Open => "open",
        }
    }
}

/// One stage: over `duration`, move linearly to `target` (writers in the
/// closed model, ops per second in the open model).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    /// How long the stage lasts.
    pub duration: Duration,
    /// Writers (closed) or ops per second (open) reached at the stage's end.
    pub target: f64,
}

/// A stage as written in a scenario file: `{ duration = "30s", target = 50 }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// `"30s"`, `"2m"`, `"500ms"`, `"1h"`, or a number of seconds.
    pub duration: DurationSpec,
    /// Writers (closed) or ops per second (open) at the stage's end.
    pub target: f64,
}

/// A duration as written in a scenario file: a number of seconds or a
/// string with a unit (`ms`, `s`, `m`, `h`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum DurationSpec {
    /// Seconds.
    Seconds(f64),
    /// `"500ms"`, `"30s"`, `"2m"`, `"1h"`.
    Text(String),
}

impl DurationSpec {
    /// The duration, or a message naming what is wrong.
    pub fn resolve(&self) -> std::result::Result<Duration, String> {
        match self {
            DurationSpec::Seconds(s) => seconds(*s),
            DurationSpec::Text(t) => parse_duration(t),
        }
    }

    /// The duration as the file wrote it (`"1500ms"`, or `90` seconds as `90`).
    pub fn as_typed(&self) -> String {
        match self {
            DurationSpec::Seconds(s) => s.to_string(),
            DurationSpec::Text(t) => t.trim().to_string(),
        }
    }
}

/// Longest duration accepted anywhere (a week): past it a typo is likelier
/// than a soak.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

fn seconds(s: f64) -> std::result::Result<Duration, String> {
    if !(s.is_finite() && s > 0.0 && s <= MAX_DURATION.as_secs_f64()) {
        return Err(format!(
            "a duration must be more than 0 s and at most {} s, got {s} s",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Parses `"500ms"`, `"30s"`, `"2m"`, `"1h"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (try 500ms, 30s, 2m or 1h)"))?;
    let unit = unit.trim();
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}' (use ms, s, m or h)"
            ))
        }
    };
    // The bounds are said in the unit the user typed: "got 0 ms", not "0 s".
    seconds(value * scale).map_err(|_| {
        let unit = if unit.is_empty() { "s" } else { unit };
        format!(
            "'{text}': a duration must be more than 0 {unit} and at most {} {unit}, got {value} {unit}",
            MAX_DURATION.as_secs_f64() / scale
        )
    })
}

/// Parses a `--stage DURATION:TARGET` flag, e.g. `30s:50`.
pub fn parse_stage(text: &str) -> std::result::Result<Stage, String> {
    let (duration, target) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}': a stage is DURATION:TARGET, e.g. 30s:50"))?;
    let duration = parse_duration(duration)?;
    let target: f64 = target
        .trim()
        .parse()
        .map_err(|_| format!("'{text}': the target '{target}' is not a number"))?;
    stage(duration, target).map_err(|e| format!("'{text}': {e}"))
}

fn stage(duration: Duration, target: f64) -> std::result::Result<Stage, String> {
    if !(target.is_finite() && (0.0..=MAX_TARGET).contains(&target)) {
        return Err(format!(
            "a stage target must be from 0 to {MAX_TARGET}, got {target}"
        ));
    }
    Ok(Stage { duration, target })
}

/// Largest stage target (writers or ops per second) accepted.
pub const MAX_TARGET: f64 = 10_000_000.0;

impl StageSpec {
    /// The stage, or a message naming what is wrong.
    pub fn resolve(&self) -> std::result::Result<Stage, String> {
        stage(self.duration.resolve()?, self.target)
    }
}

/// The whole load of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadSpec {
    /// Closed or open.
    pub model: LoadModel,
    /// Closed: writers before the first stage (or throughout, without
    /// stages). Open: writers allocated up front.
    pub writers: u32,
    /// Open: ops per second before the first stage (or throughout).
    pub rate: f64,
    /// Open: the pool's cap; an arrival finding every writer busy is dropped.
    pub max_writers: u32,
    /// Closed: pause between one writer's ops.
    pub think_time: Duration,
    /// Stages, in order.
    pub stages: Vec<Stage>,
    /// The run's bound in time (the stages' total when stages are given and
    /// no duration is).
    pub duration: Option<Duration>,
    /// The run's bound in ops, shared by every writer as it goes.
    pub ops: Option<u64>,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            model: LoadModel::Closed,
            writers: 16,
            rate: 0.0,
            max_writers: 0,
            think_time: Duration::ZERO,
            stages: Vec::new(),
            duration: None,
            ops: None,
        }
    }
}

impl LoadSpec {
    /// Refuses shapes that cannot run (a configuration error, exit 3).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        match self.model {
            LoadModel::Closed => {
                if self.writers == 0 && self.stages.iter().all(|s| s.target < 1.0) {
                    return bad("the closed model needs at least one writer".into());
                }
                if self.rate > 0.0 {
                    return bad("--rate is for the open model (--load open)".into());
                }
                if self.max_writers > 0 {
                    return bad("--max-writers is for the open model (--load open)".into());
                }
            }
            LoadModel::Open => {
                if self.rate <= 0.0 && self.stages.iter().all(|s| s.target <= 0.0) {
                    return bad("the open model needs --rate or a stage with a target rate".into());
                }
                if self.max_writers == 0 {
                    return bad("the open model needs --max-writers of at least 1".into());
                }
                if self.writers > self.max_writers {
                    return bad(format!(
                        "--writers {} is more than --max-writers {}",
                        self.writers, self.max_writers
                    ));
                }
                if !self.think_time.is_zero() {
                    return bad("--think-time is for the closed model".into());
                }
            }
        }
        if self.ops.is_none() && self.end().is_none() {
            return bad("a run needs --ops, --duration or --stage to end".into());
        }
        Ok(())
    }

    /// When the run stops at the latest, counted from the start of writing.
    pub fn end(&self) -> Option<Duration> {
        self.duration.or_else(|| {
            (!self.stages.is_empty()).then(|| self.stages.iter().map(|s| s.duration).sum())
        })
    }

    /// Index of the stage active at `t`, `None` before any stage or after the last.
    pub fn stage_at(&self, t: Duration) -> Option<usize> {
        let mut start = Duration::ZERO;
        for (i, s) in self.stages.iter().enumerate() {
            if t < start + s.duration {
                return Some(i);
            }
            start += s.duration;
        }
        None
    }

    /// The level (writers or ops per second) at `t`: linear within a stage
    /// from the previous level to the stage's target, then held at the last
    /// target. Before any stage, or without stages, the starting level.
    pub fn level_at(&self, t: Duration) -> f64 {
        let mut level = self.start_level();
        let mut start = Duration::ZERO;
        for s in &self.stages {
            let end = start + s.duration;
            if t < end {
                let x = (t - start).as_secs_f64() / s.duration.as_secs_f64();
                return level + (s.target - level) * x;
            }
            level = s.target;
            start = end;
        }
        level
    }

    fn start_level(&self) -> f64 {
        match self.model {
            LoadModel::Closed => self.writers as f64,
            LoadModel::Open => self.rate,
        }
    }

    /// Closed model: how many writers are active at `t` (the level, rounded).
    pub fn writers_at(&self, t: Duration) -> u32 {
        self.level_at(t).round().max(0.0) as u32
    }

    /// Most writers the run ever has at once: the closed model's highest
    /// level, or the open model's pool cap.
    pub fn peak_writers(&self) -> u32 {
        match self.model {
            LoadModel::Closed => self
                .stages
                .iter()
                .map(|s| s.target.round() as u32)
                .chain([self.writers])
                .max()
                .unwrap_or(self.writers),
            LoadModel::Open => self.max_writers,
        }
    }

    /// Open model: the intended start of every arrival, in order.
    pub fn arrivals(&self) -> Arrivals<'_> {
        Arrivals {
            spec: self,
            next: 0,
            segment: 0,
            segment_start: Duration::ZERO,
            before: 0.0,
        }
    }

    /// Open model: the rate asked for, averaged over the run (the area
    /// under the rate curve over its length); without a time bound, the
    /// starting rate. `None` for the closed model.
    pub fn mean_rate(&self) -> Option<f64> {
        if self.model != LoadModel::Open {
            return None;
        }
        let Some(end) = self.end().filter(|e| !e.is_zero()) else {
            return Some(self.rate);
        };
        let mut area = 0.0;
        let mut level = self.start_level();
        let mut at = Duration::ZERO;
        for s in &self.stages {
            let d = s.duration.min(end.saturating_sub(at));
            let reached = level + (s.target - level) * (d.as_secs_f64() / s.duration.as_secs_f64());
            area += (level + reached) / 2.0 * d.as_secs_f64();
            at += d;
            level = s.target;
            if at >= end {
                return Some(area / end.as_secs_f64());
            }
        }
        area += level * (end - at).as_secs_f64();
        Some(area / end.as_secs_f64())
    }

    /// The shape as `report.json` and the time series header show it.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "model": self.model.name(),
            "writers": self.writers,
            "rate": (self.model == LoadModel::Open).then_some(self.rate),
            "max_writers": (self.model == LoadModel::Open).then_some(self.max_writers),
            "think_time_ms": self.think_time.as_secs_f64() * 1000.0,
            "stages": self.stages.iter().map(|s| serde_json::json!({
                "duration_s": s.duration.as_secs_f64(),
                "target": s.target,
            })).collect::<Vec<_>>(),
            "duration_s": self.end().map(|d| d.as_secs_f64()),
            "ops": self.ops,
        })
    }

    /// The stages as a human reads them: `30s→50, 1m→50, 30s→0`.
    pub fn describe_stages(&self) -> String {
        self.stages
            .iter()
            .map(|s| format!("{}→{}", human_duration(s.duration), s.target))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Which clock a run's load shape follows: how [`LoadSpec::flags`] writes
/// the flags that reproduce it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagClock {
    /// The wall-clock engine (http, sql): durations as people write them
    /// ([`human_duration`]), the op bound included, and a closed model left
    /// unsaid (the default; the engine follows the shape either way).
    Wall,
    /// Virtual time (in-process, automerge): durations in whole
    /// milliseconds where exact, else in seconds to the nanosecond, so they
    /// parse back to the same tick count; `--load` always said (naming a
    /// load is what puts those targets on a schedule); the op bound left
    /// to the caller, whose command has it already.
    Virtual,
}

impl FlagClock {
    /// A duration as a flag value that parses back to the same value.
    fn duration(self, d: Duration) -> String {
        match self {
            FlagClock::Wall => human_duration(d),
            FlagClock::Virtual if d.subsec_nanos().is_multiple_of(1_000_000) => {
                format!("{}ms", d.as_millis())
            }
            FlagClock::Virtual => format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
        }
    }
}

impl LoadSpec {
    /// The `converge run` flags that give this shape on `clock`, each with
    /// a leading space (`--writers` excepted: every reproduce command
    /// has it already).
    pub fn flags(&self, clock: FlagClock) -> String {
        let mut out = String::new();
        if self.model == LoadModel::Open || clock == FlagClock::Virtual {
            out += &format!(" --load {}", self.model.name());
        }
        if self.model == LoadModel::Open {
            if self.rate > 0.0 {
                out += &format!(" --rate {}", self.rate);
            }
            out += &format!(" --max-writers {}", self.max_writers);
        }
        if !self.think_time.is_zero() {
            out += &format!(" --think-time {}", clock.duration(self.think_time));
        }
        for s in &self.stages {
            out += &format!(" --stage {}:{}", clock.duration(s.duration), s.target);
        }
        if let Some(d) = self.duration {
            out += &format!(" --duration {}", clock.duration(d));
        }
        if let (FlagClock::Wall, Some(ops)) = (clock, self.ops) {
            out += &format!(" --ops {ops}");
        }
        out
    }
}

/// `1h`, `2m`, `30s`, `1.5s`, `500ms`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 3600.0 && s % 3600.0 == 0.0 {
        format!("{}h", s / 3600.0)
    } else if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{}m", s / 60.0)
    } else if s >= 1.0 || !d.subsec_nanos().is_multiple_of(1_000_000) {
        // Every digit kept, so that the text parses back to `d`.
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Intended start times of an open model's arrivals: the k-th arrival (from
/// 0) comes when the integral of the rate reaches k, so a ramp from 10 to 20
/// ops/s over 10 s brings 150 arrivals. Ends at the run's end (or never,
/// when only an op count bounds it).
pub struct Arrivals<'a> {
    spec: &'a LoadSpec,
    next: u64,
    /// Current piece of the rate curve: stages, then the held last level.
    segment: usize,
    segment_start: Duration,
    /// Arrivals the earlier segments held (their area).
    before: f64,
}

impl Iterator for Arrivals<'_> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let k = self.next as f64;
        let end = self.spec.end();
        loop {
            let stages = &self.spec.stages;
            let (from, to, length) = match stages.get(self.segment) {
                Some(s) => {
                    let from = if self.segment == 0 {
                        self.spec.start_level()
                    } else {
                        stages[self.segment - 1].target
                    };
                    (from, s.target, Some(s.duration.as_secs_f64()))
                }
                None => {
                    let level = self.spec.level_at(self.segment_start);
                    (level, level, None)
                }
            };
            let within = k - self.before;
            let area = length.map(|d| (from + to) / 2.0 * d);
            if let (Some(area), Some(d)) = (area, length) {
                if within >= area {
                    self.before += area;
                    self.segment_start += Duration::from_secs_f64(d);
                    self.segment += 1;
                    continue;
                }
            }
            // Solve from·x + (to − from)/(2d)·x² = within for x in the segment.
            let x = match length {
                Some(d) if (to - from).abs() > f64::EPSILON => {
                    let a = (to - from) / (2.0 * d);
                    let disc = (from * from + 4.0 * a * within).max(0.0);
                    (-from + disc.sqrt()) / (2.0 * a)
                }
                _ if from <= 0.0 => return None,
                _ => within / from,
            };
            let at = self.segment_start + Duration::from_secs_f64(x.max(0.0));
            if end.is_some_and(|e| at >= e) {
                return None;
            }
            self.next += 1;
            return Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(rate: f64, stages: &[(u64, f64)]) -> LoadSpec {
        LoadSpec {
            model: LoadModel::Open,
            rate,
            max_writers: 10,
            writers: 1,
            stages: stages
                .iter()
                .map(|&(s, t)| Stage {
                    duration: Duration::from_secs(s),
                    target: t,
                })
                .collect(),
            ..LoadSpec::default()
        }
    }

    #[test]
    fn durations_take_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-3s").is_err());
        assert!(parse_stage("30s").is_err());
        // A refusal says the unit typed.
        let zero_ms = parse_duration("0ms").expect_err("0ms is no duration");
        assert!(zero_ms.contains("got 0 ms"), "{zero_ms}");
        let long = parse_duration("200h").expect_err("past a week");
        assert!(long.contains("at most 168 h, got 200 h"), "{long}");
        for d in [
            Duration::from_micros(500),
            Duration::from_millis(1500),
            Duration::from_secs(120),
        ] {
            assert_eq!(
                parse_duration(&human_duration(d)),
                Ok(d),
                "{}",
                human_duration(d)
            );
        }
        assert_eq!(
            parse_stage("30s:50").map(|s| s.target),
            Ok(50.0),
            "a stage is DURATION:TARGET"
        );
    }

    #[test]
    fn a_constant_rate_spaces_arrivals_evenly_and_stops_at_the_end() {
        let mut spec = open(10.0, &[]);
        spec.duration = Some(Duration::from_secs(2));
        let at: Vec<Duration> = spec.arrivals().collect();
        assert_eq!(at.len(), 20);
        assert_eq!(at[1] - at[0], Duration::from_millis(100));
    }

    #[test]
    fn a_ramp_brings_the_area_under_the_rate() {
        // 10 → 20 ops/s over 10 s: 150 arrivals; then held at 20 for 5 s: 100 more.
        let mut spec = open(10.0, &[(10, 20.0)]);
        spec.duration = Some(Duration::from_secs(15));
        let at: Vec<Duration> = spec.arrivals().collect();
        assert_eq!(at.len(), 250);
        let first_half = at.iter().filter(|t| t.as_secs_f64() < 5.0).count();
        // ∫₀⁵ (10 + t) dt = 62.5
        assert!((62..=63).contains(&first_half), "{first_half}");
        assert!(at.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn the_mean_rate_is_the_area_under_the_rate_over_the_length() {
        let mut spec = open(10.0, &[(10, 20.0)]);
        spec.duration = Some(Duration::from_secs(20));
        // 150 arrivals in the ramp, 200 held: 350 over 20 s.
        assert_eq!(spec.mean_rate(), Some(17.5));
        spec.duration = Some(Duration::from_secs(5));
        // Cut inside the ramp: ∫₀⁵ (10 + t) dt = 62.5 over 5 s.
        assert_eq!(spec.mean_rate(), Some(12.5));
        // The same area the arrivals come from: arrival k comes when the
        // area reaches k, so 0..=62 fall inside 5 s.
        assert_eq!(
            spec.mean_rate().map(|r| (r * 5.0).ceil()),
            Some(spec.arrivals().count() as f64),
        );
        assert_eq!(LoadSpec::default().mean_rate(), None);
    }

    #[test]
    fn closed_stages_interpolate_writers() {
        let spec = LoadSpec {
            writers: 0,
            stages: vec![
                Stage {
                    duration: Duration::from_secs(10),
                    target: 100.0,
                },
                Stage {
                    duration: Duration::from_secs(10),
                    target: 0.0,
                },
            ],
            ..LoadSpec::default()
        };
        assert_eq!(spec.writers_at(Duration::from_secs(5)), 50);
        assert_eq!(spec.writers_at(Duration::from_secs(15)), 50);
        assert_eq!(spec.stage_at(Duration::from_secs(15)), Some(1));
        assert_eq!(spec.end(), Some(Duration::from_secs(20)));
        assert_eq!(spec.peak_writers(), 100);
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn flags_parse_back_to_the_same_shape_on_either_clock() {
        let mut spec = open(12.5, &[(1, 40.0)]);
        spec.stages[0].duration = Duration::from_micros(1_500_250);
        spec.duration = Some(Duration::from_secs(3));
        spec.ops = Some(77);
        for clock in [FlagClock::Wall, FlagClock::Virtual] {
            let flags = spec.flags(clock);
            let words: Vec<&str> = flags.split_whitespace().collect();
            let value = |flag: &str| {
                let i = words.iter().position(|w| *w == flag).expect(flag);
                words[i + 1]
            };
            assert_eq!(value("--load"), "open");
            assert_eq!(value("--rate"), "12.5");
            assert_eq!(value("--max-writers"), "10");
            assert_eq!(parse_stage(value("--stage")), Ok(spec.stages[0]), "{flags}");
            assert_eq!(
                parse_duration(value("--duration")),
                Ok(Duration::from_secs(3))
            );
            assert_eq!(
                words.contains(&"--ops"),
                clock == FlagClock::Wall,
                "{flags}"
            );
        }
        assert_eq!(
            spec.flags(FlagClock::Virtual)
                .split_whitespace()
                .find(|w| w.ends_with("ms")),
            Some("3000ms"),
            "virtual time writes whole milliseconds"
        );
        let closed = LoadSpec::default();
        assert_eq!(closed.flags(FlagClock::Wall), "");
        assert_eq!(closed.flags(FlagClock::Virtual), " --load closed");
    }

    #[test]
    fn shapes_that_cannot_run_are_config_errors() {
        let mut spec = open(0.0, &[]);
        spec.duration = Some(Duration::from_secs(1));
        assert!(spec.validate().is_err(), "open with no rate");
        let closed = LoadSpec {
            rate: 5.0,
            ops: Some(10),
            ..LoadSpec::default()
        };
        assert!(closed.validate().is_err(), "rate on a closed model");
        assert!(LoadSpec::default().validate().is_err(), "no end at all");
    }
}
