//! The Lakeward control plane: the Databricks-style account and workspace administration API
//! (workspaces, personal access tokens, IP access lists, workspace-conf, SCIM users, service
//! principals and groups, the current user, warehouse permissions) and the internal API the
//! gateway uses to authenticate callers and admit requests (token and principal resolution, a
//! snapshot of workspaces and IP access lists, a change feed).
//!
//! It is also the data plane's system of record ([`lakeward_common::data`]): SQL warehouses and
//! the lake's catalog, which the runtime reads and writes with assertions verified with a key
//! of their own ([`ControlKeys::data_plane`]), accepted on those routes only.
//!
//! It listens on loopback, in plain HTTP, behind the gateway (`proxy`). The gateway
//! authenticates and authorizes every call and adds a signed identity assertion
//! ([`lakeward_common::assertion`]); this crate refuses any request whose assertion does not
//! verify, and takes the caller's identity from it and nothing else. Authorization is the
//! gateway's job, but the admin-only APIs check admin group membership again here, as defence
//! in depth.
//!
//! State lives in a SQL store (the `store` module): SQLite for a single replica, or PostgreSQL
//! shared by several replicas. Every response carries the store's state version
//! ([`lakeward_common::internal::STATE_VERSION_HEADER`]), a counter incremented in the same
//! transaction as every change the gateway caches, so a gateway that sees a newer version
//! knows to drop its caches before the caller's next request.
//!
//! With `redis_url` configured, each commit's version is also published on Redis
//! ([`lakeward_common::internal::STATE_VERSION_CHANNEL`]) by a background task (`fanout`), so
//! gateways hear of changes at once; this is best effort and never fails a request.
//!
//! **Architecture Invariant:** token values are never stored or logged; only their hashes
//! ([`lakeward_common::token::hash_token`]) are kept.
//!
//! **Architecture Invariant:** errors become HTTP responses in one place,
//! `impl IntoResponse for ControlError`; internal details (SQL, store errors) are logged and
//! never sent.

mod api;
mod config;
mod error;
mod fanout;
mod store;
#[cfg(test)]
mod test_support;

pub use config::Config;
pub use error::ControlError;

/// Every route the control plane serves (public and internal), for the check that the gateway
/// routes each public one to an action the schema declares.
pub fn route_table() -> Vec<lakeward_frame::server::RouteEntry> {
    api::routes().table().to_vec()
}

use anyhow::Context;
use lakeward_common::assertion::{AssertionKey, Audience};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use store::Store;

/// What [`ControlPlane::bootstrap`] found or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The account's id (a UUID).
    pub account_id: String,
    /// The id of the workspace created at first run (named `default`).
    pub default_workspace_id: i64,
    /// The bootstrap admin's personal access token, present only on the run that created it.
    /// It is shown once and cannot be recovered: only its hash is stored.
    pub admin_token: Option<String>,
}

/// The assertion keys the control plane verifies with. `Debug` shows no key material (each
/// key's is held in a secret box).
#[derive(Clone, Debug)]
pub struct ControlKeys {
    /// [`Audience::Control`]: the gateway's assertions, for the public API and the gateway's
    /// internal API.
    pub control: AssertionKey,
    /// [`Audience::DataPlane`]: the runtime's assertions, accepted only on the data-plane
    /// internal API ([`lakeward_common::data`]) and the two gateway routes the runtime shares.
    pub data_plane: AssertionKey,
}

/// An open control plane: its store and the HTTP API over it.
#[derive(Debug)]
pub struct ControlPlane {
    state: api::AppState,
}

impl ControlPlane {
    /// Validates `config`, opens the store (creating the SQLite file in `data_dir` when no
    /// database URL is configured) and applies migrations. `keys` must hold the assertion keys
    /// of the control and data-plane audiences.
    pub async fn open(
        config: &Config,
        data_dir: &Path,
        keys: ControlKeys,
    ) -> anyhow::Result<ControlPlane> {
        Self::open_with_channel(config, data_dir, keys, &config.redis_channel).await
    }

    /// [`ControlPlane::open`], publishing versions on `channel` instead of the configured
    /// `redis_channel` (tests use their own).
    pub(crate) async fn open_with_channel(
        config: &Config,
        data_dir: &Path,
        keys: ControlKeys,
        channel: &str,
    ) -> anyhow::Result<ControlPlane> {
        if let Err(problems) = config.validate() {
            anyhow::bail!("invalid control configuration: {}", problems.join("; "));
        }
        if keys.control.audience() != Audience::Control {
            anyhow::bail!("the control plane needs the assertion key of the control audience");
        }
        if keys.data_plane.audience() != Audience::DataPlane {
            anyhow::bail!("the control plane needs the assertion key of the data-plane audience");
        }
        let url = match &config.database_url {
            Some(url) => url.clone(),
            None => sqlite_url(data_dir)?,
        };
        let store = Store::open(
            &url,
            config.max_connections,
            Duration::from_secs(config.acquire_timeout_secs),
        )
        .await
        // The URL may hold a password: name the backend, never the URL.
        .context("opening the control-plane store")?;
        if let Some(url) = &config.redis_url {
            // Connects lazily: a Redis that is down now delays nothing.
            fanout::spawn(url, channel.to_owned(), store.subscribe())
                .context("configuring the Redis publisher")?;
            tracing::info!(channel, "publishing state versions to Redis");
        }
        Ok(ControlPlane {
            state: api::AppState::new(Arc::new(store), keys, config.clone()),
        })
    }

    /// Idempotent first-run setup. On the first run it creates, in one transaction, the
    /// account (a UUID), the default workspace (a random 16-digit id, name and deployment name
    /// `default`, status `RUNNING`) with its `admins` and `users` groups, the account-level
    /// `admins` group, the admin user `admin_user_name` (a member of all three groups) and a
    /// personal access token for it with no expiry (comment `bootstrap`), whose value it
    /// returns. Later runs create nothing and return the same ids with no token.
    pub async fn bootstrap(&self, admin_user_name: &str) -> anyhow::Result<Bootstrap> {
        let name = admin_user_name.trim();
        if name.is_empty() {
            anyhow::bail!("the bootstrap admin user name must not be empty");
        }
        let done = store::accounts::bootstrap(self.state.store(), name)
            .await
            .context("bootstrapping the control plane")?;
        Ok(Bootstrap {
            account_id: done.account.account_id,
            default_workspace_id: done.account.default_workspace_id,
            admin_token: done.admin_token,
        })
    }

    /// The HTTP API: every public and internal route, with the assertion check and the
    /// state-version header.
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Serves the API on `listener` until `shutdown` resolves, then stops accepting, ends
    /// pending long-polls at once and waits for in-flight requests to finish.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let router = self.router();
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                state.begin_shutdown();
            })
            .await
            .context("serving the control-plane API")?;
        self.state.store().close().await;
        Ok(())
    }
}

/// The SQLite URL of `<data_dir>/control.db`, created if missing. The path is
/// percent-encoded because sqlx reads `?` as the start of the options and decodes `%`.
fn sqlite_url(data_dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let dir = data_dir
        .canonicalize()
        .with_context(|| format!("resolving the data directory {}", data_dir.display()))?;
    let path = dir.join("control.db");
    let path = path
        .to_str()
        .context("the data directory path is not valid UTF-8")?;
    let mut encoded = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"/._-~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(format!("sqlite://{encoded}?mode=rwc"))
}
