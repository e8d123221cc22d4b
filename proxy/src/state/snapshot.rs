//! The control-plane snapshot in the form requests use: workspaces indexed by id and by host
//! label, and each scope's enabled IP access lists compiled once, so a request's IP check is a
//! binary search whatever the lists' size.

use lakeward_common::internal::{GatewaySnapshot, IpAccessListRule, ListType};
use lakeward_policy::{IpAccessPolicy, ListKind};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// One workspace, as requests see it.
#[derive(Debug)]
pub(crate) struct WorkspaceEntry {
    pub id: i64,
    pub name: String,
    pub deployment_name: String,
    /// `workspace_status == "RUNNING"`; only running workspaces are served.
    pub running: bool,
    pub enable_ip_access_lists: bool,
    pub enable_tokens: bool,
    /// Its enabled lists, compiled; an error when an entry does not parse (requests are then
    /// refused while the lists are enabled: fail closed).
    pub acl: Result<IpAccessPolicy, String>,
}

/// A compiled [`GatewaySnapshot`].
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub version: u64,
    pub account_id: String,
    pub account_ip_acl_enabled: bool,
    pub account_acl: Result<IpAccessPolicy, String>,
    /// When the fetch that returned it started: every change committed before then is in it.
    pub fetched_at: Instant,
    workspaces: HashMap<i64, Arc<WorkspaceEntry>>,
    /// Lowercased deployment name → workspace id.
    by_deployment: HashMap<String, i64>,
    default_workspace: Option<i64>,
}

impl Snapshot {
    /// Compiles `raw`, fetched at `fetched_at`. `default_workspace_id` (from config) wins when
    /// it exists in the snapshot; otherwise the running workspace with the lowest id is the
    /// default.
    pub(crate) fn compile(
        raw: GatewaySnapshot,
        fetched_at: Instant,
        default_workspace_id: Option<i64>,
    ) -> Self {
        let workspaces: HashMap<i64, Arc<WorkspaceEntry>> = raw
            .workspaces
            .into_iter()
            .map(|w| {
                let entry = WorkspaceEntry {
                    id: w.workspace_id,
                    acl: compile_lists(&w.ip_access_lists),
                    running: w.workspace_status == "RUNNING",
                    name: w.workspace_name,
                    deployment_name: w.deployment_name,
                    enable_ip_access_lists: w.enable_ip_access_lists,
                    enable_tokens: w.enable_tokens,
                };
                (entry.id, Arc::new(entry))
            })
            .collect();
        let by_deployment = workspaces
            .values()
            .filter(|w| !w.deployment_name.is_empty())
            .map(|w| (w.deployment_name.to_ascii_lowercase(), w.id))
            .collect();
        let default_workspace = default_workspace_id
            .filter(|id| workspaces.contains_key(id))
            .or_else(|| {
                workspaces
                    .values()
                    .filter(|w| w.running)
                    .map(|w| w.id)
                    .min()
            });
        Snapshot {
            version: raw.version,
            account_id: raw.account_id,
            account_ip_acl_enabled: raw.account_ip_acl_enabled,
            account_acl: compile_lists(&raw.account_ip_access_lists),
            fetched_at,
            workspaces,
            by_deployment,
            default_workspace,
        }
    }

    pub(crate) fn workspace(&self, id: i64) -> Option<&Arc<WorkspaceEntry>> {
        self.workspaces.get(&id)
    }

    /// The workspace whose host label is `label` (case-insensitive).
    pub(crate) fn by_deployment(&self, label: &str) -> Option<&Arc<WorkspaceEntry>> {
        self.by_deployment
            .get(&label.to_ascii_lowercase())
            .and_then(|id| self.workspaces.get(id))
    }

    pub(crate) fn default_workspace(&self) -> Option<&Arc<WorkspaceEntry>> {
        self.default_workspace
            .and_then(|id| self.workspaces.get(&id))
    }
}

/// Compiles the enabled lists of one scope.
fn compile_lists(lists: &[IpAccessListRule]) -> Result<IpAccessPolicy, String> {
    IpAccessPolicy::compile(lists.iter().filter(|l| l.enabled).map(|l| {
        let kind = match l.list_type {
            ListType::Allow => ListKind::Allow,
            ListType::Block => ListKind::Block,
        };
        (kind, l.ip_addresses.as_slice())
    }))
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakeward_common::internal::WorkspaceRecord;
    use lakeward_policy::IpVerdict;

    fn ws(id: i64, name: &str, status: &str) -> WorkspaceRecord {
        WorkspaceRecord {
            workspace_id: id,
            workspace_name: name.into(),
            deployment_name: name.into(),
            workspace_status: status.into(),
            enable_ip_access_lists: true,
            enable_tokens: true,
            ip_access_lists: vec![
                IpAccessListRule {
                    list_id: "a".into(),
                    list_type: ListType::Allow,
                    enabled: true,
                    ip_addresses: vec!["10.0.0.0/8".into()],
                },
                IpAccessListRule {
                    list_id: "b".into(),
                    list_type: ListType::Block,
                    enabled: false,
                    ip_addresses: vec!["10.0.0.1".into()],
                },
            ],
        }
    }

    #[test]
    fn indexes_defaults_and_compiles_only_enabled_lists() {
        let raw = GatewaySnapshot {
            version: 7,
            account_id: "acct".into(),
            account_ip_acl_enabled: true,
            account_ip_access_lists: vec![],
            workspaces: vec![
                ws(30, "Gamma", "RUNNING"),
                ws(10, "alpha", "PROVISIONING"),
                ws(20, "beta", "RUNNING"),
            ],
        };
        let snap = Snapshot::compile(raw.clone(), Instant::now(), None);
        assert_eq!(snap.default_workspace().unwrap().id, 20);
        assert_eq!(snap.by_deployment("GAMMA").unwrap().id, 30);
        let acl = snap.workspace(20).unwrap().acl.as_ref().unwrap();
        // The disabled block list does not count.
        assert_eq!(acl.verdict("10.0.0.1".parse().unwrap()), IpVerdict::Allowed);
        assert_eq!(acl.verdict("11.0.0.1".parse().unwrap()), IpVerdict::Blocked);
        assert_eq!(
            Snapshot::compile(raw, Instant::now(), Some(30))
                .default_workspace()
                .unwrap()
                .id,
            30
        );
    }

    #[test]
    fn a_bad_entry_fails_closed() {
        let mut w = ws(1, "a", "RUNNING");
        w.ip_access_lists[0].ip_addresses.push("not-an-ip".into());
        let raw = GatewaySnapshot {
            workspaces: vec![w],
            ..GatewaySnapshot::default()
        };
        assert!(Snapshot::compile(raw, Instant::now(), None)
            .workspace(1)
            .unwrap()
            .acl
            .is_err());
    }
}
