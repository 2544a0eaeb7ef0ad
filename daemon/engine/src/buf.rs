//! Buffers the engine holds while a command is outstanding.
//!
//! The engine moves data straight between its socket buffers and the caller's memory, from
//! the connection task, while the caller awaits. For that to be sound whatever the caller does
//! with the future (drop it early, or even leak it with `mem::forget`), the caller hands the
//! buffer over by value and gets it back with the outcome: a leaked future then leaks the
//! buffer too, and the memory the connection task may still write stays valid.

/// Memory the engine may read or write until the value is dropped.
///
/// # Safety
/// `as_mut_ptr()` (called once per command) and `len()` (which must not change meanwhile) must
/// describe memory that stays valid from that call until the value is dropped or handed back,
/// even while the value is moved (moving the value must not move the bytes, as with heap
/// buffers such as `Vec<u8>`). Nobody else may write it meanwhile; as the buffer of a data-in
/// command (`DataBuf::In`) nobody else may read it either, since the engine writes it. The
/// buffer of a data-out command is only ever read by the engine.
pub unsafe trait IoBuf: Send + 'static {
    fn as_mut_ptr(&mut self) -> *mut u8;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: a Vec's heap bytes do not move when the Vec is moved, and nobody else can reach
// them while the engine owns the Vec.
unsafe impl IoBuf for Vec<u8> {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_slice().as_mut_ptr()
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

// SAFETY: as for Vec.
unsafe impl IoBuf for Box<[u8]> {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut().as_mut_ptr()
    }
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
}

/// Memory owned elsewhere, such as a ublk queue's IO buffer, lent to the engine.
#[derive(Debug)]
pub struct RawIoBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the creator promised exclusive access for the value's life (see `new`).
unsafe impl Send for RawIoBuf {}

impl RawIoBuf {
    /// # Safety
    /// `ptr..ptr+len` must stay valid until the returned value is dropped (if it is leaked:
    /// for ever), with the access rules of [`IoBuf`]: valid for writes and used by no one else
    /// when read into; not written by anyone else when written from.
    pub unsafe fn new(ptr: *mut u8, len: usize) -> Self {
        Self { ptr, len }
    }
}

// SAFETY: guaranteed by the contract of `RawIoBuf::new`.
unsafe impl IoBuf for RawIoBuf {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// The data of one command: none, a buffer to read into, or a buffer to write from.
#[derive(Debug)]
pub enum DataBuf<B> {
    None,
    In(B),
    Out(B),
}

impl<B> DataBuf<B> {
    /// The buffer, if any.
    pub fn into_inner(self) -> Option<B> {
        match self {
            DataBuf::None => None,
            DataBuf::In(b) | DataBuf::Out(b) => Some(b),
        }
    }
}
