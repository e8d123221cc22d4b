//! The identity-assertion check every service runs before any handler: a tower layer that
//! verifies [`IDENTITY_HEADER`] and leaves the verified claims in the request.

use crate::server::response::ErrorResponse;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready};
use http::request::Parts;
use http::{HeaderMap, Request};
use lakeward_common::assertion::{
    AssertionError, AssertionKey, Audience, IdentityClaims, IDENTITY_HEADER,
};
use lakeward_common::error::ApiError;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The claims of an assertion that verified, and the audience of the key that verified it.
///
/// A service that accepts more than one audience ([`AssertionCheck::or_key`]) must look at
/// [`Verified::audience`] before trusting the claims for a route.
#[derive(Debug, Clone)]
pub struct Verified {
    audience: Audience,
    claims: Arc<IdentityClaims>,
}

impl Verified {
    /// The audience of the key the assertion verified with.
    pub fn audience(&self) -> Audience {
        self.audience
    }

    /// The verified claims.
    pub fn claims(&self) -> &Arc<IdentityClaims> {
        &self.claims
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Verified {
    type Rejection = ErrorResponse;

    /// The claims [`AssertionCheck`] left; 401 on a route it does not guard.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Verified>()
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated(AssertionError::Missing.to_string()).into())
    }
}

/// Verifies the identity assertion of every request with the keys it holds, in order. A
/// request whose assertion is missing or verifies with none of them is answered 401
/// `UNAUTHENTICATED` (Databricks error JSON, the reason in the message, never the assertion)
/// and goes no further; otherwise [`Verified`] is put in its extensions.
///
/// Use it as a layer (`Router::layer(check)`), or call [`AssertionCheck::verify`].
#[derive(Debug, Clone)]
pub struct AssertionCheck {
    keys: Arc<[AssertionKey]>,
}

impl AssertionCheck {
    /// A check accepting assertions signed with `key` (for its audience).
    pub fn new(key: AssertionKey) -> Self {
        AssertionCheck {
            keys: Arc::from([key]),
        }
    }

    /// Accepts assertions signed with `key` too, tried after the keys already held.
    pub fn or_key(self, key: AssertionKey) -> Self {
        let mut keys = self.keys.to_vec();
        keys.push(key);
        AssertionCheck {
            keys: Arc::from(keys),
        }
    }

    /// Verifies the assertion in `headers`. When no key accepts it, the reason is the first
    /// key's: the audience a service mostly serves says best what was wrong.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Verified, AssertionError> {
        let text = headers
            .get(IDENTITY_HEADER)
            .ok_or(AssertionError::Missing)?
            .to_str()
            .map_err(|_| AssertionError::Unreadable)?;
        let mut first_refusal = None;
        for key in self.keys.iter() {
            match key.verify(text) {
                Ok(claims) => {
                    return Ok(Verified {
                        audience: key.audience(),
                        claims: Arc::new(claims),
                    })
                }
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        Err(first_refusal.unwrap_or(AssertionError::Missing))
    }
}

impl<S> tower::Layer<S> for AssertionCheck {
    type Service = AssertionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AssertionService {
            inner,
            check: self.clone(),
        }
    }
}

/// The service [`AssertionCheck`] wraps around the routes.
#[derive(Debug, Clone)]
pub struct AssertionService<S> {
    inner: S,
    check: AssertionCheck,
}

impl<S, B> tower::Service<Request<B>> for AssertionService<S>
where
    S: tower::Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.check.verify(request.headers()) {
            Ok(verified) => {
                request.extensions_mut().insert(verified);
                Either::Left(self.inner.call(request))
            }
            Err(reason) => {
                tracing::info!(%reason, path = %request.uri().path(), "unauthenticated request refused");
                let response = ErrorResponse(ApiError::unauthenticated(reason.to_string()));
                Either::Right(futures_util::future::ready(Ok(response.into_response())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use http::{header, StatusCode};
    use http_body_util::BodyExt;
    use lakeward_common::assertion::{MasterSecret, PrincipalKind};
    use lakeward_common::error::ErrorBody;
    use tower::ServiceExt;

    fn claims() -> IdentityClaims {
        IdentityClaims {
            sub: "42".into(),
            kind: PrincipalKind::User,
            user_name: "a@example.com".into(),
            workspace_id: Some(7),
            ..IdentityClaims::gateway("acct", "req-1")
        }
    }

    fn app(check: AssertionCheck) -> Router {
        Router::new()
            .route(
                "/who",
                get(|caller: Verified| async move {
                    format!("{:?} {}", caller.audience(), caller.claims().sub)
                }),
            )
            .layer(check)
    }

    async fn call(app: Router, assertion: Option<&str>) -> (StatusCode, String, Option<String>) {
        let mut request = Request::get("/who");
        if let Some(assertion) = assertion {
            request = request.header(IDENTITY_HEADER, assertion);
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            String::from_utf8(bytes.to_vec()).unwrap(),
            content_type,
        )
    }

    fn refusal(body: &str) -> ErrorBody {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn a_valid_assertion_reaches_the_handler_with_its_claims() {
        let master = MasterSecret::generate();
        let key = master.key_for(Audience::Control);
        let token = key.sign(claims()).unwrap();
        let (status, body, _) = call(app(AssertionCheck::new(key)), Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "Control 42");
    }

    #[tokio::test]
    async fn missing_and_invalid_assertions_get_401_json() {
        let master = MasterSecret::generate();
        let check = AssertionCheck::new(master.key_for(Audience::Control));
        let other = MasterSecret::generate().key_for(Audience::Control);
        let wrong_audience = master.key_for(Audience::Runtime);
        let forged = [
            other.sign(claims()).unwrap(),
            wrong_audience.sign(claims()).unwrap(),
            "not-a-jwt".to_owned(),
        ];
        let (status, body, content_type) = call(app(check.clone()), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let body = refusal(&body);
        assert_eq!(body.error_code, "UNAUTHENTICATED");
        assert_eq!(body.message, "identity assertion missing");
        for token in &forged {
            let (status, body, content_type) = call(app(check.clone()), Some(token)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}");
            assert_eq!(content_type.as_deref(), Some("application/json"));
            let body = refusal(&body);
            assert_eq!(body.error_code, "UNAUTHENTICATED");
            assert!(body.message.starts_with("identity assertion invalid"));
            assert!(
                !body.message.contains(token.as_str()),
                "the assertion is not echoed"
            );
        }
    }

    #[test]
    fn a_header_that_is_not_text_is_invalid() {
        let check = AssertionCheck::new(MasterSecret::generate().key_for(Audience::Control));
        let mut headers = HeaderMap::new();
        headers.insert(
            IDENTITY_HEADER,
            http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        let err = check.verify(&headers).unwrap_err();
        assert_eq!(err.to_string(), "identity assertion invalid");
    }

    #[tokio::test]
    async fn further_keys_are_tried_in_order_and_named() {
        let master = MasterSecret::generate();
        let check = AssertionCheck::new(master.key_for(Audience::Control))
            .or_key(master.key_for(Audience::DataPlane));
        let runtime = IdentityClaims::runtime("acct", "req-2");
        let token = master.key_for(Audience::DataPlane).sign(runtime).unwrap();
        let (status, body, _) = call(app(check.clone()), Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "DataPlane runtime");
        // Refused by both: the first key's reason.
        let mut stale = claims();
        stale.exp = 1;
        let other = MasterSecret::generate().key_for(Audience::Control);
        let err = check
            .verify(&header_map(&other.sign(stale).unwrap()))
            .unwrap_err();
        assert_eq!(err.to_string(), "identity assertion invalid: bad signature");
    }

    #[tokio::test]
    async fn the_extractor_refuses_where_no_check_ran() {
        let app = Router::new().route("/who", get(|_: Verified| async { "in" }));
        let (status, body, _) = call(app, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(refusal(&body).error_code, "UNAUTHENTICATED");
    }

    fn header_map(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IDENTITY_HEADER, token.parse().unwrap());
        headers
    }
}
