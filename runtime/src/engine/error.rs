//! Turning every failure into a [`SqlError`]: the one place that decides error codes and
//! SQLSTATEs, so the service never inspects DataFusion's errors itself.

use super::touched::TableAccess;
use datafusion::error::DataFusionError;
use std::fmt;

/// Why a statement failed: it becomes the statement's `FAILED` status, never an HTTP error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// A Databricks `ServiceErrorCode` (`BAD_REQUEST`, `NOT_FOUND`, `RESOURCE_EXHAUSTED`,
    /// `INTERNAL_ERROR`, ...) or `PERMISSION_DENIED`.
    pub error_code: String,
    /// Names the problem: the table, the column, the syntax error.
    pub message: String,
    /// The SQLSTATE when one applies (`42P01` unknown table, `42501` permission, `42601`
    /// syntax).
    pub sql_state: Option<String>,
    /// On `PERMISSION_DENIED`: what the statement attempted and was refused (the action and
    /// securable), so the audit record can name it although nothing was touched.
    pub denied: Option<Box<TableAccess>>,
}

impl SqlError {
    pub fn new(error_code: &str, message: impl Into<String>) -> Self {
        SqlError {
            error_code: error_code.to_owned(),
            message: message.into(),
            sql_state: None,
            denied: None,
        }
    }

    pub fn with_sql_state(mut self, state: &str) -> Self {
        self.sql_state = Some(state.to_owned());
        self
    }

    /// Records what a `PERMISSION_DENIED` refused.
    pub fn with_denied(mut self, denied: TableAccess) -> Self {
        self.denied = Some(Box::new(denied));
        self
    }
}

pub(crate) const BAD_REQUEST: &str = "BAD_REQUEST";
pub(crate) const NOT_FOUND: &str = "NOT_FOUND";
pub(crate) const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
pub(crate) const RESOURCE_EXHAUSTED: &str = "RESOURCE_EXHAUSTED";
pub(crate) const ALREADY_EXISTS: &str = "RESOURCE_ALREADY_EXISTS";
pub(crate) const INTERNAL_ERROR: &str = "INTERNAL_ERROR";

pub(crate) fn syntax(message: impl Into<String>) -> SqlError {
    SqlError::new(BAD_REQUEST, message).with_sql_state("42601")
}

pub(crate) fn bad_request(message: impl Into<String>) -> SqlError {
    SqlError::new(BAD_REQUEST, message)
}

pub(crate) fn unsupported(message: impl Into<String>) -> SqlError {
    SqlError::new(BAD_REQUEST, message).with_sql_state("0A000")
}

pub(crate) fn internal(message: impl Into<String>) -> SqlError {
    SqlError::new(INTERNAL_ERROR, message)
}

pub(crate) fn table_not_found(name: &str) -> SqlError {
    SqlError::new(
        NOT_FOUND,
        format!(
            "[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` cannot be found. Verify the \
             spelling and correctness of the schema and catalog."
        ),
    )
    .with_sql_state("42P01")
}

pub(crate) fn schema_not_found(name: &str) -> SqlError {
    SqlError::new(
        NOT_FOUND,
        format!("[SCHEMA_NOT_FOUND] The schema `{name}` cannot be found."),
    )
    .with_sql_state("42704")
}

pub(crate) fn catalog_not_found(name: &str) -> SqlError {
    SqlError::new(
        NOT_FOUND,
        format!("[CATALOG_NOT_FOUND] The catalog `{name}` cannot be found."),
    )
    .with_sql_state("42704")
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_code, self.message)
    }
}

impl std::error::Error for SqlError {}

impl From<DataFusionError> for SqlError {
    fn from(error: DataFusionError) -> Self {
        from_datafusion(&error)
    }
}

impl SqlError {
    /// The error a failed statement reports for a DataFusion error, including the errors of
    /// the stream [`super::Prepared::run`] returns (an engine error travels in it as
    /// `DataFusionError::External` and comes back out here unchanged).
    pub fn from_datafusion(error: &DataFusionError) -> SqlError {
        from_datafusion(error)
    }
}

fn from_datafusion(error: &DataFusionError) -> SqlError {
    if let Some(own) = find_sql_error(error) {
        return own;
    }
    let root = error.find_root();
    match root {
        DataFusionError::SQL(parser, _) => syntax(parser.to_string()),
        DataFusionError::ResourcesExhausted(message) => {
            SqlError::new(RESOURCE_EXHAUSTED, message.clone())
        }
        DataFusionError::Plan(message) => {
            if let Some(name) = missing_table(message) {
                table_not_found(&name)
            } else {
                bad_request(root.strip_backtrace())
            }
        }
        DataFusionError::SchemaError(inner, _) => {
            let message = root.strip_backtrace();
            match inner.as_ref() {
                datafusion::common::SchemaError::FieldNotFound { .. } => {
                    bad_request(message).with_sql_state("42703")
                }
                _ => bad_request(message),
            }
        }
        DataFusionError::NotImplemented(_) => unsupported(root.strip_backtrace()),
        DataFusionError::ArrowError(..)
        | DataFusionError::Execution(_)
        | DataFusionError::Configuration(_) => bad_request(root.strip_backtrace()),
        _ => internal(root.strip_backtrace()),
    }
}

/// An engine error carried through DataFusion (`External`), anywhere in the chain.
fn find_sql_error(error: &DataFusionError) -> Option<SqlError> {
    let mut current: &dyn std::error::Error = error;
    loop {
        if let Some(own) = current.downcast_ref::<SqlError>() {
            return Some(own.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tables_become_42p01() {
        let e = DataFusionError::Plan("table 'main.default.nope' not found".into());
        let s = SqlError::from(e);
        assert_eq!(s.error_code, NOT_FOUND);
        assert_eq!(s.sql_state.as_deref(), Some("42P01"));
        assert!(s.message.contains("`main.default.nope`"), "{}", s.message);
    }

    #[test]
    fn engine_errors_survive_a_trip_through_datafusion() {
        let own = bad_request("mine").with_sql_state("22000");
        let e = DataFusionError::External(Box::new(own.clone())).context("while running");
        assert_eq!(SqlError::from(e), own);
    }

    #[test]
    fn memory_errors_are_resource_exhausted() {
        let e = DataFusionError::ResourcesExhausted("over the limit".into());
        let s = SqlError::from(DataFusionError::Context("x".into(), Box::new(e)));
        assert_eq!(s.error_code, RESOURCE_EXHAUSTED);
        assert_eq!(s.message, "over the limit");
    }
}
