//! Test fixtures: a fresh store on either backend, and a harness that drives the router with
//! signed assertions.
//!
//! PostgreSQL tests use `postgres://postgres@127.0.0.1:5432/test` (override with
//! `LAKEWARD_TEST_POSTGRES_URL`; set it to `skip` to skip them). Each test gets its own schema
//! (`search_path` set through the connection URL), dropped when the fixture is dropped, since
//! tests run in parallel and share the database with other crates' tests.
//!
//! Redis tests use `redis://127.0.0.1:6379` (override with `LAKEWARD_TEST_REDIS_URL`, `skip`
//! to skip them), each on a channel of its own, for the same reason.

use crate::store::directory::Principal;
use crate::store::principals;
use crate::store::Store;
use crate::{Bootstrap, Config, ControlKeys, ControlPlane};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use lakeward_common::assertion::{
    AssertionKey, Audience, IdentityClaims, MasterSecret, PrincipalKind,
};
use lakeward_common::internal::STATE_VERSION_HEADER;
use serde_json::Value;
use sqlx::Connection;
use tower::ServiceExt;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Db {
    Sqlite,
    Postgres,
}

/// Runs an `async fn(Db)` test body once per backend, as two `#[tokio::test]`s.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::test_support::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::test_support::postgres_url().is_none() {
                        eprintln!("skipped: LAKEWARD_TEST_POSTGRES_URL=skip");
                        return;
                    }
                    super::$name($crate::test_support::Db::Postgres).await;
                }
            )*
        }
    };
}
pub(crate) use both_backends;

/// The PostgreSQL base URL, or `None` when PostgreSQL tests are switched off.
pub(crate) fn postgres_url() -> Option<String> {
    match std::env::var("LAKEWARD_TEST_POSTGRES_URL") {
        Ok(url) if url == "skip" => None,
        Ok(url) => Some(url),
        Err(_) => Some(DEFAULT_POSTGRES_URL.to_owned()),
    }
}

/// The Redis URL, or `None` when Redis tests are switched off.
pub(crate) fn redis_url() -> Option<String> {
    match std::env::var("LAKEWARD_TEST_REDIS_URL") {
        Ok(url) if url == "skip" => None,
        Ok(url) => Some(url),
        Err(_) => Some(DEFAULT_REDIS_URL.to_owned()),
    }
}

/// A fresh, empty store location: a temporary directory, plus a schema on PostgreSQL.
pub(crate) struct TestDb {
    pub(crate) config: Config,
    pub(crate) data_dir: tempfile::TempDir,
    /// The control audience's key (the gateway's assertions).
    pub(crate) key: AssertionKey,
    /// The data-plane audience's key (the runtime's assertions).
    pub(crate) data_key: AssertionKey,
    schema: Option<PgSchema>,
}

impl TestDb {
    pub(crate) async fn new(db: Db) -> TestDb {
        let data_dir = tempfile::tempdir().unwrap();
        let master = MasterSecret::generate();
        let key = master.key_for(Audience::Control);
        let data_key = master.key_for(Audience::DataPlane);
        let mut config = Config {
            changes_timeout_secs: 2,
            changes_poll_interval_ms: 50,
            ..Config::default()
        };
        let schema = match db {
            Db::Sqlite => None,
            Db::Postgres => {
                let schema = PgSchema::create().await;
                config.database_url = Some(schema.url());
                Some(schema)
            }
        };
        TestDb {
            config,
            data_dir,
            key,
            data_key,
            schema,
        }
    }

    /// Both keys, as `ControlPlane::open` takes them.
    pub(crate) fn keys(&self) -> ControlKeys {
        ControlKeys {
            control: self.key.clone(),
            data_plane: self.data_key.clone(),
        }
    }

    /// Opens (and migrates) a control plane on this store.
    pub(crate) async fn open(&self) -> ControlPlane {
        ControlPlane::open(&self.config, self.data_dir.path(), self.keys())
            .await
            .unwrap()
    }

    /// Opens a control plane that publishes its versions on the Redis `channel`.
    pub(crate) async fn open_publishing(&mut self, redis_url: &str, channel: &str) -> ControlPlane {
        self.config.redis_url = Some(redis_url.to_owned());
        ControlPlane::open_with_channel(&self.config, self.data_dir.path(), self.keys(), channel)
            .await
            .unwrap()
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.schema.is_some()
    }
}

/// A schema of its own on the shared PostgreSQL database, dropped on drop.
struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    async fn create() -> PgSchema {
        let base = postgres_url().unwrap();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is needed for this test: {e}"));
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        PgSchema { base, name }
    }

    fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.base, self.name
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread
        // with its own.
        let base = self.base.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// A bootstrapped control plane and a way to call it as anyone.
pub(crate) struct Harness {
    pub(crate) db: TestDb,
    pub(crate) plane: ControlPlane,
    pub(crate) router: Router,
    pub(crate) boot: Bootstrap,
    /// The bootstrap admin.
    pub(crate) admin: Principal,
}

/// The address tests call from unless they say otherwise.
pub(crate) const CLIENT_IP: &str = "10.1.2.3";

impl Harness {
    pub(crate) async fn new(db: Db) -> Harness {
        let db = TestDb::new(db).await;
        let plane = db.open().await;
        Harness::bootstrap(db, plane).await
    }

    /// A harness whose control plane publishes its versions on the Redis `channel`.
    pub(crate) async fn publishing(db: Db, redis_url: &str, channel: &str) -> Harness {
        let mut db = TestDb::new(db).await;
        let plane = db.open_publishing(redis_url, channel).await;
        Harness::bootstrap(db, plane).await
    }

    /// A harness over a control plane the test opened itself (e.g. with its own config).
    pub(crate) async fn bootstrap(db: TestDb, plane: ControlPlane) -> Harness {
        let boot = plane.bootstrap("admin@example.com").await.unwrap();
        let router = plane.router();
        let admin = {
            let mut conn = plane.state.store().conn().await.unwrap();
            principals::by_name(&mut conn, "admin@example.com")
                .await
                .unwrap()
                .unwrap()
        };
        Harness {
            db,
            plane,
            router,
            boot,
            admin,
        }
    }

    pub(crate) fn store(&self) -> &Store {
        self.plane.state.store()
    }

    /// Claims for `principal` on the default workspace.
    pub(crate) fn claims(&self, principal: &Principal) -> IdentityClaims {
        IdentityClaims {
            sub: principal.id.to_string(),
            kind: principal.kind,
            user_name: principal.user_name.clone(),
            workspace_id: Some(self.boot.default_workspace_id),
            auth_method: "pat".into(),
            client_ip: CLIENT_IP.into(),
            ..IdentityClaims::gateway(&self.boot.account_id, "req-test")
        }
    }

    /// Claims for the bootstrap admin on the default workspace.
    pub(crate) fn admin_claims(&self) -> IdentityClaims {
        self.claims(&self.admin)
    }

    /// Claims for the bootstrap admin on account routes.
    pub(crate) fn account_claims(&self) -> IdentityClaims {
        IdentityClaims {
            workspace_id: None,
            ..self.admin_claims()
        }
    }

    /// The gateway's own claims.
    pub(crate) fn gateway_claims(&self) -> IdentityClaims {
        IdentityClaims::gateway(&self.boot.account_id, "req-gw")
    }

    /// The runtime's claims (to be signed with the data-plane key: see [`Harness::runtime`]).
    pub(crate) fn runtime_claims(&self) -> IdentityClaims {
        IdentityClaims::runtime(&self.boot.account_id, "req-rt")
    }

    /// A new user, a member of the default workspace's `users` group (not admins).
    pub(crate) async fn add_user(&self, user_name: &str) -> Principal {
        self.add_principal(user_name, PrincipalKind::User).await
    }

    /// A new principal of `kind` in the default workspace's `users` group.
    pub(crate) async fn add_principal(&self, name: &str, kind: PrincipalKind) -> Principal {
        let principal = Principal {
            id: crate::store::new_numeric_id(),
            kind,
            user_name: name.to_owned(),
            display_name: name.to_owned(),
            active: true,
            application_id: (kind == PrincipalKind::ServicePrincipal).then(|| name.to_owned()),
        };
        let mut tx = self.store().begin_write().await.unwrap();
        principals::insert(tx.conn(), &principal).await.unwrap();
        let users = principals::group_by_name(
            tx.conn(),
            Some(self.boot.default_workspace_id),
            lakeward_common::internal::USERS_GROUP,
        )
        .await
        .unwrap()
        .unwrap();
        principals::add_member(tx.conn(), users.id, principal.id)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        principal
    }

    /// Sends a request with the assertion of `claims` (none when `None`).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        claims: Option<&IdentityClaims>,
        body: Option<Value>,
    ) -> Response {
        let assertion = claims.map(|c| self.db.key.sign(c.clone()).unwrap());
        self.call_raw(
            method,
            path,
            assertion.as_deref(),
            body.map(|b| b.to_string()),
        )
        .await
    }

    /// Sends a request with `claims` signed with the data-plane key.
    pub(crate) async fn call_data_plane(
        &self,
        method: Method,
        path: &str,
        claims: &IdentityClaims,
        body: Option<Value>,
    ) -> Response {
        let assertion = self.db.data_key.sign(claims.clone()).unwrap();
        self.call_raw(method, path, Some(&assertion), body.map(|b| b.to_string()))
            .await
    }

    /// As the runtime, with the data-plane key.
    pub(crate) async fn runtime(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        self.call_data_plane(method, path, &self.runtime_claims(), body)
            .await
    }

    /// Sends a request with a raw assertion header value and raw body.
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        assertion: Option<&str>,
        body: Option<String>,
    ) -> Response {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(assertion) = assertion {
            request = request.header(lakeward_common::assertion::IDENTITY_HEADER, assertion);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Response {
            status,
            headers,
            json,
        }
    }

    /// As the bootstrap admin on the default workspace.
    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.call(method, path, Some(&self.admin_claims()), body)
            .await
    }

    /// As the bootstrap admin on account routes; `path` is relative to the account.
    pub(crate) async fn account(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let path = format!("/api/2.0/accounts/{}{path}", self.boot.account_id);
        self.call(method, &path, Some(&self.account_claims()), body)
            .await
    }

    /// As the gateway.
    pub(crate) async fn gateway(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        self.call(method, path, Some(&self.gateway_claims()), body)
            .await
    }
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) json: Value,
}

impl Response {
    /// The state version header.
    pub(crate) fn version(&self) -> u64 {
        self.headers
            .get(STATE_VERSION_HEADER)
            .expect("every response carries the state version")
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The `error_code` of an error body.
    pub(crate) fn code(&self) -> &str {
        self.json["error_code"].as_str().unwrap_or("")
    }

    /// Asserts a status, showing the body when it differs.
    #[track_caller]
    pub(crate) fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.json);
        self
    }

    /// Asserts an error status and code, showing the body when they differ.
    #[track_caller]
    pub(crate) fn expect_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.json
        );
        self
    }
}
