//! A chunk's `ResultData` JSON, written as text while the result is built (on the query
//! runtime, where the rows are produced) and kept as bytes, so serving a chunk copies nothing
//! and builds no `serde_json::Value` tree on the HTTP threads.

use bytes::Bytes;
use std::fmt::Write as _;

/// Appends `text` as a JSON string literal.
pub(crate) fn write_json_string(out: &mut Vec<u8>, text: &str) {
    let mut serializer = serde_json::Serializer::new(&mut *out);
    // Serializing a `str` into a `Vec` has no way to fail.
    let _ = serde::Serialize::serialize(text, &mut serializer);
}

/// The rows of one `JSON_ARRAY` chunk, `[["1","a"],[null,"b"]]`, as they arrive.
#[derive(Debug, Default)]
pub(crate) struct RowsText {
    text: Vec<u8>,
    rows: u64,
}

impl RowsText {
    pub(crate) fn push_row(&mut self, values: &[Option<String>]) {
        self.text.push(if self.rows == 0 { b'[' } else { b',' });
        self.text.push(b'[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.text.push(b',');
            }
            match value {
                Some(text) => write_json_string(&mut self.text, text),
                None => self.text.extend_from_slice(b"null"),
            }
        }
        self.text.push(b']');
        self.rows += 1;
    }

    /// The rows as a JSON array, emptying `self`.
    fn take(&mut self) -> Vec<u8> {
        let mut text = std::mem::take(&mut self.text);
        if self.rows == 0 {
            text.push(b'[');
        }
        text.push(b']');
        self.rows = 0;
        text
    }
}

/// What a chunk carries: its rows as `data_array`, or a base64 Arrow IPC stream as
/// `attachment`.
pub(crate) enum ChunkRows<'a> {
    Json(&'a mut RowsText),
    Arrow(&'a str),
}

/// A chunk's JSON object, but for its end: whether a next chunk follows is known only when the
/// next one is cut (or the result finishes), so [`close_chunk`] adds the end then.
pub(crate) fn open_chunk(
    index: usize,
    row_offset: u64,
    row_count: u64,
    rows: ChunkRows,
) -> Vec<u8> {
    let mut head = String::with_capacity(96);
    let _ = write!(
        head,
        "{{\"chunk_index\":{index},\"row_offset\":{row_offset},\"row_count\":{row_count},"
    );
    let mut out = head.into_bytes();
    match rows {
        ChunkRows::Json(rows) => {
            let data = rows.take();
            out.reserve(data.len() + 16);
            out.extend_from_slice(b"\"data_array\":");
            out.extend_from_slice(&data);
        }
        ChunkRows::Arrow(attachment) => {
            out.reserve(attachment.len() + 16);
            out.extend_from_slice(b"\"attachment\":");
            write_json_string(&mut out, attachment);
        }
    }
    out
}

/// Ends a chunk's object: with the link to the next chunk when `next` is given.
pub(crate) fn close_chunk(mut open: Vec<u8>, statement_id: &str, next: Option<usize>) -> Bytes {
    if let Some(next) = next {
        let mut tail = String::with_capacity(96);
        let _ = write!(
            tail,
            ",\"next_chunk_index\":{next},\"next_chunk_internal_link\":"
        );
        open.extend_from_slice(tail.as_bytes());
        write_json_string(
            &mut open,
            &format!("/api/2.0/sql/statements/{statement_id}/result/chunks/{next}"),
        );
    }
    open.push(b'}');
    Bytes::from(open)
}
