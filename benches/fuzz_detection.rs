//! Time to detection of `converge fuzz` for every faulty model: eleven
//! campaigns per model (seeds 1..=11) with the default bounds, no shrinking,
//! each stopping at its first violation. Prints the median and worst wall
//! time and run count. `cargo bench --bench fuzz_detection`.

use converge::campaign::{run_campaign, Bounds, Budget, CampaignConfig};
use converge::models::CATALOG;
use std::time::Duration;

const SEEDS: u64 = 11;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let scratch = std::env::temp_dir().join(format!("converge-fuzz-bench-{}", std::process::id()));
    println!(
        "{:<30} {:>12} {:>12} {:>10} {:>10}",
        "fault", "median (s)", "worst (s)", "median runs", "found"
    );
    for model in CATALOG.iter().filter(|m| m.faulty) {
        let (mut secs, mut runs, mut found) = (Vec::new(), Vec::new(), 0);
        for seed in 1..=SEEDS {
            let campaign = CampaignConfig {
                models: vec![model],
                seed,
                budget: Budget {
                    time: Some(Duration::from_secs(120)),
                    iterations: Some(1000),
                },
                keep_going: false,
                bounds: Bounds::default(),
                out: scratch.join(format!("{}-{seed}", model.name)),
                shrink_budget: 0,
                threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
                check_determinism: false,
            };
            let summary = run_campaign(&campaign, |_| {}).expect("campaign runs");
            if let Some(t) = summary.time_to_first_violation_s {
                found += 1;
                secs.push(t);
                runs.push(summary.runs_to_first_violation.unwrap_or(0) as f64);
            }
        }
        let worst = secs.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<30} {:>12.3} {:>12.3} {:>10} {:>7}/{SEEDS}",
            model.name,
            if secs.is_empty() {
                f64::NAN
            } else {
                median(secs)
            },
            worst,
            if runs.is_empty() {
                f64::NAN
            } else {
                median(runs)
            },
            found
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
