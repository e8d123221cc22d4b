//! The lake's catalog, per workspace: catalogs, schemas, tables (definitions only) and the
//! privileges granted on them. Names arrive here already lower-cased; the semantics of each
//! change (`IF NOT EXISTS`, cascades, who may be granted what) live in the API layer
//! (`api::data`), and these queries only read and write rows.

use lakeward_common::data::{CatalogRecord, ColumnRecord, GrantRecord, SchemaRecord, TableRecord};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;
use std::collections::BTreeMap;

/// `securable_type` of a catalog's, a schema's and a table's grants.
pub(crate) const CATALOG: &str = "CATALOG";
pub(crate) const SCHEMA: &str = "SCHEMA";
pub(crate) const TABLE: &str = "TABLE";

fn decode(what: &str, e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(format!("{what}: {e}").into())
}

/// Every catalog of the workspace, by name.
pub(crate) async fn catalogs(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<Vec<CatalogRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, owner, comment FROM catalogs WHERE workspace_id = $1 ORDER BY name",
    )
    .bind(workspace_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CatalogRecord {
                name: row.try_get("name")?,
                owner: row.try_get("owner")?,
                comment: row.try_get("comment")?,
            })
        })
        .collect()
}

/// Every schema of the workspace, by catalog and name.
pub(crate) async fn schemas(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<Vec<SchemaRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT catalog_name, name, owner, comment FROM catalog_schemas WHERE workspace_id = $1
         ORDER BY catalog_name, name",
    )
    .bind(workspace_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SchemaRecord {
                catalog: row.try_get("catalog_name")?,
                name: row.try_get("name")?,
                owner: row.try_get("owner")?,
                comment: row.try_get("comment")?,
            })
        })
        .collect()
}

const TABLE_COLUMNS: &str = "catalog_name, schema_name, name, owner, table_type, format, location,
    columns, options, comment";

fn table_from_row(row: &AnyRow) -> Result<TableRecord, sqlx::Error> {
    let columns: String = row.try_get("columns")?;
    let options: String = row.try_get("options")?;
    Ok(TableRecord {
        catalog: row.try_get("catalog_name")?,
        schema: row.try_get("schema_name")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        table_type: row.try_get("table_type")?,
        format: row.try_get("format")?,
        location: row.try_get("location")?,
        columns: serde_json::from_str::<Vec<ColumnRecord>>(&columns)
            .map_err(|e| decode("table columns", e))?,
        options: serde_json::from_str::<BTreeMap<String, String>>(&options)
            .map_err(|e| decode("table options", e))?,
        comment: row.try_get("comment")?,
    })
}

/// Every table of the workspace, by catalog, schema and name.
pub(crate) async fn tables(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<Vec<TableRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {TABLE_COLUMNS} FROM catalog_tables WHERE workspace_id = $1
         ORDER BY catalog_name, schema_name, name"
    );
    let rows = sqlx::query(&sql).bind(workspace_id).fetch_all(conn).await?;
    rows.iter().map(table_from_row).collect()
}

/// Every grant of the workspace, one record per securable and principal, privileges sorted.
pub(crate) async fn grants(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<Vec<GrantRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT securable_type, full_name, principal, privilege FROM catalog_grants
         WHERE workspace_id = $1 ORDER BY securable_type, full_name, principal, privilege",
    )
    .bind(workspace_id)
    .fetch_all(conn)
    .await?;
    let mut grants: Vec<GrantRecord> = Vec::new();
    for row in &rows {
        let securable_type: String = row.try_get("securable_type")?;
        let full_name: String = row.try_get("full_name")?;
        let principal: String = row.try_get("principal")?;
        let privilege: String = row.try_get("privilege")?;
        match grants.last_mut() {
            Some(last)
                if last.securable_type == securable_type
                    && last.full_name == full_name
                    && last.principal == principal =>
            {
                last.privileges.push(privilege);
            }
            _ => grants.push(GrantRecord {
                securable_type,
                full_name,
                principal,
                privileges: vec![privilege],
            }),
        }
    }
    Ok(grants)
}

pub(crate) async fn catalog_exists(
    conn: &mut AnyConnection,
    workspace_id: i64,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM catalogs WHERE workspace_id = $1 AND name = $2")
            .bind(workspace_id)
            .bind(name)
            .fetch_one(conn)
            .await?;
    Ok(count > 0)
}

pub(crate) async fn schema_exists(
    conn: &mut AnyConnection,
    workspace_id: i64,
    catalog: &str,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM catalog_schemas
         WHERE workspace_id = $1 AND catalog_name = $2 AND name = $3",
    )
    .bind(workspace_id)
    .bind(catalog)
    .bind(name)
    .fetch_one(conn)
    .await?;
    Ok(count > 0)
}

pub(crate) async fn table_exists(
    conn: &mut AnyConnection,
    workspace_id: i64,
    catalog: &str,
    schema: &str,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM catalog_tables
         WHERE workspace_id = $1 AND catalog_name = $2 AND schema_name = $3 AND name = $4",
    )
    .bind(workspace_id)
    .bind(catalog)
    .bind(schema)
    .bind(name)
    .fetch_one(conn)
    .await?;
    Ok(count > 0)
}

/// How many tables the schema holds.
pub(crate) async fn count_tables(
    conn: &mut AnyConnection,
    workspace_id: i64,
    catalog: &str,
    schema: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM catalog_tables
         WHERE workspace_id = $1 AND catalog_name = $2 AND schema_name = $3",
    )
    .bind(workspace_id)
    .bind(catalog)
    .bind(schema)
    .fetch_one(conn)
    .await
}

pub(crate) async fn insert_catalog(
    conn: &mut AnyConnection,
    workspace_id: i64,
    catalog: &CatalogRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO catalogs (workspace_id, name, owner, comment, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(workspace_id)
    .bind(&catalog.name)
    .bind(&catalog.owner)
    .bind(&catalog.comment)
    .bind(super::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn insert_schema(
    conn: &mut AnyConnection,
    workspace_id: i64,
    schema: &SchemaRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO catalog_schemas (workspace_id, catalog_name, name, owner, comment, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(workspace_id)
    .bind(&schema.catalog)
    .bind(&schema.name)
    .bind(&schema.owner)
    .bind(&schema.comment)
    .bind(super::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

pub(crate) async fn insert_table(
    conn: &mut AnyConnection,
    workspace_id: i64,
    table: &TableRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO catalog_tables (workspace_id, catalog_name, schema_name, name, owner,
            table_type, format, location, columns, options, comment, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(workspace_id)
    .bind(&table.catalog)
    .bind(&table.schema)
    .bind(&table.name)
    .bind(&table.owner)
    .bind(&table.table_type)
    .bind(&table.format)
    .bind(&table.location)
    .bind(json_text(&table.columns)?)
    .bind(json_text(&table.options)?)
    .bind(&table.comment)
    .bind(super::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Overwrites an existing table's definition (`CREATE OR REPLACE`); its grants stay.
pub(crate) async fn replace_table(
    conn: &mut AnyConnection,
    workspace_id: i64,
    table: &TableRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE catalog_tables SET owner = $1, table_type = $2, format = $3, location = $4,
            columns = $5, options = $6, comment = $7
         WHERE workspace_id = $8 AND catalog_name = $9 AND schema_name = $10 AND name = $11",
    )
    .bind(&table.owner)
    .bind(&table.table_type)
    .bind(&table.format)
    .bind(&table.location)
    .bind(json_text(&table.columns)?)
    .bind(json_text(&table.options)?)
    .bind(&table.comment)
    .bind(workspace_id)
    .bind(&table.catalog)
    .bind(&table.schema)
    .bind(&table.name)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a table's definition and the grants on it; says whether there was one.
pub(crate) async fn delete_table(
    conn: &mut AnyConnection,
    workspace_id: i64,
    catalog: &str,
    schema: &str,
    name: &str,
) -> Result<bool, sqlx::Error> {
    delete_securable_grants(
        conn,
        workspace_id,
        TABLE,
        &format!("{catalog}.{schema}.{name}"),
    )
    .await?;
    let done = sqlx::query(
        "DELETE FROM catalog_tables
         WHERE workspace_id = $1 AND catalog_name = $2 AND schema_name = $3 AND name = $4",
    )
    .bind(workspace_id)
    .bind(catalog)
    .bind(schema)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes a schema, every table in it, and the grants on all of them; says whether there was
/// a schema.
pub(crate) async fn delete_schema(
    conn: &mut AnyConnection,
    workspace_id: i64,
    catalog: &str,
    name: &str,
) -> Result<bool, sqlx::Error> {
    // The tables' full names are built in SQL rather than matched with LIKE, whose `_` would
    // match any character of a name.
    sqlx::query(
        "DELETE FROM catalog_grants WHERE workspace_id = $1 AND securable_type = $2
           AND full_name IN (SELECT catalog_name || '.' || schema_name || '.' || name
                             FROM catalog_tables
                             WHERE workspace_id = $3 AND catalog_name = $4 AND schema_name = $5)",
    )
    .bind(workspace_id)
    .bind(TABLE)
    .bind(workspace_id)
    .bind(catalog)
    .bind(name)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM catalog_tables WHERE workspace_id = $1 AND catalog_name = $2 AND schema_name = $3",
    )
    .bind(workspace_id)
    .bind(catalog)
    .bind(name)
    .execute(&mut *conn)
    .await?;
    delete_securable_grants(conn, workspace_id, SCHEMA, &format!("{catalog}.{name}")).await?;
    let done = sqlx::query(
        "DELETE FROM catalog_schemas WHERE workspace_id = $1 AND catalog_name = $2 AND name = $3",
    )
    .bind(workspace_id)
    .bind(catalog)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

async fn delete_securable_grants(
    conn: &mut AnyConnection,
    workspace_id: i64,
    securable_type: &str,
    full_name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM catalog_grants
         WHERE workspace_id = $1 AND securable_type = $2 AND full_name = $3",
    )
    .bind(workspace_id)
    .bind(securable_type)
    .bind(full_name)
    .execute(conn)
    .await?;
    Ok(())
}

/// Grants one privilege; says whether it was new.
pub(crate) async fn add_grant(
    conn: &mut AnyConnection,
    workspace_id: i64,
    securable_type: &str,
    full_name: &str,
    principal: &str,
    privilege: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO catalog_grants (workspace_id, securable_type, full_name, principal, privilege)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (workspace_id, securable_type, full_name, principal, privilege) DO NOTHING",
    )
    .bind(workspace_id)
    .bind(securable_type)
    .bind(full_name)
    .bind(principal)
    .bind(privilege)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Revokes one privilege; says whether it had been granted.
pub(crate) async fn remove_grant(
    conn: &mut AnyConnection,
    workspace_id: i64,
    securable_type: &str,
    full_name: &str,
    principal: &str,
    privilege: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM catalog_grants WHERE workspace_id = $1 AND securable_type = $2
           AND full_name = $3 AND principal = $4 AND privilege = $5",
    )
    .bind(workspace_id)
    .bind(securable_type)
    .bind(full_name)
    .bind(principal)
    .bind(privilege)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Removes the whole catalog of a workspace (which is being deleted).
pub(crate) async fn delete_workspace(
    conn: &mut AnyConnection,
    workspace_id: i64,
) -> Result<(), sqlx::Error> {
    for table in [
        "catalog_grants",
        "catalog_tables",
        "catalog_schemas",
        "catalogs",
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE workspace_id = $1"))
            .bind(workspace_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
