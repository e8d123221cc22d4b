//! The entry point: [`Gateway::bind`] checks the configuration, loads the policies and binds
//! both listeners; [`Gateway::run`] starts the background tasks and serves until shutdown.

use crate::audit::{AuditDir, AuditSink, AuditWriter};
use crate::authn::OidcVerifier;
use crate::config::{parse_trusted_proxy, Config};
use crate::control::ControlClient;
use crate::limits::Limiter;
use crate::metrics::GatewayMetrics;
use crate::observe::{ObserveLayer, ObserveService};
use crate::pipeline::Pipeline;
use crate::policy_store::PolicyStore;
use crate::shared::Shared;
use crate::state::{ChangeFeed, ControlState};
use crate::upstream::{self, UpstreamBase};
use crate::{admin, server, tls};
use anyhow::Context as _;
use lakeward_common::assertion::{Audience, MasterSecret};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceBuilder;

/// What the gateway needs besides its configuration: secrets, upstream addresses, directories
/// and the metrics registry, all resolved by the binary.
pub struct GatewayDeps {
    /// PEM certificate chain of the TLS listener.
    pub tls_cert_pem: Vec<u8>,
    /// PEM private key of the TLS listener.
    pub tls_key_pem: Vec<u8>,
    /// The secret the per-upstream assertion keys are derived from.
    pub master_secret: MasterSecret,
    /// The control plane, `http://127.0.0.1:<port>`.
    pub control_url: String,
    /// The data-plane runtime, `http://127.0.0.1:<port>`.
    pub runtime_url: String,
    /// The Cedar schema and policies.
    pub policy_dir: PathBuf,
    /// Where audit files are written (created if missing).
    pub audit_dir: PathBuf,
    /// The registry the gateway's metrics are registered into and `/metrics` serves.
    pub registry: prometheus::Registry,
}

/// A bound, not yet running, gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    stack: ObserveService<Pipeline>,
    listener: TcpListener,
    admin_listener: TcpListener,
    local_addr: SocketAddr,
    admin_addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    registry: prometheus::Registry,
    writer: AuditWriter,
    feed: Option<ChangeFeed>,
    limiter: Arc<Limiter>,
}

impl Gateway {
    /// Validates the configuration (all problems at once), loads the policies (all problems
    /// with file:line:column), and binds both listeners. Starts nothing.
    pub async fn bind(config: Config, deps: GatewayDeps) -> anyhow::Result<Gateway> {
        if let Err(problems) = config.validate() {
            anyhow::bail!(
                "invalid gateway configuration:\n  {}",
                problems.join("\n  ")
            );
        }
        let tls = tls::server_config(&deps.tls_cert_pem, &deps.tls_key_pem)?;
        let metrics = GatewayMetrics::register(&deps.registry)
            .context("registering the gateway's metrics")?;
        let policies = PolicyStore::load(&deps.policy_dir, metrics.clone()).map_err(|errors| {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(
                "the policies in `{}` do not load:\n  {}",
                deps.policy_dir.display(),
                list.join("\n  ")
            )
        })?;
        tokio::fs::create_dir_all(&deps.audit_dir)
            .await
            .with_context(|| format!("creating audit directory `{}`", deps.audit_dir.display()))?;
        let (audit, writer) = AuditSink::channel(
            AuditDir(deps.audit_dir.clone()),
            config.audit_queue_capacity,
            metrics.audit_write_failures.clone(),
        );

        let client =
            upstream::http_client(Duration::from_millis(config.upstream_connect_timeout_ms));
        let control_base = UpstreamBase::parse(&deps.control_url)?;
        let runtime_base = UpstreamBase::parse(&deps.runtime_url)?;
        let control_key = deps.master_secret.key_for(Audience::Control);
        let runtime_key = deps.master_secret.key_for(Audience::Runtime);
        let feed = match &config.redis_url {
            // Connects when run: a Redis that is down now delays nothing (the gateway serves
            // degraded until it is up).
            Some(url) => Some(
                ChangeFeed::new(url, config.redis_channel.clone())
                    .context("configuring the Redis change feed")?,
            ),
            None => None,
        };
        let state = ControlState::new(
            ControlClient::new(&deps.control_url, control_key.clone()),
            Duration::from_secs(config.auth_cache_ttl_secs),
            config.default_workspace_id,
            metrics.snapshot_version.clone(),
            metrics.change_feed_healthy.clone(),
            feed.is_some(),
        )
        .with_lookup_bound(
            config.overload.max_control_lookups,
            metrics.load_shed.with_label_values(&["control_lookups"]),
        );
        let limiter = Arc::new(Limiter::new(&config, &metrics)?);
        let oidc = OidcVerifier::new(&config.oidc_issuers)?;
        let trusted_proxies = config
            .trusted_proxies
            .iter()
            .map(|entry| parse_trusted_proxy(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!(e))?;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding `{}`", config.listen))?;
        let admin_listener = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("binding admin `{}`", config.admin_listen))?;
        let local_addr = listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;

        let shared = Arc::new(Shared {
            config,
            trusted_proxies,
            state: Arc::new(state),
            policies: Arc::new(policies),
            client,
            control_base,
            runtime_base,
            control_key,
            runtime_key,
            audit,
            metrics,
        });
        let stack = ServiceBuilder::new()
            // Outermost: every outcome below, refused or forwarded, passes here exactly once,
            // so this is where errors become Databricks JSON, and where audit and metrics are
            // written.
            .layer(ObserveLayer::new(shared.clone()))
            .service(Pipeline::new(&shared, oidc, limiter.clone()));
        Ok(Gateway {
            shared,
            stack,
            listener,
            admin_listener,
            local_addr,
            admin_addr,
            tls,
            registry: deps.registry,
            writer,
            feed,
            limiter,
        })
    }

    /// The TLS listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains in-flight requests
    /// (bounded grace period from config), flushes audit, returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Gateway {
            shared,
            stack,
            listener,
            admin_listener,
            local_addr,
            admin_addr,
            tls,
            registry,
            writer,
            feed,
            limiter,
        } = self;
        tracing::info!(%local_addr, %admin_addr, "gateway serving");
        // A plain thread, not `spawn_blocking`: a writer stuck on a wedged disk must not keep
        // the runtime from shutting down.
        let (writer_done_tx, writer_done) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                writer.run();
                let _ = writer_done_tx.send(());
            })
            .context("starting the audit writer")?;

        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });

        let mut background = JoinSet::new();
        // Loads the first snapshot with retries (readyz waits for it), then long-polls unless
        // Redis is to be the only change feed.
        background.spawn(shared.state.clone().watch(shared.config.control_long_poll));
        if let Some(feed) = feed {
            background.spawn(feed.run(shared.state.clone()));
        }
        background.spawn(
            shared
                .policies
                .clone()
                .watch(Duration::from_millis(shared.config.policy_poll_interval_ms)),
        );
        // The rate limiter's Redis connection, and its rules file.
        background.spawn(limiter.run(Duration::from_millis(shared.config.policy_poll_interval_ms)));
        let admin_task = tokio::spawn(admin::serve(
            admin_listener,
            shared.clone(),
            registry,
            stop_rx.clone(),
        ));

        server::serve(
            listener,
            TlsAcceptor::from(tls),
            shared.clone(),
            stack,
            stop_rx,
        )
        .await;

        background.abort_all();
        while background.join_next().await.is_some() {}
        let _ = admin_task.await;
        let flushed = tokio::time::timeout(Duration::from_secs(5), shared.audit.flush()).await;
        if flushed != Ok(true) {
            tracing::error!("audit log could not be flushed at shutdown");
        }
        // The last sender goes with `shared`; the writer then finishes and exits.
        drop(shared);
        if tokio::time::timeout(Duration::from_secs(5), writer_done)
            .await
            .is_err()
        {
            tracing::error!("audit writer did not finish in time");
        }
        tracing::info!("gateway stopped");
        Ok(())
    }
}
