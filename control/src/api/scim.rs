//! Workspace SCIM (`/api/2.0/preview/scim/v2/Users`, `/ServicePrincipals` and `/Groups`,
//! reference 2.13): what the
//! pieces share, namely the list response with SCIM paging, `eq` filters and PATCH operations.
//!
//! Paging follows the SDK's loop: `startIndex` is 1-based (default 1), `count` defaults to
//! and is capped at 10,000, and a page past the end has an empty `Resources`. Filters support
//! `<attribute> eq "<value>"` only (anything else is 400 `INVALID_PARAMETER_VALUE`). Every
//! change needs a workspace admin (defence in depth); reads need a workspace member.

pub(crate) mod groups;
pub(crate) mod service_principals;
pub(crate) mod users;

use super::extract::QueryParams;
use crate::error::ControlError;
use serde::Deserialize;
use serde_json::{json, Value};

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

/// `attribute eq "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EqFilter {
    /// Lowercased attribute name.
    pub(crate) attribute: String,
    pub(crate) value: String,
}

impl EqFilter {
    /// Compares text the SCIM way for the attribute: `userName` ignores case.
    pub(crate) fn matches(&self, attribute: &str, actual: &str) -> bool {
        self.attribute == attribute.to_ascii_lowercase()
            && if self.attribute == "username" {
                self.value.eq_ignore_ascii_case(actual)
            } else {
                self.value == actual
            }
    }
}

/// The `filter` query parameter, if any.
pub(crate) fn filter(query: &QueryParams) -> Result<Option<EqFilter>, ControlError> {
    let Some(text) = query.get("filter") else {
        return Ok(None);
    };
    let unsupported = || {
        ControlError::InvalidParameter(
            "only filters of the form `attribute eq \"value\"` are supported".into(),
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
    if !op.eq_ignore_ascii_case("eq") {
        return Err(unsupported());
    }
    let value = value.trim();
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_owned(),
    };
    Ok(Some(EqFilter {
        attribute: attribute.to_ascii_lowercase(),
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
        assert!(filter(&query(&[("filter", "userName co \"a\"")])).is_err());
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
