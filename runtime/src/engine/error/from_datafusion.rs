//! DataFusion's errors as causes, at plan time and while a statement's rows stream: the one
//! mapping both go through. The engine's own errors come back out of DataFusion as they went
//! in. Failures of the lake's storage and of the engine become [`QueryError::Io`] and
//! [`QueryError::Internal`] (their detail logged, not shown); errors in what the user wrote
//! (an unknown column, a type mismatch, a cast that fails) keep DataFusion's message, without
//! its backtrace and without the lake's object-store URL.

use super::{bad_request, bad_request_with_state, internal, io, syntax, table_not_found};
use super::{unsupported, QueryError, SqlError};
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use parquet::errors::ParquetError;

/// The URL DataFusion knows the lake by (`lake::LAKE_URL`; a test there keeps them equal):
/// locations are shown relative to the lake, as the catalog stores them.
pub(crate) const LAKE_URL: &str = "lakeward://lake/";

/// What failed when the lake's storage did, as the client is told.
const READING: &str = "reading the table's data";

/// The error a failed statement reports for a DataFusion error, at plan time or while its
/// rows stream (an engine error carried in the stream comes back out unchanged).
pub fn query_error(error: DataFusionError) -> SqlError {
    SqlError::from(QueryError::from(&error))
}

pub(super) fn classify(error: &DataFusionError) -> QueryError {
    if let Some(own) = carried(error) {
        return own;
    }
    let root = error.find_root();
    if storage_failure(error) {
        return io(READING, error.strip_backtrace());
    }
    match root {
        DataFusionError::SQL(parser, _) => syntax(parser.to_string()),
        DataFusionError::ResourcesExhausted(message) => {
            QueryError::ResourcesExhausted(message.clone())
        }
        DataFusionError::Plan(message) => match missing_table(message) {
            Some(name) => table_not_found(&name),
            None => bad_request(shown(root)),
        },
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => {
                bad_request_with_state(shown(root), "42703")
            }
            _ => bad_request(shown(root)),
        },
        DataFusionError::NotImplemented(_) => unsupported(shown(root)),
        DataFusionError::ArrowError(arrow, _) => from_arrow(arrow, error),
        DataFusionError::Execution(message) if mentions_storage(message) => {
            io(READING, error.strip_backtrace())
        }
        DataFusionError::Execution(_) | DataFusionError::Configuration(_) => {
            bad_request(shown(root))
        }
        _ => internal(error.strip_backtrace()),
    }
}

/// Arrow's errors in what the data or the statement holds (casts, arithmetic, parsing the
/// table's text) are the user's to see; the rest are the engine's.
fn from_arrow(arrow: &ArrowError, error: &DataFusionError) -> QueryError {
    match arrow {
        ArrowError::CastError(_)
        | ArrowError::ParseError(_)
        | ArrowError::ComputeError(_)
        | ArrowError::DivideByZero
        | ArrowError::ArithmeticOverflow(_)
        | ArrowError::InvalidArgumentError(_)
        | ArrowError::SchemaError(_)
        | ArrowError::CsvError(_)
        | ArrowError::JsonError(_) => bad_request(without_lake_url(&arrow.to_string())),
        ArrowError::NotYetImplemented(_) => unsupported(without_lake_url(&arrow.to_string())),
        ArrowError::MemoryError(message) => QueryError::ResourcesExhausted(message.clone()),
        ArrowError::IoError(..)
        | ArrowError::IpcError(_)
        | ArrowError::ParquetError(_)
        | ArrowError::AvroError(_) => io(READING, error.strip_backtrace()),
        _ => internal(error.strip_backtrace()),
    }
}

/// An engine error carried through DataFusion (`External`), anywhere in the chain.
fn carried(error: &DataFusionError) -> Option<QueryError> {
    let mut current: &dyn std::error::Error = error;
    loop {
        if let Some(own) = current.downcast_ref::<QueryError>() {
            return Some(own.clone());
        }
        if let Some(reported) = current.downcast_ref::<SqlError>() {
            return Some(QueryError::Reported(reported.clone()));
        }
        current = current.source()?;
    }
}

/// Whether the lake's storage failed somewhere in the chain: the object store, the file
/// system, or a file that is not what its table says (Parquet's errors).
fn storage_failure(error: &DataFusionError) -> bool {
    let mut current: &dyn std::error::Error = error;
    loop {
        let failed = match current.downcast_ref::<DataFusionError>() {
            Some(e) => matches!(
                e,
                DataFusionError::ObjectStore(_)
                    | DataFusionError::IoError(_)
                    | DataFusionError::ParquetError(_)
            ),
            None => {
                current.is::<object_store::Error>()
                    || current.is::<std::io::Error>()
                    || current.is::<ParquetError>()
            }
        };
        if failed {
            return true;
        }
        match current.source() {
            Some(next) => current = next,
            None => return false,
        }
    }
}

/// DataFusion sometimes words a storage error into a message of its own (`Error writing to
/// object store: ...`), with the object store's words and paths in it.
fn mentions_storage(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["object store", "objectstore", "localfilesystem", "os error"]
        .iter()
        .any(|word| lower.contains(word))
}

/// A user-facing DataFusion error as shown: no backtrace, locations relative to the lake.
fn shown(error: &DataFusionError) -> String {
    without_lake_url(&error.strip_backtrace())
}

fn without_lake_url(message: &str) -> String {
    message.replace(LAKE_URL, "")
}

/// `table 'main.default.x' not found`, as DataFusion's planner words it.
fn missing_table(message: &str) -> Option<String> {
    let rest = message.strip_prefix("table '")?;
    let name = rest.strip_suffix("' not found")?;
    Some(name.to_owned())
}
