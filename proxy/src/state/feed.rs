//! The Redis change feed: a subscription to the channel on which the control plane publishes
//! its state version after every commit, so that every gateway replica drops what a change
//! made stale within moments, whichever replica the change went through.
//!
//! The caches are trusted only while the feed is known to be good: subscribed, a snapshot
//! fetched since the subscription was confirmed (versions published while the feed was down
//! are lost, and that snapshot stands in for them), and the connection answering a `PING`
//! every [`PING_INTERVAL`] within [`PING_TIMEOUT`]. Redis delivers a connection's messages in
//! order, so a `PONG` proves every version published before the `PING` has arrived; a
//! connection that goes quiet (a network partition, not only a closed socket) is given up
//! within `PING_INTERVAL + PING_TIMEOUT`, so a version lost with it leaves the caches trusted
//! for under a second. Otherwise [`ControlState`] is degraded (see its module docs).
//!
//! Lost connections are retried with a growing, jittered delay between [`FIRST_RETRY_DELAY`]
//! and [`MAX_RETRY_DELAY`] (see [`retry_delays`]). An outage is logged once as a warning when
//! it starts and once when it ends; the URL (it may hold a password) never is.

use super::{retry_delays, ControlState};
use crate::redis_target::RedisTarget;
use backon::{BackoffBuilder, ExponentialBackoff};
use futures_util::StreamExt as _;
use redis::aio::{PubSubSink, PubSubStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

/// How often the subscription's connection is asked to prove it is alive.
const PING_INTERVAL: Duration = Duration::from_millis(200);
/// How long a `PING` may go unanswered before the connection is given up.
const PING_TIMEOUT: Duration = Duration::from_millis(400);
/// How long connecting, and then subscribing, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The first delay before reconnecting (or re-fetching after a failed resynchronisation); it
/// grows on each further failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// The longest delay between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// A fresh sequence of delays between attempts.
fn delays() -> ExponentialBackoff {
    retry_delays(FIRST_RETRY_DELAY, MAX_RETRY_DELAY).build()
}

/// The next delay of `delays` (which never ends; the maximum should it ever).
fn next_delay(delays: &mut ExponentialBackoff) -> Duration {
    delays.next().unwrap_or(MAX_RETRY_DELAY)
}

/// The subscriber; [`ChangeFeed::run`] keeps it going.
pub(crate) struct ChangeFeed {
    redis: RedisTarget,
    channel: String,
}

impl ChangeFeed {
    /// A subscriber to `channel` on the Redis at `url`. Connects only when run.
    pub(crate) fn new(url: &str, channel: String) -> Result<ChangeFeed, redis::RedisError> {
        Ok(ChangeFeed {
            redis: RedisTarget::open(url)?,
            channel,
        })
    }

    /// Subscribes, resynchronises `state` and follows announcements; on any failure marks
    /// `state` degraded and starts over after a delay. Runs until aborted.
    pub(crate) async fn run(self, state: Arc<ControlState>) {
        let mut reconnect = delays();
        // Whether a warning about the current outage has been logged.
        let mut outage = false;
        loop {
            match self.subscribe().await {
                Ok((sink, stream, since)) => {
                    reconnect = delays();
                    let why = self.follow(sink, stream, since, &state, &mut outage).await;
                    state.feed_lost();
                    tracing::warn!(
                        channel = %self.channel,
                        error = %self.redis.scrub(&why),
                        "Redis change feed lost; every token goes to the control plane until it is back"
                    );
                    outage = true;
                }
                Err(error) => {
                    if outage {
                        tracing::debug!(error = %self.redis.scrub(&error), "Redis still unreachable");
                    } else {
                        tracing::warn!(
                            channel = %self.channel,
                            error = %self.redis.scrub(&error),
                            "cannot subscribe to the Redis change feed; every token goes to the control plane until it can"
                        );
                        outage = true;
                    }
                }
            }
            tokio::time::sleep(next_delay(&mut reconnect)).await;
        }
    }

    /// Connects and subscribes; also returns when the subscription was confirmed.
    async fn subscribe(&self) -> Result<(PubSubSink, PubSubStream, Instant), String> {
        let pubsub = tokio::time::timeout(IO_TIMEOUT, self.redis.client.get_async_pubsub())
            .await
            .map_err(|_| "connecting: timed out".to_owned())?
            .map_err(|e| format!("connecting: {e}"))?;
        let (mut sink, stream) = pubsub.split();
        tokio::time::timeout(IO_TIMEOUT, sink.subscribe(&self.channel))
            .await
            .map_err(|_| "subscribing: timed out".to_owned())?
            .map_err(|e| format!("subscribing: {e}"))?;
        Ok((sink, stream, Instant::now()))
    }

    /// Follows one subscription until its connection fails; returns why. `since`: when the
    /// subscription was confirmed.
    async fn follow(
        &self,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
        since: Instant,
        state: &ControlState,
        outage: &mut bool,
    ) -> String {
        // Its own future, so that a slow snapshot fetch below never delays the next PING.
        let liveness = async {
            let mut ping = tokio::time::interval(PING_INTERVAL);
            ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ping.tick().await;
                match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("ping: {e}"),
                    Err(_) => return format!("ping: no answer within {PING_TIMEOUT:?}"),
                }
            }
        };
        let announcements = async {
            // `Some(since)` while a resynchronisation is due: the snapshot must have been
            // fetched after `since`.
            let mut resync = Some(since);
            let mut resync_at = tokio::time::Instant::now();
            let mut resync_delays = delays();
            loop {
                tokio::select! {
                    message = stream.next() => {
                        let Some(message) = message else {
                            return "the connection closed".to_owned();
                        };
                        let Some(version) = parse_version(&message) else {
                            tracing::warn!(
                                channel = %self.channel,
                                "ignoring a message that is not a state version"
                            );
                            continue;
                        };
                        // Before a resynchronisation, the snapshot it fetches covers this one.
                        if resync.is_some() {
                            continue;
                        }
                        if let Err(e) = state.announced(version).await {
                            tracing::warn!(
                                version,
                                error = %e,
                                "refresh after an announced change failed; caches are not trusted until it succeeds"
                            );
                            state.feed_lost();
                            resync = Some(Instant::now());
                            resync_at = tokio::time::Instant::now() + next_delay(&mut resync_delays);
                        }
                    }
                    () = tokio::time::sleep_until(resync_at), if resync.is_some() => {
                        let Some(since) = resync else { continue };
                        match state.feed_resynchronised(since).await {
                            Ok(()) => {
                                resync = None;
                                resync_delays = delays();
                                if std::mem::take(outage) {
                                    tracing::info!(channel = %self.channel, "Redis change feed healthy again");
                                } else {
                                    tracing::info!(channel = %self.channel, "following the Redis change feed");
                                }
                            }
                            Err(e) => {
                                tracing::warn!(
                                    error = %e,
                                    "cannot load the snapshot after subscribing; retrying"
                                );
                                resync_at = tokio::time::Instant::now() + next_delay(&mut resync_delays);
                            }
                        }
                    }
                }
            }
        };
        tokio::select! {
            why = liveness => why,
            why = announcements => why,
        }
    }
}

/// The version a message announces: its payload, a decimal number.
fn parse_version(message: &redis::Msg) -> Option<u64> {
    std::str::from_utf8(message.get_payload_bytes())
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_redis_fails_fast_without_the_password() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let feed =
            ChangeFeed::new(&format!("redis://:s3cret@127.0.0.1:{port}"), "c".into()).unwrap();
        let error = feed.subscribe().await.err().unwrap();
        assert!(!feed.redis.scrub(&error).contains("s3cret"), "{error}");
    }
}
