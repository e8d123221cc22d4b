//! Credential passthrough: every securable a statement touches is decided by the policies for
//! the caller, with the caller's effective Unity Catalog privileges as facts.

use super::context::{AccessContext, Caller};
use super::error::QueryError;
use super::error::{internal, not_found};
use super::touched::TableAccess;
use lakeward_common::assertion::PrincipalKind as ClaimKind;
use lakeward_common::data::CatalogSnapshot;
use lakeward_common::internal::{ADMINS_GROUP, USERS_GROUP};
use lakeward_policy::{DataAuthzRequest, PrincipalInput, PrincipalKind, Securable};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The names grants may be made to that denote the caller: its `userName` and the display
/// names of its groups (of this workspace, or account-level). The workspace's built-in group
/// names (`admins`, `users`) always denote the workspace's own groups (the control plane
/// resolves grant principals workspace group first), so an account-level group of that name
/// (the account admins are `admins` too) never stands for them.
pub(crate) fn caller_names(caller: &Caller) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = caller
        .principal
        .groups
        .iter()
        .filter(|g| match g.workspace_id {
            Some(ws) => ws == caller.workspace_id,
            None => ![ADMINS_GROUP, USERS_GROUP].contains(&g.display_name.as_str()),
        })
        .map(|g| g.display_name.clone())
        .collect();
    names.insert(caller.principal.user_name.clone());
    names.insert(caller.claims.user_name.clone());
    names
}

/// A workspace admin sees and may do everything in the workspace's catalog (the baseline
/// permits them every data action; listings follow suit).
pub(crate) fn is_admin(caller: &Caller) -> bool {
    caller.principal.is_workspace_admin(caller.workspace_id)
}

/// Privileges granted to the caller (or its groups) on the securable or its ancestors, plus
/// `OWNER` when the caller or one of its groups owns one of them.
pub(crate) fn effective_privileges(
    snapshot: &CatalogSnapshot,
    caller: &Caller,
    securable: &Securable,
) -> BTreeSet<String> {
    let names = caller_names(caller);
    let mut privileges = BTreeSet::new();
    for level in securable.lineage() {
        let full_name = level.full_name();
        let kind = level.kind();
        for grant in &snapshot.grants {
            if grant.securable_type.eq_ignore_ascii_case(kind)
                && grant.full_name == full_name
                && names.contains(&grant.principal)
            {
                privileges.extend(grant.privileges.iter().map(|p| p.to_ascii_uppercase()));
            }
        }
        if owner_of(snapshot, &level).is_some_and(|owner| names.contains(owner)) {
            privileges.insert("OWNER".to_owned());
        }
    }
    privileges
}

pub(crate) fn owner_of<'a>(
    snapshot: &'a CatalogSnapshot,
    securable: &Securable,
) -> Option<&'a str> {
    match securable {
        Securable::Catalog { name } => snapshot
            .catalogs
            .iter()
            .find(|c| &c.name == name)
            .map(|c| c.owner.as_str()),
        Securable::Schema { catalog, name } => snapshot
            .schemas
            .iter()
            .find(|s| &s.catalog == catalog && &s.name == name)
            .map(|s| s.owner.as_str()),
        Securable::Table {
            catalog,
            schema,
            name,
        } => snapshot
            .tables
            .iter()
            .find(|t| &t.catalog == catalog && &t.schema == schema && &t.name == name)
            .map(|t| t.owner.as_str()),
    }
}

/// `NOT_FOUND` naming the first missing level of the securable.
pub(crate) fn require_exists(
    snapshot: &CatalogSnapshot,
    securable: &Securable,
) -> Result<(), QueryError> {
    for level in securable.lineage().into_iter().rev() {
        if owner_of(snapshot, &level).is_none() {
            return Err(not_found(&level));
        }
    }
    Ok(())
}

/// Whether a listing shows the securable to the caller.
pub(crate) fn visible(snapshot: &CatalogSnapshot, caller: &Caller, securable: &Securable) -> bool {
    if is_admin(caller) {
        return true;
    }
    if !effective_privileges(snapshot, caller, securable).is_empty() {
        return true;
    }
    // A schema or catalog is visible when something inside it is granted to the caller.
    let names = caller_names(caller);
    let prefix = format!("{}.", securable.full_name());
    match securable {
        Securable::Table { .. } => false,
        _ => {
            snapshot
                .grants
                .iter()
                .any(|g| g.full_name.starts_with(&prefix) && names.contains(&g.principal))
                || snapshot.schemas.iter().any(|s| {
                    format!("{}.{}", s.catalog, s.name).starts_with(&prefix)
                        && names.contains(&s.owner)
                })
                || snapshot.tables.iter().any(|t| {
                    format!("{}.{}.{}", t.catalog, t.schema, t.name).starts_with(&prefix)
                        && names.contains(&t.owner)
                })
        }
    }
}

/// The privilege a denial names (what the caller would need).
fn needed(action: &str) -> &'static str {
    match action {
        "SelectTable" => "SELECT",
        "ModifyTable" => "MODIFY",
        "CreateTable" => "CREATE_TABLE",
        "CreateSchema" => "CREATE_SCHEMA",
        "CreateCatalog" => "CREATE_CATALOG",
        // Dropping and granting belong to owners and holders of MANAGE.
        _ => "MANAGE",
    }
}

/// Asks the policies, statement by statement, and remembers what was allowed.
pub(crate) struct Authorizer<'a> {
    ctx: &'a AccessContext,
    pub(crate) touched: Vec<TableAccess>,
}

impl<'a> Authorizer<'a> {
    pub(crate) fn new(ctx: &'a AccessContext) -> Self {
        Authorizer {
            ctx,
            touched: Vec::new(),
        }
    }

    /// Allows the action on the securable, or fails with `PERMISSION_DENIED` naming both.
    /// Anything that stops the request from being built denies (fail closed).
    pub(crate) fn check(&mut self, action: &str, securable: &Securable) -> Result<(), QueryError> {
        let access = TableAccess {
            action: action.to_owned(),
            securable: securable.clone(),
        };
        if self.touched.contains(&access) {
            return Ok(());
        }
        let caller = &self.ctx.caller;
        let refused = access.clone();
        let denied = || QueryError::PermissionDenied {
            user: caller.principal.user_name.clone(),
            privilege: needed(action),
            refused: Box::new(refused.clone()),
        };
        let request = match self.request(action, securable) {
            Ok(request) => request,
            Err(reason) => {
                tracing::warn!(%reason, action, securable = %securable.full_name(), "data access denied: request not built");
                return Err(denied());
            }
        };
        let decision = self.ctx.policies.authorize_data(&request);
        if !decision.errors.is_empty() {
            tracing::warn!(errors = ?decision.errors, action, securable = %securable.full_name(), "policy errors on a data request");
        }
        if !decision.allowed {
            return Err(denied());
        }
        self.touched.push(access);
        Ok(())
    }

    fn request(&self, action: &str, securable: &Securable) -> Result<DataAuthzRequest, String> {
        let caller = &self.ctx.caller;
        let claims = &caller.claims;
        let kind = match claims.kind {
            ClaimKind::User => PrincipalKind::User,
            ClaimKind::ServicePrincipal => PrincipalKind::ServicePrincipal,
            other => return Err(format!("a {other:?} caller has no data access")),
        };
        if claims.sub != caller.principal.id {
            return Err("the assertion and the resolved principal disagree".into());
        }
        let ws = caller.workspace_id;
        let client_ip: IpAddr = claims
            .client_ip
            .parse()
            .map_err(|_| format!("client address `{}` does not parse", claims.client_ip))?;
        let record = &caller.principal;
        Ok(DataAuthzRequest {
            principal: PrincipalInput {
                kind,
                id: record.id.clone(),
                user_name: record.user_name.clone(),
                active: record.active,
                groups: record
                    .groups
                    .iter()
                    .filter(|g| g.workspace_id.is_none() || g.workspace_id == Some(ws))
                    .map(|g| (g.id.clone(), g.display_name.clone()))
                    .collect(),
                workspace_admin: record.is_workspace_admin(ws),
                account_admin: record.is_account_admin(),
                member_of_workspace: record.is_workspace_member(ws).then_some(ws),
            },
            action: action.to_owned(),
            securable: securable.clone(),
            privileges: effective_privileges(&self.ctx.snapshot, caller, securable),
            client_ip,
            workspace: (ws, caller.workspace_name.clone()),
            account_id: claims.account_id.clone(),
            auth_method: claims.auth_method.clone(),
            token_id: claims.token_id.clone(),
            request_time_unix: i64::try_from(claims.iat).map_err(|_| "iat overflows".to_owned())?,
        })
    }
}

/// The snapshot must describe the caller's workspace; a mismatch is an engine bug, not a
/// reason to allow.
pub(crate) fn check_context(ctx: &AccessContext) -> Result<(), QueryError> {
    if ctx
        .caller
        .claims
        .workspace_id
        .is_some_and(|ws| ws != ctx.caller.workspace_id)
    {
        return Err(internal(
            "the caller's workspace and the statement's differ",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakeward_common::assertion::{IdentityClaims, PrincipalKind as Kind};
    use lakeward_common::data::CatalogRecord;
    use lakeward_common::internal::{GroupRecord, PrincipalRecord};

    fn group(id: &str, name: &str, ws: Option<i64>) -> GroupRecord {
        GroupRecord {
            id: id.into(),
            display_name: name.into(),
            workspace_id: ws,
        }
    }

    fn caller(groups: Vec<GroupRecord>) -> Caller {
        Caller {
            claims: IdentityClaims {
                iss: "lakeward-gateway".into(),
                aud: "lakeward-runtime".into(),
                iat: 1,
                exp: 2,
                sub: "42".into(),
                kind: Kind::User,
                user_name: "root@example.com".into(),
                groups: groups.iter().map(|g| g.id.clone()).collect(),
                workspace_id: Some(1),
                account_id: "acct".into(),
                token_id: None,
                auth_method: "pat".into(),
                request_id: "r".into(),
                client_ip: "127.0.0.1".into(),
            },
            principal: PrincipalRecord {
                id: "42".into(),
                kind: Kind::User,
                user_name: "root@example.com".into(),
                display_name: "root".into(),
                active: true,
                groups,
                token_use_workspaces: vec![1],
            },
            workspace_id: 1,
            workspace_name: "ws".into(),
        }
    }

    #[test]
    fn account_groups_named_like_workspace_built_ins_do_not_count() {
        let snapshot = CatalogSnapshot {
            catalogs: vec![CatalogRecord {
                name: "main".into(),
                owner: ADMINS_GROUP.into(),
                comment: None,
            }],
            ..CatalogSnapshot::default()
        };
        let main = Securable::Catalog {
            name: "main".into(),
        };
        // An account admin who is only a member of the workspace's `users`.
        let account_admin = caller(vec![
            group("acct-admins", ADMINS_GROUP, None),
            group("acct-team", "data-team", None),
            group("ws-users", USERS_GROUP, Some(1)),
            group("other-admins", ADMINS_GROUP, Some(2)),
        ]);
        let names = caller_names(&account_admin);
        assert!(names.contains(USERS_GROUP));
        assert!(names.contains("data-team"));
        assert!(!names.contains(ADMINS_GROUP));
        let privileges = effective_privileges(&snapshot, &account_admin, &main);
        assert!(!privileges.contains("OWNER"), "{privileges:?}");
        assert!(!visible(&snapshot, &account_admin, &main));
        // The workspace's own admins still own it.
        let workspace_admin = caller(vec![
            group("ws-users", USERS_GROUP, Some(1)),
            group("ws-admins", ADMINS_GROUP, Some(1)),
        ]);
        assert!(effective_privileges(&snapshot, &workspace_admin, &main).contains("OWNER"));
    }
}
