//! Login Response (RFC 7143 §11.13).
use super::*;
use crate::login::Stage;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    pub transit: bool,
    pub cont: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_active: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// 0 success, 1 redirection, 2 initiator error, 3 target error (§11.13.5).
    pub status_class: u8,
    pub status_detail: u8,
}

impl Bhs for LoginResponse {
    const OPCODE: Opcode = Opcode::LoginResponse;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b[8..14]);
        let transit = b[1] & 0x80 != 0;
        Ok(Self {
            transit,
            cont: b[1] & 0x40 != 0,
            csg: Stage::from_bits((b[1] >> 2) & 3, "Login Response", "CSG")?,
            // NSG is meaningless (and may be anything) without the T bit.
            nsg: if transit { Stage::from_bits(b[1] & 3, "Login Response", "NSG")? } else { Stage::Security },
            version_max: b[2],
            version_active: b[3],
            isid,
            tsih: get16(b, 14),
            itt: get32(b, 16),
            stat_sn: get32(b, 24),
            exp_cmd_sn: get32(b, 28),
            max_cmd_sn: get32(b, 32),
            status_class: b[36],
            status_detail: b[37],
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, false);
        b[1] = (u8::from(self.transit) << 7)
            | (u8::from(self.cont) << 6)
            | ((self.csg as u8) << 2)
            | if self.transit { self.nsg as u8 } else { 0 };
        b[2] = self.version_max;
        b[3] = self.version_active;
        b[8..14].copy_from_slice(&self.isid);
        put16(b, 14, self.tsih);
        put32(b, 16, self.itt);
        put32(b, 24, self.stat_sn);
        put32(b, 28, self.exp_cmd_sn);
        put32(b, 32, self.max_cmd_sn);
        b[36] = self.status_class;
        b[37] = self.status_detail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip_and_reserved_stage() {
        let h = LoginResponse {
            transit: true,
            cont: false,
            csg: Stage::Operational,
            nsg: Stage::FullFeature,
            version_max: 0,
            version_active: 0,
            isid: [0x80, 0, 0, 0, 0, 1],
            tsih: 0x1234,
            itt: 0,
            stat_sn: 1,
            exp_cmd_sn: 2,
            max_cmd_sn: 3,
            status_class: 0,
            status_detail: 0,
        };
        let mut b = roundtrip(&h);
        assert_eq!(b[1], 0x87);
        b[1] = 0x86; // NSG 2 is reserved
        assert!(LoginResponse::decode(&b).is_err());
    }
}
