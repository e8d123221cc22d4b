//! IP access lists, workspace (`/api/2.0/ip-access-lists`) and account
//! (`/api/2.0/accounts/{account_id}/ip-access-lists`), with the same shapes and rules:
//!
//! - every entry is an IPv4 address or CIDR (400 `INVALID_PARAMETER_VALUE` naming the entry),
//!   `label` is non-empty, `list_type` is `ALLOW` or `BLOCK`;
//! - all lists of a scope together hold at most 1,000 entries (400 `QUOTA_EXCEEDED`);
//! - **lockout guard**: a create, update, replace or delete whose resulting configuration (the
//!   scope's enabled lists after the change, block lists first, then allow-if-any-allow) would
//!   refuse the caller's own address (`client_ip` of the assertion) is refused with 400
//!   `INVALID_STATE` and changes nothing. Databricks documents the guard for create, update and
//!   replace; we apply it to delete too (deleting the allow list that admits you is the same
//!   mistake). The configuration is evaluated under the scope's *current* feature flag
//!   (workspace-conf `enableIpAccessLists`, account setting `acct_ip_acl_enable`): while the
//!   feature is off lists have no effect, so list changes are not guarded, and turning the
//!   feature on is guarded instead.
//!
//! Workspace lists need a workspace admin, account lists an account admin (defence in depth).

use super::extract::{AccountCaller, Actor, WorkspaceCaller};
use super::lockout::check_lockout;
use super::workspace_conf::{self, ENABLE_IP_ACCESS_LISTS};
use super::AppState;
use crate::error::ControlError;
use crate::store::ip_lists::{self, IpList, Scope};
use crate::store::{now_ms, settings};
use axum::extract::State;
use axum::Json;
use lakeward_common::internal::ListType;
use lakeward_frame::server::{JsonBody, PathParams};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

/// Most entries all lists of one scope may hold together (a CIDR counts as one).
pub(crate) const MAX_ENTRIES: usize = 1000;
/// The account setting that switches account IP access lists on (default on).
pub(crate) const ACCOUNT_ENABLE_SETTING: &str = "acct_ip_acl_enable";
/// Longest label accepted.
const MAX_LABEL_CHARS: usize = 1000;

#[derive(Debug, Deserialize)]
pub(crate) struct CreateRequest {
    label: String,
    list_type: String,
    ip_addresses: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UpdateRequest {
    label: Option<String>,
    list_type: Option<String>,
    enabled: Option<bool>,
    ip_addresses: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReplaceRequest {
    label: String,
    list_type: String,
    enabled: bool,
    ip_addresses: Option<Vec<String>>,
}

/// What a change does to the scope's lists.
enum Change {
    Create(CreateRequest),
    Update(String, UpdateRequest),
    Replace(String, ReplaceRequest),
    Delete(String),
}

/// `IpAccessListInfo`.
fn info(list: &IpList) -> Value {
    json!({
        "list_id": list.list_id,
        "label": list.label,
        "list_type": ip_lists::list_type_text(list.list_type),
        "ip_addresses": list.ip_addresses,
        "address_count": list.ip_addresses.len(),
        "enabled": list.enabled,
        "created_at": list.created_at,
        "created_by": list.created_by,
        "updated_at": list.updated_at,
        "updated_by": list.updated_by,
    })
}

fn validate_label(label: &str) -> Result<String, ControlError> {
    let label = label.trim();
    if label.is_empty() {
        return Err(ControlError::InvalidParameter(
            "`label` must not be empty".into(),
        ));
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(ControlError::InvalidParameter(format!(
            "`label` must be at most {MAX_LABEL_CHARS} characters"
        )));
    }
    Ok(label.to_owned())
}

fn validate_list_type(text: &str) -> Result<ListType, ControlError> {
    match text {
        "ALLOW" => Ok(ListType::Allow),
        "BLOCK" => Ok(ListType::Block),
        other => {
            let other: String = other.chars().take(50).collect();
            Err(ControlError::InvalidParameter(format!(
                "`list_type` must be ALLOW or BLOCK, not `{other}`"
            )))
        }
    }
}

fn validate_addresses(entries: Vec<String>) -> Result<Vec<String>, ControlError> {
    entries
        .into_iter()
        .map(|entry| {
            let trimmed = entry.trim();
            // The gateway's own parser: what is accepted here is exactly what it enforces.
            match lakeward_policy::parse_entry(trimmed) {
                Ok(_) => Ok(trimmed.to_owned()),
                Err(_) => {
                    let shown: String = trimmed.chars().take(60).collect();
                    Err(ControlError::InvalidParameter(format!(
                        "`ip_addresses` entry `{shown}` is not an IPv4 address or CIDR range"
                    )))
                }
            }
        })
        .collect()
}

/// 400 `QUOTA_EXCEEDED` when the lists hold more than [`MAX_ENTRIES`] entries together.
pub(crate) fn check_quota(lists: &[IpList]) -> Result<(), ControlError> {
    let total: usize = lists.iter().map(|l| l.ip_addresses.len()).sum();
    if total > MAX_ENTRIES {
        return Err(ControlError::QuotaExceeded(format!(
            "IP access lists may hold at most {MAX_ENTRIES} addresses and CIDR ranges in total; this change would make {total}"
        )));
    }
    Ok(())
}

/// Whether the scope's lists are in effect.
pub(crate) async fn feature_on(
    conn: &mut AnyConnection,
    scope: Scope,
) -> Result<bool, sqlx::Error> {
    Ok(match scope {
        Scope::Workspace(id) => {
            let conf = settings::workspace_conf(conn, id).await?;
            workspace_conf::is_on(&conf, ENABLE_IP_ACCESS_LISTS)
        }
        Scope::Account => settings::account_setting(conn, ACCOUNT_ENABLE_SETTING)
            .await?
            .is_none_or(|(value, _)| value != "false"),
    })
}

fn not_found(list_id: &str) -> ControlError {
    let shown: String = list_id.chars().take(100).collect();
    ControlError::NotFound(format!("IP access list `{shown}` does not exist"))
}

/// Applies one change inside a write transaction, after the quota and lockout checks.
/// Returns the created or changed list.
async fn apply(
    state: &AppState,
    scope: Scope,
    actor: &Actor,
    change: Change,
) -> Result<Option<IpList>, ControlError> {
    let now = now_ms();
    let mut tx = state.store().begin_write().await?;
    let mut lists = ip_lists::list(tx.conn(), scope).await?;
    let position = |lists: &[IpList], id: &str| {
        lists
            .iter()
            .position(|l| l.list_id == id)
            .ok_or_else(|| not_found(id))
    };
    let write = match change {
        Change::Create(req) => {
            let list = IpList {
                list_id: uuid::Uuid::new_v4().to_string(),
                scope,
                label: validate_label(&req.label)?,
                list_type: validate_list_type(&req.list_type)?,
                enabled: true,
                ip_addresses: validate_addresses(req.ip_addresses.unwrap_or_default())?,
                created_at: now,
                created_by: actor.principal_id,
                updated_at: now,
                updated_by: actor.principal_id,
            };
            lists.push(list.clone());
            Write::Insert(list)
        }
        Change::Update(id, req) => {
            let at = position(&lists, &id)?;
            let list = &mut lists[at];
            if let Some(label) = req.label {
                list.label = validate_label(&label)?;
            }
            if let Some(list_type) = req.list_type {
                list.list_type = validate_list_type(&list_type)?;
            }
            if let Some(enabled) = req.enabled {
                list.enabled = enabled;
            }
            if let Some(addresses) = req.ip_addresses {
                list.ip_addresses = validate_addresses(addresses)?;
            }
            list.updated_at = now;
            list.updated_by = actor.principal_id;
            Write::Update(list.clone())
        }
        Change::Replace(id, req) => {
            let at = position(&lists, &id)?;
            let list = &mut lists[at];
            list.label = validate_label(&req.label)?;
            list.list_type = validate_list_type(&req.list_type)?;
            list.enabled = req.enabled;
            list.ip_addresses = validate_addresses(req.ip_addresses.unwrap_or_default())?;
            list.updated_at = now;
            list.updated_by = actor.principal_id;
            Write::Update(list.clone())
        }
        Change::Delete(id) => {
            let at = position(&lists, &id)?;
            lists.remove(at);
            Write::Delete(id)
        }
    };
    check_quota(&lists)?;
    let on = feature_on(tx.conn(), scope).await?;
    check_lockout(&lists, on, &actor.client_ip)?;
    let result = match write {
        Write::Insert(list) => {
            ip_lists::insert(tx.conn(), &list).await?;
            Some(list)
        }
        Write::Update(list) => {
            ip_lists::update(tx.conn(), &list).await?;
            Some(list)
        }
        Write::Delete(id) => {
            ip_lists::delete(tx.conn(), scope, &id).await?;
            None
        }
    };
    tx.commit().await?;
    Ok(result)
}

/// The statement a change comes down to, once checked.
enum Write {
    Insert(IpList),
    Update(IpList),
    Delete(String),
}

async fn list_all(state: &AppState, scope: Scope) -> Result<Json<Value>, ControlError> {
    let mut conn = state.store().conn().await?;
    let lists = ip_lists::list(&mut conn, scope).await?;
    Ok(Json(
        json!({ "ip_access_lists": lists.iter().map(info).collect::<Vec<_>>() }),
    ))
}

async fn get_one(state: &AppState, scope: Scope, id: &str) -> Result<Json<Value>, ControlError> {
    let mut conn = state.store().conn().await?;
    let list = ip_lists::get(&mut conn, scope, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(json!({ "ip_access_list": info(&list) })))
}

async fn create(
    state: &AppState,
    scope: Scope,
    actor: &Actor,
    req: CreateRequest,
) -> Result<Json<Value>, ControlError> {
    let list = apply(state, scope, actor, Change::Create(req))
        .await?
        .ok_or_else(|| ControlError::Internal("create returned no list".into()))?;
    Ok(Json(json!({ "ip_access_list": info(&list) })))
}

async fn change(
    state: &AppState,
    scope: Scope,
    actor: &Actor,
    change: Change,
) -> Result<Json<Value>, ControlError> {
    apply(state, scope, actor, change).await?;
    Ok(Json(json!({})))
}

// === workspace routes ===

pub(crate) async fn workspace_list(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    list_all(&state, Scope::Workspace(caller.workspace_id())).await
}

pub(crate) async fn workspace_get(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let id = params.get("list_id")?;
    get_one(&state, Scope::Workspace(caller.workspace_id()), &id).await
}

pub(crate) async fn workspace_create(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let scope = Scope::Workspace(caller.workspace_id());
    create(&state, scope, &caller.actor(), req).await
}

pub(crate) async fn workspace_update(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let scope = Scope::Workspace(caller.workspace_id());
    let id = params.get("list_id")?;
    change(&state, scope, &caller.actor(), Change::Update(id, req)).await
}

pub(crate) async fn workspace_replace(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
    JsonBody(req): JsonBody<ReplaceRequest>,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let scope = Scope::Workspace(caller.workspace_id());
    let id = params.get("list_id")?;
    change(&state, scope, &caller.actor(), Change::Replace(id, req)).await
}

pub(crate) async fn workspace_delete(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let scope = Scope::Workspace(caller.workspace_id());
    let id = params.get("list_id")?;
    change(&state, scope, &caller.actor(), Change::Delete(id)).await
}

// === account routes ===

pub(crate) async fn account_list(
    State(state): State<AppState>,
    _caller: AccountCaller,
) -> Result<Json<Value>, ControlError> {
    list_all(&state, Scope::Account).await
}

pub(crate) async fn account_get(
    State(state): State<AppState>,
    _caller: AccountCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let id = params.get("list_id")?;
    get_one(&state, Scope::Account, &id).await
}

pub(crate) async fn account_create(
    State(state): State<AppState>,
    caller: AccountCaller,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<Json<Value>, ControlError> {
    create(&state, Scope::Account, &caller.actor(), req).await
}

pub(crate) async fn account_update(
    State(state): State<AppState>,
    caller: AccountCaller,
    params: PathParams,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> Result<Json<Value>, ControlError> {
    let id = params.get("list_id")?;
    change(
        &state,
        Scope::Account,
        &caller.actor(),
        Change::Update(id, req),
    )
    .await
}

pub(crate) async fn account_replace(
    State(state): State<AppState>,
    caller: AccountCaller,
    params: PathParams,
    JsonBody(req): JsonBody<ReplaceRequest>,
) -> Result<Json<Value>, ControlError> {
    let id = params.get("list_id")?;
    change(
        &state,
        Scope::Account,
        &caller.actor(),
        Change::Replace(id, req),
    )
    .await
}

pub(crate) async fn account_delete(
    State(state): State<AppState>,
    caller: AccountCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let id = params.get("list_id")?;
    change(&state, Scope::Account, &caller.actor(), Change::Delete(id)).await
}
