//! Operational parameter negotiation (RFC 7143 §6.2, §6.4, §13): the key table, the result
//! functions, and [`Negotiator`], which tracks one login's offers and answers.
//!
//! Roles change key by key: for keys we send first we are the originator and check the
//! target's answer against the rule; for keys the target sends first (tgtd offers every
//! value that differs from the default) we are the responder and must answer, or the login
//! never completes.

use std::collections::{HashMap, HashSet};

use crate::pdu::{Digests, FrameConfig};
use crate::text::{self, TextError, TextKeys, IRRELEVANT, NOT_UNDERSTOOD, REJECT};

/// Largest data segment / burst length value (§13.12-13.14: 2^24 - 1).
pub const MAX_LENGTH: u32 = 16_777_215;
/// Smallest data segment / burst length value (§13.12-13.14).
pub const MIN_LENGTH: u32 = 512;
/// MaxRecvDataSegmentLength assumed for a peer that declares none (§13.12).
pub const DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH: u32 = 8192;

/// A HeaderDigest / DataDigest value (§13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    None,
    Crc32c,
}

impl Digest {
    /// The value as spelled on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Digest::None => "None",
            Digest::Crc32c => "CRC32C",
        }
    }
    pub fn from_wire(v: &str) -> Option<Self> {
        match v {
            "None" => Some(Digest::None),
            "CRC32C" => Some(Digest::Crc32c),
            _ => None,
        }
    }
}

/// Our negotiation preferences. `Default` gives the values lunlink offers out of the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// HeaderDigest, in order of preference (§13.1).
    pub header_digest: Vec<Digest>,
    /// DataDigest, in order of preference (§13.1).
    pub data_digest: Vec<Digest>,
    /// The longest data segment we accept (declarative, §13.12).
    pub max_recv_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_outstanding_r2t: u32,
    pub default_time2wait: u32,
    /// Defaults to 0: at ErrorRecoveryLevel 0 we never reassign tasks to a new connection
    /// (§7), so the target need not keep them after a connection drops; open-iscsi offers 0
    /// too.
    pub default_time2retain: u32,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub error_recovery_level: u8,
    pub max_connections: u32,
}

impl Default for Offer {
    fn default() -> Self {
        Self {
            header_digest: vec![Digest::None],
            data_digest: vec![Digest::None],
            max_recv_data_segment_length: 262_144,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            initial_r2t: false,
            immediate_data: true,
            max_outstanding_r2t: 1,
            default_time2wait: 2,
            default_time2retain: 0,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
            max_connections: 1,
        }
    }
}

impl Offer {
    /// Checks every value is one RFC 7143 §13 allows, so we never offer what a target must
    /// reject.
    pub fn validate(&self) -> Result<(), NegotiationError> {
        let bad = |key: &'static str, reason: &'static str| Err(NegotiationError::BadOffer { key, reason });
        for (key, list) in [("HeaderDigest", &self.header_digest), ("DataDigest", &self.data_digest)] {
            if list.is_empty() {
                return bad(key, "the digest list is empty");
            }
            if list.iter().enumerate().any(|(i, d)| list[..i].contains(d)) {
                return bad(key, "the digest list repeats a value");
            }
        }
        for key in KEYS.iter().filter(|k| k.offered) {
            if let (Some(Pref::Num(v)), Kind::Min(lo, hi) | Kind::Max(lo, hi) | Kind::Declarative(lo, hi)) =
                (self.pref(key.name), key.kind)
            {
                if v < lo || v > hi {
                    return bad(key.name, "the value is outside the range RFC 7143 §13 allows");
                }
            }
        }
        if self.first_burst_length > self.max_burst_length {
            return bad("FirstBurstLength", "FirstBurstLength must not exceed MaxBurstLength (§13.14)");
        }
        Ok(())
    }

    /// Our preference for a key, in negotiation terms.
    fn pref(&self, key: &str) -> Option<Pref> {
        let digests = |l: &[Digest]| Pref::List(l.iter().map(|d| d.as_str()).collect());
        Some(match key {
            "HeaderDigest" => digests(&self.header_digest),
            "DataDigest" => digests(&self.data_digest),
            "MaxRecvDataSegmentLength" => Pref::Num(self.max_recv_data_segment_length),
            "MaxConnections" => Pref::Num(self.max_connections),
            "InitialR2T" => Pref::Bool(self.initial_r2t),
            "ImmediateData" => Pref::Bool(self.immediate_data),
            "MaxBurstLength" => Pref::Num(self.max_burst_length),
            "FirstBurstLength" => Pref::Num(self.first_burst_length),
            "DefaultTime2Wait" => Pref::Num(self.default_time2wait),
            "DefaultTime2Retain" => Pref::Num(self.default_time2retain),
            "MaxOutstandingR2T" => Pref::Num(self.max_outstanding_r2t),
            "DataPDUInOrder" => Pref::Bool(self.data_pdu_in_order),
            "DataSequenceInOrder" => Pref::Bool(self.data_sequence_in_order),
            "ErrorRecoveryLevel" => Pref::Num(self.error_recovery_level.into()),
            // RFC 7143 is iSCSIProtocolLevel 1 (RFC 7144 §2.1).
            "iSCSIProtocolLevel" => Pref::Num(1),
            // We implement neither ResponseFence nor FastAbort (§13.23).
            "TaskReporting" => Pref::List(vec!["RFC3720"]),
            // iSER is not for a TCP initiator (RFC 7145).
            "RDMAExtensions" => Pref::Bool(false),
            _ => return None,
        })
    }
}

/// What was negotiated, with RFC defaults for everything the target left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    pub header_digest: bool,
    pub data_digest: bool,
    /// The longest data segment we accept (our declaration).
    pub max_recv_data_segment_length: u32,
    /// The longest data segment we may send (the target's declaration, 8192 if it made none).
    pub max_xmit_data_segment_length: u32,
    pub max_burst_length: u32,
    /// Never larger than `max_burst_length` (§13.14).
    pub first_burst_length: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_outstanding_r2t: u32,
    pub default_time2wait: u32,
    pub default_time2retain: u32,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub error_recovery_level: u8,
    pub max_connections: u32,
}

impl Default for SessionParams {
    /// The RFC 7143 §13 defaults, which hold for every key not negotiated.
    fn default() -> Self {
        Self {
            header_digest: false,
            data_digest: false,
            max_recv_data_segment_length: DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH,
            max_xmit_data_segment_length: DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            initial_r2t: true,
            immediate_data: true,
            max_outstanding_r2t: 1,
            default_time2wait: 2,
            default_time2retain: 20,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
            max_connections: 1,
        }
    }
}

impl SessionParams {
    /// What our PDU decoder must accept once the login is over.
    pub fn frame_config(&self) -> FrameConfig {
        FrameConfig {
            digests: Digests { header: self.header_digest, data: self.data_digest },
            max_recv_data_segment: self.max_recv_data_segment_length,
        }
    }
}

/// Negotiation failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    #[error("invalid {key} setting: {reason}")]
    BadOffer { key: &'static str, reason: &'static str },
    #[error("the target sent an invalid value: {0}")]
    BadValue(#[from] TextError),
    #[error("the target answered {key}={answer} to our offer {key}={offered}, which RFC 7143 §13 does not allow ({rule})")]
    BadAnswer { key: &'static str, offered: String, answer: String, rule: &'static str },
    #[error("the target sent {key} a second time in this login; RFC 7143 §6.2 allows each key to be negotiated once")]
    Renegotiated { key: String },
    #[error("the target refused {key}={offered} ({answer}), and the configuration allows no alternative")]
    Refused { key: &'static str, offered: String, answer: String },
    #[error("the target does not support any {key} value the configuration allows ({offered}); it offered {theirs}")]
    NoCommonValue { key: &'static str, offered: String, theirs: String },
    #[error("the target did not answer {key}={offered}, and its default (None) is not allowed by the configuration")]
    Unanswered { key: &'static str, offered: String },
}

/// How a key's result is computed (§6.2.2, §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Numerical, the result is the smaller value; the range allowed.
    Min(u32, u32),
    /// Numerical, the result is the larger value.
    Max(u32, u32),
    /// Boolean OR.
    Or,
    /// Boolean AND.
    And,
    /// List: the responder picks the first value of the offerer's list it supports (§6.2.1).
    List,
    /// Declarative: each side states its own value, no answer is expected (§6.2).
    Declarative(u32, u32),
    /// Obsolete keys that must be answered Reject (§13.25).
    Obsolete,
}

/// One operational key of RFC 7143 §13.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDef {
    pub name: &'static str,
    pub kind: Kind,
    /// The value in force when the key is not negotiated.
    pub default: &'static str,
    /// Negotiated on the leading connection only (LO in §13).
    pub leading_only: bool,
    /// Meaningful in a discovery session (not "Irrelevant when SessionType=Discovery").
    pub discovery: bool,
    /// Whether lunlink offers the key itself (normal sessions).
    pub offered: bool,
}

const fn key(name: &'static str, kind: Kind, default: &'static str, leading_only: bool, discovery: bool, offered: bool) -> KeyDef {
    KeyDef { name, kind, default, leading_only, discovery, offered }
}

/// The operational keys (RFC 7143 §13, plus RFC 7144 iSCSIProtocolLevel and RFC 7145
/// RDMAExtensions, which a target may offer), in the order we offer them.
pub const KEYS: &[KeyDef] = &[
    key("HeaderDigest", Kind::List, "None", false, true, true),
    key("DataDigest", Kind::List, "None", false, true, true),
    key("MaxRecvDataSegmentLength", Kind::Declarative(MIN_LENGTH, MAX_LENGTH), "8192", false, true, true),
    key("MaxConnections", Kind::Min(1, 65_535), "1", true, false, true),
    key("InitialR2T", Kind::Or, "Yes", true, false, true),
    key("ImmediateData", Kind::And, "Yes", true, false, true),
    key("MaxBurstLength", Kind::Min(MIN_LENGTH, MAX_LENGTH), "262144", true, false, true),
    key("FirstBurstLength", Kind::Min(MIN_LENGTH, MAX_LENGTH), "65536", true, false, true),
    key("DefaultTime2Wait", Kind::Max(0, 3600), "2", true, true, true),
    key("DefaultTime2Retain", Kind::Min(0, 3600), "20", true, true, true),
    key("MaxOutstandingR2T", Kind::Min(1, 65_535), "1", true, false, true),
    key("DataPDUInOrder", Kind::Or, "Yes", true, false, true),
    key("DataSequenceInOrder", Kind::Or, "Yes", true, false, true),
    key("ErrorRecoveryLevel", Kind::Min(0, 2), "0", true, true, true),
    key("iSCSIProtocolLevel", Kind::Min(0, 31), "0", true, true, false),
    key("TaskReporting", Kind::List, "RFC3720", true, false, false),
    key("RDMAExtensions", Kind::And, "No", true, true, false),
    key("OFMarker", Kind::Obsolete, "No", false, true, false),
    key("IFMarker", Kind::Obsolete, "No", false, true, false),
    key("OFMarkInt", Kind::Obsolete, "2048", false, true, false),
    key("IFMarkInt", Kind::Obsolete, "2048", false, true, false),
];

/// Keys other than operational ones that the login knows: security keys (§12) and
/// declarations (§13.4-13.9, §13.21).
const OTHER_KEYS: &[&str] = &[
    "AuthMethod",
    "CHAP_A",
    "CHAP_I",
    "CHAP_C",
    "CHAP_N",
    "CHAP_R",
    "SessionType",
    "InitiatorName",
    "InitiatorAlias",
    "TargetName",
    "TargetAlias",
    "TargetAddress",
    "TargetPortalGroupTag",
    "SendTargets",
];

pub fn key_def(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

/// Whether lunlink knows the key at all (others are answered NotUnderstood).
pub fn is_known_key(name: &str) -> bool {
    key_def(name).is_some() || OTHER_KEYS.contains(&name)
}

/// Our preference for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pref {
    Num(u32),
    Bool(bool),
    List(Vec<&'static str>),
}

impl Pref {
    fn to_wire(&self) -> String {
        match self {
            Pref::Num(n) => n.to_string(),
            Pref::Bool(b) => text::fmt_bool(*b).to_owned(),
            Pref::List(l) => l.join(","),
        }
    }
}

/// A negotiated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Num(u32),
    Bool(bool),
    Text(String),
}

/// Parses a value of `def`'s kind and range.
fn parse_value(def: &KeyDef, v: &str) -> Result<Value, TextError> {
    Ok(match def.kind {
        Kind::Min(lo, hi) | Kind::Max(lo, hi) | Kind::Declarative(lo, hi) => {
            Value::Num(text::parse_number_in(def.name, v, lo, hi)?)
        }
        Kind::Or | Kind::And => Value::Bool(text::parse_bool(def.name, v)?),
        Kind::List | Kind::Obsolete => Value::Text(v.to_owned()),
    })
}

/// The value a key has when not negotiated.
pub fn default_value(def: &KeyDef) -> Value {
    // The table's defaults are valid by construction (tested below); fall back to the text.
    parse_value(def, def.default).unwrap_or_else(|_| Value::Text(def.default.to_owned()))
}

/// Result of a numerical-min negotiation (§6.2.2).
pub fn min_result(a: u32, b: u32) -> u32 {
    a.min(b)
}
/// Result of a numerical-max negotiation (§6.2.2).
pub fn max_result(a: u32, b: u32) -> u32 {
    a.max(b)
}
/// Result of a Boolean OR negotiation (§6.2.2).
pub fn or_result(a: bool, b: bool) -> bool {
    a || b
}
/// Result of a Boolean AND negotiation (§6.2.2).
pub fn and_result(a: bool, b: bool) -> bool {
    a && b
}
/// List negotiation (§6.2.1): the first value of the offerer's list the responder supports.
pub fn list_result<'a>(offered: &'a str, supported: &[&str]) -> Option<&'a str> {
    text::parse_list(offered).find(|v| supported.contains(v))
}

/// Answers a key the target offered. Returns the answer to send and the resulting value
/// (`None`: the key keeps its default).
fn answer_offer(def: &KeyDef, pref: &Pref, offered: &str) -> (String, Option<Value>) {
    let reject = || (REJECT.to_owned(), None);
    match (def.kind, pref) {
        (Kind::Obsolete, _) => reject(),
        (Kind::List, Pref::List(ours)) => match list_result(offered, ours) {
            Some(v) => (v.to_owned(), Some(Value::Text(v.to_owned()))),
            None => reject(),
        },
        (Kind::Min(..) | Kind::Max(..), Pref::Num(ours)) => match parse_value(def, offered) {
            Ok(Value::Num(theirs)) => {
                let r = if matches!(def.kind, Kind::Min(..)) { min_result(theirs, *ours) } else { max_result(theirs, *ours) };
                (r.to_string(), Some(Value::Num(r)))
            }
            // §6.2: an out-of-range or malformed offer is answered Reject.
            _ => reject(),
        },
        (Kind::Or | Kind::And, Pref::Bool(ours)) => match parse_value(def, offered) {
            Ok(Value::Bool(theirs)) => {
                let r = if def.kind == Kind::Or { or_result(theirs, *ours) } else { and_result(theirs, *ours) };
                (text::fmt_bool(r).to_owned(), Some(Value::Bool(r)))
            }
            _ => reject(),
        },
        _ => reject(),
    }
}

/// Checks the target's answer to our offer (§6.2: a result that breaks the key's rule is a
/// protocol error). `Ok(None)`: Reject / Irrelevant / NotUnderstood, the default holds.
fn check_answer(def: &'static KeyDef, pref: &Pref, answer: &str) -> Result<Option<Value>, NegotiationError> {
    if [REJECT, IRRELEVANT, NOT_UNDERSTOOD].contains(&answer) {
        return Ok(None);
    }
    let bad = |rule| NegotiationError::BadAnswer { key: def.name, offered: pref.to_wire(), answer: answer.to_owned(), rule };
    match (def.kind, pref) {
        (Kind::List, Pref::List(ours)) => {
            if ours.contains(&answer) {
                Ok(Some(Value::Text(answer.to_owned())))
            } else {
                Err(bad("the answer must be one of the offered values"))
            }
        }
        (Kind::Min(..), Pref::Num(ours)) => match parse_value(def, answer) {
            Ok(Value::Num(a)) if a <= *ours => Ok(Some(Value::Num(a))),
            Ok(_) => Err(bad("the answer must not exceed the offer")),
            Err(_) => Err(bad("the answer must be a number in the key's range")),
        },
        (Kind::Max(..), Pref::Num(ours)) => match parse_value(def, answer) {
            Ok(Value::Num(a)) if a >= *ours => Ok(Some(Value::Num(a))),
            Ok(_) => Err(bad("the answer must not be below the offer")),
            Err(_) => Err(bad("the answer must be a number in the key's range")),
        },
        (Kind::Or | Kind::And, Pref::Bool(ours)) => match parse_value(def, answer) {
            // OR with Yes and AND with No are settled by the offer alone.
            Ok(Value::Bool(a)) if def.kind == Kind::Or && *ours && !a => Err(bad("Yes OR anything is Yes")),
            Ok(Value::Bool(a)) if def.kind == Kind::And && !*ours && a => Err(bad("No AND anything is No")),
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(bad("the answer must be Yes or No")),
        },
        _ => Err(bad("unexpected answer")),
    }
}

/// The operational negotiation of one login, across the security and operational stages.
#[derive(Debug, Clone)]
pub struct Negotiator {
    offer: Offer,
    discovery: bool,
    leading: bool,
    /// Keys we offered and the target has not answered yet.
    pending: HashMap<&'static str, Pref>,
    /// Keys offered and answered, or declared, by the target; a second round is
    /// renegotiation.
    settled: HashSet<String>,
    /// Our declarations (MaxRecvDataSegmentLength), sent once.
    declared: HashSet<&'static str>,
    /// Offers that went unanswered when the login ended.
    unanswered: HashMap<&'static str, Pref>,
    results: HashMap<&'static str, Value>,
    target_max_recv: Option<u32>,
    target_alias: Option<String>,
    tpgt: Option<u16>,
    target_address: Option<String>,
}

impl Negotiator {
    /// `leading`: the first connection of a session (TSIH 0), the only one that negotiates
    /// session-wide (LO) keys.
    pub fn new(offer: Offer, discovery: bool, leading: bool) -> Self {
        Self {
            offer,
            discovery,
            leading,
            pending: HashMap::new(),
            settled: HashSet::new(),
            declared: HashSet::new(),
            unanswered: HashMap::new(),
            results: HashMap::new(),
            target_max_recv: None,
            target_alias: None,
            tpgt: None,
            target_address: None,
        }
    }

    fn relevant(&self, def: &KeyDef) -> bool {
        (def.discovery || !self.discovery) && (self.leading || !def.leading_only)
    }

    /// Our offers for the operational stage: every key that applies to this session and has
    /// not been settled already. A discovery session offers only the keys that matter there
    /// (§13: most are Irrelevant when SessionType=Discovery): digests and
    /// MaxRecvDataSegmentLength.
    pub fn offers(&mut self) -> Result<TextKeys, NegotiationError> {
        let mut out = TextKeys::new();
        for def in KEYS.iter().filter(|k| k.offered) {
            let wanted = if self.discovery {
                matches!(def.name, "HeaderDigest" | "DataDigest" | "MaxRecvDataSegmentLength")
            } else {
                self.relevant(def)
            };
            let done = self.settled.contains(def.name) || self.declared.contains(def.name);
            if !wanted || done || self.pending.contains_key(def.name) {
                continue;
            }
            let Some(pref) = self.offer.pref(def.name) else { continue };
            out.push(def.name, pref.to_wire())?;
            if matches!(def.kind, Kind::Declarative(..)) {
                self.declared.insert(def.name);
            } else {
                self.pending.insert(def.name, pref);
            }
        }
        Ok(out)
    }

    /// Takes the target's keys: answers to our offers, its own offers, and its declarations.
    /// Returns what we must answer. Security keys (AuthMethod, CHAP_*) are left to the login.
    pub fn handle(&mut self, keys: &TextKeys) -> Result<TextKeys, NegotiationError> {
        let mut answers = TextKeys::new();
        for (k, v) in keys.iter() {
            if k == "AuthMethod" || k.starts_with("CHAP_") {
                continue;
            }
            if let Some(pref) = self.pending.remove(k) {
                let def = key_def(k).ok_or_else(|| NegotiationError::Renegotiated { key: k.to_owned() })?;
                self.settled.insert(k.to_owned());
                match check_answer(def, &pref, v)? {
                    Some(val) => {
                        self.results.insert(def.name, val);
                    }
                    None => self.take_default(def, &pref, v)?,
                }
                continue;
            }
            // TargetAddress may repeat (§13.8); everything else is stated once. A target
            // repeating one of its declarations unchanged says nothing new: tolerated.
            if k != "TargetAddress" && !self.settled.insert(k.to_owned()) {
                if self.same_declaration(k, v) {
                    continue;
                }
                return Err(NegotiationError::Renegotiated { key: k.to_owned() });
            }
            match k {
                "TargetAlias" => self.target_alias = Some(v.to_owned()),
                "TargetAddress" => self.target_address = Some(v.to_owned()),
                "TargetPortalGroupTag" => {
                    let t = text::parse_number_in(k, v, 0, 65_535)?;
                    self.tpgt = u16::try_from(t).ok();
                }
                "MaxRecvDataSegmentLength" => {
                    self.target_max_recv = Some(text::parse_number_in(k, v, MIN_LENGTH, MAX_LENGTH)?);
                }
                // Initiator-side declarations echoed back carry no information for us.
                "InitiatorName" | "InitiatorAlias" | "TargetName" | "SessionType" | "SendTargets" => {}
                _ => match key_def(k) {
                    Some(def) => {
                        let answer = self.answer(def, v)?;
                        answers.push(k, answer)?;
                    }
                    None => answers.push(k, NOT_UNDERSTOOD)?,
                },
            }
        }
        Ok(answers)
    }

    fn same_declaration(&self, key: &str, v: &str) -> bool {
        let num = || text::parse_number(key, v).ok();
        match key {
            "TargetAlias" => self.target_alias.as_deref() == Some(v),
            "TargetPortalGroupTag" => num().is_some() && num() == self.tpgt.map(u64::from),
            "MaxRecvDataSegmentLength" => num().is_some() && num() == self.target_max_recv.map(u64::from),
            _ => false,
        }
    }

    /// Our answer to a key the target offered.
    fn answer(&mut self, def: &'static KeyDef, offered: &str) -> Result<String, NegotiationError> {
        if !self.relevant(def) {
            return Ok(IRRELEVANT.to_owned());
        }
        let Some(pref) = self.offer.pref(def.name) else {
            return Ok(REJECT.to_owned());
        };
        let (answer, value) = answer_offer(def, &pref, offered);
        match value {
            Some(v) => {
                self.results.insert(def.name, v);
            }
            None => self.take_default(def, &pref, offered)?,
        }
        Ok(answer)
    }

    /// The key keeps its default; fails when the configuration forbids the default (a
    /// digest we require).
    fn take_default(&mut self, def: &'static KeyDef, pref: &Pref, theirs: &str) -> Result<(), NegotiationError> {
        if let (Kind::List, Pref::List(ours)) = (def.kind, pref) {
            if !ours.contains(&def.default) {
                return Err(if [REJECT, IRRELEVANT, NOT_UNDERSTOOD].contains(&theirs) {
                    NegotiationError::Refused { key: def.name, offered: pref.to_wire(), answer: theirs.to_owned() }
                } else {
                    NegotiationError::NoCommonValue { key: def.name, offered: pref.to_wire(), theirs: theirs.to_owned() }
                });
            }
        }
        self.results.remove(def.name);
        Ok(())
    }

    /// Whether offers are still waiting for the target's answer.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the negotiation. Offers the target never answered take their default, unless
    /// our offer alone decides the result (OR with Yes, AND with No: §6.2.2 lets the
    /// responder omit those answers).
    pub fn finish(&mut self) -> Result<SessionParams, NegotiationError> {
        for (name, pref) in std::mem::take(&mut self.pending) {
            let Some(def) = key_def(name) else { continue };
            match (def.kind, &pref) {
                (Kind::Or, Pref::Bool(true)) | (Kind::And, Pref::Bool(false)) => {
                    if let Pref::Bool(b) = pref {
                        self.results.insert(name, Value::Bool(b));
                    }
                }
                (Kind::List, Pref::List(ours)) if !ours.contains(&def.default) => {
                    return Err(NegotiationError::Unanswered { key: def.name, offered: pref.to_wire() });
                }
                _ => {}
            }
            self.unanswered.insert(name, pref);
        }
        let num = |name: &str, d: u32| match self.results.get(name) {
            Some(Value::Num(n)) => *n,
            _ => d,
        };
        let flag = |name: &str, d: bool| match self.results.get(name) {
            Some(Value::Bool(b)) => *b,
            _ => d,
        };
        let digest = |name: &str| matches!(self.results.get(name), Some(Value::Text(t)) if t == Digest::Crc32c.as_str());
        let d = SessionParams::default();
        let max_burst = num("MaxBurstLength", d.max_burst_length);
        Ok(SessionParams {
            header_digest: digest("HeaderDigest"),
            data_digest: digest("DataDigest"),
            max_recv_data_segment_length: self.offer.max_recv_data_segment_length,
            max_xmit_data_segment_length: self.target_max_recv.unwrap_or(DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH),
            max_burst_length: max_burst,
            first_burst_length: num("FirstBurstLength", d.first_burst_length).min(max_burst),
            initial_r2t: flag("InitialR2T", d.initial_r2t),
            immediate_data: flag("ImmediateData", d.immediate_data),
            max_outstanding_r2t: num("MaxOutstandingR2T", d.max_outstanding_r2t),
            default_time2wait: num("DefaultTime2Wait", d.default_time2wait),
            default_time2retain: num("DefaultTime2Retain", d.default_time2retain),
            data_pdu_in_order: flag("DataPDUInOrder", d.data_pdu_in_order),
            data_sequence_in_order: flag("DataSequenceInOrder", d.data_sequence_in_order),
            error_recovery_level: u8::try_from(num("ErrorRecoveryLevel", 0)).unwrap_or(0),
            max_connections: num("MaxConnections", d.max_connections),
        })
    }

    /// Keys we offered that the target never answered (known after [`Self::finish`]).
    pub fn unanswered(&self) -> impl Iterator<Item = &str> {
        self.unanswered.keys().copied()
    }
    pub fn target_alias(&self) -> Option<&str> {
        self.target_alias.as_deref()
    }
    pub fn tpgt(&self) -> Option<u16> {
        self.tpgt
    }
    pub fn target_address(&self) -> Option<&str> {
        self.target_address.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> TextKeys {
        let mut t = TextKeys::new();
        for (k, v) in pairs {
            t.push(k, *v).unwrap();
        }
        t
    }

    #[test]
    fn table_defaults_parse_and_match_session_defaults() {
        for def in KEYS {
            if def.kind != Kind::Obsolete {
                assert!(parse_value(def, def.default).is_ok(), "{}", def.name);
            }
            assert!(text::is_valid_key(def.name));
        }
        // Negotiating nothing gives the RFC defaults.
        let mut n = Negotiator::new(Offer::default(), false, true);
        let p = n.finish().unwrap();
        assert_eq!(p, SessionParams { max_recv_data_segment_length: 262_144, ..SessionParams::default() });
        assert_eq!(default_value(key_def("MaxBurstLength").unwrap()), Value::Num(262_144));
        assert!(Offer::default().validate().is_ok());
    }

    #[test]
    fn result_functions() {
        assert_eq!(min_result(65_536, 262_144), 65_536);
        assert_eq!(max_result(2, 5), 5);
        assert!(or_result(false, true) && !or_result(false, false));
        assert!(!and_result(true, false) && and_result(true, true));
        assert_eq!(list_result("CRC32C,None", &["None", "CRC32C"]), Some("CRC32C"));
        assert_eq!(list_result("CRC32C", &["None"]), None);
    }

    fn def(name: &str) -> &'static KeyDef {
        key_def(name).unwrap()
    }

    #[test]
    fn answering_target_offers_per_rule() {
        let n = |v| Pref::Num(v);
        // numerical min: MaxBurstLength, FirstBurstLength, MaxOutstandingR2T, MaxConnections,
        // DefaultTime2Retain, ErrorRecoveryLevel
        assert_eq!(answer_offer(def("MaxBurstLength"), &n(262_144), "131072"), ("131072".into(), Some(Value::Num(131_072))));
        assert_eq!(answer_offer(def("MaxBurstLength"), &n(65_536), "131072"), ("65536".into(), Some(Value::Num(65_536))));
        assert_eq!(answer_offer(def("FirstBurstLength"), &n(65_536), "0x10000").0, "65536");
        assert_eq!(answer_offer(def("MaxOutstandingR2T"), &n(1), "8").0, "1");
        assert_eq!(answer_offer(def("MaxConnections"), &n(1), "4").0, "1");
        assert_eq!(answer_offer(def("DefaultTime2Retain"), &n(0), "20").0, "0");
        assert_eq!(answer_offer(def("ErrorRecoveryLevel"), &n(0), "2").0, "0");
        // numerical max: DefaultTime2Wait
        assert_eq!(answer_offer(def("DefaultTime2Wait"), &n(2), "10").0, "10");
        assert_eq!(answer_offer(def("DefaultTime2Wait"), &n(2), "0").0, "2");
        // out of range or malformed: Reject, default stays
        assert_eq!(answer_offer(def("MaxBurstLength"), &n(262_144), "511"), ("Reject".into(), None));
        assert_eq!(answer_offer(def("MaxBurstLength"), &n(262_144), "16777216").0, "Reject");
        assert_eq!(answer_offer(def("ErrorRecoveryLevel"), &n(0), "3").0, "Reject");
        // §13.19 / §13.20: DefaultTime2Wait and DefaultTime2Retain range 0-3600.
        assert_eq!(answer_offer(def("DefaultTime2Wait"), &n(2), "3601").0, "Reject");
        assert_eq!(answer_offer(def("DefaultTime2Retain"), &n(0), "65535").0, "Reject");
        assert_eq!(answer_offer(def("MaxConnections"), &n(1), "0").0, "Reject");
        assert_eq!(answer_offer(def("MaxConnections"), &n(1), "lots").0, "Reject");
        // boolean OR: InitialR2T, DataPDUInOrder, DataSequenceInOrder
        let b = |v| Pref::Bool(v);
        assert_eq!(answer_offer(def("InitialR2T"), &b(false), "Yes").0, "Yes");
        assert_eq!(answer_offer(def("InitialR2T"), &b(false), "No").0, "No");
        assert_eq!(answer_offer(def("DataPDUInOrder"), &b(true), "No").0, "Yes");
        assert_eq!(answer_offer(def("DataSequenceInOrder"), &b(false), "No").0, "No");
        // boolean AND: ImmediateData
        assert_eq!(answer_offer(def("ImmediateData"), &b(true), "No").0, "No");
        assert_eq!(answer_offer(def("ImmediateData"), &b(true), "Yes").0, "Yes");
        assert_eq!(answer_offer(def("ImmediateData"), &b(false), "Yes").0, "No");
        assert_eq!(answer_offer(def("ImmediateData"), &b(true), "yes").0, "Reject");
        // list: the first of the offerer's values we support
        let l = |v: Vec<&'static str>| Pref::List(v);
        assert_eq!(answer_offer(def("HeaderDigest"), &l(vec!["None", "CRC32C"]), "CRC32C,None").0, "CRC32C");
        assert_eq!(answer_offer(def("HeaderDigest"), &l(vec!["None"]), "CRC32C,None").0, "None");
        assert_eq!(answer_offer(def("DataDigest"), &l(vec!["None"]), "CRC32C").0, "Reject");
        assert_eq!(answer_offer(def("DataDigest"), &l(vec!["CRC32C"]), "MD5,CRC32C").0, "CRC32C");
        // obsolete markers: Reject, never NotUnderstood (§13.25)
        assert_eq!(answer_offer(def("OFMarker"), &b(false), "Yes").0, "Reject");
    }

    #[test]
    fn checking_answers_per_rule() {
        let n = |v| Pref::Num(v);
        let b = |v| Pref::Bool(v);
        assert_eq!(check_answer(def("MaxBurstLength"), &n(262_144), "65536"), Ok(Some(Value::Num(65_536))));
        assert!(matches!(check_answer(def("MaxBurstLength"), &n(262_144), "524288"), Err(NegotiationError::BadAnswer { .. })));
        assert!(check_answer(def("MaxBurstLength"), &n(262_144), "100").is_err());
        assert!(check_answer(def("MaxBurstLength"), &n(262_144), "abc").is_err());
        assert_eq!(check_answer(def("DefaultTime2Wait"), &n(2), "5"), Ok(Some(Value::Num(5))));
        assert!(check_answer(def("DefaultTime2Wait"), &n(2), "1").is_err());
        assert!(check_answer(def("ErrorRecoveryLevel"), &n(2), "3").is_err());
        assert_eq!(check_answer(def("InitialR2T"), &b(false), "Yes"), Ok(Some(Value::Bool(true))));
        assert!(check_answer(def("InitialR2T"), &b(true), "No").is_err());
        assert!(check_answer(def("ImmediateData"), &b(false), "Yes").is_err());
        assert_eq!(check_answer(def("ImmediateData"), &b(true), "No"), Ok(Some(Value::Bool(false))));
        let l = Pref::List(vec!["CRC32C", "None"]);
        assert_eq!(check_answer(def("HeaderDigest"), &l, "None"), Ok(Some(Value::Text("None".into()))));
        assert!(check_answer(def("HeaderDigest"), &l, "CRC32C,None").is_err());
        assert!(check_answer(def("HeaderDigest"), &Pref::List(vec!["None"]), "CRC32C").is_err());
        for special in ["Reject", "Irrelevant", "NotUnderstood"] {
            assert_eq!(check_answer(def("MaxBurstLength"), &n(262_144), special), Ok(None));
        }
    }

    #[test]
    fn full_operational_round() {
        let offer = Offer { header_digest: vec![Digest::Crc32c, Digest::None], ..Offer::default() };
        let mut n = Negotiator::new(offer, false, true);
        let ours = n.offers().unwrap();
        let names: Vec<&str> = ours.iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength", "MaxConnections", "InitialR2T", "ImmediateData",
                "MaxBurstLength", "FirstBurstLength", "DefaultTime2Wait", "DefaultTime2Retain", "MaxOutstandingR2T",
                "DataPDUInOrder", "DataSequenceInOrder", "ErrorRecoveryLevel"
            ]
        );
        assert_eq!(ours.get("HeaderDigest"), Some("CRC32C,None"));
        assert_eq!(ours.get("InitialR2T"), Some("No"));
        assert_eq!(ours.get("DefaultTime2Retain"), Some("0"));
        let answers = n
            .handle(&keys(&[
                ("HeaderDigest", "CRC32C"),
                ("DataDigest", "None"),
                ("MaxRecvDataSegmentLength", "65536"),
                ("MaxConnections", "1"),
                ("InitialR2T", "Yes"),
                ("ImmediateData", "No"),
                ("MaxBurstLength", "131072"),
                ("FirstBurstLength", "262144"), // larger than offered: a violation
            ]))
            .unwrap_err();
        assert!(matches!(answers, NegotiationError::BadAnswer { key: "FirstBurstLength", .. }));

        let mut n = Negotiator::new(Offer { first_burst_length: 262_144, ..Offer::default() }, false, true);
        n.offers().unwrap();
        let answers = n
            .handle(&keys(&[
                ("MaxRecvDataSegmentLength", "65536"),
                ("MaxBurstLength", "131072"),
                ("FirstBurstLength", "262144"),
                ("DefaultTime2Wait", "Irrelevant"),
                ("X-com.example.Feature", "Yes"),
                ("TargetPortalGroupTag", "3"),
                ("TargetAlias", "disk one"),
            ]))
            .unwrap();
        assert_eq!(answers.get("X-com.example.Feature"), Some("NotUnderstood"));
        assert_eq!(answers.len(), 1);
        assert!(n.has_pending());
        let p = n.finish().unwrap();
        assert_eq!(p.max_xmit_data_segment_length, 65_536);
        assert_eq!(p.max_recv_data_segment_length, 262_144);
        assert_eq!(p.max_burst_length, 131_072);
        assert_eq!(p.first_burst_length, 131_072, "clamped to MaxBurstLength");
        assert_eq!(p.default_time2wait, 2);
        // Unanswered: InitialR2T=No is not settled by our offer: default Yes.
        assert!(p.initial_r2t);
        assert!(p.data_pdu_in_order, "Yes OR x is Yes even unanswered");
        assert_eq!(n.tpgt(), Some(3));
        assert_eq!(n.target_alias(), Some("disk one"));
        assert!(n.unanswered().any(|k| k == "InitialR2T"));
    }

    #[test]
    fn tgtd_style_offers_are_answered() {
        let mut n = Negotiator::new(Offer::default(), false, true);
        n.offers().unwrap();
        // Answers to ours plus keys tgtd offers on its own.
        let answers = n
            .handle(&keys(&[
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("InitialR2T", "Yes"),
                ("ImmediateData", "Yes"),
                ("MaxBurstLength", "262144"),
                ("FirstBurstLength", "65536"),
                ("MaxOutstandingR2T", "1"),
                ("MaxConnections", "1"),
                ("DataPDUInOrder", "Yes"),
                ("DataSequenceInOrder", "Yes"),
                ("ErrorRecoveryLevel", "0"),
                ("DefaultTime2Wait", "2"),
                ("DefaultTime2Retain", "0"),
                ("MaxRecvDataSegmentLength", "8192"),
                ("iSCSIProtocolLevel", "2"),
                ("TaskReporting", "FastAbort,RFC3720"),
                ("IFMarker", "No"),
                ("OFMarkInt", "2048~65535"),
                ("RDMAExtensions", "Yes"),
            ]))
            .unwrap();
        assert_eq!(answers.get("iSCSIProtocolLevel"), Some("1"));
        assert_eq!(answers.get("TaskReporting"), Some("RFC3720"));
        assert_eq!(answers.get("IFMarker"), Some("Reject"));
        assert_eq!(answers.get("OFMarkInt"), Some("Reject"));
        assert_eq!(answers.get("RDMAExtensions"), Some("No"));
        assert_eq!(answers.len(), 5);
        assert!(!n.has_pending());
        let p = n.finish().unwrap();
        assert!(p.initial_r2t);
        assert_eq!(p.max_xmit_data_segment_length, 8192);
    }

    #[test]
    fn target_offers_keys_we_did_not_send() {
        // A discovery session sends no LO keys; offers of keys irrelevant there get Irrelevant.
        let mut n = Negotiator::new(Offer::default(), true, true);
        let ours = n.offers().unwrap();
        assert_eq!(ours.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength"]);
        let a = n.handle(&keys(&[("MaxBurstLength", "65536"), ("DefaultTime2Wait", "5")])).unwrap();
        assert_eq!(a.get("MaxBurstLength"), Some("Irrelevant"));
        assert_eq!(a.get("DefaultTime2Wait"), Some("5"));
        // A non-leading connection answers LO keys Irrelevant too.
        let mut n = Negotiator::new(Offer::default(), false, false);
        let ours = n.offers().unwrap();
        assert!(!ours.contains("MaxBurstLength"));
        assert!(ours.contains("HeaderDigest"));
        let a = n.handle(&keys(&[("MaxBurstLength", "65536")])).unwrap();
        assert_eq!(a.get("MaxBurstLength"), Some("Irrelevant"));
    }

    #[test]
    fn renegotiation_is_an_error() {
        let mut n = Negotiator::new(Offer::default(), false, true);
        n.offers().unwrap();
        n.handle(&keys(&[("MaxBurstLength", "65536"), ("MaxRecvDataSegmentLength", "8192")])).unwrap();
        assert!(matches!(n.handle(&keys(&[("MaxBurstLength", "65536")])), Err(NegotiationError::Renegotiated { .. })));
        assert!(matches!(
            n.handle(&keys(&[("MaxRecvDataSegmentLength", "4096")])),
            Err(NegotiationError::Renegotiated { .. })
        ));
        // Declarations repeated unchanged are tolerated, changed ones are not.
        n.handle(&keys(&[("MaxRecvDataSegmentLength", "8192"), ("TargetPortalGroupTag", "1")])).unwrap();
        n.handle(&keys(&[("MaxRecvDataSegmentLength", "0x2000"), ("TargetPortalGroupTag", "1")])).unwrap();
        assert!(matches!(n.handle(&keys(&[("TargetPortalGroupTag", "2")])), Err(NegotiationError::Renegotiated { .. })));
        // TargetAddress may come again.
        n.handle(&keys(&[("TargetAddress", "10.0.0.1")])).unwrap();
        n.handle(&keys(&[("TargetAddress", "10.0.0.2")])).unwrap();
        assert_eq!(n.target_address(), Some("10.0.0.2"));
    }

    #[test]
    fn bad_declarations_are_errors() {
        let mut n = Negotiator::new(Offer::default(), false, true);
        assert!(n.handle(&keys(&[("MaxRecvDataSegmentLength", "100")])).is_err());
        let mut n = Negotiator::new(Offer::default(), false, true);
        assert!(n.handle(&keys(&[("TargetPortalGroupTag", "65536")])).is_err());
    }

    #[test]
    fn required_digests() {
        let crc_only = Offer { header_digest: vec![Digest::Crc32c], data_digest: vec![Digest::Crc32c], ..Offer::default() };
        let mut n = Negotiator::new(crc_only.clone(), false, true);
        n.offers().unwrap();
        let e = n.handle(&keys(&[("HeaderDigest", "Reject")])).unwrap_err();
        assert!(matches!(e, NegotiationError::Refused { key: "HeaderDigest", .. }), "{e}");
        assert!(e.to_string().contains("CRC32C"));
        let mut n = Negotiator::new(crc_only.clone(), false, true);
        n.offers().unwrap();
        assert!(matches!(n.finish(), Err(NegotiationError::Unanswered { .. })));
        let mut n = Negotiator::new(crc_only, false, true);
        n.offers().unwrap();
        n.handle(&keys(&[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")])).unwrap();
        let p = n.finish().unwrap();
        assert!(p.header_digest && p.data_digest);
        let fc = p.frame_config();
        assert!(fc.digests.header && fc.digests.data);
        assert_eq!(fc.max_recv_data_segment, 262_144);
    }

    #[test]
    fn offer_validation() {
        let ok = Offer::default();
        assert!(Offer { max_burst_length: 511, ..ok.clone() }.validate().is_err());
        assert!(Offer { max_recv_data_segment_length: MAX_LENGTH + 1, ..ok.clone() }.validate().is_err());
        assert!(Offer { first_burst_length: 300_000, ..ok.clone() }.validate().is_err());
        assert!(Offer { error_recovery_level: 3, ..ok.clone() }.validate().is_err());
        assert!(Offer { max_outstanding_r2t: 0, ..ok.clone() }.validate().is_err());
        assert!(Offer { default_time2wait: 3601, ..ok.clone() }.validate().is_err());
        assert!(Offer { header_digest: vec![], ..ok.clone() }.validate().is_err());
        assert!(Offer { data_digest: vec![Digest::None, Digest::None], ..ok.clone() }.validate().is_err());
        assert!(Offer { max_burst_length: MAX_LENGTH, first_burst_length: MIN_LENGTH, ..ok }.validate().is_ok());
    }
}
