//! The replay of saved fuzz inputs shared by the `fuzz_corpus` tests of every crate that has a
//! `fuzz/` directory (each includes this file with `#[path]`).

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

/// A fuzz target: its name (its file in `fuzz/fuzz_targets/`) and its decoding.
pub type Target = (&'static str, fn(&[u8]));

/// Runs every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through its
/// target's decoder; fails listing the inputs that panicked. Also checks that the targets
/// listed here are exactly the ones in `fuzz/fuzz_targets/`, and that each has saved inputs.
pub fn replay(fuzz: &Path, targets: &[Target]) {
    let mut bins: Vec<String> = fs::read_dir(fuzz.join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|e| e.expect("dir entry").path())
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    bins.sort();
    let mut names: Vec<String> = targets.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    assert_eq!(bins, names, "fuzz_targets/*.rs and the decoders' TARGETS differ");

    let mut failed: Vec<PathBuf> = Vec::new();
    for (name, decode) in targets {
        let mut inputs = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(dir) = fs::read_dir(fuzz.join(kind).join(name)) else { continue };
            for entry in dir {
                let path = entry.expect("dir entry").path();
                let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                inputs += 1;
                if panic::catch_unwind(|| decode(&data)).is_err() {
                    failed.push(path);
                }
            }
        }
        assert!(inputs > 0, "fuzz target {name} has no saved inputs in {}", fuzz.join("corpus").join(name).display());
    }
    assert!(failed.is_empty(), "saved fuzz inputs that fail their target's checks: {failed:#?}");
}
