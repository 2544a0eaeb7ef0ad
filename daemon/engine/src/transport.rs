//! Connecting and the login phase: a simple owned-PDU channel, used before the connection task
//! takes over (normal sessions) and for whole discovery sessions.

use std::net::SocketAddr;
use std::time::Duration;

use lunlink_proto::discovery::Portal;
use lunlink_proto::login::{Login, LoginParams, LoginStep, Negotiated};
use lunlink_proto::pdu::{Decoder, Digests, FrameConfig, Header, Pdu};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::EngineError;

/// Redirections followed before giving up (a loop between two targets must end).
const MAX_REDIRECTS: usize = 8;

pub(crate) struct Channel {
    pub stream: TcpStream,
    pub decoder: Decoder,
    pub digests: Digests,
    pub portal: String,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
}

impl Channel {
    pub async fn connect(portal: &Portal, timeout: Duration) -> Result<Self, EngineError> {
        let shown = portal.to_string();
        let addrs: Vec<SocketAddr> = tokio::time::timeout(timeout, tokio::net::lookup_host((portal.host(), portal.port())))
            .await
            .map_err(|_| EngineError::Timeout("name resolution", timeout))?
            .map_err(|source| EngineError::Resolve { portal: shown.clone(), source })?
            .collect();
        let mut last = None;
        for addr in addrs {
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Commands are small and latency-bound; batching is done by us, not Nagle.
                    let _ = stream.set_nodelay(true);
                    return Ok(Self {
                        stream,
                        decoder: Decoder::new(FrameConfig::default()),
                        digests: Digests::default(),
                        portal: shown,
                        wbuf: Vec::with_capacity(8192),
                        rbuf: vec![0; 64 * 1024],
                    });
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
            }
        }
        Err(EngineError::Connect {
            portal: shown,
            source: last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")),
        })
    }

    pub async fn send(&mut self, pdu: &Pdu) -> Result<(), EngineError> {
        self.wbuf.clear();
        pdu.encode(&mut self.wbuf, self.digests);
        self.stream
            .write_all(&self.wbuf)
            .await
            .map_err(|source| EngineError::Io { portal: self.portal.clone(), source })
    }

    pub async fn recv(&mut self, during: &'static str) -> Result<Pdu, EngineError> {
        loop {
            if let Some(p) = self.decoder.next_pdu()? {
                return Ok(p);
            }
            let n = self
                .stream
                .read(&mut self.rbuf)
                .await
                .map_err(|source| EngineError::Io { portal: self.portal.clone(), source })?;
            if n == 0 {
                return Err(EngineError::Closed(during));
            }
            self.decoder.feed(&self.rbuf[..n]);
        }
    }
}

/// Connects to `portal` and logs in, following redirections. Returns the channel in full
/// feature phase and what was negotiated.
pub(crate) async fn connect_and_login(
    portal: &Portal,
    params: LoginParams,
    timeout: Duration,
    user_timeout: Duration,
) -> Result<(Channel, Negotiated), EngineError> {
    let mut portal = portal.clone();
    // One deadline for the whole login, redirections included.
    let deadline = tokio::time::Instant::now() + timeout;
    for _ in 0..MAX_REDIRECTS {
        let fut = async {
            let mut ch = Channel::connect(&portal, timeout).await?;
            tune_socket(&ch.stream, user_timeout);
            // A fresh mutual-CHAP challenge for every attempt, redirected ones included.
            let mut login = Login::new(params.clone(), rand::random())?;
            ch.send(&login.start()).await?;
            loop {
                let pdu = match ch.recv("login").await {
                    Err(EngineError::Closed(_)) if login.stage() == lunlink_proto::login::Stage::Security => {
                        return Err(EngineError::ClosedDuringSecurity {
                            offered_chap: !matches!(params.auth, lunlink_proto::login::Auth::None),
                        });
                    }
                    r => r?,
                };
                let Header::LoginResponse(rsp) = &pdu.header else {
                    return Err(EngineError::Protocol(format!(
                        "expected a Login Response, got {:?}",
                        pdu.header.opcode()
                    )));
                };
                match login.handle(rsp, &pdu.data)? {
                    LoginStep::Send(next) => ch.send(&next).await?,
                    LoginStep::Done(done) => return Ok(Ok((ch, done))),
                    LoginStep::Redirect { address, .. } => return Ok(Err(address)),
                }
            }
        };
        let outcome = tokio::time::timeout_at(deadline, fut)
            .await
            .map_err(|_| EngineError::Timeout("login", timeout))??;
        match outcome {
            Ok((mut ch, done)) => {
                ch.digests = Digests { header: done.params.header_digest, data: done.params.data_digest };
                ch.decoder.set_config(done.params.frame_config());
                return Ok((ch, done));
            }
            Err(address) => {
                tracing::info!(from = %portal, to = %address, "login redirected");
                portal = address;
            }
        }
    }
    Err(EngineError::TooManyRedirects(portal.to_string()))
}

/// TCP keepalive and TCP_USER_TIMEOUT, so a dead peer is noticed even when no NOP-Out is
/// outstanding and writes are stuck in the send queue.
fn tune_socket(stream: &TcpStream, user_timeout: Duration) {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
        // SAFETY: setsockopt on a socket we own with a pointer to a local c_int of the right size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                std::ptr::from_ref(&value).cast(),
                libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
            )
        };
        if r != 0 {
            tracing::debug!(name, "setsockopt failed: {}", std::io::Error::last_os_error());
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 5);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 2);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
    let ms = libc::c_int::try_from(user_timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms);
}
