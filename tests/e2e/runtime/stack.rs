//! The stack these tests run: the real control plane (`lakeward-control`, SQLite in a temporary
//! data directory) and the real runtime, each on its own loopback socket, wired as
//! `lakeward::start` wires them except that the runtime reaches the control plane through a
//! [`Relay`], so that a test can make chosen calls fail. There is no gateway: the tests call
//! the runtime directly with assertions signed as the gateway signs them, for principals made
//! through the control plane's SCIM API.

use super::relay::Relay;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lakeward::data_dir::DataDir;
use lakeward_common::assertion::{AssertionKey, Audience, IdentityClaims, IDENTITY_HEADER};
use lakeward_common::internal::{PrincipalRecord, ResolvePrincipalRequest, RESOLVE_PRINCIPAL_PATH};
use lakeward_runtime::{Config, Runtime, RuntimeDeps};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The bootstrap admin; the other users are made by [`start`].
pub(super) const ADMIN: &str = "admin@x.com";
pub(super) const ALICE: &str = "alice@x.com";
pub(super) const BOB: &str = "bob@x.com";

/// The Host the callers address (it shows in warehouses' connection details).
pub(super) const HOST: &str = "ws.example.com";

pub(super) struct Stack {
    runtime: SocketAddr,
    control: SocketAddr,
    /// Between the runtime and the control plane.
    pub(super) relay: Relay,
    runtime_key: AssertionKey,
    control_key: AssertionKey,
    account_id: String,
    workspace_id: i64,
    /// Each user as the control plane resolves it, as the gateway would see it.
    principals: HashMap<String, PrincipalRecord>,
    http: Client<HttpConnector, Full<Bytes>>,
    _dir: tempfile::TempDir,
}

/// The runtime settings most tests use: small chunks, fast sweeps, a 300 ms "minute".
pub(super) fn test_config() -> Config {
    Config {
        query_threads: Some(2),
        result_chunk_bytes: 64,
        idle_check_interval_ms: 50,
        auto_stop_minute_ms: 300,
        // Smaller samples: test runtimes wait for the writer before they shut down.
        samples_scale_factor: 0.001,
        ..Config::default()
    }
}

/// [`test_config`] with a sweeper that does not run during a test, for tests that must see a
/// warehouse left half-way.
pub(super) fn quiet_sweeper() -> Config {
    Config {
        idle_check_interval_ms: 600_000,
        ..test_config()
    }
}

/// Runs a test as `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` would, except
/// that it does not wait at the end for the runtime's blocking tasks. As it starts, the runtime
/// writes its `samples` data on one, which takes seconds in a debug build: a test that reads
/// the samples waits for them anyway, and for the others that wait was most of their time.
pub(super) fn run(test: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(test);
    runtime.shutdown_background();
}

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Value,
}

async fn loopback_listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Starts the control plane (bootstrapped with [`ADMIN`]), the relay and a runtime with
/// `config`, and makes [`ALICE`] and [`BOB`] users of the default workspace.
pub(super) async fn start(config: Config) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(&dir.path().join("data")).unwrap();
    let data_dir = std::fs::canonicalize(data.root()).unwrap();
    let master = data.master_secret().unwrap();

    let control_config = lakeward_control::Config {
        policy_dir: Some(data.seed_policies().unwrap()),
        ..lakeward_control::Config::default()
    };
    let control = lakeward_control::ControlPlane::open(
        &control_config,
        &data_dir,
        lakeward_control::ControlKeys {
            control: master.key_for(Audience::Control),
            data_plane: master.key_for(Audience::DataPlane),
        },
    )
    .await
    .unwrap();
    let bootstrap = control.bootstrap(ADMIN).await.unwrap();
    let (listener, control_addr) = loopback_listener().await;
    tokio::spawn(control.serve(listener, std::future::pending()));

    let relay = Relay::start(control_addr).await;
    let runtime = Runtime::new(RuntimeDeps {
        key: master.key_for(Audience::Runtime),
        data_plane_key: master.key_for(Audience::DataPlane),
        control_url: format!("http://{}", relay.addr()),
        data_dir,
        config,
    })
    .unwrap();
    let (listener, runtime_addr) = loopback_listener().await;
    tokio::spawn(runtime.serve(listener, std::future::pending()));

    let mut stack = Stack {
        runtime: runtime_addr,
        control: control_addr,
        relay,
        runtime_key: master.key_for(Audience::Runtime),
        control_key: master.key_for(Audience::Control),
        account_id: bootstrap.account_id,
        workspace_id: bootstrap.default_workspace_id,
        principals: HashMap::new(),
        http: Client::builder(TokioExecutor::new()).build_http(),
        _dir: dir,
    };
    let admin = stack.resolve(ADMIN).await;
    stack.principals.insert(ADMIN.to_owned(), admin);
    for user in [ALICE, BOB] {
        let created = stack
            .control_call(
                ADMIN,
                "POST",
                "/api/2.0/preview/scim/v2/Users",
                Some(json!({"userName": user})),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let principal = stack.resolve(user).await;
        stack.principals.insert(user.to_owned(), principal);
    }
    stack
}

impl Stack {
    /// The claims the gateway would send for `user` in the default workspace.
    fn claims(&self, user: &str) -> IdentityClaims {
        let principal = self
            .principals
            .get(user)
            .unwrap_or_else(|| panic!("`{user}` is not a user of the test stack"));
        IdentityClaims {
            sub: principal.id.clone(),
            kind: principal.kind,
            user_name: principal.user_name.clone(),
            groups: principal
                .groups
                .iter()
                .filter(|g| g.workspace_id.is_none() || g.workspace_id == Some(self.workspace_id))
                .map(|g| g.id.clone())
                .collect(),
            workspace_id: Some(self.workspace_id),
            auth_method: "pat".into(),
            ..IdentityClaims::gateway(&self.account_id, &uuid::Uuid::new_v4().to_string())
        }
    }

    /// The principal `user_name` as the control plane resolves it for the gateway.
    async fn resolve(&self, user_name: &str) -> PrincipalRecord {
        let assertion = self
            .control_key
            .sign(IdentityClaims::gateway(&self.account_id, "test-resolve"))
            .unwrap();
        let body = serde_json::to_value(ResolvePrincipalRequest {
            user_name: user_name.to_owned(),
        })
        .unwrap();
        let reply = self
            .send(
                self.control,
                &assertion,
                "POST",
                RESOLVE_PRINCIPAL_PATH,
                Some(body),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        serde_json::from_value(reply.body).unwrap()
    }

    /// Calls the control plane's public API as `user`.
    async fn control_call(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let assertion = self.control_key.sign(self.claims(user)).unwrap();
        self.send(self.control, &assertion, method, path, body)
            .await
    }

    /// Calls the runtime as `user`.
    pub(super) async fn call(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let assertion = self.runtime_key.sign(self.claims(user)).unwrap();
        self.send(self.runtime, &assertion, method, path, body)
            .await
    }

    async fn send(
        &self,
        to: SocketAddr,
        assertion: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{to}{path}"))
            .header(IDENTITY_HEADER, assertion)
            .header("host", HOST)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload)))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.http.request(request))
            .await
            .expect("answered within 30 s")
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(super) async fn wait_state(&self, user: &str, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .call(user, "GET", &format!("/api/2.0/sql/warehouses/{id}"), None)
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            if r.body["state"] == state {
                return r.body;
            }
            assert!(Instant::now() < deadline, "never {state}: {}", r.body);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A 2X-Small warehouse of `user`, once RUNNING.
    pub(super) async fn create_warehouse(
        &self,
        user: &str,
        name: &str,
        auto_stop_mins: i64,
    ) -> String {
        let r = self
            .call(
                user,
                "POST",
                "/api/2.0/sql/warehouses",
                Some(json!({"name": name, "cluster_size": "2X-Small",
                            "auto_stop_mins": auto_stop_mins, "max_num_clusters": 1})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        self.wait_state(user, &id, "RUNNING").await;
        id
    }

    pub(super) async fn execute(&self, user: &str, body: Value) -> Reply {
        self.call(user, "POST", "/api/2.0/sql/statements", Some(body))
            .await
    }

    /// Polls the statement until it leaves PENDING and RUNNING; panics after `within`.
    pub(super) async fn poll_until_done(&self, user: &str, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let r = self
                .call(user, "GET", &format!("/api/2.0/sql/statements/{id}"), None)
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            let state = r.body["status"]["state"].as_str().unwrap().to_owned();
            if !["PENDING", "RUNNING"].contains(&state.as_str()) {
                return r.body;
            }
            assert!(Instant::now() < deadline, "still {state} after {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls the statement until it is in `state`; panics after `within`.
    pub(super) async fn poll_until_state(
        &self,
        user: &str,
        id: &str,
        state: &str,
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let r = self
                .call(user, "GET", &format!("/api/2.0/sql/statements/{id}"), None)
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            if r.body["status"]["state"] == state {
                return r.body;
            }
            assert!(Instant::now() < deadline, "never {state}: {}", r.body);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
