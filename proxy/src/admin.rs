//! The admin listener (plain HTTP/1, no credentials: bind it to loopback or a private
//! network): `/metrics` in the Prometheus text format, `/healthz` (the process answers), and
//! `/readyz` (200 only when policies and the control-plane snapshot are loaded and both
//! upstreams answer their readiness endpoints).
//!
//! A degraded Redis change feed does not make the gateway unready: it then resolves every
//! token through the control plane and keeps its snapshot younger than 250 ms, so its answers
//! are as correct as ever, only slower. Taking every replica out of a load balancer because
//! their shared Redis is down would turn a slowdown into an outage. `/readyz` reports it
//! (`change_feed`), and so does the `gateway_change_feed_healthy` gauge.

use crate::exchange::{full_response, ProxyBody};
use crate::shared::Shared;
use crate::upstream;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use lakeward_common::assertion::{IdentityClaims, IDENTITY_HEADER};
use prometheus::{Encoder, Registry, TextEncoder};
use serde::Serialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The runtime's readiness endpoint.
const RUNTIME_READY_PATH: &str = "/ready";

/// Serves the admin endpoints until `shutdown` flips.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    registry: Registry,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let shared = shared.clone();
                let registry = registry.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        let registry = registry.clone();
                        async move { Ok::<_, Infallible>(handle(req, &shared, &registry).await) }
                    });
                    let mut builder = http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10));
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        }
    }
    connections.abort_all();
}

async fn handle(
    req: Request<Incoming>,
    shared: &Shared,
    registry: &Registry,
) -> Response<ProxyBody> {
    if req.method() != Method::GET {
        return full_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"method not allowed\n".to_vec(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let mut out = Vec::new();
            match TextEncoder::new().encode(&registry.gather(), &mut out) {
                Ok(()) => full_response(StatusCode::OK, "text/plain; version=0.0.4", out),
                Err(e) => {
                    tracing::error!(error = %e, "metrics encoding failed");
                    full_response(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", Vec::new())
                }
            }
        }
        "/healthz" => full_response(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
        "/readyz" => {
            let readiness = readiness(shared).await;
            let status = if readiness.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::to_vec(&readiness).unwrap_or_default();
            full_response(status, "application/json", body)
        }
        _ => full_response(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
    }
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    policies: bool,
    snapshot: bool,
    control: bool,
    runtime: bool,
    /// Informational: false while the Redis change feed is degraded (see the module docs).
    change_feed: bool,
}

async fn readiness(shared: &Shared) -> Readiness {
    // Policies are loaded before the gateway binds, and a failed reload keeps the old set.
    let policies = !shared.policies.current().version().is_empty();
    let snapshot = shared.state.current().is_some();
    let (control, runtime) = tokio::join!(shared.state.control_ready(), runtime_ready(shared));
    Readiness {
        ready: policies && snapshot && control && runtime,
        policies,
        snapshot,
        control,
        runtime,
        change_feed: shared.state.caches_trusted(),
    }
}

async fn runtime_ready(shared: &Shared) -> bool {
    let account = shared
        .state
        .current()
        .map(|s| s.account_id.clone())
        .unwrap_or_default();
    let request_id = uuid::Uuid::new_v4().to_string();
    let Ok(assertion) = shared
        .runtime_key
        .sign(IdentityClaims::gateway(&account, &request_id))
    else {
        return false;
    };
    let Ok(uri) = shared.runtime_base.uri(RUNTIME_READY_PATH) else {
        return false;
    };
    let Ok(req) = Request::get(uri)
        .header(IDENTITY_HEADER, assertion)
        .body(Full::new(Bytes::new()))
    else {
        return false;
    };
    matches!(
        upstream::send(&shared.client, req, Duration::from_secs(1)).await,
        Ok(resp) if resp.status() == StatusCode::OK
    )
}
