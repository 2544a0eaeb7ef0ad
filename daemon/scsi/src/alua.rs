//! Asymmetric logical unit access (ALUA, SPC-4 §5.16): the access states of target port groups
//! and the REPORT TARGET PORT GROUPS parameter data (SPC-4 §6.27).
//!
//! An LU reached through several target ports may treat them differently: IO through an
//! active/optimized port is fast, through an active/non-optimized one slower, and a standby,
//! unavailable or offline port refuses IO (NOT READY 04/0B, 04/0C, 04/12). The multipath layer
//! reads the states with REPORT TARGET PORT GROUPS and finds a path's group in VPD page 0x83
//! (the target port group designator, [`crate::Designator::target_port_group`]).

use crate::bytes::be16;
use crate::bytes::be32;
use crate::error::DataError;
use crate::inquiry::Designator;
use crate::sense::Sense;

/// The target port group and the relative target port that VPD page 0x83's designators
/// (`parse_device_identification`) name for the port the command came through.
pub fn target_port(designators: &[Designator]) -> (Option<u16>, Option<u16>) {
    (
        designators.iter().find_map(Designator::target_port_group),
        designators.iter().find_map(Designator::relative_target_port),
    )
}

/// An ALUA access state (SPC-4 §6.27.2, table 256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessState {
    ActiveOptimized,
    ActiveNonOptimized,
    Standby,
    Unavailable,
    /// Access depends on the LBA (SBC-3 §4.28): treated as active/non-optimized.
    LbaDependent,
    Offline,
    /// Changing between two states: IO gets NOT READY 04/0A until it settles.
    Transitioning,
    /// A reserved code, kept as it came.
    Reserved(u8),
}

impl AccessState {
    /// The state of a 4-bit ASYMMETRIC ACCESS STATE field.
    pub fn from_code(c: u8) -> AccessState {
        match c & 0x0f {
            0x0 => AccessState::ActiveOptimized,
            0x1 => AccessState::ActiveNonOptimized,
            0x2 => AccessState::Standby,
            0x3 => AccessState::Unavailable,
            0x4 => AccessState::LbaDependent,
            0xe => AccessState::Offline,
            0xf => AccessState::Transitioning,
            c => AccessState::Reserved(c),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            AccessState::ActiveOptimized => 0x0,
            AccessState::ActiveNonOptimized => 0x1,
            AccessState::Standby => 0x2,
            AccessState::Unavailable => 0x3,
            AccessState::LbaDependent => 0x4,
            AccessState::Offline => 0xe,
            AccessState::Transitioning => 0xf,
            AccessState::Reserved(c) => c & 0x0f,
        }
    }

    /// The name lunlink shows (D-Bus `AccessState`, `lunlinkctl lus`).
    pub fn as_str(self) -> &'static str {
        match self {
            AccessState::ActiveOptimized => "active/optimized",
            AccessState::ActiveNonOptimized => "active/non-optimized",
            AccessState::Standby => "standby",
            AccessState::Unavailable => "unavailable",
            AccessState::LbaDependent => "lba-dependent",
            AccessState::Offline => "offline",
            AccessState::Transitioning => "transitioning",
            AccessState::Reserved(_) => "reserved",
        }
    }

    /// How good a path in this state is for IO: 0 best (active/optimized), 1 active but not
    /// optimized, None: no IO at all (standby, unavailable, offline, transitioning, reserved).
    /// Linux's scsi_dh_alua fails IO to the latter at once so that multipath moves it.
    pub fn io_rank(self) -> Option<u8> {
        match self {
            AccessState::ActiveOptimized => Some(0),
            AccessState::ActiveNonOptimized | AccessState::LbaDependent => Some(1),
            _ => None,
        }
    }
}

/// One target port group of a REPORT TARGET PORT GROUPS answer (SPC-4 §6.27.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPortGroup {
    pub id: u16,
    pub state: AccessState,
    /// PREF: the group is preferred for IO among those in the same state.
    pub preferred: bool,
    /// The relative target port identifiers in the group.
    pub ports: Vec<u16>,
}

/// A REPORT TARGET PORT GROUPS answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetPortGroups {
    pub groups: Vec<TargetPortGroup>,
    /// IMPLICIT TRANSITION TIME in seconds, from the extended header; None in the length-only
    /// format or when the target says 0 (no limit given).
    pub transition_time: Option<u8>,
}

impl TargetPortGroups {
    /// The group with identifier `id`.
    pub fn group(&self, id: u16) -> Option<&TargetPortGroup> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// The group holding relative target port `port` (for targets whose VPD 0x83 names the
    /// port but not its group).
    pub fn group_of_port(&self, port: u16) -> Option<&TargetPortGroup> {
        self.groups.iter().find(|g| g.ports.contains(&port))
    }
}

/// The allocation length to start REPORT TARGET PORT GROUPS with: room for a few groups of a
/// few ports. [`parse_target_port_groups`] says when more is needed.
pub const RTPG_ALLOC: u32 = 256;

/// REPORT TARGET PORT GROUPS parameter data, in the extended (SPC-4 table 253) or length-only
/// (table 252) format: the header says which. When more was returned than arrived, the answer
/// is [`DataError::Truncated`] with the allocation length to ask again with.
///
/// Linux LIO leaves the 4 bytes of the extended header out of RETURN DATA LENGTH and sends
/// only that many bytes, so the last target port of its last group never arrives. As Linux's
/// own initiator does, descriptors are read up to the end of what arrived and a port list cut
/// short there keeps the ports that came; a descriptor header that does not fit is an error.
pub fn parse_target_port_groups(b: &[u8]) -> Result<TargetPortGroups, DataError> {
    const WHAT: &str = "REPORT TARGET PORT GROUPS data";
    let len = be32(b, 0).ok_or(DataError::Short { what: WHAT, needed: 4, got: b.len() })?;
    let total = usize::try_from(len)
        .ok()
        .and_then(|n| n.checked_add(4))
        .filter(|n| *n <= 1 << 20)
        .ok_or(DataError::Invalid { what: WHAT, reason: "return data length too large" })?;
    if b.len() < total {
        return Err(DataError::Truncated { what: WHAT, needed: total, got: b.len() });
    }
    // In the length-only format byte 4 is a descriptor's first byte, whose bits 6-4 are
    // reserved (zero); the extended header has FORMAT TYPE 001b there.
    let extended = total > 4 && (b[4] >> 4) & 0x7 == 1;
    let (transition_time, mut off) = if extended {
        if total < 8 {
            return Err(DataError::Short { what: WHAT, needed: 8, got: total });
        }
        (Some(b[5]).filter(|t| *t != 0), 8)
    } else {
        (None, 4)
    };
    let mut groups = Vec::new();
    while off < total {
        let d = b.get(off..off + 8).ok_or(DataError::Invalid { what: WHAT, reason: "a descriptor runs past the end" })?;
        let ports_end = off + 8 + 4 * usize::from(d[7]);
        let ports = &b[off + 8..ports_end.min(b.len())];
        groups.push(TargetPortGroup {
            id: be16(d, 2).unwrap_or(0),
            state: AccessState::from_code(d[0]),
            preferred: d[0] & 0x80 != 0,
            ports: ports.chunks_exact(4).filter_map(|p| be16(p, 2)).collect(),
        });
        off = ports_end;
    }
    Ok(TargetPortGroups { groups, transition_time })
}

impl Sense {
    /// Sense that means the LU's ALUA states may have changed, so they are read again (what
    /// Linux's scsi_dh_alua rechecks on): UNIT ATTENTION 2A/06 asymmetric access state changed,
    /// 2A/07 implicit transition failed, 29/00 and 29/04 (power on, reset), 3F/03 (inquiry data
    /// changed); NOT READY 04/0A (in transition), 04/0B (standby), 04/0C (unavailable),
    /// 04/12 (offline).
    pub fn is_alua_news(&self) -> bool {
        use crate::SenseKey;
        matches!(
            (self.key, self.asc, self.ascq),
            (SenseKey::UnitAttention, 0x2a, 0x06 | 0x07)
                | (SenseKey::UnitAttention, 0x29, 0x00 | 0x04)
                | (SenseKey::UnitAttention, 0x3f, 0x03)
                | (SenseKey::NotReady, 0x04, 0x0a | 0x0b | 0x0c | 0x12)
        )
    }

    /// The access state a NOT READY answer reports for the port it came through, if it is one
    /// of ALUA's (04/0A transitioning, 04/0B standby, 04/0C unavailable, 04/12 offline).
    pub fn alua_state(&self) -> Option<AccessState> {
        use crate::SenseKey;
        match (self.key, self.asc, self.ascq) {
            (SenseKey::NotReady, 0x04, 0x0a) => Some(AccessState::Transitioning),
            (SenseKey::NotReady, 0x04, 0x0b) => Some(AccessState::Standby),
            (SenseKey::NotReady, 0x04, 0x0c) => Some(AccessState::Unavailable),
            (SenseKey::NotReady, 0x04, 0x12) => Some(AccessState::Offline),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::unhex;
    use crate::SenseKey;

    /// Extended header (format type 1, implicit transition time 10 s), two groups: group 1
    /// active/optimized and preferred with relative port 1, group 2 standby with ports 2 and 3.
    #[test]
    fn extended_format() {
        let b = unhex(
            "00000020 10 0a 0000
             80 8f 0001 00 00 00 01  0000 0001
             02 8f 0002 00 02 00 02  0000 0002 0000 0003",
        );
        let t = parse_target_port_groups(&b).unwrap();
        assert_eq!(t.transition_time, Some(10));
        assert_eq!(t.groups.len(), 2);
        assert_eq!(t.groups[0], TargetPortGroup { id: 1, state: AccessState::ActiveOptimized, preferred: true, ports: vec![1] });
        assert_eq!(t.group(2).unwrap().state, AccessState::Standby);
        assert_eq!(t.group(2).unwrap().ports, vec![2, 3]);
        assert_eq!(t.group_of_port(3).unwrap().id, 2);
        assert!(t.group(3).is_none());
    }

    /// A target that ignores the format request answers length-only: descriptors from byte 4.
    #[test]
    fn length_only_format() {
        let b = unhex("0000000c 01 0f 0005 00 00 00 01 0000 0007");
        let t = parse_target_port_groups(&b).unwrap();
        assert_eq!(t.transition_time, None);
        assert_eq!(t.groups, vec![TargetPortGroup { id: 5, state: AccessState::ActiveNonOptimized, preferred: false, ports: vec![7] }]);
    }

    /// As LIO (Linux 6.12) answers: RETURN DATA LENGTH 0x18 counts the two descriptors but not
    /// the extended header, and 0x18 + 4 bytes is all that is sent, so group 2's only port is
    /// cut off. Both groups and their states come through.
    #[test]
    fn lio_extended_header_left_out_of_the_length() {
        let b = unhex(
            "00000018 10 00 0000
             00 df 0001 00 02 00 01  0000 0001
             02 df 0002 00 02 00 01",
        );
        let t = parse_target_port_groups(&b).unwrap();
        assert_eq!(t.groups.len(), 2);
        assert_eq!((t.groups[0].id, t.groups[0].state, t.groups[0].ports.clone()), (1, AccessState::ActiveOptimized, vec![1]));
        assert_eq!((t.groups[1].id, t.groups[1].state, t.groups[1].ports.clone()), (2, AccessState::Standby, vec![]));
        // More arrived than the length says (the allocation was larger): the ports are read.
        let mut full = b.clone();
        full.extend_from_slice(&unhex("0000 0002"));
        assert_eq!(parse_target_port_groups(&full).unwrap().groups[1].ports, vec![2]);
    }

    #[test]
    fn no_transition_time_when_zero() {
        let b = unhex("00000004 10 00 0000");
        assert_eq!(parse_target_port_groups(&b).unwrap(), TargetPortGroups { groups: vec![], transition_time: None });
    }

    #[test]
    fn truncated_and_malformed() {
        // 0x24 bytes announced, 12 arrived: ask again with 40.
        let b = unhex("00000024 10 0a 0000 80 8f 0001 00");
        assert!(matches!(parse_target_port_groups(&b), Err(DataError::Truncated { needed: 40, .. })));
        assert!(matches!(parse_target_port_groups(&[0, 0]), Err(DataError::Short { .. })));
        // A half descriptor.
        let b = unhex("00000008 10 00 0000 00 00 0001");
        assert!(matches!(parse_target_port_groups(&b), Err(DataError::Invalid { .. })));
        // A length no one would send.
        assert!(matches!(parse_target_port_groups(&unhex("ffffffff")), Err(DataError::Invalid { .. })));
    }

    #[test]
    fn states_by_code() {
        for c in 0..16u8 {
            assert_eq!(AccessState::from_code(c).code(), c);
        }
        assert_eq!(AccessState::from_code(0x80), AccessState::ActiveOptimized, "PREF bit ignored");
        assert_eq!(AccessState::ActiveOptimized.io_rank(), Some(0));
        assert_eq!(AccessState::ActiveNonOptimized.io_rank(), Some(1));
        assert_eq!(AccessState::LbaDependent.io_rank(), Some(1));
        for s in [AccessState::Standby, AccessState::Unavailable, AccessState::Offline, AccessState::Transitioning, AccessState::Reserved(5)] {
            assert_eq!(s.io_rank(), None, "{s:?}");
        }
    }

    #[test]
    fn sense_that_means_alua_news() {
        let rows = [
            (SenseKey::UnitAttention, 0x2a, 0x06, true, None),
            (SenseKey::UnitAttention, 0x2a, 0x07, true, None),
            (SenseKey::UnitAttention, 0x29, 0x00, true, None),
            (SenseKey::UnitAttention, 0x3f, 0x03, true, None),
            (SenseKey::UnitAttention, 0x2a, 0x09, false, None),
            (SenseKey::UnitAttention, 0x3f, 0x0e, false, None),
            (SenseKey::NotReady, 0x04, 0x0a, true, Some(AccessState::Transitioning)),
            (SenseKey::NotReady, 0x04, 0x0b, true, Some(AccessState::Standby)),
            (SenseKey::NotReady, 0x04, 0x0c, true, Some(AccessState::Unavailable)),
            (SenseKey::NotReady, 0x04, 0x12, true, Some(AccessState::Offline)),
            (SenseKey::NotReady, 0x04, 0x01, false, None),
            (SenseKey::MediumError, 0x04, 0x0b, false, None),
        ];
        for (k, asc, ascq, news, state) in rows {
            let s = Sense::new(k, asc, ascq);
            assert_eq!(s.is_alua_news(), news, "{k:?} {asc:02x}/{ascq:02x}");
            assert_eq!(s.alua_state(), state, "{k:?} {asc:02x}/{ascq:02x}");
        }
    }
}
