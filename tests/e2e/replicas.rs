//! Two gateway replicas in front of one control plane, sharing Redis: a change made through
//! one is enforced by the other within a second, and a replica that loses Redis asks the
//! control plane rather than trust its caches.
//!
//! Replica A is the gateway of a full [`TestLakeward`]; replica B is a second
//! [`lakeward_proxy::Gateway`] on the same data directory's secrets, certificate and policies,
//! pointed at A's control plane and runtime. Both have the long-poll turned off, and B is
//! probed only on a runtime route (whose answers carry no state version), so Redis is the only
//! way B can hear of a change made through A.
//!
//! Redis is `redis://127.0.0.1:6379` (override with `LAKEWARD_TEST_REDIS_URL`, `skip` to skip
//! these tests). Each test uses a channel of its own: tests run in parallel, and although a
//! foreign version would only cost a replica an extra cache drop, a test that must fail when
//! the subscriber does nothing should hear only its own control plane.

use http::StatusCode;
use lakeward_common::assertion::MasterSecret;
use lakeward_proxy::test_util::{redis_target, through, Relay};
use lakeward_tests::{plain_get, Client, TestLakeward};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

fn redis_url() -> Option<String> {
    match std::env::var("LAKEWARD_TEST_REDIS_URL") {
        Ok(url) if url == "skip" => None,
        Ok(url) => Some(url),
        Err(_) => Some("redis://127.0.0.1:6379".to_owned()),
    }
}

/// Replica A: a whole Lakeward whose control plane publishes on `channel` and whose gateway
/// follows it.
async fn start_a(url: &str, channel: &str) -> TestLakeward {
    TestLakeward::start_with(|c| {
        c.control.redis_url = Some(url.to_owned());
        c.control.redis_channel = channel.to_owned();
        c.gateway.redis_url = Some(url.to_owned());
        c.gateway.redis_channel = channel.to_owned();
        c.gateway.control_long_poll = false;
    })
    .await
}

/// Replica B: a second gateway in front of A's control plane and runtime.
struct Replica {
    addr: SocketAddr,
    admin: SocketAddr,
    ca_cert: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _audit: tempfile::TempDir,
}

impl Replica {
    async fn start(a: &TestLakeward, redis_url: &str, channel: &str) -> Replica {
        let dir = a.data_dir();
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
        let master = MasterSecret::from_hex(&String::from_utf8(read("identity.key")).unwrap())
            .expect("the data directory's master secret");
        let audit = tempfile::tempdir().unwrap();
        let config = lakeward_proxy::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            default_workspace_id: Some(a.running.default_workspace_id),
            redis_url: Some(redis_url.to_owned()),
            redis_channel: channel.to_owned(),
            control_long_poll: false,
            ..lakeward_proxy::Config::default()
        };
        let deps = lakeward_proxy::GatewayDeps {
            tls_cert_pem: read("server.pem"),
            tls_key_pem: read("server-key.pem"),
            master_secret: master,
            control_url: format!("http://{}", a.running.control_addr),
            runtime_url: format!("http://{}", a.running.runtime_addr),
            policy_dir: dir.join("policies"),
            audit_dir: audit.path().to_owned(),
            registry: prometheus::Registry::new(),
        };
        let gateway = lakeward_proxy::Gateway::bind(config, deps).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let replica = Replica {
            addr: gateway.local_addr(),
            admin: gateway.admin_addr(),
            ca_cert: a.running.ca_cert.clone(),
            stop: Some(stop),
            _audit: audit,
        };
        tokio::spawn(gateway.run(async move {
            let _ = stopped.await;
        }));
        replica.wait_for_feed(1, Duration::from_secs(10)).await;
        replica
    }

    fn client(&self) -> Client {
        self.client_from("127.0.0.1".parse().unwrap())
    }

    fn client_from(&self, source: IpAddr) -> Client {
        Client::new(
            &self.ca_cert,
            source,
            format!("https://127.0.0.1:{}", self.addr.port()),
        )
        .unwrap()
    }

    async fn feed_healthy(&self) -> Option<i64> {
        let (_, _, body) = plain_get(&format!("http://{}/metrics", self.admin))
            .await
            .unwrap();
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix("gateway_change_feed_healthy "))
            .and_then(|v| v.trim().parse().ok())
    }

    async fn wait_for_feed(&self, healthy: i64, within: Duration) {
        let deadline = Instant::now() + within;
        while self.feed_healthy().await != Some(healthy) {
            assert!(
                Instant::now() < deadline,
                "replica B's gateway_change_feed_healthy never became {healthy}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A call the runtime answers (501 until the data plane lands): it authenticates the token,
/// and nothing in its answer speaks of the control plane's state.
async fn probe(client: &Client, token: &str) -> StatusCode {
    client.get("/api/2.0/sql/warehouses", token).await.status
}

async fn delete_token(a: &TestLakeward, client: &Client, token_id: &str) {
    let deleted = client
        .post(
            "/api/2.0/token/delete",
            &a.admin_token,
            json!({"token_id": token_id}),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
}

/// Polls every 50 ms until `probe` answers `expected`; fails after `within`.
async fn flips_to(
    expected: StatusCode,
    within: Duration,
    mut probe: impl AsyncFnMut() -> StatusCode,
) -> Duration {
    let started = Instant::now();
    loop {
        let status = probe().await;
        if status == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "still {status} {:?} after the change, not {expected}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_one_replica_is_refused_by_the_other_within_a_second() {
    let Some(url) = redis_url() else { return };
    let channel = format!("lakeward-e2e:{}", uuid::Uuid::new_v4().simple());
    let a = start_a(&url, &channel).await;
    let b = Replica::start(&a, &url, &channel).await;
    let (via_a, via_b) = (a.client(), b.client());

    let (token, token_id) = via_a
        .create_token(&a.admin_token, json!({"comment": "replicas"}))
        .await;
    let accepted = probe(&via_b, &token).await;
    assert_ne!(accepted, StatusCode::UNAUTHORIZED);
    assert_ne!(accepted, StatusCode::SERVICE_UNAVAILABLE);
    // Now cached by B.
    assert_eq!(probe(&via_b, &token).await, accepted);

    delete_token(&a, &via_a, &token_id).await;
    // A heard it in the response it forwarded: the very next request is refused.
    assert_eq!(probe(&via_a, &token).await, StatusCode::UNAUTHORIZED);
    let took = flips_to(StatusCode::UNAUTHORIZED, Duration::from_secs(1), || {
        probe(&via_b, &token)
    })
    .await;
    eprintln!("replica B refused the revoked token after {took:?}");
    // The bootstrap token is untouched on both.
    assert_eq!(probe(&via_b, &a.admin_token).await, accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_access_list_added_through_one_replica_is_enforced_by_the_other_within_a_second() {
    let Some(url) = redis_url() else { return };
    let channel = format!("lakeward-e2e:{}", uuid::Uuid::new_v4().simple());
    let a = start_a(&url, &channel).await;
    let b = Replica::start(&a, &url, &channel).await;
    let via_a = a.client();
    let blocked_via_b = b.client_from("127.0.0.2".parse().unwrap());
    let accepted = probe(&blocked_via_b, &a.admin_token).await;
    assert_ne!(accepted, StatusCode::FORBIDDEN);

    let list = via_a
        .post(
            "/api/2.0/ip-access-lists",
            &a.admin_token,
            json!({"label": "replicas", "list_type": "BLOCK", "ip_addresses": ["127.0.0.2"]}),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    via_a
        .set_workspace_conf(&a.admin_token, json!({"enableIpAccessLists": "true"}))
        .await;

    flips_to(StatusCode::FORBIDDEN, Duration::from_secs(1), || {
        probe(&blocked_via_b, &a.admin_token)
    })
    .await;
    // Other addresses keep working.
    assert_eq!(probe(&b.client(), &a.admin_token).await, accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_redis_asks_the_control_plane_until_it_is_back() {
    let Some(url) = redis_url() else { return };
    let channel = format!("lakeward-e2e:{}", uuid::Uuid::new_v4().simple());
    let a = start_a(&url, &channel).await;
    let relay = Relay::start(redis_target(&url).await).await;
    let b = Replica::start(&a, &through(&url, relay.addr), &channel).await;
    let (via_a, via_b) = (a.client(), b.client());

    let (token, token_id) = via_a
        .create_token(&a.admin_token, json!({"comment": "replicas"}))
        .await;
    let accepted = probe(&via_b, &token).await;
    assert_ne!(accepted, StatusCode::UNAUTHORIZED);

    relay.cut();
    b.wait_for_feed(0, Duration::from_secs(1)).await;
    // Degraded is slower, not unready.
    let (status, _, body) = plain_get(&format!("http://{}/readyz", b.admin))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("\"change_feed\":false"));

    // Used again while degraded (a replica that cached it now would serve it stale below)...
    assert_eq!(probe(&via_b, &token).await, accepted);
    // ... then revoked while B cannot hear of it: B's very next request still refuses the
    // token, since a degraded replica resolves every token through the control plane.
    delete_token(&a, &via_a, &token_id).await;
    assert_eq!(probe(&via_b, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(probe(&via_b, &a.admin_token).await, accepted);

    relay.restore().await;
    b.wait_for_feed(1, Duration::from_secs(10)).await;
    assert_eq!(probe(&via_b, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(probe(&via_b, &a.admin_token).await, accepted);
}
