//! Fuzz target `node_record`: see `lunlinkd_fuzz::node_record`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlinkd_fuzz::node_record(data));
