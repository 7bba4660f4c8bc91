//! Every seed and every input a fuzzer found, through its target's function: none may panic, and
//! none may take longer than [`SLOWEST`] (a fuzzer's slow units are denial-of-service findings:
//! 250 bytes of ADQL once held a core for 20 s). A new finding goes into
//! `fuzz/regressions/<target>/` (by `scripts/fuzz.sh`), which keeps it here as a failing test
//! until the parser is fixed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest any one input may take (a debug build, on a loaded 2-core machine; the inputs that
/// made this bound took 18–22 s optimised before their fix).
const SLOWEST: Duration = Duration::from_secs(10);

fn inputs(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

#[test]
fn every_seed_and_every_found_input_is_answered_without_a_panic_and_soon() {
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
            let started = Instant::now();
            if catch_unwind(AssertUnwindSafe(|| target(&bytes))).is_err() {
                failures.push(format!("{}: panicked", file.display()));
            } else if started.elapsed() > SLOWEST {
                failures.push(format!("{}: took {:?}", file.display(), started.elapsed()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    eprintln!("replayed {replayed} inputs");
}
