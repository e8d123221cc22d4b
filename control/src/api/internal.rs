//! The gateway's internal API (`lakeward_common::internal`). Every handler takes a
//! [`GatewayCaller`], so any other caller is told these routes do not exist; principal
//! resolution and the change feed take an [`InternalCaller`], which admits the runtime too.

use super::extract::{GatewayCaller, InternalCaller};
use super::workspace_conf::{self, ENABLE_IP_ACCESS_LISTS, ENABLE_TOKENS_CONFIG};
use super::AppState;
use crate::error::ControlError;
use crate::store::ip_lists::{self, Scope};
use crate::store::{accounts, principals, settings, tokens, workspaces};
use axum::extract::State;
use axum::Json;
use lakeward_common::internal::{
    ChangesResponse, GatewaySnapshot, PrincipalRecord, ResolvePrincipalRequest,
    ResolveTokenRequest, ResolvedToken, WorkspaceRecord,
};
use lakeward_frame::server::{JsonBody, QueryParams};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// `GET /internal/v1/snapshot`: everything the gateway caches, read in one consistent
/// transaction so that `version` covers exactly what is returned.
pub(crate) async fn snapshot(
    State(state): State<AppState>,
    _gateway: GatewayCaller,
) -> Result<Json<GatewaySnapshot>, ControlError> {
    let mut tx = state.store().begin_read().await?;
    let version = crate::store::read_version(&mut tx).await?;
    let account = accounts::get(&mut tx).await?;
    let account_enabled =
        settings::account_setting(&mut tx, super::ip_lists::ACCOUNT_ENABLE_SETTING)
            .await?
            .is_none_or(|(value, _)| value != "false");
    let all_workspaces = workspaces::list(&mut tx).await?;
    let conf = settings::all_workspace_conf(&mut tx).await?;
    let lists = ip_lists::all(&mut tx).await?;
    tx.rollback().await?;

    let mut by_scope: HashMap<Scope, Vec<_>> = HashMap::new();
    for list in &lists {
        by_scope.entry(list.scope).or_default().push(list.rule());
    }
    let empty = Default::default();
    let workspaces = all_workspaces
        .into_iter()
        .map(|ws| {
            let ws_conf = conf.get(&ws.workspace_id).unwrap_or(&empty);
            WorkspaceRecord {
                workspace_id: ws.workspace_id,
                workspace_name: ws.workspace_name,
                deployment_name: ws.deployment_name,
                workspace_status: ws.workspace_status,
                enable_ip_access_lists: workspace_conf::is_on(ws_conf, ENABLE_IP_ACCESS_LISTS),
                enable_tokens: workspace_conf::is_on(ws_conf, ENABLE_TOKENS_CONFIG),
                ip_access_lists: by_scope
                    .remove(&Scope::Workspace(ws.workspace_id))
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(Json(GatewaySnapshot {
        version,
        account_id: account.map(|a| a.account_id).unwrap_or_default(),
        account_ip_acl_enabled: account_enabled,
        account_ip_access_lists: by_scope.remove(&Scope::Account).unwrap_or_default(),
        workspaces,
    }))
}

/// `POST /internal/v1/resolve-token`: the token stored under the hash, with its owner and
/// all the owner's groups; 404 when there is none (or its owner is gone).
pub(crate) async fn resolve_token(
    State(state): State<AppState>,
    _gateway: GatewayCaller,
    JsonBody(req): JsonBody<ResolveTokenRequest>,
) -> Result<Json<ResolvedToken>, ControlError> {
    let missing = || ControlError::NotFound("no such token".into());
    let mut conn = state.store().conn().await?;
    let token = tokens::by_hash(&mut conn, &req.token_hash)
        .await?
        .ok_or_else(missing)?;
    let owner = principals::get(&mut conn, token.owner_id)
        .await?
        .ok_or_else(missing)?;
    let principal = principals::record(&mut conn, &owner).await?;
    Ok(Json(ResolvedToken {
        token_id: token.token_id,
        token_hash: req.token_hash,
        workspace_id: token.workspace_id,
        expiry_time_ms: token.expiry_time,
        principal,
    }))
}

/// `POST /internal/v1/resolve-principal`: a user by `userName` or a service principal by
/// application id, with all its groups. The runtime uses it too.
pub(crate) async fn resolve_principal(
    State(state): State<AppState>,
    _caller: InternalCaller,
    JsonBody(req): JsonBody<ResolvePrincipalRequest>,
) -> Result<Json<PrincipalRecord>, ControlError> {
    let mut conn = state.store().conn().await?;
    let principal = principals::by_name(&mut conn, &req.user_name)
        .await?
        .ok_or_else(|| ControlError::NotFound("no such principal".into()))?;
    Ok(Json(principals::record(&mut conn, &principal).await?))
}

/// `GET /internal/v1/changes?after=N`: answers as soon as the version exceeds `N`, or with the
/// current version after the configured timeout (or at once when the server shuts down).
/// Woken by this process's own commits at once, and by other replicas' through polling. The
/// runtime long-polls it too, for its caches of warehouses and the catalog.
pub(crate) async fn changes(
    State(state): State<AppState>,
    _caller: InternalCaller,
    query: QueryParams,
) -> Result<Json<ChangesResponse>, ControlError> {
    let after = match query.get("after") {
        None => 0,
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            ControlError::InvalidParameter("`after` must be a non-negative integer".into())
        })?,
    };
    let config = state.config();
    let deadline = Instant::now() + Duration::from_secs(config.changes_timeout_secs);
    let poll = Duration::from_millis(config.changes_poll_interval_ms);
    let mut local = state.store().subscribe();
    let mut shutdown = state.shutdown_signal();
    loop {
        // Read before waiting: a change committed between two reads is never missed.
        let version = state.store().version().await?;
        if version > after || *shutdown.borrow_and_update() || Instant::now() >= deadline {
            return Ok(Json(ChangesResponse { version }));
        }
        tokio::select! {
            changed = local.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(poll).await;
                }
            }
            _ = shutdown.changed() => {}
            () = tokio::time::sleep(poll) => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// `GET /internal/v1/ready`: 200 once the store is open and migrated (it is, or this server
/// would not exist) and answering; 503 while it does not answer.
pub(crate) async fn ready(
    State(state): State<AppState>,
    _gateway: GatewayCaller,
) -> Result<Json<Value>, ControlError> {
    state.store().ping().await.map_err(|e| {
        tracing::warn!(error = %e, "store not answering");
        ControlError::Unavailable("the control-plane store is not answering".into())
    })?;
    Ok(Json(json!({ "status": "ready" })))
}
