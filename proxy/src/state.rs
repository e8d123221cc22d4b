//! What the gateway caches from the control plane: the snapshot (workspaces, settings, IP
//! access lists) and resolved tokens and principals, and how they stay fresh.
//!
//! Freshness: the control plane numbers its state. A control-plane response with a newer
//! state version ([`ControlState::observe_version`]) drops the token and principal caches and
//! re-fetches the snapshot before that response is sent on, so the caller's next request sees
//! its own change. A background long-poll ([`ControlState::watch`]) does the same for changes
//! made elsewhere. When the control plane cannot be reached, requests that need it get 503:
//! the gateway fails closed, never open.

mod snapshot;

pub(crate) use snapshot::{Snapshot, WorkspaceEntry};

use crate::control::{ControlClient, ControlError};
use arc_swap::ArcSwapOption;
use lakeward_common::internal::{PrincipalRecord, ResolvedToken};
use prometheus::IntGauge;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Negative answers (no such token or principal) are kept at most this long.
const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// A cache is emptied rather than grown past this many entries.
const MAX_CACHE_ENTRIES: usize = 100_000;

struct Cached<T> {
    value: Option<T>,
    at: Instant,
}

#[derive(Default)]
struct Caches {
    /// Bumped on every drop, so a resolution that started before a drop is not stored.
    generation: u64,
    tokens: HashMap<String, Cached<ResolvedToken>>,
    principals: HashMap<String, Cached<PrincipalRecord>>,
}

/// The control-plane state the gateway holds.
pub(crate) struct ControlState {
    client: ControlClient,
    snapshot: ArcSwapOption<Snapshot>,
    /// The lowest snapshot version requests may be decided with (raised by announcements).
    required_version: AtomicU64,
    refresh_lock: tokio::sync::Mutex<()>,
    caches: Mutex<Caches>,
    ttl: Duration,
    default_workspace_id: Option<i64>,
    version_gauge: IntGauge,
}

impl ControlState {
    pub(crate) fn new(
        client: ControlClient,
        ttl: Duration,
        default_workspace_id: Option<i64>,
        version_gauge: IntGauge,
    ) -> Self {
        ControlState {
            client,
            snapshot: ArcSwapOption::empty(),
            required_version: AtomicU64::new(0),
            refresh_lock: tokio::sync::Mutex::new(()),
            caches: Mutex::new(Caches::default()),
            ttl,
            default_workspace_id,
            version_gauge,
        }
    }

    /// The snapshot, if one has been loaded.
    pub(crate) fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    fn account_id(&self) -> String {
        self.current()
            .map(|s| s.account_id.clone())
            .unwrap_or_default()
    }

    /// A snapshot at least as new as every version announced so far, re-fetching if needed.
    pub(crate) async fn snapshot_for_request(&self) -> Result<Arc<Snapshot>, ControlError> {
        let required = self.required_version.load(Ordering::Acquire);
        if let Some(s) = self.current().filter(|s| s.version >= required) {
            return Ok(s);
        }
        self.refresh_to(required).await?;
        self.current()
            .filter(|s| s.version >= required)
            .ok_or(ControlError::Stale)
    }

    /// Fetches and installs the snapshot unless one of at least `version` is already there.
    /// Concurrent callers wait for one fetch.
    pub(crate) async fn refresh_to(&self, version: u64) -> Result<(), ControlError> {
        let _guard = self.refresh_lock.lock().await;
        if self.current().is_some_and(|s| s.version >= version) {
            return Ok(());
        }
        let raw = self.client.snapshot(&self.account_id()).await?;
        let compiled = Snapshot::compile(raw, self.default_workspace_id);
        self.install(compiled);
        Ok(())
    }

    fn install(&self, snapshot: Snapshot) {
        let newer = self
            .current()
            .is_none_or(|old| snapshot.version > old.version);
        if newer {
            self.drop_caches();
        }
        self.version_gauge
            .set(i64::try_from(snapshot.version).unwrap_or(i64::MAX));
        tracing::info!(
            version = snapshot.version,
            "control-plane snapshot installed"
        );
        self.snapshot.store(Some(Arc::new(snapshot)));
    }

    /// Called with the state version of a control-plane response, before that response is
    /// sent on. When it is newer than the snapshot, caches are dropped and the snapshot is
    /// re-fetched; if that fails, later requests re-try it and get 503 until it succeeds.
    pub(crate) async fn observe_version(&self, version: u64) -> Result<(), ControlError> {
        let current = self.current().map_or(0, |s| s.version);
        if version <= current {
            return Ok(());
        }
        self.required_version.fetch_max(version, Ordering::AcqRel);
        self.drop_caches();
        self.refresh_to(version).await
    }

    fn drop_caches(&self) {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        caches.generation += 1;
        caches.tokens.clear();
        caches.principals.clear();
    }

    fn fresh<T>(&self, entry: &Cached<T>) -> bool {
        let ttl = if entry.value.is_some() {
            self.ttl
        } else {
            self.ttl.min(NEGATIVE_TTL)
        };
        entry.at.elapsed() < ttl
    }

    /// The token with this hash, from the cache or the control plane.
    pub(crate) async fn resolve_token(
        &self,
        hash: &str,
    ) -> Result<Option<ResolvedToken>, ControlError> {
        let generation = {
            let caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(hit) = caches.tokens.get(hash).filter(|e| self.fresh(e)) {
                return Ok(hit.value.clone());
            }
            caches.generation
        };
        let value = self.client.resolve_token(hash, &self.account_id()).await?;
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        if caches.generation == generation {
            if caches.tokens.len() >= MAX_CACHE_ENTRIES {
                caches.tokens.clear();
            }
            caches.tokens.insert(
                hash.to_owned(),
                Cached {
                    value: value.clone(),
                    at: Instant::now(),
                },
            );
        }
        Ok(value)
    }

    /// The principal with this user name, from the cache or the control plane.
    pub(crate) async fn resolve_principal(
        &self,
        user_name: &str,
    ) -> Result<Option<PrincipalRecord>, ControlError> {
        let generation = {
            let caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(hit) = caches.principals.get(user_name).filter(|e| self.fresh(e)) {
                return Ok(hit.value.clone());
            }
            caches.generation
        };
        let value = self
            .client
            .resolve_principal(user_name, &self.account_id())
            .await?;
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        if caches.generation == generation {
            if caches.principals.len() >= MAX_CACHE_ENTRIES {
                caches.principals.clear();
            }
            caches.principals.insert(
                user_name.to_owned(),
                Cached {
                    value: value.clone(),
                    at: Instant::now(),
                },
            );
        }
        Ok(value)
    }

    /// Whether the control plane's readiness endpoint answers 200.
    pub(crate) async fn control_ready(&self) -> bool {
        self.client.ready(&self.account_id()).await
    }

    /// Loads the first snapshot (retrying with backoff), then long-polls for changes forever.
    pub(crate) async fn watch(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = match self.current() {
                None => self.refresh_to(0).await,
                Some(snapshot) => {
                    let started = Instant::now();
                    match self
                        .client
                        .changes(snapshot.version, &snapshot.account_id)
                        .await
                    {
                        Ok(version) if version > snapshot.version => {
                            self.observe_version(version).await
                        }
                        Ok(_) => {
                            // No change: normally after a long wait; never spin on a control
                            // plane that answers at once.
                            if started.elapsed() < Duration::from_secs(1) {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match result {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "control plane not reachable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
