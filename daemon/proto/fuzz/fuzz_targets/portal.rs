//! Fuzz target `portal`: see `lunlink_proto_fuzz::portal`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_proto_fuzz::portal(data));
