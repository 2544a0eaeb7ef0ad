//! Portal and TargetAddress parsing never panics, and Display round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lunlink_proto::discovery::{parse_target_address, Portal};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(p) = s.parse::<Portal>() {
        assert_eq!(p.to_string().parse::<Portal>().ok(), Some(p));
    }
    let _ = parse_target_address(s);
});
