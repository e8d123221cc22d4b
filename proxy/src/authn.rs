//! Stage 5, authentication: who the caller is. A bearer value shaped like a personal access
//! token is resolved through the control plane ([`pat`]); anything else shaped like a JWT is
//! verified against its issuer's JWKS ([`oidc`]). Public routes (the host metadata) need no
//! credentials and get the anonymous principal, whatever the request carries.
//!
//! Every failure is a 401 with one body and one set of headers, whatever went wrong, so a
//! caller learns nothing about a token it holds (expired, revoked, never issued, for another
//! workspace, a JWT from an unknown issuer or with a bad claim): only a request with no
//! credentials at all is told so, as Databricks does. The precise reason goes to the log, the
//! audit record (`authnFailureReason`) and the `gateway_authn_failures_total{reason}` metric.
//! Failing to reach the control plane (or an issuer's JWKS) is a 503: never a reason to let a
//! request in.

mod oidc;
mod pat;

pub(crate) use oidc::OidcVerifier;

use crate::control::ControlError;
use crate::ctx::Principal;
use crate::exchange::{Exchange, Stage};
use crate::metrics::AuthnFailureReason;
use crate::shared::Shared;
use http::header::AUTHORIZATION;
use http::HeaderMap;
use lakeward_common::token::looks_like_pat;
use std::sync::Arc;

/// Why a caller was not authenticated.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthnError {
    #[error("no Authorization header")]
    Missing,
    #[error("Authorization header is not a single bearer token")]
    Malformed,
    #[error("unknown personal access token")]
    UnknownToken,
    #[error("token expired")]
    Expired,
    #[error("token belongs to another workspace")]
    WrongWorkspace,
    #[error("personal access tokens are disabled in this workspace")]
    TokensDisabled,
    #[error("JWT from an unconfigured issuer")]
    UnknownIssuer,
    #[error("JWT algorithm not allowed: {0}")]
    Algorithm(String),
    #[error("JWT signed with an unknown key")]
    UnknownKey,
    #[error("JWT signature invalid")]
    BadSignature,
    #[error("JWT claims invalid: {0}")]
    Claims(String),
    #[error("JWT is not typed as an access token (`typ` must be `at+jwt`)")]
    TokenType,
    #[error("JWT names critical header parameters (`crit`) the gateway does not understand")]
    CriticalHeader,
    #[error("JWT lifetime refused: {0}")]
    Lifetime(&'static str),
    #[error("JWT authorized party refused: {0}")]
    AuthorizedParty(&'static str),
    #[error("principal `{0}` unknown")]
    UnknownPrincipal(String),
    #[error("control plane unavailable: {0}")]
    Unavailable(#[from] ControlError),
    #[error("JWKS unavailable: {0}")]
    JwksUnavailable(String),
}

impl AuthnError {
    /// The metric label: a fixed set.
    pub(crate) fn reason(&self) -> AuthnFailureReason {
        use AuthnFailureReason as R;
        match self {
            AuthnError::Missing => R::Missing,
            AuthnError::Malformed => R::Malformed,
            AuthnError::UnknownToken => R::UnknownToken,
            AuthnError::Expired => R::Expired,
            AuthnError::WrongWorkspace => R::WrongWorkspace,
            AuthnError::TokensDisabled => R::TokensDisabled,
            AuthnError::UnknownIssuer => R::UnknownIssuer,
            AuthnError::Algorithm(_) => R::Algorithm,
            AuthnError::UnknownKey => R::UnknownKey,
            AuthnError::BadSignature => R::BadSignature,
            AuthnError::Claims(_) => R::Claims,
            AuthnError::TokenType => R::TokenType,
            AuthnError::CriticalHeader => R::CriticalHeader,
            AuthnError::Lifetime(_) => R::Lifetime,
            AuthnError::AuthorizedParty(_) => R::AuthorizedParty,
            AuthnError::UnknownPrincipal(_) => R::UnknownPrincipal,
            AuthnError::Unavailable(_) => R::ControlUnavailable,
            AuthnError::JwksUnavailable(_) => R::JwksUnavailable,
        }
    }
}

/// The authentication stage. It owns the OIDC verifier (the issuers' key caches): nothing
/// else needs it.
pub(crate) struct Authn {
    shared: Arc<Shared>,
    oidc: OidcVerifier,
}

impl Authn {
    pub(crate) fn new(shared: Arc<Shared>, oidc: OidcVerifier) -> Self {
        Authn { shared, oidc }
    }
}

impl Stage for Authn {
    type Error = AuthnError;

    async fn run(&self, ex: &mut Exchange) -> Result<(), AuthnError> {
        if ex.ctx.route.is_some_and(|r| r.public) {
            ex.ctx.principal = Some(Principal::anonymous());
            return Ok(());
        }
        let token = bearer(&ex.parts.headers)?;
        let principal = if looks_like_pat(token) {
            pat::authenticate(&self.shared, &ex.ctx, token).await?
        } else if token.split('.').count() == 3 {
            self.oidc.authenticate(token, &self.shared.state).await?
        } else {
            return Err(AuthnError::Malformed);
        };
        ex.ctx.principal = Some(principal);
        Ok(())
    }
}

/// The token of the request's single `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthnError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthnError::Missing)?;
    if values.next().is_some() {
        return Err(AuthnError::Malformed);
    }
    let value = value.to_str().map_err(|_| AuthnError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthnError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthnError::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert!(matches!(bearer(&h), Err(AuthnError::Missing)));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&h).unwrap(), "abc");
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer(&h).unwrap(), "abc");
        for bad in ["Basic abc", "Bearer", "Bearer a b", "Bearer "] {
            h.insert(AUTHORIZATION, HeaderValue::from_static(bad));
            assert!(matches!(bearer(&h), Err(AuthnError::Malformed)), "{bad}");
        }
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert!(matches!(bearer(&h), Err(AuthnError::Malformed)));
    }
}
