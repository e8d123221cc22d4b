//! The runtime over HTTP, against a fake control plane (an in-memory axum app serving the
//! routes of `lakeward_common::data`), with assertions signed as the gateway would.
//!
//! The warehouse tests need only the service; the statement tests need the SQL engine too.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::result_large_err,
    reason = "tests: failures panic, and the fake control plane answers errors as responses"
)]

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lakeward_common::assertion::{
    AssertionKey, Audience, IdentityClaims, MasterSecret, PrincipalKind, IDENTITY_HEADER,
};
use lakeward_common::data::*;
use lakeward_common::internal::{
    ChangesResponse, GroupRecord, PrincipalRecord, ResolvePrincipalRequest, CHANGES_PATH,
    RESOLVE_PRINCIPAL_PATH, STATE_VERSION_HEADER,
};
use lakeward_runtime::{Config, Runtime, RuntimeDeps};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WS: i64 = 100;

// ---- the fake control plane ----

#[derive(Default)]
struct Fake {
    version: u64,
    warehouses: Vec<WarehouseRecord>,
    catalog: CatalogSnapshot,
    next_id: u64,
    /// Failure injection: this many updates to STOPPED (resp. RUNNING) fail with a 500.
    fail_stopped: u32,
    fail_running: u32,
    /// Delay of each catalog snapshot answer.
    catalog_delay_ms: u64,
}

#[derive(Clone)]
struct FakeState {
    inner: Arc<Mutex<Fake>>,
    key: AssertionKey,
    principals: Arc<HashMap<String, PrincipalRecord>>,
}

fn err(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error_code": code, "message": message})),
    )
        .into_response()
}

fn checked(state: &FakeState, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get(IDENTITY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match state.key.verify(token) {
        Ok(claims) if claims.kind == PrincipalKind::Runtime => Ok(()),
        _ => Err(err(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "bad assertion",
        )),
    }
}

fn versioned(state: &FakeState, value: Value) -> Response {
    let version = state.inner.lock().unwrap().version;
    let mut response = Json(value).into_response();
    response
        .headers_mut()
        .insert(STATE_VERSION_HEADER, version.to_string().parse().unwrap());
    response
}

async fn catalog(State(s): State<FakeState>, headers: HeaderMap) -> Response {
    if let Err(r) = checked(&s, &headers) {
        return r;
    }
    let delay = s.inner.lock().unwrap().catalog_delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let snapshot = {
        let fake = s.inner.lock().unwrap();
        CatalogSnapshot {
            version: fake.version,
            ..fake.catalog.clone()
        }
    };
    versioned(&s, serde_json::to_value(snapshot).unwrap())
}

fn apply(fake: &mut Fake, change: CatalogChange) -> Result<bool, Response> {
    let exists = |what: &str| err(StatusCode::CONFLICT, "RESOURCE_ALREADY_EXISTS", what);
    let c = &mut fake.catalog;
    match change {
        CatalogChange::CreateCatalog {
            catalog,
            if_not_exists,
        } => {
            if c.catalogs.iter().any(|x| x.name == catalog.name) {
                return if if_not_exists {
                    Ok(false)
                } else {
                    Err(exists("catalog"))
                };
            }
            c.catalogs.push(catalog);
        }
        CatalogChange::CreateSchema {
            schema,
            if_not_exists,
        } => {
            if c.schemas
                .iter()
                .any(|x| x.catalog == schema.catalog && x.name == schema.name)
            {
                return if if_not_exists {
                    Ok(false)
                } else {
                    Err(exists("schema"))
                };
            }
            c.schemas.push(schema);
        }
        CatalogChange::CreateTable {
            table,
            if_not_exists,
            replace,
        } => {
            let pos = c.tables.iter().position(|x| {
                x.catalog == table.catalog && x.schema == table.schema && x.name == table.name
            });
            match pos {
                Some(_) if if_not_exists => return Ok(false),
                Some(i) if replace => c.tables[i] = table,
                Some(_) => return Err(exists("table")),
                None => c.tables.push(table),
            }
        }
        CatalogChange::DropTable {
            catalog,
            schema,
            name,
            if_exists,
        } => {
            let before = c.tables.len();
            c.tables
                .retain(|t| !(t.catalog == catalog && t.schema == schema && t.name == name));
            if before == c.tables.len() {
                return if if_exists {
                    Ok(false)
                } else {
                    Err(err(
                        StatusCode::NOT_FOUND,
                        "RESOURCE_DOES_NOT_EXIST",
                        "table",
                    ))
                };
            }
        }
        CatalogChange::DropSchema {
            catalog,
            name,
            if_exists,
            ..
        } => {
            let before = c.schemas.len();
            c.schemas
                .retain(|s| !(s.catalog == catalog && s.name == name));
            c.tables
                .retain(|t| !(t.catalog == catalog && t.schema == name));
            if before == c.schemas.len() && !if_exists {
                return Err(err(
                    StatusCode::NOT_FOUND,
                    "RESOURCE_DOES_NOT_EXIST",
                    "schema",
                ));
            }
        }
        CatalogChange::UpdateGrants {
            securable_type,
            full_name,
            changes,
        } => {
            for change in changes {
                if change.principal == "nobody" {
                    return Err(err(
                        StatusCode::BAD_REQUEST,
                        "INVALID_PARAMETER_VALUE",
                        "principal `nobody` does not exist",
                    ));
                }
                let pos = c.grants.iter().position(|g| {
                    g.securable_type == securable_type
                        && g.full_name == full_name
                        && g.principal == change.principal
                });
                let grant = match pos {
                    Some(i) => &mut c.grants[i],
                    None => {
                        c.grants.push(GrantRecord {
                            securable_type: securable_type.clone(),
                            full_name: full_name.clone(),
                            principal: change.principal.clone(),
                            privileges: vec![],
                        });
                        c.grants.last_mut().unwrap()
                    }
                };
                for p in change.add {
                    if !grant.privileges.contains(&p) {
                        grant.privileges.push(p);
                    }
                }
                grant.privileges.retain(|p| !change.remove.contains(p));
            }
        }
    }
    Ok(true)
}

async fn change_catalog(
    State(s): State<FakeState>,
    headers: HeaderMap,
    Json(req): Json<CatalogChangeRequest>,
) -> Response {
    if let Err(r) = checked(&s, &headers) {
        return r;
    }
    let result = {
        let mut fake = s.inner.lock().unwrap();
        let changed = apply(&mut fake, req.change);
        if let Ok(true) = changed {
            fake.version += 1;
        }
        changed.map(|changed| CatalogChangeResponse {
            version: fake.version,
            changed,
        })
    };
    match result {
        Ok(r) => versioned(&s, serde_json::to_value(r).unwrap()),
        Err(r) => r,
    }
}

async fn list_warehouses(State(s): State<FakeState>, headers: HeaderMap) -> Response {
    if let Err(r) = checked(&s, &headers) {
        return r;
    }
    let list: Vec<WarehouseRecord> = s
        .inner
        .lock()
        .unwrap()
        .warehouses
        .iter()
        .filter(|w| w.state != WarehouseState::Deleted)
        .cloned()
        .collect();
    versioned(&s, json!({"warehouses": list}))
}

async fn create_warehouse(
    State(s): State<FakeState>,
    headers: HeaderMap,
    Json(new): Json<NewWarehouse>,
) -> Response {
    if let Err(r) = checked(&s, &headers) {
        return r;
    }
    let record = {
        let mut fake = s.inner.lock().unwrap();
        fake.next_id += 1;
        fake.version += 1;
        let record = WarehouseRecord {
            id: format!("{:016x}", 0xabc000 + fake.next_id),
            workspace_id: new.workspace_id,
            spec: new.spec,
            state: new.state,
            creator_name: new.creator_name,
            last_activity_ms: new.last_activity_ms,
            acl: vec![AclEntry {
                grantee_id: new.creator_id,
                permission_level: "CAN_MANAGE".into(),
            }],
        };
        fake.warehouses.push(record.clone());
        record
    };
    versioned(&s, serde_json::to_value(record).unwrap())
}

async fn get_warehouse(
    State(s): State<FakeState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = checked(&s, &headers) {
        return r;
    }
    let found = s
        .inner
        .lock()
        .unwrap()
        .warehouses
        .iter()
        .find(|w| w.id == id)
        .cloned();
    match found {
        Some(w) => versioned(&s, serde_json::to_value(w).unwrap()),
        None => err(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            "no warehouse",
        ),
    }
}

async fn update_warehouse(
    State(s): State<FakeState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(update): Json<WarehouseUpdate>,
) -> Response {
    if let Err(r) = checked(&s, &headers) {
        return r;
    }
    let result = {
        let mut fake = s.inner.lock().unwrap();
        let injected = match update.state {
            Some(WarehouseState::Stopped) if fake.fail_stopped > 0 => {
                fake.fail_stopped -= 1;
                true
            }
            Some(WarehouseState::Running) if fake.fail_running > 0 => {
                fake.fail_running -= 1;
                true
            }
            _ => false,
        };
        if injected {
            return err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "injected failure",
            );
        }
        fake.version += 1;
        match fake.warehouses.iter_mut().find(|w| w.id == id) {
            None => Err(err(
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                "no warehouse",
            )),
            Some(w) if update.expect_state.is_some_and(|e| e != w.state) => {
                Err(err(StatusCode::CONFLICT, "ABORTED", "state changed"))
            }
            Some(w) => {
                if let Some(spec) = update.spec {
                    w.spec = spec;
                }
                if let Some(state) = update.state {
                    w.state = state;
                }
                if let Some(t) = update.last_activity_ms {
                    w.last_activity_ms = t;
                }
                Ok(w.clone())
            }
        }
    };
    match result {
        Ok(w) => versioned(&s, serde_json::to_value(w).unwrap()),
        Err(r) => r,
    }
}

async fn policies(State(s): State<FakeState>, headers: HeaderMap) -> Response {
    if let Err(r) = checked(&s, &headers) {
        return r;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    versioned(
        &s,
        serde_json::to_value(PolicySources {
            version: "v1".into(),
            files,
        })
        .unwrap(),
    )
}

async fn resolve(
    State(s): State<FakeState>,
    headers: HeaderMap,
    Json(req): Json<ResolvePrincipalRequest>,
) -> Response {
    if let Err(r) = checked(&s, &headers) {
        return r;
    }
    match s.principals.get(&req.user_name) {
        Some(p) => versioned(&s, serde_json::to_value(p).unwrap()),
        None => err(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            "no principal",
        ),
    }
}

async fn changes(
    State(s): State<FakeState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = checked(&s, &headers) {
        return r;
    }
    let after: u64 = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let version = s.inner.lock().unwrap().version;
        if version > after || Instant::now() > deadline {
            return versioned(
                &s,
                serde_json::to_value(ChangesResponse { version }).unwrap(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn principal(id: &str, user: &str, admin: bool) -> PrincipalRecord {
    let mut groups = vec![GroupRecord {
        id: "g-users".into(),
        display_name: "users".into(),
        workspace_id: Some(WS),
    }];
    if admin {
        groups.push(GroupRecord {
            id: "g-admins".into(),
            display_name: "admins".into(),
            workspace_id: Some(WS),
        });
    }
    PrincipalRecord {
        id: id.into(),
        kind: PrincipalKind::User,
        user_name: user.into(),
        display_name: user.into(),
        active: true,
        groups,
        token_use_workspaces: vec![WS],
    }
}

async fn start_fake(key: AssertionKey) -> (SocketAddr, Arc<Mutex<Fake>>) {
    let principals: HashMap<String, PrincipalRecord> = [
        principal("1", "admin@x.com", true),
        principal("2", "alice@x.com", false),
        principal("3", "bob@x.com", false),
    ]
    .into_iter()
    .map(|p| (p.user_name.clone(), p))
    .collect();
    let fake = Arc::new(Mutex::new(Fake {
        version: 1,
        ..Fake::default()
    }));
    let state = FakeState {
        inner: fake.clone(),
        key,
        principals: Arc::new(principals),
    };
    let app = Router::new()
        .route(CATALOG_PATH, get(catalog))
        .route(CATALOG_CHANGE_PATH, post(change_catalog))
        .route(WAREHOUSES_PATH, get(list_warehouses).post(create_warehouse))
        .route(
            &format!("{WAREHOUSE_PATH_PREFIX}{{id}}"),
            get(get_warehouse).put(update_warehouse),
        )
        .route(POLICIES_PATH, get(policies))
        .route(RESOLVE_PRINCIPAL_PATH, post(resolve))
        .route(CHANGES_PATH, get(changes))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, fake)
}

// ---- the runtime and a client ----

struct Harness {
    addr: SocketAddr,
    fake: Arc<Mutex<Fake>>,
    master: MasterSecret,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    _dir: tempfile::TempDir,
}

async fn harness(config: Config) -> Harness {
    let master = MasterSecret::generate();
    let (control, fake) = start_fake(master.key_for(Audience::DataPlane)).await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeDeps {
        key: master.key_for(Audience::Runtime),
        data_plane_key: master.key_for(Audience::DataPlane),
        control_url: format!("http://{control}"),
        data_dir: dir.path().to_path_buf(),
        config,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(runtime.serve(listener, std::future::pending()));
    Harness {
        addr,
        fake,
        master,
        http: Client::builder(TokioExecutor::new()).build_http(),
        _dir: dir,
    }
}

fn test_config() -> Config {
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

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Harness {
    async fn call(&self, user: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let (sub, groups) = match user {
            "admin@x.com" => ("1", vec!["g-users".to_owned(), "g-admins".to_owned()]),
            "alice@x.com" => ("2", vec!["g-users".to_owned()]),
            _ => ("3", vec!["g-users".to_owned()]),
        };
        let claims = IdentityClaims {
            sub: sub.into(),
            kind: PrincipalKind::User,
            user_name: user.into(),
            groups,
            workspace_id: Some(WS),
            auth_method: "pat".into(),
            ..IdentityClaims::gateway("acct-1", "req-1")
        };
        let token = self.master.key_for(Audience::Runtime).sign(claims).unwrap();
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header(IDENTITY_HEADER, token)
            .header("host", "ws.example.com")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload)))
            .unwrap();
        let response = self.http.request(request).await.unwrap();
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

    async fn wait_state(&self, user: &str, id: &str, state: &str) -> Value {
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

    async fn create_warehouse(&self, user: &str, name: &str, auto_stop_mins: i64) -> String {
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

    async fn execute(&self, user: &str, body: Value) -> Reply {
        self.call(user, "POST", "/api/2.0/sql/statements", Some(body))
            .await
    }

    async fn poll_until_done(&self, user: &str, id: &str, within: Duration) -> Value {
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
}

// ---- warehouses ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warehouse_life_cycle_and_permissions() {
    let h = harness(test_config()).await;
    let id = h.create_warehouse("alice@x.com", "alice-wh", 0).await;
    let info = h.wait_state("alice@x.com", &id, "RUNNING").await;
    assert_eq!(info["name"], "alice-wh");
    assert_eq!(info["cluster_size"], "2X-Small");
    assert_eq!(info["creator_name"], "alice@x.com");
    assert_eq!(info["warehouse_type"], "CLASSIC");
    assert_eq!(info["num_clusters"], 1);
    assert_eq!(info["odbc_params"]["hostname"], "ws.example.com");

    // Names are unique among live warehouses; validation names the field.
    let dup = h
        .call(
            "bob@x.com",
            "POST",
            "/api/2.0/sql/warehouses",
            Some(json!({"name": "alice-wh"})),
        )
        .await;
    assert_eq!(dup.status, 409, "{}", dup.body);
    let bad = h
        .call(
            "bob@x.com",
            "POST",
            "/api/2.0/sql/warehouses",
            Some(json!({"name": "b", "cluster_size": "Jumbo"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error_code"], "INVALID_PARAMETER_VALUE");
    assert!(bad.body["message"]
        .as_str()
        .unwrap()
        .contains("cluster_size"));

    // Bob holds nothing on it: no view, no list entry, no stop.
    let denied = h
        .call(
            "bob@x.com",
            "GET",
            &format!("/api/2.0/sql/warehouses/{id}"),
            None,
        )
        .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.body["error_code"], "PERMISSION_DENIED");
    assert!(denied.body["message"]
        .as_str()
        .unwrap()
        .contains("alice-wh"));
    let listed = h
        .call("bob@x.com", "GET", "/api/2.0/sql/warehouses", None)
        .await;
    assert_eq!(listed.body["warehouses"], json!([]));
    let stop = h
        .call(
            "bob@x.com",
            "POST",
            &format!("/api/2.0/sql/warehouses/{id}/stop"),
            Some(json!({})),
        )
        .await;
    assert_eq!(stop.status, 403);
    // Admins see everything.
    let listed = h
        .call("admin@x.com", "GET", "/api/2.0/sql/warehouses", None)
        .await;
    assert_eq!(listed.body["warehouses"].as_array().unwrap().len(), 1);
    let missing = h
        .call(
            "alice@x.com",
            "GET",
            "/api/2.0/sql/warehouses/00000000000fffff",
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error_code"], "RESOURCE_DOES_NOT_EXIST");

    // Edit, stop, start, delete.
    let edit = h
        .call(
            "alice@x.com",
            "POST",
            &format!("/api/2.0/sql/warehouses/{id}/edit"),
            Some(json!({"cluster_size": "Small"})),
        )
        .await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    let stop = h
        .call(
            "alice@x.com",
            "POST",
            &format!("/api/2.0/sql/warehouses/{id}/stop"),
            Some(json!({})),
        )
        .await;
    assert_eq!(stop.status, 200, "{}", stop.body);
    let stopped = h.wait_state("alice@x.com", &id, "STOPPED").await;
    assert_eq!(stopped["cluster_size"], "Small");
    let start = h
        .call(
            "alice@x.com",
            "POST",
            &format!("/api/2.0/sql/warehouses/{id}/start"),
            None,
        )
        .await;
    assert_eq!(start.status, 200, "{}", start.body);
    h.wait_state("alice@x.com", &id, "RUNNING").await;
    let delete = h
        .call(
            "alice@x.com",
            "DELETE",
            &format!("/api/2.0/sql/warehouses/{id}"),
            None,
        )
        .await;
    assert_eq!(delete.status, 200, "{}", delete.body);
    h.wait_state("alice@x.com", &id, "DELETED").await;
    let listed = h
        .call("alice@x.com", "GET", "/api/2.0/sql/warehouses", None)
        .await;
    assert_eq!(listed.body["warehouses"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_warehouses_stop_themselves() {
    let h = harness(test_config()).await;
    // One "minute" is 300 ms here.
    let id = h.create_warehouse("alice@x.com", "short-lived", 1).await;
    let keeper = h.create_warehouse("alice@x.com", "never-stops", 0).await;
    h.wait_state("alice@x.com", &id, "STOPPED").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let info = h.wait_state("alice@x.com", &keeper, "RUNNING").await;
    assert_eq!(info["auto_stop_mins"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_requests_are_validated_before_anything_runs() {
    let h = harness(test_config()).await;
    let id = h.create_warehouse("alice@x.com", "wh", 0).await;
    for (body, needle) in [
        (
            json!({"statement": "SELECT 1", "warehouse_id": id, "wait_timeout": "2s"}),
            "wait_timeout",
        ),
        (
            json!({"statement": "SELECT 1", "warehouse_id": id, "disposition": "EXTERNAL_LINKS"}),
            "EXTERNAL_LINKS",
        ),
        (
            json!({"statement": "SELECT 1", "warehouse_id": id, "format": "CSV"}),
            "CSV",
        ),
        (json!({"warehouse_id": id}), "statement"),
    ] {
        let r = h.execute("alice@x.com", body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["error_code"], "INVALID_PARAMETER_VALUE");
        assert!(
            r.body["message"].as_str().unwrap().contains(needle),
            "{}",
            r.body
        );
    }
    // Bob may not use Alice's warehouse.
    let r = h
        .execute(
            "bob@x.com",
            json!({"statement": "SELECT 1", "warehouse_id": id}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = h
        .call("alice@x.com", "GET", "/api/2.0/sql/statements/nope", None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error_code"], "RESOURCE_DOES_NOT_EXIST");
}

// ---- statements (these need the SQL engine) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_one_and_errors_as_failed() {
    let h = harness(test_config()).await;
    let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
    let r = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT 1 AS x", "warehouse_id": wh}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"]["state"], "SUCCEEDED", "{}", r.body);
    assert_eq!(r.body["result"]["data_array"], json!([["1"]]));
    let column = &r.body["manifest"]["schema"]["columns"][0];
    assert_eq!(column["name"], "x");
    assert_eq!(r.body["manifest"]["total_row_count"], 1);
    assert_eq!(r.body["manifest"]["format"], "JSON_ARRAY");

    // Another caller cannot see it; an admin can.
    let sid = r.body["statement_id"].as_str().unwrap();
    let other = h
        .call(
            "bob@x.com",
            "GET",
            &format!("/api/2.0/sql/statements/{sid}"),
            None,
        )
        .await;
    assert_eq!(other.status, 404);
    let admin = h
        .call(
            "admin@x.com",
            "GET",
            &format!("/api/2.0/sql/statements/{sid}"),
            None,
        )
        .await;
    assert_eq!(admin.status, 200);

    let bad = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELEC 1", "warehouse_id": wh}),
        )
        .await;
    assert_eq!(bad.status, 200, "{}", bad.body);
    assert_eq!(bad.body["status"]["state"], "FAILED");
    assert!(bad.body["status"]["error"]["message"].is_string());
    let missing = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT * FROM main.default.no_such_table", "warehouse_id": wh}),
        )
        .await;
    assert_eq!(
        missing.body["status"]["state"], "FAILED",
        "{}",
        missing.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_statements_are_polled_and_fetched_chunk_by_chunk() {
    let h = harness(test_config()).await;
    let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
    let r = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT value FROM generate_series(1, 40) ORDER BY value",
                   "warehouse_id": wh, "wait_timeout": "0s"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let state = r.body["status"]["state"].as_str().unwrap();
    assert!(
        ["PENDING", "RUNNING", "SUCCEEDED"].contains(&state),
        "{}",
        r.body
    );
    let id = r.body["statement_id"].as_str().unwrap().to_owned();
    let done = h
        .poll_until_done("alice@x.com", &id, Duration::from_secs(20))
        .await;
    assert_eq!(done["status"]["state"], "SUCCEEDED", "{done}");
    let manifest = &done["manifest"];
    assert_eq!(manifest["total_row_count"], 40);
    let chunk_count = manifest["total_chunk_count"].as_u64().unwrap();
    assert!(
        chunk_count > 1,
        "64-byte chunks must split 40 rows: {manifest}"
    );
    let mut values = Vec::new();
    let mut data = done["result"].clone();
    let mut fetched = 1;
    loop {
        for row in data["data_array"].as_array().unwrap() {
            values.push(row[0].as_str().unwrap().parse::<i64>().unwrap());
        }
        let Some(link) = data["next_chunk_internal_link"].as_str() else {
            break;
        };
        let next = h.call("alice@x.com", "GET", link, None).await;
        assert_eq!(next.status, 200, "{}", next.body);
        data = next.body;
        fetched += 1;
    }
    assert_eq!(fetched, chunk_count);
    assert_eq!(values, (1..=40).collect::<Vec<i64>>());
    let past = h
        .call(
            "alice@x.com",
            "GET",
            &format!("/api/2.0/sql/statements/{id}/result/chunks/{chunk_count}"),
            None,
        )
        .await;
    assert_eq!(past.status, 400);

    // row_limit truncates.
    let r = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT value FROM generate_series(1, 40)", "warehouse_id": wh,
                   "row_limit": 5}),
        )
        .await;
    assert_eq!(r.body["manifest"]["total_row_count"], 5, "{}", r.body);
    assert_eq!(r.body["manifest"]["truncated"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_query_is_cancelled_within_a_second() {
    let h = harness(test_config()).await;
    let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
    let r = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT count(*) FROM generate_series(1, 100000000) a \
                                 CROSS JOIN generate_series(1, 100000000) b",
                   "warehouse_id": wh, "wait_timeout": "0s"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["statement_id"].as_str().unwrap().to_owned();
    // Let it get going.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let polled = h
        .call(
            "alice@x.com",
            "GET",
            &format!("/api/2.0/sql/statements/{id}"),
            None,
        )
        .await;
    assert_eq!(polled.body["status"]["state"], "RUNNING", "{}", polled.body);
    let started = Instant::now();
    let cancel = h
        .call(
            "alice@x.com",
            "POST",
            &format!("/api/2.0/sql/statements/{id}/cancel"),
            Some(json!({})),
        )
        .await;
    assert_eq!(cancel.status, 200);
    assert_eq!(cancel.body, json!({}));
    let done = h
        .poll_until_done("alice@x.com", &id, Duration::from_secs(1))
        .await;
    assert_eq!(done["status"]["state"], "CANCELED");
    // The slot is free again within the second: the next statement runs.
    let next = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT 2 AS y", "warehouse_id": wh, "wait_timeout": "5s"}),
        )
        .await;
    assert_eq!(next.body["status"]["state"], "SUCCEEDED", "{}", next.body);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_warehouse_starts_for_a_statement() {
    let h = harness(test_config()).await;
    let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
    let stop = h
        .call(
            "alice@x.com",
            "POST",
            &format!("/api/2.0/sql/warehouses/{wh}/stop"),
            None,
        )
        .await;
    assert_eq!(stop.status, 200);
    h.wait_state("alice@x.com", &wh, "STOPPED").await;
    let r = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT 1 AS x", "warehouse_id": wh}),
        )
        .await;
    assert_eq!(r.body["status"]["state"], "SUCCEEDED", "{}", r.body);
    h.wait_state("alice@x.com", &wh, "RUNNING").await;
    assert!(r.headers.get(TOUCHED_HEADER).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_api_reads_and_changes_grants() {
    let h = harness(test_config()).await;
    // The first statement context seeds `samples` and `main`.
    let r = h
        .call(
            "admin@x.com",
            "GET",
            "/api/2.1/unity-catalog/permissions/catalog/main",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = h
        .call(
            "admin@x.com",
            "PATCH",
            "/api/2.1/unity-catalog/permissions/CATALOG/main",
            Some(json!({"changes": [{"principal": "bob@x.com", "add": ["USE_CATALOG"]}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["privilege_assignments"]
        .as_array()
        .unwrap()
        .contains(&json!({"principal": "bob@x.com", "privileges": ["USE_CATALOG"]})));
    let r = h
        .call(
            "admin@x.com",
            "PATCH",
            "/api/2.1/unity-catalog/permissions/catalog/main",
            Some(json!({"changes": [{"principal": "nobody", "add": ["USE_CATALOG"]}]})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = h
        .call(
            "bob@x.com",
            "PATCH",
            "/api/2.1/unity-catalog/permissions/catalog/main",
            Some(json!({"changes": [{"principal": "bob@x.com", "add": ["ALL_PRIVILEGES"]}]})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = h
        .call(
            "admin@x.com",
            "GET",
            "/api/2.1/unity-catalog/permissions/catalog/nope",
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_shown_only_to_those_who_may_see_them() {
    let h = harness(test_config()).await;
    let path = "/api/2.1/unity-catalog/permissions/catalog/main";
    // Seeds the catalog; `main` belongs to `admins` and nothing on it is granted to Alice.
    let r = h.call("admin@x.com", "GET", path, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Invisible to Alice: exactly as a missing catalog.
    let hidden = h.call("alice@x.com", "GET", path, None).await;
    let missing = h
        .call(
            "alice@x.com",
            "GET",
            "/api/2.1/unity-catalog/permissions/catalog/nope",
            None,
        )
        .await;
    assert_eq!(hidden.status, 404, "{}", hidden.body);
    assert_eq!(hidden.body["error_code"], missing.body["error_code"]);
    let patch = h
        .call(
            "alice@x.com",
            "PATCH",
            path,
            Some(json!({"changes": [{"principal": "alice@x.com", "add": ["USE_CATALOG"]}]})),
        )
        .await;
    assert_eq!(patch.status, 404, "{}", patch.body);

    let r = h
        .call(
            "admin@x.com",
            "PATCH",
            path,
            Some(json!({"changes": [
                {"principal": "alice@x.com", "add": ["USE_CATALOG"]},
                {"principal": "bob@x.com", "add": ["USE_CATALOG", "USE_SCHEMA"]},
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Alice now sees the catalog, but only her own assignment; the admin sees all of them.
    let alice = h.call("alice@x.com", "GET", path, None).await;
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(
        alice.body["privilege_assignments"],
        json!([{"principal": "alice@x.com", "privileges": ["USE_CATALOG"]}])
    );
    let filtered = h
        .call(
            "alice@x.com",
            "GET",
            &format!("{path}?principal=bob@x.com"),
            None,
        )
        .await;
    assert_eq!(filtered.body["privilege_assignments"], json!([]));
    let admin = h.call("admin@x.com", "GET", path, None).await;
    let principals: Vec<&str> = admin.body["privilege_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["principal"].as_str().unwrap())
        .collect();
    assert!(
        principals.contains(&"alice@x.com") && principals.contains(&"bob@x.com"),
        "{}",
        admin.body
    );
    // Group grants count as the caller's: `users` holds privileges on `samples`.
    let samples = h
        .call(
            "alice@x.com",
            "GET",
            "/api/2.1/unity-catalog/permissions/catalog/samples",
            None,
        )
        .await;
    assert_eq!(samples.status, 200, "{}", samples.body);
    assert_eq!(
        samples.body["privilege_assignments"][0]["principal"], "users",
        "{}",
        samples.body
    );
}

fn quiet_sweeper() -> Config {
    Config {
        idle_check_interval_ms: 600_000,
        ..test_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warehouse_left_stopping_can_be_stopped_and_started() {
    let h = harness(quiet_sweeper()).await;
    let id = h.create_warehouse("alice@x.com", "wh", 0).await;
    let stop_path = format!("/api/2.0/sql/warehouses/{id}/stop");
    let start_path = format!("/api/2.0/sql/warehouses/{id}/start");

    // The STOPPED update fails: the warehouse is left STOPPING; starting it finishes the stop
    // and starts it.
    h.fake.lock().unwrap().fail_stopped = 1;
    let stop = h.call("alice@x.com", "POST", &stop_path, None).await;
    assert_ne!(stop.status, 200, "{}", stop.body);
    h.wait_state("alice@x.com", &id, "STOPPING").await;
    let start = h.call("alice@x.com", "POST", &start_path, None).await;
    assert_eq!(start.status, 200, "{}", start.body);
    h.wait_state("alice@x.com", &id, "RUNNING").await;

    // Again; this time stopping it again finishes the stop.
    h.fake.lock().unwrap().fail_stopped = 1;
    let stop = h.call("alice@x.com", "POST", &stop_path, None).await;
    assert_ne!(stop.status, 200, "{}", stop.body);
    h.wait_state("alice@x.com", &id, "STOPPING").await;
    let stop = h.call("alice@x.com", "POST", &stop_path, None).await;
    assert_eq!(stop.status, 200, "{}", stop.body);
    h.wait_state("alice@x.com", &id, "STOPPED").await;

    // And a statement on a warehouse left STOPPING starts it too.
    let start = h.call("alice@x.com", "POST", &start_path, None).await;
    assert_eq!(start.status, 200, "{}", start.body);
    h.wait_state("alice@x.com", &id, "RUNNING").await;
    h.fake.lock().unwrap().fail_stopped = 1;
    let stop = h.call("alice@x.com", "POST", &stop_path, None).await;
    assert_ne!(stop.status, 200, "{}", stop.body);
    let r = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT 1 AS x", "warehouse_id": id}),
        )
        .await;
    assert_eq!(r.body["status"]["state"], "SUCCEEDED", "{}", r.body);
    h.wait_state("alice@x.com", &id, "RUNNING").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_finishes_a_stop_left_half_done() {
    let h = harness(test_config()).await;
    let id = h.create_warehouse("alice@x.com", "wh", 0).await;
    h.fake.lock().unwrap().fail_stopped = 1;
    let stop = h
        .call(
            "alice@x.com",
            "POST",
            &format!("/api/2.0/sql/warehouses/{id}/stop"),
            None,
        )
        .await;
    assert_ne!(stop.status, 200, "{}", stop.body);
    h.wait_state("alice@x.com", &id, "STOPPED").await;
}

/// Runs `statement` on the warehouse while the catalog answers slowly, and `meanwhile` once the
/// statement has read the warehouse's record (but before it queues).
async fn execute_racing(h: &Harness, wh: &str, meanwhile: &str) -> (Reply, Reply) {
    {
        let mut fake = h.fake.lock().unwrap();
        fake.catalog_delay_ms = 800;
        // A new version: the runtime's cached snapshot is stale, so it asks (slowly).
        fake.version += 1;
    }
    let run = h.execute(
        "alice@x.com",
        json!({"statement": "SELECT 1 AS x", "warehouse_id": wh, "wait_timeout": "30s"}),
    );
    let other = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let method = if meanwhile == "delete" {
            "DELETE"
        } else {
            "POST"
        };
        let path = if meanwhile == "delete" {
            format!("/api/2.0/sql/warehouses/{wh}")
        } else {
            format!("/api/2.0/sql/warehouses/{wh}/{meanwhile}")
        };
        let r = h.call("alice@x.com", method, &path, None).await;
        h.fake.lock().unwrap().catalog_delay_ms = 0;
        r
    };
    tokio::join!(run, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_racing_a_stop_restarts_the_warehouse_properly() {
    let h = harness(quiet_sweeper()).await;
    let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
    let (r, stop) = execute_racing(&h, &wh, "stop").await;
    assert_eq!(stop.status, 200, "{}", stop.body);
    assert_eq!(r.body["status"]["state"], "SUCCEEDED", "{}", r.body);
    // It ran on a warehouse started again through the control plane, not on compute the stop
    // had released.
    let info = h
        .call(
            "alice@x.com",
            "GET",
            &format!("/api/2.0/sql/warehouses/{wh}"),
            None,
        )
        .await;
    assert_eq!(info.body["state"], "RUNNING", "{}", info.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_racing_a_delete_fails() {
    let h = harness(quiet_sweeper()).await;
    let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
    let (r, delete) = execute_racing(&h, &wh, "delete").await;
    assert_eq!(delete.status, 200, "{}", delete.body);
    assert_eq!(r.body["status"]["state"], "FAILED", "{}", r.body);
    let message = r.body["status"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&wh) && message.contains("DELETED"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_fail_when_their_warehouse_cannot_start() {
    let h = harness(test_config()).await;
    h.fake.lock().unwrap().fail_running = 1000;
    let r = h
        .call(
            "alice@x.com",
            "POST",
            "/api/2.0/sql/warehouses",
            Some(json!({"name": "broken", "cluster_size": "2X-Small", "auto_stop_mins": 0})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let wh = r.body["id"].as_str().unwrap().to_owned();
    let r = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT 1 AS x", "warehouse_id": wh, "wait_timeout": "0s"}),
        )
        .await;
    assert_eq!(r.body["status"]["state"], "PENDING", "{}", r.body);
    let id = r.body["statement_id"].as_str().unwrap().to_owned();
    let done = h
        .poll_until_done("alice@x.com", &id, Duration::from_secs(20))
        .await;
    assert_eq!(done["status"]["state"], "FAILED", "{done}");
    assert_eq!(
        done["status"]["error"]["error_code"], "TEMPORARILY_UNAVAILABLE",
        "{done}"
    );
    // Once the control plane answers again, the sweeper provisions it.
    h.fake.lock().unwrap().fail_running = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = h
            .call(
                "alice@x.com",
                "GET",
                &format!("/api/2.0/sql/warehouses/{wh}"),
                None,
            )
            .await;
        if r.body["state"] == "RUNNING" {
            break;
        }
        assert!(Instant::now() < deadline, "never RUNNING: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_pending_past_the_retention_fail() {
    let h = harness(Config {
        statement_retention_secs: 1,
        ..test_config()
    })
    .await;
    h.fake.lock().unwrap().fail_running = 1000;
    let r = h
        .call(
            "alice@x.com",
            "POST",
            "/api/2.0/sql/warehouses",
            Some(json!({"name": "slow", "cluster_size": "2X-Small", "auto_stop_mins": 0})),
        )
        .await;
    let wh = r.body["id"].as_str().unwrap().to_owned();
    let r = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT 1 AS x", "warehouse_id": wh, "wait_timeout": "0s"}),
        )
        .await;
    let id = r.body["statement_id"].as_str().unwrap().to_owned();
    let done = h
        .poll_until_done("alice@x.com", &id, Duration::from_secs(4))
        .await;
    assert_eq!(done["status"]["state"], "FAILED", "{done}");
    assert!(
        done["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("without starting"),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_reaches_a_statement_waiting_in_the_queue() {
    let h = harness(test_config()).await;
    // 2X-Small runs one statement at a time.
    let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
    let long = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT count(*) FROM generate_series(1, 100000000) a \
                                 CROSS JOIN generate_series(1, 100000000) b",
                   "warehouse_id": wh, "wait_timeout": "0s"}),
        )
        .await;
    let long_id = long.body["statement_id"].as_str().unwrap().to_owned();
    let queued = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT count(*) FROM samples.tpch.nation",
                   "warehouse_id": wh, "wait_timeout": "0s"}),
        )
        .await;
    assert_eq!(queued.body["status"]["state"], "PENDING", "{}", queued.body);
    let queued_id = queued.body["statement_id"].as_str().unwrap().to_owned();
    // Revoked while it waits.
    let revoke = h
        .call(
            "admin@x.com",
            "PATCH",
            "/api/2.1/unity-catalog/permissions/catalog/samples",
            Some(json!({"changes": [{"principal": "users", "remove": ["SELECT"]}]})),
        )
        .await;
    assert_eq!(revoke.status, 200, "{}", revoke.body);
    let cancel = h
        .call(
            "alice@x.com",
            "POST",
            &format!("/api/2.0/sql/statements/{long_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(cancel.status, 200);
    let done = h
        .poll_until_done("alice@x.com", &queued_id, Duration::from_secs(20))
        .await;
    assert_eq!(done["status"]["state"], "FAILED", "{done}");
    assert_eq!(
        done["status"]["error"]["error_code"], "PERMISSION_DENIED",
        "{done}"
    );
    // A refused execute names what it attempted for the audit record.
    let denied = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT count(*) FROM samples.tpch.nation", "warehouse_id": wh}),
        )
        .await;
    assert_eq!(denied.body["status"]["state"], "FAILED", "{}", denied.body);
    let touched = denied
        .headers
        .get(TOUCHED_HEADER)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(touched.contains("samples.tpch.nation"), "{touched:?}");
}
