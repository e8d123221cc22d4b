//! Unity Catalog grants: `GET`/`PATCH /api/2.1/unity-catalog/permissions/{type}/{full_name}`,
//! decided by the same policies as SQL `GRANT`/`REVOKE` and stored by the control plane.
//!
//! Reading a securable's grants: a caller allowed `ManageGrants` on it (owner, `MANAGE`, a
//! workspace admin) sees every assignment; any other caller holding some privilege on it or an
//! ancestor sees only the assignments of the principals that denote it (itself and its groups);
//! to everyone else the securable does not exist (404, as a missing one). Changing grants needs
//! `ManageGrants`.

use crate::service::{
    access_context, caller, json_response, parse_body, CallerCtx, Failure, Shared,
};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Extension;
use lakeward_common::assertion::IdentityClaims;
use lakeward_common::data::{CatalogChange, CatalogSnapshot, GrantChange};
use lakeward_common::error::{ApiError, ErrorCode};
use lakeward_policy::Securable;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// `catalog`, `schema` or `table` (any case) and a dotted name, as a securable.
pub fn parse_securable(securable_type: &str, full_name: &str) -> Result<Securable, ApiError> {
    let parts: Vec<String> = full_name.split('.').map(str::to_lowercase).collect();
    if parts.iter().any(String::is_empty) {
        return Err(ApiError::invalid_parameter(format!(
            "`{full_name}` is not a valid full name"
        )));
    }
    let wrong = |n: usize| {
        ApiError::invalid_parameter(format!(
            "a {} full name has {n} part(s), not `{full_name}`",
            securable_type.to_lowercase()
        ))
    };
    match (
        securable_type.to_ascii_uppercase().as_str(),
        parts.as_slice(),
    ) {
        ("CATALOG", [name]) => Ok(Securable::Catalog { name: name.clone() }),
        ("CATALOG", _) => Err(wrong(1)),
        ("SCHEMA", [catalog, name]) => Ok(Securable::Schema {
            catalog: catalog.clone(),
            name: name.clone(),
        }),
        ("SCHEMA", _) => Err(wrong(2)),
        ("TABLE", [catalog, schema, name]) => Ok(Securable::Table {
            catalog: catalog.clone(),
            schema: schema.clone(),
            name: name.clone(),
        }),
        ("TABLE", _) => Err(wrong(3)),
        _ => Err(ApiError::invalid_parameter(format!(
            "securable type `{securable_type}` is not supported: catalog, schema or table"
        ))),
    }
}

fn exists(snapshot: &CatalogSnapshot, securable: &Securable) -> bool {
    // Every securable has an owner, so finding one finds the securable.
    crate::engine::owner_of(snapshot, securable).is_some()
}

/// The direct grants on a securable, one assignment per principal, sorted.
pub fn assignments(
    snapshot: &CatalogSnapshot,
    securable: &Securable,
    principal: Option<&str>,
) -> Value {
    assignments_of(snapshot, securable, |p| principal.is_none_or(|q| q == p))
}

/// The direct grants on a securable to the principals `shown` accepts.
fn assignments_of(
    snapshot: &CatalogSnapshot,
    securable: &Securable,
    shown: impl Fn(&str) -> bool,
) -> Value {
    let full_name = securable.full_name();
    let mut by_principal: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for grant in &snapshot.grants {
        if grant.securable_type.eq_ignore_ascii_case(securable.kind())
            && grant.full_name == full_name
            && shown(&grant.principal)
        {
            by_principal
                .entry(&grant.principal)
                .or_default()
                .extend(grant.privileges.iter().map(String::as_str));
        }
    }
    let list: Vec<Value> = by_principal
        .into_iter()
        .filter(|(_, privileges)| !privileges.is_empty())
        .map(|(principal, privileges)| json!({"principal": principal, "privileges": privileges}))
        .collect();
    json!({ "privilege_assignments": list })
}

async fn existing(
    shared: &Shared,
    ctx: &CallerCtx,
    securable_type: &str,
    full_name: &str,
) -> Result<(Securable, Arc<CatalogSnapshot>), ApiError> {
    let securable = parse_securable(securable_type, full_name)?;
    let snapshot = shared
        .control
        .snapshot(&shared.engine, ctx.workspace_id, ctx.request_id())
        .await?;
    if !exists(&snapshot, &securable) {
        return Err(missing(&securable));
    }
    Ok((securable, snapshot))
}

fn missing(securable: &Securable) -> ApiError {
    ApiError::not_found(format!(
        "{} `{}` does not exist",
        securable.kind().to_lowercase(),
        securable.full_name()
    ))
}

/// The names grants may be made to that denote the caller: its user name and the names of its
/// groups (of this workspace, or account-level), as the engine matches grants.
pub(crate) fn caller_names(ctx: &CallerCtx) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ctx
        .principal
        .groups
        .iter()
        .filter(|g| g.workspace_id.is_none() || g.workspace_id == Some(ctx.workspace_id))
        .map(|g| g.display_name.clone())
        .collect();
    names.insert(ctx.principal.user_name.clone());
    names.insert(ctx.claims.user_name.clone());
    names
}

pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    Path((securable_type, full_name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let ctx = caller(&shared, claims).await?;
    let (securable, _) = existing(&shared, &ctx, &securable_type, &full_name).await?;
    let context = access_context(&shared, &ctx).await?;
    let principal = query.get("principal").map(String::as_str);
    if shared.engine.authorize_grants(&context, &securable).is_ok() {
        return Ok(json_response(&assignments(
            &context.snapshot,
            &securable,
            principal,
        )));
    }
    // Not a manager of the securable: it exists for the caller only if the caller holds some
    // privilege on it or an ancestor, and then only the caller's own assignments show.
    if shared
        .engine
        .effective_privileges(&context, &securable)
        .is_empty()
    {
        return Err(missing(&securable).into());
    }
    let names = caller_names(&ctx);
    Ok(json_response(&assignments_of(
        &context.snapshot,
        &securable,
        |p| names.contains(p) && principal.is_none_or(|q| q == p),
    )))
}

fn parse_changes(body: &serde_json::Map<String, Value>) -> Result<Vec<GrantChange>, ApiError> {
    let changes = match body.get("changes") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(changes) => changes.clone(),
    };
    let changes: Vec<GrantChange> = serde_json::from_value(changes).map_err(|err| {
        ApiError::invalid_parameter(format!(
            "`changes` must be a list of {{principal, add, remove}}: {err}"
        ))
    })?;
    for change in &changes {
        if change.principal.trim().is_empty() {
            return Err(ApiError::invalid_parameter(
                "`changes[].principal` is required",
            ));
        }
    }
    Ok(changes)
}

pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    Path((securable_type, full_name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Failure> {
    let body = parse_body(&body)?;
    let changes = parse_changes(&body)?;
    let omit = body
        .get("omit_permissions_in_response")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ctx = caller(&shared, claims).await?;
    let (securable, _) = existing(&shared, &ctx, &securable_type, &full_name).await?;
    let context = access_context(&shared, &ctx).await?;
    shared
        .engine
        .authorize_grants(&context, &securable)
        .map_err(|err| match err.error_code.as_str() {
            // A securable the caller holds nothing on looks missing, as in `get`.
            "PERMISSION_DENIED"
                if shared
                    .engine
                    .effective_privileges(&context, &securable)
                    .is_empty() =>
            {
                missing(&securable)
            }
            "PERMISSION_DENIED" => ApiError::permission_denied(err.message),
            "NOT_FOUND" => ApiError::not_found(err.message),
            _ => {
                tracing::error!(error_code = %err.error_code, message = %err.message, "grant authorization failed");
                ApiError::new(ErrorCode::InternalError, "grant authorization failed")
            }
        })?;
    if !changes.is_empty() {
        shared
            .control
            .apply_change(
                ctx.workspace_id,
                CatalogChange::UpdateGrants {
                    securable_type: securable.kind().to_owned(),
                    full_name: securable.full_name(),
                    changes: changes
                        .into_iter()
                        .map(|c| GrantChange {
                            principal: c.principal,
                            add: c.add.iter().map(|p| p.to_ascii_uppercase()).collect(),
                            remove: c.remove.iter().map(|p| p.to_ascii_uppercase()).collect(),
                        })
                        .collect(),
                },
                ctx.request_id(),
            )
            .await?;
    }
    if omit {
        return Ok(json_response(&json!({})));
    }
    let snapshot = shared
        .control
        .snapshot(&shared.engine, ctx.workspace_id, ctx.request_id())
        .await?;
    Ok(json_response(&assignments(&snapshot, &securable, None)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakeward_common::data::{CatalogRecord, GrantRecord};

    #[test]
    fn securables_from_the_path() {
        assert_eq!(
            parse_securable("TABLE", "Main.Default.T").unwrap(),
            Securable::Table {
                catalog: "main".into(),
                schema: "default".into(),
                name: "t".into()
            }
        );
        assert_eq!(
            parse_securable("catalog", "samples").unwrap(),
            Securable::Catalog {
                name: "samples".into()
            }
        );
        assert!(parse_securable("schema", "a").is_err());
        assert!(parse_securable("table", "a..b").is_err());
        assert!(parse_securable("volume", "a.b.c").is_err());
    }

    #[test]
    fn assignments_group_by_principal() {
        let grant = |principal: &str, privileges: &[&str]| GrantRecord {
            securable_type: "CATALOG".into(),
            full_name: "main".into(),
            principal: principal.into(),
            privileges: privileges.iter().map(|p| (*p).to_owned()).collect(),
        };
        let snapshot = CatalogSnapshot {
            version: 1,
            catalogs: vec![CatalogRecord {
                name: "main".into(),
                owner: "admins".into(),
                comment: None,
            }],
            grants: vec![
                grant("users", &["USE_CATALOG"]),
                grant("a@x", &["SELECT", "USE_CATALOG"]),
                grant("empty", &[]),
            ],
            ..CatalogSnapshot::default()
        };
        let main = Securable::Catalog {
            name: "main".into(),
        };
        assert!(exists(&snapshot, &main));
        assert_eq!(
            assignments(&snapshot, &main, None),
            json!({"privilege_assignments": [
                {"principal": "a@x", "privileges": ["SELECT", "USE_CATALOG"]},
                {"principal": "users", "privileges": ["USE_CATALOG"]},
            ]})
        );
        assert_eq!(
            assignments(&snapshot, &main, Some("users"))["privilege_assignments"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}
