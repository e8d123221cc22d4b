//! The runtime's side of the shared service frame (`lakeward-frame`): the frame checks the
//! assertion (`AssertionCheck`, layered in `crate::app`), reads bodies (`parse_object`) and
//! writes responses; here are the runtime's extractors over it and the one place where a
//! [`ServiceError`] becomes Databricks' error JSON.

use crate::caller::CallerCtx;
use crate::error::ServiceError;
use crate::state::Shared;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lakeward_common::assertion::IdentityClaims;
use lakeward_common::error::ApiError;
use lakeward_frame::server::{error_response, parse_object, Verified};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let (_, code, message) = self.parts();
        match &self {
            ServiceError::Internal => tracing::error!("request failed with an internal error"),
            ServiceError::Unavailable(m) => tracing::warn!(message = %m, "unavailable"),
            // The code only: messages can quote request fields.
            _ => tracing::debug!(code, "request refused"),
        }
        error_response(&ApiError::new(self.code(), message))
    }
}

/// A JSON body with the content type clients expect.
pub(crate) fn json_response(value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_bytes_response(StatusCode::OK, Bytes::from(body)),
        Err(err) => {
            tracing::error!(error = %err, "a response did not serialize");
            ServiceError::Internal.into_response()
        }
    }
}

/// A JSON body already serialized.
pub(crate) fn json_text_response(text: String) -> Response {
    json_bytes_response(StatusCode::OK, Bytes::from(text))
}

/// JSON bytes as they are: stored result chunks are sent without a copy.
pub(crate) fn json_bytes_response(status: StatusCode, body: Bytes) -> Response {
    lakeward_frame::server::json_response(status, body)
}

pub(crate) async fn endpoint_not_found() -> ServiceError {
    ServiceError::EndpointNotFound("no such endpoint".into())
}

/// The verified assertion's claims, as the frame's check left them. The runtime remembers the
/// caller's account for its own background calls to the control plane.
pub(crate) struct Claims(pub(crate) IdentityClaims);

impl FromRequestParts<Arc<Shared>> for Claims {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let verified = parts.extensions.get::<Verified>().ok_or_else(|| {
            ServiceError::Unauthenticated("calls must come through the gateway".into())
        })?;
        let claims = verified.claims().as_ref().clone();
        shared.control.note_account(&claims.account_id);
        Ok(Claims(claims))
    }
}

/// The caller of a workspace API, resolved through the control plane (active, assigned to
/// the workspace).
pub(crate) struct Caller(pub(crate) CallerCtx);

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let Claims(claims) = Claims::from_request_parts(parts, shared).await?;
        Ok(Caller(shared.resolve_caller(claims).await?))
    }
}

/// A JSON object request body, typed. The frame reads it (an empty body is `{}`, the SDK
/// sends none on some POSTs; anything but an object is `MALFORMED_REQUEST`); unknown fields
/// are ignored, as Databricks does; a field of the wrong type is an
/// `INVALID_PARAMETER_VALUE` naming its path (`channel.name`, `parameters[0].value`).
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ServiceError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| ServiceError::Malformed("the request body could not be read".into()))?;
        parse_body(&bytes).map(JsonBody)
    }
}

/// A request body as `T` (see [`JsonBody`]).
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ServiceError> {
    let object = parse_object(body).map_err(|err| ServiceError::Malformed(err.to_string()))?;
    from_value(serde_json::Value::Object(object))
}

/// A JSON object as `T`; a failure names the field's path.
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ServiceError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let field = err.path().to_string();
        let message = format!("`{field}`: {}", err.inner());
        ServiceError::InvalidParameter { field, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakeward_common::error::ErrorBody;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Body {
        name: Option<String>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Inner {
        flags: Vec<bool>,
    }

    #[test]
    fn bodies_are_objects_and_errors_name_the_field_path() {
        let empty: Body = parse_body(b"  ").unwrap();
        assert!(empty.name.is_none());
        let known: Body = parse_body(br#"{"name": "a", "unknown": 1}"#).unwrap();
        assert_eq!(known.name.as_deref(), Some("a"));
        for (body, code) in [
            (&b"[1]"[..], "MALFORMED_REQUEST"),
            (b"{", "MALFORMED_REQUEST"),
        ] {
            let err = parse_body::<Body>(body).unwrap_err();
            assert_eq!(err.parts().1, code, "{err:?}");
        }
        let err = parse_body::<Body>(br#"{"inner": {"flags": [true, "x"]}}"#).unwrap_err();
        let ServiceError::InvalidParameter { field, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(field, "inner.flags[1]");
        assert!(message.starts_with("`inner.flags[1]`"), "{message}");
    }

    #[tokio::test]
    async fn errors_become_databricks_json() {
        let response = ServiceError::ResourceExhausted("too many".into()).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error_code, "RESOURCE_EXHAUSTED");
        assert_eq!(body.message, "too many");
    }
}
