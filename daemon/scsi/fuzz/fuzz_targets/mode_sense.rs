//! Fuzz target `mode_sense`: see `lunlink_scsi_fuzz::mode_sense`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_scsi_fuzz::mode_sense(data));
