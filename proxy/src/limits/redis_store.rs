//! Counters shared by every gateway replica, in Redis. One decision is one round trip: a Lua
//! script ([`SCRIPT`], run with `EVALSHA`) that reads every counter of the request, applies
//! GCRA (the same arithmetic as [`super::gcra`]) with Redis's own clock, and writes them back
//! only if every one allows, atomically (Redis runs a script with nothing in between). Redis's
//! clock rather than each replica's, so replicas whose clocks differ still share one budget.
//!
//! The connection is kept by [`RedisStore::maintain`]: connect, load the script, hand the
//! connection to requests, and when a request finds it broken, connect again after a growing,
//! jittered delay. Meanwhile decisions do not wait for Redis: they are answered `Unavailable`
//! at once and the caller applies its fallback. An outage is logged when it starts and when it
//! ends; the URL (it may hold a password) never is.

use super::gcra::{Decision, Gcra};
use crate::redis_target::RedisTarget;
use arc_swap::ArcSwapOption;
use backon::BackoffBuilder;
use prometheus::IntGauge;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// KEYS: the counters. ARGV: for each counter, its interval and tolerance in microseconds.
/// Returns `{allowed (0/1), wait in microseconds, index (from 0) of the refusing counter}` as
/// [`Decision`] means them. TATs are kept
/// as integer microseconds of Redis's clock (exact in Lua's doubles until the year 2255), each
/// key expiring when its TAT passes, so idle counters cost nothing.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local refused, refused_by, next, tats = 0, 0, 0, {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local ahead = new_tat - now
  if ahead > tolerance then
    if ahead - tolerance > refused then
      refused = ahead - tolerance
      refused_by = i - 1
    end
  else
    local wait = ahead + interval - tolerance
    if wait > next then next = wait end
    tats[i] = new_tat
  end
end
if refused > 0 then return {0, refused, refused_by} end
for i = 1, #KEYS do
  local ttl_ms = math.floor((tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl_ms)
end
return {1, next, 0}
";

/// The first delay before connecting again; it doubles on each failure up to the longest.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// How long connecting (and loading the script) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Redis could not decide (not connected, an error, or no answer in time).
#[derive(Debug)]
pub(crate) struct Unavailable;

struct Connected {
    /// Which connection this is, so a failure seen on an old one does not drop a new one.
    id: u64,
    conn: MultiplexedConnection,
    sha: String,
}

/// The shared counters.
pub(crate) struct RedisStore {
    redis: RedisTarget,
    current: ArcSwapOption<Connected>,
    next_id: AtomicU64,
    broken: Notify,
    timeout: Duration,
    /// `gateway_rate_limit_redis_up`.
    up: IntGauge,
}

impl RedisStore {
    /// A store on the Redis at `url`; connects only when maintained.
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        up: IntGauge,
    ) -> Result<RedisStore, redis::RedisError> {
        let redis = RedisTarget::open(url)?;
        up.set(0);
        Ok(RedisStore {
            redis,
            current: ArcSwapOption::empty(),
            next_id: AtomicU64::new(1),
            broken: Notify::new(),
            timeout,
            up,
        })
    }

    /// One decision over `keys`, or [`Unavailable`] without waiting when not connected.
    pub(crate) async fn decide(&self, keys: &[(String, Gcra)]) -> Result<Decision, Unavailable> {
        let Some(connected) = self.current.load_full() else {
            return Err(Unavailable);
        };
        let mut conn = connected.conn.clone();
        let mut call = redis::cmd("EVALSHA");
        call.arg(&connected.sha);
        add_arguments(&mut call, keys);
        let answer = match tokio::time::timeout(
            self.timeout,
            call.query_async::<(i64, i64, i64)>(&mut conn),
        )
        .await
        {
            // Redis lost its scripts (restarted behind a proxy, `SCRIPT FLUSH`): send the text,
            // which also caches it again.
            Ok(Err(e)) if e.code() == Some("NOSCRIPT") => {
                let mut call = redis::cmd("EVAL");
                call.arg(SCRIPT);
                add_arguments(&mut call, keys);
                tokio::time::timeout(self.timeout, call.query_async::<(i64, i64, i64)>(&mut conn))
                    .await
            }
            other => other,
        };
        match answer {
            Ok(Ok((allowed, wait_us, refused_by))) => Ok(Decision {
                allowed: allowed == 1_i64,
                wait: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0_u64)),
                refused_by: usize::try_from(refused_by).unwrap_or(0_usize),
            }),
            Ok(Err(e)) => {
                self.lost(connected.id, &self.redis.scrub(&e.to_string()));
                Err(Unavailable)
            }
            Err(_) => {
                self.lost(connected.id, "no answer in time");
                Err(Unavailable)
            }
        }
    }

    /// Stops using connection `id` and wakes the maintainer to make a new one.
    fn lost(&self, id: u64, why: &str) {
        let current = self.current.load();
        if current.as_ref().is_some_and(|c| c.id == id) {
            self.current.store(None);
            self.up.set(0);
            tracing::warn!(
                error = why,
                "Redis for rate limits failed; reconnecting (limits use their fallback meanwhile)"
            );
            self.broken.notify_one();
        }
    }

    /// Keeps a connection up, forever (aborted with the gateway's background tasks).
    pub(crate) async fn maintain(&self) {
        let mut delays = delays();
        let mut outage = false;
        loop {
            match self.connect().await {
                Ok(connected) => {
                    if outage {
                        tracing::info!("Redis for rate limits reachable again");
                    }
                    outage = false;
                    delays = self::delays();
                    self.current.store(Some(Arc::new(connected)));
                    self.up.set(1);
                    self.broken.notified().await;
                }
                Err(e) => {
                    if !outage {
                        tracing::warn!(
                            error = %self.redis.scrub(&e.to_string()),
                            "Redis for rate limits unreachable; limits use their fallback until it is back"
                        );
                        outage = true;
                    }
                    tokio::time::sleep(delays.next().unwrap_or(MAX_RETRY_DELAY)).await;
                }
            }
        }
    }

    async fn connect(&self) -> redis::RedisResult<Connected> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let mut conn = self
            .redis
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(SCRIPT)
            .query_async(&mut conn)
            .await?;
        Ok(Connected {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            conn,
            sha,
        })
    }
}

fn delays() -> backon::ExponentialBackoff {
    lakeward_frame::backoff::reconnect(FIRST_RETRY_DELAY, MAX_RETRY_DELAY).build()
}

fn add_arguments(call: &mut redis::Cmd, keys: &[(String, Gcra)]) {
    call.arg(keys.len());
    for (key, _) in keys {
        call.arg(key);
    }
    for (_, gcra) in keys {
        call.arg(gcra.interval_us).arg(gcra.tolerance_us);
    }
}
