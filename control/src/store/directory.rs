//! The directory's records, principals and groups: what the store modules that read or
//! write memberships and grants (principals, permissions, accounts, workspaces) share, kept
//! apart from their queries so that those modules need not import each other.

use lakeward_common::assertion::PrincipalKind;
use lakeward_common::internal::GroupRecord;

/// A user or a service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    pub(crate) id: i64,
    /// [`PrincipalKind::User`] or [`PrincipalKind::ServicePrincipal`].
    pub(crate) kind: PrincipalKind,
    /// `userName`; a service principal's application id.
    pub(crate) user_name: String,
    pub(crate) display_name: String,
    pub(crate) active: bool,
    /// Service principals only.
    pub(crate) application_id: Option<String>,
}

/// A group; `workspace_id` `None` is account-level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) id: i64,
    pub(crate) workspace_id: Option<i64>,
    pub(crate) display_name: String,
}

impl Group {
    pub(crate) fn record(&self) -> GroupRecord {
        GroupRecord {
            id: self.id.to_string(),
            display_name: self.display_name.clone(),
            workspace_id: self.workspace_id,
        }
    }
}
