//! Logical units over several paths: which path a command takes, what a failure means, when a
//! path comes back. Between the session engine and whatever presents the LU (the ublk device
//! layer, lunlink-bench): it knows engine sessions and SCSI errors, nothing of ublk or D-Bus,
//! and is tested on the host against real targets.
//!
//! A [`LogicalUnit`] has paths (a session and a LUN number each) and a [`Policy`]. A command
//! asks [`LogicalUnit::next_path`] for a path, runs there through [`LogicalUnit::run_on`], and
//! is told whether it is done or goes again elsewhere:
//!
//! - **Path versus target errors** ([`lunlink_scsi::Disposition`], Linux's `blk_path_error`
//!   split): a transport failure, or a status another path may not repeat (NOT READY standby,
//!   LU not supported here, ...), fails the path and the command goes to another path at once;
//!   a target error (medium, protection, invalid request, reservation conflict, no space) goes
//!   to the caller without trying other paths.
//! - **Silent loss**: while another path is usable, a command gets [`Timers::path_timeout`] on
//!   its path; then the path counts as failed and the command moves. A command waiting in a
//!   session that lost its connection moves as soon as another path is usable, instead of
//!   waiting for the relogin.
//! - **Failback**: failed paths whose session is logged in are probed (TEST UNIT READY) every
//!   [`Timers::check_interval`] and carry IO again once they answer. A path that failed three
//!   times within a minute is held out for a minute, unless it is the last one.
//! - **ALUA** (SPC-4 §5.16): a path whose LU reports target port groups
//!   ([`Path::set_alua`]) carries IO by its group's access state: active/optimized paths while
//!   any is usable, then active/non-optimized; never standby, unavailable, offline or
//!   transitioning ones. The states are read with REPORT TARGET PORT GROUPS when a path comes,
//!   when a session reports news (UNIT ATTENTION 2A/06 and the like, counted by the engine),
//!   when a command meets NOT READY 04/0A-0C (it goes to another path at once, without failing
//!   its path), and without news every 0.2 s while IO waits for a group to become active,
//!   every check interval while no path is active/optimized.
//! - **No usable path**: IO waits (the LU is `queueing`) for [`Timers::no_path_timeout`], then
//!   fails; [`LogicalUnit::fail_queued`] fails waiting IO at once. An LU with a single path
//!   keeps the session's own rules (its replacement timeout decides).
//!
//! Nothing here allocates per command.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use lunlink_engine::{CommandError, LinkState, ScsiOpError, Session};
use lunlink_scsi::{AccessState, Disposition, ScsiError};
use tokio::time::Instant;

/// How a command picks among the usable paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Policy {
    /// The first usable path, in the order the paths came; the others stand by.
    Failover,
    /// Each command on the next usable path in turn.
    RoundRobin,
    /// The usable path with the fewest commands in flight (NVMe's queue-depth policy).
    #[default]
    QueueDepth,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Failover => "failover",
            Policy::RoundRobin => "round-robin",
            Policy::QueueDepth => "queue-depth",
        }
    }

    pub fn from_name(s: &str) -> Option<Policy> {
        match s {
            "failover" => Some(Policy::Failover),
            "round-robin" => Some(Policy::RoundRobin),
            "queue-depth" => Some(Policy::QueueDepth),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            Policy::Failover => 0,
            Policy::RoundRobin => 1,
            Policy::QueueDepth => 2,
        }
    }

    fn from_code(c: u8) -> Policy {
        match c {
            0 => Policy::Failover,
            1 => Policy::RoundRobin,
            _ => Policy::QueueDepth,
        }
    }
}

/// The multipath timers (config `[multipath]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timers {
    /// While another path is usable, a command gets this long on its path before the path
    /// counts as failed and the command moves. A healthy LU answers in milliseconds; a target
    /// that sends nothing for this long (a pulled cable sends no RST) is taken for dead well
    /// before the session's NOP-Out pings (5 s + 5 s) or its replacement timeout would say so.
    pub path_timeout: Duration,
    /// How often failed paths are probed, and so how soon one that is back carries IO again.
    pub check_interval: Duration,
    /// How long IO waits when no path is usable; None: for ever.
    pub no_path_timeout: Option<Duration>,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            path_timeout: Duration::from_secs(3),
            check_interval: Duration::from_secs(2),
            no_path_timeout: Some(Duration::from_secs(60)),
        }
    }
}

/// A path failing this often within [`HOLD_WINDOW`] is held out for [`HOLD_WINDOW`].
const HOLD_FAILURES: usize = 3;
const HOLD_WINDOW: Duration = Duration::from_secs(60);
/// How often a command that waits (on a path that may be dying, or for any path) looks again.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Where a path stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// Carries IO under the policy.
    Active,
    /// Usable, but the policy (failover) sends IO elsewhere.
    Standby,
    /// Its session is not logged in, or it failed a command and has not answered a probe yet.
    Failed,
    /// Failed too often lately: not used for a while unless it is the last path.
    HeldOut,
}

impl PathState {
    pub fn as_str(self) -> &'static str {
        match self {
            PathState::Active => "active",
            PathState::Standby => "standby",
            PathState::Failed => "failed",
            PathState::HeldOut => "held-out",
        }
    }
}

/// Where a logical unit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LuState {
    /// Every path is usable.
    Optimal,
    /// Some paths are usable.
    Degraded,
    /// IO waits for a path that answers: none is usable, or the last one has not answered
    /// for the path timeout.
    Queueing,
    /// No path is usable.
    Failed,
}

impl LuState {
    pub fn as_str(self) -> &'static str {
        match self {
            LuState::Optimal => "optimal",
            LuState::Degraded => "degraded",
            LuState::Queueing => "queueing",
            LuState::Failed => "failed",
        }
    }
}

#[derive(Debug, Default)]
struct Health {
    /// Its session logged in again and the LU's identity on it is not checked yet: no IO.
    held: bool,
    /// Failed a command; cleared by a successful probe or a relogin.
    failed: bool,
    /// When it failed lately (for holding out).
    failures: VecDeque<Instant>,
    held_until: Option<Instant>,
}

/// `Path::alua` when the LU has no ALUA (TPGS 0): every path is as good as the others.
const NO_ALUA: u8 = 0xff;
/// `Path::alua` when the LU has ALUA and this path's state is not known yet.
const ALUA_UNKNOWN: u8 = 0xfe;
/// The PREF bit kept with the state code in `Path::alua`.
const ALUA_PREF: u8 = 0x80;

/// Where a path stands in its LU's target port groups.
#[derive(Debug, Default, Clone, Copy)]
struct AluaPort {
    /// Target port group, from VPD 0x83.
    group: Option<u16>,
    /// Relative target port, from VPD 0x83 (finds the group when the target names only it).
    port: Option<u16>,
}

/// One path to the LU: a session and the LU's number there.
pub struct Path {
    pub id: u64,
    pub session: Session,
    pub lun: u16,
    in_flight: AtomicU32,
    health: Mutex<Health>,
    /// The ALUA state code of its group (with `ALUA_PREF`), `NO_ALUA` or `ALUA_UNKNOWN`.
    alua: AtomicU8,
    port: Mutex<AluaPort>,
    /// The session's `alua_news` counter when this path's states were last read.
    news_seen: AtomicU64,
}

impl Path {
    pub fn new(id: u64, session: Session, lun: u16) -> Path {
        Path {
            id,
            session,
            lun,
            in_flight: AtomicU32::new(0),
            health: Mutex::default(),
            alua: AtomicU8::new(NO_ALUA),
            port: Mutex::default(),
            news_seen: AtomicU64::new(0),
        }
    }

    /// Tells the path about ALUA from what its session read of the LU: TPGS of the standard
    /// INQUIRY data (0: no ALUA) and the target port group and relative target port of VPD
    /// page 0x83. With ALUA, the path carries no IO before its LU's states were read (see
    /// [`LogicalUnit::alua_news`]) unless nothing better is known.
    pub fn set_alua(&self, tpgs: u8, group: Option<u16>, port: Option<u16>) {
        *self.port.lock().unwrap_or_else(|e| e.into_inner()) = AluaPort { group, port };
        let code = if tpgs & 3 == 0 { NO_ALUA } else { ALUA_UNKNOWN };
        self.alua.store(code, Ordering::Relaxed);
    }

    /// The ALUA access state of its target port group, when the LU has ALUA and it is known.
    pub fn access_state(&self) -> Option<AccessState> {
        match self.alua.load(Ordering::Relaxed) {
            NO_ALUA | ALUA_UNKNOWN => None,
            c => Some(AccessState::from_code(c)),
        }
    }

    /// Whether the LU has ALUA (states are read for this path).
    pub fn has_alua(&self) -> bool {
        self.alua.load(Ordering::Relaxed) != NO_ALUA
    }

    /// Its target port group (VPD 0x83), when the LU has ALUA.
    pub fn target_port_group(&self) -> Option<u16> {
        self.port.lock().unwrap_or_else(|e| e.into_inner()).group
    }

    /// How good the path is for IO by ALUA, lower is better; None: no IO through it. Without
    /// ALUA every path ranks 0; active/optimized ranks 0-1 (preferred first), non-optimized
    /// 2-3, not read yet 4.
    fn rank(&self) -> Option<u8> {
        match self.alua.load(Ordering::Relaxed) {
            NO_ALUA => Some(0),
            ALUA_UNKNOWN => Some(4),
            c => AccessState::from_code(c).io_rank().map(|r| 2 * r + u8::from(c & ALUA_PREF == 0)),
        }
    }

    fn set_access_state(&self, s: AccessState, preferred: bool) -> bool {
        let code = s.code() | if preferred { ALUA_PREF } else { 0 };
        self.alua.swap(code, Ordering::Relaxed) != code
    }

    /// The access state a failed command reports for this path's group (NOT READY 04/0A,
    /// 04/0B, 04/0C, 04/12), when the LU has ALUA.
    fn refused_by_alua<T>(&self, r: &Result<T, ScsiOpError>) -> Option<AccessState> {
        match r {
            Err(ScsiOpError::Scsi(ScsiError::CheckCondition(s))) if self.has_alua() => s.alua_state(),
            _ => None,
        }
    }

    /// Whether its session reported ALUA news since its states were last read.
    fn has_news(&self) -> bool {
        self.has_alua() && self.session.stats().alua_news.load(Ordering::Relaxed) != self.news_seen.load(Ordering::Relaxed)
    }

    /// Commands of this LU in flight on this path.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn logged_in(&self) -> bool {
        self.session.link_state() == LinkState::LoggedIn
    }

    /// Usable at `now`: logged in, not failed, not held out, not held for an identity check.
    fn usable(&self, now: Instant) -> bool {
        self.logged_in() && {
            let h = self.health();
            !h.failed && !h.held && h.held_until.is_none_or(|t| now >= t)
        }
    }

    /// Holds IO off this path until [`Path::release`]: its session is (re)logging in and the
    /// LU behind its LUN number must be checked to be the same one (a LUN number reused for
    /// another LU must never receive this LU's IO).
    pub fn hold(&self) {
        self.health().held = true;
    }

    pub fn release(&self) {
        self.health().held = false;
    }

    pub fn is_held(&self) -> bool {
        self.health().held
    }
}

/// Why a command failed for good.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LuError {
    /// No path was usable for the no-path timeout, or waiting IO was failed on request.
    #[error("no usable path to the logical unit: {0}")]
    NoPath(&'static str),
    /// The command's own failure: a target error, or a path error with no other path.
    #[error(transparent)]
    Op(#[from] ScsiOpError),
}

impl LuError {
    /// The errno for a block request (see `ScsiError::errno`).
    pub fn errno(&self) -> i32 {
        match self {
            LuError::NoPath(_) => libc::EIO,
            LuError::Op(ScsiOpError::Scsi(s)) => s.errno(),
            LuError::Op(ScsiOpError::Invalid(_)) => libc::EINVAL,
            LuError::Op(_) => libc::EIO,
        }
    }
}

/// Whether a failure is the path's (another path may do better) rather than the LU's.
pub fn is_path_error(e: &ScsiOpError) -> bool {
    match e {
        ScsiOpError::Command(c) => !matches!(c, CommandError::InvalidRequest(_)),
        ScsiOpError::Scsi(s) => match s.disposition() {
            Disposition::TargetError => false,
            // Retries were spent on this path (BUSY for the whole command timeout, unit
            // attentions over and over): another path may answer.
            Disposition::PathError | Disposition::RetryNow | Disposition::RetryLater | Disposition::QueueFull => true,
        },
        ScsiOpError::Data(_) | ScsiOpError::Invalid(_) | ScsiOpError::ShortTransfer { .. } => false,
        _ => true,
    }
}

/// One command's progress over the paths.
pub struct Attempt {
    /// Since when it waits for a usable path, if it does.
    queued_since: Option<Instant>,
    /// `LogicalUnit::fail_gen` when it started: a later `fail_queued` fails it.
    fail_gen: u64,
    /// Paths it failed on (ids), at most a few, so a path error loops at most once per path.
    tries: u32,
}

/// What happened to one try.
pub enum Tried<T> {
    /// Done, with the command's result (a target error goes to the caller as it is).
    Done(Result<T, LuError>),
    /// Go again on another path.
    Again,
}

/// A logical unit and its paths.
pub struct LogicalUnit {
    /// The LU's identity (its WWID, or target/portal/LUN without one).
    pub key: String,
    paths: RwLock<Vec<Arc<Path>>>,
    policy: AtomicU8,
    next: AtomicUsize,
    /// Commands waiting for a usable path.
    queued: AtomicU32,
    fail_gen: AtomicU64,
    timers: Timers,
    /// Bumped whenever a path's or the LU's state may have changed (for the D-Bus objects).
    changes: tokio::sync::watch::Sender<u64>,
    /// Wakes the checker to read the ALUA states now.
    alua_wake: Arc<tokio::sync::Notify>,
    /// When not 0: IO waits at most this many milliseconds for a usable path (see
    /// [`LogicalUnit::cap_waiting`]).
    wait_cap_ms: AtomicU64,
}

/// Counts a command in flight on a path while it lives.
struct InFlight<'a>(&'a Path);

impl<'a> InFlight<'a> {
    fn new(p: &'a Path) -> Self {
        p.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(p)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a command as queued (no usable path) while it lives.
struct Queued<'a>(&'a AtomicU32);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl LogicalUnit {
    /// A new LU; its path checker runs on the current tokio runtime while the LU lives.
    pub fn new(key: String, policy: Policy, timers: Timers) -> Arc<LogicalUnit> {
        let lu = Arc::new(LogicalUnit {
            key,
            paths: RwLock::default(),
            policy: AtomicU8::new(policy.code()),
            next: AtomicUsize::new(0),
            queued: AtomicU32::new(0),
            fail_gen: AtomicU64::new(0),
            timers,
            changes: tokio::sync::watch::Sender::new(0),
            alua_wake: Arc::new(tokio::sync::Notify::new()),
            wait_cap_ms: AtomicU64::new(0),
        });
        tokio::spawn(check_paths(Arc::downgrade(&lu)));
        lu
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Path>>> {
        self.paths.read().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees a new value whenever a path or the LU may have changed state.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn add_path(&self, p: Arc<Path>) {
        let alua = p.has_alua();
        self.paths.write().unwrap_or_else(|e| e.into_inner()).push(p);
        self.changed();
        if alua {
            self.alua_news();
        }
    }

    /// The ALUA states may have changed (a path came back, the target said so): they are read
    /// again soon, off the caller's task.
    pub fn alua_news(&self) {
        self.alua_wake.notify_one();
    }

    /// Removes path `id`; true when the LU has no path left.
    pub fn remove_path(&self, id: u64) -> bool {
        let mut paths = self.paths.write().unwrap_or_else(|e| e.into_inner());
        paths.retain(|p| p.id != id);
        let empty = paths.is_empty();
        drop(paths);
        self.changed();
        empty
    }

    pub fn paths(&self) -> Vec<Arc<Path>> {
        self.read().clone()
    }

    pub fn policy(&self) -> Policy {
        Policy::from_code(self.policy.load(Ordering::Relaxed))
    }

    pub fn set_policy(&self, p: Policy) {
        self.policy.store(p.code(), Ordering::Relaxed);
        self.changed();
    }

    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Caps how long IO waits for a usable path (None: the no-path timeout again). For the IO
    /// the kernel sends while a device is being made (the partition table): a device whose
    /// only paths are ALUA standby must not keep its creation (and the login behind it)
    /// waiting for the whole no-path timeout.
    pub fn cap_waiting(&self, cap: Option<Duration>) {
        let ms = cap.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
        self.wait_cap_ms.store(ms, Ordering::Relaxed);
    }

    /// How long IO waits for a usable path now.
    fn no_path_limit(&self) -> Option<Duration> {
        match self.wait_cap_ms.load(Ordering::Relaxed) {
            0 => self.timers.no_path_timeout,
            ms => Some(self.timers.no_path_timeout.map_or(Duration::from_millis(ms), |t| t.min(Duration::from_millis(ms)))),
        }
    }

    /// Commands waiting for a usable path now.
    pub fn queued(&self) -> u32 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Fails every command that waits for a path, at once (the way out of a dead array).
    pub fn fail_queued(&self) {
        self.fail_gen.fetch_add(1, Ordering::SeqCst);
        self.changed();
    }

    pub fn state(&self) -> LuState {
        let now = Instant::now();
        let paths = self.read();
        let usable = paths.iter().filter(|p| p.usable(now)).count();
        let carrying = paths.iter().filter(|p| p.usable(now) && p.rank().is_some()).count();
        if self.queued() > 0 {
            // IO waits for a path that answers.
            LuState::Queueing
        } else if usable > 0 && carrying == 0 {
            // Paths are up, but ALUA lets none of them carry IO (all standby or in transition):
            // IO that comes waits for a state change.
            LuState::Degraded
        } else if !paths.is_empty() && usable == paths.len() {
            LuState::Optimal
        } else if usable > 0 {
            LuState::Degraded
        } else {
            LuState::Failed
        }
    }

    /// Where path `id` stands under the current policy.
    pub fn path_state(&self, id: u64) -> Option<PathState> {
        let now = Instant::now();
        let paths = self.read();
        let p = paths.iter().find(|p| p.id == id)?;
        let best = paths.iter().filter(|q| q.usable(now)).filter_map(|q| q.rank()).min();
        Some(if !p.logged_in() || p.health().failed || p.is_held() {
            PathState::Failed
        } else if !p.usable(now) {
            PathState::HeldOut
        } else if p.rank().is_none() || p.rank() > best {
            // ALUA sends IO elsewhere (or nowhere) for now.
            PathState::Standby
        } else if self.policy() == Policy::Failover
            && paths.iter().find(|q| q.usable(now) && q.rank() == best).is_some_and(|q| q.id != id)
        {
            PathState::Standby
        } else {
            PathState::Active
        })
    }

    /// The policy's pick among the usable paths (held-out ones only when nothing else is).
    fn pick(&self, now: Instant) -> Option<Arc<Path>> {
        let paths = self.read();
        // A single path keeps the session's own rules: its IO waits in the session while it
        // reconnects, and fails when its replacement timeout says so (but not while its LU
        // identity is being checked after a relogin).
        // ALUA keeping its only path from IO (standby, in transition, ...) makes it wait like
        // any LU without a usable path.
        if paths.len() == 1 {
            return paths.first().filter(|p| !(p.is_held() && p.logged_in()) && p.rank().is_some()).cloned();
        }
        // ALUA: only the best access state present carries IO.
        let Some(best) = paths.iter().filter(|p| p.usable(now)).filter_map(|p| p.rank()).min() else {
            // The last resort: a held-out path whose session is up, which is not failed and
            // which ALUA lets carry IO. None: IO waits.
            return paths
                .iter()
                .find(|p| p.logged_in() && !p.health().failed && !p.is_held() && p.rank().is_some())
                .cloned();
        };
        let candidates = || paths.iter().filter(|p| p.usable(now) && p.rank() == Some(best));
        match self.policy() {
            Policy::Failover => candidates().next().cloned(),
            Policy::QueueDepth => candidates().min_by_key(|p| p.in_flight()).cloned(),
            Policy::RoundRobin => {
                let k = self.next.fetch_add(1, Ordering::Relaxed) % candidates().count().max(1);
                // A path that changed state between the two passes: take the first one left.
                candidates().nth(k).or_else(|| candidates().next()).cloned()
            }
        }
    }

    /// Whether a path other than `id` can carry IO now.
    fn other_usable(&self, id: u64, now: Instant) -> bool {
        self.read().iter().any(|p| p.id != id && p.usable(now) && p.rank().is_some())
    }

    /// A new command's progress record.
    pub fn attempt(&self) -> Attempt {
        Attempt { queued_since: None, fail_gen: self.fail_gen.load(Ordering::SeqCst), tries: 0 }
    }

    /// The path for the next try of a command. When no path is usable the command waits (the
    /// LU is `queueing`) up to the no-path timeout.
    pub async fn next_path(&self, a: &mut Attempt) -> Result<Arc<Path>, LuError> {
        let mut counted: Option<Queued<'_>> = None;
        // While it waits, a change of the LU (a path back, an ALUA state read) wakes it at once.
        let mut changes: Option<tokio::sync::watch::Receiver<u64>> = None;
        loop {
            let now = Instant::now();
            if self.fail_gen.load(Ordering::SeqCst) != a.fail_gen {
                return Err(LuError::NoPath("queued IO was failed on request"));
            }
            if let Some(p) = self.pick(now) {
                return Ok(p);
            }
            if self.read().is_empty() {
                return Err(LuError::NoPath("the logical unit has no path"));
            }
            let since = *a.queued_since.get_or_insert(now);
            if self.no_path_limit().is_some_and(|t| now >= since + t) {
                return Err(LuError::NoPath("none came back within the no-path timeout"));
            }
            if counted.is_none() {
                self.queued.fetch_add(1, Ordering::Relaxed);
                counted = Some(Queued(&self.queued));
                self.changed();
            }
            let rx = changes.get_or_insert_with(|| {
                let mut rx = self.changes.subscribe();
                rx.mark_unchanged();
                rx
            });
            tokio::select! {
                _ = rx.changed() => {}
                () = tokio::time::sleep(LOOK_EVERY) => {}
            }
        }
    }

    /// Marks path `p` failed (a command failed or timed out on it).
    fn fail_path(&self, p: &Path, why: &dyn std::fmt::Display) {
        let now = Instant::now();
        let held = {
            let mut h = p.health();
            let was = std::mem::replace(&mut h.failed, true);
            if was {
                return;
            }
            h.failures.push_back(now);
            while h.failures.front().is_some_and(|t| now.duration_since(*t) > HOLD_WINDOW) {
                h.failures.pop_front();
            }
            let held = h.failures.len() >= HOLD_FAILURES;
            if held {
                h.held_until = Some(now + HOLD_WINDOW);
                h.failures.clear();
            }
            held
        };
        if held {
            tracing::warn!(lu = %self.key, path = p.id, "path failed {HOLD_FAILURES} times within {HOLD_WINDOW:?}: held out for as long: {why}");
        } else {
            tracing::warn!(lu = %self.key, path = p.id, "path failed: {why}");
        }
        self.changed();
    }

    /// Runs one try of a command (`fut`, the command on path `p`) and says what follows.
    /// On a multipath LU the try is watched: it moves when it waited [`Timers::path_timeout`]
    /// while another path was usable, or when its own path went down and another is usable,
    /// or fails when no path came back within the no-path timeout.
    pub async fn run_on<T>(&self, p: &Path, a: &mut Attempt, fut: impl Future<Output = Result<T, ScsiOpError>>) -> Tried<T> {
        let _counted = InFlight::new(p);
        let r = if self.read().len() < 2 {
            fut.await
        } else {
            match self.watch(p, a, fut).await {
                Ok(r) => r,
                Err(moved) => return moved,
            }
        };
        if p.has_news() {
            self.alua_news();
        }
        // NOT READY for an ALUA reason (standby, unavailable, offline, or still in transition
        // after the engine's retries): the path is fine, its group just takes no IO now.
        if let Some(state) = p.refused_by_alua(&r) {
            if p.set_access_state(state, false) {
                tracing::info!(lu = %self.key, path = p.id, "path reports ALUA state {}", state.as_str());
                self.changed();
            }
            self.alua_news();
            // Not a path failure, so not counted in `tries`: the bounces are bounded in time,
            // by the no-path timeout (an array whose RTPG and IO answers disagree for good).
            let since = *a.queued_since.get_or_insert_with(Instant::now);
            if self.no_path_limit().is_none_or(|t| since.elapsed() < t) {
                return Tried::Again;
            }
        }
        match r {
            Ok(v) => Tried::Done(Ok(v)),
            // Another path exists (the failed one may already be gone: a path logged out
            // with this command in flight).
            Err(e) if is_path_error(&e) && self.read().iter().any(|q| q.id != p.id) && a.tries < 16 => {
                a.tries += 1;
                self.fail_path(p, &e);
                Tried::Again
            }
            Err(e) => Tried::Done(Err(LuError::Op(e))),
        }
    }

    /// `fut` under the multipath timers: its result, or what to do instead.
    async fn watch<T>(&self, p: &Path, a: &mut Attempt, fut: impl Future<Output = Result<T, ScsiOpError>>) -> Result<Result<T, ScsiOpError>, Tried<T>> {
        let start = Instant::now();
        let mut fut = std::pin::pin!(fut);
        let mut counted: Option<Queued<'_>> = None;
        loop {
            let look = tokio::time::sleep(LOOK_EVERY);
            tokio::select! {
                biased;
                r = &mut fut => return Ok(r),
                () = look => {}
            }
            let now = Instant::now();
            if self.fail_gen.load(Ordering::SeqCst) != a.fail_gen {
                return Err(Tried::Done(Err(LuError::NoPath("queued IO was failed on request"))));
            }
            let others = self.other_usable(p.id, now);
            if p.has_news() {
                // The engine retries a unit attention or an ALUA NOT READY (in transition) on
                // this path itself: read the states now rather than after the command.
                self.alua_news();
            }
            if others && p.rank().is_none() {
                // ALUA took this path out of IO (standby, in transition) while the command
                // waited there: the path is fine, the command goes where IO may go.
                return Err(Tried::Again);
            }
            if others && !p.logged_in() {
                // Its session lost the connection: do not wait for the relogin.
                a.tries += 1;
                self.fail_path(p, &"the session lost its connection with commands in flight");
                return Err(Tried::Again);
            }
            if others && now.duration_since(start) >= self.timers.path_timeout {
                a.tries += 1;
                self.fail_path(p, &format_args!("no answer within {:?}", self.timers.path_timeout));
                return Err(Tried::Again);
            }
            if !others && (!p.usable(now) || now.duration_since(start) >= self.timers.path_timeout) {
                // No other path, and this one is down or has not answered for the path timeout:
                // the command waits (in its session, which may be reconnecting) for the
                // no-path timeout at most. It is not cancelled: on the last path a slow answer
                // is still an answer.
                let since = *a.queued_since.get_or_insert(now);
                if counted.is_none() {
                    self.queued.fetch_add(1, Ordering::Relaxed);
                    counted = Some(Queued(&self.queued));
                    self.changed();
                }
                if self.no_path_limit().is_some_and(|t| now >= since + t) {
                    return Err(Tried::Done(Err(LuError::NoPath("none came back within the no-path timeout"))));
                }
            }
        }
    }
}

/// How often the ALUA states are read without news while IO waits for a state change (no
/// path may carry IO): the target may not tell, since the group that became active has no
/// commands to report on.
const ALUA_WAITING_POLL: Duration = Duration::from_millis(200);
/// ... while a path is in transition or its state was not read yet.
const ALUA_UNSETTLED_POLL: Duration = Duration::from_millis(500);

impl LogicalUnit {
    /// How soon the ALUA states should be read again without news, if at all: fast while IO
    /// waits for a group to become active, soon while a path is in transition or not read yet,
    /// every check interval while no path is active/optimized (so that IO returns to an
    /// optimized group soon after it is one again); never otherwise (news drives the reads).
    fn alua_poll(&self) -> Option<Duration> {
        let now = Instant::now();
        let paths = self.read();
        if !paths.iter().any(|p| p.has_alua()) {
            return None;
        }
        if self.queued() > 0 {
            Some(ALUA_WAITING_POLL)
        } else if paths.iter().any(|p| p.alua.load(Ordering::Relaxed) == ALUA_UNKNOWN || p.access_state() == Some(AccessState::Transitioning)) {
            Some(ALUA_UNSETTLED_POLL)
        } else if !paths.iter().any(|p| p.usable(now) && p.rank().is_some_and(|r| r < 2)) {
            Some(self.timers.check_interval)
        } else {
            None
        }
    }

    /// Reads the ALUA states of every usable ALUA path: REPORT TARGET PORT GROUPS through each
    /// at once (a slow path does not hold up the others), then each path's own group's state,
    /// from its own answer or, when its command failed, from another path's.
    async fn read_alua(&self) {
        // Failed paths are left to the probe (which asks for this read once they answer).
        let now = Instant::now();
        let paths: Vec<Arc<Path>> = self.read().iter().filter(|p| p.has_alua() && p.usable(now)).cloned().collect();
        if paths.is_empty() {
            return;
        }
        let bound = self.timers.check_interval.max(Duration::from_secs(1));
        let mut reads = tokio::task::JoinSet::new();
        for p in paths {
            reads.spawn(async move {
                let news = p.session.stats().alua_news.load(Ordering::Relaxed);
                let r = tokio::time::timeout(bound, p.session.report_target_port_groups(p.lun)).await;
                (p, news, r)
            });
        }
        let mut answers = Vec::new();
        while let Some(done) = reads.join_next().await {
            let Ok((p, news, r)) = done else { continue };
            let answer = match r {
                Ok(Ok(g)) => {
                    p.news_seen.store(news, Ordering::Relaxed);
                    Some(g)
                }
                Ok(Err(ScsiOpError::Scsi(ScsiError::CheckCondition(s))))
                    if s.key == lunlink_scsi::SenseKey::IllegalRequest && matches!((s.asc, s.ascq), (0x20, 0x00) | (0x24, 0x00)) =>
                {
                    // TPGS said ALUA, the command says no: every path is as good as another.
                    tracing::warn!(lu = %self.key, path = p.id, "REPORT TARGET PORT GROUPS is not supported ({s}): ALUA states ignored");
                    p.alua.store(NO_ALUA, Ordering::Relaxed);
                    self.changed();
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::debug!(lu = %self.key, path = p.id, "REPORT TARGET PORT GROUPS failed: {e}");
                    None
                }
                Err(_) => None,
            };
            answers.push((p, answer));
        }
        let any = answers.iter().find_map(|(_, a)| a.clone());
        let mut changed = false;
        for (p, answer) in &answers {
            let Some(groups) = answer.as_ref().or(any.as_ref()) else { continue };
            let port = *p.port.lock().unwrap_or_else(|e| e.into_inner());
            let g = match (port.group, port.port) {
                (Some(id), _) => groups.group(id),
                (None, Some(rel)) => groups.group_of_port(rel),
                (None, None) if groups.groups.len() == 1 => groups.groups.first(),
                (None, None) => None,
            };
            let Some(g) = g else {
                if answer.is_some() {
                    // The target reports no group for this port: nothing to go by.
                    tracing::warn!(lu = %self.key, path = p.id, ?port, "the port's target port group is not in REPORT TARGET PORT GROUPS: ALUA states ignored for it");
                    p.alua.store(NO_ALUA, Ordering::Relaxed);
                    changed = true;
                }
                continue;
            };
            if p.set_access_state(g.state, g.preferred) {
                tracing::info!(lu = %self.key, path = p.id, group = g.id, "ALUA state {}", g.state.as_str());
                changed = true;
            }
        }
        if changed {
            self.changed();
        }
    }
}

/// Probes failed paths whose session is logged in, every check interval, and reads the ALUA
/// states when there is news, until the LU goes.
async fn check_paths(lu: Weak<LogicalUnit>) {
    let mut next_probe = Instant::now();
    loop {
        // The LU is held only while it is worked on, not while waiting: it goes with its last user.
        let (interval, poll, wake) = {
            let Some(l) = lu.upgrade() else { return };
            (l.timers.check_interval, l.alua_poll(), l.alua_wake.clone())
        };
        if next_probe <= Instant::now() {
            next_probe = Instant::now() + interval;
        }
        let wait = poll.map_or(interval, |p| p.min(interval));
        let woken = tokio::select! {
            () = wake.notified() => true,
            () = tokio::time::sleep(wait) => false,
        };
        let Some(l) = lu.upgrade() else { return };
        if woken || poll.is_some() || l.read().iter().any(|p| p.has_news()) {
            l.read_alua().await;
        }
        if Instant::now() < next_probe {
            continue;
        }
        let failed: Vec<Arc<Path>> = l.read().iter().filter(|p| p.health().failed && p.logged_in()).cloned().collect();
        for p in failed {
            let probe = tokio::time::timeout(interval, p.session.test_unit_ready(p.lun)).await;
            // A path whose group takes no IO now (NOT READY standby, ...) answers all the same:
            // ALUA decides whether it carries IO.
            let alua = probe.as_ref().ok().and_then(|r| p.refused_by_alua(r));
            if let Some(state) = alua {
                p.set_access_state(state, false);
                l.alua_news();
            }
            if matches!(probe, Ok(Ok(()))) || alua.is_some() {
                p.health().failed = false;
                if p.has_alua() {
                    l.alua_news();
                }
                tracing::info!(lu = %l.key, path = p.id, "path answers again: back in use");
                l.changed();
            }
        }
        // A held-out period that ended is a change too.
        let now = Instant::now();
        let ended = l.read().iter().any(|p| {
            let mut h = p.health();
            let over = h.held_until.is_some_and(|t| now >= t);
            if over {
                h.held_until = None;
            }
            over
        });
        if ended {
            l.changed();
        }
    }
}

/// The logical units by key, so that everyone who meets an LU (the daemon's LUN objects, the
/// block device layer, a device taken over after a restart) shares one [`LogicalUnit`]. Holds
/// them weakly: an LU lives while someone uses it.
pub struct Registry {
    map: Mutex<std::collections::HashMap<String, Weak<LogicalUnit>>>,
    policy: AtomicU8,
    timers: Timers,
}

impl Registry {
    pub fn new(policy: Policy, timers: Timers) -> Registry {
        Registry { map: Mutex::default(), policy: AtomicU8::new(policy.code()), timers }
    }

    /// The LU with `key`, made (with the default policy) when nobody holds it.
    pub fn get(&self, key: &str) -> Arc<LogicalUnit> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lu) = map.get(key).and_then(Weak::upgrade) {
            return lu;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let lu = LogicalUnit::new(key.to_owned(), Policy::from_code(self.policy.load(Ordering::Relaxed)), self.timers.clone());
        map.insert(key.to_owned(), Arc::downgrade(&lu));
        lu
    }

    /// The LU with `key` if someone holds it.
    pub fn find(&self, key: &str) -> Option<Arc<LogicalUnit>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).get(key).and_then(Weak::upgrade)
    }

    pub fn default_policy(&self) -> Policy {
        Policy::from_code(self.policy.load(Ordering::Relaxed))
    }
}

/// Runs a command over the LU's paths until it is done: the whole loop for callers that need
/// nothing between tries. `op` makes the command's future for a path.
pub async fn execute<T, F, Fut>(lu: &LogicalUnit, mut op: F) -> Result<T, LuError>
where
    F: FnMut(Arc<Path>) -> Fut,
    Fut: Future<Output = Result<T, ScsiOpError>>,
{
    let mut a = lu.attempt();
    loop {
        let p = lu.next_path(&mut a).await?;
        match lu.run_on(&p, &mut a, op(p.clone())).await {
            Tried::Done(r) => return r,
            Tried::Again => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lunlink_scsi::{ScsiError, Sense, SenseKey};

    fn cc(k: SenseKey, asc: u8, ascq: u8) -> ScsiOpError {
        ScsiOpError::Scsi(ScsiError::CheckCondition(Sense::new(k, asc, ascq)))
    }

    /// The path/target split, row by row (on top of `ScsiError::disposition`).
    #[test]
    fn path_versus_target_errors() {
        let rows: &[(ScsiOpError, bool)] = &[
            (ScsiOpError::Command(CommandError::ConnectionLost("x".into())), true),
            (ScsiOpError::Command(CommandError::SessionClosed), true),
            (ScsiOpError::Command(CommandError::Timeout), true),
            (ScsiOpError::Command(CommandError::TargetFailure(1)), true),
            (ScsiOpError::Command(CommandError::InvalidRequest("x")), false),
            (cc(SenseKey::NotReady, 0x04, 0x0b), true),
            (cc(SenseKey::NotReady, 0x04, 0x0c), true),
            (cc(SenseKey::IllegalRequest, 0x25, 0x00), true),
            (cc(SenseKey::UnitAttention, 0x29, 0x00), true),
            (ScsiOpError::Scsi(ScsiError::Busy), true),
            (cc(SenseKey::MediumError, 0x11, 0x00), false),
            (cc(SenseKey::DataProtect, 0x27, 0x07), false),
            (cc(SenseKey::IllegalRequest, 0x24, 0x00), false),
            (cc(SenseKey::IllegalRequest, 0x21, 0x00), false),
            (cc(SenseKey::AbortedCommand, 0x10, 0x01), false),
            (cc(SenseKey::HardwareError, 0x44, 0x00), false),
            (ScsiOpError::Scsi(ScsiError::ReservationConflict), false),
            (ScsiOpError::ShortTransfer { missing: 512 }, false),
        ];
        for (e, path) in rows {
            assert_eq!(is_path_error(e), *path, "{e}");
        }
    }

    /// A block request's errno comes from the SCSI layer (see `ScsiError::errno`).
    #[test]
    fn errnos_come_from_the_scsi_layer() {
        assert_eq!(LuError::Op(cc(SenseKey::DataProtect, 0x27, 0x07)).errno(), libc::ENOSPC);
        assert_eq!(LuError::Op(cc(SenseKey::MediumError, 0x11, 0)).errno(), libc::ENODATA);
        assert_eq!(LuError::Op(ScsiOpError::Command(CommandError::SessionClosed)).errno(), libc::EIO);
        assert_eq!(LuError::Op(ScsiOpError::Invalid("x")).errno(), libc::EINVAL);
        assert_eq!(LuError::NoPath("x").errno(), libc::EIO);
    }

    #[test]
    fn policy_names() {
        for p in [Policy::Failover, Policy::RoundRobin, Policy::QueueDepth] {
            assert_eq!(Policy::from_name(p.as_str()), Some(p));
            assert_eq!(Policy::from_code(p.code()), p);
        }
        assert_eq!(Policy::default(), Policy::QueueDepth);
        assert_eq!(Policy::from_name("service-time"), None);
    }
}
