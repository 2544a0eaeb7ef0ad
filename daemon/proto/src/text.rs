//! Text keys: the `key=value\0` lists carried by Login and Text PDUs (RFC 7143 §6.1), and the
//! value encodings of §6.1 (booleans, numbers in decimal / `0x` hex / `0b` base64, binary
//! values, comma-separated lists).
//!
//! Decoding never panics: anything a peer sends either decodes or gives a [`TextError`].

use std::fmt;

use base64::Engine as _;

/// Longest key name (§6.1).
pub const MAX_KEY_LEN: usize = 63;
/// Longest value unless a key's definition allows more (§6.1).
pub const MAX_VALUE_LEN: usize = 255;
/// Longest value for the keys that allow more than [`MAX_VALUE_LEN`]: binary CHAP values
/// (up to 1024 bytes before encoding, §12.1.3) and keys we do not know, which we answer with
/// NotUnderstood rather than fail on.
pub const MAX_LARGE_VALUE_LEN: usize = 8192;

/// The reserved answer for a key whose offered value is refused (§6.2).
pub const REJECT: &str = "Reject";
/// The reserved answer for a key that does not apply in this negotiation (§6.2).
pub const IRRELEVANT: &str = "Irrelevant";
/// The reserved answer for a key the responder does not know (§6.2).
pub const NOT_UNDERSTOOD: &str = "NotUnderstood";

/// Errors in text data, in a peer's or in our own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    #[error("text key=value data is not valid UTF-8 (at byte {offset})")]
    NotUtf8 { offset: usize },
    #[error("malformed text: {item:?} at byte {offset} is not a key=value pair")]
    NotAPair { item: String, offset: usize },
    #[error("malformed text: empty key=value pair at byte {offset}")]
    EmptyPair { offset: usize },
    #[error("invalid text key {key:?}: keys are 1 to 63 characters of letters, digits and . - + @ _ : #")]
    BadKey { key: String },
    #[error("value of {key} is {len} bytes long, more than the {max} allowed")]
    ValueTooLong { key: String, len: usize, max: usize },
    #[error("value of {key} contains a NUL byte")]
    NulInValue { key: String },
    #[error("key {key} appears twice in the same text")]
    Duplicate { key: String },
    #[error("value {value:?} of {key} is not Yes or No")]
    BadBoolean { key: String, value: String },
    #[error("value {value:?} of {key} is not a number")]
    BadNumber { key: String, value: String },
    #[error("value {value} of {key} is outside the allowed range {min}..={max}")]
    OutOfRange { key: String, value: u64, min: u64, max: u64 },
    #[error("value of {key} is not a valid binary value (0x hex or 0b base64): {reason}")]
    BadBinary { key: String, reason: &'static str },
}

/// Whether `key` is a syntactically valid key name (§6.1). Besides the RFC's characters,
/// `:` and `#` are accepted on input, since X# extension keys use `#`.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b".-+@_:#".contains(&b))
}

/// The longest value accepted for `key` (§6.1: 255 unless the key says otherwise).
pub fn value_limit(key: &str) -> usize {
    match key {
        "CHAP_C" | "CHAP_R" => MAX_LARGE_VALUE_LEN,
        _ if crate::negotiate::is_known_key(key) => MAX_VALUE_LEN,
        // Unknown keys: long values must not fail the login, we answer NotUnderstood.
        _ => MAX_LARGE_VALUE_LEN,
    }
}

/// An ordered list of key=value pairs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TextKeys {
    pairs: Vec<(String, String)>,
}

impl fmt::Debug for TextKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // CHAP responses are not secrets, but keep logs short and quiet anyway.
        f.debug_list().entries(self.pairs.iter().map(|(k, v)| format!("{k}={v}"))).finish()
    }
}

impl TextKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes text data in which every key appears at most once, as in a login or a
    /// negotiation (§6.2: a key is negotiated once).
    pub fn decode(data: &[u8]) -> Result<Self, TextError> {
        let keys = Self::decode_list(data)?;
        for (i, (k, _)) in keys.pairs.iter().enumerate() {
            if keys.pairs[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(TextError::Duplicate { key: k.clone() });
            }
        }
        Ok(keys)
    }

    /// Decodes text data in which keys may repeat, such as a SendTargets answer (one
    /// TargetName / TargetAddress per target and portal, RFC 7143 Appendix C).
    ///
    /// Every pair must end with a NUL (§6.1); a missing NUL after the very last pair is
    /// tolerated, as are NULs padding the end of the data.
    pub fn decode_list(data: &[u8]) -> Result<Self, TextError> {
        let mut pairs = Vec::new();
        // Trailing NULs (sloppy padding) carry no pairs.
        let Some(end) = data.iter().rposition(|&b| b != 0).map(|p| p + 1) else {
            return Ok(Self { pairs });
        };
        let mut offset = 0;
        for raw in data[..end].split(|&b| b == 0) {
            if raw.is_empty() {
                return Err(TextError::EmptyPair { offset });
            }
            let item = std::str::from_utf8(raw)
                .map_err(|e| TextError::NotUtf8 { offset: offset + e.valid_up_to() })?;
            let Some((key, value)) = item.split_once('=') else {
                return Err(TextError::NotAPair { item: shorten(item), offset });
            };
            if !is_valid_key(key) {
                return Err(TextError::BadKey { key: shorten(key) });
            }
            let max = value_limit(key);
            if value.len() > max {
                return Err(TextError::ValueTooLong { key: key.to_owned(), len: value.len(), max });
            }
            pairs.push((key.to_owned(), value.to_owned()));
            offset += raw.len() + 1;
        }
        Ok(Self { pairs })
    }

    /// Appends a pair after checking it (key syntax, length, no NUL in the value).
    pub fn push(&mut self, key: &str, value: impl Into<String>) -> Result<(), TextError> {
        let value = value.into();
        if !is_valid_key(key) {
            return Err(TextError::BadKey { key: shorten(key) });
        }
        if value.contains('\0') {
            return Err(TextError::NulInValue { key: key.to_owned() });
        }
        let max = value_limit(key);
        if value.len() > max {
            return Err(TextError::ValueTooLong { key: key.to_owned(), len: value.len(), max });
        }
        self.pairs.push((key.to_owned(), value));
        Ok(())
    }

    /// Appends all pairs of `other`.
    pub fn extend(&mut self, other: TextKeys) {
        self.pairs.extend(other.pairs);
    }

    /// The value of the first pair with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Encodes as `key=value\0` pairs (§6.1: every pair, the last included, ends with NUL).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
        for (k, v) in &self.pairs {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }
}

/// Shortens peer-provided text quoted in error messages.
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut cut = MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}

/// Parses a boolean value (§6.1: exactly `Yes` or `No`).
pub fn parse_bool(key: &str, value: &str) -> Result<bool, TextError> {
    match value {
        "Yes" => Ok(true),
        "No" => Ok(false),
        _ => Err(TextError::BadBoolean { key: key.to_owned(), value: shorten(value) }),
    }
}

/// Formats a boolean value.
pub fn fmt_bool(v: bool) -> &'static str {
    if v {
        "Yes"
    } else {
        "No"
    }
}

/// Parses a numerical value (§6.1): decimal, `0x`/`0X` hex or `0b`/`0B` base64, below 2^64.
pub fn parse_number(key: &str, value: &str) -> Result<u64, TextError> {
    let bad = || TextError::BadNumber { key: key.to_owned(), value: shorten(value) };
    let (prefix, rest) = split_prefix(value);
    match prefix {
        "0x" | "0X" => {
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let digits = rest.trim_start_matches('0');
            if digits.len() > 16 {
                return Err(bad());
            }
            if digits.is_empty() {
                return Ok(0);
            }
            u64::from_str_radix(digits, 16).map_err(|_| bad())
        }
        "0b" | "0B" => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| bad())?;
            let significant = bytes.iter().position(|&b| b != 0).map_or(&bytes[..0], |p| &bytes[p..]);
            if bytes.is_empty() || significant.len() > 8 {
                return Err(bad());
            }
            Ok(significant.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        }
        _ => {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            value.parse::<u64>().map_err(|_| bad())
        }
    }
}

/// Parses a numerical value and checks it lies in `min..=max`.
pub fn parse_number_in(key: &str, value: &str, min: u32, max: u32) -> Result<u32, TextError> {
    let v = parse_number(key, value)?;
    if v < u64::from(min) || v > u64::from(max) {
        return Err(TextError::OutOfRange { key: key.to_owned(), value: v, min: min.into(), max: max.into() });
    }
    u32::try_from(v).map_err(|_| TextError::OutOfRange { key: key.to_owned(), value: v, min: min.into(), max: max.into() })
}

/// Splits a list value (§6.1: comma-separated).
pub fn parse_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',')
}

/// Decodes a binary value (§6.1): `0x` hex (an odd digit count implies a leading zero) or
/// `0b` base64.
pub fn parse_binary(key: &str, value: &str) -> Result<Vec<u8>, TextError> {
    let bad = |reason| TextError::BadBinary { key: key.to_owned(), reason };
    let (prefix, rest) = split_prefix(value);
    if rest.is_empty() {
        return Err(bad("no digits"));
    }
    match prefix {
        "0x" | "0X" => {
            let digits = rest.as_bytes();
            let mut out = Vec::with_capacity(digits.len() / 2 + 1);
            let (head, tail) = digits.split_at(digits.len() % 2);
            if let [d] = head {
                out.push(hex_digit(*d).ok_or_else(|| bad("bad hex digit"))?);
            }
            for pair in tail.chunks_exact(2) {
                let hi = hex_digit(pair[0]).ok_or_else(|| bad("bad hex digit"))?;
                let lo = hex_digit(pair[1]).ok_or_else(|| bad("bad hex digit"))?;
                out.push((hi << 4) | lo);
            }
            Ok(out)
        }
        "0b" | "0B" => base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| bad("bad base64")),
        _ => Err(bad("no 0x or 0b prefix")),
    }
}

/// Splits off a two-character encoding prefix (`0x`, `0b`); `("", value)` when there is
/// none. Works on any text, including multi-byte characters.
fn split_prefix(value: &str) -> (&str, &str) {
    match (value.get(..2), value.get(2..)) {
        (Some(p @ ("0x" | "0X" | "0b" | "0B")), Some(rest)) if !rest.is_empty() => (p, rest),
        _ => ("", value),
    }
}

fn hex_digit(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Encodes a binary value as `0x` followed by lower-case hex, the encoding every target
/// accepts.
pub fn encode_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// Splits text data into chunks of at most `max` bytes, for the C (continue) bit: §6.1 lets a
/// key=value pair span PDU boundaries.
pub fn split_chunks(data: &[u8], max: usize) -> Vec<Vec<u8>> {
    if data.is_empty() || max == 0 {
        return vec![data.to_vec()];
    }
    data.chunks(max).map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_and_encode_roundtrip() {
        let wire = b"InitiatorName=iqn.2024-01.test:i\0SessionType=Normal\0X-com.example.Thing=a,b\0";
        let t = TextKeys::decode(wire).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.get("SessionType"), Some("Normal"));
        assert_eq!(t.get("X-com.example.Thing"), Some("a,b"));
        assert_eq!(t.get("Missing"), None);
        assert_eq!(t.encode(), wire.to_vec());
    }

    #[test]
    fn values_may_contain_equals_and_be_empty() {
        let t = TextKeys::decode(b"TargetAlias=a=b\0InitiatorAlias=\0").unwrap();
        assert_eq!(t.get("TargetAlias"), Some("a=b"));
        assert_eq!(t.get("InitiatorAlias"), Some(""));
    }

    #[test]
    fn tolerates_missing_final_nul_and_trailing_padding() {
        assert_eq!(TextKeys::decode(b"A=1\0B=2").unwrap().get("B"), Some("2"));
        assert_eq!(TextKeys::decode(b"A=1\0\0\0\0").unwrap().len(), 1);
        assert!(TextKeys::decode(b"").unwrap().is_empty());
        assert!(TextKeys::decode(b"\0\0").unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(TextKeys::decode(b"A=1\0\0B=2\0"), Err(TextError::EmptyPair { offset: 4 })));
        assert!(matches!(TextKeys::decode(b"NoEquals\0"), Err(TextError::NotAPair { .. })));
        assert!(matches!(TextKeys::decode(b"=value\0"), Err(TextError::BadKey { .. })));
        assert!(matches!(TextKeys::decode(b"Bad Key=1\0"), Err(TextError::BadKey { .. })));
        assert!(matches!(TextKeys::decode(b"A=\xff\xfe\0"), Err(TextError::NotUtf8 { offset: 2 })));
        assert!(matches!(TextKeys::decode(b"B=1\0A=\xc3\0"), Err(TextError::NotUtf8 { offset: 6 })));
        let long_key = format!("{}=1\0", "K".repeat(64));
        assert!(matches!(TextKeys::decode(long_key.as_bytes()), Err(TextError::BadKey { .. })));
        let ok_key = format!("{}=1\0", "K".repeat(63));
        assert!(TextKeys::decode(ok_key.as_bytes()).is_ok());
    }

    #[test]
    fn duplicates_refused_in_negotiation_allowed_in_lists() {
        let wire = b"TargetName=a\0TargetAddress=1.2.3.4\0TargetName=b\0";
        assert_eq!(TextKeys::decode(wire), Err(TextError::Duplicate { key: "TargetName".into() }));
        let l = TextKeys::decode_list(wire).unwrap();
        assert_eq!(l.iter().filter(|(k, _)| *k == "TargetName").count(), 2);
    }

    #[test]
    fn value_length_limits() {
        let v255 = "a".repeat(255);
        let v256 = "a".repeat(256);
        assert!(TextKeys::decode(format!("TargetAlias={v255}\0").as_bytes()).is_ok());
        assert_eq!(
            TextKeys::decode(format!("TargetAlias={v256}\0").as_bytes()),
            Err(TextError::ValueTooLong { key: "TargetAlias".into(), len: 256, max: 255 })
        );
        // CHAP challenges may be 1024 bytes, 2050 characters in hex.
        let chal = format!("CHAP_C=0x{}\0", "ab".repeat(1024));
        assert!(TextKeys::decode(chal.as_bytes()).is_ok());
        // An unknown vendor key with a long value decodes (and is answered NotUnderstood).
        assert!(TextKeys::decode(format!("X-vendor.blob={}\0", "z".repeat(4000)).as_bytes()).is_ok());
        let mut t = TextKeys::new();
        assert!(t.push("TargetAlias", v256).is_err());
        assert!(t.push("InitiatorAlias", "a\0b").is_err());
        assert!(t.push("Bad=Key", "x").is_err());
        assert!(t.is_empty());
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("K", "Yes"), Ok(true));
        assert_eq!(parse_bool("K", "No"), Ok(false));
        assert!(parse_bool("K", "yes").is_err());
        assert!(parse_bool("K", "").is_err());
        assert_eq!(fmt_bool(true), "Yes");
        assert_eq!(fmt_bool(false), "No");
    }

    #[test]
    fn numbers_in_every_encoding() {
        assert_eq!(parse_number("K", "262144"), Ok(262_144));
        assert_eq!(parse_number("K", "0"), Ok(0));
        assert_eq!(parse_number("K", "0x40000"), Ok(262_144));
        assert_eq!(parse_number("K", "0X0000000000000000ff"), Ok(255));
        assert_eq!(parse_number("K", "0bAQA="), Ok(256));
        assert_eq!(parse_number("K", "18446744073709551615"), Ok(u64::MAX));
        for bad in ["", "-1", "+1", " 1", "1 ", "0x", "0xg", "12a", "18446744073709551616", "0x1ffffffffffffffff", "0b!!"] {
            assert!(parse_number("K", bad).is_err(), "{bad:?} must not parse");
        }
        assert_eq!(parse_number_in("K", "512", 512, 16_777_215), Ok(512));
        assert!(matches!(parse_number_in("K", "511", 512, 16_777_215), Err(TextError::OutOfRange { value: 511, .. })));
        assert!(parse_number_in("K", "16777216", 512, 16_777_215).is_err());
    }

    #[test]
    fn binary_values() {
        assert_eq!(parse_binary("K", "0x0102ff"), Ok(vec![1, 2, 0xff]));
        assert_eq!(parse_binary("K", "0XABC"), Ok(vec![0x0a, 0xbc]));
        assert_eq!(parse_binary("K", "0bAQL/"), Ok(vec![1, 2, 0xff]));
        assert!(parse_binary("K", "0x").is_err());
        assert!(parse_binary("K", "0x12zz").is_err());
        assert!(parse_binary("K", "1234").is_err());
        assert!(parse_binary("K", "0b***").is_err());
        assert_eq!(encode_hex(&[0, 0x5a, 0xff]), "0x005aff");
        assert_eq!(parse_binary("K", &encode_hex(&[9, 8, 7])), Ok(vec![9, 8, 7]));
    }

    #[test]
    fn lists_and_chunks() {
        assert_eq!(parse_list("CRC32C,None").collect::<Vec<_>>(), ["CRC32C", "None"]);
        let data: Vec<u8> = (0..20000u32).map(|i| (i % 251).to_be_bytes()[3]).collect();
        let chunks = split_chunks(&data, 8192);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [8192, 8192, 3616]);
        assert_eq!(chunks.concat(), data);
        assert_eq!(split_chunks(&[], 8192), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..2000 {
            let mut v = Vec::new();
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Bias towards the interesting bytes.
                v.push(match x % 7 {
                    0 => 0,
                    1 => b'=',
                    2 => b'A',
                    _ => x.to_be_bytes()[2],
                });
            }
            for len in 0..v.len() {
                let _ = TextKeys::decode(&v[..len]);
                let _ = TextKeys::decode_list(&v[..len]);
                if let Ok(s) = std::str::from_utf8(&v[..len]) {
                    let _ = parse_number("K", s);
                    let _ = parse_binary("K", s);
                }
            }
        }
    }
}
