//! `TestGateway`: a real gateway on 127.0.0.1:0 with a generated CA and certificate, a temp
//! policy and audit directory, mock upstreams and a JWKS server, and HTTPS clients that trust
//! the CA and can connect from other loopback addresses.

use crate::mock::{self, MockServer, Model, SharedModel};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lakeward_common::assertion::{Audience, MasterSecret, PrincipalKind};
use lakeward_common::internal::*;
use lakeward_common::token::{generate_token, hash_token};
use lakeward_proxy::{Config, Gateway, GatewayDeps, Limits, OidcIssuer};
use std::future::Ready;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub const ACCOUNT: &str = "acct-1";
pub const DOMAIN: &str = "lakeward.test";
pub const ISSUER: &str = "https://idp.lakeward.test";
pub const AUDIENCE: &str = "lakeward";
pub const WS1: i64 = 1001;
pub const WS2: i64 = 1002;
pub const WS3: i64 = 1003;
pub const WS4: i64 = 1004;

/// Tokens of the test principals.
pub struct Tokens {
    /// alice: admin of ws1 (and member of ws2), token of ws1.
    pub alice: String,
    /// alice's token of ws2.
    pub alice_ws2: String,
    /// alice's token of ws3 (where tokens are disabled).
    pub alice_ws3: String,
    /// bob: plain member of ws1.
    pub bob: String,
    /// bob's token that expired yesterday.
    pub bob_expired: String,
    /// carol: account admin, member of ws1.
    pub carol: String,
}

/// Knobs for unusual harnesses.
#[derive(Default)]
pub struct Options {
    /// Point the gateway at a closed port instead of the mock control plane.
    pub control_down: bool,
    /// Point the gateway at a closed port instead of the mock runtime.
    pub runtime_down: bool,
    /// Point the issuer's JWKS URL at a closed port.
    pub jwks_down: bool,
    /// `Config::trusted_proxies`.
    pub trusted_proxies: Vec<String>,
    /// Overrides `Limits::max_connections`.
    pub max_connections: Option<usize>,
    /// Overrides `Limits::idle_timeout_secs` and `Limits::tls_handshake_timeout_secs`.
    pub idle_timeout_secs: Option<u64>,
    /// Don't wait for readiness.
    pub no_wait: bool,
    /// Adjusts the configuration last, for settings no other option covers.
    pub configure: Option<fn(&mut Config)>,
    /// `Config::redis_url` and `Config::redis_channel`. The long-poll is then turned off, so
    /// that Redis is the only feed of changes made behind the gateway's back.
    pub redis: Option<(String, String)>,
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub model: SharedModel,
    pub control: MockServer,
    pub runtime: MockServer,
    pub jwks: MockServer,
    pub tokens: Tokens,
    pub master: MasterSecret,
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

fn group(id: &str, name: &str, ws: Option<i64>) -> GroupRecord {
    GroupRecord {
        id: id.into(),
        display_name: name.into(),
        workspace_id: ws,
    }
}

fn principal(id: &str, user: &str, groups: Vec<GroupRecord>) -> PrincipalRecord {
    PrincipalRecord {
        id: id.into(),
        kind: PrincipalKind::User,
        user_name: user.into(),
        display_name: user.into(),
        active: true,
        token_use_workspaces: groups.iter().filter_map(|g| g.workspace_id).collect(),
        groups,
    }
}

fn workspace(id: i64, name: &str) -> WorkspaceRecord {
    WorkspaceRecord {
        workspace_id: id,
        workspace_name: name.into(),
        deployment_name: name.into(),
        workspace_status: "RUNNING".into(),
        enable_ip_access_lists: false,
        enable_tokens: true,
        ip_access_lists: vec![],
    }
}

fn list(kind: ListType, ips: &[&str]) -> IpAccessListRule {
    IpAccessListRule {
        list_id: format!("{kind:?}-{}", ips.join(",")),
        list_type: kind,
        enabled: true,
        ip_addresses: ips.iter().map(|s| s.to_string()).collect(),
    }
}

fn model() -> (Model, Tokens) {
    let alice = principal(
        "100",
        "alice@example.com",
        vec![
            group("g-ws1-admins", "admins", Some(WS1)),
            group("g-ws1-users", "users", Some(WS1)),
            group("g-ws2-admins", "admins", Some(WS2)),
            group("g-ws3-admins", "admins", Some(WS3)),
        ],
    );
    let bob = principal(
        "101",
        "bob@example.com",
        vec![
            group("g-ws1-users", "users", Some(WS1)),
            group("g-ws3-users", "users", Some(WS3)),
        ],
    );
    let carol = principal(
        "102",
        "carol@example.com",
        vec![
            group("g-acct-admins", "admins", None),
            group("g-ws1-users", "users", Some(WS1)),
        ],
    );
    let mut ws2 = workspace(WS2, "ws2");
    ws2.enable_ip_access_lists = true;
    ws2.ip_access_lists = vec![list(ListType::Block, &["127.0.0.3"]), {
        let mut disabled = list(ListType::Block, &["127.0.0.2"]);
        disabled.enabled = false;
        disabled
    }];
    let mut ws3 = workspace(WS3, "ws3");
    ws3.enable_tokens = false;
    let mut ws4 = workspace(WS4, "ws4");
    ws4.workspace_status = "PROVISIONING".into();

    let mut model = Model {
        snapshot: GatewaySnapshot {
            version: 1,
            account_id: ACCOUNT.into(),
            account_ip_acl_enabled: true,
            account_ip_access_lists: vec![list(ListType::Allow, &["127.0.0.1", "127.0.0.2/32"])],
            workspaces: vec![workspace(WS1, "ws1"), ws2, ws3, ws4],
        },
        ..Model::default()
    };
    let mut token = |id: &str, ws: i64, p: &PrincipalRecord, expiry: i64| {
        let value = generate_token();
        model.tokens.insert(
            hash_token(&value),
            ResolvedToken {
                token_id: id.into(),
                token_hash: hash_token(&value),
                workspace_id: ws,
                expiry_time_ms: expiry,
                principal: p.clone(),
            },
        );
        value
    };
    let yesterday = now_ms() - 86_400_000;
    let tokens = Tokens {
        alice: token("tok-alice", WS1, &alice, -1),
        alice_ws2: token("tok-alice-2", WS2, &alice, -1),
        alice_ws3: token("tok-alice-3", WS3, &alice, -1),
        bob: token("tok-bob", WS1, &bob, -1),
        bob_expired: token("tok-bob-old", WS1, &bob, yesterday),
        carol: token("tok-carol", WS1, &carol, -1),
    };
    for p in [alice, bob, carol] {
        model.principals.insert(p.user_name.clone(), p);
    }
    (model, tokens)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

pub fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        workspace_domain: Some(DOMAIN.into()),
        default_workspace_id: Some(WS1),
        limits: Limits {
            max_header_bytes: 8192,
            max_uri_bytes: 2048,
            max_body_bytes: 64 * 1024,
            header_read_timeout_secs: 2,
            body_read_timeout_secs: 2,
            ..Limits::default()
        },
        upstream_timeout_secs: 1,
        policy_poll_interval_ms: 200,
        shutdown_grace_secs: 2,
        ..Config::default()
    }
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestGateway {
        let (model, tokens) = model();
        let model: SharedModel = Arc::new(Mutex::new(model));
        let master = MasterSecret::generate();
        let control = mock::control(model.clone(), master.key_for(Audience::Control)).await;
        let runtime = mock::runtime(master.key_for(Audience::Runtime)).await;
        let jwks = mock::jwks(std::fs::read_to_string(fixture("jwks.json")).unwrap()).await;

        let dir = tempfile::tempdir().unwrap();
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir_all(&policy_dir).unwrap();
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies");
        for name in ["lakeward.cedarschema", "baseline.cedar"] {
            std::fs::copy(deploy.join(name), policy_dir.join(name)).unwrap();
        }

        let (ca_pem, cert_pem, key_pem) = certificates();
        let mut config = test_config();
        config.trusted_proxies = options.trusted_proxies.clone();
        if let Some(n) = options.max_connections {
            config.limits.max_connections = n;
        }
        if let Some((url, channel)) = options.redis.clone() {
            config.redis_url = Some(url);
            config.redis_channel = channel;
            config.control_long_poll = false;
        }
        if let Some(secs) = options.idle_timeout_secs {
            config.limits.idle_timeout_secs = secs;
            config.limits.tls_handshake_timeout_secs = secs;
        }
        config.oidc_issuers = vec![OidcIssuer {
            issuer: ISSUER.into(),
            jwks_url: if options.jwks_down {
                format!("{}/jwks", closed_port_url())
            } else {
                format!("{}/jwks", jwks.url())
            },
            audiences: vec![AUDIENCE.into()],
            algorithms: vec!["RS256".into()],
            clock_skew_secs: 30,
            jwks_refetch_interval_secs: 60,
            ..OidcIssuer::default()
        }];
        if let Some(configure) = options.configure {
            configure(&mut config);
        }
        let deps = GatewayDeps {
            tls_cert_pem: cert_pem.into_bytes(),
            tls_key_pem: key_pem.into_bytes(),
            master_secret: master.clone(),
            control_url: if options.control_down {
                closed_port_url()
            } else {
                control.url()
            },
            runtime_url: if options.runtime_down {
                closed_port_url()
            } else {
                runtime.url()
            },
            policy_dir,
            audit_dir: dir.path().join("audit"),
            registry: prometheus::Registry::new(),
        };
        let gateway = Gateway::bind(config, deps).await.unwrap();
        let addr = gateway.local_addr();
        let admin = gateway.admin_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(gateway.run(async move {
            let _ = rx.await;
        }));
        let harness = TestGateway {
            addr,
            admin,
            model,
            control,
            runtime,
            jwks,
            tokens,
            master,
            dir,
            ca_pem,
            shutdown: Some(tx),
            task: Some(task),
        };
        if !options.no_wait {
            harness.wait_ready().await;
        }
        harness
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, _) = self.admin_get("/readyz").await;
            if status == StatusCode::OK {
                return;
            }
            assert!(Instant::now() < deadline, "gateway not ready in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the gateway and waits for `run` to return.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap(),
            None => Ok(()),
        }
    }

    pub fn policy_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn audit_dir(&self) -> PathBuf {
        self.dir.path().join("audit")
    }

    /// A client connecting from `source` (127.0.0.x), HTTP/1.1 only or with h2 offered.
    pub fn client(&self, source: Ipv4Addr, h2: bool) -> TestClient {
        TestClient::new(&self.ca_pem, source, h2, self.addr.port())
    }

    /// The default client: from 127.0.0.1, HTTP/1.1.
    pub fn c(&self) -> TestClient {
        self.client(Ipv4Addr::new(127, 0, 0, 1), false)
    }

    pub async fn admin_get(&self, path: &str) -> (StatusCode, String) {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let uri = format!("http://{}{path}", self.admin);
        let res = client
            .request(Request::get(uri).body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The value of one metric series, e.g. `gateway_policy_reload_failures_total`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.admin_get("/metrics").await;
        text.lines()
            .find(|l| l.starts_with(series) && l.as_bytes().get(series.len()) == Some(&b' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Every audit record written so far.
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.audit_dir()) else {
            return out;
        };
        for entry in entries {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            out.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
        }
        out
    }

    /// The raw text of every audit file.
    pub fn audit_text(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.audit_dir()) {
            for entry in entries {
                out.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
            }
        }
        out
    }

    /// Waits (up to 3 s) for the audit record of a request id.
    pub async fn audit_record(&self, request_id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if let Some(r) = self
                .audit_records()
                .into_iter()
                .find(|r| r["requestId"] == request_id)
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no audit record for {request_id}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// CA, server certificate (localhost, lakeward.test, *.lakeward.test, 127.0.0.1) and key.
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Lakeward test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![
        "localhost".to_owned(),
        DOMAIN.to_owned(),
        format!("*.{DOMAIN}"),
    ])
    .unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Resolves every name to 127.0.0.1, so workspace hosts need no DNS.
#[derive(Clone)]
struct LoopbackResolver;

impl tower::Service<Name> for LoopbackResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        std::future::ready(Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))].into_iter()))
    }
}

pub fn tls_client_config(ca_pem: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A response as the tests see it.
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn error_code(&self) -> String {
        self.json()["error_code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn request_id(&self) -> String {
        self.headers["x-request-id"].to_str().unwrap().to_owned()
    }
}

pub struct TestClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector<LoopbackResolver>>, Full<Bytes>>,
    port: u16,
}

impl TestClient {
    fn new(ca_pem: &str, source: Ipv4Addr, h2: bool, port: u16) -> Self {
        let mut http = HttpConnector::new_with_resolver(LoopbackResolver);
        http.enforce_http(false);
        http.set_local_address(Some(IpAddr::V4(source)));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_client_config(ca_pem, &[]))
            .https_only();
        let connector = if h2 {
            builder.enable_http1().enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        TestClient { client, port }
    }

    /// `host` is a host name (`localhost`, `ws2.lakeward.test`); `path` includes the query.
    pub async fn send(
        &self,
        method: Method,
        host: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("https://{host}:{}{path}", self.port));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req = req.header("user-agent", "lakeward-tests/1.0 databricks-sdk-py/0.162.0");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let bytes = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&b).unwrap())
            }
            None => Bytes::new(),
        };
        let res = self
            .client
            .request(req.body(Full::new(bytes)).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let version = res.version();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            version,
            headers,
            body,
        }
    }

    pub async fn get(&self, host: &str, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, host, path, token, &[], None).await
    }
}

/// Sends raw bytes over TLS (HTTP/1.1) and returns everything read until the server closes
/// or 2 s pass.
pub async fn raw_exchange(harness: &TestGateway, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = tls_client_config(&harness.ca_pem, &[b"http/1.1"]);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(harness.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(bytes).await.unwrap();
    tls.flush().await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(300), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) if !out.is_empty() => break,
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
