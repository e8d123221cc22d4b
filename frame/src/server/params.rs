//! Path and query parameters read into Databricks errors rather than axum's plain-text
//! rejections, and refused when they hold a NUL character (which PostgreSQL's `TEXT` cannot
//! store, and no identifier contains).

use axum::extract::{FromRequestParts, Query, RawPathParams};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use lakeward_common::error::ApiError;
use std::collections::HashMap;

/// Why a parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A parameter the caller sent is unusable: 400 `INVALID_PARAMETER_VALUE`.
    #[error("{0}")]
    Invalid(String),
    /// The route has no parameter of this name: a bug in the route table, answered 500
    /// `INTERNAL_ERROR` with no details.
    #[error("route has no `{0}` parameter")]
    NotInRoute(String),
}

impl From<ParamError> for ApiError {
    fn from(err: ParamError) -> Self {
        match err {
            ParamError::Invalid(message) => ApiError::invalid_parameter(message),
            ParamError::NotInRoute(_) => ApiError::internal(),
        }
    }
}

impl IntoResponse for ParamError {
    fn into_response(self) -> Response {
        if let ParamError::NotInRoute(_) = &self {
            tracing::error!(error = %self, "internal failure");
        }
        crate::server::response::error_response(&ApiError::from(self))
    }
}

/// The route's path parameters, by name.
#[derive(Debug)]
pub struct PathParams(HashMap<String, String>);

impl PathParams {
    /// Whether the route has the parameter `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The parameter `name`, which the route table guarantees is there.
    pub fn get(&self, name: &str) -> Result<String, ParamError> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| ParamError::NotInRoute(name.to_owned()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ParamError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ParamError::Invalid("invalid path parameter".into()))?;
        if raw.iter().any(|(_, v)| v.contains('\0')) {
            return Err(ParamError::Invalid(
                "path parameters must not contain NUL characters".into(),
            ));
        }
        Ok(PathParams(
            raw.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ))
    }
}

/// The query string as a map (the last value of a repeated key wins).
#[derive(Debug, Default)]
pub struct QueryParams(pub HashMap<String, String>);

impl QueryParams {
    /// A parameter, with an empty value read as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An integer parameter; a non-integer is an error naming it.
    pub fn get_i64(&self, name: &str) -> Result<Option<i64>, ParamError> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| ParamError::Invalid(format!("`{name}` must be an integer")))
            })
            .transpose()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ParamError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map_err(|_| ParamError::Invalid("invalid query string".into()))?;
        if map.values().any(|v| v.contains('\0')) {
            return Err(ParamError::Invalid(
                "query parameters must not contain NUL characters".into(),
            ));
        }
        Ok(QueryParams(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn call(app: Router, uri: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/things/{id}",
                get(|path: PathParams, query: QueryParams| async move {
                    let id = path.get("id")?;
                    let limit = query.get_i64("limit")?;
                    Ok::<_, ParamError>(format!("{id} {limit:?} {}", path.contains("other")))
                }),
            )
            .route(
                "/broken",
                get(|path: PathParams| async move { path.get("id") }),
            )
    }

    #[tokio::test]
    async fn parameters_are_read_by_name() {
        let (status, body) = call(app(), "/things/a%20b?limit=%2010&limit=20").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "a b Some(20) false", "the last repeated value wins");
        let (_, body) = call(app(), "/things/x?limit=").await;
        assert_eq!(body, "x None false", "an empty value is absent");
    }

    #[tokio::test]
    async fn bad_parameters_are_databricks_errors() {
        for uri in [
            "/things/a%00b",
            "/things/x?limit=%00",
            "/things/x?limit=ten",
        ] {
            let (status, body) = call(app(), uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE", "{uri}");
        }
        let (status, body) = call(app(), "/broken").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("`id`"), "route details stay inside: {body}");
    }
}
