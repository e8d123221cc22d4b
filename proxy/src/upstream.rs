//! The HTTP client to the upstreams (control plane and runtime, plain HTTP on loopback): one
//! pooled HTTP/1 client with a short connect timeout, and a response-head timeout around
//! every call, so a down upstream is a quick 502 and a slow one a 504, never a hang.

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// The pooled client every upstream call goes through.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Builds the client. `connect_timeout` bounds TCP connect (loopback: refused at once when
/// the upstream is down, so this only matters for a wedged listener).
pub(crate) fn http_client(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// Why an upstream call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no response head within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Other(String),
    /// `101 Switching Protocols`, though the gateway never asks for an upgrade (it strips
    /// `Upgrade` and `Connection` from every request): relaying it would hand the client a
    /// raw connection to the upstream.
    #[error("101 Switching Protocols to a request that asked for no upgrade")]
    UnrequestedUpgrade,
}

/// Sends `req` and waits at most `timeout` for the response head. The body streams after.
/// A `101` is refused: no request the gateway sends asks to switch protocols.
pub(crate) async fn send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Response<Incoming>, UpstreamError> {
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err(UpstreamError::Timeout(timeout)),
        Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect(error_chain(&e))),
        Ok(Err(e)) => Err(UpstreamError::Other(error_chain(&e))),
        // Dropped here, the upgraded connection goes with it; the pool never reuses it.
        Ok(Ok(response)) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            Err(UpstreamError::UnrequestedUpgrade)
        }
        Ok(Ok(response)) => Ok(response),
    }
}

/// An error and its sources, for logs.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Where an upstream listens: `http://host:port`.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamBase {
    authority: Authority,
}

impl UpstreamBase {
    /// Parses a base URL; only `http://` with a host and no path.
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("upstream URL `{url}`: {e}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            anyhow::bail!(
                "upstream URL `{url}` must be http:// (the upstreams listen on loopback)"
            );
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("upstream URL `{url}` has no host"))?;
        if !matches!(uri.path(), "" | "/") {
            anyhow::bail!("upstream URL `{url}` must not have a path");
        }
        Ok(UpstreamBase { authority })
    }

    /// The absolute URI of `path_and_query` on this upstream.
    pub(crate) fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        let base = UpstreamBase::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            base.uri("/api/2.0/token/list?x=1").unwrap().to_string(),
            "http://127.0.0.1:9000/api/2.0/token/list?x=1"
        );
        assert!(UpstreamBase::parse("https://127.0.0.1:9000").is_err());
        assert!(UpstreamBase::parse("http://127.0.0.1:9000/base").is_err());
        assert!(UpstreamBase::parse("127.0.0.1:9000").is_err());
    }

    #[tokio::test]
    async fn a_down_upstream_fails_fast_as_connect() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = http_client(Duration::from_millis(250));
        let req = Request::get(format!("http://127.0.0.1:{port}/"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let started = std::time::Instant::now();
        let err = send(&client, req, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, UpstreamError::Connect(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
