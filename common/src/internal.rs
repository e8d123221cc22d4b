//! The control plane's internal API, used only by the gateway (with an assertion whose principal
//! kind is [`PrincipalKind::Gateway`]). It is never routed from the outside: the gateway's route
//! table has no entry for `/internal/`.
//!
//! Freshness: every control-plane response carries [`STATE_VERSION_HEADER`], a counter that
//! grows with every committed change the gateway caches (workspaces, workspace-conf, IP access
//! lists, tokens, users, groups). A gateway that forwards a response with a newer version drops
//! its caches before it sends that response on, so the caller's next request sees the change.
//! [`CHANGES_PATH`] long-polls the same counter for changes made elsewhere.

use crate::assertion::PrincipalKind;
use serde::{Deserialize, Serialize};

/// Response header with the control plane's state version after the request.
pub const STATE_VERSION_HEADER: &str = "x-lakeward-state-version";

/// The Redis pub/sub channel on which control-plane replicas announce their state version
/// (the decimal string, e.g. `"42"`) after each committed change, when Redis is configured.
/// Best effort: a message may be lost or coalesced with a later one, so it only speeds up what
/// [`CHANGES_PATH`] and [`STATE_VERSION_HEADER`] already guarantee.
pub const STATE_VERSION_CHANNEL: &str = "lakeward:state-version";

/// `GET`: the whole [`GatewaySnapshot`].
pub const SNAPSHOT_PATH: &str = "/internal/v1/snapshot";
/// `POST` [`ResolveTokenRequest`] → [`ResolvedToken`], or 404 when no such token exists.
pub const RESOLVE_TOKEN_PATH: &str = "/internal/v1/resolve-token";
/// `POST` [`ResolvePrincipalRequest`] → [`PrincipalRecord`], or 404.
pub const RESOLVE_PRINCIPAL_PATH: &str = "/internal/v1/resolve-principal";
/// `GET ?after=N`: answers [`ChangesResponse`] as soon as the version exceeds `N`, or after
/// about 25 seconds with the current version.
pub const CHANGES_PATH: &str = "/internal/v1/changes";
/// `GET`: 200 once the control plane's store is open and migrated.
pub const READY_PATH: &str = "/internal/v1/ready";

/// What the gateway needs to route and admit requests, fetched whole and cached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewaySnapshot {
    pub version: u64,
    pub account_id: String,
    /// The account-level `acct_ip_acl_enable` setting (default on).
    pub account_ip_acl_enabled: bool,
    /// Account-level IP access lists (disabled ones included, with `enabled: false`).
    pub account_ip_access_lists: Vec<IpAccessListRule>,
    pub workspaces: Vec<WorkspaceRecord>,
}

/// One workspace, as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRecord {
    pub workspace_id: i64,
    pub workspace_name: String,
    /// The host label: the workspace answers at `<deployment_name>.<configured domain>`.
    pub deployment_name: String,
    /// `RUNNING`, `PROVISIONING`, ... Only `RUNNING` workspaces are served.
    pub workspace_status: String,
    /// workspace-conf `enableIpAccessLists`.
    pub enable_ip_access_lists: bool,
    /// workspace-conf `enableTokensConfig` (personal access tokens on or off).
    pub enable_tokens: bool,
    /// Workspace-level IP access lists (disabled ones included).
    pub ip_access_lists: Vec<IpAccessListRule>,
}

/// `ALLOW` or `BLOCK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ListType {
    Allow,
    Block,
}

/// One IP access list: its addresses are IPv4 addresses or CIDRs, already validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAccessListRule {
    pub list_id: String,
    pub list_type: ListType,
    pub enabled: bool,
    pub ip_addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveTokenRequest {
    /// [`crate::token::hash_token`] of the presented token.
    pub token_hash: String,
}

/// A live token and its owner. Expired tokens are still returned (with their expiry) so the
/// gateway can say why it refuses them; deleted tokens are not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedToken {
    pub token_id: String,
    pub token_hash: String,
    /// The workspace the token was created in; it authenticates there and at account level.
    pub workspace_id: i64,
    /// Milliseconds since the epoch; `-1` means no expiry.
    pub expiry_time_ms: i64,
    pub principal: PrincipalRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvePrincipalRequest {
    /// A user's `userName` or a service principal's `applicationId`.
    pub user_name: String,
}

/// A user or service principal with its group memberships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRecord {
    pub id: String,
    pub kind: PrincipalKind,
    pub user_name: String,
    pub display_name: String,
    pub active: bool,
    pub groups: Vec<GroupRecord>,
    /// Workspaces in which the principal may use personal access tokens: it is an admin there,
    /// or holds `CAN_USE` on `authorization/tokens` directly or through a group.
    #[serde(default)]
    pub token_use_workspaces: Vec<i64>,
}

/// A group. `workspace_id` is `None` for account-level groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: String,
    pub display_name: String,
    pub workspace_id: Option<i64>,
}

/// The name of the group whose members administer a workspace (or, at account level, the
/// account).
pub const ADMINS_GROUP: &str = "admins";
/// The name of the group whose members are assigned to a workspace.
pub const USERS_GROUP: &str = "users";

impl PrincipalRecord {
    fn in_group(&self, workspace_id: Option<i64>, name: &str) -> bool {
        self.groups
            .iter()
            .any(|g| g.workspace_id == workspace_id && g.display_name == name)
    }

    /// Assigned to the workspace: a member of its `users` group (admins are members too).
    pub fn is_workspace_member(&self, workspace_id: i64) -> bool {
        self.in_group(Some(workspace_id), USERS_GROUP) || self.is_workspace_admin(workspace_id)
    }

    /// A member of the workspace's `admins` group.
    pub fn is_workspace_admin(&self, workspace_id: i64) -> bool {
        self.in_group(Some(workspace_id), ADMINS_GROUP)
    }

    /// A member of the account-level `admins` group.
    pub fn is_account_admin(&self) -> bool {
        self.in_group(None, ADMINS_GROUP)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesResponse {
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_groups_of_the_right_scope() {
        let p = PrincipalRecord {
            id: "1".into(),
            kind: PrincipalKind::User,
            user_name: "a@b.c".into(),
            display_name: "A".into(),
            active: true,
            groups: vec![
                GroupRecord {
                    id: "10".into(),
                    display_name: "admins".into(),
                    workspace_id: Some(5),
                },
                GroupRecord {
                    id: "11".into(),
                    display_name: "users".into(),
                    workspace_id: Some(6),
                },
            ],
            token_use_workspaces: vec![5],
        };
        assert!(p.is_workspace_admin(5));
        assert!(p.is_workspace_member(5));
        assert!(p.is_workspace_member(6));
        assert!(!p.is_workspace_admin(6));
        assert!(!p.is_workspace_member(7));
        assert!(!p.is_account_admin());
        let list: ListType = serde_json::from_str("\"BLOCK\"").unwrap();
        assert_eq!(list, ListType::Block);
    }
}
