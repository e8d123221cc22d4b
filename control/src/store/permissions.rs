//! Direct permission grants on workspace objects: `authorization/tokens` (who may use personal
//! access tokens, whose only grantable level is `CAN_USE`) and `warehouses/<id>` (SQL
//! warehouses). Workspace admins' `CAN_MANAGE` is implicit and never stored.

use super::directory::Group;
use lakeward_common::internal::{ADMINS_GROUP, USERS_GROUP};
use sqlx::AnyConnection;
use sqlx::Row;

/// The object key of token usage permissions.
pub(crate) const TOKENS_OBJECT: &str = "authorization/tokens";
/// The permission to create and use personal access tokens.
pub(crate) const CAN_USE: &str = "CAN_USE";

/// One direct grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    /// A principal's or a group's id.
    pub(crate) grantee_id: i64,
    pub(crate) permission_level: String,
}

/// The direct grants on an object of a workspace.
pub(crate) async fn grants(
    conn: &mut AnyConnection,
    workspace_id: i64,
    object_key: &str,
) -> Result<Vec<Grant>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT grantee_id, permission_level FROM object_permissions
         WHERE workspace_id = $1 AND object_key = $2 ORDER BY grantee_id",
    )
    .bind(workspace_id)
    .bind(object_key)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Grant {
                grantee_id: row.try_get("grantee_id")?,
                permission_level: row.try_get("permission_level")?,
            })
        })
        .collect()
}

/// Grants `level` to `grantee_id`, replacing any level it had on the object.
pub(crate) async fn grant(
    conn: &mut AnyConnection,
    workspace_id: i64,
    object_key: &str,
    grantee_id: i64,
    level: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO object_permissions (workspace_id, object_key, grantee_id, permission_level)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (workspace_id, object_key, grantee_id)
         DO UPDATE SET permission_level = excluded.permission_level",
    )
    .bind(workspace_id)
    .bind(object_key)
    .bind(grantee_id)
    .bind(level)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes the direct grant of `grantee_id` on the object, if any.
pub(crate) async fn revoke(
    conn: &mut AnyConnection,
    workspace_id: i64,
    object_key: &str,
    grantee_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM object_permissions
         WHERE workspace_id = $1 AND object_key = $2 AND grantee_id = $3",
    )
    .bind(workspace_id)
    .bind(object_key)
    .bind(grantee_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes every direct grant on the object.
pub(crate) async fn clear(
    conn: &mut AnyConnection,
    workspace_id: i64,
    object_key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM object_permissions WHERE workspace_id = $1 AND object_key = $2")
        .bind(workspace_id)
        .bind(object_key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes every grant to `grantee_id`: in one workspace (a principal leaving it), or in all
/// (a deleted principal or group).
pub(crate) async fn revoke_grantee(
    conn: &mut AnyConnection,
    grantee_id: i64,
    workspace_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    match workspace_id {
        Some(workspace_id) => {
            sqlx::query(
                "DELETE FROM object_permissions WHERE grantee_id = $1 AND workspace_id = $2",
            )
            .bind(grantee_id)
            .bind(workspace_id)
            .execute(conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM object_permissions WHERE grantee_id = $1")
                .bind(grantee_id)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// Removes every grant of a workspace (which is being deleted).
pub(crate) async fn delete_workspace(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM object_permissions WHERE workspace_id = $1")
        .bind(workspace_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The workspaces in which the principal may create and use personal access tokens, in
/// order: those it administers, and those it is a member of where it holds `CAN_USE` on
/// `authorization/tokens` directly or through a group. `groups` are its groups
/// ([`super::principals::groups_of`]).
pub(crate) async fn token_use_workspaces(
    conn: &mut AnyConnection,
    principal_id: i64,
    groups: &[Group],
) -> Result<Vec<i64>, sqlx::Error> {
    let in_group = |workspace_id: i64, name: &str| {
        groups
            .iter()
            .any(|g| g.workspace_id == Some(workspace_id) && g.display_name == name)
    };
    let granted: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT workspace_id FROM object_permissions
         WHERE object_key = $1 AND permission_level = $2 AND (grantee_id = $3
            OR grantee_id IN (SELECT group_id FROM group_members WHERE principal_id = $3))",
    )
    .bind(TOKENS_OBJECT)
    .bind(CAN_USE)
    .bind(principal_id)
    .fetch_all(conn)
    .await?;
    let mut workspaces: Vec<i64> = groups
        .iter()
        .filter_map(|g| g.workspace_id)
        .filter(|ws| {
            in_group(*ws, ADMINS_GROUP) || (in_group(*ws, USERS_GROUP) && granted.contains(ws))
        })
        .collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    Ok(workspaces)
}
