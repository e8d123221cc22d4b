//! The SQL engine: DataFusion over the lake, with every table a statement touches authorized
//! for the caller named in the gateway's assertion.
//!
//! This module's public items are the contract between the engine and the service around it
//! (`crate::statements`, `crate::warehouses`, `crate::grants`): the service resolves the caller,
//! the workspace's catalog snapshot, the policy bundle and the warehouse's compute, then asks
//! the engine to [`Engine::prepare`] a statement (parse, plan, authorize: fast, and done while
//! the execute request waits, so the touched tables are known for the audit record) and later
//! to [`Prepared::run`] it on the query threads.
//!
//! The types they exchange live in leaf modules (`config`, `context`, `touched`, `error`), so
//! that no module below this one needs this file.

mod access;
mod catalog;
mod compute;
mod config;
mod context;
mod error;
mod lake;
mod params;
mod samples;
mod sql;
mod touched;
mod types;

use lakeward_common::data::CatalogChange;
use lakeward_policy::Securable;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

pub use compute::Compute;
pub use config::{EngineConfig, S3Settings, WarehouseSizing};
pub use context::{
    AccessContext, Caller, CatalogWriter, Parameter, StatementContext, StatementInput,
};
pub use error::{query_error, Level, QueryError, SqlError};
pub use sql::Prepared;
pub use touched::TableAccess;
pub use types::databricks_type_name;

pub(crate) use access::owner_of;

/// The engine: the lake, the compute of each running warehouse, the SQL front end.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    config: EngineConfig,
    lake: Arc<lake::Lake>,
    /// Keyed by warehouse id, or [`compute::SERVERLESS_KEY`] for the shared pool.
    computes: Mutex<HashMap<String, Arc<Compute>>>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> anyhow::Result<Engine> {
        let lake = Arc::new(lake::Lake::open(&config)?);
        std::fs::create_dir_all(&config.spill_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the spill directory {}: {e}",
                config.spill_dir.display()
            )
        })?;
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config,
                lake,
                computes: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Writes the `samples` TPC-H data into the lake unless it is there. Blocking (CPU and
    /// file work): call it from `spawn_blocking` or before serving.
    pub fn ensure_sample_data(&self) -> anyhow::Result<()> {
        samples::ensure_sample_data(&self.inner.lake, self.inner.config.samples_scale_factor)
    }

    /// The changes that give a workspace its initial catalog: `samples` (the TPC-H tables in
    /// `samples.tpch`, readable by the workspace's `users`) and `main.default`, owned by the
    /// workspace's `admins`. The service applies them (each `if_not_exists`) when a workspace's
    /// snapshot has no `samples` catalog.
    pub fn seed_changes(&self) -> Vec<CatalogChange> {
        samples::seed_changes()
    }

    /// The compute of a warehouse, created on first use: a classic warehouse gets its own, a
    /// serverless one the shared pool.
    pub fn compute(&self, warehouse_id: &str, sizing: &WarehouseSizing) -> Arc<Compute> {
        let key = if sizing.serverless {
            compute::SERVERLESS_KEY.to_owned()
        } else {
            warehouse_id.to_owned()
        };
        let mut computes = self.inner.computes.lock();
        if let Some(existing) = computes.get(&key) {
            // A resized classic warehouse gets new compute; statements still running keep
            // the old one through their Arc.
            if sizing.serverless || existing.inner.sizing == *sizing {
                return existing.clone();
            }
        }
        let built = Arc::new(Compute {
            inner: compute::ComputeInner::build(&self.inner.config, &self.inner.lake, &key, sizing),
        });
        computes.insert(key, built.clone());
        built
    }

    /// Drops a stopped or deleted warehouse's own compute (statements still running keep theirs
    /// until they end; the service cancels them first).
    pub fn release(&self, warehouse_id: &str) {
        if warehouse_id == compute::SERVERLESS_KEY {
            return;
        }
        self.inner.computes.lock().remove(warehouse_id);
    }

    /// Parses, plans and authorizes one statement. Fails with `PERMISSION_DENIED` naming the
    /// first securable the caller may not touch.
    pub async fn prepare(
        &self,
        ctx: StatementContext,
        input: StatementInput,
    ) -> Result<Prepared, SqlError> {
        sql::prepare(self.inner.lake.clone(), ctx, input)
            .await
            .map_err(SqlError::from)
    }

    /// Authorizes `ManageGrants` on a securable that must exist in `ctx.snapshot` (for the
    /// Unity Catalog grants API; SQL `GRANT`/`REVOKE` go through [`Engine::prepare`]).
    pub fn authorize_grants(
        &self,
        ctx: &AccessContext,
        securable: &Securable,
    ) -> Result<(), SqlError> {
        access::require_exists(&ctx.snapshot, securable)?;
        let mut authz = access::Authorizer::new(ctx);
        Ok(authz.check("ManageGrants", securable)?)
    }

    /// The effective privileges of the caller on a securable (direct, through groups,
    /// inherited, `OWNER` for owners), as the engine passes them to the policies.
    pub fn effective_privileges(
        &self,
        ctx: &AccessContext,
        securable: &Securable,
    ) -> std::collections::BTreeSet<String> {
        access::effective_privileges(&ctx.snapshot, &ctx.caller, securable)
    }
}
