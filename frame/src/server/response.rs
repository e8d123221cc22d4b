//! The one place where an [`ApiError`] becomes an HTTP response.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use lakeward_common::error::ApiError;

/// A response with a JSON body already serialized, and `content-type: application/json`.
pub fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `err` as Databricks sends errors: its status and `{"error_code": ..., "message": ...}`.
pub fn error_response(err: &ApiError) -> Response {
    json_response(err.status(), err.body())
}

/// An [`ApiError`] on its way out: a handler's error or an extractor's rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse(pub ApiError);

impl From<ApiError> for ErrorResponse {
    fn from(err: ApiError) -> Self {
        ErrorResponse(err)
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use lakeward_common::error::ErrorBody;

    #[tokio::test]
    async fn errors_are_databricks_json() {
        let response = ErrorResponse(ApiError::permission_denied("no `x`")).into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.error_code, "PERMISSION_DENIED");
        assert_eq!(body.message, "no `x`");
    }

    #[test]
    fn json_responses_say_so() {
        let response = json_response(StatusCode::CREATED, "{}");
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
