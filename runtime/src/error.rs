//! [`ServiceError`], the one error type of the runtime's handlers. It becomes Databricks' error
//! JSON in one place, its `IntoResponse` in `crate::http`.

use axum::http::StatusCode;
use lakeward_common::error::{ApiError, ErrorCode};

/// Everything a runtime request can fail with. Each variant but [`ServiceError::Internal`]
/// carries a message written for the caller; that one is logged and answered with a bare
/// `INTERNAL_ERROR`, so engine and store details never leave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// No valid identity assertion, or the caller no longer exists (401 `UNAUTHENTICATED`).
    #[error("{0}")]
    Unauthenticated(String),
    /// A field of the request is missing or has a bad value or type (400
    /// `INVALID_PARAMETER_VALUE`). `field` is the path of the field (`channel.name`), or empty
    /// for a path parameter.
    #[error("{message}")]
    InvalidParameter { field: String, message: String },
    /// The body is not a JSON object at all (400 `MALFORMED_REQUEST`).
    #[error("{0}")]
    Malformed(String),
    /// A request this API does not serve in this context (400 `BAD_REQUEST`).
    #[error("{0}")]
    BadRequest(String),
    /// The resource is in a state that refuses the request, e.g. a deleted warehouse (400
    /// `INVALID_STATE`).
    #[error("{0}")]
    InvalidState(String),
    /// A quota of the control plane would be exceeded (400 `QUOTA_EXCEEDED`).
    #[error("{0}")]
    QuotaExceeded(String),
    /// The caller may not do this (403 `PERMISSION_DENIED`).
    #[error("{0}")]
    PermissionDenied(String),
    /// The resource does not exist, or is not visible to the caller (404
    /// `RESOURCE_DOES_NOT_EXIST`).
    #[error("{0}")]
    NotFound(String),
    /// No such route (404 `ENDPOINT_NOT_FOUND`).
    #[error("{0}")]
    EndpointNotFound(String),
    /// A resource with this name already exists (409 `RESOURCE_ALREADY_EXISTS`).
    #[error("{0}")]
    AlreadyExists(String),
    /// A conditional update lost to a concurrent change (409 `ABORTED`).
    #[error("{0}")]
    Aborted(String),
    /// A per-caller or per-warehouse bound is reached; the caller may try again once some of
    /// its statements are done (429 `RESOURCE_EXHAUSTED`).
    #[error("{0}")]
    ResourceExhausted(String),
    /// The control plane (or something else we depend on) cannot answer right now (503
    /// `TEMPORARILY_UNAVAILABLE`).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an impossible state. Logged where it happens, never shown.
    #[error("internal error")]
    Internal,
}

impl ServiceError {
    /// A bad field value; the message names the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ServiceError::InvalidParameter {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// The shared error code, which decides the status.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ServiceError::InvalidParameter { .. } => ErrorCode::InvalidParameterValue,
            ServiceError::Malformed(_) => ErrorCode::MalformedRequest,
            ServiceError::BadRequest(_) => ErrorCode::BadRequest,
            ServiceError::InvalidState(_) => ErrorCode::InvalidState,
            ServiceError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            ServiceError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            ServiceError::NotFound(_) => ErrorCode::ResourceDoesNotExist,
            ServiceError::EndpointNotFound(_) => ErrorCode::EndpointNotFound,
            ServiceError::AlreadyExists(_) => ErrorCode::ResourceAlreadyExists,
            ServiceError::Aborted(_) => ErrorCode::Aborted,
            ServiceError::ResourceExhausted(_) => ErrorCode::ResourceExhausted,
            ServiceError::Unavailable(_) => ErrorCode::TemporarilyUnavailable,
            ServiceError::Internal => ErrorCode::InternalError,
        }
    }

    /// The status, the `error_code` and the message the client gets.
    pub fn parts(&self) -> (StatusCode, &'static str, &str) {
        let message = match self {
            ServiceError::InvalidParameter { message, .. } => message.as_str(),
            ServiceError::Internal => "internal error",
            ServiceError::Unauthenticated(m)
            | ServiceError::Malformed(m)
            | ServiceError::BadRequest(m)
            | ServiceError::InvalidState(m)
            | ServiceError::QuotaExceeded(m)
            | ServiceError::PermissionDenied(m)
            | ServiceError::NotFound(m)
            | ServiceError::EndpointNotFound(m)
            | ServiceError::AlreadyExists(m)
            | ServiceError::Aborted(m)
            | ServiceError::ResourceExhausted(m)
            | ServiceError::Unavailable(m) => m.as_str(),
        };
        let code = self.code();
        (code.status(), code.as_str(), message)
    }

    /// The message the caller sees.
    pub fn message(&self) -> &str {
        self.parts().2
    }
}

/// A refusal of the control plane, with the meaning it had there. The control client already
/// turned its own failures into `INTERNAL_ERROR` or `TEMPORARILY_UNAVAILABLE` with messages fit
/// for the caller.
impl From<ApiError> for ServiceError {
    fn from(err: ApiError) -> Self {
        let message = err.message;
        match err.code {
            ErrorCode::Unauthenticated => ServiceError::Unauthenticated(message),
            ErrorCode::InvalidParameterValue => ServiceError::InvalidParameter {
                field: String::new(),
                message,
            },
            ErrorCode::MalformedRequest => ServiceError::Malformed(message),
            ErrorCode::BadRequest => ServiceError::BadRequest(message),
            ErrorCode::InvalidState => ServiceError::InvalidState(message),
            ErrorCode::QuotaExceeded => ServiceError::QuotaExceeded(message),
            ErrorCode::PermissionDenied => ServiceError::PermissionDenied(message),
            ErrorCode::ResourceDoesNotExist => ServiceError::NotFound(message),
            ErrorCode::EndpointNotFound => ServiceError::EndpointNotFound(message),
            ErrorCode::ResourceAlreadyExists => ServiceError::AlreadyExists(message),
            ErrorCode::Aborted => ServiceError::Aborted(message),
            ErrorCode::RequestLimitExceeded | ErrorCode::ResourceExhausted => {
                ServiceError::ResourceExhausted(message)
            }
            ErrorCode::TemporarilyUnavailable
            | ErrorCode::BadGateway
            | ErrorCode::DeadlineExceeded
            | ErrorCode::RequestTimeout => ServiceError::Unavailable(message),
            ErrorCode::PayloadTooLarge
            | ErrorCode::UriTooLong
            | ErrorCode::HeadersTooLarge
            | ErrorCode::NotImplemented
            | ErrorCode::InternalError => ServiceError::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_databricks() {
        let cases = [
            (
                ServiceError::invalid("name", "`name` is required"),
                400,
                "INVALID_PARAMETER_VALUE",
            ),
            (
                ServiceError::Malformed("m".into()),
                400,
                "MALFORMED_REQUEST",
            ),
            (ServiceError::InvalidState("m".into()), 400, "INVALID_STATE"),
            (
                ServiceError::PermissionDenied("m".into()),
                403,
                "PERMISSION_DENIED",
            ),
            (
                ServiceError::NotFound("m".into()),
                404,
                "RESOURCE_DOES_NOT_EXIST",
            ),
            (
                ServiceError::AlreadyExists("m".into()),
                409,
                "RESOURCE_ALREADY_EXISTS",
            ),
            (
                ServiceError::ResourceExhausted("m".into()),
                429,
                "RESOURCE_EXHAUSTED",
            ),
            (
                ServiceError::Unavailable("m".into()),
                503,
                "TEMPORARILY_UNAVAILABLE",
            ),
            (ServiceError::Internal, 500, "INTERNAL_ERROR"),
        ];
        for (err, status, code) in cases {
            let (s, c, _) = err.parts();
            assert_eq!((s.as_u16(), c), (status, code), "{err:?}");
        }
        assert_eq!(ServiceError::Internal.message(), "internal error");
    }

    #[test]
    fn control_plane_refusals_keep_their_meaning() {
        let err = ServiceError::from(ApiError::not_found("warehouse `x` does not exist"));
        assert_eq!(
            err,
            ServiceError::NotFound("warehouse `x` does not exist".into())
        );
        let err = ServiceError::from(ApiError::new(ErrorCode::InternalError, "db said: secret"));
        assert_eq!(err.message(), "internal error");
    }
}
