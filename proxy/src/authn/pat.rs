//! Personal access tokens: hashed here, resolved (and cached) through the control plane, the
//! hash compared in constant time, expiry and workspace checked on every request.
//!
//! A token identifies its owner. It authenticates in every workspace where the owner may use
//! tokens (an admin there, or holding `CAN_USE` on `authorization/tokens`), not only in the
//! workspace it was created in: an account admin who creates a workspace uses it at once with
//! the token in hand, as the SDK's account-then-workspace flow expects. Whether the owner may
//! act in the workspace at all (assignment) is Cedar's decision, one stage later.

use super::AuthnError;
use crate::ctx::{AuthMethod, Principal, RequestCtx, Scope};
use crate::shared::Shared;
use lakeward_common::internal::ResolvedToken;
use lakeward_common::token::{hash_token, hashes_equal};

/// `expiry_time_ms` of a token that never expires.
const NO_EXPIRY: i64 = -1;

pub(super) async fn authenticate(
    shared: &Shared,
    ctx: &RequestCtx,
    token: &str,
) -> Result<Principal, AuthnError> {
    let hash = hash_token(token);
    let resolved = shared
        .state
        .resolve_token(&hash)
        .await?
        .ok_or(AuthnError::UnknownToken)?;
    check(&resolved, &hash, ctx)?;
    let record = resolved.principal;
    Ok(Principal {
        record,
        auth_method: AuthMethod::Pat,
        token_id: Some(resolved.token_id),
    })
}

/// Hash, expiry, token usage in the workspace addressed, and its `enableTokensConfig`.
fn check(resolved: &ResolvedToken, hash: &str, ctx: &RequestCtx) -> Result<(), AuthnError> {
    if !hashes_equal(&resolved.token_hash, hash) {
        return Err(AuthnError::UnknownToken);
    }
    // Any negative value other than "never" is nonsense: treat it as expired.
    let expired = match resolved.expiry_time_ms {
        NO_EXPIRY => false,
        ms => ms <= ctx.received_unix_ms,
    };
    if expired {
        return Err(AuthnError::Expired);
    }
    let principal = &resolved.principal;
    let workspace = match &ctx.scope {
        Some(Scope::Workspace(ws)) => {
            if !principal.token_use_workspaces.contains(&ws.id) {
                return Err(AuthnError::WrongWorkspace);
            }
            ws.clone()
        }
        // Account-level routes: the token counts while its own workspace exists and allows
        // tokens.
        Some(Scope::Account) => ctx
            .snapshot
            .as_ref()
            .and_then(|s| s.workspace(resolved.workspace_id).cloned())
            .ok_or(AuthnError::WrongWorkspace)?,
        None => return Err(AuthnError::WrongWorkspace),
    };
    // With tokens switched off, only the workspace's admins keep using theirs: they are the
    // ones who can switch tokens back on, and a PAT may be their only credential.
    if !workspace.enable_tokens && !principal.is_workspace_admin(workspace.id) {
        return Err(AuthnError::TokensDisabled);
    }
    Ok(())
}
