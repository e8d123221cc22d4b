//! Test support, behind the `test-util` feature: a TCP relay to put between a gateway and its
//! Redis, which tests cut, freeze and restore to exercise the change feed's degraded mode, and
//! the route table's answer for a request, for the check that it agrees with the upstreams'
//! routers and the Cedar schema.
#![expect(
    clippy::unwrap_used,
    reason = "test support fails the test by panicking"
)]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Redis's address, from its URL.
pub async fn redis_target(url: &str) -> SocketAddr {
    let client = redis::Client::open(url).unwrap();
    let host_port = client.get_connection_info().addr().to_string();
    tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .find(SocketAddr::is_ipv4)
        .unwrap()
}

/// `url` with its host and port replaced by `addr`.
pub fn through(url: &str, addr: SocketAddr) -> String {
    let rest = url.strip_prefix("redis://").unwrap();
    let (userinfo, hostpath) = match rest.rsplit_once('@') {
        Some((userinfo, hostpath)) => (format!("{userinfo}@"), hostpath),
        None => (String::new(), rest),
    };
    let path = hostpath.find('/').map_or("", |i| &hostpath[i..]);
    format!("redis://{userinfo}{addr}{path}")
}

/// A TCP relay in front of Redis that can be cut (every connection dropped, new ones refused)
/// and restored on the same port, or frozen (connections stay open, nothing gets through).
pub struct Relay {
    /// Where the relay listens: point the client here.
    pub addr: SocketAddr,
    target: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
    frozen: watch::Sender<bool>,
}

impl Relay {
    /// Starts relaying to `target` on a free loopback port.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, rx) = watch::channel(false);
        Relay {
            addr,
            target,
            task: Mutex::new(Some(tokio::spawn(relay(listener, target, rx)))),
            frozen,
        }
    }

    /// Holds every byte from now on, closing nothing: a network partition.
    pub fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }

    /// Drops every relayed connection and stops listening.
    pub fn cut(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            // The task owns the listener and the connections' tasks (a `JoinSet`, which
            // aborts them when dropped).
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot re-bind the relay: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let frozen = self.frozen.subscribe();
        *self.task.lock().unwrap() = Some(tokio::spawn(relay(listener, self.target, frozen)));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn relay(listener: TcpListener, target: SocketAddr, frozen: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                let frozen = frozen.clone();
                connections.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    let (from_client, to_client) = inbound.into_split();
                    let (from_redis, to_redis) = outbound.into_split();
                    tokio::join!(
                        pipe(from_client, to_redis, frozen.clone()),
                        pipe(from_redis, to_client, frozen),
                    );
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Copies `from` to `to` until either fails; while frozen, holds what it has read.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut frozen: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while *frozen.borrow_and_update() {
            if frozen.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// What the gateway's route table says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteOf {
    /// The Cedar action the request is authorized as.
    pub action: &'static str,
    /// Where it is answered: `control`, `runtime` or `local`.
    pub upstream: &'static str,
}

/// The route of `method` on `path` (a concrete path, without a `/w/<id>` prefix), if any.
pub fn route_of(method: &http::Method, path: &str) -> Option<RouteOf> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    crate::route::lookup(method, &segments).map(|route| RouteOf {
        action: route.action,
        upstream: route.upstream.label(),
    })
}
