//! lunlink-bench: drives one LUN through lunlink's session engine (`lunlink_engine::Session`)
//! and measures what the initiator costs: IOPS, MB/s, latency percentiles and the process's own
//! CPU time per IO. See the README's "Benchmarks" section for how to run it next to libiscsi's
//! iscsi-perf (`scripts/bench`).

pub mod auth;
pub mod error;
pub mod hist;
pub mod pattern;
pub mod run;

use std::time::Duration;

use lunlink_engine::{Auth, Offer, Portal, Session, SessionConfig, Timeouts};
use lunlink_scsi::Capacity;

pub use error::BenchError;
pub use run::{Outcome, Pattern, Plan, VerifyOutcome};

/// Largest IO size accepted: the largest the engine's tests cover.
pub const MAX_BS: u32 = 16 << 20;
/// Default region for --verify: the generation table needs 4 bytes per IO-sized block.
pub const VERIFY_DEFAULT_SPAN: u64 = 1 << 30;
/// Largest number of IO-sized blocks --verify tracks (256 MiB of table).
pub const VERIFY_MAX_IOS: u64 = 1 << 26;

/// What the command line asks for, before the LU is known.
#[derive(Debug, Clone)]
pub struct Request {
    pub pattern: Pattern,
    pub lun: u16,
    pub bs: u32,
    pub qd: u16,
    pub duration: Duration,
    pub verify: bool,
    /// Bytes of the LU to use from LBA 0; None: all of it (1 GiB at most with --verify).
    pub span: Option<u64>,
    pub seed: u64,
    pub error_lines: usize,
    pub grace: Duration,
}

/// Checks the request against the LU and turns it into a plan.
#[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; the workspace allows 1.80
pub fn plan(req: &Request, cap: &Capacity) -> Result<Plan, BenchError> {
    let invalid = |s: String| Err(BenchError::Invalid(s));
    let lu_err = |s: String| Err(BenchError::Lun { lun: req.lun, reason: s });
    if req.qd == 0 || req.qd > 4096 {
        return invalid(format!("--qd {} is outside 1..=4096", req.qd));
    }
    if req.duration.is_zero() {
        return invalid("--seconds must be more than 0".into());
    }
    let block_size = cap.block_size;
    if block_size == 0 || block_size % 8 != 0 {
        return lu_err(format!("its block size {block_size} is not a multiple of 8 bytes"));
    }
    if req.bs == 0 || req.bs % block_size != 0 {
        return invalid(format!("--bs {} is not a multiple of the LU's {block_size}-byte blocks", req.bs));
    }
    if req.bs > MAX_BS {
        return invalid(format!("--bs {} is larger than {MAX_BS} bytes", req.bs));
    }
    if req.verify && !req.pattern.is_write() {
        return invalid("--verify needs a write pattern (write or randwrite): it checks what it wrote".into());
    }
    let lu_bytes = cap.bytes();
    let span = match req.span {
        Some(s) if s > lu_bytes => return invalid(format!("--span {s} is larger than the LU ({lu_bytes} bytes)")),
        Some(s) => s,
        None if req.verify => lu_bytes.min(VERIFY_DEFAULT_SPAN),
        None => lu_bytes,
    };
    let span_ios = span / u64::from(req.bs);
    if span_ios == 0 {
        return invalid(format!("the region ({span} bytes) is smaller than one IO of {} bytes", req.bs));
    }
    if req.verify {
        if span_ios < u64::from(req.qd) {
            return invalid(format!(
                "--verify gives each of the {} workers blocks of its own: the region holds only {span_ios} IOs of {} bytes",
                req.qd, req.bs
            ));
        }
        if span_ios > VERIFY_MAX_IOS {
            return invalid(format!(
                "--verify tracks at most {VERIFY_MAX_IOS} blocks: give a smaller --span or a larger --bs"
            ));
        }
    }
    Ok(Plan {
        pattern: req.pattern,
        lun: req.lun,
        bs: req.bs,
        qd: req.qd,
        duration: req.duration,
        verify: req.verify,
        seed: req.seed,
        block_size,
        span_ios,
        error_lines: req.error_lines,
        grace: req.grace,
    })
}

/// Where and how to log in.
#[derive(Debug, Clone)]
pub struct Target {
    pub portal: Portal,
    /// More portals to the same LU: the run then goes through the multipath layer.
    pub extra_portals: Vec<Portal>,
    pub target: String,
    pub initiator_name: String,
    pub auth: Auth,
    pub offer: Offer,
    pub queue_depth: u16,
    pub timeouts: Timeouts,
}

/// Time allowed for reading back what `--verify` wrote, at least.
const VERIFY_LIMIT: Duration = Duration::from_secs(60);

/// The longest a whole run may take: login, setup, the run and its grace, the verify pass
/// and logout. A target that stops answering cannot hold the benchmark longer.
pub fn bound(req: &Request, t: &Timeouts) -> Duration {
    let verify = if req.verify { VERIFY_LIMIT.max(req.duration) } else { Duration::ZERO };
    t.login + setup_limit(t) + req.duration + req.grace + verify + t.logout
}

/// Time allowed for TEST UNIT READY and READ CAPACITY after login: one command timeout.
fn setup_limit(t: &Timeouts) -> Duration {
    t.command.unwrap_or(Duration::from_secs(30))
}

/// Logs in and learns the LU's capacity (clearing the UNIT ATTENTION every new nexus reports),
/// on the first portal and on each extra one; returns the sessions, first portal first.
pub async fn connect(t: &Target, lun: u16) -> Result<(Vec<Session>, Capacity), BenchError> {
    let mut sessions = Vec::new();
    let mut cap = None;
    for portal in std::iter::once(&t.portal).chain(&t.extra_portals) {
        match connect_one(t, portal, lun).await {
            Ok((s, c)) => {
                cap.get_or_insert(c);
                sessions.push(s);
            }
            Err(e) => {
                for s in sessions {
                    let _ = tokio::time::timeout(setup_limit(&t.timeouts), s.logout()).await;
                }
                return Err(e);
            }
        }
    }
    let cap = cap.ok_or_else(|| BenchError::Invalid("no portal".into()))?;
    Ok((sessions, cap))
}

async fn connect_one(t: &Target, portal: &Portal, lun: u16) -> Result<(Session, Capacity), BenchError> {
    let mut isid = [0x80, 0, 0, 0, 0, 0];
    isid[1..].copy_from_slice(&rand::random::<[u8; 5]>());
    let cfg = SessionConfig {
        initiator_name: t.initiator_name.clone(),
        initiator_alias: Some("lunlink-bench".into()),
        target_name: t.target.clone(),
        portal: portal.clone(),
        auth: t.auth.clone(),
        offer: t.offer.clone(),
        isid,
        queue_depth: t.queue_depth,
        timeouts: t.timeouts.clone(),
    };
    let setup = setup_limit(&t.timeouts);
    let session = Session::login(cfg).await.map_err(|source| BenchError::Login {
        target: t.target.clone(),
        portal: portal.to_string(),
        source: Box::new(source),
    })?;
    let lu_err = |reason: String| BenchError::Lun { lun, reason };
    let probe = async {
        session.test_unit_ready(lun).await.map_err(|e| lu_err(format!("TEST UNIT READY failed: {e}")))?;
        session.read_capacity(lun).await.map_err(|e| lu_err(format!("READ CAPACITY failed: {e}")))
    };
    match tokio::time::timeout(setup, probe).await {
        Ok(Ok(cap)) => Ok((session, cap)),
        Ok(Err(e)) => {
            let _ = tokio::time::timeout(setup, session.logout()).await;
            Err(e)
        }
        Err(_) => Err(lu_err(format!("no answer to TEST UNIT READY / READ CAPACITY within {setup:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(bytes: u64) -> Capacity {
        Capacity {
            blocks: bytes / 512,
            block_size: 512,
            phys_block_exp: 0,
            lowest_aligned_lba: 0,
            lbpme: false,
            lbprz: false,
            protection: None,
        }
    }

    fn req() -> Request {
        Request {
            pattern: Pattern::RandRead,
            lun: 1,
            bs: 4096,
            qd: 32,
            duration: Duration::from_secs(1),
            verify: false,
            span: None,
            seed: 1,
            error_lines: 10,
            grace: run::DEFAULT_GRACE,
        }
    }

    #[test]
    fn plans_cover_the_lu_or_the_span() {
        let p = plan(&req(), &cap(1 << 40)).unwrap();
        assert_eq!(p.span_ios, (1 << 40) / 4096);
        let p = plan(&Request { span: Some(1 << 20), ..req() }, &cap(1 << 40)).unwrap();
        assert_eq!(p.span_ios, 256);
        let p = plan(&Request { pattern: Pattern::RandWrite, verify: true, ..req() }, &cap(1 << 40)).unwrap();
        assert_eq!(p.span_ios, (1 << 30) / 4096, "verify defaults to 1 GiB");
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let c = cap(64 << 20);
        let e = |r: Request| plan(&r, &c).unwrap_err().to_string();
        assert!(e(Request { bs: 1000, ..req() }).contains("multiple"));
        assert!(e(Request { bs: 0, ..req() }).contains("multiple"));
        assert!(e(Request { qd: 0, ..req() }).contains("--qd"));
        assert!(e(Request { verify: true, ..req() }).contains("write pattern"));
        assert!(e(Request { span: Some(1 << 40), ..req() }).contains("larger than the LU"));
        let r = Request { pattern: Pattern::Write, verify: true, span: Some(16 * 4096), ..req() };
        assert!(e(r).contains("workers"));
        assert!(e(Request { duration: Duration::ZERO, ..req() }).contains("--seconds"));
    }
}
