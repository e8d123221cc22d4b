//! Extractors: who is calling, from the assertion the frame verified ([`Verified`]). Request
//! bodies, paths and query strings are read with the frame's extractors
//! ([`lakeward_frame::server`]).

use super::AppState;
use crate::error::ControlError;
use crate::store::directory::{Group, Principal};
use crate::store::principals;
use crate::store::workspaces::{self, Workspace};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lakeward_common::assertion::{Audience, IdentityClaims, PrincipalKind};
use lakeward_common::internal::{ADMINS_GROUP, USERS_GROUP};
use lakeward_frame::server::{PathParams, Verified};
use sqlx::AnyConnection;
use std::sync::Arc;

/// The claims of an assertion verified with the control key: the gateway's, naming a user, a
/// service principal or the gateway itself.
///
/// An assertion verified with the data-plane key is never a `Caller`, so that no extractor
/// written for the gateway's callers can mistake the runtime for one of them.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Arc<IdentityClaims>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Verified>() {
            Some(verified) if verified.audience() == Audience::Control => {
                Ok(Caller(verified.claims().clone()))
            }
            // The runtime's key opens the data-plane routes only; elsewhere it is told, as
            // anyone is about routes hidden from them, that there is nothing here.
            Some(_) => Err(not_found(parts)),
            None => Err(ControlError::Unauthenticated(
                "identity assertion missing".into(),
            )),
        }
    }
}

/// The runtime, calling the data-plane internal API with an assertion verified with the
/// data-plane key. Anyone else, the gateway included, is told these routes do not exist.
#[derive(Debug)]
pub(crate) struct RuntimeCaller;

impl<S: Send + Sync> FromRequestParts<S> for RuntimeCaller {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Verified>() {
            // The middleware admits no other kind with this key; checked again so that the
            // rule holds here whatever the middleware becomes.
            Some(verified)
                if verified.audience() == Audience::DataPlane
                    && verified.claims().kind == PrincipalKind::Runtime =>
            {
                Ok(RuntimeCaller)
            }
            _ => Err(not_found(parts)),
        }
    }
}

/// The gateway or the runtime: the internal routes both use (principal resolution and the
/// change feed).
#[derive(Debug)]
pub(crate) struct InternalCaller;

impl<S: Send + Sync> FromRequestParts<S> for InternalCaller {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let data_plane = parts
            .extensions
            .get::<Verified>()
            .is_some_and(|verified| verified.audience() == Audience::DataPlane);
        if data_plane {
            RuntimeCaller::from_request_parts(parts, state).await?;
        } else {
            GatewayCaller::from_request_parts(parts, state).await?;
        }
        Ok(InternalCaller)
    }
}

/// 404 `ENDPOINT_NOT_FOUND` for a route hidden from this caller, worded like an unknown one.
fn not_found(parts: &Parts) -> ControlError {
    ControlError::no_route(&parts.method, &parts.uri)
}

/// A user or service principal calling a workspace API: the assertion named a workspace, the
/// workspace exists, and the principal exists, is active and is a member of it.
#[derive(Debug)]
pub(crate) struct WorkspaceCaller {
    pub(crate) claims: Arc<IdentityClaims>,
    pub(crate) principal: Principal,
    pub(crate) groups: Vec<Group>,
    pub(crate) workspace: Workspace,
}

impl WorkspaceCaller {
    pub(crate) fn workspace_id(&self) -> i64 {
        self.workspace.workspace_id
    }

    fn in_group(&self, name: &str) -> bool {
        self.groups
            .iter()
            .any(|g| g.workspace_id == Some(self.workspace_id()) && g.display_name == name)
    }

    /// Defence in depth for admin-only APIs (the gateway's policy already decided): the caller
    /// must be in this workspace's `admins` group.
    pub(crate) fn require_admin(&self) -> Result<(), ControlError> {
        if self.in_group(ADMINS_GROUP) {
            Ok(())
        } else {
            Err(ControlError::PermissionDenied(
                "only workspace admins may use this API".into(),
            ))
        }
    }

    /// Who, and from where, for IP access list changes.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            principal_id: self.principal.id,
            client_ip: self.claims.client_ip.clone(),
        }
    }
}

impl FromRequestParts<AppState> for WorkspaceCaller {
    type Rejection = ControlError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        let workspace_id = claims.workspace_id.ok_or_else(|| {
            ControlError::InvalidParameter("this API is served on workspace hosts only".into())
        })?;
        let mut conn = state.store().conn().await?;
        let (principal, groups) = load_principal(&mut conn, &claims).await?;
        let workspace = workspaces::get(&mut conn, workspace_id)
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!("workspace `{workspace_id}` does not exist"))
            })?;
        let caller = WorkspaceCaller {
            claims,
            principal,
            groups,
            workspace,
        };
        // The gateway admits only members; checked again so that a policy mistake there
        // does not open a workspace to the whole account.
        if !caller.in_group(USERS_GROUP) && !caller.in_group(ADMINS_GROUP) {
            return Err(ControlError::PermissionDenied(format!(
                "`{}` is not a member of workspace `{workspace_id}`",
                caller.principal.user_name
            )));
        }
        Ok(caller)
    }
}

/// An account admin calling an account API under `/api/2.0/accounts/{account_id}/`.
#[derive(Debug)]
pub(crate) struct AccountCaller {
    pub(crate) claims: Arc<IdentityClaims>,
    pub(crate) principal: Principal,
    pub(crate) account_id: String,
}

impl AccountCaller {
    /// Who, and from where, for IP access list changes.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            principal_id: self.principal.id,
            client_ip: self.claims.client_ip.clone(),
        }
    }
}

impl FromRequestParts<AppState> for AccountCaller {
    type Rejection = ControlError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        let params = PathParams::from_request_parts(parts, state).await?;
        let requested = params.get("account_id")?;
        let account = state.account().await?;
        let account = match account {
            Some(account) if account.account_id == requested => account,
            _ => {
                return Err(ControlError::NotFound(format!(
                    "account `{requested}` does not exist"
                )))
            }
        };
        let mut conn = state.store().conn().await?;
        let (principal, groups) = load_principal(&mut conn, &claims).await?;
        // Defence in depth: the gateway's policy already required an account admin.
        if !groups
            .iter()
            .any(|g| g.workspace_id.is_none() && g.display_name == ADMINS_GROUP)
        {
            return Err(ControlError::PermissionDenied(
                "only account admins may use the account API".into(),
            ));
        }
        Ok(AccountCaller {
            claims,
            principal,
            account_id: account.account_id,
        })
    }
}

/// The gateway itself (with the control key). Anyone else is told the internal routes do not
/// exist.
#[derive(Debug)]
pub(crate) struct GatewayCaller;

impl<S: Send + Sync> FromRequestParts<S> for GatewayCaller {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        if claims.kind == PrincipalKind::Gateway {
            Ok(GatewayCaller)
        } else {
            Err(not_found(parts))
        }
    }
}

/// The principal an assertion names, with its groups.
async fn load_principal(
    conn: &mut AnyConnection,
    claims: &IdentityClaims,
) -> Result<(Principal, Vec<Group>), ControlError> {
    if !matches!(
        claims.kind,
        PrincipalKind::User | PrincipalKind::ServicePrincipal
    ) {
        return Err(ControlError::Unauthenticated(
            "this API needs a user or service principal".into(),
        ));
    }
    let unknown = || ControlError::Unauthenticated("the asserted principal does not exist".into());
    let id: i64 = claims.sub.parse().map_err(|_| unknown())?;
    let principal = principals::get(conn, id).await?.ok_or_else(unknown)?;
    if !principal.active {
        return Err(ControlError::PermissionDenied(format!(
            "`{}` is deactivated",
            principal.user_name
        )));
    }
    let groups = principals::groups_of(conn, principal.id).await?;
    Ok((principal, groups))
}

/// Who changes an IP access list, and the address the lockout guard checks.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    pub(crate) principal_id: i64,
    pub(crate) client_ip: String,
}
