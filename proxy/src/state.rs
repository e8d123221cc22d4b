//! What the gateway caches from the control plane: the snapshot (workspaces, settings, IP
//! access lists) and resolved tokens and principals, and how they stay fresh.
//!
//! Freshness: the control plane numbers its state. A control-plane response with a newer
//! state version ([`ControlState::observe_version`]) drops the token and principal caches and
//! re-fetches the snapshot before that response is sent on, so the caller's next request sees
//! its own change. Changes made elsewhere (through another gateway replica) arrive on the Redis
//! change feed (`feed`, [`ControlState::announced`]) and, unless turned off, through a
//! background long-poll ([`ControlState::watch`]). When the control plane cannot be reached,
//! requests that need it get 503: the gateway fails closed, never open.
//!
//! Degraded mode: with a change feed configured, the caches are trusted only while the feed is
//! known to be good (subscribed, and a snapshot loaded since). Otherwise announcements may
//! have been missed, so every token and principal is resolved by the control plane (and not
//! cached), and a snapshot whose fetch started more than [`DEGRADED_SNAPSHOT_MAX_AGE`] ago is
//! re-fetched before a request uses it.

mod feed;
mod snapshot;

pub(crate) use feed::ChangeFeed;
pub(crate) use snapshot::{Snapshot, WorkspaceEntry};

use crate::control::{ControlClient, ControlError};
use arc_swap::ArcSwapOption;
use backon::{ExponentialBuilder, Retryable};
use lakeward_common::internal::{PrincipalRecord, ResolvedToken};
use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Negative answers (no such token or principal) are kept at most this long.
const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// A cache is emptied rather than grown past this many entries.
const MAX_CACHE_ENTRIES: usize = 100_000;
/// While the change feed is degraded, the oldest snapshot a request may be decided with (by
/// when its fetch started). A change committed elsewhere reaches every request that begins
/// this long after the commit; a re-fetch per request would cost a whole snapshot each time,
/// this costs at most four a second, shared by all requests.
pub(crate) const DEGRADED_SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(250);
/// The first delay before trying the control plane again after a failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// The longest delay between two tries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// Delays between attempts to reach a service that failed (the control plane, Redis): the
/// nominal delay doubles from `first` up to `max / 2`, and jitter adds up to as much again, so
/// every delay lies between `first` and `max`, and gateway replicas that lost the service
/// together do not all come back at the same instant. Never gives up.
pub(crate) fn retry_delays(first: Duration, max: Duration) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_jitter()
        .with_min_delay(first)
        .with_max_delay(max / 2)
        .without_max_times()
}

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
    /// parking_lot's lock: it does not poison, so a panic while it was held cannot leave the
    /// caches unusable (with std's, every later caller had to choose to skip or to go on).
    caches: Mutex<Caches>,
    ttl: Duration,
    default_workspace_id: Option<i64>,
    version_gauge: IntGauge,
    /// Whether the caches may answer: always without a change feed; with one, only while it is
    /// known to be good (see the module docs).
    trusted: AtomicBool,
    /// `gateway_change_feed_healthy`, kept equal to `trusted`.
    feed_gauge: IntGauge,
    /// Token and principal lookups the control plane may be asked at once; past it a request
    /// is refused (503) instead of adding to the queue of a control plane already behind.
    lookups: tokio::sync::Semaphore,
    /// `gateway_load_shed_total{bound="control_lookups"}`.
    lookups_shed: Option<IntCounter>,
}

impl ControlState {
    /// `change_feed`: whether a Redis change feed will report its health; until it does, the
    /// caches are not trusted.
    pub(crate) fn new(
        client: ControlClient,
        ttl: Duration,
        default_workspace_id: Option<i64>,
        version_gauge: IntGauge,
        feed_gauge: IntGauge,
        change_feed: bool,
    ) -> Self {
        feed_gauge.set(i64::from(!change_feed));
        ControlState {
            client,
            snapshot: ArcSwapOption::empty(),
            required_version: AtomicU64::new(0),
            refresh_lock: tokio::sync::Mutex::new(()),
            caches: Mutex::new(Caches::default()),
            ttl,
            default_workspace_id,
            version_gauge,
            trusted: AtomicBool::new(!change_feed),
            feed_gauge,
            lookups: tokio::sync::Semaphore::new(tokio::sync::Semaphore::MAX_PERMITS),
            lookups_shed: None,
        }
    }

    /// Bounds the token and principal lookups in flight at once to `max`; `shed` counts the
    /// requests refused for it.
    pub(crate) fn with_lookup_bound(mut self, max: usize, shed: IntCounter) -> Self {
        self.lookups = tokio::sync::Semaphore::new(max);
        self.lookups_shed = Some(shed);
        self
    }

    /// A place among the lookups in flight, or [`ControlError::Overloaded`] without waiting.
    fn lookup_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ControlError> {
        self.lookups.try_acquire().map_err(|_| {
            if let Some(shed) = &self.lookups_shed {
                shed.inc();
            }
            ControlError::Overloaded
        })
    }

    /// Whether cached tokens, principals and snapshots may be used as they are (false while
    /// the change feed is degraded).
    pub(crate) fn caches_trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
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

    /// A snapshot at least as new as every version the control plane answered with so far
    /// and, while the change feed is degraded, fetched at most [`DEGRADED_SNAPSHOT_MAX_AGE`]
    /// ago; re-fetching if needed.
    pub(crate) async fn snapshot_for_request(&self) -> Result<Arc<Snapshot>, ControlError> {
        if !self.caches_trusted() {
            self.refresh_unless(|s| s.fetched_at.elapsed() < DEGRADED_SNAPSHOT_MAX_AGE)
                .await?;
        }
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
        self.refresh_unless(|s| s.version >= version).await
    }

    /// Fetches and installs the snapshot unless the current one is `good_enough` (asked again
    /// once the refresh lock is held, so concurrent callers wait for one fetch).
    async fn refresh_unless(
        &self,
        good_enough: impl Fn(&Snapshot) -> bool,
    ) -> Result<(), ControlError> {
        // Without the lock first: degraded mode asks on every request.
        if self.current().is_some_and(|s| good_enough(&s)) {
            return Ok(());
        }
        let _guard = self.refresh_lock.lock().await;
        if self.current().is_some_and(|s| good_enough(&s)) {
            return Ok(());
        }
        let fetched_at = Instant::now();
        let raw = self.client.snapshot(&self.account_id()).await?;
        let compiled = Snapshot::compile(raw, fetched_at, self.default_workspace_id);
        self.install(compiled);
        Ok(())
    }

    fn install(&self, snapshot: Snapshot) {
        let newer = self
            .current()
            .is_none_or(|old| snapshot.version > old.version);
        if newer {
            self.drop_caches();
            tracing::info!(
                version = snapshot.version,
                "control-plane snapshot installed"
            );
        } else {
            // Degraded mode re-fetches the same version several times a second.
            tracing::debug!(
                version = snapshot.version,
                "control-plane snapshot re-fetched"
            );
        }
        self.version_gauge
            .set(i64::try_from(snapshot.version).unwrap_or(i64::MAX));
        self.snapshot.store(Some(Arc::new(snapshot)));
    }

    /// Called with the state version of a control-plane response, before that response is
    /// sent on. When it is newer than the snapshot, caches are dropped and the snapshot is
    /// re-fetched; if that fails, later requests re-try it and get 503 until it succeeds.
    pub(crate) async fn observe_version(&self, version: u64) -> Result<(), ControlError> {
        self.advance(version, true).await
    }

    /// Called by the change feed with a version announced on Redis: the same as
    /// [`ControlState::observe_version`] except that requests are not made to wait for that
    /// version. Anything that can publish on the channel can announce any number, and one
    /// that no control plane of ours has reached (another deployment on the same channel)
    /// must not hold every request at 503. On an error the feed stops trusting the caches and
    /// resynchronises, which fails closed instead.
    pub(crate) async fn announced(&self, version: u64) -> Result<(), ControlError> {
        self.advance(version, false).await?;
        if self.current().is_some_and(|s| s.version < version) {
            tracing::debug!(
                version,
                "announced state version is ahead of the control plane; another deployment on this Redis channel?"
            );
        }
        Ok(())
    }

    /// When `version` is newer than the snapshot: drops the caches and re-fetches, after
    /// making `version` the least a request may be decided with if `require`.
    async fn advance(&self, version: u64, require: bool) -> Result<(), ControlError> {
        let current = self.current().map_or(0, |s| s.version);
        if version <= current {
            return Ok(());
        }
        if require {
            self.required_version.fetch_max(version, Ordering::AcqRel);
        }
        self.drop_caches();
        self.refresh_to(version).await
    }

    /// The change feed is down, or has missed or failed to apply an announcement: stop
    /// trusting the caches until [`ControlState::feed_resynchronised`].
    pub(crate) fn feed_lost(&self) {
        self.trusted.store(false, Ordering::Release);
        self.feed_gauge.set(0);
        // Also keeps a resolution already under way from storing what it finds.
        self.drop_caches();
    }

    /// The change feed has been listening since `since`: drops the caches and loads a
    /// snapshot fetched after that moment, then trusts the caches again. A change committed
    /// before `since` is in that snapshot or will be resolved afresh; a later one is announced.
    pub(crate) async fn feed_resynchronised(&self, since: Instant) -> Result<(), ControlError> {
        self.drop_caches();
        self.refresh_unless(|s| s.fetched_at > since).await?;
        self.trusted.store(true, Ordering::Release);
        self.feed_gauge.set(1);
        Ok(())
    }

    fn drop_caches(&self) {
        let mut caches = self.caches.lock();
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

    /// The token with this hash, from the cache or (always while degraded) the control plane.
    pub(crate) async fn resolve_token(
        &self,
        hash: &str,
    ) -> Result<Option<ResolvedToken>, ControlError> {
        let trusted = self.caches_trusted();
        let generation = {
            let caches = self.caches.lock();
            if let Some(hit) = caches.tokens.get(hash).filter(|e| trusted && self.fresh(e)) {
                return Ok(hit.value.clone());
            }
            caches.generation
        };
        let permit = self.lookup_permit()?;
        let value = self.client.resolve_token(hash, &self.account_id()).await?;
        drop(permit);
        let mut caches = self.caches.lock();
        if trusted && caches.generation == generation {
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

    /// The principal with this user name, from the cache or (always while degraded) the
    /// control plane.
    pub(crate) async fn resolve_principal(
        &self,
        user_name: &str,
    ) -> Result<Option<PrincipalRecord>, ControlError> {
        let trusted = self.caches_trusted();
        let generation = {
            let caches = self.caches.lock();
            let hit = caches
                .principals
                .get(user_name)
                .filter(|e| trusted && self.fresh(e));
            if let Some(hit) = hit {
                return Ok(hit.value.clone());
            }
            caches.generation
        };
        let permit = self.lookup_permit()?;
        let value = self
            .client
            .resolve_principal(user_name, &self.account_id())
            .await?;
        drop(permit);
        let mut caches = self.caches.lock();
        if trusted && caches.generation == generation {
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

    /// Loads the first snapshot (retrying with backoff), then, if `long_poll`, long-polls for
    /// changes forever.
    pub(crate) async fn watch(self: Arc<Self>, long_poll: bool) {
        while long_poll || self.current().is_none() {
            // Each step is tried until it succeeds (so this never yields an error); the
            // delays start over with the next step.
            let _ = (|| self.watch_step(long_poll))
                .retry(retry_delays(FIRST_RETRY_DELAY, MAX_RETRY_DELAY))
                .notify(|e: &ControlError, _| {
                    tracing::warn!(error = %e, "control plane not reachable; retrying");
                })
                .await;
        }
    }

    /// Loads the first snapshot, or waits for one change (a long-poll) and applies it.
    async fn watch_step(&self, long_poll: bool) -> Result<(), ControlError> {
        let snapshot = match self.current() {
            None => return self.refresh_to(0).await,
            Some(_) if !long_poll => return Ok(()),
            Some(snapshot) => snapshot,
        };
        let started = Instant::now();
        let version = self
            .client
            .changes(snapshot.version, &snapshot.account_id)
            .await?;
        if version > snapshot.version {
            return self.observe_version(version).await;
        }
        // No change: normally after a long wait; never spin on a control plane that answers
        // at once.
        if started.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn retry_delays_stay_within_the_bounds_and_are_jittered() {
        let (first, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = retry_delays(first, max).build().take(40).collect();
        assert_eq!(delays.len(), 40, "it never gives up");
        assert!(
            delays.iter().all(|d| (first..=max).contains(d)),
            "{delays:?}"
        );
        assert!(delays[0] < first * 2, "{delays:?}");
        // Past the cap the delays still differ: replicas do not retry in step.
        let capped = &delays[20..];
        assert!(
            capped.iter().any(|d| *d != capped[0]) && capped.iter().all(|d| *d >= max / 2),
            "{capped:?}"
        );
    }
}
