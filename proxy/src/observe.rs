//! The outermost layer: every request passes here exactly once, on its way back. It applies
//! the rescue (stage errors → Databricks JSON), adds `X-Request-Id`, records metrics
//! (stage 9) and writes the audit record (stage 8), waiting for durability on mutating calls
//! before the response leaves.

use crate::audit::{self, Ending};
use crate::error::{error_response, StageError};
use crate::exchange::{Exchange, Outcome, ProxyBody};
use crate::route::is_mutating;
use crate::shared::Shared;
use http::{header, HeaderValue, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct ObserveLayer {
    shared: Arc<Shared>,
}

impl ObserveLayer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        ObserveLayer { shared }
    }
}

impl<I> Layer<I> for ObserveLayer {
    type Service = ObserveService<I>;

    fn layer(&self, inner: I) -> Self::Service {
        ObserveService {
            shared: self.shared.clone(),
            inner,
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct ObserveService<I> {
    shared: Arc<Shared>,
    inner: I,
}

impl<I> Service<Exchange> for ObserveService<I>
where
    I: Service<Exchange, Response = Outcome<StageError>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    I::Future: Send,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, ex: Exchange) -> Self::Future {
        let shared = self.shared.clone();
        let inner = self.inner.clone();
        let span = tracing::info_span!(
            "request",
            request_id = %ex.ctx.request_id,
            method = %ex.ctx.method,
            action = tracing::field::Empty,
            principal = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        Box::pin(
            async move {
                let Ok(outcome) = inner.oneshot(ex).await;
                Ok(finish(&shared, outcome).await)
            }
            .instrument(span),
        )
    }
}

/// Turns an outcome into the response, with metrics and audit.
async fn finish(shared: &Shared, outcome: Outcome<StageError>) -> Response<ProxyBody> {
    let Outcome { ctx, result } = outcome;
    let (mut response, error) = match result {
        Ok(response) => (response, None),
        Err(err) => {
            let api = err.to_api_error();
            log_refusal(&err, api.status().as_u16());
            let mut response = error_response(&api);
            if let Some(secs) = err.retry_after_secs() {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            (response, Some((err, api)))
        }
    };
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert(header::HeaderName::from_static("x-request-id"), id);
    }
    if ctx.close_connection && !ctx.conn.h2 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }

    let status = response.status().as_u16();
    // Allowed: Cedar said yes (a failure after that, e.g. a 502, is still an allowed call).
    let allowed = ctx.decision.as_ref().is_some_and(|d| d.allowed)
        && error.as_ref().is_none_or(|(e, _)| e.after_allow());
    let action = ctx.route.map_or("unknown", |r| r.action);
    let span = tracing::Span::current();
    span.record("action", action);
    span.record("status", status);
    if let Some(p) = &ctx.principal {
        span.record("principal", p.record.id.as_str());
    }

    let m = &shared.metrics;
    let decision = if allowed { "allow" } else { "deny" };
    // `as_str` is the code's static text: no allocation per request for the label.
    m.requests
        .with_label_values(&[action, decision, response.status().as_str()])
        .inc();
    let authn_failure = error.as_ref().and_then(|(e, _)| e.authn_failure());
    if let Some(reason) = authn_failure {
        m.authn_failures.with_label_values(&[reason.as_str()]).inc();
    }
    let own = ctx
        .started
        .elapsed()
        .saturating_sub(ctx.upstream_elapsed.unwrap_or_default());
    m.added_latency.observe(own.as_secs_f64());

    // The account of the current snapshot, for requests refused before they had one.
    let fallback = ctx
        .snapshot
        .is_none()
        .then(|| shared.state.current())
        .flatten();
    let fallback_account = fallback.as_ref().map_or("", |s| s.account_id.as_str());
    let ending = Ending {
        status,
        error_message: error.as_ref().map(|(_, api)| api.message.as_str()),
        ip_blocked: error.as_ref().is_some_and(|(e, _)| e.ip_blocked()),
        allowed,
        authn_failure_reason: authn_failure.map(|r| r.as_str()),
    };
    let record = audit::build(&ctx, ending, fallback_account);
    // Mutating calls: the record is on disk before the caller hears back.
    shared.audit.write(&record, is_mutating(&ctx.method)).await;
    tracing::debug!(status, decision, "request done");
    response
}

fn log_refusal(err: &StageError, status: u16) {
    if err.shed() {
        tracing::debug!(error = %err, status, "request shed");
    } else if status >= 500 {
        tracing::warn!(error = %err, status, "request failed");
    } else {
        tracing::info!(error = %err, status, "request refused");
    }
}
