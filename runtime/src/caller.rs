//! The caller of a workspace API, as the gateway asserted it and the control plane resolved it.

use crate::engine::Caller;
use lakeward_common::assertion::IdentityClaims;
use lakeward_common::internal::PrincipalRecord;

/// The caller of a workspace API, resolved (see `crate::state::Shared::resolve_caller`).
#[derive(Debug, Clone)]
pub(crate) struct CallerCtx {
    pub(crate) claims: IdentityClaims,
    pub(crate) principal: PrincipalRecord,
    pub(crate) workspace_id: i64,
}

impl CallerCtx {
    pub(crate) fn is_admin(&self) -> bool {
        self.principal.is_workspace_admin(self.workspace_id)
    }

    pub(crate) fn request_id(&self) -> &str {
        &self.claims.request_id
    }

    /// The grantee ids that stand for the caller: itself and its groups.
    pub(crate) fn stands_for(&self, grantee_id: &str) -> bool {
        self.claims.sub == grantee_id || self.claims.groups.iter().any(|g| g == grantee_id)
    }

    pub(crate) fn engine_caller(&self) -> Caller {
        Caller {
            claims: self.claims.clone(),
            principal: self.principal.clone(),
            workspace_id: self.workspace_id,
            // The assertion names the workspace by id only; the access context takes the name
            // from the catalog snapshot, and the id stands in where there is none.
            workspace_name: self.workspace_id.to_string(),
        }
    }
}
