//! The request pipeline: one stage after another, in a fixed order that no route can change.
//! Each stage is a [`Stage`]: it reads and fills the request context and either lets the
//! request go on or fails it with its own typed error, which becomes a [`StageError`] here.
//! Failures travel back up, with the context, to the outermost layer (`observe`, put around
//! the pipeline by the gateway), the one place that turns them into responses and writes
//! audit records and metrics.
//!
//! ```text
//! client ─► observe ─► admission ─► client_addr ─► workspace ─► ip_acl ─► authn ─► authz ─► forward ─► upstream
//!             ▲  (rescue, audit, metrics)                                                        │
//!             └──────────────────── Outcome { ctx, Ok(response) | Err(StageError) } ◄────────────┘
//! ```

use crate::admission::Admission;
use crate::authn::{Authn, OidcVerifier};
use crate::authz::Authz;
use crate::client_addr::ClientAddr;
use crate::error::StageError;
use crate::exchange::{Exchange, Outcome, Stage};
use crate::forward::Forward;
use crate::ip_acl::IpAcl;
use crate::shared::Shared;
use crate::workspace::WorkspaceStage;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The stages in their fixed order, run one after another inside one future. Not a tower
/// layer per stage: each layer boxed its own future, cloned the rest of the stack and moved
/// the whole exchange again, which profiled at several microseconds per request.
#[derive(Clone)]
pub(crate) struct Pipeline(Arc<Stages>);

struct Stages {
    admission: Admission,
    client_addr: ClientAddr,
    workspace: WorkspaceStage,
    ip_acl: IpAcl,
    authn: Authn,
    authz: Authz,
    forward: Forward,
}

impl Pipeline {
    /// Every stage, built once and shared by all connections.
    pub(crate) fn new(shared: &Arc<Shared>, oidc: OidcVerifier) -> Self {
        Pipeline(Arc::new(Stages {
            admission: Admission::new(shared.clone()),
            client_addr: ClientAddr::new(shared.clone()),
            workspace: WorkspaceStage::new(shared.clone()),
            ip_acl: IpAcl,
            authn: Authn::new(shared.clone(), oidc),
            authz: Authz::new(shared.clone()),
            forward: Forward::new(shared.clone()),
        }))
    }
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
        self.authz.run(ex).await?;
        Ok(())
    }
}

impl Service<Exchange> for Pipeline {
    type Response = Outcome<StageError>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Outcome<StageError>, Infallible>>;

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
            let Outcome { ctx, result } = stages.forward.call(ex).await;
            Ok(Outcome {
                ctx,
                result: result.map_err(StageError::from),
            })
        })
    }
}
