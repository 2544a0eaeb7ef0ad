//! iSCSI PDU codec (RFC 7143 §11).
//!
//! One PDU type a file. Each header type implements [`Bhs`]: it decodes from and encodes to the
//! 48-byte Basic Header Segment, except the TotalAHSLength and DataSegmentLength fields, which
//! belong to the framing ([`encode_pdu`], [`parse_frame`], [`Decoder`]).

mod async_message;
mod data_in;
mod data_out;
mod login_request;
mod login_response;
mod logout_request;
mod logout_response;
mod nop_in;
mod nop_out;
mod r2t;
mod reject;
mod scsi_command;
mod scsi_response;
mod task_mgmt_request;
mod task_mgmt_response;
mod text_request;
mod text_response;

mod framing;

pub use async_message::{AsyncEvent, AsyncMessage};
pub use data_in::DataIn;
pub use data_out::DataOut;
pub use framing::{data_trailer, encode_pdu, encode_pdu_head, parse_frame, Decoder, Digests, Frame, FrameConfig, FrameStatus, Pdu};
pub use login_request::LoginRequest;
pub use login_response::LoginResponse;
pub use logout_request::{LogoutReason, LogoutRequest};
pub use logout_response::LogoutResponse;
pub use nop_in::NopIn;
pub use nop_out::NopOut;
pub use r2t::R2t;
pub use reject::Reject;
pub use scsi_command::{ScsiCommand, TaskAttr};
pub use scsi_response::ScsiResponse;
pub use task_mgmt_request::{TaskMgmtFunction, TaskMgmtRequest};
pub use task_mgmt_response::TaskMgmtResponse;
pub use text_request::TextRequest;
pub use text_response::TextResponse;

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;
/// The reserved Initiator Task Tag used by unsolicited target PDUs (RFC 7143 §11.1).
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// Errors found while decoding PDUs. Once the decoder reports one, the byte stream has lost
/// framing and the connection must be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PduError {
    #[error("unknown PDU opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    #[error("PDU opcode 0x{0:02x} is not valid in this direction")]
    WrongDirection(u8),
    #[error("data segment of {len} bytes exceeds MaxRecvDataSegmentLength {max}")]
    DataSegmentTooLong { len: u32, max: u32 },
    #[error("header digest mismatch (got 0x{got:08x}, computed 0x{computed:08x})")]
    HeaderDigest { got: u32, computed: u32 },
    #[error("data digest mismatch (got 0x{got:08x}, computed 0x{computed:08x})")]
    DataDigest { got: u32, computed: u32 },
    #[error("invalid {field} value {value} in {pdu}")]
    InvalidField { pdu: &'static str, field: &'static str, value: u32 },
}

/// PDU opcodes (RFC 7143 §11.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    NopOut = 0x00,
    ScsiCommand = 0x01,
    TaskMgmtRequest = 0x02,
    LoginRequest = 0x03,
    TextRequest = 0x04,
    DataOut = 0x05,
    LogoutRequest = 0x06,
    NopIn = 0x20,
    ScsiResponse = 0x21,
    TaskMgmtResponse = 0x22,
    LoginResponse = 0x23,
    TextResponse = 0x24,
    DataIn = 0x25,
    LogoutResponse = 0x26,
    R2t = 0x31,
    AsyncMessage = 0x32,
    Reject = 0x3f,
}

impl Opcode {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v & 0x3f {
            0x00 => Self::NopOut,
            0x01 => Self::ScsiCommand,
            0x02 => Self::TaskMgmtRequest,
            0x03 => Self::LoginRequest,
            0x04 => Self::TextRequest,
            0x05 => Self::DataOut,
            0x06 => Self::LogoutRequest,
            0x20 => Self::NopIn,
            0x21 => Self::ScsiResponse,
            0x22 => Self::TaskMgmtResponse,
            0x23 => Self::LoginResponse,
            0x24 => Self::TextResponse,
            0x25 => Self::DataIn,
            0x26 => Self::LogoutResponse,
            0x31 => Self::R2t,
            0x32 => Self::AsyncMessage,
            0x3f => Self::Reject,
            _ => return None,
        })
    }
}

/// A PDU header type: decode from / encode to the 48-byte BHS.
pub trait Bhs: Sized {
    const OPCODE: Opcode;
    /// Decodes the fields; the opcode has already been checked.
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError>;
    /// Encodes every field but TotalAHSLength and DataSegmentLength into a zeroed BHS.
    fn encode(&self, b: &mut [u8; BHS_LEN]);
}

/// Any PDU header, as decoded from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    NopOut(NopOut),
    ScsiCommand(ScsiCommand),
    TaskMgmtRequest(TaskMgmtRequest),
    LoginRequest(LoginRequest),
    TextRequest(TextRequest),
    DataOut(DataOut),
    LogoutRequest(LogoutRequest),
    NopIn(NopIn),
    ScsiResponse(ScsiResponse),
    TaskMgmtResponse(TaskMgmtResponse),
    LoginResponse(LoginResponse),
    TextResponse(TextResponse),
    DataIn(DataIn),
    LogoutResponse(LogoutResponse),
    R2t(R2t),
    AsyncMessage(AsyncMessage),
    Reject(Reject),
}

macro_rules! header_dispatch {
    ($($v:ident),*) => {
        impl Header {
            /// Decodes any BHS.
            pub fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
                let op = Opcode::from_u8(b[0]).ok_or(PduError::UnknownOpcode(b[0] & 0x3f))?;
                Ok(match op { $(Opcode::$v => Header::$v($v::decode(b)?),)* })
            }
            /// Encodes every field but the two lengths into a zeroed BHS.
            pub fn encode(&self, b: &mut [u8; BHS_LEN]) {
                match self { $(Header::$v(h) => h.encode(b),)* }
            }
            pub fn opcode(&self) -> Opcode {
                match self { $(Header::$v(_) => Opcode::$v,)* }
            }
        }
        $(impl From<$v> for Header { fn from(h: $v) -> Self { Header::$v(h) } })*
    };
}
header_dispatch!(
    NopOut, ScsiCommand, TaskMgmtRequest, LoginRequest, TextRequest, DataOut, LogoutRequest,
    NopIn, ScsiResponse, TaskMgmtResponse, LoginResponse, TextResponse, DataIn, LogoutResponse,
    R2t, AsyncMessage, Reject
);

impl Bhs for Header {
    const OPCODE: Opcode = Opcode::NopOut; // not meaningful for the enum; unused
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Header::decode(b)
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        Header::encode(self, b)
    }
}

// Big-endian field helpers shared by the PDU files.
pub(crate) fn get16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}
pub(crate) fn get24(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([0, b[off], b[off + 1], b[off + 2]])
}
pub(crate) fn get32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
pub(crate) fn get64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}
pub(crate) fn put24(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 3].copy_from_slice(&v.to_be_bytes()[1..]);
}
pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}
pub(crate) fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_be_bytes());
}
/// Writes the opcode byte: immediate bit (0x40) plus opcode.
pub(crate) fn put_opcode(b: &mut [u8], op: Opcode, immediate: bool) {
    b[0] = op as u8 | if immediate { 0x40 } else { 0 };
}
pub(crate) fn is_immediate(b: &[u8]) -> bool {
    b[0] & 0x40 != 0
}

#[cfg(test)]
pub(crate) fn roundtrip<H: Bhs + PartialEq + std::fmt::Debug>(h: &H) -> [u8; BHS_LEN] {
    let mut b = [0u8; BHS_LEN];
    h.encode(&mut b);
    assert_eq!(b[0] & 0x3f, H::OPCODE as u8, "opcode byte");
    let back = H::decode(&b).expect("decode");
    assert_eq!(&back, h);
    // The enum path must agree with the typed path.
    let any = Header::decode(&b).expect("decode as Header");
    let mut b2 = [0u8; BHS_LEN];
    any.encode(&mut b2);
    assert_eq!(b, b2);
    b
}
