//! The account IP access list switch,
//! `/api/2.0/accounts/{account_id}/settings/types/acct_ip_acl_enable/names/default`
//! (reference 2.5): on by default; `DELETE` reverts it to that default.
//!
//! Decisions: turning it on (by `PATCH` or by `DELETE`) is refused with 400 `INVALID_STATE`
//! when the account's enabled lists would block the caller, like list changes. Etags are
//! returned (the state version of the last write) but not enforced: the last write wins.

use super::extract::AccountCaller;
use super::ip_lists::ACCOUNT_ENABLE_SETTING;
use super::lockout::check_lockout;
use super::AppState;
use crate::error::ControlError;
use crate::store::ip_lists::Scope;
use crate::store::settings;
use axum::extract::State;
use axum::Json;
use lakeward_frame::server::JsonBody;
use serde::Deserialize;
use serde_json::{json, Value};

/// The etag of a setting never written.
const DEFAULT_ETAG: &str = "0";

#[derive(Debug, Deserialize)]
pub(crate) struct UpdateRequest {
    setting: SettingBody,
}

#[derive(Debug, Deserialize)]
struct SettingBody {
    acct_ip_acl_enable: BooleanMessage,
}

#[derive(Debug, Deserialize)]
struct BooleanMessage {
    value: bool,
}

/// `AccountIpAccessEnable`.
fn setting_json(enabled: bool, etag: &str) -> Value {
    json!({
        "acct_ip_acl_enable": { "value": enabled },
        "etag": etag,
        "setting_name": "default",
    })
}

/// `GET`: the current value (default on).
pub(crate) async fn get(
    State(state): State<AppState>,
    _caller: AccountCaller,
) -> Result<Json<Value>, ControlError> {
    let mut conn = state.store().conn().await?;
    let stored = settings::account_setting(&mut conn, ACCOUNT_ENABLE_SETTING).await?;
    Ok(Json(match stored {
        Some((value, etag)) => setting_json(value != "false", &etag),
        None => setting_json(true, DEFAULT_ETAG),
    }))
}

/// Writes the setting (`None` reverts to the default), guarding a switch to on.
async fn write(
    state: &AppState,
    caller: &AccountCaller,
    value: Option<bool>,
) -> Result<String, ControlError> {
    let mut tx = state.store().begin_write().await?;
    if value.unwrap_or(true) {
        let lists = crate::store::ip_lists::list(tx.conn(), Scope::Account).await?;
        check_lockout(&lists, true, &caller.claims.client_ip)?;
    }
    let etag = match value {
        Some(value) => {
            let etag = tx.version().to_string();
            settings::set_account_setting(
                tx.conn(),
                ACCOUNT_ENABLE_SETTING,
                if value { "true" } else { "false" },
                &etag,
            )
            .await?;
            etag
        }
        None => {
            settings::delete_account_setting(tx.conn(), ACCOUNT_ENABLE_SETTING).await?;
            DEFAULT_ETAG.to_owned()
        }
    };
    tx.commit().await?;
    Ok(etag)
}

/// `PATCH`: `{"allow_missing", "field_mask", "setting": {"acct_ip_acl_enable": {"value"}}}`.
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: AccountCaller,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> Result<Json<Value>, ControlError> {
    let value = req.setting.acct_ip_acl_enable.value;
    let etag = write(&state, &caller, Some(value)).await?;
    Ok(Json(setting_json(value, &etag)))
}

/// `DELETE`: back to the default (on). Answers `{"etag"}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: AccountCaller,
) -> Result<Json<Value>, ControlError> {
    let etag = write(&state, &caller, None).await?;
    Ok(Json(json!({ "etag": etag })))
}
