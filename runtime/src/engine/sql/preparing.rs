//! What every statement is prepared against, handed from the dispatcher to the statement
//! modules.

use super::changes::Changes;
use super::names::Names;
use crate::engine::access::Authorizer;
use crate::engine::context::StatementContext;
use crate::engine::lake::Lake;
use crate::engine::params::Bound;
use lakeward_common::data::{CatalogChange, CatalogSnapshot};
use std::sync::Arc;

pub(crate) struct Preparing<'a> {
    pub(crate) lake: &'a Arc<Lake>,
    pub(crate) ctx: &'a StatementContext,
    pub(crate) names: &'a Names,
    /// The statement with its parameters bound.
    pub(crate) bound: &'a Bound,
    /// Decides, and remembers what was allowed (the statement's touched securables).
    pub(crate) authz: Authorizer<'a>,
}

impl Preparing<'_> {
    pub(crate) fn snapshot(&self) -> &Arc<CatalogSnapshot> {
        &self.ctx.access.snapshot
    }

    pub(crate) fn workspace_id(&self) -> i64 {
        self.ctx.access.caller.workspace_id
    }

    /// The caller's userName: the owner of what the statement creates.
    pub(crate) fn owner(&self) -> String {
        self.ctx.access.caller.principal.user_name.clone()
    }

    /// Catalog changes (and managed files to wipe once they took effect) for `run`.
    pub(crate) fn changes(&self, changes: Vec<CatalogChange>, wipe: Vec<String>) -> Changes {
        Changes {
            lake: self.lake.clone(),
            writer: self.ctx.writer.clone(),
            workspace_id: self.workspace_id(),
            snapshot: self.snapshot().clone(),
            changes,
            wipe,
        }
    }
}
