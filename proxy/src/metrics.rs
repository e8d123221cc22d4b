//! The gateway's metrics, registered into the `prometheus::Registry` the caller passes in.
//! Labels come from fixed sets only (Cedar action names, decision, status code, upstream,
//! failure reason): never user ids, raw paths or SQL.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Seconds, from 100 µs (the gateway's own work) to 30 s (a slow upstream).
const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The `reason` label of `gateway_authn_failures_total`: why a caller was not authenticated,
/// without the details (those go to the log). Authentication maps its errors onto it; it
/// lives here, with the metric, so the metrics need not know authentication's error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthnFailureReason {
    Missing,
    Malformed,
    UnknownToken,
    Expired,
    WrongWorkspace,
    TokensDisabled,
    UnknownIssuer,
    Algorithm,
    UnknownKey,
    BadSignature,
    Claims,
    TokenType,
    CriticalHeader,
    Lifetime,
    AuthorizedParty,
    UnknownPrincipal,
    ControlUnavailable,
    JwksUnavailable,
}

impl AuthnFailureReason {
    /// Every reason, for registering the metric's series up front.
    pub(crate) const ALL: [AuthnFailureReason; 18] = {
        use AuthnFailureReason as R;
        [
            R::Missing,
            R::Malformed,
            R::UnknownToken,
            R::Expired,
            R::WrongWorkspace,
            R::TokensDisabled,
            R::UnknownIssuer,
            R::Algorithm,
            R::UnknownKey,
            R::BadSignature,
            R::Claims,
            R::TokenType,
            R::CriticalHeader,
            R::Lifetime,
            R::AuthorizedParty,
            R::UnknownPrincipal,
            R::ControlUnavailable,
            R::JwksUnavailable,
        ]
    };

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        use AuthnFailureReason as R;
        match self {
            R::Missing => "missing",
            R::Malformed => "malformed",
            R::UnknownToken => "unknown_token",
            R::Expired => "expired",
            R::WrongWorkspace => "wrong_workspace",
            R::TokensDisabled => "tokens_disabled",
            R::UnknownIssuer => "unknown_issuer",
            R::Algorithm => "algorithm",
            R::UnknownKey => "unknown_key",
            R::BadSignature => "bad_signature",
            R::Claims => "claims",
            R::TokenType => "token_type",
            R::CriticalHeader => "critical_header",
            R::Lifetime => "lifetime",
            R::AuthorizedParty => "authorized_party",
            R::UnknownPrincipal => "unknown_principal",
            R::ControlUnavailable => "control_unavailable",
            R::JwksUnavailable => "jwks_unavailable",
        }
    }
}

/// Every metric the gateway updates.
#[derive(Clone)]
pub(crate) struct GatewayMetrics {
    /// `gateway_http_requests_total{action,decision,status}`.
    pub requests: IntCounterVec,
    /// Time spent in the gateway itself: total until the response head, minus the upstream.
    pub added_latency: Histogram,
    /// `gateway_upstream_latency_seconds{upstream}`: until the upstream's response head.
    pub upstream_seconds: HistogramVec,
    pub authz_seconds: Histogram,
    /// `gateway_authn_failures_total{reason}`.
    pub authn_failures: IntCounterVec,
    /// `gateway_policy_set_info{version}`: 1 for the policy set in force.
    pub policy_info: IntGaugeVec,
    /// Counts successful policy loads (1 after start).
    pub policy_generation: IntGauge,
    pub policy_reload_failures: IntCounter,
    pub connections_open: IntGauge,
    /// Connections closed at once: over the connection limit.
    pub connections_refused: IntCounter,
    /// Connections closed at once: their address had too many open or handshaking.
    pub connections_refused_per_address: IntCounter,
    pub tls_handshake_failures: IntCounter,
    pub audit_write_failures: IntCounter,
    pub snapshot_version: IntGauge,
    /// `gateway_change_feed_healthy`: 1 while caches are trusted (no Redis configured, or the
    /// subscription is up and resynchronised), 0 while degraded.
    pub change_feed_healthy: IntGauge,
    /// `gateway_rate_limited_total{limit}`: the rule's name, or `failed_auth`.
    pub rate_limited: IntCounterVec,
    /// `gateway_rate_limit_fallbacks_total{fallback}`: decisions Redis could not make, by what
    /// was done instead (`open`, `closed`, `local`).
    pub rate_limit_fallbacks: IntCounterVec,
    /// `gateway_rate_limit_redis_up`: 1 while the limiter's Redis connection is up.
    pub rate_limit_redis_up: IntGauge,
    pub rate_limit_reload_failures: IntCounter,
    /// `gateway_load_shed_total{bound}`: `in_flight` or `control_lookups`.
    pub load_shed: IntCounterVec,
}

impl GatewayMetrics {
    /// Creates and registers every metric.
    pub(crate) fn register(registry: &Registry) -> prometheus::Result<Self> {
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
        };
        let metrics = GatewayMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "gateway_http_requests_total",
                    "Requests answered, by Cedar action, decision and status.",
                ),
                &["action", "decision", "status"],
            )?,
            added_latency: histogram(
                "gateway_added_latency_seconds",
                "Latency the gateway adds: until the response head, upstream time excluded.",
            )?,
            upstream_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "gateway_upstream_latency_seconds",
                    "Time until the upstream's response head.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["upstream"],
            )?,
            authz_seconds: histogram(
                "gateway_authz_decision_seconds",
                "Time of one Cedar authorization decision.",
            )?,
            authn_failures: IntCounterVec::new(
                Opts::new(
                    "gateway_authn_failures_total",
                    "Authentication failures, by reason.",
                ),
                &["reason"],
            )?,
            policy_info: IntGaugeVec::new(
                Opts::new(
                    "gateway_policy_set_info",
                    "1 for the policy set version in force.",
                ),
                &["version"],
            )?,
            policy_generation: IntGauge::new(
                "gateway_policy_generation",
                "Number of policy sets loaded since start.",
            )?,
            policy_reload_failures: IntCounter::new(
                "gateway_policy_reload_failures_total",
                "Policy reloads rejected (the previous set kept serving).",
            )?,
            connections_open: IntGauge::new(
                "gateway_connections_open",
                "Open client connections.",
            )?,
            connections_refused: IntCounter::new(
                "gateway_connections_refused_total",
                "Connections closed at once because the connection limit was reached.",
            )?,
            connections_refused_per_address: IntCounter::new(
                "gateway_connections_refused_per_address_total",
                "Connections closed at once because their client address had too many open or in their TLS handshake.",
            )?,
            tls_handshake_failures: IntCounter::new(
                "gateway_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out.",
            )?,
            audit_write_failures: IntCounter::new(
                "gateway_audit_write_failures_total",
                "Audit records that could not be written or made durable.",
            )?,
            snapshot_version: IntGauge::new(
                "gateway_snapshot_version",
                "State version of the control-plane snapshot in use.",
            )?,
            change_feed_healthy: IntGauge::new(
                "gateway_change_feed_healthy",
                "1 while cached control-plane state is trusted; 0 while the Redis change feed is down or resynchronising (every token then goes to the control plane).",
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new(
                    "gateway_rate_limited_total",
                    "Requests refused with 429 by a rate limit, by rule (or failed_auth).",
                ),
                &["limit"],
            )?,
            rate_limit_fallbacks: IntCounterVec::new(
                Opts::new(
                    "gateway_rate_limit_fallbacks_total",
                    "Rate-limit decisions Redis could not make, by what was done instead: open (let through), closed (503), local (counted per process).",
                ),
                &["fallback"],
            )?,
            rate_limit_redis_up: IntGauge::new(
                "gateway_rate_limit_redis_up",
                "1 while the rate limiter's Redis connection is up (0 without Redis).",
            )?,
            rate_limit_reload_failures: IntCounter::new(
                "gateway_rate_limit_reload_failures_total",
                "Rate-limit rules files rejected (the rules in force kept serving).",
            )?,
            load_shed: IntCounterVec::new(
                Opts::new(
                    "gateway_load_shed_total",
                    "Requests answered 503 because a load bound was reached, by bound.",
                ),
                &["bound"],
            )?,
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.added_latency.clone()))?;
        registry.register(Box::new(metrics.upstream_seconds.clone()))?;
        registry.register(Box::new(metrics.authz_seconds.clone()))?;
        registry.register(Box::new(metrics.authn_failures.clone()))?;
        registry.register(Box::new(metrics.policy_info.clone()))?;
        registry.register(Box::new(metrics.policy_generation.clone()))?;
        registry.register(Box::new(metrics.policy_reload_failures.clone()))?;
        registry.register(Box::new(metrics.connections_open.clone()))?;
        registry.register(Box::new(metrics.connections_refused.clone()))?;
        registry.register(Box::new(metrics.connections_refused_per_address.clone()))?;
        registry.register(Box::new(metrics.tls_handshake_failures.clone()))?;
        registry.register(Box::new(metrics.audit_write_failures.clone()))?;
        registry.register(Box::new(metrics.snapshot_version.clone()))?;
        registry.register(Box::new(metrics.change_feed_healthy.clone()))?;
        registry.register(Box::new(metrics.rate_limited.clone()))?;
        registry.register(Box::new(metrics.rate_limit_fallbacks.clone()))?;
        registry.register(Box::new(metrics.rate_limit_redis_up.clone()))?;
        registry.register(Box::new(metrics.rate_limit_reload_failures.clone()))?;
        registry.register(Box::new(metrics.load_shed.clone()))?;
        for fallback in ["open", "closed", "local"] {
            metrics.rate_limit_fallbacks.with_label_values(&[fallback]);
        }
        for bound in ["in_flight", "control_lookups"] {
            metrics.load_shed.with_label_values(&[bound]);
        }
        metrics.rate_limited.with_label_values(&["failed_auth"]);
        // Zero series for every reason, so a dashboard sees them before the first failure.
        for reason in AuthnFailureReason::ALL {
            metrics.authn_failures.with_label_values(&[reason.as_str()]);
        }
        Ok(metrics)
    }

    /// Marks `version` as the policy set in force.
    pub(crate) fn set_policy_version(&self, version: &str) {
        self.policy_info.reset();
        self.policy_info.with_label_values(&[version]).set(1);
        self.policy_generation.inc();
    }
}
