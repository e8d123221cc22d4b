//! The runtime's internal API (`lakeward_common::data`): the catalog, SQL warehouses and the
//! policy sources. Every handler takes a [`RuntimeCaller`], so anyone else is told these routes
//! do not exist.
//!
//! The runtime validates what users ask for; this module keeps the store consistent whatever
//! it is sent: names lower-cased and well formed, a schema only in an existing catalog, a table
//! only in an existing schema, grants only of known privileges to principals that exist. A
//! refused change writes nothing (everything runs in one transaction), and a change that turns
//! out to be a no-op (`IF NOT EXISTS` on an existing object, revoking what was not granted)
//! is rolled back, so it does not bump the state version and wake every cache for nothing.

use super::extract::RuntimeCaller;
use super::AppState;
use crate::error::ControlError;
use crate::store::catalog::{self, CATALOG, SCHEMA, TABLE};
use crate::store::{permissions, principals, warehouses, workspaces, WriteTx};
use axum::extract::State;
use axum::Json;
use lakeward_common::data::{
    CatalogChange, CatalogChangeRequest, CatalogChangeResponse, CatalogSnapshot, GrantChange,
    NewWarehouse, PolicySources, WarehouseList, WarehouseRecord, WarehouseUpdate,
};
use lakeward_frame::server::{JsonBody, PathParams, QueryParams};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use std::path::Path;

/// The level a warehouse's creator is granted.
const CAN_MANAGE: &str = "CAN_MANAGE";

/// The Unity Catalog privileges the catalog stores, with the securable types each applies to
/// (a privilege granted on a container is inherited by what it contains).
const PRIVILEGES: &[(&str, &[&str])] = &[
    ("USE_CATALOG", &[CATALOG]),
    ("USE_SCHEMA", &[CATALOG, SCHEMA]),
    ("CREATE_SCHEMA", &[CATALOG]),
    ("CREATE_TABLE", &[CATALOG, SCHEMA]),
    ("SELECT", &[CATALOG, SCHEMA, TABLE]),
    ("MODIFY", &[CATALOG, SCHEMA, TABLE]),
    ("ALL_PRIVILEGES", &[CATALOG, SCHEMA, TABLE]),
    ("MANAGE", &[CATALOG, SCHEMA, TABLE]),
];

/// Text from a request, cut short for an error message.
fn shown(text: &str) -> String {
    text.chars().take(100).collect()
}

/// The required `workspace_id` query parameter.
fn workspace_param(query: &QueryParams) -> Result<i64, ControlError> {
    query
        .get_i64("workspace_id")?
        .ok_or_else(|| ControlError::InvalidParameter("`workspace_id` is required".into()))
}

async fn require_workspace(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<String, ControlError> {
    match workspaces::get(conn, workspace_id).await? {
        Some(ws) => Ok(ws.workspace_name),
        None => Err(ControlError::NotFound(format!(
            "workspace `{workspace_id}` does not exist"
        ))),
    }
}

/// A catalog, schema or table name, lower-cased. The dot is refused because it separates the
/// parts of a full name (`catalog.schema.table`), which grants are keyed by.
fn object_name(field: &str, name: &str) -> Result<String, ControlError> {
    let bad =
        |why: &str| ControlError::InvalidParameter(format!("`{field}`: `{}` {why}", shown(name)));
    if name.is_empty() {
        return Err(ControlError::InvalidParameter(format!(
            "`{field}` must not be empty"
        )));
    }
    if name.chars().count() > 255 {
        return Err(bad("is longer than 255 characters"));
    }
    if name.contains('.') || name.chars().any(char::is_control) {
        return Err(bad("must not contain `.` or control characters"));
    }
    Ok(name.to_lowercase())
}

fn owner(field: &str, owner: &str) -> Result<(), ControlError> {
    if owner.trim().is_empty() {
        Err(ControlError::InvalidParameter(format!(
            "`{field}` must not be empty"
        )))
    } else {
        Ok(())
    }
}

/// `GET /internal/v1/data/catalog?workspace_id=N`: the workspace's whole catalog, read in one
/// consistent transaction so that `version` covers exactly what is returned.
pub(crate) async fn catalog(
    State(state): State<AppState>,
    _runtime: RuntimeCaller,
    query: QueryParams,
) -> Result<Json<CatalogSnapshot>, ControlError> {
    let workspace_id = workspace_param(&query)?;
    let mut tx = state.store().begin_read().await?;
    let version = crate::store::read_version(&mut tx).await?;
    let workspace_name = require_workspace(&mut tx, workspace_id).await?;
    let snapshot = CatalogSnapshot {
        version,
        workspace_name,
        catalogs: catalog::catalogs(&mut tx, workspace_id).await?,
        schemas: catalog::schemas(&mut tx, workspace_id).await?,
        tables: catalog::tables(&mut tx, workspace_id).await?,
        grants: catalog::grants(&mut tx, workspace_id).await?,
    };
    tx.rollback().await?;
    Ok(Json(snapshot))
}

/// `POST /internal/v1/data/catalog/change`: one change, in one transaction.
pub(crate) async fn change_catalog(
    State(state): State<AppState>,
    _runtime: RuntimeCaller,
    JsonBody(req): JsonBody<CatalogChangeRequest>,
) -> Result<Json<CatalogChangeResponse>, ControlError> {
    let mut tx = state.store().begin_write().await?;
    require_workspace(tx.conn(), req.workspace_id).await?;
    let changed = apply(tx.conn(), req.workspace_id, req.change).await?;
    let version = finish(&state, tx, changed).await?;
    Ok(Json(CatalogChangeResponse { version, changed }))
}

/// Commits a write that changed something; rolls back one that did not (its version
/// increment included) and answers the current version.
async fn finish(state: &AppState, tx: WriteTx<'_>, changed: bool) -> Result<u64, ControlError> {
    if changed {
        Ok(tx.commit().await?)
    } else {
        tx.rollback().await?;
        Ok(state.store().version().await?)
    }
}

/// Applies one change; says whether anything changed.
async fn apply(
    conn: &mut AnyConnection,
    workspace_id: i64,
    change: CatalogChange,
) -> Result<bool, ControlError> {
    match change {
        CatalogChange::CreateCatalog {
            mut catalog,
            if_not_exists,
        } => {
            catalog.name = object_name("catalog.name", &catalog.name)?;
            owner("catalog.owner", &catalog.owner)?;
            if catalog::catalog_exists(conn, workspace_id, &catalog.name).await? {
                return already_exists(if_not_exists, "catalog", &catalog.name);
            }
            catalog::insert_catalog(conn, workspace_id, &catalog).await?;
            Ok(true)
        }
        CatalogChange::CreateSchema {
            mut schema,
            if_not_exists,
        } => {
            schema.catalog = object_name("schema.catalog", &schema.catalog)?;
            schema.name = object_name("schema.name", &schema.name)?;
            owner("schema.owner", &schema.owner)?;
            if !catalog::catalog_exists(conn, workspace_id, &schema.catalog).await? {
                return Err(missing("catalog", &schema.catalog));
            }
            if catalog::schema_exists(conn, workspace_id, &schema.catalog, &schema.name).await? {
                let full_name = format!("{}.{}", schema.catalog, schema.name);
                return already_exists(if_not_exists, "schema", &full_name);
            }
            catalog::insert_schema(conn, workspace_id, &schema).await?;
            Ok(true)
        }
        CatalogChange::DropSchema {
            catalog: catalog_name,
            name,
            if_exists,
            cascade,
        } => {
            let catalog_name = object_name("catalog", &catalog_name)?;
            let name = object_name("name", &name)?;
            let full_name = format!("{catalog_name}.{name}");
            if !catalog::schema_exists(conn, workspace_id, &catalog_name, &name).await? {
                return if if_exists {
                    Ok(false)
                } else {
                    Err(missing("schema", &full_name))
                };
            }
            if !cascade
                && catalog::count_tables(conn, workspace_id, &catalog_name, &name).await? > 0
            {
                return Err(ControlError::InvalidParameter(format!(
                    "schema `{}` is not empty: drop its tables first, or use CASCADE",
                    shown(&full_name)
                )));
            }
            catalog::delete_schema(conn, workspace_id, &catalog_name, &name).await?;
            Ok(true)
        }
        CatalogChange::CreateTable {
            mut table,
            if_not_exists,
            replace,
        } => {
            table.catalog = object_name("table.catalog", &table.catalog)?;
            table.schema = object_name("table.schema", &table.schema)?;
            table.name = object_name("table.name", &table.name)?;
            owner("table.owner", &table.owner)?;
            if !catalog::schema_exists(conn, workspace_id, &table.catalog, &table.schema).await? {
                let schema = format!("{}.{}", table.catalog, table.schema);
                return Err(missing("schema", &schema));
            }
            let exists = catalog::table_exists(
                conn,
                workspace_id,
                &table.catalog,
                &table.schema,
                &table.name,
            )
            .await?;
            if exists && replace {
                catalog::replace_table(conn, workspace_id, &table).await?;
                return Ok(true);
            }
            if exists {
                let full_name = format!("{}.{}.{}", table.catalog, table.schema, table.name);
                return already_exists(if_not_exists, "table", &full_name);
            }
            catalog::insert_table(conn, workspace_id, &table).await?;
            Ok(true)
        }
        CatalogChange::DropTable {
            catalog: catalog_name,
            schema,
            name,
            if_exists,
        } => {
            let catalog_name = object_name("catalog", &catalog_name)?;
            let schema = object_name("schema", &schema)?;
            let name = object_name("name", &name)?;
            if catalog::delete_table(conn, workspace_id, &catalog_name, &schema, &name).await? {
                Ok(true)
            } else if if_exists {
                Ok(false)
            } else {
                Err(missing("table", &format!("{catalog_name}.{schema}.{name}")))
            }
        }
        CatalogChange::UpdateGrants {
            securable_type,
            full_name,
            changes,
        } => update_grants(conn, workspace_id, &securable_type, &full_name, &changes).await,
    }
}

fn missing(what: &str, name: &str) -> ControlError {
    ControlError::NotFound(format!("{what} `{}` does not exist", shown(name)))
}

/// `Ok(false)` for `IF NOT EXISTS`, else 409.
fn already_exists(if_not_exists: bool, what: &str, name: &str) -> Result<bool, ControlError> {
    if if_not_exists {
        Ok(false)
    } else {
        Err(ControlError::AlreadyExists(format!(
            "{what} `{}` already exists",
            shown(name)
        )))
    }
}

/// A privilege name in its stored form (`use catalog` → `USE_CATALOG`), if it is one.
fn privilege(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    let canonical = name.trim().to_uppercase().replace(' ', "_");
    PRIVILEGES.iter().copied().find(|(p, _)| *p == canonical)
}

/// A change's privileges, checked: known names only, and (for grants) applicable to the
/// securable type.
fn privileges(
    names: &[String],
    securable_type: &str,
    check_applies: bool,
) -> Result<Vec<&'static str>, ControlError> {
    names
        .iter()
        .map(|name| {
            let (canonical, applies_to) = privilege(name).ok_or_else(|| {
                ControlError::InvalidParameter(format!(
                    "`{}` is not a privilege; expected one of {}",
                    shown(name),
                    PRIVILEGES
                        .iter()
                        .map(|(p, _)| *p)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if check_applies && !applies_to.contains(&securable_type) {
                return Err(ControlError::InvalidParameter(format!(
                    "privilege `{canonical}` does not apply to a {securable_type}"
                )));
            }
            Ok(canonical)
        })
        .collect()
}

/// The name a grant is stored under for `name`: a user's or service principal's `userName`
/// (matched ignoring case, as SCIM's `userName` is) when it is assigned to the workspace, else
/// the display name of a group of the workspace or, failing that, of the account. `None` when
/// there is no such principal.
async fn grantee(
    conn: &mut AnyConnection,
    workspace_id: i64,
    name: &str,
) -> Result<Option<String>, ControlError> {
    if let Some(principal) = principals::by_name_ignoring_case(conn, name).await? {
        let groups = principals::groups_of(conn, principal.id).await?;
        if principals::in_workspace(&groups, workspace_id) {
            return Ok(Some(principal.user_name));
        }
    }
    for scope in [Some(workspace_id), None] {
        if let Some(group) = principals::group_by_name(conn, scope, name).await? {
            return Ok(Some(group.display_name));
        }
    }
    Ok(None)
}

/// `UpdateGrants`: every change is checked before anything is written.
async fn update_grants(
    conn: &mut AnyConnection,
    workspace_id: i64,
    securable_type: &str,
    full_name: &str,
    changes: &[GrantChange],
) -> Result<bool, ControlError> {
    let securable_type = securable_type.trim().to_uppercase();
    let parts_expected = match securable_type.as_str() {
        CATALOG => 1,
        SCHEMA => 2,
        TABLE => 3,
        _ => {
            return Err(ControlError::InvalidParameter(format!(
                "`securable_type`: `{}` is not one of CATALOG, SCHEMA, TABLE",
                shown(&securable_type)
            )))
        }
    };
    let parts: Vec<&str> = full_name.split('.').collect();
    if parts.len() != parts_expected {
        return Err(ControlError::InvalidParameter(format!(
            "`full_name`: `{}` is not the name of a {securable_type}",
            shown(full_name)
        )));
    }
    let parts = parts
        .iter()
        .map(|part| object_name("full_name", part))
        .collect::<Result<Vec<_>, _>>()?;
    let full_name = parts.join(".");
    let exists = match parts.as_slice() {
        [c] => catalog::catalog_exists(conn, workspace_id, c).await?,
        [c, s] => catalog::schema_exists(conn, workspace_id, c, s).await?,
        [c, s, t] => catalog::table_exists(conn, workspace_id, c, s, t).await?,
        _ => false,
    };
    if !exists {
        return Err(missing(&securable_type.to_lowercase(), &full_name));
    }

    let mut plan = Vec::with_capacity(changes.len());
    for change in changes {
        let name = change.principal.trim();
        if name.is_empty() {
            return Err(ControlError::InvalidParameter(
                "`principal` must not be empty".into(),
            ));
        }
        let add = privileges(&change.add, &securable_type, true)?;
        let remove = privileges(&change.remove, &securable_type, false)?;
        let stored = grantee(conn, workspace_id, name).await?;
        let stored = match stored {
            Some(stored) => stored,
            None if add.is_empty() => name.to_owned(),
            None => {
                return Err(ControlError::InvalidParameter(format!(
                    "principal `{}` does not exist in this workspace",
                    shown(name)
                )))
            }
        };
        plan.push((stored, add, remove));
    }

    let mut changed = false;
    for (principal, add, remove) in plan {
        for p in add {
            changed |= catalog::add_grant(
                conn,
                workspace_id,
                &securable_type,
                &full_name,
                &principal,
                p,
            )
            .await?;
        }
        for p in remove {
            changed |= catalog::remove_grant(
                conn,
                workspace_id,
                &securable_type,
                &full_name,
                &principal,
                p,
            )
            .await?;
        }
    }
    Ok(changed)
}

/// `GET /internal/v1/data/warehouses?workspace_id=N`: the workspace's warehouses, deleted ones
/// left out.
pub(crate) async fn list_warehouses(
    State(state): State<AppState>,
    _runtime: RuntimeCaller,
    query: QueryParams,
) -> Result<Json<WarehouseList>, ControlError> {
    let workspace_id = workspace_param(&query)?;
    let mut tx = state.store().begin_read().await?;
    require_workspace(&mut tx, workspace_id).await?;
    let list = warehouses::list(&mut tx, workspace_id).await?;
    tx.rollback().await?;
    Ok(Json(WarehouseList { warehouses: list }))
}

/// `POST /internal/v1/data/warehouses`: a new warehouse with a fresh id, its creator granted
/// `CAN_MANAGE` in the same transaction.
pub(crate) async fn create_warehouse(
    State(state): State<AppState>,
    _runtime: RuntimeCaller,
    JsonBody(new): JsonBody<NewWarehouse>,
) -> Result<Json<WarehouseRecord>, ControlError> {
    let unknown_creator = || {
        ControlError::InvalidParameter(format!(
            "`creator_id`: principal `{}` does not exist",
            shown(&new.creator_id)
        ))
    };
    let creator_id: i64 = new
        .creator_id
        .trim()
        .parse()
        .map_err(|_| unknown_creator())?;
    if new.creator_name.trim().is_empty() {
        return Err(ControlError::InvalidParameter(
            "`creator_name` must not be empty".into(),
        ));
    }
    let mut tx = state.store().begin_write().await?;
    require_workspace(tx.conn(), new.workspace_id).await?;
    if principals::get(tx.conn(), creator_id).await?.is_none() {
        return Err(unknown_creator());
    }
    let mut record = WarehouseRecord {
        id: warehouses::new_id(),
        workspace_id: new.workspace_id,
        spec: new.spec,
        state: new.state,
        creator_name: new.creator_name,
        last_activity_ms: new.last_activity_ms,
        acl: Vec::new(),
    };
    warehouses::insert(tx.conn(), &record).await?;
    permissions::grant(
        tx.conn(),
        record.workspace_id,
        &warehouses::object_key(&record.id),
        creator_id,
        CAN_MANAGE,
    )
    .await?;
    record = warehouses::get(tx.conn(), record.workspace_id, &record.id)
        .await?
        .ok_or_else(|| ControlError::Internal("a warehouse vanished while created".into()))?;
    tx.commit().await?;
    Ok(Json(record))
}

fn no_warehouse(id: &str) -> ControlError {
    ControlError::NotFound(format!("warehouse `{}` does not exist", shown(id)))
}

/// `GET /internal/v1/data/warehouses/{id}?workspace_id=N`: the warehouse, also when
/// `DELETED`.
pub(crate) async fn get_warehouse(
    State(state): State<AppState>,
    _runtime: RuntimeCaller,
    params: PathParams,
    query: QueryParams,
) -> Result<Json<WarehouseRecord>, ControlError> {
    let id = params.get("warehouse_id")?;
    let workspace_id = workspace_param(&query)?;
    if !warehouses::is_id(&id) {
        return Err(no_warehouse(&id));
    }
    let mut tx = state.store().begin_read().await?;
    let record = warehouses::get(&mut tx, workspace_id, &id).await?;
    tx.rollback().await?;
    record.map(Json).ok_or_else(|| no_warehouse(&id))
}

/// `PUT /internal/v1/data/warehouses/{id}`: replaces the fields present; with `expect_state`,
/// only while the stored state is that one (409 `ABORTED` otherwise). Writes are serialized
/// (see `store`), so the state read here is the one the update replaces.
pub(crate) async fn update_warehouse(
    State(state): State<AppState>,
    _runtime: RuntimeCaller,
    params: PathParams,
    JsonBody(update): JsonBody<WarehouseUpdate>,
) -> Result<Json<WarehouseRecord>, ControlError> {
    let id = params.get("warehouse_id")?;
    if !warehouses::is_id(&id) {
        return Err(no_warehouse(&id));
    }
    let mut tx = state.store().begin_write().await?;
    let current = warehouses::get(tx.conn(), update.workspace_id, &id)
        .await?
        .ok_or_else(|| no_warehouse(&id))?;
    if let Some(expected) = update.expect_state {
        if current.state != expected {
            return Err(ControlError::Aborted(format!(
                "warehouse `{id}` is {}, not {}",
                warehouses::state_text(current.state),
                warehouses::state_text(expected)
            )));
        }
    }
    let mut record = current.clone();
    if let Some(spec) = update.spec {
        record.spec = spec;
    }
    if let Some(new_state) = update.state {
        record.state = new_state;
    }
    if let Some(ms) = update.last_activity_ms {
        record.last_activity_ms = ms;
    }
    if record == current {
        finish(&state, tx, false).await?;
    } else {
        warehouses::update(tx.conn(), &record).await?;
        finish(&state, tx, true).await?;
    }
    Ok(Json(record))
}

/// `GET /internal/v1/data/policies`: the gateway's schema and policy files, as it reads them
/// (the directory's `*.cedarschema` and `*.cedar` files, not recursing), with a digest the
/// runtime compares to decide whether to reload.
pub(crate) async fn policies(
    State(state): State<AppState>,
    _runtime: RuntimeCaller,
) -> Result<Json<PolicySources>, ControlError> {
    let Some(dir) = state.config().policy_dir.clone() else {
        return Err(ControlError::NotFound(
            "this control plane serves no policy directory".into(),
        ));
    };
    let files = tokio::task::spawn_blocking(move || read_policy_files(&dir))
        .await
        .map_err(|e| ControlError::Internal(format!("reading the policy directory: {e}")))?
        .map_err(|e| ControlError::Internal(format!("reading the policy directory: {e}")))?;
    Ok(Json(PolicySources {
        version: policy_version(&files),
        files,
    }))
}

/// The `(file name, text)` of every `*.cedarschema` and `*.cedar` regular file of `dir`,
/// sorted by name.
fn read_policy_files(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let wanted = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("cedarschema" | "cedar")
        );
        if !wanted || !path.is_file() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        files.push((name.to_owned(), std::fs::read_to_string(&path)?));
    }
    files.sort();
    Ok(files)
}

/// Hex SHA-256 over each file's name and text, each preceded by its length so that no two
/// different sets hash alike.
fn policy_version(files: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (name, text) in files {
        for part in [name, text] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_names() {
        assert_eq!(privilege("select").map(|p| p.0), Some("SELECT"));
        assert_eq!(privilege("USE CATALOG").map(|p| p.0), Some("USE_CATALOG"));
        assert!(privilege("READ_FILES").is_none());
        let err = privileges(&["USE_CATALOG".into()], TABLE, true).unwrap_err();
        assert!(err.to_string().contains("does not apply"), "{err}");
        // Revoking is not checked for applicability: it can only remove what exists.
        assert!(privileges(&["USE_CATALOG".into()], TABLE, false).is_ok());
    }

    #[test]
    fn object_names_are_lower_cased_and_dotless() {
        assert_eq!(object_name("f", "Main").unwrap(), "main");
        assert!(object_name("f", "a.b").is_err());
        assert!(object_name("f", "").is_err());
        assert!(object_name("f", "a\nb").is_err());
    }

    #[test]
    fn policy_version_separates_names_from_texts() {
        let a = vec![("ab".to_owned(), "c".to_owned())];
        let b = vec![("a".to_owned(), "bc".to_owned())];
        assert_ne!(policy_version(&a), policy_version(&b));
        assert_eq!(policy_version(&a), policy_version(&a.clone()));
        assert_eq!(policy_version(&a).len(), 64);
    }
}
