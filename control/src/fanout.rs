//! Best-effort fan-out of the state version over Redis pub/sub
//! ([`lakeward_common::internal::STATE_VERSION_CHANNEL`]).
//!
//! A background task follows the store's local version watch (every commit of this replica)
//! and `PUBLISH`es the newest version as a decimal string. It never slows or fails a request:
//! requests only bump the watch, and the task does the network I/O. Versions that arrive
//! while a publish is under way, or while Redis is unreachable, are coalesced into the newest,
//! which is all a gateway needs (it refetches whenever it sees a version above its own). While
//! Redis is unreachable the task retries with the frame's backoff (from
//! [`FIRST_RETRY_DELAY`] doubling up to [`MAX_RETRY_DELAY`], jittered so that replicas do not
//! reconnect in step), logs the outage once as a warning and its end once, and never logs
//! the URL (it may hold a password).

use backon::{BackoffBuilder, ExponentialBackoff};
use lakeward_frame::backoff;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The first retry delay after a failed publish (at most; jitter may shorten it by half); it
/// doubles on each further failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
/// The longest delay between two attempts while Redis is unreachable.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);
/// How long connecting, and then each `PUBLISH`, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `url` is a usable `redis://` URL (with a host).
pub(crate) fn is_redis_url(url: &str) -> bool {
    if !url.starts_with("redis://") {
        return false;
    }
    match redis::Client::open(url) {
        Ok(client) => match client.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(host, _) => !host.is_empty(),
            _ => false,
        },
        Err(_) => false,
    }
}

/// Starts the publisher: from now on, each version the watch announces is published on
/// `channel`. The task ends when the watch's sender (the store) is dropped.
pub(crate) fn spawn(
    url: &str,
    channel: String,
    versions: watch::Receiver<u64>,
) -> Result<JoinHandle<()>, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let secret = client
        .get_connection_info()
        .redis_settings()
        .password()
        .map(str::to_owned);
    let publisher = Publisher {
        client,
        channel,
        secret,
        conn: None,
    };
    Ok(tokio::spawn(publisher.run(versions)))
}

struct Publisher {
    client: redis::Client,
    channel: String,
    /// The URL's password, scrubbed from logged errors.
    secret: Option<String>,
    conn: Option<redis::aio::MultiplexedConnection>,
}

impl Publisher {
    async fn run(mut self, mut versions: watch::Receiver<u64>) {
        // Only versions committed from now on: the current one is old news.
        versions.borrow_and_update();
        // The delays still to wait while Redis is unreachable; `None` while it is fine.
        let mut retry: Option<ExponentialBackoff> = None;
        loop {
            match retry.as_mut() {
                // Nothing pending: wait for the next commit.
                None => {
                    if versions.changed().await.is_err() {
                        return;
                    }
                }
                // The last attempt failed: wait out the delay, following newer versions.
                Some(delays) => {
                    let delay = delays.next().unwrap_or(MAX_RETRY_DELAY);
                    let deadline = Instant::now() + delay;
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep_until(deadline) => break,
                            changed = versions.changed() => {
                                if changed.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
            let version = *versions.borrow_and_update();
            match self.publish(version).await {
                Ok(()) => {
                    if retry.take().is_some() {
                        tracing::info!(
                            channel = %self.channel,
                            version,
                            "publishing state versions to Redis again"
                        );
                    }
                }
                Err(error) => {
                    self.conn = None;
                    let error = self.scrub(&error);
                    match retry {
                        None => tracing::warn!(
                            channel = %self.channel,
                            %error,
                            "could not publish the state version to Redis; gateways fall back to polling"
                        ),
                        Some(_) => tracing::debug!(%error, "Redis still unreachable"),
                    }
                    retry.get_or_insert_with(|| {
                        backoff::reconnect(FIRST_RETRY_DELAY, MAX_RETRY_DELAY).build()
                    });
                }
            }
        }
    }

    /// One `PUBLISH`, connecting first if needed; every step is bounded by [`IO_TIMEOUT`].
    async fn publish(&mut self, version: u64) -> Result<(), String> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(IO_TIMEOUT))
                    .set_response_timeout(Some(IO_TIMEOUT));
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| format!("connecting: {e}"))?;
                self.conn.insert(conn)
            }
        };
        let mut command = redis::cmd("PUBLISH");
        command.arg(&self.channel).arg(version.to_string());
        match tokio::time::timeout(IO_TIMEOUT, command.query_async::<i64>(conn)).await {
            Ok(Ok(_receivers)) => Ok(()),
            Ok(Err(e)) => Err(format!("publishing: {e}")),
            Err(_) => Err("publishing: timed out".to_owned()),
        }
    }

    /// The error text without the URL's password, should the client ever quote it.
    fn scrub(&self, error: &str) -> String {
        match &self.secret {
            Some(secret) if !secret.is_empty() => error.replace(secret.as_str(), "***"),
            _ => error.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(is_redis_url("redis://127.0.0.1:6379"));
        assert!(is_redis_url("redis://:pw@cache.internal/2"));
        assert!(is_redis_url("redis://user:pw@cache.internal:6380"));
        assert!(!is_redis_url("rediss://cache.internal"));
        assert!(!is_redis_url("redis+unix:///tmp/redis.sock"));
        assert!(!is_redis_url("redis://"));
        assert!(!is_redis_url("redis://h:port"));
        assert!(!is_redis_url("cache.internal:6379"));
    }

    #[tokio::test]
    async fn logged_errors_hide_the_password() {
        let (_tx, rx) = watch::channel(0);
        let client = redis::Client::open("redis://:s3cret@127.0.0.1:1").unwrap();
        let publisher = Publisher {
            client,
            channel: "c".into(),
            secret: Some("s3cret".into()),
            conn: None,
        };
        assert_eq!(publisher.scrub("auth s3cret refused"), "auth *** refused");
        drop(rx);
        let mut publisher = publisher;
        let error = publisher.publish(1).await.unwrap_err();
        assert!(!publisher.scrub(&error).contains("s3cret"), "{error}");
    }
}
