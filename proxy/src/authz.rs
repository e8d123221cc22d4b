//! Stage 6, authorization: unknown routes end here with 404 (after authentication, so the
//! route table is not probed anonymously), and every known route is decided by Cedar, with
//! the policy bundle read from an `ArcSwap` so a reload reaches requests on open connections.

use crate::ctx::{DecisionInfo, Principal, RequestCtx, Scope};
use crate::exchange::{Exchange, Stage};
use crate::route::{ResourceKind, Route};
use crate::shared::Shared;
use lakeward_common::assertion::PrincipalKind as AssertedKind;
use lakeward_policy::{AuthzRequest, PrincipalInput, PrincipalKind, ResourceInput};
use std::sync::Arc;
use std::time::Instant;

/// Why authorization refused a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthzError {
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("{who} may not {action} on {resource}")]
    Denied {
        who: String,
        action: &'static str,
        resource: String,
    },
    #[error("request reached authorization incomplete")]
    Incomplete,
}

/// The authorization stage.
#[derive(Clone)]
pub(crate) struct Authz {
    shared: Arc<Shared>,
}

impl Authz {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Authz { shared }
    }
}

impl Stage for Authz {
    type Error = AuthzError;

    async fn run(&self, ex: &mut Exchange) -> Result<(), AuthzError> {
        let ctx = &mut ex.ctx;
        let Some(route) = ctx.route else {
            return Err(AuthzError::NoRoute {
                method: ctx.method.to_string(),
                path: ctx.path.clone().unwrap_or_default(),
            });
        };
        let request = authz_request(ctx, &route).ok_or(AuthzError::Incomplete)?;
        let bundle = self.shared.policies.current();
        let started = Instant::now();
        let decision = bundle.authorize(&request);
        self.shared
            .metrics
            .authz_seconds
            .observe(started.elapsed().as_secs_f64());
        if !decision.errors.is_empty() {
            tracing::warn!(
                request_id = %ctx.request_id,
                action = route.action,
                errors = ?decision.errors,
                "policy evaluation errors"
            );
        }
        ctx.decision = Some(DecisionInfo {
            allowed: decision.allowed,
            determining_policies: decision.determining_policies,
            policy_version: bundle.version().to_owned(),
        });
        if decision.allowed {
            return Ok(());
        }
        Err(AuthzError::Denied {
            who: describe(ctx.principal.as_ref()),
            action: route.action,
            resource: resource_name(ctx, &route),
        })
    }
}

/// The Cedar question for this request; `None` if an earlier stage left a gap.
fn authz_request(ctx: &RequestCtx, route: &Route) -> Option<AuthzRequest> {
    let principal = ctx.principal.as_ref()?;
    let snapshot = ctx.snapshot.as_ref()?;
    let workspace = ctx.workspace();
    let ws_id = workspace.map(|w| w.id);
    let record = &principal.record;
    let kind = match record.kind {
        AssertedKind::User => PrincipalKind::User,
        AssertedKind::ServicePrincipal => PrincipalKind::ServicePrincipal,
        // Service kinds never come from outside; treat them as no one.
        AssertedKind::Anonymous | AssertedKind::Gateway | AssertedKind::Runtime => {
            PrincipalKind::Anonymous
        }
    };
    Some(AuthzRequest {
        principal: PrincipalInput {
            kind,
            id: record.id.clone(),
            user_name: record.user_name.clone(),
            active: record.active,
            groups: principal
                .groups_in(ws_id)
                .map(|g| (g.id.clone(), g.display_name.clone()))
                .collect(),
            workspace_admin: ws_id.is_some_and(|id| record.is_workspace_admin(id)),
            account_admin: record.is_account_admin(),
            member_of_workspace: ws_id.filter(|id| record.is_workspace_member(*id)),
        },
        action: route.action.to_owned(),
        resource: match route.resource {
            ResourceKind::Caller => ResourceInput::Caller,
            ResourceKind::Workspace => ResourceInput::Workspace,
            ResourceKind::Account => ResourceInput::Account,
        },
        client_ip: ctx.client_ip?,
        workspace: workspace.map(|w| (w.id, w.name.clone())),
        account_id: snapshot.account_id.clone(),
        auth_method: principal.auth_method.as_str().to_owned(),
        token_id: principal.token_id.clone(),
        request_time_unix: ctx.received_unix_ms / 1000,
    })
}

/// `User alice@example.com`, as Databricks words its denials.
fn describe(principal: Option<&Principal>) -> String {
    match principal {
        Some(p) => match p.record.kind {
            AssertedKind::User => format!("User {}", p.record.user_name),
            AssertedKind::ServicePrincipal => format!("Service principal {}", p.record.user_name),
            AssertedKind::Anonymous | AssertedKind::Gateway | AssertedKind::Runtime => {
                "Anonymous caller".to_owned()
            }
        },
        None => "Caller".to_owned(),
    }
}

fn resource_name(ctx: &RequestCtx, route: &Route) -> String {
    match (&ctx.scope, route.resource) {
        (_, ResourceKind::Caller) => "their own account".to_owned(),
        (Some(Scope::Workspace(ws)), _) => format!("workspace {}", ws.id),
        (_, _) => format!(
            "account {}",
            ctx.snapshot.as_ref().map_or("", |s| s.account_id.as_str())
        ),
    }
}
