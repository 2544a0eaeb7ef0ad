//! Logout Response (RFC 7143 §11.15).
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogoutResponse {
    /// 0 closed successfully, 1 CID not found, 2 recovery not supported, 3 cleanup failed.
    pub response: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub time2wait: u16,
    pub time2retain: u16,
}

impl Bhs for LogoutResponse {
    const OPCODE: Opcode = Opcode::LogoutResponse;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            response: b[2],
            itt: get32(b, 16),
            stat_sn: get32(b, 24),
            exp_cmd_sn: get32(b, 28),
            max_cmd_sn: get32(b, 32),
            time2wait: get16(b, 40),
            time2retain: get16(b, 42),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, false);
        b[1] = 0x80;
        b[2] = self.response;
        put32(b, 16, self.itt);
        put32(b, 24, self.stat_sn);
        put32(b, 28, self.exp_cmd_sn);
        put32(b, 32, self.max_cmd_sn);
        put16(b, 40, self.time2wait);
        put16(b, 42, self.time2retain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let h = LogoutResponse { response: 0, itt: 3, stat_sn: 4, exp_cmd_sn: 5, max_cmd_sn: 6, time2wait: 2, time2retain: 20 };
        let b = super::super::roundtrip(&h);
        assert_eq!(&b[40..44], &[0, 2, 0, 20]);
    }
}
