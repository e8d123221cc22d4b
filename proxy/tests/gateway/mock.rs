//! Mock upstreams: a control plane serving the internal API from an in-memory [`Model`], a
//! runtime, and a JWKS server. Every one records what it receives, and the upstreams verify
//! the identity assertion with the key derived for their audience.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lakeward_common::assertion::{AssertionKey, IdentityClaims, PrincipalKind, IDENTITY_HEADER};
use lakeward_common::internal::*;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// One request as a mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The verified assertion, `None` if missing or invalid.
    pub claims: Option<IdentityClaims>,
}

type Handler = Arc<
    dyn Fn(Recorded) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>> + Send + Sync,
>;

/// A small HTTP/1 server on 127.0.0.1:0.
pub struct MockServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockServer {
    pub async fn start(key: Option<AssertionKey>, handler: Handler) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let recorded = recorded.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let recorded = recorded.clone();
                        let key = key.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let claims = match (&key, parts.headers.get(IDENTITY_HEADER)) {
                                (Some(key), Some(v)) => key.verify(v.to_str().unwrap_or("")).ok(),
                                _ => None,
                            };
                            let rec = Recorded {
                                method: parts.method.clone(),
                                path: parts.uri.path().to_owned(),
                                query: parts.uri.query().map(str::to_owned),
                                headers: parts.headers.clone(),
                                body,
                                claims,
                            };
                            let internal =
                                rec.path.starts_with("/internal/") || rec.path == "/ready";
                            if !internal {
                                recorded.lock().unwrap().push(rec.clone());
                            }
                            if key.is_some() && rec.claims.is_none() {
                                return Ok::<_, Infallible>(json(
                                    StatusCode::UNAUTHORIZED,
                                    r#"{"error_code":"UNAUTHENTICATED","message":"no assertion"}"#
                                        .into(),
                                ));
                            }
                            Ok::<_, Infallible>(handler(rec).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        MockServer {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far (internal API calls excluded).
    pub fn received(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

pub fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// The control plane's state, shared with the test.
#[derive(Default)]
pub struct Model {
    pub snapshot: GatewaySnapshot,
    /// By token hash.
    pub tokens: HashMap<String, ResolvedToken>,
    /// By user name.
    pub principals: HashMap<String, PrincipalRecord>,
    /// Token lookups (`resolve-token` calls) received so far.
    pub token_lookups: usize,
    /// Token lookups being answered now, and the most there ever were at once.
    pub lookups_in_flight: usize,
    pub max_lookups_in_flight: usize,
    /// How long each token lookup takes to answer (a control plane under load).
    pub lookup_delay: Option<Duration>,
}

impl Model {
    /// A committed change: the version grows.
    pub fn bump(&mut self) {
        self.snapshot.version += 1;
    }

    fn workspace_mut(&mut self, id: i64) -> Option<&mut WorkspaceRecord> {
        self.snapshot
            .workspaces
            .iter_mut()
            .find(|w| w.workspace_id == id)
    }
}

pub type SharedModel = Arc<Mutex<Model>>;

/// The mock control plane.
pub async fn control(model: SharedModel, key: AssertionKey) -> MockServer {
    let handler: Handler = Arc::new(move |rec: Recorded| {
        let model = model.clone();
        Box::pin(async move { control_answer(&model, rec).await })
    });
    MockServer::start(Some(key), handler).await
}

async fn control_answer(model: &SharedModel, rec: Recorded) -> Response<Full<Bytes>> {
    if rec.path.starts_with("/internal/") {
        let gateway = rec
            .claims
            .as_ref()
            .is_some_and(|c| c.kind == PrincipalKind::Gateway);
        if !gateway {
            return json(StatusCode::FORBIDDEN, "{}".into());
        }
    }
    let body: serde_json::Value = serde_json::from_slice(&rec.body).unwrap_or_default();
    let (status, text) = match (rec.method.as_str(), rec.path.as_str()) {
        ("GET", READY_PATH) => (StatusCode::OK, "{}".into()),
        ("GET", SNAPSHOT_PATH) => {
            let m = model.lock().unwrap();
            (StatusCode::OK, serde_json::to_string(&m.snapshot).unwrap())
        }
        ("POST", RESOLVE_TOKEN_PATH) => {
            let delay = {
                let mut m = model.lock().unwrap();
                m.token_lookups += 1;
                m.lookups_in_flight += 1;
                m.max_lookups_in_flight = m.max_lookups_in_flight.max(m.lookups_in_flight);
                m.lookup_delay
            };
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            model.lock().unwrap().lookups_in_flight -= 1;
            let req: ResolveTokenRequest = serde_json::from_slice(&rec.body).unwrap();
            match model.lock().unwrap().tokens.get(&req.token_hash) {
                Some(t) => (StatusCode::OK, serde_json::to_string(t).unwrap()),
                None => (StatusCode::NOT_FOUND, "{}".into()),
            }
        }
        ("POST", RESOLVE_PRINCIPAL_PATH) => {
            let req: ResolvePrincipalRequest = serde_json::from_slice(&rec.body).unwrap();
            match model.lock().unwrap().principals.get(&req.user_name) {
                Some(p) => (StatusCode::OK, serde_json::to_string(p).unwrap()),
                None => (StatusCode::NOT_FOUND, "{}".into()),
            }
        }
        ("GET", CHANGES_PATH) => {
            let after: u64 = rec
                .query
                .as_deref()
                .and_then(|q| q.strip_prefix("after="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            // A short long-poll keeps tests quick.
            for _ in 0..20 {
                if model.lock().unwrap().snapshot.version > after {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let version = model.lock().unwrap().snapshot.version;
            (
                StatusCode::OK,
                serde_json::to_string(&ChangesResponse { version }).unwrap(),
            )
        }
        ("POST", "/api/2.0/token/create") => {
            let claims = rec.claims.clone().unwrap();
            let value = lakeward_common::token::generate_token();
            let mut m = model.lock().unwrap();
            let principal = m.principals.get(&claims.user_name).cloned().unwrap();
            let id = format!("tok-{}", m.tokens.len() + 100);
            m.tokens.insert(
                lakeward_common::token::hash_token(&value),
                ResolvedToken {
                    token_id: id.clone(),
                    token_hash: lakeward_common::token::hash_token(&value),
                    workspace_id: claims.workspace_id.unwrap(),
                    expiry_time_ms: -1,
                    principal,
                },
            );
            m.bump();
            (
                StatusCode::OK,
                serde_json::json!({"token_value": value, "token_info": {"token_id": id, "comment": body["comment"]}}).to_string(),
            )
        }
        ("POST", "/api/2.0/token/delete") => {
            let id = body["token_id"].as_str().unwrap_or_default().to_owned();
            let mut m = model.lock().unwrap();
            m.tokens.retain(|_, t| t.token_id != id);
            m.bump();
            (StatusCode::OK, "{}".into())
        }
        ("PATCH", "/api/2.0/workspace-conf") => {
            let ws = rec.claims.as_ref().and_then(|c| c.workspace_id).unwrap();
            let mut m = model.lock().unwrap();
            if let Some(w) = m.workspace_mut(ws) {
                if let Some(v) = body["enableIpAccessLists"].as_str() {
                    w.enable_ip_access_lists = v == "true";
                }
            }
            m.bump();
            (StatusCode::NO_CONTENT, String::new())
        }
        ("POST", "/api/2.0/ip-access-lists") => {
            let ws = rec.claims.as_ref().and_then(|c| c.workspace_id).unwrap();
            let mut m = model.lock().unwrap();
            let list = IpAccessListRule {
                list_id: format!("list-{}", m.snapshot.version),
                list_type: if body["list_type"] == "BLOCK" {
                    ListType::Block
                } else {
                    ListType::Allow
                },
                enabled: true,
                ip_addresses: body["ip_addresses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
            };
            if let Some(w) = m.workspace_mut(ws) {
                w.ip_access_lists.push(list);
            }
            m.bump();
            (StatusCode::OK, r#"{"ip_access_list":{}}"#.into())
        }
        _ => (
            StatusCode::OK,
            serde_json::json!({"upstream": "control", "path": rec.path}).to_string(),
        ),
    };
    let version = model.lock().unwrap().snapshot.version;
    let mut response = json(status, text);
    let headers = response.headers_mut();
    headers.insert(STATE_VERSION_HEADER, version.to_string().parse().unwrap());
    headers.insert("x-lakeward-internal-detail", "leak".parse().unwrap());
    response
}

/// The mock runtime: answers everything, sleeps on `.../statements/slow`, and switches
/// protocols on `.../statements/switch` whatever it was asked.
pub async fn runtime(key: AssertionKey) -> MockServer {
    let handler: Handler = Arc::new(|rec: Recorded| {
        Box::pin(async move {
            if rec.path == "/ready" {
                return json(StatusCode::OK, "{}".into());
            }
            if rec.path.ends_with("/statements/slow") {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            if rec.path.ends_with("/statements/switch") {
                return Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
            }
            let mut response = json(
                StatusCode::OK,
                serde_json::json!({"upstream": "runtime", "path": rec.path}).to_string(),
            );
            if rec.path == "/api/2.0/sql/statements" {
                response.headers_mut().insert(
                    lakeward_common::data::TOUCHED_HEADER,
                    "SelectTable samples.tpch.nation, ModifyTable main.default.t"
                        .parse()
                        .unwrap(),
                );
            }
            response
        })
    });
    MockServer::start(Some(key), handler).await
}

/// A JWKS server: serves `jwks` at `/jwks`; `requests` counts fetches.
pub async fn jwks(jwks: String) -> MockServer {
    let handler: Handler = Arc::new(move |_rec: Recorded| {
        let body = jwks.clone();
        Box::pin(async move { json(StatusCode::OK, body) })
    });
    MockServer::start(None, handler).await
}
