//! Fuzz target `config`: see `lunlinkd_fuzz::config`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlinkd_fuzz::config(data));
