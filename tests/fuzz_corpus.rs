//! Replays the committed fuzz corpus and any crash files through the same
//! property functions the fuzz targets call (`converge::props`), so every
//! finding stays a regression test on stable without libFuzzer.

use std::path::{Path, PathBuf};

/// A property: panics only when violated.
type Property = fn(&[u8]);

/// The fuzz targets, each named after the property it checks.
const TARGETS: [(&str, Property); 4] = [
    ("merge_laws", converge::props::merge_laws),
    ("readers_never_panic", converge::props::readers_never_panic),
    (
        "checkers_never_panic",
        converge::props::checkers_never_panic,
    ),
    (
        "linearizability_matches_brute_force",
        converge::props::linearizability_matches_brute_force,
    ),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Files directly in `dir`, sorted for a deterministic replay order; none
/// when the directory does not exist (no crash was ever found).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, property: Property) {
    for kind in ["corpus", "artifacts"] {
        for file in files(&fuzz_dir().join(kind).join(target)) {
            let data = std::fs::read(&file).expect("readable corpus file");
            // Name the input if the property panics.
            eprintln!("replaying {}", file.display());
            property(&data);
        }
    }
}

#[test]
fn merge_laws() {
    replay(TARGETS[0].0, TARGETS[0].1);
}

#[test]
fn readers_never_panic() {
    replay(TARGETS[1].0, TARGETS[1].1);
}

#[test]
fn checkers_never_panic() {
    replay(TARGETS[2].0, TARGETS[2].1);
}

#[test]
fn linearizability_matches_brute_force() {
    replay(TARGETS[3].0, TARGETS[3].1);
}

#[test]
fn every_target_has_a_committed_corpus() {
    for (target, _) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        assert!(!files(&dir).is_empty(), "{} is empty", dir.display());
    }
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    for (target, _) in TARGETS {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let src = std::fs::read_to_string(&file).expect("fuzz target source");
        assert!(
            src.contains(&format!("converge::props::{target}(")),
            "{} does not call converge::props::{target}",
            file.display()
        );
    }
}
