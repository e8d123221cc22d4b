//! The request pipeline: a tower stack with one layer per stage, in a fixed order that no
//! route can change. Each stage is a [`Stage`]: it reads and fills the request context and
//! either lets the request go on or fails it with its own typed error. Failures travel back
//! up, with the context, to the outermost layer ([`crate::observe`]), the one place that turns
//! them into responses and writes audit records and metrics.
//!
//! ```text
//! client ─► observe ─► admission ─► client_addr ─► workspace ─► ip_acl ─► authn ─► authz ─► forward ─► upstream
//!             ▲  (rescue, audit, metrics)                                                        │
//!             └──────────────────────── Outcome { ctx, Ok(response) | Err(StageError) } ◄────────┘
//! ```

use crate::ctx::RequestCtx;
use crate::error::StageError;
use crate::shared::Shared;
use bytes::Bytes;
use http::Response;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// The body of every response the gateway sends. Its error is hyper's (the only bodies that
/// can fail are upstream ones): a concrete type, because with a boxed `dyn Error` rustc's
/// `Send` check of the connection future fails on the trait object's lifetime.
pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A request body: streaming as received, then buffered by admission.
pub(crate) enum RequestBody {
    Streaming(UnsyncBoxBody<Bytes, hyper::Error>),
    Buffered(Bytes),
}

/// A request travelling down the stack.
pub(crate) struct Exchange {
    pub ctx: RequestCtx,
    pub parts: http::request::Parts,
    pub body: RequestBody,
}

/// What comes back up: the context (for audit and metrics) and the response or the error.
pub(crate) struct Outcome {
    pub ctx: RequestCtx,
    pub result: Result<Response<ProxyBody>, StageError>,
}

/// One pipeline stage.
pub(crate) trait Stage: Clone + Send + Sync + 'static {
    /// Checks and enriches the exchange; an error ends the request here.
    fn run(&self, ex: &mut Exchange) -> impl Future<Output = Result<(), StageError>> + Send;
}

/// Wraps a [`Stage`] as a tower layer.
#[derive(Clone)]
pub(crate) struct StageLayer<S>(pub S);

impl<S: Stage, I> Layer<I> for StageLayer<S> {
    type Service = StageService<S, I>;

    fn layer(&self, inner: I) -> Self::Service {
        StageService {
            stage: self.0.clone(),
            inner,
        }
    }
}

/// Runs its stage, then the rest of the stack.
#[derive(Clone)]
pub(crate) struct StageService<S, I> {
    stage: S,
    inner: I,
}

impl<S, I> Service<Exchange> for StageService<S, I>
where
    S: Stage,
    I: Service<Exchange, Response = Outcome, Error = Infallible> + Clone + Send + 'static,
    I::Future: Send,
{
    type Response = Outcome;
    type Error = Infallible;
    type Future = BoxFuture<Result<Outcome, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // No stage holds capacity: limits are enforced per connection and per request.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut ex: Exchange) -> Self::Future {
        let stage = self.stage.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            if let Err(err) = stage.run(&mut ex).await {
                return Ok(Outcome {
                    ctx: ex.ctx,
                    result: Err(err),
                });
            }
            inner.oneshot(ex).await
        })
    }
}

/// Builds the whole stack. The order is the security argument; each line says why its layer
/// sits where it does.
pub(crate) fn build(
    shared: &Arc<Shared>,
) -> impl Service<Exchange, Response = Response<ProxyBody>, Error = Infallible, Future: Send + 'static>
       + Clone
       + Send
       + Sync
       + 'static {
    use crate::{admission, authn, authz, client_addr, forward, ip_acl, observe, workspace};
    ServiceBuilder::new()
        // Outermost: every outcome below, refused or forwarded, passes here exactly once, so
        // this is where errors become Databricks JSON, and where audit and metrics are written.
        .layer(observe::ObserveLayer::new(shared.clone()))
        // First stage: cheap, stateless limits and framing checks, and the bounded body read,
        // before anything spends work (or a control-plane call) on the request.
        .layer(StageLayer(admission::Admission::new(shared.clone())))
        // The client address is needed by the IP access lists and by every record after it.
        .layer(StageLayer(client_addr::ClientAddr::new(shared.clone())))
        // Which workspace (or the account) is addressed decides which IP lists, which token
        // rules and which Cedar resource apply, so it comes before all of them.
        .layer(StageLayer(workspace::WorkspaceStage::new(shared.clone())))
        // IP lists before authentication: a blocked address must not learn whether a token is
        // valid, nor make the gateway call the control plane.
        .layer(StageLayer(ip_acl::IpAcl))
        // Authentication before authorization: Cedar needs the principal.
        .layer(StageLayer(authn::Authn::new(shared.clone())))
        // Authorization last before forwarding: unknown routes (404) and denials (403) are
        // decided with everything above known, and nothing is forwarded without a decision.
        .layer(StageLayer(authz::Authz::new(shared.clone())))
        // Innermost: strips client-controlled identity and hop-by-hop headers, adds the
        // signed assertion, forwards, and refreshes caches on a newer control-plane state.
        .service(forward::Forward::new(shared.clone()))
}
