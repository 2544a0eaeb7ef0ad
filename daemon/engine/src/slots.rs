//! The command slot table: one preallocated slot per queue-depth entry, so issuing a command
//! allocates nothing. A slot holds what the connection task needs to send the command and to
//! place its data, and what the caller needs to learn the outcome.
//!
//! Buffers are lent by the caller by value (see `buf.rs`) and held by the caller's future
//! until the command is settled. The connection task touches them only while holding the
//! slot's lock and only through `buf`: a future dropped early marks its slot abandoned under
//! that same lock before the buffer is freed (a write still being sent first gets a copy of
//! its own that `buf` then points at), and a leaked future leaks the buffer with it, so the
//! memory is never touched after it is gone.

use std::sync::Mutex;
use std::task::Waker;

use tokio::sync::Semaphore;

use crate::error::CommandError;

/// Sense bytes kept per command; longer sense data is truncated (SPC allows 252, real targets
/// send 18 to ~60).
pub const SENSE_MAX: usize = 96;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    None,
    Read,
    Write,
}

/// The memory of a lent buffer (or the slot's own copy), valid while the slot is not
/// abandoned (see module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawBuf {
    pub ptr: *mut u8,
    pub len: usize,
}
// SAFETY: the pointer is only dereferenced under the slot lock while the slot is not abandoned,
// that is while the caller's future still owns the (Send) buffer it points into.
unsafe impl Send for RawBuf {}

impl RawBuf {
    pub const EMPTY: RawBuf = RawBuf { ptr: std::ptr::null_mut(), len: 0 };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Free,
    /// Filled by the caller, waiting in the submit queue or for the CmdSN window.
    Queued,
    /// Sent; waiting for data and status.
    Sent,
    /// Outcome recorded, waiting for the caller to take it.
    Done,
}

#[derive(Debug)]
pub(crate) struct SlotInner {
    pub generation: u16,
    pub state: State,
    pub abandoned: bool,
    pub lun: u64,
    pub cdb: [u8; 16],
    pub dir: Dir,
    pub buf: RawBuf,
    /// How often the command was sent again after a connection loss.
    pub reissues: u8,
    /// The slot's own copy of a write's data, made when the caller gave up on a write the
    /// target is still taking (see SlotGuard); `buf` then points into it.
    pub owned: Option<Box<[u8]>>,
    // Outcome.
    pub status: u8,
    pub residual_under: u32,
    pub residual_over: u32,
    pub sense: [u8; SENSE_MAX],
    pub sense_len: u8,
    pub error: Option<CommandError>,
    pub waker: Option<Waker>,
}

impl SlotInner {
    fn new() -> Self {
        Self {
            generation: 0,
            state: State::Free,
            abandoned: false,
            lun: 0,
            cdb: [0; 16],
            dir: Dir::None,
            buf: RawBuf::EMPTY,
            reissues: 0,
            owned: None,
            status: 0,
            residual_under: 0,
            residual_over: 0,
            sense: [0; SENSE_MAX],
            sense_len: 0,
            error: None,
            waker: None,
        }
    }

    /// Moves to a new Initiator Task Tag, never the reserved 0xffffffff.
    pub fn bump_generation(&mut self, idx: u16) {
        self.generation = self.generation.wrapping_add(1);
        if self.itt(idx) == lunlink_proto::pdu::RESERVED_TAG {
            self.generation = self.generation.wrapping_add(1);
        }
    }

    /// The Initiator Task Tag of the command now in this slot.
    pub fn itt(&self, idx: u16) -> u32 {
        (u32::from(self.generation) << 16) | u32::from(idx)
    }

    /// Records the outcome and wakes the caller. Returns true when the slot must be freed
    /// now because nobody waits for it any more.
    pub fn finish(&mut self, error: Option<CommandError>) -> bool {
        self.error = error;
        self.state = State::Done;
        if self.abandoned {
            return true;
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        false
    }
}

pub(crate) struct Slots {
    slots: Box<[Mutex<SlotInner>]>,
    free: Mutex<Vec<u16>>,
    /// One permit per free slot.
    pub sem: Semaphore,
}

impl Slots {
    pub fn new(depth: u16) -> Self {
        let slots = (0..depth).map(|_| Mutex::new(SlotInner::new())).collect();
        Self { slots, free: Mutex::new((0..depth).rev().collect()), sem: Semaphore::new(usize::from(depth)) }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn lock(&self, idx: u16) -> std::sync::MutexGuard<'_, SlotInner> {
        // A poisoned slot means a panic elsewhere already; keep serving the others.
        self.slots[usize::from(idx)].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Index of the slot an ITT names, if it is in range.
    pub fn index_of(&self, itt: u32) -> Option<u16> {
        let idx = u16::try_from(itt & 0xffff).ok()?;
        (usize::from(idx) < self.slots.len()).then_some(idx)
    }

    /// Takes a free slot; the caller must already hold a semaphore permit (forgotten).
    pub fn take(&self) -> u16 {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).pop().expect("a permit guarantees a free slot")
    }

    /// Returns a slot to the free list. Call with the slot's lock NOT held.
    pub fn release(&self, idx: u16) {
        {
            let mut s = self.lock(idx);
            s.state = State::Free;
            s.abandoned = false;
            s.buf = RawBuf::EMPTY;
            s.waker = None;
            s.error = None;
            s.owned = None;
            s.bump_generation(idx);
        }
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(idx);
        self.sem.add_permits(1);
    }
}
