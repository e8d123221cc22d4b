//! GCRA, the generic cell rate algorithm, and the per-process store of its state.
//!
//! A counter is one number, the theoretical arrival time (TAT): when the counter would be
//! empty again if requests kept coming at exactly the allowed rate. A request moves it one
//! interval (`period / requests`) on, and is allowed while the TAT stays within `burst`
//! intervals of now. Compared with a fixed window it never lets twice the rate through at a
//! window's edge, and compared with a sliding log it keeps one number per key; the Redis
//! script ([`super::redis_store`]) runs the same arithmetic, so a limit means the same with or
//! without Redis.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A quota in GCRA's terms, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// The time one request uses up.
    pub interval_us: u64,
    /// How far ahead of now the TAT may run: `burst` intervals.
    pub tolerance_us: u64,
}

/// What one decision over one or more counters came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    /// Refused: how long until the request would be allowed. Allowed: how long until another
    /// one would be (zero while there is room left).
    pub wait: Duration,
    /// Refused: the index of the counter that refused for longest.
    pub refused_by: usize,
}

impl Gcra {
    /// `requests` per `period_secs`, up to `burst` (default `requests`) at once. `None` when
    /// `requests` is 0 (no limit).
    pub(crate) fn new(requests: u32, period_secs: u32, burst: Option<u32>) -> Option<Gcra> {
        if requests == 0 {
            return None;
        }
        let interval_us = (u64::from(period_secs) * 1_000_000 / u64::from(requests)).max(1);
        let burst = u64::from(burst.unwrap_or(requests).max(1));
        Some(Gcra {
            interval_us,
            tolerance_us: interval_us.saturating_mul(burst),
        })
    }

    /// One request at `now` against a counter whose TAT is `tat`: the new TAT if allowed, and
    /// the wait either way.
    fn step(self, tat: Option<u64>, now: u64) -> (Option<u64>, u64) {
        let new_tat = tat.unwrap_or(now).max(now) + self.interval_us;
        let ahead = new_tat - now;
        if ahead > self.tolerance_us {
            return (None, ahead - self.tolerance_us);
        }
        // Room for another request at once if one more interval still fits.
        let next = (ahead + self.interval_us).saturating_sub(self.tolerance_us);
        (Some(new_tat), next)
    }
}

/// Decides one request against every counter in `counters` at `now`, all or nothing: a
/// request refused by one counter uses up none of the others. `tats` gives each counter's
/// TAT; on an allow, the new TATs are returned for storing.
pub(crate) fn decide(
    counters: &[Gcra],
    tats: &[Option<u64>],
    now: u64,
) -> (Decision, Option<Vec<u64>>) {
    let mut refused_for = 0;
    let mut refused_by = 0;
    let mut next = 0;
    let mut updated = Vec::with_capacity(counters.len());
    for (i, (gcra, tat)) in counters.iter().zip(tats).enumerate() {
        match gcra.step(*tat, now) {
            (Some(new_tat), wait) => {
                updated.push(new_tat);
                next = next.max(wait);
            }
            (None, wait) if wait > refused_for => {
                refused_for = wait;
                refused_by = i;
            }
            (None, _) => {}
        }
    }
    if refused_for > 0 {
        let decision = Decision {
            allowed: false,
            wait: Duration::from_micros(refused_for),
            refused_by,
        };
        return (decision, None);
    }
    let decision = Decision {
        allowed: true,
        wait: Duration::from_micros(next),
        refused_by: 0,
    };
    (decision, Some(updated))
}

/// Counters are dropped rather than grown past this many (a flood of new keys cannot take the
/// gateway's memory; a counter whose TAT has passed holds nothing anyway).
pub(crate) const MAX_COUNTERS: usize = 100_000;

/// This process's counters.
pub(crate) struct LocalStore {
    epoch: Instant,
    tats: Mutex<HashMap<String, u64>>,
}

impl LocalStore {
    pub(crate) fn new() -> Self {
        LocalStore {
            epoch: Instant::now(),
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Decides one request against the counters `keys`, each with its quota.
    pub(crate) fn decide(&self, keys: &[(String, Gcra)]) -> Decision {
        let now = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let counters: Vec<Gcra> = keys.iter().map(|(_, g)| *g).collect();
        let mut tats = self.tats.lock();
        let current: Vec<Option<u64>> = keys.iter().map(|(k, _)| tats.get(k).copied()).collect();
        let (decision, updated) = decide(&counters, &current, now);
        if let Some(updated) = updated {
            if tats.len() + keys.len() > MAX_COUNTERS {
                tats.retain(|_, tat| *tat > now);
                if tats.len() + keys.len() > MAX_COUNTERS {
                    tracing::warn!(
                        counters = tats.len(),
                        "too many live rate-limit counters; starting them all over"
                    );
                    tats.clear();
                }
            }
            for ((key, _), tat) in keys.iter().zip(updated) {
                tats.insert(key.clone(), tat);
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;

    #[test]
    fn burst_then_the_steady_rate() {
        // 2 per second, 3 at once.
        let gcra = Gcra::new(2, 1, Some(3)).unwrap();
        assert_eq!(gcra.interval_us, SEC / 2);
        let mut tat = None;
        let at = |now: u64, tat: &mut Option<u64>| {
            let (decision, updated) = decide(&[gcra], &[*tat], now);
            if let Some(u) = updated {
                *tat = Some(u[0]);
            }
            decision
        };
        for i in 0..3 {
            let d = at(0, &mut tat);
            assert!(d.allowed, "request {i} of the burst");
        }
        // The third used the last room: the next is half a second away.
        let refused = at(0, &mut tat);
        assert!(!refused.allowed);
        assert_eq!(refused.wait, Duration::from_millis(500));
        assert!(at(SEC / 2, &mut tat).allowed);
        assert!(!at(SEC / 2, &mut tat).allowed);
        // Idle for long: the full burst again, never more.
        let later = 100 * SEC;
        for _ in 0..3 {
            assert!(at(later, &mut tat).allowed);
        }
        assert!(!at(later, &mut tat).allowed);
    }

    #[test]
    fn the_last_allowed_request_says_how_long_until_the_next() {
        let gcra = Gcra::new(2, 10, None).unwrap();
        let (first, tat) = decide(&[gcra], &[None], 0);
        assert_eq!((first.allowed, first.wait), (true, Duration::ZERO));
        let (second, _) = decide(&[gcra], &[Some(tat.unwrap()[0])], 0);
        assert!(second.allowed);
        assert_eq!(second.wait, Duration::from_secs(5));
    }

    #[test]
    fn all_or_nothing_over_several_counters() {
        let roomy = Gcra::new(100, 1, None).unwrap();
        let tight = Gcra::new(1, 60, None).unwrap();
        let (first, updated) = decide(&[roomy, tight], &[None, None], 0);
        assert!(first.allowed);
        let tats: Vec<Option<u64>> = updated.unwrap().into_iter().map(Some).collect();
        let (second, updated) = decide(&[roomy, tight], &tats, 1);
        assert!(!second.allowed);
        assert_eq!(second.refused_by, 1);
        assert!(updated.is_none(), "a refusal charges no counter");
        assert!(Gcra::new(0, 1, None).is_none());
    }

    #[test]
    fn local_store_keys_are_independent() {
        let store = LocalStore::new();
        let gcra = Gcra::new(1, 3600, None).unwrap();
        let a = [("a".to_owned(), gcra)];
        let b = [("b".to_owned(), gcra)];
        assert!(store.decide(&a).allowed);
        assert!(!store.decide(&a).allowed);
        assert!(store.decide(&b).allowed);
    }
}
