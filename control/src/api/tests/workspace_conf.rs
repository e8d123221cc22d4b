//! Workspace-conf reads and writes.

use crate::test_support::{both_backends, Db, Harness};
use axum::http::Method;
use serde_json::json;

const CONF: &str = "/api/2.0/workspace-conf";

async fn defaults_and_round_trip(db: Db) {
    let h = Harness::new(db).await;
    let r = h
        .admin(
            Method::GET,
            &format!("{CONF}?keys=enableIpAccessLists%2CmaxTokenLifetimeDays"),
            None,
        )
        .await;
    r.expect(200);
    assert_eq!(
        r.json,
        json!({"enableIpAccessLists": "false", "maxTokenLifetimeDays": "0"})
    );
    let all = h.admin(Method::GET, CONF, None).await;
    assert_eq!(all.json["enableTokensConfig"], "true");

    let r = h
        .admin(
            Method::PATCH,
            CONF,
            Some(json!({"enableIpAccessLists": "true", "maxTokenLifetimeDays": "90"})),
        )
        .await;
    r.expect(204);
    let r = h
        .admin(
            Method::GET,
            &format!("{CONF}?keys=enableIpAccessLists,maxTokenLifetimeDays"),
            None,
        )
        .await;
    assert_eq!(
        r.json,
        json!({"enableIpAccessLists": "true", "maxTokenLifetimeDays": "90"})
    );
    // Members may read, only admins may write.
    let alice = h.add_user("alice@example.com").await;
    let claims = h.claims(&alice);
    h.call(
        Method::GET,
        &format!("{CONF}?keys=enableIpAccessLists"),
        Some(&claims),
        None,
    )
    .await
    .expect(200);
    h.call(
        Method::PATCH,
        CONF,
        Some(&claims),
        Some(json!({"enableTokensConfig": "false"})),
    )
    .await
    .expect_error(403, "PERMISSION_DENIED");
}

async fn bad_keys_and_values(db: Db) {
    let h = Harness::new(db).await;
    let r = h
        .admin(
            Method::GET,
            &format!("{CONF}?keys=enableIpAccessLists,bogusKey"),
            None,
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(r.json["message"].as_str().unwrap().contains("bogusKey"));
    for (body, named) in [
        (json!({"bogusKey": "1"}), "bogusKey"),
        (
            json!({"enableIpAccessLists": "maybe"}),
            "enableIpAccessLists",
        ),
        (
            json!({"maxTokenLifetimeDays": "999"}),
            "maxTokenLifetimeDays",
        ),
        (
            json!({"maxTokenLifetimeDays": "ten"}),
            "maxTokenLifetimeDays",
        ),
        (
            json!({"enableTokensConfig": ["true"]}),
            "enableTokensConfig",
        ),
    ] {
        let r = h.admin(Method::PATCH, CONF, Some(body)).await;
        r.expect_error(400, "INVALID_PARAMETER_VALUE");
        assert!(
            r.json["message"].as_str().unwrap().contains(named),
            "{}",
            r.json
        );
    }
    // One bad key: nothing is written, not even the good ones.
    h.admin(
        Method::PATCH,
        CONF,
        Some(json!({"maxTokenLifetimeDays": "5", "nope": "x"})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    let r = h
        .admin(
            Method::GET,
            &format!("{CONF}?keys=maxTokenLifetimeDays"),
            None,
        )
        .await;
    assert_eq!(r.json["maxTokenLifetimeDays"], "0");
    h.admin(Method::PATCH, CONF, Some(json!(["not", "a", "map"])))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
}

both_backends!(defaults_and_round_trip, bad_keys_and_values);
