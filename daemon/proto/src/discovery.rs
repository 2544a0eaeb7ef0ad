//! Discovery: portal addresses, TargetAddress values, and the SendTargets exchange (RFC 7143
//! §13.3, §13.8, §11.10-11.11, Appendix D).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::pdu::{Pdu, TextRequest, TextResponse, RESERVED_TAG};
use crate::text::{self, TextError, TextKeys};

/// The well-known iSCSI port (§13.8: the default when a TargetAddress has none).
pub const DEFAULT_PORT: u16 = 3260;
/// Most SendTargets text we collect over continued responses. Large arrays list thousands of
/// targets; this still bounds what a broken target can make us hold.
pub const MAX_SENDTARGETS_TEXT: usize = 4 << 20;
/// Text Responses we accept in one exchange before declaring the target stuck.
const MAX_EXCHANGES: u32 = 4096;
/// Longest DNS name (RFC 1035 §2.3.4).
const MAX_HOSTNAME_LEN: usize = 253;

/// Errors in a portal address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("{0:?} is not a valid IPv6 address")]
    BadIpv6(String),
    #[error("{0:?} is not a valid IPv4 address")]
    BadIpv4(String),
    #[error("{0:?} is not a valid host name")]
    BadHostname(String),
    #[error("{0:?} is not a valid port (1-65535)")]
    BadPort(String),
    #[error("the IPv6 address in {0:?} lacks its closing bracket")]
    UnclosedBracket(String),
    #[error("{0:?} is not a valid portal group tag (0-65535)")]
    BadTpgt(String),
}

/// A network portal: host (IP literal or DNS name) and TCP port.
///
/// Parses `10.0.0.1`, `10.0.0.1:3261`, `[::1]:3261`, `[fe80::1%eth0]`, `::1` (a bare IPv6
/// address takes the default port), `host.example`, `host.example:3262`. IP literals are
/// kept in canonical form and names in lower case, so equal portals compare equal.
/// Displays with the port always, IPv6 in brackets: `[::1]:3260`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Portal {
    host: String,
    port: u16,
}

impl Portal {
    /// A portal from a host (without brackets) and a port.
    pub fn new(host: &str, port: u16) -> Result<Self, AddressError> {
        if port == 0 {
            return Err(AddressError::BadPort("0".into()));
        }
        Ok(Self { host: canonical_host(host)?, port })
    }

    /// The host, without brackets (an IPv6 zone, if any, after `%`).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address when the host is an IP literal (without zone).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The IPv6 zone (`eth0` in `fe80::1%eth0`).
    pub fn zone(&self) -> Option<&str> {
        self.host.split_once('%').map(|(_, z)| z)
    }

    pub fn is_ipv6(&self) -> bool {
        self.host.contains(':')
    }
}

impl From<SocketAddr> for Portal {
    fn from(a: SocketAddr) -> Self {
        Self { host: a.ip().to_string(), port: a.port() }
    }
}

impl fmt::Display for Portal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ipv6() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Portal {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| AddressError::UnclosedBracket(s.into()))?;
            if !host.contains(':') {
                return Err(AddressError::BadIpv6(host.into()));
            }
            let port = match after {
                "" => DEFAULT_PORT,
                _ => parse_port(after.strip_prefix(':').ok_or_else(|| AddressError::BadPort(after.into()))?)?,
            };
            return Self::new(host, port);
        }
        if s.matches(':').count() > 1 {
            // Unbracketed IPv6: no room for a port.
            return Self::new(s, DEFAULT_PORT);
        }
        match s.split_once(':') {
            Some((host, port)) => Self::new(host, parse_port(port)?),
            None => Self::new(s, DEFAULT_PORT),
        }
    }
}

fn parse_port(p: &str) -> Result<u16, AddressError> {
    let bad = || AddressError::BadPort(p.into());
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(v) => Ok(v),
    }
}

/// Validates a host and puts it in canonical form.
fn canonical_host(h: &str) -> Result<String, AddressError> {
    if h.is_empty() {
        return Err(AddressError::Empty);
    }
    if h.contains(':') {
        let (addr, zone) = match h.split_once('%') {
            Some((a, z)) => (a, Some(z)),
            None => (h, None),
        };
        let ip: Ipv6Addr = addr.parse().map_err(|_| AddressError::BadIpv6(h.into()))?;
        return match zone {
            None => Ok(ip.to_string()),
            Some(z) if !z.is_empty() && z.len() <= 64 && z.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) => {
                Ok(format!("{ip}%{z}"))
            }
            Some(_) => Err(AddressError::BadIpv6(h.into())),
        };
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // All digits and dots: an IPv4 literal or nothing (no top-level domain is numeric).
        let ip: Ipv4Addr = h.parse().map_err(|_| AddressError::BadIpv4(h.into()))?;
        return Ok(ip.to_string());
    }
    let name = h.strip_suffix('.').unwrap_or(h);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > MAX_HOSTNAME_LEN || !name.split('.').all(label_ok) {
        return Err(AddressError::BadHostname(h.into()));
    }
    Ok(name.to_ascii_lowercase())
}

/// A portal with its portal group tag, as a TargetAddress gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetPortal {
    pub portal: Portal,
    /// `None` when the TargetAddress carried no tag.
    pub tpgt: Option<u16>,
}

impl fmt::Display for TargetPortal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tpgt {
            Some(t) => write!(f, "{},{t}", self.portal),
            None => write!(f, "{}", self.portal),
        }
    }
}

/// Parses a TargetAddress value, `domainname[:port][,portal-group-tag]` (§13.8), where
/// domainname may be a bracketed IPv6 literal.
pub fn parse_target_address(v: &str) -> Result<TargetPortal, AddressError> {
    let (addr, tpgt) = match v.split_once(',') {
        Some((a, t)) => {
            let tag = text::parse_number_in("TargetPortalGroupTag", t, 0, 65_535)
                .ok()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| AddressError::BadTpgt(t.into()))?;
            (a, Some(tag))
        }
        None => (v, None),
    };
    Ok(TargetPortal { portal: addr.parse()?, tpgt })
}

/// One target of a SendTargets answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredTarget {
    pub name: String,
    /// The portals it can be reached through; empty means "the portal that answered"
    /// (Appendix D: a target without TargetAddress is at the discovery session's address).
    pub portals: Vec<TargetPortal>,
}

/// Discovery failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    #[error("malformed SendTargets answer: {0}")]
    Text(#[from] TextError),
    #[error("the SendTargets answer lists an invalid TargetAddress {value:?}: {source}")]
    Address { value: String, source: AddressError },
    #[error("the SendTargets answer lists TargetAddress {0:?} before any TargetName")]
    AddressBeforeName(String),
    #[error("the SendTargets answer lists an invalid TargetName {0:?} (1 to 223 bytes)")]
    BadTargetName(String),
    #[error("the target answered SendTargets={0}")]
    Refused(String),
    #[error("invalid SendTargets query: {0}")]
    BadQuery(TextError),
    #[error("protocol error: the Text Response carries ITT 0x{got:08x}, not the request's 0x{expected:08x}")]
    UnexpectedItt { expected: u32, got: u32 },
    #[error("protocol error: a Text Response has both the F and C bits set")]
    FinalAndContinue,
    #[error("protocol error: a partial Text Response carries no Target Transfer Tag to continue with")]
    NoContinuationTag,
    #[error("the SendTargets answer exceeds {MAX_SENDTARGETS_TEXT} bytes")]
    TooLong,
    #[error("the SendTargets answer did not end after {MAX_EXCHANGES} Text Responses")]
    TooManyExchanges,
    #[error("the SendTargets exchange is already over")]
    Finished,
}

/// Parses the text of a SendTargets answer (Appendix D): each TargetName starts a target,
/// the TargetAddress keys after it are its portals. Other keys (e.g. TargetAlias) are
/// skipped; a target named twice gets the portals of both records.
pub fn parse_send_targets(data: &[u8]) -> Result<Vec<DiscoveredTarget>, DiscoveryError> {
    let keys = TextKeys::decode_list(data)?;
    let mut out: Vec<DiscoveredTarget> = Vec::new();
    let mut current: Option<usize> = None;
    for (k, v) in keys.iter() {
        match k {
            "TargetName" => {
                if v.is_empty() || v.len() > crate::login::MAX_NAME_LEN {
                    return Err(DiscoveryError::BadTargetName(v.into()));
                }
                current = Some(match out.iter().position(|t| t.name == v) {
                    Some(i) => i,
                    None => {
                        out.push(DiscoveredTarget { name: v.into(), portals: Vec::new() });
                        out.len() - 1
                    }
                });
            }
            "TargetAddress" => {
                let t = current.and_then(|i| out.get_mut(i)).ok_or_else(|| DiscoveryError::AddressBeforeName(v.into()))?;
                let p = parse_target_address(v).map_err(|source| DiscoveryError::Address { value: v.into(), source })?;
                if !t.portals.contains(&p) {
                    t.portals.push(p);
                }
            }
            "SendTargets" if [text::REJECT, text::IRRELEVANT, text::NOT_UNDERSTOOD].contains(&v) => {
                return Err(DiscoveryError::Refused(v.into()));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What to do after a Text Response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTargetsStep {
    /// Send this (continuation) Text Request and feed the next response back.
    Send(Pdu),
    Done(Vec<DiscoveredTarget>),
}

/// One SendTargets exchange (§11.10, §11.11, §13.3) on a logged-in session.
///
/// Requests are immediate, so they do not advance CmdSN. The machine fills CmdSN and
/// ExpStatSN from the values given and the responses seen; an engine that tracks them
/// itself may overwrite those fields before sending.
#[derive(Debug, Clone)]
pub struct SendTargets {
    itt: u32,
    cmd_sn: u32,
    exp_stat_sn: u32,
    query: TextKeys,
    buf: Vec<u8>,
    exchanges: u32,
    finished: bool,
}

impl SendTargets {
    /// `SendTargets=All`: every target this portal's network entity offers (a discovery
    /// session).
    pub fn new(itt: u32, cmd_sn: u32, exp_stat_sn: u32) -> Self {
        let mut query = TextKeys::new();
        // "All" is a valid value by construction.
        let _ = query.push("SendTargets", "All");
        Self { itt, cmd_sn, exp_stat_sn, query, buf: Vec::new(), exchanges: 0, finished: false }
    }

    /// `SendTargets=<name>` (or empty for the session's own target): the portals of one
    /// target, asked on a normal session.
    pub fn for_target(itt: u32, cmd_sn: u32, exp_stat_sn: u32, target: &str) -> Result<Self, DiscoveryError> {
        let mut query = TextKeys::new();
        query.push("SendTargets", target).map_err(DiscoveryError::BadQuery)?;
        Ok(Self { itt, cmd_sn, exp_stat_sn, query, buf: Vec::new(), exchanges: 0, finished: false })
    }

    /// The CmdSN the next command on the session gets (unchanged: our requests are immediate).
    pub fn cmd_sn(&self) -> u32 {
        self.cmd_sn
    }

    /// ExpStatSN for the next request: the last StatSN seen + 1.
    pub fn exp_stat_sn(&self) -> u32 {
        self.exp_stat_sn
    }

    /// The Text Request that starts the exchange (F=1, TTT=0xffffffff).
    pub fn start(&mut self) -> Pdu {
        let data = self.query.encode();
        self.request(RESERVED_TAG, data)
    }

    fn request(&self, ttt: u32, data: Vec<u8>) -> Pdu {
        let h = TextRequest {
            immediate: true,
            final_: true,
            cont: false,
            lun: 0,
            itt: self.itt,
            ttt,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        Pdu::new(h, data)
    }

    /// Takes one Text Response (header and data segment).
    pub fn handle(&mut self, rsp: &TextResponse, data: &[u8]) -> Result<SendTargetsStep, DiscoveryError> {
        if self.finished {
            return Err(DiscoveryError::Finished);
        }
        let r = self.step(rsp, data);
        if !matches!(r, Ok(SendTargetsStep::Send(_))) {
            self.finished = true;
        }
        r
    }

    fn step(&mut self, rsp: &TextResponse, data: &[u8]) -> Result<SendTargetsStep, DiscoveryError> {
        self.exchanges += 1;
        if self.exchanges > MAX_EXCHANGES {
            return Err(DiscoveryError::TooManyExchanges);
        }
        if rsp.itt != self.itt {
            return Err(DiscoveryError::UnexpectedItt { expected: self.itt, got: rsp.itt });
        }
        self.exp_stat_sn = rsp.stat_sn.wrapping_add(1);
        if rsp.final_ && rsp.cont {
            return Err(DiscoveryError::FinalAndContinue);
        }
        if self.buf.len() + data.len() > MAX_SENDTARGETS_TEXT {
            return Err(DiscoveryError::TooLong);
        }
        // With C=1 a key=value pair may span responses (§6.1): parse only at the end.
        self.buf.extend_from_slice(data);
        if rsp.final_ {
            return Ok(SendTargetsStep::Done(parse_send_targets(&std::mem::take(&mut self.buf))?));
        }
        // §11.11: the target has more; an empty request with its TTT asks for it.
        if rsp.ttt == RESERVED_TAG {
            return Err(DiscoveryError::NoContinuationTag);
        }
        Ok(SendTargetsStep::Send(self.request(rsp.ttt, Vec::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::Header;

    #[test]
    fn portal_parsing() {
        let p = |s: &str| s.parse::<Portal>();
        let ok = |s: &str, host: &str, port: u16| {
            let v = p(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!((v.host(), v.port()), (host, port), "{s}");
        };
        ok("10.0.0.1", "10.0.0.1", 3260);
        ok("10.0.0.1:3261", "10.0.0.1", 3261);
        ok("[::1]:3261", "::1", 3261);
        ok("[fe80::1]", "fe80::1", 3260);
        ok("[FE80:0:0::0001]:1", "fe80::1", 1);
        ok("::1", "::1", 3260);
        ok("[fe80::1%eth0]:3262", "fe80::1%eth0", 3262);
        ok("host.example", "host.example", 3260);
        ok("Host.Example.:3262", "host.example", 3262);
        ok("san_1", "san_1", 3260);
        for bad in [
            "", ":3260", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:+1", "10.0.0.256", "1.2.3",
            "[::1", "[::1]3260", "[10.0.0.1]:3260", "[fe80::1%]:3260", "[:::1]", "-bad.example", "a..b",
            "host name", "host:port", "1::2::3", "[::1]:99999",
        ] {
            assert!(p(bad).is_err(), "{bad:?} must not parse");
        }
        assert!(Portal::new("10.0.0.1", 0).is_err());
        assert!(Portal::new(&"a".repeat(64), 3260).is_err());
    }

    #[test]
    fn portal_display_roundtrip() {
        for (s, shown) in [
            ("10.0.0.1", "10.0.0.1:3260"),
            ("[::1]:3261", "[::1]:3261"),
            ("fe80::1", "[fe80::1]:3260"),
            ("[fe80::1%eth0]", "[fe80::1%eth0]:3260"),
            ("Storage.Example:3262", "storage.example:3262"),
        ] {
            let p: Portal = s.parse().unwrap();
            assert_eq!(p.to_string(), shown);
            assert_eq!(shown.parse::<Portal>().unwrap(), p);
        }
        let p: Portal = "[::1]:3261".parse().unwrap();
        assert_eq!(p.ip(), Some("::1".parse().unwrap()));
        assert!(p.is_ipv6());
        assert_eq!("[fe80::1%eth0]".parse::<Portal>().unwrap().zone(), Some("eth0"));
        let sa: SocketAddr = "[::1]:3260".parse().unwrap();
        assert_eq!(Portal::from(sa), "::1".parse().unwrap());
        assert_eq!("10.0.0.1:3260".parse::<Portal>().unwrap(), "10.0.0.1".parse().unwrap());
    }

    #[test]
    fn random_addresses_never_panic_and_round_trip() {
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF:.[]%,-_xyz \xc3\xa9";
        let mut x: u32 = 0x1357_9bdf;
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut v = Vec::new();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            for i in 0..(x % 24) {
                v.push(ALPHABET[(x.rotate_left(i) as usize) % ALPHABET.len()]);
            }
            let Ok(s) = std::str::from_utf8(&v) else { continue };
            if let Ok(p) = s.parse::<Portal>() {
                parsed += 1;
                assert_eq!(p.to_string().parse::<Portal>().as_ref(), Ok(&p), "{s:?}");
            }
            let _ = parse_target_address(s);
        }
        assert!(parsed > 100, "the generator should hit valid portals too ({parsed})");
    }

    #[test]
    fn target_addresses() {
        let t = parse_target_address("10.0.0.1:3261,2").unwrap();
        assert_eq!(t.portal.to_string(), "10.0.0.1:3261");
        assert_eq!(t.tpgt, Some(2));
        let t = parse_target_address("[2001:db8::1],1").unwrap();
        assert_eq!((t.portal.host(), t.portal.port(), t.tpgt), ("2001:db8::1", 3260, Some(1)));
        assert_eq!(t.to_string(), "[2001:db8::1]:3260,1");
        let t = parse_target_address("san.example").unwrap();
        assert_eq!((t.portal.port(), t.tpgt), (3260, None));
        assert!(matches!(parse_target_address("10.0.0.1,65536"), Err(AddressError::BadTpgt(_))));
        assert!(matches!(parse_target_address("10.0.0.1,"), Err(AddressError::BadTpgt(_))));
        assert!(parse_target_address(",1").is_err());
    }

    #[test]
    fn send_targets_parsing() {
        let wire = b"TargetName=iqn.2024-01.test:a\0\
TargetAddress=10.0.0.1:3260,1\0\
TargetAddress=[fd00::1]:3261,2\0\
TargetAddress=san.example,3\0\
TargetName=iqn.2024-01.test:b\0\
TargetAlias=second\0\
TargetAddress=10.0.0.2\0\
TargetName=iqn.2024-01.test:c\0\
TargetName=iqn.2024-01.test:a\0\
TargetAddress=10.0.0.9:3260,1\0";
        let t = parse_send_targets(wire).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].name, "iqn.2024-01.test:a");
        let shown: Vec<String> = t[0].portals.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.1:3260,1", "[fd00::1]:3261,2", "san.example:3260,3", "10.0.0.9:3260,1"]);
        assert_eq!(t[1].portals, vec![TargetPortal { portal: "10.0.0.2".parse().unwrap(), tpgt: None }]);
        assert!(t[2].portals.is_empty());
        assert!(parse_send_targets(b"").unwrap().is_empty());
    }

    #[test]
    fn send_targets_errors() {
        assert!(matches!(parse_send_targets(b"TargetAddress=10.0.0.1\0"), Err(DiscoveryError::AddressBeforeName(_))));
        assert!(matches!(
            parse_send_targets(b"TargetName=a\0TargetAddress=10.0.0.256\0"),
            Err(DiscoveryError::Address { .. })
        ));
        assert!(matches!(parse_send_targets(b"SendTargets=Reject\0"), Err(DiscoveryError::Refused(_))));
        assert!(matches!(parse_send_targets(b"TargetName=\0"), Err(DiscoveryError::BadTargetName(_))));
        assert!(matches!(parse_send_targets(b"TargetName=a\xff\0"), Err(DiscoveryError::Text(_))));
    }

    fn rsp(final_: bool, cont: bool, ttt: u32, stat_sn: u32) -> TextResponse {
        TextResponse { final_, cont, itt: 7, ttt, stat_sn, exp_cmd_sn: 5, max_cmd_sn: 36, ..Default::default() }
    }

    #[test]
    fn exchange_single_response() {
        let mut st = SendTargets::new(7, 5, 3);
        let first = st.start();
        let Header::TextRequest(h) = &first.header else { panic!("not a text request") };
        assert!(h.final_ && !h.cont && h.immediate);
        assert_eq!((h.itt, h.ttt, h.cmd_sn, h.exp_stat_sn), (7, RESERVED_TAG, 5, 3));
        assert_eq!(first.data, b"SendTargets=All\0");
        let step = st.handle(&rsp(true, false, RESERVED_TAG, 3), b"TargetName=iqn.x:a\0TargetAddress=10.0.0.1:3260,1\0").unwrap();
        let SendTargetsStep::Done(t) = step else { panic!("not done") };
        assert_eq!(t[0].portals[0].tpgt, Some(1));
        assert_eq!(st.exp_stat_sn(), 4);
        assert_eq!(st.cmd_sn(), 5);
        assert_eq!(st.handle(&rsp(true, false, RESERVED_TAG, 4), b""), Err(DiscoveryError::Finished));
    }

    #[test]
    fn exchange_multi_pdu_with_split_pair() {
        let mut st = SendTargets::new(7, 5, 3);
        st.start();
        // The pair TargetAddress=... is cut in the middle between two responses (C=1).
        let step = st.handle(&rsp(false, true, 0x1234, 3), b"TargetName=iqn.x:a\0TargetAdd").unwrap();
        let SendTargetsStep::Send(p) = step else { panic!("expected a continuation request") };
        let Header::TextRequest(h) = &p.header else { panic!("not a text request") };
        assert_eq!((h.ttt, h.exp_stat_sn, h.final_, h.cont), (0x1234, 4, true, false));
        assert!(p.data.is_empty());
        // F=0, C=0 with a TTT: the target wants to be asked for the rest.
        let step = st.handle(&rsp(false, false, 0x1235, 4), b"ress=10.0.0.1,1\0TargetName=iqn.x:b\0").unwrap();
        let SendTargetsStep::Send(p) = step else { panic!("expected a continuation request") };
        let Header::TextRequest(h) = &p.header else { panic!("not a text request") };
        assert_eq!((h.ttt, h.exp_stat_sn), (0x1235, 5));
        let step = st.handle(&rsp(true, false, RESERVED_TAG, 5), b"TargetAddress=[::1]:3261,2\0").unwrap();
        let SendTargetsStep::Done(t) = step else { panic!("not done") };
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].portals[0].to_string(), "10.0.0.1:3260,1");
        assert_eq!(t[1].portals[0].to_string(), "[::1]:3261,2");
    }

    #[test]
    fn exchange_protocol_errors() {
        let mut st = SendTargets::new(7, 5, 3);
        st.start();
        let mut bad = rsp(true, false, RESERVED_TAG, 3);
        bad.itt = 8;
        assert!(matches!(st.handle(&bad, b""), Err(DiscoveryError::UnexpectedItt { .. })));
        let mut st = SendTargets::new(7, 5, 3);
        assert_eq!(st.handle(&rsp(true, true, RESERVED_TAG, 3), b""), Err(DiscoveryError::FinalAndContinue));
        let mut st = SendTargets::new(7, 5, 3);
        assert_eq!(st.handle(&rsp(false, true, RESERVED_TAG, 3), b""), Err(DiscoveryError::NoContinuationTag));
        let mut st = SendTargets::new(7, 5, 3);
        let big = vec![b'a'; 1 << 20];
        let mut n = 0;
        let err = loop {
            match st.handle(&rsp(false, true, 1, 3), &big) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err, DiscoveryError::TooLong);
        assert_eq!(n, 4);
        assert!(SendTargets::for_target(1, 1, 1, "iqn.x:a").is_ok());
        assert!(SendTargets::for_target(1, 1, 1, "a\0b").is_err());
    }
}
