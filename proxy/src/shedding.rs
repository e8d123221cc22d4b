//! Load shedding (stage 0): a global bound on requests in flight. A request past it is
//! answered 503 with `Retry-After` before admission reads its body, so it costs no
//! control-plane lookup, no Cedar decision and nothing forwarded; a request that is admitted
//! goes through every stage as always (shedding never skips authentication or authorization
//! to save time). The other bound, on concurrent control-plane lookups, is kept where lookups
//! are made (`state`).
//!
//! A request counts from the moment the pipeline takes it until its response head is ready;
//! a response body still streaming after that is bounded by the connection limits instead.

use prometheus::IntCounter;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request was shed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShedError {
    #[error("{0} requests already in flight")]
    InFlight(usize),
}

/// The in-flight bound.
pub(crate) struct Shedding {
    permits: Arc<Semaphore>,
    max: usize,
    shed: IntCounter,
}

impl Shedding {
    pub(crate) fn new(max_in_flight: usize, shed: IntCounter) -> Self {
        Shedding {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max: max_in_flight,
            shed,
        }
    }

    /// A place among the requests in flight, held until dropped; or, with none free, the
    /// refusal. Never waits: a queue would only hold the excess longer.
    pub(crate) fn admit(&self) -> Result<OwnedSemaphorePermit, ShedError> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            self.shed.inc();
            ShedError::InFlight(self.max)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_holds_and_frees() {
        let counter = IntCounter::new("shed", "shed").unwrap();
        let shedding = Shedding::new(2, counter.clone());
        let a = shedding.admit().unwrap();
        let _b = shedding.admit().unwrap();
        assert!(matches!(shedding.admit(), Err(ShedError::InFlight(2))));
        assert_eq!(counter.get(), 1);
        drop(a);
        assert!(shedding.admit().is_ok());
    }
}
