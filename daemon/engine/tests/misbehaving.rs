//! Deliberately misbehaving targets (a fake peer is the right tool here: no real target sends
//! these on purpose). Whatever the target does, the engine must give a clear error, never
//! panic, never hang, and keep other commands and later sessions working.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lunlink_engine::{Auth, DataBuf, EngineError, LinkState, Offer, Session, SessionConfig, Timeouts};
use lunlink_proto::login::Stage;
use lunlink_proto::pdu::{
    AsyncEvent, AsyncMessage, Decoder, DataIn, Digests, FrameConfig, Header, LoginResponse, Pdu, ScsiResponse, RESERVED_TAG,
};
use lunlink_proto::text::TextKeys;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake target does with each SCSI command after login.
#[derive(Clone, Copy)]
enum Misbehave {
    /// Answers correctly (GOOD, data of the right size).
    Good,
    /// Data-In placed beyond the end of the initiator's buffer.
    DataBeyondBuffer,
    /// A response for a task the initiator never sent.
    UnknownTask,
    /// Bytes that are no PDU at all.
    Garbage,
    /// A data segment longer than our MaxRecvDataSegmentLength.
    HugeSegment,
    /// Answers, then sends an Async Message asking for a logout (AsyncEvent 1).
    AskLogout,
    /// Answers, then announces it drops the connection with Time2Wait 1 s (AsyncEvent 2),
    /// and does.
    DropWithTime2Wait,
    /// Answers every command well, each 2 ms after the one before (a slow disk).
    Slow,
}

async fn send(s: &mut TcpStream, pdu: Pdu) {
    let mut out = Vec::new();
    pdu.encode(&mut out, Digests::default());
    let _ = s.write_all(&out).await;
}

async fn recv(s: &mut TcpStream, dec: &mut Decoder) -> Option<Pdu> {
    let mut buf = [0u8; 65536];
    loop {
        if let Ok(Some(p)) = dec.next_pdu() {
            return Some(p);
        }
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        dec.feed(&buf[..n]);
    }
}

fn login_rsp(req: &lunlink_proto::pdu::LoginRequest, csg: Stage, nsg: Stage, stat_sn: u32, keys: &[(&str, &str)]) -> Pdu {
    let mut t = TextKeys::new();
    for (k, v) in keys {
        t.push(k, *v).unwrap();
    }
    let h = LoginResponse {
        transit: true,
        cont: false,
        csg,
        nsg,
        version_max: 0,
        version_active: 0,
        isid: req.isid,
        tsih: if nsg == Stage::FullFeature { 7 } else { 0 },
        itt: req.itt,
        stat_sn,
        exp_cmd_sn: req.cmd_sn,
        max_cmd_sn: req.cmd_sn.wrapping_add(31),
        status_class: 0,
        status_detail: 0,
    };
    Pdu::new(h, t.encode())
}

const OPERATIONAL: &[(&str, &str)] = &[
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("MaxRecvDataSegmentLength", "8192"),
    ("MaxBurstLength", "262144"),
    ("FirstBurstLength", "65536"),
    ("InitialR2T", "Yes"),
    ("ImmediateData", "Yes"),
    ("MaxOutstandingR2T", "1"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "0"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("ErrorRecoveryLevel", "0"),
    ("MaxConnections", "1"),
];

/// One connection of the fake target: a no-auth login, then commands handled as `how` says:
/// the first command of the connection only when `every_connection`, else the first command
/// of the first connection only; all others are answered well.
async fn serve(mut s: TcpStream, how: Misbehave, armed: Arc<AtomicBool>) {
    let Some((mut dec, mut stat_sn)) = accept_login(&mut s).await else { return };
    let mut first = true;
    loop {
        let Some(p) = recv(&mut s, &mut dec).await else { return };
        match &p.header {
            Header::ScsiCommand(c) => {
                let how = if matches!(how, Misbehave::Slow) || (first && armed.load(Ordering::SeqCst)) { how } else { Misbehave::Good };
                if matches!(how, Misbehave::Slow) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                first = false;
                stat_sn = stat_sn.wrapping_add(1);
                let rsp = |itt| ScsiResponse {
                    itt,
                    stat_sn,
                    exp_cmd_sn: c.cmd_sn.wrapping_add(1),
                    max_cmd_sn: c.cmd_sn.wrapping_add(32),
                    ..ScsiResponse::default()
                };
                match how {
                    Misbehave::Good | Misbehave::Slow | Misbehave::DataBeyondBuffer => {
                        if c.read && c.expected_data_len > 0 {
                            let offset = if matches!(how, Misbehave::DataBeyondBuffer) { c.expected_data_len } else { 0 };
                            let d = DataIn {
                                final_: true,
                                itt: c.itt,
                                ttt: RESERVED_TAG,
                                exp_cmd_sn: c.cmd_sn.wrapping_add(1),
                                max_cmd_sn: c.cmd_sn.wrapping_add(32),
                                buffer_offset: offset,
                                ..DataIn::default()
                            };
                            send(&mut s, Pdu::new(d, vec![0xab; c.expected_data_len as usize])).await;
                        }
                        send(&mut s, Pdu::new(rsp(c.itt), Vec::new())).await;
                    }
                    Misbehave::UnknownTask => send(&mut s, Pdu::new(rsp(c.itt ^ 0x5555_0000), Vec::new())).await,
                    Misbehave::AskLogout | Misbehave::DropWithTime2Wait => {
                        let d = DataIn {
                            final_: true,
                            has_status: true,
                            itt: c.itt,
                            ttt: RESERVED_TAG,
                            stat_sn,
                            exp_cmd_sn: c.cmd_sn.wrapping_add(1),
                            max_cmd_sn: c.cmd_sn.wrapping_add(32),
                            ..DataIn::default()
                        };
                        send(&mut s, Pdu::new(d, vec![0xab; c.expected_data_len as usize])).await;
                        let (event, p2) = if matches!(how, Misbehave::AskLogout) {
                            (AsyncEvent::LogoutRequested, 0)
                        } else {
                            (AsyncEvent::DroppingConnection, 1)
                        };
                        let a = AsyncMessage {
                            lun: 0,
                            stat_sn,
                            exp_cmd_sn: c.cmd_sn.wrapping_add(1),
                            max_cmd_sn: c.cmd_sn.wrapping_add(32),
                            event,
                            vcode: 0,
                            parameter1: 0,
                            parameter2: p2,
                            parameter3: 5,
                        };
                        send(&mut s, Pdu::new(a, Vec::new())).await;
                        if matches!(how, Misbehave::DropWithTime2Wait) {
                            return; // drops the connection
                        }
                    }
                    Misbehave::Garbage => {
                        let _ = s.write_all(&[0x7f; 64]).await;
                    }
                    Misbehave::HugeSegment => {
                        let d = DataIn { itt: c.itt, ttt: RESERVED_TAG, ..DataIn::default() };
                        send(&mut s, Pdu::new(d, vec![0; 300_000])).await;
                    }
                }
            }
            Header::NopOut(n) if n.itt != RESERVED_TAG => {
                let nop = lunlink_proto::pdu::NopIn { itt: n.itt, ttt: RESERVED_TAG, stat_sn, exp_cmd_sn: n.cmd_sn, max_cmd_sn: n.cmd_sn.wrapping_add(32), ..Default::default() };
                send(&mut s, Pdu::new(nop, Vec::new())).await;
            }
            Header::LogoutRequest(l) => {
                let r = lunlink_proto::pdu::LogoutResponse { itt: l.itt, stat_sn, exp_cmd_sn: l.cmd_sn, max_cmd_sn: l.cmd_sn.wrapping_add(32), ..Default::default() };
                send(&mut s, Pdu::new(r, Vec::new())).await;
                return;
            }
            _ => {}
        }
    }
}

/// The fake target's side of a no-auth login. Returns the decoder for full feature phase and
/// the StatSN used.
async fn accept_login(s: &mut TcpStream) -> Option<(Decoder, u32)> {
    let mut dec = Decoder::new(FrameConfig::default());
    let stat_sn = 1u32;
    loop {
        let p = recv(s, &mut dec).await?;
        let Header::LoginRequest(req) = &p.header else { return None };
        let (csg, nsg) = (req.csg, req.nsg);
        let keys: &[(&str, &str)] = if csg == Stage::Security { &[("AuthMethod", "None")] } else { OPERATIONAL };
        send(s, login_rsp(req, csg, nsg, stat_sn, keys)).await;
        if nsg == Stage::FullFeature {
            break;
        }
    }
    dec.set_config(FrameConfig { digests: Digests::default(), max_recv_data_segment: 1 << 20 });
    Some((dec, stat_sn))
}

async fn fake_target_with(how: Misbehave, every_connection: bool) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((s, _)) = l.accept().await {
            // Connection 1 is the login; its first command meets the fault.
            n += 1;
            let armed = Arc::new(AtomicBool::new(every_connection || n == 1));
            tokio::spawn(serve(s, how, armed));
        }
    });
    addr
}

async fn fake_target(how: Misbehave) -> String {
    fake_target_with(how, false).await
}

fn config(portal: &str) -> SessionConfig {
    SessionConfig {
        initiator_name: "iqn.2024-01.org.lunlink:fake".into(),
        initiator_alias: None,
        target_name: "iqn.2024-01.test:fake".into(),
        portal: portal.parse().unwrap(),
        auth: Auth::None,
        offer: Offer::default(),
        isid: [0x80, 1, 2, 3, 4, 5],
        queue_depth: 8,
        timeouts: Timeouts { login: Duration::from_secs(3), replacement: Some(Duration::from_secs(20)), ..Timeouts::default() },
    }
}

async fn read_once(s: &Session) -> Result<lunlink_engine::Completion, lunlink_engine::CommandError> {
    let cdb = [0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0];
    tokio::time::timeout(Duration::from_secs(30), s.execute(lunlink_proto::lun::encode(1), &cdb, DataBuf::In(vec![0u8; 4096])))
        .await
        .expect("command hung")
        .1
}

async fn wait_logged_in(s: &Session) {
    let start = std::time::Instant::now();
    while s.link_state() != LinkState::LoggedIn {
        assert!(start.elapsed() < Duration::from_secs(30), "session did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_fake_target_works() {
    let portal = fake_target(Misbehave::Good).await;
    let s = Session::login(config(&portal)).await.unwrap();
    assert_eq!(s.info().tsih, 7);
    assert!(read_once(&s).await.unwrap().is_good());
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_beyond_the_buffer_fails_that_command_only() {
    let portal = fake_target(Misbehave::DataBeyondBuffer).await;
    let s = Session::login(config(&portal)).await.unwrap();
    let e = read_once(&s).await.unwrap_err();
    assert!(e.to_string().contains("exceeds"), "{e}");
    assert_eq!(s.link_state(), LinkState::LoggedIn);
    assert!(read_once(&s).await.unwrap().is_good(), "the session goes on");
    s.logout().await.unwrap();
}

async fn connection_level_fault(how: Misbehave) {
    let portal = fake_target(how).await;
    let s = Session::login(config(&portal)).await.unwrap();
    // The first command meets the fault: the connection is dropped, the session reinstated,
    // and the command sent again on the new connection, where it succeeds.
    let r = read_once(&s).await;
    assert!(r.is_ok(), "command after recovery: {r:?}");
    wait_logged_in(&s).await;
    assert!(read_once(&s).await.unwrap().is_good());
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_for_an_unknown_task_drops_and_recovers() {
    connection_level_fault(Misbehave::UnknownTask).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_drop_and_recover() {
    connection_level_fault(Misbehave::Garbage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_data_segment_drops_and_recovers() {
    connection_level_fault(Misbehave::HugeSegment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_login_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let portal = l.local_addr().unwrap().to_string();
    // Accepts and never answers.
    let _keep = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            conns.push(s);
        }
    });
    let start = std::time::Instant::now();
    let e = Session::login(config(&portal)).await.unwrap_err();
    assert!(matches!(e, EngineError::Timeout(..)), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_closing_during_login_is_a_clear_error() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let portal = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut b = [0u8; 48];
            let _ = s.read_exact(&mut b).await;
            drop(s);
        }
    });
    let e = Session::login(config(&portal)).await.unwrap_err();
    assert!(e.to_string().contains("closed") || e.to_string().contains("reset"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_always_kills_the_connection_fails_instead_of_looping() {
    let portal = fake_target_with(Misbehave::Garbage, true).await;
    let s = Session::login(config(&portal)).await.unwrap();
    let e = read_once(&s).await.unwrap_err();
    assert!(e.to_string().contains("gave up"), "{e}");
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_request_from_the_target_leads_to_logout_and_relogin() {
    let portal = fake_target(Misbehave::AskLogout).await;
    let s = Session::login(config(&portal)).await.unwrap();
    let mut events = s.subscribe();
    assert!(read_once(&s).await.unwrap().is_good());
    // The engine logs out at once and logs in again.
    let saw = tokio::time::timeout(Duration::from_secs(30), async {
        let mut asked = false;
        loop {
            match events.recv().await.unwrap() {
                lunlink_engine::SessionEvent::TargetRequestedLogout => asked = true,
                lunlink_engine::SessionEvent::State(LinkState::LoggedIn) if asked => return true,
                _ => {}
            }
        }
    })
    .await
    .expect("no relogin after the target's logout request");
    assert!(saw);
    assert!(read_once(&s).await.unwrap().is_good(), "IO works on the new login");
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_connection_honours_the_targets_time2wait() {
    let portal = fake_target(Misbehave::DropWithTime2Wait).await;
    let s = Session::login(config(&portal)).await.unwrap();
    assert!(read_once(&s).await.unwrap().is_good());
    let start = std::time::Instant::now();
    while s.link_state() == LinkState::LoggedIn {
        assert!(start.elapsed() < Duration::from_secs(10), "the drop was not noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lost = std::time::Instant::now();
    wait_logged_in(&s).await;
    let waited = lost.elapsed();
    // Time2Wait 1 s from the Async Message, not the negotiated DefaultTime2Wait of 2 s.
    assert!(waited >= Duration::from_millis(900), "relogin after {waited:?}, before Time2Wait");
    assert!(waited < Duration::from_millis(1900), "relogin after {waited:?}: DefaultTime2Wait used instead");
    assert!(read_once(&s).await.unwrap().is_good());
    s.logout().await.unwrap();
}

/// A LOGICAL UNIT RESET ends the tasks the target had. The fake target never answers
/// command A (LBA 1), holds B (LBA 2) and refuses ABORT TASK, so that the engine resets the
/// LU; it answers the reset only 500 ms after it came, and the test submits command C (LBA 3)
/// as soon as the reset has arrived. C must wait for the reset's answer (a target may end a
/// command that comes behind a reset too) and go out once; A must fail with a timeout; B must
/// be sent again after the reset and then be answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lu_reset_holds_new_commands_and_resends_the_earlier_ones() {
    use lunlink_proto::pdu::{TaskMgmtFunction, TaskMgmtResponse};
    const RESET_ANSWERED: u8 = 0xff;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let portal = l.local_addr().unwrap().to_string();
    // The LBA of every SCSI command the target saw, and RESET_ANSWERED, in order.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let (reset_tx, reset_rx) = tokio::sync::oneshot::channel::<()>();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let Some((mut dec, mut stat_sn)) = accept_login(&mut s).await else { return };
        let mut reset_tx = Some(reset_tx);
        let mut held_reset: Option<(u32, tokio::time::Instant)> = None;
        let good = |itt: u32, cmd_sn: u32, stat_sn: u32, len: u32| {
            let d = DataIn {
                final_: true,
                has_status: true,
                itt,
                ttt: RESERVED_TAG,
                stat_sn,
                exp_cmd_sn: cmd_sn.wrapping_add(1),
                max_cmd_sn: cmd_sn.wrapping_add(32),
                ..DataIn::default()
            };
            Pdu::new(d, vec![0xab; len as usize])
        };
        loop {
            let p = match held_reset {
                Some((itt, at)) => match tokio::time::timeout_at(at, recv(&mut s, &mut dec)).await {
                    Ok(Some(p)) => p,
                    Ok(None) => return,
                    Err(_) => {
                        held_reset = None;
                        stat_sn = stat_sn.wrapping_add(1);
                        let r = TaskMgmtResponse { response: 0, itt, stat_sn, exp_cmd_sn: 0, max_cmd_sn: 64 };
                        send(&mut s, Pdu::new(r, Vec::new())).await;
                        seen2.lock().unwrap().push(RESET_ANSWERED);
                        continue;
                    }
                },
                None => match recv(&mut s, &mut dec).await {
                    Some(p) => p,
                    None => return,
                },
            };
            match &p.header {
                Header::ScsiCommand(c) => {
                    let lba = c.cdb[5];
                    let first = {
                        let mut seen = seen2.lock().unwrap();
                        seen.push(lba);
                        seen.iter().filter(|&&x| x == lba).count() == 1
                    };
                    if !(first && (lba == 1 || lba == 2)) {
                        // A and B are left unanswered the first time; everything else is good.
                        stat_sn = stat_sn.wrapping_add(1);
                        send(&mut s, good(c.itt, c.cmd_sn, stat_sn, c.expected_data_len)).await;
                    }
                }
                Header::TaskMgmtRequest(t) => match t.function {
                    TaskMgmtFunction::AbortTask => {
                        stat_sn = stat_sn.wrapping_add(1);
                        let r = TaskMgmtResponse { response: 5, itt: t.itt, stat_sn, exp_cmd_sn: t.cmd_sn, max_cmd_sn: t.cmd_sn.wrapping_add(32) };
                        send(&mut s, Pdu::new(r, Vec::new())).await;
                    }
                    TaskMgmtFunction::LogicalUnitReset => {
                        held_reset = Some((t.itt, tokio::time::Instant::now() + Duration::from_millis(500)));
                        if let Some(tx) = reset_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                },
                Header::LogoutRequest(lr) => {
                    let r = lunlink_proto::pdu::LogoutResponse { itt: lr.itt, stat_sn, exp_cmd_sn: lr.cmd_sn, max_cmd_sn: lr.cmd_sn.wrapping_add(32), ..Default::default() };
                    send(&mut s, Pdu::new(r, Vec::new())).await;
                    return;
                }
                _ => {}
            }
        }
    });
    let mut cfg = config(&portal);
    cfg.timeouts.command = Some(Duration::from_secs(1));
    cfg.timeouts.noop_interval = None;
    let s = Session::login(cfg).await.unwrap();
    let read = |lba: u8| {
        let s = s.clone();
        tokio::spawn(async move {
            let cdb = [0x28, 0, 0, 0, 0, lba, 0, 0, 8, 0];
            s.execute(lunlink_proto::lun::encode(1), &cdb, DataBuf::In(vec![0u8; 4096])).await.1
        })
    };
    let a = read(1);
    let sent = |lba: u8| seen.lock().unwrap().contains(&lba);
    let start = std::time::Instant::now();
    while !sent(1) {
        assert!(start.elapsed() < Duration::from_secs(10), "A never reached the target");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let b = read(2); // A is the older: it is the one escalated
    tokio::time::timeout(Duration::from_secs(30), reset_rx).await.expect("no LU RESET within 30 s").unwrap();
    let c = read(3);
    let within = |t| tokio::time::timeout(Duration::from_secs(30), t);
    let ra = within(a).await.expect("A hung").unwrap();
    assert!(matches!(ra, Err(lunlink_engine::CommandError::Timeout)), "A: {ra:?}");
    assert!(within(b).await.expect("B hung").unwrap().unwrap().is_good(), "B is answered when sent again");
    assert!(within(c).await.expect("C hung").unwrap().unwrap().is_good());
    s.logout().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let pos = |lba: u8| seen.iter().enumerate().filter(|(_, &x)| x == lba).map(|(i, _)| i).collect::<Vec<_>>();
    let reset = pos(RESET_ANSWERED)[0];
    assert_eq!(pos(1).len(), 1, "A failed, not resent: {seen:?}");
    let b_at = pos(2);
    assert!(b_at.len() == 2 && b_at[1] > reset, "B is sent again after the reset: {seen:?}");
    let c_at = pos(3);
    assert!(c_at.len() == 1 && c_at[0] > reset, "C waits for the reset's answer and goes once: {seen:?}");
}

/// A target that answers one command every 2 ms with 32 outstanding: receive coalescing
/// waits for half of them, its 1-2 ms fallback fires first every time, and each fallback
/// held new commands back. After three fallbacks in a row the engine leaves coalescing off
/// for 50 ms. Measured over the 1 s below: 15 fallbacks for 349 IOs, against 70-79 for 342
/// without the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_turns_receive_coalescing_off() {
    let portal = fake_target(Misbehave::Slow).await;
    let mut cfg = config(&portal);
    cfg.queue_depth = 32;
    let s = Session::login(cfg).await.unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(1);
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut n = 0u32;
                while std::time::Instant::now() < end {
                    assert!(read_once(&s).await.unwrap().is_good());
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut ios = 0;
    for w in workers {
        ios += w.await.unwrap();
    }
    let fallbacks = s.stats().coalesce_fallbacks.load(Ordering::Relaxed);
    eprintln!("{ios} IOs, {fallbacks} coalescing fallbacks");
    assert!(ios > 32, "the slow target answered only {ios} IOs");
    // With the pause fallbacks are bounded by time (at most 3 per 50 ms), not by how fast the
    // target answers, so a loaded machine does not change the bound.
    assert!(fallbacks <= 40, "{fallbacks} coalescing fallbacks for {ios} IOs in 1 s: coalescing stayed on for a slow target");
    s.logout().await.unwrap();
}

