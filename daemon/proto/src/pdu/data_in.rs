//! SCSI Data-In (RFC 7143 §11.7).
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataIn {
    pub final_: bool,
    /// A: the target asks for a DataACK SNACK (ERL > 0 only).
    pub ack: bool,
    pub overflow: bool,
    pub underflow: bool,
    /// S: status is carried here (phase collapse); `status`, `stat_sn` and the residual count are valid.
    pub has_status: bool,
    pub status: u8,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
    pub residual: u32,
}

impl Bhs for DataIn {
    const OPCODE: Opcode = Opcode::DataIn;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            final_: b[1] & 0x80 != 0,
            ack: b[1] & 0x40 != 0,
            overflow: b[1] & 0x04 != 0,
            underflow: b[1] & 0x02 != 0,
            has_status: b[1] & 0x01 != 0,
            status: b[3],
            lun: get64(b, 8),
            itt: get32(b, 16),
            ttt: get32(b, 20),
            stat_sn: get32(b, 24),
            exp_cmd_sn: get32(b, 28),
            max_cmd_sn: get32(b, 32),
            data_sn: get32(b, 36),
            buffer_offset: get32(b, 40),
            residual: get32(b, 44),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, false);
        b[1] = (u8::from(self.final_) << 7)
            | (u8::from(self.ack) << 6)
            | (u8::from(self.overflow) << 2)
            | (u8::from(self.underflow) << 1)
            | u8::from(self.has_status);
        b[3] = self.status;
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        put32(b, 24, self.stat_sn);
        put32(b, 28, self.exp_cmd_sn);
        put32(b, 32, self.max_cmd_sn);
        put32(b, 36, self.data_sn);
        put32(b, 40, self.buffer_offset);
        put32(b, 44, self.residual);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let h = DataIn { final_: true, has_status: true, underflow: true, status: 0, itt: 1, ttt: RESERVED_TAG, stat_sn: 2, exp_cmd_sn: 3, max_cmd_sn: 4, data_sn: 0, buffer_offset: 0, residual: 10, ..Default::default() };
        let b = super::super::roundtrip(&h);
        assert_eq!(b[1], 0x83);
    }
}
