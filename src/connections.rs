//! Connection hygiene at the listener: what one client may hold open.
//!
//! Every accepted TCP connection is counted, in all and per peer address, for as long as it
//! is open (the count is given back when the connection is dropped, whatever closed it). A
//! connection over either cap is closed at once, before any byte is read: it costs the
//! server one `accept` and no task, so the accept loop keeps up and the process keeps the
//! descriptors it needs for PostgreSQL, Redis and everyone else. Trusted proxies
//! (`TRUSTED_PROXIES`) are exempt from the per-address cap.
//!
//! A connection that moves no byte either way for `CONNECTION_IDLE_TIMEOUT_SECS` fails its
//! next read or write with `TimedOut`, which closes it: one that says nothing, stops in the
//! middle of its headers or body, idles between requests, or never reads what it is sent.
//! (poem's own idle timeout shuts down gracefully, which waits for a request that was begun:
//! a half-sent request would hold the connection for ever.) Sockets answer the server's
//! heartbeat every 25 s, so a live socket is never idle that long.
//!
//! A request's headers must also arrive whole within `CONNECTION_HEADER_TIMEOUT_SECS` of
//! their first byte: a client trickling one byte a second (never idle) is cut all the same.
//! The wrapper watches the bytes go by: headers end at the first blank line (`\r\n\r\n`)
//! after the previous answer began; once the connection is upgraded (a `101` answer), what
//! follows are WebSocket frames and only the idle timeout applies.
//!
//! The answers hyper writes by itself, before any handler runs (`400` for a request that is
//! not HTTP, `431` for headers too large: a status line and `content-length: 0`), are
//! rewritten here into the standard error envelope, like every other error.

use std::{
    collections::HashMap,
    io,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use poem::{
    listener::{Acceptor, TcpAcceptor},
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};

use crate::{config::ConnectionLimits, limits::client_ip::TrustedProxies};

#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The open connections, shared by the acceptor and every connection it gave out.
#[derive(Default)]
pub struct OpenConnections {
    counts: Mutex<Counts>,
    refused: AtomicU64,
}

impl OpenConnections {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts().total
    }

    /// Connections closed at accept because a cap was reached, since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn release(&self, ip: Option<IpAddr>) {
        let mut counts = self.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = ip
            && let Some(n) = counts.by_address.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                counts.by_address.remove(&ip);
            }
        }
    }
}

/// The listener's acceptor: Nagle off, and the caps of [`ConnectionLimits`].
pub struct Guarded {
    inner: TcpAcceptor,
    limits: ConnectionLimits,
    proxies: TrustedProxies,
    open: Arc<OpenConnections>,
    last_warning: Option<std::time::Instant>,
}

impl Guarded {
    pub fn new(inner: TcpAcceptor, limits: ConnectionLimits, proxies: TrustedProxies) -> Self {
        Self {
            inner,
            limits,
            proxies,
            open: Arc::default(),
            last_warning: None,
        }
    }

    pub fn open_connections(&self) -> Arc<OpenConnections> {
        self.open.clone()
    }

    /// Counts a new connection from `ip` in, or says which cap it is over.
    fn admit(&self, ip: Option<IpAddr>) -> Result<Option<IpAddr>, &'static str> {
        let mut counts = self.open.counts();
        if counts.total >= self.limits.max_total {
            return Err("CONNECTION_MAX_TOTAL");
        }
        // Per address, unless it is a proxy speaking for many clients.
        let ip = ip.filter(|ip| !self.proxies.trusts(*ip));
        if let Some(ip) = ip {
            let n = counts.by_address.entry(ip).or_default();
            if *n >= self.limits.max_per_address {
                return Err("CONNECTION_MAX_PER_ADDRESS");
            }
            *n += 1;
        }
        counts.total += 1;
        Ok(ip)
    }
}

impl Acceptor for Guarded {
    type Io = Counted;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> io::Result<(Counted, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        loop {
            let (stream, local, remote, scheme) = self.inner.accept().await?;
            let ip = remote.as_socket_addr().map(|a| a.ip().to_canonical());
            match self.admit(ip) {
                Ok(counted_ip) => {
                    if let Err(err) = stream.set_nodelay(true) {
                        tracing::debug!(error = %err, "cannot turn Nagle's algorithm off");
                    }
                    let idle = self.limits.idle_timeout;
                    let io = Counted {
                        stream,
                        ip: counted_ip,
                        open: self.open.clone(),
                        idle,
                        header_timeout: self.limits.header_timeout,
                        deadline: Box::pin(tokio::time::sleep(idle)),
                        headers: Headers::Awaiting,
                        rewritten: None,
                    };
                    return Ok((io, local, remote, scheme));
                }
                Err(cap) => {
                    // Dropping the stream closes it; nothing was read.
                    drop(stream);
                    self.open.refused.fetch_add(1, Ordering::Relaxed);
                    let now = std::time::Instant::now();
                    if self
                        .last_warning
                        .is_none_or(|t| now.duration_since(t) > Duration::from_secs(10))
                    {
                        self.last_warning = Some(now);
                        tracing::warn!(
                            peer = ?ip,
                            cap,
                            refused = self.open.refused(),
                            "connection refused: cap reached"
                        );
                    }
                }
            }
        }
    }
}

/// An accepted connection, counted until dropped, closed when idle or when a request's
/// headers take too long.
pub struct Counted {
    stream: TcpStream,
    ip: Option<IpAddr>,
    open: Arc<OpenConnections>,
    idle: Duration,
    header_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    headers: Headers,
    /// A bare protocol error being written as an envelope: the bytes, how many are written,
    /// and how many of the original to report once they all are.
    rewritten: Option<(Vec<u8>, usize, usize)>,
}

/// The envelope version of an answer hyper wrote without a body (`400`, `431`), if `head`
/// is one.
fn enveloped(head: &[u8]) -> Option<Vec<u8>> {
    let (status, reason, message) = if head.starts_with(b"HTTP/1.1 400 ") {
        (400, "Bad Request", "The request is not valid HTTP.")
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            431,
            "Request Header Fields Too Large",
            "The request's headers are too large.",
        )
    } else {
        return None;
    };
    let text = std::str::from_utf8(head).ok()?.to_ascii_lowercase();
    if !text.contains("\r\ncontent-length: 0\r\n") || !text.ends_with("\r\n\r\n") {
        return None;
    }
    let body = serde_json::json!({
        "status": "error",
        "code": status,
        "error_code": "malformed_request",
        "message": message,
        "data": null,
        "errors": null,
    })
    .to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\nconnection: close\r\n\
             content-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// Where the connection is in receiving a request's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Headers {
    /// Before a request's first byte.
    Awaiting,
    /// Receiving them since `since`; `tail` is how much of `\r\n\r\n` the last bytes matched.
    Receiving { since: Instant, tail: u8 },
    /// Received (the body, or the handler's work, may follow).
    Received,
    /// Upgraded to a WebSocket: no headers any more.
    Upgraded,
}

const BLANK_LINE: &[u8; 4] = b"\r\n\r\n";

impl Headers {
    /// Bytes read from the client.
    fn read(self, bytes: &[u8], now: Instant) -> Self {
        let (since, mut tail) = match self {
            Self::Awaiting if !bytes.is_empty() => (now, 0),
            Self::Receiving { since, tail } => (since, tail),
            other => return other,
        };
        for &b in bytes {
            tail = if b == BLANK_LINE[tail as usize] {
                tail + 1
            } else if b == b'\r' {
                1
            } else {
                0
            };
            if tail == 4 {
                return Self::Received;
            }
        }
        Self::Receiving { since, tail }
    }

    /// Bytes written to the client: an answer began, the next request's headers are awaited
    /// (unless the answer upgrades the connection).
    fn written(self, bytes: &[u8]) -> Self {
        match self {
            Self::Upgraded => Self::Upgraded,
            _ if bytes.starts_with(b"HTTP/1.1 101") => Self::Upgraded,
            // `100 Continue`: the body follows, not another request's headers.
            _ if bytes.starts_with(b"HTTP/1.1 1") => self,
            Self::Received | Self::Awaiting => Self::Awaiting,
            // An answer before the headers ended (an error the server sent early).
            Self::Receiving { .. } => Self::Awaiting,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.release(self.ip);
    }
}

impl Counted {
    /// Bytes moved: the idle clock starts again (bounded by the headers' deadline while
    /// they are being received).
    fn progressed(&mut self) {
        let mut next = Instant::now() + self.idle;
        if let Headers::Receiving { since, .. } = self.headers
            && !self.header_timeout.is_zero()
        {
            next = next.min(since + self.header_timeout);
        }
        self.deadline.as_mut().reset(next);
    }

    /// Nothing moved: an error once the connection has been idle too long, or its headers
    /// slow.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                if matches!(self.headers, Headers::Receiving { .. }) {
                    "request headers too slow"
                } else {
                    "connection idle for too long"
                },
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.headers = self.headers.read(&buf.filled()[before..], Instant::now());
                    self.progressed();
                    // Slow headers fail at once, even if a byte keeps coming every second.
                    if let Poll::Ready(Err(e)) = self.stalled::<()>(cx) {
                        return Poll::Ready(Err(e));
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.stalled(cx),
        }
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.rewritten.is_none()
            && let Some(bytes) = enveloped(buf)
        {
            self.rewritten = Some((bytes, 0, buf.len()));
        }
        if let Some((bytes, mut done, report)) = self.rewritten.take() {
            while done < bytes.len() {
                match Pin::new(&mut self.stream).poll_write(cx, &bytes[done..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => done += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        self.rewritten = Some((bytes, done, report));
                        return self.stalled(cx);
                    }
                }
            }
            self.progressed();
            return Poll::Ready(Ok(report));
        }
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                self.headers = self.headers.written(&buf[..n]);
                self.progressed();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.stalled(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if self.rewritten.is_some() || enveloped(first).is_some() {
            return self.poll_write(cx, first);
        }
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &b[..]);
                self.headers = self.headers.written(&first[..first.len().min(n)]);
                self.progressed();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.stalled(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
