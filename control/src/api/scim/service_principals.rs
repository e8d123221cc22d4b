//! `.../scim/v2/ServicePrincipals[/{id}]` in a workspace or the account, with the same
//! membership rules as users (see `users`). A service principal is named by its
//! `applicationId`, generated (a UUID) when a creation has none, and fixed afterwards: a `PUT`
//! naming another one is 400 `INVALID_PARAMETER_VALUE`. `PUT` replaces `displayName`
//! (absent: the application id), `active` (absent: true) and, when present, `groups`.

use super::users::{
    assign, check_not_self_deactivation, delete_principal, find, join_groups, members_of,
    set_groups,
};
use super::{
    display_name_or, filter, groups_json, list_response, parse_id, patch_text, reference_ids,
    scim_bool, steps, Directory, OpKind, PatchRequest, ScimCaller,
};
use crate::api::AppState;
use crate::error::ControlError;
use crate::store::directory::{Group, Principal};
use crate::store::new_numeric_id;
use crate::store::principals;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lakeward_common::assertion::PrincipalKind;
use lakeward_frame::server::{JsonBody, PathParams, QueryParams};
use serde::Deserialize;
use serde_json::{json, Value};

/// The schema of service principals.
const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal";

/// A `POST` or `PUT` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SpRequest {
    application_id: Option<String>,
    display_name: Option<String>,
    active: Option<bool>,
    groups: Option<Value>,
}

fn sp_json(p: &Principal, groups: &[Group], directory: Directory) -> Value {
    json!({
        "id": p.id.to_string(),
        "applicationId": p.application_id.clone().unwrap_or_default(),
        "displayName": p.display_name,
        "active": p.active,
        "groups": groups_json(groups, directory),
        "entitlements": [],
        "roles": [],
        "schemas": [SCHEMA],
    })
}

fn not_found(id: i64, directory: Directory) -> ControlError {
    ControlError::NotFound(format!(
        "service principal `{id}` does not exist {}",
        directory.location()
    ))
}

/// The application id a request names, if any.
fn requested_application_id(req: &SpRequest) -> Option<String> {
    req.application_id
        .as_ref()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
}

/// `POST .../ServicePrincipals`: answers 201.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: ScimCaller,
    JsonBody(req): JsonBody<SpRequest>,
) -> Result<(StatusCode, Json<Value>), ControlError> {
    caller.require_admin()?;
    let application_id =
        requested_application_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let group_ids = reference_ids("groups", req.groups.as_ref().unwrap_or(&Value::Null))?;
    let directory = caller.directory;
    let mut tx = state.store().begin_write().await?;
    let principal = match principals::by_name_ignoring_case(tx.conn(), &application_id).await? {
        Some(existing) if existing.kind != PrincipalKind::ServicePrincipal => {
            return Err(ControlError::AlreadyExists(format!(
                "a user named `{application_id}` already exists"
            )))
        }
        Some(existing) => {
            let groups = principals::groups_of(tx.conn(), existing.id).await?;
            if directory == Directory::Account || directory.has_member(&groups) {
                return Err(ControlError::AlreadyExists(format!(
                    "service principal `{application_id}` already exists {}",
                    directory.location()
                )));
            }
            existing
        }
        None => {
            let principal = Principal {
                id: new_numeric_id(),
                kind: PrincipalKind::ServicePrincipal,
                user_name: application_id.clone(),
                display_name: display_name_or(req.display_name, &application_id),
                active: req.active.unwrap_or(true),
                application_id: Some(application_id.clone()),
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
        Json(sp_json(&principal, &groups, directory)),
    ))
}

/// `GET .../ServicePrincipals/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let id = parse_id(&params.get("id")?, "service principal")?;
    let directory = caller.directory;
    let mut conn = state.store().conn().await?;
    let kind = PrincipalKind::ServicePrincipal;
    let (principal, groups) =
        find(&mut conn, directory, kind, id, || not_found(id, directory)).await?;
    Ok(Json(sp_json(&principal, &groups, directory)))
}

/// `GET .../ServicePrincipals?filter=&startIndex=&count=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: ScimCaller,
    query: QueryParams,
) -> Result<Json<Value>, ControlError> {
    let filter = filter(&query)?;
    let directory = caller.directory;
    let mut conn = state.store().conn().await?;
    let all = members_of(&mut conn, directory, PrincipalKind::ServicePrincipal).await?;
    let mut resources = Vec::new();
    for sp in all {
        if let Some(f) = &filter {
            let id = sp.id.to_string();
            let app = sp.application_id.clone().unwrap_or_default();
            let pairs = [
                ("applicationId", app.as_str()),
                ("displayName", sp.display_name.as_str()),
                ("id", id.as_str()),
            ];
            if !f.matches_any(&pairs) {
                continue;
            }
        }
        let groups = principals::groups_of(&mut conn, sp.id).await?;
        resources.push(sp_json(&sp, &groups, directory));
    }
    Ok(Json(list_response(resources, &query)?))
}

/// `PATCH .../ServicePrincipals/{id}`: `replace` (or `add`) of `active` or `displayName`;
/// answers 204.
pub(crate) async fn patch(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
    JsonBody(req): JsonBody<PatchRequest>,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "service principal")?;
    let steps = steps(req)?;
    let directory = caller.directory;
    let mut tx = state.store().begin_write().await?;
    let kind = PrincipalKind::ServicePrincipal;
    let (mut principal, _) =
        find(tx.conn(), directory, kind, id, || not_found(id, directory)).await?;
    for (kind, path, value) in steps {
        match (kind, path.as_str()) {
            (OpKind::Add | OpKind::Replace, "active") => {
                principal.active = scim_bool("active", &value)?;
            }
            (OpKind::Add | OpKind::Replace, "displayName") => {
                principal.display_name = patch_text("displayName", &value)?;
            }
            (_, other) => {
                let other: String = other.chars().take(60).collect();
                return Err(ControlError::InvalidParameter(format!(
                    "`{other}` cannot be patched on service principals"
                )));
            }
        }
    }
    check_not_self_deactivation(&caller, &principal)?;
    principals::update(tx.conn(), &principal).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT .../ServicePrincipals/{id}`: replaces the service principal (see the module
/// documentation); answers 200 with it.
pub(crate) async fn replace(
    State(state): State<AppState>,
    caller: ScimCaller,
    params: PathParams,
    JsonBody(req): JsonBody<SpRequest>,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let id = parse_id(&params.get("id")?, "service principal")?;
    let group_ids = req
        .groups
        .as_ref()
        .map(|g| reference_ids("groups", g))
        .transpose()?;
    let directory = caller.directory;
    let mut tx = state.store().begin_write().await?;
    let kind = PrincipalKind::ServicePrincipal;
    let (mut principal, _) =
        find(tx.conn(), directory, kind, id, || not_found(id, directory)).await?;
    let application_id = principal.application_id.clone().unwrap_or_default();
    if let Some(requested) = requested_application_id(&req) {
        if requested != application_id {
            return Err(ControlError::InvalidParameter(
                "`applicationId` cannot be changed".into(),
            ));
        }
    }
    principal.display_name = display_name_or(req.display_name, &application_id);
    principal.active = req.active.unwrap_or(true);
    check_not_self_deactivation(&caller, &principal)?;
    principals::update(tx.conn(), &principal).await?;
    if let Some(group_ids) = group_ids {
        set_groups(tx.conn(), &caller, principal.id, &group_ids).await?;
    }
    let groups = principals::groups_of(tx.conn(), principal.id).await?;
    tx.commit().await?;
    Ok(Json(sp_json(&principal, &groups, directory)))
}

/// `DELETE .../ServicePrincipals/{id}`: unassigns it from the workspace (deleting its tokens
/// and grants there), or deletes it from the account; answers 204.
pub(crate) async fn delete(
    state: State<AppState>,
    caller: ScimCaller,
    params: PathParams,
) -> Result<StatusCode, ControlError> {
    delete_principal(state, caller, params, PrincipalKind::ServicePrincipal).await
}
