//! What the engine is configured with: where the lake is, how warehouses are sized.

use std::path::PathBuf;

/// Where the lake is and how warehouses are sized. Its `Debug` never shows the S3 secret.
#[derive(Clone)]
pub struct EngineConfig {
    /// The lake's root: a local directory by default, or an `s3://bucket/prefix` URL.
    pub lake_url: String,
    /// Endpoint, region and credentials of an S3-compatible store, when `lake_url` is `s3://`.
    pub s3: Option<S3Settings>,
    /// Where queries spill when they exceed their memory pool.
    pub spill_dir: PathBuf,
    /// The cores query work may use (the query runtime's threads).
    pub cores: usize,
    /// Memory granted per cluster-size unit (2X-Small = 1 unit, X-Small = 2, Small = 4, ...).
    pub memory_per_unit_bytes: u64,
    /// The largest memory pool any one warehouse gets, whatever its size.
    pub max_memory_bytes: u64,
    /// TPC-H scale factor of the `samples` catalog.
    pub samples_scale_factor: f64,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("lake_url", &self.lake_url)
            .field("s3", &self.s3)
            .field("spill_dir", &self.spill_dir)
            .field("cores", &self.cores)
            .field("memory_per_unit_bytes", &self.memory_per_unit_bytes)
            .field("max_memory_bytes", &self.max_memory_bytes)
            .field("samples_scale_factor", &self.samples_scale_factor)
            .finish()
    }
}

/// How the lake's S3-compatible store is reached (`[runtime.s3]`). Its `Debug` redacts the
/// secret key, so the configuration can be logged.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Plain-HTTP endpoints (a local MinIO or moto) need this.
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// What sizes a warehouse's compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseSizing {
    /// `2X-Small` ... `4X-Large`, already validated.
    pub cluster_size: String,
    /// Runs on the shared serverless pool rather than compute of its own.
    pub serverless: bool,
    pub max_num_clusters: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_s3_secret() {
        let s3 = S3Settings {
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("AKIAEXAMPLE".into()),
            secret_access_key: Some("wJalrXUtnFEMI-very-secret".into()),
            allow_http: true,
        };
        let config = EngineConfig {
            lake_url: "s3://bucket/lake".into(),
            s3: Some(s3.clone()),
            spill_dir: PathBuf::from("/tmp/spill"),
            cores: 2,
            memory_per_unit_bytes: 1,
            max_memory_bytes: 2,
            samples_scale_factor: 0.01,
        };
        for shown in [
            format!("{s3:?}"),
            format!("{config:?}"),
            format!("{config:#?}"),
        ] {
            assert!(!shown.contains("very-secret"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
        }
        let none = S3Settings {
            secret_access_key: None,
            ..s3
        };
        assert!(format!("{none:?}").contains("secret_access_key: None"));
    }
}
