//! Serving a router on a TCP listener so that slow, stalled or too many clients cannot hold the
//! server: what `axum::serve` leaves unbounded.
//!
//! - **Headers**: a request's headers must arrive within [`ClientLimits::timeout`] (hyper's
//!   header-read timer: a slowloris connection sending a header line a minute is closed).
//! - **Bodies**: each piece of a request body must arrive within the same time after the last
//!   one, or reading the body fails (the handler answers its usual "unreadable body" error and
//!   the connection closes); a slow but moving upload is never cut.
//! - **Responses**: a response the client stops reading for that long is cut: the connection
//!   fails, the response body is dropped and with it whatever produces it (a query's stream, a
//!   cutout's reads). A silent handler (a long sync query, a UWS `WAIT`) is not a stall: only a
//!   write that cannot proceed counts, never a read hyper keeps pending to notice a hang-up.
//! - **Connections**: at most [`ClientLimits::max_connections`] are served at once; more wait in
//!   the kernel's listen backlog until one closes.
//!
//! Each request carries the peer's address as [`axum::extract::ConnectInfo`], as with
//! `into_make_service_with_connect_info`. HTTP/1.1 with keep-alive and upgrades (the labs' proxy
//! passes WebSockets through).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use futures::Stream;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Bounds on what one client may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Longest wait for a request's headers, for the next piece of its body, and for a client to
    /// take more of a response.
    pub timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// `[services] client_timeout_secs` when not set.
pub const DEFAULT_CLIENT_TIMEOUT_SECS: u64 = 60;
/// `[services] max_connections` when not set.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(DEFAULT_CLIENT_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` until the task is dropped; accept errors (out of file
/// descriptors) are logged and retried.
pub async fn serve(listener: TcpListener, app: axum::Router, limits: ClientLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // A response whose headers and body go out in two writes otherwise waits for the
        // client's delayed ACK (42 ms per UWS result, measured).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let app = app.clone();
        tokio::spawn(async move {
            serve_connection(tcp, peer, app, limits.timeout).await;
            drop(slot);
        });
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    timeout: Duration,
) {
    let service = app.map_request(move |request: axum::http::Request<Incoming>| {
        let mut request = request.map(|body| Body::from_stream(IdleLimited::new(body, timeout)));
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let io = TokioIo::new(StallGuard::new(tcp, timeout));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .keep_alive(true)
        .serve_connection(io, TowerToHyperService::new(service))
        .with_upgrades();
    if let Err(e) = connection.await {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

/// A request body whose next piece must come within `timeout` of the previous one.
struct IdleLimited {
    body: Incoming,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl IdleLimited {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Self {
            body,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl Stream for IdleLimited {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use hyper::body::Body as _;
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let next = tokio::time::Instant::now() + this.timeout;
                    this.deadline.as_mut().reset(next);
                    match frame.into_data() {
                        Ok(data) => return Poll::Ready(Some(Ok(data))),
                        Err(_trailers) => continue,
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(io::Error::other(e)))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    ready!(this.deadline.as_mut().poll(cx));
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the client sent nothing of the request body for {} s",
                            this.timeout.as_secs()
                        ),
                    ))));
                }
            }
        }
    }
}

/// A connection whose writes fail once one has waited `stall` for the client to read.
struct StallGuard<T> {
    inner: T,
    stall: Duration,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> StallGuard<T> {
    fn new(inner: T, stall: Duration) -> Self {
        Self {
            inner,
            stall,
            waiting: None,
        }
    }

    /// After a write-side poll: progress clears the timer, `Pending` starts or checks it.
    fn outcome<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.waiting = None;
            return polled;
        }
        let stall = self.stall;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match waiting.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} s", stall.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.outcome(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.outcome(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.outcome(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.outcome(cx, polled)
    }
}
