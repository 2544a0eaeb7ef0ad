//! CHAP, the initiator side (RFC 7143 §12.1.3, on RFC 1994): the target challenges us, we
//! answer with H(CHAP_I || secret || CHAP_C); with mutual CHAP we challenge the target in
//! turn and check its answer.
//!
//! Algorithm numbers follow RFC 7143 and open-iscsi: 5 MD5, 6 SHA1, 7 SHA-256, 8 SHA3-256.
//! tgtd, IET and older SCST take 7 to mean SHA1. That cannot be detected before the target
//! answers, so the errors below name the likely cause when the symptoms match, and the
//! default offer is MD5 alone, which every target understands the same way.

use std::fmt;

use crate::text::{self, TextKeys};

/// Shortest target challenge we answer. A short challenge lets an attacker collect
/// responses to replay; LIO sends 16 bytes, tgtd 25..50.
pub const MIN_CHALLENGE_LEN: usize = 16;
/// Longest challenge allowed (§12.1.3: binary values of at most 1024 bytes).
pub const MAX_CHALLENGE_LEN: usize = 1024;
/// Bytes of randomness the login machine needs: our CHAP_I and CHAP_C for mutual CHAP.
pub const RANDOM_LEN: usize = 32;

/// CHAP digest algorithms, numbered as CHAP_A values (RFC 7143 §12.1.3; IANA PPP
/// authentication algorithms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ChapAlgorithm {
    Md5 = 5,
    Sha1 = 6,
    Sha256 = 7,
    Sha3_256 = 8,
}

impl ChapAlgorithm {
    /// The CHAP_A value.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            5 => Some(Self::Md5),
            6 => Some(Self::Sha1),
            7 => Some(Self::Sha256),
            8 => Some(Self::Sha3_256),
            _ => None,
        }
    }

    /// Length of a response (the digest) in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 | Self::Sha3_256 => 32,
        }
    }

    /// The CHAP response H(id || secret || challenge) (RFC 1994 §4.1).
    pub fn response(self, id: u8, secret: &Secret, challenge: &[u8]) -> Vec<u8> {
        fn h<D: md5::Digest>(id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update([id]);
            d.update(secret);
            d.update(challenge);
            d.finalize().to_vec()
        }
        let s = secret.expose();
        match self {
            Self::Md5 => h::<md5::Md5>(id, s, challenge),
            Self::Sha1 => h::<sha1::Sha1>(id, s, challenge),
            Self::Sha256 => h::<sha2::Sha256>(id, s, challenge),
            Self::Sha3_256 => h::<sha3::Sha3_256>(id, s, challenge),
        }
    }
}

impl fmt::Display for ChapAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Md5 => "MD5",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA-256",
            Self::Sha3_256 => "SHA3-256",
        };
        write!(f, "{name} (CHAP_A={})", self.code())
    }
}

/// A CHAP secret. Its `Debug` output is `<redacted>` so that it never reaches a log.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}
impl Eq for Secret {}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}
impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}
impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

/// Compares without an early exit, so timing tells nothing about where values differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// CHAP settings for one target (or for discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChapConfig {
    /// CHAP_N we send.
    pub username: String,
    pub secret: Secret,
    /// Mutual CHAP: the name the target must send and the secret it must prove.
    pub mutual: Option<(String, Secret)>,
    /// CHAP_A offer, in order of preference.
    pub algorithms: Vec<ChapAlgorithm>,
}

impl ChapConfig {
    /// One-way CHAP with the default algorithm list (MD5 only: the one algorithm every
    /// target numbers the same way).
    pub fn new(username: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Self { username: username.into(), secret: secret.into(), mutual: None, algorithms: vec![ChapAlgorithm::Md5] }
    }

    /// Checks the settings before any PDU is sent.
    pub fn validate(&self) -> Result<(), ChapError> {
        if self.username.is_empty() || self.username.len() > text::MAX_VALUE_LEN || self.username.contains('\0') {
            return Err(ChapError::BadConfig("the CHAP username must be 1 to 255 bytes without NUL"));
        }
        if self.secret.is_empty() {
            return Err(ChapError::BadConfig("the CHAP secret is empty"));
        }
        if self.algorithms.is_empty() {
            return Err(ChapError::BadConfig("no CHAP algorithm is enabled"));
        }
        if let Some((name, secret)) = &self.mutual {
            if name.is_empty() || name.len() > text::MAX_VALUE_LEN {
                return Err(ChapError::BadConfig("the mutual CHAP username must be 1 to 255 bytes"));
            }
            if secret.is_empty() {
                return Err(ChapError::BadConfig("the mutual CHAP secret is empty"));
            }
            // §9.2.1: a secret authenticating initiators must never authenticate targets;
            // otherwise a rogue target can reflect our own challenge back to us.
            if *secret == self.secret {
                return Err(ChapError::BadConfig(
                    "the mutual CHAP secret equals the initiator's CHAP secret; RFC 7143 forbids using one secret in both directions",
                ));
            }
        }
        Ok(())
    }
}

/// What went wrong in a CHAP exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChapError {
    #[error("invalid CHAP settings: {0}")]
    BadConfig(&'static str),
    #[error("the target supports none of the offered CHAP algorithms ({offered}); MD5 (5) is the one every target supports")]
    NoCommonAlgorithm { offered: String },
    #[error("the target chose CHAP algorithm {chosen}, which was not offered ({offered})")]
    AlgorithmNotOffered { chosen: String, offered: String },
    #[error("the target did not send {0}, which CHAP requires at this step")]
    MissingKey(&'static str),
    #[error("the target sent {0} at an unexpected step of the CHAP exchange")]
    UnexpectedKey(String),
    #[error("bad CHAP value from the target: {0}")]
    BadValue(#[from] text::TextError),
    #[error("the target's CHAP identifier {0} is outside 0..=255")]
    IdentifierOutOfRange(u64),
    #[error("the target's CHAP challenge is {len} bytes long; at least {min} are required")]
    ChallengeTooShort { len: usize, min: usize },
    #[error("the target's CHAP challenge is {len} bytes long; at most {max} are allowed")]
    ChallengeTooLong { len: usize, max: usize },
    #[error("the target sent back our own CHAP challenge (a reflection attack); refusing to answer it")]
    ReflectedChallenge,
    #[error("mutual CHAP: the target did not authenticate itself (no CHAP_N/CHAP_R in its last security response)")]
    TargetDidNotAuthenticate,
    #[error("mutual CHAP: the target calls itself {got:?}, but {expected:?} is configured as its CHAP name")]
    TargetNameMismatch { expected: String, got: String },
    #[error("{}", length_mismatch_message(*.algorithm, *.got))]
    ResponseLengthMismatch { algorithm: ChapAlgorithm, got: usize },
    #[error("mutual CHAP failed: the target's response does not match the configured target secret")]
    TargetAuthenticationFailed,
}

fn length_mismatch_message(algorithm: ChapAlgorithm, got: usize) -> String {
    let mut m = format!(
        "mutual CHAP: the target's response is {got} bytes long, but {algorithm} responses are {} bytes",
        algorithm.digest_len()
    );
    if algorithm == ChapAlgorithm::Sha256 && got == ChapAlgorithm::Sha1.digest_len() {
        m.push_str(
            "; the target most likely takes CHAP_A=7 to mean SHA1, as tgtd and other IET-derived targets do: offer MD5 only",
        );
    } else {
        m.push_str("; the target numbers CHAP algorithms differently: offer MD5 only");
    }
    m
}

/// The initiator's side of one CHAP exchange within a login.
#[derive(Debug, Clone)]
pub struct ChapInitiator {
    config: ChapConfig,
    /// Our CHAP_I and CHAP_C for mutual CHAP.
    own_id: u8,
    own_challenge: Vec<u8>,
    chosen: Option<ChapAlgorithm>,
    /// Length of the target's challenge, once received.
    challenge_len: Option<usize>,
}

impl ChapInitiator {
    /// `random` must be fresh for every login: it becomes our challenge in mutual CHAP.
    pub fn new(config: ChapConfig, random: &[u8; RANDOM_LEN]) -> Result<Self, ChapError> {
        config.validate()?;
        Ok(Self { config, own_id: random[0], own_challenge: random.to_vec(), chosen: None, challenge_len: None })
    }

    pub fn is_mutual(&self) -> bool {
        self.config.mutual.is_some()
    }

    /// The algorithm the target chose, once known.
    pub fn chosen(&self) -> Option<ChapAlgorithm> {
        self.chosen
    }

    /// Whether the target's challenge looks like an IET-derived target's (tgtd, IET, old
    /// SCST), which take CHAP_A=7 to mean SHA1: they send 25 to 49 random bytes, while a target
    /// that implements SHA-256 as RFC 7143 numbers it ties the challenge length to the digest
    /// size (LIO: 32 bytes for SHA-256).
    pub fn iet_style_challenge(&self) -> bool {
        self.chosen == Some(ChapAlgorithm::Sha256) && self.challenge_len.is_some_and(|n| n != 32)
    }

    /// The CHAP_A value to send: the configured algorithms, most preferred first.
    pub fn algorithm_offer(&self) -> String {
        let codes: Vec<String> = self.config.algorithms.iter().map(|a| a.code().to_string()).collect();
        codes.join(",")
    }

    /// Answers the target's CHAP_A / CHAP_I / CHAP_C with CHAP_N and CHAP_R, plus our own
    /// CHAP_I and CHAP_C when mutual CHAP is configured.
    pub fn respond(&mut self, keys: &TextKeys) -> Result<TextKeys, ChapError> {
        let a = keys.get("CHAP_A").ok_or(ChapError::MissingKey("CHAP_A"))?;
        if a == text::REJECT {
            return Err(ChapError::NoCommonAlgorithm { offered: self.algorithm_offer() });
        }
        let not_offered = || ChapError::AlgorithmNotOffered { chosen: a.to_owned(), offered: self.algorithm_offer() };
        let code = text::parse_number("CHAP_A", a).map_err(|_| not_offered())?;
        let alg = ChapAlgorithm::from_code(code)
            .filter(|alg| self.config.algorithms.contains(alg))
            .ok_or_else(not_offered)?;

        let i = keys.get("CHAP_I").ok_or(ChapError::MissingKey("CHAP_I"))?;
        let id = text::parse_number("CHAP_I", i)?;
        let id = u8::try_from(id).map_err(|_| ChapError::IdentifierOutOfRange(id))?;

        let c = keys.get("CHAP_C").ok_or(ChapError::MissingKey("CHAP_C"))?;
        let challenge = text::parse_binary("CHAP_C", c)?;
        if challenge.len() < MIN_CHALLENGE_LEN {
            return Err(ChapError::ChallengeTooShort { len: challenge.len(), min: MIN_CHALLENGE_LEN });
        }
        if challenge.len() > MAX_CHALLENGE_LEN {
            return Err(ChapError::ChallengeTooLong { len: challenge.len(), max: MAX_CHALLENGE_LEN });
        }
        // §12.1.3: a challenge equal to ours means someone wants us to compute the answer to
        // our own challenge for them.
        if self.is_mutual() && ct_eq(&challenge, &self.own_challenge) {
            return Err(ChapError::ReflectedChallenge);
        }
        self.chosen = Some(alg);
        self.challenge_len = Some(challenge.len());

        let mut out = TextKeys::new();
        out.push("CHAP_N", self.config.username.clone())?;
        out.push("CHAP_R", text::encode_hex(&alg.response(id, &self.config.secret, &challenge)))?;
        if self.is_mutual() {
            out.push("CHAP_I", self.own_id.to_string())?;
            out.push("CHAP_C", text::encode_hex(&self.own_challenge))?;
        }
        Ok(out)
    }

    /// Checks the target's CHAP_N / CHAP_R (mutual CHAP). Returns `Ok(false)` when they are
    /// not (yet) present.
    pub fn verify_target(&self, keys: &TextKeys) -> Result<bool, ChapError> {
        let (Some((expected_name, secret)), Some(alg)) = (&self.config.mutual, self.chosen) else {
            return Ok(false);
        };
        let (n, r) = match (keys.get("CHAP_N"), keys.get("CHAP_R")) {
            (None, None) => return Ok(false),
            (Some(_), None) => return Err(ChapError::MissingKey("CHAP_R")),
            (None, Some(_)) => return Err(ChapError::MissingKey("CHAP_N")),
            (Some(n), Some(r)) => (n, r),
        };
        if n != expected_name {
            return Err(ChapError::TargetNameMismatch { expected: expected_name.clone(), got: n.to_owned() });
        }
        let got = text::parse_binary("CHAP_R", r)?;
        if got.len() != alg.digest_len() {
            return Err(ChapError::ResponseLengthMismatch { algorithm: alg, got: got.len() });
        }
        let expected = alg.response(self.own_id, secret, &self.own_challenge);
        if !ct_eq(&got, &expected) {
            return Err(ChapError::TargetAuthenticationFailed);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn unhex(s: &str) -> Vec<u8> {
        text::parse_binary("test", &format!("0x{s}")).unwrap()
    }

    // Expected values computed outside this crate (Python hashlib) for
    // id 0x2a, secret "verysecretpassword", challenge 00 01 .. 0f.
    #[test]
    fn responses_match_known_vectors() {
        let secret = Secret::from("verysecretpassword");
        let challenge: Vec<u8> = (0u8..16).collect();
        let cases = [
            (ChapAlgorithm::Md5, "72d8e9d78f56051651be893debbaf285"),
            (ChapAlgorithm::Sha1, "e72f04d61ab2db1aaaeff3cb7331520437620335"),
            (ChapAlgorithm::Sha256, "9b7eefbc21331bba7e13f0c72f0fc7cd6a120ab4e0104b820bb083d772bb2cab"),
            (ChapAlgorithm::Sha3_256, "178af1b6e26429b15a43ccc23e5cc11a1fb856d190c56ff6de738e3c3e3cfaae"),
        ];
        for (alg, hex) in cases {
            let r = alg.response(0x2a, &secret, &challenge);
            assert_eq!(r, unhex(hex), "{alg}");
            assert_eq!(r.len(), alg.digest_len());
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let cfg = ChapConfig {
            mutual: Some(("tgt".into(), Secret::from("target-secret-1"))),
            ..ChapConfig::new("user", "initiator-secret")
        };
        let shown = format!("{cfg:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains("initiator-secret"));
        assert!(!shown.contains("target-secret-1"));
    }

    #[test]
    fn config_validation() {
        assert!(ChapConfig::new("u", "s3cret-s3cret").validate().is_ok());
        assert!(ChapConfig::new("", "s").validate().is_err());
        assert!(ChapConfig::new("u", "").validate().is_err());
        let none = ChapConfig { algorithms: vec![], ..ChapConfig::new("u", "s") };
        assert!(none.validate().is_err());
        let same = ChapConfig { mutual: Some(("t".into(), Secret::from("s"))), ..ChapConfig::new("u", "s") };
        assert!(matches!(same.validate(), Err(ChapError::BadConfig(m)) if m.contains("both directions")));
    }

    fn challenge_keys(a: &str, i: &str, c: &str) -> TextKeys {
        let mut k = TextKeys::new();
        k.push("CHAP_A", a).unwrap();
        k.push("CHAP_I", i).unwrap();
        k.push("CHAP_C", c).unwrap();
        k
    }

    #[test]
    fn one_way_response() {
        let mut c = ChapInitiator::new(ChapConfig::new("user", "verysecretpassword"), &[7; RANDOM_LEN]).unwrap();
        assert_eq!(c.algorithm_offer(), "5");
        let out = c.respond(&challenge_keys("5", "42", "0x000102030405060708090a0b0c0d0e0f")).unwrap();
        assert_eq!(out.get("CHAP_N"), Some("user"));
        assert_eq!(out.get("CHAP_R"), Some("0x72d8e9d78f56051651be893debbaf285"));
        assert!(!out.contains("CHAP_C"), "no challenge of ours without mutual CHAP");
        // The same challenge in base64 gives the same answer.
        let mut c2 = ChapInitiator::new(ChapConfig::new("user", "verysecretpassword"), &[7; RANDOM_LEN]).unwrap();
        let out2 = c2.respond(&challenge_keys("0x5", "0x2a", "0bAAECAwQFBgcICQoLDA0ODw==")).unwrap();
        assert_eq!(out2.get("CHAP_R"), out.get("CHAP_R"));
    }

    #[test]
    fn bad_challenges_are_refused() {
        let mk = || ChapInitiator::new(ChapConfig::new("u", "secret-secret"), &[1; RANDOM_LEN]).unwrap();
        let c16 = format!("0x{}", "ab".repeat(16));
        assert!(matches!(mk().respond(&challenge_keys("5", "256", &c16)), Err(ChapError::IdentifierOutOfRange(256))));
        assert!(matches!(mk().respond(&challenge_keys("5", "-1", &c16)), Err(ChapError::BadValue(_))));
        assert!(matches!(
            mk().respond(&challenge_keys("5", "1", &format!("0x{}", "ab".repeat(15)))),
            Err(ChapError::ChallengeTooShort { len: 15, min: 16 })
        ));
        assert!(matches!(mk().respond(&challenge_keys("5", "1", "0xzz")), Err(ChapError::BadValue(_))));
        assert!(matches!(mk().respond(&challenge_keys("7", "1", &c16)), Err(ChapError::AlgorithmNotOffered { .. })));
        assert!(matches!(mk().respond(&challenge_keys("5,7", "1", &c16)), Err(ChapError::AlgorithmNotOffered { .. })));
        assert!(matches!(mk().respond(&challenge_keys("Reject", "1", &c16)), Err(ChapError::NoCommonAlgorithm { .. })));
        let mut k = TextKeys::new();
        k.push("CHAP_A", "5").unwrap();
        assert_eq!(mk().respond(&k).unwrap_err(), ChapError::MissingKey("CHAP_I"));
    }

    #[test]
    fn mutual_exchange_and_reflection() {
        let random: [u8; RANDOM_LEN] = std::array::from_fn(|i| u8::try_from(i).unwrap() * 3 + 1);
        let cfg = ChapConfig {
            mutual: Some(("target-user".into(), Secret::from("target-secret-x"))),
            algorithms: vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5],
            ..ChapConfig::new("user", "initiator-secret")
        };
        // Our own challenge reflected back is refused.
        let mut c = ChapInitiator::new(cfg.clone(), &random).unwrap();
        assert_eq!(c.algorithm_offer(), "7,5");
        let reflected = challenge_keys("5", "9", &text::encode_hex(&random));
        assert_eq!(c.respond(&reflected).unwrap_err(), ChapError::ReflectedChallenge);

        let mut c = ChapInitiator::new(cfg, &random).unwrap();
        let out = c.respond(&challenge_keys("7", "9", &format!("0x{}", "55".repeat(20)))).unwrap();
        assert_eq!(c.chosen(), Some(ChapAlgorithm::Sha256));
        let our_id = text::parse_number("CHAP_I", out.get("CHAP_I").unwrap()).unwrap();
        let our_c = text::parse_binary("CHAP_C", out.get("CHAP_C").unwrap()).unwrap();
        assert_eq!(our_c, random.to_vec());
        assert!(our_c.len() >= MIN_CHALLENGE_LEN);

        // The target's answer, computed here with the hash crate directly.
        let mut h = sha2::Sha256::new();
        h.update([u8::try_from(our_id).unwrap()]);
        h.update(b"target-secret-x");
        h.update(&our_c);
        let good = text::encode_hex(&h.finalize());
        let answer = |n: &str, r: &str| {
            let mut k = TextKeys::new();
            k.push("CHAP_N", n).unwrap();
            k.push("CHAP_R", r).unwrap();
            k
        };
        assert_eq!(c.verify_target(&TextKeys::new()), Ok(false));
        assert_eq!(c.verify_target(&answer("target-user", &good)), Ok(true));
        assert!(matches!(c.verify_target(&answer("someone", &good)), Err(ChapError::TargetNameMismatch { .. })));
        let mut wrong = text::parse_binary("r", &good).unwrap();
        wrong[0] ^= 1;
        assert_eq!(
            c.verify_target(&answer("target-user", &text::encode_hex(&wrong))),
            Err(ChapError::TargetAuthenticationFailed)
        );
        // A 20-byte answer after choosing 7: tgtd speaking SHA1. The message says so.
        let e = c.verify_target(&answer("target-user", &format!("0x{}", "11".repeat(20)))).unwrap_err();
        assert_eq!(e, ChapError::ResponseLengthMismatch { algorithm: ChapAlgorithm::Sha256, got: 20 });
        let msg = e.to_string();
        assert!(msg.contains("SHA1") && msg.contains("tgtd") && msg.contains("MD5 only"), "{msg}");
    }
}
