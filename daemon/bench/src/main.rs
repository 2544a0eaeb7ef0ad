//! lunlink-bench: measure lunlink's data path against one LUN.
//!
//! Runtime choice: by default everything (the session's connection task and the QD workers)
//! runs on ONE thread, a tokio current-thread runtime. The figure that tells initiators apart is
//! CPU per IO, and the target (tgtd, one iSCSI thread) shares the machine: one initiator thread
//! leaves the other core to the target, adds no cross-thread wakeups or cache-line bouncing
//! that a real single-queue user would not have, and makes getrusage's CPU time the initiator's
//! own work. `--threads N` runs a multi-thread runtime with N workers to compare.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lunlink_bench::{auth, connect, plan, BenchError, Outcome, Pattern, Plan, Request, Target};
use lunlink_engine::{Auth, Digest, Offer, Portal, Timeouts};

/// Exit status when the run completed but IOs failed or --verify found mismatches.
const EXIT_IO_ERRORS: u8 = 3;
/// The run did not end within its bound (see `bound`): the target stopped answering.
const EXIT_GAVE_UP: u8 = 4;

/// The system allocator, counting allocations so the report can show that the data path makes
/// none (one relaxed atomic add per allocation).
struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        lunlink_bench::run::ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller upholds GlobalAlloc::alloc's contract, which System shares.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        lunlink_bench::run::ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        lunlink_bench::run::ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above; ptr came from this allocator, i.e. from System.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[derive(Parser, Debug)]
#[command(
    name = "lunlink-bench",
    version,
    about = "Drive one LUN through lunlink's session engine and measure IOPS, latency and CPU per IO",
    after_help = "Exit status: 0 all IOs succeeded, 1 the run could not start (login, LU, arguments), \
                  2 usage error, 3 the run completed but IOs failed or --verify found mismatches, \
                  4 gave up: the run did not end within login + setup + --seconds + --grace + verify + \
                  logout time (the target stopped answering).\n\
                  CHAP secrets come from --auth-file only (username=, password=, reverse-username=, \
                  reverse-password= lines), never from the command line."
)]
struct Args {
    /// Target portal, host[:port] (IPv6 in brackets). Give it more than once for several paths
    /// to the LU: IO then goes through lunlink's multipath layer (see --policy).
    #[arg(long, value_name = "HOST:PORT", required = true)]
    portal: Vec<String>,
    /// With several --portal: failover, round-robin or queue-depth.
    #[arg(long, value_name = "POLICY", default_value = "queue-depth")]
    policy: String,
    /// Target name (IQN).
    #[arg(long, value_name = "IQN")]
    target: String,
    /// LUN to drive (tgtd's LUN 0 is a controller, not a disk).
    #[arg(long, value_name = "N", default_value_t = 1)]
    lun: u16,
    /// randread, randwrite, read (sequential) or write (sequential).
    #[arg(long)]
    pattern: Pattern,
    /// Bytes per IO; k, m suffixes are binary (4k = 4096).
    #[arg(long, value_name = "BYTES", default_value = "4096", value_parser = parse_size)]
    bs: u64,
    /// Commands in flight (one worker task each).
    #[arg(long, value_name = "N", default_value_t = 1)]
    qd: u16,
    /// Length of the run.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    seconds: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Writes: stamp every block with its LBA, a generation and the run's seed, and read all
    /// written blocks back after the run; mismatches count as errors. Costs CPU per IO.
    #[arg(long)]
    verify: bool,
    /// Initiator name sent at login.
    #[arg(long, value_name = "IQN", default_value = "iqn.2024-01.org.lunlink:bench")]
    initiator_name: String,
    /// CHAP credentials file (mode 0600).
    #[arg(long, value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// Runtime threads: 1 = current-thread runtime (see the module docs), N > 1 = multi-thread.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: u16,
    /// Use only the first BYTES of the LU (default: all; 1 GiB with --verify).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    span: Option<u64>,
    /// Seed for offsets and the --verify pattern (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Offer CRC32C header and data digests.
    #[arg(long)]
    digests: bool,
    /// Failures printed as they happen before they are only counted.
    #[arg(long, value_name = "N", default_value_t = 10)]
    error_lines: usize,
    /// Seconds an unanswered command is waited for after the end before it counts as failed.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    grace: f64,
    /// Login timeout in seconds (each login and relogin).
    #[arg(long, value_name = "S", default_value_t = 15)]
    login_timeout: u32,
    /// Command timeout in seconds: a command older than this is aborted; also the time
    /// allowed for TEST UNIT READY and READ CAPACITY after login.
    #[arg(long, value_name = "S", default_value_t = 30)]
    command_timeout: u32,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("kib").or_else(|| lower.strip_suffix('k')) {
        (n, 1u64 << 10)
    } else if let Some(n) = lower.strip_suffix("mib").or_else(|| lower.strip_suffix('m')) {
        (n, 1 << 20)
    } else if let Some(n) = lower.strip_suffix("gib").or_else(|| lower.strip_suffix('g')) {
        (n, 1 << 30)
    } else {
        (lower.as_str(), 1)
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("'{s}' is not a size in bytes (e.g. 4096, 4k, 1m)"))?;
    n.checked_mul(mult).ok_or_else(|| format!("'{s}' is too large"))
}

fn request(a: &Args) -> Result<Request, BenchError> {
    if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 86_400.0) {
        return Err(BenchError::Invalid(format!("--seconds {} is outside (0, 86400]", a.seconds)));
    }
    if !(a.grace.is_finite() && a.grace >= 0.0 && a.grace <= 3600.0) {
        return Err(BenchError::Invalid(format!("--grace {} is outside [0, 3600]", a.grace)));
    }
    let bs = u32::try_from(a.bs).map_err(|_| BenchError::Invalid(format!("--bs {} is too large", a.bs)))?;
    Ok(Request {
        pattern: a.pattern,
        lun: a.lun,
        bs,
        qd: a.qd,
        duration: Duration::from_secs_f64(a.seconds),
        verify: a.verify,
        span: a.span,
        seed: a.seed.unwrap_or_else(rand::random),
        error_lines: a.error_lines,
        grace: Duration::from_secs_f64(a.grace),
    })
}

fn target(a: &Args) -> Result<Target, BenchError> {
    let mut portals = Vec::new();
    for p in &a.portal {
        portals.push(p.parse::<Portal>().map_err(|e| BenchError::Invalid(format!("--portal {p}: {e}")))?);
    }
    let portal = portals.remove(0);
    if !portals.is_empty() && a.verify {
        return Err(BenchError::Invalid("--verify works with one --portal only".into()));
    }
    let auth = match &a.auth_file {
        Some(p) => auth::read(p)?,
        None => Auth::None,
    };
    let mut offer = Offer::default();
    if a.digests {
        offer.header_digest = vec![Digest::Crc32c];
        offer.data_digest = vec![Digest::Crc32c];
    }
    if !(1..=3600).contains(&a.login_timeout) || !(1..=3600).contains(&a.command_timeout) {
        return Err(BenchError::Invalid("--login-timeout and --command-timeout must be 1 to 3600 seconds".into()));
    }
    let timeouts = Timeouts {
        login: Duration::from_secs(a.login_timeout.into()),
        command: Some(Duration::from_secs(a.command_timeout.into())),
        ..Timeouts::default()
    };
    Ok(Target {
        portal,
        extra_portals: portals,
        target: a.target.clone(),
        initiator_name: a.initiator_name.clone(),
        auth,
        offer,
        queue_depth: a.qd.max(1),
        timeouts,
    })
}

fn runtime(threads: u16) -> Result<tokio::runtime::Runtime, BenchError> {
    let b = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(usize::from(threads)).enable_all().build()
    };
    b.map_err(BenchError::Runtime)
}

struct Report<'a> {
    args: &'a Args,
    plan: &'a Plan,
    lu_bytes: u64,
    out: &'a Outcome,
}

impl Report<'_> {
    fn secs(&self) -> f64 {
        self.out.elapsed.as_secs_f64().max(1e-9)
    }
    fn iops(&self) -> f64 {
        self.out.ios as f64 / self.secs()
    }
    fn mbps(&self) -> f64 {
        self.out.bytes as f64 / self.secs() / 1e6
    }
    fn cpu(&self) -> f64 {
        (self.out.cpu_user + self.out.cpu_sys).as_secs_f64()
    }
    fn cpu_us_per_io(&self) -> f64 {
        if self.out.ios == 0 {
            0.0
        } else {
            self.cpu() * 1e6 / self.out.ios as f64
        }
    }
    fn cpu_ms_per_mib(&self) -> f64 {
        if self.out.bytes == 0 {
            0.0
        } else {
            self.cpu() * 1e3 / (self.out.bytes as f64 / f64::from(1u32 << 20))
        }
    }
    fn us(ns: u64) -> f64 {
        ns as f64 / 1e3
    }
    fn errors(&self) -> u64 {
        self.out.errors + self.out.verify.as_ref().map_or(0, |v| v.mismatches + v.read_errors)
    }

    fn json(&self) -> serde_json::Value {
        let o = self.out;
        let h = &o.hist;
        let verify = o.verify.as_ref().map(|v| {
            serde_json::json!({
                "checked": v.checked,
                "mismatches": v.mismatches,
                "unverifiable": v.unverifiable,
                "read_errors": v.read_errors,
                "seconds": v.elapsed.as_secs_f64(),
            })
        });
        serde_json::json!({
            "portal": self.args.portal.join(","),
            "target": self.args.target,
            "lun": self.plan.lun,
            "pattern": self.plan.pattern.name(),
            "bs": self.plan.bs,
            "qd": self.plan.qd,
            "threads": self.args.threads.max(1),
            "seed": self.plan.seed,
            "seconds": self.secs(),
            "ios": o.ios,
            "errors": self.errors(),
            "io_errors": o.errors,
            "stuck": o.stuck,
            "retries": o.retries,
            "bytes": o.bytes,
            "iops": self.iops(),
            "mbps": self.mbps(),
            "lat_mean_us": h.mean() / 1e3,
            "lat_p50_us": Self::us(h.quantile(0.50)),
            "lat_p99_us": Self::us(h.quantile(0.99)),
            "lat_p999_us": Self::us(h.quantile(0.999)),
            "lat_max_us": Self::us(h.max()),
            "cpu_user_s": o.cpu_user.as_secs_f64(),
            "cpu_sys_s": o.cpu_sys.as_secs_f64(),
            "cpu_us_per_io": self.cpu_us_per_io(),
            "cpu_ms_per_mib": self.cpu_ms_per_mib(),
            "allocs_mid_run": o.allocs_mid_run,
            "ios_mid_run": o.ios_mid_run,
            "coalesce_fallbacks": o.coalesce_fallbacks,
            "bytes_read_direct": o.direct.0,
            "verify": verify,
        })
    }

    fn text(&self) -> String {
        let o = self.out;
        let h = &o.hist;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a mean of u64 values
        let mean = h.mean() as u64;
        let lat = |ns: u64| {
            if ns >= 10_000_000 {
                format!("{:.1} ms", ns as f64 / 1e6)
            } else {
                format!("{:.0} us", ns as f64 / 1e3)
            }
        };
        let threads = self.args.threads.max(1);
        let mut s = format!(
            "lunlink-bench: {} of {}-byte IOs at QD {} for {:.2} s on {} runtime thread{}, seed {}\n",
            self.plan.pattern.name(),
            self.plan.bs,
            self.plan.qd,
            self.secs(),
            threads,
            if threads == 1 { "" } else { "s" },
            self.plan.seed
        );
        s += &format!(
            "  target   {} LUN {} at {} ({} bytes, {}-byte blocks)\n",
            self.args.target, self.plan.lun, self.args.portal.join(","), self.lu_bytes, self.plan.block_size
        );
        s += &format!("  IOs      {} ({} errors, {} unit attentions retried)\n", o.ios, self.errors(), o.retries);
        s += &format!("  IOPS     {:.0}\n", self.iops());
        s += &format!("  MB/s     {:.1}\n", self.mbps());
        s += &format!(
            "  latency  mean {}, p50 {}, p99 {}, p99.9 {}, max {}\n",
            lat(mean),
            lat(h.quantile(0.5)),
            lat(h.quantile(0.99)),
            lat(h.quantile(0.999)),
            lat(h.max())
        );
        s += &format!(
            "  CPU      user {:.2} s, sys {:.2} s: {:.2} us per IO, {:.2} ms per MiB, {:.0}% of one core\n",
            o.cpu_user.as_secs_f64(),
            o.cpu_sys.as_secs_f64(),
            self.cpu_us_per_io(),
            self.cpu_ms_per_mib(),
            self.cpu() / self.secs() * 100.0
        );
        s += &format!(
            "  allocs   {} heap allocations during the middle half of the run ({} IOs)\n",
            o.allocs_mid_run, o.ios_mid_run
        );
        let (direct, read) = o.direct;
        s += &format!(
            "  engine   {:.1}% of the data read went straight into the workers' buffers; {} receive coalescing fallbacks\n",
            if read == 0 { 0.0 } else { direct as f64 * 100.0 / read as f64 },
            o.coalesce_fallbacks
        );
        if o.stuck > 0 {
            s += &format!("  stuck    {} IOs unanswered at the end (counted in errors)\n", o.stuck);
        }
        if let Some(v) = &o.verify {
            s += &format!(
                "  verify   {} blocks read back in {:.2} s: {} mismatches, {} read errors, {} unverifiable (last write failed)\n",
                v.checked,
                v.elapsed.as_secs_f64(),
                v.mismatches,
                v.read_errors,
                v.unverifiable
            );
        }
        s
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lunlink-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, BenchError> {
    let req = request(args)?;
    let tgt = target(args)?;
    let rt = runtime(args.threads)?;
    let bound = lunlink_bench::bound(&req, &tgt.timeouts);
    let work = async {
        let policy = lunlink_multipath::Policy::from_name(&args.policy)
            .ok_or_else(|| BenchError::Invalid(format!("--policy {}: use failover, round-robin or queue-depth", args.policy)))?;
        let (sessions, cap) = connect(&tgt, req.lun).await?;
        let plan = match plan(&req, &cap) {
            Ok(p) => p,
            Err(e) => {
                for s in &sessions {
                    let _ = s.logout().await;
                }
                return Err(e);
            }
        };
        // Tells a watching script or test that IOs are being issued now.
        eprintln!(
            "lunlink-bench: running {} of {}-byte IOs at QD {} for {:.1} s",
            plan.pattern.name(),
            plan.bs,
            plan.qd,
            plan.duration.as_secs_f64()
        );
        let out = lunlink_bench::run::run_paths(sessions.clone(), policy, plan).await;
        for session in &sessions {
            if session.is_open() {
                if let Err(e) = session.logout().await {
                    eprintln!("lunlink-bench: logout failed: {e}");
                }
            }
        }
        let report = Report { args, plan: &plan, lu_bytes: cap.bytes(), out: &out };
        if args.json {
            println!("{}", report.json());
        } else {
            print!("{}", report.text());
        }
        Ok(if report.errors() > 0 { ExitCode::from(EXIT_IO_ERRORS) } else { ExitCode::SUCCESS })
    };
    // Whatever the target does, the benchmark ends: past its bound it says so and exits.
    let r = rt.block_on(async { tokio::time::timeout(bound, work).await });
    // Tasks still waiting for a silent target are dropped with the runtime, without waiting.
    rt.shutdown_background();
    match r {
        Ok(r) => r,
        Err(_) => {
            eprintln!(
                "lunlink-bench: gave up after {} s: the run did not end within its bound (login, setup, run, grace, \
                 verify and logout); the target stopped answering",
                bound.as_secs()
            );
            Ok(ExitCode::from(EXIT_GAVE_UP))
        }
    }
}
