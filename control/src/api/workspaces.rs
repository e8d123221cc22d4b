//! Account workspaces, `/api/2.0/accounts/{account_id}/workspaces[/{workspace_id}]`
//! (reference 2.15). Creation is immediate: a new workspace is `RUNNING` at once, has its
//! `admins` and `users` groups, and its creator is a member of both so the account admin can
//! use it straight away. The list is a bare JSON array, as the SDK expects.
//!
//! Decisions where Databricks is silent or does not apply:
//! - `deployment_name` (the host label) defaults to one derived from `workspace_name`
//!   (lowercased, runs of other characters turned into `-`), made unique with a `-2`, `-3`...
//!   suffix; an explicit one must be a free DNS label (409 `RESOURCE_ALREADY_EXISTS` when
//!   taken) and cannot be changed later.
//! - Descriptive fields (`aws_region`, `pricing_tier`, `custom_tags`, ...) are kept and echoed
//!   but have no effect. Unknown fields are ignored.
//! - Deleting a workspace deletes its tokens, IP access lists, conf and groups. Deleting the
//!   workspace whose token authenticates the request is refused (400 `INVALID_STATE`), since
//!   it would lock the caller out.

use super::extract::AccountCaller;
use super::AppState;
use crate::config::{is_dns_label, is_dns_name};
use crate::error::ControlError;
use crate::store::workspaces::{self, Workspace, RUNNING};
use crate::store::{new_numeric_id, now_ms};
use axum::extract::State;
use axum::Json;
use lakeward_frame::server::{JsonBody, PathParams, QueryParams};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Descriptive fields kept as strings.
const STRING_ATTRIBUTES: [&str; 12] = [
    "aws_region",
    "location",
    "cloud",
    "pricing_tier",
    "credentials_id",
    "storage_configuration_id",
    "network_id",
    "private_access_settings_id",
    "managed_services_customer_managed_key_id",
    "storage_customer_managed_key_id",
    "network_connectivity_config_id",
    "compute_mode",
];
/// Descriptive fields kept as string-to-string maps.
const MAP_ATTRIBUTES: [&str; 1] = ["custom_tags"];
/// Fields the server sets; sent back in an update they are ignored.
const READ_ONLY: [&str; 6] = [
    "workspace_id",
    "account_id",
    "workspace_status",
    "workspace_status_message",
    "creation_time",
    "expected_workspace_status",
];
/// Host labels a workspace may not take (the gateway serves the account API there).
const RESERVED_DEPLOYMENT_NAMES: [&str; 1] = ["accounts"];

#[derive(Debug, Deserialize)]
pub(crate) struct CreateRequest {
    workspace_name: String,
    deployment_name: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// The `Workspace` object.
fn workspace_json(ws: &Workspace, account_id: &str) -> Value {
    let mut object = ws.attributes.clone();
    object.insert("workspace_id".into(), ws.workspace_id.into());
    object.insert("workspace_name".into(), ws.workspace_name.clone().into());
    object.insert("deployment_name".into(), ws.deployment_name.clone().into());
    object.insert("account_id".into(), account_id.into());
    object.insert(
        "workspace_status".into(),
        ws.workspace_status.clone().into(),
    );
    object.insert(
        "workspace_status_message".into(),
        "Workspace is running.".into(),
    );
    object.insert("creation_time".into(), ws.creation_time.into());
    Value::Object(object)
}

/// Checks one descriptive field; `None` when it is not one (or is null).
fn attribute(key: &str, value: &Value) -> Result<Option<Value>, ControlError> {
    if value.is_null() {
        return Ok(None);
    }
    if STRING_ATTRIBUTES.contains(&key) {
        return match value {
            Value::String(_) => Ok(Some(value.clone())),
            _ => Err(ControlError::InvalidParameter(format!(
                "`{key}` must be a string"
            ))),
        };
    }
    if MAP_ATTRIBUTES.contains(&key) {
        let valid = value
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string));
        return if valid {
            Ok(Some(value.clone()))
        } else {
            Err(ControlError::InvalidParameter(format!(
                "`{key}` must be an object of strings"
            )))
        };
    }
    Ok(None)
}

fn is_attribute(key: &str) -> bool {
    STRING_ATTRIBUTES.contains(&key) || MAP_ATTRIBUTES.contains(&key)
}

fn validate_name(name: &str) -> Result<String, ControlError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ControlError::InvalidParameter(
            "`workspace_name` must not be empty".into(),
        ));
    }
    if name.chars().count() > 256 {
        return Err(ControlError::InvalidParameter(
            "`workspace_name` must be at most 256 characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// A DNS label made from a workspace name.
fn derive_deployment_name(name: &str) -> String {
    let mut label = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            label.push(c.to_ascii_lowercase());
        } else if !label.ends_with('-') {
            label.push('-');
        }
    }
    let label: String = label.trim_matches('-').chars().take(50).collect();
    let label = label.trim_end_matches('-');
    if label.is_empty() {
        "workspace".to_owned()
    } else {
        label.to_owned()
    }
}

fn check_deployment_name(state: &AppState, name: &str) -> Result<(), ControlError> {
    let shown: String = name.chars().take(80).collect();
    if !is_dns_label(name) {
        return Err(ControlError::InvalidParameter(format!(
            "`deployment_name` `{shown}` must be 1 to 63 lowercase letters, digits and hyphens, not starting or ending with a hyphen"
        )));
    }
    if RESERVED_DEPLOYMENT_NAMES.contains(&name) {
        return Err(ControlError::InvalidParameter(format!(
            "`deployment_name` `{shown}` is reserved"
        )));
    }
    if let Some(domain) = &state.config().workspace_domain {
        if !is_dns_name(&format!("{name}.{domain}")) {
            return Err(ControlError::InvalidParameter(format!(
                "`deployment_name` `{shown}` makes a host name longer than 253 characters"
            )));
        }
    }
    Ok(())
}

fn parse_workspace_id(params: &PathParams) -> Result<i64, ControlError> {
    let raw = params.get("workspace_id")?;
    raw.parse().map_err(|_| {
        let shown: String = raw.chars().take(50).collect();
        ControlError::InvalidParameter(format!("`workspace_id` `{shown}` is not an integer"))
    })
}

fn not_found(workspace_id: i64) -> ControlError {
    ControlError::NotFound(format!("workspace `{workspace_id}` does not exist"))
}

/// `POST .../workspaces`.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: AccountCaller,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<Json<Value>, ControlError> {
    let workspace_name = validate_name(&req.workspace_name)?;
    let mut attributes = Map::new();
    for (key, value) in &req.rest {
        if let Some(value) = attribute(key, value)? {
            attributes.insert(key.clone(), value);
        }
    }
    let explicit = req
        .deployment_name
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    if let Some(name) = explicit {
        check_deployment_name(&state, name)?;
    }
    let mut tx = state.store().begin_write().await?;
    let deployment_name = match explicit {
        Some(name) => {
            if workspaces::deployment_name_taken(tx.conn(), name).await? {
                return Err(ControlError::AlreadyExists(format!(
                    "a workspace with deployment name `{name}` already exists"
                )));
            }
            name.to_owned()
        }
        None => {
            let base = derive_deployment_name(&workspace_name);
            let mut candidate = base.clone();
            let mut n = 2;
            while workspaces::deployment_name_taken(tx.conn(), &candidate).await?
                || check_deployment_name(&state, &candidate).is_err()
            {
                if n > 1000 {
                    return Err(ControlError::InvalidParameter(
                        "could not derive a free `deployment_name`; please give one".into(),
                    ));
                }
                candidate = format!("{base}-{n}");
                n += 1;
            }
            candidate
        }
    };
    let workspace = Workspace {
        workspace_id: new_numeric_id(),
        workspace_name,
        deployment_name,
        workspace_status: RUNNING.to_owned(),
        attributes,
        creation_time: now_ms(),
    };
    workspaces::create(tx.conn(), &workspace, &[caller.principal.id]).await?;
    // Writers are serialized (see `store`), so the name checks above cannot be overtaken.
    tx.commit().await?;
    Ok(Json(workspace_json(&workspace, &caller.account_id)))
}

/// `GET .../workspaces`: a bare array, oldest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: AccountCaller,
) -> Result<Json<Value>, ControlError> {
    let mut conn = state.store().conn().await?;
    let all = workspaces::list(&mut conn).await?;
    Ok(Json(Value::Array(
        all.iter()
            .map(|ws| workspace_json(ws, &caller.account_id))
            .collect(),
    )))
}

/// `GET .../workspaces/{workspace_id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: AccountCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let workspace_id = parse_workspace_id(&params)?;
    let mut conn = state.store().conn().await?;
    let ws = workspaces::get(&mut conn, workspace_id)
        .await?
        .ok_or_else(|| not_found(workspace_id))?;
    Ok(Json(workspace_json(&ws, &caller.account_id)))
}

/// `PATCH .../workspaces/{workspace_id}?update_mask=`: the body is a `Workspace`. With a mask,
/// only the named fields change (a named field absent from the body is cleared; `*` names
/// every updatable field); without one, every updatable field present changes.
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: AccountCaller,
    params: PathParams,
    query: QueryParams,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ControlError> {
    let workspace_id = parse_workspace_id(&params)?;
    let updatable = || {
        std::iter::once("workspace_name")
            .chain(STRING_ATTRIBUTES)
            .chain(MAP_ATTRIBUTES)
    };
    let fields: Vec<String> = match query.get("update_mask").map(str::trim) {
        Some("*") => updatable().map(str::to_owned).collect(),
        Some(mask) => mask
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        None => body
            .keys()
            .filter(|k| !READ_ONLY.contains(&k.as_str()) && k.as_str() != "deployment_name")
            .filter(|k| updatable().any(|u| u == k.as_str()))
            .cloned()
            .collect(),
    };
    let mut tx = state.store().begin_write().await?;
    let mut ws = workspaces::get(tx.conn(), workspace_id)
        .await?
        .ok_or_else(|| not_found(workspace_id))?;
    if let Some(requested) = body.get("deployment_name").and_then(Value::as_str) {
        if requested != ws.deployment_name {
            return Err(ControlError::InvalidParameter(
                "`deployment_name` cannot be changed".into(),
            ));
        }
    }
    for field in &fields {
        let value = body.get(field.as_str()).unwrap_or(&Value::Null);
        match field.as_str() {
            "workspace_name" => {
                ws.workspace_name = validate_name(value.as_str().ok_or_else(|| {
                    ControlError::InvalidParameter("`workspace_name` must be a string".into())
                })?)?;
            }
            key if is_attribute(key) => match attribute(key, value)? {
                Some(value) => {
                    ws.attributes.insert(key.to_owned(), value);
                }
                None => {
                    ws.attributes.remove(key);
                }
            },
            "deployment_name" => {}
            other => {
                let other: String = other.chars().take(60).collect();
                return Err(ControlError::InvalidParameter(format!(
                    "`update_mask` names `{other}`, which cannot be updated"
                )));
            }
        }
    }
    workspaces::update(tx.conn(), &ws).await?;
    tx.commit().await?;
    Ok(Json(workspace_json(&ws, &caller.account_id)))
}

/// `DELETE .../workspaces/{workspace_id}`: answers the workspace as it was.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: AccountCaller,
    params: PathParams,
) -> Result<Json<Value>, ControlError> {
    let workspace_id = parse_workspace_id(&params)?;
    let mut tx = state.store().begin_write().await?;
    let ws = workspaces::get(tx.conn(), workspace_id)
        .await?
        .ok_or_else(|| not_found(workspace_id))?;
    if let Some(token_id) = &caller.claims.token_id {
        if workspaces::owns_token(tx.conn(), workspace_id, token_id).await? {
            return Err(ControlError::InvalidState(
                "this workspace holds the token this request is authenticated with; deleting it would lock you out".into(),
            ));
        }
    }
    workspaces::delete(tx.conn(), workspace_id).await?;
    tx.commit().await?;
    Ok(Json(workspace_json(&ws, &caller.account_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_names_derive_from_workspace_names() {
        assert_eq!(derive_deployment_name("My Team's WS"), "my-team-s-ws");
        assert_eq!(derive_deployment_name("--x--"), "x");
        assert_eq!(derive_deployment_name("日本"), "workspace");
        assert!(is_dns_label(&derive_deployment_name(&"a b".repeat(60))));
    }

    #[test]
    fn attributes_are_type_checked() {
        assert!(attribute("aws_region", &Value::from("us-west-2"))
            .unwrap()
            .is_some());
        assert!(attribute("aws_region", &Value::from(3)).is_err());
        assert!(attribute("custom_tags", &serde_json::json!({"a": "b"}))
            .unwrap()
            .is_some());
        assert!(attribute("custom_tags", &serde_json::json!({"a": 1})).is_err());
        assert!(attribute("something_else", &Value::from(3))
            .unwrap()
            .is_none());
        assert!(attribute("aws_region", &Value::Null).unwrap().is_none());
    }
}
