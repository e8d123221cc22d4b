//! The client of the control plane's internal API (`lakeward_common::internal`): snapshot,
//! token and principal resolution, the change long-poll and readiness. Every call carries a
//! gateway assertion for the control audience, and goes through the services' one internal
//! client (`lakeward_frame::client`), which bounds its time and the bytes it reads.

use http::header::HeaderName;
use http::{Method, StatusCode};
use lakeward_common::assertion::{AssertionKey, IdentityClaims};
use lakeward_common::internal::{
    ChangesResponse, GatewaySnapshot, PrincipalRecord, ResolvePrincipalRequest,
    ResolveTokenRequest, ResolvedToken, CHANGES_PATH, READY_PATH, RESOLVE_PRINCIPAL_PATH,
    RESOLVE_TOKEN_PATH, SNAPSHOT_PATH,
};
use lakeward_frame::client::{ClientError, InternalClient, Limits};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// How long an ordinary internal call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The change long-poll answers within about 25 s; allow some slack.
const CHANGES_TIMEOUT: Duration = Duration::from_secs(35);
/// How long the readiness probe waits.
const READY_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest internal response read (a snapshot with many workspaces and lists).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why a control-plane call failed. Callers fail closed on every variant.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    #[error("control plane call failed: {0}")]
    Call(#[from] ClientError),
    #[error("control plane answered {0}")]
    Status(StatusCode),
    #[error("snapshot still older than the state version announced")]
    Stale,
    #[error("too many control-plane lookups in flight; not asked")]
    Overloaded,
}

/// The internal-API client.
pub(crate) struct ControlClient {
    http: InternalClient,
    key: AssertionKey,
}

impl ControlClient {
    pub(crate) fn new(base_url: &str, key: AssertionKey) -> Self {
        // No retries here: the state loop retries with its own backoff, and a token lookup
        // that cannot be answered at once fails closed (503) rather than holding the request.
        let http = InternalClient::new(base_url.trim_end_matches('/')).with_limits(Limits {
            timeout: CALL_TIMEOUT,
            max_response_bytes: MAX_RESPONSE_BYTES,
            retries: 0,
        });
        ControlClient { http, key }
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
        matches!(
            self.send::<()>(Method::GET, READY_PATH, None, account_id, READY_TIMEOUT).await,
            Ok(reply) if reply.status == StatusCode::OK
        )
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        account_id: &str,
        timeout: Duration,
    ) -> Result<lakeward_frame::client::Reply, ClientError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut call = self
            .http
            .call(method, path)
            .header(HeaderName::from_static("x-request-id"), &request_id)
            .signed(&self.key, IdentityClaims::gateway(account_id, &request_id))
            .timeout(timeout);
        if let Some(body) = body {
            call = call.json_body(body);
        }
        call.send().await
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
        let reply = self.send(method, path, body, account_id, timeout).await?;
        match reply.status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => Ok(Some(reply.json()?)),
            status => Err(ControlError::Status(status)),
        }
    }
}
