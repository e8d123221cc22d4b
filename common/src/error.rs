//! Databricks' error format: `{"error_code": "...", "message": "..."}` with the HTTP status the
//! `databricks-sdk` maps to its exception classes (reference section 3).

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// The error codes Lakeward sends. A fixed set, so that it can also serve as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    InvalidParameterValue,
    InvalidState,
    MalformedRequest,
    QuotaExceeded,
    Unauthenticated,
    PermissionDenied,
    ResourceDoesNotExist,
    EndpointNotFound,
    ResourceAlreadyExists,
    /// A conditional update lost to a concurrent change (409, the SDK's `Aborted`).
    Aborted,
    RequestTimeout,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    RequestLimitExceeded,
    /// A per-caller or per-resource bound is reached (429, Databricks' `RESOURCE_EXHAUSTED`):
    /// unlike a rate limit, it lifts once some of the caller's own work is done.
    ResourceExhausted,
    NotImplemented,
    TemporarilyUnavailable,
    BadGateway,
    DeadlineExceeded,
    InternalError,
}

impl ErrorCode {
    /// The string sent as `error_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::MalformedRequest => "MALFORMED_REQUEST",
            ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::Aborted => "ABORTED",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UriTooLong => "URI_TOO_LONG",
            ErrorCode::HeadersTooLarge => "REQUEST_HEADER_FIELDS_TOO_LARGE",
            ErrorCode::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::NotImplemented => "NOT_IMPLEMENTED",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorCode::BadGateway => "BAD_GATEWAY",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status that goes with the code, as the SDK expects it (reference 3.2).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::InvalidParameterValue
            | ErrorCode::InvalidState
            | ErrorCode::MalformedRequest
            | ErrorCode::QuotaExceeded => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::ResourceDoesNotExist | ErrorCode::EndpointNotFound => StatusCode::NOT_FOUND,
            ErrorCode::ResourceAlreadyExists | ErrorCode::Aborted => StatusCode::CONFLICT,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::RequestLimitExceeded | ErrorCode::ResourceExhausted => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ErrorCode::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorCode::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error as the client sees it. `message` is written for the caller: it never carries
/// internal details (file paths, SQL of our store, stack traces) or secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The JSON body, `{"error_code": "...", "message": "..."}`.
    pub fn body(&self) -> Vec<u8> {
        let body = ErrorBody {
            error_code: self.code.as_str().to_owned(),
            message: self.message.clone(),
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceDoesNotExist, message)
    }
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }
    pub fn internal() -> Self {
        Self::new(ErrorCode::InternalError, "internal error")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// The serialized form; also what clients and tests parse.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error_code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_databricks_json() {
        let err = ApiError::permission_denied("no `x`");
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        let parsed: serde_json::Value = serde_json::from_slice(&err.body()).unwrap();
        assert_eq!(parsed["error_code"], "PERMISSION_DENIED");
        assert_eq!(parsed["message"], "no `x`");
    }
}
