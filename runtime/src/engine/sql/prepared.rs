//! A prepared statement's work, as `run` does it.

use super::changes::Changes;
use super::ctas::Ctas;
use super::output::{affected, nothing, once};
use super::plan::{execute_count, stream_query};
use crate::engine::compute::Compute;
use crate::engine::error::{QueryError, SqlError};
use crate::engine::touched::TableAccess;
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use std::sync::Arc;

/// A statement that parsed, planned and passed authorization.
pub struct Prepared {
    pub touched: Vec<TableAccess>,
    pub(crate) inner: PreparedInner,
}

impl Prepared {
    /// Runs the statement. Queries stream their rows; DDL and DML do their work and return a
    /// small result (`num_affected_rows`, `num_inserted_rows` for writes, as Databricks does).
    /// Dropping the stream (or the future) stops the work.
    pub async fn run(self) -> Result<SendableRecordBatchStream, SqlError> {
        Ok(self.inner.run().await?)
    }
}

pub(crate) enum PreparedInner {
    /// A result computed while preparing (SHOW, DESCRIBE) or nothing to do.
    Rows(RecordBatch),
    Query {
        state: SessionState,
        plan: LogicalPlan,
        compute: Arc<Compute>,
    },
    Insert {
        state: SessionState,
        plan: LogicalPlan,
        compute: Arc<Compute>,
    },
    Ctas(Box<Ctas>),
    Changes(Changes),
}

impl PreparedInner {
    /// Nothing left to do (`IF NOT EXISTS` on what exists, `IF EXISTS` on what does not).
    pub(crate) fn nothing() -> PreparedInner {
        PreparedInner::Rows(nothing())
    }

    pub(crate) async fn run(self) -> Result<SendableRecordBatchStream, QueryError> {
        match self {
            PreparedInner::Rows(batch) => Ok(once(batch)),
            PreparedInner::Query {
                state,
                plan,
                compute,
            } => stream_query(state, plan, compute).await,
            PreparedInner::Insert {
                state,
                plan,
                compute,
            } => {
                let rows = execute_count(&state, &plan, &compute).await?;
                Ok(once(affected(rows)?))
            }
            PreparedInner::Ctas(ctas) => ctas.run().await,
            PreparedInner::Changes(changes) => changes.run().await,
        }
    }
}
