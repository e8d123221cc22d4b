//! Per-connection and per-request context. Each stage fills in what it learns (client ip,
//! workspace, principal, route, decision); audit and metrics read it at the end.

use crate::route::Route;
use crate::state::{Snapshot, WorkspaceEntry};
use bytes::Bytes;
use http::Method;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::internal::{GroupRecord, PrincipalRecord};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the gateway knows about one client connection.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The TLS server name the client sent, lowercased.
    pub sni: Option<String>,
    /// HTTP/2 (by ALPN) rather than HTTP/1.1.
    pub h2: bool,
    /// Set by the HTTP/1 framing guard: the first request on this connection whose bytes it
    /// could not vouch for. That request and every later one on the connection are refused.
    pub framing_fault: OnceLock<FramingFault>,
    /// Requests seen so far; gives each request its number on the connection.
    requests: AtomicU64,
    /// Requests whose response head has not been produced yet (the idle timer waits for 0).
    pub in_flight: AtomicUsize,
    /// Milliseconds since `opened` at the last read or write (the idle timer's clock).
    pub last_activity_ms: AtomicU64,
    /// When the connection was accepted.
    pub opened: Instant,
}

impl ConnInfo {
    pub(crate) fn new(peer: SocketAddr, sni: Option<String>, h2: bool) -> Self {
        ConnInfo {
            peer,
            sni,
            h2,
            framing_fault: OnceLock::new(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_activity_ms: AtomicU64::new(0),
            opened: Instant::now(),
        }
    }

    /// Numbers the next request (from 1). HTTP/1 dispatches requests in the order their heads
    /// arrive, so this matches the framing guard's count.
    pub(crate) fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records I/O now.
    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the last I/O.
    pub(crate) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }
}

/// A request whose HTTP/1 framing the guard found unsafe to pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FramingFault {
    /// The request's number on its connection (from 1).
    pub request: u64,
    pub kind: FramingFaultKind,
}

/// What was wrong with a request's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FramingFaultKind {
    /// Both `Content-Length` and `Transfer-Encoding`, or more than one length.
    Ambiguous,
    /// More chunk-extension bytes in one body than the limit allows.
    ChunkExtensionsTooLong,
    /// Bytes the guard cannot follow (hyper refuses them too; refusing here keeps the guard
    /// from ever losing its place while hyper goes on).
    Unparseable,
}

/// Whom a request addresses.
#[derive(Debug, Clone)]
pub(crate) enum Scope {
    /// A workspace-level route, in this workspace.
    Workspace(Arc<WorkspaceEntry>),
    /// An account-level route (`/api/2.0/accounts/<account_id>/...`).
    Account,
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    Pat,
    Oauth,
    /// No credentials: public routes.
    None,
}

impl AuthMethod {
    /// The value in the assertion, the Cedar context and the audit record.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Pat => "pat",
            AuthMethod::Oauth => "oauth",
            AuthMethod::None => "none",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// As the control plane resolved it (or the anonymous stand-in).
    pub record: PrincipalRecord,
    pub auth_method: AuthMethod,
    /// The personal access token used, if any.
    pub token_id: Option<String>,
}

impl Principal {
    pub(crate) fn anonymous() -> Self {
        Principal {
            record: PrincipalRecord {
                id: "anonymous".to_owned(),
                kind: PrincipalKind::Anonymous,
                user_name: "anonymous".to_owned(),
                display_name: "anonymous".to_owned(),
                active: true,
                groups: Vec::new(),
                token_use_workspaces: Vec::new(),
            },
            auth_method: AuthMethod::None,
            token_id: None,
        }
    }

    /// Groups that count in the scope addressed: account-level groups always, workspace
    /// groups only of the workspace addressed.
    pub(crate) fn groups_in(&self, workspace: Option<i64>) -> impl Iterator<Item = &GroupRecord> {
        self.record
            .groups
            .iter()
            .filter(move |g| g.workspace_id.is_none() || g.workspace_id == workspace)
    }
}

/// What authorization decided.
#[derive(Debug, Clone)]
pub(crate) struct DecisionInfo {
    pub allowed: bool,
    pub determining_policies: Vec<String>,
    pub policy_version: String,
}

/// Everything known about one request so far.
#[derive(Debug)]
pub(crate) struct RequestCtx {
    pub request_id: String,
    pub started: Instant,
    /// Milliseconds since the Unix epoch at arrival.
    pub received_unix_ms: i64,
    pub conn: Arc<ConnInfo>,
    /// The request's number on its connection (from 1).
    pub ordinal: u64,
    pub method: Method,
    pub user_agent: Option<String>,
    /// The raw query string.
    pub query: Option<String>,
    /// The buffered request body (empty until admission read it); audit reads its fields.
    pub body: Bytes,
    /// The normalized path, workspace prefix removed: what is routed and forwarded.
    pub path: Option<String>,
    /// The authority the client addressed (`host[:port]`).
    pub authority: Option<String>,
    /// `/w/<id>` when the workspace was addressed by path prefix.
    pub prefix: Option<String>,
    pub client_ip: Option<IpAddr>,
    /// The control-plane snapshot this request was decided with.
    pub snapshot: Option<Arc<Snapshot>>,
    pub scope: Option<Scope>,
    pub route: Option<Route>,
    pub principal: Option<Principal>,
    pub decision: Option<DecisionInfo>,
    /// Time spent waiting for the upstream's response head.
    pub upstream_elapsed: Option<Duration>,
    /// What the runtime said a statement touched (`<Action> <full name>` pairs), for audit.
    pub touched: Option<String>,
    /// Close the connection after this response (HTTP/1 framing could not be trusted).
    pub close_connection: bool,
}

impl RequestCtx {
    pub(crate) fn new(conn: Arc<ConnInfo>, parts: &http::request::Parts) -> Self {
        let ordinal = conn.next_request();
        let received_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        RequestCtx {
            request_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            received_unix_ms,
            conn,
            ordinal,
            method: parts.method.clone(),
            user_agent: parts
                .headers
                .get(http::header::USER_AGENT)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            query: parts.uri.query().map(str::to_owned),
            body: Bytes::new(),
            path: None,
            authority: None,
            prefix: None,
            client_ip: None,
            snapshot: None,
            scope: None,
            route: None,
            principal: None,
            decision: None,
            upstream_elapsed: None,
            touched: None,
            close_connection: false,
        }
    }

    /// The workspace addressed, if the route is workspace-level.
    pub(crate) fn workspace(&self) -> Option<&Arc<WorkspaceEntry>> {
        match &self.scope {
            Some(Scope::Workspace(ws)) => Some(ws),
            _ => None,
        }
    }
}
