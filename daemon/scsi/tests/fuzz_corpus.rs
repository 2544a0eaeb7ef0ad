//! Replays every saved fuzz input of `daemon/scsi/fuzz` (the checked-in corpus and the crash
//! inputs kept as regressions) through the very decoding the fuzz targets do, on stable Rust
//! and without a fuzzing engine, so `cargo test` catches a decoder regression.

#[path = "../fuzz/src/lib.rs"]
mod decoders;
#[path = "../../../tests/shared/fuzz_replay.rs"]
mod fuzz_replay;

use std::path::Path;

#[test]
fn saved_fuzz_inputs_decode() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    fuzz_replay::replay(&fuzz, decoders::TARGETS);
}
