//! PDU framing (RFC 7143 §11.2): BHS, AHS, optional header digest, data segment padded to a
//! multiple of 4, optional data digest. Digests are CRC32C (§13.1), sent least significant byte
//! first.
use super::*;

/// Which digests are in use on a connection (negotiated HeaderDigest / DataDigest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Digests {
    pub header: bool,
    pub data: bool,
}

/// What the receiving side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameConfig {
    pub digests: Digests,
    /// Our declared MaxRecvDataSegmentLength: longer data segments are a protocol error.
    pub max_recv_data_segment: u32,
}

impl Default for FrameConfig {
    /// What holds during login (§6.2: 8192 bytes until negotiated, no digests).
    fn default() -> Self {
        Self { digests: Digests::default(), max_recv_data_segment: 8192 }
    }
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Appends one whole PDU to `out`. `ahs` must be a multiple of 4 bytes (as built by the AHS
/// helpers). The data segment is padded and digested as `digests` says.
pub fn encode_pdu<H: Bhs>(out: &mut Vec<u8>, header: &H, ahs: &[u8], data: &[u8], digests: Digests) {
    encode_pdu_head(out, header, ahs, data.len(), digests);
    if !data.is_empty() {
        out.extend_from_slice(data);
        let (trailer, n) = data_trailer(data, digests);
        out.extend_from_slice(&trailer[..n]);
    }
}

/// Appends the part of a PDU before its data segment (BHS, AHS, header digest) for a data
/// segment of `data_len` bytes. With [`data_trailer`] a sender can send the data segment
/// from a buffer of its own instead of copying it behind the header.
pub fn encode_pdu_head<H: Bhs>(out: &mut Vec<u8>, header: &H, ahs: &[u8], data_len: usize, digests: Digests) {
    debug_assert!(ahs.len().is_multiple_of(4) && ahs.len() <= 255 * 4, "AHS must be whole words");
    debug_assert!(data_len < 1 << 24, "data segment length is 24 bits");
    let start = out.len();
    let mut bhs = [0u8; BHS_LEN];
    header.encode(&mut bhs);
    bhs[4] = u8::try_from(ahs.len() / 4).unwrap_or(u8::MAX);
    put24(&mut bhs, 5, u32::try_from(data_len).unwrap_or(0x00ff_ffff) & 0x00ff_ffff);
    out.extend_from_slice(&bhs);
    out.extend_from_slice(ahs);
    if digests.header {
        let d = crc(&out[start..]);
        out.extend_from_slice(&d.to_le_bytes());
    }
}

/// What follows a non-empty data segment on the wire: its padding, then its digest if data
/// digests are in use. Returns the bytes and how many of them to send.
pub fn data_trailer(data: &[u8], digests: Digests) -> ([u8; 8], usize) {
    let mut t = [0u8; 8];
    let pad = pad4(data.len());
    let mut n = pad;
    if digests.data {
        let d = crc32c::crc32c_append(crc(data), &t[..pad]);
        t[pad..pad + 4].copy_from_slice(&d.to_le_bytes());
        n += 4;
    }
    (t, n)
}

/// One PDU found in a receive buffer, borrowing it.
#[derive(Debug)]
pub struct Frame<'a> {
    pub header: Header,
    pub bhs: &'a [u8; BHS_LEN],
    pub ahs: &'a [u8],
    /// The data segment without padding or digest.
    pub data: &'a [u8],
}

/// Result of looking for a PDU at the start of a buffer.
#[derive(Debug)]
pub enum FrameStatus<'a> {
    /// A whole PDU, and how many bytes of the buffer it took.
    Complete(Frame<'a>, usize),
    /// More bytes are needed: the buffer must hold at least this many in all.
    Incomplete(usize),
}

/// Looks for one PDU at the start of `buf`. Never panics; a returned error means the stream
/// cannot be trusted any more.
pub fn parse_frame<'a>(buf: &'a [u8], cfg: &FrameConfig) -> Result<FrameStatus<'a>, PduError> {
    let Some(bhs) = buf.first_chunk::<BHS_LEN>() else {
        return Ok(FrameStatus::Incomplete(BHS_LEN));
    };
    // Check the length before anything else so that garbage never makes us wait for 16 MiB.
    let data_len = get24(bhs, 5);
    if data_len > cfg.max_recv_data_segment {
        return Err(PduError::DataSegmentTooLong { len: data_len, max: cfg.max_recv_data_segment });
    }
    let header = Header::decode(bhs)?;
    let ahs_len = usize::from(bhs[4]) * 4;
    let hd_len = if cfg.digests.header { 4 } else { 0 };
    let data_len = data_len as usize;
    let padded = data_len + pad4(data_len);
    let dd_len = if cfg.digests.data && data_len > 0 { 4 } else { 0 };
    let header_end = BHS_LEN + ahs_len;
    let data_start = header_end + hd_len;
    let total = data_start + padded + dd_len;
    if buf.len() < total {
        return Ok(FrameStatus::Incomplete(total));
    }
    if cfg.digests.header {
        let got = u32::from_le_bytes([buf[header_end], buf[header_end + 1], buf[header_end + 2], buf[header_end + 3]]);
        let computed = crc(&buf[..header_end]);
        if got != computed {
            return Err(PduError::HeaderDigest { got, computed });
        }
    }
    if dd_len != 0 {
        let at = data_start + padded;
        let got = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let computed = crc(&buf[data_start..at]);
        if got != computed {
            return Err(PduError::DataDigest { got, computed });
        }
    }
    let frame = Frame {
        header,
        bhs,
        ahs: &buf[BHS_LEN..header_end],
        data: &buf[data_start..data_start + data_len],
    };
    Ok(FrameStatus::Complete(frame, total))
}

/// A PDU with owned segments (control path, tests, fuzzing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub header: Header,
    pub ahs: Vec<u8>,
    pub data: Vec<u8>,
}

impl Pdu {
    pub fn new(header: impl Into<Header>, data: Vec<u8>) -> Self {
        Self { header: header.into(), ahs: Vec::new(), data }
    }
    pub fn encode(&self, out: &mut Vec<u8>, digests: Digests) {
        encode_pdu(out, &self.header, &self.ahs, &self.data, digests);
    }
}

/// Incremental decoder: feed bytes as they arrive, take whole PDUs out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    cfg: FrameConfig,
    failed: Option<PduError>,
}

impl Decoder {
    pub fn new(cfg: FrameConfig) -> Self {
        Self { cfg, ..Self::default() }
    }
    /// Applies new limits or digests, e.g. once the login negotiated them (§6.2).
    pub fn set_config(&mut self, cfg: FrameConfig) {
        self.cfg = cfg;
    }
    pub fn config(&self) -> FrameConfig {
        self.cfg
    }
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }
    /// Bytes fed but not yet returned as PDUs.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
    /// Gives up the bytes fed but not yet returned, e.g. when another reader takes over the
    /// stream after login.
    pub fn into_pending(self) -> Vec<u8> {
        self.buf[self.start..].to_vec()
    }
    /// The next whole PDU, if any. After an error every later call returns it again.
    pub fn next_pdu(&mut self) -> Result<Option<Pdu>, PduError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match parse_frame(&self.buf[self.start..], &self.cfg) {
            Ok(FrameStatus::Incomplete(_)) => Ok(None),
            Ok(FrameStatus::Complete(f, used)) => {
                let pdu = Pdu { header: f.header, ahs: f.ahs.to_vec(), data: f.data.to_vec() };
                self.start += used;
                if self.start * 2 > self.buf.len() && self.start > 4096 {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(Some(pdu))
            }
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_rfc_vector() {
        // RFC 7143 §B.4: 32 bytes of zeroes -> aa 36 91 8a on the wire.
        assert_eq!(crc(&[0u8; 32]).to_le_bytes(), [0xaa, 0x36, 0x91, 0x8a]);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc(&inc).to_le_bytes(), [0x4e, 0x79, 0xdd, 0x46]);
    }

    fn sample() -> Pdu {
        Pdu::new(
            TextResponse { final_: true, itt: 1, ttt: RESERVED_TAG, stat_sn: 2, exp_cmd_sn: 3, max_cmd_sn: 4, ..Default::default() },
            b"TargetName=iqn.2024-01.test:a\0".to_vec(),
        )
    }

    #[test]
    fn encode_layout_and_padding() {
        let p = sample();
        let mut out = Vec::new();
        p.encode(&mut out, Digests::default());
        assert_eq!(out.len(), 48 + 32); // 30 bytes padded to 32
        assert_eq!(&out[5..8], &[0, 0, 30]);
        assert_eq!(&out[78..80], &[0, 0]);
    }

    #[test]
    fn decoder_roundtrip_byte_by_byte_all_digest_modes() {
        for (h, d) in [(false, false), (true, false), (false, true), (true, true)] {
            let digests = Digests { header: h, data: d };
            let mut out = Vec::new();
            let p = sample();
            p.encode(&mut out, digests);
            let empty = Pdu::new(NopIn { itt: 5, ttt: RESERVED_TAG, ..Default::default() }, Vec::new());
            empty.encode(&mut out, digests);
            let mut dec = Decoder::new(FrameConfig { digests, max_recv_data_segment: 8192 });
            let mut got = Vec::new();
            for b in &out {
                dec.feed(std::slice::from_ref(b));
                while let Some(p) = dec.next_pdu().unwrap() {
                    got.push(p);
                }
            }
            assert_eq!(got, vec![p, empty], "digests {digests:?}");
            assert_eq!(dec.pending(), 0);
        }
    }

    #[test]
    fn head_payload_trailer_equal_a_whole_pdu() {
        let hdr = DataOut { final_: true, lun: 1, itt: 7, ttt: 9, exp_stat_sn: 3, data_sn: 0, buffer_offset: 0 };
        for len in [1usize, 2, 3, 4, 4097] {
            let data: Vec<u8> = (0..len).map(|i| ((i * 7) % 256).to_le_bytes()[0]).collect();
            for digests in [Digests::default(), Digests { header: true, data: true }] {
                let mut whole = Vec::new();
                encode_pdu(&mut whole, &hdr, &[], &data, digests);
                let mut parts = Vec::new();
                encode_pdu_head(&mut parts, &hdr, &[], data.len(), digests);
                parts.extend_from_slice(&data);
                let (t, n) = data_trailer(&data, digests);
                parts.extend_from_slice(&t[..n]);
                assert_eq!(parts, whole, "{len} bytes, {digests:?}");
            }
        }
    }

    #[test]
    fn digest_errors_are_detected() {
        let digests = Digests { header: true, data: true };
        let mut out = Vec::new();
        sample().encode(&mut out, digests);
        let cfg = FrameConfig { digests, max_recv_data_segment: 8192 };
        let mut bad = out.clone();
        bad[20] ^= 1;
        assert!(matches!(parse_frame(&bad, &cfg), Err(PduError::HeaderDigest { .. })));
        let mut bad = out.clone();
        bad[60] ^= 1;
        assert!(matches!(parse_frame(&bad, &cfg), Err(PduError::DataDigest { .. })));
    }

    #[test]
    fn too_long_segment_refused_before_waiting() {
        let mut b = [0u8; 48];
        b[0] = 0x25;
        put24(&mut b, 5, 8193);
        let r = parse_frame(&b, &FrameConfig::default());
        assert_eq!(r.unwrap_err(), PduError::DataSegmentTooLong { len: 8193, max: 8192 });
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        let cfgs = [
            FrameConfig::default(),
            FrameConfig { digests: Digests { header: true, data: true }, max_recv_data_segment: 1 << 24 },
        ];
        // A cheap deterministic generator: every prefix of a few pseudo-random streams.
        let mut x: u32 = 0x1234_5678;
        for cfg in cfgs {
            for _ in 0..200 {
                let mut v = Vec::new();
                for _ in 0..300 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    v.push((x >> 8).to_le_bytes()[0]);
                }
                for len in 0..v.len() {
                    let _ = parse_frame(&v[..len], &cfg);
                }
                let mut dec = Decoder::new(cfg);
                dec.feed(&v);
                for _ in 0..10 {
                    if dec.next_pdu().is_err() {
                        assert!(dec.next_pdu().is_err(), "errors are sticky");
                        break;
                    }
                }
            }
        }
    }
}
