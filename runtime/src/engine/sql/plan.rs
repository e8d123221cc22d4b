//! Query planning with DataFusion: a session over the snapshot's catalog, the plan of a query
//! (or `INSERT`), the authorization walk over every table the plan reads or writes, and the
//! execution of plans on the warehouse's compute.

use super::names::Names;
use crate::engine::access::Authorizer;
use crate::engine::catalog::{
    read_only, table_functions, FunctionTable, LakeTable, SnapshotCatalogs,
};
use crate::engine::compute::Compute;
use crate::engine::context::StatementContext;
use crate::engine::error::QueryError;
use crate::engine::error::{bad_request, internal, syntax, unsupported};
use crate::engine::params::Bound;
use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::cte_worktable::CteWorkTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{collect, execute_stream};
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Statement as SqlStatement, TableObject};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::TryStreamExt;
use lakeward_common::data::TableRecord;
use std::collections::HashMap;
use std::sync::Arc;

/// A fresh DataFusion session for one statement: the warehouse's runtime and settings, the
/// statement's default catalog and schema, and no catalog but the snapshot's.
pub(crate) fn session(ctx: &StatementContext, names: &Names) -> Result<SessionState, QueryError> {
    let compute = &ctx.compute.inner;
    let config = compute
        .session
        .clone()
        .with_default_catalog_and_schema(&names.catalog, &names.schema);
    let runtime = compute.runtime()?;
    let statistics = runtime.cache_manager.get_file_statistic_cache();
    Ok(SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_table_factories(HashMap::new())
        .with_table_functions(table_functions())
        .with_catalog_list(Arc::new(SnapshotCatalogs::new(
            ctx.access.snapshot.clone(),
            ctx.access.caller.workspace_id,
            statistics,
        )))
        .build())
}

/// Parses with DataFusion, accepting only a query, `EXPLAIN` of one, or (when `insert`)
/// `INSERT INTO ... SELECT/VALUES`.
pub(crate) async fn plan_sql(
    state: &SessionState,
    sql: &str,
    bound: &Bound,
    insert: bool,
) -> Result<LogicalPlan, QueryError> {
    let dialect = GenericDialect {};
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()?
        .parse_statements()?;
    if statements.len() != 1 {
        return Err(bad_request(
            "[NOT_SUPPORTED] Exactly one statement per request is supported",
        ));
    }
    let Some(statement) = statements.pop_front() else {
        return Err(syntax("[PARSE_EMPTY_STATEMENT] The statement is empty"));
    };
    if !allowed(&statement, insert) {
        return Err(unsupported(if insert {
            "[NOT_SUPPORTED] Only INSERT INTO <table> [(columns)] SELECT ... / VALUES ... is \
             supported"
        } else {
            "[NOT_SUPPORTED] This statement is not supported"
        }));
    }
    let plan = state.statement_to_plan(statement).await?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_statements(false)
        .with_allow_dml(insert)
        .verify_plan(&plan)?;
    if bound.used.is_empty() {
        Ok(plan)
    } else {
        Ok(plan.with_param_values(bound.param_values())?)
    }
}

/// A query, `EXPLAIN` of a query, or (when `insert`) a plain `INSERT INTO` from a query.
fn allowed(statement: &DFStatement, insert: bool) -> bool {
    match statement {
        DFStatement::Statement(s) => match s.as_ref() {
            SqlStatement::Query(_) => true,
            SqlStatement::Insert(i) => {
                insert
                    && !i.overwrite
                    && !i.replace_into
                    && i.or.is_none()
                    && i.on.is_none()
                    && i.returning.is_none()
                    && i.partitioned.is_none()
                    && i.source.is_some()
                    && matches!(i.table, TableObject::TableName(_))
            }
            _ => false,
        },
        DFStatement::Explain(e) => matches!(
            e.statement.as_ref(),
            DFStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_))
        ),
        _ => false,
    }
}

/// Authorizes every table the plan reads (`SelectTable`) and writes (`ModifyTable`); returns
/// the tables written.
pub(crate) fn authorize_plan(
    plan: &LogicalPlan,
    authz: &mut Authorizer<'_>,
) -> Result<Vec<TableRecord>, QueryError> {
    let mut failure: Option<QueryError> = None;
    let mut written = Vec::new();
    let walked =
        plan.apply_with_subqueries(|node| match authorize_node(node, authz, &mut written) {
            Ok(()) => Ok(TreeNodeRecursion::Continue),
            Err(e) => {
                failure = Some(e);
                Ok(TreeNodeRecursion::Stop)
            }
        });
    if let Some(e) = failure {
        return Err(e);
    }
    walked.map_err(QueryError::from)?;
    Ok(written)
}

/// One node of the walk: scans of catalog tables need `SelectTable`, appends `ModifyTable`;
/// anything that reads something else or writes another way is refused (fail closed).
fn authorize_node(
    node: &LogicalPlan,
    authz: &mut Authorizer<'_>,
    written: &mut Vec<TableRecord>,
) -> Result<(), QueryError> {
    match node {
        LogicalPlan::TableScan(scan) => {
            let not_ours = || {
                internal(format!(
                    "the statement reads `{}`, which is not a catalog table",
                    scan.table_name
                ))
            };
            let provider = source_as_provider(&scan.source).map_err(|_| not_ours())?;
            if let Some(table) = provider.downcast_ref::<LakeTable>() {
                authz.check("SelectTable", &table.securable)
            } else if provider.is::<FunctionTable>() || provider.is::<CteWorkTable>() {
                Ok(())
            } else {
                Err(not_ours())
            }
        }
        LogicalPlan::Dml(dml) => {
            let target = source_as_provider(&dml.target).ok();
            match (
                &dml.op,
                target.as_ref().and_then(|p| p.downcast_ref::<LakeTable>()),
            ) {
                (WriteOp::Insert(InsertOp::Append), Some(table)) => {
                    written.push(table.record.clone());
                    authz.check("ModifyTable", &table.securable)?;
                    if table.writable() {
                        Ok(())
                    } else {
                        Err(read_only(&table.record))
                    }
                }
                _ => Err(unsupported("[NOT_SUPPORTED] Only INSERT INTO is supported")),
            }
        }
        LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_) => Err(unsupported(
            "[NOT_SUPPORTED] This statement is not supported",
        )),
        _ => Ok(()),
    }
}

/// Runs a query's plan, streaming its rows; memory errors name the warehouse.
pub(crate) async fn stream_query(
    state: SessionState,
    plan: LogicalPlan,
    compute: Arc<Compute>,
) -> Result<SendableRecordBatchStream, QueryError> {
    let physical = state
        .create_physical_plan(&plan)
        .await
        .map_err(|e| QueryError::from(compute.inner.explain(e)))?;
    let stream = execute_stream(physical, state.task_ctx())
        .map_err(|e| QueryError::from(compute.inner.explain(e)))?;
    let schema = stream.schema();
    let mapped = stream.map_err(move |e| compute.inner.explain(e));
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, mapped)))
}

/// Runs a write plan and sums the rows DataFusion's sink reports.
pub(crate) async fn execute_count(
    state: &SessionState,
    plan: &LogicalPlan,
    compute: &Arc<Compute>,
) -> Result<i64, QueryError> {
    let explain = |e: DataFusionError| QueryError::from(compute.inner.explain(e));
    let physical = state.create_physical_plan(plan).await.map_err(explain)?;
    let batches = collect(physical, state.task_ctx()).await.map_err(explain)?;
    let mut rows: i64 = 0;
    for batch in &batches {
        if let Some(column) = batch.columns().first() {
            let counts = datafusion::arrow::compute::cast(column, &DataType::Int64)
                .map_err(|e| internal(e.to_string()))?;
            if let Some(counts) = counts.as_any().downcast_ref::<Int64Array>() {
                rows = rows.saturating_add(counts.iter().flatten().sum::<i64>());
            }
        }
    }
    Ok(rows)
}
