//! Text Request (RFC 7143 §11.10).
use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRequest {
    pub immediate: bool,
    pub final_: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    /// 0xffffffff for a new exchange; the target's TTT when continuing one.
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Bhs for TextRequest {
    const OPCODE: Opcode = Opcode::TextRequest;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            immediate: is_immediate(b),
            final_: b[1] & 0x80 != 0,
            cont: b[1] & 0x40 != 0,
            lun: get64(b, 8),
            itt: get32(b, 16),
            ttt: get32(b, 20),
            cmd_sn: get32(b, 24),
            exp_stat_sn: get32(b, 28),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, self.immediate);
        b[1] = (u8::from(self.final_) << 7) | (u8::from(self.cont) << 6);
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        put32(b, 24, self.cmd_sn);
        put32(b, 28, self.exp_stat_sn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let h = TextRequest { immediate: true, final_: true, cont: false, lun: 0, itt: 1, ttt: RESERVED_TAG, cmd_sn: 1, exp_stat_sn: 1 };
        let b = super::super::roundtrip(&h);
        assert_eq!(&b[..2], &[0x44, 0x80]);
    }
}
