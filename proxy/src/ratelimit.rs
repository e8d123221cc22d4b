//! The rate-limit stages: the failed-authentication throttle, just before authentication,
//! and the request limits, just after it. Both ask the limiter (`limits`) and answer 429
//! `REQUEST_LIMIT_EXCEEDED` with `Retry-After`, as Databricks does.
//!
//! The throttle refuses an address that has run out of failed authentications before its
//! credential is looked at, whatever the credential: a valid token from a blocked address is
//! refused too, so the 429 tells nothing about the token (every authentication failure itself
//! stays one indistinguishable 401). The pipeline charges the failures
//! ([`FailedAuthThrottle::count_failure`]) once authentication has refused one.

use crate::exchange::{Exchange, Stage};
use crate::limits::{Limited, Limiter, RequestFacts};
use crate::metrics::AuthnFailureReason;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why a rate limit refused a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RateLimitError {
    #[error("too many failed authentications from this address")]
    FailedAuthentications { retry_after: Duration },
    #[error("rate limit `{rule}` exceeded")]
    Exceeded {
        rule: Arc<str>,
        retry_after: Duration,
    },
    #[error(
        "the rate limits could not be decided (Redis unavailable; redis_unavailable = closed)"
    )]
    Undecided,
}

impl RateLimitError {
    /// Whole seconds for `Retry-After`: never 0, which would invite an immediate retry.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        match self {
            RateLimitError::FailedAuthentications { retry_after }
            | RateLimitError::Exceeded { retry_after, .. } => {
                retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
            }
            RateLimitError::Undecided => 1,
        }
        .max(1)
    }
}

/// Refuses addresses out of failed authentications (stage 5a, before authentication).
pub(crate) struct FailedAuthThrottle {
    limiter: Arc<Limiter>,
}

impl FailedAuthThrottle {
    pub(crate) fn new(limiter: Arc<Limiter>) -> Self {
        FailedAuthThrottle { limiter }
    }

    /// Charges a refused credential to the request's address (`client_ip`, the address the
    /// gateway decided with). A missing credential is not a guess, and a control plane or
    /// JWKS that could not answer is the gateway's failure, not the caller's: neither counts.
    pub(crate) async fn count_failure(
        &self,
        client_ip: Option<IpAddr>,
        reason: AuthnFailureReason,
    ) {
        use AuthnFailureReason as R;
        if matches!(
            reason,
            R::Missing | R::ControlUnavailable | R::JwksUnavailable
        ) {
            return;
        }
        if let Some(ip) = client_ip {
            self.limiter.failed_authentication(ip).await;
        }
    }
}

impl Stage for FailedAuthThrottle {
    type Error = RateLimitError;

    async fn run(&self, ex: &mut Exchange) -> Result<(), RateLimitError> {
        // Public routes take no credential, so they risk none.
        if ex.ctx.route.is_some_and(|r| r.public) {
            return Ok(());
        }
        match ex
            .ctx
            .client_ip
            .and_then(|ip| self.limiter.address_blocked(ip))
        {
            Some(retry_after) => Err(RateLimitError::FailedAuthentications { retry_after }),
            None => Ok(()),
        }
    }
}

/// The admins' request limits (stage 5b, after authentication).
pub(crate) struct RequestLimits {
    limiter: Arc<Limiter>,
}

impl RequestLimits {
    pub(crate) fn new(limiter: Arc<Limiter>) -> Self {
        RequestLimits { limiter }
    }
}

impl Stage for RequestLimits {
    type Error = RateLimitError;

    async fn run(&self, ex: &mut Exchange) -> Result<(), RateLimitError> {
        let ctx = &ex.ctx;
        let principal = ctx
            .principal
            .as_ref()
            .filter(|p| p.auth_method != crate::ctx::AuthMethod::None);
        let facts = RequestFacts {
            method: ctx.method.as_str(),
            path: ctx.path.as_deref().unwrap_or("/"),
            principal: principal.map(|p| (p.record.id.as_str(), p.record.user_name.as_str())),
            token_id: principal.and_then(|p| p.token_id.as_deref()),
            workspace: ctx.workspace().map(|w| w.id),
        };
        match self.limiter.check(&facts).await {
            Ok(()) => Ok(()),
            Err(Limited::Exceeded { rule, retry_after }) => {
                Err(RateLimitError::Exceeded { rule, retry_after })
            }
            Err(Limited::Undecided) => Err(RateLimitError::Undecided),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        let secs = |ms| {
            RateLimitError::FailedAuthentications {
                retry_after: Duration::from_millis(ms),
            }
            .retry_after_secs()
        };
        assert_eq!((secs(0), secs(1), secs(1000), secs(1001)), (1, 1, 1, 2));
    }
}
