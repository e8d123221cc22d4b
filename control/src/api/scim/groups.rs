//! `/api/2.0/preview/scim/v2/Groups[/{id}]`: the workspace's own groups.
//!
//! Members are users and service principals (nested groups are not supported: 400). The
//! built-in `admins` and `users` groups cannot be renamed or deleted (400 `INVALID_STATE`),
//! and callers cannot remove themselves from `admins` (400 `INVALID_STATE`), which would take
//! their admin rights away in the middle of what they are doing.

use super::{filter, list_response, parse_id, reference_ids, steps, OpKind, PatchRequest};
use crate::api::extract::{JsonBody, PathParams, QueryParams, WorkspaceCaller};
use crate::api::AppState;
use crate::error::ControlError;
use crate::store::new_numeric_id;
use crate::store::principals::{self, Group};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lakeward_common::internal::{ADMINS_GROUP, USERS_GROUP};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

/// The schema of groups.
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateRequest {
    display_name: String,
    members: Option<Value>,
}

fn not_found(id: i64) -> ControlError {
    ControlError::NotFound(format!("group `{id}` does not exist in this workspace"))
}

fn is_builtin(group: &Group) -> bool {
    group.display_name == ADMINS_GROUP || group.display_name == USERS_GROUP
}

fn validate_name(name: &str) -> Result<String, ControlError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 256 {
        return Err(ControlError::InvalidParameter(
            "`displayName` must be 1 to 256 characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// The group as SCIM shows it, with its members.
async fn group_json(conn: &mut AnyConnection, group: &Group) -> Result<Value, ControlError> {
    let members: Vec<Value> = principals::members(conn, group.id)
        .await?
        .iter()
        .map(|p| {
            let kind = match p.kind {
                lakeward_common::assertion::PrincipalKind::ServicePrincipal => "ServicePrincipals",
                _ => "Users",
            };
            json!({
                "value": p.id.to_string(),
                "display": p.display_name,
                "$ref": format!("{kind}/{}", p.id),
            })
        })
        .collect();
    Ok(json!({
        "id": group.id.to_string(),
        "displayName": group.display_name,
        "members": members,
        "entitlements": [],
        "groups": [],
        "roles": [],
        "meta": { "resourceType": "WorkspaceGroup" },
        "schemas": [GROUP_SCHEMA],
    }))
}

/// The group `id`, if it belongs to this workspace.
async fn workspace_group(
    conn: &mut AnyConnection,
    workspace_id: i64,
    id: i64,
) -> Result<Group, ControlError> {
    principals::group(conn, id)
        .await?
        .filter(|g| g.workspace_id == Some(workspace_id))
        .ok_or_else(|| not_found(id))
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

/// `POST .../Groups`: answers 201 with the group.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    caller.require_admin()?;
    let name = validate_name(&req.display_name)?;
    let member_ids = reference_ids("members", req.members.as_ref().unwrap_or(&Value::Null))?;
    let workspace_id = caller.workspace_id();
    let mut tx = state.store().begin_write().await?;
    if principals::group_by_name(tx.conn(), Some(workspace_id), &name)
        .await?
        .is_some()
    {
        return Err(ControlError::AlreadyExists(format!(
            "group `{name}` already exists in this workspace"
        )));
    }
    check_members(tx.conn(), &member_ids).await?;
    let group = Group {
        id: new_numeric_id(),
        workspace_id: Some(workspace_id),
        display_name: name,
    };
    principals::insert_group(tx.conn(), &group).await?;
    for id in &member_ids {
        principals::add_member(tx.conn(), group.id, *id).await?;
    }
    let body = group_json(tx.conn(), &group).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET .../Groups/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let id = parse_id(&params.get("id")?, "group")?;
    let mut conn = state.store().conn().await?;
    let group = workspace_group(&mut conn, caller.workspace_id(), id).await?;
    Ok(Json(group_json(&mut conn, &group).await?))
}

/// `GET .../Groups?filter=&startIndex=&count=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    query: QueryParams,
) -> Result<Json<Value>, ControlError> {
    let filter = filter(&query)?;
    let mut conn = state.store().conn().await?;
    let groups = principals::groups_in_scope(&mut conn, Some(caller.workspace_id())).await?;
    let mut resources = Vec::new();
    for group in groups {
        if let Some(f) = &filter {
            let id = group.id.to_string();
            if !f.matches("displayName", &group.display_name) && !f.matches("id", &id) {
                continue;
            }
        }
        resources.push(group_json(&mut conn, &group).await?);
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

/// `PATCH .../Groups/{id}`: `add`/`remove`/`replace` of `members`, `replace` of
/// `displayName`; answers 204.
pub(crate) async fn patch(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
    JsonBody(req): JsonBody<PatchRequest>,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "group")?;
    let steps = steps(req)?;
    let workspace_id = caller.workspace_id();
    let mut tx = state.store().begin_write().await?;
    let group = workspace_group(tx.conn(), workspace_id, id).await?;
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
                name = validate_name(value.as_str().unwrap_or(""))?;
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
    if name != group.display_name {
        if is_builtin(&group) {
            return Err(ControlError::InvalidState(format!(
                "the built-in group `{}` cannot be renamed",
                group.display_name
            )));
        }
        if principals::group_by_name(tx.conn(), Some(workspace_id), &name)
            .await?
            .is_some()
        {
            return Err(ControlError::AlreadyExists(format!(
                "group `{name}` already exists in this workspace"
            )));
        }
        principals::rename_group(tx.conn(), id, &name).await?;
    }
    if group.display_name == ADMINS_GROUP && !members.contains(&caller.principal.id) {
        return Err(ControlError::InvalidState(
            "you cannot remove yourself from the workspace admins".into(),
        ));
    }
    let before: Vec<i64> = principals::members(tx.conn(), id)
        .await?
        .iter()
        .map(|p| p.id)
        .collect();
    for gone in before.iter().filter(|m| !members.contains(m)) {
        principals::remove_member(tx.conn(), id, *gone).await?;
    }
    for new in members.iter().filter(|m| !before.contains(m)) {
        principals::add_member(tx.conn(), id, *new).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../Groups/{id}`: answers 204.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "group")?;
    let mut tx = state.store().begin_write().await?;
    let group = workspace_group(tx.conn(), caller.workspace_id(), id).await?;
    if is_builtin(&group) {
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
