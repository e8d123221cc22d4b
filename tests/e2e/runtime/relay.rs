//! A fault-injecting HTTP relay between the runtime and the control plane. It forwards every
//! request unchanged and decides nothing itself; a test selects the calls it fails (updates of
//! a warehouse to STOPPED or RUNNING, answered 500 without reaching the control plane) or holds
//! (the next catalog snapshot, until the test releases it). Loopback only, and bounded: request
//! bodies are capped and a held call goes on by itself after [`HOLD_LIMIT`].

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lakeward_common::data::{WarehouseState, WarehouseUpdate, CATALOG_PATH, WAREHOUSE_PATH_PREFIX};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The runtime's requests are small JSON documents; anything larger is refused, not buffered.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// A held call is forwarded after this long even if the test never releases it.
const HOLD_LIMIT: Duration = Duration::from_secs(10);

/// Headers that describe one connection or one message's framing, not the request.
fn hop_by_hop(name: &http::header::HeaderName) -> bool {
    use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TE, TRANSFER_ENCODING, UPGRADE};
    [
        HOST,
        CONNECTION,
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        TE,
        UPGRADE,
    ]
    .contains(name)
}

type Body = Either<Incoming, Full<Bytes>>;

/// The relay's address and the switches a test flips.
pub(super) struct Relay {
    addr: SocketAddr,
    faults: Arc<Faults>,
}

#[derive(Default)]
struct Faults {
    /// This many updates of a warehouse to STOPPED fail.
    fail_stopped: AtomicU32,
    /// This many updates of a warehouse to RUNNING fail.
    fail_running: AtomicU32,
    /// Armed by [`Relay::hold_next_catalog`]: the next snapshot request waits on it.
    catalog_hold: Mutex<Option<Hold>>,
}

struct Hold {
    arrived: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// A catalog snapshot request held by the relay.
pub(super) struct HeldCatalog {
    arrived: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

impl HeldCatalog {
    /// Resolves once the held request has reached the relay; panics after `within`.
    pub(super) async fn arrived(&mut self, within: Duration) {
        tokio::time::timeout(within, &mut self.arrived)
            .await
            .expect("the runtime asked for a catalog snapshot in time")
            .expect("the relay kept the hold");
    }

    /// Lets the held request go on to the control plane.
    pub(super) fn release(self) {
        let _ = self.release.send(());
    }
}

impl Relay {
    /// Listens on a free loopback port and forwards to `control` (a loopback address).
    pub(super) async fn start(control: SocketAddr) -> Relay {
        assert!(
            control.ip().is_loopback(),
            "the relay forwards on loopback only"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let faults = Arc::new(Faults::default());
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let shared = faults.clone();
        tokio::spawn(async move {
            loop {
                // A relay that cannot accept ends: the runtime then finds the control plane
                // unreachable, and the test says so, rather than this loop spinning.
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let faults = shared.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        relay(request, control, faults.clone(), client.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Relay { addr, faults }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next `count` updates of a warehouse to STOPPED fail with a 500.
    pub(super) fn fail_stopped(&self, count: u32) {
        self.faults.fail_stopped.store(count, Ordering::SeqCst);
    }

    /// The next `count` updates of a warehouse to RUNNING fail with a 500.
    pub(super) fn fail_running(&self, count: u32) {
        self.faults.fail_running.store(count, Ordering::SeqCst);
    }

    /// Holds the next catalog snapshot request until the returned handle releases it.
    pub(super) fn hold_next_catalog(&self) -> HeldCatalog {
        let (arrived_tx, arrived_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.faults.catalog_hold.lock().unwrap() = Some(Hold {
            arrived: arrived_tx,
            release: release_rx,
        });
        HeldCatalog {
            arrived: arrived_rx,
            release: release_tx,
        }
    }
}

/// Takes one from `counter` if it is above zero; says whether it did.
fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn injected_failure() -> Response<Body> {
    let body = r#"{"error_code":"INTERNAL_ERROR","message":"injected failure"}"#;
    Response::builder()
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Either::Right(Full::new(Bytes::from_static(
            body.as_bytes(),
        ))))
        .unwrap()
}

async fn relay(
    request: Request<Incoming>,
    control: SocketAddr,
    faults: Arc<Faults>,
    client: Client<HttpConnector, Full<Bytes>>,
) -> Result<Response<Body>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let Ok(body) = Limited::new(body, BODY_LIMIT).collect().await else {
        let mut refused = Response::new(Either::Right(Full::new(Bytes::new())));
        *refused.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        return Ok(refused);
    };
    let body = body.to_bytes();
    let path = parts.uri.path();

    if parts.method == Method::PUT && path.starts_with(WAREHOUSE_PATH_PREFIX) {
        let update: Option<WarehouseUpdate> = serde_json::from_slice(&body).ok();
        let failed = match update.and_then(|u| u.state) {
            Some(WarehouseState::Stopped) => take(&faults.fail_stopped),
            Some(WarehouseState::Running) => take(&faults.fail_running),
            _ => false,
        };
        if failed {
            return Ok(injected_failure());
        }
    }
    if parts.method == Method::GET && path == CATALOG_PATH {
        let hold = faults.catalog_hold.lock().unwrap().take();
        if let Some(hold) = hold {
            let _ = hold.arrived.send(());
            let _ = tokio::time::timeout(HOLD_LIMIT, hold.release).await;
        }
    }

    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forwarded = Request::builder()
        .method(parts.method.clone())
        .uri(format!("http://{control}{path_and_query}"));
    for (name, value) in &parts.headers {
        // The body is forwarded whole, so its framing is the client's to set again.
        if !hop_by_hop(name) {
            forwarded = forwarded.header(name, value);
        }
    }
    let forwarded = forwarded.body(Full::new(body)).unwrap();
    match client.request(forwarded).await {
        Ok(response) => Ok(response.map(Either::Left)),
        Err(_) => {
            let mut unreachable = Response::new(Either::Right(Full::new(Bytes::new())));
            *unreachable.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(unreachable)
        }
    }
}
