//! The union of the stages' errors, and the rescue: the one place they become what a client
//! sees, `{"error_code": "...", "message": "..."}` with the status the Databricks SDK expects.
//! Each stage owns its typed error; this module sits above the stages and imports them all,
//! so no stage imports it. Messages are written for the caller and never carry internal
//! details; the typed error (with the details) goes to the log.

use crate::admission::AdmissionError;
use crate::authn::AuthnError;
use crate::authz::AuthzError;
use crate::client_addr::ClientAddrError;
use crate::exchange::{full_response, ProxyBody};
use crate::forward::ForwardError;
use crate::ip_acl::{AclScope, IpAclError};
use crate::metrics::AuthnFailureReason;
use crate::ratelimit::RateLimitError;
use crate::shedding::ShedError;
use crate::upstream::UpstreamError;
use crate::workspace::WorkspaceError;
use http::{header, HeaderValue, Response};
use lakeward_common::error::{ApiError, ErrorCode};

/// An error from any stage.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StageError {
    #[error("admission: {0}")]
    Admission(#[from] AdmissionError),
    #[error("client address: {0}")]
    ClientAddr(#[from] ClientAddrError),
    #[error("workspace: {0}")]
    Workspace(#[from] WorkspaceError),
    #[error("ip access list: {0}")]
    IpAcl(#[from] IpAclError),
    #[error("authentication: {0}")]
    Authn(#[from] AuthnError),
    #[error("authorization: {0}")]
    Authz(#[from] AuthzError),
    #[error("forwarding: {0}")]
    Forward(#[from] ForwardError),
    #[error("rate limit: {0}")]
    RateLimit(#[from] RateLimitError),
    #[error("load shed: {0}")]
    Shed(#[from] ShedError),
}

/// What every failed authentication is told, whatever the reason: telling an expired token
/// from a revoked or never-issued one, or a JWT's bad claim from its bad signature, would
/// make the gateway an oracle for token guessers. Databricks' own wording.
pub(crate) const INVALID_TOKEN_MESSAGE: &str = "Invalid access token.";
/// What a request without credentials is told (Databricks' wording). It reveals nothing the
/// caller does not know: whether it sent an `Authorization` header.
pub(crate) const NO_CREDENTIALS_MESSAGE: &str =
    "Credential was not sent or was of an unsupported type for this API.";

/// A gateway-side 503.
fn unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::TemporarilyUnavailable,
        "The service is temporarily unavailable; retry later",
    )
}

impl StageError {
    /// The rescue: what the client is told.
    pub(crate) fn to_api_error(&self) -> ApiError {
        use ErrorCode as C;
        match self {
            StageError::Admission(e) => match e {
                AdmissionError::TooManyHeaders { .. } | AdmissionError::HeadersTooLarge { .. } => {
                    ApiError::new(C::HeadersTooLarge, "Request header fields too large")
                }
                AdmissionError::UriTooLong { .. } => {
                    ApiError::new(C::UriTooLong, "Request URI too long")
                }
                AdmissionError::AmbiguousFraming(_) => {
                    ApiError::new(C::BadRequest, "Ambiguous request framing")
                }
                AdmissionError::ChunkExtensionsTooLong { limit } => ApiError::new(
                    C::BadRequest,
                    format!("Chunk extensions longer than {limit} bytes"),
                ),
                AdmissionError::UnparseableFraming => {
                    ApiError::new(C::BadRequest, "Invalid request framing")
                }
                AdmissionError::BadAuthority(_) => {
                    ApiError::new(C::BadRequest, "Invalid Host header or request authority")
                }
                AdmissionError::BadPath(_) => ApiError::new(C::BadRequest, "Invalid request path"),
                AdmissionError::UnderscoreInHeaderName(_) => ApiError::new(
                    C::BadRequest,
                    "Header names with underscores are not accepted",
                ),
                AdmissionError::BodyTooLarge { limit } => ApiError::new(
                    C::PayloadTooLarge,
                    format!("Request body larger than {limit} bytes"),
                ),
                AdmissionError::BodyTimeout(_) => {
                    ApiError::new(C::RequestTimeout, "Request body not received in time")
                }
                AdmissionError::BodyRead(_) => {
                    ApiError::new(C::BadRequest, "Request body could not be read")
                }
            },
            StageError::ClientAddr(ClientAddrError::MalformedForwardedFor) => {
                ApiError::new(C::BadRequest, "Malformed X-Forwarded-For header")
            }
            StageError::Workspace(e) => match e {
                WorkspaceError::MissingHost => ApiError::new(C::BadRequest, "Missing Host header"),
                WorkspaceError::SniMismatch { .. } => ApiError::new(
                    C::BadRequest,
                    "The Host header does not match the TLS server name",
                ),
                WorkspaceError::UnknownWorkspace(_) => {
                    ApiError::not_found("The workspace addressed does not exist")
                }
                WorkspaceError::UnknownAccount(_) => {
                    ApiError::not_found("The account addressed does not exist")
                }
                WorkspaceError::PrefixMismatch { .. } => ApiError::invalid_parameter(
                    "The path prefix and the host name different workspaces",
                ),
                WorkspaceError::HeaderMismatch { addressed, .. } => ApiError::invalid_parameter(
                    format!("X-Databricks-Workspace-Id does not match workspace {addressed}"),
                ),
                WorkspaceError::Unavailable(_) => unavailable(),
            },
            StageError::IpAcl(e) => match e {
                IpAclError::Blocked { ip, scope } => ApiError::permission_denied(match scope {
                    AclScope::Workspace(id) => format!(
                        "Source IP address: {ip} is blocked by Databricks IP ACL for workspace: {id}"
                    ),
                    AclScope::Account(id) => format!(
                        "Source IP address: {ip} is blocked by Databricks IP ACL for account: {id}"
                    ),
                }),
                IpAclError::Invalid { .. } | IpAclError::Incomplete => unavailable(),
            },
            StageError::Authn(e) => match e {
                AuthnError::Unavailable(_) | AuthnError::JwksUnavailable(_) => unavailable(),
                AuthnError::Missing => ApiError::unauthenticated(NO_CREDENTIALS_MESSAGE),
                // Every other reason, present or future, reads the same; the reason itself
                // goes to the audit record and the metric only.
                _ => ApiError::unauthenticated(INVALID_TOKEN_MESSAGE),
            },
            StageError::Authz(e) => match e {
                AuthzError::NoRoute { method, path } => ApiError::new(
                    C::EndpointNotFound,
                    format!("No API found for '{method} {path}'"),
                ),
                AuthzError::Denied {
                    who,
                    action,
                    resource,
                } => ApiError::permission_denied(format!(
                    "{who} does not have permission to {action} on {resource}"
                )),
                AuthzError::Incomplete => ApiError::internal(),
            },
            StageError::Forward(e) => match e {
                ForwardError::Upstream(UpstreamError::Timeout(_)) => ApiError::new(
                    C::DeadlineExceeded,
                    "The upstream service did not answer in time",
                ),
                ForwardError::Upstream(UpstreamError::UnrequestedUpgrade) => ApiError::new(
                    C::BadGateway,
                    "The upstream service sent an invalid response",
                ),
                ForwardError::Upstream(_) => {
                    ApiError::new(C::BadGateway, "The upstream service is unavailable")
                }
                ForwardError::Internal(_) => ApiError::internal(),
            },
            StageError::RateLimit(e) => match e {
                RateLimitError::FailedAuthentications { .. } => ApiError::new(
                    C::RequestLimitExceeded,
                    "Too many failed authentication attempts from this address; retry later",
                ),
                RateLimitError::Exceeded { .. } => ApiError::new(
                    C::RequestLimitExceeded,
                    "Request rate limit exceeded; retry later",
                ),
                RateLimitError::Undecided => unavailable(),
            },
            StageError::Shed(_) => unavailable(),
        }
    }

    /// `Retry-After` seconds when they are not the 503's usual 1.
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        match self {
            StageError::RateLimit(e) => Some(e.retry_after_secs()),
            _ => None,
        }
    }

    /// Whether the request was shed for load (logged quietly: a flood would flood the log).
    pub(crate) fn shed(&self) -> bool {
        matches!(
            self,
            StageError::Shed(_)
                | StageError::Authn(AuthnError::Unavailable(
                    crate::control::ControlError::Overloaded
                ))
        )
    }

    /// Whether the request was refused by a policy-like check (for the `decision` label and
    /// field), as opposed to failing after it was allowed.
    pub(crate) fn after_allow(&self) -> bool {
        matches!(self, StageError::Forward(_))
    }

    /// Whether the IP access lists refused the request.
    pub(crate) fn ip_blocked(&self) -> bool {
        matches!(self, StageError::IpAcl(IpAclError::Blocked { .. }))
    }

    /// Why authentication failed, if it did: the metric label.
    pub(crate) fn authn_failure(&self) -> Option<AuthnFailureReason> {
        match self {
            StageError::Authn(e) => Some(e.reason()),
            _ => None,
        }
    }
}

/// The JSON error response for `err`.
pub(crate) fn error_response(err: &ApiError) -> Response<ProxyBody> {
    let mut response = full_response(err.status(), "application/json", err.body());
    if err.code == ErrorCode::TemporarilyUnavailable {
        // The SDK retries 503 after `Retry-After` seconds (an integer).
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if err.code == ErrorCode::Unauthenticated {
        // A 401 names its scheme (RFC 9110 section 15.5.2). The same value for every reason
        // (no RFC 6750 `error` attribute), so the headers tell no more than the body.
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages() {
        let blocked = StageError::IpAcl(IpAclError::Blocked {
            ip: "127.0.0.3".parse().unwrap(),
            scope: AclScope::Workspace(42),
        });
        let api = blocked.to_api_error();
        assert_eq!(api.status(), 403);
        assert_eq!(
            api.message,
            "Source IP address: 127.0.0.3 is blocked by Databricks IP ACL for workspace: 42"
        );
        let expired = StageError::Authn(AuthnError::Expired).to_api_error();
        assert_eq!(
            (expired.status().as_u16(), expired.code.as_str()),
            (401, "UNAUTHENTICATED")
        );
        // One body and one set of headers for every reason a credential was refused.
        let refusals = [
            AuthnError::Expired,
            AuthnError::UnknownToken,
            AuthnError::Malformed,
            AuthnError::WrongWorkspace,
            AuthnError::TokensDisabled,
            AuthnError::UnknownIssuer,
            AuthnError::Algorithm("HS256".into()),
            AuthnError::UnknownKey,
            AuthnError::BadSignature,
            AuthnError::Claims("wrong audience".into()),
            AuthnError::TokenType,
            AuthnError::CriticalHeader,
            AuthnError::Lifetime("issued in the future"),
            AuthnError::AuthorizedParty("no `azp`"),
            AuthnError::UnknownPrincipal("mallory".into()),
        ];
        for reason in refusals {
            let why = reason.to_string();
            let api = StageError::Authn(reason).to_api_error();
            assert_eq!(
                (api.code, api.message.as_str()),
                (ErrorCode::Unauthenticated, INVALID_TOKEN_MESSAGE),
                "{why}"
            );
            let response = error_response(&api);
            assert_eq!(response.status(), 401, "{why}");
            assert_eq!(response.headers().len(), 2, "{why}");
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        }
        let missing = StageError::Authn(AuthnError::Missing).to_api_error();
        assert_eq!(missing.status(), 401);
        assert_eq!(missing.message, NO_CREDENTIALS_MESSAGE);
        let secret = StageError::Forward(ForwardError::Internal("/etc/secret path".into()));
        assert!(!secret.to_api_error().message.contains("secret"));
        let response = error_response(
            &StageError::Authn(AuthnError::Unavailable(crate::control::ControlError::Stale))
                .to_api_error(),
        );
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
