//! `GRANT`, `REVOKE` and `SHOW GRANTS`: Unity Catalog privileges on catalogs, schemas and
//! tables, decided by `ManageGrants` on the securable and kept by the control plane.

use super::ast::{Grant, Kind, ShowGrants};
use super::output::strings;
use super::prepared::PreparedInner;
use super::preparing::Preparing;
use crate::engine::access;
use crate::engine::error::bad_request;
use crate::engine::error::QueryError;
use lakeward_common::data::{CatalogChange, GrantChange};

/// The grants on the securable and each level above it (those that apply to it).
pub(crate) fn show(p: &mut Preparing<'_>, stmt: ShowGrants) -> Result<PreparedInner, QueryError> {
    let securable = p.names.securable(stmt.kind, &stmt.name)?;
    access::require_exists(p.snapshot(), &securable)?;
    p.authz.check("ManageGrants", &securable)?;
    let mut rows = Vec::new();
    for level in securable.lineage() {
        for grant in &p.snapshot().grants {
            if !grant.securable_type.eq_ignore_ascii_case(level.kind())
                || grant.full_name != level.full_name()
                || stmt
                    .principal
                    .as_ref()
                    .is_some_and(|named| named != &grant.principal)
            {
                continue;
            }
            for privilege in &grant.privileges {
                rows.push(vec![
                    Some(grant.principal.clone()),
                    Some(privilege.clone()),
                    Some(level.kind().to_owned()),
                    Some(level.full_name()),
                ]);
            }
        }
    }
    rows.sort();
    Ok(PreparedInner::Rows(strings(
        &["principal", "action_type", "object_type", "object_key"],
        rows,
    )?))
}

/// The privileges a securable of this kind takes.
fn privileges_of(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Catalog => &[
            "SELECT",
            "MODIFY",
            "USE_CATALOG",
            "USE_SCHEMA",
            "CREATE_SCHEMA",
            "CREATE_TABLE",
            "ALL_PRIVILEGES",
            "MANAGE",
        ],
        Kind::Schema => &[
            "SELECT",
            "MODIFY",
            "USE_SCHEMA",
            "CREATE_TABLE",
            "ALL_PRIVILEGES",
            "MANAGE",
        ],
        Kind::Table => &["SELECT", "MODIFY", "ALL_PRIVILEGES", "MANAGE"],
    }
}

/// `GRANT` or `REVOKE`.
pub(crate) fn grant(p: &mut Preparing<'_>, stmt: Grant) -> Result<PreparedInner, QueryError> {
    let securable = p.names.securable(stmt.kind, &stmt.name)?;
    let allowed = privileges_of(stmt.kind);
    for privilege in &stmt.privileges {
        if !allowed.contains(&privilege.as_str()) {
            return Err(bad_request(format!(
                "[INVALID_PRIVILEGE] {privilege} is not a privilege of a {} (use {})",
                stmt.kind.name().to_lowercase(),
                allowed.join(", ")
            )));
        }
    }
    access::require_exists(p.snapshot(), &securable)?;
    p.authz.check("ManageGrants", &securable)?;
    let (add, remove) = if stmt.revoke {
        (vec![], stmt.privileges)
    } else {
        (stmt.privileges, vec![])
    };
    let change = CatalogChange::UpdateGrants {
        securable_type: stmt.kind.name().to_owned(),
        full_name: securable.full_name(),
        changes: vec![GrantChange {
            principal: stmt.principal,
            add,
            remove,
        }],
    };
    Ok(PreparedInner::Changes(p.changes(vec![change], vec![])))
}
