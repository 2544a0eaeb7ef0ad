//! Sessions: log in, run commands, log out.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use lunlink_proto::discovery::Portal;
use lunlink_proto::login::{Auth, LoginParams, SessionType};
use lunlink_proto::negotiate::{Offer, SessionParams};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::conn::{self, Conn, ConnExit, Control, Shared, Stats};
use crate::error::{CommandError, EngineError};
use crate::slots::{Dir, RawBuf, State, SENSE_MAX};
use crate::transport::connect_and_login;

/// Timeouts of a session; `None` disables NOP-Out pings.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub login: Duration,
    pub logout: Duration,
    pub noop_interval: Option<Duration>,
    pub noop_timeout: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            login: Duration::from_secs(15),
            logout: Duration::from_secs(15),
            noop_interval: Some(Duration::from_secs(5)),
            noop_timeout: Duration::from_secs(5),
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
    /// The initiator's session id part (§11.12.5); the daemon keeps it stable per node.
    pub isid: [u8; 6],
    /// Commands in flight at most (the slot table size), 1..=4096.
    pub queue_depth: u16,
    pub timeouts: Timeouts,
}

/// Things that happen to a session, for its owner.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A SCSI asynchronous event (e.g. REPORTED LUNS DATA HAS CHANGED), with its sense data.
    ScsiAsync { lun: u64, sense: Vec<u8> },
    /// The target asked for a logout; the engine performs it.
    TargetRequestedLogout,
    /// The connection ended; no command will complete any more.
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

/// The buffer of one command: data in (read), data out (write) or none.
#[derive(Debug)]
pub enum DataBuf<'a> {
    None,
    In(&'a mut [u8]),
    Out(&'a [u8]),
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
    info: SessionInfo,
    logout_timeout: Duration,
}

/// A logged-in session. Cheap to clone; all clones drive the same connection.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("info", &self.inner.info).finish()
    }
}

impl Session {
    /// Connects, logs in and starts the connection task.
    pub async fn login(cfg: SessionConfig) -> Result<Session, EngineError> {
        let depth = cfg.queue_depth.clamp(1, 4096);
        let params = LoginParams {
            initiator_name: cfg.initiator_name.clone(),
            initiator_alias: cfg.initiator_alias.clone(),
            target_name: Some(cfg.target_name.clone()),
            session_type: SessionType::Normal,
            isid: cfg.isid,
            tsih: 0,
            cid: 0,
            cmd_sn: 1,
            itt: 0,
            auth: cfg.auth.clone(),
            offer: cfg.offer.clone(),
        };
        let (ch, done) = connect_and_login(&cfg.portal, params, cfg.timeouts.login).await?;
        let info = SessionInfo {
            target_name: cfg.target_name.clone(),
            portal: ch.portal.clone(),
            isid: cfg.isid,
            tsih: done.tsih,
            tpgt: done.tpgt,
            target_alias: done.target_alias.clone(),
            params: done.params.clone(),
        };
        let span = tracing::info_span!("session", target = %info.target_name, portal = %info.portal, tsih = info.tsih);
        span.in_scope(|| tracing::info!(params = ?info.params, "logged in"));
        let shared = Arc::new(Shared::new(depth));
        let (events, _) = broadcast::channel(64);
        let (control, control_rx) = mpsc::channel(4);
        let mut conn = Conn::new(
            ch.stream,
            shared.clone(),
            events.clone(),
            done.params.clone(),
            done.cmd_sn,
            done.exp_cmd_sn,
            done.max_cmd_sn,
            done.stat_sn,
            conn::Timeouts { noop_interval: cfg.timeouts.noop_interval, noop_timeout: cfg.timeouts.noop_timeout },
        );
        conn.seed(&ch.decoder.into_pending());
        let task_shared = shared.clone();
        let task_events = events.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let exit = conn.run(control_rx).await;
                let err = match &exit {
                    ConnExit::Failed(why) => {
                        tracing::warn!(reason = %why, "connection failed");
                        CommandError::ConnectionLost(why.clone())
                    }
                    ConnExit::LoggedOut | ConnExit::TargetRequestedLogout => {
                        tracing::info!("logged out");
                        CommandError::SessionClosed
                    }
                };
                task_shared.close(&err);
                let _ = task_events.send(SessionEvent::Closed(exit));
            },
            span,
        ));
        Ok(Session {
            inner: Arc::new(Inner { shared, control, events, info, logout_timeout: cfg.timeouts.logout }),
        })
    }

    pub fn info(&self) -> &SessionInfo {
        &self.inner.info
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.shared.stats
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.inner.events.subscribe()
    }

    /// Whether commands are still accepted.
    pub fn is_open(&self) -> bool {
        !self.inner.shared.closed.load(Ordering::SeqCst)
    }

    /// Runs one SCSI command on `lun` (a wire-format LUN, see `lunlink_proto::lun::encode`).
    /// Waits for a free slot when `queue_depth` commands are already in flight. Dropping the
    /// returned future early is safe: the buffer is released at once and the command's outcome
    /// is discarded when it arrives.
    pub async fn execute(&self, lun: u64, cdb: &[u8], data: DataBuf<'_>) -> Result<Completion, CommandError> {
        if cdb.is_empty() || cdb.len() > 16 {
            return Err(CommandError::InvalidRequest("CDB must be 1 to 16 bytes"));
        }
        let (dir, buf) = match data {
            DataBuf::None => (Dir::None, RawBuf::EMPTY),
            DataBuf::In(b) => (Dir::Read, RawBuf { ptr: b.as_mut_ptr(), len: b.len() }),
            DataBuf::Out(b) => (Dir::Write, RawBuf { ptr: b.as_ptr().cast_mut(), len: b.len() }),
        };
        if u32::try_from(buf.len).is_err() {
            return Err(CommandError::InvalidRequest("data buffer larger than 4 GiB"));
        }
        let shared = &*self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(CommandError::SessionClosed);
        }
        shared.slots.sem.acquire().await.map_err(|_| CommandError::SessionClosed)?.forget();
        let idx = shared.slots.take();
        let mut guard = SlotGuard { shared, idx, armed: true };
        {
            let mut s = shared.slots.lock(idx);
            s.lun = lun;
            s.cdb = [0; 16];
            s.cdb[..cdb.len()].copy_from_slice(cdb);
            s.dir = dir;
            s.buf = buf;
            s.status = 0;
            s.residual_under = 0;
            s.residual_over = 0;
            s.sense_len = 0;
            s.error = None;
            s.state = State::Queued;
        }
        {
            let mut q = shared.submit.lock().unwrap_or_else(|e| e.into_inner());
            if shared.closed.load(Ordering::SeqCst) {
                drop(q);
                guard.armed = false;
                shared.slots.release(idx);
                return Err(CommandError::SessionClosed);
            }
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
        out
    }

    /// Logs out cleanly (§6.3 close session). Commands still in flight fail with SessionClosed.
    pub async fn logout(&self) -> Result<(), EngineError> {
        if !self.is_open() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        if self.inner.control.send(Control::Logout(tx)).await.is_err() {
            return Ok(()); // the connection task is already gone
        }
        let t = self.inner.logout_timeout;
        match tokio::time::timeout(t, rx).await {
            Err(_) => Err(EngineError::Timeout("logout", t)),
            Ok(Err(_)) => Ok(()), // connection ended meanwhile: nothing is left to log out of
            Ok(Ok(r)) => {
                // Commands are refused from now on, not only once the connection task ends.
                self.inner.shared.close(&CommandError::SessionClosed);
                r.map_err(EngineError::Logout)
            }
        }
    }
}

/// Hands a slot back if the caller's future is dropped before the outcome was taken.
struct SlotGuard<'a> {
    shared: &'a Shared,
    idx: u16,
    armed: bool,
}

impl Drop for SlotGuard<'_> {
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
                // buffer again from now on.
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
