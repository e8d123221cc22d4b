//! The runtime's client of the control plane's data-plane API (`lakeward_common::data`), with
//! the caches that keep a statement from costing several round trips: catalog snapshots per
//! workspace, the policy bundle, and resolved principals.
//!
//! Freshness follows the gateway's scheme: every response carries the control plane's state
//! version; a newer one (seen on any response, or announced by the long-poll of
//! `CHANGES_PATH`) drops the snapshot and principal caches. Our own catalog writes drop the
//! workspace's snapshot at once, so a `GRANT` holds for the very next statement.

use crate::engine::{CatalogWriter, Engine, SqlError};
use backon::BackoffBuilder;
use futures::future::BoxFuture;
use http::{Method, StatusCode};
use lakeward_common::assertion::{AssertionKey, IdentityClaims};
use lakeward_common::data::{
    CatalogChange, CatalogChangeRequest, CatalogChangeResponse, CatalogSnapshot, NewWarehouse,
    PolicySources, WarehouseList, WarehouseRecord, WarehouseUpdate, CATALOG_CHANGE_PATH,
    CATALOG_PATH, POLICIES_PATH, WAREHOUSES_PATH, WAREHOUSE_PATH_PREFIX,
};
use lakeward_common::error::{ApiError, ErrorBody, ErrorCode};
use lakeward_common::internal::{
    ChangesResponse, PrincipalRecord, ResolvePrincipalRequest, CHANGES_PATH,
    RESOLVE_PRINCIPAL_PATH, STATE_VERSION_HEADER,
};
use lakeward_frame::backoff;
use lakeward_frame::client::{ClientError, InternalClient, Limits, DEFAULT_MAX_RESPONSE_BYTES};
use lakeward_policy::PolicyBundle;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one call to the control plane may take (the long-poll excepted).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The long-poll answers within about 25 s; past this the call is abandoned and retried.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(40);
/// Policy sources are re-checked at most this often.
const POLICY_RECHECK: Duration = Duration::from_secs(1);
/// The change feed's first wait after a failure, and its longest.
const FEED_RETRY_FIRST: Duration = Duration::from_secs(1);
const FEED_RETRY_LONGEST: Duration = Duration::from_secs(10);
/// The largest answer read: a workspace's catalog snapshot is the big one, and the frame's
/// default holds thousands of tables.
const MAX_RESPONSE_BYTES: usize = DEFAULT_MAX_RESPONSE_BYTES;
/// Retries of a call that may be repeated, within its deadline.
const RETRIES: usize = 2;

/// A call's deadline, and whether a POST may be repeated because it only reads.
#[derive(Clone, Copy)]
struct CallKind {
    timeout: Duration,
    reads_only: bool,
}

/// A call that changes (or may change) the control plane's state.
const WRITE: CallKind = CallKind {
    timeout: CALL_TIMEOUT,
    reads_only: false,
};
/// A call that only reads.
const READ: CallKind = CallKind {
    timeout: CALL_TIMEOUT,
    reads_only: true,
};
/// The change feed's long-poll.
const LONG_POLL: CallKind = CallKind {
    timeout: LONG_POLL_TIMEOUT,
    reads_only: true,
};

/// The control plane as the runtime sees it.
#[derive(Clone)]
pub struct ControlClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: InternalClient,
    key: AssertionKey,
    /// The account of the callers we serve, for the runtime's own assertions (background calls
    /// carry the last one seen).
    account_id: Mutex<String>,
    /// The newest state version seen on any response.
    version: AtomicU64,
    snapshots: Mutex<HashMap<i64, Arc<CatalogSnapshot>>>,
    /// Workspaces whose `samples` seeding was attempted by this process.
    seeded: Mutex<HashSet<i64>>,
    /// Serializes seeding so concurrent first statements do not seed twice.
    seeding: tokio::sync::Mutex<()>,
    policies: Mutex<PolicyCache>,
    policy_refresh: tokio::sync::Mutex<()>,
    principals: Mutex<HashMap<String, (u64, PrincipalRecord)>>,
}

#[derive(Default)]
struct PolicyCache {
    bundle: Option<(String, PolicyBundle)>,
    checked: Option<Instant>,
}

impl ControlClient {
    pub fn new(base: String, key: AssertionKey) -> Self {
        let http = InternalClient::new(&base).with_limits(Limits {
            timeout: CALL_TIMEOUT,
            max_response_bytes: MAX_RESPONSE_BYTES,
            retries: RETRIES,
        });
        ControlClient {
            inner: Arc::new(Inner {
                http,
                key,
                account_id: Mutex::new(String::new()),
                version: AtomicU64::new(0),
                snapshots: Mutex::new(HashMap::new()),
                seeded: Mutex::new(HashSet::new()),
                seeding: tokio::sync::Mutex::new(()),
                policies: Mutex::new(PolicyCache::default()),
                policy_refresh: tokio::sync::Mutex::new(()),
                principals: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Remembers the account of a caller, for the runtime's own background calls.
    pub fn note_account(&self, account_id: &str) {
        let mut current = self.inner.account_id.lock();
        if *current != account_id {
            *current = account_id.to_owned();
        }
    }

    fn account_id(&self) -> String {
        self.inner.account_id.lock().clone()
    }

    /// The newest state version seen.
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// Records a version; a newer one drops the caches that follow the control plane's state.
    fn observe_version(&self, version: u64) {
        let previous = self.inner.version.fetch_max(version, Ordering::AcqRel);
        if version > previous {
            self.invalidate_all();
        }
    }

    fn invalidate_all(&self) {
        self.inner.snapshots.lock().clear();
        self.inner.principals.lock().clear();
    }

    /// Drops one workspace's catalog snapshot (after our own write to it).
    pub fn invalidate_catalog(&self, workspace_id: i64) {
        self.inner.snapshots.lock().remove(&workspace_id);
    }

    /// One call of the data-plane API. Only calls whose repeat changes nothing are retried
    /// (GETs, and `idempotent` POSTs that only read); the rest are retried only when no
    /// connection was made, which the frame client decides.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
        request_id: &str,
        call: CallKind,
    ) -> Result<T, ApiError> {
        let idempotent = method == Method::GET || call.reads_only;
        let mut request = self
            .inner
            .http
            .call(method, path_and_query)
            .signed(
                &self.inner.key,
                IdentityClaims::runtime(&self.account_id(), request_id),
            )
            .timeout(call.timeout)
            .idempotent(idempotent);
        if let Some(body) = body {
            request = request.json_body(body);
        }
        let reply = request.send().await.map_err(|err| match err {
            ClientError::Transport(_) => {
                tracing::warn!(error = %err, path = path_and_query, "control plane unreachable");
                unavailable()
            }
            ClientError::Timeout(_) => {
                tracing::warn!(path = path_and_query, "control plane call timed out");
                unavailable()
            }
            _ => {
                tracing::error!(error = %err, path = path_and_query, "control plane call failed");
                ApiError::internal()
            }
        })?;
        if let Some(version) = reply
            .headers
            .get(STATE_VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            self.observe_version(version);
        }
        if reply.status.is_success() {
            return reply.json().map_err(|err| {
                tracing::error!(error = %err, path = path_and_query, "control plane answer unreadable");
                ApiError::internal()
            });
        }
        Err(map_error(reply.status, &reply.body))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, request_id: &str) -> Result<T, ApiError> {
        self.call::<(), T>(Method::GET, path, None, request_id, READ)
            .await
    }

    // ---- warehouses ----

    pub async fn list_warehouses(
        &self,
        workspace_id: i64,
        request_id: &str,
    ) -> Result<Vec<WarehouseRecord>, ApiError> {
        let list: WarehouseList = self
            .get(
                &format!("{WAREHOUSES_PATH}?workspace_id={workspace_id}"),
                request_id,
            )
            .await?;
        Ok(list.warehouses)
    }

    pub async fn get_warehouse(
        &self,
        workspace_id: i64,
        id: &str,
        request_id: &str,
    ) -> Result<WarehouseRecord, ApiError> {
        if !valid_warehouse_id(id) {
            return Err(ApiError::not_found(format!(
                "warehouse `{}` does not exist",
                short(id)
            )));
        }
        self.get(
            &format!("{WAREHOUSE_PATH_PREFIX}{id}?workspace_id={workspace_id}"),
            request_id,
        )
        .await
        .map_err(|err| match err.code {
            ErrorCode::ResourceDoesNotExist => {
                ApiError::not_found(format!("warehouse `{id}` does not exist"))
            }
            _ => err,
        })
    }

    pub async fn create_warehouse(
        &self,
        new: &NewWarehouse,
        request_id: &str,
    ) -> Result<WarehouseRecord, ApiError> {
        self.call(Method::POST, WAREHOUSES_PATH, Some(new), request_id, WRITE)
            .await
    }

    pub async fn update_warehouse(
        &self,
        id: &str,
        update: &WarehouseUpdate,
        request_id: &str,
    ) -> Result<WarehouseRecord, ApiError> {
        self.call(
            Method::PUT,
            &format!("{WAREHOUSE_PATH_PREFIX}{id}"),
            Some(update),
            request_id,
            WRITE,
        )
        .await
    }

    // ---- catalog ----

    /// The workspace's catalog, seeded with `samples` and `main` on first sight.
    pub async fn snapshot(
        &self,
        engine: &Engine,
        workspace_id: i64,
        request_id: &str,
    ) -> Result<Arc<CatalogSnapshot>, ApiError> {
        let snapshot = self.fetch_snapshot(workspace_id, request_id).await?;
        if snapshot.catalogs.iter().any(|c| c.name == "samples") {
            return Ok(snapshot);
        }
        let seed = engine.seed_changes();
        if seed.is_empty() {
            return Ok(snapshot);
        }
        let _guard = self.inner.seeding.lock().await;
        let first = self.inner.seeded.lock().insert(workspace_id);
        if first {
            for change in seed {
                match self.apply_change(workspace_id, change, request_id).await {
                    Ok(_) => {}
                    Err(err) if err.code == ErrorCode::ResourceAlreadyExists => {}
                    Err(err) => {
                        // Let a later statement try again.
                        self.inner.seeded.lock().remove(&workspace_id);
                        tracing::error!(workspace_id, error = %err, "seeding the catalog failed");
                        return Err(err);
                    }
                }
            }
        }
        self.invalidate_catalog(workspace_id);
        self.fetch_snapshot(workspace_id, request_id).await
    }

    async fn fetch_snapshot(
        &self,
        workspace_id: i64,
        request_id: &str,
    ) -> Result<Arc<CatalogSnapshot>, ApiError> {
        let cached = self.inner.snapshots.lock().get(&workspace_id).cloned();
        if let Some(snapshot) = cached {
            if snapshot.version >= self.version() {
                return Ok(snapshot);
            }
        }
        let snapshot: CatalogSnapshot = self
            .get(
                &format!("{CATALOG_PATH}?workspace_id={workspace_id}"),
                request_id,
            )
            .await?;
        let snapshot = Arc::new(snapshot);
        self.observe_version(snapshot.version);
        self.inner
            .snapshots
            .lock()
            .insert(workspace_id, snapshot.clone());
        Ok(snapshot)
    }

    /// Applies one catalog change and drops the workspace's cached snapshot.
    pub async fn apply_change(
        &self,
        workspace_id: i64,
        change: CatalogChange,
        request_id: &str,
    ) -> Result<CatalogChangeResponse, ApiError> {
        let request = CatalogChangeRequest {
            workspace_id,
            change,
        };
        let result = self
            .call(
                Method::POST,
                CATALOG_CHANGE_PATH,
                Some(&request),
                request_id,
                WRITE,
            )
            .await;
        self.invalidate_catalog(workspace_id);
        result
    }

    // ---- policies ----

    /// The policy bundle the gateway decides with. Fails closed: with no bundle ever loaded,
    /// nothing is allowed.
    pub async fn policies(&self, request_id: &str) -> Result<PolicyBundle, ApiError> {
        if let Some(bundle) = self.fresh_bundle() {
            return Ok(bundle);
        }
        let _guard = self.inner.policy_refresh.lock().await;
        if let Some(bundle) = self.fresh_bundle() {
            return Ok(bundle);
        }
        let fetched: Result<PolicySources, ApiError> = self.get(POLICIES_PATH, request_id).await;
        let mut cache = self.inner.policies.lock();
        cache.checked = Some(Instant::now());
        match fetched {
            Ok(sources) => {
                let same = cache
                    .bundle
                    .as_ref()
                    .is_some_and(|(version, _)| *version == sources.version);
                if !same {
                    match load_bundle(&sources) {
                        Ok(bundle) => cache.bundle = Some((sources.version.clone(), bundle)),
                        Err(problems) => {
                            tracing::error!(
                                version = %sources.version,
                                problems = %problems,
                                "the control plane's policies do not load; keeping the ones serving"
                            );
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot fetch policies"),
        }
        cache
            .bundle
            .as_ref()
            .map(|(_, b)| b.clone())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "data access policies are not available; try again shortly",
                )
            })
    }

    fn fresh_bundle(&self) -> Option<PolicyBundle> {
        let cache = self.inner.policies.lock();
        let checked = cache.checked?;
        if checked.elapsed() < POLICY_RECHECK {
            cache.bundle.as_ref().map(|(_, b)| b.clone())
        } else {
            None
        }
    }

    // ---- principals ----

    /// The caller with its groups, cached until the state version moves.
    pub async fn principal(
        &self,
        user_name: &str,
        request_id: &str,
    ) -> Result<PrincipalRecord, ApiError> {
        let version = self.version();
        let cached = self
            .inner
            .principals
            .lock()
            .get(user_name)
            .filter(|(v, _)| *v >= version)
            .map(|(_, r)| r.clone());
        if let Some(principal) = cached {
            return Ok(principal);
        }
        let record: PrincipalRecord = self
            .call(
                Method::POST,
                RESOLVE_PRINCIPAL_PATH,
                Some(&ResolvePrincipalRequest {
                    user_name: user_name.to_owned(),
                }),
                request_id,
                READ,
            )
            .await
            .map_err(|err| match err.code {
                ErrorCode::ResourceDoesNotExist => {
                    ApiError::unauthenticated("the caller no longer exists")
                }
                _ => err,
            })?;
        self.inner
            .principals
            .lock()
            .insert(user_name.to_owned(), (version, record.clone()));
        Ok(record)
    }

    // ---- change feed ----

    /// Follows the control plane's state version until the task is aborted. After a failure
    /// it waits the frame's jittered backoff, so that runtimes that lost the control plane
    /// together do not come back at it in step.
    pub async fn follow_changes(self) {
        let mut delays = backoff::reconnect(FEED_RETRY_FIRST, FEED_RETRY_LONGEST).build();
        loop {
            let after = self.version();
            let result: Result<ChangesResponse, ApiError> = self
                .call::<(), _>(
                    Method::GET,
                    &format!("{CHANGES_PATH}?after={after}"),
                    None,
                    "runtime-change-feed",
                    LONG_POLL,
                )
                .await;
            match result {
                Ok(changes) => {
                    self.observe_version(changes.version);
                    delays = backoff::reconnect(FEED_RETRY_FIRST, FEED_RETRY_LONGEST).build();
                }
                Err(err) => {
                    let delay = delays.next().unwrap_or(FEED_RETRY_LONGEST);
                    tracing::debug!(error = %err, ?delay, "the change feed failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// A [`CatalogWriter`] for statements of one workspace.
    pub fn writer(&self, workspace_id: i64, request_id: &str) -> Arc<dyn CatalogWriter> {
        Arc::new(ControlWriter {
            client: self.clone(),
            workspace_id,
            request_id: request_id.to_owned(),
        })
    }
}

fn load_bundle(sources: &PolicySources) -> Result<PolicyBundle, String> {
    let schema = sources
        .files
        .iter()
        .find(|(name, _)| name.ends_with(".cedarschema"))
        .ok_or_else(|| "no `.cedarschema` file".to_owned())?;
    let policies: Vec<(&str, &str)> = sources
        .files
        .iter()
        .filter(|(name, _)| name.ends_with(".cedar"))
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    PolicyBundle::from_sources((&schema.0, &schema.1), &policies).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::TemporarilyUnavailable,
        "the control plane is not reachable; try again shortly",
    )
}

/// Warehouse ids are 16 lowercase hex characters; anything else cannot name one and must not
/// reach a URL unescaped.
pub fn valid_warehouse_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The control plane's Databricks error body, as an error of ours with the same meaning.
pub(crate) fn map_error(status: StatusCode, body: &[u8]) -> ApiError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let Some(parsed) = parsed else {
        tracing::warn!(%status, "control plane error without a body");
        return match status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => unavailable(),
            _ => ApiError::internal(),
        };
    };
    let code = match parsed.error_code.as_str() {
        "INVALID_PARAMETER_VALUE" => ErrorCode::InvalidParameterValue,
        "BAD_REQUEST" => ErrorCode::BadRequest,
        "INVALID_STATE" => ErrorCode::InvalidState,
        "MALFORMED_REQUEST" => ErrorCode::MalformedRequest,
        "RESOURCE_DOES_NOT_EXIST" => ErrorCode::ResourceDoesNotExist,
        "RESOURCE_ALREADY_EXISTS" => ErrorCode::ResourceAlreadyExists,
        "ABORTED" => ErrorCode::Aborted,
        "PERMISSION_DENIED" => ErrorCode::PermissionDenied,
        "QUOTA_EXCEEDED" => ErrorCode::QuotaExceeded,
        "TEMPORARILY_UNAVAILABLE" => ErrorCode::TemporarilyUnavailable,
        // The runtime's own assertion refused, or a route missing: our fault, not the caller's.
        _ => {
            tracing::error!(%status, error_code = %parsed.error_code, "control plane refused a call");
            return ApiError::internal();
        }
    };
    ApiError::new(code, parsed.message)
}

/// Statement writes, sent to the control plane.
struct ControlWriter {
    client: ControlClient,
    workspace_id: i64,
    request_id: String,
}

impl CatalogWriter for ControlWriter {
    fn apply(
        &self,
        change: CatalogChange,
    ) -> BoxFuture<'static, Result<CatalogChangeResponse, SqlError>> {
        let client = self.client.clone();
        let workspace_id = self.workspace_id;
        let request_id = self.request_id.clone();
        Box::pin(async move {
            client
                .apply_change(workspace_id, change, &request_id)
                .await
                .map_err(sql_error_of)
        })
    }
}

/// A control-plane refusal as a statement's error (Databricks' `ServiceErrorCode` names).
pub(crate) fn sql_error_of(err: ApiError) -> SqlError {
    let code = match err.code {
        ErrorCode::ResourceAlreadyExists => "ALREADY_EXISTS",
        ErrorCode::ResourceDoesNotExist => "NOT_FOUND",
        ErrorCode::InvalidParameterValue | ErrorCode::BadRequest | ErrorCode::MalformedRequest => {
            "BAD_REQUEST"
        }
        ErrorCode::PermissionDenied => "PERMISSION_DENIED",
        ErrorCode::Aborted => "ABORTED",
        ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
        _ => "INTERNAL_ERROR",
    };
    SqlError::new(code, err.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_errors_keep_their_meaning() {
        let err = map_error(
            StatusCode::BAD_REQUEST,
            br#"{"error_code":"INVALID_PARAMETER_VALUE","message":"no principal `x`"}"#,
        );
        assert_eq!(err.code, ErrorCode::InvalidParameterValue);
        assert_eq!(err.message, "no principal `x`");
        let err = map_error(
            StatusCode::CONFLICT,
            br#"{"error_code":"ABORTED","message":"m"}"#,
        );
        assert_eq!(err.code, ErrorCode::Aborted);
        // Our own assertion refused is an internal error, not the caller's 401.
        let err = map_error(
            StatusCode::UNAUTHORIZED,
            br#"{"error_code":"UNAUTHENTICATED","message":"m"}"#,
        );
        assert_eq!(err.code, ErrorCode::InternalError);
        assert_eq!(
            map_error(StatusCode::SERVICE_UNAVAILABLE, b"").code,
            ErrorCode::TemporarilyUnavailable
        );
        assert_eq!(
            sql_error_of(ApiError::invalid_parameter("x")).error_code,
            "BAD_REQUEST"
        );
    }

    /// A control plane that answers every call 503 at state version 7, counting the calls.
    async fn unavailable_control_plane() -> (ControlClient, Arc<std::sync::atomic::AtomicUsize>) {
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(STATE_VERSION_HEADER, "7")],
                    r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"busy"}"#,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let key = AssertionKey::new(lakeward_common::assertion::Audience::DataPlane, b"test");
        (ControlClient::new(format!("http://{addr}"), key), hits)
    }

    #[tokio::test]
    async fn only_calls_that_may_be_repeated_are_retried() {
        let (client, hits) = unavailable_control_plane().await;
        let change = serde_json::json!({"workspace_id": 1});
        let err = client
            .call::<_, serde_json::Value>(
                Method::POST,
                CATALOG_CHANGE_PATH,
                Some(&change),
                "r",
                WRITE,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::TemporarilyUnavailable);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "a catalog change is sent once"
        );
        assert_eq!(
            client.version(),
            7,
            "the version is read from error replies too"
        );

        let err = client
            .get::<serde_json::Value>(CATALOG_PATH, "r")
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::TemporarilyUnavailable);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2 + RETRIES,
            "a read is retried"
        );
    }

    #[test]
    fn warehouse_ids_are_checked_before_reaching_a_url() {
        assert!(valid_warehouse_id("0123456789abcdef"));
        assert!(!valid_warehouse_id("../x"));
        assert!(!valid_warehouse_id("a?b=c"));
        assert!(!valid_warehouse_id(""));
    }
}
