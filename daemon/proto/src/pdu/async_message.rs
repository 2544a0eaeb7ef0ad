//! Asynchronous Message (RFC 7143 §11.9).
use super::*;

/// AsyncEvent codes (§11.9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncEvent {
    /// 0: SCSI asynchronous event; the data segment carries sense data.
    Scsi,
    /// 1: the target asks for a logout within Parameter3 seconds.
    LogoutRequested,
    /// 2: the target will drop connection Parameter1 (Time2Wait Parameter2, Time2Retain Parameter3).
    DroppingConnection,
    /// 3: the target will drop all connections of the session.
    DroppingAllConnections,
    /// 4: the target asks for parameter renegotiation.
    Renegotiate,
    /// 248-255: vendor specific; anything else is reserved.
    Other(u8),
}

impl AsyncEvent {
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Scsi,
            1 => Self::LogoutRequested,
            2 => Self::DroppingConnection,
            3 => Self::DroppingAllConnections,
            4 => Self::Renegotiate,
            v => Self::Other(v),
        }
    }
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Scsi => 0,
            Self::LogoutRequested => 1,
            Self::DroppingConnection => 2,
            Self::DroppingAllConnections => 3,
            Self::Renegotiate => 4,
            Self::Other(v) => v,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncMessage {
    pub lun: u64,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub event: AsyncEvent,
    pub vcode: u8,
    pub parameter1: u16,
    pub parameter2: u16,
    pub parameter3: u16,
}

impl Bhs for AsyncMessage {
    const OPCODE: Opcode = Opcode::AsyncMessage;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        Ok(Self {
            lun: get64(b, 8),
            stat_sn: get32(b, 24),
            exp_cmd_sn: get32(b, 28),
            max_cmd_sn: get32(b, 32),
            event: AsyncEvent::from_u8(b[36]),
            vcode: b[37],
            parameter1: get16(b, 38),
            parameter2: get16(b, 40),
            parameter3: get16(b, 42),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, false);
        b[1] = 0x80;
        put64(b, 8, self.lun);
        put32(b, 16, RESERVED_TAG);
        put32(b, 24, self.stat_sn);
        put32(b, 28, self.exp_cmd_sn);
        put32(b, 32, self.max_cmd_sn);
        b[36] = self.event.to_u8();
        b[37] = self.vcode;
        put16(b, 38, self.parameter1);
        put16(b, 40, self.parameter2);
        put16(b, 42, self.parameter3);
    }
}

/// Largest Time2Wait / Time2Retain in seconds (RFC 7143 §13.19, §13.20: 0 to 3600).
pub const TIME2_MAX: u16 = 3600;

impl AsyncMessage {
    /// Time2Wait of a "dropping connection(s)" event (§11.9.1: Parameter2), clamped to the
    /// 0-3600 range of §13.19: a target that asks for more (65535) gets an hour at most.
    pub fn time2wait(&self) -> u16 {
        self.parameter2.min(TIME2_MAX)
    }

    /// Time2Retain of a "dropping connection(s)" event (§11.9.1: Parameter3), clamped to the
    /// 0-3600 range of §13.20.
    pub fn time2retain(&self) -> u16 {
        self.parameter3.min(TIME2_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let h = AsyncMessage { lun: 0, stat_sn: 1, exp_cmd_sn: 2, max_cmd_sn: 3, event: AsyncEvent::DroppingConnection, vcode: 0, parameter1: 0, parameter2: 2, parameter3: 20 };
        let b = super::super::roundtrip(&h);
        assert_eq!(b[36], 2);
        assert_eq!(&b[16..20], &[0xff; 4]);
    }

    /// §13.19 / §13.20: Time2Wait and Time2Retain range 0-3600; larger values are clamped.
    #[test]
    fn time2wait_and_time2retain_are_clamped() {
        let mut h = AsyncMessage { lun: 0, stat_sn: 1, exp_cmd_sn: 2, max_cmd_sn: 3, event: AsyncEvent::DroppingConnection, vcode: 0, parameter1: 0, parameter2: 65535, parameter3: 65535 };
        assert_eq!((h.time2wait(), h.time2retain()), (3600, 3600));
        h.parameter2 = 2;
        h.parameter3 = 20;
        assert_eq!((h.time2wait(), h.time2retain()), (2, 20));
        h.parameter2 = 3600;
        assert_eq!(h.time2wait(), 3600);
    }
}
