//! `/api/2.0/preview/scim/v2/Users[/{id}]`: the workspace's users.
//!
//! Users are account-wide principals; a workspace's users are those in its `users` or
//! `admins` group. Creating a user that already exists in the account adds it to the
//! workspace (409 `RESOURCE_ALREADY_EXISTS` if it is already there); deleting one removes it
//! from the workspace's groups and deletes its tokens there, but keeps it in the account.
//! Deactivating (`active` false) is account-wide. Decisions: callers cannot delete or
//! deactivate themselves (400 `INVALID_STATE`), which would lock them out.

use super::{
    filter, list_response, parse_id, reference_ids, scim_bool, steps, OpKind, PatchRequest,
};
use crate::api::extract::{JsonBody, PathParams, QueryParams, WorkspaceCaller};
use crate::api::me::user_json;
use crate::api::AppState;
use crate::error::ControlError;
use crate::store::new_numeric_id;
use crate::store::principals::{self, Group, Principal};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::internal::{ADMINS_GROUP, USERS_GROUP};
use serde::Deserialize;
use serde_json::Value;
use sqlx::AnyConnection;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateRequest {
    user_name: String,
    display_name: Option<String>,
    active: Option<bool>,
    groups: Option<Value>,
}

fn is_member(groups: &[Group], workspace_id: i64) -> bool {
    groups.iter().any(|g| {
        g.workspace_id == Some(workspace_id)
            && (g.display_name == USERS_GROUP || g.display_name == ADMINS_GROUP)
    })
}

fn not_found(id: i64) -> ControlError {
    ControlError::NotFound(format!("user `{id}` does not exist in this workspace"))
}

/// The user `id` with its groups, if it is a member of the workspace.
async fn member(
    conn: &mut AnyConnection,
    workspace_id: i64,
    id: i64,
) -> Result<(Principal, Vec<Group>), ControlError> {
    let principal = principals::get(conn, id)
        .await?
        .filter(|p| p.kind == PrincipalKind::User)
        .ok_or_else(|| not_found(id))?;
    let groups = principals::groups_of(conn, id).await?;
    if !is_member(&groups, workspace_id) {
        return Err(not_found(id));
    }
    Ok((principal, groups))
}

/// Adds `principal_id` to groups named by id, which must be groups of this workspace.
async fn join_groups(
    conn: &mut AnyConnection,
    workspace_id: i64,
    principal_id: i64,
    group_ids: &[i64],
) -> Result<(), ControlError> {
    for group_id in group_ids {
        let group = principals::group(conn, *group_id)
            .await?
            .filter(|g| g.workspace_id == Some(workspace_id))
            .ok_or_else(|| {
                ControlError::InvalidParameter(format!(
                    "group `{group_id}` does not exist in this workspace"
                ))
            })?;
        principals::add_member(conn, group.id, principal_id).await?;
    }
    Ok(())
}

/// `POST .../Users`: answers 201 with the user.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    caller.require_admin()?;
    let user_name = req.user_name.trim().to_owned();
    if user_name.is_empty() {
        return Err(ControlError::InvalidParameter(
            "`userName` must not be empty".into(),
        ));
    }
    let group_ids = reference_ids("groups", req.groups.as_ref().unwrap_or(&Value::Null))?;
    let workspace_id = caller.workspace_id();
    let mut tx = state.store().begin_write().await?;
    let principal = match principals::by_name(tx.conn(), &user_name).await? {
        Some(existing) if existing.kind != PrincipalKind::User => {
            return Err(ControlError::AlreadyExists(format!(
                "a service principal named `{user_name}` already exists"
            )))
        }
        Some(existing) => {
            let groups = principals::groups_of(tx.conn(), existing.id).await?;
            if is_member(&groups, workspace_id) {
                return Err(ControlError::AlreadyExists(format!(
                    "user `{user_name}` already exists in this workspace"
                )));
            }
            existing
        }
        None => {
            let principal = Principal {
                id: new_numeric_id(),
                kind: PrincipalKind::User,
                display_name: req
                    .display_name
                    .map(|d| d.trim().to_owned())
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| user_name.clone()),
                user_name: user_name.clone(),
                active: req.active.unwrap_or(true),
                application_id: None,
            };
            principals::insert(tx.conn(), &principal).await?;
            principal
        }
    };
    let users = principals::group_by_name(tx.conn(), Some(workspace_id), USERS_GROUP)
        .await?
        .ok_or_else(|| ControlError::Internal("workspace has no users group".into()))?;
    principals::add_member(tx.conn(), users.id, principal.id).await?;
    join_groups(tx.conn(), workspace_id, principal.id, &group_ids).await?;
    let groups = principals::groups_of(tx.conn(), principal.id).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(user_json(&principal, &groups, workspace_id)),
    ))
}

/// `GET .../Users/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let id = parse_id(&params.get("id")?, "user")?;
    let mut conn = state.store().conn().await?;
    let (principal, groups) = member(&mut conn, caller.workspace_id(), id).await?;
    Ok(Json(user_json(&principal, &groups, caller.workspace_id())))
}

/// `GET .../Users?filter=&startIndex=&count=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    query: QueryParams,
) -> Result<Json<Value>, ControlError> {
    let filter = filter(&query)?;
    let workspace_id = caller.workspace_id();
    let mut conn = state.store().conn().await?;
    let users = principals::workspace_members(&mut conn, workspace_id, PrincipalKind::User).await?;
    let mut resources = Vec::new();
    for user in users {
        if let Some(f) = &filter {
            let id = user.id.to_string();
            let hit = f.matches("userName", &user.user_name)
                || f.matches("displayName", &user.display_name)
                || f.matches("id", &id);
            if !hit {
                continue;
            }
        }
        let groups = principals::groups_of(&mut conn, user.id).await?;
        resources.push(user_json(&user, &groups, workspace_id));
    }
    Ok(Json(list_response(resources, &query)?))
}

/// `PATCH .../Users/{id}`: `replace` of `active`, `displayName` or `userName`; answers 204.
pub(crate) async fn patch(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
    JsonBody(req): JsonBody<PatchRequest>,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "user")?;
    let steps = steps(req)?;
    let mut tx = state.store().begin_write().await?;
    let (mut principal, _) = member(tx.conn(), caller.workspace_id(), id).await?;
    for (kind, path, value) in steps {
        if kind == OpKind::Remove {
            return Err(ControlError::InvalidParameter(format!(
                "`remove` of `{path}` is not supported on users"
            )));
        }
        match path.as_str() {
            "active" => {
                principal.active = scim_bool("active", &value)?;
                if !principal.active && principal.id == caller.principal.id {
                    return Err(ControlError::InvalidState(
                        "you cannot deactivate yourself".into(),
                    ));
                }
            }
            "displayName" => {
                principal.display_name = value
                    .as_str()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        ControlError::InvalidParameter(
                            "`displayName` must be a non-empty string".into(),
                        )
                    })?
                    .to_owned();
            }
            "userName" => {
                principal.user_name = value
                    .as_str()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        ControlError::InvalidParameter(
                            "`userName` must be a non-empty string".into(),
                        )
                    })?
                    .to_owned();
            }
            other => {
                let other: String = other.chars().take(60).collect();
                return Err(ControlError::InvalidParameter(format!(
                    "`{other}` cannot be patched on users"
                )));
            }
        }
    }
    // Writers are serialized (see `store`), so this check cannot be overtaken.
    if let Some(other) = principals::by_name(tx.conn(), &principal.user_name).await? {
        if other.id != principal.id {
            return Err(ControlError::AlreadyExists(format!(
                "`userName` `{}` is taken",
                principal.user_name
            )));
        }
    }
    principals::update(tx.conn(), &principal).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../Users/{id}`: removes the user from the workspace; answers 204.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "user")?;
    if id == caller.principal.id {
        return Err(ControlError::InvalidState(
            "you cannot remove yourself from the workspace".into(),
        ));
    }
    let mut tx = state.store().begin_write().await?;
    member(tx.conn(), caller.workspace_id(), id).await?;
    principals::remove_from_workspace(tx.conn(), caller.workspace_id(), id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
