//! Rate limits: failed authentications throttled per client address before the control plane
//! is asked; admin-set request limits per principal, token, workspace and route group (429
//! `REQUEST_LIMIT_EXCEEDED` with `Retry-After`, nothing forwarded); a rules file reloaded while
//! the gateway runs; counters shared by two gateways through the real Redis; and what an
//! unreachable Redis does, open or closed as configured.
//!
//! Redis is `redis://127.0.0.1:6379` (override with `LAKEWARD_TEST_REDIS_URL`, `skip` to skip
//! the Redis tests). Each test keeps its counters under a key prefix of its own.

use crate::harness::*;
use http::{Method, StatusCode};
use lakeward_common::token::generate_token;
use lakeward_proxy::{Config, FailMode, LimitPer, Quota, RateLimitRule};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const WAREHOUSES: &str = "/api/2.0/sql/warehouses";

fn configured(f: impl Fn(&mut Config) + Send + Sync + 'static) -> Options {
    Options {
        configure: Some(Box::new(f)),
        ..Options::default()
    }
}

fn rule(name: &str, per: LimitPer, paths: &[&str], requests: u32) -> RateLimitRule {
    RateLimitRule {
        name: name.into(),
        per,
        paths: paths.iter().map(|p| p.to_string()).collect(),
        requests,
        period_secs: 3600,
        ..RateLimitRule::default()
    }
}

fn lookups(gw: &TestGateway) -> usize {
    gw.model.lock().unwrap().token_lookups
}

fn received(server: &crate::mock::MockServer, path: &str) -> usize {
    server.received().iter().filter(|r| r.path == path).count()
}

/// A 429 as Databricks sends it: `REQUEST_LIMIT_EXCEEDED`, and a `Retry-After` in whole
/// seconds, returned.
fn assert_limited(reply: &Reply) -> u64 {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.error_code(), "REQUEST_LIMIT_EXCEEDED");
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    retry_after
}

fn unique_prefix() -> String {
    format!("lakeward-test:{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn failed_authentications_are_throttled_per_address_before_the_control_plane() {
    let gw = TestGateway::start_with(configured(|c| {
        c.rate_limits.failed_auth = Quota {
            requests: 5,
            period_secs: 3600,
            burst: None,
        };
    }))
    .await;
    let attacker = gw.c();
    for attempt in 0..5 {
        let reply = attacker
            .get("localhost", WAREHOUSES, Some(&generate_token()))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    assert_eq!(lookups(&gw), 5, "each unknown token was looked up once");
    for _ in 0..50 {
        let reply = attacker
            .get("localhost", WAREHOUSES, Some(&generate_token()))
            .await;
        let retry_after = assert_limited(&reply);
        // The fifth failure left no room: the next is 12 minutes (3600 s / 5) away.
        assert!((700..=720).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(
        lookups(&gw),
        5,
        "past the limit the control plane is not asked"
    );
    // A good token from that address is refused the same way, unlooked-at: the 429 says
    // nothing about the token.
    let reply = attacker
        .get("localhost", WAREHOUSES, Some(&gw.tokens.alice))
        .await;
    assert_limited(&reply);
    assert_eq!(lookups(&gw), 5);
    // Public routes take no credential, so they stay open to it.
    let reply = attacker
        .get("localhost", "/.well-known/databricks-config", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Another address authenticates as usual.
    let other = gw.client(Ipv4Addr::new(127, 0, 0, 2), false);
    let reply = other
        .get("localhost", WAREHOUSES, Some(&gw.tokens.alice))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        received(&gw.runtime, WAREHOUSES),
        1,
        "only the other address's"
    );
    assert_eq!(
        gw.metric("gateway_rate_limited_total{limit=\"failed_auth\"}")
            .await,
        Some(51.0)
    );
}

#[tokio::test]
async fn request_limits_per_principal_token_workspace_and_route_group() {
    let gw = TestGateway::start_with(configured(|c| {
        c.rate_limits.rules = vec![
            rule("warehouses", LimitPer::Principal, &[WAREHOUSES], 2),
            rule("me", LimitPer::Token, &["/api/2.0/preview/scim/v2/Me"], 2),
            rule("tokens", LimitPer::Workspace, &["/api/2.0/token/list"], 2),
            RateLimitRule {
                methods: vec!["POST".into()],
                ..rule(
                    "statements",
                    LimitPer::RouteGroup,
                    &["/api/2.0/sql/statements"],
                    3,
                )
            },
        ];
    }))
    .await;
    let c = gw.c();
    let t = &gw.tokens;

    // Per principal: alice's third call is refused, bob has his own budget.
    for _ in 0..2 {
        let reply = c.get("localhost", WAREHOUSES, Some(&t.alice)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let reply = c.get("localhost", WAREHOUSES, Some(&t.alice)).await;
    let retry_after = assert_limited(&reply);
    assert!((1700..=1800).contains(&retry_after), "{retry_after}");
    assert_eq!(
        received(&gw.runtime, WAREHOUSES),
        2,
        "the refused call was not forwarded"
    );
    let reply = c.get("localhost", WAREHOUSES, Some(&t.bob)).await;
    assert_eq!(reply.status, StatusCode::OK);

    // Per token: the same principal with another token has another budget.
    let me = "/api/2.0/preview/scim/v2/Me";
    for _ in 0..2 {
        assert_eq!(
            c.get("localhost", me, Some(&t.alice)).await.status,
            StatusCode::OK
        );
    }
    assert_limited(&c.get("localhost", me, Some(&t.alice)).await);
    assert_eq!(
        c.get("localhost", me, Some(&t.alice_ws2)).await.status,
        StatusCode::OK
    );

    // Per workspace: everyone in ws1 shares one budget; ws2 has its own.
    let list = "/api/2.0/token/list";
    assert_eq!(
        c.get("localhost", list, Some(&t.alice)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.get("localhost", list, Some(&t.bob)).await.status,
        StatusCode::OK
    );
    assert_limited(&c.get("localhost", list, Some(&t.carol)).await);
    let ws2 = format!("ws2.{DOMAIN}");
    assert_eq!(
        c.get(&ws2, list, Some(&t.alice)).await.status,
        StatusCode::OK
    );

    // Per route group: the group's POSTs share one budget whoever sends them; its GETs are
    // not in the group.
    let statements = "/api/2.0/sql/statements";
    let body = || Some(serde_json::json!({"statement": "SELECT 1", "warehouse_id": "w"}));
    for token in [&t.alice, &t.bob, &t.alice] {
        let reply = c
            .send(
                Method::POST,
                "localhost",
                statements,
                Some(token),
                &[],
                body(),
            )
            .await;
        assert_ne!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    }
    let reply = c
        .send(
            Method::POST,
            "localhost",
            statements,
            Some(&t.carol),
            &[],
            body(),
        )
        .await;
    assert_limited(&reply);
    let reply = c
        .get("localhost", "/api/2.0/sql/statements/abc", Some(&t.carol))
        .await;
    assert_ne!(reply.status, StatusCode::TOO_MANY_REQUESTS);

    for (rule, refused) in [
        ("warehouses", 1.0),
        ("me", 1.0),
        ("tokens", 1.0),
        ("statements", 1.0),
    ] {
        let series = format!("gateway_rate_limited_total{{limit=\"{rule}\"}}");
        assert_eq!(gw.metric(&series).await, Some(refused), "{series}");
    }
    // Refusals are audited like any other answer.
    let reply = c.get("localhost", WAREHOUSES, Some(&t.alice)).await;
    assert_limited(&reply);
    let record = gw.audit_record(&reply.request_id()).await;
    assert_eq!(record["response"]["statusCode"], 429, "{record}");
}

/// Waits until `check` holds, polling.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_rules_file_is_reloaded_and_a_bad_one_keeps_the_rules_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rate-limits.toml");
    let write = |text: &str| std::fs::write(&file, text).unwrap();
    write("[[rules]]\nname = \"one\"\nper = \"principal\"\npaths = [\"/api/2.0/sql/warehouses\"]\nrequests = 1\nperiod_secs = 3600\n");
    let path = file.clone();
    let gw = TestGateway::start_with(configured(move |c| {
        c.rate_limits.rules_file = Some(path.clone());
    }))
    .await;
    let c = gw.c();
    let alice = gw.tokens.alice.clone();
    assert_eq!(
        c.get("localhost", WAREHOUSES, Some(&alice)).await.status,
        StatusCode::OK
    );
    assert_limited(&c.get("localhost", WAREHOUSES, Some(&alice)).await);

    write("[[rules]]\nname = \"broken\"\nrequests = \"many\"\n");
    eventually("the bad file is rejected", || async {
        gw.metric("gateway_rate_limit_reload_failures_total").await == Some(1.0)
    })
    .await;
    assert_limited(&c.get("localhost", WAREHOUSES, Some(&alice)).await);

    write("[[rules]]\nname = \"roomy\"\nper = \"principal\"\npaths = [\"/api/2.0/sql/warehouses\"]\nrequests = 1000\nperiod_secs = 3600\n");
    eventually("the new rules are in force", || async {
        c.get("localhost", WAREHOUSES, Some(&alice)).await.status == StatusCode::OK
    })
    .await;
}

fn redis_url() -> Option<String> {
    match std::env::var("LAKEWARD_TEST_REDIS_URL") {
        Ok(url) if url == "skip" => None,
        Ok(url) => Some(url),
        Err(_) => Some("redis://127.0.0.1:6379".to_owned()),
    }
}

/// A gateway whose limits live in Redis at `url` under `prefix`.
async fn with_redis(
    url: &str,
    prefix: &str,
    mode: FailMode,
    rules: Vec<RateLimitRule>,
) -> TestGateway {
    let (url, prefix, channel) = (url.to_owned(), prefix.to_owned(), unique_prefix());
    TestGateway::start_with(configured(move |c| {
        c.redis_url = Some(url.clone());
        c.redis_channel = channel.clone();
        c.rate_limits.redis_key_prefix = prefix.clone();
        c.rate_limits.redis_unavailable = mode;
        // Generous: a test machine under load must not make Redis look down.
        c.rate_limits.redis_timeout_ms = 2000;
        c.rate_limits.rules = rules.clone();
    }))
    .await
}

#[tokio::test]
async fn a_limit_holds_across_two_gateways_sharing_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let rules = vec![rule("warehouses", LimitPer::Principal, &[WAREHOUSES], 3)];
    let one = with_redis(&url, &prefix, FailMode::Closed, rules.clone()).await;
    let two = with_redis(&url, &prefix, FailMode::Closed, rules).await;
    for gw in [&one, &two] {
        eventually("the limiter is connected to Redis", || async {
            gw.metric("gateway_rate_limit_redis_up").await == Some(1.0)
        })
        .await;
    }
    // Three calls of alice's, spread over both replicas, use up her budget on both.
    for gw in [&one, &two, &one] {
        let reply = gw
            .c()
            .get("localhost", WAREHOUSES, Some(&gw.tokens.alice))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    for gw in [&two, &one] {
        let reply = gw
            .c()
            .get("localhost", WAREHOUSES, Some(&gw.tokens.alice))
            .await;
        let retry_after = assert_limited(&reply);
        assert!((1100..=1200).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(received(&one.runtime, WAREHOUSES), 2);
    assert_eq!(received(&two.runtime, WAREHOUSES), 1);
    // Bob's budget is his own.
    let reply = two
        .c()
        .get("localhost", WAREHOUSES, Some(&two.tokens.bob))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    for gw in [&one, &two] {
        let fallbacks = gw
            .metric("gateway_rate_limit_fallbacks_total{fallback=\"closed\"}")
            .await;
        assert_eq!(fallbacks, Some(0.0), "every decision was Redis's");
    }
}

#[tokio::test]
async fn failed_authentications_count_across_gateways_sharing_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let start = |url: String, prefix: String| async move {
        TestGateway::start_with(configured(move |c| {
            c.redis_url = Some(url.clone());
            c.rate_limits.redis_key_prefix = prefix.clone();
            c.rate_limits.redis_timeout_ms = 2000;
            c.rate_limits.failed_auth = Quota {
                requests: 4,
                period_secs: 3600,
                burst: None,
            };
        }))
        .await
    };
    let one = start(url.clone(), prefix.clone()).await;
    let two = start(url, prefix).await;
    for gw in [&one, &two] {
        eventually("the limiter is connected to Redis", || async {
            gw.metric("gateway_rate_limit_redis_up").await == Some(1.0)
        })
        .await;
    }
    for gw in [&one, &two, &one, &two] {
        let reply = gw
            .c()
            .get("localhost", WAREHOUSES, Some(&generate_token()))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // `two` charged the last failure there was room for, and knows it; `one` learns it from
    // Redis at the cost of one more lookup, then refuses on sight too.
    assert_limited(
        &two.c()
            .get("localhost", WAREHOUSES, Some(&generate_token()))
            .await,
    );
    let reply = one
        .c()
        .get("localhost", WAREHOUSES, Some(&generate_token()))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let before = lookups(&one);
    for _ in 0..10 {
        assert_limited(
            &one.c()
                .get("localhost", WAREHOUSES, Some(&generate_token()))
                .await,
        );
    }
    assert_eq!(lookups(&one), before);
}

#[tokio::test]
async fn an_unreachable_redis_fails_open_or_closed_as_configured() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed_port = format!("redis://127.0.0.1:{port}");
    let rules = vec![rule("warehouses", LimitPer::Principal, &[WAREHOUSES], 1)];

    let open = with_redis(
        &closed_port,
        &unique_prefix(),
        FailMode::Open,
        rules.clone(),
    )
    .await;
    for _ in 0..3 {
        let reply = open
            .c()
            .get("localhost", WAREHOUSES, Some(&open.tokens.alice))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "open: let through");
    }
    let series = "gateway_rate_limit_fallbacks_total{fallback=\"open\"}";
    assert_eq!(open.metric(series).await, Some(3.0));
    assert_eq!(open.metric("gateway_rate_limit_redis_up").await, Some(0.0));

    let closed = with_redis(&closed_port, &unique_prefix(), FailMode::Closed, rules).await;
    let reply = closed
        .c()
        .get("localhost", WAREHOUSES, Some(&closed.tokens.alice))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_code(), "TEMPORARILY_UNAVAILABLE");
    assert_eq!(reply.headers["retry-after"], "1");
    assert_eq!(
        received(&closed.runtime, WAREHOUSES),
        0,
        "closed: nothing forwarded"
    );
    let series = "gateway_rate_limit_fallbacks_total{fallback=\"closed\"}";
    assert_eq!(closed.metric(series).await, Some(1.0));
    // Routes no rule covers do not need Redis.
    let reply = closed
        .c()
        .get(
            "localhost",
            "/api/2.0/token/list",
            Some(&closed.tokens.alice),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}
