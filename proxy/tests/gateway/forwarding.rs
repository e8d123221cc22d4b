//! What reaches the upstreams (and what does not), and upstream failures.

use crate::harness::*;
use http::{Method, StatusCode};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_and_hop_by_hop_headers_never_reach_the_upstream() {
    let gw = TestGateway::start().await;
    // Raw bytes, so header names keep the client's spelling on the wire.
    let request = format!(
        "GET /api/2.0/token/list HTTP/1.1\r\n\
         Host: localhost\r\n\
         Authorization: Bearer {}\r\n\
         X-Lakeward-Identity: forged\r\n\
         x-LAKEWARD-identity: forged-too\r\n\
         X-LAKEWARD-Other: 1\r\n\
         Connection: close, X-Custom-Hop\r\n\
         X-Custom-Hop: secret\r\n\
         Keep-Alive: timeout=5\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
         Proxy-Connection: keep-alive\r\n\
         TE: trailers\r\n\
         X-Kept: yes\r\n\r\n",
        gw.tokens.alice
    );
    let response = raw_exchange(&gw, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        !lower.contains("x-lakeward"),
        "internal headers leaked to the client: {response}"
    );
    assert!(lower.contains("x-request-id:"));

    let received = gw.control.received();
    assert_eq!(received.len(), 1);
    let headers = &received[0].headers;
    for gone in [
        "authorization",
        "x-lakeward-other",
        "x-custom-hop",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
    ] {
        assert!(headers.get(gone).is_none(), "{gone} reached the upstream");
    }
    let identities: Vec<_> = headers.get_all("x-lakeward-identity").iter().collect();
    assert_eq!(identities.len(), 1, "exactly the gateway's assertion");
    assert_eq!(received[0].claims.as_ref().unwrap().sub, "100");
    assert_eq!(headers["x-kept"], "yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_over_http2_is_replaced() {
    let gw = TestGateway::start().await;
    let h2 = gw.client(Ipv4Addr::new(127, 0, 0, 1), true);
    let forged = gw
        .master
        .key_for(lakeward_common::assertion::Audience::Runtime)
        .sign(lakeward_common::assertion::IdentityClaims::gateway(
            ACCOUNT, "x",
        ))
        .unwrap();
    let reply = h2
        .send(
            Method::GET,
            "localhost",
            "/api/2.0/sql/warehouses",
            Some(&gw.tokens.alice),
            &[("x-lakeward-identity", &forged)],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let received = gw.runtime.received();
    let claims = received[0].claims.as_ref().unwrap();
    assert_eq!(
        claims.sub, "100",
        "the client's (validly signed!) assertion was replaced"
    );
    assert!(received[0].headers.get("authorization").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_upstream_is_a_quick_502() {
    let gw = TestGateway::start_with(Options {
        runtime_down: true,
        no_wait: true,
        ..Options::default()
    })
    .await;
    // Readiness reports the runtime.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, body) = gw.admin_get("/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        if body.contains("\"snapshot\":true") {
            assert!(body.contains("\"runtime\":false"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let reply = gw
        .c()
        .send(
            Method::POST,
            "localhost",
            "/api/2.0/sql/statements",
            Some(&gw.tokens.alice),
            &[],
            Some(serde_json::json!({"statement": "SELECT 1"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_code(), "BAD_GATEWAY");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_is_a_504_at_the_timeout() {
    let gw = TestGateway::start().await;
    let started = Instant::now();
    let reply = gw
        .c()
        .get(
            "localhost",
            "/api/2.0/sql/statements/slow",
            Some(&gw.tokens.alice),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.error_code(), "DEADLINE_EXCEEDED");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}
