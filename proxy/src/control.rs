//! The client of the control plane's internal API (`lakeward_common::internal`): snapshot,
//! token and principal resolution, the change long-poll and readiness. Every call carries a
//! gateway assertion for the control audience.

use crate::upstream::{self, HttpClient, UpstreamBase, UpstreamError};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use lakeward_common::assertion::{AssertionKey, IdentityClaims, IDENTITY_HEADER};
use lakeward_common::internal::{
    ChangesResponse, GatewaySnapshot, PrincipalRecord, ResolvePrincipalRequest,
    ResolveTokenRequest, ResolvedToken, CHANGES_PATH, READY_PATH, RESOLVE_PRINCIPAL_PATH,
    RESOLVE_TOKEN_PATH, SNAPSHOT_PATH,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// How long an ordinary internal call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The change long-poll answers within about 25 s; allow some slack.
const CHANGES_TIMEOUT: Duration = Duration::from_secs(35);
/// The largest internal response read (a snapshot with many workspaces and lists).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why a control-plane call failed. Callers fail closed on every variant.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("control plane answered {0}")]
    Status(StatusCode),
    #[error("control plane answer unreadable: {0}")]
    Decode(String),
    #[error("assertion could not be signed")]
    Signing,
    #[error("snapshot still older than the state version announced")]
    Stale,
}

/// The internal-API client.
pub(crate) struct ControlClient {
    client: HttpClient,
    base: UpstreamBase,
    key: AssertionKey,
}

impl ControlClient {
    pub(crate) fn new(client: HttpClient, base: UpstreamBase, key: AssertionKey) -> Self {
        ControlClient { client, base, key }
    }

    /// `GET` [`SNAPSHOT_PATH`].
    pub(crate) async fn snapshot(&self, account_id: &str) -> Result<GatewaySnapshot, ControlError> {
        self.call::<(), _>(Method::GET, SNAPSHOT_PATH, None, account_id, CALL_TIMEOUT)
            .await?
            .ok_or(ControlError::Status(StatusCode::NOT_FOUND))
    }

    /// Resolves a token hash; `None` when no such (undeleted) token exists.
    pub(crate) async fn resolve_token(
        &self,
        token_hash: &str,
        account_id: &str,
    ) -> Result<Option<ResolvedToken>, ControlError> {
        let body = ResolveTokenRequest {
            token_hash: token_hash.to_owned(),
        };
        self.call(
            Method::POST,
            RESOLVE_TOKEN_PATH,
            Some(&body),
            account_id,
            CALL_TIMEOUT,
        )
        .await
    }

    /// Resolves a user name or application id; `None` when unknown.
    pub(crate) async fn resolve_principal(
        &self,
        user_name: &str,
        account_id: &str,
    ) -> Result<Option<PrincipalRecord>, ControlError> {
        let body = ResolvePrincipalRequest {
            user_name: user_name.to_owned(),
        };
        self.call(
            Method::POST,
            RESOLVE_PRINCIPAL_PATH,
            Some(&body),
            account_id,
            CALL_TIMEOUT,
        )
        .await
    }

    /// Long-polls for a state version above `after`; returns the version it answered with.
    pub(crate) async fn changes(&self, after: u64, account_id: &str) -> Result<u64, ControlError> {
        let path = format!("{CHANGES_PATH}?after={after}");
        let changes: Option<ChangesResponse> = self
            .call::<(), _>(Method::GET, &path, None, account_id, CHANGES_TIMEOUT)
            .await?;
        changes
            .map(|c| c.version)
            .ok_or(ControlError::Status(StatusCode::NOT_FOUND))
    }

    /// Whether [`READY_PATH`] answers 200.
    pub(crate) async fn ready(&self, account_id: &str) -> bool {
        let Ok(req) = self.request::<()>(Method::GET, READY_PATH, None, account_id) else {
            return false;
        };
        matches!(
            upstream::send(&self.client, req, Duration::from_secs(1)).await,
            Ok(resp) if resp.status() == StatusCode::OK
        )
    }

    fn request<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        account_id: &str,
    ) -> Result<Request<Full<Bytes>>, ControlError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let assertion = self
            .key
            .sign(IdentityClaims::gateway(account_id, &request_id))
            .map_err(|_| ControlError::Signing)?;
        let uri = self
            .base
            .uri(path)
            .map_err(|e| ControlError::Decode(e.to_string()))?;
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(IDENTITY_HEADER, assertion)
            .header("x-request-id", request_id)
            .header(header::ACCEPT, "application/json");
        let bytes = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                serde_json::to_vec(body).map_err(|e| ControlError::Decode(e.to_string()))?
            }
            None => Vec::new(),
        };
        builder
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ControlError::Decode(e.to_string()))
    }

    /// One call: 200 → `Some(json)`, 404 → `None`, anything else an error.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        account_id: &str,
        timeout: Duration,
    ) -> Result<Option<T>, ControlError> {
        let req = self.request(method, path, body, account_id)?;
        let response = upstream::send(&self.client, req, timeout).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(ControlError::Status(status));
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
        let bytes = tokio::time::timeout(timeout, body.collect())
            .await
            .map_err(|_| ControlError::Upstream(UpstreamError::Timeout(timeout)))?
            .map_err(|e| ControlError::Decode(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ControlError::Decode(e.to_string()))
    }
}
