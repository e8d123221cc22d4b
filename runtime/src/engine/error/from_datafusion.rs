//! DataFusion's errors as causes: the engine's own errors come back out of DataFusion as they
//! went in; the rest are classified by DataFusion's kind of error.

use super::{bad_request, bad_request_with_state, internal, syntax, table_not_found, unsupported};
use super::{QueryError, SqlError};
use datafusion::error::DataFusionError;

/// The error a failed statement reports for a DataFusion error, at plan time or while its
/// rows stream.
pub fn query_error(error: DataFusionError) -> SqlError {
    SqlError::from(QueryError::from(&error))
}

pub(super) fn classify(error: &DataFusionError) -> QueryError {
    if let Some(own) = carried(error) {
        return own;
    }
    let root = error.find_root();
    match root {
        DataFusionError::SQL(parser, _) => syntax(parser.to_string()),
        DataFusionError::ResourcesExhausted(message) => {
            QueryError::ResourcesExhausted(message.clone())
        }
        DataFusionError::Plan(message) => match missing_table(message) {
            Some(name) => table_not_found(&name),
            None => bad_request(root.strip_backtrace()),
        },
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => {
                bad_request_with_state(root.strip_backtrace(), "42703")
            }
            _ => bad_request(root.strip_backtrace()),
        },
        DataFusionError::NotImplemented(_) => unsupported(root.strip_backtrace()),
        DataFusionError::ArrowError(..)
        | DataFusionError::Execution(_)
        | DataFusionError::Configuration(_) => bad_request(root.strip_backtrace()),
        _ => internal(root.strip_backtrace()),
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

/// `table 'main.default.x' not found`, as DataFusion's planner words it.
fn missing_table(message: &str) -> Option<String> {
    let rest = message.strip_prefix("table '")?;
    let name = rest.strip_suffix("' not found")?;
    Some(name.to_owned())
}
