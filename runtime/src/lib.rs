//! The data plane: the service that runs SQL for warehouses, notebooks and jobs. It is reached
//! only through the gateway, and serves only calls that carry the gateway's identity assertion
//! for the `lakeward-runtime` audience: going around the gateway gets nothing.
//!
//! This version holds the service frame (listener, assertion check, readiness, error shape);
//! the DataFusion engine and the Statement Execution API arrive with the data-plane issue, and
//! until then the SQL routes answer `501 NOT_IMPLEMENTED` rather than pretending.
//!
//! **Architecture Invariant:** no handler runs before the assertion is verified; the verified
//! claims are the only source of the caller's identity.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lakeward_common::assertion::{AssertionKey, IdentityClaims, IDENTITY_HEADER};
use lakeward_common::error::{ApiError, ErrorCode};
use serde::Deserialize;
use std::future::Future;
use std::sync::Arc;

/// The data plane's configuration (its listener is the process's `internal.runtime_listen`).
/// Warehouse sizing and the lake's location join it with the SQL engine.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {}

impl Config {
    /// Every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        Ok(())
    }
}

/// The path the gateway's readiness check calls; it reveals nothing and needs no assertion.
pub const READY_PATH: &str = "/ready";

struct Shared {
    key: AssertionKey,
}

/// The runtime service.
pub struct Runtime {
    shared: Arc<Shared>,
}

impl Runtime {
    pub fn new(key: AssertionKey) -> Self {
        Runtime {
            shared: Arc::new(Shared { key }),
        }
    }

    /// The routes, behind the assertion check.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/api/2.0/sql/warehouses", get(not_yet).post(not_yet))
            .route(
                "/api/2.0/sql/warehouses/{*rest}",
                get(not_yet).post(not_yet).delete(not_yet),
            )
            .route("/api/2.0/sql/statements", get(not_yet).post(not_yet))
            .route(
                "/api/2.0/sql/statements/{*rest}",
                get(not_yet).post(not_yet),
            )
            .fallback(endpoint_not_found)
            .layer(middleware::from_fn_with_state(
                self.shared.clone(),
                require_assertion,
            ));
        Router::new()
            .route(READY_PATH, get(|| async { StatusCode::OK }))
            .merge(api)
    }

    /// Serves on `listener` until `shutdown` resolves, then drains.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

fn error_response(err: ApiError) -> Response {
    let mut response = (err.status(), err.body()).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn require_assertion(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let verified = request
        .headers()
        .get(IDENTITY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|token| shared.key.verify(token));
    match verified {
        Some(Ok(claims)) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Some(Err(err)) => {
            tracing::warn!(error = %err, "runtime call refused");
            error_response(ApiError::unauthenticated(
                "calls must come through the gateway",
            ))
        }
        None => error_response(ApiError::unauthenticated(
            "calls must come through the gateway",
        )),
    }
}

async fn not_yet(axum::Extension(_caller): axum::Extension<IdentityClaims>) -> Response {
    error_response(ApiError::new(
        ErrorCode::NotImplemented,
        "SQL warehouses and statement execution are not available in this version",
    ))
}

async fn endpoint_not_found() -> Response {
    error_response(ApiError::new(
        ErrorCode::EndpointNotFound,
        "no such endpoint",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakeward_common::assertion::{Audience, MasterSecret};

    async fn start(key: AssertionKey) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(Runtime::new(key).serve(listener, std::future::pending()));
        addr
    }

    async fn get_status(
        addr: std::net::SocketAddr,
        path: &str,
        assertion: Option<&str>,
    ) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let header = assertion
            .map(|a| format!("{IDENTITY_HEADER}: {a}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        let status = out[9..12].parse().unwrap();
        (status, out)
    }

    #[tokio::test]
    async fn refuses_calls_without_a_valid_assertion() {
        let master = MasterSecret::generate();
        let addr = start(master.key_for(Audience::Runtime)).await;
        assert_eq!(get_status(addr, READY_PATH, None).await.0, 200);
        let (status, body) = get_status(addr, "/api/2.0/sql/warehouses", None).await;
        assert_eq!(status, 401);
        assert!(body.contains("UNAUTHENTICATED"), "{body}");
        // An assertion for the control plane is not one for the runtime.
        let claims = IdentityClaims::gateway("acct", "r1");
        let for_control = master
            .key_for(Audience::Control)
            .sign(claims.clone())
            .unwrap();
        assert_eq!(
            get_status(addr, "/api/2.0/sql/warehouses", Some(&for_control))
                .await
                .0,
            401
        );
        let for_runtime = master.key_for(Audience::Runtime).sign(claims).unwrap();
        let (status, body) = get_status(addr, "/api/2.0/sql/warehouses", Some(&for_runtime)).await;
        assert_eq!(status, 501, "{body}");
        assert!(body.contains("NOT_IMPLEMENTED"), "{body}");
    }
}
