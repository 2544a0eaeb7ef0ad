//! Ready To Transfer (RFC 7143 §11.8).
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct R2t {
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub r2t_sn: u32,
    pub buffer_offset: u32,
    pub desired_len: u32,
}

impl Bhs for R2t {
    const OPCODE: Opcode = Opcode::R2t;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            lun: get64(b, 8),
            itt: get32(b, 16),
            ttt: get32(b, 20),
            stat_sn: get32(b, 24),
            exp_cmd_sn: get32(b, 28),
            max_cmd_sn: get32(b, 32),
            r2t_sn: get32(b, 36),
            buffer_offset: get32(b, 40),
            desired_len: get32(b, 44),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, false);
        b[1] = 0x80;
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        put32(b, 24, self.stat_sn);
        put32(b, 28, self.exp_cmd_sn);
        put32(b, 32, self.max_cmd_sn);
        put32(b, 36, self.r2t_sn);
        put32(b, 40, self.buffer_offset);
        put32(b, 44, self.desired_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let h = R2t { lun: 0, itt: 1, ttt: 2, stat_sn: 3, exp_cmd_sn: 4, max_cmd_sn: 5, r2t_sn: 0, buffer_offset: 65536, desired_len: 262144 };
        let b = super::super::roundtrip(&h);
        assert_eq!(&b[44..48], &[0, 4, 0, 0]);
    }
}
