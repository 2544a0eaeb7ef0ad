//! Login Request (RFC 7143 §11.12).
use super::*;
use crate::login::Stage;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    /// T: the initiator is ready to move to `nsg`.
    pub transit: bool,
    /// C: the text in this PDU continues in the next one.
    pub cont: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_min: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Bhs for LoginRequest {
    const OPCODE: Opcode = Opcode::LoginRequest;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b[8..14]);
        Ok(Self {
            transit: b[1] & 0x80 != 0,
            cont: b[1] & 0x40 != 0,
            csg: Stage::from_bits((b[1] >> 2) & 3, "Login Request", "CSG")?,
            // NSG is reserved unless T is set (§11.12.1), as in a Login Response.
            nsg: if b[1] & 0x80 != 0 { Stage::from_bits(b[1] & 3, "Login Request", "NSG")? } else { Stage::Security },
            version_max: b[2],
            version_min: b[3],
            isid,
            tsih: get16(b, 14),
            itt: get32(b, 16),
            cid: get16(b, 20),
            cmd_sn: get32(b, 24),
            exp_stat_sn: get32(b, 28),
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        // A Login Request is always immediate (§11.12).
        put_opcode(b, Self::OPCODE, true);
        b[1] = (u8::from(self.transit) << 7)
            | (u8::from(self.cont) << 6)
            | ((self.csg as u8) << 2)
            | if self.transit { self.nsg as u8 } else { 0 };
        b[2] = self.version_max;
        b[3] = self.version_min;
        b[8..14].copy_from_slice(&self.isid);
        put16(b, 14, self.tsih);
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
    fn roundtrip_and_layout() {
        let h = LoginRequest {
            transit: true,
            cont: false,
            csg: Stage::Security,
            nsg: Stage::Operational,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0x12, 0x34, 0x56, 0, 1],
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: 1,
            exp_stat_sn: 0,
        };
        let b = roundtrip(&h);
        assert_eq!(&b[..2], &[0x43, 0x81]);
        assert_eq!(&b[8..14], &[0x80, 0x12, 0x34, 0x56, 0, 1]);
    }

    #[test]
    fn nsg_is_ignored_without_transit() {
        // §11.12.1: NSG is reserved when T is 0; found by the pdu fuzz target (it decoded
        // to a stage that encoding then dropped, and NSG=2 failed the decode).
        for nsg in 0..4u8 {
            let mut b = [0u8; BHS_LEN];
            b[0] = 0x43;
            b[1] = 0x04 | nsg;
            let h = LoginRequest::decode(&b).expect("reserved NSG bits are ignored");
            assert_eq!((h.csg, h.nsg), (Stage::Operational, Stage::Security));
        }
    }
}
