//! The gateway's configuration: a serde struct in which every field has a safe default, and a
//! `validate` that reports every problem at once before anything binds a port.

use ipnet::{IpNet, Ipv4Net};
use lakeward_policy::parse_network;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

mod rate_limits;

pub(crate) use rate_limits::validate_rules;
pub use rate_limits::{FailMode, LimitPer, Overload, Quota, RateLimitRule, RateLimits, RulesFile};

/// The gateway's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the TLS listener binds. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where the plain-HTTP admin listener (`/metrics`, `/healthz`, `/readyz`) binds. Keep it on
    /// loopback or a private network: it needs no credentials.
    pub admin_listen: SocketAddr,
    /// Host names the server certificate covers. Informational for the binary (which may
    /// generate a certificate for them); the gateway itself checks Host against SNI.
    pub server_names: Vec<String>,
    /// When set, a workspace also answers at `<deployment_name>.<workspace_domain>`.
    pub workspace_domain: Option<String>,
    /// The workspace served on bare paths (no `/w/<id>` prefix, no workspace host). When
    /// unset, the running workspace with the lowest id.
    pub default_workspace_id: Option<i64>,
    /// CIDRs of reverse proxies in front of the gateway. Only when the TCP peer is inside one
    /// of them is `X-Forwarded-For` read.
    pub trusted_proxies: Vec<String>,
    /// Tokio worker threads for the gateway runtime (the binary sizes its runtime with it);
    /// unset means one per core.
    pub worker_threads: Option<usize>,
    /// Request and connection limits.
    pub limits: Limits,
    /// OAuth/OIDC issuers whose JWTs are accepted as bearer tokens.
    pub oidc_issuers: Vec<OidcIssuer>,
    /// Directory of the Cedar schema and policies. The binary passes it (or its default) to
    /// the gateway in `GatewayDeps::policy_dir`.
    pub policy_dir: Option<PathBuf>,
    /// Directory of the audit log. The binary passes it (or its default) in
    /// `GatewayDeps::audit_dir`.
    pub audit_dir: Option<PathBuf>,
    /// How long an upstream may take to send its response head before the caller gets 504.
    pub upstream_timeout_secs: u64,
    /// How long connecting to an upstream may take before the caller gets 502.
    pub upstream_connect_timeout_ms: u64,
    /// How long resolved tokens and principals stay cached at most. Changes made through the
    /// gateway, or announced by the control plane, drop the caches at once; this bounds only
    /// a missed announcement.
    pub auth_cache_ttl_secs: u64,
    /// How often the policy directory is checked for changes.
    pub policy_poll_interval_ms: u64,
    /// A `redis://[:password@]host[:port][/db]` URL: the Redis server the control plane
    /// publishes its state versions on (its `redis_url`). When set, the gateway subscribes and
    /// drops its caches as soon as any replica of the control plane commits a change; while
    /// the subscription is not known to be good it trusts no cache: every token is resolved by
    /// the control plane and the snapshot is re-fetched when older than 250 ms. Unset (the
    /// default): no Redis; the long-poll carries changes made elsewhere.
    pub redis_url: Option<String>,
    /// The Redis channel to subscribe to; it must be the control plane's `redis_channel`.
    pub redis_channel: String,
    /// Whether to long-poll the control plane (`/internal/v1/changes`) for changes made
    /// elsewhere. It may be turned off only with `redis_url` set, to make Redis the only feed.
    pub control_long_poll: bool,
    /// On shutdown, how long in-flight requests may take to finish.
    pub shutdown_grace_secs: u64,
    /// Audit records queued for the writer before requests wait for it.
    pub audit_queue_capacity: usize,
    /// Failed-authentication throttling and request-rate limits (shared through Redis when
    /// `redis_url` is set).
    pub rate_limits: RateLimits,
    /// Bounds past which requests are shed with 503 before any work is spent on them.
    pub overload: Overload,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9443)),
            server_names: Vec::new(),
            workspace_domain: None,
            default_workspace_id: None,
            trusted_proxies: Vec::new(),
            worker_threads: None,
            limits: Limits::default(),
            oidc_issuers: Vec::new(),
            policy_dir: None,
            audit_dir: None,
            upstream_timeout_secs: 30,
            upstream_connect_timeout_ms: 250,
            auth_cache_ttl_secs: 300,
            policy_poll_interval_ms: 1000,
            redis_url: None,
            redis_channel: lakeward_common::internal::STATE_VERSION_CHANNEL.to_owned(),
            control_long_poll: true,
            shutdown_grace_secs: 10,
            audit_queue_capacity: 8192,
            rate_limits: RateLimits::default(),
            overload: Overload::default(),
        }
    }
}

/// Request and connection limits. Every one is enforced before a request reaches an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Total size of the request's header fields (names and values). Over it: 431.
    pub max_header_bytes: usize,
    /// Number of header fields. Over it: 431.
    pub max_headers: usize,
    /// Length of the request target (path and query). Over it: 414.
    pub max_uri_bytes: usize,
    /// Size of a request body. Over it: 413.
    pub max_body_bytes: usize,
    /// Time for a client to send a complete request head (HTTP/1); the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Time for a client to send the whole request body. Over it: 408.
    pub body_read_timeout_secs: u64,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    pub idle_timeout_secs: u64,
    /// Time for a client to complete the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Open client connections; further connections are closed at once.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 client's /64), handshaking ones
    /// included; further connections from it are closed at once. Counted by the TCP peer,
    /// never by `X-Forwarded-For`, so behind a reverse proxy it bounds the proxy.
    pub max_connections_per_address: usize,
    /// Connections from one client address still in their TLS handshake; further connections
    /// from it are closed at once. Keeps one address from holding the handshake window open.
    pub max_handshakes_per_address: usize,
    /// Chunk-extension bytes (after each `;`, up to the line end) in one chunked request
    /// body. Over it: 400, and the connection is closed.
    pub max_chunk_extension_bytes: usize,
    /// After refusing a request the client may still be sending (431, 413, 414, 400), how
    /// long at most the gateway keeps reading and discarding before it closes, so the client
    /// reads the refusal instead of a reset (nginx's `lingering_time`). 0 closes at once.
    pub lingering_time_secs: u64,
    /// While lingering, how long a quiet client is waited for (nginx's `lingering_timeout`).
    pub lingering_timeout_secs: u64,
    /// While lingering, how many bytes at most are read and discarded.
    pub lingering_max_bytes: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            tls_handshake_timeout_secs: 10,
            max_connections: 4096,
            max_connections_per_address: 256,
            max_handshakes_per_address: 32,
            max_chunk_extension_bytes: 4096,
            lingering_time_secs: 30,
            lingering_timeout_secs: 5,
            lingering_max_bytes: 16 * 1024 * 1024,
            max_concurrent_streams: 100,
        }
    }
}

/// One OAuth/OIDC issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcIssuer {
    /// The exact `iss` the issuer's tokens carry.
    pub issuer: String,
    /// Where its JWKS is fetched: `https://`, or `http://` to a loopback address (tests).
    pub jwks_url: String,
    /// PEM file of CA certificates to verify the JWKS server with. Unset: the system's CA
    /// certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR` when set).
    pub jwks_ca_file: Option<PathBuf>,
    /// Accepted `aud` values; a token must name one of them.
    pub audiences: Vec<String>,
    /// Accepted signature algorithms: `RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`,
    /// `ES256`, `ES384` or `EdDSA`. Never `none` or `HS*`: a JWKS publishes public keys.
    pub algorithms: Vec<String>,
    /// The claim naming the principal (a user's `userName` or a service principal's
    /// application id).
    pub user_claim: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (a token issued further in the future
    /// is refused); at most 300.
    pub clock_skew_secs: u64,
    /// A token with an unknown `kid` makes the gateway re-fetch the JWKS at most this often.
    pub jwks_refetch_interval_secs: u64,
    /// Whether tokens must be explicitly typed as OAuth access tokens (RFC 9068 section 2.1:
    /// header `typ` of `at+jwt` or `application/at+jwt`, any case). This is what keeps the
    /// issuer's ID tokens, signed with the same keys, from being accepted as API tokens (RFC
    /// 8725 section 3.11). Turn it off only for an issuer that cannot type its access tokens,
    /// and then make sure none of `audiences` is a client id its ID tokens are issued to.
    pub require_at_jwt_typ: bool,
    /// The clients (`azp`) whose tokens are accepted. A token with several audiences must name
    /// its `azp`, and it must be one of these, or of `audiences` when this is empty (OpenID
    /// Connect Core 3.1.3.7). When set, a token with one audience that names an `azp` must
    /// name one of these too.
    pub authorized_parties: Vec<String>,
    /// The longest lifetime accepted: `exp - iat`, or `exp` minus now for a token without
    /// `iat`. Between 60 and 2592000 (30 days).
    pub max_token_lifetime_secs: u64,
}

impl Default for OidcIssuer {
    fn default() -> Self {
        OidcIssuer {
            issuer: String::new(),
            jwks_url: String::new(),
            jwks_ca_file: None,
            audiences: Vec::new(),
            algorithms: vec!["RS256".to_owned()],
            user_claim: "sub".to_owned(),
            clock_skew_secs: 60,
            jwks_refetch_interval_secs: 60,
            require_at_jwt_typ: true,
            authorized_parties: Vec::new(),
            max_token_lifetime_secs: DEFAULT_MAX_TOKEN_LIFETIME_SECS,
        }
    }
}

/// The largest clock skew an issuer may be given.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// An issuer's `max_token_lifetime_secs` unless set: a day, the longest access-token lifetime
/// of the common identity providers' defaults.
const DEFAULT_MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;
/// The bounds of `max_token_lifetime_secs`.
const TOKEN_LIFETIME_RANGE_SECS: std::ops::RangeInclusive<u64> = 60..=30 * 24 * 3600;

/// Algorithms a JWKS issuer may use, by name.
const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

impl Config {
    /// Checks everything that can be checked without I/O and returns every problem found.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            problems.push(format!(
                "`listen` and `admin_listen` are both `{}`",
                self.listen
            ));
        }
        for name in &self.server_names {
            // A wildcard certificate name (`*.example.com`) is fine.
            let bare = name.strip_prefix("*.").unwrap_or(name);
            if !is_host_name(bare) && name.parse::<IpAddr>().is_err() {
                problems.push(format!("`server_names`: `{name}` is not a host name"));
            }
        }
        if let Some(domain) = &self.workspace_domain {
            if !is_host_name(domain) {
                problems.push(format!(
                    "`workspace_domain`: `{domain}` is not a domain name"
                ));
            }
        }
        for entry in &self.trusted_proxies {
            if let Err(e) = parse_trusted_proxy(entry) {
                problems.push(format!("`trusted_proxies`: {e}"));
            }
        }
        if self.worker_threads == Some(0) {
            problems.push("`worker_threads` must be at least 1".to_owned());
        }
        self.limits.validate(&mut problems);
        self.rate_limits.validate(&mut problems);
        self.overload.validate(&mut problems);
        let positive = [
            ("upstream_timeout_secs", self.upstream_timeout_secs),
            (
                "upstream_connect_timeout_ms",
                self.upstream_connect_timeout_ms,
            ),
            ("policy_poll_interval_ms", self.policy_poll_interval_ms),
            ("audit_queue_capacity", self.audit_queue_capacity as u64),
        ];
        for (name, value) in positive {
            if value == 0 {
                problems.push(format!("`{name}` must be greater than 0"));
            }
        }
        if let Some(url) = &self.redis_url {
            // Never echo the URL: it may carry a password.
            if !is_redis_url(url) {
                problems.push("`redis_url` must be a `redis://host[:port][/db]` URL".to_owned());
            }
        }
        if self.redis_channel.is_empty() || self.redis_channel.len() > 256 {
            problems.push("`redis_channel` must be 1 to 256 bytes long".to_owned());
        }
        if !self.control_long_poll && self.redis_url.is_none() {
            problems.push(
                "`control_long_poll = false` needs `redis_url`: with neither feed, changes made \
                 through other gateways would be noticed only when `auth_cache_ttl_secs` runs out"
                    .to_owned(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, issuer) in self.oidc_issuers.iter().enumerate() {
            issuer.validate(i, &mut problems);
            if !seen.insert(issuer.issuer.as_str()) {
                problems.push(format!(
                    "`oidc_issuers[{i}]`: issuer `{}` is configured twice",
                    issuer.issuer
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl Limits {
    fn validate(&self, problems: &mut Vec<String>) {
        let ranges: [(&str, u64, u64, u64); 10] = [
            (
                "max_header_bytes",
                self.max_header_bytes as u64,
                1024,
                1 << 20,
            ),
            ("max_headers", self.max_headers as u64, 8, 1000),
            ("max_uri_bytes", self.max_uri_bytes as u64, 256, 65_000),
            ("max_body_bytes", self.max_body_bytes as u64, 1, 1 << 30),
            (
                "header_read_timeout_secs",
                self.header_read_timeout_secs,
                1,
                3600,
            ),
            (
                "body_read_timeout_secs",
                self.body_read_timeout_secs,
                1,
                3600,
            ),
            ("idle_timeout_secs", self.idle_timeout_secs, 1, 86_400),
            (
                "tls_handshake_timeout_secs",
                self.tls_handshake_timeout_secs,
                1,
                3600,
            ),
            ("max_connections", self.max_connections as u64, 1, 1 << 20),
            (
                "max_concurrent_streams",
                u64::from(self.max_concurrent_streams),
                1,
                10_000,
            ),
        ];
        // The connection layer's own bounds; hyper refuses 16 KiB of chunk extensions itself.
        let connection: [(&str, u64, u64, u64); 6] = [
            (
                "max_connections_per_address",
                self.max_connections_per_address as u64,
                1,
                1 << 20,
            ),
            (
                "max_handshakes_per_address",
                self.max_handshakes_per_address as u64,
                1,
                1 << 20,
            ),
            (
                "max_chunk_extension_bytes",
                self.max_chunk_extension_bytes as u64,
                0,
                16_000,
            ),
            ("lingering_time_secs", self.lingering_time_secs, 0, 300),
            ("lingering_timeout_secs", self.lingering_timeout_secs, 1, 60),
            (
                "lingering_max_bytes",
                self.lingering_max_bytes as u64,
                0,
                1 << 30,
            ),
        ];
        for (name, value, min, max) in ranges.into_iter().chain(connection) {
            if !(min..=max).contains(&value) {
                problems.push(format!(
                    "`limits.{name}` is {value}; it must be between {min} and {max}"
                ));
            }
        }
    }
}

impl OidcIssuer {
    fn validate(&self, i: usize, problems: &mut Vec<String>) {
        let at = format!("`oidc_issuers[{i}]`");
        if self.issuer.is_empty() {
            problems.push(format!("{at}: `issuer` is empty"));
        }
        if let Err(e) = check_jwks_url(&self.jwks_url) {
            problems.push(format!("{at}: `jwks_url`: {e}"));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            problems.push(format!(
                "{at}: `audiences` must list at least one non-empty audience"
            ));
        }
        if self.algorithms.is_empty() {
            problems.push(format!("{at}: `algorithms` is empty"));
        }
        for alg in &self.algorithms {
            if alg.eq_ignore_ascii_case("none") {
                problems.push(format!("{at}: algorithm `none` is never accepted"));
            } else if alg.to_ascii_uppercase().starts_with("HS") {
                problems.push(format!(
                    "{at}: algorithm `{alg}` is symmetric; a JWKS issuer must sign with a public-key algorithm"
                ));
            } else if !ASYMMETRIC_ALGORITHMS.contains(&alg.as_str()) {
                problems.push(format!(
                    "{at}: unknown algorithm `{alg}` (expected one of {})",
                    ASYMMETRIC_ALGORITHMS.join(", ")
                ));
            }
        }
        if self.user_claim.is_empty() {
            problems.push(format!("{at}: `user_claim` is empty"));
        }
        if self.clock_skew_secs > MAX_CLOCK_SKEW_SECS {
            problems.push(format!(
                "{at}: `clock_skew_secs` is {}; at most {MAX_CLOCK_SKEW_SECS}",
                self.clock_skew_secs
            ));
        }
        if self.jwks_refetch_interval_secs == 0 {
            problems.push(format!(
                "{at}: `jwks_refetch_interval_secs` must be at least 1"
            ));
        }
        if self.authorized_parties.iter().any(String::is_empty) {
            problems.push(format!("{at}: `authorized_parties` holds an empty value"));
        }
        if !TOKEN_LIFETIME_RANGE_SECS.contains(&self.max_token_lifetime_secs) {
            problems.push(format!(
                "{at}: `max_token_lifetime_secs` is {}; it must be between {} and {}",
                self.max_token_lifetime_secs,
                TOKEN_LIFETIME_RANGE_SECS.start(),
                TOKEN_LIFETIME_RANGE_SECS.end()
            ));
        }
    }
}

/// `https://` anywhere, or `http://` only to a loopback address (a test JWKS server).
/// A `trusted_proxies` entry: an address (one host) or network of either family, spelled as
/// IP access list entries are ([`parse_network`]). An IPv4-mapped IPv6 entry
/// (`::ffff:10.0.0.1`, `::ffff:10.0.0.0/104`) means its IPv4 network, since client addresses
/// are compared in their IPv4 form.
pub(crate) fn parse_trusted_proxy(entry: &str) -> Result<IpNet, String> {
    let net = parse_network(entry).ok_or_else(|| {
        format!("invalid CIDR `{entry}`: expected an IPv4 or IPv6 address or network")
    })?;
    let IpNet::V6(v6) = net else {
        return Ok(net);
    };
    let mapped = v6
        .addr()
        .to_ipv4_mapped()
        .zip(v6.prefix_len().checked_sub(96))
        .and_then(|(v4, prefix_len)| Ipv4Net::new(v4, prefix_len).ok());
    Ok(mapped.map_or(net, IpNet::V4))
}

pub(crate) fn check_jwks_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let host = uri.host().ok_or_else(|| format!("`{url}` has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if is_loopback_host(host) => Ok(uri),
        Some("http") => Err(format!(
            "`{url}` is plain http; only loopback JWKS URLs may skip TLS"
        )),
        _ => Err(format!("`{url}` must be an https URL")),
    }
}

/// A usable `redis://` URL: it parses and names a TCP host.
pub(crate) fn is_redis_url(url: &str) -> bool {
    if !url.starts_with("redis://") {
        return false;
    }
    match redis::Client::open(url) {
        Ok(client) => matches!(
            client.get_connection_info().addr(),
            redis::ConnectionAddr::Tcp(host, _) if !host.is_empty()
        ),
        Err(_) => false,
    }
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A DNS name: dot-separated labels of letters, digits and hyphens.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
        let names = Config {
            server_names: vec![
                "*.lakeward.test".into(),
                "gw.example.com".into(),
                "10.0.0.1".into(),
            ],
            ..Config::default()
        };
        assert_eq!(names.validate(), Ok(()));
    }

    #[test]
    fn every_problem_is_reported() {
        let config = Config {
            trusted_proxies: vec!["10.0.0.0/33".into(), "nope".into()],
            workspace_domain: Some("bad domain".into()),
            limits: Limits {
                max_headers: 0,
                ..Limits::default()
            },
            oidc_issuers: vec![OidcIssuer {
                issuer: "https://idp".into(),
                jwks_url: "http://idp.example.com/jwks".into(),
                audiences: vec![],
                algorithms: vec!["none".into(), "HS256".into(), "RS999".into()],
                clock_skew_secs: 301,
                authorized_parties: vec![String::new()],
                max_token_lifetime_secs: 10_000_000_000,
                ..OidcIssuer::default()
            }],
            ..Config::default()
        };
        let problems = config.validate().unwrap_err();
        let all = problems.join("\n");
        for needle in [
            "10.0.0.0/33",
            "nope",
            "bad domain",
            "max_headers",
            "plain http",
            "audiences",
            "`none`",
            "HS256",
            "RS999",
            "clock_skew_secs",
            "authorized_parties",
            "max_token_lifetime_secs",
        ] {
            assert!(all.contains(needle), "missing {needle} in {all}");
        }
        assert_eq!(problems.len(), 12, "{all}");
    }

    #[test]
    fn empty_algorithms_and_loopback_http_jwks() {
        let mut issuer = OidcIssuer {
            issuer: "i".into(),
            jwks_url: "http://127.0.0.1:9/jwks".into(),
            audiences: vec!["a".into()],
            ..OidcIssuer::default()
        };
        let config = |issuer: &OidcIssuer| Config {
            oidc_issuers: vec![issuer.clone()],
            ..Config::default()
        };
        assert_eq!(config(&issuer).validate(), Ok(()));
        issuer.algorithms.clear();
        assert!(config(&issuer).validate().unwrap_err()[0].contains("empty"));
    }

    #[test]
    fn redis_settings() {
        let with = |url: Option<&str>, long_poll: bool| Config {
            redis_url: url.map(str::to_owned),
            control_long_poll: long_poll,
            ..Config::default()
        };
        assert_eq!(
            with(Some("redis://127.0.0.1:6379"), false).validate(),
            Ok(())
        );
        assert_eq!(
            with(Some("redis://:pw@cache.internal:6380/2"), true).validate(),
            Ok(())
        );
        for bad in [
            "rediss://x",
            "127.0.0.1:6379",
            "redis://",
            "redis://:s3cret@h:nope",
        ] {
            let problems = with(Some(bad), true).validate().unwrap_err();
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert!(!problems[0].contains("s3cret"), "{problems:?}");
        }
        // With neither feed, a change made through another gateway would wait for the TTL.
        assert!(with(None, false).validate().unwrap_err()[0].contains("control_long_poll"));
        let no_channel = Config {
            redis_channel: String::new(),
            ..Config::default()
        };
        assert!(no_channel.validate().unwrap_err()[0].contains("redis_channel"));
    }

    #[test]
    fn trusted_proxies_contain_v4_v6_and_mapped() {
        let net = |s: &str| parse_trusted_proxy(s).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap().to_canonical();
        let tens = net("10.0.0.0/8");
        assert!(tens.contains(&ip("10.1.2.3")));
        assert!(tens.contains(&ip("::ffff:10.1.2.3")));
        assert!(!tens.contains(&ip("11.0.0.1")));
        let host = net("127.0.0.1");
        assert!(host.contains(&ip("127.0.0.1")));
        assert!(!host.contains(&ip("127.0.0.2")));
        let v6 = net("fd00::/8");
        assert!(v6.contains(&ip("fd12::1")));
        assert!(!v6.contains(&ip("10.0.0.1")));
        let all = net("0.0.0.0/0");
        assert!(all.contains(&ip("8.8.8.8")));
        // Mapped entries mean their IPv4 network.
        assert_eq!(net("::ffff:10.0.0.1"), net("10.0.0.1/32"));
        assert_eq!(net("::ffff:10.0.0.0/104"), net("10.0.0.0/8"));
    }

    #[test]
    fn trusted_proxies_reject_garbage() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "::1/129",
            "10.0.0.0/+8",
            "x",
        ] {
            assert!(parse_trusted_proxy(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_hardening_defaults_and_bounds() {
        let limits = Limits::default();
        assert_eq!(
            (
                limits.max_connections_per_address,
                limits.max_handshakes_per_address,
                limits.max_chunk_extension_bytes,
            ),
            (256, 32, 4096)
        );
        assert_eq!(
            (
                limits.lingering_time_secs,
                limits.lingering_timeout_secs,
                limits.lingering_max_bytes,
            ),
            (30, 5, 16 << 20)
        );
        let config = Config {
            limits: Limits {
                max_connections_per_address: 0,
                max_handshakes_per_address: 0,
                max_chunk_extension_bytes: 20_000,
                lingering_timeout_secs: 0,
                ..Limits::default()
            },
            ..Config::default()
        };
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        let off = Config {
            limits: Limits {
                lingering_time_secs: 0,
                max_chunk_extension_bytes: 0,
                ..Limits::default()
            },
            ..Config::default()
        };
        assert_eq!(off.validate(), Ok(()));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Config>(r#"{"listen":"127.0.0.1:1","bogus":1}"#);
        assert!(err.is_err());
        let ok: Config = serde_json::from_str(r#"{"limits":{"max_headers":50}}"#).unwrap();
        assert_eq!(ok.limits.max_headers, 50);
        assert_eq!(ok.limits.max_uri_bytes, Limits::default().max_uri_bytes);
    }
}
