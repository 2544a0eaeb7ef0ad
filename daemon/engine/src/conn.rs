//! The connection task: owns the TCP stream of a session in full feature phase and moves PDUs.
//!
//! One task per connection does readiness-based non-blocking I/O: every turn of its loop takes
//! newly submitted commands, queues all PDUs that may go out (so a burst of commands is a
//! single sendmsg), writes what the socket takes, then reads what the socket has and handles
//! each whole PDU in place. Data is copied once between the socket and the caller's buffer,
//! by the kernel: large Data-In payloads are received straight into the caller's buffer
//! (small ones are copied from the receive buffer), and write payloads of 1 KiB or more are
//! sent from the caller's buffer (`sendq`). With many commands outstanding the socket's
//! receive low-water mark batches wakeups (`Conn::update_lowat`).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lunlink_proto::negotiate::SessionParams;
use lunlink_proto::pdu::{
    self, data_trailer, encode_pdu, encode_pdu_head, Opcode, parse_frame, AsyncEvent, DataIn, DataOut, Digests, FrameConfig, FrameStatus, Header,
    LogoutReason, LogoutRequest, NopIn, NopOut, R2t, Reject, ScsiCommand, ScsiResponse, TaskAttr, TaskMgmtFunction,
    TaskMgmtRequest, TaskMgmtResponse, RESERVED_TAG,
};
use lunlink_proto::serial;
use lunlink_proto::window::CmdWindow;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::error::CommandError;
use crate::slots::{Dir, Slots, State, SENSE_MAX};
use crate::sendq::{SendQueue, EXT_MIN};
use crate::session::LinkState;
use crate::SessionEvent;

/// Stop building PDUs when this much is waiting for the socket: bounds memory with deep queues.
pub(crate) const SEND_HIGH_WATER: usize = 1 << 20;
/// Low 16 bits of ITTs for the engine's own PDUs; slot ITTs use indices below the queue depth.
const PING_TAG: u32 = 0xfff0;
const LOGOUT_TAG: u32 = 0xfff1;
const TMF_TAG: u32 = 0xfff2;
/// How often a command is sent again after connection losses before it fails.
pub(crate) const MAX_REISSUES: u8 = 4;
/// How often outstanding commands are checked against the command timeout.
const TIMEOUT_TICK: Duration = Duration::from_secs(1);

/// Counters shown on the Session object.
#[derive(Debug, Default)]
pub struct Stats {
    pub commands: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Commands that failed to their caller (after retries); counted by the typed
    /// operations (`ops`), which own the retry decision.
    pub errors: AtomicU64,
    /// Commands sent again after a retryable status (unit attention, BUSY, ...).
    pub retries: AtomicU64,
    /// UNIT ATTENTION conditions reported by the target (news, not failures).
    pub unit_attentions: AtomicU64,
    /// Of those and of NOT READY answers, the ones that say ALUA access states may have
    /// changed (`Sense::is_alua_news`): the multipath layer reads the states again when this
    /// moves.
    pub alua_news: AtomicU64,
    /// Data-In payload bytes the kernel placed straight into callers' buffers.
    pub bytes_read_direct: AtomicU64,
    /// Times a raised receive low-water mark was dropped by its fallback timer: the target
    /// sent less than the engine expected (errors, short reads) or paused.
    pub coalesce_fallbacks: AtomicU64,
}

/// State shared by callers and the connection task.
pub(crate) struct Shared {
    pub slots: Slots,
    /// Slots filled by callers, waiting for the connection task.
    pub submit: Mutex<VecDeque<u16>>,
    pub notify: Notify,
    /// Set (under the `submit` lock) once no new command is accepted.
    pub closed: AtomicBool,
    /// The connection state (a `LinkState` as u8), changed under the `submit` lock.
    link: AtomicU8,
    pub stats: Stats,
}

impl Shared {
    pub fn new(depth: u16) -> Self {
        Self {
            slots: Slots::new(depth),
            submit: Mutex::new(VecDeque::with_capacity(usize::from(depth))),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            link: AtomicU8::new(LinkState::LoggedIn as u8),
            stats: Stats::default(),
        }
    }

    pub fn link(&self) -> LinkState {
        match self.link.load(Ordering::Acquire) {
            0 => LinkState::LoggedIn,
            1 => LinkState::Reconnecting,
            _ => LinkState::Down,
        }
    }

    /// Refuses new commands from now on; those already accepted go on.
    pub fn refuse_new(&self) {
        let _q = self.submit.lock().unwrap_or_else(|e| e.into_inner());
        self.closed.store(true, Ordering::SeqCst);
    }

    pub fn set_link(&self, st: LinkState) {
        let _q = self.submit.lock().unwrap_or_else(|e| e.into_inner());
        self.link.store(st as u8, Ordering::Release);
    }

    /// After a connection loss: every command sent or waiting goes back into the submit queue,
    /// to be sent again on the next connection. Abandoned ones are dropped, and a command that
    /// was already sent [`MAX_REISSUES`] times fails instead: one that brings the connection
    /// down every time must not loop forever.
    pub fn requeue_outstanding(&self, reason: &Arc<str>) {
        let mut q = self.submit.lock().unwrap_or_else(|e| e.into_inner());
        q.clear();
        for idx in 0..u16::try_from(self.slots.len()).unwrap_or(u16::MAX) {
            let release = {
                let mut s = self.slots.lock(idx);
                match s.state {
                    State::Queued | State::Sent if s.abandoned => s.finish(Some(CommandError::SessionClosed)),
                    State::Sent if s.reissues >= MAX_REISSUES => {
                        s.finish(Some(CommandError::ConnectionLost(
                            format!("gave up after the connection failed {} times during this command: {reason}", MAX_REISSUES + 1).into(),
                        )))
                    }
                    State::Queued | State::Sent => {
                        if s.state == State::Sent {
                            s.reissues += 1;
                        }
                        s.state = State::Queued;
                        q.push_back(idx);
                        false
                    }
                    State::Free | State::Done => false,
                }
            };
            if release {
                self.slots.release(idx);
            }
        }
    }

    /// The replacement timeout expired: fail every waiting command; new ones fail at once
    /// until the link is back.
    pub fn expire(&self, err: &CommandError) {
        let queued: Vec<u16> = {
            let mut q = self.submit.lock().unwrap_or_else(|e| e.into_inner());
            self.link.store(LinkState::Down as u8, Ordering::Release);
            q.drain(..).collect()
        };
        for idx in queued {
            let release = {
                let mut s = self.slots.lock(idx);
                s.state == State::Queued && s.finish(Some(err.clone()))
            };
            if release {
                self.slots.release(idx);
            }
        }
    }

    /// Stops accepting commands and fails every outstanding one with `err`.
    pub fn close(&self, err: &CommandError) {
        let queued: Vec<u16> = {
            let mut q = self.submit.lock().unwrap_or_else(|e| e.into_inner());
            self.closed.store(true, Ordering::SeqCst);
            q.drain(..).collect()
        };
        drop(queued);
        for idx in 0..u16::try_from(self.slots.len()).unwrap_or(u16::MAX) {
            let release = {
                let mut s = self.slots.lock(idx);
                matches!(s.state, State::Queued | State::Sent) && s.finish(Some(err.clone()))
            };
            if release {
                self.slots.release(idx);
            }
        }
    }
}

/// Requests to the connection task that are not SCSI commands.
pub(crate) enum Control {
    Logout(oneshot::Sender<Result<(), String>>),
}

/// Why the connection task stopped.
#[derive(Debug, Clone)]
pub enum ConnExit {
    /// Clean logout.
    LoggedOut,
    /// The target asked for a logout (Async Message) and we performed it.
    TargetRequestedLogout,
    /// The connection failed; `time2wait` is the target's wish (Async Message) before a
    /// new login, if it said one.
    Failed { reason: Arc<str>, time2wait: Option<Duration> },
}

impl ConnExit {
    fn failed(reason: Arc<str>) -> Self {
        ConnExit::Failed { reason, time2wait: None }
    }
}

/// Per-slot transfer bookkeeping, owned by the connection task alone.
#[derive(Debug, Clone)]
struct Xfer {
    itt: u32,
    len: u32,
    moved: u32,
    /// Bytes the target still owes for this command if it succeeds: its Data-In payload not
    /// yet moved plus one 48-byte header for the status (see `ConnState::rx_owed`).
    owed: u32,
    /// How the command counts for receive coalescing.
    rx: RxClass,
    cmd_sn: u32,
    lun: u64,
    started: Instant,
    error: Option<CommandError>,
}

/// How a command counts for receive coalescing (see `Conn::update_lowat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxClass {
    /// Not active.
    None,
    /// Counted in `rx_owed` (and in `big_reads` when `big`).
    Owing { big: bool },
    /// A write with data still to be asked for by R2T.
    AwaitsR2t,
}

impl Default for Xfer {
    fn default() -> Self {
        Self { itt: RESERVED_TAG, len: 0, moved: 0, owed: 0, rx: RxClass::None, cmd_sn: 0, lun: 0, started: Instant::now(), error: None }
    }
}

/// A task management function in progress because a command outlived the command timeout
/// (the kernel initiator's escalation: ABORT TASK, then LOGICAL UNIT RESET, then drop the
/// connection and reinstate the session).
#[derive(Debug, Clone, Copy)]
enum Escalation {
    Abort { idx: u16, task_itt: u32, lun: u64, tmf_itt: u32, deadline: Instant },
    /// `cmd_sn`: the reset's CmdSN; commands from it on were sent after the reset.
    LuReset { idx: u16, task_itt: u32, lun: u64, tmf_itt: u32, cmd_sn: u32, deadline: Instant },
}

/// Data-Out PDUs still to build: the rest of an unsolicited burst or an R2T's sequence.
#[derive(Debug, Clone, Copy)]
struct DataOutWork {
    idx: u16,
    itt: u32,
    ttt: u32,
    lun: u64,
    offset: u32,
    end: u32,
    data_sn: u32,
}

pub(crate) struct Timeouts {
    pub noop_interval: Option<Duration>,
    pub noop_timeout: Duration,
    /// A command older than this starts the escalation; None: commands may take forever.
    pub command: Option<Duration>,
    /// How long each task management function may take.
    pub tmf: Duration,
}

pub(crate) struct Conn {
    stream: TcpStream,
    shared: Arc<Shared>,
    events: broadcast::Sender<SessionEvent>,
    params: SessionParams,
    frame_cfg: FrameConfig,
    digests: Digests,
    st: ConnState,
    recv: Vec<u8>,
    rstart: usize,
    rend: usize,
    send: SendQueue,
    timeouts: Timeouts,
    direct: Option<DirectRx>,
    /// The last Data-In PDUs were large (received directly): read headers on their own.
    large_rx: bool,
    /// The socket's SO_RCVLOWAT as last set (see `update_lowat`).
    lowat: usize,
    /// When the low-water mark last went above 1, or the fallback timer last fired: the
    /// fallback fires `COALESCE_WAIT` after this or after the last read, whichever is later.
    coalesce_check: Instant,
    /// The fallback fired: the mark stays at 1 until a read after `coalesce_resume`.
    coalesce_off: bool,
    coalesce_resume: Instant,
    /// Fallbacks since a raised mark was last met.
    fallback_streak: u32,
    /// Bytes read from the socket on this connection.
    rx_total: u64,
}

struct ConnState {
    window: CmdWindow,
    exp_stat_sn: u32,
    pending: VecDeque<u16>,
    data_out: VecDeque<DataOutWork>,
    xfer: Box<[Xfer]>,
    last_rx: Instant,
    ping: Option<(u32, Instant)>,
    ping_seq: u16,
    logout: Option<oneshot::Sender<Result<(), String>>>,
    logout_reason: Option<ConnExit>,
    /// Commands sent and not yet completed.
    active: usize,
    /// Sum of `Xfer::owed` over the active commands: what the receive low-water mark is
    /// derived from.
    rx_owed: u64,
    /// Active commands counted in `rx_owed`.
    owing: usize,
    /// Active reads of at least `DIRECT_MIN` bytes.
    big_reads: usize,
    /// Active writes with data the target has still to ask for (R2T): while there are any,
    /// the task must see every R2T at once, so the low-water mark stays at 1.
    awaiting_r2t: usize,
    escalation: Option<Escalation>,
    tmf_seq: u16,
    last_tick: Instant,
    /// Time2Wait the target asked for when it announced dropping the connection.
    drop_time2wait: Option<u16>,
    /// Since when commands wait for a CmdSN window the target keeps closed (§4.2.2.1).
    window_closed_since: Option<Instant>,
    /// A Task Management Function Response waiting to be acted on by the connection.
    tmf_response: Option<TaskMgmtResponse>,
    /// A Logout Request went out: nothing else may follow it.
    logging_out: bool,
}

enum Wake {
    Readable,
    Writable,
    Submitted,
    Control(Option<Control>),
    Timer,
}

impl Conn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        stream: TcpStream,
        shared: Arc<Shared>,
        events: broadcast::Sender<SessionEvent>,
        params: SessionParams,
        cmd_sn: u32,
        exp_cmd_sn: u32,
        max_cmd_sn: u32,
        exp_stat_sn: u32,
        timeouts: Timeouts,
    ) -> Self {
        let frame_cfg = params.frame_config();
        let digests = frame_cfg.digests;
        let depth = shared.slots.len();
        // Room for the largest PDU we accept, twice, so a partial PDU never needs a resize.
        let max_pdu = 48 + 4 * 255 + 8 + frame_cfg.max_recv_data_segment as usize + 4;
        let recv_cap = (2 * max_pdu).max(256 * 1024);
        Self {
            stream,
            shared,
            events,
            params,
            frame_cfg,
            digests,
            st: ConnState {
                window: CmdWindow::new(cmd_sn, exp_cmd_sn, max_cmd_sn),
                exp_stat_sn,
                pending: VecDeque::with_capacity(depth),
                data_out: VecDeque::with_capacity(depth * 2),
                xfer: vec![Xfer::default(); depth].into_boxed_slice(),
                last_rx: Instant::now(),
                ping: None,
                ping_seq: 0,
                logout: None,
                logout_reason: None,
                active: 0,
                rx_owed: 0,
                owing: 0,
                big_reads: 0,
                awaiting_r2t: 0,
                escalation: None,
                tmf_seq: 0,
                last_tick: Instant::now(),
                drop_time2wait: None,
                window_closed_since: None,
                tmf_response: None,
                logging_out: false,
            },
            recv: vec![0; recv_cap],
            rstart: 0,
            rend: 0,
            send: SendQueue::new(2 * max_pdu, depth),
            timeouts,
            direct: None,
            large_rx: false,
            lowat: 1,
            coalesce_check: Instant::now(),
            coalesce_off: false,
            coalesce_resume: Instant::now(),
            fallback_streak: 0,
            rx_total: 0,
        }
    }

    /// Puts bytes that arrived before the connection task took over at the front of its buffer.
    pub fn seed(&mut self, bytes: &[u8]) {
        self.recv[..bytes.len()].copy_from_slice(bytes);
        self.rend = bytes.len();
    }

    /// Runs until logout or failure. The control channel stays with the caller, who keeps
    /// serving it while the session reconnects.
    pub async fn run(mut self, control: &mut mpsc::Receiver<Control>) -> ConnExit {
        let mut control_open = true;
        // One timer for the connection's life, moved rather than rebuilt every turn: the loop
        // turns once per burst of I/O and must stay cheap.
        let far = || Instant::now() + Duration::from_secs(86400 * 365);
        let mut armed = self.next_deadline().unwrap_or_else(far);
        let sleep = tokio::time::sleep_until(armed);
        tokio::pin!(sleep);
        // The mark the last wait stood on, and the bytes read before it.
        let mut waited = (1usize, 0u64);
        loop {
            if let Err(e) = self.turn() {
                return self.exit_after(e);
            }
            if waited.0 > 1 && self.rx_total - waited.1 >= waited.0 as u64 {
                self.fallback_streak = 0; // the raised mark was met
            }
            if let Some(exit) = self.st.logout_reason.take() {
                return exit;
            }
            let want_write = !self.send.is_empty();
            self.update_lowat();
            waited = (self.lowat, self.rx_total);
            // While a raised receive mark stands over 16 or more commands the target works on,
            // new commands wait for the wakeup it brings (or its fallback timer) and go out
            // together, instead of waking the task one by one: the target has plenty queued
            // meanwhile. Callers on other threads (ublk queues) then cost no wakeup either.
            // lunlink-bench on two runtime threads, 4K QD32: 11.3 -> 6.7 us of CPU per IO and
            // 64k -> 75k IOPS; QD128: 9.0 -> 3.3 us; one thread: unchanged.
            let defer_submissions = self.lowat > 1 && self.st.owing >= COALESCE_MIN_ACTIVE && !self.issuable();
            // Only ever move the timer earlier: the NOP deadline follows every read, and a
            // timer that fires early costs one look at the clock in on_timer.
            let deadline = self.next_deadline().unwrap_or_else(far);
            if deadline < armed {
                armed = deadline;
                sleep.as_mut().reset(deadline);
            }
            // Control and timers first: they are rare, and under sustained I/O the socket
            // and submissions would otherwise always win and starve them.
            let wake = tokio::select! {
                biased;
                c = control.recv(), if control_open => Wake::Control(c),
                () = &mut sleep => Wake::Timer,
                r = self.stream.readable() => match r { Ok(()) => Wake::Readable, Err(e) => return ConnExit::failed(e.to_string().into()) },
                w = self.stream.writable(), if want_write => match w { Ok(()) => Wake::Writable, Err(e) => return ConnExit::failed(e.to_string().into()) },
                () = self.shared.notify.notified(), if !defer_submissions => Wake::Submitted,
            };
            match wake {
                Wake::Writable => self.send.writable(),
                Wake::Readable | Wake::Submitted => {}
                Wake::Control(None) => {
                    // Every handle of the session is gone: log out.
                    control_open = false;
                    let (tx, _rx) = oneshot::channel();
                    self.start_logout(tx);
                }
                Wake::Control(Some(Control::Logout(tx))) => self.start_logout(tx),
                Wake::Timer => {
                    if let Err(e) = self.on_timer() {
                        return self.exit_after(e);
                    }
                    let next = self.next_deadline().unwrap_or_else(far);
                    armed = next;
                    sleep.as_mut().reset(next);
                }
            }
        }
    }

    /// The exit for a failed turn: a clean logout if one just completed (targets close the
    /// connection right after the Logout Response), else a failure.
    fn exit_after(&mut self, e: Arc<str>) -> ConnExit {
        if let Some(exit) = self.st.logout_reason.take() {
            return exit;
        }
        // The connection broke while our logout was under way: the session is over all the
        // same; do not reinstate it behind the caller's back.
        if let Some(tx) = self.st.logout.take() {
            let _ = tx.send(Ok(()));
            return ConnExit::LoggedOut;
        }
        let time2wait = self.st.drop_time2wait.map(|s| Duration::from_secs(u64::from(s)));
        ConnExit::Failed { reason: e, time2wait }
    }

    /// One turn: issue what may be issued, write, read and handle what arrived.
    fn turn(&mut self) -> Result<(), Arc<str>> {
        // Several rounds, because handling input (R2T, window updates) can make more output.
        for _ in 0..8 {
            self.take_submissions();
            self.issue();
            self.flush().map_err(|e| Arc::from(format!("write failed: {e}")))?;
            if !self.read_and_handle()? {
                // Nothing arrived; go round again only if `issue` stopped for room that the
                // flush has made since: nothing else would wake the task for that work.
                if self.send.is_empty() && self.issuable() {
                    continue;
                }
                return Ok(());
            }
        }
        // Out of rounds with input just handled: make sure what it unblocked is not left
        // waiting for an unrelated wakeup.
        if self.issuable() {
            self.shared.notify.notify_one();
        }
        Ok(())
    }

    /// Whether `issue` could build something now.
    fn issuable(&self) -> bool {
        let st = &self.st;
        !st.logging_out && (!st.data_out.is_empty() || (!st.pending.is_empty() && st.may_issue_new()))
    }

    fn take_submissions(&mut self) {
        let mut q = self.shared.submit.lock().unwrap_or_else(|e| e.into_inner());
        self.st.pending.extend(q.drain(..));
    }

    fn send_room(&self) -> bool {
        self.send.pending() < SEND_HIGH_WATER
    }

    /// Builds Data-Out sequences first (they unblock commands the target already holds), then
    /// new commands while the CmdSN window and the send buffer allow.
    fn issue(&mut self) {
        // No new requests on a connection being logged out (RFC 7143 §11.14).
        if self.st.logging_out {
            return;
        }
        while self.send_room() {
            let Some(mut w) = self.st.data_out.pop_front() else { break };
            self.build_data_out(&mut w);
            if w.offset < w.end {
                self.st.data_out.push_front(w);
            }
        }
        while self.send_room() && self.st.may_issue_new() {
            let Some(idx) = self.st.pending.pop_front() else { break };
            self.issue_command(idx);
        }
        // A target that never opens the window would hold commands for ever: the timer
        // gives it the command timeout (see `on_timer`).
        let stalled = !self.st.pending.is_empty() && !self.st.window.is_open();
        if stalled != self.st.window_closed_since.is_some() {
            self.st.window_closed_since = stalled.then(Instant::now);
        }
    }

    fn issue_command(&mut self, idx: u16) {
        let slots = &self.shared.slots;
        let mut s = slots.lock(idx);
        if s.state != State::Queued {
            return; // settled meanwhile (session closing)
        }
        if s.abandoned {
            drop(s);
            slots.release(idx);
            return;
        }
        let itt = s.itt(idx);
        let len = u32::try_from(s.buf.len).unwrap_or(u32::MAX);
        let cmd_sn = self.st.window.take();
        let x = &mut self.st.xfer[usize::from(idx)];
        *x = Xfer { itt, len, moved: 0, owed: 0, rx: RxClass::None, cmd_sn, lun: s.lun, started: Instant::now(), error: None };
        let mut hdr = ScsiCommand {
            immediate: false,
            final_: true,
            read: s.dir == Dir::Read,
            write: s.dir == Dir::Write,
            attr: TaskAttr::Simple,
            lun: s.lun,
            itt,
            expected_data_len: len,
            cmd_sn,
            exp_stat_sn: self.st.exp_stat_sn,
            cdb: s.cdb,
        };
        let mut immediate = 0u32;
        if s.dir == Dir::Write {
            let p = &self.params;
            let burst = p.first_burst_length.min(len);
            if p.immediate_data {
                immediate = burst.min(p.max_xmit_data_segment_length);
            }
            let unsolicited = if p.initial_r2t { immediate } else { burst };
            if unsolicited == len {
                // All its data goes out unsolicited: only the status is still to come.
                self.st.owe(idx, 48);
            } else {
                self.st.xfer[usize::from(idx)].rx = RxClass::AwaitsR2t;
                self.st.awaiting_r2t += 1;
            }
            if unsolicited > immediate {
                hdr.final_ = false;
                self.st.data_out.push_front(DataOutWork {
                    idx,
                    itt,
                    ttt: RESERVED_TAG,
                    lun: s.lun,
                    offset: immediate,
                    end: unsolicited,
                    data_sn: 0,
                });
            }
        }
        if s.dir != Dir::Write {
            self.st.owe(idx, 48 + if s.dir == Dir::Read { len.min(u32::MAX - 48) } else { 0 });
        }
        let data: &[u8] = if immediate == 0 {
            &[]
        } else {
            // SAFETY: the slot is locked and not abandoned, so the caller's buffer is alive, and
            // `immediate` is at most its length.
            unsafe { std::slice::from_raw_parts(s.buf.ptr, immediate as usize) }
        };
        push_pdu(&mut self.send, &hdr, data, self.digests, idx, itt, 0);
        s.state = State::Sent;
        drop(s);
        self.st.active += 1;
        self.shared.stats.commands.fetch_add(1, Ordering::Relaxed);
        // Unsolicited Data-Out must follow its command: build it now, ahead of other work.
        if let Some(mut w) = self.st.data_out.front().copied().filter(|w| w.idx == idx && w.ttt == RESERVED_TAG) {
            self.st.data_out.pop_front();
            self.build_data_out(&mut w);
            if w.offset < w.end {
                self.st.data_out.push_front(w);
            }
        }
    }

    /// Builds Data-Out PDUs of one sequence until it is done or the send buffer is full.
    fn build_data_out(&mut self, w: &mut DataOutWork) {
        let slots = &self.shared.slots;
        let s = slots.lock(w.idx);
        if s.itt(w.idx) != w.itt || s.state != State::Sent {
            w.offset = w.end; // the command is gone; drop the work
            return;
        }
        let max = self.params.max_xmit_data_segment_length.max(512);
        while w.offset < w.end && self.send.pending() < SEND_HIGH_WATER {
            let n = (w.end - w.offset).min(max);
            let hdr = DataOut {
                final_: w.offset + n == w.end,
                lun: w.lun,
                itt: w.itt,
                ttt: w.ttt,
                exp_stat_sn: self.st.exp_stat_sn,
                data_sn: w.data_sn,
                buffer_offset: w.offset,
            };
            // SAFETY: the slot is locked and Sent: `buf` is the caller's live buffer, or the
            // slot's own copy of it when the caller gave up (see SlotGuard); offset..end was
            // checked against its length when the work was queued.
            let data = unsafe { std::slice::from_raw_parts(s.buf.ptr.add(w.offset as usize), n as usize) };
            push_pdu(&mut self.send, &hdr, data, self.digests, w.idx, w.itt, w.offset as usize);
            w.offset += n;
            w.data_sn = w.data_sn.wrapping_add(1);
            self.shared.stats.bytes_written.fetch_add(u64::from(n), Ordering::Relaxed);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send.flush(&self.stream, &self.shared.slots)
    }

    /// Reads what the socket has and handles every whole PDU. Returns whether anything arrived.
    fn read_and_handle(&mut self) -> Result<bool, Arc<str>> {
        let mut got = false;
        if self.rend > self.rstart {
            self.handle_frames()?;
            self.on_tmf_response()?;
        }
        loop {
            if self.direct.is_some() {
                match self.pump_direct()? {
                    Pump::Payload(drained) => {
                        got = true;
                        if drained {
                            break;
                        }
                        continue;
                    }
                    Pump::Finished => {
                        got = true;
                        self.large_rx = true;
                        self.handle_frames()?;
                        self.on_tmf_response()?;
                        continue;
                    }
                    Pump::Idle => break,
                    Pump::NeedTrailer => {} // read it below, with whatever follows
                }
            }
            if self.rend == self.recv.len() {
                // Move the partial PDU to the front to make room.
                self.recv.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            let end = self.header_read_len().map_or(self.recv.len(), |n| (self.rend + n).min(self.recv.len()));
            match read_some(&self.stream, &mut self.recv[self.rend..end]) {
                Ok(Read::Eof) => return Err("connection closed by the target".into()),
                Ok(Read::Got(n, drained)) => {
                    self.rx_total += n as u64;
                    self.rend += n;
                    got = true;
                    self.st.last_rx = Instant::now();
                    self.handle_frames()?;
                    self.on_tmf_response()?;
                    // A direct receive may have just started, or its trailer arrived: go round
                    // once more to move it on rather than wait for the next readiness.
                    if drained && self.direct.is_none() {
                        break;
                    }
                }
                Ok(Read::Empty) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read failed: {e}").into()),
            }
        }
        Ok(got)
    }

    fn handle_frames(&mut self) -> Result<(), Arc<str>> {
        loop {
            if self.direct.is_some() {
                return Ok(()); // the bytes at rstart belong to a payload being placed directly
            }
            let need = {
                let Conn { recv, rstart, rend, st, shared, send, params, frame_cfg, digests, events, large_rx, .. } = self;
                match parse_frame(&recv[*rstart..*rend], frame_cfg) {
                    Ok(FrameStatus::Complete(frame, used)) => {
                        if matches!(frame.header, Header::DataIn(_)) && frame.data.len() < DIRECT_MIN as usize {
                            *large_rx = false;
                        }
                        st.handle(shared, send, *digests, params, events, frame.header, frame.data)?;
                        *rstart += used;
                        continue;
                    }
                    Ok(FrameStatus::Incomplete(need)) => need,
                    Err(e) => return Err(format!("bad PDU from the target: {e}").into()),
                }
            };
            if self.try_start_direct()? {
                continue;
            }
            if need > self.recv.len() - self.rstart && self.rstart > 0 {
                self.recv.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            if self.rstart == self.rend {
                self.rstart = 0;
                self.rend = 0;
            }
            return Ok(());
        }
    }

    /// While large Data-In PDUs arrive, the read at a PDU boundary takes just the next
    /// header (after the trailer of the payload just placed, if that is still to come), so
    /// that all of the next payload can go straight to the caller's buffer.
    fn header_read_len(&self) -> Option<usize> {
        if !self.large_rx || self.st.big_reads == 0 {
            return None;
        }
        let next = 48 + if self.digests.header { 4 } else { 0 };
        match &self.direct {
            None if self.rstart == self.rend => Some(next),
            Some(d) if d.placed == d.total => {
                let trailer = d.pad + if d.digest { 4 } else { 0 };
                Some(trailer.saturating_sub(self.rend - self.rstart) + next)
            }
            _ => None,
        }
    }

    /// Starts receiving a large Data-In payload straight into the caller's buffer, when the
    /// PDU's header is in the receive buffer but most of its payload is not.
    fn try_start_direct(&mut self) -> Result<bool, Arc<str>> {
        let avail = &self.recv[self.rstart..self.rend];
        let Some(bhs) = avail.first_chunk::<48>() else { return Ok(false) };
        if bhs[0] & 0x3f != Opcode::DataIn as u8 {
            return Ok(false);
        }
        let total = u32::from_be_bytes([0, bhs[5], bhs[6], bhs[7]]);
        let hd = if self.digests.header { 4 } else { 0 };
        let header_len = 48 + usize::from(bhs[4]) * 4;
        let data_start = header_len + hd;
        if total < DIRECT_MIN || avail.len() < data_start {
            return Ok(false);
        }
        let in_buf = (avail.len() - data_start).min(total as usize);
        if (total as usize - in_buf) < DIRECT_MIN as usize {
            return Ok(false); // nearly all here already: the usual path is as good
        }
        if self.digests.header {
            let got = u32::from_le_bytes([avail[header_len], avail[header_len + 1], avail[header_len + 2], avail[header_len + 3]]);
            if got != crc32c::crc32c(&avail[..header_len]) {
                return Err("bad PDU from the target: header digest mismatch".into());
            }
        }
        let Ok(Header::DataIn(h)) = Header::decode(bhs) else { return Ok(false) };
        let Some(idx) = self.st.lookup(&self.shared, h.itt) else { return Ok(false) };
        let x = &self.st.xfer[usize::from(idx)];
        let s = self.shared.slots.lock(idx);
        let fits = h.buffer_offset.checked_add(total).is_some_and(|end| end <= x.len);
        if s.state != State::Sent || s.itt(idx) != h.itt || s.dir != Dir::Read || !fits || s.abandoned {
            return Ok(false); // the usual path judges it
        }
        // SAFETY: slot locked, Sent, not abandoned: the caller's buffer is alive (the engine
        // holds it), and offset..offset+total lies inside it (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(avail[data_start..].as_ptr(), s.buf.ptr.add(h.buffer_offset as usize), in_buf);
        }
        drop(s);
        self.direct = Some(DirectRx {
            header: h,
            idx,
            total,
            placed: u32::try_from(in_buf).unwrap_or(0),
            pad: (4 - total as usize % 4) % 4,
            digest: self.digests.data,
            discard: false,
        });
        self.rstart += data_start + in_buf;
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        Ok(true)
    }

    /// Moves a direct receive on: payload bytes from the socket into the caller's buffer, then
    /// the padding and digest through the receive buffer, then the PDU's handling.
    fn pump_direct(&mut self) -> Result<Pump, Arc<str>> {
        let Some(d) = self.direct.as_mut() else { return Ok(Pump::Finished) };
        if d.placed < d.total {
            let want = (d.total - d.placed) as usize;
            let s = self.shared.slots.lock(d.idx);
            if d.discard || s.abandoned || s.state != State::Sent || s.itt(d.idx) != d.header.itt {
                d.discard = true;
                drop(s);
                // Read into the free part of the receive buffer and forget it.
                let room = (self.recv.len() - self.rend).min(want);
                if room == 0 {
                    return Ok(Pump::Payload(false));
                }
                let end = self.rend + room;
                return match read_some(&self.stream, &mut self.recv[self.rend..end]) {
                    Ok(Read::Eof) => Err("connection closed by the target".into()),
                    Ok(Read::Empty) => Ok(Pump::Idle),
                    Ok(Read::Got(n, drained)) => {
                        self.rx_total += n as u64;
                        d.placed += u32::try_from(n).unwrap_or(0);
                        self.st.last_rx = Instant::now();
                        Ok(Pump::Payload(drained))
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Pump::Payload(false)),
                    Err(e) => Err(format!("read failed: {e}").into()),
                };
            }
            let at = d.header.buffer_offset as usize + d.placed as usize;
            // SAFETY: slot locked, Sent, not abandoned; at..at+want lies inside the buffer
            // (checked when the direct receive started). The read is non-blocking.
            let dest = unsafe { std::slice::from_raw_parts_mut(s.buf.ptr.add(at), want) };
            let r = read_some(&self.stream, dest);
            drop(s);
            return match r {
                Ok(Read::Eof) => Err("connection closed by the target".into()),
                Ok(Read::Empty) => Ok(Pump::Idle),
                Ok(Read::Got(n, drained)) => {
                    self.rx_total += n as u64;
                    d.placed += u32::try_from(n).unwrap_or(0);
                    self.st.last_rx = Instant::now();
                    self.shared.stats.bytes_read_direct.fetch_add(n as u64, Ordering::Relaxed);
                    Ok(Pump::Payload(drained))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Pump::Payload(false)),
                Err(e) => Err(format!("read failed: {e}").into()),
            };
        }
        let trailer = d.pad + if d.digest { 4 } else { 0 };
        if self.rend - self.rstart < trailer {
            return Ok(Pump::NeedTrailer);
        }
        let d = self.direct.take().expect("checked above");
        if d.digest && !d.discard {
            let s = self.shared.slots.lock(d.idx);
            if s.state == State::Sent && !s.abandoned && s.itt(d.idx) == d.header.itt {
                // SAFETY: as above: the payload was placed there and the slot is still ours.
                let placed = unsafe { std::slice::from_raw_parts(s.buf.ptr.add(d.header.buffer_offset as usize), d.total as usize) };
                let t = &self.recv[self.rstart..self.rstart + trailer];
                let computed = crc32c::crc32c_append(crc32c::crc32c(placed), &t[..d.pad]);
                let got = u32::from_le_bytes([t[d.pad], t[d.pad + 1], t[d.pad + 2], t[d.pad + 3]]);
                if got != computed {
                    return Err(format!("bad PDU from the target: data digest mismatch (got 0x{got:08x}, computed 0x{computed:08x})").into());
                }
            }
        }
        self.rstart += trailer;
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        self.st.on_data_in(&self.shared, &d.header, Payload::Placed(d.total))?;
        Ok(Pump::Finished)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let ping = match self.st.ping {
            Some((_, deadline)) => Some(deadline),
            None => self.timeouts.noop_interval.map(|i| self.st.last_rx + i),
        };
        let escalation = self.st.escalation.map(|e| match e {
            Escalation::Abort { deadline, .. } | Escalation::LuReset { deadline, .. } => deadline,
        });
        let tick = (self.timeouts.command.is_some() && self.st.active > 0 && self.st.escalation.is_none())
            .then(|| self.st.last_tick + TIMEOUT_TICK);
        let coalesce = (self.lowat > 1).then(|| self.st.last_rx.max(self.coalesce_check) + COALESCE_WAIT);
        let window = self.st.window_closed_since.zip(self.timeouts.command).map(|(t, c)| t + c);
        [ping, escalation, tick, coalesce, window].into_iter().flatten().min()
    }

    /// Payload bytes certain to arrive before anything else can be handled: the rest of a
    /// Data-In being received directly.
    fn rx_certain(&self) -> usize {
        self.direct.as_ref().map_or(0, |d| (d.total - d.placed) as usize)
    }

    /// Interrupt coalescing for the receive side. Waking for every response makes each IO
    /// pay for a wakeup, a read and a send of its own; with many commands outstanding the
    /// socket is told (SO_RCVLOWAT) to wake the task only once a quarter to a half of what
    /// the target owes has arrived, while the target works on the rest, so that one wakeup,
    /// one read and one send serve many IOs. Raising the mark also lets the kernel grow the
    /// socket's receive buffer to hold it.
    ///
    /// What the target owes is known only if every command succeeds (errors carry no data),
    /// and the task must see every R2T at once, so: no guess while a write awaits an R2T, and
    /// any mark above 1 is backed by a timer. `COALESCE_WAIT` (1-2 ms: tokio's timer tick)
    /// without a read and the mark drops to 1, which wakes the task if anything is there
    /// (the kernel signals readiness when the mark is lowered), and stays at 1 until a read
    /// after it (`COALESCE_PAUSE` later after a streak of them, so that a slow target is served
    /// as if coalescing were off). A mark never hides data from a read, only delays the wakeup, and
    /// end of file or an error wakes the task regardless.
    fn update_lowat(&mut self) {
        if self.coalesce_off && self.st.last_rx > self.coalesce_resume {
            self.coalesce_off = false;
        }
        let st = &self.st;
        let guess = if st.owing >= COALESCE_MIN_ACTIVE && st.awaiting_r2t == 0 && !st.logging_out {
            usize::try_from(st.rx_owed / 2).unwrap_or(usize::MAX)
        } else {
            0
        };
        let want = if self.coalesce_off { 1 } else { self.rx_certain().max(guess).min(RX_LOWAT_MAX) };
        // Powers of two: the mark changes (a system call) only when the load does.
        let want = if want < 2 { 1 } else { 1 << want.ilog2() };
        if want == self.lowat {
            return;
        }
        if self.lowat == 1 {
            self.coalesce_check = Instant::now();
        }
        use std::os::fd::AsRawFd;
        let v = libc::c_int::try_from(want).unwrap_or(1);
        // SAFETY: setsockopt on the socket we own with a pointer to a local c_int.
        let r = unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::addr_of!(v).cast(),
                libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
            )
        };
        // On failure keep the old mark; a mark of 1 is the default and always safe.
        if r == 0 {
            self.lowat = want;
        }
    }

    fn on_timer(&mut self) -> Result<(), Arc<str>> {
        let now = Instant::now();
        if self.lowat > 1 && now >= self.st.last_rx.max(self.coalesce_check) + COALESCE_WAIT {
            // Nothing read for a while with a raised mark: drop it (see `update_lowat`).
            self.coalesce_check = now;
            self.coalesce_off = true;
            self.fallback_streak = self.fallback_streak.saturating_add(1);
            self.coalesce_resume = if self.fallback_streak >= COALESCE_STREAK { now + COALESCE_PAUSE } else { now };
            self.shared.stats.coalesce_fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        match self.st.ping {
            Some((_, deadline)) if now >= deadline => {
                return Err(format!("no NOP-In answer within {:?}: the target is unreachable", self.timeouts.noop_timeout).into());
            }
            Some(_) => {}
            None => {
                if let Some(interval) = self.timeouts.noop_interval {
                    if now >= self.st.last_rx + interval {
                        self.st.ping_seq = self.st.ping_seq.wrapping_add(1);
                        let itt = (u32::from(self.st.ping_seq) << 16) | PING_TAG;
                        let hdr = NopOut {
                            immediate: true,
                            lun: 0,
                            itt,
                            ttt: RESERVED_TAG,
                            cmd_sn: self.st.window.current(),
                            exp_stat_sn: self.st.exp_stat_sn,
                        };
                        encode_pdu(&mut self.send.buf, &hdr, &[], &[], self.digests);
                        self.st.ping = Some((itt, now + self.timeouts.noop_timeout));
                    }
                }
            }
        }
        if let (Some(since), Some(limit)) = (self.st.window_closed_since, self.timeouts.command) {
            if now >= since + limit {
                let w = &self.st.window;
                return Err(format!(
                    "the target kept the command window closed for {limit:?} (ExpCmdSN {}, MaxCmdSN {}, next CmdSN {}): \
                     dropping the connection to reinstate the session",
                    w.exp_cmd_sn(),
                    w.max_cmd_sn(),
                    w.current()
                )
                .into());
            }
        }
        self.check_escalation(now)?;
        Ok(())
    }

    /// Starts or advances the escalation for commands past the command timeout.
    fn check_escalation(&mut self, now: Instant) -> Result<(), Arc<str>> {
        if self.st.escalation.is_some() {
            self.st.last_tick = now;
        }
        match self.st.escalation {
            Some(Escalation::Abort { idx, task_itt, lun, deadline, .. }) if now >= deadline => {
                tracing::warn!(task = format_args!("0x{task_itt:08x}"), "ABORT TASK timed out: resetting the logical unit");
                self.send_lu_reset(idx, task_itt, lun, now);
            }
            Some(Escalation::LuReset { deadline, .. }) if now >= deadline => {
                return Err("LOGICAL UNIT RESET timed out: dropping the connection to reinstate the session".into());
            }
            Some(_) => {}
            None => {
                let Some(limit) = self.timeouts.command else { return Ok(()) };
                if now < self.st.last_tick + TIMEOUT_TICK {
                    return Ok(());
                }
                self.st.last_tick = now;
                // The oldest command past the limit, if any.
                let late = self
                    .st
                    .xfer
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.itt != RESERVED_TAG && now.duration_since(x.started) >= limit)
                    .min_by_key(|(_, x)| x.started)
                    .map(|(i, x)| (u16::try_from(i).unwrap_or(0), x.itt));
                if let Some((idx, task_itt)) = late {
                    tracing::warn!(task = format_args!("0x{task_itt:08x}"), "command timed out after {limit:?}: aborting it");
                    self.send_abort(idx, task_itt, now);
                }
            }
        }
        Ok(())
    }

    fn next_tmf_itt(&mut self) -> u32 {
        self.st.tmf_seq = self.st.tmf_seq.wrapping_add(1);
        (u32::from(self.st.tmf_seq) << 16) | TMF_TAG
    }

    fn send_abort(&mut self, idx: u16, task_itt: u32, now: Instant) {
        let tmf_itt = self.next_tmf_itt();
        let x = &self.st.xfer[usize::from(idx)];
        let hdr = TaskMgmtRequest {
            immediate: true,
            function: TaskMgmtFunction::AbortTask,
            lun: x.lun,
            itt: tmf_itt,
            referenced_task_tag: task_itt,
            cmd_sn: self.st.window.current(),
            exp_stat_sn: self.st.exp_stat_sn,
            ref_cmd_sn: x.cmd_sn,
            exp_data_sn: 0,
        };
        encode_pdu(&mut self.send.buf, &hdr, &[], &[], self.digests);
        let lun = x.lun;
        self.st.escalation = Some(Escalation::Abort { idx, task_itt, lun, tmf_itt, deadline: now + self.timeouts.tmf });
    }

    fn send_lu_reset(&mut self, idx: u16, task_itt: u32, lun: u64, now: Instant) {
        let tmf_itt = self.next_tmf_itt();
        let hdr = TaskMgmtRequest {
            immediate: true,
            function: TaskMgmtFunction::LogicalUnitReset,
            lun,
            itt: tmf_itt,
            referenced_task_tag: RESERVED_TAG,
            cmd_sn: self.st.window.current(),
            exp_stat_sn: self.st.exp_stat_sn,
            ref_cmd_sn: 0,
            exp_data_sn: 0,
        };
        encode_pdu(&mut self.send.buf, &hdr, &[], &[], self.digests);
        let cmd_sn = hdr.cmd_sn;
        self.st.escalation = Some(Escalation::LuReset { idx, task_itt, lun, tmf_itt, cmd_sn, deadline: now + self.timeouts.tmf });
    }

    /// Acts on the answer to our ABORT TASK or LOGICAL UNIT RESET.
    fn on_tmf_response(&mut self) -> Result<(), Arc<str>> {
        let Some(h) = self.st.tmf_response.take() else { return Ok(()) };
        match self.st.escalation {
            Some(Escalation::Abort { idx, task_itt, lun, tmf_itt, .. }) if tmf_itt == h.itt => {
                self.st.escalation = None;
                // 0: aborted; 1: the target no longer knows the task. Either way it is gone.
                if h.response == 0 || h.response == 1 {
                    self.fail_task(idx, task_itt, CommandError::Timeout);
                } else {
                    tracing::warn!("ABORT TASK refused ({}): resetting the logical unit", h.describe());
                    self.send_lu_reset(idx, task_itt, lun, Instant::now());
                }
                Ok(())
            }
            Some(Escalation::LuReset { idx, task_itt, lun, tmf_itt, cmd_sn, .. }) if tmf_itt == h.itt => {
                self.st.escalation = None;
                if h.response != 0 {
                    return Err(format!("LOGICAL UNIT RESET refused ({}): dropping the connection", h.describe()).into());
                }
                // The reset ended every task of the LU it found: the late one fails, the others
                // go again. New commands waited for this answer (`may_issue_new`); should one
                // have gone out behind the reset (its CmdSN from the reset's on), it is a new
                // task at the target and runs as it is: sending it again would run it twice.
                self.fail_task(idx, task_itt, CommandError::Timeout);
                let mut victims: Vec<u16> = (0..self.st.xfer.len())
                    .filter(|&i| {
                        let x = &self.st.xfer[i];
                        x.itt != RESERVED_TAG && x.lun == lun && serial::lt(x.cmd_sn, cmd_sn)
                    })
                    .filter_map(|i| u16::try_from(i).ok())
                    .collect();
                // Sent again in their original order.
                victims.sort_by(|&a, &b| {
                    let (a, b) = (self.st.xfer[usize::from(a)].cmd_sn, self.st.xfer[usize::from(b)].cmd_sn);
                    if serial::lt(a, b) { std::cmp::Ordering::Less } else if a == b { std::cmp::Ordering::Equal } else { std::cmp::Ordering::Greater }
                });
                for idx in victims.into_iter().rev() {
                    self.requeue(idx);
                }
                Ok(())
            }
            _ => Ok(()), // a late answer to something already settled
        }
    }

    /// Completes an outstanding command with `err` if it is still the task `itt`.
    fn fail_task(&mut self, idx: u16, itt: u32, err: CommandError) {
        let x = &mut self.st.xfer[usize::from(idx)];
        if x.itt != itt {
            return;
        }
        self.st.retire(idx);
        self.st.data_out.retain(|w| w.idx != idx);
        let mut s = self.shared.slots.lock(idx);
        self.send.detach(idx, &s);
        if s.state != State::Sent {
            return;
        }
        if s.finish(Some(err)) {
            drop(s);
            self.shared.slots.release(idx);
        }
    }

    /// Sends an outstanding command again from the start (after a LU reset ended it).
    fn requeue(&mut self, idx: u16) {
        self.st.retire(idx);
        self.st.data_out.retain(|w| w.idx != idx);
        {
            let mut s = self.shared.slots.lock(idx);
            // What of its data is still queued goes out as it is: the target drops data for
            // a task the reset ended, but the stream must stay whole and its digests right.
            self.send.detach(idx, &s);
            s.state = State::Queued;
            // A new tag, so that a late PDU of the reset task never matches the reissue.
            s.bump_generation(idx);
        }
        self.st.pending.push_front(idx);
    }

    fn start_logout(&mut self, tx: oneshot::Sender<Result<(), String>>) {
        if let Some(old) = self.st.logout.replace(tx) {
            let _ = old.send(Err("another logout took over".into()));
        }
        if self.st.logging_out {
            // A logout (the target's wish) is already on its way: its answer ends the session.
            return;
        }
        self.st.logging_out = true;
        let hdr = LogoutRequest {
            immediate: true,
            reason: LogoutReason::CloseSession,
            itt: LOGOUT_TAG,
            cid: 0,
            cmd_sn: self.st.window.current(),
            exp_stat_sn: self.st.exp_stat_sn,
        };
        encode_pdu(&mut self.send.buf, &hdr, &[], &[], self.digests);
    }
}


impl ConnState {
    /// New commands may go out: the CmdSN window is open and no LOGICAL UNIT RESET is under
    /// way. Commands wait for the reset's answer (as open-iscsi's do), so that none is sent
    /// behind it: a target may end those too, and they would then go unanswered.
    fn may_issue_new(&self) -> bool {
        self.window.is_open() && !matches!(self.escalation, Some(Escalation::LuReset { .. }))
    }

    /// Ends the connection's bookkeeping of a command that completed, failed or goes back to
    /// the queue.
    fn retire(&mut self, idx: u16) {
        let x = &mut self.xfer[usize::from(idx)];
        x.itt = RESERVED_TAG;
        let owed = std::mem::take(&mut x.owed);
        match std::mem::replace(&mut x.rx, RxClass::None) {
            RxClass::None => {}
            RxClass::Owing { big } => {
                self.rx_owed = self.rx_owed.saturating_sub(u64::from(owed));
                self.owing = self.owing.saturating_sub(1);
                if big {
                    self.big_reads = self.big_reads.saturating_sub(1);
                }
            }
            RxClass::AwaitsR2t => self.awaiting_r2t = self.awaiting_r2t.saturating_sub(1),
        }
        self.active = self.active.saturating_sub(1);
    }

    /// Counts a command towards receive coalescing: the target owes `bytes` for it (its
    /// Data-In payload and a 48-byte header for the status) and needs nothing more from us
    /// to send them. `bytes` is at least 48.
    fn owe(&mut self, idx: u16, bytes: u32) {
        let big = bytes - 48 >= DIRECT_MIN;
        let x = &mut self.xfer[usize::from(idx)];
        x.owed = bytes;
        x.rx = RxClass::Owing { big };
        self.rx_owed += u64::from(bytes);
        self.owing += 1;
        if big {
            self.big_reads += 1;
        }
    }

    fn stat_sn(&mut self, stat_sn: u32) {
        let next = stat_sn.wrapping_add(1);
        if serial::lt(self.exp_stat_sn, next) {
            self.exp_stat_sn = next;
        }
    }

    /// Finds the slot and transfer of a command ITT, if it is one of ours and outstanding.
    fn lookup(&self, shared: &Shared, itt: u32) -> Option<u16> {
        let idx = shared.slots.index_of(itt)?;
        (self.xfer[usize::from(idx)].itt == itt).then_some(idx)
    }

    #[allow(clippy::too_many_arguments)]
    fn handle(
        &mut self,
        shared: &Shared,
        send: &mut SendQueue,
        digests: Digests,
        params: &SessionParams,
        events: &broadcast::Sender<SessionEvent>,
        header: Header,
        data: &[u8],
    ) -> Result<(), Arc<str>> {
        match header {
            Header::DataIn(h) => self.on_data_in(shared, &h, Payload::Bytes(data)),
            Header::ScsiResponse(h) => self.on_response(shared, send, events, &h, data),
            Header::R2t(h) => self.on_r2t(shared, params, &h),
            Header::NopIn(h) => {
                self.on_nop_in(&mut send.buf, digests, &h);
                Ok(())
            }
            Header::AsyncMessage(h) => {
                self.window.update(h.exp_cmd_sn, h.max_cmd_sn);
                self.stat_sn(h.stat_sn);
                match h.event {
                    AsyncEvent::Scsi => {
                        let sense = pdu::ScsiResponse::sense(data).to_vec();
                        let _ = events.send(SessionEvent::ScsiAsync { lun: h.lun, sense });
                        Ok(())
                    }
                    AsyncEvent::LogoutRequested => {
                        // Log out now rather than wait out Parameter3 (§11.9.1); the
                        // supervisor logs in again and resends what was outstanding.
                        let _ = events.send(SessionEvent::TargetRequestedLogout);
                        if self.logging_out {
                            return Ok(());
                        }
                        self.logging_out = true;
                        let hdr = LogoutRequest {
                            immediate: true,
                            reason: LogoutReason::CloseSession,
                            itt: LOGOUT_TAG,
                            cid: 0,
                            cmd_sn: self.window.current(),
                            exp_stat_sn: self.exp_stat_sn,
                        };
                        encode_pdu(&mut send.buf, &hdr, &[], &[], digests);
                        Ok(())
                    }
                    AsyncEvent::DroppingConnection | AsyncEvent::DroppingAllConnections => {
                        // Clamped to RFC 7143's range (§13.19: at most 3600 s).
                        let wait = h.time2wait();
                        self.drop_time2wait = Some(wait);
                        Err(if wait == h.parameter2 {
                            format!("the target is dropping the connection (Time2Wait {wait} s)")
                        } else {
                            format!(
                                "the target is dropping the connection (Time2Wait {} s, out of range: waiting {wait} s)",
                                h.parameter2
                            )
                        }
                        .into())
                    }
                    AsyncEvent::Renegotiate | AsyncEvent::Other(_) => Ok(()),
                }
            }
            Header::Reject(h) => self.on_reject(shared, send, &h, data),
            Header::LogoutResponse(h) => {
                self.window.update(h.exp_cmd_sn, h.max_cmd_sn);
                self.stat_sn(h.stat_sn);
                let ok = h.response == 0;
                let result = if ok { Ok(()) } else { Err(format!("target refused logout (response {})", h.response)) };
                match self.logout.take() {
                    Some(tx) => {
                        let _ = tx.send(result);
                        self.logout_reason = Some(ConnExit::LoggedOut);
                    }
                    None => self.logout_reason = Some(ConnExit::TargetRequestedLogout),
                }
                Ok(())
            }
            Header::TaskMgmtResponse(h) => {
                self.window.update(h.exp_cmd_sn, h.max_cmd_sn);
                self.stat_sn(h.stat_sn);
                self.tmf_response = Some(h);
                Ok(())
            }
            Header::TextResponse(h) => {
                self.window.update(h.exp_cmd_sn, h.max_cmd_sn);
                self.stat_sn(h.stat_sn);
                Ok(())
            }
            other => Err(format!("unexpected {:?} PDU in full feature phase", other.opcode()).into()),
        }
    }

    fn on_data_in(&mut self, shared: &Shared, h: &DataIn, payload: Payload<'_>) -> Result<(), Arc<str>> {
        let (data, placed): (&[u8], Option<u32>) = match payload {
            Payload::Bytes(d) => (d, None),
            Payload::Placed(n) => (&[], Some(n)),
        };
        self.window.update(h.exp_cmd_sn, h.max_cmd_sn);
        if h.has_status {
            self.stat_sn(h.stat_sn);
        }
        let Some(idx) = self.lookup(shared, h.itt) else {
            return Err(format!("Data-In for unknown task 0x{:08x}", h.itt).into());
        };
        let x = &mut self.xfer[usize::from(idx)];
        let len = placed.unwrap_or_else(|| u32::try_from(data.len()).unwrap_or(u32::MAX));
        let end = h.buffer_offset.checked_add(len);
        let mut s = shared.slots.lock(idx);
        if s.state != State::Sent || s.itt(idx) != h.itt {
            return Err(format!("Data-In for task 0x{:08x}, which is not outstanding", h.itt).into());
        }
        match end {
            Some(end) if end <= x.len && (s.dir == Dir::Read || len == 0) => {
                if !s.abandoned && !data.is_empty() {
                    // SAFETY: slot locked and not abandoned: the caller's buffer is alive, and
                    // offset..end lies inside it (x.len is its length).
                    unsafe {
                        std::ptr::copy_nonoverlapping(data.as_ptr(), s.buf.ptr.add(h.buffer_offset as usize), data.len());
                    }
                }
                x.moved = x.moved.saturating_add(len);
                let paid = x.owed.saturating_sub(48).min(len);
                x.owed -= paid;
                self.rx_owed = self.rx_owed.saturating_sub(u64::from(paid));
                shared.stats.bytes_read.fetch_add(u64::from(len), Ordering::Relaxed);
            }
            _ => {
                x.error.get_or_insert_with(|| {
                    CommandError::Protocol(
                        format!("Data-In at offset {} of {} bytes exceeds the {} bytes expected", h.buffer_offset, len, x.len).into(),
                    )
                });
            }
        }
        if h.has_status {
            s.status = h.status;
            s.residual_under = if h.underflow { h.residual } else { 0 };
            s.residual_over = if h.overflow { h.residual } else { 0 };
            if h.status == 0 && !h.underflow && x.moved < x.len {
                s.residual_under = x.len - x.moved;
            }
            s.sense_len = 0;
            let err = x.error.take();
            self.retire(idx);
            if s.finish(err) {
                drop(s);
                shared.slots.release(idx);
            }
        }
        Ok(())
    }

    fn on_response(
        &mut self,
        shared: &Shared,
        send: &mut SendQueue,
        events: &broadcast::Sender<SessionEvent>,
        h: &ScsiResponse,
        data: &[u8],
    ) -> Result<(), Arc<str>> {
        self.window.update(h.exp_cmd_sn, h.max_cmd_sn);
        self.stat_sn(h.stat_sn);
        let Some(idx) = self.lookup(shared, h.itt) else {
            return Err(format!("SCSI Response for unknown task 0x{:08x}", h.itt).into());
        };
        let mut s = shared.slots.lock(idx);
        if s.state != State::Sent || s.itt(idx) != h.itt {
            return Err(format!("SCSI Response for task 0x{:08x}, which is not outstanding", h.itt).into());
        }
        let x = &mut self.xfer[usize::from(idx)];
        let mut err = x.error.take();
        let (moved, len) = (x.moved, x.len);
        self.retire(idx);
        // A write answered before all its data went out (an early CHECK CONDITION).
        send.detach(idx, &s);
        if h.response != 0 {
            err.get_or_insert(CommandError::TargetFailure(h.response));
        }
        s.status = h.status;
        s.residual_under = if h.underflow { h.residual } else { 0 };
        s.residual_over = if h.overflow { h.residual } else { 0 };
        if s.dir == Dir::Read && h.status == 0 && !h.underflow && moved < len {
            // GOOD without the U bit, yet data missing: report it rather than pass stale
            // buffer contents off as read.
            s.residual_under = len - moved;
        }
        let sense = ScsiResponse::sense(data);
        let n = sense.len().min(SENSE_MAX);
        s.sense[..n].copy_from_slice(&sense[..n]);
        s.sense_len = u8::try_from(n).unwrap_or(0);
        let lun = s.lun;
        if s.finish(err) {
            drop(s);
            shared.slots.release(idx);
        } else {
            drop(s);
        }
        // Unit attentions (LUN inventory or capacity changed, reset, ...) are news for the
        // session's owner even though the caller will simply retry the command.
        if h.status == 2 {
            if let Ok(x) = lunlink_scsi::Sense::parse(sense) {
                if x.is_alua_news() {
                    shared.stats.alua_news.fetch_add(1, Ordering::Relaxed);
                }
                if x.is_unit_attention() {
                    shared.stats.unit_attentions.fetch_add(1, Ordering::Relaxed);
                    let _ = events.send(SessionEvent::UnitAttention { lun, sense: sense.to_vec() });
                }
            }
        }
        Ok(())
    }

    fn on_r2t(&mut self, shared: &Shared, params: &SessionParams, h: &R2t) -> Result<(), Arc<str>> {
        self.window.update(h.exp_cmd_sn, h.max_cmd_sn);
        let Some(idx) = self.lookup(shared, h.itt) else {
            return Err(format!("R2T for unknown task 0x{:08x}", h.itt).into());
        };
        let x = &self.xfer[usize::from(idx)];
        let end = h.buffer_offset.checked_add(h.desired_len);
        let is_write = shared.slots.lock(idx).dir == Dir::Write;
        if !is_write || h.ttt == RESERVED_TAG {
            return Err(format!("R2T for task 0x{:08x}, which is not a write in progress", h.itt).into());
        }
        // §11.8.5: DesiredDataTransferLength never exceeds MaxBurstLength.
        match end {
            Some(end) if end <= x.len && h.desired_len > 0 && h.desired_len <= params.max_burst_length => {
                let lun = x.lun;
                self.data_out.push_back(DataOutWork {
                    idx,
                    itt: h.itt,
                    ttt: h.ttt,
                    lun,
                    offset: h.buffer_offset,
                    end,
                    data_sn: 0,
                });
                Ok(())
            }
            _ => Err(format!(
                "R2T asks for {} bytes at offset {} of a {}-byte write",
                h.desired_len, h.buffer_offset, x.len
            )
            .into()),
        }
    }

    fn on_nop_in(&mut self, send: &mut Vec<u8>, digests: Digests, h: &NopIn) {
        self.window.update(h.exp_cmd_sn, h.max_cmd_sn);
        if h.itt != RESERVED_TAG {
            self.stat_sn(h.stat_sn);
            if self.ping.is_some_and(|(itt, _)| itt == h.itt) {
                self.ping = None;
            }
        }
        if h.wants_reply() {
            let hdr = NopOut {
                immediate: true,
                lun: h.lun,
                itt: RESERVED_TAG,
                ttt: h.ttt,
                cmd_sn: self.window.current(),
                exp_stat_sn: self.exp_stat_sn,
            };
            encode_pdu(send, &hdr, &[], &[], digests);
        }
    }

    fn on_reject(&mut self, shared: &Shared, send: &mut SendQueue, h: &Reject, data: &[u8]) -> Result<(), Arc<str>> {
        self.window.update(h.exp_cmd_sn, h.max_cmd_sn);
        self.stat_sn(h.stat_sn);
        if let Err(e) = Reject::rejected_bhs(data) {
            return Err(format!("the target sent a Reject ({}) that does not say what it rejects: {e}", h.describe()).into());
        }
        let itt = Reject::rejected_itt(data).unwrap_or(RESERVED_TAG);
        // Only a rejected SCSI Command ends the command; a rejected Data-Out (e.g. a data
        // digest error) leaves the task open at the target, which at ErrorRecoveryLevel 0
        // only a new connection clears.
        let rejected_command = data.first().is_some_and(|op| op & 0x3f == 0x01);
        if h.reason == 0x02 || (!rejected_command && self.lookup(shared, itt).is_some()) {
            return Err(format!("the target rejected a PDU of task 0x{itt:08x}: {}", h.describe()).into());
        }
        if let Some(idx) = self.lookup(shared, itt).filter(|_| rejected_command) {
            // At ErrorRecoveryLevel 0 a rejected command never completes otherwise (§7.2).
            self.retire(idx);
            let mut s = shared.slots.lock(idx);
            send.detach(idx, &s);
            if s.state != State::Sent {
                return Ok(());
            }
            if s.finish(Some(CommandError::Rejected(h.describe()))) {
                drop(s);
                shared.slots.release(idx);
            }
            return Ok(());
        }
        tracing::warn!(reason = h.describe(), "target rejected a PDU");
        Ok(())
    }
}

enum Read {
    Eof,
    Empty,
    /// Bytes read, and whether the socket is known to be empty now.
    Got(usize, bool),
}

/// Queues a PDU carrying part of a command's buffer (`data`, at `off` in the buffer of the
/// command in slot `idx`, whose lock the caller holds): large payloads as a reference sent
/// from the caller's buffer (see `sendq`), small ones copied.
fn push_pdu<H: pdu::Bhs>(q: &mut SendQueue, hdr: &H, data: &[u8], digests: Digests, idx: u16, itt: u32, off: usize) {
    if data.len() < EXT_MIN {
        encode_pdu(&mut q.buf, hdr, &[], data, digests);
        return;
    }
    encode_pdu_head(&mut q.buf, hdr, &[], data.len(), digests);
    q.push_ext(idx, itt, off, data.len());
    let (trailer, n) = data_trailer(data, digests);
    q.buf.extend_from_slice(&trailer[..n]);
}

/// One non-blocking read. A read that does not fill `buf` has emptied the socket's receive
/// queue, so readiness is cleared right away instead of with a second read that would only
/// return EAGAIN: that read was one in two of all receive calls. Data arriving afterwards
/// raises readiness anew (epoll reports each arrival, and tokio only clears the readiness
/// it had observed).
fn read_some(stream: &TcpStream, buf: &mut [u8]) -> io::Result<Read> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let mut got = 0usize;
    let r = stream.try_io(tokio::io::Interest::READABLE, || {
        // SAFETY: reading into a buffer we own exclusively, of the length we pass.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        got = n;
        if n > 0 && n < buf.len() {
            // Report the short read as WouldBlock so that tokio clears readiness.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match r {
        Ok(0) => Ok(Read::Eof),
        Ok(n) => Ok(Read::Got(n, false)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(Read::Got(got, true)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Read::Empty),
        Err(e) => Err(e),
    }
}

/// A Data-In payload: in the receive buffer, or already placed in the caller's buffer by
/// the direct receive path.
enum Payload<'a> {
    Bytes(&'a [u8]),
    Placed(u32),
}

/// The receive low-water mark is raised only with at least this many commands outstanding
/// that owe data or status and need nothing more from us (`ConnState::owing`),
/// so that the half the target still works on while the task handles the other half covers
/// the task's turn: with 4 or 8 outstanding (tgtd on loopback) the target ran dry and IOPS
/// fell by up to half; from 16 on, IOPS rose and CPU per IO fell by 2.5-3x.
const COALESCE_MIN_ACTIVE: usize = 16;
/// Largest receive low-water mark. With 1 MiB reads at QD 32 one wakeup then serves a whole
/// IO (4 PDUs of 256 KiB from tgtd): 0.18-0.19 ms of CPU per MiB against 0.22-0.24 with a
/// 256 KiB cap.
const RX_LOWAT_MAX: usize = 1024 * 1024;
/// After `COALESCE_STREAK` fallbacks in a row (no wakeup by a raised mark in between),
/// coalescing stays off until a read this much later: a target slower than `COALESCE_WAIT`
/// per batch would otherwise meet a fallback, and new commands a delay of up to 2 ms, on
/// every batch. Single fallbacks are normal with deep queues (tgtd at QD 128 sometimes takes
/// over 1 ms for half of them) and cost nothing more.
const COALESCE_PAUSE: Duration = Duration::from_millis(50);
const COALESCE_STREAK: u32 = 3;
/// How long a raised low-water mark may keep the task from looking at the socket.
const COALESCE_WAIT: Duration = Duration::from_millis(1);

/// Data-In segments at least this long are received straight into the caller's buffer once
/// their header is in: the kernel's copy is then the only one.
const DIRECT_MIN: u32 = 16 * 1024;

/// A Data-In PDU whose payload is being received straight into the caller's buffer.
struct DirectRx {
    header: DataIn,
    idx: u16,
    total: u32,
    placed: u32,
    /// Padding and data digest that follow the payload on the wire.
    pad: usize,
    digest: bool,
    /// The caller gave up meanwhile: the rest of the payload is read and dropped.
    discard: bool,
}

enum Pump {
    /// Payload bytes arrived; `true` when the socket is empty now.
    Payload(bool),
    /// Nothing to read yet: wait for readiness.
    Idle,
    /// The payload is complete; its padding and digest are not in the receive buffer yet.
    NeedTrailer,
    /// The PDU is complete and handled.
    Finished,
}
