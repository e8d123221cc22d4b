//! Workspace addressing, path normalization, the host metadata route, HTTP/2.

use crate::harness::*;
use http::{Method, StatusCode, Version};
use std::net::Ipv4Addr;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_known_needs_no_token_and_answers_locally() {
    let gw = TestGateway::start().await;
    let reply = gw
        .c()
        .get("localhost", "/.well-known/databricks-config", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let port = gw.addr.port();
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "workspace_id": "1001",
            "account_id": ACCOUNT,
            "cloud": "AWS",
            "host_type": "WORKSPACE_HOST",
            "oidc_endpoint": format!("https://localhost:{port}/oidc"),
        })
    );
    let reply = gw
        .c()
        .get("ws2.lakeward.test", "/.well-known/databricks-config", None)
        .await;
    assert_eq!(reply.json()["workspace_id"], "1002");
    let reply = gw
        .c()
        .get("localhost", "/w/1003/.well-known/databricks-config", None)
        .await;
    assert_eq!(reply.json()["workspace_id"], "1003");
    assert_eq!(
        reply.json()["oidc_endpoint"],
        format!("https://localhost:{port}/w/1003/oidc")
    );
    // Answered by the gateway itself: nothing reached an upstream.
    assert!(gw.control.received().is_empty());
    assert!(gw.runtime.received().is_empty());
    // Still subject to the IP access lists: ws2 blocks 127.0.0.3.
    let blocked = gw.client(Ipv4Addr::new(127, 0, 0, 3), false);
    let reply = blocked
        .get("ws2.lakeward.test", "/.well-known/databricks-config", None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_prefix_select_the_workspace() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let t = &gw.tokens;

    // Host form.
    let reply = c
        .get(
            "ws2.lakeward.test",
            "/api/2.0/ip-access-lists",
            Some(&t.alice_ws2),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());
    // Path prefix, stripped before forwarding.
    let reply = c
        .get(
            "localhost",
            "/w/1002/api/2.0/ip-access-lists?x=1",
            Some(&t.alice_ws2),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());
    // Bare path: the default workspace.
    let reply = c
        .get("localhost", "/api/2.0/ip-access-lists", Some(&t.alice))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());

    let received = gw.control.received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[0].claims.as_ref().unwrap().workspace_id, Some(WS2));
    assert_eq!(received[1].path, "/api/2.0/ip-access-lists");
    assert_eq!(received[1].query.as_deref(), Some("x=1"));
    assert_eq!(received[1].claims.as_ref().unwrap().workspace_id, Some(WS2));
    assert_eq!(received[2].claims.as_ref().unwrap().workspace_id, Some(WS1));

    // A token works where its owner may use tokens: alice administers ws2, bob is not in it.
    let reply = c
        .get(
            "ws2.lakeward.test",
            "/api/2.0/ip-access-lists",
            Some(&t.alice),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(gw.control.received().len(), 4);
    let reply = c
        .get("ws2.lakeward.test", "/api/2.0/token/list", Some(&t.bob))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gw.control.received().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_mismatched_workspaces_are_refused() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let t = &gw.tokens;
    for (host, path) in [
        ("nope.lakeward.test", "/api/2.0/token/list"),
        ("localhost", "/w/9999/api/2.0/token/list"),
        ("localhost", "/w/abc/api/2.0/token/list"),
        ("ws4.lakeward.test", "/api/2.0/token/list"),
    ] {
        let reply = c.get(host, path, Some(&t.alice)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{host}{path}");
        assert_eq!(
            reply.error_code(),
            "RESOURCE_DOES_NOT_EXIST",
            "{host}{path}"
        );
    }
    // The SDK's workspace header must name the workspace addressed.
    let reply = c
        .send(
            Method::GET,
            "localhost",
            "/api/2.0/token/list",
            Some(&t.alice),
            &[("x-databricks-workspace-id", "1002")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "INVALID_PARAMETER_VALUE");
    let reply = c
        .send(
            Method::GET,
            "localhost",
            "/api/2.0/token/list",
            Some(&t.alice),
            &[("x-databricks-workspace-id", "1001")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Host and prefix naming different workspaces.
    let reply = c
        .get(
            "ws1.lakeward.test",
            "/w/1002/api/2.0/token/list",
            Some(&t.alice),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Host must agree with SNI (SNI is `localhost` here).
    let reply = c
        .send(
            Method::GET,
            "localhost",
            "/api/2.0/token/list",
            Some(&t.alice),
            &[("host", "ws2.lakeward.test")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        gw.control.received().len(),
        1,
        "only the matching request was forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_normalized_or_refused() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let t = &gw.tokens;
    let reply = c
        .get("localhost", "//api//2.0/token/list/", Some(&t.alice))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(gw.control.received()[0].path, "/api/2.0/token/list");

    for path in [
        "/api/2.0/../../internal/v1/snapshot",
        "/api/2.0/token/%2e%2e/list",
        "/api%2F2.0/token/list",
        "/api/2.0/token/list%5C",
    ] {
        let reply = c.get("localhost", path, Some(&t.alice)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
    }
    // The internal API is never routed: 404 after authentication, 401 before it.
    let reply = c
        .get("localhost", "/internal/v1/snapshot", Some(&t.alice))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "ENDPOINT_NOT_FOUND");
    let reply = c.get("localhost", "/internal/v1/snapshot", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gw.control.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_negotiated_by_alpn() {
    let gw = TestGateway::start().await;
    let h2 = gw.client(Ipv4Addr::new(127, 0, 0, 1), true);
    let reply = h2
        .get("localhost", "/.well-known/databricks-config", None)
        .await;
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.status, StatusCode::OK);
    let reply = h2
        .send(
            Method::POST,
            "localhost",
            "/api/2.0/sql/statements",
            Some(&gw.tokens.alice),
            &[],
            Some(serde_json::json!({"statement": "SELECT 1"})),
        )
        .await;
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());
    assert_eq!(reply.json()["upstream"], "runtime");
    let received = gw.runtime.received();
    assert_eq!(received.len(), 1);
    assert_eq!(&received[0].body[..], br#"{"statement":"SELECT 1"}"#);
}
