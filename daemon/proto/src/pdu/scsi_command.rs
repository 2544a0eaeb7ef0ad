//! SCSI Command (RFC 7143 §11.3).
use super::*;

/// Task attributes (SAM), the ATTR field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum TaskAttr {
    Untagged = 0,
    #[default]
    Simple = 1,
    Ordered = 2,
    HeadOfQueue = 3,
    Aca = 4,
}

/// The header of a SCSI Command PDU. CDBs longer than 16 bytes go in an Extended CDB AHS, which
/// the caller builds with [`ScsiCommand::extended_cdb_ahs`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScsiCommand {
    pub immediate: bool,
    pub final_: bool,
    pub read: bool,
    pub write: bool,
    pub attr: TaskAttr,
    pub lun: u64,
    pub itt: u32,
    pub expected_data_len: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    /// The first 16 bytes of the CDB, zero padded.
    pub cdb: [u8; 16],
}

impl ScsiCommand {
    /// The Extended CDB AHS (§11.3.5) for the bytes of `cdb` beyond 16, or nothing.
    pub fn extended_cdb_ahs(cdb: &[u8], out: &mut Vec<u8>) {
        if cdb.len() <= 16 {
            return;
        }
        let extra = &cdb[16..];
        let ahs_len = u16::try_from(extra.len() + 1).expect("CDB fits an AHS");
        out.extend_from_slice(&ahs_len.to_be_bytes());
        out.push(0x01); // AHSType: Extended CDB
        out.push(0);
        out.extend_from_slice(extra);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
}

impl Bhs for ScsiCommand {
    const OPCODE: Opcode = Opcode::ScsiCommand;
    fn decode(b: &[u8; BHS_LEN]) -> Result<Self, PduError> {
        let attr = match b[1] & 0x07 {
            0 => TaskAttr::Untagged,
            1 => TaskAttr::Simple,
            2 => TaskAttr::Ordered,
            3 => TaskAttr::HeadOfQueue,
            4 => TaskAttr::Aca,
            v => return Err(PduError::InvalidField { pdu: "SCSI Command", field: "ATTR", value: v.into() }),
        };
        let mut cdb = [0u8; 16];
        cdb.copy_from_slice(&b[32..48]);
        Ok(Self {
            immediate: is_immediate(b),
            final_: b[1] & 0x80 != 0,
            read: b[1] & 0x40 != 0,
            write: b[1] & 0x20 != 0,
            attr,
            lun: get64(b, 8),
            itt: get32(b, 16),
            expected_data_len: get32(b, 20),
            cmd_sn: get32(b, 24),
            exp_stat_sn: get32(b, 28),
            cdb,
        })
    }
    fn encode(&self, b: &mut [u8; BHS_LEN]) {
        put_opcode(b, Self::OPCODE, self.immediate);
        b[1] = (u8::from(self.final_) << 7)
            | (u8::from(self.read) << 6)
            | (u8::from(self.write) << 5)
            | self.attr as u8;
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.expected_data_len);
        put32(b, 24, self.cmd_sn);
        put32(b, 28, self.exp_stat_sn);
        b[32..48].copy_from_slice(&self.cdb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip_and_layout() {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x28;
        let h = ScsiCommand {
            immediate: false,
            final_: true,
            read: true,
            write: false,
            attr: TaskAttr::Simple,
            lun: 0x0001_0000_0000_0000,
            itt: 0x10,
            expected_data_len: 4096,
            cmd_sn: 0x0102_0304,
            exp_stat_sn: 2,
            cdb,
        };
        let b = roundtrip(&h);
        assert_eq!(b[0], 0x01);
        assert_eq!(b[1], 0xc1);
        assert_eq!(&b[8..10], &[0, 1]);
        assert_eq!(&b[20..28], &[0, 0, 0x10, 0, 1, 2, 3, 4]);
        assert_eq!(b[32], 0x28);
    }

    #[test]
    fn bad_attr_is_an_error() {
        let mut b = [0u8; BHS_LEN];
        b[0] = 0x01;
        b[1] = 0x87;
        assert!(ScsiCommand::decode(&b).is_err());
    }

    #[test]
    fn extended_cdb_ahs() {
        let cdb = [0xaau8; 32];
        let mut ahs = Vec::new();
        ScsiCommand::extended_cdb_ahs(&cdb, &mut ahs);
        assert_eq!(&ahs[..4], &[0, 17, 1, 0]);
        assert_eq!(ahs.len(), 20);
        ScsiCommand::extended_cdb_ahs(&cdb[..16], &mut ahs);
        assert_eq!(ahs.len(), 20);
    }
}
