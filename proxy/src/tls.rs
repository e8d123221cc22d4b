//! The TLS server configuration: rustls with the ring provider installed explicitly (never
//! a process-wide default), TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::sync::Arc;

/// Builds the server configuration from PEM certificate chain and key.
pub(crate) fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("TLS certificate PEM: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("TLS certificate PEM holds no certificate");
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| anyhow::anyhow!("TLS key PEM: {e}"))?
        .ok_or_else(|| anyhow::anyhow!("TLS key PEM holds no private key"))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| anyhow::anyhow!("TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
