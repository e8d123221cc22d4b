//! Statement results as the Statement Execution API returns them: Databricks type names in the
//! manifest (`types`), values as Databricks formats them in `JSON_ARRAY` (`values`), rows split
//! into chunks of about `result_chunk_bytes` of JSON under `row_limit` / `byte_limit` / the
//! 25 MiB INLINE cap (`builder`), each chunk rendered to JSON text once, when it is cut
//! (`render`), and kept as bytes until the result expires.
//!
//! `ARROW_STREAM` with `INLINE` disposition: each chunk's rows travel as a base64 Arrow IPC
//! stream in `result.attachment` (`ipc`), as newer Databricks releases do (the older API
//! allowed `ARROW_STREAM` only with `EXTERNAL_LINKS`, which Lakeward does not serve). The chunks
//! are cut at the same rows as the `JSON_ARRAY` form would be.

mod builder;
mod ipc;
mod render;
mod types;
mod values;

pub use builder::ResultBuilder;
pub use types::{columns, databricks_type, ColumnInfo};
pub use values::{format_date, format_double, format_float, format_timestamp, format_value};

use bytes::Bytes;
use serde::Serialize;

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

/// One chunk of a result: where its rows start, how many, and its `ResultData` JSON object as
/// it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub row_offset: u64,
    pub row_count: u64,
    pub body: Bytes,
}

/// A finished result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    pub format: ResultFormat,
    pub columns: Vec<ColumnInfo>,
    pub chunks: Vec<Chunk>,
    pub total_row_count: u64,
    pub truncated: bool,
    /// The `ResultManifest` JSON object.
    manifest: String,
}

#[derive(Serialize)]
struct Manifest<'a> {
    format: &'static str,
    schema: ManifestSchema<'a>,
    total_chunk_count: usize,
    total_row_count: u64,
    chunks: Vec<ChunkInfo>,
    truncated: bool,
}

#[derive(Serialize)]
struct ManifestSchema<'a> {
    column_count: usize,
    columns: &'a [ColumnInfo],
}

#[derive(Serialize)]
struct ChunkInfo {
    chunk_index: usize,
    row_offset: u64,
    row_count: u64,
}

impl ResultSet {
    fn new(
        format: ResultFormat,
        columns: Vec<ColumnInfo>,
        chunks: Vec<Chunk>,
        total_row_count: u64,
        truncated: bool,
    ) -> Self {
        let manifest = Manifest {
            format: format.as_str(),
            schema: ManifestSchema {
                column_count: columns.len(),
                columns: &columns,
            },
            total_chunk_count: chunks.len(),
            total_row_count,
            chunks: chunks
                .iter()
                .enumerate()
                .map(|(chunk_index, c)| ChunkInfo {
                    chunk_index,
                    row_offset: c.row_offset,
                    row_count: c.row_count,
                })
                .collect(),
            truncated,
        };
        // Plain structs of strings and numbers always serialize.
        let manifest = serde_json::to_string(&manifest).unwrap_or_default();
        ResultSet {
            format,
            columns,
            chunks,
            total_row_count,
            truncated,
            manifest,
        }
    }

    /// The `ResultManifest` JSON object.
    pub fn manifest(&self) -> &str {
        &self.manifest
    }

    /// The `ResultData` JSON object of chunk `index`, or `None` past the last.
    pub fn chunk(&self, index: usize) -> Option<Bytes> {
        self.chunks.get(index).map(|c| c.body.clone())
    }

    /// The memory the result holds while it is kept: what the per-caller and per-warehouse
    /// bounds count.
    pub fn retained_bytes(&self) -> u64 {
        let chunks: usize = self.chunks.iter().map(|c| c.body.len()).sum();
        u64::try_from(chunks + self.manifest.len()).unwrap_or(u64::MAX)
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

#[cfg(test)]
mod tests;
