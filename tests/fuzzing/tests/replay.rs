//! Every seed and every input a fuzzer found, through its target's function: none may panic.
//! A new crash goes into `fuzz/regressions/<target>/` (by `scripts/fuzz.sh`), which keeps it here
//! as a failing test until the parser is fixed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn inputs(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

#[test]
fn every_seed_and_every_found_input_is_answered_without_a_panic() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, target) in colo_fuzzing::TARGETS {
        let seeds = inputs(&fuzz.join("seeds").join(name));
        assert!(
            seeds.len() >= 3,
            "fuzz/seeds/{name} holds {} inputs: `scripts/fuzz.sh seed` makes them",
            seeds.len()
        );
        let found = inputs(&fuzz.join("regressions").join(name));
        for file in seeds.iter().chain(&found) {
            let bytes = std::fs::read(file).expect("an input");
            replayed += 1;
            if catch_unwind(AssertUnwindSafe(|| target(&bytes))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "panicked on: {failures:#?}");
    eprintln!("replayed {replayed} inputs");
}
