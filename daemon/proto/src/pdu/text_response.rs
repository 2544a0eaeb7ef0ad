//! Text Response (RFC 7143 §11.11).
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextResponse {
    pub final_: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    /// Not 0xffffffff when the target has more to send: the initiator continues the exchange
    /// with an empty Text Request carrying this tag.
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl Bhs for TextResponse {
    const OPCODE: Opcode = Opcode::TextResponse;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            final_: b[1] & 0x80 != 0,
            cont: b[1] & 0x40 != 0,
            lun: get64(b, 8),
            itt: get32(b, 16),
            ttt: get32(b, 20),
            stat_sn: get32(b, 24),
            exp_cmd_sn: get32(b, 28),
            max_cmd_sn: get32(b, 32),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, false);
        b[1] = (u8::from(self.final_) << 7) | (u8::from(self.cont) << 6);
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        put32(b, 24, self.stat_sn);
        put32(b, 28, self.exp_cmd_sn);
        put32(b, 32, self.max_cmd_sn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let h = TextResponse { final_: false, cont: true, itt: 1, ttt: 7, stat_sn: 2, exp_cmd_sn: 3, max_cmd_sn: 4, ..Default::default() };
        let b = super::super::roundtrip(&h);
        assert_eq!(b[1], 0x40);
    }
}
