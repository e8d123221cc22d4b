//! The runtime service as a whole: the routes of every service behind the assertion check, and
//! the background work (the control plane's change feed, the sweeper). With `sweeper`, the
//! only module that knows every service.

use crate::http::endpoint_not_found;
use crate::state::{RuntimeDeps, Shared};
use crate::{grants, statements, sweeper, warehouses};
use axum::http::StatusCode;
use axum::Router;
use lakeward_frame::server::routes::{get, post};
use lakeward_frame::server::{AssertionCheck, RouteEntry, Routes};
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// The path the gateway's readiness check calls; it reveals nothing and needs no assertion.
pub const READY_PATH: &str = "/ready";

/// What the runtime serves behind the assertion check, on Databricks' paths.
fn routes() -> Routes<Arc<Shared>> {
    Routes::new()
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
}

/// Every route the runtime serves to callers, for the check that the gateway routes each one
/// to an action the schema declares.
pub fn route_table() -> Vec<RouteEntry> {
    routes().table().to_vec()
}

/// The runtime service.
pub struct Runtime {
    shared: Arc<Shared>,
    /// Sweep steps that failed since the service started.
    sweep_failures: Arc<AtomicU64>,
}

impl Runtime {
    /// Builds the engine and the query runtime and starts writing the sample data. Call it
    /// from within a tokio runtime: that runtime serves HTTP.
    pub fn new(deps: RuntimeDeps) -> anyhow::Result<Self> {
        Ok(Runtime {
            shared: Shared::build(deps)?,
            sweep_failures: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The routes, behind the assertion check.
    pub fn router(&self) -> Router {
        let api = routes()
            .into_router()
            .fallback(endpoint_not_found)
            .method_not_allowed_fallback(endpoint_not_found)
            // No handler runs before the assertion is verified (the runtime's key alone:
            // neither the control plane's nor the runtime's own data-plane key opens it).
            .layer(AssertionCheck::new(self.shared.key.clone()))
            .with_state(self.shared.clone());
        Router::new()
            .route(READY_PATH, axum::routing::get(|| async { StatusCode::OK }))
            .merge(api)
    }

    /// Serves on `listener` until `shutdown` resolves, then drains.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let feed = tokio::spawn(self.shared.control.clone().follow_changes());
        let sweeper = tokio::spawn(sweeper::sweep(
            Arc::downgrade(&self.shared),
            Duration::from_millis(self.shared.config.idle_check_interval_ms),
            sweeper::runtime_steps(),
            self.sweep_failures.clone(),
        ));
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        feed.abort();
        sweeper.abort();
        served?;
        Ok(())
    }
}
