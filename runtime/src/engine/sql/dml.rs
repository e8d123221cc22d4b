//! Statements DataFusion plans: queries (and `EXPLAIN` of them) and `INSERT INTO`. Each is
//! planned over the snapshot's catalog and authorized table by table before it may run.

use super::cursor::Cursor;
use super::plan::{authorize_plan, plan_sql, session};
use super::prepared::PreparedInner;
use super::preparing::Preparing;
use crate::engine::error::unsupported;
use crate::engine::error::QueryError;
use lakeward_common::data::TableRecord;

pub(crate) async fn query_or_insert(p: &mut Preparing<'_>) -> Result<PreparedInner, QueryError> {
    let state = session(p.ctx, p.names)?;
    let is_insert = Cursor::starts_with_kw(&p.bound.sql, &["INSERT"])?;
    let plan = plan_sql(&state, &p.bound.sql, p.bound, is_insert).await?;
    let written = authorize_plan(&plan, &mut p.authz)?;
    for table in &written {
        insertable(table)?;
    }
    let compute = p.ctx.compute.clone();
    Ok(if is_insert {
        PreparedInner::Insert {
            state,
            plan,
            compute,
        }
    } else {
        PreparedInner::Query {
            state,
            plan,
            compute,
        }
    })
}

/// Inserts append Parquet files to a table's directory.
fn insertable(table: &TableRecord) -> Result<(), QueryError> {
    if table.format != "PARQUET" {
        return Err(unsupported(format!(
            "[NOT_SUPPORTED] INSERT into {} table `{}.{}.{}`: only Parquet tables take inserts",
            table.format, table.catalog, table.schema, table.name
        )));
    }
    if !table.location.ends_with('/') {
        return Err(unsupported(format!(
            "[NOT_SUPPORTED] INSERT into `{}.{}.{}`: its location is a single file",
            table.catalog, table.schema, table.name
        )));
    }
    Ok(())
}
