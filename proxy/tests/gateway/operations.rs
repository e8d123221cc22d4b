//! The admin listener and shutdown.

use crate::harness::*;
use http::StatusCode;
use lakeward_proxy::{Config, Gateway, GatewayDeps};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_on_the_admin_listener() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    c.get(
        "localhost",
        "/api/2.0/ip-access-lists",
        Some(&gw.tokens.alice),
    )
    .await;
    c.get(
        "localhost",
        "/api/2.0/ip-access-lists",
        Some(&gw.tokens.bob),
    )
    .await;
    c.get("localhost", "/api/2.0/token/list", None).await;

    let (status, text) = gw.admin_get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for series in [
        "gateway_http_requests_total{action=\"ListIpAccessLists\",decision=\"allow\",status=\"200\"} 1",
        "gateway_http_requests_total{action=\"ListIpAccessLists\",decision=\"deny\",status=\"403\"} 1",
        "gateway_http_requests_total{action=\"ListTokens\",decision=\"deny\",status=\"401\"} 1",
        "gateway_authn_failures_total{reason=\"missing\"} 1",
        "gateway_upstream_latency_seconds_count{upstream=\"control\"} 1",
        "gateway_added_latency_seconds_count 3",
        "gateway_authz_decision_seconds_count 2",
        "gateway_policy_reload_failures_total 0",
        "gateway_policy_set_info{version=",
    ] {
        assert!(text.contains(series), "missing `{series}` in\n{text}");
    }
    for private in ["alice", "bob", "/api/2.0", "tok-"] {
        assert!(!text.contains(private), "`{private}` in a metric label");
    }
    assert_eq!(gw.admin_get("/healthz").await.0, StatusCode::OK);
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"ready": true, "policies": true, "snapshot": true, "control": true, "runtime": true, "change_feed": true})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_returns() {
    let mut gw = TestGateway::start().await;
    let reply = gw
        .c()
        .get("localhost", "/api/2.0/token/list", Some(&gw.tokens.alice))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let started = Instant::now();
    gw.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "still accepting"
    );
    // The read's record was flushed on the way out.
    assert!(gw
        .audit_records()
        .iter()
        .any(|r| r["requestId"] == reply.request_id()));
}

fn deps(policy_dir: std::path::PathBuf, audit_dir: std::path::PathBuf) -> GatewayDeps {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    GatewayDeps {
        tls_cert_pem: cert.pem().into_bytes(),
        tls_key_pem: key.serialize_pem().into_bytes(),
        master_secret: lakeward_common::assertion::MasterSecret::generate(),
        control_url: "http://127.0.0.1:9".into(),
        runtime_url: "http://127.0.0.1:9".into(),
        policy_dir,
        audit_dir,
        registry: prometheus::Registry::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_reports_every_policy_and_config_problem() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies");
    std::fs::copy(
        deploy.join("lakeward.cedarschema"),
        policies.join("lakeward.cedarschema"),
    )
    .unwrap();
    std::fs::write(
        policies.join("bad.cedar"),
        "permit (principal, action, resource);\nforbid (principal,\n",
    )
    .unwrap();
    let Err(err) = Gateway::bind(
        test_config(),
        deps(policies.clone(), dir.path().join("audit")),
    )
    .await
    else {
        panic!("a bad policy set must not bind");
    };
    let text = format!("{err:#}");
    assert!(text.contains("bad.cedar:"), "{text}");
    let location = text.split("bad.cedar:").nth(1).unwrap();
    let mut parts = location.split(':');
    let (line, column) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(
        line.parse::<u32>().is_ok() && column.parse::<u32>().is_ok(),
        "{text}"
    );

    std::fs::remove_file(policies.join("bad.cedar")).unwrap();
    let config = Config {
        trusted_proxies: vec!["300.0.0.0/8".into()],
        limits: lakeward_proxy::Limits {
            max_headers: 0,
            ..test_config().limits
        },
        ..test_config()
    };
    let Err(err) = Gateway::bind(config, deps(policies, dir.path().join("audit"))).await else {
        panic!("a bad config must not bind");
    };
    let text = format!("{err:#}");
    assert!(
        text.contains("300.0.0.0/8") && text.contains("max_headers"),
        "{text}"
    );
}
