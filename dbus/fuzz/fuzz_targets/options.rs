//! Fuzz target `options`: see `lunlink_dbus_fuzz::options`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lunlink_dbus_fuzz::options(data));
