//! A scriptable misbehaving iSCSI target on loopback: the right tool only where the target
//! itself is what misbehaves (no real target stalls or lies on purpose). It logs initiators in
//! without authentication and serves one 64 MiB disk, LUN 1, of zeroes (writes are dropped),
//! until its [`Fault`] says otherwise.
//!
//! [`FakeTarget::start_alua`] makes one port of a two-port ALUA array ([`AluaArray`]) instead:
//! the test sets each port's access state, as an array's controllers would, and the target
//! answers as SPC-4 says (REPORT TARGET PORT GROUPS, NOT READY in standby or transition, UNIT
//! ATTENTION 2A/06 after a change) and counts the reads and writes each port served.
//!
//! Plain threads, no async runtime: one thread accepts, one serves each connection. Each
//! accepted connection is numbered from 1 and its time kept ([`FakeTarget::accepted`]), so a
//! test can tell how the initiator retried.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lunlink_proto::login::Stage;
use lunlink_proto::pdu::{
    AsyncEvent, AsyncMessage, DataIn, Decoder, Digests, FrameConfig, Header, LoginResponse, LogoutResponse, NopIn,
    Pdu, Reject, ScsiCommand, ScsiResponse, RESERVED_TAG,
};
use lunlink_proto::text::TextKeys;

/// What the fake target does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: a plain, well-behaved target.
    None,
    /// Logs in, then reads and ignores everything (NOP-Outs included).
    SilentAfterLogin,
    /// Logs in, asks for a logout (Async Message, event 1), then ignores everything.
    AsyncLogoutThenSilent,
    /// Never opens the command window: every PDU carries MaxCmdSN = ExpCmdSN - 2, below the
    /// ExpCmdSN - 1 that RFC 7143 §4.2.2.1 allows for an empty window. NOP-Outs are answered.
    ClosedWindow,
    /// Logs in, then announces it drops the connection with Time2Wait = Time2Retain = 65535
    /// (Async Message, event 2) and closes it.
    DropWithHugeTime2Wait,
    /// On the first connection, rejects the first SCSI command with a Reject whose data
    /// segment is shorter than the rejected PDU's header; later connections are served.
    ShortReject,
    /// On the first connection, answers the first SCSI command with a header that claims AHS
    /// bytes which never come, and goes silent; later connections are served.
    AhsNeverComes,
    /// Answers the first READ with status BUSY, then serves every command.
    BusyOnce,
    /// Closes the connection without a login status when offered AuthMethod=None (the Linux
    /// kernel target does so when CHAP is required).
    CloseOnNoAuth,
    /// Serves connection 1, closes it 1 s after login, refuses the next login with status
    /// 0x0301 (service unavailable), then serves again.
    TryAgainOnRelogin,
    /// Serves connection 1 and closes it 1 s after login; later connections answer for another
    /// LU under the same LUN number (another VPD 0x83 identifier): a LUN number reused.
    IdentityChangesAtRelogin,
}

/// The ALUA state of a fake two-port array: port 1 in target port group 1, port 2 in group 2,
/// one LU behind both. States are SPC-4 codes: 0 active/optimized, 1 active/non-optimized,
/// 2 standby, 3 unavailable, 0xf transitioning.
pub struct AluaArray {
    states: Mutex<[u8; 2]>,
    /// Bumped on every change; each connection reports UNIT ATTENTION 2A/06 once it sees a new one.
    generation: AtomicU64,
    served: [AtomicU64; 2],
}

impl AluaArray {
    pub fn new(port1: u8, port2: u8) -> Arc<AluaArray> {
        Arc::new(AluaArray { states: Mutex::new([port1, port2]), generation: AtomicU64::new(0), served: Default::default() })
    }

    /// Sets the access state of port `port` (1 or 2).
    pub fn set(&self, port: u8, state: u8) {
        self.states.lock().unwrap_or_else(|e| e.into_inner())[usize::from(port - 1)] = state;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn state(&self, port: u8) -> u8 {
        self.states.lock().unwrap_or_else(|e| e.into_inner())[usize::from(port - 1)]
    }

    /// Reads and writes port `port` (1 or 2) has served.
    pub fn served(&self, port: u8) -> u64 {
        self.served[usize::from(port - 1)].load(Ordering::SeqCst)
    }
}

/// The fake target; stops listening when dropped.
pub struct FakeTarget {
    portal: String,
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<Instant>>>,
}

/// The target name the fake target answers to (any name is accepted at login).
pub const FAKE_TARGET_NAME: &str = "iqn.2024-01.test:fake";
/// Capacity of its LUN 1.
pub const FAKE_LUN_BYTES: u64 = 64 << 20;
const BLOCK: u32 = 512;

impl FakeTarget {
    pub fn start(fault: Fault) -> FakeTarget {
        Self::listen(fault, None)
    }

    /// Port `port` (1 or 2) of the ALUA array `array`: a well-behaved target otherwise.
    pub fn start_alua(array: &Arc<AluaArray>, port: u8) -> FakeTarget {
        assert!(port == 1 || port == 2, "the fake ALUA array has ports 1 and 2");
        Self::listen(Fault::None, Some((array.clone(), port)))
    }

    fn listen(fault: Fault, alua: Option<(Arc<AluaArray>, u8)>) -> FakeTarget {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let portal = l.local_addr().expect("local address").to_string();
        l.set_nonblocking(true).expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            let busy_done = Arc::new(AtomicBool::new(false));
            while !stop2.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        let n = {
                            let mut a = accepted2.lock().unwrap_or_else(|e| e.into_inner());
                            a.push(Instant::now());
                            a.len()
                        };
                        let (stop3, busy) = (stop2.clone(), busy_done.clone());
                        let alua = alua.clone();
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            Conn {
                                s,
                                n,
                                fault,
                                stop: stop3,
                                busy_done: busy,
                                stat_sn: 1,
                                dec: Decoder::new(FrameConfig::default()),
                                close_at: None,
                                alua_seen: alua.as_ref().map_or(0, |(a, _)| a.generation.load(Ordering::SeqCst)),
                                alua,
                            }
                                .serve();
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                    Err(_) => return,
                }
            }
        });
        FakeTarget { portal, stop, accepted }
    }

    /// "127.0.0.1:PORT".
    pub fn portal(&self) -> &str {
        &self.portal
    }

    /// When each connection was accepted, in order.
    pub fn accepted(&self) -> Vec<Instant> {
        self.accepted.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for FakeTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Conn {
    s: TcpStream,
    /// 1 for the first connection accepted.
    n: usize,
    fault: Fault,
    stop: Arc<AtomicBool>,
    busy_done: Arc<AtomicBool>,
    stat_sn: u32,
    dec: Decoder,
    /// When set, the connection ends at this time.
    close_at: Option<Instant>,
    /// The ALUA array and the port this target is, if it is one.
    alua: Option<(Arc<AluaArray>, u8)>,
    /// The array's generation this connection last reported.
    alua_seen: u64,
}

enum Next {
    Go,
    Silent,
    Close,
}

impl Conn {
    fn serve(mut self) {
        let _ = self.s.set_read_timeout(Some(Duration::from_millis(200)));
        match self.login() {
            Next::Go => {}
            Next::Silent => return self.silent(),
            Next::Close => return self.close(),
        }
        match self.fault {
            Fault::SilentAfterLogin => return self.silent(),
            Fault::AsyncLogoutThenSilent => {
                self.send_async(AsyncEvent::LogoutRequested, 0, 0, 5);
                return self.silent();
            }
            Fault::DropWithHugeTime2Wait => {
                self.send_async(AsyncEvent::DroppingConnection, 0, 65535, 65535);
                return self.close();
            }
            Fault::IdentityChangesAtRelogin if self.n == 1 => {
                // Serves for a second, then the connection goes.
                self.close_at = Some(Instant::now() + Duration::from_secs(1));
            }
            Fault::TryAgainOnRelogin if self.n == 1 => {
                std::thread::sleep(Duration::from_secs(1));
                return self.close();
            }
            _ => {}
        }
        let mut first = true;
        while let Some(p) = self.recv() {
            let next = match &p.header {
                Header::ScsiCommand(c) => {
                    let first_here = std::mem::replace(&mut first, false);
                    self.command(c, first_here)
                }
                Header::NopOut(n) if n.itt != RESERVED_TAG => {
                    let (exp, max) = self.window(n.cmd_sn);
                    let nop = NopIn { itt: n.itt, ttt: RESERVED_TAG, stat_sn: self.stat_sn, exp_cmd_sn: exp, max_cmd_sn: max, ..Default::default() };
                    self.send(Pdu::new(nop, Vec::new()));
                    Next::Go
                }
                Header::LogoutRequest(l) => {
                    let (exp, max) = self.window(l.cmd_sn);
                    let r = LogoutResponse { itt: l.itt, stat_sn: self.next_stat_sn(), exp_cmd_sn: exp, max_cmd_sn: max, ..Default::default() };
                    self.send(Pdu::new(r, Vec::new()));
                    Next::Close
                }
                Header::TaskMgmtRequest(t) => {
                    let (exp, max) = self.window(t.cmd_sn);
                    let r = lunlink_proto::pdu::TaskMgmtResponse {
                        response: 0,
                        itt: t.itt,
                        stat_sn: self.next_stat_sn(),
                        exp_cmd_sn: exp,
                        max_cmd_sn: max,
                    };
                    self.send(Pdu::new(r, Vec::new()));
                    Next::Go
                }
                _ => Next::Go,
            };
            match next {
                Next::Go => {}
                Next::Silent => return self.silent(),
                Next::Close => return self.close(),
            }
        }
    }

    fn next_stat_sn(&mut self) -> u32 {
        let s = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        s
    }

    /// ExpCmdSN / MaxCmdSN after a command with CmdSN `cmd_sn` (immediate ones too).
    fn window(&self, cmd_sn: u32) -> (u32, u32) {
        let exp = cmd_sn.wrapping_add(1);
        if self.fault == Fault::ClosedWindow {
            (exp, exp.wrapping_sub(2))
        } else {
            (exp, exp.wrapping_add(31))
        }
    }

    fn login(&mut self) -> Next {
        loop {
            let Some(p) = self.recv() else { return Next::Close };
            let Header::LoginRequest(req) = &p.header else { return Next::Close };
            let keys = TextKeys::decode(&p.data).unwrap_or_default();
            if self.fault == Fault::CloseOnNoAuth && keys.get("AuthMethod") == Some("None") {
                return Next::Close;
            }
            let refuse = self.fault == Fault::TryAgainOnRelogin && self.n == 2;
            let mut out = TextKeys::new();
            if req.csg == Stage::Security {
                let _ = out.push("AuthMethod", "None");
            } else {
                for (k, v) in keys.iter() {
                    let answer = match k {
                        "MaxRecvDataSegmentLength" => continue,
                        "HeaderDigest" | "DataDigest" => "None".to_owned(),
                        "FirstBurstLength" | "MaxBurstLength" => v.to_owned(),
                        "InitialR2T" => "Yes".to_owned(),
                        "ImmediateData" => "No".to_owned(),
                        "ErrorRecoveryLevel" | "DefaultTime2Retain" => "0".to_owned(),
                        "MaxConnections" | "MaxOutstandingR2T" => "1".to_owned(),
                        "DefaultTime2Wait" => "2".to_owned(),
                        "DataPDUInOrder" | "DataSequenceInOrder" => "Yes".to_owned(),
                        _ => "NotUnderstood".to_owned(),
                    };
                    let _ = out.push(k, answer);
                }
                let _ = out.push("MaxRecvDataSegmentLength", "262144");
            }
            let done = req.transit && req.nsg == Stage::FullFeature;
            let (exp, max) = if self.fault == Fault::ClosedWindow {
                (req.cmd_sn, req.cmd_sn.wrapping_sub(2))
            } else {
                (req.cmd_sn, req.cmd_sn.wrapping_add(31))
            };
            let h = LoginResponse {
                transit: req.transit && !refuse,
                cont: false,
                csg: req.csg,
                nsg: if refuse { req.csg } else { req.nsg },
                version_max: 0,
                version_active: 0,
                isid: req.isid,
                tsih: if done && !refuse { 0x0102 } else { 0 },
                itt: req.itt,
                stat_sn: self.stat_sn,
                exp_cmd_sn: exp,
                max_cmd_sn: max,
                status_class: if refuse { 3 } else { 0 },
                status_detail: if refuse { 1 } else { 0 },
            };
            let data = if refuse { Vec::new() } else { out.encode() };
            self.send(Pdu::new(h, data));
            if refuse {
                return Next::Close;
            }
            if done {
                self.stat_sn = self.stat_sn.wrapping_add(1);
                self.dec.set_config(FrameConfig { digests: Digests::default(), max_recv_data_segment: 1 << 20 });
                return Next::Go;
            }
        }
    }

    fn command(&mut self, c: &ScsiCommand, first_here: bool) -> Next {
        let (exp, max) = self.window(c.cmd_sn);
        match self.fault {
            Fault::ShortReject if first_here && self.n == 1 => {
                let r = Reject { reason: 0x09, stat_sn: self.next_stat_sn(), exp_cmd_sn: exp, max_cmd_sn: max, data_sn: 0 };
                self.send(Pdu::new(r, vec![0x01; 10]));
                return Next::Go;
            }
            Fault::AhsNeverComes if first_here && self.n == 1 => {
                // A SCSI Response header with TotalAHSLength = 8 (32 bytes), and nothing after.
                let mut out = Vec::new();
                Pdu::new(ScsiResponse { itt: c.itt, stat_sn: self.next_stat_sn(), exp_cmd_sn: exp, max_cmd_sn: max, ..ScsiResponse::default() }, Vec::new())
                    .encode(&mut out, Digests::default());
                out[4] = 8;
                let _ = self.s.write_all(&out[..48]);
                return Next::Silent;
            }
            Fault::BusyOnce if matches!(c.cdb[0], 0x28 | 0x88) && !self.busy_done.swap(true, Ordering::SeqCst) => {
                let r = ScsiResponse { itt: c.itt, status: 0x08, stat_sn: self.next_stat_sn(), exp_cmd_sn: exp, max_cmd_sn: max, ..ScsiResponse::default() };
                self.send(Pdu::new(r, Vec::new()));
                return Next::Go;
            }
            _ => {}
        }
        let identity = if self.fault == Fault::IdentityChangesAtRelogin && self.n > 1 { 2 } else { 1 };
        let (status, data, sense) = match &self.alua {
            Some((array, port)) => {
                let (array, port) = (array.clone(), *port);
                let gen = array.generation.load(Ordering::SeqCst);
                // INQUIRY and REPORT LUNS never report a unit attention (SAM-5 §5.14).
                if gen != self.alua_seen && !matches!(c.cdb[0], 0x12 | 0xa0) {
                    self.alua_seen = gen;
                    (2, Vec::new(), fixed_sense(0x06, 0x2a, 0x06))
                } else {
                    respond_alua(&c.cdb, &array, port)
                }
            }
            None => respond(&c.cdb, identity),
        };
        let want = c.expected_data_len as usize;
        if c.read && !data.is_empty() {
            let n = data.len().min(want);
            let d = DataIn {
                final_: true,
                has_status: false,
                itt: c.itt,
                ttt: RESERVED_TAG,
                exp_cmd_sn: exp,
                max_cmd_sn: max,
                ..DataIn::default()
            };
            self.send(Pdu::new(d, data[..n].to_vec()));
        }
        let moved = if c.read { data.len().min(want) } else { want };
        let residual = u32::try_from(want - moved).unwrap_or(0);
        let r = ScsiResponse {
            itt: c.itt,
            status,
            underflow: residual > 0,
            residual,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: exp,
            max_cmd_sn: max,
            ..ScsiResponse::default()
        };
        let seg = if sense.is_empty() {
            Vec::new()
        } else {
            let mut v = u16::try_from(sense.len()).unwrap_or(0).to_be_bytes().to_vec();
            v.extend_from_slice(&sense);
            v
        };
        self.send(Pdu::new(r, seg));
        Next::Go
    }

    fn send_async(&mut self, event: AsyncEvent, p1: u16, p2: u16, p3: u16) {
        let a = AsyncMessage {
            lun: 0,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: 1,
            max_cmd_sn: 32,
            event,
            vcode: 0,
            parameter1: p1,
            parameter2: p2,
            parameter3: p3,
        };
        self.send(Pdu::new(a, Vec::new()));
    }

    fn send(&mut self, p: Pdu) {
        let mut out = Vec::new();
        p.encode(&mut out, Digests::default());
        let _ = self.s.write_all(&out);
    }

    /// The next PDU, None at end of file, on error or when the target stops.
    fn recv(&mut self) -> Option<Pdu> {
        let mut buf = [0u8; 65536];
        loop {
            match self.dec.next_pdu() {
                Ok(Some(p)) => return Some(p),
                Ok(None) => {}
                Err(_) => return None,
            }
            if self.stop.load(Ordering::SeqCst) || self.close_at.is_some_and(|t| Instant::now() >= t) {
                return None;
            }
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.dec.feed(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads and ignores everything until the initiator closes or the target stops.
    fn silent(mut self) {
        let mut buf = [0u8; 65536];
        while !self.stop.load(Ordering::SeqCst) {
            match self.s.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    }

    fn close(self) {
        let _ = self.s.shutdown(Shutdown::Both);
    }
}

/// Fixed-format sense data (SPC-4 §4.5.3).
fn fixed_sense(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
    vec![0x70, 0, key, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0]
}

/// What port `port` of `array` answers: the plain disk's answers, plus ALUA (TPGS implicit in
/// INQUIRY, the port and its group in VPD 0x83, REPORT TARGET PORT GROUPS with the extended
/// header), and NOT READY for media access in standby (04/0B), unavailable (04/0C) or
/// transition (04/0A).
fn respond_alua(cdb: &[u8; 16], array: &AluaArray, port: u8) -> (u8, Vec<u8>, Vec<u8>) {
    let state = array.state(port);
    let media = matches!(cdb[0], 0x00 | 0x28 | 0x88 | 0x2a | 0x8a | 0x35);
    match (media, state) {
        (true, 2) => return (2, Vec::new(), fixed_sense(0x02, 0x04, 0x0b)),
        (true, 3) => return (2, Vec::new(), fixed_sense(0x02, 0x04, 0x0c)),
        (true, 0xf) => return (2, Vec::new(), fixed_sense(0x02, 0x04, 0x0a)),
        _ => {}
    }
    match cdb[0] {
        0x12 if cdb[1] & 1 == 0 => {
            let (status, mut d, sense) = respond(cdb, 1);
            d[5] |= 0x10; // TPGS 01b: implicit ALUA
            (status, d, sense)
        }
        0x12 if cdb[2] == 0x83 => {
            let (status, mut d, sense) = respond(cdb, 1);
            // Relative target port and target port group designators (iSCSI, PIV, port).
            d.extend_from_slice(&[0x51, 0x94, 0, 4, 0, 0, 0, port]);
            d.extend_from_slice(&[0x51, 0x95, 0, 4, 0, 0, 0, port]);
            d[3] = u8::try_from(d.len() - 4).unwrap_or(u8::MAX);
            (status, d, sense)
        }
        0xa3 if cdb[1] & 0x1f == 0x0a => {
            let mut d = vec![0, 0, 0, 0, 0x10, 0, 0, 0];
            for g in 1..=2u8 {
                d.extend_from_slice(&[array.state(g), 0x8f, 0, g, 0, 0, 0, 1, 0, 0, 0, g]);
            }
            let len = u32::try_from(d.len() - 4).unwrap_or(0);
            d[..4].copy_from_slice(&len.to_be_bytes());
            (0, d, Vec::new())
        }
        _ => {
            if media && cdb[0] != 0x00 && cdb[0] != 0x35 {
                array.served[usize::from(port - 1)].fetch_add(1, Ordering::SeqCst);
            }
            respond(cdb, 1)
        }
    }
}

/// Status, data and sense for a CDB on LUN 1: a 64 MiB disk of zeroes whose NAA identifier
/// ends in `identity`.
fn respond(cdb: &[u8; 16], identity: u8) -> (u8, Vec<u8>, Vec<u8>) {
    let blocks = FAKE_LUN_BYTES / u64::from(BLOCK);
    let illegal = || (2u8, Vec::new(), vec![0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0]);
    match cdb[0] {
        0x00 | 0x35 | 0x2a | 0x8a => (0, Vec::new(), Vec::new()), // TUR, SYNC CACHE, writes (dropped)
        0xa0 => {
            // REPORT LUNS: LUN 1 only.
            let mut d = vec![0, 0, 0, 8, 0, 0, 0, 0];
            d.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
            (0, d, Vec::new())
        }
        0x12 if cdb[1] & 1 == 1 => match cdb[2] {
            0x00 => (0, vec![0, 0x00, 0, 2, 0x00, 0x83], Vec::new()),
            0x83 => {
                // One designator: NAA 6 (16 bytes), binary, associated with the LU.
                let mut d = vec![0, 0x83, 0, 20, 0x01, 0x03, 0, 16];
                d.extend_from_slice(&[0x60, 0x01, 0x40, 0x5f, 0xa4, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, identity]);
                (0, d, Vec::new())
            }
            _ => illegal(),
        },
        0x12 => {
            let mut d = vec![0u8; 36];
            d[2] = 6; // SPC-4
            d[3] = 2;
            d[4] = 31;
            d[8..16].copy_from_slice(b"FAKE    ");
            d[16..32].copy_from_slice(b"misbehaving     ");
            d[32..36].copy_from_slice(b"0001");
            (0, d, Vec::new())
        }
        0x25 => {
            let mut d = u32::try_from(blocks - 1).unwrap_or(u32::MAX).to_be_bytes().to_vec();
            d.extend_from_slice(&BLOCK.to_be_bytes());
            (0, d, Vec::new())
        }
        0x9e if cdb[1] & 0x1f == 0x10 => {
            let mut d = (blocks - 1).to_be_bytes().to_vec();
            d.extend_from_slice(&BLOCK.to_be_bytes());
            d.resize(32, 0);
            (0, d, Vec::new())
        }
        0x28 | 0x88 => {
            let n = if cdb[0] == 0x28 {
                u64::from(u16::from_be_bytes([cdb[7], cdb[8]]))
            } else {
                u64::from(u32::from_be_bytes([cdb[10], cdb[11], cdb[12], cdb[13]]))
            };
            let len = usize::try_from(n * u64::from(BLOCK)).unwrap_or(0);
            (0, vec![0u8; len], Vec::new())
        }
        _ => illegal(),
    }
}
