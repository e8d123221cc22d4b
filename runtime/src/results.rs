//! Statement results as the Statement Execution API returns them: Databricks type names in the
//! manifest, values as Databricks formats them in `JSON_ARRAY`, rows split into chunks of about
//! `result_chunk_bytes` of JSON, and `row_limit` / `byte_limit` / the 25 MiB INLINE cap.
//!
//! `ARROW_STREAM` with `INLINE` disposition: each chunk's rows travel as a base64 Arrow IPC
//! stream in `result.attachment`, as newer Databricks releases do (the older API allowed
//! `ARROW_STREAM` only with `EXTERNAL_LINKS`, which Lakeward does not serve). The chunks are cut
//! at the same rows as the `JSON_ARRAY` form would be.

use crate::engine::SqlError;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type,
    Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, SchemaRef,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::Arc;

/// Databricks' cap on an INLINE result.
pub const INLINE_LIMIT_BYTES: u64 = 25 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    JsonArray,
    ArrowStream,
}

impl ResultFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultFormat::JsonArray => "JSON_ARRAY",
            ResultFormat::ArrowStream => "ARROW_STREAM",
        }
    }
}

/// One column of the manifest's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    pub position: usize,
    pub type_name: String,
    pub type_text: String,
    pub type_precision: u32,
    pub type_scale: i32,
}

/// `(type_name, type_text, precision, scale)` of an Arrow type, in Databricks' vocabulary.
pub fn databricks_type(data_type: &DataType) -> (&'static str, String, u32, i32) {
    let simple = |name: &'static str, text: &str| (name, text.to_owned(), 0, 0);
    match data_type {
        DataType::Int8 => simple("BYTE", "TINYINT"),
        DataType::Int16 | DataType::UInt8 => simple("SHORT", "SMALLINT"),
        DataType::Int32 | DataType::UInt16 => simple("INT", "INT"),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => simple("LONG", "BIGINT"),
        DataType::Float16 | DataType::Float32 => simple("FLOAT", "FLOAT"),
        DataType::Float64 => simple("DOUBLE", "DOUBLE"),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => (
            "DECIMAL",
            format!("DECIMAL({p},{s})"),
            u32::from(*p),
            i32::from(*s),
        ),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => simple("STRING", "STRING"),
        DataType::Boolean => simple("BOOLEAN", "BOOLEAN"),
        DataType::Date32 | DataType::Date64 => simple("DATE", "DATE"),
        DataType::Timestamp(_, _) => simple("TIMESTAMP", "TIMESTAMP"),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => simple("BINARY", "BINARY"),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => (
            "ARRAY",
            format!("ARRAY<{}>", databricks_type(f.data_type()).1),
            0,
            0,
        ),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), databricks_type(f.data_type()).1))
                .collect();
            ("STRUCT", format!("STRUCT<{}>", inner.join(", ")), 0, 0)
        }
        DataType::Map(entries, _) => {
            let (key, value) = match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => (
                    databricks_type(kv[0].data_type()).1,
                    databricks_type(kv[1].data_type()).1,
                ),
                _ => ("STRING".to_owned(), "STRING".to_owned()),
            };
            ("MAP", format!("MAP<{key}, {value}>"), 0, 0)
        }
        DataType::Null => simple("NULL", "VOID"),
        DataType::Interval(_) | DataType::Duration(_) => simple("INTERVAL", "INTERVAL"),
        DataType::Dictionary(_, value) => databricks_type(value),
        _ => simple("STRING", "STRING"),
    }
}

/// The manifest's columns for a result schema.
pub fn columns(schema: &SchemaRef) -> Vec<ColumnInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(position, field)| {
            let (type_name, type_text, type_precision, type_scale) =
                databricks_type(field.data_type());
            ColumnInfo {
                name: field.name().clone(),
                position,
                type_name: type_name.to_owned(),
                type_text,
                type_precision,
                type_scale,
            }
        })
        .collect()
}

/// Java's `Double.toString`, which Databricks uses: shortest round-trip digits, at least one
/// fractional digit, scientific notation outside [1e-3, 1e7).
pub fn format_double(value: f64) -> String {
    java_decimal(value, value)
}

/// Java's `Float.toString`.
pub fn format_float(value: f32) -> String {
    java_decimal(value, f64::from(value))
}

/// Java's `toString` rule for both widths: `value` prints its own shortest round-trip digits
/// (an `f32` widened first would print the widening's noise); `as_f64` picks the notation.
fn java_decimal<T: std::fmt::Display + std::fmt::LowerExp>(value: T, as_f64: f64) -> String {
    if as_f64.is_nan() {
        return "NaN".into();
    }
    if as_f64.is_infinite() {
        return if as_f64 > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .into();
    }
    let magnitude = as_f64.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{value}");
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        if mantissa.contains('.') {
            format!("{mantissa}E{exponent}")
        } else {
            format!("{mantissa}.0E{exponent}")
        }
    }
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// ISO-8601 in UTC with milliseconds (`2024-01-31T10:00:00.000Z`), microseconds when the value
/// has them.
pub fn format_timestamp(value: i64, unit: TimeUnit) -> String {
    let nanos_per_unit: i128 = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    let total = i128::from(value) * nanos_per_unit;
    let secs = total.div_euclid(1_000_000_000);
    let nanos = total.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400) as i64;
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let fraction = if nanos % 1_000_000 == 0 {
        format!("{:03}", nanos / 1_000_000)
    } else {
        format!("{:06}", nanos / 1_000)
    };
    format!("{}T{h:02}:{mi:02}:{s:02}.{fraction}Z", format_date(days))
}

/// One value as `JSON_ARRAY` carries it: a string, or `None` for SQL NULL.
pub fn format_value(array: &dyn Array, row: usize) -> Option<String> {
    if is_null(array, row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Float16 => format_float(array.as_primitive::<Float16Type>().value(row).to_f32()),
        DataType::Float32 => format_float(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => format_double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal32(_, _) => array.as_primitive::<Decimal32Type>().value_as_string(row),
        DataType::Decimal64(_, _) => array.as_primitive::<Decimal64Type>().value_as_string(row),
        DataType::Decimal128(_, _) => array.as_primitive::<Decimal128Type>().value_as_string(row),
        DataType::Decimal256(_, _) => array.as_primitive::<Decimal256Type>().value_as_string(row),
        DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_owned(),
        DataType::Utf8View => array.as_string_view().value(row).to_owned(),
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        DataType::Date32 => format_date(i64::from(array.as_primitive::<Date32Type>().value(row))),
        DataType::Date64 => format_date(
            array
                .as_primitive::<Date64Type>()
                .value(row)
                .div_euclid(86_400_000),
        ),
        DataType::Timestamp(unit, _) => format_timestamp(timestamp_value(array, row, *unit), *unit),
        DataType::Binary => base64(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => base64(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => base64(array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => base64(array.as_fixed_size_binary().value(row)),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::Struct(_)
        | DataType::Map(_, _) => {
            let mut out = String::new();
            write_json(&mut out, array, row);
            out
        }
        _ => display_value(array, row),
    })
}

/// `NullArray` keeps no validity buffer, so `is_null` alone says its values are present.
fn is_null(array: &dyn Array, row: usize) -> bool {
    array.is_null(row) || *array.data_type() == DataType::Null
}

fn timestamp_value(array: &dyn Array, row: usize, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Arrow's own rendering, for the types Databricks has no special form for (intervals, times).
fn display_value(array: &dyn Array, row: usize) -> String {
    let options = arrow::util::display::FormatOptions::default();
    match arrow::util::display::ArrayFormatter::try_new(array, &options) {
        Ok(formatter) => formatter.value(row).to_string(),
        Err(_) => String::new(),
    }
}

fn json_string(out: &mut String, text: &str) {
    match serde_json::to_string(text) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

/// A nested value as JSON text (field order kept, which `serde_json::Map` would not).
fn write_json(out: &mut String, array: &dyn Array, row: usize) {
    if is_null(array, row) {
        out.push_str("null");
        return;
    }
    match array.data_type() {
        DataType::List(_) => write_list(out, &array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => write_list(out, &array.as_list::<i64>().value(row)),
        DataType::FixedSizeList(_, _) => write_list(out, &array.as_fixed_size_list().value(row)),
        DataType::Struct(fields) => {
            let s = array.as_struct();
            out.push('{');
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, field.name());
                out.push(':');
                write_json(out, s.column(i).as_ref(), row);
            }
            out.push('}');
        }
        DataType::Map(_, _) => {
            let map = array.as_map();
            let entries = map.value(row);
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                let key = format_value(entries.column(0).as_ref(), i).unwrap_or_default();
                json_string(out, &key);
                out.push(':');
                write_json(out, entries.column(1).as_ref(), i);
            }
            out.push('}');
        }
        DataType::Boolean => {
            let _ = write!(out, "{}", array.as_boolean().value(row));
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => {
            out.push_str(&format_value(array, row).unwrap_or_default());
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let text = format_value(array, row).unwrap_or_default();
            // JSON has no NaN or Infinity: those travel as strings.
            if text.chars().any(|c| c.is_ascii_digit()) {
                out.push_str(&text);
            } else {
                json_string(out, &text);
            }
        }
        _ => json_string(out, &format_value(array, row).unwrap_or_default()),
    }
}

fn write_list(out: &mut String, values: &ArrayRef) {
    out.push('[');
    for i in 0..values.len() {
        if i > 0 {
            out.push(',');
        }
        write_json(out, values.as_ref(), i);
    }
    out.push(']');
}

/// What a chunk holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkData {
    Json(Vec<Vec<Option<String>>>),
    /// A base64 Arrow IPC stream.
    Arrow(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub row_offset: u64,
    pub row_count: u64,
    pub data: ChunkData,
}

/// A finished result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    pub format: ResultFormat,
    pub columns: Vec<ColumnInfo>,
    pub chunks: Vec<Chunk>,
    pub total_row_count: u64,
    pub truncated: bool,
}

impl ResultSet {
    pub fn manifest(&self) -> Value {
        let chunks: Vec<Value> = self
            .chunks
            .iter()
            .enumerate()
            .map(|(i, c)| json!({"chunk_index": i, "row_offset": c.row_offset, "row_count": c.row_count}))
            .collect();
        json!({
            "format": self.format.as_str(),
            "schema": {"column_count": self.columns.len(), "columns": self.columns},
            "total_chunk_count": self.chunks.len(),
            "total_row_count": self.total_row_count,
            "chunks": chunks,
            "truncated": self.truncated,
        })
    }

    /// `ResultData` of chunk `index`, or `None` past the last.
    pub fn chunk(&self, statement_id: &str, index: usize) -> Option<Value> {
        let chunk = self.chunks.get(index)?;
        let mut data = json!({
            "chunk_index": index,
            "row_offset": chunk.row_offset,
            "row_count": chunk.row_count,
        });
        match &chunk.data {
            ChunkData::Json(rows) => data["data_array"] = json!(rows),
            ChunkData::Arrow(attachment) => data["attachment"] = json!(attachment),
        }
        if index + 1 < self.chunks.len() {
            data["next_chunk_index"] = json!(index + 1);
            data["next_chunk_internal_link"] = json!(format!(
                "/api/2.0/sql/statements/{statement_id}/result/chunks/{}",
                index + 1
            ));
        }
        Some(data)
    }
}

/// The limits a result is built under.
#[derive(Debug, Clone, Copy)]
pub struct ResultLimits {
    pub chunk_bytes: usize,
    pub row_limit: Option<u64>,
    pub byte_limit: Option<u64>,
    pub inline_cap: u64,
}

/// Builds a [`ResultSet`] from batches as they arrive.
pub struct ResultBuilder {
    schema: SchemaRef,
    format: ResultFormat,
    limits: ResultLimits,
    chunks: Vec<Chunk>,
    rows: Vec<Vec<Option<String>>>,
    slices: Vec<RecordBatch>,
    chunk_rows: u64,
    chunk_bytes: usize,
    total_rows: u64,
    total_bytes: u64,
    truncated: bool,
    done: bool,
}

impl ResultBuilder {
    pub fn new(schema: SchemaRef, format: ResultFormat, limits: ResultLimits) -> Self {
        ResultBuilder {
            schema,
            format,
            limits,
            chunks: Vec::new(),
            rows: Vec::new(),
            slices: Vec::new(),
            chunk_rows: 0,
            chunk_bytes: 0,
            total_rows: 0,
            total_bytes: 0,
            truncated: false,
            done: false,
        }
    }

    /// Adds a batch. `Ok(false)` means a limit was reached and no more rows are wanted.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<bool, SqlError> {
        if self.done {
            if batch.num_rows() > 0 {
                self.truncated = true;
            }
            return Ok(false);
        }
        let columns = batch.columns();
        let mut slice_start = 0;
        let mut end = batch.num_rows();
        for row in 0..batch.num_rows() {
            if self
                .limits
                .row_limit
                .is_some_and(|limit| self.total_rows >= limit)
            {
                self.truncated = true;
                self.done = true;
                end = row;
                break;
            }
            let values: Vec<Option<String>> = columns
                .iter()
                .map(|c| format_value(c.as_ref(), row))
                .collect();
            let row_bytes = row_json_bytes(&values);
            if self
                .limits
                .byte_limit
                .is_some_and(|limit| self.total_bytes + row_bytes as u64 > limit)
            {
                self.truncated = true;
                self.done = true;
                end = row;
                break;
            }
            if self.total_bytes + row_bytes as u64 > self.limits.inline_cap {
                return Err(SqlError::new(
                    "BAD_REQUEST",
                    format!(
                        "the result exceeds the {} MiB limit of INLINE results; \
                         narrow it with row_limit or byte_limit (or LIMIT in the query)",
                        self.limits.inline_cap / (1024 * 1024)
                    ),
                ));
            }
            if self.chunk_rows > 0 && self.chunk_bytes + row_bytes > self.limits.chunk_bytes {
                if self.format == ResultFormat::ArrowStream {
                    self.slices
                        .push(batch.slice(slice_start, row - slice_start));
                    slice_start = row;
                }
                self.close_chunk()?;
            }
            self.total_rows += 1;
            self.total_bytes += row_bytes as u64;
            self.chunk_rows += 1;
            self.chunk_bytes += row_bytes;
            if self.format == ResultFormat::JsonArray {
                self.rows.push(values);
            }
        }
        if self.format == ResultFormat::ArrowStream && end > slice_start {
            self.slices
                .push(batch.slice(slice_start, end - slice_start));
        }
        if !self.done && self.limits.row_limit.is_some_and(|l| self.total_rows >= l) {
            // More rows may follow; the next non-empty batch marks the result truncated.
            self.done = true;
        }
        Ok(!self.done || !self.truncated)
    }

    fn close_chunk(&mut self) -> Result<(), SqlError> {
        let data = match self.format {
            ResultFormat::JsonArray => ChunkData::Json(std::mem::take(&mut self.rows)),
            ResultFormat::ArrowStream => {
                ChunkData::Arrow(ipc_base64(&self.schema, &std::mem::take(&mut self.slices))?)
            }
        };
        let row_offset = self.chunks.last().map_or(0, |c| c.row_offset + c.row_count);
        self.chunks.push(Chunk {
            row_offset,
            row_count: self.chunk_rows,
            data,
        });
        self.chunk_rows = 0;
        self.chunk_bytes = 0;
        Ok(())
    }

    pub fn finish(mut self) -> Result<ResultSet, SqlError> {
        // An empty result still has its chunk 0, so clients reading `result` find rows (none).
        if self.chunk_rows > 0 || self.chunks.is_empty() {
            self.close_chunk()?;
        }
        Ok(ResultSet {
            format: self.format,
            columns: columns(&self.schema),
            chunks: self.chunks,
            total_row_count: self.total_rows,
            truncated: self.truncated,
        })
    }
}

/// The size of a row in `data_array` JSON: quotes, commas and brackets included (escapes not).
fn row_json_bytes(values: &[Option<String>]) -> usize {
    2 + values
        .iter()
        .map(|v| v.as_ref().map_or(4, |s| s.len() + 2) + 1)
        .sum::<usize>()
}

/// The type a column is sent as in `ARROW_STREAM`: string and binary views (what DataFusion
/// reads Parquet into) become plain `Utf8`/`Binary`. A view array that was filtered or sliced
/// still points into every buffer it was cut from, and the IPC writer sends those whole; and
/// many Arrow readers predate view types. Databricks sends the plain types.
fn wire_type(data_type: &DataType) -> DataType {
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

fn ipc_base64(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, SqlError> {
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
        SqlError::new("INTERNAL_ERROR", format!("cannot encode the result: {err}"))
    })?;
    Ok(base64(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array,
        Int32Array, Int64Array, Int8Array, ListArray, NullArray, StringArray, StructArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, Fields, Int32Type as I32, Schema};

    fn limits(chunk_bytes: usize) -> ResultLimits {
        ResultLimits {
            chunk_bytes,
            row_limit: None,
            byte_limit: None,
            inline_cap: INLINE_LIMIT_BYTES,
        }
    }

    fn int_batch(from: i64, to: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(from..to))],
        )
        .unwrap()
    }

    #[test]
    fn type_names_follow_databricks() {
        let golden = [
            (DataType::Int8, "BYTE", "TINYINT"),
            (DataType::Int16, "SHORT", "SMALLINT"),
            (DataType::Int32, "INT", "INT"),
            (DataType::Int64, "LONG", "BIGINT"),
            (DataType::Float32, "FLOAT", "FLOAT"),
            (DataType::Float64, "DOUBLE", "DOUBLE"),
            (DataType::Decimal128(15, 2), "DECIMAL", "DECIMAL(15,2)"),
            (DataType::Utf8, "STRING", "STRING"),
            (DataType::LargeUtf8, "STRING", "STRING"),
            (DataType::Utf8View, "STRING", "STRING"),
            (DataType::Boolean, "BOOLEAN", "BOOLEAN"),
            (DataType::Date32, "DATE", "DATE"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "TIMESTAMP",
                "TIMESTAMP",
            ),
            (DataType::Binary, "BINARY", "BINARY"),
            (
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                "ARRAY",
                "ARRAY<INT>",
            ),
            (
                DataType::Struct(Fields::from(vec![
                    Field::new("a", DataType::Int64, true),
                    Field::new("b", DataType::Utf8, true),
                ])),
                "STRUCT",
                "STRUCT<a: BIGINT, b: STRING>",
            ),
            (DataType::Null, "NULL", "VOID"),
            (
                DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
                "INTERVAL",
                "INTERVAL",
            ),
        ];
        for (data_type, name, text) in golden {
            let (n, t, _, _) = databricks_type(&data_type);
            assert_eq!((n, t.as_str()), (name, text), "{data_type}");
        }
        assert_eq!(databricks_type(&DataType::Decimal128(15, 2)).2, 15);
        assert_eq!(databricks_type(&DataType::Decimal128(15, 2)).3, 2);
    }

    #[test]
    fn values_are_formatted_as_databricks_does() {
        let cases: Vec<(ArrayRef, Vec<Option<&str>>)> = vec![
            (
                Arc::new(Int8Array::from(vec![Some(-3), None])),
                vec![Some("-3"), None],
            ),
            (Arc::new(Int16Array::from(vec![300])), vec![Some("300")]),
            (Arc::new(Int32Array::from(vec![1])), vec![Some("1")]),
            (
                Arc::new(Int64Array::from(vec![9_007_199_254_740_993])),
                vec![Some("9007199254740993")],
            ),
            (
                Arc::new(
                    Decimal128Array::from(vec![150, -5, 0])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                vec![Some("1.50"), Some("-0.05"), Some("0.00")],
            ),
            (
                Arc::new(Float64Array::from(vec![
                    1.0,
                    0.1,
                    1.5e20,
                    2.5e-5,
                    f64::NAN,
                    -0.0,
                ])),
                vec![
                    Some("1.0"),
                    Some("0.1"),
                    Some("1.5E20"),
                    Some("2.5E-5"),
                    Some("NaN"),
                    Some("-0.0"),
                ],
            ),
            (
                Arc::new(Float32Array::from(vec![0.1f32])),
                vec![Some("0.1")],
            ),
            (
                Arc::new(BooleanArray::from(vec![true, false])),
                vec![Some("true"), Some("false")],
            ),
            (
                Arc::new(Date32Array::from(vec![19_753, 0, -1])),
                vec![Some("2024-01-31"), Some("1970-01-01"), Some("1969-12-31")],
            ),
            (
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_706_695_200_000_000, 1_500])
                        .with_timezone("UTC"),
                ),
                vec![
                    Some("2024-01-31T10:00:00.000Z"),
                    Some("1970-01-01T00:00:00.001500Z"),
                ],
            ),
            (
                Arc::new(StringArray::from(vec![Some("a\"b"), None])),
                vec![Some("a\"b"), None],
            ),
            (Arc::new(NullArray::new(1)), vec![None]),
        ];
        for (array, expected) in cases {
            let got: Vec<Option<String>> = (0..array.len())
                .map(|i| format_value(array.as_ref(), i))
                .collect();
            let expected: Vec<Option<String>> =
                expected.into_iter().map(|e| e.map(str::to_owned)).collect();
            assert_eq!(got, expected, "{}", array.data_type());
        }
    }

    #[test]
    fn nested_values_are_json_text() {
        let list = ListArray::from_iter_primitive::<I32, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            None,
        ]);
        assert_eq!(format_value(&list, 0).as_deref(), Some("[1,null,3]"));
        assert_eq!(format_value(&list, 1), None);
        let s = StructArray::from(vec![
            (
                Arc::new(Field::new("z", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("a", DataType::Float64, true)),
                Arc::new(Float64Array::from(vec![2.0])) as ArrayRef,
            ),
        ]);
        assert_eq!(format_value(&s, 0).as_deref(), Some(r#"{"z":"x","a":2.0}"#));
    }

    #[test]
    fn manifest_golden() {
        let mut builder = ResultBuilder::new(
            int_batch(0, 0).schema(),
            ResultFormat::JsonArray,
            limits(1 << 20),
        );
        builder.push(&int_batch(1, 3)).unwrap();
        let result = builder.finish().unwrap();
        assert_eq!(
            result.manifest(),
            json!({
                "format": "JSON_ARRAY",
                "schema": {"column_count": 1, "columns": [
                    {"name": "n", "position": 0, "type_name": "LONG", "type_text": "BIGINT",
                     "type_precision": 0, "type_scale": 0}
                ]},
                "total_chunk_count": 1,
                "total_row_count": 2,
                "chunks": [{"chunk_index": 0, "row_offset": 0, "row_count": 2}],
                "truncated": false
            })
        );
        assert_eq!(
            result.chunk("s1", 0).unwrap(),
            json!({"chunk_index": 0, "row_offset": 0, "row_count": 2, "data_array": [["1"], ["2"]]})
        );
        assert_eq!(result.chunk("s1", 1), None);
    }

    #[test]
    fn rows_are_split_into_chunks_of_about_the_configured_size() {
        // Each row `["12345"]` is about 10 bytes; 40 bytes hold 4 rows.
        let mut builder = ResultBuilder::new(
            int_batch(0, 0).schema(),
            ResultFormat::JsonArray,
            limits(40),
        );
        builder.push(&int_batch(10_000, 10_005)).unwrap();
        builder.push(&int_batch(10_005, 10_010)).unwrap();
        let result = builder.finish().unwrap();
        assert_eq!(result.total_row_count, 10);
        let counts: Vec<(u64, u64)> = result
            .chunks
            .iter()
            .map(|c| (c.row_offset, c.row_count))
            .collect();
        assert_eq!(counts, vec![(0, 4), (4, 4), (8, 2)]);
        let first = result.chunk("abc", 0).unwrap();
        assert_eq!(first["next_chunk_index"], 1);
        assert_eq!(
            first["next_chunk_internal_link"],
            "/api/2.0/sql/statements/abc/result/chunks/1"
        );
        let last = result.chunk("abc", 2).unwrap();
        assert!(last.get("next_chunk_index").is_none());
        assert!(last.get("next_chunk_internal_link").is_none());
        assert_eq!(last["data_array"], json!([["10008"], ["10009"]]));
    }

    #[test]
    fn row_limit_truncates_only_when_rows_were_cut() {
        let build = |row_limit: u64, batches: &[(i64, i64)]| {
            let mut b = ResultBuilder::new(
                int_batch(0, 0).schema(),
                ResultFormat::JsonArray,
                ResultLimits {
                    row_limit: Some(row_limit),
                    ..limits(1 << 20)
                },
            );
            let mut wanted = true;
            for (from, to) in batches {
                if !wanted {
                    break;
                }
                wanted = b.push(&int_batch(*from, *to)).unwrap();
            }
            b.finish().unwrap()
        };
        let cut = build(3, &[(0, 10)]);
        assert_eq!((cut.total_row_count, cut.truncated), (3, true));
        let exact = build(3, &[(0, 3)]);
        assert_eq!((exact.total_row_count, exact.truncated), (3, false));
        let across = build(3, &[(0, 3), (3, 4)]);
        assert_eq!((across.total_row_count, across.truncated), (3, true));
    }

    #[test]
    fn byte_limit_truncates_and_the_inline_cap_fails() {
        let mut b = ResultBuilder::new(
            int_batch(0, 0).schema(),
            ResultFormat::JsonArray,
            ResultLimits {
                byte_limit: Some(25),
                ..limits(1 << 20)
            },
        );
        assert!(!b.push(&int_batch(10_000, 10_100)).unwrap());
        let result = b.finish().unwrap();
        assert_eq!((result.total_row_count, result.truncated), (2, true));

        let mut b = ResultBuilder::new(
            int_batch(0, 0).schema(),
            ResultFormat::JsonArray,
            ResultLimits {
                inline_cap: 100,
                ..limits(1 << 20)
            },
        );
        let err = b.push(&int_batch(10_000, 10_100)).unwrap_err();
        assert!(err.message.contains("row_limit"), "{}", err.message);
    }

    #[test]
    fn arrow_stream_sends_views_as_plain_types_without_their_whole_buffers() {
        use arrow::array::StringViewArray;
        // 10,000 values longer than a view's inline 12 bytes, so they live in data buffers.
        let values: Vec<String> = (0..10_000)
            .map(|i| format!("a long enough value {i:05}"))
            .collect();
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringViewArray::from_iter_values(values.iter()))],
        )
        .unwrap();
        let encoded = ipc_base64(&schema, &[batch.slice(100, 3)]).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&encoded)
            .unwrap();
        assert!(bytes.len() < 4096, "{} bytes for three rows", bytes.len());
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        assert_eq!(reader.schema().field(0).data_type(), &DataType::Utf8);
        let rows: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        let got = rows[0].column(0).as_string::<i32>();
        assert_eq!(
            got.iter().flatten().collect::<Vec<_>>(),
            values[100..103]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn nested_views_are_sent_as_plain_types_too() {
        let item = Arc::new(Field::new("item", DataType::Utf8View, true));
        let listed = DataType::List(item.clone());
        let structured = DataType::Struct(Fields::from(vec![
            Field::new("l", listed.clone(), true),
            Field::new("b", DataType::BinaryView, true),
        ]));
        let DataType::Struct(fields) = wire_type(&structured) else {
            panic!("a struct stays a struct");
        };
        assert_eq!(
            fields[0].data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        );
        assert_eq!(fields[1].data_type(), &DataType::Binary);
        // And the cast the encoder makes exists for it.
        let values = arrow::array::StringViewArray::from(vec![Some("a long enough string"), None]);
        let list = ListArray::new(
            item,
            arrow::buffer::OffsetBuffer::from_lengths([2]),
            Arc::new(values),
            None,
        );
        let cast = arrow::compute::cast(&list, &wire_type(&listed)).unwrap();
        assert_eq!(cast.data_type(), &wire_type(&listed));
    }

    #[test]
    fn arrow_stream_chunks_decode_to_the_same_rows() {
        let mut b = ResultBuilder::new(
            int_batch(0, 0).schema(),
            ResultFormat::ArrowStream,
            limits(40),
        );
        b.push(&int_batch(10_000, 10_006)).unwrap();
        b.push(&int_batch(10_006, 10_010)).unwrap();
        let result = b.finish().unwrap();
        assert_eq!(result.manifest()["format"], "ARROW_STREAM");
        let mut all = Vec::new();
        for (i, chunk) in result.chunks.iter().enumerate() {
            let data = result.chunk("s", i).unwrap();
            assert!(data.get("data_array").is_none());
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data["attachment"].as_str().unwrap())
                .unwrap();
            let reader =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
                    .unwrap();
            let mut rows = 0;
            for batch in reader {
                let batch = batch.unwrap();
                rows += batch.num_rows() as u64;
                all.extend(
                    batch
                        .column(0)
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .copied(),
                );
            }
            assert_eq!(rows, chunk.row_count, "chunk {i}");
        }
        assert_eq!(all, (10_000..10_010).collect::<Vec<i64>>());
    }
}
