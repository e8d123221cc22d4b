//! Stage 4, IP access lists with Databricks semantics: block lists first, then, if any allow
//! list is enabled, only listed addresses pass. Workspace lists apply to workspace routes when
//! the workspace's `enableIpAccessLists` is on; account lists to account routes when
//! `acct_ip_acl_enable` is on. The lists were compiled once per snapshot, so this is a lookup.

use crate::ctx::Scope;
use crate::exchange::{Exchange, Stage};
use lakeward_policy::IpVerdict;
use std::net::IpAddr;

/// Which lists refused an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AclScope {
    Workspace(i64),
    Account(String),
}

/// Why the IP access lists refused a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IpAclError {
    #[error("{ip} is blocked by the IP access lists of {scope:?}")]
    Blocked { ip: IpAddr, scope: AclScope },
    #[error("the IP access lists of {scope:?} could not be compiled: {reason}")]
    Invalid { scope: AclScope, reason: String },
    #[error("request reached the IP access lists without a client address or scope")]
    Incomplete,
}

/// The IP access list stage. Stateless: the compiled lists come with the request's snapshot.
#[derive(Clone)]
pub(crate) struct IpAcl;

impl Stage for IpAcl {
    type Error = IpAclError;

    async fn run(&self, ex: &mut Exchange) -> Result<(), IpAclError> {
        let ctx = &ex.ctx;
        let (Some(ip), Some(scope), Some(snapshot)) = (ctx.client_ip, &ctx.scope, &ctx.snapshot)
        else {
            return Err(IpAclError::Incomplete);
        };
        let (enabled, policy, acl_scope) = match scope {
            Scope::Workspace(ws) => (
                ws.enable_ip_access_lists,
                &ws.acl,
                AclScope::Workspace(ws.id),
            ),
            Scope::Account => (
                snapshot.account_ip_acl_enabled,
                &snapshot.account_acl,
                AclScope::Account(snapshot.account_id.clone()),
            ),
        };
        if !enabled {
            return Ok(());
        }
        let policy = policy.as_ref().map_err(|reason| IpAclError::Invalid {
            scope: acl_scope.clone(),
            reason: reason.clone(),
        })?;
        match policy.verdict(ip) {
            IpVerdict::Allowed => Ok(()),
            IpVerdict::Blocked => Err(IpAclError::Blocked {
                ip,
                scope: acl_scope,
            }),
        }
    }
}
