//! The small results statements other than queries return: listings, `DESCRIBE`, the row
//! counts of writes, and nothing.

use crate::engine::error::internal;
use crate::engine::error::QueryError;
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use std::sync::Arc;

/// No rows and no columns: what a statement that only changes something returns.
pub(crate) fn nothing() -> RecordBatch {
    RecordBatch::new_empty(Arc::new(Schema::empty()))
}

/// A table of nullable strings.
pub(crate) fn strings(
    columns: &[&str],
    rows: Vec<Vec<Option<String>>>,
) -> Result<RecordBatch, QueryError> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.get(i).cloned().flatten())
                    .collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    RecordBatch::try_new(schema, arrays).map_err(|e| internal(e.to_string()))
}

/// `num_affected_rows` and `num_inserted_rows`, as Databricks reports a write.
pub(crate) fn affected(rows: i64) -> Result<RecordBatch, QueryError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("num_affected_rows", DataType::Int64, false),
        Field::new("num_inserted_rows", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![rows])),
            Arc::new(Int64Array::from(vec![rows])),
        ],
    )
    .map_err(|e| internal(e.to_string()))
}

/// A stream of one batch (of none for [`nothing`]).
pub(crate) fn once(batch: RecordBatch) -> SendableRecordBatchStream {
    let schema = batch.schema();
    let batches = if batch.num_rows() == 0 && batch.num_columns() == 0 {
        vec![]
    } else {
        vec![Ok(batch)]
    };
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(batches),
    ))
}
