//! Task Management Function Request (RFC 7143 §11.5).
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TaskMgmtFunction {
    AbortTask = 1,
    AbortTaskSet = 2,
    ClearAca = 3,
    ClearTaskSet = 4,
    LogicalUnitReset = 5,
    TargetWarmReset = 6,
    TargetColdReset = 7,
    TaskReassign = 8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    pub immediate: bool,
    pub function: TaskMgmtFunction,
    pub lun: u64,
    pub itt: u32,
    /// ITT of the task to abort (ABORT TASK), else 0xffffffff.
    pub referenced_task_tag: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub ref_cmd_sn: u32,
    pub exp_data_sn: u32,
}

impl Bhs for TaskMgmtRequest {
    const OPCODE: Opcode = Opcode::TaskMgmtRequest;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        let function = match b[1] & 0x7f {
            1 => TaskMgmtFunction::AbortTask,
            2 => TaskMgmtFunction::AbortTaskSet,
            3 => TaskMgmtFunction::ClearAca,
            4 => TaskMgmtFunction::ClearTaskSet,
            5 => TaskMgmtFunction::LogicalUnitReset,
            6 => TaskMgmtFunction::TargetWarmReset,
            7 => TaskMgmtFunction::TargetColdReset,
            8 => TaskMgmtFunction::TaskReassign,
            v => return Err(PduError::InvalidField { pdu: "Task Management Request", field: "Function", value: v.into() }),
        };
        Ok(Self {
            immediate: is_immediate(b),
            function,
            lun: get64(b, 8),
            itt: get32(b, 16),
            referenced_task_tag: get32(b, 20),
            cmd_sn: get32(b, 24),
            exp_stat_sn: get32(b, 28),
            ref_cmd_sn: get32(b, 32),
            exp_data_sn: get32(b, 36),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, self.immediate);
        b[1] = 0x80 | self.function as u8;
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.referenced_task_tag);
        put32(b, 24, self.cmd_sn);
        put32(b, 28, self.exp_stat_sn);
        put32(b, 32, self.ref_cmd_sn);
        put32(b, 36, self.exp_data_sn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip_and_layout() {
        let h = TaskMgmtRequest {
            immediate: true,
            function: TaskMgmtFunction::AbortTask,
            lun: 1 << 48,
            itt: 9,
            referenced_task_tag: 3,
            cmd_sn: 10,
            exp_stat_sn: 11,
            ref_cmd_sn: 8,
            exp_data_sn: 0,
        };
        let b = roundtrip(&h);
        assert_eq!(&b[..2], &[0x42, 0x81]);
    }
}
