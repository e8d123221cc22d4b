//! A warehouse's resources as DataFusion sees them: a memory pool that spills to disk, the
//! lake's object store, and the parallelism of its statements.

use super::config::{EngineConfig, WarehouseSizing};
use super::error::QueryError;
use super::lake::{Lake, LAKE_URL};
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionConfig;
use std::num::NonZeroUsize;
use std::sync::Arc;

/// The key of the pool every serverless warehouse shares.
pub(crate) const SERVERLESS_KEY: &str = "serverless";

/// The most statements any warehouse runs at once.
const MAX_CONCURRENCY: usize = 64;

/// Cluster-size units, as Databricks doubles them per size.
pub(crate) fn units(cluster_size: &str) -> u64 {
    match cluster_size {
        "2X-Small" => 1,
        "X-Small" => 2,
        "Small" => 4,
        "Medium" => 8,
        "Large" => 16,
        "X-Large" => 32,
        "2X-Large" => 64,
        "3X-Large" => 128,
        "4X-Large" => 256,
        // Sizes are validated before they get here; the smallest is the safe reading.
        _ => 1,
    }
}

/// A warehouse's resources: DataFusion's runtime environment (memory pool, spill files, object
/// stores) and session settings (target partitions), shared by its statements.
pub struct Compute {
    pub(crate) inner: ComputeInner,
}

impl Compute {
    /// How many statements of this warehouse run at once; the rest queue.
    pub fn max_concurrency(&self) -> usize {
        self.inner.max_concurrency
    }

    /// The memory pool's size in bytes.
    pub fn memory_limit_bytes(&self) -> usize {
        self.inner.memory_limit
    }

    /// DataFusion's target partitions (the statement's parallelism).
    pub fn target_partitions(&self) -> usize {
        self.inner.target_partitions
    }
}

pub(crate) struct ComputeInner {
    /// The warehouse id, or `serverless`: error messages name it.
    pub(crate) label: String,
    pub(crate) sizing: WarehouseSizing,
    pub(crate) runtime: Option<Arc<RuntimeEnv>>,
    /// Why the runtime could not be built (a spill directory that vanished, ...): every
    /// statement on this compute then fails with it instead of the process crashing.
    pub(crate) broken: Option<String>,
    pub(crate) session: SessionConfig,
    pub(crate) memory_limit: usize,
    pub(crate) target_partitions: usize,
    pub(crate) max_concurrency: usize,
}

impl ComputeInner {
    pub(crate) fn build(
        config: &EngineConfig,
        lake: &Lake,
        key: &str,
        sizing: &WarehouseSizing,
    ) -> ComputeInner {
        let cores = config.cores.max(1);
        let (memory, partitions, concurrency) = if sizing.serverless {
            // The shared pool is as large as the machine allows.
            (
                config.max_memory_bytes,
                cores,
                (cores * 2).min(MAX_CONCURRENCY),
            )
        } else {
            let units = units(&sizing.cluster_size);
            let memory = units
                .saturating_mul(config.memory_per_unit_bytes)
                .min(config.max_memory_bytes);
            let partitions = usize::try_from(units).unwrap_or(usize::MAX).min(cores);
            let per_cluster = usize::try_from((units / 2).max(1)).unwrap_or(MAX_CONCURRENCY);
            let clusters = usize::try_from(sizing.max_num_clusters.max(1)).unwrap_or(1);
            (
                memory,
                partitions,
                per_cluster.saturating_mul(clusters).min(MAX_CONCURRENCY),
            )
        };
        let memory_limit = usize::try_from(memory).unwrap_or(usize::MAX).max(1);
        let target_partitions = partitions.max(1);

        // No information_schema and no default in-memory catalog: the only tables a statement
        // sees are the snapshot's. (URL tables, `SELECT * FROM '/etc/passwd'`, stay off: they
        // exist only when a context opts in.)
        let session = SessionConfig::new()
            .with_target_partitions(target_partitions)
            .with_information_schema(false)
            .with_create_default_catalog_and_schema(false);

        let (runtime, broken) = match build_runtime(config, lake, memory_limit) {
            Ok(runtime) => (Some(runtime), None),
            Err(e) => {
                tracing::error!(warehouse = key, error = %e, "cannot build the warehouse's runtime");
                (None, Some(e.to_string()))
            }
        };
        ComputeInner {
            label: key.to_owned(),
            sizing: sizing.clone(),
            runtime,
            broken,
            session,
            memory_limit,
            target_partitions,
            max_concurrency: concurrency.max(1),
        }
    }

    pub(crate) fn runtime(&self) -> Result<Arc<RuntimeEnv>, QueryError> {
        match (&self.runtime, &self.broken) {
            (Some(runtime), _) => Ok(runtime.clone()),
            (None, reason) => Err(super::error::internal(format!(
                "warehouse {} has no usable compute: {}",
                self.label,
                reason.as_deref().unwrap_or("unknown")
            ))),
        }
    }

    /// A memory error, reworded to name the warehouse and its limit.
    pub(crate) fn explain(&self, error: DataFusionError) -> DataFusionError {
        match error.find_root() {
            DataFusionError::ResourcesExhausted(detail) => {
                let own = QueryError::ResourcesExhausted(format!(
                    "The statement exceeded the memory limit of warehouse {} ({}); use a \
                         larger warehouse or a less memory-hungry query. Detail: {detail}",
                    self.label,
                    human_bytes(self.memory_limit)
                ));
                DataFusionError::External(Box::new(own))
            }
            _ => error,
        }
    }
}

fn build_runtime(
    config: &EngineConfig,
    lake: &Lake,
    memory_limit: usize,
) -> anyhow::Result<Arc<RuntimeEnv>> {
    let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
        FairSpillPool::new(memory_limit),
        NonZeroUsize::MIN.saturating_add(4),
    ));
    std::fs::create_dir_all(&config.spill_dir)?;
    let disk = DiskManagerBuilder::default()
        .with_mode(DiskManagerMode::Directories(vec![config.spill_dir.clone()]));
    // Listings are not cached: files change under tables (INSERT, CTAS, other replicas), and a
    // stale listing would hide rows. File statistics are: each entry is checked against the
    // file's size and modification time before use, and without the cache every statement
    // recomputed them for every file of every table it read.
    let cache = CacheManagerConfig::default().with_list_files_cache_limit(0);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .with_disk_manager_builder(disk)
        .with_cache_manager(cache)
        .build_arc()?;
    let url = Lake::object_store_url().map_err(|e| anyhow::anyhow!(e.to_string()))?;
    runtime.register_object_store(url.as_ref(), lake.store.clone());
    debug_assert!(LAKE_URL.starts_with(url.as_str()));
    Ok(runtime)
}

fn human_bytes(bytes: usize) -> String {
    const MIB: usize = 1 << 20;
    if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> EngineConfig {
        EngineConfig {
            lake_url: dir.join("lake").to_string_lossy().into_owned(),
            s3: None,
            spill_dir: dir.join("spill"),
            cores: 8,
            memory_per_unit_bytes: 1 << 20,
            max_memory_bytes: 64 << 20,
            samples_scale_factor: 0.01,
        }
    }

    fn sizing(size: &str, clusters: u32) -> WarehouseSizing {
        WarehouseSizing {
            cluster_size: size.into(),
            serverless: false,
            max_num_clusters: clusters,
        }
    }

    #[test]
    fn sizes_map_to_units() {
        let sizes = [
            "2X-Small", "X-Small", "Small", "Medium", "Large", "X-Large", "2X-Large", "3X-Large",
            "4X-Large",
        ];
        for (i, size) in sizes.iter().enumerate() {
            assert_eq!(units(size), 1 << i, "{size}");
        }
    }

    #[test]
    fn resources_follow_the_size_within_the_machine() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let lake = Lake::open(&config).unwrap();
        let small = ComputeInner::build(&config, &lake, "w1", &sizing("Small", 1));
        assert_eq!(small.memory_limit, 4 << 20);
        assert_eq!(small.target_partitions, 4);
        assert_eq!(small.max_concurrency, 2);
        assert!(small.runtime.is_some());
        let huge = ComputeInner::build(&config, &lake, "w2", &sizing("4X-Large", 2));
        assert_eq!(huge.memory_limit, 64 << 20, "capped by max_memory_bytes");
        assert_eq!(huge.target_partitions, 8, "capped by cores");
        assert_eq!(huge.max_concurrency, MAX_CONCURRENCY);
        let tiny = ComputeInner::build(&config, &lake, "w3", &sizing("2X-Small", 3));
        assert_eq!(tiny.target_partitions, 1);
        assert_eq!(tiny.max_concurrency, 3);
        let pool = tiny.runtime.as_ref().unwrap().memory_pool.clone();
        let reservation =
            datafusion::execution::memory_pool::MemoryConsumer::new("t").register(&pool);
        assert!(
            reservation.try_grow(2 << 20).is_err(),
            "1 MiB pool refuses 2 MiB"
        );
    }
}
