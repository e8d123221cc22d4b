//! Request bodies read as JSON into Databricks errors that name the field at fault, rather than
//! axum's plain-text rejections.
//!
//! Two readings share one parser: [`JsonBody`] (a typed body, the usual one) and
//! [`JsonObject`] (any JSON object, for handlers that check fields themselves). In both an
//! empty body reads as `{}`, because the SDK sends none on some POSTs.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use lakeward_common::error::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Why a body was refused. Each message is written for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body could not be read (cut off, or over the size limit): 400 `MALFORMED_REQUEST`.
    #[error("request body unreadable: {0}")]
    Unreadable(String),
    /// Not JSON, or not the JSON shape the route takes: 400 `MALFORMED_REQUEST`.
    #[error("{0}")]
    Malformed(String),
    /// JSON, but a field is missing or has a bad type or value: 400
    /// `INVALID_PARAMETER_VALUE`.
    #[error("{0}")]
    Invalid(String),
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        let code = match err {
            BodyError::Unreadable(_) | BodyError::Malformed(_) => ErrorCode::MalformedRequest,
            BodyError::Invalid(_) => ErrorCode::InvalidParameterValue,
        };
        ApiError::new(code, err.to_string())
    }
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        let err = ApiError::from(self);
        // The code only: messages quote request fields, which may hold anything.
        tracing::debug!(code = err.code.as_str(), "request body refused");
        crate::server::response::error_response(&err)
    }
}

/// A JSON body parsed with serde, whose errors name the field at fault:
/// `MALFORMED_REQUEST` when it is not JSON, `INVALID_PARAMETER_VALUE` for a missing field, a
/// wrong type, or a string holding a NUL character (which PostgreSQL's `TEXT` cannot store). An
/// empty body reads as `{}`. See [`parse_json`].
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = BodyError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Any JSON object, for a handler that checks its fields itself: an empty body is `{}`,
/// anything but an object is `MALFORMED_REQUEST`. NUL characters are left to the handler.
/// See [`parse_object`].
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = BodyError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(request, state).await?;
        parse_object(&bytes).map(JsonObject)
    }
}

async fn read<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, BodyError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|e| BodyError::Unreadable(e.to_string()))
}

/// Parses a body as [`JsonBody`] does.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    // PostgreSQL's TEXT cannot hold NUL, so a NUL would surface as a store error (a 500).
    // Valid JSON can only carry one escaped, so looking for the escape is enough.
    if contains_nul_escape(bytes) {
        return Err(BodyError::Invalid(
            "text must not contain NUL characters".into(),
        ));
    }
    deserialize(bytes)
}

/// Parses a body as [`JsonObject`] does.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, BodyError> {
    match deserialize(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(BodyError::Malformed(
            "the request body must be a JSON object".into(),
        )),
    }
}

/// serde_json with [`serde_path_to_error`], an empty body reading as `{}`.
fn deserialize<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let classified = inner.classify();
        let message = strip_position(&inner.to_string());
        match classified {
            serde_json::error::Category::Data if path == "." => BodyError::Invalid(message),
            serde_json::error::Category::Data => {
                BodyError::Invalid(format!("invalid value for `{path}`: {message}"))
            }
            _ => BodyError::Malformed(format!("malformed JSON body: {message}")),
        }
    })?;
    de.end()
        .map_err(|e| BodyError::Malformed(format!("malformed JSON body: {e}")))?;
    Ok(value)
}

fn contains_nul_escape(bytes: &[u8]) -> bool {
    bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].iter().all(|b| *b == b'0'))
}

/// serde_json's messages end in " at line L column C", which is noise for a one-line body.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Body {
        label: String,
        count: Option<i64>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Inner {
        value: bool,
    }

    fn message(err: BodyError) -> (String, String) {
        let api = ApiError::from(err);
        (api.code.as_str().to_owned(), api.message)
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_json::<Body>(br#"{"count": 1}"#).unwrap_err();
        assert_eq!(
            message(err),
            (
                "INVALID_PARAMETER_VALUE".into(),
                "missing field `label`".into()
            )
        );
        let err = parse_json::<Body>(br#"{"label": "x", "count": "many"}"#).unwrap_err();
        let (code, msg) = message(err);
        assert_eq!(code, "INVALID_PARAMETER_VALUE");
        assert!(msg.contains("`count`"), "{msg}");
        let err = parse_json::<Body>(br#"{"label": "x", "inner": {"value": 3}}"#).unwrap_err();
        assert!(message(err).1.contains("`inner.value`"));
        let err = parse_json::<Body>(br#"{"label": "x", "inner": {}}"#).unwrap_err();
        let (_, msg) = message(err);
        assert!(msg.contains("inner") && msg.contains("value"), "{msg}");
    }

    #[test]
    fn nul_characters_are_refused() {
        let err = parse_json::<Body>(br#"{"label": "a\u0000b"}"#).unwrap_err();
        assert_eq!(message(err).0, "INVALID_PARAMETER_VALUE");
        assert!(parse_json::<Body>(br#"{"label": "a\u0001b"}"#).is_ok());
    }

    #[test]
    fn malformed_and_empty_bodies() {
        let err = parse_json::<Body>(br#"{"label": "#).unwrap_err();
        assert_eq!(message(err).0, "MALFORMED_REQUEST");
        let err = parse_json::<Body>(br#"{"label": "x"} trailing"#).unwrap_err();
        assert_eq!(message(err).0, "MALFORMED_REQUEST");
        let empty: HashMap<String, String> = parse_json(b"  ").unwrap();
        assert!(empty.is_empty());
        let err = parse_json::<Body>(b"[]").unwrap_err();
        assert_eq!(message(err).0, "INVALID_PARAMETER_VALUE");
    }

    #[test]
    fn objects_read_as_the_runtime_reads_them() {
        assert!(parse_object(b"").unwrap().is_empty());
        assert!(parse_object(b" \n").unwrap().is_empty());
        let map = parse_object(br#"{"name": "a\u0000b", "n": 1}"#).unwrap();
        assert_eq!(map["name"], "a\u{0}b", "NUL is the handler's to judge");
        for not_an_object in [&b"[]"[..], b"1", b"\"x\"", b"null"] {
            let (code, msg) = message(parse_object(not_an_object).unwrap_err());
            assert_eq!(code, "MALFORMED_REQUEST");
            assert_eq!(msg, "the request body must be a JSON object");
        }
        let (code, _) = message(parse_object(b"{").unwrap_err());
        assert_eq!(code, "MALFORMED_REQUEST");
    }

    #[tokio::test]
    async fn the_extractors_read_the_request() {
        let request = |body: &'static str| {
            http::Request::post("/")
                .body(axum::body::Body::from(body))
                .unwrap()
        };
        let JsonBody(map) = JsonBody::<HashMap<String, i64>>::from_request(request(""), &())
            .await
            .unwrap();
        assert!(map.is_empty());
        let JsonObject(map) = JsonObject::from_request(request(r#"{"a": 1}"#), &())
            .await
            .unwrap();
        assert_eq!(map["a"], 1);
        let refused = JsonBody::<HashMap<String, i64>>::from_request(request("{"), &())
            .await
            .unwrap_err()
            .into_response();
        assert_eq!(refused.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(
            refused.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
    }
}
