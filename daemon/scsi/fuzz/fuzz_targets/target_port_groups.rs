//! Fuzz target `target_port_groups`: see `lunlink_scsi_fuzz::target_port_groups`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_scsi_fuzz::target_port_groups(data));
