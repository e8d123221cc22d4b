//! `.../scim/v2/Groups[/{id}]`: a workspace's own groups, or the account's groups
//! (`workspace_id` NULL; the account `admins` group's members are the account admins).
//!
//! Members are users and service principals of the account (nested groups are not
//! supported: 400); adding one to a workspace's `users` group assigns it to the workspace.
//! The built-in groups (a workspace's `admins` and `users`, the account's `admins`) cannot be
//! renamed or deleted (400 `INVALID_STATE`), and callers cannot remove themselves from an
//! `admins` group (400 `INVALID_STATE`), which would take their admin rights away in the
//! middle of what they are doing. `PUT` replaces `displayName` and `members` (absent: none).
//! Deleting a group also deletes the permissions granted to it.

use super::{
    filter, list_response, parse_id, patch_text, reference_ids, required_text, steps, Directory,
    OpKind, PatchRequest, ScimCaller,
};
use crate::api::AppState;
use crate::error::ControlError;
use crate::store::directory::Group;
use crate::store::new_numeric_id;
use crate::store::principals;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::internal::ADMINS_GROUP;
use lakeward_frame::server::{JsonBody, PathParams, QueryParams};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

/// The schema of groups.
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// A `POST` or `PUT` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GroupRequest {
    display_name: String,
    members: Option<Value>,
}

fn not_found(id: i64, directory: Directory) -> ControlError {
    ControlError::NotFound(format!(
        "group `{id}` does not exist {}",
        directory.location()
    ))
}

fn validate_name(name: &str) -> Result<String, ControlError> {
    let name = required_text("displayName", name)?;
    if name.chars().count() > 256 {
        return Err(ControlError::InvalidParameter(
            "`displayName` must be 1 to 256 characters".into(),
        ));
    }
    Ok(name)
}

/// The group as SCIM shows it, with its members.
async fn group_json(
    conn: &mut AnyConnection,
    group: &Group,
    directory: Directory,
) -> Result<Value, ControlError> {
    let members: Vec<Value> = principals::members(conn, group.id)
        .await?
        .iter()
        .map(|p| {
            let kind = match p.kind {
                PrincipalKind::ServicePrincipal => "ServicePrincipals",
                _ => "Users",
            };
            json!({
                "value": p.id.to_string(),
                "display": p.display_name,
                "$ref": format!("{kind}/{}", p.id),
            })
        })
        .collect();
    let resource_type = match directory {
        Directory::Workspace(_) => "WorkspaceGroup",
        Directory::Account => "Group",
    };
    Ok(json!({
        "id": group.id.to_string(),
        "displayName": group.display_name,
        "members": members,
        "entitlements": [],
        "groups": [],
        "roles": [],
        "meta": { "resourceType": resource_type },
        "schemas": [GROUP_SCHEMA],
    }))
}

/// The group `id`, if it belongs to the directory.
async fn directory_group(
    conn: &mut AnyConnection,
    directory: Directory,
    id: i64,
) -> Result<Group, ControlError> {
    principals::group(conn, id)
        .await?
        .filter(|g| g.workspace_id == directory.scope())
        .ok_or_else(|| not_found(id, directory))
}

/// Checks that every id names a principal (not a group).
async fn check_members(conn: &mut AnyConnection, ids: &[i64]) -> Result<(), ControlError> {
    for id in ids {
        if principals::get(conn, *id).await?.is_none() {
            let why = if principals::group(conn, *id).await?.is_some() {
                "is a group; nested groups are not supported"
            } else {
                "does not exist"
            };
            return Err(ControlError::InvalidParameter(format!(
                "member `{id}` {why}"
            )));
        }
    }
    Ok(())
}

/// Refuses a name another group of the directory has.
async fn check_name_free(
    conn: &mut AnyConnection,
    directory: Directory,
    name: &str,
) -> Result<(), ControlError> {
    if principals::group_by_name(conn, directory.scope(), name)
        .await?
        .is_some()
    {
        return Err(ControlError::AlreadyExists(format!(
            "group `{name}` already exists {}",
            directory.location()
        )));
    }
    Ok(())
}

/// Renames (if `name` differs) and sets the members of `group`, with the built-in and
/// lockout guards of the module documentation.
async fn write_group(
    conn: &mut AnyConnection,
    caller: &ScimCaller,
    group: &Group,
    name: &str,
    members: &[i64],
) -> Result<(), ControlError> {
    let directory = caller.directory;
    if name != group.display_name {
        if directory.is_builtin(group) {
            return Err(ControlError::InvalidState(format!(
                "the built-in group `{}` cannot be renamed",
                group.display_name
            )));
        }
        check_name_free(conn, directory, name).await?;
        principals::rename_group(conn, group.id, name).await?;
    }
    if group.display_name == ADMINS_GROUP && !members.contains(&caller.principal.id) {
        return Err(ControlError::InvalidState(
            "you cannot remove yourself from the admins group".into(),
        ));
    }
    let before: Vec<i64> = principals::members(conn, group.id)
        .await?
        .iter()
        .map(|p| p.id)
        .collect();
    for gone in before.iter().filter(|m| !members.contains(m)) {
        principals::remove_member(conn, group.id, *gone).await?;
    }
    for new in members.iter().filter(|m| !before.contains(m)) {
        principals::add_member(conn, group.id, *new).await?;
    }
    Ok(())
}

/// `POST .../Groups`: answers 201 with the group.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: ScimCaller,
    JsonBody(req): JsonBody<GroupRequest>,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    caller.require_admin()?;
    let name = validate_name(&req.display_name)?;
    let member_ids = reference_ids("members", req.members.as_ref().unwrap_or(&Value::Null))?;
    let directory = caller.directory;
    let mut tx = state.store().begin_write().await?;
    check_name_free(tx.conn(), directory, &name).await?;
    check_members(tx.conn(), &member_ids).await?;
    let group = Group {
        id: new_numeric_id(),
        workspace_id: directory.scope(),
        display_name: name,
    };
    principals::insert_group(tx.conn(), &group).await?;
    for id in &member_ids {
        principals::add_member(tx.conn(), group.id, *id).await?;
    }
    let body = group_json(tx.conn(), &group, directory).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET .../Groups/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let id = parse_id(&params.get("id")?, "group")?;
    let mut conn = state.store().conn().await?;
    let group = directory_group(&mut conn, caller.directory, id).await?;
    Ok(Json(group_json(&mut conn, &group, caller.directory).await?))
}

/// `GET .../Groups?filter=&startIndex=&count=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: ScimCaller,
    query: QueryParams,
) -> Result<Json<Value>, ControlError> {
    let filter = filter(&query)?;
    let mut conn = state.store().conn().await?;
    let groups = principals::groups_in_scope(&mut conn, caller.directory.scope()).await?;
    let mut resources = Vec::new();
    for group in groups {
        if let Some(f) = &filter {
            let id = group.id.to_string();
            let pairs = [
                ("displayName", group.display_name.as_str()),
                ("id", id.as_str()),
            ];
            if !f.matches_any(&pairs) {
                continue;
            }
        }
        resources.push(group_json(&mut conn, &group, caller.directory).await?);
    }
    Ok(Json(list_response(resources, &query)?))
}

/// The member id a `remove` path such as `members[value eq "123"]` names.
fn member_in_path(path: &str) -> Option<i64> {
    let inner = path.strip_prefix("members[")?.strip_suffix(']')?;
    let (attribute, rest) = inner.trim().split_once(char::is_whitespace)?;
    let (op, value) = rest.trim().split_once(char::is_whitespace)?;
    if attribute != "value" || !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    value.trim().trim_matches('"').parse().ok()
}

/// `PATCH .../Groups/{id}`: `add`/`remove`/`replace` of `members` (also `remove` with the
/// path `members[value eq "ID"]`), `replace` of `displayName`; answers 204.
pub(crate) async fn patch(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
    JsonBody(req): JsonBody<PatchRequest>,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "group")?;
    let steps = steps(req)?;
    let mut tx = state.store().begin_write().await?;
    let group = directory_group(tx.conn(), caller.directory, id).await?;
    let mut members: Vec<i64> = principals::members(tx.conn(), id)
        .await?
        .iter()
        .map(|p| p.id)
        .collect();
    let mut name = group.display_name.clone();
    for (kind, path, value) in steps {
        match (kind, path.as_str()) {
            (OpKind::Add, "members") => {
                let ids = reference_ids("members", &value)?;
                check_members(tx.conn(), &ids).await?;
                for id in ids {
                    if !members.contains(&id) {
                        members.push(id);
                    }
                }
            }
            (OpKind::Replace, "members") => {
                let ids = reference_ids("members", &value)?;
                check_members(tx.conn(), &ids).await?;
                members = ids;
            }
            (OpKind::Remove, "members") => {
                let ids = reference_ids("members", &value)?;
                members.retain(|m| !ids.contains(m));
            }
            (OpKind::Remove, path) if member_in_path(path).is_some() => {
                let id = member_in_path(path);
                members.retain(|m| Some(*m) != id);
            }
            (OpKind::Replace | OpKind::Add, "displayName") => {
                name = validate_name(&patch_text("displayName", &value)?)?;
            }
            (_, other) => {
                let other: String = other.chars().take(60).collect();
                return Err(ControlError::InvalidParameter(format!(
                    "`{}` of `{other}` is not supported on groups",
                    format!("{kind:?}").to_ascii_lowercase()
                )));
            }
        }
    }
    write_group(tx.conn(), &caller, &group, &name, &members).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT .../Groups/{id}`: replaces the name and the members; answers 200 with the group.
pub(crate) async fn replace(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
    JsonBody(req): JsonBody<GroupRequest>,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "group")?;
    let name = validate_name(&req.display_name)?;
    let mut members = reference_ids("members", req.members.as_ref().unwrap_or(&Value::Null))?;
    members.sort_unstable();
    members.dedup();
    let mut tx = state.store().begin_write().await?;
    let group = directory_group(tx.conn(), caller.directory, id).await?;
    check_members(tx.conn(), &members).await?;
    write_group(tx.conn(), &caller, &group, &name, &members).await?;
    let group = directory_group(tx.conn(), caller.directory, id).await?;
    let body = group_json(tx.conn(), &group, caller.directory).await?;
    tx.commit().await?;
    Ok(Json(body))
}

/// `DELETE .../Groups/{id}`: answers 204.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "group")?;
    let mut tx = state.store().begin_write().await?;
    let group = directory_group(tx.conn(), caller.directory, id).await?;
    if caller.directory.is_builtin(&group) {
        return Err(ControlError::InvalidState(format!(
            "the built-in group `{}` cannot be deleted",
            group.display_name
        )));
    }
    principals::delete_group(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        assert_eq!(member_in_path("members[value eq \"123\"]"), Some(123));
        assert_eq!(member_in_path("members[value eq 5]"), Some(5));
        assert_eq!(member_in_path("members[display eq \"x\"]"), None);
        assert_eq!(member_in_path("members"), None);
    }
}
