//! A TCP proxy on loopback, to make a second path to a target and to break it on purpose:
//! [`Proxy::silence`] stops forwarding in both directions (bytes wait in the sockets, as with a
//! pulled cable or a SIGSTOPped middlebox: no RST), [`Proxy::resume`] forwards again,
//! [`Proxy::reset`] closes every connection through it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The proxy; stops when dropped.
pub struct Proxy {
    addr: String,
    shared: Arc<Shared>,
}

struct Shared {
    stop: AtomicBool,
    silent: AtomicBool,
    /// Connections open now (both halves), to close them on `reset`.
    conns: Mutex<Vec<TcpStream>>,
    /// Bytes forwarded so far, both ways.
    bytes: AtomicU64,
}

impl Proxy {
    /// Forwards 127.0.0.1:<new port> to `upstream` ("host:port").
    pub fn start(upstream: &str) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = l.local_addr().expect("local address").to_string();
        l.set_nonblocking(true).expect("nonblocking listener");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            conns: Mutex::default(),
            bytes: AtomicU64::new(0),
        });
        let sh = shared.clone();
        let upstream = upstream.to_owned();
        std::thread::spawn(move || {
            while !sh.stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(&upstream) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        {
                            let mut c = sh.conns.lock().unwrap_or_else(|e| e.into_inner());
                            c.extend([client.try_clone(), server.try_clone()].into_iter().flatten());
                        }
                        for (from, to) in [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())] {
                            let (Ok(from), Ok(to)) = (from, to) else { continue };
                            let sh = sh.clone();
                            std::thread::spawn(move || pump(from, to, &sh));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(_) => return,
                }
            }
        });
        Proxy { addr, shared }
    }

    /// "127.0.0.1:PORT", the portal to use.
    pub fn portal(&self) -> &str {
        &self.addr
    }

    /// Stop forwarding, without closing anything.
    pub fn silence(&self) {
        self.shared.silent.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.shared.silent.store(false, Ordering::SeqCst);
    }

    /// Close every connection through the proxy now (new ones are still accepted).
    pub fn reset(&self) {
        let conns = std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for c in conns {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Bytes forwarded so far (both ways).
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.reset();
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, sh: &Shared) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 256 * 1024];
    while !sh.stop.load(Ordering::SeqCst) {
        if sh.silent.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Bytes read just as `silence` came are held too, as a stopped process holds them.
                while sh.silent.load(Ordering::SeqCst) && !sh.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                sh.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
