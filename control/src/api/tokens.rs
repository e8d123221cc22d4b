//! Personal access tokens: the caller's own (`/api/2.0/token/*`) and, for workspace admins,
//! everyone's in the workspace (`/api/2.0/token-management/*`). Semantics (reference 2.1,
//! 2.2, 4.2):
//!
//! - the value is returned once, at creation; only its hash is stored;
//! - `lifetime_seconds` must be positive. Absent, it is 730 days (2 years), capped at the
//!   workspace's `maxTokenLifetimeDays` when that is set (so a client that names no lifetime
//!   still gets a token); given and above that maximum, the creation is refused with 400
//!   `INVALID_PARAMETER_VALUE`. The maximum applies to new tokens only;
//! - while workspace-conf `enableTokensConfig` is `"false"` creation is refused with 403
//!   `PERMISSION_DENIED` (listing and deleting still work);
//! - creating one's own token needs `CAN_USE` on `authorization/tokens` (directly or through a
//!   group) or workspace admin rights, else 403 `PERMISSION_DENIED` (see `permissions`).
//!   On-behalf-of creation is an admin's act and is not checked against the service
//!   principal's permission; the gateway refuses the token while the service principal may
//!   not use tokens in the workspace;
//! - a principal holds at most 600 tokens per workspace (400 `QUOTA_EXCEEDED`);
//! - a user sees, changes and deletes only their own tokens in this workspace: anyone else's
//!   token id answers 404 `RESOURCE_DOES_NOT_EXIST`, exactly like an unknown one;
//! - times are milliseconds since the epoch; `expiry_time` `-1` is no expiry.
//!
//! Messages never repeat a token id back: a confused client may have sent a token's value
//! in its place, and error messages are logged.

use super::extract::WorkspaceCaller;
use super::workspace_conf::{self, ENABLE_TOKENS_CONFIG};
use super::AppState;
use crate::error::ControlError;
use crate::store::directory::Principal;
use crate::store::permissions;
use crate::store::principals;
use crate::store::tokens::{self, Filter, Token};
use crate::store::workspaces::Workspace;
use crate::store::{new_token_id, now_ms, settings};
use axum::extract::State;
use axum::Json;
use lakeward_frame::server::{JsonBody, PathParams, QueryParams};
use serde::Deserialize;
use serde_json::{json, Value};

/// The lifetime of a token created without `lifetime_seconds`: 2 years.
pub(crate) const DEFAULT_LIFETIME_SECS: i64 = 730 * 86_400;
/// Longest lifetime accepted at all (100 years), which keeps expiry arithmetic far from
/// overflow.
const MAX_LIFETIME_SECS: i64 = 100 * 365 * 86_400;
/// Tokens one principal may hold in one workspace.
pub(crate) const MAX_TOKENS_PER_PRINCIPAL: i64 = 600;

#[derive(Debug, Deserialize)]
pub(crate) struct CreateRequest {
    comment: Option<String>,
    lifetime_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CreateOnBehalfOfRequest {
    application_id: String,
    comment: Option<String>,
    lifetime_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DeleteRequest {
    token_id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UpdateRequest {
    token: Option<TokenPatch>,
    update_mask: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenPatch {
    comment: Option<String>,
}

/// `PublicTokenInfo`: what a token's owner sees.
fn public_info(token: &Token) -> Value {
    json!({
        "token_id": token.token_id,
        "comment": token.comment,
        "creation_time": token.creation_time,
        "expiry_time": token.expiry_time,
    })
}

/// `TokenInfo`: what a workspace admin sees.
fn admin_info(token: &Token) -> Value {
    json!({
        "token_id": token.token_id,
        "comment": token.comment,
        "creation_time": token.creation_time,
        "expiry_time": token.expiry_time,
        "created_by_id": token.created_by_id,
        "created_by_username": token.created_by_username.clone().unwrap_or_default(),
        "owner_id": token.owner_id,
        "workspace_id": token.workspace_id,
    })
}

fn not_found() -> ControlError {
    ControlError::NotFound("the token does not exist".into())
}

/// The expiry of a token created at `now_ms`, per the module's lifetime rules.
fn expiry_time(
    now_ms: i64,
    requested: Option<i64>,
    max_days: Option<i64>,
) -> Result<i64, ControlError> {
    let max_secs = max_days.map(|days| days.saturating_mul(86_400));
    let lifetime = match requested {
        None => max_secs.map_or(DEFAULT_LIFETIME_SECS, |max| max.min(DEFAULT_LIFETIME_SECS)),
        Some(secs) if secs <= 0 => {
            return Err(ControlError::InvalidParameter(
                "`lifetime_seconds` must be a positive number of seconds".into(),
            ))
        }
        Some(secs) if secs > MAX_LIFETIME_SECS => {
            return Err(ControlError::InvalidParameter(format!(
                "`lifetime_seconds` must be at most {MAX_LIFETIME_SECS}"
            )))
        }
        Some(secs) => {
            if let (Some(max), Some(days)) = (max_secs, max_days) {
                if secs > max {
                    return Err(ControlError::InvalidParameter(format!(
                        "`lifetime_seconds` {secs} exceeds this workspace's maximum token lifetime of {days} days"
                    )));
                }
            }
            secs
        }
    };
    Ok(now_ms.saturating_add(lifetime.saturating_mul(1000)))
}

/// Who asks for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Issuer {
    /// The owner, for itself: it needs token usage permission.
    Owner,
    /// A workspace admin, on behalf of a service principal.
    Admin,
}

/// Creates a token for `owner`, made by `creator`, in one write transaction (so the quota,
/// permission and workspace-conf checks see every earlier commit). Returns the value and the
/// stored token.
async fn issue(
    state: &AppState,
    workspace: &Workspace,
    (owner, creator, issuer): (&Principal, &Principal, Issuer),
    lifetime_seconds: Option<i64>,
    comment: Option<String>,
) -> Result<(String, Token), ControlError> {
    let workspace_id = workspace.workspace_id;
    let mut tx = state.store().begin_write().await?;
    let conf = settings::workspace_conf(tx.conn(), workspace_id).await?;
    if !workspace_conf::is_on(&conf, ENABLE_TOKENS_CONFIG) {
        return Err(ControlError::PermissionDenied(
            "personal access tokens are disabled in this workspace".into(),
        ));
    }
    if issuer == Issuer::Owner {
        let groups = principals::groups_of(tx.conn(), owner.id).await?;
        let allowed = permissions::token_use_workspaces(tx.conn(), owner.id, &groups).await?;
        if !allowed.contains(&workspace_id) {
            return Err(ControlError::PermissionDenied(format!(
                "`{}` does not have CAN_USE permission on personal access tokens in this workspace",
                owner.user_name
            )));
        }
    }
    let now = now_ms();
    let expiry = expiry_time(
        now,
        lifetime_seconds,
        workspace_conf::max_token_lifetime_days(&conf),
    )?;
    if tokens::count_owned(tx.conn(), workspace_id, owner.id).await? >= MAX_TOKENS_PER_PRINCIPAL {
        return Err(ControlError::QuotaExceeded(format!(
            "`{}` already has {MAX_TOKENS_PER_PRINCIPAL} tokens in this workspace, the most allowed",
            owner.user_name
        )));
    }
    let value = lakeward_common::token::generate_token();
    let token = Token {
        token_id: new_token_id(),
        workspace_id,
        owner_id: owner.id,
        created_by_id: creator.id,
        created_by_username: Some(creator.user_name.clone()),
        comment: comment.unwrap_or_default(),
        creation_time: now,
        expiry_time: expiry,
    };
    tokens::insert(
        tx.conn(),
        &token,
        &lakeward_common::token::hash_token(&value),
    )
    .await?;
    tx.commit().await?;
    Ok((value, token))
}

/// The new comment an update asks for: `update_mask` may name `comment` only (or be `*`);
/// without a mask, the fields present in `token` are updated.
fn requested_comment(req: UpdateRequest) -> Result<Option<String>, ControlError> {
    let comment = req.token.and_then(|t| t.comment);
    match req.update_mask.as_deref().map(str::trim) {
        None | Some("") => Ok(comment),
        Some(mask) => {
            for field in mask.split(',').map(str::trim) {
                if field != "comment" && field != "*" {
                    let field: String = field.chars().take(50).collect();
                    return Err(ControlError::InvalidParameter(format!(
                        "`update_mask` names `{field}`; only `comment` can be updated"
                    )));
                }
            }
            Ok(Some(comment.unwrap_or_default()))
        }
    }
}

/// Sets a token's comment (the owner's own when `owner` is given).
async fn set_comment(
    state: &AppState,
    workspace_id: i64,
    token_id: &str,
    owner: Option<i64>,
    req: UpdateRequest,
) -> Result<(), ControlError> {
    let comment = requested_comment(req)?;
    let mut tx = state.store().begin_write().await?;
    if tokens::get(tx.conn(), workspace_id, token_id, owner)
        .await?
        .is_none()
    {
        return Err(not_found());
    }
    if let Some(comment) = comment {
        tokens::set_comment(tx.conn(), workspace_id, token_id, owner, &comment).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn delete_token(
    state: &AppState,
    workspace_id: i64,
    token_id: &str,
    owner: Option<i64>,
) -> Result<(), ControlError> {
    let mut tx = state.store().begin_write().await?;
    if !tokens::delete(tx.conn(), workspace_id, token_id, owner).await? {
        return Err(not_found());
    }
    tx.commit().await?;
    Ok(())
}

// === the caller's own tokens ===

/// `POST /api/2.0/token/create`.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<Json<Value>, ControlError> {
    let (value, token) = issue(
        &state,
        &caller.workspace,
        (&caller.principal, &caller.principal, Issuer::Owner),
        req.lifetime_seconds,
        req.comment,
    )
    .await?;
    Ok(Json(
        json!({ "token_value": value, "token_info": public_info(&token) }),
    ))
}

/// `GET /api/2.0/token/list`: the caller's tokens in this workspace.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
) -> Result<Json<Value>, ControlError> {
    let mut conn = state.store().conn().await?;
    let filter = Filter {
        workspace_id: caller.workspace_id(),
        owner_id: Some(caller.principal.id),
        ..Filter::default()
    };
    let found = tokens::list(&mut conn, &filter).await?;
    Ok(Json(
        json!({ "token_infos": found.iter().map(public_info).collect::<Vec<_>>() }),
    ))
}

/// `POST /api/2.0/token/delete`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    JsonBody(req): JsonBody<DeleteRequest>,
) -> Result<Json<Value>, ControlError> {
    let owner = Some(caller.principal.id);
    delete_token(&state, caller.workspace_id(), &req.token_id, owner).await?;
    Ok(Json(json!({})))
}

/// `PATCH /api/2.0/token/{token_id}`: the comment only.
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> Result<Json<Value>, ControlError> {
    let token_id = params.get("token_id")?;
    let owner = Some(caller.principal.id);
    set_comment(&state, caller.workspace_id(), &token_id, owner, req).await?;
    Ok(Json(json!({})))
}

// === token management (workspace admins) ===

/// `GET /api/2.0/token-management/tokens?created_by_id=&created_by_username=`.
pub(crate) async fn admin_list(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    query: QueryParams,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let filter = Filter {
        workspace_id: caller.workspace_id(),
        owner_id: None,
        created_by_id: query.get_i64("created_by_id")?,
        created_by_username: query.get("created_by_username").map(str::to_owned),
    };
    let mut conn = state.store().conn().await?;
    let found = tokens::list(&mut conn, &filter).await?;
    Ok(Json(
        json!({ "token_infos": found.iter().map(admin_info).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/2.0/token-management/tokens/{token_id}`.
pub(crate) async fn admin_get(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let token_id = params.get("token_id")?;
    let mut conn = state.store().conn().await?;
    let token = tokens::get(&mut conn, caller.workspace_id(), &token_id, None)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(json!({ "token_info": admin_info(&token) })))
}

/// `DELETE /api/2.0/token-management/tokens/{token_id}`.
pub(crate) async fn admin_delete(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let token_id = params.get("token_id")?;
    delete_token(&state, caller.workspace_id(), &token_id, None).await?;
    Ok(Json(json!({})))
}

/// `PATCH /api/2.0/token-management/tokens/{token_id}`: the comment only; answers the
/// updated `TokenInfo`.
pub(crate) async fn admin_update(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    params: PathParams,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let token_id = params.get("token_id")?;
    let workspace_id = caller.workspace_id();
    set_comment(&state, workspace_id, &token_id, None, req).await?;
    let mut conn = state.store().conn().await?;
    let token = tokens::get(&mut conn, workspace_id, &token_id, None)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(admin_info(&token)))
}

/// `POST /api/2.0/token-management/on-behalf-of/tokens`: a token for a service principal,
/// named by its application id (404 when there is none). The service principal need not be a
/// member of the workspace yet: the gateway refuses its calls until it is.
pub(crate) async fn create_on_behalf_of(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    JsonBody(req): JsonBody<CreateOnBehalfOfRequest>,
) -> Result<Json<Value>, ControlError> {
    caller.require_admin()?;
    let owner = {
        let mut conn = state.store().conn().await?;
        principals::service_principal(&mut conn, req.application_id.trim()).await?
    };
    let owner = owner.ok_or_else(|| {
        let shown: String = req.application_id.chars().take(100).collect();
        ControlError::NotFound(format!("service principal `{shown}` does not exist"))
    })?;
    let (value, token) = issue(
        &state,
        &caller.workspace,
        (&owner, &caller.principal, Issuer::Admin),
        req.lifetime_seconds,
        req.comment,
    )
    .await?;
    Ok(Json(
        json!({ "token_value": value, "token_info": admin_info(&token) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        let now = 1_000_000;
        assert_eq!(
            expiry_time(now, None, None).unwrap(),
            now + DEFAULT_LIFETIME_SECS * 1000
        );
        // Absent lifetime under a maximum: capped at the maximum.
        assert_eq!(
            expiry_time(now, None, Some(30)).unwrap(),
            now + 30 * 86_400_000
        );
        assert_eq!(expiry_time(now, Some(60), Some(30)).unwrap(), now + 60_000);
        assert!(expiry_time(now, Some(31 * 86_400), Some(30)).is_err());
        assert!(expiry_time(now, Some(0), None).is_err());
        assert!(expiry_time(now, Some(-1), None).is_err());
        assert!(expiry_time(now, Some(i64::MAX), None).is_err());
        // No maximum: more than the default is allowed.
        assert!(expiry_time(now, Some(3 * 365 * 86_400), None).is_ok());
    }

    #[test]
    fn update_masks() {
        let req = |mask: Option<&str>, comment: Option<&str>| UpdateRequest {
            token: Some(TokenPatch {
                comment: comment.map(str::to_owned),
            }),
            update_mask: mask.map(str::to_owned),
        };
        assert_eq!(
            requested_comment(req(Some("comment"), Some("x"))).unwrap(),
            Some("x".into())
        );
        assert_eq!(
            requested_comment(req(None, Some("x"))).unwrap(),
            Some("x".into())
        );
        assert_eq!(requested_comment(req(None, None)).unwrap(), None);
        assert_eq!(
            requested_comment(req(Some("comment"), None)).unwrap(),
            Some(String::new())
        );
        assert!(requested_comment(req(Some("comment,scopes"), Some("x"))).is_err());
    }
}
