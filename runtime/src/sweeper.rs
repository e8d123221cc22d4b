//! The background sweeper: every `idle_check_interval_ms`, while the service lives, result
//! expiry, finishing warehouse transitions left half-done, and auto-stop.
//!
//! A failing step (an error, or a panic) is logged and counted, and the next tick runs all the
//! steps again: one bad tick must not stop auto-stop and expiry for the life of the process.

use crate::state::Shared;
use crate::warehouses::upkeep;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// One step of a sweep, over the state it sweeps.
pub(crate) struct Step<T> {
    pub(crate) name: &'static str,
    pub(crate) run: fn(Arc<T>) -> BoxFuture<'static, anyhow::Result<()>>,
}

/// The runtime's steps, in the order they run.
pub(crate) fn runtime_steps() -> Vec<Step<Shared>> {
    vec![
        Step {
            name: "expire statements",
            run: |shared| {
                Box::pin(async move {
                    shared.scheduler.expire();
                    Ok(())
                })
            },
        },
        Step {
            name: "finish stuck warehouses",
            run: |shared| {
                Box::pin(async move {
                    upkeep::retry_stuck(&shared).await;
                    Ok(())
                })
            },
        },
        Step {
            name: "auto-stop idle warehouses",
            run: |shared| {
                Box::pin(async move {
                    upkeep::auto_stop(&shared).await;
                    Ok(())
                })
            },
        },
    ]
}

/// Runs `steps` every `period` until `target` is dropped. `failures` counts the steps that
/// failed.
pub(crate) async fn sweep<T: Send + Sync + 'static>(
    target: Weak<T>,
    period: Duration,
    steps: Vec<Step<T>>,
    failures: Arc<AtomicU64>,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(target) = target.upgrade() else {
            return;
        };
        for step in &steps {
            let outcome = AssertUnwindSafe((step.run)(target.clone()))
                .catch_unwind()
                .await;
            let failure = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(err)) => err.to_string(),
                Err(panic) => panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned()),
            };
            let count = failures.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(step = step.name, failure = %failure, failures = count, "a sweep step failed; the next tick runs it again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    #[derive(Default)]
    struct Counters {
        panicked: AtomicBool,
        errored: AtomicBool,
        ticks: AtomicU64,
    }

    #[tokio::test]
    async fn the_sweeper_survives_a_step_that_fails_once() {
        let target = Arc::new(Counters::default());
        let steps = vec![
            Step {
                name: "panics once",
                run: |c: Arc<Counters>| {
                    Box::pin(async move {
                        if !c.panicked.swap(true, Ordering::SeqCst) {
                            panic!("a bug in a sweep step");
                        }
                        Ok(())
                    })
                },
            },
            Step {
                name: "errs once",
                run: |c: Arc<Counters>| {
                    Box::pin(async move {
                        if !c.errored.swap(true, Ordering::SeqCst) {
                            anyhow::bail!("the control plane said no");
                        }
                        Ok(())
                    })
                },
            },
            Step {
                name: "counts",
                run: |c: Arc<Counters>| {
                    Box::pin(async move {
                        c.ticks.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                },
            },
        ];
        let failures = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(sweep(
            Arc::downgrade(&target),
            Duration::from_millis(10),
            steps,
            failures.clone(),
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while target.ticks.load(Ordering::SeqCst) < 3 {
            assert!(!task.is_finished(), "the sweeper stopped");
            assert!(Instant::now() < deadline, "the sweeper stopped ticking");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(failures.load(Ordering::SeqCst), 2);
        drop(target);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
