//! SCSI Response (RFC 7143 §11.4).
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScsiResponse {
    /// Bidirectional read residual overflow / underflow (o, u).
    pub bidi_overflow: bool,
    pub bidi_underflow: bool,
    /// Residual overflow (O): the target wanted to move more than the expected length.
    pub overflow: bool,
    /// Residual underflow (U): less than the expected length was moved.
    pub underflow: bool,
    /// iSCSI service response: 0 Command Completed at Target, 1 Target Failure.
    pub response: u8,
    /// SCSI status (0 GOOD, 2 CHECK CONDITION, 8 BUSY, 0x18 RESERVATION CONFLICT, 0x28 TASK SET FULL ...).
    pub status: u8,
    pub itt: u32,
    pub snack_tag: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub exp_data_sn: u32,
    pub bidi_residual: u32,
    pub residual: u32,
}

impl ScsiResponse {
    /// The sense data carried in a response data segment (§11.4.7): a 2-byte SenseLength, then
    /// the sense bytes. Returns an empty slice when there is none or the length is inconsistent.
    pub fn sense(data: &[u8]) -> &[u8] {
        if data.len() < 2 {
            return &[];
        }
        let len = usize::from(get16(data, 0));
        data.get(2..2 + len).unwrap_or(&data[2..])
    }
}

impl Bhs for ScsiResponse {
    const OPCODE: Opcode = Opcode::ScsiResponse;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            bidi_overflow: b[1] & 0x10 != 0,
            bidi_underflow: b[1] & 0x08 != 0,
            overflow: b[1] & 0x04 != 0,
            underflow: b[1] & 0x02 != 0,
            response: b[2],
            status: b[3],
            itt: get32(b, 16),
            snack_tag: get32(b, 20),
            stat_sn: get32(b, 24),
            exp_cmd_sn: get32(b, 28),
            max_cmd_sn: get32(b, 32),
            exp_data_sn: get32(b, 36),
            bidi_residual: get32(b, 40),
            residual: get32(b, 44),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, false);
        b[1] = 0x80
            | (u8::from(self.bidi_overflow) << 4)
            | (u8::from(self.bidi_underflow) << 3)
            | (u8::from(self.overflow) << 2)
            | (u8::from(self.underflow) << 1);
        b[2] = self.response;
        b[3] = self.status;
        put32(b, 16, self.itt);
        put32(b, 20, self.snack_tag);
        put32(b, 24, self.stat_sn);
        put32(b, 28, self.exp_cmd_sn);
        put32(b, 32, self.max_cmd_sn);
        put32(b, 36, self.exp_data_sn);
        put32(b, 40, self.bidi_residual);
        put32(b, 44, self.residual);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip_and_flags() {
        let h = ScsiResponse { underflow: true, status: 2, itt: 3, stat_sn: 4, exp_cmd_sn: 5, max_cmd_sn: 6, residual: 512, ..Default::default() };
        let b = roundtrip(&h);
        assert_eq!(b[1], 0x82);
        assert_eq!(b[3], 2);
    }
    #[test]
    fn sense_extraction() {
        assert_eq!(ScsiResponse::sense(&[0, 3, 0x70, 0, 5, 9]), &[0x70, 0, 5]);
        assert_eq!(ScsiResponse::sense(&[0, 9, 0x70]), &[0x70]);
        assert!(ScsiResponse::sense(&[0]).is_empty());
    }
}
