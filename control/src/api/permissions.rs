//! The Permissions API (reference 2.14): token usage permissions,
//! `/api/2.0/permissions/authorization/tokens` (reference 2.2 and 4.2), and the generic
//! `/api/2.0/permissions/{type}/{id}` for every other object.
//!
//! Token usage permissions decide who may create personal access tokens in the workspace
//! (`token/create`) and authenticate with them (the gateway reads
//! `PrincipalRecord::token_use_workspaces`). Semantics:
//!
//! - `CAN_USE` is granted to users (`user_name`), groups of the workspace (`group_name`) and
//!   service principals (`service_principal_name`, the application id), who must be members of
//!   the workspace (otherwise 400 `INVALID_PARAMETER_VALUE`). `PUT` replaces every direct grant,
//!   `PATCH` adds to them; both answer the resulting `ObjectPermissions`.
//! - `CAN_MANAGE` belongs to the workspace `admins` group, implicitly and irrevocably: `GET`
//!   shows it as inherited, and admins may always create and use tokens. It cannot be granted
//!   to anyone else (400 `INVALID_PARAMETER_VALUE`). An entry for `admins` (with `CAN_MANAGE`,
//!   which Databricks' documented `PUT` example includes, or `CAN_USE`) is accepted and
//!   changes nothing.
//! - Decision: a new workspace starts with its `users` group holding `CAN_USE` (what Databricks
//!   does for workspaces with tokens enabled), so every member may use tokens until an admin
//!   narrows it with `PUT`. Workspaces that predate this API got the same grant by migration.
//! - Decision: revoking `CAN_USE` does not delete anyone's tokens (Databricks deletes them on
//!   `PUT`); they stop authenticating at the gateway and work again if `CAN_USE` comes back. A
//!   workspace admin can still list and delete them with token management.
//! - Every change bumps the state version, so gateways refetch cached principals.
//! - Reading and changing these permissions needs a workspace admin (the gateway's policy
//!   says the same).
//!
//! SQL warehouses, `/api/2.0/permissions/warehouses/{id}` (object id `/sql/warehouses/<id>`):
//!
//! - Levels, weakest first: `CAN_VIEW`, `CAN_MONITOR`, `CAN_USE`, `CAN_MANAGE`, `IS_OWNER`.
//!   The runtime enforces them; the grants are stored under `warehouses/<id>` and travel in
//!   the runtime's `WarehouseRecord::acl`.
//! - Grantees: users and service principals that are members of the workspace, groups of the
//!   workspace or of the account (as catalog grants allow). One level per grantee: a new
//!   grant replaces the old one.
//! - Who: workspace admins, and whoever holds `CAN_MANAGE` or `IS_OWNER` on the warehouse
//!   directly or through a group (else 403 `PERMISSION_DENIED`); a missing or `DELETED`
//!   warehouse is 404 `RESOURCE_DOES_NOT_EXIST`. The creator is granted `CAN_MANAGE` when the
//!   warehouse is created.
//! - The workspace `admins` group holds `CAN_MANAGE` implicitly, shown as inherited from
//!   `/sql/warehouses/`; an entry for it is accepted and changes nothing.
//! - Decision: `IS_OWNER` goes to one user or service principal at a time (a group cannot own);
//!   granting it moves ownership, and `PUT` keeps the current owner unless it names a new one.
//!
//! Other object types: no such objects exist yet, so every `GET`, `PUT` and `PATCH` answers
//! 404 `RESOURCE_DOES_NOT_EXIST` (after the body, if any, has been checked).

use super::extract::WorkspaceCaller;
use super::AppState;
use crate::error::ControlError;
use crate::store::directory::{Group, Principal};
use crate::store::permissions::{self, CAN_USE, TOKENS_OBJECT};
use crate::store::principals;
use crate::store::warehouses;
use axum::extract::State;
use axum::Json;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::data::{WarehouseState, WAREHOUSE_LEVELS};
use lakeward_common::internal::ADMINS_GROUP;
use lakeward_frame::server::{JsonBody, PathParams};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

/// The implicit level of workspace admins.
const CAN_MANAGE: &str = "CAN_MANAGE";
/// `object_type` of token usage permissions.
const TOKENS_TYPE: &str = "tokens";
/// Where admins' `CAN_MANAGE` is shown to come from [RECALL: Databricks names the parent
/// collection of the object, as `/clusters/` for a cluster].
const TOKENS_PARENT: &str = "/authorization/";

/// A `PUT` or `PATCH` body.
#[derive(Debug, Deserialize)]
pub(crate) struct AclRequest {
    access_control_list: Vec<AccessControlRequest>,
}

/// One entry: exactly one of the three names, and a level.
#[derive(Debug, Deserialize)]
pub(crate) struct AccessControlRequest {
    user_name: Option<String>,
    group_name: Option<String>,
    service_principal_name: Option<String>,
    permission_level: String,
}

/// Who a grant is for.
enum Grantee {
    Group(Group),
    Principal(Principal),
}

/// What an entry of a request asks for, once checked.
enum Change {
    /// Grant `CAN_USE` to this principal or group id.
    Grant(i64),
    /// An entry for `admins`, whose `CAN_MANAGE` is implicit.
    Nothing,
}

/// Checks that entry `index` names exactly one grantee.
fn check_names(index: usize, entry: &AccessControlRequest) -> Result<(), ControlError> {
    let names = [
        entry.user_name.as_deref(),
        entry.group_name.as_deref(),
        entry.service_principal_name.as_deref(),
    ];
    if names.iter().flatten().count() != 1 {
        return Err(ControlError::InvalidParameter(format!(
            "`access_control_list[{index}]` must name exactly one of `user_name`, `group_name` and `service_principal_name`"
        )));
    }
    Ok(())
}

/// Resolves and checks entry `index` of a request.
async fn check_entry(
    conn: &mut AnyConnection,
    workspace_id: i64,
    index: usize,
    entry: &AccessControlRequest,
) -> Result<Change, ControlError> {
    let field = |name: &str| format!("access_control_list[{index}].{name}");
    check_names(index, entry)?;
    let level = entry.permission_level.trim();
    if level != CAN_USE && level != CAN_MANAGE {
        let shown: String = level.chars().take(40).collect();
        return Err(ControlError::InvalidParameter(format!(
            "`{}`: `{shown}` is not a permission level of tokens; only `CAN_USE` can be granted",
            field("permission_level")
        )));
    }
    match find_grantee(conn, workspace_id, index, entry, false).await? {
        Grantee::Group(group) if group.display_name == ADMINS_GROUP => Ok(Change::Nothing),
        _ if level == CAN_MANAGE => Err(ControlError::InvalidParameter(format!(
            "`{}`: `CAN_MANAGE` on tokens belongs to the workspace `admins` group and cannot be granted",
            field("permission_level")
        ))),
        Grantee::Group(group) => Ok(Change::Grant(group.id)),
        Grantee::Principal(principal) => Ok(Change::Grant(principal.id)),
    }
}

/// The grantee entry `index` names: a group of the workspace (or, with `account_groups`, of
/// the account), or a user or service principal that is a member of the workspace.
async fn find_grantee(
    conn: &mut AnyConnection,
    workspace_id: i64,
    index: usize,
    entry: &AccessControlRequest,
    account_groups: bool,
) -> Result<Grantee, ControlError> {
    let field = |name: &str| format!("access_control_list[{index}].{name}");
    let missing = |what: &str, name: &str| {
        let shown: String = name.chars().take(100).collect();
        ControlError::InvalidParameter(format!(
            "`{}`: {what} `{shown}` does not exist in this workspace",
            field(match what {
                "group" => "group_name",
                "service principal" => "service_principal_name",
                _ => "user_name",
            })
        ))
    };
    let grantee = if let Some(name) = &entry.group_name {
        let mut group = principals::group_by_name(conn, Some(workspace_id), name.trim()).await?;
        if group.is_none() && account_groups {
            group = principals::group_by_name(conn, None, name.trim()).await?;
        }
        Grantee::Group(group.ok_or_else(|| missing("group", name))?)
    } else {
        let (name, kind, what) = match (&entry.user_name, &entry.service_principal_name) {
            (Some(name), _) => (name, PrincipalKind::User, "user"),
            (_, Some(name)) => (name, PrincipalKind::ServicePrincipal, "service principal"),
            _ => return Err(ControlError::Internal("no grantee name".into())),
        };
        let principal = principals::by_name(conn, name.trim())
            .await?
            .filter(|p| p.kind == kind)
            .ok_or_else(|| missing(what, name))?;
        let groups = principals::groups_of(conn, principal.id).await?;
        if !principals::in_workspace(&groups, workspace_id) {
            return Err(missing(what, name));
        }
        Grantee::Principal(principal)
    };
    Ok(grantee)
}

/// The token permissions of a workspace as `ObjectPermissions`.
async fn token_permissions(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<Value, ControlError> {
    object_permissions(
        conn,
        workspace_id,
        &ObjectKind {
            key: TOKENS_OBJECT.to_owned(),
            object_id: TOKENS_OBJECT.to_owned(),
            object_type: TOKENS_TYPE,
            parent: TOKENS_PARENT,
        },
    )
    .await
}

/// How an object's permissions are stored and shown.
struct ObjectKind {
    /// The `object_permissions` key.
    key: String,
    /// `object_id` as the API shows it.
    object_id: String,
    object_type: &'static str,
    /// Where admins' `CAN_MANAGE` is shown to come from.
    parent: &'static str,
}

/// An object's permissions as `ObjectPermissions`: the `admins` group's implicit
/// `CAN_MANAGE`, then the direct grants to groups, users and service principals, each by name.
async fn object_permissions(
    conn: &mut AnyConnection,
    workspace_id: i64,
    object: &ObjectKind,
) -> Result<Value, ControlError> {
    let direct = |level: &str| json!([{ "permission_level": level, "inherited": false }]);
    let mut groups = Vec::new();
    let mut users = Vec::new();
    let mut service_principals = Vec::new();
    for grant in permissions::grants(conn, workspace_id, &object.key).await? {
        let level = grant.permission_level.as_str();
        if let Some(group) = principals::group(conn, grant.grantee_id).await? {
            groups.push((
                group.display_name.clone(),
                json!({ "group_name": group.display_name, "all_permissions": direct(level) }),
            ));
        } else if let Some(p) = principals::get(conn, grant.grantee_id).await? {
            if p.kind == PrincipalKind::ServicePrincipal {
                let app = p.application_id.clone().unwrap_or_default();
                service_principals.push((
                    app.clone(),
                    json!({ "service_principal_name": app, "display_name": p.display_name,
                            "all_permissions": direct(level) }),
                ));
            } else {
                users.push((
                    p.user_name.clone(),
                    json!({ "user_name": p.user_name, "display_name": p.display_name,
                            "all_permissions": direct(level) }),
                ));
            }
        }
    }
    let mut acl = vec![json!({
        "group_name": ADMINS_GROUP,
        "all_permissions": [{
            "permission_level": CAN_MANAGE,
            "inherited": true,
            "inherited_from_object": [object.parent],
        }],
    })];
    for mut part in [groups, users, service_principals] {
        part.sort_by(|a, b| a.0.cmp(&b.0));
        acl.extend(part.into_iter().map(|(_, entry)| entry));
    }
    Ok(json!({
        "object_id": object.object_id,
        "object_type": object.object_type,
        "access_control_list": acl,
    }))
}

/// `GET /api/2.0/permissions/authorization/tokens`.
pub(crate) async fn get_tokens(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let mut conn = state.store().conn().await?;
    Ok(Json(
        token_permissions(&mut conn, caller.workspace_id()).await?,
    ))
}

/// `GET /api/2.0/permissions/authorization/tokens/permissionLevels`.
pub(crate) async fn token_levels(caller: WorkspaceCaller) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    Ok(Json(json!({ "permission_levels": [
        { "permission_level": CAN_USE,
          "description": "Can create personal access tokens and use them to authenticate" },
        { "permission_level": CAN_MANAGE,
          "description": "Can manage all tokens of the workspace and who may use them (workspace admins only)" },
    ]})))
}

/// Applies a request: `replace` drops every direct grant first (`PUT`).
async fn change_tokens(
    state: &AppState,
    caller: &WorkspaceCaller,
    req: AclRequest,
    replace: bool,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let workspace_id = caller.workspace_id();
    let mut tx = state.store().begin_write().await?;
    let mut grants = Vec::new();
    for (index, entry) in req.access_control_list.iter().enumerate() {
        if let Change::Grant(id) = check_entry(tx.conn(), workspace_id, index, entry).await? {
            grants.push(id);
        }
    }
    if replace {
        permissions::clear(tx.conn(), workspace_id, TOKENS_OBJECT).await?;
    }
    for id in grants {
        permissions::grant(tx.conn(), workspace_id, TOKENS_OBJECT, id, CAN_USE).await?;
    }
    let body = token_permissions(tx.conn(), workspace_id).await?;
    tx.commit().await?;
    Ok(Json(body))
}

/// `PUT /api/2.0/permissions/authorization/tokens`: replaces every direct grant.
pub(crate) async fn set_tokens(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    JsonBody(req): JsonBody<AclRequest>,
) -> Result<Json<Value>, ControlError> {
    change_tokens(&state, &caller, req, true).await
}

/// `PATCH /api/2.0/permissions/authorization/tokens`: adds grants.
pub(crate) async fn update_tokens(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    JsonBody(req): JsonBody<AclRequest>,
) -> Result<Json<Value>, ControlError> {
    change_tokens(&state, &caller, req, false).await
}

/// 404 for an object of another type: none exist yet.
fn no_object(params: &PathParams) -> Result<ControlError, ControlError> {
    let shown = |s: String| s.chars().take(100).collect::<String>();
    let object_type = shown(params.get("object_type")?);
    let object_id = shown(params.get("object_id")?);
    Ok(ControlError::NotFound(format!(
        "{object_type} `{object_id}` does not exist"
    )))
}

/// `GET /api/2.0/permissions/{type}/{id}[/permissionLevels]` for other objects.
pub(crate) async fn get_object(
    _caller: WorkspaceCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    Err(no_object(&params)?)
}

/// `PUT`/`PATCH /api/2.0/permissions/{type}/{id}` for other objects.
pub(crate) async fn set_object(
    _caller: WorkspaceCaller,
    params: PathParams,
    JsonBody(_req): JsonBody<AclRequest>,
) -> Result<Json<Value>, ControlError> {
    Err(no_object(&params)?)
}

/// Where admins' `CAN_MANAGE` on a warehouse is shown to come from.
const WAREHOUSES_PARENT: &str = "/sql/warehouses/";
/// `object_type` of warehouse permissions.
const WAREHOUSES_TYPE: &str = "warehouses";
/// The level only a user or service principal may hold, and one at a time.
const IS_OWNER: &str = "IS_OWNER";

fn warehouse_kind(id: &str) -> ObjectKind {
    ObjectKind {
        key: warehouses::object_key(id),
        object_id: format!("{WAREHOUSES_PARENT}{id}"),
        object_type: WAREHOUSES_TYPE,
        parent: WAREHOUSES_PARENT,
    }
}

/// The warehouse of the route, checked: it exists in the caller's workspace and is not
/// deleted (404 otherwise), and the caller is a workspace admin or holds `CAN_MANAGE` (or
/// `IS_OWNER`) on it, directly or through a group (403 otherwise).
async fn managed_warehouse(
    conn: &mut AnyConnection,
    caller: &WorkspaceCaller,
    params: &PathParams,
) -> Result<String, ControlError> {
    let id = params.get("warehouse_id")?;
    let missing = || {
        let shown: String = id.chars().take(100).collect();
        ControlError::NotFound(format!("warehouse `{shown}` does not exist"))
    };
    if !warehouses::is_id(&id) {
        return Err(missing());
    }
    let warehouse = warehouses::get(conn, caller.workspace_id(), &id)
        .await?
        .filter(|w| w.state != WarehouseState::Deleted)
        .ok_or_else(missing)?;
    if caller.require_admin().is_ok() {
        return Ok(id);
    }
    let mine: Vec<String> = std::iter::once(caller.principal.id)
        .chain(caller.groups.iter().map(|g| g.id))
        .map(|id| id.to_string())
        .collect();
    let manages = warehouse.acl.iter().any(|grant| {
        mine.contains(&grant.grantee_id)
            && (grant.permission_level == CAN_MANAGE || grant.permission_level == IS_OWNER)
    });
    if manages {
        Ok(id)
    } else {
        Err(ControlError::PermissionDenied(format!(
            "`{}` may not manage the permissions of warehouse `{id}`",
            caller.principal.user_name
        )))
    }
}

/// `GET /api/2.0/permissions/warehouses/{id}`.
pub(crate) async fn get_warehouse(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let mut conn = state.store().conn().await?;
    let id = managed_warehouse(&mut conn, &caller, &params).await?;
    Ok(Json(
        object_permissions(&mut conn, caller.workspace_id(), &warehouse_kind(&id)).await?,
    ))
}

/// `GET /api/2.0/permissions/warehouses/{id}/permissionLevels`.
pub(crate) async fn warehouse_levels(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let mut conn = state.store().conn().await?;
    managed_warehouse(&mut conn, &caller, &params).await?;
    let description = |level: &str| match level {
        "CAN_VIEW" => "Can see the warehouse and its queries' metadata",
        "CAN_MONITOR" => "Can view the warehouse and monitor its queries",
        "CAN_USE" => "Can start the warehouse and run statements on it",
        "CAN_MANAGE" => "Can edit, start, stop and delete the warehouse and manage its permissions",
        _ => "Owns the warehouse: can do everything CAN_MANAGE can",
    };
    let levels: Vec<Value> = WAREHOUSE_LEVELS
        .iter()
        .map(|level| json!({ "permission_level": level, "description": description(level) }))
        .collect();
    Ok(Json(json!({ "permission_levels": levels })))
}

/// Checks entry `index` of a warehouse request: the grant it makes, or `None` for the
/// workspace `admins` group, whose `CAN_MANAGE` is implicit.
async fn check_warehouse_entry(
    conn: &mut AnyConnection,
    workspace_id: i64,
    index: usize,
    entry: &AccessControlRequest,
) -> Result<Option<(i64, &'static str)>, ControlError> {
    check_names(index, entry)?;
    let requested = entry.permission_level.trim();
    let Some(level) = WAREHOUSE_LEVELS.iter().copied().find(|l| *l == requested) else {
        let shown: String = requested.chars().take(40).collect();
        return Err(ControlError::InvalidParameter(format!(
            "`access_control_list[{index}].permission_level`: `{shown}` is not a permission level of warehouses; expected one of {}",
            WAREHOUSE_LEVELS.join(", ")
        )));
    };
    match find_grantee(conn, workspace_id, index, entry, true).await? {
        Grantee::Group(group) if level == IS_OWNER => {
            Err(ControlError::InvalidParameter(format!(
                "`access_control_list[{index}]`: group `{}` cannot own a warehouse; only a user or service principal can",
                group.display_name
            )))
        }
        Grantee::Group(group)
            if group.workspace_id == Some(workspace_id) && group.display_name == ADMINS_GROUP =>
        {
            Ok(None)
        }
        Grantee::Group(group) => Ok(Some((group.id, level))),
        Grantee::Principal(principal) => Ok(Some((principal.id, level))),
    }
}

/// Applies a warehouse request: `replace` drops every direct grant first (`PUT`), but for the
/// owner's, which goes only to a new owner.
async fn change_warehouse(
    state: &AppState,
    caller: &WorkspaceCaller,
    params: &PathParams,
    req: AclRequest,
    replace: bool,
) -> Result<Json<Value>, ControlError> {
    let workspace_id = caller.workspace_id();
    let mut tx = state.store().begin_write().await?;
    let id = managed_warehouse(tx.conn(), caller, params).await?;
    let key = warehouses::object_key(&id);
    let mut grants = Vec::new();
    for (index, entry) in req.access_control_list.iter().enumerate() {
        if let Some(grant) = check_warehouse_entry(tx.conn(), workspace_id, index, entry).await? {
            grants.push(grant);
        }
    }
    let owners = grants
        .iter()
        .filter(|(_, level)| *level == IS_OWNER)
        .count();
    if owners > 1 {
        return Err(ControlError::InvalidParameter(
            "a warehouse has one owner: `IS_OWNER` may appear once".into(),
        ));
    }
    let current = permissions::grants(tx.conn(), workspace_id, &key).await?;
    let owner = current.iter().find(|g| g.permission_level == IS_OWNER);
    if replace {
        permissions::clear(tx.conn(), workspace_id, &key).await?;
        if let (Some(owner), 0) = (owner, owners) {
            permissions::grant(tx.conn(), workspace_id, &key, owner.grantee_id, IS_OWNER).await?;
        }
    } else if let (Some(owner), 1) = (owner, owners) {
        // Ownership moves: the previous owner keeps nothing but what it is granted anew.
        permissions::revoke(tx.conn(), workspace_id, &key, owner.grantee_id).await?;
    }
    for (grantee, level) in grants {
        permissions::grant(tx.conn(), workspace_id, &key, grantee, level).await?;
    }
    let body = object_permissions(tx.conn(), workspace_id, &warehouse_kind(&id)).await?;
    tx.commit().await?;
    Ok(Json(body))
}

/// `PUT /api/2.0/permissions/warehouses/{id}`: replaces the direct grants.
pub(crate) async fn set_warehouse(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
    JsonBody(req): JsonBody<AclRequest>,
) -> Result<Json<Value>, ControlError> {
    change_warehouse(&state, &caller, &params, req, true).await
}

/// `PATCH /api/2.0/permissions/warehouses/{id}`: adds grants, or changes a grantee's level.
pub(crate) async fn update_warehouse(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
    JsonBody(req): JsonBody<AclRequest>,
) -> Result<Json<Value>, ControlError> {
    change_warehouse(&state, &caller, &params, req, false).await
}
