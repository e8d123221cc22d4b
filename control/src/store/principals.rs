//! Users, service principals, groups and memberships.

use super::directory::{Group, Principal};
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::internal::PrincipalRecord;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

/// Whether `groups` (a principal's, from [`groups_of`]) make it a member of the workspace: it
/// is in the workspace's `users` or `admins` group.
pub(crate) fn in_workspace(groups: &[Group], workspace_id: i64) -> bool {
    groups.iter().any(|g| {
        g.workspace_id == Some(workspace_id)
            && (g.display_name == lakeward_common::internal::USERS_GROUP
                || g.display_name == lakeward_common::internal::ADMINS_GROUP)
    })
}

/// The text form of a group's scope, unique together with its name.
pub(crate) fn scope_key(workspace_id: Option<i64>) -> String {
    match workspace_id {
        Some(id) => format!("ws:{id}"),
        None => "account".to_owned(),
    }
}

fn kind_text(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::ServicePrincipal => "service_principal",
        _ => "user",
    }
}

const PRINCIPAL_COLUMNS: &str = "id, kind, user_name, display_name, active, application_id";

fn principal_from_row(row: &AnyRow) -> Result<Principal, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    Ok(Principal {
        id: row.try_get("id")?,
        kind: if kind == "service_principal" {
            PrincipalKind::ServicePrincipal
        } else {
            PrincipalKind::User
        },
        user_name: row.try_get("user_name")?,
        display_name: row.try_get("display_name")?,
        active: row.try_get::<i64, _>("active")? != 0,
        application_id: row.try_get("application_id")?,
    })
}

/// The principal with this id.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<Principal>, sqlx::Error> {
    let sql = format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(principal_from_row).transpose()
}

/// The principal whose `userName` (or, for a service principal, application id) is `name`.
pub(crate) async fn by_name(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<Principal>, sqlx::Error> {
    let sql = format!(
        "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE user_name = $1 OR application_id = $1"
    );
    let row = sqlx::query(&sql).bind(name).fetch_optional(conn).await?;
    row.as_ref().map(principal_from_row).transpose()
}

/// The principal whose `userName` (or application id) is `name` ignoring (ASCII) case: SCIM's
/// `userName` is not case-exact, so names that differ only in case conflict.
pub(crate) async fn by_name_ignoring_case(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<Principal>, sqlx::Error> {
    let sql = format!(
        "SELECT {PRINCIPAL_COLUMNS} FROM principals
         WHERE LOWER(user_name) = LOWER($1) OR LOWER(application_id) = LOWER($1)
         ORDER BY id"
    );
    let row = sqlx::query(&sql).bind(name).fetch_optional(conn).await?;
    row.as_ref().map(principal_from_row).transpose()
}

/// The service principal with this application id.
pub(crate) async fn service_principal(
    conn: &mut AnyConnection,
    application_id: &str,
) -> Result<Option<Principal>, sqlx::Error> {
    let sql = format!(
        "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE application_id = $1 AND kind = 'service_principal'"
    );
    let row = sqlx::query(&sql)
        .bind(application_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(principal_from_row).transpose()
}

/// Adds a principal.
pub(crate) async fn insert(conn: &mut AnyConnection, p: &Principal) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO principals (id, kind, user_name, display_name, active, application_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(p.id)
    .bind(kind_text(p.kind))
    .bind(&p.user_name)
    .bind(&p.display_name)
    .bind(super::flag(p.active))
    .bind(&p.application_id)
    .bind(super::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Every group the principal is a direct member of, in every workspace and the account.
pub(crate) async fn groups_of(
    conn: &mut AnyConnection,
    principal_id: i64,
) -> Result<Vec<Group>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT g.id, g.workspace_id, g.display_name FROM scim_groups g
         JOIN group_members m ON m.group_id = g.id
         WHERE m.principal_id = $1 ORDER BY g.id",
    )
    .bind(principal_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(group_from_row).collect()
}

fn group_from_row(row: &AnyRow) -> Result<Group, sqlx::Error> {
    Ok(Group {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        display_name: row.try_get("display_name")?,
    })
}

/// The group named `name` in a workspace (or, with `None`, at account level).
pub(crate) async fn group_by_name(
    conn: &mut AnyConnection,
    workspace_id: Option<i64>,
    name: &str,
) -> Result<Option<Group>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, workspace_id, display_name FROM scim_groups WHERE scope = $1 AND display_name = $2",
    )
    .bind(scope_key(workspace_id))
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(group_from_row).transpose()
}

/// Adds a group.
pub(crate) async fn insert_group(conn: &mut AnyConnection, g: &Group) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO scim_groups (id, workspace_id, scope, display_name) VALUES ($1, $2, $3, $4)",
    )
    .bind(g.id)
    .bind(g.workspace_id)
    .bind(scope_key(g.workspace_id))
    .bind(&g.display_name)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes `principal_id` a direct member of `group_id` (nothing happens if it already is).
pub(crate) async fn add_member(
    conn: &mut AnyConnection,
    group_id: i64,
    principal_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO group_members (group_id, principal_id) VALUES ($1, $2)
         ON CONFLICT (group_id, principal_id) DO NOTHING",
    )
    .bind(group_id)
    .bind(principal_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The principal with all its groups, as the gateway receives it.
pub(crate) async fn record(
    conn: &mut AnyConnection,
    principal: &Principal,
) -> Result<PrincipalRecord, sqlx::Error> {
    let groups = groups_of(conn, principal.id).await?;
    let token_use_workspaces =
        super::permissions::token_use_workspaces(conn, principal.id, &groups).await?;
    Ok(PrincipalRecord {
        id: principal.id.to_string(),
        kind: principal.kind,
        user_name: principal.user_name.clone(),
        display_name: principal.display_name.clone(),
        active: principal.active,
        token_use_workspaces,
        groups: groups.iter().map(Group::record).collect(),
    })
}

/// The principals of `kind` that are members of the workspace (of its `users` or `admins`
/// group), by `userName`.
pub(crate) async fn workspace_members(
    conn: &mut AnyConnection,
    workspace_id: i64,
    kind: PrincipalKind,
) -> Result<Vec<Principal>, sqlx::Error> {
    let sql = format!(
        "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE kind = $1 AND id IN (
            SELECT m.principal_id FROM group_members m JOIN scim_groups g ON g.id = m.group_id
            WHERE g.scope = $2 AND (g.display_name = $3 OR g.display_name = $4))
         ORDER BY user_name"
    );
    let rows = sqlx::query(&sql)
        .bind(kind_text(kind))
        .bind(scope_key(Some(workspace_id)))
        .bind(lakeward_common::internal::USERS_GROUP)
        .bind(lakeward_common::internal::ADMINS_GROUP)
        .fetch_all(conn)
        .await?;
    rows.iter().map(principal_from_row).collect()
}

/// Every principal of `kind` in the account, by `userName`.
pub(crate) async fn all_of_kind(
    conn: &mut AnyConnection,
    kind: PrincipalKind,
) -> Result<Vec<Principal>, sqlx::Error> {
    let sql =
        format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE kind = $1 ORDER BY user_name");
    let rows = sqlx::query(&sql)
        .bind(kind_text(kind))
        .fetch_all(conn)
        .await?;
    rows.iter().map(principal_from_row).collect()
}

/// Writes a principal's name, display name and active flag.
pub(crate) async fn update(conn: &mut AnyConnection, p: &Principal) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE principals SET user_name = $1, display_name = $2, active = $3 WHERE id = $4",
    )
    .bind(&p.user_name)
    .bind(&p.display_name)
    .bind(super::flag(p.active))
    .bind(p.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes the principal from every group of the workspace and deletes its tokens and
/// permission grants there; the principal itself stays in the account.
pub(crate) async fn remove_from_workspace(
    conn: &mut AnyConnection,
    workspace_id: i64,
    principal_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM group_members WHERE principal_id = $1
           AND group_id IN (SELECT id FROM scim_groups WHERE scope = $2)",
    )
    .bind(principal_id)
    .bind(scope_key(Some(workspace_id)))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM tokens WHERE workspace_id = $1 AND owner_id = $2")
        .bind(workspace_id)
        .bind(principal_id)
        .execute(&mut *conn)
        .await?;
    super::permissions::revoke_grantee(conn, principal_id, Some(workspace_id)).await
}

/// Deletes the principal from the account: its memberships, tokens and grants everywhere, and
/// the principal itself.
pub(crate) async fn delete(conn: &mut AnyConnection, principal_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM group_members WHERE principal_id = $1")
        .bind(principal_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM tokens WHERE owner_id = $1")
        .bind(principal_id)
        .execute(&mut *conn)
        .await?;
    super::permissions::revoke_grantee(conn, principal_id, None).await?;
    sqlx::query("DELETE FROM principals WHERE id = $1")
        .bind(principal_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The groups of one scope, by name.
pub(crate) async fn groups_in_scope(
    conn: &mut AnyConnection,
    workspace_id: Option<i64>,
) -> Result<Vec<Group>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, workspace_id, display_name FROM scim_groups WHERE scope = $1 ORDER BY display_name",
    )
    .bind(scope_key(workspace_id))
    .fetch_all(conn)
    .await?;
    rows.iter().map(group_from_row).collect()
}

/// The group with this id.
pub(crate) async fn group(conn: &mut AnyConnection, id: i64) -> Result<Option<Group>, sqlx::Error> {
    let row = sqlx::query("SELECT id, workspace_id, display_name FROM scim_groups WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(group_from_row).transpose()
}

/// The direct members of a group, by `userName`.
pub(crate) async fn members(
    conn: &mut AnyConnection,
    group_id: i64,
) -> Result<Vec<Principal>, sqlx::Error> {
    let sql = format!(
        "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id IN
            (SELECT principal_id FROM group_members WHERE group_id = $1)
         ORDER BY user_name"
    );
    let rows = sqlx::query(&sql).bind(group_id).fetch_all(conn).await?;
    rows.iter().map(principal_from_row).collect()
}

/// Ends a membership (nothing happens if there was none).
pub(crate) async fn remove_member(
    conn: &mut AnyConnection,
    group_id: i64,
    principal_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND principal_id = $2")
        .bind(group_id)
        .bind(principal_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Renames a group.
pub(crate) async fn rename_group(
    conn: &mut AnyConnection,
    group_id: i64,
    display_name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE scim_groups SET display_name = $1 WHERE id = $2")
        .bind(display_name)
        .bind(group_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes a group, its memberships and the permissions granted to it.
pub(crate) async fn delete_group(
    conn: &mut AnyConnection,
    group_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM group_members WHERE group_id = $1")
        .bind(group_id)
        .execute(&mut *conn)
        .await?;
    super::permissions::revoke_grantee(conn, group_id, None).await?;
    sqlx::query("DELETE FROM scim_groups WHERE id = $1")
        .bind(group_id)
        .execute(conn)
        .await?;
    Ok(())
}
