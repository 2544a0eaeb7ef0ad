//! Fuzz target `names`: see `lunlinkd_fuzz::names`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlinkd_fuzz::names(data));
