//! IP access lists of a workspace or of the account.

use lakeward_common::internal::{IpAccessListRule, ListType};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

/// Whose lists: the account's or one workspace's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    Account,
    Workspace(i64),
}

impl Scope {
    /// The stored text form.
    pub(crate) fn key(self) -> String {
        match self {
            Scope::Account => "account".to_owned(),
            Scope::Workspace(id) => format!("ws:{id}"),
        }
    }

    fn workspace_id(self) -> Option<i64> {
        match self {
            Scope::Account => None,
            Scope::Workspace(id) => Some(id),
        }
    }
}

/// One list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpList {
    pub(crate) list_id: String,
    pub(crate) scope: Scope,
    pub(crate) label: String,
    pub(crate) list_type: ListType,
    pub(crate) enabled: bool,
    /// IPv4 addresses and CIDRs, validated before they are stored.
    pub(crate) ip_addresses: Vec<String>,
    pub(crate) created_at: i64,
    pub(crate) created_by: i64,
    pub(crate) updated_at: i64,
    pub(crate) updated_by: i64,
}

impl IpList {
    /// The form the gateway caches.
    pub(crate) fn rule(&self) -> IpAccessListRule {
        IpAccessListRule {
            list_id: self.list_id.clone(),
            list_type: self.list_type,
            enabled: self.enabled,
            ip_addresses: self.ip_addresses.clone(),
        }
    }
}

pub(crate) fn list_type_text(list_type: ListType) -> &'static str {
    match list_type {
        ListType::Allow => "ALLOW",
        ListType::Block => "BLOCK",
    }
}

const COLUMNS: &str = "list_id, workspace_id, label, list_type, enabled, ip_addresses, created_at, created_by, updated_at, updated_by";

fn from_row(row: &AnyRow) -> Result<IpList, sqlx::Error> {
    let workspace_id: Option<i64> = row.try_get("workspace_id")?;
    let list_type: String = row.try_get("list_type")?;
    let addresses: String = row.try_get("ip_addresses")?;
    Ok(IpList {
        list_id: row.try_get("list_id")?,
        scope: workspace_id.map_or(Scope::Account, Scope::Workspace),
        label: row.try_get("label")?,
        list_type: if list_type == "BLOCK" {
            ListType::Block
        } else {
            ListType::Allow
        },
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        // Written by us from a `Vec<String>`, so it parses.
        ip_addresses: serde_json::from_str(&addresses).unwrap_or_default(),
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

/// All lists of a scope, oldest first.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    scope: Scope,
) -> Result<Vec<IpList>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ip_access_lists WHERE scope = $1 ORDER BY created_at, list_id"
    );
    let rows = sqlx::query(&sql).bind(scope.key()).fetch_all(conn).await?;
    rows.iter().map(from_row).collect()
}

/// Every list of every scope (for the gateway snapshot).
pub(crate) async fn all(conn: &mut AnyConnection) -> Result<Vec<IpList>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM ip_access_lists ORDER BY created_at, list_id");
    let rows = sqlx::query(&sql).fetch_all(conn).await?;
    rows.iter().map(from_row).collect()
}

/// One list of a scope.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    scope: Scope,
    list_id: &str,
) -> Result<Option<IpList>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM ip_access_lists WHERE scope = $1 AND list_id = $2");
    let row = sqlx::query(&sql)
        .bind(scope.key())
        .bind(list_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Adds a list.
pub(crate) async fn insert(conn: &mut AnyConnection, l: &IpList) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ip_access_lists (list_id, workspace_id, scope, label, list_type, enabled, ip_addresses,
            created_at, created_by, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&l.list_id)
    .bind(l.scope.workspace_id())
    .bind(l.scope.key())
    .bind(&l.label)
    .bind(list_type_text(l.list_type))
    .bind(super::flag(l.enabled))
    .bind(addresses_json(&l.ip_addresses))
    .bind(l.created_at)
    .bind(l.created_by)
    .bind(l.updated_at)
    .bind(l.updated_by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Overwrites a list's mutable fields.
pub(crate) async fn update(conn: &mut AnyConnection, l: &IpList) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ip_access_lists SET label = $1, list_type = $2, enabled = $3, ip_addresses = $4,
            updated_at = $5, updated_by = $6
         WHERE scope = $7 AND list_id = $8",
    )
    .bind(&l.label)
    .bind(list_type_text(l.list_type))
    .bind(super::flag(l.enabled))
    .bind(addresses_json(&l.ip_addresses))
    .bind(l.updated_at)
    .bind(l.updated_by)
    .bind(l.scope.key())
    .bind(&l.list_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a list; says whether it existed.
pub(crate) async fn delete(
    conn: &mut AnyConnection,
    scope: Scope,
    list_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM ip_access_lists WHERE scope = $1 AND list_id = $2")
        .bind(scope.key())
        .bind(list_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

fn addresses_json(addresses: &[String]) -> String {
    serde_json::Value::from(addresses.to_vec()).to_string()
}
