//! What a statement is prepared against: who asks (the caller), under which policies, over
//! which catalog, on which compute, and where its catalog changes go.

use super::compute::Compute;
use super::error::SqlError;
use futures::future::BoxFuture;
use lakeward_common::assertion::IdentityClaims;
use lakeward_common::data::{CatalogChange, CatalogChangeResponse, CatalogSnapshot};
use lakeward_common::internal::PrincipalRecord;
use lakeward_policy::PolicyBundle;
use std::sync::Arc;

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
