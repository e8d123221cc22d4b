//! The request pipeline: one stage after another, in a fixed order that no route can change,
//! inside the outermost tower layer. Each stage is a [`Stage`]: it reads and fills the request
//! context and either lets the request go on or fails it with its own typed error. Failures
//! travel back up, with the context, to the outermost layer ([`crate::observe`]), the one place
//! that turns them into responses and writes audit records and metrics.
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
use tower::{Service, ServiceBuilder};

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
    /// Boxed: the context is most of an exchange's size, and exchanges and outcomes move from
    /// future to future on their way down and up.
    pub ctx: Box<RequestCtx>,
    pub parts: http::request::Parts,
    pub body: RequestBody,
}

/// What comes back up: the context (for audit and metrics) and the response or the error.
pub(crate) struct Outcome {
    pub ctx: Box<RequestCtx>,
    pub result: Result<Response<ProxyBody>, StageError>,
}

/// One pipeline stage.
pub(crate) trait Stage: Clone + Send + Sync + 'static {
    /// Checks and enriches the exchange; an error ends the request here.
    fn run(&self, ex: &mut Exchange) -> impl Future<Output = Result<(), StageError>> + Send;
}

/// The stages in their fixed order, run one after another inside one future. Not a tower
/// layer per stage: each layer boxed its own future, cloned the rest of the stack and moved
/// the whole exchange again, which profiled at several microseconds per request.
#[derive(Clone)]
pub(crate) struct Pipeline(Arc<Stages>);

struct Stages {
    admission: crate::admission::Admission,
    client_addr: crate::client_addr::ClientAddr,
    workspace: crate::workspace::WorkspaceStage,
    ip_acl: crate::ip_acl::IpAcl,
    authn: crate::authn::Authn,
    authz: crate::authz::Authz,
    forward: crate::forward::Forward,
}

impl Stages {
    /// Runs every check stage, in order; the first error ends the request. The order is the
    /// security argument; each line says why its stage sits where it does.
    async fn check(&self, ex: &mut Exchange) -> Result<(), StageError> {
        // First: cheap, stateless limits and framing checks, and the bounded body read,
        // before anything spends work (or a control-plane call) on the request.
        self.admission.run(ex).await?;
        // The client address is needed by the IP access lists and by every record after it.
        self.client_addr.run(ex).await?;
        // Which workspace (or the account) is addressed decides which IP lists, which token
        // rules and which Cedar resource apply, so it comes before all of them.
        self.workspace.run(ex).await?;
        // IP lists before authentication: a blocked address must not learn whether a token is
        // valid, nor make the gateway call the control plane.
        self.ip_acl.run(ex).await?;
        // Authentication before authorization: Cedar needs the principal.
        self.authn.run(ex).await?;
        // Authorization last before forwarding: unknown routes (404) and denials (403) are
        // decided with everything above known, and nothing is forwarded without a decision.
        self.authz.run(ex).await
    }
}

impl Service<Exchange> for Pipeline {
    type Response = Outcome;
    type Error = Infallible;
    type Future = BoxFuture<Result<Outcome, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // No stage holds capacity: limits are enforced per connection and per request.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut ex: Exchange) -> Self::Future {
        let stages = self.0.clone();
        Box::pin(async move {
            if let Err(err) = stages.check(&mut ex).await {
                return Ok(Outcome {
                    ctx: ex.ctx,
                    result: Err(err),
                });
            }
            // Last: strips client-controlled identity and hop-by-hop headers, adds the signed
            // assertion, forwards, and refreshes caches on a newer control-plane state.
            Ok(stages.forward.call(ex).await)
        })
    }
}

/// Builds the whole stack: the outcome layer around the stages.
pub(crate) fn build(
    shared: &Arc<Shared>,
) -> impl Service<Exchange, Response = Response<ProxyBody>, Error = Infallible, Future: Send + 'static>
       + Clone
       + Send
       + Sync
       + 'static {
    use crate::{admission, authn, authz, client_addr, forward, ip_acl, observe, workspace};
    let stages = Stages {
        admission: admission::Admission::new(shared.clone()),
        client_addr: client_addr::ClientAddr::new(shared.clone()),
        workspace: workspace::WorkspaceStage::new(shared.clone()),
        ip_acl: ip_acl::IpAcl,
        authn: authn::Authn::new(shared.clone()),
        authz: authz::Authz::new(shared.clone()),
        forward: forward::Forward::new(shared.clone()),
    };
    ServiceBuilder::new()
        // Outermost: every outcome below, refused or forwarded, passes here exactly once, so
        // this is where errors become Databricks JSON, and where audit and metrics are written.
        .layer(observe::ObserveLayer::new(shared.clone()))
        .service(Pipeline(Arc::new(stages)))
}
