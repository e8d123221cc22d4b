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
//!
//! Around them: load shedding (`shedding`) before admission, the failed-authentication
//! throttle just before authn, and the request limits just after it (`ratelimit`).

use crate::admission::Admission;
use crate::authn::{Authn, OidcVerifier};
use crate::authz::Authz;
use crate::client_addr::ClientAddr;
use crate::error::StageError;
use crate::exchange::{Exchange, Outcome, Stage};
use crate::forward::Forward;
use crate::ip_acl::IpAcl;
use crate::limits::Limiter;
use crate::ratelimit::{FailedAuthThrottle, RequestLimits};
use crate::shared::Shared;
use crate::shedding::Shedding;
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
    shedding: Shedding,
    failed_auth: FailedAuthThrottle,
    request_limits: RequestLimits,
}

impl Pipeline {
    /// Every stage, built once and shared by all connections.
    pub(crate) fn new(shared: &Arc<Shared>, oidc: OidcVerifier, limiter: Arc<Limiter>) -> Self {
        Pipeline(Arc::new(Stages {
            admission: Admission::new(shared.clone()),
            client_addr: ClientAddr::new(shared.clone()),
            workspace: WorkspaceStage::new(shared.clone()),
            ip_acl: IpAcl,
            authn: Authn::new(shared.clone(), oidc),
            authz: Authz::new(shared.clone()),
            forward: Forward::new(shared.clone()),
            shedding: Shedding::new(
                shared.config.overload.max_in_flight_requests,
                shared.metrics.load_shed.with_label_values(&["in_flight"]),
            ),
            failed_auth: FailedAuthThrottle::new(limiter.clone()),
            request_limits: RequestLimits::new(limiter),
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
        // An address out of failed authentications is refused before its credential is
        // looked at: past the limit, bad tokens cost the control plane nothing.
        self.failed_auth.run(ex).await?;
        // Authentication before authorization: Cedar needs the principal.
        if let Err(e) = self.authn.run(ex).await {
            self.failed_auth
                .count_failure(ex.ctx.client_ip, e.reason())
                .await;
            return Err(e.into());
        }
        // Request limits once the caller is known (they are kept per principal and token),
        // and before authorization: a caller over its rate costs no Cedar decision.
        self.request_limits.run(ex).await?;
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
        // Never waits for capacity: past the in-flight bound a request is shed, not queued.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut ex: Exchange) -> Self::Future {
        let stages = self.0.clone();
        Box::pin(async move {
            // Before anything else, even admission's body read: past the bound a request
            // costs no work beyond its 503. Held until the response head is ready.
            let _in_flight = match stages.shedding.admit() {
                Ok(permit) => permit,
                Err(err) => {
                    return Ok(Outcome {
                        ctx: ex.ctx,
                        result: Err(err.into()),
                    })
                }
            };
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
