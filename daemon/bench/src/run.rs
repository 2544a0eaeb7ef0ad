//! The workload: QD workers, each one async task with one command in flight and its own
//! preallocated buffer, driving one LUN through `Session::execute`. Nothing in the measuring
//! loop allocates: the CDB is built on the stack, the buffer and the latency histogram exist
//! before the clock starts, counters are atomics.
//!
//! Failed IOs are counted and the run goes on (after a short backoff, so a dead session does not
//! spin a core); the first few are printed with the time they happened. Workers still waiting
//! for an answer `Plan::grace` after the end are abandoned and their IOs counted as failed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lunlink_engine::{DataBuf, ScsiOpError, Session};
use lunlink_multipath::{LogicalUnit, Tried};
use lunlink_scsi::cdb;

use crate::hist::Histogram;
use crate::pattern;

/// How long after the end of a run workers may still wait for a command before they are given
/// up, by default (a silent target must not make the benchmark hang).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Backoff after a failed IO, doubled per consecutive failure up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_millis(100);
/// `--verify` generation markers: never written, and written with an unknown outcome.
const GEN_NONE: u32 = 0;
const GEN_UNKNOWN: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    RandRead,
    RandWrite,
    Read,
    Write,
}

impl Pattern {
    pub fn is_write(self) -> bool {
        matches!(self, Pattern::RandWrite | Pattern::Write)
    }
    pub fn is_random(self) -> bool {
        matches!(self, Pattern::RandRead | Pattern::RandWrite)
    }
    pub fn name(self) -> &'static str {
        match self {
            Pattern::RandRead => "randread",
            Pattern::RandWrite => "randwrite",
            Pattern::Read => "read",
            Pattern::Write => "write",
        }
    }
}

impl std::str::FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "randread" => Ok(Pattern::RandRead),
            "randwrite" => Ok(Pattern::RandWrite),
            "read" => Ok(Pattern::Read),
            "write" => Ok(Pattern::Write),
            other => Err(format!("unknown pattern '{other}' (expected randread, randwrite, read or write)")),
        }
    }
}

/// What to run, validated against the LU (see [`crate::plan`]).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub pattern: Pattern,
    pub lun: u16,
    /// Bytes per IO, a multiple of the LU's block size.
    pub bs: u32,
    pub qd: u16,
    pub duration: Duration,
    pub verify: bool,
    pub seed: u64,
    /// The LU's logical block size.
    pub block_size: u32,
    /// IOs of `bs` bytes the region holds; the region starts at LBA 0.
    pub span_ios: u64,
    /// Errors printed as they happen before only counting them.
    pub error_lines: usize,
    /// How long after the end an unanswered command is waited for.
    pub grace: Duration,
}

impl Plan {
    fn blocks_per_io(&self) -> u32 {
        self.bs / self.block_size
    }
    fn lba_of(&self, io: u64) -> u64 {
        io * u64::from(self.blocks_per_io())
    }
}

/// Counters of one worker (atomics, so a worker given up on can still be read).
#[derive(Default)]
struct WorkerStats {
    ios: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    hist: Histogram,
}

/// Prints the first failures as they happen, then only counts them.
struct ErrorLog {
    start: Instant,
    limit: usize,
    printed: Mutex<usize>,
    /// Set while IOs fail, so the first success afterwards is reported.
    failing: AtomicBool,
}

impl ErrorLog {
    fn failed(&self, what: std::fmt::Arguments<'_>) {
        self.failing.store(true, Ordering::Relaxed);
        let mut printed = self.printed.lock().unwrap_or_else(|e| e.into_inner());
        let t = self.start.elapsed().as_secs_f64();
        if *printed < self.limit {
            eprintln!("lunlink-bench: at {t:.3} s: {what}");
        } else if *printed == self.limit {
            eprintln!("lunlink-bench: at {t:.3} s: more errors; counting them without printing");
        }
        *printed = printed.saturating_add(1);
    }

    fn succeeded(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            let t = self.start.elapsed().as_secs_f64();
            eprintln!("lunlink-bench: at {t:.3} s: IOs succeed again");
        }
    }
}

struct Shared {
    /// The first path's session (its counters are the report's).
    session: Session,
    /// With several paths: the LU the IO goes through (multipath layer).
    lu: Option<Arc<LogicalUnit>>,
    plan: Plan,
    end: Instant,
    /// Next IO of a sequential pattern (without --verify).
    cursor: AtomicU64,
    /// --verify: the generation last written to each IO-sized block.
    gens: Box<[AtomicU32]>,
    log: ErrorLog,
    start: Instant,
    /// When the last worker finished, in ns after `start`.
    last_finish_ns: AtomicU64,
}

/// xorshift64*: a tiny generator, plenty for picking offsets.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in 0..n (n > 0), by multiply-shift.
    fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next()) * u128::from(n);
        u64::try_from(wide >> 64).unwrap_or(0)
    }
}

/// Heap allocations of the process so far, counted by the binary's global allocator (a
/// wrapper around the system allocator in `main.rs`); stays 0 where no such wrapper is installed.
pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Process CPU time (all threads), user and system.
pub fn cpu_times() -> (Duration, Duration) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given, which is valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    // SAFETY: zero-initialised and filled by a successful getrusage.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// The figures of a run.
pub struct Outcome {
    /// From the start to the end of the last IO.
    pub elapsed: Duration,
    pub ios: u64,
    /// IOs that failed, including those still unanswered at the end (`stuck`).
    pub errors: u64,
    /// UNIT ATTENTIONs retried (not errors).
    pub retries: u64,
    /// IOs given up on `Plan::grace` after the end.
    pub stuck: u64,
    pub bytes: u64,
    pub hist: Histogram,
    pub cpu_user: Duration,
    pub cpu_sys: Duration,
    /// Heap allocations made by the whole process during the middle half of the run, and the
    /// IOs completed meanwhile (see [`ALLOCATIONS`]).
    pub allocs_mid_run: u64,
    pub ios_mid_run: u64,
    /// Times the engine's receive coalescing waited out its fallback timer (see
    /// `lunlink_engine::Stats::coalesce_fallbacks`).
    pub coalesce_fallbacks: u64,
    /// Data-In payload bytes the kernel placed straight into the workers' buffers, and all
    /// Data-In payload bytes.
    pub direct: (u64, u64),
    pub verify: Option<VerifyOutcome>,
}

pub struct VerifyOutcome {
    pub elapsed: Duration,
    /// IO-sized blocks read back and compared.
    pub checked: u64,
    pub mismatches: u64,
    /// Blocks whose last write failed or was given up on: their content is unknown.
    pub unverifiable: u64,
    /// Read-backs that failed.
    pub read_errors: u64,
}

/// Runs the workload; with `plan.verify`, then reads back every block written.
pub async fn run(session: Session, plan: Plan) -> Outcome {
    run_paths(vec![session], lunlink_multipath::Policy::default(), plan).await
}

/// Runs the workload over one session, or over several paths to one LU through the multipath
/// layer with `policy` (the first session's counters are reported).
pub async fn run_paths(sessions: Vec<Session>, policy: lunlink_multipath::Policy, plan: Plan) -> Outcome {
    let session = sessions[0].clone();
    let lu = (sessions.len() > 1).then(|| {
        let lu = LogicalUnit::new("bench".into(), policy, lunlink_multipath::Timers::default());
        for (i, s) in sessions.iter().enumerate() {
            lu.add_path(Arc::new(lunlink_multipath::Path::new(i as u64, s.clone(), plan.lun)));
        }
        lu
    });
    let gens: Box<[AtomicU32]> =
        if plan.verify { (0..plan.span_ios).map(|_| AtomicU32::new(GEN_NONE)).collect() } else { Box::new([]) };
    let stats: Vec<Arc<WorkerStats>> = (0..plan.qd).map(|_| Arc::new(WorkerStats::default())).collect();
    let (user0, sys0) = cpu_times();
    let start = Instant::now();
    let sh = Arc::new(Shared {
        session,
        lu,
        plan,
        end: start + plan.duration,
        cursor: AtomicU64::new(0),
        gens,
        log: ErrorLog { start, limit: plan.error_lines, printed: Mutex::new(0), failing: AtomicBool::new(false) },
        start,
        last_finish_ns: AtomicU64::new(0),
    });
    let handles: Vec<_> =
        (0..plan.qd).zip(&stats).map(|(w, st)| tokio::spawn(worker(sh.clone(), w, st.clone()))).collect();
    // Allocations in the middle half of the run: the steady state, after every worker and the
    // connection have set up their buffers, before anything winds down.
    let total_ios = || stats.iter().map(|s| s.ios.load(Ordering::Relaxed)).sum::<u64>();
    tokio::time::sleep_until((start + plan.duration / 4).into()).await;
    let (allocs0, ios0) = (ALLOCATIONS.load(Ordering::Relaxed), total_ios());
    tokio::time::sleep_until((start + plan.duration * 3 / 4).into()).await;
    let (allocs1, ios1) = (ALLOCATIONS.load(Ordering::Relaxed), total_ios());
    let stuck = join_or_abandon(handles, sh.end + plan.grace).await;
    let (user1, sys1) = cpu_times();
    let finished = Duration::from_nanos(sh.last_finish_ns.load(Ordering::Relaxed));
    let elapsed = if finished.is_zero() { plan.duration } else { finished };

    let hist = Histogram::new();
    let (mut ios, mut errors, mut bytes) = (0, 0, 0);
    for st in &stats {
        hist.merge(&st.hist);
        ios += st.ios.load(Ordering::Relaxed);
        errors += st.errors.load(Ordering::Relaxed);
        bytes += st.bytes.load(Ordering::Relaxed);
    }
    if stuck > 0 {
        eprintln!("lunlink-bench: {stuck} IOs were still unanswered {:?} after the end; counted as errors", plan.grace);
    }
    let es = sh.session.stats();
    let retries = es.retries.load(Ordering::Relaxed);
    let coalesce_fallbacks = es.coalesce_fallbacks.load(Ordering::Relaxed);
    let direct = (es.bytes_read_direct.load(Ordering::Relaxed), es.bytes_read.load(Ordering::Relaxed));
    let verify = if plan.verify { Some(verify_pass(&sh).await) } else { None };
    Outcome {
        elapsed,
        ios,
        errors: errors + stuck,
        retries,
        stuck,
        bytes,
        hist,
        cpu_user: user1.saturating_sub(user0),
        cpu_sys: sys1.saturating_sub(sys0),
        allocs_mid_run: allocs1.saturating_sub(allocs0),
        ios_mid_run: ios1.saturating_sub(ios0),
        coalesce_fallbacks,
        direct,
        verify,
    }
}

/// Waits for every task until `deadline`, then aborts those still running. Returns how many.
async fn join_or_abandon(handles: Vec<tokio::task::JoinHandle<()>>, deadline: Instant) -> u64 {
    let mut stuck = 0;
    for mut h in handles {
        match tokio::time::timeout_at(deadline.into(), &mut h).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("lunlink-bench: a worker ended abnormally: {e}"),
            Err(_) => {
                h.abort();
                stuck += 1;
            }
        }
    }
    stuck
}

/// Which block a worker does next.
struct Picker {
    w: u64,
    qd: u64,
    /// With --verify, worker w owns blocks w, w+qd, w+2qd, ...: no two commands in flight ever
    /// touch the same block, so the last write completed is what the medium holds.
    owned: u64,
    seq: u64,
    rng: Rng,
}

impl Picker {
    fn new(plan: &Plan, w: u16) -> Self {
        let (w, qd) = (u64::from(w), u64::from(plan.qd));
        let owned = plan.span_ios.saturating_sub(w).div_ceil(qd);
        let rng = Rng::new(plan.seed ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Picker { w, qd, owned, seq: 0, rng }
    }

    fn next(&mut self, sh: &Shared) -> u64 {
        let plan = &sh.plan;
        match (plan.pattern.is_random(), plan.verify) {
            (true, false) => self.rng.below(plan.span_ios),
            (true, true) => self.rng.below(self.owned) * self.qd + self.w,
            (false, false) => sh.cursor.fetch_add(1, Ordering::Relaxed) % plan.span_ios,
            (false, true) => {
                let k = self.seq % self.owned;
                self.seq += 1;
                k * self.qd + self.w
            }
        }
    }
}

/// One command, retried as the engine's typed operations retry (unit attention at once,
/// BUSY and TASK SET FULL with backoff, until the command timeout). The worker's buffer is
/// lent to the engine for the command and comes back in `buf`.
async fn io(sh: &Shared, lba: u64, buf: &mut Vec<u8>, write: bool) -> Result<(), ScsiOpError> {
    let blocks = sh.plan.blocks_per_io();
    if let Some(lu) = &sh.lu {
        return io_paths(sh, lu, lba, blocks, buf, write).await;
    }
    let lent = std::mem::take(buf);
    let (back, r) = if write {
        sh.session.run(sh.plan.lun, &cdb::write(lba, blocks, false), DataBuf::Out(lent)).await
    } else {
        sh.session.run(sh.plan.lun, &cdb::read(lba, blocks), DataBuf::In(lent)).await
    };
    *buf = back.unwrap_or_default();
    r
}

/// One command through the multipath layer: the buffer goes with each try and comes back
/// with it; a try cancelled to move to another path takes its buffer along, so a new one is
/// made then (only on failover; --verify is not offered with several paths).
async fn io_paths(sh: &Shared, lu: &LogicalUnit, lba: u64, blocks: u32, buf: &mut Vec<u8>, write: bool) -> Result<(), ScsiOpError> {
    let len = sh.plan.bs as usize;
    let mut a = lu.attempt();
    loop {
        let p = lu.next_path(&mut a).await.map_err(|e| match e {
            lunlink_multipath::LuError::Op(e) => e,
            other => ScsiOpError::Command(lunlink_engine::CommandError::ConnectionLost(other.to_string().into())),
        })?;
        if buf.len() != len {
            *buf = vec![0u8; len];
        }
        let lent = std::mem::take(buf);
        let back = &mut *buf;
        let fut = async {
            let (b, r) = if write {
                p.session.run(sh.plan.lun, &cdb::write(lba, blocks, false), DataBuf::Out(lent)).await
            } else {
                p.session.run(sh.plan.lun, &cdb::read(lba, blocks), DataBuf::In(lent)).await
            };
            *back = b.unwrap_or_default();
            r
        };
        match lu.run_on(&p, &mut a, fut).await {
            Tried::Done(r) => {
                return r.map_err(|e| match e {
                    lunlink_multipath::LuError::Op(e) => e,
                    other => ScsiOpError::Command(lunlink_engine::CommandError::ConnectionLost(other.to_string().into())),
                })
            }
            Tried::Again => continue,
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

async fn worker(sh: Arc<Shared>, w: u16, stats: Arc<WorkerStats>) {
    let plan = sh.plan;
    let write = plan.pattern.is_write();
    let block_size = plan.block_size as usize;
    let mut buf = vec![0u8; plan.bs as usize];
    if write && !plan.verify {
        // Real-looking data, written once: the same buffer goes out with every write.
        pattern::fill(&mut buf, 0, block_size, 1, plan.seed);
    }
    let mut pick = Picker::new(&plan, w);
    let mut gen = 0u32;
    let mut backoff = Duration::ZERO;
    loop {
        let t0 = Instant::now();
        if t0 >= sh.end {
            break;
        }
        let n = pick.next(&sh);
        let lba = plan.lba_of(n);
        let slot = if plan.verify && write { usize::try_from(n).ok().and_then(|i| sh.gens.get(i)) } else { None };
        if let Some(slot) = slot {
            gen = gen.wrapping_add(1);
            if gen == GEN_UNKNOWN || gen == GEN_NONE {
                gen = 1;
            }
            pattern::fill(&mut buf, lba, block_size, gen, plan.seed);
            // While the write is in flight (and if it fails) the content is unknown.
            slot.store(GEN_UNKNOWN, Ordering::Relaxed);
        }
        let r = io(&sh, lba, &mut buf, write).await;
        let t1 = Instant::now();
        match r {
            Ok(()) => {
                stats.hist.record(nanos(t1 - t0));
                stats.ios.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(u64::from(plan.bs), Ordering::Relaxed);
                if let Some(slot) = slot {
                    slot.store(gen, Ordering::Relaxed);
                }
                if !backoff.is_zero() {
                    backoff = Duration::ZERO;
                    sh.log.succeeded();
                }
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                let op = if write { "write" } else { "read" };
                sh.log.failed(format_args!("{op} of {} bytes at LBA {lba} failed: {e}", plan.bs));
                backoff = (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                let until = (t1 + backoff).min(sh.end);
                tokio::time::sleep_until(until.into()).await;
            }
        }
    }
    let done = nanos(sh.start.elapsed());
    sh.last_finish_ns.fetch_max(done, Ordering::Relaxed);
}

/// Reads back every block written, QD workers at a time, each over the blocks it owned.
async fn verify_pass(sh: &Arc<Shared>) -> VerifyOutcome {
    let start = Instant::now();
    let handles: Vec<_> = (0..sh.plan.qd).map(|w| tokio::spawn(verify_worker(sh.clone(), w))).collect();
    let mut out = VerifyOutcome { elapsed: Duration::ZERO, checked: 0, mismatches: 0, unverifiable: 0, read_errors: 0 };
    let mut printed = 0usize;
    for h in handles {
        match h.await {
            Ok(v) => {
                out.checked += v.checked;
                out.mismatches += v.mismatches.len() as u64 + v.more_mismatches;
                out.unverifiable += v.unverifiable;
                out.read_errors += v.read_errors;
                for m in v.mismatches {
                    if printed < sh.plan.error_lines {
                        eprintln!("lunlink-bench: verify: {m}");
                    }
                    printed += 1;
                }
            }
            Err(e) => {
                eprintln!("lunlink-bench: a verify worker ended abnormally: {e}");
                out.read_errors += 1;
            }
        }
    }
    let shown = printed.min(sh.plan.error_lines) as u64;
    if out.mismatches > shown {
        eprintln!("lunlink-bench: verify: {} more mismatches not shown", out.mismatches - shown);
    }
    out.elapsed = start.elapsed();
    out
}

struct VerifyPart {
    checked: u64,
    /// The first few mismatches, for the report.
    mismatches: Vec<pattern::Mismatch>,
    more_mismatches: u64,
    unverifiable: u64,
    read_errors: u64,
}

async fn verify_worker(sh: Arc<Shared>, w: u16) -> VerifyPart {
    let plan = sh.plan;
    let mut buf = vec![0u8; plan.bs as usize];
    let mut part =
        VerifyPart { checked: 0, mismatches: Vec::new(), more_mismatches: 0, unverifiable: 0, read_errors: 0 };
    let mut n = u64::from(w);
    while n < plan.span_ios {
        let gen = usize::try_from(n).ok().and_then(|i| sh.gens.get(i)).map_or(GEN_NONE, |g| g.load(Ordering::Relaxed));
        let lba = plan.lba_of(n);
        n += u64::from(plan.qd);
        match gen {
            GEN_NONE => continue,
            GEN_UNKNOWN => {
                part.unverifiable += 1;
                continue;
            }
            _ => {}
        }
        match io(&sh, lba, &mut buf, false).await {
            Ok(()) => {
                part.checked += 1;
                if let Err(m) = pattern::check(&buf, lba, plan.block_size as usize, gen, plan.seed) {
                    if part.mismatches.len() < plan.error_lines.max(1) {
                        part.mismatches.push(m);
                    } else {
                        part.more_mismatches += 1;
                    }
                }
            }
            Err(e) => {
                part.read_errors += 1;
                sh.log.failed(format_args!("verify read of LBA {lba} failed: {e}"));
            }
        }
    }
    part
}
