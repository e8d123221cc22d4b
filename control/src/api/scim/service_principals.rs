//! `/api/2.0/preview/scim/v2/ServicePrincipals[/{id}]`: the workspace's service principals,
//! with the same membership rules as users (see `users`). A service principal is named by
//! its `applicationId`, generated (a UUID) when the request has none.

use super::{filter, list_response, parse_id, scim_bool, steps, OpKind, PatchRequest};
use crate::api::extract::{JsonBody, PathParams, QueryParams, WorkspaceCaller};
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
use serde_json::{json, Value};
use sqlx::AnyConnection;

/// The schema of service principals.
const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateRequest {
    application_id: Option<String>,
    display_name: Option<String>,
    active: Option<bool>,
}

fn sp_json(p: &Principal, groups: &[Group], workspace_id: i64) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .filter(|g| g.workspace_id.is_none() || g.workspace_id == Some(workspace_id))
        .map(|g| json!({"value": g.id.to_string(), "display": g.display_name, "type": "direct"}))
        .collect();
    json!({
        "id": p.id.to_string(),
        "applicationId": p.application_id.clone().unwrap_or_default(),
        "displayName": p.display_name,
        "active": p.active,
        "groups": groups,
        "entitlements": [],
        "roles": [],
        "schemas": [SCHEMA],
    })
}

fn is_member(groups: &[Group], workspace_id: i64) -> bool {
    groups.iter().any(|g| {
        g.workspace_id == Some(workspace_id)
            && (g.display_name == USERS_GROUP || g.display_name == ADMINS_GROUP)
    })
}

fn not_found(id: i64) -> ControlError {
    ControlError::NotFound(format!(
        "service principal `{id}` does not exist in this workspace"
    ))
}

async fn member(
    conn: &mut AnyConnection,
    workspace_id: i64,
    id: i64,
) -> Result<(Principal, Vec<Group>), ControlError> {
    let principal = principals::get(conn, id)
        .await?
        .filter(|p| p.kind == PrincipalKind::ServicePrincipal)
        .ok_or_else(|| not_found(id))?;
    let groups = principals::groups_of(conn, id).await?;
    if !is_member(&groups, workspace_id) {
        return Err(not_found(id));
    }
    Ok((principal, groups))
}

/// `POST .../ServicePrincipals`: answers 201.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    caller.require_admin()?;
    let application_id = req
        .application_id
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let workspace_id = caller.workspace_id();
    let mut tx = state.store().begin_write().await?;
    let principal = match principals::by_name(tx.conn(), &application_id).await? {
        Some(existing) if existing.kind != PrincipalKind::ServicePrincipal => {
            return Err(ControlError::AlreadyExists(format!(
                "a user named `{application_id}` already exists"
            )))
        }
        Some(existing) => {
            let groups = principals::groups_of(tx.conn(), existing.id).await?;
            if is_member(&groups, workspace_id) {
                return Err(ControlError::AlreadyExists(format!(
                    "service principal `{application_id}` already exists in this workspace"
                )));
            }
            existing
        }
        None => {
            let principal = Principal {
                id: new_numeric_id(),
                kind: PrincipalKind::ServicePrincipal,
                user_name: application_id.clone(),
                display_name: req
                    .display_name
                    .map(|d| d.trim().to_owned())
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| application_id.clone()),
                active: req.active.unwrap_or(true),
                application_id: Some(application_id.clone()),
            };
            principals::insert(tx.conn(), &principal).await?;
            principal
        }
    };
    let users = principals::group_by_name(tx.conn(), Some(workspace_id), USERS_GROUP)
        .await?
        .ok_or_else(|| ControlError::Internal("workspace has no users group".into()))?;
    principals::add_member(tx.conn(), users.id, principal.id).await?;
    let groups = principals::groups_of(tx.conn(), principal.id).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(sp_json(&principal, &groups, workspace_id)),
    ))
}

/// `GET .../ServicePrincipals/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let id = parse_id(&params.get("id")?, "service principal")?;
    let mut conn = state.store().conn().await?;
    let (principal, groups) = member(&mut conn, caller.workspace_id(), id).await?;
    Ok(Json(sp_json(&principal, &groups, caller.workspace_id())))
}

/// `GET .../ServicePrincipals?filter=&startIndex=&count=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    query: QueryParams,
) -> Result<Json<Value>, ControlError> {
    let filter = filter(&query)?;
    let workspace_id = caller.workspace_id();
    let mut conn = state.store().conn().await?;
    let all =
        principals::workspace_members(&mut conn, workspace_id, PrincipalKind::ServicePrincipal)
            .await?;
    let mut resources = Vec::new();
    for sp in all {
        if let Some(f) = &filter {
            let id = sp.id.to_string();
            let app = sp.application_id.clone().unwrap_or_default();
            let hit = f.matches("applicationId", &app)
                || f.matches("displayName", &sp.display_name)
                || f.matches("id", &id);
            if !hit {
                continue;
            }
        }
        let groups = principals::groups_of(&mut conn, sp.id).await?;
        resources.push(sp_json(&sp, &groups, workspace_id));
    }
    Ok(Json(list_response(resources, &query)?))
}

/// `PATCH .../ServicePrincipals/{id}`: `replace` of `active` or `displayName`; answers 204.
pub(crate) async fn patch(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
    JsonBody(req): JsonBody<PatchRequest>,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "service principal")?;
    let steps = steps(req)?;
    let mut tx = state.store().begin_write().await?;
    let (mut principal, _) = member(tx.conn(), caller.workspace_id(), id).await?;
    for (kind, path, value) in steps {
        match (kind, path.as_str()) {
            (OpKind::Add | OpKind::Replace, "active") => {
                principal.active = scim_bool("active", &value)?;
                if !principal.active && principal.id == caller.principal.id {
                    return Err(ControlError::InvalidState(
                        "you cannot deactivate yourself".into(),
                    ));
                }
            }
            (OpKind::Add | OpKind::Replace, "displayName") => {
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
            (_, other) => {
                let other: String = other.chars().take(60).collect();
                return Err(ControlError::InvalidParameter(format!(
                    "`{other}` cannot be patched on service principals"
                )));
            }
        }
    }
    principals::update(tx.conn(), &principal).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../ServicePrincipals/{id}`: removes it from the workspace (and deletes its tokens
/// there); answers 204.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "service principal")?;
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
