//! Workspaces. Deleting one deletes everything that belongs to it, in the same transaction.

use super::directory::Group;
use super::ip_lists::Scope;
use super::permissions;
use super::principals;
use lakeward_common::internal::{ADMINS_GROUP, USERS_GROUP};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

/// The only status Lakeward workspaces have: creation is immediate.
pub(crate) const RUNNING: &str = "RUNNING";

/// A workspace row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Workspace {
    pub(crate) workspace_id: i64,
    pub(crate) workspace_name: String,
    pub(crate) deployment_name: String,
    pub(crate) workspace_status: String,
    /// Descriptive fields Lakeward keeps and echoes but does not act on (`aws_region`,
    /// `pricing_tier`, `custom_tags`, ...).
    pub(crate) attributes: Map<String, Value>,
    /// Milliseconds since the epoch.
    pub(crate) creation_time: i64,
}

fn from_row(row: &AnyRow) -> Result<Workspace, sqlx::Error> {
    let attributes: String = row.try_get("attributes")?;
    Ok(Workspace {
        workspace_id: row.try_get("workspace_id")?,
        workspace_name: row.try_get("workspace_name")?,
        deployment_name: row.try_get("deployment_name")?,
        workspace_status: row.try_get("workspace_status")?,
        // Written by us from a `Map`, so it parses; an unreadable value degrades to empty.
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        creation_time: row.try_get("creation_time")?,
    })
}

const COLUMNS: &str =
    "workspace_id, workspace_name, deployment_name, workspace_status, attributes, creation_time";

/// The workspace with this id.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<Option<Workspace>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM workspaces WHERE workspace_id = $1");
    let row = sqlx::query(&sql)
        .bind(workspace_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every workspace, oldest first.
pub(crate) async fn list(conn: &mut AnyConnection) -> Result<Vec<Workspace>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM workspaces ORDER BY creation_time, workspace_id");
    let rows = sqlx::query(&sql).fetch_all(conn).await?;
    rows.iter().map(from_row).collect()
}

/// Whether a workspace already uses this deployment name.
pub(crate) async fn deployment_name_taken(
    conn: &mut AnyConnection,
    deployment_name: &str,
) -> Result<bool, sqlx::Error> {
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM workspaces WHERE deployment_name = $1")
            .bind(deployment_name)
            .fetch_one(conn)
            .await?;
    Ok(count > 0)
}

/// Adds a workspace with its `admins` and `users` groups, makes `members` members of both,
/// and grants `users` `CAN_USE` on `authorization/tokens` (every member may use tokens until
/// an admin narrows it, see `api::permissions`).
pub(crate) async fn create(
    conn: &mut AnyConnection,
    ws: &Workspace,
    members: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO workspaces (workspace_id, workspace_name, deployment_name, workspace_status, attributes, creation_time)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ws.workspace_id)
    .bind(&ws.workspace_name)
    .bind(&ws.deployment_name)
    .bind(&ws.workspace_status)
    .bind(Value::Object(ws.attributes.clone()).to_string())
    .bind(ws.creation_time)
    .execute(&mut *conn)
    .await?;
    for name in [ADMINS_GROUP, USERS_GROUP] {
        let group = Group {
            id: super::new_numeric_id(),
            workspace_id: Some(ws.workspace_id),
            display_name: name.to_owned(),
        };
        principals::insert_group(conn, &group).await?;
        for member in members {
            principals::add_member(conn, group.id, *member).await?;
        }
        if name == USERS_GROUP {
            permissions::grant(
                conn,
                ws.workspace_id,
                permissions::TOKENS_OBJECT,
                group.id,
                permissions::CAN_USE,
            )
            .await?;
        }
    }
    Ok(())
}

/// Writes a workspace's name and attributes (its id, deployment name and creation time are
/// fixed at creation).
pub(crate) async fn update(conn: &mut AnyConnection, ws: &Workspace) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE workspaces SET workspace_name = $1, attributes = $2, workspace_status = $3 WHERE workspace_id = $4",
    )
    .bind(&ws.workspace_name)
    .bind(Value::Object(ws.attributes.clone()).to_string())
    .bind(&ws.workspace_status)
    .bind(ws.workspace_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether deleting the workspace would delete the token `token_id`.
pub(crate) async fn owns_token(
    conn: &mut AnyConnection,
    workspace_id: i64,
    token_id: &str,
) -> Result<bool, sqlx::Error> {
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE workspace_id = $1 AND token_id = $2")
            .bind(workspace_id)
            .bind(token_id)
            .fetch_one(conn)
            .await?;
    Ok(count > 0)
}

/// Deletes the workspace and all it owns: tokens, IP access lists, workspace-conf, permission
/// grants, warehouses, the catalog, groups and their memberships. Principals stay (they
/// belong to the account).
pub(crate) async fn delete(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<bool, sqlx::Error> {
    let scope = principals::scope_key(Some(workspace_id));
    sqlx::query("DELETE FROM tokens WHERE workspace_id = $1")
        .bind(workspace_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM ip_access_lists WHERE scope = $1")
        .bind(Scope::Workspace(workspace_id).key())
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM workspace_conf WHERE workspace_id = $1")
        .bind(workspace_id)
        .execute(&mut *conn)
        .await?;
    permissions::delete_workspace(conn, workspace_id).await?;
    super::warehouses::delete_workspace(conn, workspace_id).await?;
    super::catalog::delete_workspace(conn, workspace_id).await?;
    sqlx::query(
        "DELETE FROM group_members WHERE group_id IN (SELECT id FROM scim_groups WHERE scope = $1)",
    )
    .bind(&scope)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM scim_groups WHERE scope = $1")
        .bind(&scope)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM workspaces WHERE workspace_id = $1")
        .bind(workspace_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
