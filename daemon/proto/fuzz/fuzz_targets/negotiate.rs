//! Fuzz target `negotiate`: see `lunlink_proto_fuzz::negotiate`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_proto_fuzz::negotiate(data));
