//! `CREATE` and `DROP` of schemas and tables (`CREATE TABLE ... AS` is prepared in
//! [`super::ctas`]): each checks names, existence and privileges now, and leaves the catalog
//! changes (and the managed files to remove) for `run`.

use super::ast::{ColumnDef, CreateSchema, CreateTable, DropSchema, DropTable};
use super::changes::{check_overlap, owns_files};
use super::ctas;
use super::names::{find_table, parent_schema, table_parts, valid_name};
use super::plan::session;
use super::prepared::PreparedInner;
use super::preparing::Preparing;
use crate::engine::access;
use crate::engine::catalog::{columns_of, listing_options, read_only, validate_options, FORMATS};
use crate::engine::error::QueryError;
use crate::engine::error::{
    already_exists, bad_request, bad_request_with_state, schema_not_found, table_not_found,
    unsupported,
};
use crate::engine::lake::Lake;
use lakeward_common::data::{CatalogChange, ColumnRecord, SchemaRecord, TableRecord};
use lakeward_policy::Securable;
use std::collections::BTreeSet;

pub(crate) fn create_schema(
    p: &mut Preparing<'_>,
    stmt: CreateSchema,
) -> Result<PreparedInner, QueryError> {
    let schema = p.names.schema_name(&stmt.name)?;
    valid_name(&schema.name)?;
    let parent = Securable::Catalog {
        name: schema.catalog.clone(),
    };
    access::require_exists(p.snapshot(), &parent)?;
    p.authz.check("CreateSchema", &parent)?;
    if access::owner_of(p.snapshot(), &schema.securable).is_some() {
        if stmt.if_not_exists {
            return Ok(PreparedInner::nothing());
        }
        return Err(already_exists(&schema.securable));
    }
    let change = CatalogChange::CreateSchema {
        schema: SchemaRecord {
            catalog: schema.catalog,
            name: schema.name,
            owner: p.owner(),
            comment: stmt.comment,
        },
        if_not_exists: stmt.if_not_exists,
    };
    Ok(PreparedInner::Changes(p.changes(vec![change], vec![])))
}

pub(crate) fn drop_schema(
    p: &mut Preparing<'_>,
    stmt: DropSchema,
) -> Result<PreparedInner, QueryError> {
    let schema = p.names.schema_name(&stmt.name)?;
    if access::owner_of(p.snapshot(), &schema.securable).is_none() {
        if stmt.if_exists {
            return Ok(PreparedInner::nothing());
        }
        return Err(schema_not_found(&schema.securable.full_name()));
    }
    p.authz.check("DropSchema", &schema.securable)?;
    let tables: Vec<&TableRecord> = p
        .snapshot()
        .tables
        .iter()
        .filter(|t| t.catalog == schema.catalog && t.schema == schema.name)
        .collect();
    if !tables.is_empty() && !stmt.cascade {
        return Err(bad_request_with_state(
            format!(
                "[SCHEMA_NOT_EMPTY] Cannot drop schema `{}` because it contains objects; use \
                 DROP SCHEMA ... CASCADE to drop the schema and all its objects",
                schema.securable.full_name()
            ),
            "2BP01",
        ));
    }
    let ws = p.workspace_id();
    let wipe = tables
        .iter()
        .filter(|t| owns_files(ws, t))
        .map(|t| t.location.clone())
        .collect();
    let change = CatalogChange::DropSchema {
        catalog: schema.catalog,
        name: schema.name,
        if_exists: stmt.if_exists,
        cascade: stmt.cascade,
    };
    Ok(PreparedInner::Changes(p.changes(vec![change], wipe)))
}

pub(crate) fn drop_table(
    p: &mut Preparing<'_>,
    stmt: DropTable,
) -> Result<PreparedInner, QueryError> {
    let table = p.names.table(&stmt.name)?;
    let snapshot = p.snapshot().clone();
    let Some(record) = find_table(&snapshot, &table) else {
        if stmt.if_exists {
            return Ok(PreparedInner::nothing());
        }
        return Err(table_not_found(&table.full_name()));
    };
    p.authz.check("DropTable", &table)?;
    // Only a managed table of this workspace's area has files that go with it; an external
    // table's (the shared samples included) stay.
    let wipe = if owns_files(p.workspace_id(), record) {
        vec![record.location.clone()]
    } else {
        vec![]
    };
    let (catalog, schema, name) = table_parts(&table);
    let change = CatalogChange::DropTable {
        catalog,
        schema,
        name,
        if_exists: stmt.if_exists,
    };
    Ok(PreparedInner::Changes(p.changes(vec![change], wipe)))
}

pub(crate) async fn create_table(
    p: &mut Preparing<'_>,
    stmt: CreateTable,
) -> Result<PreparedInner, QueryError> {
    let table = p.names.table(&stmt.name)?;
    let (catalog, schema_name, table_name) = table_parts(&table);
    valid_name(&table_name)?;
    let schema = parent_schema(&table);
    access::require_exists(p.snapshot(), &schema)?;
    p.authz.check("CreateTable", &schema)?;
    let snapshot = p.snapshot().clone();
    let existing = find_table(&snapshot, &table);
    if let Some(existing) = existing {
        if stmt.if_not_exists {
            return Ok(PreparedInner::nothing());
        }
        replaceable(p, &stmt, &table, existing)?;
    }
    // The replaced table's files go with it only when it was a managed table of this
    // workspace (never an external table's directory).
    let ws = p.workspace_id();
    let wipe: Vec<String> = existing
        .filter(|e| owns_files(ws, e))
        .map(|e| e.location.clone())
        .into_iter()
        .collect();
    let format = table_format(stmt.using.as_deref(), stmt.location.is_some())?;
    validate_options(&format, &stmt.options)?;
    let record = TableRecord {
        catalog: catalog.clone(),
        schema: schema_name.clone(),
        name: table_name.clone(),
        owner: p.owner(),
        table_type: "MANAGED".into(),
        format: format.clone(),
        location: Lake::managed_location(ws, &catalog, &schema_name, &table_name),
        columns: vec![],
        options: stmt.options,
        comment: stmt.comment,
    };
    let (record, wipe) = match (stmt.query_at, stmt.location) {
        (Some(at), location) => {
            if stmt.columns.is_some() {
                return Err(unsupported(
                    "[NOT_SUPPORTED] CREATE TABLE AS SELECT takes its columns from the query",
                ));
            }
            if location.is_some() || format != "PARQUET" {
                return Err(unsupported(
                    "[NOT_SUPPORTED] CREATE TABLE AS SELECT makes managed Parquet tables (no \
                     LOCATION, USING PARQUET)",
                ));
            }
            let replace = existing.is_some();
            let ctas = ctas::prepare(p, record, at, replace, stmt.if_not_exists).await?;
            return Ok(PreparedInner::Ctas(Box::new(ctas)));
        }
        (None, None) => managed(p, record, stmt.columns, wipe)?,
        (None, Some(given)) => (external(p, record, &given, stmt.columns).await?, wipe),
    };
    let change = CatalogChange::CreateTable {
        table: record,
        if_not_exists: stmt.if_not_exists,
        replace: stmt.or_replace,
    };
    Ok(PreparedInner::Changes(p.changes(vec![change], wipe)))
}

/// A table of that name exists: only `OR REPLACE` by a caller who may drop it replaces it,
/// and only inside the workspace's area.
fn replaceable(
    p: &mut Preparing<'_>,
    stmt: &CreateTable,
    table: &Securable,
    existing: &TableRecord,
) -> Result<(), QueryError> {
    if !stmt.or_replace {
        return Err(already_exists(table));
    }
    // Replacing discards the old definition (and a managed table's data).
    p.authz.check("DropTable", table)?;
    if !Lake::in_area(p.workspace_id(), &existing.location) {
        return Err(read_only(existing));
    }
    Ok(())
}

/// The table's format: `USING`, Parquet by default (and for a managed `DELTA` table, which
/// Databricks defaults to).
fn table_format(using: Option<&str>, has_location: bool) -> Result<String, QueryError> {
    let format = match using {
        None => "PARQUET",
        // Managed tables are Parquet here; Databricks' default format is accepted.
        Some("DELTA") if !has_location => "PARQUET",
        Some(other) => other,
    };
    if !FORMATS.contains(&format) {
        return Err(unsupported(format!(
            "[NOT_SUPPORTED] USING {format}: tables are PARQUET, CSV or JSON"
        )));
    }
    Ok(format.to_owned())
}

/// A new managed table from its column list; it starts empty.
fn managed(
    p: &Preparing<'_>,
    mut record: TableRecord,
    columns: Option<Vec<ColumnDef>>,
    mut wipe: Vec<String>,
) -> Result<(TableRecord, Vec<String>), QueryError> {
    let Some(columns) = columns else {
        return Err(bad_request(
            "CREATE TABLE needs columns, a LOCATION to read them from, or AS SELECT",
        ));
    };
    if record.format != "PARQUET" {
        return Err(unsupported(
            "[NOT_SUPPORTED] managed tables are Parquet; give CSV and JSON tables a LOCATION",
        ));
    }
    record.columns = column_records(&columns)?;
    check_overlap(p.snapshot(), &record)?;
    // The replaced table's files, or leftovers of an interrupted statement, go (once it is
    // in).
    if !wipe.contains(&record.location) {
        wipe.push(record.location.clone());
    }
    Ok((record, wipe))
}

/// An external table over files at `given`, inside the workspace's area; without a column
/// list, the columns are read from the files.
async fn external(
    p: &Preparing<'_>,
    mut record: TableRecord,
    given: &str,
    columns: Option<Vec<ColumnDef>>,
) -> Result<TableRecord, QueryError> {
    let mut resolved = p.lake.resolve_location(p.workspace_id(), given)?;
    if !resolved.ends_with('/') && !p.lake.is_file(&resolved).await {
        resolved.push('/');
    }
    record.table_type = "EXTERNAL".into();
    record.location = resolved;
    // Before reading anything there: another table's files are not ours.
    check_overlap(p.snapshot(), &record)?;
    record.columns = match columns {
        Some(columns) => column_records(&columns)?,
        None => {
            let state = session(p.ctx, p.names)?;
            let options = listing_options(
                &record.format,
                &record.options,
                record.location.ends_with('/'),
            )?;
            let url = Lake::table_url(&record.location)?;
            let inferred = options.infer_schema(&state, &url).await.map_err(|e| {
                bad_request(format!(
                    "cannot read the columns of LOCATION '{given}': {}",
                    QueryError::from(e)
                ))
            })?;
            columns_of(&inferred, true)
        }
    };
    Ok(record)
}

fn column_records(columns: &[ColumnDef]) -> Result<Vec<ColumnRecord>, QueryError> {
    let mut seen = BTreeSet::new();
    columns
        .iter()
        .map(|c| {
            if !seen.insert(c.name.to_lowercase()) {
                return Err(bad_request_with_state(
                    format!(
                        "[COLUMN_ALREADY_EXISTS] The column `{}` is defined twice",
                        c.name
                    ),
                    "42711",
                ));
            }
            Ok(ColumnRecord {
                name: c.name.clone(),
                data_type: c.data_type.to_string(),
                nullable: c.nullable,
            })
        })
        .collect()
}
