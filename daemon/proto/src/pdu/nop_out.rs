//! NOP-Out (RFC 7143 §11.18): initiator ping, or the answer to a target NOP-In.
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NopOut {
    pub immediate: bool,
    pub lun: u64,
    /// 0xffffffff when answering a target ping (then `ttt` echoes the target's tag).
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Bhs for NopOut {
    const OPCODE: Opcode = Opcode::NopOut;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            immediate: is_immediate(b),
            lun: get64(b, 8),
            itt: get32(b, 16),
            ttt: get32(b, 20),
            cmd_sn: get32(b, 24),
            exp_stat_sn: get32(b, 28),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, self.immediate);
        b[1] = 0x80;
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
    fn roundtrip_and_layout() {
        let h = NopOut { immediate: true, lun: 0, itt: 0xffff_ffff, ttt: 0x1234, cmd_sn: 7, exp_stat_sn: 9 };
        let b = roundtrip(&h);
        assert_eq!(b[0], 0x40);
        assert_eq!(b[1], 0x80);
        assert_eq!(&b[16..24], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0x12, 0x34]);
    }
}
