//! `ARROW_STREAM` chunks: the rows of a chunk as a base64 Arrow IPC stream.

use super::values::base64;
use crate::engine::SqlError;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use std::sync::Arc;

/// The type a column is sent as in `ARROW_STREAM`: string and binary views (what DataFusion
/// reads Parquet into) become plain `Utf8`/`Binary`. A view array that was filtered or sliced
/// still points into every buffer it was cut from, and the IPC writer sends those whole; and
/// many Arrow readers predate view types. Databricks sends the plain types.
pub(super) fn wire_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(item) => DataType::List(wire_field(item)),
        DataType::LargeList(item) => DataType::LargeList(wire_field(item)),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(wire_field).collect()),
        other => other.clone(),
    }
}

fn wire_field(field: &arrow::datatypes::FieldRef) -> arrow::datatypes::FieldRef {
    Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(wire_type(field.data_type())),
    )
}

pub(super) fn ipc_base64(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, SqlError> {
    let wire_schema: SchemaRef = Arc::new(arrow::datatypes::Schema::new_with_metadata(
        schema.fields().iter().map(wire_field).collect::<Vec<_>>(),
        schema.metadata().clone(),
    ));
    let mut buffer = Vec::new();
    let encode = || -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut buffer, &wire_schema)?;
        for batch in batches {
            let columns = batch
                .columns()
                .iter()
                .zip(wire_schema.fields())
                .map(|(column, field)| {
                    if column.data_type() == field.data_type() {
                        Ok(column.clone())
                    } else {
                        arrow::compute::cast(column, field.data_type())
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            writer.write(&RecordBatch::try_new(wire_schema.clone(), columns)?)?;
        }
        writer.finish()?;
        drop(writer);
        Ok(buffer)
    };
    let bytes = encode().map_err(|err| {
        // Arrow's message names its internals; the caller learns only what failed.
        tracing::error!(error = %err, "cannot encode a result as Arrow IPC");
        SqlError::new(
            "INTERNAL_ERROR",
            "the result could not be encoded as ARROW_STREAM",
        )
    })?;
    Ok(base64(&bytes))
}
