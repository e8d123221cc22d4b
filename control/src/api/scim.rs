//! SCIM, in two directories with the same shapes (reference 2.13): a workspace's
//! (`/api/2.0/preview/scim/v2/{Users,ServicePrincipals,Groups}`) and the account's
//! (`/api/2.0/accounts/{account_id}/scim/v2/...`). This module holds what the pieces share:
//! the [`Directory`] a request addresses and its [`ScimCaller`], the list response with SCIM
//! paging, filters and PATCH operations.
//!
//! Identity federation, as Databricks has it: users and service principals are account-wide;
//! a workspace's users are the members of its `users` (or `admins`) group, so assigning a
//! principal to a workspace is adding it to that group, and the workspace directory creating
//! a user that exists in the account assigns that user rather than failing. Workspace groups
//! belong to their workspace; account groups (`workspace_id` NULL) to the account, where the
//! `admins` group's members are the account admins.
//!
//! Paging follows the SDK's loop: `startIndex` is 1-based (default 1), `count` defaults to
//! and is capped at 10,000, and a page past the end has an empty `Resources`. Filters support
//! one `<attribute> <op> "<value>"` comparison, `op` being `eq`, `co` (contains) or `sw`
//! (starts with); `userName` and `displayName` compare ignoring case (SCIM's `caseExact`
//! false), other attributes exactly. Anything else is 400 `INVALID_PARAMETER_VALUE`. Every
//! change needs an admin of the directory (defence in depth); workspace reads need a member.

pub(crate) mod groups;
pub(crate) mod service_principals;
pub(crate) mod users;

use super::extract::{AccountCaller, WorkspaceCaller};
use super::AppState;
use crate::error::ControlError;
use crate::store::directory::{Group, Principal};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lakeward_common::internal::{ADMINS_GROUP, USERS_GROUP};
use lakeward_frame::server::{PathParams, QueryParams};
use serde::Deserialize;
use serde_json::{json, Value};

/// The directory a SCIM request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directory {
    /// A workspace's: its members and its own groups.
    Workspace(i64),
    /// The account's: every principal, and the account-level groups.
    Account,
}

impl Directory {
    /// The scope of the directory's groups (`None` at account level).
    pub(crate) fn scope(self) -> Option<i64> {
        match self {
            Directory::Workspace(id) => Some(id),
            Directory::Account => None,
        }
    }

    /// Whether a principal with these groups belongs to the directory.
    pub(crate) fn has_member(self, groups: &[Group]) -> bool {
        match self {
            Directory::Account => true,
            Directory::Workspace(id) => groups.iter().any(|g| {
                g.workspace_id == Some(id)
                    && (g.display_name == USERS_GROUP || g.display_name == ADMINS_GROUP)
            }),
        }
    }

    /// The groups a principal's SCIM `groups` shows here: in a workspace its groups there and
    /// in the account, in the account its account groups.
    pub(crate) fn shown_groups(self, groups: &[Group]) -> impl Iterator<Item = &Group> {
        groups
            .iter()
            .filter(move |g| g.workspace_id.is_none() || g.workspace_id == self.scope())
    }

    /// Whether the group is one of the built-in groups, which cannot be renamed or deleted:
    /// a workspace's `admins` and `users`, the account's `admins`.
    pub(crate) fn is_builtin(self, group: &Group) -> bool {
        group.display_name == ADMINS_GROUP
            || (self != Directory::Account && group.display_name == USERS_GROUP)
    }

    /// "in this workspace" or "in the account", for messages.
    pub(crate) fn location(self) -> &'static str {
        match self {
            Directory::Workspace(_) => "in this workspace",
            Directory::Account => "in the account",
        }
    }
}

/// Who calls a SCIM route, and in which directory: a workspace member on a workspace route
/// (an admin if in its `admins` group), an account admin on an account route.
#[derive(Debug)]
pub(crate) struct ScimCaller {
    pub(crate) principal: Principal,
    pub(crate) directory: Directory,
    admin: bool,
}

impl ScimCaller {
    /// Defence in depth for changes (the gateway's policy already decided).
    pub(crate) fn require_admin(&self) -> Result<(), ControlError> {
        if self.admin {
            Ok(())
        } else {
            Err(ControlError::PermissionDenied(
                "only workspace admins may change users, service principals and groups".into(),
            ))
        }
    }
}

impl FromRequestParts<AppState> for ScimCaller {
    type Rejection = ControlError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let params = PathParams::from_request_parts(parts, state).await?;
        if params.contains("account_id") {
            let caller = AccountCaller::from_request_parts(parts, state).await?;
            Ok(ScimCaller {
                principal: caller.principal,
                directory: Directory::Account,
                admin: true,
            })
        } else {
            let caller = WorkspaceCaller::from_request_parts(parts, state).await?;
            Ok(ScimCaller {
                admin: caller.require_admin().is_ok(),
                directory: Directory::Workspace(caller.workspace_id()),
                principal: caller.principal,
            })
        }
    }
}

/// A principal's groups as SCIM `groups` in `directory`.
pub(crate) fn groups_json(groups: &[Group], directory: Directory) -> Vec<Value> {
    directory
        .shown_groups(groups)
        .map(|g| {
            json!({
                "value": g.id.to_string(),
                "display": g.display_name,
                "type": "direct",
                "$ref": format!("Groups/{}", g.id),
            })
        })
        .collect()
}

/// A required, non-empty (once trimmed) string field.
pub(crate) fn required_text(name: &str, value: &str) -> Result<String, ControlError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ControlError::InvalidParameter(format!(
            "`{name}` must not be empty"
        )));
    }
    Ok(value.to_owned())
}

/// An optional display name, falling back to `default` when absent or blank.
pub(crate) fn display_name_or(value: Option<String>, default: &str) -> String {
    value
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A PATCH value that must be a non-empty string.
pub(crate) fn patch_text(name: &str, value: &Value) -> Result<String, ControlError> {
    value
        .as_str()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ControlError::InvalidParameter(format!("`{name}` must be a non-empty string"))
        })
}

/// The schema of list responses.
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The largest page.
const MAX_COUNT: usize = 10_000;

/// A SCIM `PATCH` body.
#[derive(Debug, Deserialize)]
pub(crate) struct PatchRequest {
    #[serde(rename = "Operations")]
    operations: Vec<PatchOp>,
}

/// One operation.
#[derive(Debug, Deserialize)]
pub(crate) struct PatchOp {
    op: String,
    path: Option<String>,
    value: Option<Value>,
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Add,
    Remove,
    Replace,
}

impl PatchOp {
    fn kind(&self) -> Result<OpKind, ControlError> {
        match self.op.to_ascii_lowercase().as_str() {
            "add" => Ok(OpKind::Add),
            "remove" => Ok(OpKind::Remove),
            "replace" => Ok(OpKind::Replace),
            other => {
                let other: String = other.chars().take(30).collect();
                Err(ControlError::InvalidParameter(format!(
                    "`op` must be add, remove or replace, not `{other}`"
                )))
            }
        }
    }

    /// The operation as `(kind, attribute path, value)` pairs: an operation without a path
    /// whose value is an object stands for one operation per key.
    fn expand(self) -> Result<Vec<(OpKind, String, Value)>, ControlError> {
        let kind = self.kind()?;
        match (self.path, self.value) {
            (Some(path), value) => Ok(vec![(kind, path, value.unwrap_or(Value::Null))]),
            (None, Some(Value::Object(map))) => {
                Ok(map.into_iter().map(|(k, v)| (kind, k, v)).collect())
            }
            (None, _) => Err(ControlError::InvalidParameter(
                "an operation without `path` needs an object `value`".into(),
            )),
        }
    }
}

/// Flattens a PATCH body into `(kind, path, value)` steps.
pub(crate) fn steps(req: PatchRequest) -> Result<Vec<(OpKind, String, Value)>, ControlError> {
    let mut all = Vec::new();
    for op in req.operations {
        all.extend(op.expand()?);
    }
    Ok(all)
}

/// A boolean as SCIM clients send it: `false`, `"false"` or `[{"value": "false"}]` (the form
/// Databricks documents, and the one the SDK must use since it drops a falsy `value`).
pub(crate) fn scim_bool(name: &str, value: &Value) -> Result<bool, ControlError> {
    let bad = || ControlError::InvalidParameter(format!("`{name}` must be true or false"));
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad()),
        },
        Value::Array(items) if items.len() == 1 => scim_bool(name, &items[0]["value"]),
        _ => Err(bad()),
    }
}

/// A `{"value": "<id>"}` reference list, as numeric ids.
pub(crate) fn reference_ids(name: &str, value: &Value) -> Result<Vec<i64>, ControlError> {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        Value::Null => &[],
        _ => {
            return Err(ControlError::InvalidParameter(format!(
                "`{name}` must be a list of {{\"value\": id}}"
            )))
        }
    };
    items
        .iter()
        .map(|item| {
            let raw = match &item["value"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            raw.trim().parse().map_err(|_| {
                ControlError::InvalidParameter(format!("`{name}` holds an invalid id"))
            })
        })
        .collect()
}

/// A filter's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterOp {
    /// `eq`: equal.
    Eq,
    /// `co`: contains.
    Co,
    /// `sw`: starts with.
    Sw,
}

/// `attribute op "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Lowercased attribute name.
    pub(crate) attribute: String,
    pub(crate) op: FilterOp,
    pub(crate) value: String,
}

impl Filter {
    /// Whether `actual`, the value of `attribute`, passes. `userName` and `displayName`
    /// ignore case; other attributes compare exactly.
    pub(crate) fn matches(&self, attribute: &str, actual: &str) -> bool {
        let attribute = attribute.to_ascii_lowercase();
        if self.attribute != attribute {
            return false;
        }
        let (value, actual) = if attribute == "username" || attribute == "displayname" {
            (self.value.to_lowercase(), actual.to_lowercase())
        } else {
            (self.value.clone(), actual.to_owned())
        };
        match self.op {
            FilterOp::Eq => actual == value,
            FilterOp::Co => actual.contains(&value),
            FilterOp::Sw => actual.starts_with(&value),
        }
    }

    /// Whether any of the `(attribute, value)` pairs passes.
    pub(crate) fn matches_any(&self, pairs: &[(&str, &str)]) -> bool {
        pairs.iter().any(|(a, v)| self.matches(a, v))
    }
}

/// The `filter` query parameter, if any.
pub(crate) fn filter(query: &QueryParams) -> Result<Option<Filter>, ControlError> {
    let Some(text) = query.get("filter") else {
        return Ok(None);
    };
    let unsupported = || {
        ControlError::InvalidParameter(
            "`filter` must have the form `attribute op \"value\"` with `op` one of eq, co and sw"
                .into(),
        )
    };
    let text = text.trim();
    let (attribute, rest) = text
        .split_once(char::is_whitespace)
        .ok_or_else(unsupported)?;
    let (op, value) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(unsupported)?;
    let op = match op.to_ascii_lowercase().as_str() {
        "eq" => FilterOp::Eq,
        "co" => FilterOp::Co,
        "sw" => FilterOp::Sw,
        _ => return Err(unsupported()),
    };
    let value = value.trim();
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
        None if value.contains(char::is_whitespace) => return Err(unsupported()),
        None => value.to_owned(),
    };
    Ok(Some(Filter {
        attribute: attribute.to_ascii_lowercase(),
        op,
        value,
    }))
}

/// One page of `items` as a SCIM list response.
pub(crate) fn list_response(items: Vec<Value>, query: &QueryParams) -> Result<Value, ControlError> {
    let start = query.get_i64("startIndex")?.unwrap_or(1).max(1);
    let count = query.get_i64("count")?.map_or(MAX_COUNT, |c| {
        usize::try_from(c.max(0)).unwrap_or(0).min(MAX_COUNT)
    });
    let total = items.len();
    let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
    let page: Vec<Value> = items.into_iter().skip(skip).take(count).collect();
    Ok(json!({
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "schemas": [LIST_SCHEMA],
        "Resources": page,
    }))
}

/// A numeric SCIM id from the path; anything else cannot exist.
pub(crate) fn parse_id(raw: &str, what: &str) -> Result<i64, ControlError> {
    raw.parse().map_err(|_| {
        let shown: String = raw.chars().take(50).collect();
        ControlError::NotFound(format!("{what} `{shown}` does not exist"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn query(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        )
    }

    #[test]
    fn filters() {
        let f = filter(&query(&[("filter", "userName eq \"a@b.c\"")]))
            .unwrap()
            .unwrap();
        assert!(f.matches("userName", "A@B.C"));
        assert!(!f.matches("displayName", "a@b.c"));
        let f = filter(&query(&[("filter", "displayName EQ \"say \\\"hi\\\"\"")]))
            .unwrap()
            .unwrap();
        assert_eq!(f.value, "say \"hi\"");
        assert!(f.matches("displayName", "SAY \"hi\""));
        let f = filter(&query(&[("filter", "userName co \"B.C\"")]))
            .unwrap()
            .unwrap();
        assert!(f.matches("userName", "a@b.c"));
        assert!(!f.matches("userName", "a@b.d"));
        let f = filter(&query(&[("filter", "applicationId sw \"ab\"")]))
            .unwrap()
            .unwrap();
        assert!(f.matches_any(&[("userName", "x"), ("applicationId", "abc")]));
        assert!(!f.matches("applicationId", "ABC"));
        assert!(filter(&query(&[("filter", "userName gt \"a\"")])).is_err());
        assert!(filter(&query(&[("filter", "userName eq a and b")])).is_err());
        assert!(filter(&query(&[("filter", "junk")])).is_err());
        assert!(filter(&query(&[])).unwrap().is_none());
    }

    #[test]
    fn paging() {
        let items: Vec<Value> = (0..5).map(|n| json!({ "id": n })).collect();
        let page = list_response(
            items.clone(),
            &query(&[("startIndex", "2"), ("count", "2")]),
        )
        .unwrap();
        assert_eq!(page["Resources"], json!([{"id": 1}, {"id": 2}]));
        assert_eq!(page["totalResults"], 5);
        let past = list_response(items.clone(), &query(&[("startIndex", "6")])).unwrap();
        assert_eq!(past["Resources"], json!([]));
        let all = list_response(items, &query(&[])).unwrap();
        assert_eq!(all["itemsPerPage"], 5);
    }

    #[test]
    fn booleans_and_references() {
        assert!(!scim_bool("active", &json!([{"value": "false"}])).unwrap());
        assert!(scim_bool("active", &json!(true)).unwrap());
        assert!(scim_bool("active", &json!("maybe")).is_err());
        assert_eq!(
            reference_ids("members", &json!([{"value": "12"}, {"value": 13}])).unwrap(),
            vec![12, 13]
        );
        assert!(reference_ids("members", &json!([{"value": "x"}])).is_err());
    }
}
