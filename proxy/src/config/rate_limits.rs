//! The settings of the rate limits (`[gateway.rate_limits]`) and of load shedding
//! (`[gateway.overload]`), and their checks. Rules may also come from a file of their own
//! (`rules_file`), which the gateway re-reads while it runs; [`RulesFile`] is its shape.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;

/// Rate limits: failed authentications per client address, and the admins' request limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Failed authentications (a credential presented and refused) allowed per client address
    /// (an IPv6 address counts by its /64). Past it the address gets 429 with `Retry-After`,
    /// before the control plane is asked about its tokens. `requests = 0` turns it off.
    pub failed_auth: Quota,
    /// Request limits, answered 429 `REQUEST_LIMIT_EXCEEDED` with `Retry-After`. Fixed for the
    /// life of the process; rules that must change while it runs go in `rules_file`.
    pub rules: Vec<RateLimitRule>,
    /// A TOML file of further rules (`[[rules]]` tables, as here), re-read every
    /// `policy_poll_interval_ms` when it changed and on SIGHUP. A file that does not load is
    /// logged and counted, and the rules in force stay.
    pub rules_file: Option<PathBuf>,
    /// What a request limit does while `gateway.redis_url` is set but Redis cannot be
    /// reached in time: `open` lets the request go on, `closed` answers 503. Either way a
    /// metric counts it and a log line says so. Failed authentications are then counted per
    /// process, whatever this says.
    pub redis_unavailable: FailMode,
    /// How long one decision may wait for Redis before `redis_unavailable` applies.
    pub redis_timeout_ms: u64,
    /// Prefix of the counters' keys in Redis. Deployments sharing a Redis each need their own.
    pub redis_key_prefix: String,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            failed_auth: Quota {
                requests: 30,
                period_secs: 60,
                burst: None,
            },
            rules: Vec::new(),
            rules_file: None,
            redis_unavailable: FailMode::Open,
            redis_timeout_ms: 50,
            redis_key_prefix: "lakeward:rl".to_owned(),
        }
    }
}

/// `requests` per `period_secs`, of which up to `burst` may come at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quota {
    pub requests: u32,
    pub period_secs: u32,
    /// Unset: `requests` (the whole period's allowance at once).
    pub burst: Option<u32>,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            requests: 0,
            period_secs: 1,
            burst: None,
        }
    }
}

/// Whether a limit that cannot be decided lets the request through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    Open,
    Closed,
}

/// What one counter of a rule is kept per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitPer {
    /// The authenticated principal (its id); anonymous calls are not counted.
    Principal,
    /// The personal access token used; other credentials are not counted.
    Token,
    /// The workspace addressed; account-level calls are not counted.
    Workspace,
    /// One counter for every request the rule matches, whoever makes it: the route group's
    /// own budget, shared by the whole deployment.
    RouteGroup,
}

/// One admin-set request limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitRule {
    /// Unique; names the rule in logs, the metric label and the counters' keys.
    pub name: String,
    pub per: LimitPer,
    /// The route group: path prefixes (after any `/w/<id>` prefix, matched at segment
    /// boundaries). Empty: every path.
    pub paths: Vec<String>,
    /// Methods the rule counts (`GET`, `POST`, ...). Empty: every method.
    pub methods: Vec<String>,
    /// Only these principals (user names or ids) are counted. Empty: everyone.
    pub principals: Vec<String>,
    /// Only requests addressed to these workspaces are counted. Empty: every scope.
    pub workspaces: Vec<i64>,
    pub requests: u32,
    pub period_secs: u32,
    /// Unset: `requests`.
    pub burst: Option<u32>,
}

impl Default for RateLimitRule {
    fn default() -> Self {
        RateLimitRule {
            name: String::new(),
            per: LimitPer::Principal,
            paths: Vec::new(),
            methods: Vec::new(),
            principals: Vec::new(),
            workspaces: Vec::new(),
            requests: 0,
            period_secs: 1,
            burst: None,
        }
    }
}

/// The shape of `rules_file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesFile {
    pub rules: Vec<RateLimitRule>,
}

/// Bounds past which the gateway sheds load (503 with `Retry-After`) before doing any work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overload {
    /// Requests being handled at once, from arrival until their response head. A request
    /// past it is answered 503 before admission reads its body: no control-plane lookup, no
    /// Cedar decision, nothing forwarded.
    pub max_in_flight_requests: usize,
    /// Token and principal lookups at the control plane at once (cache misses only). A
    /// request that would need one more gets 503 instead of asking.
    pub max_control_lookups: usize,
}

impl Default for Overload {
    fn default() -> Self {
        Overload {
            max_in_flight_requests: 1024,
            max_control_lookups: 64,
        }
    }
}

/// The longest period a quota may have: a day.
const MAX_PERIOD_SECS: u32 = 86_400;

impl RateLimits {
    pub(crate) fn validate(&self, problems: &mut Vec<String>) {
        check_quota(
            "rate_limits.failed_auth",
            self.failed_auth.requests,
            self.failed_auth.period_secs,
            self.failed_auth.burst,
            true,
            problems,
        );
        validate_rules("rate_limits.rules", &self.rules, problems);
        if !(1..=10_000).contains(&self.redis_timeout_ms) {
            problems.push(format!(
                "`rate_limits.redis_timeout_ms` is {}; it must be between 1 and 10000",
                self.redis_timeout_ms
            ));
        }
        let prefix = &self.redis_key_prefix;
        if prefix.is_empty() || prefix.len() > 128 || prefix.chars().any(char::is_whitespace) {
            problems.push(
                "`rate_limits.redis_key_prefix` must be 1 to 128 characters without spaces"
                    .to_owned(),
            );
        }
    }
}

/// Checks `rules` (`at` names where they came from); names must be unique among them.
pub(crate) fn validate_rules(at: &str, rules: &[RateLimitRule], problems: &mut Vec<String>) {
    let mut names = HashSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let name_ok = !rule.name.is_empty()
            && rule.name.len() <= 64
            && rule
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            problems.push(format!(
                "`{here}.name` must be 1 to 64 letters, digits, `-` or `_`"
            ));
        } else if !names.insert(rule.name.as_str()) {
            problems.push(format!("`{here}`: rule `{}` is named twice", rule.name));
        }
        check_quota(
            &here,
            rule.requests,
            rule.period_secs,
            rule.burst,
            false,
            problems,
        );
        for path in &rule.paths {
            if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
                problems.push(format!(
                    "`{here}.paths`: `{path}` must be a path starting with `/`"
                ));
            }
        }
        for method in &rule.methods {
            if http::Method::from_bytes(method.as_bytes()).is_err()
                || method.bytes().any(|b| b.is_ascii_lowercase())
            {
                problems.push(format!(
                    "`{here}.methods`: `{method}` is not an HTTP method in capitals"
                ));
            }
        }
        if rule.per == LimitPer::RouteGroup && rule.paths.is_empty() && rule.methods.is_empty() {
            problems.push(format!(
                "`{here}`: `per = \"route_group\"` needs `paths` or `methods` naming the group"
            ));
        }
    }
}

fn check_quota(
    at: &str,
    requests: u32,
    period_secs: u32,
    burst: Option<u32>,
    may_be_off: bool,
    problems: &mut Vec<String>,
) {
    if requests == 0 && !may_be_off {
        problems.push(format!("`{at}.requests` must be at least 1"));
    }
    if !(1..=MAX_PERIOD_SECS).contains(&period_secs) {
        problems.push(format!(
            "`{at}.period_secs` is {period_secs}; it must be between 1 and {MAX_PERIOD_SECS}"
        ));
    }
    if burst == Some(0) {
        problems.push(format!("`{at}.burst` must be at least 1"));
    }
}

impl Overload {
    pub(crate) fn validate(&self, problems: &mut Vec<String>) {
        let bounds = [
            ("max_in_flight_requests", self.max_in_flight_requests),
            ("max_control_lookups", self.max_control_lookups),
        ];
        for (name, value) in bounds {
            if !(1..=1 << 20).contains(&value) {
                problems.push(format!(
                    "`overload.{name}` is {value}; it must be between 1 and {}",
                    1 << 20
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_rules_are_reported() {
        let mut problems = Vec::new();
        RateLimits::default().validate(&mut problems);
        Overload::default().validate(&mut problems);
        assert_eq!(problems, Vec::<String>::new());

        let rule = |name: &str| RateLimitRule {
            name: name.into(),
            requests: 10,
            ..RateLimitRule::default()
        };
        let limits = RateLimits {
            rules: vec![
                rule("a"),
                rule("a"),
                rule("bad name"),
                RateLimitRule {
                    per: LimitPer::RouteGroup,
                    requests: 0,
                    period_secs: 0,
                    paths: vec!["api/2.0".into()],
                    methods: vec!["get".into()],
                    ..rule("b")
                },
                RateLimitRule {
                    per: LimitPer::RouteGroup,
                    ..rule("c")
                },
            ],
            redis_timeout_ms: 0,
            ..RateLimits::default()
        };
        let mut problems = Vec::new();
        limits.validate(&mut problems);
        let text = problems.join("\n");
        for expected in [
            "rule `a` is named twice",
            "`rate_limits.rules[2].name`",
            "`rate_limits.rules[3].requests` must be at least 1",
            "`rate_limits.rules[3].period_secs` is 0",
            "`api/2.0` must be a path",
            "`get` is not an HTTP method",
            "`rate_limits.rules[4]`: `per = \"route_group\"` needs",
            "`rate_limits.redis_timeout_ms` is 0",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
    }
}
