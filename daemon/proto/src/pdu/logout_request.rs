//! Logout Request (RFC 7143 §11.14).
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LogoutReason {
    CloseSession = 0,
    CloseConnection = 1,
    RemoveConnectionForRecovery = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub immediate: bool,
    pub reason: LogoutReason,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Bhs for LogoutRequest {
    const OPCODE: Opcode = Opcode::LogoutRequest;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        let reason = match b[1] & 0x7f {
            0 => LogoutReason::CloseSession,
            1 => LogoutReason::CloseConnection,
            2 => LogoutReason::RemoveConnectionForRecovery,
            v => return Err(PduError::InvalidField { pdu: "Logout Request", field: "Reason", value: v.into() }),
        };
        Ok(Self {
            immediate: is_immediate(b),
            reason,
            itt: get32(b, 16),
            cid: get16(b, 20),
            cmd_sn: get32(b, 24),
            exp_stat_sn: get32(b, 28),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, self.immediate);
        b[1] = 0x80 | self.reason as u8;
        put32(b, 16, self.itt);
        put16(b, 20, self.cid);
        put32(b, 24, self.cmd_sn);
        put32(b, 28, self.exp_stat_sn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let h = LogoutRequest { immediate: true, reason: LogoutReason::CloseSession, itt: 3, cid: 0, cmd_sn: 10, exp_stat_sn: 11 };
        let b = super::super::roundtrip(&h);
        assert_eq!(&b[..2], &[0x46, 0x80]);
    }
}
