//! Login phase (RFC 7143 §6).

use crate::pdu::PduError;

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
