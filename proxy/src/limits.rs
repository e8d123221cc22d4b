//! The rate limiter: failed authentications per client address, and the admins' request
//! limits per principal, token, workspace and route group. A leaf: the stages that enforce it
//! (`ratelimit`) hand it plain facts about the request.
//!
//! Every limit is GCRA ([`gcra`]). With `gateway.redis_url` set the counters live in Redis,
//! shared by every replica, one script call per decision ([`redis_store`]); without it they live in
//! this process. When Redis cannot decide, request limits follow `redis_unavailable` (open:
//! let through, closed: 503) and failed authentications are counted in this process; either
//! way `gateway_rate_limit_fallbacks_total` counts it, and the outage is logged.
//!
//! Failed authentications are charged after they fail, but refused before authentication:
//! when a charge leaves an address no room for another failure, the address is remembered
//! here as blocked until the counter has room again, and the throttle refuses it on sight,
//! with no round trip to Redis and no control-plane lookup. So past the limit a flood of bad
//! tokens costs the control plane nothing; with several replicas, each one learns of a block
//! at the cost of one more lookup, the first time it charges that address.

mod gcra;
mod redis_store;
mod rules;

pub(crate) use rules::RequestFacts;

use crate::config::{Config, FailMode, RateLimitRule};
use crate::metrics::GatewayMetrics;
use anyhow::Context as _;
use arc_swap::ArcSwap;
use gcra::{Decision, Gcra, LocalStore};
use parking_lot::Mutex;
use prometheus::{IntCounter, IntCounterVec};
use redis_store::RedisStore;
use rules::RuleSet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Why a request was not let through.
#[derive(Debug)]
pub(crate) enum Limited {
    /// Over the rule named; retry after the duration.
    Exceeded {
        rule: Arc<str>,
        retry_after: Duration,
    },
    /// Redis could not decide and `redis_unavailable = "closed"`.
    Undecided,
}

/// Blocked addresses are forgotten rather than grown past this many.
const MAX_BLOCKED: usize = 100_000;

/// See the module documentation.
pub(crate) struct Limiter {
    prefix: String,
    /// The rules of the configuration; the rules file's come on top.
    fixed: Vec<RateLimitRule>,
    rules_file: Option<PathBuf>,
    rules: ArcSwap<RuleSet>,
    failed_auth: Option<Gcra>,
    /// This process's counters of the admins' rules: keys only an authenticated caller makes.
    local: LocalStore,
    /// This process's failed-authentication counters, apart: their keys are addresses anyone
    /// can make, and a flood of them must not start the request limits' counters over.
    local_failed_auth: LocalStore,
    redis: Option<RedisStore>,
    fail_mode: FailMode,
    /// Addresses (IPv6 by /64) out of failed-authentication room, until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    limited: IntCounterVec,
    fallbacks: IntCounterVec,
    reload_failures: IntCounter,
}

impl Limiter {
    /// Builds the limiter from the configuration, reading the rules file; a file that does not
    /// load is an error, with every problem in it.
    pub(crate) fn new(config: &Config, metrics: &GatewayMetrics) -> anyhow::Result<Limiter> {
        let settings = &config.rate_limits;
        let mut rules: Vec<RateLimitRule> = settings.rules.clone();
        if let Some(path) = &settings.rules_file {
            let file = rules::load_file(path, &settings.rules)
                .map_err(|problems| anyhow::anyhow!("{}", problems.join("\n  ")))
                .context("the rate-limit rules file does not load")?;
            rules.extend(file.rules);
        }
        let redis = match &config.redis_url {
            Some(url) => Some(
                RedisStore::new(
                    url,
                    Duration::from_millis(settings.redis_timeout_ms),
                    metrics.rate_limit_redis_up.clone(),
                )
                .context("configuring Redis for the rate limits")?,
            ),
            None => None,
        };
        let failed = &settings.failed_auth;
        Ok(Limiter {
            prefix: settings.redis_key_prefix.clone(),
            fixed: settings.rules.clone(),
            rules_file: settings.rules_file.clone(),
            rules: ArcSwap::from_pointee(RuleSet::compile(&rules)),
            failed_auth: Gcra::new(failed.requests, failed.period_secs, failed.burst),
            local: LocalStore::new(),
            local_failed_auth: LocalStore::new(),
            redis,
            fail_mode: settings.redis_unavailable,
            blocked: Mutex::new(HashMap::new()),
            limited: metrics.rate_limited.clone(),
            fallbacks: metrics.rate_limit_fallbacks.clone(),
            reload_failures: metrics.rate_limit_reload_failures.clone(),
        })
    }

    /// Decides a request against every rule that applies to it, charging all their counters
    /// or none.
    pub(crate) async fn check(&self, request: &RequestFacts<'_>) -> Result<(), Limited> {
        let rules = self.rules.load();
        if rules.is_empty() {
            return Ok(());
        }
        let counters = rules.counters(&self.prefix, request);
        if counters.is_empty() {
            return Ok(());
        }
        let keys: Vec<(String, Gcra)> = counters.iter().map(|c| (c.key.clone(), c.gcra)).collect();
        let decision = match &self.redis {
            None => self.local.decide(&keys),
            Some(redis) => match redis.decide(&keys).await {
                Ok(decision) => decision,
                Err(redis_store::Unavailable) => {
                    return match self.fail_mode {
                        FailMode::Open => {
                            self.fallbacks.with_label_values(&["open"]).inc();
                            tracing::debug!("rate limits undecided (Redis); letting through");
                            Ok(())
                        }
                        FailMode::Closed => {
                            self.fallbacks.with_label_values(&["closed"]).inc();
                            Err(Limited::Undecided)
                        }
                    };
                }
            },
        };
        if decision.allowed {
            return Ok(());
        }
        let rule = counters
            .get(decision.refused_by)
            .map_or_else(|| Arc::from("unknown"), |c| c.rule.clone());
        self.limited.with_label_values(&[&rule]).inc();
        Err(Limited::Exceeded {
            rule,
            retry_after: decision.wait,
        })
    }

    /// Whether `ip` is out of failed-authentication room, and for how long.
    pub(crate) fn address_blocked(&self, ip: IpAddr) -> Option<Duration> {
        self.failed_auth?;
        let until = *self.blocked.lock().get(&address_key(ip))?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        self.limited.with_label_values(&["failed_auth"]).inc();
        Some(left)
    }

    /// Charges a failed authentication to `ip`; blocks the address once no room is left.
    pub(crate) async fn failed_authentication(&self, ip: IpAddr) {
        let Some(gcra) = self.failed_auth else {
            return;
        };
        let address = address_key(ip);
        let keys = [(format!("{}:fa:{address}", self.prefix), gcra)];
        let decision = match &self.redis {
            None => self.local_failed_auth.decide(&keys),
            Some(redis) => match redis.decide(&keys).await {
                Ok(decision) => decision,
                Err(redis_store::Unavailable) => {
                    self.fallbacks.with_label_values(&["local"]).inc();
                    self.local_failed_auth.decide(&keys)
                }
            },
        };
        if let Some(until) = blocked_until(decision) {
            let mut blocked = self.blocked.lock();
            if blocked.len() >= MAX_BLOCKED {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
                if blocked.len() >= MAX_BLOCKED {
                    blocked.clear();
                }
            }
            blocked.insert(address, until);
            tracing::info!(
                address = %address,
                seconds = decision.wait.as_secs_f64(),
                "client address out of failed authentications; refused until its budget recovers"
            );
        }
    }

    /// Keeps the Redis connection and follows the rules file (every `poll`, and on SIGHUP),
    /// until aborted.
    pub(crate) async fn run(self: Arc<Self>, poll: Duration) {
        let redis = async {
            if let Some(redis) = &self.redis {
                redis.maintain().await;
            }
        };
        let rules = async {
            if let Some(path) = &self.rules_file {
                self.watch_rules(path, poll).await;
            }
        };
        tokio::join!(redis, rules);
    }

    async fn watch_rules(&self, path: &std::path::Path, poll: Duration) {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let fingerprint = |path: &std::path::Path| -> Option<(Option<SystemTime>, u64)> {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok(), meta.len()))
        };
        let mut last = fingerprint(path);
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = ticker.tick() => false,
                Some(()) = async { hangup.as_mut()?.recv().await } => true,
            };
            let now = fingerprint(path);
            if !forced && now == last {
                continue;
            }
            last = now;
            self.reload_rules(path);
        }
    }

    /// Reads the rules file again; on success its rules are in force, otherwise the old ones
    /// stay. Small file, no validation beyond the fields: done on the async worker.
    fn reload_rules(&self, path: &std::path::Path) {
        match rules::load_file(path, &self.fixed) {
            Ok(file) => {
                let count = file.rules.len();
                let all = self.fixed.iter().chain(&file.rules);
                self.rules.store(Arc::new(RuleSet::compile(all)));
                tracing::info!(file_rules = count, "rate-limit rules reloaded");
            }
            Err(problems) => {
                self.reload_failures.inc();
                for problem in &problems {
                    tracing::error!(
                        problem,
                        "rate-limit rules file rejected; the rules in force stay"
                    );
                }
            }
        }
    }
}

/// Until when an address is blocked after a charge decided `decision`: refused, for as long as
/// it said; allowed but with no room for another, until there is.
fn blocked_until(decision: Decision) -> Option<Instant> {
    if decision.wait.is_zero() {
        return None;
    }
    Some(Instant::now() + decision.wait)
}

/// What failed authentications are counted by: the address, except that an IPv6 address
/// counts by its /64 (one subscriber's usual share; counting by /128 would let one host try
/// 2^64 addresses) and an IPv4-mapped one as the IPv4 address.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_by_ipv4_or_ipv6_slash_64() {
        let key = |s: &str| address_key(s.parse().unwrap()).to_string();
        assert_eq!(key("10.1.2.3"), "10.1.2.3");
        assert_eq!(key("::ffff:10.1.2.3"), "10.1.2.3");
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
    }

    #[tokio::test]
    async fn the_last_failure_allowed_blocks_the_address() {
        let registry = prometheus::Registry::new();
        let metrics = GatewayMetrics::register(&registry).unwrap();
        let mut config = Config::default();
        config.rate_limits.failed_auth.requests = 2;
        config.rate_limits.failed_auth.period_secs = 3600;
        let limiter = Limiter::new(&config, &metrics).unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(limiter.address_blocked(ip), None);
        limiter.failed_authentication(ip).await;
        assert_eq!(limiter.address_blocked(ip), None, "one failure of two");
        limiter.failed_authentication(ip).await;
        let left = limiter.address_blocked(ip).unwrap();
        assert!(left > Duration::from_secs(1700) && left <= Duration::from_secs(1800));
        assert_eq!(limiter.address_blocked(other), None);
    }

    #[tokio::test]
    async fn a_flood_of_failing_addresses_leaves_the_request_limits_alone() {
        let registry = prometheus::Registry::new();
        let metrics = GatewayMetrics::register(&registry).unwrap();
        let mut config = Config::default();
        config.rate_limits.rules = vec![RateLimitRule {
            name: "one-a-day".into(),
            requests: 1,
            period_secs: 86_400,
            ..RateLimitRule::default()
        }];
        let limiter = Limiter::new(&config, &metrics).unwrap();
        let alice = RequestFacts {
            method: "GET",
            path: "/api/2.0/clusters/list",
            principal: Some(("1", "alice@x.com")),
            token_id: None,
            workspace: Some(1),
        };
        limiter.check(&alice).await.unwrap();
        assert!(limiter.check(&alice).await.is_err(), "over the rule");
        // More distinct addresses than a counter table holds, each failing once: IPv6 /64s
        // are plentiful to an attacker.
        for n in 0..=gcra::MAX_COUNTERS as u64 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(n) << 64));
            limiter.failed_authentication(ip).await;
        }
        assert!(
            matches!(limiter.check(&alice).await, Err(Limited::Exceeded { .. })),
            "Alice's counter survived the flood"
        );
    }
}
