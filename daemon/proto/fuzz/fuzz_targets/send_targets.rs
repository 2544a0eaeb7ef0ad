//! SendTargets answers (RFC 7143 Appendix D) never panic the parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lunlink_proto::discovery::parse_send_targets;

fuzz_target!(|data: &[u8]| {
    if let Ok(targets) = parse_send_targets(data) {
        for t in targets {
            assert!(!t.name.is_empty());
            for p in t.portals {
                // Whatever parsed must print as something that parses to the same portal.
                assert_eq!(p.portal.to_string().parse::<lunlink_proto::discovery::Portal>().ok(), Some(p.portal));
            }
        }
    }
});
