//! The connection's outgoing byte stream: PDU headers and small payloads in a buffer of its
//! own, large write payloads as references into the callers' buffers, gathered into one
//! sendmsg. A write's data is so copied once, by the kernel, from the caller's buffer into
//! the socket.
//!
//! A reference names a slot and its Initiator Task Tag, not a pointer: the pointer is taken
//! from the slot, under its lock, for the one system call that sends the bytes, so it is
//! valid however the caller's future ends meanwhile (a cancelled write's slot points at its
//! own copy). A command that ended before all its queued data went out (the target answered
//! early, or it was aborted) has its remaining bytes sent as zeroes: the target discards data
//! for a task that is over, but the stream must stay whole.

use std::collections::VecDeque;
use std::io;
use std::sync::MutexGuard;

use tokio::net::TcpStream;

use crate::slots::{SlotInner, Slots, State};

/// Payloads at least this long are sent from the caller's buffer; shorter ones are copied
/// into the send buffer, where they cost less than an iovec entry.
pub(crate) const EXT_MIN: usize = 1024;
/// Iovec entries per sendmsg (the kernel allows 1024).
const MAX_IOV: usize = 256;
/// Distinct slots locked for one sendmsg.
const MAX_SLOTS: usize = 16;
static ZEROES: [u8; 64 * 1024] = [0; 64 * 1024];

/// Part of a caller's buffer in the stream, just before `buf[at]`.
#[derive(Debug, Clone, Copy)]
struct Ext {
    at: usize,
    idx: u16,
    itt: u32,
    off: usize,
    len: usize,
    /// Bytes of it already sent.
    done: usize,
}

pub(crate) struct SendQueue {
    /// PDU headers, trailers and small payloads.
    pub buf: Vec<u8>,
    /// Bytes of `buf` already sent.
    sent: usize,
    exts: VecDeque<Ext>,
    /// Unsent bytes in `exts`.
    ext_pending: usize,
}

impl SendQueue {
    pub fn with_capacity(cap: usize) -> Self {
        Self { buf: Vec::with_capacity(cap), sent: 0, exts: VecDeque::with_capacity(256), ext_pending: 0 }
    }

    /// Bytes waiting for the socket.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.sent + self.ext_pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending() == 0
    }

    /// Queues `len` bytes at `off` in the buffer of the command in slot `idx` (tag `itt`),
    /// after everything queued so far.
    pub fn push_ext(&mut self, idx: u16, itt: u32, off: usize, len: usize) {
        if len > 0 {
            self.exts.push_back(Ext { at: self.buf.len(), idx, itt, off, len, done: 0 });
            self.ext_pending += len;
        }
    }

    /// Writes what the socket takes without blocking.
    pub fn flush(&mut self, stream: &TcpStream, slots: &Slots) -> io::Result<()> {
        while !self.is_empty() {
            let (n, offered) = self.send_some(stream, slots)?;
            self.advance(n);
            if n < offered {
                break; // the socket is full
            }
        }
        if self.is_empty() {
            self.buf.clear();
            self.sent = 0;
        } else if self.sent >= crate::conn::SEND_HIGH_WATER {
            // A slow peer: drop what went out so the buffer cannot grow without bound.
            self.buf.drain(..self.sent);
            for e in &mut self.exts {
                e.at -= self.sent; // every queued reference lies after what was sent
            }
            self.sent = 0;
        }
        Ok(())
    }

    /// One sendmsg of the front of the stream. Returns the bytes sent and offered; 0 sent
    /// when the socket takes nothing now.
    fn send_some(&self, stream: &TcpStream, slots: &Slots) -> io::Result<(usize, usize)> {
        let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_IOV];
        let mut n_iov = 0;
        let mut offered = 0;
        let mut locked: [Option<(u16, MutexGuard<'_, SlotInner>)>; MAX_SLOTS] = Default::default();
        let mut n_locked = 0;
        let mut push = |iov: &mut [libc::iovec; MAX_IOV], n_iov: &mut usize, bytes: &[u8]| {
            iov[*n_iov] = libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() };
            *n_iov += 1;
            offered += bytes.len();
        };
        let mut pos = self.sent;
        let mut stopped = false;
        for e in &self.exts {
            // Room for the buffer part before it, its own entries and the part after.
            if n_iov + 3 + e.len.div_ceil(ZEROES.len()) > MAX_IOV {
                stopped = true;
                break;
            }
            if e.at > pos {
                push(&mut iov, &mut n_iov, &self.buf[pos..e.at]);
                pos = e.at;
            }
            let slot = match locked[..n_locked].iter().position(|l| l.as_ref().is_some_and(|(i, _)| *i == e.idx)) {
                Some(k) => Some(k),
                None if n_locked < MAX_SLOTS => {
                    locked[n_locked] = Some((e.idx, slots.lock(e.idx)));
                    n_locked += 1;
                    Some(n_locked - 1)
                }
                None => None,
            };
            let Some(k) = slot else {
                stopped = true;
                break;
            };
            let s = &locked[k].as_ref().expect("locked above").1;
            let live = s.state == State::Sent && s.itt(e.idx) == e.itt && e.off + e.len <= s.buf.len;
            if live {
                // SAFETY: the slot is locked (until after the sendmsg below), Sent under the
                // same tag, and off..off+len lies inside its buffer: the caller's buffer, held
                // by its future, or the slot's own copy (see `SlotGuard`).
                let bytes = unsafe { std::slice::from_raw_parts(s.buf.ptr.add(e.off + e.done), e.len - e.done) };
                push(&mut iov, &mut n_iov, bytes);
            } else {
                // The command is over: keep the stream whole with zeroes (see module docs).
                let mut left = e.len - e.done;
                while left > 0 {
                    let k = left.min(ZEROES.len());
                    push(&mut iov, &mut n_iov, &ZEROES[..k]);
                    left -= k;
                }
            }
        }
        if !stopped && pos < self.buf.len() {
            push(&mut iov, &mut n_iov, &self.buf[pos..]);
        }
        if n_iov == 0 {
            return Ok((0, 0));
        }
        // SAFETY: an all-zero msghdr is valid (no address, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n_iov;
        use std::os::fd::AsRawFd;
        let fd = stream.as_raw_fd();
        let r = stream.try_io(tokio::io::Interest::WRITABLE, || {
            // SAFETY: every iovec describes live memory (the send buffer, a locked slot's
            // buffer, or static zeroes) of its length, only read by sendmsg. MSG_NOSIGNAL: a
            // closed connection is an error here, not a SIGPIPE.
            let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        });
        drop(locked);
        match r {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => Ok((n, offered)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok((0, offered)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok((0, offered.max(1))),
            Err(e) => Err(e),
        }
    }

    /// Marks `n` bytes from the front of the stream as sent.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let limit = self.exts.front().map_or(self.buf.len(), |e| e.at);
            let from_buf = (limit - self.sent).min(n);
            self.sent += from_buf;
            n -= from_buf;
            if n == 0 {
                break;
            }
            let e = self.exts.front_mut().expect("bytes beyond the buffer belong to a reference");
            let k = (e.len - e.done).min(n);
            e.done += k;
            self.ext_pending -= k;
            n -= k;
            if e.done == e.len {
                self.exts.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_walks_buffer_and_references_in_stream_order() {
        let mut q = SendQueue::with_capacity(64);
        q.buf.extend_from_slice(b"hdr1");
        q.push_ext(0, 7, 0, 10);
        q.buf.extend_from_slice(b"t1hdr2");
        q.push_ext(1, 8, 0, 5);
        assert_eq!(q.pending(), 4 + 10 + 6 + 5);
        q.advance(3);
        assert_eq!((q.sent, q.exts.len()), (3, 2));
        q.advance(5); // 1 of hdr1, 4 of the first reference
        assert_eq!((q.sent, q.exts[0].done), (4, 4));
        q.advance(6 + 6); // the rest of it, t1hdr2
        assert_eq!((q.sent, q.exts.len(), q.exts[0].done), (10, 1, 0));
        q.advance(5);
        assert!(q.is_empty());
    }
}
