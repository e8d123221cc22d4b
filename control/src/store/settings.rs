//! Workspace-conf key/value pairs and account-level settings.

use sqlx::AnyConnection;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};

/// The stored workspace-conf values of one workspace (keys never set are absent).
pub(crate) async fn workspace_conf(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT conf_key, conf_value FROM workspace_conf WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_all(conn)
            .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("conf_key")?, row.try_get("conf_value")?)))
        .collect()
}

/// The stored workspace-conf values of every workspace.
pub(crate) async fn all_workspace_conf(
    conn: &mut AnyConnection,
) -> Result<HashMap<i64, BTreeMap<String, String>>, sqlx::Error> {
    let rows = sqlx::query("SELECT workspace_id, conf_key, conf_value FROM workspace_conf")
        .fetch_all(conn)
        .await?;
    let mut all: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
    for row in &rows {
        all.entry(row.try_get("workspace_id")?)
            .or_default()
            .insert(row.try_get("conf_key")?, row.try_get("conf_value")?);
    }
    Ok(all)
}

/// Sets one workspace-conf value.
pub(crate) async fn set_workspace_conf(
    conn: &mut AnyConnection,
    workspace_id: i64,
    key: &str,
    value: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO workspace_conf (workspace_id, conf_key, conf_value) VALUES ($1, $2, $3)
         ON CONFLICT (workspace_id, conf_key) DO UPDATE SET conf_value = excluded.conf_value",
    )
    .bind(workspace_id)
    .bind(key)
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}

/// An account setting's stored value and etag, if it was ever set.
pub(crate) async fn account_setting(
    conn: &mut AnyConnection,
    key: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row =
        sqlx::query("SELECT setting_value, etag FROM account_settings WHERE setting_key = $1")
            .bind(key)
            .fetch_optional(conn)
            .await?;
    row.map(|row| Ok((row.try_get("setting_value")?, row.try_get("etag")?)))
        .transpose()
}

/// Sets an account setting.
pub(crate) async fn set_account_setting(
    conn: &mut AnyConnection,
    key: &str,
    value: &str,
    etag: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_settings (setting_key, setting_value, etag) VALUES ($1, $2, $3)
         ON CONFLICT (setting_key) DO UPDATE SET setting_value = excluded.setting_value, etag = excluded.etag",
    )
    .bind(key)
    .bind(value)
    .bind(etag)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets an account setting, so it reads as its default again.
pub(crate) async fn delete_account_setting(
    conn: &mut AnyConnection,
    key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM account_settings WHERE setting_key = $1")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}
