//! `GET|PATCH /api/2.0/workspace-conf`: a flat map of string values. Three keys are known:
//!
//! - `enableIpAccessLists`: `"true"`/`"false"` (default `"false"`). Workspace IP access lists
//!   take effect only while it is `"true"`. Turning it on is refused with `INVALID_STATE` when
//!   the workspace's enabled lists would block the caller's own address (the same lockout
//!   guard as list changes; Databricks does not document this case, we chose to guard it).
//! - `maxTokenLifetimeDays`: a string integer from 0 to 730; `"0"` (the default) or `""` is
//!   no limit. It applies to tokens created afterwards only.
//! - `enableTokensConfig`: `"true"`/`"false"` (default `"true"`). While `"false"`, personal
//!   access tokens can be neither created (403 `PERMISSION_DENIED`) nor used (the gateway's
//!   side); existing tokens are kept.
//!
//! Reading is open to every workspace member; writing needs a workspace admin. Values may be
//! sent as JSON strings, booleans or integers; they are stored as strings.

use super::extract::WorkspaceCaller;
use super::lockout::check_lockout;
use super::AppState;
use crate::error::ControlError;
use crate::store::ip_lists::Scope;
use crate::store::settings;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lakeward_frame::server::{JsonBody, QueryParams};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub(crate) const ENABLE_IP_ACCESS_LISTS: &str = "enableIpAccessLists";
pub(crate) const MAX_TOKEN_LIFETIME_DAYS: &str = "maxTokenLifetimeDays";
pub(crate) const ENABLE_TOKENS_CONFIG: &str = "enableTokensConfig";

/// Every known key with the value it reads as when never set.
const KNOWN: [(&str, &str); 3] = [
    (ENABLE_IP_ACCESS_LISTS, "false"),
    (MAX_TOKEN_LIFETIME_DAYS, "0"),
    (ENABLE_TOKENS_CONFIG, "true"),
];

/// The largest `maxTokenLifetimeDays` (two years, as in Databricks).
const MAX_LIFETIME_DAYS: i64 = 730;

fn default_of(key: &str) -> Option<&'static str> {
    KNOWN.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
}

/// The value of `key` in a stored conf, or its default.
pub(crate) fn effective<'a>(conf: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    conf.get(key)
        .map(String::as_str)
        .or_else(|| default_of(key))
        .unwrap_or("")
}

/// A boolean key's value.
pub(crate) fn is_on(conf: &BTreeMap<String, String>, key: &str) -> bool {
    effective(conf, key) == "true"
}

/// The workspace's maximum token lifetime, if it has one.
pub(crate) fn max_token_lifetime_days(conf: &BTreeMap<String, String>) -> Option<i64> {
    effective(conf, MAX_TOKEN_LIFETIME_DAYS)
        .parse::<i64>()
        .ok()
        .filter(|days| *days > 0)
}

/// Checks and normalizes one value, naming the key in the error.
fn normalize(key: &str, value: &Value) -> Result<String, ControlError> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(ControlError::InvalidParameter(format!(
                "`{key}` must be a string"
            )))
        }
    };
    match key {
        ENABLE_IP_ACCESS_LISTS | ENABLE_TOKENS_CONFIG => match text.to_ascii_lowercase().as_str() {
            "true" => Ok("true".into()),
            "false" => Ok("false".into()),
            _ => Err(ControlError::InvalidParameter(format!(
                "`{key}` must be \"true\" or \"false\", not `{text}`"
            ))),
        },
        MAX_TOKEN_LIFETIME_DAYS => {
            if text.is_empty() {
                return Ok("0".into());
            }
            match text.parse::<i64>() {
                Ok(days) if (0..=MAX_LIFETIME_DAYS).contains(&days) => Ok(days.to_string()),
                _ => Err(ControlError::InvalidParameter(format!(
                    "`{key}` must be an integer number of days from 0 to {MAX_LIFETIME_DAYS}, not `{text}`"
                ))),
            }
        }
        _ => Err(unknown_key(key)),
    }
}

fn unknown_key(key: &str) -> ControlError {
    let key: String = key.chars().take(100).collect();
    ControlError::InvalidParameter(format!("unknown workspace-conf key `{key}`"))
}

/// `GET /api/2.0/workspace-conf?keys=a,b`: the requested keys (every known key when `keys` is
/// absent or empty), stored values or defaults, as strings.
pub(crate) async fn get_conf(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    query: QueryParams,
) -> Result<Json<Map<String, Value>>, ControlError> {
    let requested: Vec<String> = match query.get("keys") {
        Some(keys) => keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        None => KNOWN.iter().map(|(k, _)| (*k).to_owned()).collect(),
    };
    if let Some(bad) = requested.iter().find(|k| default_of(k).is_none()) {
        return Err(unknown_key(bad));
    }
    let mut conn = state.store().conn().await?;
    let conf = settings::workspace_conf(&mut conn, caller.workspace_id()).await?;
    Ok(Json(
        requested
            .into_iter()
            .map(|key| {
                let value = effective(&conf, &key).to_owned();
                (key, Value::String(value))
            })
            .collect(),
    ))
}

/// `PATCH /api/2.0/workspace-conf`: sets the given keys; all are checked before any is
/// written. Answers 204.
pub(crate) async fn set_conf(
    State(state): State<AppState>,
    caller: WorkspaceCaller,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<StatusCode, ControlError> {
    caller.require_admin()?;
    let mut changes = Vec::with_capacity(body.len());
    for (key, value) in &body {
        changes.push((key.as_str(), normalize(key, value)?));
    }
    let workspace_id = caller.workspace_id();
    let mut tx = state.store().begin_write().await?;
    let before = settings::workspace_conf(tx.conn(), workspace_id).await?;
    let turning_on = changes
        .iter()
        .any(|(key, value)| *key == ENABLE_IP_ACCESS_LISTS && value == "true")
        && !is_on(&before, ENABLE_IP_ACCESS_LISTS);
    if turning_on {
        let lists = crate::store::ip_lists::list(tx.conn(), Scope::Workspace(workspace_id)).await?;
        check_lockout(&lists, true, &caller.claims.client_ip)?;
    }
    for (key, value) in &changes {
        settings::set_workspace_conf(tx.conn(), workspace_id, key, value).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_checked_and_normalized() {
        assert_eq!(
            normalize(ENABLE_IP_ACCESS_LISTS, &json!("TRUE")).unwrap(),
            "true"
        );
        assert_eq!(
            normalize(ENABLE_TOKENS_CONFIG, &json!(false)).unwrap(),
            "false"
        );
        assert!(normalize(ENABLE_TOKENS_CONFIG, &json!("yes")).is_err());
        assert_eq!(
            normalize(MAX_TOKEN_LIFETIME_DAYS, &json!("90")).unwrap(),
            "90"
        );
        assert_eq!(
            normalize(MAX_TOKEN_LIFETIME_DAYS, &json!(90)).unwrap(),
            "90"
        );
        assert_eq!(normalize(MAX_TOKEN_LIFETIME_DAYS, &json!("")).unwrap(), "0");
        assert!(normalize(MAX_TOKEN_LIFETIME_DAYS, &json!("731")).is_err());
        assert!(normalize(MAX_TOKEN_LIFETIME_DAYS, &json!("-1")).is_err());
        assert!(normalize(MAX_TOKEN_LIFETIME_DAYS, &json!("ninety")).is_err());
        assert!(normalize(MAX_TOKEN_LIFETIME_DAYS, &json!(null)).is_err());
        let err = normalize("enableFoo", &json!("true")).unwrap_err();
        assert!(err.to_string().contains("`enableFoo`"));
    }

    #[test]
    fn defaults() {
        let conf = BTreeMap::new();
        assert!(!is_on(&conf, ENABLE_IP_ACCESS_LISTS));
        assert!(is_on(&conf, ENABLE_TOKENS_CONFIG));
        assert_eq!(max_token_lifetime_days(&conf), None);
        let conf = BTreeMap::from([(MAX_TOKEN_LIFETIME_DAYS.to_owned(), "30".to_owned())]);
        assert_eq!(max_token_lifetime_days(&conf), Some(30));
    }
}
