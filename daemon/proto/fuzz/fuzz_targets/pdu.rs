//! Fuzz target `pdu`: see `lunlink_proto_fuzz::pdu`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_proto_fuzz::pdu(data));
