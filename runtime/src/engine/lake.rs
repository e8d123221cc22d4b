//! The lake: the customer's storage, a local directory or an S3-compatible bucket, seen through
//! one object store rooted at the lake's root. Every table location is a path relative to that
//! root, so nothing the engine reads or writes can lie outside it.

use super::error::{bad_request, internal};
use super::{EngineConfig, SqlError};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::PathBuf;
use std::sync::Arc;

/// The URL DataFusion knows the lake by. A scheme of our own, so that the only object store a
/// statement can reach is the lake (not the whole local file system behind `file://`).
pub(crate) const LAKE_URL: &str = "lakeward://lake/";

#[derive(Debug, Clone)]
enum Root {
    /// The canonical directory, and the one configured (they differ behind symlinks).
    Local {
        canonical: PathBuf,
        configured: PathBuf,
    },
    S3 {
        bucket: String,
        prefix: String,
    },
}

pub(crate) struct Lake {
    root: Root,
    config: EngineConfig,
    pub(crate) store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("root", &self.root).finish()
    }
}

impl Lake {
    pub(crate) fn open(config: &EngineConfig) -> anyhow::Result<Lake> {
        let root = if let Some(rest) = config.lake_url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                anyhow::bail!("lake_url `{}` names no bucket", config.lake_url);
            }
            Root::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            }
        } else {
            let configured = PathBuf::from(
                config
                    .lake_url
                    .strip_prefix("file://")
                    .unwrap_or(&config.lake_url),
            );
            if config.lake_url.contains("://") && !config.lake_url.starts_with("file://") {
                anyhow::bail!(
                    "lake_url `{}`: only local directories and s3:// URLs are supported",
                    config.lake_url
                );
            }
            std::fs::create_dir_all(&configured).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the lake directory {}: {e}",
                    configured.display()
                )
            })?;
            let canonical = std::fs::canonicalize(&configured)?;
            Root::Local {
                canonical,
                configured,
            }
        };
        let store = build_store(&root, config)?;
        Ok(Lake {
            root,
            config: config.clone(),
            store,
        })
    }

    /// A store of its own, for work done outside the serving runtime (S3 clients hold
    /// connections tied to the runtime that opened them).
    pub(crate) fn fresh_store(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        build_store(&self.root, &self.config)
    }

    pub(crate) fn object_store_url() -> Result<ObjectStoreUrl, SqlError> {
        ObjectStoreUrl::parse(LAKE_URL).map_err(|e| internal(format!("lake URL: {e}")))
    }

    /// The URL DataFusion lists a table's files with. `location` is relative to the root.
    pub(crate) fn table_url(location: &str) -> Result<ListingTableUrl, SqlError> {
        ListingTableUrl::parse(format!("{LAKE_URL}{location}"))
            .map_err(|e| internal(format!("table location `{location}`: {e}")))
    }

    /// `<catalog>/<schema>/<table>/`: where a managed table's files live.
    pub(crate) fn managed_location(catalog: &str, schema: &str, table: &str) -> String {
        format!("{catalog}/{schema}/{table}/")
    }

    /// A user's `LOCATION` as a normalized path relative to the root (a trailing `/` when it
    /// names a directory), or `BAD_REQUEST` naming it when it is not inside the lake.
    pub(crate) fn resolve_location(&self, given: &str) -> Result<String, SqlError> {
        let outside = || {
            bad_request(format!(
                "LOCATION '{given}' is not inside the lake ({}); use a path relative to the \
                 lake's root",
                self.describe_root()
            ))
        };
        let relative: String = if let Some(rest) = given.strip_prefix("s3://") {
            let Root::S3 { bucket, prefix } = &self.root else {
                return Err(outside());
            };
            let (b, key) = rest.split_once('/').unwrap_or((rest, ""));
            if b != bucket {
                return Err(outside());
            }
            strip_dir_prefix(key, prefix).ok_or_else(outside)?
        } else if given.contains("://") && !given.starts_with("file://") {
            return Err(outside());
        } else {
            let path = given.strip_prefix("file://").unwrap_or(given);
            if path.starts_with('/') {
                let Root::Local {
                    canonical,
                    configured,
                } = &self.root
                else {
                    return Err(outside());
                };
                let normalized = normalize(path).ok_or_else(outside)?;
                let absolute = format!("/{normalized}");
                [canonical, configured]
                    .iter()
                    .filter_map(|root| {
                        let root = normalize(&root.to_string_lossy())?;
                        strip_dir_prefix(absolute.trim_start_matches('/'), &root)
                    })
                    .next()
                    .map(|rest| {
                        if path.ends_with('/') && !rest.is_empty() {
                            format!("{rest}/")
                        } else {
                            rest
                        }
                    })
                    .ok_or_else(outside)?
            } else {
                path.to_owned()
            }
        };
        let directory = relative.ends_with('/');
        let normalized = normalize(&relative).ok_or_else(outside)?;
        if normalized.is_empty() {
            return Err(bad_request(format!(
                "LOCATION '{given}' is the lake's root; a table needs a directory or file of \
                 its own"
            )));
        }
        if Path::parse(&normalized).is_err() {
            return Err(bad_request(format!(
                "LOCATION '{given}' is not a valid path"
            )));
        }
        Ok(if directory {
            format!("{normalized}/")
        } else {
            normalized
        })
    }

    fn describe_root(&self) -> String {
        match &self.root {
            Root::Local { configured, .. } => configured.display().to_string(),
            Root::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// Whether a location (without a trailing `/`) is a single file rather than a directory.
    pub(crate) async fn is_file(&self, location: &str) -> bool {
        match Path::parse(location.trim_end_matches('/')) {
            Ok(path) => self.store.head(&path).await.is_ok(),
            Err(_) => false,
        }
    }

    /// The files under a directory location (all depths).
    pub(crate) async fn list(&self, location: &str) -> Result<Vec<Path>, SqlError> {
        let prefix = Path::parse(location.trim_end_matches('/'))
            .map_err(|e| internal(format!("location `{location}`: {e}")))?;
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| internal(format!("cannot list `{location}`: {e}")))?;
        Ok(metas.into_iter().map(|m| m.location).collect())
    }

    pub(crate) async fn delete(&self, files: &[Path]) -> Result<(), SqlError> {
        for file in files {
            match self.store.delete(file).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(internal(format!("cannot delete `{file}`: {e}"))),
            }
        }
        Ok(())
    }
}

fn build_store(root: &Root, config: &EngineConfig) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match root {
        Root::Local { canonical, .. } => Arc::new(LocalFileSystem::new_with_prefix(canonical)?),
        Root::S3 { bucket, prefix } => {
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(s3) = &config.s3 {
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                builder = builder.with_allow_http(s3.allow_http);
            }
            let s3 = builder.build()?;
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix.as_str()))
            }
        }
    })
}

/// `a/./b//c/` → `a/b/c`; `None` when a `..` would climb.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// `key` relative to the directory `prefix` (both without leading `/`), when it lies inside.
fn strip_dir_prefix(key: &str, prefix: &str) -> Option<String> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Some(key.to_owned());
    }
    let rest = key.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(String::new())
    } else {
        rest.strip_prefix('/').map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake(dir: &std::path::Path) -> Lake {
        let config = EngineConfig {
            lake_url: dir.to_string_lossy().into_owned(),
            s3: None,
            spill_dir: dir.join("spill"),
            cores: 1,
            memory_per_unit_bytes: 1 << 20,
            max_memory_bytes: 1 << 30,
            samples_scale_factor: 0.01,
        };
        Lake::open(&config).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn locations_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let lake = lake(dir.path());
        let ok = |s: &str| {
            lake.resolve_location(s)
                .unwrap_or_else(|e| unreachable!("{s}: {e}"))
        };
        assert_eq!(ok("data/trips.csv"), "data/trips.csv");
        assert_eq!(ok("./data//trips/"), "data/trips/");
        let abs = format!("{}/data/x/", dir.path().display());
        assert_eq!(ok(&abs), "data/x/");
        assert_eq!(ok(&format!("file://{abs}")), "data/x/");
        for bad in [
            "/etc",
            "/etc/passwd",
            "../outside",
            "data/../../x",
            "s3://bucket/x",
            "http://example.com/x",
            "",
            "/",
        ] {
            let e = lake.resolve_location(bad);
            assert!(e.is_err(), "{bad} was accepted: {e:?}");
        }
        let e = lake
            .resolve_location("/etc")
            .err()
            .unwrap_or_else(|| unreachable!());
        assert_eq!(e.error_code, "BAD_REQUEST");
        assert!(e.message.contains("/etc"));
        // A sibling whose name merely starts with the root's is outside.
        let sibling = format!("{}-other/x", dir.path().display());
        assert!(lake.resolve_location(&sibling).is_err());
    }

    #[test]
    fn s3_roots_accept_their_own_bucket_and_prefix_only() {
        let lake = Lake {
            root: Root::S3 {
                bucket: "b".into(),
                prefix: "lake".into(),
            },
            config: EngineConfig {
                lake_url: "s3://b/lake".into(),
                s3: None,
                spill_dir: PathBuf::from("/tmp"),
                cores: 1,
                memory_per_unit_bytes: 1,
                max_memory_bytes: 1,
                samples_scale_factor: 0.01,
            },
            store: Arc::new(object_store::memory::InMemory::new()),
        };
        assert_eq!(
            lake.resolve_location("s3://b/lake/t/").ok().as_deref(),
            Some("t/")
        );
        assert!(lake.resolve_location("s3://b/other/t/").is_err());
        assert!(lake.resolve_location("s3://c/lake/t/").is_err());
        assert!(lake.resolve_location("/abs/path").is_err());
    }
}
