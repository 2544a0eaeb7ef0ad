//! Fuzz target `inquiry`: see `lunlink_scsi_fuzz::inquiry`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_scsi_fuzz::inquiry(data));
