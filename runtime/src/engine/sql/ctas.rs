//! `CREATE TABLE ... AS <query>`: the query planned and authorized like any other, its rows
//! written into a new managed Parquet location, and the definition committed only once the
//! files are there (and the files discarded when it is not).

use super::changes::check_overlap;
use super::cursor::Cursor;
use super::output::{affected, once};
use super::plan::{authorize_plan, execute_count, plan_sql, session};
use super::preparing::Preparing;
use crate::engine::catalog::{columns_of, LakeTable};
use crate::engine::compute::Compute;
use crate::engine::context::CatalogWriter;
use crate::engine::error::QueryError;
use crate::engine::error::{bad_request_with_state, syntax};
use crate::engine::lake::Lake;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::datasource::provider_as_source;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::sqlparser::tokenizer::Token;
use lakeward_common::data::{CatalogChange, CatalogSnapshot, TableRecord};
use object_store::path::Path;
use std::collections::BTreeSet;
use std::sync::Arc;

pub(crate) struct Ctas {
    state: SessionState,
    plan: LogicalPlan,
    compute: Arc<Compute>,
    lake: Arc<Lake>,
    writer: Arc<dyn CatalogWriter>,
    workspace_id: i64,
    snapshot: Arc<CatalogSnapshot>,
    /// Always a managed location inside the workspace's area.
    record: TableRecord,
    replace: bool,
    if_not_exists: bool,
}

/// Plans and authorizes the query after `AS` (at byte `at` of the bound statement) for the
/// managed Parquet table `record`.
pub(crate) async fn prepare(
    p: &mut Preparing<'_>,
    mut record: TableRecord,
    at: usize,
    replace: bool,
    if_not_exists: bool,
) -> Result<Ctas, QueryError> {
    let state = session(p.ctx, p.names)?;
    let query = p.bound.sql.get(at..).unwrap_or("");
    let is_query = Cursor::starts_with_kw(query, &["SELECT", "WITH", "VALUES", "FROM"])?
        || matches!(Cursor::new(query)?.peek(), Some(Token::LParen));
    if !is_query {
        return Err(syntax(
            "[PARSE_SYNTAX_ERROR] CREATE TABLE ... AS must be followed by a query",
        ));
    }
    let plan = plan_sql(&state, query, p.bound, false).await?;
    authorize_plan(&plan, &mut p.authz)?;
    let arrow = plan.schema().as_arrow().clone();
    let mut seen = BTreeSet::new();
    for field in arrow.fields() {
        if !seen.insert(field.name().to_lowercase()) {
            return Err(bad_request_with_state(
                format!(
                    "[COLUMN_ALREADY_EXISTS] The column `{}` appears twice; alias one of them",
                    field.name()
                ),
                "42711",
            ));
        }
    }
    record.columns = columns_of(&arrow, true);
    check_overlap(p.snapshot(), &record)?;
    Ok(Ctas {
        state,
        plan,
        compute: p.ctx.compute.clone(),
        lake: p.lake.clone(),
        writer: p.ctx.writer.clone(),
        workspace_id: p.workspace_id(),
        snapshot: p.snapshot().clone(),
        record,
        replace,
        if_not_exists,
    })
}

impl Ctas {
    pub(crate) async fn run(self) -> Result<SendableRecordBatchStream, QueryError> {
        check_overlap(&self.snapshot, &self.record)?;
        let ws = self.workspace_id;
        // Files already there: the replaced managed table's, or leftovers of a statement that
        // died between writing and committing. They go once the new definition is in, and
        // only if it went in.
        let before: BTreeSet<Path> = self
            .lake
            .list_managed(ws, &self.record.location)
            .await?
            .into_iter()
            .collect();
        let written = self.write().await;
        let rows = match written {
            Ok(rows) => rows,
            Err(e) => {
                self.discard_new(&before).await;
                return Err(e);
            }
        };
        let change = CatalogChange::CreateTable {
            table: self.record.clone(),
            if_not_exists: self.if_not_exists,
            replace: self.replace,
        };
        let response = match self.writer.apply(change).await {
            Ok(response) => response,
            Err(e) => {
                self.discard_new(&before).await;
                return Err(e.into());
            }
        };
        if !response.changed {
            // `IF NOT EXISTS` and the table exists by now: what is there stays, ours goes.
            self.discard_new(&before).await;
            return Ok(once(affected(0)?));
        }
        let old: Vec<_> = before.into_iter().collect();
        self.lake.delete_managed(ws, &old).await?;
        Ok(once(affected(rows)?))
    }

    /// Writes the query's rows into the table's location; the number of rows written.
    async fn write(&self) -> Result<i64, QueryError> {
        let schema: SchemaRef = Arc::new(self.plan.schema().as_arrow().clone());
        let target_schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let target = LakeTable::with_schema(&self.record, self.workspace_id, target_schema)?;
        let insert = LogicalPlanBuilder::insert_into(
            self.plan.clone(),
            TableReference::bare(self.record.name.clone()),
            provider_as_source(Arc::new(target)),
            InsertOp::Append,
        )
        .and_then(LogicalPlanBuilder::build)
        .map_err(QueryError::from)?;
        execute_count(&self.state, &insert, &self.compute).await
    }

    /// Removes the files this statement wrote (those not there `before`).
    async fn discard_new(&self, before: &BTreeSet<Path>) {
        let ws = self.workspace_id;
        let location = &self.record.location;
        let all = self
            .lake
            .list_managed(ws, location)
            .await
            .unwrap_or_default();
        let files: Vec<_> = all.into_iter().filter(|f| !before.contains(f)).collect();
        if let Err(e) = self.lake.delete_managed(ws, &files).await {
            tracing::warn!(%e, location, "cannot remove the files of a failed CTAS");
        }
    }
}
