//! The backoff policy of every retry and reconnect loop: exponential, doubling, with jitter.
//!
//! Jitter, because replicas that lost the same peer at the same moment would otherwise retry in
//! lock step and hit it together when it comes back. The jitter is taken from below: each
//! delay is drawn from the upper half of the plain exponential delay, so a loop never waits
//! longer than its bounds say, and never less than half.

use backon::ExponentialBuilder;
use std::time::Duration;

/// Delays that start at `first`, double after each failure up to `longest`, and go on for as
/// long as the loop keeps failing (cap the count with
/// [`ExponentialBuilder::with_max_times`]). Each delay is drawn at random from the upper half of
/// its plain value: the first lies in `[first/2, first]`, none exceeds `longest`.
///
/// A loop that needs the delays themselves (to wait on something else meanwhile) takes them
/// from the iterator: `let mut delays = reconnect(first, longest).build();` and
/// `delays.next()`; building anew after a success starts again from `first`.
pub fn reconnect(first: Duration, longest: Duration) -> ExponentialBuilder {
    // backon's jitter adds up to 100% of the delay: halving both bounds keeps each delay
    // between half its plain value and that value.
    ExponentialBuilder::default()
        .with_factor(2.0)
        .with_min_delay(first / 2)
        .with_max_delay(longest.max(first) / 2)
        .with_jitter()
        .without_max_times()
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn delays_double_within_their_bounds_and_never_end() {
        let first = Duration::from_millis(250);
        let longest = Duration::from_secs(10);
        for _ in 0..20 {
            let delays: Vec<Duration> = reconnect(first, longest).build().take(60).collect();
            assert_eq!(delays.len(), 60, "the policy gives up only when told to");
            for (step, delay) in delays.iter().enumerate() {
                let plain = first.saturating_mul(1 << step.min(20)).min(longest);
                assert!(*delay <= plain, "step {step}: {delay:?} > {plain:?}");
                assert!(
                    *delay >= plain / 2,
                    "step {step}: {delay:?} < {:?}",
                    plain / 2
                );
            }
            assert!(delays.iter().all(|d| *d <= longest));
        }
    }

    #[test]
    fn delays_are_jittered() {
        let first = Duration::from_millis(250);
        let runs: Vec<Vec<Duration>> = (0..8)
            .map(|_| {
                reconnect(first, Duration::from_secs(10))
                    .build()
                    .take(5)
                    .collect()
            })
            .collect();
        assert!(
            runs.windows(2).any(|pair| pair[0] != pair[1]),
            "eight runs drew the same delays: {runs:?}"
        );
    }

    #[test]
    fn a_count_can_be_set() {
        let delays = reconnect(Duration::from_millis(10), Duration::from_millis(40))
            .with_max_times(3)
            .build()
            .count();
        assert_eq!(delays, 3);
    }
}
