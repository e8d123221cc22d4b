//! The engine's failures: [`QueryError`], typed by cause, each cause with its Databricks
//! error code and SQLSTATE here and nowhere else; and [`SqlError`], the form the service
//! receives (a failed statement's `error_code`, `message` and `sql_state`), made from a
//! `QueryError` in one place ([`From<QueryError> for SqlError`]).
//!
//! What a client sees never carries the engine's internals: storage failures and engine
//! failures keep their detail (paths on disk, object-store URLs, DataFusion's and Arrow's
//! words) for the log and show only what failed; DataFusion's errors, at plan time and while
//! rows stream alike, are classified by [`query_error`].

use super::touched::TableAccess;
use datafusion::error::DataFusionError;
use lakeward_policy::Securable;
use std::fmt;

mod from_datafusion;

pub use from_datafusion::query_error;

/// Why a statement failed, by cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The statement does not parse (`[PARSE_SYNTAX_ERROR] ...`).
    #[error("{0}")]
    Syntax(String),
    /// A catalog, schema or table the statement names does not exist.
    #[error("{}", not_found_message(.kind, .name))]
    NotFound { kind: Level, name: String },
    /// What the statement creates exists already.
    #[error("{}", already_exists_message(.kind, .name))]
    AlreadyExists { kind: Level, name: String },
    /// The policies refused the caller `refused` (the action and securable, for the audit
    /// record); `privilege` is what the caller would need.
    #[error("User {user} does not have {privilege} on {} `{}`", kind_of(&.refused.securable), .refused.securable.full_name())]
    PermissionDenied {
        user: String,
        privilege: &'static str,
        refused: Box<TableAccess>,
    },
    /// A statement or clause the engine does not run.
    #[error("{0}")]
    Unsupported(String),
    /// The statement is wrong in some other way (a bad option, name, parameter, location).
    #[error("{message}")]
    BadRequest {
        message: String,
        sql_state: Option<&'static str>,
    },
    /// The statement needs more memory than its warehouse has.
    #[error("{0}")]
    ResourcesExhausted(String),
    /// Reading or writing the lake failed. What failed (`detail`: paths, the object store's
    /// words) is logged, never shown: the client learns only what the engine was `doing`.
    #[error("{doing} failed")]
    Io { doing: &'static str, detail: String },
    /// A bug or a broken invariant of the engine. The `detail` is logged, never shown.
    #[error("the statement failed inside the engine")]
    Internal { detail: String },
    /// A failure reported by the service around the engine (the control plane refusing a
    /// catalog change), passed on as it came.
    #[error("{}", .0.message)]
    Reported(SqlError),
}

/// The level of the catalog a securable sits at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Catalog,
    Schema,
    Table,
}

impl Level {
    pub(crate) fn of(securable: &Securable) -> Level {
        match securable {
            Securable::Catalog { .. } => Level::Catalog,
            Securable::Schema { .. } => Level::Schema,
            Securable::Table { .. } => Level::Table,
        }
    }
}

fn not_found_message(kind: &Level, name: &str) -> String {
    match kind {
        Level::Table => format!(
            "[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` cannot be found. Verify the \
             spelling and correctness of the schema and catalog."
        ),
        Level::Schema => format!("[SCHEMA_NOT_FOUND] The schema `{name}` cannot be found."),
        Level::Catalog => format!("[CATALOG_NOT_FOUND] The catalog `{name}` cannot be found."),
    }
}

fn already_exists_message(kind: &Level, name: &str) -> String {
    match kind {
        Level::Table => format!(
            "[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table `{name}` because it already \
             exists"
        ),
        Level::Schema => {
            format!(
                "[SCHEMA_ALREADY_EXISTS] Cannot create schema `{name}` because it already exists"
            )
        }
        Level::Catalog => format!(
            "[CATALOG_ALREADY_EXISTS] Cannot create catalog `{name}` because it already exists"
        ),
    }
}

fn kind_of(securable: &Securable) -> String {
    securable.kind().to_ascii_lowercase()
}

impl QueryError {
    /// The Databricks `ServiceErrorCode` of the cause (or `PERMISSION_DENIED`).
    pub fn error_code(&self) -> &str {
        match self {
            QueryError::Syntax(_) | QueryError::Unsupported(_) | QueryError::BadRequest { .. } => {
                "BAD_REQUEST"
            }
            QueryError::NotFound { .. } => "NOT_FOUND",
            QueryError::AlreadyExists { .. } => "RESOURCE_ALREADY_EXISTS",
            QueryError::PermissionDenied { .. } => "PERMISSION_DENIED",
            QueryError::ResourcesExhausted(_) => "RESOURCE_EXHAUSTED",
            QueryError::Io { .. } => "IO_ERROR",
            QueryError::Internal { .. } => "INTERNAL_ERROR",
            QueryError::Reported(reported) => &reported.error_code,
        }
    }

    /// The SQLSTATE of the cause, when one applies.
    pub fn sql_state(&self) -> Option<&str> {
        match self {
            QueryError::Syntax(_) => Some("42601"),
            QueryError::NotFound {
                kind: Level::Table, ..
            } => Some("42P01"),
            QueryError::NotFound { .. } => Some("42704"),
            QueryError::AlreadyExists {
                kind: Level::Table, ..
            } => Some("42P07"),
            QueryError::AlreadyExists { .. } => Some("42P06"),
            QueryError::PermissionDenied { .. } => Some("42501"),
            QueryError::Unsupported(_) => Some("0A000"),
            QueryError::BadRequest { sql_state, .. } => *sql_state,
            QueryError::ResourcesExhausted(_)
            | QueryError::Io { .. }
            | QueryError::Internal { .. } => None,
            QueryError::Reported(reported) => reported.sql_state.as_deref(),
        }
    }
}

pub(crate) fn syntax(message: impl Into<String>) -> QueryError {
    QueryError::Syntax(message.into())
}

pub(crate) fn bad_request(message: impl Into<String>) -> QueryError {
    QueryError::BadRequest {
        message: message.into(),
        sql_state: None,
    }
}

/// A bad request with the SQLSTATE that names its cause more precisely (`42711` a column
/// defined twice, `42602` an invalid name, ...).
pub(crate) fn bad_request_with_state(
    message: impl Into<String>,
    sql_state: &'static str,
) -> QueryError {
    QueryError::BadRequest {
        message: message.into(),
        sql_state: Some(sql_state),
    }
}

pub(crate) fn unsupported(message: impl Into<String>) -> QueryError {
    QueryError::Unsupported(message.into())
}

/// An engine failure; `detail` goes to the log (at once: the client never sees it).
pub(crate) fn internal(detail: impl Into<String>) -> QueryError {
    let detail = detail.into();
    tracing::error!(%detail, "statement failed inside the engine");
    QueryError::Internal { detail }
}

/// A failure of the lake's storage while `doing` something; `detail` goes to the log.
pub(crate) fn io(doing: &'static str, detail: impl Into<String>) -> QueryError {
    let detail = detail.into();
    tracing::warn!(%detail, "{doing} failed");
    QueryError::Io { doing, detail }
}

pub(crate) fn table_not_found(name: &str) -> QueryError {
    QueryError::NotFound {
        kind: Level::Table,
        name: name.to_owned(),
    }
}

pub(crate) fn schema_not_found(name: &str) -> QueryError {
    QueryError::NotFound {
        kind: Level::Schema,
        name: name.to_owned(),
    }
}

/// `NOT_FOUND` for the securable, at its level.
pub(crate) fn not_found(securable: &Securable) -> QueryError {
    QueryError::NotFound {
        kind: Level::of(securable),
        name: securable.full_name(),
    }
}

pub(crate) fn already_exists(securable: &Securable) -> QueryError {
    QueryError::AlreadyExists {
        kind: Level::of(securable),
        name: securable.full_name(),
    }
}

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

    /// The error a failed statement reports for a DataFusion error, including the errors of
    /// the stream [`super::Prepared::run`] returns (an engine error travels in it as
    /// `DataFusionError::External` and comes back out here unchanged). Same as
    /// [`query_error`].
    pub fn from_datafusion(error: &DataFusionError) -> SqlError {
        SqlError::from(QueryError::from(error))
    }
}

/// The one place a cause becomes what the client sees.
impl From<QueryError> for SqlError {
    fn from(error: QueryError) -> SqlError {
        let (error_code, sql_state) = (error.error_code().to_owned(), error.sql_state());
        let sql_state = sql_state.map(str::to_owned);
        let message = error.to_string();
        let denied = match error {
            QueryError::Reported(reported) => return reported,
            QueryError::PermissionDenied { refused, .. } => Some(refused),
            _ => None,
        };
        SqlError {
            error_code,
            message,
            sql_state,
            denied,
        }
    }
}

/// What the service reports (a catalog change refused) goes on as it came.
impl From<SqlError> for QueryError {
    fn from(error: SqlError) -> QueryError {
        QueryError::Reported(error)
    }
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> QueryError {
        QueryError::from(&error)
    }
}

impl From<&DataFusionError> for QueryError {
    fn from(error: &DataFusionError) -> QueryError {
        from_datafusion::classify(error)
    }
}

impl From<DataFusionError> for SqlError {
    fn from(error: DataFusionError) -> Self {
        SqlError::from(QueryError::from(&error))
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_code, self.message)
    }
}

impl std::error::Error for SqlError {}

#[cfg(test)]
mod tests;
