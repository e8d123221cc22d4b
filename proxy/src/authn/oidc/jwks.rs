//! Fetching an issuer's JWKS over HTTPS (hyper-rustls, ring provider), or plain HTTP for a
//! loopback URL (tests only; `Config::validate` refuses others).

use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::Jwk;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Where Linux distributions keep the system CA bundle.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// An HTTPS-capable client for one issuer's JWKS.
pub(crate) struct JwksClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl JwksClient {
    /// A client trusting `ca_file`, or the system bundle when `None`.
    pub(crate) fn new(ca_file: Option<&Path>, needs_tls: bool) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        if needs_tls {
            let path = match ca_file {
                Some(p) => p.to_path_buf(),
                None => system_bundle().ok_or_else(|| {
                    anyhow::anyhow!(
                        "no system CA bundle found for the JWKS client; set `jwks_ca_file`"
                    )
                })?,
            };
            let pem = std::fs::read(&path)
                .map_err(|e| anyhow::anyhow!("reading `{}`: {e}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))?;
                // A bundle may hold certificates rustls cannot use; skip them, as browsers do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                anyhow::bail!("`{}` holds no usable CA certificate", path.display());
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(JwksClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Fetches and parses a JWKS. Keys that do not parse are skipped, so one exotic key does
    /// not take the issuer's other keys down with it.
    pub(crate) async fn fetch(&self, uri: &Uri) -> Result<Vec<Jwk>, String> {
        let request = http::Request::get(uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let fetch = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| crate::upstream::error_chain(&e))?;
            if response.status() != StatusCode::OK {
                return Err(format!("JWKS answered {}", response.status()));
            }
            Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| e.to_string())
        };
        let bytes = tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| "JWKS fetch timed out".to_owned())??;
        parse(&bytes)
    }
}

/// Parses `{"keys": [...]}`, skipping keys that do not parse.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Jwk>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set =
        serde_json::from_slice(bytes).map_err(|e| format!("JWKS is not a key set: {e}"))?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        .collect())
}

fn system_bundle() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keys_are_skipped() {
        let keys = parse(
            br#"{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB","alg":"RS256"},
                         {"kty":"weird","kid":"b"},
                         {"kty":"oct","kid":"c","k":"c2VjcmV0"}]}"#,
        )
        .unwrap();
        let kids: Vec<_> = keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect();
        assert_eq!(kids, ["a", "c"]);
        assert!(parse(b"[]").is_err());
    }
}
