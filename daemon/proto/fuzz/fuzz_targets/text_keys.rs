//! Fuzz target `text_keys`: see `lunlink_proto_fuzz::text_keys`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_proto_fuzz::text_keys(data));
