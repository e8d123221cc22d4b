//! The Redis change feed, against a real Redis: an announced version drops cached tokens, a
//! lost feed makes the gateway trust no cache (tokens go to the control plane, the snapshot is
//! kept younger than 250 ms) until it has re-subscribed and re-fetched, and junk on the channel
//! does no harm.
//!
//! Redis is `redis://127.0.0.1:6379` (override with `LAKEWARD_TEST_REDIS_URL`, `skip` to skip
//! these tests). Each test has a channel of its own, since tests run in parallel. The long-poll
//! is off and every probe goes to the runtime, so no control-plane response can carry a state
//! version: only the feed can tell the gateway of a change.

use crate::harness::*;
use http::StatusCode;
use lakeward_common::token::hash_token;
use lakeward_proxy::test_util::{redis_target, through, Relay};
use std::time::{Duration, Instant};

fn redis_url() -> Option<String> {
    match std::env::var("LAKEWARD_TEST_REDIS_URL") {
        Ok(url) if url == "skip" => None,
        Ok(url) => Some(url),
        Err(_) => Some("redis://127.0.0.1:6379".to_owned()),
    }
}

fn unique_channel() -> String {
    format!("lakeward-test:{}", uuid::Uuid::new_v4().simple())
}

async fn publish(url: &str, channel: &str, message: &str) {
    let client = redis::Client::open(url).unwrap();
    let conn = client.get_multiplexed_async_connection().await;
    assert!(
        conn.is_ok(),
        "Redis at {url} is needed for this test: {:?}",
        conn.err()
    );
    let mut conn = conn.unwrap();
    let _receivers: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(message)
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn start(url: &str, channel: &str) -> TestGateway {
    let gw = TestGateway::start_with(Options {
        redis: Some((url.to_owned(), channel.to_owned())),
        ..Options::default()
    })
    .await;
    wait_for_feed(&gw, 1.0, Duration::from_secs(5)).await;
    gw
}

async fn wait_for_feed(gw: &TestGateway, healthy: f64, within: Duration) {
    let deadline = Instant::now() + within;
    while gw.metric("gateway_change_feed_healthy").await != Some(healthy) {
        assert!(
            Instant::now() < deadline,
            "gateway_change_feed_healthy never became {healthy}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A call answered by the runtime: nothing in its answer speaks of the control plane's state.
async fn probe(gw: &TestGateway, token: &str) -> StatusCode {
    gw.c()
        .get("localhost", "/api/2.0/token-management/tokens", Some(token))
        .await
        .status
}

/// Deletes `token` behind the gateway's back; returns the new state version.
fn revoke(gw: &TestGateway, token: &str) -> u64 {
    let mut model = gw.model.lock().unwrap();
    model.tokens.remove(&hash_token(token));
    model.bump();
    model.snapshot.version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_version_drops_cached_tokens_at_once() {
    let Some(url) = redis_url() else { return };
    let channel = unique_channel();
    let gw = start(&url, &channel).await;
    let alice = gw.tokens.alice.clone();
    assert_eq!(probe(&gw, &alice).await, StatusCode::OK);

    let version = revoke(&gw, &alice);
    // Cached, and nothing has told the gateway: the cache answers.
    assert_eq!(probe(&gw, &alice).await, StatusCode::OK);

    publish(&url, &channel, &version.to_string()).await;
    let published = Instant::now();
    while probe(&gw, &alice).await != StatusCode::UNAUTHORIZED {
        assert!(
            published.elapsed() < Duration::from_secs(1),
            "the revoked token was still accepted 1 s after the announcement"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        gw.metric("gateway_snapshot_version").await,
        Some(version as f64)
    );
    // bob is authenticated (then denied the warehouse list): his token was not touched.
    assert_eq!(probe(&gw, &gw.tokens.bob).await, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_and_foreign_versions_do_no_harm() {
    let Some(url) = redis_url() else { return };
    let channel = unique_channel();
    let gw = start(&url, &channel).await;
    let version = gw.model.lock().unwrap().snapshot.version;
    // Not a number, and a version no control plane of ours has reached (another deployment
    // on the same channel): the first is ignored, the second costs one re-fetch, and neither
    // makes requests wait for a version that will never come.
    publish(&url, &channel, "hello").await;
    publish(&url, &channel, "1000000").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(probe(&gw, &gw.tokens.alice).await, StatusCode::OK);
    assert_eq!(
        gw.metric("gateway_snapshot_version").await,
        Some(version as f64)
    );
    assert_eq!(gw.metric("gateway_change_feed_healthy").await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_feed_trusts_no_cache_until_resynchronised() {
    let Some(url) = redis_url() else { return };
    let channel = unique_channel();
    let relay = Relay::start(redis_target(&url).await).await;
    let gw = start(&through(&url, relay.addr), &channel).await;
    let (alice, bob) = (gw.tokens.alice.clone(), gw.tokens.bob.clone());
    assert_eq!(probe(&gw, &alice).await, StatusCode::OK);
    // bob authenticates, then may not list everyone's tokens.
    assert_eq!(probe(&gw, &bob).await, StatusCode::FORBIDDEN);

    relay.cut();
    wait_for_feed(&gw, 0.0, Duration::from_secs(1)).await;
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "degraded is slower, not unready");
    assert!(body.contains("\"change_feed\":false"), "{body}");

    // Used while degraded (a gateway that cached it now would serve it stale below)...
    assert_eq!(probe(&gw, &alice).await, StatusCode::OK);
    // ... then an unannounced (and, with the feed down, unannounceable) change: the next
    // request sees the revocation, because no token is taken from the cache while degraded...
    revoke(&gw, &alice);
    assert_eq!(probe(&gw, &alice).await, StatusCode::UNAUTHORIZED);
    // ... and a snapshot change (tokens switched off in bob's workspace) once the snapshot in
    // hand is 250 ms old.
    {
        let mut model = gw.model.lock().unwrap();
        model.snapshot.workspaces[0].enable_tokens = false;
        model.bump();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = gw
        .c()
        .get("localhost", "/api/2.0/token-management/tokens", Some(&bob))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert_eq!(
        gw.metric("gateway_authn_failures_total{reason=\"tokens_disabled\"}")
            .await,
        Some(1.0)
    );

    // One more change no request has looked at yet: 127.0.0.1 blocked in the workspace.
    {
        let mut model = gw.model.lock().unwrap();
        let ws1 = &mut model.snapshot.workspaces[0];
        ws1.enable_ip_access_lists = true;
        ws1.ip_access_lists = vec![lakeward_common::internal::IpAccessListRule {
            list_id: "block-loopback".into(),
            list_type: lakeward_common::internal::ListType::Block,
            enabled: true,
            ip_addresses: vec!["127.0.0.1".into()],
        }];
        model.bump();
    }

    relay.restore().await;
    wait_for_feed(&gw, 1.0, Duration::from_secs(10)).await;
    // Nothing was announced for any of the changes; the snapshot loaded after re-subscribing
    // (before the caches are trusted again) accounts for the last one.
    let reply = gw
        .c()
        .get("localhost", "/api/2.0/token-management/tokens", Some(&bob))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    assert!(
        reply.message().contains("is blocked"),
        "{}",
        reply.message()
    );
    assert_eq!(
        gw.metric("gateway_snapshot_version").await,
        Some(gw.model.lock().unwrap().snapshot.version as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_is_noticed_within_a_second() {
    let Some(url) = redis_url() else { return };
    let channel = unique_channel();
    let relay = Relay::start(redis_target(&url).await).await;
    let gw = start(&through(&url, relay.addr), &channel).await;
    let alice = gw.tokens.alice.clone();
    assert_eq!(probe(&gw, &alice).await, StatusCode::OK);

    // No socket closes: only the unanswered PING can tell. A version published now is lost,
    // so the cache must stop answering within the second.
    relay.freeze(true);
    let version = revoke(&gw, &alice);
    publish(&url, &channel, &version.to_string()).await;
    let frozen = Instant::now();
    while probe(&gw, &alice).await != StatusCode::UNAUTHORIZED {
        assert!(
            frozen.elapsed() < Duration::from_secs(1),
            "a revoked token was accepted for 1 s behind a partition"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_feed(&gw, 0.0, Duration::from_secs(1)).await;

    relay.freeze(false);
    wait_for_feed(&gw, 1.0, Duration::from_secs(10)).await;
    assert_eq!(probe(&gw, &alice).await, StatusCode::UNAUTHORIZED);
}
