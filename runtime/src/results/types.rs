//! The manifest's column types. A scalar type is named by the engine
//! ([`databricks_type_name`], what `DESCRIBE` shows), so the manifest and `DESCRIBE` never
//! disagree: `UInt64` is `DECIMAL(20,0)` in both, as no Databricks integer type holds it.
//! Nested types are spelled as the manifest spells them (`STRUCT<a: BIGINT, b: STRING>`).

use crate::engine::databricks_type_name;
use arrow::datatypes::{DataType, SchemaRef};
use serde::Serialize;

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
    match data_type {
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
        DataType::Dictionary(_, value) => databricks_type(value),
        DataType::RunEndEncoded(_, value) => databricks_type(value.data_type()),
        scalar => scalar_type(scalar),
    }
}

/// A scalar type: the engine's name, upper-cased as the manifest writes it, and the
/// `ColumnInfoTypeName` it belongs to.
fn scalar_type(data_type: &DataType) -> (&'static str, String, u32, i32) {
    let text = databricks_type_name(data_type).to_ascii_uppercase();
    if let Some((precision, scale)) = decimal_arguments(&text) {
        return ("DECIMAL", text, precision, scale);
    }
    let name = match text.as_str() {
        "TINYINT" => "BYTE",
        "SMALLINT" => "SHORT",
        "INT" => "INT",
        "BIGINT" => "LONG",
        "FLOAT" => "FLOAT",
        "DOUBLE" => "DOUBLE",
        "BOOLEAN" => "BOOLEAN",
        "DATE" => "DATE",
        // `ColumnInfoTypeName` has no TIMESTAMP_NTZ; `type_text` tells them apart.
        "TIMESTAMP" | "TIMESTAMP_NTZ" => "TIMESTAMP",
        "BINARY" => "BINARY",
        "INTERVAL" => "INTERVAL",
        "VOID" => "NULL",
        // Strings, and the Arrow types Databricks has no name for (times, unions): their
        // values travel as Arrow's text for them.
        _ => "STRING",
    };
    (name, text, 0, 0)
}

/// `(p, s)` of `DECIMAL(p,s)`.
fn decimal_arguments(text: &str) -> Option<(u32, i32)> {
    let arguments = text.strip_prefix("DECIMAL(")?.strip_suffix(')')?;
    let (precision, scale) = arguments.split_once(',')?;
    Some((precision.trim().parse().ok()?, scale.trim().parse().ok()?))
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
