//! Fuzz target `chap`: see `lunlink_proto_fuzz::chap`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_proto_fuzz::chap(data));
