//! The data plane's internal API: what the runtime reads from and writes to the control plane.
//!
//! The control plane is the system of record for SQL warehouses (their definition, state and
//! permissions) and for the lake's catalog (catalogs, schemas, tables and their grants). The
//! runtime owns the behaviour: it validates requests, runs the warehouse life cycle and the SQL
//! engine, and decides table access with Cedar. Data never passes through the control plane:
//! only table *definitions* do.
//!
//! The runtime calls these routes with an assertion for [`crate::assertion::Audience::DataPlane`]
//! whose principal kind is [`crate::assertion::PrincipalKind::Runtime`]. The control plane
//! accepts that key on the routes below (and on [`crate::internal::RESOLVE_PRINCIPAL_PATH`] and
//! [`crate::internal::CHANGES_PATH`]) and nowhere else, so a runtime cannot act as a user on the
//! control plane's public API.
//!
//! Every write bumps the control plane's state version, so the runtime's caches (refreshed by
//! long-polling [`crate::internal::CHANGES_PATH`]) follow changes made by other replicas.
//! Errors use the Databricks error body (`error_code`, `message`): 404
//! `RESOURCE_DOES_NOT_EXIST`, 409 `RESOURCE_ALREADY_EXISTS`, 400 `INVALID_PARAMETER_VALUE`, and
//! 409 `ABORTED` for a conditional warehouse update that lost.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET ?workspace_id=N` → [`CatalogSnapshot`]: the whole catalog of a workspace, with grants.
pub const CATALOG_PATH: &str = "/internal/v1/data/catalog";
/// `POST` [`CatalogChangeRequest`] → [`CatalogChangeResponse`]: one change, applied in one
/// transaction.
pub const CATALOG_CHANGE_PATH: &str = "/internal/v1/data/catalog/change";
/// `GET ?workspace_id=N` → [`WarehouseList`] (deleted warehouses left out);
/// `POST` [`NewWarehouse`] → [`WarehouseRecord`] (the control plane assigns the id and grants
/// the creator `CAN_MANAGE`).
pub const WAREHOUSES_PATH: &str = "/internal/v1/data/warehouses";
/// `GET /internal/v1/data/warehouses/{id}?workspace_id=N` → [`WarehouseRecord`] (also when
/// `DELETED`), or 404; `PUT` [`WarehouseUpdate`] → [`WarehouseRecord`].
pub const WAREHOUSE_PATH_PREFIX: &str = "/internal/v1/data/warehouses/";
/// `GET` → [`PolicySources`]: the Cedar schema and policy files the gateway decides with, so
/// that the runtime decides table access with exactly the same set.
pub const POLICIES_PATH: &str = "/internal/v1/data/policies";

/// The life-cycle states the SDK's waiters poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WarehouseState {
    Starting,
    Running,
    Stopping,
    Stopped,
    Deleting,
    Deleted,
}

/// A SQL warehouse as stored. `spec` holds the user-settable fields exactly as the API takes
/// them (`name`, `cluster_size`, `auto_stop_mins`, `enable_serverless_compute`, `tags`, ...),
/// already validated by the runtime; the control plane stores it opaquely.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarehouseRecord {
    /// 16 lowercase hex characters.
    pub id: String,
    pub workspace_id: i64,
    pub spec: serde_json::Value,
    pub state: WarehouseState,
    /// `userName` of the creator (`creator_name` in the API).
    pub creator_name: String,
    /// Milliseconds since the epoch of the last statement the warehouse served (or of its start);
    /// auto-stop counts from here.
    pub last_activity_ms: i64,
    /// The direct permission grants on the warehouse (`CAN_USE`, `CAN_MANAGE`, ...).
    pub acl: Vec<AclEntry>,
}

/// One direct grant on a workspace object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    /// A principal's or group's id (the ids the assertion's `sub` and `groups` carry).
    pub grantee_id: String,
    pub permission_level: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarehouseList {
    pub warehouses: Vec<WarehouseRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewWarehouse {
    pub workspace_id: i64,
    pub spec: serde_json::Value,
    pub state: WarehouseState,
    /// The creator's principal id; it is granted `CAN_MANAGE`.
    pub creator_id: String,
    pub creator_name: String,
    pub last_activity_ms: i64,
}

/// Replaces whichever fields are present. `expect_state`, when present, makes the update
/// conditional (409 `ABORTED` when the stored state differs), so two runtimes cannot both
/// move a warehouse through a transition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarehouseUpdate {
    pub workspace_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<WarehouseState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_state: Option<WarehouseState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_ms: Option<i64>,
}

/// The permission levels of a warehouse, weakest first.
pub const WAREHOUSE_LEVELS: [&str; 5] = [
    "CAN_VIEW",
    "CAN_MONITOR",
    "CAN_USE",
    "CAN_MANAGE",
    "IS_OWNER",
];

/// The catalog of one workspace. Names are stored lower-case (Unity Catalog names are
/// case-insensitive).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogSnapshot {
    /// The control plane's state version when this was read.
    pub version: u64,
    /// The workspace's name (policies may read `Workspace::name`; the assertion carries only
    /// the id).
    #[serde(default)]
    pub workspace_name: String,
    pub catalogs: Vec<CatalogRecord>,
    pub schemas: Vec<SchemaRecord>,
    pub tables: Vec<TableRecord>,
    pub grants: Vec<GrantRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRecord {
    pub name: String,
    /// A `userName` or a group's display name.
    pub owner: String,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRecord {
    pub catalog: String,
    pub name: String,
    pub owner: String,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRecord {
    pub catalog: String,
    pub schema: String,
    pub name: String,
    pub owner: String,
    /// `MANAGED` (the runtime chose the location and writes to it) or `EXTERNAL`.
    pub table_type: String,
    /// `PARQUET`, `CSV` or `JSON`.
    pub format: String,
    /// A directory (or single file) relative to the lake's root, e.g. `main/default/trips/`.
    pub location: String,
    /// The columns, in order.
    pub columns: Vec<ColumnRecord>,
    /// Format options (`header`, `delimiter`, ...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRecord {
    pub name: String,
    /// The Arrow data type, as `arrow::datatypes::DataType`'s `Display` writes it and its
    /// `FromStr` reads it back (e.g. `Int64`, `Utf8`, `Decimal128(15, 2)`, `Date32`).
    pub data_type: String,
    pub nullable: bool,
}

/// Privileges granted to one principal on one securable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// `CATALOG`, `SCHEMA` or `TABLE`.
    pub securable_type: String,
    /// `catalog`, `catalog.schema` or `catalog.schema.table`.
    pub full_name: String,
    /// A `userName`, a service principal's application id, or a group's display name.
    pub principal: String,
    /// Unity Catalog privilege names: `SELECT`, `MODIFY`, `USE_CATALOG`, `USE_SCHEMA`,
    /// `CREATE_SCHEMA`, `CREATE_TABLE`, `ALL_PRIVILEGES`, `MANAGE`.
    pub privileges: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogChangeRequest {
    pub workspace_id: i64,
    pub change: CatalogChange,
}

/// One change to a workspace's catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CatalogChange {
    CreateCatalog {
        catalog: CatalogRecord,
        if_not_exists: bool,
    },
    CreateSchema {
        schema: SchemaRecord,
        if_not_exists: bool,
    },
    /// Fails with `INVALID_PARAMETER_VALUE` when the schema still has tables and `cascade` is
    /// false; with `cascade`, drops its tables (definitions only) and their grants too.
    DropSchema {
        catalog: String,
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    /// `replace` overwrites an existing definition (`CREATE OR REPLACE TABLE`).
    CreateTable {
        table: TableRecord,
        if_not_exists: bool,
        replace: bool,
    },
    /// Drops the definition and the table's grants; the runtime deletes a managed table's files.
    DropTable {
        catalog: String,
        schema: String,
        name: String,
        if_exists: bool,
    },
    /// Adds and removes privileges. Every principal named in `add` must exist (a user or service
    /// principal assigned to the workspace, or a group of the workspace or account), else
    /// `INVALID_PARAMETER_VALUE` naming it, and nothing changes.
    UpdateGrants {
        securable_type: String,
        full_name: String,
        changes: Vec<GrantChange>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantChange {
    pub principal: String,
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogChangeResponse {
    /// The state version after the change.
    pub version: u64,
    /// Whether anything changed (`false` for `IF NOT EXISTS` / `IF EXISTS` no-ops).
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySources {
    /// A SHA-256 over the files' names and texts; the runtime reloads when it changes.
    pub version: String,
    /// (file name, text), sorted by name: the `.cedarschema` file and every `.cedar` file.
    pub files: Vec<(String, String)>,
}

/// Response header by which the runtime tells the gateway what a statement touched, for the
/// audit record: comma-separated `<Action> <full name>` pairs, e.g.
/// `SelectTable samples.tpch.lineitem, ModifyTable main.default.trips`. The gateway removes it
/// before the response leaves.
pub const TOUCHED_HEADER: &str = "x-lakeward-touched";
