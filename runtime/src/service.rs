//! The service frame: construction, the routes, the assertion check, the caller, errors, and the
//! background work (change feed, auto-stop, result expiry).

use crate::config::Config;
use crate::control_client::ControlClient;
use crate::engine::{AccessContext, Caller, Compute, Engine, StatementContext, WarehouseSizing};
use crate::statements::Statement;
use crate::warehouses::WarehouseSlot;
use crate::{grants, statements, warehouses};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lakeward_common::assertion::{AssertionKey, IdentityClaims, IDENTITY_HEADER};
use lakeward_common::error::{ApiError, ErrorCode};
use lakeward_common::internal::PrincipalRecord;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The path the gateway's readiness check calls; it reveals nothing and needs no assertion.
pub const READY_PATH: &str = "/ready";

/// What the runtime is built from.
pub struct RuntimeDeps {
    /// Verifies the gateway's assertions (audience `Runtime`).
    pub key: AssertionKey,
    /// Signs the runtime's calls to the control plane (audience `DataPlane`).
    pub data_plane_key: AssertionKey,
    /// `http://host:port` of the control plane.
    pub control_url: String,
    pub data_dir: PathBuf,
    pub config: Config,
}

/// Where the `samples` data stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SamplesState {
    Generating,
    Ready,
    Failed(String),
}

/// The query runtime. Dropped from async code too, where a plain drop would panic.
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

pub(crate) struct Shared {
    key: AssertionKey,
    pub(crate) config: Config,
    pub(crate) control: ControlClient,
    pub(crate) engine: Engine,
    query: QueryRuntime,
    /// The runtime serving HTTP, where bookkeeping and control-plane calls run.
    pub(crate) io: tokio::runtime::Handle,
    pub(crate) samples: watch::Receiver<SamplesState>,
    pub(crate) warehouses: Mutex<HashMap<String, WarehouseSlot>>,
    pub(crate) statements: Mutex<HashMap<String, Arc<Statement>>>,
}

impl Shared {
    pub(crate) fn query_handle(&self) -> Option<tokio::runtime::Handle> {
        self.query.0.as_ref().map(|r| r.handle().clone())
    }
}

/// The runtime service.
pub struct Runtime {
    shared: Arc<Shared>,
}

impl Runtime {
    /// Builds the engine and the query runtime and starts writing the sample data. Call it
    /// from within a tokio runtime: that runtime serves HTTP.
    pub fn new(deps: RuntimeDeps) -> anyhow::Result<Self> {
        let io = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("the runtime must be built inside a tokio runtime"))?;
        let threads = deps.config.query_threads();
        let query = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("lakeward-query")
            .enable_all()
            .build()?;
        let engine = Engine::new(deps.config.engine_config(&deps.data_dir))?;
        let (samples_tx, samples) = watch::channel(SamplesState::Generating);
        let generator = engine.clone();
        io.spawn_blocking(move || {
            let state = match generator.ensure_sample_data() {
                Ok(()) => SamplesState::Ready,
                Err(err) => {
                    tracing::error!(error = %err, "cannot write the samples data");
                    SamplesState::Failed(err.to_string())
                }
            };
            samples_tx.send_replace(state);
        });
        Ok(Runtime {
            shared: Arc::new(Shared {
                key: deps.key,
                control: ControlClient::new(deps.control_url, deps.data_plane_key),
                config: deps.config,
                engine,
                query: QueryRuntime(Some(query)),
                io,
                samples,
                warehouses: Mutex::new(HashMap::new()),
                statements: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The routes, behind the assertion check.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route(
                "/api/2.0/sql/warehouses",
                get(warehouses::list).post(warehouses::create),
            )
            .route(
                "/api/2.0/sql/warehouses/{id}",
                get(warehouses::get).delete(warehouses::delete),
            )
            .route("/api/2.0/sql/warehouses/{id}/edit", post(warehouses::edit))
            .route(
                "/api/2.0/sql/warehouses/{id}/start",
                post(warehouses::start),
            )
            .route("/api/2.0/sql/warehouses/{id}/stop", post(warehouses::stop))
            .route("/api/2.0/sql/statements", post(statements::execute))
            .route("/api/2.0/sql/statements/{id}", get(statements::get))
            .route(
                "/api/2.0/sql/statements/{id}/cancel",
                post(statements::cancel),
            )
            .route(
                "/api/2.0/sql/statements/{id}/result/chunks/{index}",
                get(statements::chunk),
            )
            .route(
                "/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}",
                get(grants::get).patch(grants::update),
            )
            .fallback(endpoint_not_found)
            .method_not_allowed_fallback(endpoint_not_found)
            .layer(middleware::from_fn_with_state(
                self.shared.clone(),
                require_assertion,
            ))
            .with_state(self.shared.clone());
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
        let feed = tokio::spawn(self.shared.control.clone().follow_changes());
        let sweeper = tokio::spawn(sweep(Arc::downgrade(&self.shared)));
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        feed.abort();
        sweeper.abort();
        served?;
        Ok(())
    }
}

/// Auto-stop and result expiry, every `idle_check_interval_ms`, while the service lives.
async fn sweep(shared: std::sync::Weak<Shared>) {
    let period = match shared.upgrade() {
        Some(s) => Duration::from_millis(s.config.idle_check_interval_ms),
        None => return,
    };
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        statements::expire(&shared);
        warehouses::retry_stuck(&shared).await;
        warehouses::auto_stop(&shared).await;
    }
}

/// An API error on its way out, in Databricks' shape.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) ApiError);

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Failure(err)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

pub(crate) fn error_response(err: ApiError) -> Response {
    let mut response = (err.status(), err.body()).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A JSON body with the content type clients expect.
pub(crate) fn json_response(value: &serde_json::Value) -> Response {
    let mut response = (StatusCode::OK, value.to_string()).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A JSON body already serialized.
pub(crate) fn json_text_response(text: String) -> Response {
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A request body as JSON; an empty body is `{}` (the SDK sends none on some POSTs).
pub(crate) fn parse_body(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            ErrorCode::MalformedRequest,
            "the request body must be a JSON object",
        )),
        Err(err) => Err(ApiError::new(
            ErrorCode::MalformedRequest,
            format!("the request body is not valid JSON: {err}"),
        )),
    }
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
            shared.control.note_account(&claims.account_id);
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

async fn endpoint_not_found() -> Response {
    error_response(ApiError::new(
        ErrorCode::EndpointNotFound,
        "no such endpoint",
    ))
}

/// The caller of a workspace API, resolved.
#[derive(Debug, Clone)]
pub(crate) struct CallerCtx {
    pub(crate) claims: IdentityClaims,
    pub(crate) principal: PrincipalRecord,
    pub(crate) workspace_id: i64,
}

impl CallerCtx {
    pub(crate) fn is_admin(&self) -> bool {
        self.principal.is_workspace_admin(self.workspace_id)
    }

    pub(crate) fn request_id(&self) -> &str {
        &self.claims.request_id
    }

    /// The grantee ids that stand for the caller: itself and its groups.
    pub(crate) fn stands_for(&self, grantee_id: &str) -> bool {
        self.claims.sub == grantee_id || self.claims.groups.iter().any(|g| g == grantee_id)
    }

    pub(crate) fn engine_caller(&self) -> Caller {
        Caller {
            claims: self.claims.clone(),
            principal: self.principal.clone(),
            workspace_id: self.workspace_id,
            // The assertion names the workspace by id only; `statement_context` takes the name
            // from the catalog snapshot, and the id stands in where there is none.
            workspace_name: self.workspace_id.to_string(),
        }
    }
}

/// Resolves the caller of a workspace API.
pub(crate) async fn caller(shared: &Shared, claims: IdentityClaims) -> Result<CallerCtx, ApiError> {
    let Some(workspace_id) = claims.workspace_id else {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "this API is served in a workspace, not at account level",
        ));
    };
    let principal = shared
        .control
        .principal(&claims.user_name, &claims.request_id)
        .await?;
    if !principal.active {
        return Err(ApiError::permission_denied("the caller is deactivated"));
    }
    if !principal.is_workspace_member(workspace_id) {
        return Err(ApiError::permission_denied(
            "the caller is not assigned to this workspace",
        ));
    }
    Ok(CallerCtx {
        claims,
        principal,
        workspace_id,
    })
}

/// Everything a decision is made against: the caller, the workspace's catalog, the policies.
pub(crate) async fn access_context(
    shared: &Shared,
    ctx: &CallerCtx,
) -> Result<AccessContext, ApiError> {
    let snapshot = shared
        .control
        .snapshot(&shared.engine, ctx.workspace_id, ctx.request_id())
        .await?;
    let policies = shared.control.policies(ctx.request_id()).await?;
    let mut caller = ctx.engine_caller();
    if !snapshot.workspace_name.is_empty() {
        caller.workspace_name.clone_from(&snapshot.workspace_name);
    }
    Ok(AccessContext {
        caller,
        snapshot,
        policies,
    })
}

/// Everything a statement runs against: its access context on the given compute.
pub(crate) async fn statement_context(
    shared: &Shared,
    ctx: &CallerCtx,
    compute: Arc<Compute>,
) -> Result<StatementContext, ApiError> {
    Ok(StatementContext {
        access: access_context(shared, ctx).await?,
        compute,
        writer: shared.control.writer(ctx.workspace_id, ctx.request_id()),
    })
}

/// The compute of a warehouse (built on first use: a runtime environment, its spill directory),
/// on a blocking thread rather than one serving HTTP.
pub(crate) async fn compute_for(
    shared: &Shared,
    warehouse_id: &str,
    sizing: WarehouseSizing,
) -> Result<Arc<Compute>, ApiError> {
    let engine = shared.engine.clone();
    let id = warehouse_id.to_owned();
    shared
        .io
        .spawn_blocking(move || engine.compute(&id, &sizing))
        .await
        .map_err(|err| {
            tracing::error!(warehouse = warehouse_id, error = %err, "building the compute failed");
            ApiError::new(
                ErrorCode::InternalError,
                format!("the compute of warehouse `{warehouse_id}` could not be built"),
            )
        })
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
