//! The end-to-end harness: [`TestLakeward`] starts the whole stack (gateway, control plane,
//! runtime) exactly as `lakeward serve` wires it, in a temporary data directory on free ports,
//! and [`Client`] calls it over real TLS, trusting the CA the run generated, from a chosen
//! loopback source address (127.0.0.2, 127.0.0.3, ... for IP access-list tests).

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use lakeward::config::Config;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// A running Lakeward in a temporary directory.
pub struct TestLakeward {
    pub running: lakeward::Running,
    /// The bootstrap admin's personal access token.
    pub admin_token: String,
    dir: tempfile::TempDir,
}

impl TestLakeward {
    /// Starts with the default configuration (ports chosen by the OS).
    pub async fn start() -> TestLakeward {
        Self::start_with(|_| {}).await
    }

    /// Starts with the default configuration as changed by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestLakeward {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.gateway.listen = "127.0.0.1:0".parse().expect("addr");
        config.gateway.admin_listen = "127.0.0.1:0".parse().expect("addr");
        adjust(&mut config);
        Self::start_in(dir, config).await
    }

    /// Starts on an existing directory (to test restarts).
    pub async fn start_in(dir: tempfile::TempDir, config: Config) -> TestLakeward {
        config.validate().expect("valid test config");
        let running = lakeward::start(config).await.expect("lakeward starts");
        let admin_token = running.admin_token().expect("admin token file");
        let lakeward = TestLakeward {
            running,
            admin_token,
            dir,
        };
        lakeward.wait_ready().await;
        lakeward
    }

    /// Stops, keeping the directory for a restart.
    pub async fn stop(self) -> tempfile::TempDir {
        self.running.stop().await.expect("clean stop");
        self.dir
    }

    pub fn data_dir(&self) -> &Path {
        &self.running.data_dir
    }

    /// Waits for `/readyz` to answer 200.
    pub async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.running.admin_addr);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((status, _, _)) = plain_get(&url).await {
                if status == StatusCode::OK {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "lakeward never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An HTTPS client from 127.0.0.1.
    pub fn client(&self) -> Client {
        self.client_from("127.0.0.1".parse().expect("ip"))
    }

    /// An HTTPS client whose connections come from `source`.
    pub fn client_from(&self, source: IpAddr) -> Client {
        Client::new(
            &self.running.ca_cert,
            source,
            format!("https://127.0.0.1:{}", self.running.gateway_addr.port()),
        )
        .expect("client")
    }

    /// The admin listener's text at `path` (`/metrics`, ...).
    pub async fn admin_get(&self, path: &str) -> (StatusCode, String) {
        let (status, _, body) = plain_get(&format!("http://{}{path}", self.running.admin_addr))
            .await
            .expect("admin listener answers");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// A response: status, headers and the body parsed as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
    pub text: String,
}

impl Reply {
    pub fn error_code(&self) -> &str {
        self.json["error_code"].as_str().unwrap_or("")
    }
}

/// An HTTPS client that trusts one CA and connects from one source address.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
}

impl Client {
    pub fn new(ca_pem: &Path, source: IpAddr, base: String) -> anyhow::Result<Client> {
        Self::with_alpn(ca_pem, source, base, false)
    }

    /// `http2_only`: negotiate h2 through ALPN and use it.
    pub fn with_alpn(
        ca_pem: &Path,
        source: IpAddr,
        base: String,
        http2_only: bool,
    ) -> anyhow::Result<Client> {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca_pem).with_context(|| format!("read {}", ca_pem.display()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert?)?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_local_address(Some(source));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only();
        let connector = if http2_only {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().enable_http2().wrap_connector(http)
        };
        let mut client = HyperClient::builder(hyper_util::rt::TokioExecutor::new());
        client.http2_only(http2_only);
        Ok(Client {
            inner: client.build(connector),
            base,
        })
    }

    /// The same client aimed at another base URL (a `/w/<id>` prefix, say).
    pub fn with_base(&self, base: String) -> Client {
        Client {
            inner: self.inner.clone(),
            base,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    /// [`Client::call`] with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let bytes = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&body).expect("json"))
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(bytes)).expect("request");
        let response = tokio::time::timeout(Duration::from_secs(30), self.inner.request(request))
            .await
            .expect("gateway answered within 30 s")
            .expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            headers,
            json,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: serde_json::Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates a personal access token as the holder of `token` (`body` as for
    /// `/api/2.0/token/create`); panics unless it succeeds. Returns the value and the id.
    pub async fn create_token(&self, token: &str, body: serde_json::Value) -> (String, String) {
        let created = self.post("/api/2.0/token/create", token, body).await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.text);
        let value = created.json["token_value"].as_str().expect("token_value");
        let id = created.json["token_info"]["token_id"]
            .as_str()
            .expect("token_id");
        (value.to_owned(), id.to_owned())
    }

    /// `PATCH /api/2.0/workspace-conf` with `conf` as the holder of `token`; panics unless it
    /// succeeds.
    pub async fn set_workspace_conf(&self, token: &str, conf: serde_json::Value) {
        let reply = self
            .call(
                Method::PATCH,
                "/api/2.0/workspace-conf",
                Some(token),
                Some(conf),
            )
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
    }
}

/// A plain-HTTP GET (admin listener, direct upstream calls).
pub async fn plain_get(url: &str) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
    plain_request(Method::GET, url, &[], None).await
}

/// A plain-HTTP request with headers and an optional JSON body.
pub async fn plain_request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
    let bytes = body
        .map(|b| Bytes::from(serde_json::to_vec(&b).unwrap_or_default()))
        .unwrap_or_default();
    plain_send(method, url, headers, bytes).await
}

/// A plain-HTTP request with headers and a body of raw bytes (objects for a local S3 server).
pub async fn plain_send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
    let client: HyperClient<HttpConnector, Full<Bytes>> =
        HyperClient::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(request.body(Full::new(body))?),
    )
    .await??;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, headers, body))
}
