//! Fuzz target `sense`: see `lunlink_scsi_fuzz::sense`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_scsi_fuzz::sense(data));
