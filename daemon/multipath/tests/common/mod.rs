//! Helpers shared by the multipath tests: readers that keep IO going over an LU and record
//! its longest read and its failures, and polling with a deadline.

// Each test file uses a part of this.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lunlink_multipath::{execute, LogicalUnit};
use tokio::time::Instant;

/// `qd` tasks reading 4 KiB at a time over an LU until stopped.
pub struct Readers {
    stop: Arc<AtomicBool>,
    longest_ms: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Readers {
    pub fn start(lu: &Arc<LogicalUnit>, qd: u64) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let (longest_ms, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let tasks = (0..qd)
            .map(|w| {
                let (lu, stop, longest, errors) = (lu.clone(), stop.clone(), longest_ms.clone(), errors.clone());
                tokio::spawn(async move {
                    let mut lba = w * 8;
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let r = execute(&lu, |p| async move { p.session.read_vec(p.lun, lba, 512, 4096).await }).await;
                        if let Err(e) = r {
                            errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("read failed: {e}");
                        }
                        longest.fetch_max(u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
                        lba = (lba + 64) % 60_000;
                    }
                })
            })
            .collect();
        Readers { stop, longest_ms, errors, tasks }
    }

    /// The longest time one read took so far (ms: its stall, moves to another path included).
    pub fn longest_ms(&self) -> u64 {
        self.longest_ms.load(Ordering::Relaxed)
    }

    /// Forgets the reads so far for [`Readers::longest_ms`].
    pub fn reset_longest(&self) {
        self.longest_ms.store(0, Ordering::Relaxed);
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Stops the readers and waits for them; the reads that failed.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        self.errors.load(Ordering::Relaxed)
    }
}

/// Polls `f` until it holds; fails the test naming `what` after `limit`.
pub async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        if std::env::var_os("MP_DEBUG").is_some() {
            eprintln!("waiting for {what}");
        }
        assert!(Instant::now() < end, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
