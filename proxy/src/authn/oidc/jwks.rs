//! Fetching an issuer's JWKS over HTTPS (hyper-rustls, ring provider), or plain HTTP for a
//! loopback URL (tests only; `Config::validate` refuses others).

use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTPS-capable client for one issuer's JWKS.
pub(crate) struct JwksClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl JwksClient {
    /// A client trusting `ca_file`, or the system's CA certificates when `None`.
    pub(crate) fn new(ca_file: Option<&Path>, needs_tls: bool) -> anyhow::Result<Self> {
        let roots = if needs_tls {
            trust_roots(ca_file)?
        } else {
            RootCertStore::empty()
        };
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

/// Parses `{"keys": [...]}`, skipping keys that do not parse and keys of types jsonwebtoken
/// cannot use.
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
        .filter(|k| !matches!(k.algorithm, AlgorithmParameters::Other(_)))
        .collect())
}

/// The CA certificates JWKS servers are checked against: those of `ca_file` (every one must
/// load), or the system's, found as OpenSSL would (`SSL_CERT_FILE`, `SSL_CERT_DIR`, then the
/// platform's usual places). No usable certificate at all is an error: the gateway then does
/// not start, rather than trust nothing and fail every OIDC login later.
fn trust_roots(ca_file: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let (loaded, source) = match ca_file {
        Some(path) => {
            let loaded = rustls_native_certs::load_certs_from_paths(Some(path), None);
            if let Some(e) = loaded.errors.first() {
                anyhow::bail!("`jwks_ca_file` `{}`: {e}", path.display());
            }
            (loaded, format!("`{}`", path.display()))
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            for e in &loaded.errors {
                tracing::warn!(error = %e, "some system CA certificates could not be loaded");
            }
            (loaded, "the system's CA certificates".to_owned())
        }
    };
    usable_roots(loaded.certs, &source)
}

/// The certificates rustls can use, or an error naming `source` when there is none.
fn usable_roots(
    certs: Vec<CertificateDer<'static>>,
    source: &str,
) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    // A bundle may hold certificates rustls cannot use; skip them, as browsers do.
    roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        anyhow::bail!(
            "no usable CA certificate in {source} for the JWKS client; set `jwks_ca_file` to a PEM bundle"
        );
    }
    Ok(roots)
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

    #[test]
    fn a_configured_ca_file_is_trusted_and_a_bad_one_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["idp.test".to_owned()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        assert_eq!(trust_roots(Some(&good)).unwrap().len(), 1);

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let missing = dir.path().join("missing.pem");
        for bad in [&empty, &missing] {
            let err = trust_roots(Some(bad)).unwrap_err().to_string();
            assert!(err.contains(&bad.display().to_string()), "{err}");
        }
        assert!(JwksClient::new(Some(&empty), true).is_err());
        // Plain HTTP (loopback, tests) needs no roots at all.
        assert!(JwksClient::new(Some(&missing), false).is_ok());
    }

    #[test]
    fn no_usable_root_is_an_error_that_says_what_to_set() {
        let err = usable_roots(Vec::new(), "the system's CA certificates")
            .unwrap_err()
            .to_string();
        assert!(err.contains("jwks_ca_file"), "{err}");
        let garbage = CertificateDer::from(vec![1u8, 2, 3]);
        assert!(usable_roots(vec![garbage], "`x`").is_err());
    }
}
