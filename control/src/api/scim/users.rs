//! `.../scim/v2/Users[/{id}]` in a workspace or the account (see the parent module).
//!
//! Users are account-wide principals. In a workspace:
//! - creating a user that already exists in the account assigns it to the workspace (adds it
//!   to the `users` group), as Databricks' identity federation does; 409
//!   `RESOURCE_ALREADY_EXISTS` only if it is already assigned;
//! - deleting one unassigns it: it leaves the workspace's groups and loses its tokens and
//!   permission grants there, but stays in the account.
//!
//! In the account, creating an existing `userName` is 409, and deleting a user deletes it
//! everywhere (memberships, tokens, grants). Deactivating (`active` false) is account-wide
//! from either directory.
//!
//! `PUT` replaces `userName`, `displayName` (absent: the `userName`) and `active` (absent:
//! true). When `groups` is present, the user's memberships among the directory's groups
//! become exactly those listed, except that a workspace's `users` group (its assignment) is
//! kept; when absent they are left alone. Other attributes (`emails`, `name`, `entitlements`,
//! `roles`, `externalId`) are accepted and not stored.
//!
//! Decisions: callers cannot delete or deactivate themselves, nor take themselves out of the
//! `admins` group (400 `INVALID_STATE`), which would lock them out.

use super::{
    display_name_or, filter, list_response, parse_id, patch_text, reference_ids, required_text,
    scim_bool, steps, Directory, OpKind, PatchRequest, ScimCaller,
};
use crate::api::me::user_json;
use crate::api::AppState;
use crate::error::ControlError;
use crate::store::directory::{Group, Principal};
use crate::store::new_numeric_id;
use crate::store::principals;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::internal::{ADMINS_GROUP, USERS_GROUP};
use lakeward_frame::server::{JsonBody, PathParams, QueryParams};
use serde::Deserialize;
use serde_json::Value;
use sqlx::AnyConnection;

/// A `POST` or `PUT` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserRequest {
    user_name: String,
    display_name: Option<String>,
    active: Option<bool>,
    groups: Option<Value>,
}

fn not_found(id: i64, directory: Directory) -> ControlError {
    ControlError::NotFound(format!(
        "user `{id}` does not exist {}",
        directory.location()
    ))
}

/// The principal `id` of `kind` with its groups, if it belongs to the directory.
pub(crate) async fn find(
    conn: &mut AnyConnection,
    directory: Directory,
    kind: PrincipalKind,
    id: i64,
    not_found: impl Fn() -> ControlError,
) -> Result<(Principal, Vec<Group>), ControlError> {
    let principal = principals::get(conn, id)
        .await?
        .filter(|p| p.kind == kind)
        .ok_or_else(&not_found)?;
    let groups = principals::groups_of(conn, id).await?;
    if !directory.has_member(&groups) {
        return Err(not_found());
    }
    Ok((principal, groups))
}

/// The group `id`, which must be a group of the directory.
async fn directory_group(
    conn: &mut AnyConnection,
    directory: Directory,
    id: i64,
) -> Result<Group, ControlError> {
    principals::group(conn, id)
        .await?
        .filter(|g| g.workspace_id == directory.scope())
        .ok_or_else(|| {
            ControlError::InvalidParameter(format!(
                "group `{id}` does not exist {}",
                directory.location()
            ))
        })
}

/// Adds `principal_id` to groups named by id, which must be groups of the directory.
pub(crate) async fn join_groups(
    conn: &mut AnyConnection,
    directory: Directory,
    principal_id: i64,
    group_ids: &[i64],
) -> Result<(), ControlError> {
    for group_id in group_ids {
        let group = directory_group(conn, directory, *group_id).await?;
        principals::add_member(conn, group.id, principal_id).await?;
    }
    Ok(())
}

/// Makes the principal's memberships among the directory's groups exactly `group_ids`, but
/// for a workspace's `users` group, which is its assignment and stays. Account groups listed
/// in a workspace's request are ignored (a workspace shows them but cannot change them, and
/// a client may `PUT` back what it read). Refuses to take the caller out of `admins`.
pub(crate) async fn set_groups(
    conn: &mut AnyConnection,
    caller: &ScimCaller,
    principal_id: i64,
    group_ids: &[i64],
) -> Result<(), ControlError> {
    let directory = caller.directory;
    let mut managed = Vec::with_capacity(group_ids.len());
    for group_id in group_ids {
        let shown_only = directory != Directory::Account
            && principals::group(conn, *group_id)
                .await?
                .is_some_and(|g| g.workspace_id.is_none());
        if !shown_only {
            managed.push(directory_group(conn, directory, *group_id).await?.id);
        }
    }
    let group_ids = managed.as_slice();
    let current = principals::groups_of(conn, principal_id).await?;
    for group in current
        .iter()
        .filter(|g| g.workspace_id == directory.scope() && !group_ids.contains(&g.id))
    {
        if directory != Directory::Account && group.display_name == USERS_GROUP {
            continue;
        }
        if group.display_name == ADMINS_GROUP && principal_id == caller.principal.id {
            return Err(ControlError::InvalidState(
                "you cannot remove yourself from the admins group".into(),
            ));
        }
        principals::remove_member(conn, group.id, principal_id).await?;
    }
    for group_id in group_ids {
        principals::add_member(conn, *group_id, principal_id).await?;
    }
    Ok(())
}

/// Adds the principal to the workspace's `users` group (nothing to do in the account).
pub(crate) async fn assign(
    conn: &mut AnyConnection,
    directory: Directory,
    principal_id: i64,
) -> Result<(), ControlError> {
    if let Directory::Workspace(workspace_id) = directory {
        let users = principals::group_by_name(conn, Some(workspace_id), USERS_GROUP)
            .await?
            .ok_or_else(|| ControlError::Internal("workspace has no users group".into()))?;
        principals::add_member(conn, users.id, principal_id).await?;
    }
    Ok(())
}

/// Refuses a name another principal has. Writers are serialized (see `store`), so this check
/// cannot be overtaken.
pub(crate) async fn check_name_free(
    conn: &mut AnyConnection,
    name: &str,
    principal_id: i64,
) -> Result<(), ControlError> {
    match principals::by_name_ignoring_case(conn, name).await? {
        Some(other) if other.id != principal_id => Err(ControlError::AlreadyExists(format!(
            "the name `{name}` is taken"
        ))),
        _ => Ok(()),
    }
}

/// Removes the principal from the directory: from a workspace, or from the account entirely.
pub(crate) async fn remove(
    conn: &mut AnyConnection,
    directory: Directory,
    principal_id: i64,
) -> Result<(), ControlError> {
    match directory {
        Directory::Workspace(workspace_id) => {
            principals::remove_from_workspace(conn, workspace_id, principal_id).await?;
        }
        Directory::Account => principals::delete(conn, principal_id).await?,
    }
    Ok(())
}

/// `POST .../Users`: answers 201 with the user.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: ScimCaller,
    JsonBody(req): JsonBody<UserRequest>,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    caller.require_admin()?;
    let user_name = required_text("userName", &req.user_name)?;
    let group_ids = reference_ids("groups", req.groups.as_ref().unwrap_or(&Value::Null))?;
    let directory = caller.directory;
    let mut tx = state.store().begin_write().await?;
    let principal = match principals::by_name_ignoring_case(tx.conn(), &user_name).await? {
        Some(existing) if existing.kind != PrincipalKind::User => {
            return Err(ControlError::AlreadyExists(format!(
                "a service principal named `{user_name}` already exists"
            )))
        }
        Some(existing) => {
            let groups = principals::groups_of(tx.conn(), existing.id).await?;
            if directory == Directory::Account || directory.has_member(&groups) {
                return Err(ControlError::AlreadyExists(format!(
                    "user `{user_name}` already exists {}",
                    directory.location()
                )));
            }
            existing
        }
        None => {
            let principal = Principal {
                id: new_numeric_id(),
                kind: PrincipalKind::User,
                display_name: display_name_or(req.display_name, &user_name),
                user_name: user_name.clone(),
                active: req.active.unwrap_or(true),
                application_id: None,
            };
            principals::insert(tx.conn(), &principal).await?;
            principal
        }
    };
    assign(tx.conn(), directory, principal.id).await?;
    join_groups(tx.conn(), directory, principal.id, &group_ids).await?;
    let groups = principals::groups_of(tx.conn(), principal.id).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(user_json(&principal, &groups, directory)),
    ))
}

/// `GET .../Users/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let id = parse_id(&params.get("id")?, "user")?;
    let directory = caller.directory;
    let mut conn = state.store().conn().await?;
    let (principal, groups) = find(&mut conn, directory, PrincipalKind::User, id, || {
        not_found(id, directory)
    })
    .await?;
    Ok(Json(user_json(&principal, &groups, directory)))
}

/// The principals of `kind` in the directory, by `userName`.
pub(crate) async fn members_of(
    conn: &mut AnyConnection,
    directory: Directory,
    kind: PrincipalKind,
) -> Result<Vec<Principal>, ControlError> {
    Ok(match directory {
        Directory::Workspace(id) => principals::workspace_members(conn, id, kind).await?,
        Directory::Account => principals::all_of_kind(conn, kind).await?,
    })
}

/// `GET .../Users?filter=&startIndex=&count=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: ScimCaller,
    query: QueryParams,
) -> Result<Json<Value>, ControlError> {
    let filter = filter(&query)?;
    let directory = caller.directory;
    let mut conn = state.store().conn().await?;
    let users = members_of(&mut conn, directory, PrincipalKind::User).await?;
    let mut resources = Vec::new();
    for user in users {
        if let Some(f) = &filter {
            let id = user.id.to_string();
            let pairs = [
                ("userName", user.user_name.as_str()),
                ("displayName", user.display_name.as_str()),
                ("id", id.as_str()),
            ];
            if !f.matches_any(&pairs) {
                continue;
            }
        }
        let groups = principals::groups_of(&mut conn, user.id).await?;
        resources.push(user_json(&user, &groups, directory));
    }
    Ok(Json(list_response(resources, &query)?))
}

/// Refuses to deactivate the caller.
pub(crate) fn check_not_self_deactivation(
    caller: &ScimCaller,
    principal: &Principal,
) -> Result<(), ControlError> {
    if !principal.active && principal.id == caller.principal.id {
        return Err(ControlError::InvalidState(
            "you cannot deactivate yourself".into(),
        ));
    }
    Ok(())
}

/// `PATCH .../Users/{id}`: `replace` (or `add`) of `active`, `displayName` or `userName`;
/// answers 204.
pub(crate) async fn patch(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
    JsonBody(req): JsonBody<PatchRequest>,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "user")?;
    let steps = steps(req)?;
    let directory = caller.directory;
    let mut tx = state.store().begin_write().await?;
    let (mut principal, _) = find(tx.conn(), directory, PrincipalKind::User, id, || {
        not_found(id, directory)
    })
    .await?;
    for (kind, path, value) in steps {
        if kind == OpKind::Remove {
            return Err(ControlError::InvalidParameter(format!(
                "`remove` of `{}` is not supported on users",
                path.chars().take(60).collect::<String>()
            )));
        }
        match path.as_str() {
            "active" => principal.active = scim_bool("active", &value)?,
            "displayName" => principal.display_name = patch_text("displayName", &value)?,
            "userName" => principal.user_name = patch_text("userName", &value)?,
            other => {
                let other: String = other.chars().take(60).collect();
                return Err(ControlError::InvalidParameter(format!(
                    "`{other}` cannot be patched on users"
                )));
            }
        }
    }
    check_not_self_deactivation(&caller, &principal)?;
    check_name_free(tx.conn(), &principal.user_name, principal.id).await?;
    principals::update(tx.conn(), &principal).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT .../Users/{id}`: replaces the user (see the module documentation); answers 200 with
/// it.
pub(crate) async fn replace(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
    JsonBody(req): JsonBody<UserRequest>,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "user")?;
    let user_name = required_text("userName", &req.user_name)?;
    let group_ids = req
        .groups
        .as_ref()
        .map(|g| reference_ids("groups", g))
        .transpose()?;
    let directory = caller.directory;
    let mut tx = state.store().begin_write().await?;
    let (mut principal, _) = find(tx.conn(), directory, PrincipalKind::User, id, || {
        not_found(id, directory)
    })
    .await?;
    principal.display_name = display_name_or(req.display_name, &user_name);
    principal.user_name = user_name;
    principal.active = req.active.unwrap_or(true);
    check_not_self_deactivation(&caller, &principal)?;
    check_name_free(tx.conn(), &principal.user_name, principal.id).await?;
    principals::update(tx.conn(), &principal).await?;
    if let Some(group_ids) = group_ids {
        set_groups(tx.conn(), &caller, principal.id, &group_ids).await?;
    }
    let groups = principals::groups_of(tx.conn(), principal.id).await?;
    tx.commit().await?;
    Ok(Json(user_json(&principal, &groups, directory)))
}

/// `DELETE .../Users/{id}`: unassigns the user from the workspace, or deletes it from the
/// account; answers 204.
pub(crate) async fn delete(
    state: State<AppState>,
    caller: ScimCaller,
    params: PathParams,
) -> Result<StatusCode, ControlError> {
    delete_principal(state, caller, params, PrincipalKind::User).await
}

/// Deletes a user or service principal: unassigns it from a workspace directory (its tokens and
/// grants there go with it), or removes it from the account altogether. Never the caller.
pub(crate) async fn delete_principal(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
    kind: PrincipalKind,
) -> Result<StatusCode, ControlError> {
    let noun = match kind {
        PrincipalKind::ServicePrincipal => "service principal",
        _ => "user",
    };
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, noun)?;
    if id == caller.principal.id {
        return Err(ControlError::InvalidState(
            "you cannot remove yourself".into(),
        ));
    }
    let directory = caller.directory;
    let mut tx = state.store().begin_write().await?;
    find(tx.conn(), directory, kind, id, || {
        ControlError::NotFound(format!(
            "{noun} `{id}` does not exist {}",
            directory.location()
        ))
    })
    .await?;
    remove(tx.conn(), directory, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
