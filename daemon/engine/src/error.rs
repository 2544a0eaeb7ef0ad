//! Engine errors: transport and session failures. SCSI status (CHECK CONDITION and friends) is
//! not an error at this level: it comes back in [`crate::Completion`] for the caller to judge.

use std::sync::Arc;

/// Why a command did not complete with a SCSI status.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The session is logged out or was never usable.
    #[error("session closed")]
    SessionClosed,
    /// The connection failed while the command was outstanding.
    #[error("connection lost: {0}")]
    ConnectionLost(Arc<str>),
    /// The target answered with an iSCSI service response other than "command completed".
    #[error("target failure (iSCSI response 0x{0:02x})")]
    TargetFailure(u8),
    /// The target rejected the command PDU.
    #[error("command rejected by the target: {0}")]
    Rejected(&'static str),
    /// The target broke the protocol for this command (bad offsets, lengths, ...).
    #[error("protocol error: {0}")]
    Protocol(Arc<str>),
    /// The caller's buffer does not fit the command (e.g. longer than 2^32-1 bytes).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    #[error("command timed out")]
    Timeout,
}

/// Session-level failures (connect, login, discovery, logout).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("cannot resolve portal {portal}: {source}")]
    Resolve { portal: String, source: std::io::Error },
    #[error("cannot connect to {portal}: {source}")]
    Connect { portal: String, source: std::io::Error },
    #[error("connection to {portal} failed: {source}")]
    Io { portal: String, source: std::io::Error },
    #[error("connection closed by the target during {0}")]
    Closed(&'static str),
    /// The target closed the connection in the security stage of a login without a login
    /// status (the Linux kernel target, LIO, does so when authentication does not suit it).
    #[error("{}", closed_in_security(*.offered_chap))]
    ClosedDuringSecurity { offered_chap: bool },
    #[error(transparent)]
    Login(#[from] lunlink_proto::login::LoginError),
    #[error("discovery failed: {0}")]
    Discovery(#[from] lunlink_proto::discovery::DiscoveryError),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("malformed PDU from the target: {0}")]
    Pdu(#[from] lunlink_proto::PduError),
    #[error("{0} timed out after {1:?}")]
    Timeout(&'static str, std::time::Duration),
    #[error("too many redirections (last to {0})")]
    TooManyRedirects(String),
    #[error("invalid portal {0:?}")]
    InvalidPortal(String),
    #[error("logout failed: {0}")]
    Logout(String),
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl EngineError {
    /// The target answered the login with a status that says "try again soon" (RFC 7143
    /// §11.13.5: 0x0301 service unavailable, 0x0302 out of resources).
    pub fn is_try_again(&self) -> bool {
        use lunlink_proto::login::LoginError;
        matches!(self, EngineError::Login(LoginError::ServiceUnavailable | LoginError::OutOfResources))
    }
}

fn closed_in_security(offered_chap: bool) -> &'static str {
    if offered_chap {
        "the target closed the connection during the CHAP exchange without a login status: it most likely \
         rejected the CHAP username or secret (or the algorithm); check the credentials set for this target"
    } else {
        "the target closed the connection when offered no authentication (AuthMethod=None), without a login \
         status: it most likely requires CHAP; give credentials (lunlinkctl login --auth-file FILE, or \
         set-default-auth) and log in again"
    }
}
