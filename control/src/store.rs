//! The control plane's durable state, behind one sqlx [`AnyPool`] so that the same code runs on
//! SQLite (one replica, a file in the data directory) and on PostgreSQL (several replicas
//! sharing a database).
//!
//! **State version.** One row of `state_version` counts committed changes. Every write opens
//! its transaction with [`Store::begin_write`], whose first statement increments that row.
//! This does two things at once: the new version commits atomically with the change it
//! announces (a rolled-back change leaves no trace), and, since every writer on every replica
//! must first lock that row, all writes are serialized. Reads made inside a write transaction
//! (quota counts, the lockout guard's view of the lists) therefore see every earlier commit and
//! cannot be overtaken by a concurrent writer. After a commit the new version is published on a
//! `watch` channel so long-polls in this process wake at once; other replicas notice it by
//! polling.
//!
//! The submodules hold the queries, each as a function over `&mut AnyConnection`, so the same
//! query serves a plain read and a step inside a write transaction.

pub(crate) mod accounts;
pub(crate) mod catalog;
pub(crate) mod directory;
pub(crate) mod ip_lists;
mod migrations;
pub(crate) mod permissions;
pub(crate) mod principals;
pub(crate) mod settings;
pub(crate) mod tokens;
pub(crate) mod warehouses;
pub(crate) mod workspaces;

#[cfg(test)]
mod tests;

use rand::Rng;
use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Executor, Transaction};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Which database is behind the pool; a few statements differ (transaction start, locks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The open store.
pub(crate) struct Store {
    pool: AnyPool,
    backend: Backend,
    version_tx: watch::Sender<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects, configures SQLite for durability and migrates.
    pub(crate) async fn open(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Store, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout);
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer. synchronous=EXTRA fsyncs the WAL
                    // at every commit, as FULL does, so an acknowledged write survives kill -9
                    // and power loss; should SQLite keep a rollback journal (a filesystem
                    // where WAL cannot be had), EXTRA also syncs the directory after the
                    // journal is deleted, which FULL does not.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = EXTRA").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        migrations::run(&pool, backend).await?;
        let mut conn = pool.acquire().await?;
        let version = read_version(&mut conn).await?;
        drop(conn);
        let (version_tx, _) = watch::channel(version);
        Ok(Store {
            pool,
            backend,
            version_tx,
        })
    }

    /// Which database this is.
    #[cfg(test)]
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// A pooled connection for reads.
    pub(crate) async fn conn(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// A read-only transaction that sees one consistent snapshot of the whole store (the
    /// gateway snapshot must not mix data from before and after a concurrent commit).
    pub(crate) async fn begin_read(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            // A SQLite read transaction in WAL mode reads one snapshot once it has started.
            Backend::Sqlite => self.pool.begin().await,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
        }
    }

    /// Starts a write: opens a transaction and increments the state version in it (see the
    /// module documentation for why this comes first).
    pub(crate) async fn begin_write(&self) -> Result<WriteTx<'_>, sqlx::Error> {
        let mut tx = match self.backend {
            // IMMEDIATE takes SQLite's write lock now, waiting on busy_timeout, rather than
            // failing later when a read lock would have to be upgraded.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        let version: i64 = sqlx::query_scalar(
            "UPDATE state_version SET version = version + 1 WHERE id = 1 RETURNING version",
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(WriteTx {
            tx,
            version: u64::try_from(version).unwrap_or(0),
            store: self,
        })
    }

    /// The committed state version, read from the store (so it includes other replicas'
    /// changes).
    pub(crate) async fn version(&self) -> Result<u64, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let version = read_version(&mut conn).await?;
        self.publish(version);
        Ok(version)
    }

    /// The latest version this process knows of, without touching the store.
    pub(crate) fn known_version(&self) -> u64 {
        *self.version_tx.borrow()
    }

    /// A receiver that changes whenever this process learns of a newer version.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version_tx.subscribe()
    }

    /// Whether the store answers.
    pub(crate) async fn ping(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        Ok(())
    }

    /// Closes every connection (on SQLite this also checkpoints the WAL).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    fn publish(&self, version: u64) {
        self.version_tx.send_if_modified(|known| {
            if version > *known {
                *known = version;
                true
            } else {
                false
            }
        });
    }
}

pub(crate) async fn read_version(conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
    let version: i64 = sqlx::query_scalar("SELECT version FROM state_version WHERE id = 1")
        .fetch_one(conn)
        .await?;
    Ok(u64::try_from(version).unwrap_or(0))
}

/// An open write transaction holding the next state version. Dropping it without
/// [`WriteTx::commit`] rolls everything back, version included.
pub(crate) struct WriteTx<'s> {
    tx: Transaction<'static, Any>,
    version: u64,
    store: &'s Store,
}

impl WriteTx<'_> {
    /// The connection to run the transaction's statements on.
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// The state version this transaction will commit.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Rolls back (the version increment too), at once rather than when the connection is
    /// next used, so that SQLite's write lock is released now.
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// Commits and announces the new version to this process's waiters.
    pub(crate) async fn commit(self) -> Result<u64, sqlx::Error> {
        self.tx.commit().await?;
        self.store.publish(self.version);
        Ok(self.version)
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A new numeric id of 16 decimal digits, the shape of Databricks' workspace, user and group
/// ids. 9·10^15 values make a collision negligible; the primary key would refuse one anyway.
pub(crate) fn new_numeric_id() -> i64 {
    rand::thread_rng().gen_range(1_000_000_000_000_000..10_000_000_000_000_000)
}

/// A new token id: 64 hex digits, the shape of Databricks' token ids. Random, so it reveals
/// nothing about the token value.
pub(crate) fn new_token_id() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill(&mut bytes);
    hex::encode(bytes)
}

/// `1`/`0` for booleans, which are stored as `BIGINT` on both databases.
pub(crate) fn flag(value: bool) -> i64 {
    i64::from(value)
}
