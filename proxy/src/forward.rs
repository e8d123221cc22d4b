//! Stage 7, forwarding: the innermost service. It answers local routes itself and sends the
//! rest to their upstream with a clean set of headers: hop-by-hop headers (and every header
//! the `Connection` header names), the caller's `Authorization`, anything in the
//! `x-lakeward-` namespace the upstreams trust, and the client's proxy, client-address and
//! method-override headers ([`crate::untrusted_headers`]) are removed; the gateway's own
//! `X-Forwarded-For` and `X-Forwarded-Proto` and a signed identity assertion for that
//! upstream's audience are added. Responses stream back; control-plane responses that
//! announce a newer state refresh the gateway's caches before they are passed on.

use crate::ctx::RequestCtx;
use crate::exchange::{Exchange, Outcome, ProxyBody, RequestBody};
use crate::route::Upstream;
use crate::shared::Shared;
use crate::untrusted_headers;
use crate::upstream::{self, UpstreamError};
use crate::well_known;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body_util::{BodyExt, Full};
use lakeward_common::assertion::{IdentityClaims, IDENTITY_HEADER};
use lakeward_common::data::TOUCHED_HEADER;
use lakeward_common::internal::STATE_VERSION_HEADER;
use prometheus::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The namespace of headers the upstreams trust; never accepted from a client, never shown
/// to one.
const TRUSTED_PREFIX: &str = "x-lakeward-";

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy ones still seen in the wild).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("internal: {0}")]
    Internal(String),
}

/// The forwarding service.
pub(crate) struct Forward {
    shared: Arc<Shared>,
    /// `gateway_upstream_latency_seconds` of each upstream, looked up once rather than by
    /// label per request.
    control_seconds: Histogram,
    runtime_seconds: Histogram,
}

impl Forward {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let seconds = |upstream: Upstream| {
            shared
                .metrics
                .upstream_seconds
                .with_label_values(&[upstream.label()])
        };
        Forward {
            control_seconds: seconds(Upstream::Control),
            runtime_seconds: seconds(Upstream::Runtime),
            shared,
        }
    }
}

impl Forward {
    /// Forwards a request that passed every check (or answers a local route).
    pub(crate) async fn call(&self, ex: Exchange) -> Outcome<ForwardError> {
        let Exchange {
            mut ctx,
            parts,
            body,
        } = ex;
        let result = forward(self, &mut ctx, parts, body).await;
        Outcome { ctx, result }
    }
}

async fn forward(
    stage: &Forward,
    ctx: &mut RequestCtx,
    parts: http::request::Parts,
    body: RequestBody,
) -> Result<Response<ProxyBody>, ForwardError> {
    let route = ctx
        .route
        .ok_or_else(|| ForwardError::Internal("no route".into()))?;
    let shared = &*stage.shared;
    let (base, key, seconds) = match route.upstream {
        Upstream::Local => return well_known::respond(ctx).map_err(ForwardError::Internal),
        Upstream::Control => (
            &shared.control_base,
            &shared.control_key,
            &stage.control_seconds,
        ),
        Upstream::Runtime => (
            &shared.runtime_base,
            &shared.runtime_key,
            &stage.runtime_seconds,
        ),
    };
    let RequestBody::Buffered(body) = body else {
        return Err(ForwardError::Internal(
            "request body was not buffered".into(),
        ));
    };
    let path = ctx.path.as_deref().unwrap_or("/");
    let target = match &ctx.query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let uri = base
        .uri(&target)
        .map_err(|e| ForwardError::Internal(format!("upstream uri: {e}")))?;
    let assertion = key
        .sign(claims(ctx)?)
        .map_err(|e| ForwardError::Internal(e.to_string()))?;

    let mut headers = parts.headers;
    sanitize(&mut headers);
    untrusted_headers::replace_forwarding_headers(&mut headers, ctx.client_ip);
    // Hyper sets these from the URI and the body; the client's copies must not leak through.
    for name in [header::HOST, header::CONTENT_LENGTH, header::EXPECT] {
        headers.remove(name);
    }
    headers.insert(
        HeaderName::from_static(IDENTITY_HEADER),
        header_value(&assertion)?,
    );
    headers.insert(
        HeaderName::from_static("x-request-id"),
        header_value(&ctx.request_id)?,
    );
    let mut request = Request::builder()
        .method(parts.method)
        .uri(uri)
        .version(Version::HTTP_11)
        .body(Full::new(body))
        .map_err(|e| ForwardError::Internal(e.to_string()))?;
    *request.headers_mut() = headers;

    let timeout = Duration::from_secs(shared.config.upstream_timeout_secs);
    let started = Instant::now();
    let result = upstream::send(&shared.client, request, timeout).await;
    let elapsed = started.elapsed();
    ctx.upstream_elapsed = Some(elapsed);
    seconds.observe(elapsed.as_secs_f64());
    let response = result?;

    if route.upstream == Upstream::Control {
        if let Some(version) = state_version(response.headers()) {
            // Before the response goes on: the caller's next request must see its change.
            if let Err(e) = shared.state.observe_version(version).await {
                tracing::warn!(
                    request_id = %ctx.request_id,
                    error = %e,
                    "refresh after a state change failed; requests wait for the control plane"
                );
            }
        }
    }
    let (mut head, body) = response.into_parts();
    if route.upstream == Upstream::Runtime {
        // Read before `sanitize` drops the trusted namespace: the client never sees it.
        ctx.touched = head
            .headers
            .get(TOUCHED_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    sanitize(&mut head.headers);
    Ok(Response::from_parts(head, body.boxed()))
}

/// The assertion's claims; `iss`, `aud`, `iat` and `exp` are set when signing.
fn claims(ctx: &RequestCtx) -> Result<IdentityClaims, ForwardError> {
    let principal = ctx
        .principal
        .as_ref()
        .ok_or_else(|| ForwardError::Internal("no principal".into()))?;
    let snapshot = ctx
        .snapshot
        .as_ref()
        .ok_or_else(|| ForwardError::Internal("no snapshot".into()))?;
    let workspace_id = ctx.workspace().map(|w| w.id);
    Ok(IdentityClaims {
        iss: String::new(),
        aud: String::new(),
        iat: 0,
        exp: 0,
        sub: principal.record.id.clone(),
        kind: principal.record.kind,
        user_name: principal.record.user_name.clone(),
        groups: principal
            .groups_in(workspace_id)
            .map(|g| g.id.clone())
            .collect(),
        workspace_id,
        account_id: snapshot.account_id.clone(),
        token_id: principal.token_id.clone(),
        auth_method: principal.auth_method.as_str().to_owned(),
        request_id: ctx.request_id.clone(),
        client_ip: ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
    })
}

fn header_value(text: &str) -> Result<HeaderValue, ForwardError> {
    HeaderValue::from_str(text).map_err(|e| ForwardError::Internal(e.to_string()))
}

fn state_version(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(STATE_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Removes hop-by-hop headers, the headers `Connection` names, `Authorization`, and the
/// trusted `x-lakeward-` namespace. Used on requests and on responses alike.
pub(crate) fn sanitize(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
    headers.remove(header::AUTHORIZATION);
    // Header names are stored lowercased, so this catches every spelling.
    let trusted: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(TRUSTED_PREFIX))
        .cloned()
        .collect();
    for name in trusted {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_identity_hop_by_hop_and_named_headers() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("X-Lakeward-Identity", "forged"),
            ("x-LAKEWARD-identity", "forged"),
            ("x-lakeward-state-version", "9"),
            ("authorization", "Bearer dapi00"),
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("content-type", "application/json"),
            ("x-databricks-workspace-id", "1"),
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        sanitize(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-databricks-workspace-id"]);
    }
}
