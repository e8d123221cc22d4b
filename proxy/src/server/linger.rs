//! The lingering close (nginx's `lingering_close`). When the gateway refuses a request the
//! client is still sending (a 431 for a huge head, a 413 for a declared body), hyper writes
//! the response and closes. Closing a socket with unread bytes in its receive queue makes the
//! kernel send a reset, and a client that writes everything before it reads then sees the
//! reset instead of the response. So after the HTTP connection is done, the gateway shuts
//! down its sending side (the client sees the end of the response), reads and discards what
//! still arrives for a bounded time and byte count, and only then closes.
//!
//! hyper owns the stream while it serves, so the TCP stream is wrapped in a
//! [`ReturningTcp`] that hands it back to the connection task when hyper drops it. Bytes are
//! discarded below TLS: nothing more needs to be understood, only drained.

use crate::config::Limits;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Read size while discarding.
const DISCARD_CHUNK: usize = 16 * 1024;

/// The client's TCP stream as hyper (through TLS) uses it; gives the stream back when dropped.
pub(super) struct ReturningTcp {
    stream: Option<TcpStream>,
    back: Option<oneshot::Sender<Returned>>,
    client_finished: bool,
}

/// The stream given back, and whether the client had already ended its side.
pub(super) struct Returned {
    pub stream: TcpStream,
    pub client_finished: bool,
}

impl ReturningTcp {
    pub(super) fn new(stream: TcpStream) -> (Self, oneshot::Receiver<Returned>) {
        let (back, returned) = oneshot::channel();
        let wrapped = ReturningTcp {
            stream: Some(stream),
            back: Some(back),
            client_finished: false,
        };
        (wrapped, returned)
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::NotConnected.into())
    }
}

impl Drop for ReturningTcp {
    fn drop(&mut self) {
        if let (Some(stream), Some(back)) = (self.stream.take(), self.back.take()) {
            // Nobody waiting (the handshake failed): the stream closes here.
            let _ = back.send(Returned {
                stream,
                client_finished: self.client_finished,
            });
        }
    }
}

impl AsyncRead for ReturningTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let room = buf.remaining();
        let before = buf.filled().len();
        let result = match this.stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if matches!(result, Poll::Ready(Ok(()))) && room > 0 && buf.filled().len() == before {
            this.client_finished = true;
        }
        result
    }
}

impl AsyncWrite for ReturningTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// Shuts down the sending side, then reads and discards until the client closes, is quiet
/// for `lingering_timeout_secs`, `lingering_time_secs` pass, or `lingering_max_bytes` were
/// read. Returns the bytes discarded.
pub(super) async fn linger(mut stream: TcpStream, limits: &Limits) -> usize {
    let total = Duration::from_secs(limits.lingering_time_secs);
    if total.is_zero() {
        return 0;
    }
    // hyper usually did this already (through TLS's close_notify); a second shutdown of the
    // same side is harmless.
    let _ = stream.shutdown().await;
    let deadline = Instant::now() + total;
    let quiet = Duration::from_secs(limits.lingering_timeout_secs);
    let mut buf = vec![0u8; DISCARD_CHUNK];
    let mut discarded = 0usize;
    while discarded < limits.lingering_max_bytes {
        let wait = quiet.min(deadline.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            break;
        }
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => discarded = discarded.saturating_add(n),
        }
    }
    discarded
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn the_stream_comes_back_with_whether_the_client_finished() {
        let (mut client, server) = pair().await;
        let (mut wrapped, returned) = ReturningTcp::new(server);
        client.write_all(b"ab").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(wrapped.read(&mut buf).await.unwrap(), 2);
        drop(wrapped);
        let back = returned.await.unwrap();
        assert!(!back.client_finished);

        let (client, server) = pair().await;
        let (mut wrapped, returned) = ReturningTcp::new(server);
        drop(client);
        assert_eq!(wrapped.read(&mut buf).await.unwrap(), 0);
        drop(wrapped);
        assert!(returned.await.unwrap().client_finished);
    }

    #[tokio::test]
    async fn lingering_stops_at_the_byte_bound_and_at_the_client_close() {
        let limits = Limits {
            lingering_max_bytes: 64 * 1024,
            ..Limits::default()
        };
        let (mut client, server) = pair().await;
        let writer = tokio::spawn(async move {
            let chunk = vec![7u8; 16 * 1024];
            // Far more than the bound; the write fails once the server closes.
            for _ in 0..1024 {
                if client.write_all(&chunk).await.is_err() {
                    return true;
                }
            }
            false
        });
        let discarded = linger(server, &limits).await;
        assert!(
            (64 * 1024..64 * 1024 + DISCARD_CHUNK).contains(&discarded),
            "{discarded}"
        );
        assert!(writer.await.unwrap(), "the client was cut off at the bound");

        let (mut client, server) = pair().await;
        client.write_all(&[1u8; 1000]).await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(linger(server, &limits).await, 1000);
        // The gateway's side was shut down: the client reads the end of the stream.
        assert_eq!(client.read(&mut [0u8; 8]).await.unwrap(), 0);
    }
}
