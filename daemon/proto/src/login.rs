//! Login phase (RFC 7143 §6.3, §11.12, §11.13): the initiator's login state machine.
//!
//! ```text
//!   start() ──► SecurityNegotiation (CSG 0) ──T=1──► LoginOperationalNegotiation (CSG 1) ──T=1──► FullFeature
//!               AuthMethod=None: one round trip        our offers, then answers to the
//!               AuthMethod=CHAP: AuthMethod, CHAP_A,    target's own offers until it sets
//!                 CHAP_N/CHAP_R (+ mutual CHAP_I/C)     T with NSG=FullFeature
//! ```
//!
//! The machine does no I/O: [`Login::start`] gives the first Login Request, then each Login
//! Response goes to [`Login::handle`], which returns the next PDU to send, the negotiated
//! result, or a redirection. Randomness (the mutual CHAP challenge) comes from the caller.

use std::collections::VecDeque;
use std::fmt;

use crate::chap::{ChapInitiator, RANDOM_LEN};
pub use crate::chap::{ChapAlgorithm, ChapConfig, ChapError, Secret};
use crate::discovery::{parse_target_address, Portal};
use crate::negotiate::Negotiator;
pub use crate::negotiate::{Digest, NegotiationError, Offer, SessionParams};
use crate::pdu::{LoginRequest, LoginResponse, Pdu, PduError};
use crate::text::{self, TextError, TextKeys};

/// Login stages (CSG/NSG, §11.12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Stage {
    Security = 0,
    Operational = 1,
    FullFeature = 3,
}

impl Stage {
    pub(crate) fn from_bits(v: u8, pdu: &'static str, field: &'static str) -> Result<Self, PduError> {
        match v {
            0 => Ok(Self::Security),
            1 => Ok(Self::Operational),
            3 => Ok(Self::FullFeature),
            v => Err(PduError::InvalidField { pdu, field, value: v.into() }),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Security => "security negotiation",
            Stage::Operational => "operational negotiation",
            Stage::FullFeature => "full feature phase",
        })
    }
}

/// Largest data segment of a login PDU (§13.12: MaxRecvDataSegmentLength is not negotiated
/// yet, its default 8192 holds); longer text is split with the C bit.
pub const MAX_LOGIN_SEGMENT: usize = 8192;
/// Longest iSCSI name (§4.2.7.1).
pub const MAX_NAME_LEN: usize = 223;
/// Login rounds we accept before deciding the target is going round in circles.
const MAX_EXCHANGES: u32 = 64;
/// Continuation pieces (C bit, either direction) accepted in one login: enough for the
/// longest text at one byte a piece.
const MAX_PIECES: u32 = 80 * 1024;
/// Most text a target may send in one continued (C bit) response.
const MAX_RESPONSE_TEXT: usize = 64 * 1024;

/// SessionType (§13.21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionType {
    Normal,
    Discovery,
}

impl SessionType {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Normal => "Normal",
            SessionType::Discovery => "Discovery",
        }
    }
}

/// How the initiator authenticates (§12.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Chap(ChapConfig),
}

/// Everything one login needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginParams {
    pub initiator_name: String,
    pub initiator_alias: Option<String>,
    /// `None` for a discovery session.
    pub target_name: Option<String>,
    pub session_type: SessionType,
    pub isid: [u8; 6],
    /// 0 for a new session; the session's TSIH to add or reinstate a connection.
    pub tsih: u16,
    pub cid: u16,
    /// The initial CmdSN; login requests are immediate and do not advance it (§11.12.8).
    pub cmd_sn: u32,
    /// The ITT of every request of this login.
    pub itt: u32,
    pub auth: Auth,
    pub offer: Offer,
}

impl LoginParams {
    /// Checks the parameters before anything is sent.
    pub fn validate(&self) -> Result<(), LoginError> {
        let bad = |m: String| Err(LoginError::InvalidParams(m));
        check_name("InitiatorName", &self.initiator_name)?;
        match (self.session_type, &self.target_name) {
            (SessionType::Normal, None) => return bad("a normal session needs a TargetName".into()),
            (SessionType::Normal, Some(t)) => check_name("TargetName", t)?,
            (SessionType::Discovery, Some(_)) => return bad("a discovery session has no TargetName".into()),
            (SessionType::Discovery, None) => {}
        }
        if let Some(a) = &self.initiator_alias {
            if a.len() > text::MAX_VALUE_LEN || a.contains('\0') {
                return bad("the InitiatorAlias must be at most 255 bytes, without NUL".into());
            }
        }
        self.offer.validate()?;
        if let Auth::Chap(c) = &self.auth {
            c.validate()?;
        }
        Ok(())
    }
}

fn check_name(key: &str, v: &str) -> Result<(), LoginError> {
    if v.is_empty() || v.len() > MAX_NAME_LEN || v.contains('\0') {
        return Err(LoginError::InvalidParams(format!("the {key} must be 1 to {MAX_NAME_LEN} bytes, without NUL")));
    }
    Ok(())
}

/// The outcome of a successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The session's TSIH, assigned by the target for a new session.
    pub tsih: u16,
    /// The CmdSN of the first command after login (the login's CmdSN: logins are immediate).
    pub cmd_sn: u32,
    /// The next StatSN expected (last StatSN seen + 1), i.e. ExpStatSN for the next request.
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// For a connection added to an existing session (TSIH was not 0), only per-connection
    /// keys (digests, data segment lengths) were negotiated; the session-wide fields hold
    /// RFC defaults and the session's own values stay in force.
    pub params: SessionParams,
    pub target_alias: Option<String>,
    /// TargetPortalGroupTag, when the target stated it (§13.9).
    pub tpgt: Option<u16>,
    /// TargetAddress, when the target stated one during the login (§13.8).
    pub target_address: Option<String>,
}

/// What to do after a Login Response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// Send this Login Request and feed the next response to [`Login::handle`].
    Send(Pdu),
    /// Full feature phase reached.
    Done(Negotiated),
    /// The target redirects (status class 1, §11.13.5): log in at `address` instead.
    /// `permanent` (0x0102) means the node record should be updated.
    Redirect { address: Portal, permanent: bool },
}

/// Where the login was when the target reported an initiator error, to say what it most
/// likely objected to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginPhase {
    FirstRequest,
    ChapAlgorithms { offered: String },
    ChapResponse,
    Security,
    Operational,
    /// Operational negotiation in which we offered no digests (HeaderDigest and DataDigest
    /// None only): what a target that insists on CRC32C objects to.
    OperationalWithoutDigests,
}

impl fmt::Display for LoginPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginPhase::FirstRequest => {
                f.write_str("in answer to the first login request (check InitiatorName, TargetName and SessionType)")
            }
            LoginPhase::ChapAlgorithms { offered } => write!(
                f,
                "in answer to the CHAP algorithm offer CHAP_A={offered}: the target may support none of them \
                 (tgtd accepts only 5 and 7); offer MD5 only"
            ),
            LoginPhase::ChapResponse => f.write_str("in answer to the CHAP response"),
            LoginPhase::Security => f.write_str("during security negotiation"),
            LoginPhase::Operational => f.write_str("during operational parameter negotiation"),
            LoginPhase::OperationalWithoutDigests => f.write_str(
                "during operational parameter negotiation, in which we offered no digests \
                 (HeaderDigest=None, DataDigest=None): a target that requires CRC32C digests answers so; \
                 if this one does, set header_digest and data_digest to [\"CRC32C\", \"None\"] \
                 (config [negotiation] or the node's settings)",
            ),
        }
    }
}

/// What authentication was in play when the target reported an authentication failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthContext {
    /// We offered AuthMethod=None.
    NoAuth,
    /// CHAP, with the algorithm the target chose (if it got that far), and whether its
    /// challenge had the length IET-derived targets use (see
    /// [`crate::chap::ChapInitiator::iet_style_challenge`]).
    Chap { algorithm: Option<ChapAlgorithm>, iet_style: bool },
}

fn auth_failed_message(c: &AuthContext) -> String {
    match c {
        AuthContext::NoAuth => {
            "authentication failed (status 0x0201): the target requires authentication, but none is configured for it"
                .into()
        }
        AuthContext::Chap { algorithm: Some(ChapAlgorithm::Sha256), iet_style: true } => {
            "authentication failed (status 0x0201): the target rejected the CHAP credentials. It chose CHAP_A=7, \
             which RFC 7143 defines as SHA-256, with a challenge of the length tgtd and other IET-derived targets \
             send, which take 7 to mean SHA1: if the username and secret are right, offer MD5 only"
                .into()
        }
        AuthContext::Chap { .. } => {
            "authentication failed (status 0x0201): the target rejected the CHAP credentials; check the CHAP \
             username and secret"
                .into()
        }
    }
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    #[error("invalid login parameters: {0}")]
    InvalidParams(String),

    // Login statuses (§11.13.5).
    #[error("the target reports an initiator error (status 0x0200) {during}")]
    InitiatorError { during: LoginPhase },
    #[error("{}", auth_failed_message(.context))]
    AuthenticationFailed { context: AuthContext },
    #[error("authorization failed (status 0x0202): this initiator is not allowed to access the target; check the target's ACL for this initiator name")]
    AuthorizationFailed,
    #[error("the target does not exist at this portal (status 0x0203)")]
    TargetNotFound,
    #[error("the target has been removed and no other address is known (status 0x0204)")]
    TargetRemoved,
    #[error("the target does not support iSCSI protocol version 0 (status 0x0205)")]
    UnsupportedVersion,
    #[error("the target refused the connection: the session has too many connections (status 0x0206)")]
    TooManyConnections,
    #[error("the target says a login parameter is missing (status 0x0207)")]
    MissingParameter,
    #[error("the target cannot include this connection in the session (status 0x0208)")]
    CantIncludeInSession,
    #[error("the target does not support this session type (status 0x0209)")]
    SessionTypeNotSupported,
    #[error("the session to add a connection to does not exist on the target (status 0x020a)")]
    SessionDoesNotExist,
    #[error("the target says a login request was invalid at this point of the login (status 0x020b)")]
    InvalidRequestDuringLogin,
    #[error("the login failed with a target error (status 0x0300); retrying later may work")]
    TargetError,
    #[error("the target service is unavailable (status 0x0301); retrying later may work")]
    ServiceUnavailable,
    #[error("the target is out of resources (status 0x0302); retrying later may work")]
    OutOfResources,
    #[error("the login failed with unknown status 0x{class:02x}{detail:02x}")]
    OtherStatus { class: u8, detail: u8 },
    #[error("the target redirected the login, but {0}")]
    BadRedirect(String),

    // Authentication method.
    #[error("the target requires CHAP authentication, but none is configured for it")]
    ChapRequired,
    #[error("the target rejected AuthMethod={offered}")]
    AuthMethodRejected { offered: &'static str },
    #[error("the target chose AuthMethod={chosen}, which was not offered (AuthMethod={offered}); refusing to continue")]
    AuthMethodNotOffered { chosen: String, offered: &'static str },
    #[error("the target did not answer AuthMethod")]
    AuthMethodMissing,
    #[error("CHAP authentication: {0}")]
    Chap(#[from] ChapError),
    #[error("operational negotiation: {0}")]
    Negotiation(#[from] NegotiationError),
    #[error("malformed login text from the target: {0}")]
    Text(#[from] TextError),

    // Protocol violations by the target.
    #[error("protocol error: the Login Response carries ITT 0x{got:08x}, not the login's 0x{expected:08x}")]
    UnexpectedItt { expected: u32, got: u32 },
    #[error("protocol error: the Login Response carries ISID {got:02x?}, not ours {expected:02x?}")]
    UnexpectedIsid { expected: [u8; 6], got: [u8; 6] },
    #[error("protocol error: the target answered in {got} while the login is in {expected}")]
    UnexpectedStage { expected: Stage, got: Stage },
    #[error("protocol error: the target left {stage} although the initiator did not set the T bit")]
    UnexpectedTransit { stage: Stage },
    #[error("protocol error: the target moved from {from} to {to}, which the initiator did not ask for")]
    BadNextStage { from: Stage, to: Stage },
    #[error("protocol error: a Login Response has both the T and C bits set")]
    TransitAndContinue,
    #[error("protocol error: the target sent text or moved on while the initiator was still sending its continued text")]
    InterruptedContinuation,
    #[error("protocol error: the target ended the security stage before authentication completed")]
    AuthenticationIncomplete,
    #[error("protocol error: the target sent {key} during operational negotiation")]
    SecurityKeyTooLate { key: String },
    #[error("protocol error: the final Login Response offers {key}, which would need an answer")]
    FinalResponseNeedsAnswer { key: String },
    #[error("protocol error: the final Login Response carries TSIH {got} (expected {})", expected_tsih(*.expected))]
    BadTsih { expected: u16, got: u16 },
    #[error("protocol error: the target answered with iSCSI version {0}, but only version 0 exists")]
    BadVersion(u8),
    #[error("the target continued its login text beyond {MAX_RESPONSE_TEXT} bytes")]
    TextTooLong,
    #[error("the login did not complete after {MAX_EXCHANGES} exchanges; the target keeps it going without progress")]
    TooManyExchanges,
    #[error("the login is already over")]
    Finished,
}

fn expected_tsih(t: u16) -> String {
    if t == 0 {
        "a non-zero TSIH for the new session".into()
    } else {
        format!("the session's TSIH {t}")
    }
}

impl LoginError {
    /// The login status (class << 8 | detail) the target sent, if this error is one.
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            LoginError::InitiatorError { .. } => 0x0200,
            LoginError::AuthenticationFailed { .. } => 0x0201,
            LoginError::AuthorizationFailed => 0x0202,
            LoginError::TargetNotFound => 0x0203,
            LoginError::TargetRemoved => 0x0204,
            LoginError::UnsupportedVersion => 0x0205,
            LoginError::TooManyConnections => 0x0206,
            LoginError::MissingParameter => 0x0207,
            LoginError::CantIncludeInSession => 0x0208,
            LoginError::SessionTypeNotSupported => 0x0209,
            LoginError::SessionDoesNotExist => 0x020a,
            LoginError::InvalidRequestDuringLogin => 0x020b,
            LoginError::TargetError => 0x0300,
            LoginError::ServiceUnavailable => 0x0301,
            LoginError::OutOfResources => 0x0302,
            LoginError::OtherStatus { class, detail } => u16::from(*class) << 8 | u16::from(*detail),
            _ => return None,
        })
    }

    /// Whether the same login may succeed later unchanged: status class 3, target errors
    /// (§11.13.5).
    pub fn is_retryable(&self) -> bool {
        self.status().is_some_and(|s| s >> 8 == 3)
    }
}

/// Where the security stage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Sent AuthMethod, waiting for the target's choice.
    AwaitMethod,
    /// Sent CHAP_A, waiting for CHAP_A / CHAP_I / CHAP_C.
    AwaitChallenge,
    /// Sent CHAP_N / CHAP_R, waiting for the target to accept (and prove itself, mutual).
    AwaitProof,
    Done,
}

/// The initiator's login state machine for one connection.
#[derive(Debug)]
pub struct Login {
    params: LoginParams,
    chap: Option<ChapInitiator>,
    security: Security,
    csg: Stage,
    negotiator: Negotiator,
    /// The last StatSN received; ExpStatSN is this + 1.
    stat_sn: Option<u32>,
    /// Text of a target response continued with the C bit.
    rx: Vec<u8>,
    /// The rest of our own continued text.
    tx: VecDeque<Vec<u8>>,
    /// T bit and NSG of the request being sent (its last piece).
    req_transit: bool,
    req_nsg: Stage,
    phase: LoginPhase,
    first: Option<TextKeys>,
    exchanges: u32,
    pieces: u32,
    finished: bool,
}

impl Login {
    /// Prepares a login. `random` must be fresh for every login (it becomes the mutual CHAP
    /// challenge). Fails when the parameters are invalid; nothing has been sent then.
    pub fn new(params: LoginParams, random: [u8; RANDOM_LEN]) -> Result<Self, LoginError> {
        params.validate()?;
        let chap = match &params.auth {
            Auth::None => None,
            Auth::Chap(c) => Some(ChapInitiator::new(c.clone(), &random)?),
        };
        let mut first = TextKeys::new();
        let mut push = |k: &str, v: &str| {
            first.push(k, v).map_err(|e| LoginError::InvalidParams(e.to_string()))
        };
        push("InitiatorName", &params.initiator_name)?;
        if let Some(a) = &params.initiator_alias {
            push("InitiatorAlias", a)?;
        }
        push("SessionType", params.session_type.as_str())?;
        if let Some(t) = &params.target_name {
            push("TargetName", t)?;
        }
        push("AuthMethod", if chap.is_some() { "CHAP" } else { "None" })?;
        let negotiator =
            Negotiator::new(params.offer.clone(), params.session_type == SessionType::Discovery, params.tsih == 0);
        Ok(Self {
            params,
            chap,
            security: Security::AwaitMethod,
            csg: Stage::Security,
            negotiator,
            stat_sn: None,
            rx: Vec::new(),
            tx: VecDeque::new(),
            req_transit: false,
            req_nsg: Stage::Operational,
            phase: LoginPhase::FirstRequest,
            first: Some(first),
            exchanges: 0,
            pieces: 0,
            finished: false,
        })
    }

    /// The first Login Request. Call once.
    pub fn start(&mut self) -> Pdu {
        let keys = self.first.take().unwrap_or_default();
        // With CHAP the security stage needs more round trips: T=0 until we have answered
        // the challenge. Without authentication we are ready to move on at once.
        let transit = self.chap.is_none();
        self.queue(keys, transit, Stage::Operational)
    }

    /// The stage the login is in.
    pub fn stage(&self) -> Stage {
        self.csg
    }

    /// Takes one Login Response (header and data segment).
    pub fn handle(&mut self, rsp: &LoginResponse, data: &[u8]) -> Result<LoginStep, LoginError> {
        if self.finished {
            return Err(LoginError::Finished);
        }
        let r = self.step(rsp, data);
        if !matches!(r, Ok(LoginStep::Send(_))) {
            self.finished = true;
        }
        r
    }

    fn step(&mut self, rsp: &LoginResponse, data: &[u8]) -> Result<LoginStep, LoginError> {
        // Continuation pieces are bounded apart from rounds: a target may legally cut its
        // text very fine.
        let counter = if rsp.cont || !self.tx.is_empty() { &mut self.pieces } else { &mut self.exchanges };
        *counter += 1;
        if self.exchanges > MAX_EXCHANGES || self.pieces > MAX_PIECES {
            return Err(LoginError::TooManyExchanges);
        }
        // The status comes first: a target refusing a login need not echo our ISID (tgtd
        // answers an authentication failure with a zero ISID), and the status is what the
        // user needs to hear.
        match rsp.status_class {
            0 => {}
            1 => return self.redirect(rsp, data),
            class => return Err(self.status_error(class, rsp.status_detail)),
        }
        if rsp.itt != self.params.itt {
            return Err(LoginError::UnexpectedItt { expected: self.params.itt, got: rsp.itt });
        }
        if rsp.isid != self.params.isid {
            return Err(LoginError::UnexpectedIsid { expected: self.params.isid, got: rsp.isid });
        }
        if rsp.version_active != 0 {
            return Err(LoginError::BadVersion(rsp.version_active));
        }
        if rsp.csg != self.csg {
            return Err(LoginError::UnexpectedStage { expected: self.csg, got: rsp.csg });
        }
        if rsp.transit && rsp.cont {
            return Err(LoginError::TransitAndContinue);
        }
        // §11.13.4: StatSN is valid in every successful response.
        self.stat_sn = Some(rsp.stat_sn);

        if rsp.cont {
            // §6.1: the target's text goes on; an empty request (T=0, C=0) asks for more.
            if !self.tx.is_empty() {
                return Err(LoginError::InterruptedContinuation);
            }
            self.collect(data)?;
            return Ok(LoginStep::Send(self.pdu(Vec::new(), false, false, self.req_nsg)));
        }
        if let Some(chunk) = self.tx.pop_front() {
            // The target acknowledges each piece of our text with an empty response.
            if !data.is_empty() || rsp.transit {
                return Err(LoginError::InterruptedContinuation);
            }
            let last = self.tx.is_empty();
            return Ok(LoginStep::Send(self.pdu(chunk, !last, last && self.req_transit, self.req_nsg)));
        }
        self.collect(data)?;
        let keys = TextKeys::decode(&std::mem::take(&mut self.rx))?;
        // A wrong authentication method is the news, whatever else is wrong with the answer.
        if self.csg == Stage::Security && self.security == Security::AwaitMethod {
            if let Some(e) = self.auth_method_error(keys.get("AuthMethod")) {
                return Err(e);
            }
        }
        if rsp.transit {
            // §11.13.6: no T=1 answer to a T=0 request, and never beyond the stage asked for.
            if !self.req_transit {
                return Err(LoginError::UnexpectedTransit { stage: self.csg });
            }
            if rsp.nsg <= self.csg || rsp.nsg > self.req_nsg {
                return Err(LoginError::BadNextStage { from: self.csg, to: rsp.nsg });
            }
        }
        match self.csg {
            Stage::Security => self.security_step(rsp, &keys),
            Stage::Operational => self.operational_step(rsp, &keys),
            Stage::FullFeature => Err(LoginError::Finished),
        }
    }

    fn security_step(&mut self, rsp: &LoginResponse, keys: &TextKeys) -> Result<LoginStep, LoginError> {
        let answers = self.negotiator.handle(keys)?;
        let mut out = TextKeys::new();
        let method = keys.get("AuthMethod");
        if self.security != Security::AwaitMethod {
            if method.is_some() {
                return Err(NegotiationError::Renegotiated { key: "AuthMethod".into() }.into());
            }
        } else {
            self.check_chap_keys(keys, &[])?;
        }
        match self.security {
            Security::AwaitMethod => {
                if let Some(e) = self.auth_method_error(method) {
                    return Err(e);
                }
                match &self.chap {
                    None => {
                        self.security = Security::Done;
                        self.phase = LoginPhase::Security;
                    }
                    Some(chap) => {
                        let offered = chap.algorithm_offer();
                        out.push("CHAP_A", offered.clone())?;
                        self.phase = LoginPhase::ChapAlgorithms { offered };
                        self.security = Security::AwaitChallenge;
                    }
                }
            }
            Security::AwaitChallenge => {
                self.check_chap_keys(keys, &["CHAP_A", "CHAP_I", "CHAP_C"])?;
                let chap = self.chap.as_mut().ok_or(LoginError::AuthenticationIncomplete)?;
                out.extend(chap.respond(keys)?);
                self.phase = LoginPhase::ChapResponse;
                self.security = Security::AwaitProof;
            }
            Security::AwaitProof => {
                self.check_chap_keys(keys, &["CHAP_N", "CHAP_R"])?;
                let chap = self.chap.as_ref().ok_or(LoginError::AuthenticationIncomplete)?;
                if chap.is_mutual() {
                    if chap.verify_target(keys)? {
                        self.security = Security::Done;
                    } else if rsp.transit {
                        return Err(ChapError::TargetDidNotAuthenticate.into());
                    }
                } else if rsp.transit {
                    // Moving on is how the target says our response was right.
                    self.security = Security::Done;
                }
            }
            Security::Done => self.check_chap_keys(keys, &[])?,
        }

        if rsp.transit {
            if self.security != Security::Done {
                return Err(LoginError::AuthenticationIncomplete);
            }
            self.csg = Stage::Operational;
            let crc = |d: &[crate::negotiate::Digest]| d.contains(&crate::negotiate::Digest::Crc32c);
            self.phase = if crc(&self.params.offer.header_digest) || crc(&self.params.offer.data_digest) {
                LoginPhase::Operational
            } else {
                LoginPhase::OperationalWithoutDigests
            };
            let mut next = answers;
            next.extend(self.negotiator.offers()?);
            return Ok(LoginStep::Send(self.queue(next, true, Stage::FullFeature)));
        }
        out.extend(answers);
        // T=0 only while the CHAP challenge is still to come.
        let transit = self.security != Security::AwaitChallenge;
        Ok(LoginStep::Send(self.queue(out, transit, Stage::Operational)))
    }

    /// What is wrong with the target's AuthMethod answer, if anything.
    fn auth_method_error(&self, method: Option<&str>) -> Option<LoginError> {
        let offered = if self.chap.is_some() { "CHAP" } else { "None" };
        match (self.chap.is_some(), method) {
            // A target that does not answer AuthMethod=None has nothing to object to.
            (false, Some("None") | None) | (true, Some("CHAP")) => None,
            (false, Some("CHAP")) => Some(LoginError::ChapRequired),
            (true, None) => Some(LoginError::AuthMethodMissing),
            (_, Some(text::REJECT)) => Some(LoginError::AuthMethodRejected { offered }),
            // Includes None when we asked for CHAP: accepting it would let anyone on the path
            // turn authentication off.
            (_, Some(other)) => Some(LoginError::AuthMethodNotOffered { chosen: other.into(), offered }),
        }
    }

    /// CHAP keys are only valid at their own step of the exchange.
    fn check_chap_keys(&self, keys: &TextKeys, allowed: &[&str]) -> Result<(), LoginError> {
        match keys.iter().find(|(k, _)| k.starts_with("CHAP_") && !allowed.contains(k)) {
            Some((k, _)) => Err(ChapError::UnexpectedKey(k.to_owned()).into()),
            None => Ok(()),
        }
    }

    fn operational_step(&mut self, rsp: &LoginResponse, keys: &TextKeys) -> Result<LoginStep, LoginError> {
        if let Some((k, _)) = keys.iter().find(|(k, _)| *k == "AuthMethod" || k.starts_with("CHAP_")) {
            return Err(LoginError::SecurityKeyTooLate { key: k.to_owned() });
        }
        let answers = self.negotiator.handle(keys)?;
        if rsp.transit {
            // §11.13.6: a T=1 response must not need answers. Unknown keys are harmless.
            if let Some((k, _)) = answers.iter().find(|(_, v)| *v != text::NOT_UNDERSTOOD) {
                return Err(LoginError::FinalResponseNeedsAnswer { key: k.to_owned() });
            }
            return self.finish(rsp);
        }
        Ok(LoginStep::Send(self.queue(answers, true, Stage::FullFeature)))
    }

    fn finish(&mut self, rsp: &LoginResponse) -> Result<LoginStep, LoginError> {
        // §11.13.3: a new session gets a non-zero TSIH; an existing one keeps its own.
        let expected = self.params.tsih;
        if rsp.tsih == 0 || (expected != 0 && rsp.tsih != expected) {
            return Err(LoginError::BadTsih { expected, got: rsp.tsih });
        }
        let params = self.negotiator.finish()?;
        self.csg = Stage::FullFeature;
        Ok(LoginStep::Done(Negotiated {
            tsih: rsp.tsih,
            cmd_sn: self.params.cmd_sn,
            stat_sn: rsp.stat_sn.wrapping_add(1),
            exp_cmd_sn: rsp.exp_cmd_sn,
            max_cmd_sn: rsp.max_cmd_sn,
            params,
            target_alias: self.negotiator.target_alias().map(str::to_owned),
            tpgt: self.negotiator.tpgt(),
            target_address: self.negotiator.target_address().map(str::to_owned),
        }))
    }

    fn redirect(&mut self, rsp: &LoginResponse, data: &[u8]) -> Result<LoginStep, LoginError> {
        let permanent = match rsp.status_detail {
            0x01 => false,
            0x02 => true,
            detail => return Err(LoginError::OtherStatus { class: 1, detail }),
        };
        let keys = TextKeys::decode_list(data).map_err(|e| LoginError::BadRedirect(e.to_string()))?;
        let addr = keys.get("TargetAddress").ok_or_else(|| LoginError::BadRedirect("gave no TargetAddress".into()))?;
        let tp = parse_target_address(addr)
            .map_err(|e| LoginError::BadRedirect(format!("its TargetAddress {addr:?} is invalid: {e}")))?;
        Ok(LoginStep::Redirect { address: tp.portal, permanent })
    }

    fn status_error(&self, class: u8, detail: u8) -> LoginError {
        match (class, detail) {
            (2, 0x00) => LoginError::InitiatorError { during: self.phase.clone() },
            (2, 0x01) => LoginError::AuthenticationFailed {
                context: match &self.chap {
                    None => AuthContext::NoAuth,
                    Some(c) => AuthContext::Chap { algorithm: c.chosen(), iet_style: c.iet_style_challenge() },
                },
            },
            (2, 0x02) => LoginError::AuthorizationFailed,
            (2, 0x03) => LoginError::TargetNotFound,
            (2, 0x04) => LoginError::TargetRemoved,
            (2, 0x05) => LoginError::UnsupportedVersion,
            (2, 0x06) => LoginError::TooManyConnections,
            (2, 0x07) => LoginError::MissingParameter,
            (2, 0x08) => LoginError::CantIncludeInSession,
            (2, 0x09) => LoginError::SessionTypeNotSupported,
            (2, 0x0a) => LoginError::SessionDoesNotExist,
            (2, 0x0b) => LoginError::InvalidRequestDuringLogin,
            (3, 0x00) => LoginError::TargetError,
            (3, 0x01) => LoginError::ServiceUnavailable,
            (3, 0x02) => LoginError::OutOfResources,
            (class, detail) => LoginError::OtherStatus { class, detail },
        }
    }

    fn collect(&mut self, data: &[u8]) -> Result<(), LoginError> {
        if self.rx.len() + data.len() > MAX_RESPONSE_TEXT {
            return Err(LoginError::TextTooLong);
        }
        self.rx.extend_from_slice(data);
        Ok(())
    }

    /// Starts sending `keys` as the next request, split into pieces with the C bit when
    /// longer than a login PDU may be. Returns the first piece.
    fn queue(&mut self, keys: TextKeys, transit: bool, nsg: Stage) -> Pdu {
        let mut chunks: VecDeque<Vec<u8>> = text::split_chunks(&keys.encode(), MAX_LOGIN_SEGMENT).into();
        self.req_transit = transit;
        self.req_nsg = nsg;
        let first = chunks.pop_front().unwrap_or_default();
        let more = !chunks.is_empty();
        self.tx = chunks;
        // §11.12.2: C=1 requires T=0.
        self.pdu(first, more, transit && !more, nsg)
    }

    fn pdu(&self, data: Vec<u8>, cont: bool, transit: bool, nsg: Stage) -> Pdu {
        let h = LoginRequest {
            transit,
            cont,
            csg: self.csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: self.params.isid,
            tsih: self.params.tsih,
            itt: self.params.itt,
            cid: self.params.cid,
            cmd_sn: self.params.cmd_sn,
            exp_stat_sn: self.stat_sn.map_or(0, |s| s.wrapping_add(1)),
        };
        Pdu::new(h, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::Header;

    const ISID: [u8; 6] = [0x80, 0x12, 0x34, 0x56, 0, 1];
    const ITT: u32 = 0x10;
    const CMD_SN: u32 = 100;
    const FIRST_STAT_SN: u32 = 0x4000;

    fn random() -> [u8; RANDOM_LEN] {
        std::array::from_fn(|i| u8::try_from(i).unwrap().wrapping_mul(37).wrapping_add(11))
    }

    fn params(auth: Auth) -> LoginParams {
        LoginParams {
            initiator_name: "iqn.2024-01.test:init".into(),
            initiator_alias: Some("host1".into()),
            target_name: Some("iqn.2024-01.test:disk".into()),
            session_type: SessionType::Normal,
            isid: ISID,
            tsih: 0,
            cid: 0,
            cmd_sn: CMD_SN,
            itt: ITT,
            auth,
            offer: Offer::default(),
        }
    }

    fn chap(algorithms: Vec<ChapAlgorithm>, mutual: bool) -> Auth {
        Auth::Chap(ChapConfig {
            mutual: mutual.then(|| ("target-user".to_owned(), Secret::from("target-secret-99"))),
            algorithms,
            ..ChapConfig::new("user", "verysecretpassword")
        })
    }

    /// The target's side of CHAP, computed with the hash crates directly. `iet` makes 7 mean
    /// SHA1, as tgtd does.
    fn target_hash(code: u8, iet: bool, id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
        fn h<D: sha2::Digest>(id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update([id]);
            d.update(secret);
            d.update(challenge);
            d.finalize().to_vec()
        }
        match (code, iet) {
            (5, _) => h::<md5::Md5>(id, secret, challenge),
            (6, _) | (7, true) => h::<sha1::Sha1>(id, secret, challenge),
            (7, false) => h::<sha2::Sha256>(id, secret, challenge),
            (8, _) => h::<sha3::Sha3_256>(id, secret, challenge),
            _ => panic!("no algorithm {code}"),
        }
    }

    struct TargetChap {
        user: &'static str,
        secret: &'static [u8],
        /// The name and secret the target proves itself with, when asked.
        mutual: (&'static str, &'static [u8]),
        accepted: Vec<u8>,
        iet_numbering: bool,
        /// Like tgtd: an unsupported CHAP_A list gets status 0x0200 rather than CHAP_A=Reject.
        reject_with_status: bool,
        challenge: Vec<u8>,
        omit_proof: bool,
    }

    impl Default for TargetChap {
        fn default() -> Self {
            Self {
                user: "user",
                secret: b"verysecretpassword",
                mutual: ("target-user", b"target-secret-99"),
                accepted: vec![5, 6, 7, 8],
                iet_numbering: false,
                reject_with_status: false,
                challenge: (0u8..16).collect(),
                omit_proof: false,
            }
        }
    }

    /// A scripted in-memory target following RFC 7143, with knobs for the quirks of real ones.
    struct FakeTarget {
        chap: Option<TargetChap>,
        auth_answer: Option<&'static str>,
        /// Keys the target offers on its own in its first operational answer (tgtd style:
        /// then without the T bit).
        unsolicited: Vec<(&'static str, &'static str)>,
        digests: Vec<&'static str>,
        max_recv: u32,
        max_burst: u32,
        /// Send answers in pieces of this many bytes with the C bit.
        split: Option<usize>,
        tsih: u16,
        // State.
        csg: Stage,
        started: bool,
        chap_step: u8,
        alg: u8,
        stat_sn: u32,
        last_stat_sn: Option<u32>,
        rx: Vec<u8>,
        out: VecDeque<Vec<u8>>,
        out_flags: (bool, Stage),
        // What the initiator sent.
        requests: Vec<(LoginRequest, Vec<u8>)>,
        chap_r: Option<String>,
        op_offers: Option<TextKeys>,
        later_answers: Option<TextKeys>,
    }

    impl FakeTarget {
        fn new() -> Self {
            Self {
                chap: None,
                auth_answer: None,
                unsolicited: Vec::new(),
                digests: vec!["None"],
                max_recv: 65_536,
                max_burst: 131_072,
                split: None,
                tsih: 0x0102,
                csg: Stage::Security,
                started: false,
                chap_step: 0,
                alg: 0,
                stat_sn: FIRST_STAT_SN,
                last_stat_sn: None,
                rx: Vec::new(),
                out: VecDeque::new(),
                out_flags: (false, Stage::Security),
                requests: Vec::new(),
                chap_r: None,
                op_offers: None,
                later_answers: None,
            }
        }

        fn with_chap(chap: TargetChap) -> Self {
            Self { chap: Some(chap), ..Self::new() }
        }

        fn header(&mut self, req: &LoginRequest, transit: bool, cont: bool, nsg: Stage) -> LoginResponse {
            let stat_sn = self.stat_sn;
            self.stat_sn += 1;
            self.last_stat_sn = Some(stat_sn);
            let last = transit && nsg == Stage::FullFeature;
            LoginResponse {
                transit,
                cont,
                csg: self.csg,
                nsg,
                version_max: 0,
                version_active: 0,
                isid: req.isid,
                tsih: if last && req.tsih == 0 { self.tsih } else { req.tsih },
                itt: req.itt,
                stat_sn,
                exp_cmd_sn: req.cmd_sn,
                max_cmd_sn: req.cmd_sn + 31,
                status_class: 0,
                status_detail: 0,
            }
        }

        fn fail(&mut self, req: &LoginRequest, class: u8, detail: u8) -> (LoginResponse, Vec<u8>) {
            let mut h = self.header(req, false, false, Stage::Security);
            h.status_class = class;
            h.status_detail = detail;
            (h, Vec::new())
        }

        fn reply(&mut self, req: &LoginRequest, keys: TextKeys, transit: bool, nsg: Stage) -> (LoginResponse, Vec<u8>) {
            let data = keys.encode();
            let mut chunks: VecDeque<Vec<u8>> = match self.split {
                Some(n) => text::split_chunks(&data, n).into(),
                None => VecDeque::from([data]),
            };
            let first = chunks.pop_front().unwrap_or_default();
            if chunks.is_empty() {
                let h = self.header(req, transit, false, nsg);
                self.advance(transit, nsg);
                return (h, first);
            }
            self.out = chunks;
            self.out_flags = (transit, nsg);
            (self.header(req, false, true, nsg), first)
        }

        fn advance(&mut self, transit: bool, nsg: Stage) {
            if transit {
                self.csg = nsg;
            }
        }

        fn respond(&mut self, pdu: &Pdu) -> (LoginResponse, Vec<u8>) {
            let Header::LoginRequest(req) = &pdu.header else { panic!("not a login request: {pdu:?}") };
            self.requests.push((req.clone(), pdu.data.clone()));
            assert_eq!(req.itt, ITT);
            assert_eq!(req.isid, ISID);
            assert_eq!(req.cmd_sn, CMD_SN, "login requests do not advance CmdSN");
            assert_eq!((req.version_max, req.version_min), (0, 0));
            if let Some(last) = self.last_stat_sn {
                assert_eq!(req.exp_stat_sn, last.wrapping_add(1), "ExpStatSN = last StatSN + 1");
            }
            assert_eq!(req.csg, self.csg, "initiator CSG");
            assert!(!(req.cont && req.transit), "C=1 needs T=0");
            if let Some(chunk) = self.out.pop_front() {
                assert!(pdu.data.is_empty() && !req.transit && !req.cont, "continuation requests are empty");
                if self.out.is_empty() {
                    let (transit, nsg) = self.out_flags;
                    let h = self.header(req, transit, false, nsg);
                    self.advance(transit, nsg);
                    return (h, chunk);
                }
                return (self.header(req, false, true, self.out_flags.1), chunk);
            }
            self.rx.extend_from_slice(&pdu.data);
            if req.cont {
                return (self.header(req, false, false, Stage::Security), Vec::new());
            }
            let keys = TextKeys::decode(&std::mem::take(&mut self.rx)).expect("initiator text decodes");
            match self.csg {
                Stage::Security => self.security(req, &keys),
                _ => self.operational(req, &keys),
            }
        }

        fn security(&mut self, req: &LoginRequest, keys: &TextKeys) -> (LoginResponse, Vec<u8>) {
            let mut out = TextKeys::new();
            if !self.started {
                self.started = true;
                assert_eq!(keys.get("InitiatorName"), Some("iqn.2024-01.test:init"));
                assert!(keys.contains("SessionType"));
                out.push("TargetPortalGroupTag", "1").unwrap();
                let offered = keys.get("AuthMethod").expect("AuthMethod offered");
                if self.chap.is_none() {
                    let ans = self.auth_answer.unwrap_or(if offered == "None" { "None" } else { "Reject" });
                    out.push("AuthMethod", ans).unwrap();
                    let transit = req.transit && ans == "None";
                    return self.reply(req, out, transit, Stage::Operational);
                }
                if !text::parse_list(offered).any(|m| m == "CHAP") {
                    return self.fail(req, 2, 1);
                }
                out.push("AuthMethod", self.auth_answer.unwrap_or("CHAP")).unwrap();
                return self.reply(req, out, false, Stage::Operational);
            }
            let Some(chap) = self.chap.as_ref() else {
                // No authentication: the initiator may repeat an empty request with T=1.
                return self.reply(req, out, req.transit, Stage::Operational);
            };
            match self.chap_step {
                0 => {
                    self.chap_step = 1;
                    let list: Vec<u8> =
                        text::parse_list(keys.get("CHAP_A").expect("CHAP_A")).map(|a| a.parse().unwrap()).collect();
                    let Some(&a) = list.iter().find(|a| chap.accepted.contains(a)) else {
                        if chap.reject_with_status {
                            return self.fail(req, 2, 0);
                        }
                        out.push("CHAP_A", "Reject").unwrap();
                        return self.reply(req, out, false, Stage::Operational);
                    };
                    self.alg = a;
                    out.push("CHAP_A", a.to_string()).unwrap();
                    out.push("CHAP_I", "42").unwrap();
                    out.push("CHAP_C", text::encode_hex(&chap.challenge)).unwrap();
                    self.reply(req, out, false, Stage::Operational)
                }
                _ => {
                    assert!(req.transit, "CHAP response comes with T=1");
                    let r = keys.get("CHAP_R").expect("CHAP_R");
                    self.chap_r = Some(r.to_owned());
                    let expected = target_hash(self.alg, chap.iet_numbering, 42, chap.secret, &chap.challenge);
                    if text::parse_binary("CHAP_R", r).unwrap() != expected || keys.get("CHAP_N") != Some(chap.user) {
                        return self.fail(req, 2, 1);
                    }
                    if let Some(c) = keys.get("CHAP_C") {
                        let id = u8::try_from(text::parse_number("CHAP_I", keys.get("CHAP_I").unwrap()).unwrap()).unwrap();
                        let c = text::parse_binary("CHAP_C", c).unwrap();
                        if !chap.omit_proof {
                            let (user, secret) = chap.mutual;
                            out.push("CHAP_N", user).unwrap();
                            out.push("CHAP_R", text::encode_hex(&target_hash(self.alg, chap.iet_numbering, id, secret, &c)))
                                .unwrap();
                        }
                    }
                    self.reply(req, out, true, Stage::Operational)
                }
            }
        }

        fn operational(&mut self, req: &LoginRequest, keys: &TextKeys) -> (LoginResponse, Vec<u8>) {
            let mut out = TextKeys::new();
            if self.op_offers.is_some() {
                self.later_answers = Some(keys.clone());
                return self.reply(req, out, req.transit, Stage::FullFeature);
            }
            self.op_offers = Some(keys.clone());
            // LIO with digests required: an offer without CRC32C gets status 0x0200.
            if self.digests == ["CRC32C"]
                && keys.iter().any(|(k, v)| k.ends_with("Digest") && !text::parse_list(v).any(|d| d == "CRC32C"))
            {
                return self.fail(req, 2, 0x00);
            }
            let num = |v: &str| text::parse_number("n", v).unwrap();
            for (k, v) in keys.iter() {
                let ans = match k {
                    "HeaderDigest" | "DataDigest" => {
                        text::parse_list(v).find(|d| self.digests.contains(d)).unwrap_or("Reject").to_owned()
                    }
                    "MaxRecvDataSegmentLength" => continue,
                    "MaxBurstLength" => num(v).min(u64::from(self.max_burst)).to_string(),
                    "FirstBurstLength" => num(v).min(65_536).to_string(),
                    "MaxConnections" | "MaxOutstandingR2T" => num(v).min(1).to_string(),
                    "ErrorRecoveryLevel" | "DefaultTime2Retain" => "0".to_owned(),
                    "DefaultTime2Wait" => num(v).max(2).to_string(),
                    "InitialR2T" | "DataPDUInOrder" | "DataSequenceInOrder" => "Yes".to_owned(),
                    "ImmediateData" => v.to_owned(),
                    _ => "NotUnderstood".to_owned(),
                };
                out.push(k, ans).unwrap();
            }
            out.push("MaxRecvDataSegmentLength", self.max_recv.to_string()).unwrap();
            out.push("TargetAlias", "fake disk").unwrap();
            let mut transit = req.transit;
            for (k, v) in std::mem::take(&mut self.unsolicited) {
                out.push(k, v).unwrap();
                transit = false;
            }
            self.reply(req, out, transit, Stage::FullFeature)
        }
    }

    /// Runs a whole login against the fake target.
    fn run(p: LoginParams, target: &mut FakeTarget) -> Result<LoginStep, LoginError> {
        let mut login = Login::new(p, random())?;
        let mut pdu = login.start();
        for _ in 0..10_000 {
            let (h, d) = target.respond(&pdu);
            match login.handle(&h, &d)? {
                LoginStep::Send(next) => pdu = next,
                other => return Ok(other),
            }
        }
        panic!("login did not finish");
    }

    fn done(r: Result<LoginStep, LoginError>) -> Negotiated {
        match r {
            Ok(LoginStep::Done(n)) => n,
            other => panic!("expected a completed login, got {other:?}"),
        }
    }

    #[test]
    fn login_without_authentication() {
        let mut t = FakeTarget::new();
        let n = done(run(params(Auth::None), &mut t));
        // First request: security stage, ready to move on, our declarations.
        let (h, data) = &t.requests[0];
        assert!(h.transit && !h.cont);
        assert_eq!((h.csg, h.nsg, h.tsih, h.exp_stat_sn), (Stage::Security, Stage::Operational, 0, 0));
        assert_eq!(
            data.as_slice(),
            b"InitiatorName=iqn.2024-01.test:init\0InitiatorAlias=host1\0SessionType=Normal\0\
TargetName=iqn.2024-01.test:disk\0AuthMethod=None\0"
        );
        let (h, _) = &t.requests[1];
        assert_eq!((h.csg, h.nsg, h.transit), (Stage::Operational, Stage::FullFeature, true));
        assert_eq!(t.requests.len(), 2);
        let offers = t.op_offers.as_ref().unwrap();
        assert_eq!(offers.get("MaxRecvDataSegmentLength"), Some("262144"));
        assert_eq!(offers.get("InitialR2T"), Some("No"));
        assert_eq!(offers.get("ImmediateData"), Some("Yes"));

        assert_eq!(n.tsih, 0x0102);
        assert_eq!(n.cmd_sn, CMD_SN);
        assert_eq!(n.stat_sn, FIRST_STAT_SN + 2, "two responses seen, next expected is +2");
        assert_eq!((n.exp_cmd_sn, n.max_cmd_sn), (CMD_SN, CMD_SN + 31));
        assert_eq!(n.tpgt, Some(1));
        assert_eq!(n.target_alias.as_deref(), Some("fake disk"));
        let p = &n.params;
        assert_eq!(p.max_xmit_data_segment_length, 65_536);
        assert_eq!(p.max_recv_data_segment_length, 262_144);
        assert_eq!(p.max_burst_length, 131_072);
        assert_eq!(p.first_burst_length, 65_536);
        assert!(p.initial_r2t, "the target wants R2T (OR)");
        assert!(p.immediate_data);
        assert!(!p.header_digest && !p.data_digest);
        assert_eq!(p.default_time2retain, 0);
        assert_eq!(p.frame_config().max_recv_data_segment, 262_144);
    }

    #[test]
    fn discovery_session_sends_only_discovery_keys() {
        let mut t = FakeTarget::new();
        let p = LoginParams { target_name: None, session_type: SessionType::Discovery, ..params(Auth::None) };
        let n = done(run(p, &mut t));
        let first = TextKeys::decode(&t.requests[0].1).unwrap();
        assert_eq!(first.get("SessionType"), Some("Discovery"));
        assert!(!first.contains("TargetName"));
        let offers = t.op_offers.as_ref().unwrap();
        assert_eq!(offers.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength"]);
        assert_eq!(n.params.max_xmit_data_segment_length, 65_536);
    }

    #[test]
    fn digests_negotiated() {
        let mut t = FakeTarget { digests: vec!["CRC32C", "None"], ..FakeTarget::new() };
        let mut p = params(Auth::None);
        p.offer.header_digest = vec![Digest::Crc32c, Digest::None];
        p.offer.data_digest = vec![Digest::Crc32c];
        let n = done(run(p, &mut t));
        assert!(n.params.header_digest && n.params.data_digest);
        // A target without CRC32C refuses; the configuration requires it for data.
        let mut t = FakeTarget::new();
        let mut p = params(Auth::None);
        p.offer.data_digest = vec![Digest::Crc32c];
        let e = run(p, &mut t).unwrap_err();
        assert!(matches!(e, LoginError::Negotiation(NegotiationError::Refused { key: "DataDigest", .. })), "{e}");
    }

    /// A target that requires CRC32C and answers an offer without it with 0x0200 (LIO does):
    /// the error names the digests, and only when we offered none.
    #[test]
    fn initiator_error_without_digests_names_them() {
        let mut t = FakeTarget { digests: vec!["CRC32C"], ..FakeTarget::new() };
        let e = run(params(Auth::None), &mut t).unwrap_err();
        assert_eq!(e, LoginError::InitiatorError { during: LoginPhase::OperationalWithoutDigests });
        let msg = e.to_string();
        assert!(msg.contains("0x0200") && msg.contains("CRC32C") && msg.contains("header_digest"), "{msg}");
        // Offering CRC32C, the same target logs in; the hint is for the no-digest offer only.
        let mut t = FakeTarget { digests: vec!["CRC32C"], ..FakeTarget::new() };
        let mut p = params(Auth::None);
        p.offer.header_digest = vec![Digest::Crc32c, Digest::None];
        p.offer.data_digest = vec![Digest::Crc32c, Digest::None];
        done(run(p, &mut t));
        assert!(!LoginPhase::Operational.to_string().contains("CRC32C"));
    }

    #[test]
    fn one_way_chap_with_every_algorithm() {
        // Responses to id 42, secret "verysecretpassword", challenge 00..0f, computed with
        // Python's hashlib.
        let known = [
            (ChapAlgorithm::Md5, "0x72d8e9d78f56051651be893debbaf285"),
            (ChapAlgorithm::Sha1, "0xe72f04d61ab2db1aaaeff3cb7331520437620335"),
            (ChapAlgorithm::Sha256, "0x9b7eefbc21331bba7e13f0c72f0fc7cd6a120ab4e0104b820bb083d772bb2cab"),
            (ChapAlgorithm::Sha3_256, "0x178af1b6e26429b15a43ccc23e5cc11a1fb856d190c56ff6de738e3c3e3cfaae"),
        ];
        for (alg, expected) in known {
            let mut t = FakeTarget::with_chap(TargetChap::default());
            let n = done(run(params(chap(vec![alg], false)), &mut t));
            assert_eq!(t.chap_r.as_deref(), Some(expected), "{alg}");
            assert_eq!(n.tsih, 0x0102);
            // AuthMethod (T=0), CHAP_A (T=0), CHAP_N/R (T=1), operational.
            let flags: Vec<(Stage, bool)> = t.requests.iter().map(|(h, _)| (h.csg, h.transit)).collect();
            assert_eq!(
                flags,
                [(Stage::Security, false), (Stage::Security, false), (Stage::Security, true), (Stage::Operational, true)]
            );
            let chap_a = TextKeys::decode(&t.requests[1].1).unwrap();
            assert_eq!(chap_a.get("CHAP_A"), Some(alg.code().to_string().as_str()));
            let resp = TextKeys::decode(&t.requests[2].1).unwrap();
            assert!(!resp.contains("CHAP_C"), "one-way CHAP sends no challenge");
        }
    }

    #[test]
    fn chap_algorithm_preference_order() {
        let mut t = FakeTarget::with_chap(TargetChap { accepted: vec![5, 8], ..TargetChap::default() });
        done(run(params(chap(vec![ChapAlgorithm::Sha256, ChapAlgorithm::Sha3_256, ChapAlgorithm::Md5], false)), &mut t));
        assert_eq!(TextKeys::decode(&t.requests[1].1).unwrap().get("CHAP_A"), Some("7,8,5"));
        assert_eq!(t.alg, 8);
        assert_eq!(t.chap_r.as_ref().map(String::len), Some(2 + 64));
    }

    #[test]
    fn mutual_chap() {
        let mut t = FakeTarget::with_chap(TargetChap::default());
        let n = done(run(params(chap(vec![ChapAlgorithm::Sha256], true)), &mut t));
        assert_eq!(n.tsih, 0x0102);
        let sent = TextKeys::decode(&t.requests[2].1).unwrap();
        assert_eq!(sent.get("CHAP_C"), Some(text::encode_hex(&random()).as_str()));
        assert_eq!(sent.get("CHAP_I"), Some(random()[0].to_string().as_str()));
    }

    #[test]
    fn mutual_chap_wrong_target_secret() {
        let mut t = FakeTarget::with_chap(TargetChap { mutual: ("target-user", b"not-the-secret"), ..TargetChap::default() });
        let e = run(params(chap(vec![ChapAlgorithm::Md5], true)), &mut t).unwrap_err();
        assert_eq!(e, LoginError::Chap(ChapError::TargetAuthenticationFailed));
        assert!(e.to_string().contains("target secret"), "{e}");
    }

    #[test]
    fn mutual_chap_wrong_target_name_or_no_proof() {
        let mut t = FakeTarget::with_chap(TargetChap { mutual: ("impostor", b"target-secret-99"), ..TargetChap::default() });
        let e = run(params(chap(vec![ChapAlgorithm::Md5], true)), &mut t).unwrap_err();
        assert!(matches!(e, LoginError::Chap(ChapError::TargetNameMismatch { .. })), "{e}");
        let mut t = FakeTarget::with_chap(TargetChap { omit_proof: true, ..TargetChap::default() });
        let e = run(params(chap(vec![ChapAlgorithm::Md5], true)), &mut t).unwrap_err();
        assert_eq!(e, LoginError::Chap(ChapError::TargetDidNotAuthenticate));
    }

    #[test]
    fn reflected_challenge_is_refused() {
        let mut t = FakeTarget::with_chap(TargetChap { challenge: random().to_vec(), ..TargetChap::default() });
        let e = run(params(chap(vec![ChapAlgorithm::Md5], true)), &mut t).unwrap_err();
        assert_eq!(e, LoginError::Chap(ChapError::ReflectedChallenge));
        // Nothing was answered: the last request was the CHAP_A offer.
        assert_eq!(t.requests.len(), 2);
    }

    /// A target that numbers CHAP_A as RFC 7143 does (LIO: a 32-byte challenge for SHA-256)
    /// and a wrong secret: the message says to check the credentials, without tgtd's quirk.
    #[test]
    fn wrong_secret_with_sha256_names_no_quirk() {
        let mut t = FakeTarget::with_chap(TargetChap {
            accepted: vec![7],
            secret: b"some-other-secret",
            challenge: (0u8..32).collect(),
            ..TargetChap::default()
        });
        let e = run(params(chap(vec![ChapAlgorithm::Sha256], false)), &mut t).unwrap_err();
        assert_eq!(
            e,
            LoginError::AuthenticationFailed {
                context: AuthContext::Chap { algorithm: Some(ChapAlgorithm::Sha256), iet_style: false }
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("username and secret") && !msg.contains("tgtd"), "{msg}");
    }

    #[test]
    fn short_challenge_is_refused() {
        let mut t = FakeTarget::with_chap(TargetChap { challenge: vec![1; 8], ..TargetChap::default() });
        let e = run(params(chap(vec![ChapAlgorithm::Md5], false)), &mut t).unwrap_err();
        assert_eq!(e, LoginError::Chap(ChapError::ChallengeTooShort { len: 8, min: 16 }));
    }

    #[test]
    fn tgtd_sha1_for_7_one_way_gives_a_hint() {
        // tgtd's challenges are 25 to 49 bytes long.
        let tgtd = || TargetChap { accepted: vec![5, 7], iet_numbering: true, challenge: (0u8..40).collect(), ..TargetChap::default() };
        let mut t = FakeTarget::with_chap(tgtd());
        let e = run(params(chap(vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5], false)), &mut t).unwrap_err();
        assert_eq!(
            e,
            LoginError::AuthenticationFailed {
                context: AuthContext::Chap { algorithm: Some(ChapAlgorithm::Sha256), iet_style: true }
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("tgtd") && msg.contains("SHA1") && msg.contains("MD5 only"), "{msg}");
        assert_eq!(e.status(), Some(0x0201));
        assert!(!e.is_retryable());
        // MD5 only works with the same target.
        let mut t = FakeTarget::with_chap(tgtd());
        done(run(params(chap(vec![ChapAlgorithm::Md5], false)), &mut t));
    }

    #[test]
    fn tgtd_sha1_for_7_mutual_is_detected_by_length() {
        // tgtd would already refuse our SHA-256 response; this target accepts any response
        // computed its way (SHA1 for 7), so the initiator must notice on the mutual answer.
        let mut t = FakeTarget::with_chap(TargetChap { accepted: vec![7], ..TargetChap::default() });
        // Make the target's own check pass by computing our response the way we do, then
        // answer the mutual challenge with SHA1.
        t.chap.as_mut().unwrap().iet_numbering = false;
        let mut login = Login::new(params(chap(vec![ChapAlgorithm::Sha256], true)), random()).unwrap();
        let mut pdu = login.start();
        let mut step = 0;
        let e = loop {
            let (h, mut d) = t.respond(&pdu);
            step += 1;
            if step == 3 {
                // Replace the target's proof by a 20-byte (SHA1) one.
                let mut k = TextKeys::decode(&d).unwrap();
                let id = random()[0];
                let sha1 = target_hash(7, true, id, b"target-secret-99", &random());
                k = {
                    let mut n = TextKeys::new();
                    for (key, v) in k.iter() {
                        n.push(key, if key == "CHAP_R" { text::encode_hex(&sha1) } else { v.to_owned() }).unwrap();
                    }
                    n
                };
                d = k.encode();
            }
            match login.handle(&h, &d) {
                Ok(LoginStep::Send(p)) => pdu = p,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(e, LoginError::Chap(ChapError::ResponseLengthMismatch { algorithm: ChapAlgorithm::Sha256, got: 20 }));
        assert!(e.to_string().contains("IET-derived"), "{e}");
    }

    #[test]
    fn tgtd_rejecting_algorithms_with_status_names_them() {
        let mut t = FakeTarget::with_chap(TargetChap { accepted: vec![5, 7], reject_with_status: true, ..TargetChap::default() });
        let e = run(params(chap(vec![ChapAlgorithm::Sha3_256, ChapAlgorithm::Sha1], false)), &mut t).unwrap_err();
        assert_eq!(e, LoginError::InitiatorError { during: LoginPhase::ChapAlgorithms { offered: "8,6".into() } });
        assert!(e.to_string().contains("CHAP_A=8,6") && e.to_string().contains("MD5 only"), "{e}");
        // A target answering CHAP_A=Reject instead.
        let mut t = FakeTarget::with_chap(TargetChap { accepted: vec![5], ..TargetChap::default() });
        let e = run(params(chap(vec![ChapAlgorithm::Sha1], false)), &mut t).unwrap_err();
        assert!(matches!(e, LoginError::Chap(ChapError::NoCommonAlgorithm { .. })), "{e}");
    }

    #[test]
    fn auth_method_mismatches() {
        // We offer None, the target insists on CHAP.
        let mut t = FakeTarget { auth_answer: Some("CHAP"), ..FakeTarget::new() };
        assert_eq!(run(params(Auth::None), &mut t).unwrap_err(), LoginError::ChapRequired);
        let mut t = FakeTarget { auth_answer: Some("Reject"), ..FakeTarget::new() };
        assert_eq!(run(params(Auth::None), &mut t).unwrap_err(), LoginError::AuthMethodRejected { offered: "None" });
        // We offer CHAP, the target picks None: a downgrade, refused.
        let mut t = FakeTarget::with_chap(TargetChap::default());
        t.auth_answer = Some("None");
        let e = run(params(chap(vec![ChapAlgorithm::Md5], false)), &mut t).unwrap_err();
        assert_eq!(e, LoginError::AuthMethodNotOffered { chosen: "None".into(), offered: "CHAP" });
        let mut t = FakeTarget::with_chap(TargetChap::default());
        t.auth_answer = Some("SRP");
        assert!(matches!(run(params(chap(vec![ChapAlgorithm::Md5], false)), &mut t), Err(LoginError::AuthMethodNotOffered { .. })));
        // A target wanting CHAP fails a login without it with 0x0201.
        let mut login = Login::new(params(Auth::None), random()).unwrap();
        login.start();
        let e = login.handle(&status_rsp(2, 1), &[]).unwrap_err();
        assert_eq!(e, LoginError::AuthenticationFailed { context: AuthContext::NoAuth });
        assert!(e.to_string().contains("none is configured"), "{e}");
    }

    #[test]
    fn tgtd_style_unsolicited_offers_are_answered() {
        // Keys we did not offer, offered by the target without the T bit: the login only
        // completes once we answer them.
        let mut t = FakeTarget {
            unsolicited: vec![
                ("iSCSIProtocolLevel", "2"),
                ("TaskReporting", "FastAbort,RFC3720"),
                ("X-com.vendor.Thing", "1"),
                ("IFMarker", "No"),
                ("OFMarkInt", "2048~65535"),
            ],
            ..FakeTarget::new()
        };
        let n = done(run(params(Auth::None), &mut t));
        let answers = t.later_answers.as_ref().expect("the initiator answered the target's offers");
        assert_eq!(answers.get("iSCSIProtocolLevel"), Some("1"));
        assert_eq!(answers.get("TaskReporting"), Some("RFC3720"));
        assert_eq!(answers.get("X-com.vendor.Thing"), Some("NotUnderstood"));
        assert_eq!(answers.get("IFMarker"), Some("Reject"));
        assert_eq!(answers.get("OFMarkInt"), Some("Reject"));
        assert_eq!(answers.len(), 5);
        let flags: Vec<(Stage, bool)> = t.requests.iter().map(|(h, _)| (h.csg, h.transit)).collect();
        assert_eq!(flags, [(Stage::Security, true), (Stage::Operational, true), (Stage::Operational, true)]);
        assert_eq!(n.tsih, 0x0102);
    }

    #[test]
    fn unsolicited_standard_keys_in_a_discovery_session() {
        let mut t = FakeTarget {
            unsolicited: vec![("DefaultTime2Wait", "5"), ("MaxBurstLength", "65536"), ("ErrorRecoveryLevel", "1")],
            ..FakeTarget::new()
        };
        let p = LoginParams { target_name: None, session_type: SessionType::Discovery, ..params(Auth::None) };
        let n = done(run(p, &mut t));
        let answers = t.later_answers.as_ref().unwrap();
        assert_eq!(answers.get("DefaultTime2Wait"), Some("5"), "numerical max of 5 and our 2");
        assert_eq!(answers.get("MaxBurstLength"), Some("Irrelevant"));
        assert_eq!(answers.get("ErrorRecoveryLevel"), Some("0"), "numerical min of 1 and our 0");
        assert_eq!(n.params.default_time2wait, 5);
        assert_eq!(n.params.max_burst_length, 262_144, "irrelevant keys keep their default");
    }

    #[test]
    fn continued_target_responses_are_collected() {
        for split in [1, 7, 40] {
            let mut t = FakeTarget::with_chap(TargetChap::default());
            t.split = Some(split);
            t.unsolicited = vec![("iSCSIProtocolLevel", "1")];
            let n = done(run(params(chap(vec![ChapAlgorithm::Sha1], true)), &mut t));
            assert_eq!(n.target_alias.as_deref(), Some("fake disk"));
            assert_eq!(n.params.max_xmit_data_segment_length, 65_536);
            // Every C=1 response was answered by an empty request with T=0 and C=0.
            let empties = t.requests.iter().filter(|(h, d)| d.is_empty() && !h.transit && !h.cont).count();
            assert!(empties > 5, "split {split}: {empties} continuation requests");
        }
    }

    #[test]
    fn long_initiator_text_is_split() {
        let mut login = Login::new(params(Auth::None), random()).unwrap();
        let mut big = TextKeys::new();
        for i in 0..40 {
            big.push(&format!("X-test.Key{i}"), "v".repeat(250)).unwrap();
        }
        let whole = big.encode();
        assert!(whole.len() > MAX_LOGIN_SEGMENT);
        let first = login.queue(big, true, Stage::Operational);
        let Header::LoginRequest(h) = &first.header else { panic!() };
        assert!(h.cont && !h.transit, "C=1 and T=0 on every piece but the last");
        assert_eq!(first.data.len(), MAX_LOGIN_SEGMENT);
        // The target acknowledges with an empty response; the last piece carries T=1.
        let mut ack = status_rsp(0, 0);
        ack.stat_sn = 7;
        let LoginStep::Send(second) = login.handle(&ack, &[]).unwrap() else { panic!() };
        let Header::LoginRequest(h2) = &second.header else { panic!() };
        assert!(!h2.cont && h2.transit);
        assert_eq!(h2.nsg, Stage::Operational);
        assert_eq!(h2.exp_stat_sn, 8);
        assert_eq!([first.data.clone(), second.data.clone()].concat(), whole);
        // Text from the target in the middle of our continuation is an error.
        let mut login = Login::new(params(Auth::None), random()).unwrap();
        let mut big = TextKeys::new();
        for i in 0..40 {
            big.push(&format!("X-test.Key{i}"), "v".repeat(250)).unwrap();
        }
        login.queue(big, true, Stage::Operational);
        assert_eq!(login.handle(&ack, b"A=1\0"), Err(LoginError::InterruptedContinuation));
    }

    #[test]
    fn every_login_status_maps_to_its_error() {
        let cases: [(u8, u8, LoginError); 16] = [
            (2, 0x00, LoginError::InitiatorError { during: LoginPhase::FirstRequest }),
            (2, 0x01, LoginError::AuthenticationFailed { context: AuthContext::NoAuth }),
            (2, 0x02, LoginError::AuthorizationFailed),
            (2, 0x03, LoginError::TargetNotFound),
            (2, 0x04, LoginError::TargetRemoved),
            (2, 0x05, LoginError::UnsupportedVersion),
            (2, 0x06, LoginError::TooManyConnections),
            (2, 0x07, LoginError::MissingParameter),
            (2, 0x08, LoginError::CantIncludeInSession),
            (2, 0x09, LoginError::SessionTypeNotSupported),
            (2, 0x0a, LoginError::SessionDoesNotExist),
            (2, 0x0b, LoginError::InvalidRequestDuringLogin),
            (3, 0x00, LoginError::TargetError),
            (3, 0x01, LoginError::ServiceUnavailable),
            (3, 0x02, LoginError::OutOfResources),
            (2, 0x42, LoginError::OtherStatus { class: 2, detail: 0x42 }),
        ];
        for (class, detail, expected) in cases {
            let mut login = Login::new(params(Auth::None), random()).unwrap();
            login.start();
            let e = login.handle(&status_rsp(class, detail), &[]).unwrap_err();
            assert_eq!(e, expected);
            assert_eq!(e.status(), Some(u16::from(class) << 8 | u16::from(detail)));
            assert_eq!(e.is_retryable(), class == 3, "{e}");
            assert!(!e.to_string().is_empty());
            assert_eq!(login.handle(&status_rsp(0, 0), &[]), Err(LoginError::Finished));
        }
        assert_eq!(LoginError::TargetNotFound.to_string(), "the target does not exist at this portal (status 0x0203)");
    }

    #[test]
    fn redirects() {
        let mut login = Login::new(params(Auth::None), random()).unwrap();
        login.start();
        let step = login.handle(&status_rsp(1, 1), b"TargetAddress=[fd00::5]:3261,2\0").unwrap();
        assert_eq!(step, LoginStep::Redirect { address: "[fd00::5]:3261".parse().unwrap(), permanent: false });
        let mut login = Login::new(params(Auth::None), random()).unwrap();
        login.start();
        let step = login.handle(&status_rsp(1, 2), b"TargetAddress=san.example\0").unwrap();
        assert_eq!(step, LoginStep::Redirect { address: "san.example:3260".parse().unwrap(), permanent: true });
        for (detail, data) in [(1, &b""[..]), (1, b"TargetAddress=bad host\0"), (1, b"\xff=\0"), (3, b"TargetAddress=10.0.0.1\0")] {
            let mut login = Login::new(params(Auth::None), random()).unwrap();
            login.start();
            let e = login.handle(&status_rsp(1, detail), data).unwrap_err();
            assert!(matches!(e, LoginError::BadRedirect(_) | LoginError::OtherStatus { class: 1, .. }), "{e}");
        }
    }

    /// Drives a login to its first response and returns it, for protocol-violation tests.
    fn first_answer(edit: impl Fn(&mut LoginResponse), data: &[u8]) -> Result<LoginStep, LoginError> {
        let mut login = Login::new(params(Auth::None), random()).unwrap();
        let mut t = FakeTarget::new();
        let (mut h, _) = t.respond(&login.start());
        edit(&mut h);
        login.handle(&h, data)
    }

    #[test]
    fn protocol_violations() {
        let ok = b"AuthMethod=None\0";
        assert!(matches!(first_answer(|_| {}, ok), Ok(LoginStep::Send(_))));
        assert!(matches!(first_answer(|h| h.itt = 99, ok), Err(LoginError::UnexpectedItt { expected: ITT, got: 99 })));
        assert!(matches!(first_answer(|h| h.isid[5] = 9, ok), Err(LoginError::UnexpectedIsid { .. })));
        assert!(matches!(first_answer(|h| h.csg = Stage::Operational, ok), Err(LoginError::UnexpectedStage { .. })));
        assert!(matches!(first_answer(|h| h.cont = true, ok), Err(LoginError::TransitAndContinue)));
        assert!(matches!(first_answer(|h| h.version_active = 1, ok), Err(LoginError::BadVersion(1))));
        assert!(matches!(first_answer(|h| h.nsg = Stage::FullFeature, ok), Err(LoginError::BadNextStage { .. })));
        // Garbage text.
        assert!(matches!(first_answer(|_| {}, b"\xff\xfe"), Err(LoginError::Text(TextError::NotUtf8 { .. }))));
        assert!(matches!(first_answer(|_| {}, b"NoEquals\0"), Err(LoginError::Text(TextError::NotAPair { .. }))));
        assert!(matches!(
            first_answer(|_| {}, b"AuthMethod=None\0AuthMethod=None\0"),
            Err(LoginError::Text(TextError::Duplicate { .. }))
        ));
        assert!(matches!(first_answer(|_| {}, b"AuthMethod=None\0MaxRecvDataSegmentLength=1\0"), Err(LoginError::Negotiation(_))));
        // CHAP keys without CHAP.
        assert!(matches!(first_answer(|_| {}, b"AuthMethod=None\0CHAP_C=0x00\0"), Err(LoginError::Chap(ChapError::UnexpectedKey(_)))));
    }

    #[test]
    fn transit_without_request_is_refused() {
        // With CHAP our first request has T=0; a target answering T=1 skips authentication.
        let mut login = Login::new(params(chap(vec![ChapAlgorithm::Md5], false)), random()).unwrap();
        let mut t = FakeTarget::with_chap(TargetChap::default());
        let (mut h, _) = t.respond(&login.start());
        h.transit = true;
        h.nsg = Stage::Operational;
        let e = login.handle(&h, b"AuthMethod=CHAP\0").unwrap_err();
        assert_eq!(e, LoginError::UnexpectedTransit { stage: Stage::Security });
        // A target skipping to the operational stage with AuthMethod=None: the downgrade is
        // what gets reported.
        let mut login = Login::new(params(chap(vec![ChapAlgorithm::Md5], false)), random()).unwrap();
        let mut t = FakeTarget::with_chap(TargetChap::default());
        let (mut h, _) = t.respond(&login.start());
        h.transit = true;
        h.nsg = Stage::Operational;
        let e = login.handle(&h, b"AuthMethod=None\0").unwrap_err();
        assert_eq!(e, LoginError::AuthMethodNotOffered { chosen: "None".into(), offered: "CHAP" });
    }

    /// Runs the login up to the operational stage, then lets `last` shape the final answer.
    fn final_answer(p: LoginParams, last: impl Fn(&mut LoginResponse), data: &[u8]) -> Result<LoginStep, LoginError> {
        let mut login = Login::new(p, random()).unwrap();
        let mut t = FakeTarget::new();
        let (h, d) = t.respond(&login.start());
        let LoginStep::Send(op) = login.handle(&h, &d).unwrap() else { panic!() };
        let (mut h, _) = t.respond(&op);
        last(&mut h);
        login.handle(&h, data)
    }

    #[test]
    fn final_response_checks() {
        let ok = b"MaxRecvDataSegmentLength=8192\0";
        let n = done(final_answer(params(Auth::None), |_| {}, ok));
        assert_eq!(n.params.max_xmit_data_segment_length, 8192);
        assert!(n.params.initial_r2t, "unanswered InitialR2T=No keeps the default Yes");
        assert!(matches!(final_answer(params(Auth::None), |h| h.tsih = 0, ok), Err(LoginError::BadTsih { expected: 0, got: 0 })));
        // Adding a connection to session 7: no session-wide keys, and TSIH 7 must come back.
        let p = LoginParams { tsih: 7, ..params(Auth::None) };
        let e = final_answer(p.clone(), |h| h.tsih = 8, ok).unwrap_err();
        assert_eq!(e, LoginError::BadTsih { expected: 7, got: 8 });
        assert!(e.to_string().contains("TSIH 7"), "{e}");
        let n = done(final_answer(p, |h| h.tsih = 7, ok));
        assert_eq!(n.tsih, 7);
        // A final response may not ask for more.
        // Late answers to our offers are fine, if they follow the rules.
        let n = done(final_answer(params(Auth::None), |_| {}, b"DefaultTime2Wait=10\0"));
        assert_eq!(n.params.default_time2wait, 10);
        let e = final_answer(params(Auth::None), |_| {}, b"MaxConnections=2\0").unwrap_err();
        assert!(matches!(e, LoginError::Negotiation(NegotiationError::BadAnswer { key: "MaxConnections", .. })), "{e}");
        let e = final_answer(params(Auth::None), |_| {}, b"iSCSIProtocolLevel=1\0").unwrap_err();
        assert_eq!(e, LoginError::FinalResponseNeedsAnswer { key: "iSCSIProtocolLevel".into() });
        // Unknown keys do not block it.
        assert!(matches!(final_answer(params(Auth::None), |_| {}, b"X-foo=1\0"), Ok(LoginStep::Done(_))));
        // Security keys are over by then.
        assert!(matches!(final_answer(params(Auth::None), |_| {}, b"CHAP_A=5\0"), Err(LoginError::SecurityKeyTooLate { .. })));
    }

    #[test]
    fn non_leading_connection_offers_connection_keys_only() {
        let mut t = FakeTarget::new();
        let p = LoginParams { tsih: 0x0102, cid: 1, ..params(Auth::None) };
        let n = done(run(p, &mut t));
        let offers = t.op_offers.as_ref().unwrap();
        assert_eq!(offers.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength"]);
        assert!(t.requests.iter().all(|(h, _)| h.tsih == 0x0102 && h.cid == 1));
        assert_eq!(n.tsih, 0x0102);
    }

    #[test]
    fn a_target_going_round_in_circles_is_cut_off() {
        let mut login = Login::new(params(Auth::None), random()).unwrap();
        login.start();
        let mut h = status_rsp(0, 0);
        let mut result = Ok(LoginStep::Send(login.start()));
        for i in 0..200 {
            h.stat_sn = i;
            result = login.handle(&h, &[]);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(LoginError::TooManyExchanges));
    }

    #[test]
    fn invalid_parameters_are_refused_before_sending() {
        let bad = [
            LoginParams { target_name: None, ..params(Auth::None) },
            LoginParams { session_type: SessionType::Discovery, ..params(Auth::None) },
            LoginParams { initiator_name: String::new(), ..params(Auth::None) },
            LoginParams { initiator_name: "x".repeat(224), ..params(Auth::None) },
            LoginParams { initiator_alias: Some("a\0b".into()), ..params(Auth::None) },
            LoginParams { offer: Offer { first_burst_length: 1 << 20, ..Offer::default() }, ..params(Auth::None) },
            params(Auth::Chap(ChapConfig {
                mutual: Some(("t".into(), Secret::from("verysecretpassword"))),
                ..ChapConfig::new("user", "verysecretpassword")
            })),
            params(Auth::Chap(ChapConfig::new("user", ""))),
        ];
        for p in bad {
            assert!(Login::new(p.clone(), random()).is_err(), "{p:?}");
        }
        // Secrets never show in Debug output of the parameters.
        let shown = format!("{:?}", params(chap(vec![ChapAlgorithm::Md5], true)));
        assert!(!shown.contains("verysecretpassword") && !shown.contains("target-secret-99"), "{shown}");
    }

    #[test]
    fn random_response_sequences_never_panic() {
        // Structured garbage: plausible headers with random flags and statuses, and texts
        // drawn from the keys the machine reacts to.
        const WORDS: &[&str] = &[
            "AuthMethod=None", "AuthMethod=CHAP", "AuthMethod=Reject", "CHAP_A=5", "CHAP_A=7", "CHAP_A=Reject",
            "CHAP_I=42", "CHAP_I=300", "CHAP_C=0x000102030405060708090a0b0c0d0e0f", "CHAP_C=0b", "CHAP_N=target-user",
            "CHAP_R=0x00", "HeaderDigest=None", "HeaderDigest=CRC32C", "MaxBurstLength=65536", "MaxBurstLength=0",
            "MaxRecvDataSegmentLength=512", "TargetPortalGroupTag=1", "TargetAddress=[::1]:3261,1", "InitialR2T=Yes",
            "ImmediateData=No", "X-x=1", "iSCSIProtocolLevel=1", "=", "\u{fffd}", "",
        ];
        let mut x: u32 = 0x2545_f491;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for round in 0..3000 {
            let auth = match round % 3 {
                0 => Auth::None,
                1 => chap(vec![ChapAlgorithm::Md5, ChapAlgorithm::Sha256], false),
                _ => chap(vec![ChapAlgorithm::Md5], true),
            };
            let mut login = Login::new(params(auth), random()).unwrap();
            login.start();
            for _ in 0..12 {
                let r = next();
                let stage = [Stage::Security, Stage::Operational, Stage::FullFeature][(r % 3) as usize];
                let nsg = [Stage::Security, Stage::Operational, Stage::FullFeature][((r >> 2) % 3) as usize];
                let mut h = status_rsp(if r % 17 == 0 { 2 } else { 0 }, ((r >> 8) % 4).to_be_bytes()[3]);
                h.transit = r & 0x1000 != 0;
                h.cont = r & 0x2000 != 0 && r & 0x4000 != 0;
                h.csg = stage;
                h.nsg = nsg;
                h.tsih = (r >> 16).to_be_bytes()[3].into();
                h.stat_sn = next();
                let mut text = Vec::new();
                for _ in 0..(next() % 5) {
                    text.extend_from_slice(WORDS[(next() as usize) % WORDS.len()].as_bytes());
                    text.push(0);
                }
                let _ = login.handle(&h, &text);
            }
        }
    }

    fn status_rsp(class: u8, detail: u8) -> LoginResponse {
        LoginResponse {
            transit: false,
            cont: false,
            csg: Stage::Security,
            nsg: Stage::Security,
            version_max: 0,
            version_active: 0,
            isid: ISID,
            tsih: 0,
            itt: ITT,
            stat_sn: 0,
            exp_cmd_sn: CMD_SN,
            max_cmd_sn: CMD_SN,
            status_class: class,
            status_detail: detail,
        }
    }
}
