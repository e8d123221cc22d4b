//! The `[runtime]` section of the configuration file.

use crate::engine::EngineConfig;
pub use crate::engine::S3Settings;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The data plane's configuration (its listener is the process's `internal.runtime_listen`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The lake's root: a local directory, or `s3://bucket/prefix`. Unset: `<data_dir>/lake`.
    pub lake_url: Option<String>,
    /// The S3-compatible store holding an `s3://` lake.
    pub s3: Option<S3Settings>,
    /// Where queries spill when they exceed their memory. Unset: `<data_dir>/spill`.
    pub spill_dir: Option<PathBuf>,
    /// Worker threads of the query runtime. Unset: the machine's available cores.
    pub query_threads: Option<usize>,
    /// Memory per cluster-size unit (2X-Small = 1 unit, X-Small = 2, Small = 4, ...).
    pub memory_per_unit_mb: u64,
    /// The most memory any one warehouse gets, whatever its size.
    pub max_memory_mb: u64,
    /// TPC-H scale factor of the `samples` catalog (1.0 is about 1 GB of data).
    pub samples_scale_factor: f64,
    /// The size, in bytes of JSON, at which results are split into chunks.
    pub result_chunk_bytes: usize,
    /// How long results stay fetchable after a statement ends or was last polled.
    pub statement_retention_secs: u64,
    /// How often idle warehouses are checked for auto-stop and old statements closed.
    pub idle_check_interval_ms: u64,
    /// The length of the "minute" of `auto_stop_mins`. A test and operations knob: leave it at
    /// 60000 in production; tests shrink it to see auto-stop happen.
    pub auto_stop_minute_ms: u64,
    /// The most statements one caller may have pending or running at once; more are refused
    /// with 429 `RESOURCE_EXHAUSTED`.
    pub max_live_statements_per_caller: usize,
    /// The most statements pending or running on one warehouse at once.
    pub max_live_statements_per_warehouse: usize,
    /// The most bytes of results kept for one caller's statements (until they expire or are
    /// closed); a result that would exceed it fails with `RESOURCE_EXHAUSTED`.
    pub max_result_bytes_per_caller: u64,
    /// The most bytes of results kept for the statements of one warehouse.
    pub max_result_bytes_per_warehouse: u64,
}

/// The longest `statement_retention_secs`: a week. Results live in memory meanwhile.
pub const MAX_RETENTION_SECS: u64 = 7 * 24 * 3600;
/// The longest `idle_check_interval_ms`: an hour.
pub const MAX_IDLE_CHECK_INTERVAL_MS: u64 = 3_600_000;
/// The longest `auto_stop_minute_ms`: an hour.
pub const MAX_AUTO_STOP_MINUTE_MS: u64 = 3_600_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            lake_url: None,
            s3: None,
            spill_dir: None,
            query_threads: None,
            memory_per_unit_mb: 512,
            max_memory_mb: 8192,
            samples_scale_factor: 0.01,
            result_chunk_bytes: 4 * 1024 * 1024,
            statement_retention_secs: 3600,
            idle_check_interval_ms: 10_000,
            auto_stop_minute_ms: 60_000,
            max_live_statements_per_caller: 200,
            max_live_statements_per_warehouse: 1000,
            max_result_bytes_per_caller: 256 * 1024 * 1024,
            max_result_bytes_per_warehouse: 1024 * 1024 * 1024,
        }
    }
}

impl Config {
    /// Every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Some(url) = &self.lake_url {
            if url.trim().is_empty() {
                problems.push("runtime.lake_url: must not be empty when set".to_owned());
            } else if url.contains("://")
                && !url.starts_with("s3://")
                && !url.starts_with("file://")
            {
                problems.push(format!(
                    "runtime.lake_url: `{url}` must be a directory, `file://...` or `s3://bucket/prefix`"
                ));
            } else if url.starts_with("s3://") && url.trim_start_matches("s3://").is_empty() {
                problems.push("runtime.lake_url: `s3://` needs a bucket".to_owned());
            }
        }
        let s3_lake = self
            .lake_url
            .as_deref()
            .is_some_and(|u| u.starts_with("s3://"));
        if self.s3.is_some() && !s3_lake {
            problems.push("runtime.s3: set only with an `s3://` runtime.lake_url".to_owned());
        }
        if let Some(s3) = &self.s3 {
            if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
                problems
                    .push("runtime.s3: access_key_id and secret_access_key go together".to_owned());
            }
        }
        if self.query_threads == Some(0) {
            problems.push("runtime.query_threads: must be at least 1 (or unset)".to_owned());
        }
        if self.memory_per_unit_mb == 0 {
            problems.push("runtime.memory_per_unit_mb: must be at least 1".to_owned());
        }
        if self.max_memory_mb < self.memory_per_unit_mb {
            problems.push(
                "runtime.max_memory_mb: must be at least runtime.memory_per_unit_mb".to_owned(),
            );
        }
        if !(self.samples_scale_factor > 0.0 && self.samples_scale_factor <= 100.0) {
            problems.push("runtime.samples_scale_factor: must be in (0, 100]".to_owned());
        }
        if self.result_chunk_bytes == 0 {
            problems.push("runtime.result_chunk_bytes: must be at least 1".to_owned());
        }
        if !(1..=MAX_RETENTION_SECS).contains(&self.statement_retention_secs) {
            problems.push(format!(
                "runtime.statement_retention_secs: must be between 1 and {MAX_RETENTION_SECS} (a week), not {}",
                self.statement_retention_secs
            ));
        }
        if !(10..=MAX_IDLE_CHECK_INTERVAL_MS).contains(&self.idle_check_interval_ms) {
            problems.push(format!(
                "runtime.idle_check_interval_ms: must be between 10 and {MAX_IDLE_CHECK_INTERVAL_MS} (an hour), not {}",
                self.idle_check_interval_ms
            ));
        }
        if !(1..=MAX_AUTO_STOP_MINUTE_MS).contains(&self.auto_stop_minute_ms) {
            problems.push(format!(
                "runtime.auto_stop_minute_ms: must be between 1 and {MAX_AUTO_STOP_MINUTE_MS} (an hour), not {}",
                self.auto_stop_minute_ms
            ));
        }
        if self.max_live_statements_per_caller == 0 {
            problems.push("runtime.max_live_statements_per_caller: must be at least 1".to_owned());
        }
        if self.max_live_statements_per_warehouse < self.max_live_statements_per_caller {
            problems.push(
                "runtime.max_live_statements_per_warehouse: must be at least runtime.max_live_statements_per_caller"
                    .to_owned(),
            );
        }
        if self.max_result_bytes_per_caller < self.result_chunk_bytes as u64 {
            problems.push(
                "runtime.max_result_bytes_per_caller: must be at least runtime.result_chunk_bytes"
                    .to_owned(),
            );
        }
        if self.max_result_bytes_per_warehouse < self.max_result_bytes_per_caller {
            problems.push(
                "runtime.max_result_bytes_per_warehouse: must be at least runtime.max_result_bytes_per_caller"
                    .to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The query runtime's worker count.
    pub fn query_threads(&self) -> usize {
        self.query_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(4)
        })
    }

    /// What the engine needs, with the data directory's defaults filled in.
    pub fn engine_config(&self, data_dir: &Path) -> EngineConfig {
        let lake_url = match &self.lake_url {
            Some(url) => url
                .strip_prefix("file://")
                .map(str::to_owned)
                .unwrap_or_else(|| url.clone()),
            None => data_dir.join("lake").display().to_string(),
        };
        EngineConfig {
            lake_url,
            s3: self.s3.clone(),
            spill_dir: self
                .spill_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("spill")),
            cores: self.query_threads(),
            memory_per_unit_bytes: self.memory_per_unit_mb.saturating_mul(1024 * 1024),
            max_memory_bytes: self.max_memory_mb.saturating_mul(1024 * 1024),
            samples_scale_factor: self.samples_scale_factor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_fill_in_the_data_dir() {
        let config = Config::default();
        assert_eq!(config.validate(), Ok(()));
        let engine = config.engine_config(Path::new("/data"));
        assert_eq!(engine.lake_url, "/data/lake");
        assert_eq!(engine.spill_dir, PathBuf::from("/data/spill"));
        assert_eq!(engine.memory_per_unit_bytes, 512 * 1024 * 1024);
        assert!(engine.cores >= 1);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let config: Config = toml_like(
            r#"{"lake_url":"http://x","s3":{"access_key_id":"a"},"query_threads":0,
               "memory_per_unit_mb":0,"samples_scale_factor":0,"result_chunk_bytes":0,
               "statement_retention_secs":0,"idle_check_interval_ms":1,"auto_stop_minute_ms":0}"#,
        );
        let problems = config.validate().unwrap_err();
        for field in [
            "lake_url",
            "runtime.s3: set only",
            "access_key_id and secret_access_key",
            "query_threads",
            "memory_per_unit_mb",
            "samples_scale_factor",
            "result_chunk_bytes",
            "statement_retention_secs",
            "idle_check_interval_ms",
            "auto_stop_minute_ms",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(field)),
                "{field} missing from {problems:?}"
            );
        }
    }

    #[test]
    fn huge_durations_are_refused_with_their_range() {
        let config: Config = toml_like(
            r#"{"statement_retention_secs":18446744073709551615,
               "idle_check_interval_ms":18446744073709551615,
               "auto_stop_minute_ms":18446744073709551615}"#,
        );
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("between 1 and 604800"), "{problems:?}");
        assert!(problems.iter().all(|p| p.contains("18446744073709551615")));
    }

    #[test]
    fn the_bounds_on_callers_are_checked() {
        let config: Config = toml_like(
            r#"{"max_live_statements_per_caller":0,"max_result_bytes_per_caller":1,
               "max_result_bytes_per_warehouse":0}"#,
        );
        let problems = config.validate().unwrap_err();
        for field in [
            "max_live_statements_per_caller",
            "max_result_bytes_per_caller",
            "max_result_bytes_per_warehouse",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(field)),
                "{field} missing from {problems:?}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused_and_secrets_not_printed() {
        assert!(serde_json::from_str::<Config>(r#"{"lake":"x"}"#).is_err());
        let config: Config = toml_like(
            r#"{"lake_url":"s3://b/p","s3":{"access_key_id":"a","secret_access_key":"hunter2"}}"#,
        );
        assert_eq!(config.validate(), Ok(()));
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    fn toml_like(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }
}
