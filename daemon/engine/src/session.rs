//! Sessions: log in, run commands, log out.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::task::Poll;
use std::time::Duration;

use lunlink_proto::discovery::Portal;
use lunlink_proto::login::{Auth, LoginParams, SessionType};
use lunlink_proto::negotiate::{Offer, SessionParams};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use crate::conn::{self, Conn, ConnExit, Control, Shared, Stats};
use crate::error::{CommandError, EngineError};
use crate::buf::{DataBuf, IoBuf};
use crate::slots::{Dir, RawBuf, State, SENSE_MAX};
use crate::transport::connect_and_login;

/// Timeouts of a session.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub login: Duration,
    pub logout: Duration,
    /// Idle time before a NOP-Out ping; None disables pings.
    pub noop_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection counts as dead.
    pub noop_timeout: Duration,
    /// A command older than this is aborted (ABORT TASK, then LU RESET, then reconnect);
    /// None: commands may take forever.
    pub command: Option<Duration>,
    /// After a connection loss, how long IO waits for the session to come back before it
    /// fails with an error; None: it waits forever; zero: it fails at once. Relogin goes on
    /// either way.
    pub replacement: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            login: Duration::from_secs(15),
            logout: Duration::from_secs(15),
            noop_interval: Some(Duration::from_secs(5)),
            noop_timeout: Duration::from_secs(5),
            command: Some(Duration::from_secs(30)),
            replacement: Some(Duration::from_secs(120)),
        }
    }
}

/// What a session needs to log in.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub initiator_name: String,
    pub initiator_alias: Option<String>,
    pub target_name: String,
    pub portal: Portal,
    pub auth: Auth,
    pub offer: Offer,
    /// The initiator's session id part (§11.12.5); kept across reconnects.
    pub isid: [u8; 6],
    /// Commands in flight at most (the slot table size), 1..=4096.
    pub queue_depth: u16,
    pub timeouts: Timeouts,
}

/// Where a session's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Logged in; commands flow.
    LoggedIn,
    /// The connection was lost; logging in again, IO waits.
    Reconnecting,
    /// Still logging in again, but the replacement timeout expired: IO fails at once.
    Down,
}

/// Things that happen to a session, for its owner.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A SCSI asynchronous event (e.g. REPORTED LUNS DATA HAS CHANGED), with its sense data.
    ScsiAsync { lun: u64, sense: Vec<u8> },
    /// A command met a unit attention (SPC-4 §5.14): e.g. 3f/0e REPORTED LUNS DATA HAS
    /// CHANGED, 2a/09 CAPACITY DATA HAS CHANGED. The command itself is retried by the caller.
    UnitAttention { lun: u64, sense: Vec<u8> },
    /// The target asked for a logout; the engine performs it and logs in again.
    TargetRequestedLogout,
    /// The connection state changed (lost, reestablished, replacement timeout expired).
    State(LinkState),
    /// The session ended for good (logout); no command will complete any more.
    Closed(ConnExit),
}

/// Facts about a logged-in session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub target_name: String,
    pub portal: String,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub tpgt: Option<u16>,
    pub target_alias: Option<String>,
    pub params: SessionParams,
}

/// The outcome of a command that reached the target: its SCSI status, sense data and residuals.
#[derive(Clone)]
pub struct Completion {
    pub status: u8,
    /// Bytes the target did not move (underflow).
    pub residual_under: u32,
    /// Bytes the target wanted to move beyond the buffer (overflow).
    pub residual_over: u32,
    sense: [u8; SENSE_MAX],
    sense_len: u8,
}

impl Completion {
    pub fn is_good(&self) -> bool {
        self.status == 0
    }
    pub fn sense(&self) -> &[u8] {
        &self.sense[..usize::from(self.sense_len)]
    }
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("status", &self.status)
            .field("residual_under", &self.residual_under)
            .field("residual_over", &self.residual_over)
            .field("sense", &self.sense())
            .finish()
    }
}

struct Inner {
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    events: broadcast::Sender<SessionEvent>,
    info: Arc<RwLock<SessionInfo>>,
    logout_timeout: Duration,
    command_timeout: Option<Duration>,
    depth: u16,
    /// Set while a TASK SET FULL keeps part of the queue depth unused.
    throttled: Arc<std::sync::atomic::AtomicBool>,
}

/// A logged-in session. Cheap to clone; all clones drive the same connection. When the last
/// clone is dropped the session logs out.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("info", &self.info()).finish()
    }
}

/// How long a TASK SET FULL lowers the queue depth.
const THROTTLE_FOR: Duration = Duration::from_secs(5);

/// First retry of a relogin the target answered with "try again" (0x0301, 0x0302).
const TRY_AGAIN_DELAY: Duration = Duration::from_millis(250);

/// How long to wait at most between two relogin attempts.
const RECONNECT_CAP: Duration = Duration::from_secs(30);

fn user_timeout(t: &Timeouts) -> Duration {
    match t.noop_interval {
        Some(i) => i + t.noop_timeout,
        None => Duration::from_secs(30),
    }
}

/// Everything needed to log in again, owned by the supervisor task.
struct Supervisor {
    cfg: SessionConfig,
    shared: Arc<Shared>,
    events: broadcast::Sender<SessionEvent>,
    info: Arc<RwLock<SessionInfo>>,
}

impl Supervisor {
    fn login_params(&self) -> LoginParams {
        LoginParams {
            initiator_name: self.cfg.initiator_name.clone(),
            initiator_alias: self.cfg.initiator_alias.clone(),
            target_name: Some(self.cfg.target_name.clone()),
            session_type: SessionType::Normal,
            isid: self.cfg.isid,
            // Session reinstatement: the same ISID with TSIH 0 replaces the old session at the
            // target, which ends its tasks (RFC 7143 §6.3.5); we then send them again.
            tsih: 0,
            cid: 0,
            cmd_sn: 1,
            itt: 0,
            auth: self.cfg.auth.clone(),
            offer: self.cfg.offer.clone(),
        }
    }

    fn conn(&self, ch: crate::transport::Channel, done: &lunlink_proto::login::Negotiated) -> Conn {
        let t = &self.cfg.timeouts;
        let mut conn = Conn::new(
            ch.stream,
            self.shared.clone(),
            self.events.clone(),
            done.params.clone(),
            done.exp_cmd_sn,
            done.exp_cmd_sn,
            done.max_cmd_sn,
            done.stat_sn,
            conn::Timeouts {
                noop_interval: t.noop_interval,
                noop_timeout: t.noop_timeout,
                command: t.command,
                tmf: t.noop_timeout.max(Duration::from_secs(10)),
            },
        );
        conn.seed(&ch.decoder.into_pending());
        conn
    }

    fn set_state(&self, st: LinkState) {
        self.shared.set_link(st);
        let _ = self.events.send(SessionEvent::State(st));
    }

    async fn run(self, mut conn: Conn, mut control: mpsc::Receiver<Control>) {
        loop {
            let exit = conn.run(&mut control).await;
            let (reason, time2wait): (Arc<str>, Option<Duration>) = match exit {
                ConnExit::LoggedOut => {
                    tracing::info!("logged out");
                    self.shared.close(&CommandError::SessionClosed);
                    let _ = self.events.send(SessionEvent::Closed(ConnExit::LoggedOut));
                    return;
                }
                ConnExit::TargetRequestedLogout => ("the target asked for a logout".into(), None),
                ConnExit::Failed { reason, time2wait } => (reason, time2wait),
            };
            tracing::warn!(%reason, "connection lost: reinstating the session");
            let since = Instant::now();
            self.shared.requeue_outstanding(&reason);
            self.set_state(LinkState::Reconnecting);
            match self.reconnect(&mut control, since, time2wait).await {
                Some(c) => {
                    conn = c;
                    self.set_state(LinkState::LoggedIn);
                }
                None => {
                    tracing::info!("logged out while reconnecting");
                    self.shared.close(&CommandError::SessionClosed);
                    let _ = self.events.send(SessionEvent::Closed(ConnExit::LoggedOut));
                    return;
                }
            }
        }
    }

    /// Logs in again until it works or a logout is asked for (None). Expires queued IO when
    /// the replacement timeout passes, and keeps trying.
    async fn reconnect(&self, control: &mut mpsc::Receiver<Control>, since: Instant, time2wait: Option<Duration>) -> Option<Conn> {
        let t = &self.cfg.timeouts;
        let default_wait = Duration::from_secs(u64::from(self.info.read().unwrap_or_else(|e| e.into_inner()).params.default_time2wait));
        let mut delay = time2wait.unwrap_or(default_wait);
        let mut try_again = 0u32;
        let mut expiry = t.replacement.map(|r| since + r);
        loop {
            let wake = Instant::now() + delay;
            loop {
                let until = expiry.map_or(wake, |e| e.min(wake));
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {
                        if expiry.is_some_and(|e| Instant::now() >= e) {
                            tracing::warn!("replacement timeout expired: failing IO until the session is back");
                            self.shared.expire(&CommandError::ConnectionLost(
                                "the session is down and its replacement timeout expired".into(),
                            ));
                            self.set_state(LinkState::Down);
                            expiry = None;
                            continue;
                        }
                        break;
                    }
                    c = control.recv() => {
                        if let Some(Control::Logout(tx)) = c {
                            let _ = tx.send(Ok(()));
                        }
                        return None;
                    }
                }
            }
            let attempt = connect_and_login(&self.cfg.portal, self.login_params(), t.login, user_timeout(t));
            tokio::select! {
                r = attempt => match r {
                    Ok((ch, done)) => {
                        {
                            let mut info = self.info.write().unwrap_or_else(|e| e.into_inner());
                            info.tsih = done.tsih;
                            info.params = done.params.clone();
                            info.portal = ch.portal.clone();
                        }
                        tracing::info!(tsih = done.tsih, "session reinstated");
                        return Some(self.conn(ch, &done));
                    }
                    Err(e) => {
                        tracing::info!("relogin failed, retrying: {e}");
                        if e.is_try_again() {
                            // "Try again" (0x0301 service unavailable, 0x0302 out of
                            // resources): the target is about to be back, so the next try
                            // comes soon rather than after the doubled delay.
                            // 250 ms, then 0.5, 1, 2 s while it keeps saying so.
                            delay = TRY_AGAIN_DELAY * (1 << try_again.min(3)) / 2;
                            try_again += 1;
                        } else {
                            try_again = 0;
                        }
                    }
                },
                c = control.recv() => {
                    if let Some(Control::Logout(tx)) = c {
                        let _ = tx.send(Ok(()));
                    }
                    return None;
                }
            }
            let jitter = Duration::from_millis(rand::random::<u64>() % 250);
            delay = (delay * 2).clamp(TRY_AGAIN_DELAY, RECONNECT_CAP) + jitter;
        }
    }
}

impl Session {
    /// Connects, logs in and starts the supervisor task, which keeps the session up.
    pub async fn login(cfg: SessionConfig) -> Result<Session, EngineError> {
        let depth = cfg.queue_depth.clamp(1, 4096);
        let (events, _) = broadcast::channel(64);
        let shared = Arc::new(Shared::new(depth));
        let placeholder = SessionInfo {
            target_name: cfg.target_name.clone(),
            portal: cfg.portal.to_string(),
            isid: cfg.isid,
            tsih: 0,
            tpgt: None,
            target_alias: None,
            params: SessionParams::default(),
        };
        let sup = Supervisor { cfg, shared: shared.clone(), events: events.clone(), info: Arc::new(RwLock::new(placeholder)) };
        let t = &sup.cfg.timeouts;
        let (ch, done) = connect_and_login(&sup.cfg.portal, sup.login_params(), t.login, user_timeout(t)).await?;
        let info = SessionInfo {
            target_name: sup.cfg.target_name.clone(),
            portal: ch.portal.clone(),
            isid: sup.cfg.isid,
            tsih: done.tsih,
            tpgt: done.tpgt,
            target_alias: done.target_alias.clone(),
            params: done.params.clone(),
        };
        let span = tracing::info_span!("session", target = %info.target_name, portal = %info.portal);
        span.in_scope(|| tracing::info!(tsih = info.tsih, params = ?info.params, "logged in"));
        *sup.info.write().unwrap_or_else(|e| e.into_inner()) = info;
        let info = sup.info.clone();
        let logout_timeout = sup.cfg.timeouts.logout;
        let command_timeout = sup.cfg.timeouts.command;
        let conn = sup.conn(ch, &done);
        let (control, control_rx) = mpsc::channel(4);
        tokio::spawn(tracing::Instrument::instrument(sup.run(conn, control_rx), span));
        Ok(Session {
            inner: Arc::new(Inner {
                shared,
                control,
                events,
                info,
                logout_timeout,
                command_timeout,
                depth,
                throttled: Arc::default(),
            }),
        })
    }

    /// A snapshot of the session's facts (the TSIH and parameters change on reinstatement).
    pub fn info(&self) -> SessionInfo {
        self.inner.info.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn link_state(&self) -> LinkState {
        self.inner.shared.link()
    }


    pub fn stats(&self) -> &Stats {
        &self.inner.shared.stats
    }

    /// The command timeout in effect (None: commands may take for ever).
    pub fn command_timeout(&self) -> Option<Duration> {
        self.inner.command_timeout
    }

    /// After TASK SET FULL: half of the queue depth stays unused for [`THROTTLE_FOR`], as
    /// Linux lowers a device's queue depth on QUEUE FULL, so the target's task set can drain.
    /// Once at a time; the permits are taken as commands complete, so nothing in flight waits.
    pub(crate) fn throttle(&self) {
        let held = self.inner.depth / 2;
        if held == 0 || self.inner.throttled.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!(depth = self.inner.depth, held, "TASK SET FULL: sending fewer commands at once for a while");
        let shared = self.inner.shared.clone();
        let flag = self.inner.throttled.clone();
        tokio::spawn(async move {
            if let Ok(Ok(p)) = tokio::time::timeout(THROTTLE_FOR, shared.slots.sem.acquire_many(u32::from(held))).await {
                tokio::time::sleep(THROTTLE_FOR).await;
                drop(p);
            }
            flag.store(false, Ordering::SeqCst);
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.inner.events.subscribe()
    }

    /// Whether commands are still accepted.
    pub fn is_open(&self) -> bool {
        !self.inner.shared.closed.load(Ordering::SeqCst)
    }

    /// Runs one SCSI command without data on `lun` (a wire-format LUN).
    pub async fn execute_none(&self, lun: u64, cdb: &[u8]) -> Result<Completion, CommandError> {
        self.execute::<Vec<u8>>(lun, cdb, DataBuf::None).await.1
    }

    /// Runs one SCSI command on `lun` (a wire-format LUN, see `lunlink_proto::lun::encode`)
    /// and hands the buffer back with the outcome. Waits for a free slot when `queue_depth`
    /// commands are already in flight. Dropping the returned future early is safe: the buffer
    /// is never touched again and the command's outcome is discarded when it arrives (a write
    /// the target is still taking data for goes on from a copy).
    pub async fn execute<B: IoBuf>(&self, lun: u64, cdb: &[u8], data: DataBuf<B>) -> (Option<B>, Result<Completion, CommandError>) {
        let (dir, owned) = match data {
            DataBuf::None => (Dir::None, None),
            DataBuf::In(b) => (Dir::Read, Some(b)),
            DataBuf::Out(b) => (Dir::Write, Some(b)),
        };
        if cdb.is_empty() || cdb.len() > 16 {
            return (owned, Err(CommandError::InvalidRequest("CDB must be 1 to 16 bytes")));
        }
        if owned.as_ref().is_some_and(|b| u32::try_from(b.len()).is_err()) {
            return (owned, Err(CommandError::InvalidRequest("data buffer larger than 4 GiB")));
        }
        let shared = &*self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return (owned, Err(CommandError::SessionClosed));
        }
        match shared.slots.sem.acquire().await {
            Ok(p) => p.forget(),
            Err(_) => return (owned, Err(CommandError::SessionClosed)),
        }
        let idx = shared.slots.take();
        // The guard owns the buffer from here on, so that when the future is dropped early the
        // slot is marked abandoned before the buffer is freed. The pointer the connection task
        // uses is taken from the buffer in its final place (the guard does not move again while
        // the future is pinned), so moving a Box afterwards cannot invalidate it.
        let mut guard = SlotGuard { shared, idx, armed: true, buf: owned };
        let buf = match guard.buf.as_mut() {
            Some(b) => RawBuf { ptr: b.as_mut_ptr(), len: b.len() },
            None => RawBuf::EMPTY,
        };
        {
            let mut s = shared.slots.lock(idx);
            s.lun = lun;
            s.cdb = [0; 16];
            s.cdb[..cdb.len()].copy_from_slice(cdb);
            s.dir = dir;
            s.buf = buf;
            s.reissues = 0;
            s.status = 0;
            s.residual_under = 0;
            s.residual_over = 0;
            s.sense_len = 0;
            s.error = None;
        }
        {
            // Queued under the submit lock (lock order: submit, then slot), so that a
            // reconnect or an expiry sweeping the slots sees each command exactly once.
            let mut q = shared.submit.lock().unwrap_or_else(|e| e.into_inner());
            let refused = if shared.closed.load(Ordering::SeqCst) {
                Some(CommandError::SessionClosed)
            } else if shared.link() == LinkState::Down {
                Some(CommandError::ConnectionLost("the session is down and its replacement timeout expired".into()))
            } else {
                None
            };
            if let Some(e) = refused {
                drop(q);
                guard.armed = false;
                shared.slots.release(idx);
                return (guard.buf.take(), Err(e));
            }
            shared.slots.lock(idx).state = State::Queued;
            q.push_back(idx);
        }
        shared.notify.notify_one();
        let out = poll_fn(|cx| {
            let mut s = shared.slots.lock(idx);
            if s.state != State::Done {
                if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            Poll::Ready(match s.error.take() {
                Some(e) => Err(e),
                None => Ok(Completion {
                    status: s.status,
                    residual_under: s.residual_under,
                    residual_over: s.residual_over,
                    sense: s.sense,
                    sense_len: s.sense_len,
                }),
            })
        })
        .await;
        guard.armed = false;
        shared.slots.release(idx);
        (guard.buf.take(), out)
    }

    /// Logs out cleanly (§6.3 close session). Commands still in flight fail with SessionClosed.
    pub async fn logout(&self) -> Result<(), EngineError> {
        if !self.is_open() {
            return Ok(());
        }
        // New commands are refused at once; those in flight finish or fail when the
        // connection task ends (it alone settles them, so no PDU can race a settled slot).
        self.inner.shared.refuse_new();
        let (tx, rx) = oneshot::channel();
        if self.inner.control.send(Control::Logout(tx)).await.is_err() {
            return Ok(()); // the connection task is already gone
        }
        let t = self.inner.logout_timeout;
        match tokio::time::timeout(t, rx).await {
            Err(_) => Err(EngineError::Timeout("logout", t)),
            Ok(Err(_)) => Ok(()), // connection ended meanwhile: nothing is left to log out of
            Ok(Ok(r)) => r.map_err(EngineError::Logout),
        }
    }
}

/// Hands a slot back if the caller's future is dropped before the outcome was taken.
struct SlotGuard<'a, B> {
    shared: &'a Shared,
    idx: u16,
    armed: bool,
    /// The caller's buffer: dropped only after `drop` below has run.
    buf: Option<B>,
}

impl<B> Drop for SlotGuard<'_, B> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let release = {
            let mut s = self.shared.slots.lock(self.idx);
            if s.state == State::Done {
                true
            } else {
                // The connection task frees it when the outcome arrives, and never touches the
                // caller's buffer again from now on. A write the target may still ask data
                // for keeps going from a copy (allocated only here, on cancellation): sending
                // anything else would put garbage on the disk.
                if s.dir == Dir::Write && s.state == State::Sent && s.buf.len > 0 {
                    // SAFETY: the guard still owns the caller's buffer (its field is dropped after this).
                    let copy: Box<[u8]> = unsafe { std::slice::from_raw_parts(s.buf.ptr, s.buf.len) }.into();
                    let mut copy = copy;
                    s.buf = RawBuf { ptr: copy.as_mut_ptr(), len: copy.len() };
                    s.owned = Some(copy);
                }
                s.abandoned = true;
                s.waker = None;
                false
            }
        };
        if release {
            self.shared.slots.release(self.idx);
        }
    }
}
