//! State versions published on Redis, against the real Redis (see `test_support`). Tests run
//! in parallel, so each listens on a channel of its own and waits for the versions it expects
//! rather than counting messages.

use crate::test_support::{both_backends, redis_url, Db, Harness};
use axum::http::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Subscribes to `channel` on a thread of its own (with the blocking client) and forwards
/// every payload; returns once the subscription is in place.
async fn subscribe(url: &str, channel: &str) -> mpsc::UnboundedReceiver<String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (url, channel) = (url.to_owned(), channel.to_owned());
    std::thread::spawn(move || {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(&channel).unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if tx.send(String::new()).is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !tx.is_closed() {
            if let Ok(message) = pubsub.get_message() {
                if tx.send(message.get_payload::<String>().unwrap()).is_err() {
                    return;
                }
            }
        }
    });
    assert_eq!(rx.recv().await.as_deref(), Some(""), "subscribed");
    rx
}

/// Waits until `version` arrives (other, coalesced or later versions may come first).
async fn expect_version(rx: &mut mpsc::UnboundedReceiver<String>, version: u64) {
    let wanted = version.to_string();
    let wait = async {
        while let Some(payload) = rx.recv().await {
            let seen: u64 = payload.parse().expect("a decimal version");
            if seen >= version {
                return payload;
            }
        }
        String::new()
    };
    let got = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("version {version} was not published"));
    assert_eq!(got, wanted);
}

async fn every_commit_is_published(db: Db) {
    let Some(url) = redis_url() else {
        eprintln!("skipped: LAKEWARD_TEST_REDIS_URL=skip");
        return;
    };
    let channel = format!("lakeward:test:{}", uuid::Uuid::new_v4().simple());
    let mut rx = subscribe(&url, &channel).await;
    let h = Harness::publishing(db, &url, &channel).await;
    let r = h
        .admin(
            Method::PATCH,
            "/api/2.0/workspace-conf",
            Some(json!({"maxTokenLifetimeDays": "90"})),
        )
        .await;
    r.expect(204);
    expect_version(&mut rx, r.version()).await;
    let r = h
        .admin(
            Method::PATCH,
            "/api/2.0/permissions/authorization/tokens",
            Some(json!({"access_control_list": []})),
        )
        .await;
    r.expect(200);
    expect_version(&mut rx, r.version()).await;
    // A refused request commits nothing and publishes nothing new.
    h.admin(
        Method::POST,
        "/api/2.0/preview/scim/v2/Groups",
        Some(json!({"displayName": ""})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    let r = h
        .admin(
            Method::POST,
            "/api/2.0/preview/scim/v2/Groups",
            Some(json!({"displayName": "g"})),
        )
        .await;
    r.expect(201);
    expect_version(&mut rx, r.version()).await;
}

/// With Redis unreachable, writes succeed as before and without waiting for it.
async fn an_unreachable_redis_fails_nothing(db: Db) {
    let h = Harness::publishing(db, "redis://:hunter2@127.0.0.1:1", "lakeward:test:nowhere").await;
    let started = Instant::now();
    for n in 0..5 {
        h.admin(
            Method::PATCH,
            "/api/2.0/workspace-conf",
            Some(json!({"maxTokenLifetimeDays": (90 + n).to_string()})),
        )
        .await
        .expect(204);
    }
    h.admin(
        Method::POST,
        "/api/2.0/token/create",
        Some(json!({"lifetime_seconds": 60})),
    )
    .await
    .expect(200);
    assert!(started.elapsed() < Duration::from_secs(5));
}

both_backends!(
    every_commit_is_published,
    an_unreachable_redis_fails_nothing
);
