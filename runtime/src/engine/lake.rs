//! The lake: the customer's storage, a local directory or an S3-compatible bucket, seen through
//! one object store rooted at the lake's root. Every table location is a path relative to that
//! root, so nothing the engine reads or writes can lie outside it.

use super::config::EngineConfig;
use super::error::QueryError;
use super::error::{bad_request, internal, io};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::PathBuf;
use std::sync::Arc;

mod rooted;
use rooted::RootedStore;

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

    pub(crate) fn object_store_url() -> Result<ObjectStoreUrl, QueryError> {
        ObjectStoreUrl::parse(LAKE_URL).map_err(|e| internal(format!("lake URL: {e}")))
    }

    /// The URL DataFusion lists a table's files with. `location` is relative to the root.
    pub(crate) fn table_url(location: &str) -> Result<ListingTableUrl, QueryError> {
        ListingTableUrl::parse(format!("{LAKE_URL}{location}"))
            .map_err(|e| internal(format!("table location `{location}`: {e}")))
    }

    /// `workspaces/<id>/`: the workspace's own area of the lake. Everything a workspace's
    /// statements write or delete lies inside it; anything outside (the shared `samples`) is
    /// read-only to them.
    pub(crate) fn area(workspace_id: i64) -> String {
        format!("{WORKSPACES_DIR}/{workspace_id}/")
    }

    /// `workspaces/<id>/managed/`: where the workspace's managed tables live (reserved: no
    /// external table may point inside it).
    pub(crate) fn managed_area(workspace_id: i64) -> String {
        format!("{}{MANAGED_DIR}/", Self::area(workspace_id))
    }

    /// `workspaces/<id>/managed/<catalog>/<schema>/<table>/`: where a managed table's files
    /// live.
    pub(crate) fn managed_location(
        workspace_id: i64,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> String {
        format!(
            "{}{catalog}/{schema}/{table}/",
            Self::managed_area(workspace_id)
        )
    }

    /// Whether a location lies strictly inside the workspace's area (where its statements may
    /// write). A location that does not normalize (a `..`) is outside.
    pub(crate) fn in_area(workspace_id: i64, location: &str) -> bool {
        inside(&Self::area(workspace_id), location)
    }

    /// Whether a location is a managed table's directory inside the workspace's area: the only
    /// kind of location whose files a statement may ever delete.
    pub(crate) fn is_managed_location(workspace_id: i64, location: &str) -> bool {
        location.ends_with('/')
            && comparable(location).is_some_and(|c| {
                // managed/<catalog>/<schema>/<table>/
                c.strip_prefix(&Self::managed_area(workspace_id))
                    .is_some_and(|rest| rest.trim_end_matches('/').split('/').count() == 3)
            })
    }

    /// A user's `LOCATION`, resolved against the workspace's area of the lake, as a
    /// normalized path relative to the lake's root (a trailing `/` when it names a directory).
    /// A relative path is relative to the workspace's area (`landing/trips/` →
    /// `workspaces/<id>/landing/trips/`); an absolute path or URL must lie inside that area.
    /// `BAD_REQUEST` naming it when it lies outside, climbs with `..`, or points into the
    /// area's `managed/` directory (reserved for managed tables).
    pub(crate) fn resolve_location(
        &self,
        workspace_id: i64,
        given: &str,
    ) -> Result<String, QueryError> {
        let area = Self::area(workspace_id);
        let outside = || {
            bad_request(format!(
                "LOCATION '{given}' is not inside the workspace's area of the lake ({}/{}); use \
                 a path relative to it",
                self.describe_root().trim_end_matches('/'),
                area
            ))
        };
        let relative = self.relative_to_root(&area, given).ok_or_else(outside)?;
        let directory = relative.ends_with('/');
        let normalized = normalize(&relative).ok_or_else(outside)?;
        let Some(inner) = strip_dir_prefix(&normalized, &area) else {
            return Err(outside());
        };
        if inner.is_empty() {
            return Err(bad_request(format!(
                "LOCATION '{given}' is the workspace's whole area of the lake; a table needs a \
                 directory or file of its own"
            )));
        }
        if inner == MANAGED_DIR || inner.starts_with(&format!("{MANAGED_DIR}/")) {
            return Err(bad_request(format!(
                "LOCATION '{given}' is inside the workspace's `{MANAGED_DIR}/` directory, which \
                 is reserved for managed tables"
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

    /// A `LOCATION` as a path relative to the lake's root (not yet normalized), or `None` when
    /// it names another store, another bucket or prefix, or a directory outside the root.
    /// Relative paths are relative to `area`.
    fn relative_to_root(&self, area: &str, given: &str) -> Option<String> {
        if let Some(rest) = given.strip_prefix("s3://") {
            let Root::S3 { bucket, prefix } = &self.root else {
                return None;
            };
            let (b, key) = rest.split_once('/').unwrap_or((rest, ""));
            return if b == bucket {
                strip_dir_prefix(key, prefix)
            } else {
                None
            };
        }
        if given.contains("://") && !given.starts_with("file://") {
            return None;
        }
        let path = given.strip_prefix("file://").unwrap_or(given);
        if !path.starts_with('/') {
            return (!path.is_empty()).then(|| format!("{area}{path}"));
        }
        let Root::Local {
            canonical,
            configured,
        } = &self.root
        else {
            return None;
        };
        let absolute = normalize(path)?;
        let rest = [canonical, configured].iter().find_map(|root| {
            let root = normalize(&root.to_string_lossy())?;
            strip_dir_prefix(&absolute, &root)
        })?;
        Some(if path.ends_with('/') && !rest.is_empty() {
            format!("{rest}/")
        } else {
            rest
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
    pub(crate) async fn list(&self, location: &str) -> Result<Vec<Path>, QueryError> {
        let prefix = Path::parse(location.trim_end_matches('/'))
            .map_err(|e| internal(format!("location `{location}`: {e}")))?;
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| {
                io(
                    "listing the table's files",
                    format!("cannot list `{location}`: {e}"),
                )
            })?;
        Ok(metas.into_iter().map(|m| m.location).collect())
    }

    /// The files of a managed location, listed for a later [`Lake::delete_managed`].
    /// `INTERNAL_ERROR` (and nothing listed) unless the location is a managed table's
    /// directory inside the workspace's area.
    pub(crate) async fn list_managed(
        &self,
        workspace_id: i64,
        location: &str,
    ) -> Result<Vec<Path>, QueryError> {
        if !Self::is_managed_location(workspace_id, location) {
            return Err(refused_delete(workspace_id, location));
        }
        self.list(location).await
    }

    /// Deletes files. The one way the engine deletes anything in the lake: every file must lie
    /// inside a managed table's directory in the workspace's area (`workspaces/<id>/managed/`);
    /// otherwise nothing is deleted and the call fails (fail closed).
    pub(crate) async fn delete_managed(
        &self,
        workspace_id: i64,
        files: &[Path],
    ) -> Result<(), QueryError> {
        let managed = Self::managed_area(workspace_id);
        for file in files {
            let path = file.as_ref();
            // managed/<catalog>/<schema>/<table>/<file...>
            let safe = path
                .strip_prefix(&managed)
                .is_some_and(|rest| rest.split('/').count() > 3)
                && path
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..");
            if !safe {
                return Err(refused_delete(workspace_id, path));
            }
        }
        for file in files {
            match self.store.delete(file).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(io(
                        "deleting the table's files",
                        format!("cannot delete `{file}`: {e}"),
                    ))
                }
            }
        }
        Ok(())
    }
}

const WORKSPACES_DIR: &str = "workspaces";
const MANAGED_DIR: &str = "managed";

fn refused_delete(workspace_id: i64, path: &str) -> QueryError {
    internal(format!(
        "refused to delete `{path}` for workspace {workspace_id}: only managed tables' files \
         inside the workspace's area of the lake are ever deleted"
    ))
}

/// A location in the form locations are compared in: normalized, with one trailing `/`
/// (`a/./b//c` → `a/b/c/`). `None` when a `..` would climb.
pub(crate) fn comparable(location: &str) -> Option<String> {
    normalize(location).map(|n| format!("{n}/"))
}

/// Whether two locations overlap: one equals or lies inside the other. Locations that do not
/// normalize overlap everything (fail closed).
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    match (comparable(a), comparable(b)) {
        (Some(a), Some(b)) => a.starts_with(&b) || b.starts_with(&a),
        _ => true,
    }
}

/// Whether `location` lies strictly inside the directory `area` (which ends in `/`).
fn inside(area: &str, location: &str) -> bool {
    comparable(location).is_some_and(|c| c.len() > area.len() && c.starts_with(area))
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
                Arc::new(RootedStore::new(s3, prefix.as_str()))
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
    fn locations_resolve_inside_the_workspace_area() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let lake = lake(dir.path());
        let ok = |s: &str| {
            lake.resolve_location(7, s)
                .unwrap_or_else(|e| unreachable!("{s}: {e}"))
        };
        assert_eq!(ok("data/trips.csv"), "workspaces/7/data/trips.csv");
        assert_eq!(ok("./data//trips/"), "workspaces/7/data/trips/");
        let abs = format!("{}/workspaces/7/data/x/", dir.path().display());
        assert_eq!(ok(&abs), "workspaces/7/data/x/");
        assert_eq!(ok(&format!("file://{abs}")), "workspaces/7/data/x/");
        let root = dir.path().display().to_string();
        for bad in [
            "/etc".to_owned(),
            "/etc/passwd".to_owned(),
            "../outside".to_owned(),
            "../8/data/".to_owned(),
            "data/../../x".to_owned(),
            "data/../x".to_owned(),
            "s3://bucket/x".to_owned(),
            "http://example.com/x".to_owned(),
            String::new(),
            "/".to_owned(),
            ".".to_owned(),
            // Another workspace's area, the shared samples, the lake's root, this area's root.
            format!("{root}/workspaces/8/data/"),
            format!("{root}/workspaces/70/data/"),
            format!("{root}/samples/tpch/nation/"),
            format!("{root}/data/x/"),
            format!("{root}/workspaces/7/"),
            // The managed area is reserved.
            "managed".to_owned(),
            "managed/main/default/t/".to_owned(),
            "./managed//main/".to_owned(),
            format!("{root}/workspaces/7/managed/main/default/t/"),
        ] {
            let e = lake.resolve_location(7, &bad);
            assert!(e.is_err(), "{bad} was accepted: {e:?}");
        }
        let e = lake
            .resolve_location(7, "/etc")
            .err()
            .unwrap_or_else(|| unreachable!());
        assert_eq!(e.error_code(), "BAD_REQUEST");
        assert!(e.to_string().contains("/etc"));
        // A sibling whose name merely starts with the root's is outside.
        let sibling = format!("{}-other/workspaces/7/x", dir.path().display());
        assert!(lake.resolve_location(7, &sibling).is_err());
        // Names that merely start with `managed` are the user's own.
        assert_eq!(ok("managed_data/x/"), "workspaces/7/managed_data/x/");
    }

    #[test]
    fn areas_and_managed_locations() {
        assert_eq!(Lake::area(3), "workspaces/3/");
        let managed = Lake::managed_location(3, "main", "default", "t");
        assert_eq!(managed, "workspaces/3/managed/main/default/t/");
        assert!(Lake::is_managed_location(3, &managed));
        assert!(!Lake::is_managed_location(4, &managed));
        assert!(!Lake::is_managed_location(3, "workspaces/3/managed/main/"));
        assert!(!Lake::is_managed_location(3, "workspaces/3/landing/t/"));
        assert!(!Lake::is_managed_location(3, "samples/tpch/nation/"));
        assert!(Lake::in_area(3, "workspaces/3/landing/x.csv"));
        assert!(!Lake::in_area(3, "workspaces/3/"));
        assert!(!Lake::in_area(3, "workspaces/33/x/"));
        assert!(!Lake::in_area(3, "samples/tpch/nation/"));
        assert!(!Lake::in_area(3, "workspaces/3/../4/x/"));
        assert!(overlaps("a/b/", "a/b/"));
        assert!(overlaps("a/b/", "a/b/c/"));
        assert!(overlaps("a/b/c.csv", "a/"));
        assert!(!overlaps("a/b/", "a/bc/"));
        assert!(!overlaps("a/b.csv", "a/b.csv2"));
        assert!(overlaps("a/../b/", "x/"));
    }

    #[tokio::test]
    async fn deletes_only_touch_managed_locations_of_the_workspace() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let lake = lake(dir.path());
        let put = |p: &str| {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap_or_else(|| unreachable!()))
                .unwrap_or_else(|e| unreachable!("{e}"));
            std::fs::write(&path, b"x").unwrap_or_else(|e| unreachable!("{e}"));
        };
        put("workspaces/1/managed/main/default/t/a.parquet");
        put("workspaces/1/landing/b.parquet");
        put("samples/tpch/nation/data.parquet");
        for location in [
            "samples/tpch/nation/",
            "workspaces/1/landing/",
            "workspaces/2/managed/main/default/t/",
            "workspaces/1/managed/main/",
        ] {
            let e = lake.list_managed(1, location).await;
            assert_eq!(
                e.err().map(|e| e.error_code().to_owned()).as_deref(),
                Some("INTERNAL_ERROR"),
                "{location}"
            );
        }
        for file in [
            "samples/tpch/nation/data.parquet",
            "workspaces/1/landing/b.parquet",
            "workspaces/2/managed/main/default/t/a.parquet",
        ] {
            let path = Path::parse(file).unwrap_or_else(|e| unreachable!("{e}"));
            assert!(lake.delete_managed(1, &[path]).await.is_err(), "{file}");
        }
        assert!(dir.path().join("samples/tpch/nation/data.parquet").exists());
        assert!(dir.path().join("workspaces/1/landing/b.parquet").exists());
        let files = lake
            .list_managed(1, "workspaces/1/managed/main/default/t/")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(files.len(), 1);
        lake.delete_managed(1, &files)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!dir
            .path()
            .join("workspaces/1/managed/main/default/t/a.parquet")
            .exists());
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
            lake.resolve_location(5, "s3://b/lake/workspaces/5/t/")
                .ok()
                .as_deref(),
            Some("workspaces/5/t/")
        );
        assert_eq!(
            lake.resolve_location(5, "t/").ok().as_deref(),
            Some("workspaces/5/t/")
        );
        assert!(lake.resolve_location(5, "s3://b/lake/t/").is_err());
        assert!(lake
            .resolve_location(5, "s3://b/lake/workspaces/6/t/")
            .is_err());
        assert!(lake.resolve_location(5, "s3://b/other/t/").is_err());
        assert!(lake.resolve_location(5, "s3://c/lake/t/").is_err());
        assert!(lake.resolve_location(5, "/abs/path").is_err());
    }
}
