//! Fuzz target `capacity`: see `lunlink_scsi_fuzz::capacity`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_scsi_fuzz::capacity(data));
