//! What each fuzz target of lunlink-scsi does with its input, shared by the cargo-fuzz
//! targets (`fuzz_targets/<name>.rs`, nightly) and by the stable replay test
//! (`daemon/scsi/tests/fuzz_corpus.rs`, which includes this file), so the two never drift.
//!
//! Every input is data a target returned for a command. Each function must not panic, and
//! asserts what must hold of whatever parses. Only the public API of `lunlink_scsi` is used.

use lunlink_scsi::inquiry::{self, DesignatorType};
use lunlink_scsi::{
    decode_lun, encode_lun, parse_report_luns, BlockDeviceCharacteristics, BlockLimits, Capacity, DataError,
    LogicalBlockProvisioning, ModeSense, ScsiError, Sense, SenseKey, StandardInquiry,
};
use lunlink_scsi::alua::{parse_target_port_groups, AccessState};

/// A fuzz target: its name (`fuzz_targets/<name>.rs`) and what it does with an input.
pub type Target = (&'static str, fn(&[u8]));

/// Every target of this crate.
pub const TARGETS: &[Target] = &[
    ("sense", sense),
    ("inquiry", inquiry),
    ("report_luns", report_luns),
    ("capacity", capacity),
    ("mode_sense", mode_sense),
    ("target_port_groups", target_port_groups),
];

/// Sense data, fixed and descriptor format (SPC-4 §4.5), and the classification of a CHECK
/// CONDITION built on it. The first byte is the SCSI status, the rest the sense bytes.
pub fn sense(data: &[u8]) {
    let Some((&status, b)) = data.split_first() else { return };
    if let Ok(s) = Sense::parse(b) {
        let format = b[0] & 0x7f;
        assert_eq!(s.descriptor_format, matches!(format, 0x72 | 0x73));
        assert_eq!(s.current, matches!(format, 0x70 | 0x72));
        assert!(!s.to_string().is_empty() && !s.describe().is_empty());
        if s.field_pointer().is_some() {
            assert_eq!(s.key, SenseKey::IllegalRequest);
        }
        assert_eq!(SenseKey::from_nibble(s.key.code()), s.key);
        match ScsiError::check(2, b) {
            Ok(()) => assert_eq!(s.key, SenseKey::RecoveredError),
            Err(e) => {
                assert_eq!(e.sense(), Some(&s));
                classify(&e);
            }
        }
    }
    match ScsiError::check(status, b) {
        Ok(()) => assert!(matches!(status, 0x00 | 0x04 | 0x02), "status 0x{status:02x} passed as success"),
        Err(e) => classify(&e),
    }
}

fn classify(e: &ScsiError) {
    assert!(e.errno() > 0, "{e}: errno {}", e.errno());
    let _ = (e.is_retryable(), e.to_string());
}

/// Standard INQUIRY data (SPC-4 §6.6.2) and the VPD pages lunlink reads: 0x00, 0x80, 0x83
/// (designators and the WWID that names a logical unit), 0xB0, 0xB1, 0xB2. Every parser sees
/// every input; each checks its own page code.
pub fn inquiry(b: &[u8]) {
    if let Ok(s) = StandardInquiry::parse(b) {
        assert!(s.vendor.len() <= 8 && s.product.len() <= 16 && s.revision.len() <= 4, "{s:?}");
        assert_eq!(s.device_type.code(), b[0] & 0x1f);
        let _ = s.is_disk();
    }
    let page_len = inquiry::vpd_page_len(b);
    let whole = |r: &Result<(), DataError>| {
        if r.is_ok() {
            assert!(page_len.is_some_and(|n| n <= b.len()), "a page longer than its data parsed");
        }
    };
    whole(&inquiry::parse_supported_pages(b).map(|pages| {
        assert_eq!(Some(pages.len() + 4), page_len);
    }));
    whole(&inquiry::parse_unit_serial(b).map(|serial| {
        assert!(serial.is_ascii() && serial.len() <= b.len());
    }));
    whole(&inquiry::parse_device_identification(b).map(|ds| {
        let total: usize = ds.iter().map(|d| d.id.len() + 4).sum();
        assert!(total + 4 <= b.len());
        for d in &ds {
            let _ = (d.relative_target_port(), d.target_port_group());
            if let Some(w) = d.wwid() {
                let prefix = match d.designator_type {
                    DesignatorType::Naa => Some("naa."),
                    DesignatorType::Eui64 => Some("eui."),
                    DesignatorType::T10VendorId => Some("t10."),
                    _ => None,
                };
                if let Some(p) = prefix {
                    assert!(w.as_str().starts_with(p) && w.as_str().len() > p.len(), "{w}");
                }
            }
        }
        if let Some(w) = inquiry::best_wwid(&ds) {
            assert!(!w.as_str().is_empty());
            assert!(ds.iter().any(|d| d.wwid().as_ref() == Some(&w)), "best_wwid {w} is none of the designators'");
        }
    }));
    whole(&BlockLimits::parse(b).map(|_| ()));
    whole(&BlockDeviceCharacteristics::parse(b).map(|_| ()));
    whole(&LogicalBlockProvisioning::parse(b).map(|_| ()));
}

/// REPORT LUNS parameter data (SPC-4 §6.33) and LUN numbers (SAM-5 §4.7).
pub fn report_luns(b: &[u8]) {
    match parse_report_luns(b) {
        Ok(luns) => {
            assert!(8 + luns.len() * 8 <= b.len());
            for raw in luns {
                if let Some(n) = decode_lun(raw) {
                    let again = encode_lun(n).expect("a decoded LUN number encodes");
                    assert_eq!(decode_lun(again), Some(n));
                }
            }
        }
        Err(DataError::Truncated { needed, got, .. }) => assert!(needed > got),
        Err(_) => {}
    }
}

/// READ CAPACITY(10) and (16) data (SBC-3 §5.15, §5.16): the byte size never overflows, the
/// block length is never 0.
pub fn capacity(b: &[u8]) {
    for c in [Capacity::parse10(b), Capacity::parse16(b)].into_iter().flatten() {
        assert!(c.block_size > 0);
        assert!(c.blocks > 0);
        assert_eq!(u128::from(c.bytes()), u128::from(c.blocks) * u128::from(c.block_size));
        let _ = c.physical_block_size();
    }
}

/// MODE SENSE(6) and (10) data (SPC-4 §7.5): header, block descriptors, and the pages, which
/// must lie within the data; the Caching page is what lunlink reads.
pub fn mode_sense(b: &[u8]) {
    for m in [ModeSense::parse6(b), ModeSense::parse10(b)].into_iter().flatten() {
        let bytes: usize = m.pages().map(|p| p.data.len() + 2).sum();
        assert!(bytes <= b.len());
        for p in m.pages() {
            assert!(p.code <= 0x3f);
            assert_eq!(m.find_page(p.code, p.subpage).map(|q| q.code), Some(p.code));
        }
        let _ = m.caching();
    }
}

/// REPORT TARGET PORT GROUPS parameter data (SPC-4 §6.27), extended or length-only format.
pub fn target_port_groups(b: &[u8]) {
    match parse_target_port_groups(b) {
        Ok(t) => {
            let ports: usize = t.groups.iter().map(|g| 8 + 4 * g.ports.len()).sum();
            assert!(4 + ports <= b.len());
            for g in &t.groups {
                assert_eq!(AccessState::from_code(g.state.code()), g.state);
                assert!(!g.state.as_str().is_empty());
            }
        }
        Err(DataError::Truncated { needed, got, .. }) => assert!(needed > got && got == b.len()),
        Err(_) => {}
    }
}
