//! Fuzz target `send_targets`: see `lunlink_proto_fuzz::send_targets`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_proto_fuzz::send_targets(data));
