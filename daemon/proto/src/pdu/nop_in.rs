//! NOP-In (RFC 7143 §11.19): the target's ping, or its answer to a NOP-Out.
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NopIn {
    pub lun: u64,
    /// 0xffffffff for a target-initiated ping.
    pub itt: u32,
    /// Not 0xffffffff when the target wants an answering NOP-Out carrying this tag.
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl NopIn {
    /// The target asks for an answer (§11.19.2).
    pub fn wants_reply(&self) -> bool {
        self.ttt != RESERVED_TAG
    }
}

impl Bhs for NopIn {
    const OPCODE: Opcode = Opcode::NopIn;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
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
        b[1] = 0x80;
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
    fn roundtrip_and_reply() {
        let h = NopIn { lun: 0, itt: RESERVED_TAG, ttt: 5, stat_sn: 1, exp_cmd_sn: 2, max_cmd_sn: 33 };
        roundtrip(&h);
        assert!(h.wants_reply());
        assert!(!NopIn { ttt: RESERVED_TAG, ..h }.wants_reply());
    }
}
