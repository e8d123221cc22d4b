//! The one client for calls between services (feature `client`): plain HTTP/1.1 on the
//! internal network, pooled.
//!
//! Every call has a deadline covering everything (connecting, retries, reading the answer), a
//! cap on the bytes of the answer it will read (so a confused peer cannot make us buffer
//! without bound), and the identity assertion signed for it. Failures that a repeat cannot
//! turn into a second change are retried with jittered exponential backoff
//! ([`crate::backoff::reconnect`]) while the deadline lasts:
//!
//! - a connection that could not be made sent nothing, so any call is retried;
//! - other transport failures, and 502/503/504 answers, only for idempotent calls (`GET`,
//!   `HEAD`, `PUT`, `DELETE`, `OPTIONS`, or one marked with [`Call::idempotent`]), since a
//!   request may have been acted on before its answer was lost.

#[cfg(test)]
mod tests;

use crate::backoff;
use backon::Retryable;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lakeward_common::assertion::{AssertionError, AssertionKey, IdentityClaims, IDENTITY_HEADER};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The deadline of a call that sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read by a call that sets no cap (a gateway snapshot of many workspaces
/// and IP access lists fits well inside).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Retries after the first attempt, for a call that sets no count.
pub const DEFAULT_RETRIES: usize = 2;
/// The first delay before a retry; it doubles up to [`RETRY_LONGEST`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_LONGEST: Duration = Duration::from_secs(1);
/// Idle pooled connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request could not be built (a bad path or header, a body that does not serialize).
    #[error("invalid request: {0}")]
    Request(String),
    /// The identity assertion could not be signed.
    #[error("identity assertion could not be signed")]
    Signing(#[source] AssertionError),
    /// No connection, or it broke before the answer was read.
    #[error("transport failure: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The deadline passed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer's body was larger than the call's cap.
    #[error("answer larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The peer answered with a status other than 2xx (from [`Reply::error_for_status`]).
    #[error("answered {status}")]
    Status { status: StatusCode, body: Bytes },
    /// The answer was not the JSON expected.
    #[error("answer unreadable: {0}")]
    Decode(#[source] serde_json::Error),
}

impl ClientError {
    /// The status of a [`ClientError::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout(_))
    }
}

/// An answer: its status, headers and whole body (within the call's cap).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The reply itself when its status is 2xx, else [`ClientError::Status`] with its body.
    pub fn error_for_status(self) -> Result<Reply, ClientError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(ClientError::Status {
                status: self.status,
                body: self.body,
            })
        }
    }

    /// The body as JSON, whatever the status.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(ClientError::Decode)
    }
}

/// A client of one peer (`http://host:port`), cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct InternalClient {
    http: Client<HttpConnector, Full<Bytes>>,
    base: Arc<str>,
    timeout: Duration,
    max_response_bytes: usize,
    retries: usize,
}

impl InternalClient {
    /// A client of the service at `base_url`, with [`DEFAULT_TIMEOUT`],
    /// [`DEFAULT_MAX_RESPONSE_BYTES`] and [`DEFAULT_RETRIES`].
    pub fn new(base_url: &str) -> Self {
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build_http();
        InternalClient {
            http,
            base: Arc::from(base_url.trim_end_matches('/')),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            retries: DEFAULT_RETRIES,
        }
    }

    /// The deadline of calls that set none.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The answer cap of calls that set none.
    pub fn with_max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// The retry count of calls that set none.
    pub fn with_retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// The peer's base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A call of `method` on `path_and_query` (which starts with `/`), to be completed and
    /// sent.
    pub fn call(&self, method: Method, path_and_query: &str) -> Call<'_> {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        Call {
            client: self,
            uri: format!("{}{path_and_query}", self.base),
            method,
            headers,
            body: Bytes::new(),
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
            retries: self.retries,
            idempotent,
            invalid: None,
        }
    }
}

/// One call being put together; nothing is sent before [`Call::send`] (or [`Call::json`]).
/// A mistake while building (a bad header, a body that does not serialize, a failed
/// signature) is reported by `send`.
#[derive(Debug)]
#[must_use = "a call does nothing until sent"]
pub struct Call<'c> {
    client: &'c InternalClient,
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
    max_response_bytes: usize,
    retries: usize,
    idempotent: bool,
    invalid: Option<ClientError>,
}

impl Call<'_> {
    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                self.headers.insert(name, value);
            }
            Err(_) => self.fail(ClientError::Request(format!(
                "bad value for header `{name}`"
            ))),
        }
        self
    }

    /// Sends `body` as JSON.
    pub fn json_body<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Bytes::from(bytes);
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Err(e) => self.fail(ClientError::Request(format!("body: {e}"))),
        }
        self
    }

    /// Signs `claims` with `key` and sends them as the identity assertion.
    pub fn signed(self, key: &AssertionKey, claims: IdentityClaims) -> Self {
        self.signed_by(|| key.sign(claims))
    }

    /// Sends the assertion `sign` returns (for callers that sign in their own way).
    pub fn signed_by(mut self, sign: impl FnOnce() -> Result<String, AssertionError>) -> Self {
        match sign() {
            Ok(token) => match HeaderValue::from_str(&token) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    self.headers
                        .insert(HeaderName::from_static(IDENTITY_HEADER), value);
                }
                Err(_) => self.fail(ClientError::Signing(AssertionError::Signing)),
            },
            Err(e) => self.fail(ClientError::Signing(e)),
        }
        self
    }

    /// The deadline of this call (all attempts and the answer's body together).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most bytes of answer this call reads.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Retries after the first attempt (0: none).
    pub fn retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// Whether repeating the call is harmless (a `POST` that only reads, say). The default
    /// follows the method.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    fn fail(&mut self, err: ClientError) {
        self.invalid.get_or_insert(err);
    }

    /// Sends the call and reads the whole answer, whatever its status.
    pub async fn send(self) -> Result<Reply, ClientError> {
        if let Some(err) = self.invalid {
            return Err(err);
        }
        let uri: Uri = self
            .uri
            .parse()
            .map_err(|_| ClientError::Request("bad URI".into()))?;
        let attempt = Attempt {
            http: &self.client.http,
            method: self.method,
            uri,
            headers: self.headers,
            body: self.body,
            max_response_bytes: self.max_response_bytes,
            idempotent: self.idempotent,
        };
        let policy = backoff::reconnect(RETRY_FIRST, RETRY_LONGEST).with_max_times(self.retries);
        let attempts = (|| attempt.run())
            .retry(policy)
            .when(|failure| failure.retryable(attempt.idempotent))
            .notify(|failure, delay| {
                tracing::debug!(uri = %attempt.uri, %failure, ?delay, "retrying an internal call");
            });
        match tokio::time::timeout(self.timeout, attempts).await {
            Err(_) => Err(ClientError::Timeout(self.timeout)),
            Ok(Ok(reply)) => Ok(reply),
            // Retries spent on a peer that kept answering "unavailable": that answer is the
            // caller's to read.
            Ok(Err(Failure::Unavailable(reply))) => Ok(reply),
            Ok(Err(Failure::Failed { error, .. })) => Err(error),
        }
    }

    /// Sends the call and reads a 2xx answer as JSON; any other status is
    /// [`ClientError::Status`].
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        self.send().await?.error_for_status()?.json()
    }
}

/// Everything one attempt needs, shared by all the attempts of a call.
struct Attempt<'c> {
    http: &'c Client<HttpConnector, Full<Bytes>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    max_response_bytes: usize,
    idempotent: bool,
}

/// How one attempt went wrong.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{error}")]
    Failed {
        error: ClientError,
        /// No connection was made: nothing was sent.
        unsent: bool,
    },
    #[error("answered {}", .0.status)]
    Unavailable(Reply),
}

impl Failure {
    fn retryable(&self, idempotent: bool) -> bool {
        match self {
            Failure::Failed {
                error: ClientError::Transport(_),
                unsent,
            } => *unsent || idempotent,
            Failure::Failed { .. } => false,
            Failure::Unavailable(_) => idempotent,
        }
    }
}

impl Attempt<'_> {
    async fn run(&self) -> Result<Reply, Failure> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| Failure::Failed {
                unsent: e.is_connect(),
                error: ClientError::Transport(Box::new(e)),
            })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_response_bytes)
            .collect()
            .await
            .map_err(|e| {
                let error = if e.is::<LengthLimitError>() {
                    ClientError::TooLarge {
                        limit: self.max_response_bytes,
                    }
                } else {
                    ClientError::Transport(e)
                };
                Failure::Failed {
                    error,
                    unsent: false,
                }
            })?
            .to_bytes();
        let reply = Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        match reply.status {
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Err(Failure::Unavailable(reply)),
            _ => Ok(reply),
        }
    }
}
