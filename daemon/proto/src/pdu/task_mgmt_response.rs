//! Task Management Function Response (RFC 7143 §11.6).
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskMgmtResponse {
    /// 0 complete, 1 task does not exist, 2 LUN does not exist, 3 task still allegiant,
    /// 4 reassignment unsupported, 5 function not supported, 6 authorization failed, 255 rejected.
    pub response: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl TaskMgmtResponse {
    pub fn describe(&self) -> &'static str {
        match self.response {
            0 => "function complete",
            1 => "task does not exist",
            2 => "LUN does not exist",
            3 => "task still allegiant",
            4 => "task allegiance reassignment not supported",
            5 => "task management function not supported",
            6 => "function authorization failed",
            255 => "function rejected",
            _ => "unknown response",
        }
    }
}

impl Bhs for TaskMgmtResponse {
    const OPCODE: Opcode = Opcode::TaskMgmtResponse;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            response: b[2],
            itt: get32(b, 16),
            stat_sn: get32(b, 24),
            exp_cmd_sn: get32(b, 28),
            max_cmd_sn: get32(b, 32),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let h = TaskMgmtResponse { response: 1, itt: 2, stat_sn: 3, exp_cmd_sn: 4, max_cmd_sn: 5 };
        super::super::roundtrip(&h);
        assert_eq!(h.describe(), "task does not exist");
    }
}
