//! The state every handler and background task shares: the configuration, the control-plane
//! client, the engine, the query runtime and the scheduler. It is built only from modules that
//! know no service; the services are handlers over it.

use crate::caller::CallerCtx;
use crate::config::Config;
use crate::control_client::ControlClient;
use crate::engine::{
    AccessContext, Compute, Engine, Prepared, SqlError, StatementContext, StatementInput,
    WarehouseSizing,
};
use crate::error::ServiceError;
use crate::scheduler::{Bounds, SamplesState, Scheduler, SchedulerDeps, Statement, StatementHost};
use futures::future::BoxFuture;
use lakeward_common::assertion::{AssertionKey, IdentityClaims};
use lakeward_common::data::WarehouseUpdate;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;

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
    pub(crate) key: AssertionKey,
    pub(crate) config: Config,
    pub(crate) control: ControlClient,
    pub(crate) engine: Engine,
    /// Owns the query threads; `query_handle` spawns on them.
    _query: QueryRuntime,
    query_handle: tokio::runtime::Handle,
    /// The runtime serving HTTP, where bookkeeping and control-plane calls run.
    pub(crate) io: tokio::runtime::Handle,
    pub(crate) scheduler: Arc<Scheduler>,
}

impl Shared {
    /// Builds the engine and the query runtime and starts writing the sample data. Call it
    /// from within a tokio runtime: that runtime serves HTTP.
    pub(crate) fn build(deps: RuntimeDeps) -> anyhow::Result<Arc<Shared>> {
        let io = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("the runtime must be built inside a tokio runtime"))?;
        let threads = deps.config.query_threads();
        let query = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("lakeward-query")
            .enable_all()
            .build()?;
        let query_handle = query.handle().clone();
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
        let config = deps.config;
        let bounds = Bounds {
            live_per_caller: config.max_live_statements_per_caller,
            live_per_warehouse: config.max_live_statements_per_warehouse,
            result_bytes_per_caller: config.max_result_bytes_per_caller,
            result_bytes_per_warehouse: config.max_result_bytes_per_warehouse,
        };
        let retention = Duration::from_secs(config.statement_retention_secs);
        Ok(Arc::new_cyclic(|me: &Weak<Shared>| {
            let host: Weak<dyn StatementHost> = me.clone();
            Shared {
                key: deps.key,
                control: ControlClient::new(deps.control_url, deps.data_plane_key),
                scheduler: Arc::new(Scheduler::new(SchedulerDeps {
                    host,
                    io: io.clone(),
                    query: query_handle.clone(),
                    samples,
                    retention,
                    bounds,
                })),
                config,
                engine,
                _query: QueryRuntime(Some(query)),
                query_handle,
                io,
            }
        }))
    }

    /// Resolves the caller of a workspace API: it must be active and assigned to the
    /// workspace the assertion names.
    pub(crate) async fn resolve_caller(
        &self,
        claims: IdentityClaims,
    ) -> Result<CallerCtx, ServiceError> {
        let Some(workspace_id) = claims.workspace_id else {
            return Err(ServiceError::BadRequest(
                "this API is served in a workspace, not at account level".into(),
            ));
        };
        let principal = self
            .control
            .principal(&claims.user_name, &claims.request_id)
            .await?;
        if !principal.active {
            return Err(ServiceError::PermissionDenied(
                "the caller is deactivated".into(),
            ));
        }
        if !principal.is_workspace_member(workspace_id) {
            return Err(ServiceError::PermissionDenied(
                "the caller is not assigned to this workspace".into(),
            ));
        }
        Ok(CallerCtx {
            claims,
            principal,
            workspace_id,
        })
    }

    /// Everything a decision is made against: the caller, the workspace's catalog, the
    /// policies. No compute: authorizations that run nothing need no warehouse.
    pub(crate) async fn access_context(
        &self,
        ctx: &CallerCtx,
    ) -> Result<AccessContext, ServiceError> {
        let snapshot = self
            .control
            .snapshot(&self.engine, ctx.workspace_id, ctx.request_id())
            .await?;
        let policies = self.control.policies(ctx.request_id()).await?;
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
        &self,
        ctx: &CallerCtx,
        compute: Arc<Compute>,
    ) -> Result<StatementContext, ServiceError> {
        Ok(StatementContext {
            access: self.access_context(ctx).await?,
            compute,
            writer: self.control.writer(ctx.workspace_id, ctx.request_id()),
        })
    }

    /// The compute of a warehouse (built on first use: a runtime environment, its spill
    /// directory), on a blocking thread rather than one serving HTTP.
    pub(crate) async fn compute_for(
        &self,
        warehouse_id: &str,
        sizing: WarehouseSizing,
    ) -> Result<Arc<Compute>, ServiceError> {
        let engine = self.engine.clone();
        let id = warehouse_id.to_owned();
        self.io
            .spawn_blocking(move || engine.compute(&id, &sizing))
            .await
            .map_err(|err| {
                tracing::error!(warehouse = warehouse_id, error = %err, "building the compute failed");
                ServiceError::Internal
            })
    }

    /// Parses, plans and authorizes on the query runtime: planning reads file footers and
    /// builds plans, query work, even while a request waits for it.
    pub(crate) async fn prepare(
        &self,
        context: StatementContext,
        input: StatementInput,
    ) -> Result<Prepared, SqlError> {
        let engine = self.engine.clone();
        self.query_handle
            .spawn(async move { engine.prepare(context, input).await })
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "planning a statement stopped");
                Err(SqlError::new(
                    "INTERNAL_ERROR",
                    "planning the statement stopped inside the engine",
                ))
            })
    }
}

impl StatementHost for Shared {
    fn catalog_version(&self) -> u64 {
        self.control.version()
    }

    fn prepare_again(
        self: Arc<Self>,
        statement: Arc<Statement>,
        compute: Arc<Compute>,
    ) -> BoxFuture<'static, Result<Prepared, SqlError>> {
        Box::pin(async move {
            let unavailable = |err: ServiceError| match err {
                ServiceError::PermissionDenied(message) => {
                    SqlError::new("PERMISSION_DENIED", message).with_sql_state("42501")
                }
                other => SqlError::new(
                    "TEMPORARILY_UNAVAILABLE",
                    format!(
                        "the statement could not be authorized again: {}",
                        other.message()
                    ),
                ),
            };
            let ctx = self
                .resolve_caller(statement.claims.clone())
                .await
                .map_err(unavailable)?;
            let context = self
                .statement_context(&ctx, compute)
                .await
                .map_err(unavailable)?;
            self.prepare(context, statement.input.clone()).await
        })
    }

    fn record_activity(&self, warehouse_id: &str, workspace_id: i64, at_ms: i64) {
        let control = self.control.clone();
        let id = warehouse_id.to_owned();
        self.io.spawn(async move {
            let update = WarehouseUpdate {
                workspace_id,
                last_activity_ms: Some(at_ms),
                ..WarehouseUpdate::default()
            };
            if let Err(err) = control
                .update_warehouse(&id, &update, "runtime-activity")
                .await
            {
                tracing::warn!(warehouse = %id, error = %err, "cannot record warehouse activity");
            }
        });
    }
}
