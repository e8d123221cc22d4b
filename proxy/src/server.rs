//! The TLS listener and the connections it accepts: the connection limit and the per-address
//! caps (`peers`), the TLS handshake timeout, HTTP/1.1 or HTTP/2 by ALPN with hyper's own
//! limits configured, the idle timeout, the lingering close (`linger`), and graceful
//! shutdown. Each request is handed to the stack the gateway built (the outer layer around
//! the pipeline).

mod linger;
mod peers;

use crate::admission::framing::FramingGuard;
use crate::ctx::{ConnInfo, RequestCtx};
use crate::exchange::{Exchange, RequestBody};
use crate::observe::ObserveService;
use crate::pipeline::Pipeline;
use crate::shared::Shared;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use linger::{linger, Returned, ReturningTcp};
use peers::{PeerLimits, PeerSlot};

/// hyper's default HTTP/1 read buffer; raised only when the header limit needs more.
const DEFAULT_MAX_BUF: usize = 400 * 1024;
/// How long an idle connection asked to close may take before it is dropped.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Accepts connections until `shutdown` flips, then drains them for the grace period.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    stack: ObserveService<Pipeline>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = &shared.config.limits;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let peers = PeerLimits::new(
        limits.max_connections_per_address,
        limits.max_handshakes_per_address,
    );
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Per address first: a flood from one address must not use up global slots.
                let slot = match peers.admit(peer.ip()) {
                    Ok(slot) => slot,
                    Err(cap) => {
                        shared.metrics.connections_refused_per_address.inc();
                        tracing::debug!(%peer, ?cap, "per-address connection cap reached");
                        drop(tcp);
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    shared.metrics.connections_refused.inc();
                    drop(tcp);
                    continue;
                };
                connections.spawn(connection(
                    tcp,
                    peer,
                    acceptor.clone(),
                    shared.clone(),
                    stack.clone(),
                    shutdown.clone(),
                    (permit, slot),
                ));
            }
        }
    }
    drop(listener);
    let grace = Duration::from_secs(shared.config.shutdown_grace_secs);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "grace period over; closing remaining connections"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Decrements the open-connection gauge however the connection ends.
struct OpenConnection(prometheus::IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    stack: ObserveService<Pipeline>,
    mut shutdown: watch::Receiver<bool>,
    // Held until the connection is gone, lingering included.
    (_permit, mut slot): (OwnedSemaphorePermit, PeerSlot),
) {
    shared.metrics.connections_open.inc();
    let _open = OpenConnection(shared.metrics.connections_open.clone());
    let _ = tcp.set_nodelay(true);
    let limits = &shared.config.limits;
    let (tcp, mut returned) = ReturningTcp::new(tcp);
    let handshake = Duration::from_secs(limits.tls_handshake_timeout_secs);
    let accepted = tokio::time::timeout(handshake, acceptor.accept(tcp)).await;
    slot.handshake_done();
    let tls = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared.metrics.tls_handshake_failures.inc();
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.tls_handshake_failures.inc();
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let (_, session) = tls.get_ref();
    let sni = session.server_name().map(str::to_ascii_lowercase);
    let h2 = session.alpn_protocol() == Some(b"h2");
    let conn = Arc::new(ConnInfo::new(peer, sni, h2));
    conn.touch();

    // The request head hyper accepts: headers plus request line, with slack for framing.
    let max_head = limits.max_header_bytes + limits.max_uri_bytes + 1024;
    let io = TokioIo::new(ConnIo {
        inner: tls,
        conn: conn.clone(),
        guard: (!h2).then(|| FramingGuard::new(max_head, limits.max_chunk_extension_bytes)),
    });
    let service_conn = conn.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let conn = service_conn.clone();
        let stack = stack.clone();
        async move {
            let _in_flight = InFlight::enter(&conn);
            let (parts, body) = req.into_parts();
            let ctx = Box::new(RequestCtx::new(conn.clone(), &parts));
            let exchange = Exchange {
                ctx,
                parts,
                body: RequestBody::Streaming(body.boxed_unsync()),
            };
            stack.oneshot(exchange).await
        }
    });
    let idle = Duration::from_secs(limits.idle_timeout_secs);
    let ending = if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_header_list_size(
                u32::try_from(max_head + 32 * limits.max_headers).unwrap_or(u32::MAX),
            )
            .max_pending_accept_reset_streams(Some(64))
            // No keep-alive pings: their bytes would count as activity and keep idle
            // connections open forever; the idle timeout finds dead peers instead.
            .max_local_error_reset_streams(Some(256));
        drive(
            builder.serve_connection(io, service),
            &conn,
            idle,
            &mut shutdown,
        )
        .await
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs))
            .max_headers(limits.max_headers)
            .max_header_size(max_head)
            .keep_alive(true)
            .half_close(false);
        if max_head > DEFAULT_MAX_BUF {
            builder.max_buf_size(max_head + 1024);
        }
        drive(
            builder.serve_connection(io, service),
            &conn,
            idle,
            &mut shutdown,
        )
        .await
    };
    // hyper has dropped the stream by now, and with it handed the TCP stream back.
    if let (
        Ending::Closed,
        Ok(Returned {
            stream,
            client_finished: false,
        }),
    ) = (ending, returned.try_recv())
    {
        let discarded = linger(stream, limits).await;
        tracing::trace!(peer = %conn.peer, discarded, "lingering close done");
    }
}

/// How a connection's HTTP serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closed, or hyper did (after an error, or a response that closes): the
    /// client may still be sending.
    Closed,
    /// The gateway wound it down while it was idle or shutting down: nothing to wait for.
    Drained,
}

/// Serves one connection until it ends. Shutdown, or being idle too long, asks it to finish
/// gracefully (HTTP/2: GOAWAY); an idle connection that does not finish soon is dropped.
async fn drive<C>(
    conn: C,
    info: &ConnInfo,
    idle: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Ending
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let mut draining = *shutdown.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    let mut give_up: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
                }
                return if draining { Ending::Drained } else { Ending::Closed };
            }
            _ = shutdown.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = idle_expired(info, idle), if !draining => {
                tracing::debug!(peer = %info.peer, "closing idle connection");
                draining = true;
                conn.as_mut().graceful_shutdown();
                give_up = Some(tokio::time::Instant::now() + IDLE_CLOSE_GRACE);
            }
            () = sleep_until(give_up) => return Ending::Drained,
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn idle_expired(info: &ConnInfo, idle: Duration) {
    loop {
        let idle_for = info.idle_for();
        if info.in_flight.load(Ordering::Acquire) == 0 && idle_for >= idle {
            return;
        }
        let wait = idle
            .saturating_sub(idle_for)
            .max(Duration::from_millis(100));
        tokio::time::sleep(wait).await;
    }
}

/// Counts a request in flight until its response head is ready (or it is dropped).
struct InFlight<'a>(&'a ConnInfo);

impl<'a> InFlight<'a> {
    fn enter(conn: &'a ConnInfo) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(conn)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// The client connection's byte stream: records activity for the idle timer and feeds the
/// HTTP/1 framing guard before hyper sees the bytes.
struct ConnIo<S> {
    inner: S,
    conn: Arc<ConnInfo>,
    guard: Option<FramingGuard>,
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let fresh = buf.filled().get(before..).unwrap_or_default();
            if !fresh.is_empty() {
                this.conn.touch();
                if let Some(fault) = this.guard.as_mut().and_then(|g| g.feed(fresh)) {
                    // The guard reports one fault per connection; the first one stands.
                    let _ = this.conn.framing_fault.set(fault);
                }
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.conn.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.conn.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
