//! Fuzz target `login_responses`: see `lunlink_proto_fuzz::login_responses`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_proto_fuzz::login_responses(data));
