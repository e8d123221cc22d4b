//! SQL warehouses: the runtime's definitions and life-cycle states, stored for it. Their
//! permissions are direct grants in `object_permissions` under [`object_key`].

use super::permissions;
use lakeward_common::data::{AclEntry, WarehouseRecord, WarehouseState};
use rand::Rng;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

/// The `object_permissions` key of a warehouse's grants.
pub(crate) fn object_key(id: &str) -> String {
    format!("warehouses/{id}")
}

/// A new warehouse id: 16 lowercase hex digits, the shape of Databricks' warehouse ids.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill(&mut bytes);
    hex::encode(bytes)
}

/// Whether `id` has the shape [`new_id`] gives; anything else cannot name a warehouse.
pub(crate) fn is_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) fn state_text(state: WarehouseState) -> &'static str {
    match state {
        WarehouseState::Starting => "STARTING",
        WarehouseState::Running => "RUNNING",
        WarehouseState::Stopping => "STOPPING",
        WarehouseState::Stopped => "STOPPED",
        WarehouseState::Deleting => "DELETING",
        WarehouseState::Deleted => "DELETED",
    }
}

fn parse_state(text: &str) -> Result<WarehouseState, sqlx::Error> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|e| sqlx::Error::Decode(format!("warehouse state `{text}`: {e}").into()))
}

const COLUMNS: &str = "id, workspace_id, spec, state, creator_name, last_activity_ms";

/// A row, without its ACL.
fn from_row(row: &AnyRow) -> Result<WarehouseRecord, sqlx::Error> {
    let spec: String = row.try_get("spec")?;
    let state: String = row.try_get("state")?;
    Ok(WarehouseRecord {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| sqlx::Error::Decode(format!("warehouse spec: {e}").into()))?,
        state: parse_state(&state)?,
        creator_name: row.try_get("creator_name")?,
        last_activity_ms: row.try_get("last_activity_ms")?,
        acl: Vec::new(),
    })
}

async fn with_acl(
    conn: &mut AnyConnection,
    mut record: WarehouseRecord,
) -> Result<WarehouseRecord, sqlx::Error> {
    record.acl = permissions::grants(conn, record.workspace_id, &object_key(&record.id))
        .await?
        .into_iter()
        .map(|g| AclEntry {
            grantee_id: g.grantee_id.to_string(),
            permission_level: g.permission_level,
        })
        .collect();
    Ok(record)
}

/// The warehouse `id` of the workspace, whatever its state, with its ACL.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    workspace_id: i64,
    id: &str,
) -> Result<Option<WarehouseRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM warehouses WHERE workspace_id = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row.as_ref().map(from_row).transpose()? {
        Some(record) => Ok(Some(with_acl(conn, record).await?)),
        None => Ok(None),
    }
}

/// The workspace's warehouses but the deleted ones, oldest first, with their ACLs.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<Vec<WarehouseRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM warehouses WHERE workspace_id = $1 AND state <> $2
         ORDER BY created_at, id"
    );
    let rows = sqlx::query(&sql)
        .bind(workspace_id)
        .bind(state_text(WarehouseState::Deleted))
        .fetch_all(&mut *conn)
        .await?;
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        records.push(with_acl(conn, from_row(row)?).await?);
    }
    Ok(records)
}

/// Adds a warehouse (its `acl` is not read: grants are written separately).
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    record: &WarehouseRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO warehouses (id, workspace_id, spec, state, creator_name, last_activity_ms, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&record.id)
    .bind(record.workspace_id)
    .bind(record.spec.to_string())
    .bind(state_text(record.state))
    .bind(&record.creator_name)
    .bind(record.last_activity_ms)
    .bind(super::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a warehouse's spec, state and last activity.
pub(crate) async fn update(
    conn: &mut AnyConnection,
    record: &WarehouseRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE warehouses SET spec = $1, state = $2, last_activity_ms = $3
         WHERE workspace_id = $4 AND id = $5",
    )
    .bind(record.spec.to_string())
    .bind(state_text(record.state))
    .bind(record.last_activity_ms)
    .bind(record.workspace_id)
    .bind(&record.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes every warehouse of a workspace (which is being deleted; its grants go with the
/// workspace's).
pub(crate) async fn delete_workspace(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM warehouses WHERE workspace_id = $1")
        .bind(workspace_id)
        .execute(conn)
        .await?;
    Ok(())
}
