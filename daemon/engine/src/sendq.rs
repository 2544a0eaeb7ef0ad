//! The connection's outgoing byte stream: PDU headers and small payloads in a buffer of its
//! own, large write payloads as references into the callers' buffers, gathered into one
//! sendmsg. A write's data is so copied once, by the kernel, from the caller's buffer into
//! the socket.
//!
//! A reference names a slot and its Initiator Task Tag, not a pointer: the pointer is taken
//! from the slot, under its lock, for the one system call that sends the bytes, so it is
//! valid however the caller's future ends meanwhile (a cancelled write's slot points at its
//! own copy). Before the connection task ends a command (completed, failed, or requeued
//! after a reset) while bytes of it are still queued, it calls [`SendQueue::detach`], which
//! copies them: the stream then carries exactly the data and digests it promised. (A
//! reference whose slot moved on without that would be sent as zeroes, keeping the stream
//! whole; it does not happen.)

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
const MAX_SLOTS: usize = 64;
static ZEROES: [u8; 64 * 1024] = [0; 64 * 1024];

/// Part of a caller's buffer in the stream, just before `buf[at]`.
#[derive(Debug)]
struct Ext {
    at: usize,
    idx: u16,
    itt: u32,
    off: usize,
    len: usize,
    /// Bytes of it already sent.
    done: usize,
    /// The bytes themselves, once detached from the slot.
    owned: Option<Box<[u8]>>,
}

pub(crate) struct SendQueue {
    /// PDU headers, trailers and small payloads.
    pub buf: Vec<u8>,
    /// Bytes of `buf` already sent.
    sent: usize,
    exts: VecDeque<Ext>,
    /// Unsent bytes in `exts`.
    ext_pending: usize,
    /// References still attached to each slot.
    refs: Box<[u16]>,
    /// The socket took less than offered: nothing more is tried until it is writable again
    /// (see `writable`), instead of locking slots and building iovecs for a WouldBlock.
    blocked: bool,
}

impl SendQueue {
    /// A queue for the commands of `depth` slots. `buf` is append-only for users: the
    /// references hold offsets into it.
    pub fn new(cap: usize, depth: usize) -> Self {
        Self {
            buf: Vec::with_capacity(cap),
            sent: 0,
            exts: VecDeque::with_capacity(256),
            ext_pending: 0,
            refs: vec![0; depth].into_boxed_slice(),
            blocked: false,
        }
    }

    /// The socket reported itself writable.
    pub fn writable(&mut self) {
        self.blocked = false;
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
            self.exts.push_back(Ext { at: self.buf.len(), idx, itt, off, len, done: 0, owned: None });
            self.ext_pending += len;
            self.refs[usize::from(idx)] += 1;
        }
    }

    /// Copies the queued bytes of the command in slot `idx`, locked by the caller as `s`, so
    /// that the slot may move on. Cheap when nothing of it is queued (the usual case: a
    /// target answers a write only after taking its data).
    pub fn detach(&mut self, idx: u16, s: &SlotInner) {
        if self.refs[usize::from(idx)] == 0 {
            return;
        }
        for e in self.exts.iter_mut().filter(|e| e.idx == idx && e.owned.is_none()) {
            let live = s.state == State::Sent && s.itt(idx) == e.itt && e.off + e.len <= s.buf.len;
            let copy: Box<[u8]> = if live {
                // SAFETY: the caller holds the slot's lock; it is Sent under the same tag and
                // off..off+len lies inside its buffer (see the module docs).
                unsafe { std::slice::from_raw_parts(s.buf.ptr.add(e.off), e.len) }.into()
            } else {
                vec![0; e.len].into_boxed_slice()
            };
            e.owned = Some(copy);
        }
        self.refs[usize::from(idx)] = 0;
    }

    /// Writes what the socket takes without blocking.
    pub fn flush(&mut self, stream: &TcpStream, slots: &Slots) -> io::Result<()> {
        while !self.is_empty() && !self.blocked {
            let (n, offered) = self.send_some(stream, slots)?;
            self.advance(n);
            if n < offered || offered == 0 {
                self.blocked = n < offered; // the socket is full
                break;
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
        let mut locked: [Option<(u16, MutexGuard<'_, SlotInner>)>; MAX_SLOTS] = std::array::from_fn(|_| None);
        let mut n_locked = 0;
        let mut push = |iov: &mut [libc::iovec; MAX_IOV], n_iov: &mut usize, bytes: &[u8]| {
            iov[*n_iov] = libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() };
            *n_iov += 1;
            offered += bytes.len();
        };
        let mut pos = self.sent;
        let mut stopped = false;
        for e in &self.exts {
            // Room for the buffer part before it, one entry for it and the part after; zero
            // chunks (a slot that moved on) take what they need.
            if n_iov + 3 > MAX_IOV {
                stopped = true;
                break;
            }
            let bytes: Option<&[u8]> = match &e.owned {
                Some(b) => Some(&b[e.done..]),
                None => {
                    let k = match locked[..n_locked].iter().position(|l| l.as_ref().is_some_and(|(i, _)| *i == e.idx)) {
                        Some(k) => k,
                        None if n_locked < MAX_SLOTS => {
                            locked[n_locked] = Some((e.idx, slots.lock(e.idx)));
                            n_locked += 1;
                            n_locked - 1
                        }
                        None => {
                            stopped = true;
                            break;
                        }
                    };
                    let s = &locked[k].as_ref().expect("locked above").1;
                    let live = s.state == State::Sent && s.itt(e.idx) == e.itt && e.off + e.len <= s.buf.len;
                    // SAFETY: the slot is locked until after the sendmsg below, Sent under the
                    // same tag, and off..off+len lies inside its buffer: the caller's buffer,
                    // held by its future, or the slot's own copy (see `SlotGuard`).
                    live.then(|| unsafe { std::slice::from_raw_parts(s.buf.ptr.add(e.off + e.done), e.len - e.done) })
                }
            };
            if e.at > pos {
                push(&mut iov, &mut n_iov, &self.buf[pos..e.at]);
                pos = e.at;
            }
            if let Some(bytes) = bytes {
                push(&mut iov, &mut n_iov, bytes);
            } else {
                // Not detached, yet the slot moved on: keep the stream whole (module docs).
                let mut left = e.len - e.done;
                while left > 0 && n_iov < MAX_IOV {
                    let k = left.min(ZEROES.len());
                    push(&mut iov, &mut n_iov, &ZEROES[..k]);
                    left -= k;
                }
                if left > 0 || n_iov + 1 > MAX_IOV {
                    stopped = true;
                    break;
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
        let r = stream.try_io(tokio::io::Interest::WRITABLE, || loop {
            // SAFETY: every iovec describes live memory (the send buffer, a locked slot's
            // buffer, a detached copy or static zeroes) of its length, only read by sendmsg.
            // MSG_NOSIGNAL: a closed connection is an error here, not a SIGPIPE.
            let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
            match usize::try_from(n) {
                Ok(n) => return Ok(n),
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        });
        drop(locked);
        match r {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => Ok((n, offered)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok((0, offered)),
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
                if e.owned.is_none() {
                    self.refs[usize::from(e.idx)] -= 1;
                }
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
        let mut q = SendQueue::new(64, 2);
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

    /// Through a real socket with a small send buffer, so that sends stop part-way: a
    /// reference sent from a live slot, one detached part-way (its copy is what goes out,
    /// whatever the buffer holds afterwards), and one whose slot moved on undetached (zeroes).
    #[tokio::test]
    async fn stream_through_a_socket_is_exactly_what_was_queued() {
        use crate::slots::RawBuf;
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        {
            use std::os::fd::AsRawFd;
            let v: libc::c_int = 16 * 1024;
            // SAFETY: setsockopt on our socket with a pointer to a local c_int.
            let r = unsafe {
                libc::setsockopt(client.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, std::ptr::addr_of!(v).cast(), 4)
            };
            assert_eq!(r, 0);
        }
        let slots = Slots::new(4);
        let mut bufs: Vec<Vec<u8>> = (0..3u8).map(|k| (0..400_000u32).map(|i| (i % 251) as u8 ^ k).collect()).collect();
        let mut q = SendQueue::new(1024, 4);
        let mut expected = Vec::new();
        let mut tags = Vec::new();
        for (k, b) in bufs.iter_mut().enumerate() {
            let idx = slots.take();
            let mut s = slots.lock(idx);
            s.state = State::Sent;
            s.buf = RawBuf { ptr: b.as_mut_ptr(), len: b.len() };
            tags.push((idx, s.itt(idx)));
            let (off, len) = [(100, 200_000), (0, 300_000), (7, 5000)][k];
            q.buf.extend_from_slice(format!("H{k}").as_bytes());
            expected.extend_from_slice(format!("H{k}").as_bytes());
            q.push_ext(idx, s.itt(idx), off, len);
            expected.extend_from_slice(if k == 2 { &[0; 5000][..] } else { &b[off..off + len] });
        }
        q.buf.extend_from_slice(b"END");
        expected.extend_from_slice(b"END");
        q.flush(&client, &slots).unwrap();
        assert!(q.pending() > 0 && q.pending() < expected.len(), "a first, partial send");
        {
            let (idx, _) = tags[1];
            let mut s = slots.lock(idx);
            q.detach(idx, &s);
            s.state = State::Done;
            bufs[1].fill(0xee); // too late: the copy went out
        }
        slots.lock(tags[2].0).state = State::Done;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            got
        });
        while !q.is_empty() {
            client.writable().await.unwrap();
            q.writable();
            q.flush(&client, &slots).unwrap();
        }
        drop(client);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the stream differs from what was queued");
        drop(bufs);
    }
}
