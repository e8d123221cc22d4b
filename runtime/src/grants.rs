//! Unity Catalog grants: `GET`/`PATCH /api/2.1/unity-catalog/permissions/{type}/{full_name}`,
//! decided by the same policies as SQL `GRANT`/`REVOKE` and stored by the control plane.
//!
//! Reading a securable's grants: a caller allowed `ManageGrants` on it (owner, `MANAGE`, a
//! workspace admin) sees every assignment; any other caller holding some privilege on it or an
//! ancestor sees only the assignments of the principals that denote it (itself and its groups);
//! to everyone else the securable does not exist (404, as a missing one). Changing grants needs
//! `ManageGrants`.

use crate::caller::CallerCtx;
use crate::error::ServiceError;
use crate::http::{json_response, Caller, Claims, JsonBody};
use crate::state::Shared;
use crate::text::lenient_bool;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use lakeward_common::data::{CatalogChange, CatalogSnapshot, GrantChange};
use lakeward_policy::Securable;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// `catalog`, `schema` or `table` (any case) and a dotted name, as a securable.
pub fn parse_securable(securable_type: &str, full_name: &str) -> Result<Securable, ServiceError> {
    let parts: Vec<String> = full_name.split('.').map(str::to_lowercase).collect();
    if parts.iter().any(String::is_empty) {
        return Err(ServiceError::invalid(
            "full_name",
            format!("`{full_name}` is not a valid full name"),
        ));
    }
    let wrong = |n: usize| {
        ServiceError::invalid(
            "full_name",
            format!(
                "a {} full name has {n} part(s), not `{full_name}`",
                securable_type.to_lowercase()
            ),
        )
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
        _ => Err(ServiceError::invalid(
            "securable_type",
            format!("securable type `{securable_type}` is not supported: catalog, schema or table"),
        )),
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
) -> Result<(Securable, Arc<CatalogSnapshot>), ServiceError> {
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

fn missing(securable: &Securable) -> ServiceError {
    ServiceError::NotFound(format!(
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
    Caller(ctx): Caller,
    Path((securable_type, full_name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ServiceError> {
    let (securable, _) = existing(&shared, &ctx, &securable_type, &full_name).await?;
    let context = shared.access_context(&ctx).await?;
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
        return Err(missing(&securable));
    }
    let names = caller_names(&ctx);
    Ok(json_response(&assignments_of(
        &context.snapshot,
        &securable,
        |p| names.contains(p) && principal.is_none_or(|q| q == p),
    )))
}

/// `UpdatePermissions`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "a JSON object")]
pub(crate) struct UpdateBody {
    changes: Option<Vec<GrantChange>>,
    #[serde(deserialize_with = "lenient_bool")]
    omit_permissions_in_response: bool,
}

impl UpdateBody {
    fn changes(self) -> Result<Vec<GrantChange>, ServiceError> {
        let changes = self.changes.unwrap_or_default();
        for (i, change) in changes.iter().enumerate() {
            if change.principal.trim().is_empty() {
                let field = format!("changes[{i}].principal");
                return Err(ServiceError::invalid(
                    &field,
                    format!("`{field}` is required"),
                ));
            }
        }
        Ok(changes)
    }
}

pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Claims(claims): Claims,
    Path((securable_type, full_name)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Response, ServiceError> {
    let omit = body.omit_permissions_in_response;
    let changes = body.changes()?;
    let ctx = shared.resolve_caller(claims).await?;
    let (securable, _) = existing(&shared, &ctx, &securable_type, &full_name).await?;
    let context = shared.access_context(&ctx).await?;
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
            "PERMISSION_DENIED" => ServiceError::PermissionDenied(err.message),
            "NOT_FOUND" => ServiceError::NotFound(err.message),
            _ => {
                tracing::error!(error_code = %err.error_code, message = %err.message, "grant authorization failed");
                ServiceError::Internal
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
