//! The Cedar policy set in force, and its reloads. Requests read it through an `ArcSwap`, so a
//! reload reaches requests on connections already open. The directory is checked every poll
//! interval (file names, modification times and sizes) and on SIGHUP; a set that fails to load
//! is rejected, logged with file:line:column, counted, and the last good set keeps serving.

use crate::metrics::GatewayMetrics;
use arc_swap::ArcSwap;
use lakeward_policy::{PolicyBundle, PolicyError};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The policy set in force.
pub(crate) struct PolicyStore {
    dir: PathBuf,
    current: ArcSwap<PolicyBundle>,
    metrics: GatewayMetrics,
}

/// What the poller compares: each file's name, modification time and size.
type Fingerprint = Vec<(OsString, Option<SystemTime>, u64)>;

impl PolicyStore {
    /// Loads the directory; every problem is returned at once.
    pub(crate) fn load(dir: &Path, metrics: GatewayMetrics) -> Result<Self, Vec<PolicyError>> {
        let bundle = PolicyBundle::load_dir(dir)?;
        metrics.set_policy_version(bundle.version());
        tracing::info!(dir = %dir.display(), version = bundle.version(), "policies loaded");
        Ok(PolicyStore {
            dir: dir.to_path_buf(),
            current: ArcSwap::from_pointee(bundle),
            metrics,
        })
    }

    /// The set in force.
    pub(crate) fn current(&self) -> Arc<PolicyBundle> {
        self.current.load_full()
    }

    /// Loads the directory again; on success the new set is in force, on failure the old one
    /// stays. Blocking (file I/O and validation): run it off the async workers.
    pub(crate) fn reload(&self) -> bool {
        match PolicyBundle::load_dir(&self.dir) {
            Ok(bundle) => {
                let version = bundle.version().to_owned();
                self.current.store(Arc::new(bundle));
                self.metrics.set_policy_version(&version);
                tracing::info!(version, "policies reloaded");
                true
            }
            Err(errors) => {
                self.metrics.policy_reload_failures.inc();
                for e in &errors {
                    tracing::error!(problem = %e, "policy reload rejected");
                }
                tracing::error!(
                    problems = errors.len(),
                    version = self.current().version(),
                    "policy reload rejected; the previous set keeps serving"
                );
                false
            }
        }
    }

    /// Polls the directory every `interval` and listens for SIGHUP; reloads on either.
    pub(crate) async fn watch(self: Arc<Self>, interval: Duration) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; polling only");
                None
            }
        };
        let mut last = fingerprint(&self.dir).ok();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = ticker.tick() => false,
                () = next_hangup(&mut hangup) => true,
            };
            let now = fingerprint(&self.dir).ok();
            if !forced && now == last {
                continue;
            }
            last = now;
            let store = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || store.reload()).await {
                tracing::error!(error = %e, "policy reload task failed");
            }
        }
    }
}

async fn next_hangup(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

fn fingerprint(dir: &Path) -> std::io::Result<Fingerprint> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        files.push((entry.file_name(), meta.modified().ok(), meta.len()));
    }
    files.sort();
    Ok(files)
}
