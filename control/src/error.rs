//! [`ControlError`], the one error type of the control plane's handlers, and the one place where
//! they become HTTP responses (its [`IntoResponse`], through the frame's
//! [`error_response`]).

use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use lakeward_common::error::{ApiError, ErrorCode};
use lakeward_frame::server::{error_response, ParamError};

/// Everything a control-plane request can fail with. Each variant but [`ControlError::Store`]
/// and [`ControlError::Internal`] carries a message written for the caller; those two are logged
/// and answered with a bare `INTERNAL_ERROR`, so SQL and internal details never leave.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No valid identity assertion (401 `UNAUTHENTICATED`).
    #[error("{0}")]
    Unauthenticated(String),
    /// A field or parameter has a bad value, type or is missing (400 `INVALID_PARAMETER_VALUE`).
    #[error("{0}")]
    InvalidParameter(String),
    /// The body is not JSON at all (400 `MALFORMED_REQUEST`).
    #[error("{0}")]
    Malformed(String),
    /// The change would leave the system in a state it refuses, e.g. locking the caller out
    /// (400 `INVALID_STATE`).
    #[error("{0}")]
    InvalidState(String),
    /// A quota would be exceeded (400 `QUOTA_EXCEEDED`).
    #[error("{0}")]
    QuotaExceeded(String),
    /// The caller may not do this (403 `PERMISSION_DENIED`).
    #[error("{0}")]
    PermissionDenied(String),
    /// The resource does not exist, or is not visible to the caller (404
    /// `RESOURCE_DOES_NOT_EXIST`).
    #[error("{0}")]
    NotFound(String),
    /// No such route, or a route hidden from this caller (404 `ENDPOINT_NOT_FOUND`).
    #[error("{0}")]
    EndpointNotFound(String),
    /// A resource with this name already exists (409 `RESOURCE_ALREADY_EXISTS`).
    #[error("{0}")]
    AlreadyExists(String),
    /// A conditional update found the resource changed since the caller read it (409
    /// `ABORTED`).
    #[error("{0}")]
    Aborted(String),
    /// The store cannot be reached right now (503 `TEMPORARILY_UNAVAILABLE`).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed. Logged, never shown.
    #[error("store error: {0}")]
    Store(#[from] sqlx::Error),
    /// A bug or an impossible state. Logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ControlError {
    /// The error as the client sees it.
    pub fn to_api_error(&self) -> ApiError {
        let (code, message) = match self {
            ControlError::Unauthenticated(m) => (ErrorCode::Unauthenticated, m.as_str()),
            ControlError::InvalidParameter(m) => (ErrorCode::InvalidParameterValue, m.as_str()),
            ControlError::Malformed(m) => (ErrorCode::MalformedRequest, m.as_str()),
            ControlError::InvalidState(m) => (ErrorCode::InvalidState, m.as_str()),
            ControlError::QuotaExceeded(m) => (ErrorCode::QuotaExceeded, m.as_str()),
            ControlError::PermissionDenied(m) => (ErrorCode::PermissionDenied, m.as_str()),
            ControlError::NotFound(m) => (ErrorCode::ResourceDoesNotExist, m.as_str()),
            ControlError::EndpointNotFound(m) => (ErrorCode::EndpointNotFound, m.as_str()),
            ControlError::AlreadyExists(m) => (ErrorCode::ResourceAlreadyExists, m.as_str()),
            ControlError::Aborted(m) => (ErrorCode::Aborted, m.as_str()),
            ControlError::Unavailable(m) => (ErrorCode::TemporarilyUnavailable, m.as_str()),
            // A safety net: a name taken by a concurrent writer is a conflict, not a crash.
            ControlError::Store(_) if self.is_unique_violation() => (
                ErrorCode::ResourceAlreadyExists,
                "a resource with this name already exists",
            ),
            ControlError::Store(_) | ControlError::Internal(_) => {
                (ErrorCode::InternalError, "internal error")
            }
        };
        ApiError::new(code, message)
    }

    /// 404 `ENDPOINT_NOT_FOUND` for a route the table does not have, or hides from this caller:
    /// both are worded alike, so that a hidden route cannot be told from a missing one.
    pub(crate) fn no_route(method: &Method, uri: &Uri) -> ControlError {
        let path: String = uri.path().chars().take(200).collect();
        ControlError::EndpointNotFound(format!("no API found for `{method} {path}`"))
    }

    /// Whether this is a unique-constraint violation from the store (a lost race on a name).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            ControlError::Store(sqlx::Error::Database(db)) => db.is_unique_violation(),
            _ => false,
        }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        match &self {
            ControlError::Store(e) => tracing::error!(error = %e, "store failure"),
            ControlError::Internal(e) => tracing::error!(error = %e, "internal failure"),
            ControlError::Unavailable(e) => tracing::warn!(error = %e, "unavailable"),
            // The code only: messages can quote request fields, and a confused client may
            // have put a token value in one.
            _ => tracing::debug!(code = self.to_api_error().code.as_str(), "request refused"),
        }
        error_response(&self.to_api_error())
    }
}

impl From<ParamError> for ControlError {
    fn from(err: ParamError) -> Self {
        match err {
            ParamError::Invalid(message) => ControlError::InvalidParameter(message),
            ParamError::NotInRoute(_) => ControlError::Internal(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_hide_their_details() {
        let err = ControlError::Store(sqlx::Error::Protocol("SELECT secret FROM x".into()));
        let api = err.to_api_error();
        assert_eq!(api.code, ErrorCode::InternalError);
        assert_eq!(api.message, "internal error");
        let response = err.into_response();
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn codes_and_statuses_pair_up() {
        let cases = [
            (ControlError::InvalidState("x".into()), 400, "INVALID_STATE"),
            (
                ControlError::QuotaExceeded("x".into()),
                400,
                "QUOTA_EXCEEDED",
            ),
            (
                ControlError::PermissionDenied("x".into()),
                403,
                "PERMISSION_DENIED",
            ),
            (
                ControlError::NotFound("x".into()),
                404,
                "RESOURCE_DOES_NOT_EXIST",
            ),
            (
                ControlError::AlreadyExists("x".into()),
                409,
                "RESOURCE_ALREADY_EXISTS",
            ),
            (ControlError::Aborted("x".into()), 409, "ABORTED"),
        ];
        for (err, status, code) in cases {
            let api = err.to_api_error();
            assert_eq!(api.status().as_u16(), status);
            assert_eq!(api.code.as_str(), code);
        }
    }
}
