//! The SQL front end: which statements exist, and where each is parsed, planned, authorized
//! and run.
//!
//! Queries and `INSERT` go to DataFusion's parser and planner (over the snapshot's catalog);
//! everything that changes or lists the catalog (`CREATE`, `DROP`, `SHOW`, `DESCRIBE`, `GRANT`,
//! `REVOKE`) is parsed here, in Databricks' grammar, and becomes [`CatalogChange`]s. Any other
//! statement, DataFusion's own DDL (`CREATE EXTERNAL TABLE`, `COPY`, `SET`, ...) included, is
//! refused before it reaches DataFusion: every write goes through our catalog.
//!
//! This file only classifies and dispatches. The statement modules (`ddl`, `ctas`, `dml`,
//! `show`, `grants`) each prepare their statements; they share the leaf modules below them
//! (`ast`, `cursor`, `names`, `output`, `plan`, `changes`, `prepared`, `preparing`) and never
//! import this file or each other, but for `ddl` handing `AS` queries to `ctas`.
//!
//! [`CatalogChange`]: lakeward_common::data::CatalogChange

mod ast;
mod changes;
mod ctas;
mod cursor;
mod ddl;
mod dml;
mod grants;
mod names;
mod output;
mod parse;
mod plan;
mod prepared;
mod preparing;
mod show;

use crate::engine::access::{self, Authorizer};
use crate::engine::context::{StatementContext, StatementInput};
use crate::engine::error::QueryError;
use crate::engine::lake::Lake;
use crate::engine::params;
use ast::Stmt;
use names::Names;
use preparing::Preparing;
use std::sync::Arc;

pub use prepared::Prepared;
use prepared::PreparedInner;

pub(crate) async fn prepare(
    lake: Arc<Lake>,
    ctx: StatementContext,
    input: StatementInput,
) -> Result<Prepared, QueryError> {
    access::check_context(&ctx.access)?;
    let bound = params::bind(&input.sql, &input.parameters)?;
    let names = Names::new(input.catalog.as_deref(), input.schema.as_deref());
    let stmt = parse::parse(&bound.sql)?;
    let mut p = Preparing {
        lake: &lake,
        ctx: &ctx,
        names: &names,
        bound: &bound,
        authz: Authorizer::new(&ctx.access),
    };
    let inner = dispatch(&mut p, stmt).await?;
    let mut touched = p.authz.touched;
    touched.sort();
    touched.dedup();
    Ok(Prepared { touched, inner })
}

/// Each statement to the module that prepares it.
async fn dispatch(p: &mut Preparing<'_>, stmt: Stmt) -> Result<PreparedInner, QueryError> {
    match stmt {
        Stmt::DataFusion => dml::query_or_insert(p).await,
        Stmt::CreateSchema(stmt) => ddl::create_schema(p, stmt),
        Stmt::DropSchema(stmt) => ddl::drop_schema(p, stmt),
        Stmt::CreateTable(stmt) => ddl::create_table(p, stmt).await,
        Stmt::DropTable(stmt) => ddl::drop_table(p, stmt),
        Stmt::Describe { name } => show::describe(p, &name),
        Stmt::ShowCatalogs { like } => show::catalogs(p, like.as_deref()),
        Stmt::ShowSchemas { catalog, like } => show::schemas(p, catalog, like.as_deref()),
        Stmt::ShowTables { schema, like } => show::tables(p, schema, like.as_deref()),
        Stmt::ShowGrants(stmt) => grants::show(p, stmt),
        Stmt::Grant(stmt) => grants::grant(p, stmt),
    }
}
