//! [`ResultBuilder`]: a statement's batches, as they arrive, cut into chunks of about
//! `result_chunk_bytes` of JSON under `row_limit` / `byte_limit` / the INLINE cap, each chunk
//! rendered once, as it is cut.

use super::ipc::ipc_base64;
use super::render::{close_chunk, open_chunk, ChunkRows, RowsText};
use super::types::columns;
use super::values::format_value;
use super::{Chunk, ResultFormat, ResultLimits, ResultSet};
use crate::engine::SqlError;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

/// Builds a [`ResultSet`] from batches as they arrive.
pub struct ResultBuilder {
    schema: SchemaRef,
    format: ResultFormat,
    limits: ResultLimits,
    /// Names the statement in the links from one chunk to the next.
    statement_id: String,
    chunks: Vec<Chunk>,
    /// The last chunk cut, waiting to learn whether another follows it.
    open: Option<(u64, u64, Vec<u8>)>,
    rows: RowsText,
    slices: Vec<RecordBatch>,
    chunk_rows: u64,
    chunk_bytes: usize,
    total_rows: u64,
    total_bytes: u64,
    truncated: bool,
    done: bool,
}

impl ResultBuilder {
    pub fn new(
        schema: SchemaRef,
        format: ResultFormat,
        limits: ResultLimits,
        statement_id: &str,
    ) -> Self {
        ResultBuilder {
            schema,
            format,
            limits,
            statement_id: statement_id.to_owned(),
            chunks: Vec::new(),
            open: None,
            rows: RowsText::default(),
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
            let total_after = self.total_bytes.saturating_add(row_bytes as u64);
            if self
                .limits
                .byte_limit
                .is_some_and(|limit| total_after > limit)
            {
                self.truncated = true;
                self.done = true;
                end = row;
                break;
            }
            if total_after > self.limits.inline_cap {
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
                self.cut_chunk()?;
            }
            self.total_rows += 1;
            self.total_bytes = total_after;
            self.chunk_rows += 1;
            self.chunk_bytes += row_bytes;
            if self.format == ResultFormat::JsonArray {
                self.rows.push_row(&values);
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

    /// Renders the rows gathered so far as the next chunk.
    fn cut_chunk(&mut self) -> Result<(), SqlError> {
        let index = self.chunks.len() + usize::from(self.open.is_some());
        let row_offset = match &self.open {
            Some((offset, count, _)) => offset + count,
            None => self.chunks.last().map_or(0, |c| c.row_offset + c.row_count),
        };
        let attachment;
        let rows = match self.format {
            ResultFormat::JsonArray => ChunkRows::Json(&mut self.rows),
            ResultFormat::ArrowStream => {
                attachment = ipc_base64(&self.schema, &std::mem::take(&mut self.slices))?;
                ChunkRows::Arrow(&attachment)
            }
        };
        let text = open_chunk(index, row_offset, self.chunk_rows, rows);
        if let Some((offset, count, previous)) = self.open.take() {
            self.chunks.push(Chunk {
                row_offset: offset,
                row_count: count,
                body: close_chunk(previous, &self.statement_id, Some(index)),
            });
        }
        self.open = Some((row_offset, self.chunk_rows, text));
        self.chunk_rows = 0;
        self.chunk_bytes = 0;
        Ok(())
    }

    pub fn finish(mut self) -> Result<ResultSet, SqlError> {
        // An empty result still has its chunk 0, so clients reading `result` find rows (none).
        if self.chunk_rows > 0 || (self.chunks.is_empty() && self.open.is_none()) {
            self.cut_chunk()?;
        }
        if let Some((offset, count, last)) = self.open.take() {
            self.chunks.push(Chunk {
                row_offset: offset,
                row_count: count,
                body: close_chunk(last, &self.statement_id, None),
            });
        }
        Ok(ResultSet::new(
            self.format,
            columns(&self.schema),
            self.chunks,
            self.total_rows,
            self.truncated,
        ))
    }
}

/// The size of a row in `data_array` JSON: quotes, commas and brackets included (escapes not).
fn row_json_bytes(values: &[Option<String>]) -> usize {
    2 + values
        .iter()
        .map(|v| v.as_ref().map_or(4, |s| s.len() + 2) + 1)
        .sum::<usize>()
}
