//! The SQL engine: DataFusion over the lake, with every table a statement touches authorized
//! for the caller named in the gateway's assertion.
//!
//! This module's public items are the contract between the engine and the service around it
//! (`crate::statements`, `crate::warehouses`, `crate::grants`): the service resolves the caller,
//! the workspace's catalog snapshot, the policy bundle and the warehouse's compute, then asks
//! the engine to [`Engine::prepare`] a statement (parse, plan, authorize: fast, and done while
//! the execute request waits, so the touched tables are known for the audit record) and later
//! to [`Prepared::run`] it on the query threads.

mod access;
mod catalog;
mod compute;
mod error;
mod lake;
mod params;
mod samples;
mod sql;
mod types;

use datafusion::execution::SendableRecordBatchStream;
use futures::future::BoxFuture;
use lakeward_common::assertion::IdentityClaims;
use lakeward_common::data::{CatalogChange, CatalogChangeResponse, CatalogSnapshot};
use lakeward_common::internal::PrincipalRecord;
use lakeward_policy::{PolicyBundle, Securable};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use types::databricks_type_name;

/// Where the lake is and how warehouses are sized. Its `Debug` never shows the S3 secret.
#[derive(Clone)]
pub struct EngineConfig {
    /// The lake's root: a local directory by default, or an `s3://bucket/prefix` URL.
    pub lake_url: String,
    /// Endpoint, region and credentials of an S3-compatible store, when `lake_url` is `s3://`.
    pub s3: Option<S3Settings>,
    /// Where queries spill when they exceed their memory pool.
    pub spill_dir: PathBuf,
    /// The cores query work may use (the query runtime's threads).
    pub cores: usize,
    /// Memory granted per cluster-size unit (2X-Small = 1 unit, X-Small = 2, Small = 4, ...).
    pub memory_per_unit_bytes: u64,
    /// The largest memory pool any one warehouse gets, whatever its size.
    pub max_memory_bytes: u64,
    /// TPC-H scale factor of the `samples` catalog.
    pub samples_scale_factor: f64,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("lake_url", &self.lake_url)
            .field("s3", &self.s3)
            .field("spill_dir", &self.spill_dir)
            .field("cores", &self.cores)
            .field("memory_per_unit_bytes", &self.memory_per_unit_bytes)
            .field("max_memory_bytes", &self.max_memory_bytes)
            .field("samples_scale_factor", &self.samples_scale_factor)
            .finish()
    }
}

/// How the lake's S3-compatible store is reached (`[runtime.s3]`). Its `Debug` redacts the
/// secret key, so the configuration can be logged.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Plain-HTTP endpoints (a local MinIO or moto) need this.
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// What sizes a warehouse's compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseSizing {
    /// `2X-Small` ... `4X-Large`, already validated.
    pub cluster_size: String,
    /// Runs on the shared serverless pool rather than compute of its own.
    pub serverless: bool,
    pub max_num_clusters: u32,
}

/// A warehouse's resources: DataFusion's runtime environment (memory pool, spill files, object
/// stores) and session settings (target partitions), shared by its statements.
pub struct Compute {
    pub(crate) inner: ComputeInner,
}

/// The caller, as the gateway asserted it and the control plane resolved it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: IdentityClaims,
    pub principal: PrincipalRecord,
    pub workspace_id: i64,
    pub workspace_name: String,
}

/// Applies catalog changes (the service sends them to the control plane).
pub trait CatalogWriter: Send + Sync {
    fn apply(
        &self,
        change: CatalogChange,
    ) -> BoxFuture<'static, Result<CatalogChangeResponse, SqlError>>;
}

/// Everything an authorization decision is made against: who asks, under which policies, over
/// which catalog. It holds no compute, so APIs that decide without running anything (grants,
/// and next cluster policies and secret ACLs) need no warehouse.
#[derive(Clone)]
pub struct AccessContext {
    pub caller: Caller,
    pub snapshot: Arc<CatalogSnapshot>,
    pub policies: PolicyBundle,
}

/// Everything one statement runs against: its access context, the compute it runs on and
/// where its catalog changes go.
#[derive(Clone)]
pub struct StatementContext {
    pub access: AccessContext,
    pub compute: Arc<Compute>,
    pub writer: Arc<dyn CatalogWriter>,
}

/// A statement as the Statement Execution API received it.
#[derive(Debug, Clone, Default)]
pub struct StatementInput {
    pub sql: String,
    pub parameters: Vec<Parameter>,
    /// Default catalog and schema for unqualified names (`main` and `default` when absent).
    pub catalog: Option<String>,
    pub schema: Option<String>,
}

/// A named parameter (`:name` in the statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    /// `None` is SQL NULL.
    pub value: Option<String>,
    /// A Databricks type name (`STRING` when absent): `INT`, `BIGINT`, `DOUBLE`, `DECIMAL(10,2)`,
    /// `DATE`, `TIMESTAMP`, `BOOLEAN`, ...
    pub type_name: Option<String>,
}

/// A securable the statement reads, writes, creates, drops or grants on, and the action it was
/// authorized for (`SelectTable`, `ModifyTable`, ...), for the audit record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableAccess {
    pub action: String,
    pub securable: Securable,
}

/// A statement that parsed, planned and passed authorization.
pub struct Prepared {
    pub touched: Vec<TableAccess>,
    pub(crate) inner: PreparedInner,
}

/// Why a statement failed: it becomes the statement's `FAILED` status, never an HTTP error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// A Databricks `ServiceErrorCode` (`BAD_REQUEST`, `NOT_FOUND`, `RESOURCE_EXHAUSTED`,
    /// `INTERNAL_ERROR`, ...) or `PERMISSION_DENIED`.
    pub error_code: String,
    /// Names the problem: the table, the column, the syntax error.
    pub message: String,
    /// The SQLSTATE when one applies (`42P01` unknown table, `42501` permission, `42601`
    /// syntax).
    pub sql_state: Option<String>,
    /// On `PERMISSION_DENIED`: what the statement attempted and was refused (the action and
    /// securable), so the audit record can name it although nothing was touched.
    pub denied: Option<Box<TableAccess>>,
}

impl SqlError {
    pub fn new(error_code: &str, message: impl Into<String>) -> Self {
        SqlError {
            error_code: error_code.to_owned(),
            message: message.into(),
            sql_state: None,
            denied: None,
        }
    }

    pub fn with_sql_state(mut self, state: &str) -> Self {
        self.sql_state = Some(state.to_owned());
        self
    }

    /// Records what a `PERMISSION_DENIED` refused.
    pub fn with_denied(mut self, denied: TableAccess) -> Self {
        self.denied = Some(Box::new(denied));
        self
    }
}

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

pub(crate) use access::owner_of;
pub(crate) use compute::ComputeInner;
pub(crate) use sql::PreparedInner;

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
        let mut computes = self
            .inner
            .computes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = computes.get(&key) {
            // A resized classic warehouse gets new compute; statements still running keep
            // the old one through their Arc.
            if sizing.serverless || existing.inner.sizing == *sizing {
                return existing.clone();
            }
        }
        let built = Arc::new(Compute {
            inner: ComputeInner::build(&self.inner.config, &self.inner.lake, &key, sizing),
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
        self.inner
            .computes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(warehouse_id);
    }

    /// Parses, plans and authorizes one statement. Fails with `PERMISSION_DENIED` naming the
    /// first securable the caller may not touch.
    pub async fn prepare(
        &self,
        ctx: StatementContext,
        input: StatementInput,
    ) -> Result<Prepared, SqlError> {
        sql::prepare(self.inner.lake.clone(), ctx, input).await
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
        authz.check("ManageGrants", securable)
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

impl Compute {
    /// How many statements of this warehouse run at once; the rest queue.
    pub fn max_concurrency(&self) -> usize {
        self.inner.max_concurrency
    }

    /// The memory pool's size in bytes.
    pub fn memory_limit_bytes(&self) -> usize {
        self.inner.memory_limit
    }

    /// DataFusion's target partitions (the statement's parallelism).
    pub fn target_partitions(&self) -> usize {
        self.inner.target_partitions
    }
}

impl Prepared {
    /// Runs the statement. Queries stream their rows; DDL and DML do their work and return a
    /// small result (`num_affected_rows`, `num_inserted_rows` for writes, as Databricks does).
    /// Dropping the stream (or the future) stops the work.
    pub async fn run(self) -> Result<SendableRecordBatchStream, SqlError> {
        self.inner.run().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_s3_secret() {
        let s3 = S3Settings {
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("AKIAEXAMPLE".into()),
            secret_access_key: Some("wJalrXUtnFEMI-very-secret".into()),
            allow_http: true,
        };
        let config = EngineConfig {
            lake_url: "s3://bucket/lake".into(),
            s3: Some(s3.clone()),
            spill_dir: PathBuf::from("/tmp/spill"),
            cores: 2,
            memory_per_unit_bytes: 1,
            max_memory_bytes: 2,
            samples_scale_factor: 0.01,
        };
        for shown in [
            format!("{s3:?}"),
            format!("{config:?}"),
            format!("{config:#?}"),
        ] {
            assert!(!shown.contains("very-secret"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
        }
        let none = S3Settings {
            secret_access_key: None,
            ..s3
        };
        assert!(format!("{none:?}").contains("secret_access_key: None"));
    }
}
