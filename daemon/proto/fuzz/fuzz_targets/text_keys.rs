//! Text key=value decoding and value parsing (RFC 7143 §6.1) never panic, and what decodes
//! encodes back to an equivalent list.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lunlink_proto::text::{self, TextKeys};

fuzz_target!(|data: &[u8]| {
    if let Ok(keys) = TextKeys::decode_list(data) {
        let again = TextKeys::decode_list(&keys.encode()).expect("re-encoded text decodes");
        assert_eq!(again, keys);
        for (k, v) in keys.iter() {
            let _ = text::parse_number(k, v);
            let _ = text::parse_binary(k, v);
            let _ = text::parse_bool(k, v);
        }
    }
    let _ = TextKeys::decode(data);
});
