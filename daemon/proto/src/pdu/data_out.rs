//! SCSI Data-Out (RFC 7143 §11.7).
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataOut {
    /// F: last PDU of this sequence (unsolicited burst or R2T answer).
    pub final_: bool,
    pub lun: u64,
    pub itt: u32,
    /// The R2T's TTT, or 0xffffffff for unsolicited data.
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
}

impl Bhs for DataOut {
    const OPCODE: Opcode = Opcode::DataOut;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            final_: b[1] & 0x80 != 0,
            lun: get64(b, 8),
            itt: get32(b, 16),
            ttt: get32(b, 20),
            exp_stat_sn: get32(b, 28),
            data_sn: get32(b, 36),
            buffer_offset: get32(b, 40),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, false);
        b[1] = u8::from(self.final_) << 7;
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        put32(b, 28, self.exp_stat_sn);
        put32(b, 36, self.data_sn);
        put32(b, 40, self.buffer_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let h = DataOut { final_: true, lun: 0, itt: 4, ttt: 5, exp_stat_sn: 6, data_sn: 7, buffer_offset: 8192 };
        let b = super::super::roundtrip(&h);
        assert_eq!(&b[..2], &[0x05, 0x80]);
        assert_eq!(&b[40..44], &[0, 0, 0x20, 0]);
    }
}
