//! Fuzz target `report_luns`: see `lunlink_scsi_fuzz::report_luns`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_scsi_fuzz::report_luns(data));
