//! Reject (RFC 7143 §11.17). The data segment carries the rejected PDU's header.
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reject {
    pub reason: u8,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
}

impl Reject {
    pub fn describe(&self) -> &'static str {
        match self.reason {
            0x02 => "data (payload) digest error",
            0x03 => "SNACK reject",
            0x04 => "protocol error",
            0x05 => "command not supported",
            0x06 => "immediate command reject: too many immediate commands",
            0x07 => "task in progress",
            0x08 => "invalid data ack",
            0x09 => "invalid PDU field",
            0x0a => "long operation reject: out of resources",
            0x0b => "negotiation reset",
            0x0c => "waiting for logout",
            _ => "reserved reason",
        }
    }
    /// The ITT of the rejected PDU, from the header copy in the data segment.
    pub fn rejected_itt(data: &[u8]) -> Option<u32> {
        (data.len() >= BHS_LEN).then(|| get32(data, 16))
    }

    /// The rejected PDU's header. RFC 7143 §11.17.3: "the complete header of the rejected PDU"
    /// is the data segment of every Reject; one without it cannot be tied to a task, so the
    /// initiator cannot know what was rejected: a protocol error, for which the connection is
    /// dropped and the session reinstated (§7.1.2, ErrorRecoveryLevel 0).
    pub fn rejected_bhs(data: &[u8]) -> Result<&[u8; BHS_LEN], PduError> {
        data.get(..BHS_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(PduError::InvalidField {
                pdu: "Reject (RFC 7143 §11.17.3: it must carry the rejected PDU's header)",
                field: "DataSegmentLength",
                value: u32::try_from(data.len()).unwrap_or(u32::MAX),
            })
    }
}

impl Bhs for Reject {
    const OPCODE: Opcode = Opcode::Reject;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            reason: b[2],
            stat_sn: get32(b, 24),
            exp_cmd_sn: get32(b, 28),
            max_cmd_sn: get32(b, 32),
            data_sn: get32(b, 36),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, false);
        b[1] = 0x80;
        b[2] = self.reason;
        put32(b, 16, RESERVED_TAG);
        put32(b, 24, self.stat_sn);
        put32(b, 28, self.exp_cmd_sn);
        put32(b, 32, self.max_cmd_sn);
        put32(b, 36, self.data_sn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip_and_itt() {
        let h = Reject { reason: 9, stat_sn: 1, exp_cmd_sn: 2, max_cmd_sn: 3, data_sn: 0 };
        let b = super::super::roundtrip(&h);
        assert_eq!(h.describe(), "invalid PDU field");
        assert_eq!(Reject::rejected_itt(&b), Some(RESERVED_TAG));
        assert_eq!(Reject::rejected_itt(&b[..10]), None);
    }

    /// §11.17.3: the data segment is the rejected PDU's whole header; shorter is an error.
    #[test]
    fn rejected_header_must_be_whole() {
        let hdr = [0x41u8; BHS_LEN];
        assert_eq!(Reject::rejected_bhs(&hdr), Ok(&hdr));
        let mut longer = hdr.to_vec();
        longer.extend_from_slice(&[0; 4]);
        assert_eq!(Reject::rejected_bhs(&longer), Ok(&hdr));
        assert!(Reject::rejected_bhs(&hdr[..47]).is_err());
        assert!(Reject::rejected_bhs(&[]).is_err());
    }
}
