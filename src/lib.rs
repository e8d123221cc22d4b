//! The `lakeward` process: composes the gateway (`lakeward-proxy`), the control plane
//! (`lakeward-control`) and the data plane (`lakeward-runtime`) into one program. `serve` runs
//! all three on one machine; the gateway reaches the other two over loopback sockets with a
//! signed identity assertion, exactly as it would across machines.
//!
//! [`start`] is what both `lakeward serve` and the end-to-end tests call, so the tests run the
//! same wiring users run.

pub mod config;
pub mod data_dir;

use anyhow::Context;
use config::Config;
use data_dir::DataDir;
use lakeward_common::assertion::Audience;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running Lakeward: addresses to reach it and the handle to stop it.
pub struct Running {
    /// The TLS gateway, the only public entry point.
    pub gateway_addr: SocketAddr,
    /// Metrics, health and readiness.
    pub admin_addr: SocketAddr,
    /// The control plane's loopback listener (reachable only with an assertion).
    pub control_addr: SocketAddr,
    /// The runtime's loopback listener (reachable only with an assertion).
    pub runtime_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// The CA that issued the gateway's certificate; clients trust this file.
    pub ca_cert: PathBuf,
    pub account_id: String,
    pub default_workspace_id: i64,
    /// The bootstrap admin's token when this run created it (first run only).
    pub new_admin_token: Option<String>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Drains in-flight requests and stops every part.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await.context("lakeward task failed")?
    }

    /// Runs until `signal` resolves, then drains and stops.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let shutdown = self.shutdown;
        let mut task = self.task;
        tokio::select! {
            () = signal => {
                let _ = shutdown.send(true);
                task.await.context("lakeward task failed")?
            }
            ended = &mut task => ended.context("lakeward task failed")?,
        }
    }

    /// The bootstrap admin's token, from `<data_dir>/admin-token`.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        let path = self.data_dir.join("admin-token");
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read `{}`", path.display()))?
            .trim()
            .to_owned())
    }
}

/// Names the gateway's certificate must cover: loopback, the listen address and configured names.
fn server_names(config: &Config) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let ip = config.gateway.listen.ip();
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    names.extend(config.gateway.server_names.iter().cloned());
    if let Some(domain) = &config.gateway.workspace_domain {
        names.push(format!("*.{domain}"));
    }
    names
}

/// Resolves once `rx` says stop.
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts every part: creates or reuses the data directory, bootstraps the control plane, binds
/// the internal listeners and the gateway. Returns once all listeners are bound; readiness
/// (`/readyz`) follows when the gateway has loaded the control plane's state.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let dir = DataDir::open(&config.data_dir)?;
    let data_dir = std::fs::canonicalize(dir.root())?;
    let master = dir.master_secret()?;
    let tls = dir.tls_material(&server_names(&config))?;
    let policy_dir = gateway_policy_dir(&config, &dir)?;
    let audit_dir = gateway_audit_dir(&config, &dir);
    let control = open_control(&config, &dir, &master).await?;
    let bootstrap = control
        .bootstrap(&config.bootstrap.admin_user_name)
        .await
        .context("cannot bootstrap the control plane")?;
    if let Some(token) = &bootstrap.admin_token {
        dir.write_admin_token(token)?;
    }
    let control_listener = bind(config.internal.control_listen).await?;
    let runtime_listener = bind(config.internal.runtime_listen).await?;
    let control_addr = control_listener.local_addr()?;
    let runtime_addr = runtime_listener.local_addr()?;
    let runtime = lakeward_runtime::Runtime::new(lakeward_runtime::RuntimeDeps {
        key: master.key_for(Audience::Runtime),
        data_plane_key: master.key_for(Audience::DataPlane),
        control_url: format!("http://{}", http_authority(control_addr)),
        data_dir: data_dir.clone(),
        config: config.runtime.clone(),
    })
    .context("cannot start the runtime")?;

    let mut gateway_config = config.gateway.clone();
    // Bare paths mean the workspace bootstrap created, not whichever has the lowest id.
    gateway_config
        .default_workspace_id
        .get_or_insert(bootstrap.default_workspace_id);
    let gateway = lakeward_proxy::Gateway::bind(
        gateway_config,
        lakeward_proxy::GatewayDeps {
            tls_cert_pem: tls.cert_pem,
            tls_key_pem: tls.key_pem,
            master_secret: master,
            control_url: format!("http://{}", http_authority(control_addr)),
            runtime_url: config
                .upstreams
                .runtime_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", http_authority(runtime_addr))),
            policy_dir,
            audit_dir,
            registry: prometheus::Registry::new(),
        },
    )
    .await?;
    let gateway_addr = gateway.local_addr();
    let admin_addr = gateway.admin_addr();

    let (shutdown, rx) = watch::channel(false);
    // The upstreams stop only after the gateway has drained, so that requests already
    // forwarded get their answers.
    let (upstreams_stop, upstreams_rx) = watch::channel(false);
    let control_task = tokio::spawn(control.serve(control_listener, stopped(upstreams_rx.clone())));
    let runtime_task = tokio::spawn(runtime.serve(runtime_listener, stopped(upstreams_rx)));
    let task = tokio::spawn(async move {
        let gateway_result = gateway.run(stopped(rx)).await;
        let _ = upstreams_stop.send(true);
        let control_result = control_task.await.context("control plane task failed")?;
        let runtime_result = runtime_task.await.context("runtime task failed")?;
        gateway_result?;
        control_result?;
        runtime_result
    });

    Ok(Running {
        gateway_addr,
        admin_addr,
        control_addr,
        runtime_addr,
        ca_cert: data_dir.join("ca.pem"),
        data_dir,
        account_id: bootstrap.account_id,
        default_workspace_id: bootstrap.default_workspace_id,
        new_admin_token: bootstrap.admin_token,
        shutdown,
        task,
    })
}

/// Which parts one process runs. `All` is `lakeward serve`; the others let each part run in
/// its own process (or machine), reaching the others over the network. They share the data
/// directory's secrets: copy `identity.key` (and, for the gateway, the certificate and
/// policies) to every machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    All,
    Gateway,
    Control,
    Runtime,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Role::All),
            "gateway" => Ok(Role::Gateway),
            "control" => Ok(Role::Control),
            "runtime" => Ok(Role::Runtime),
            other => Err(format!(
                "`{other}` is not a role: all, gateway, control or runtime"
            )),
        }
    }
}

/// One part running alone: what to tell the operator, and the handle to stop it.
pub struct RunningPart {
    /// Lines for the operator: where the part listens.
    pub hint: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningPart {
    /// Runs until `signal` resolves, then drains and stops.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let mut task = self.task;
        tokio::select! {
            () = signal => {
                let _ = self.shutdown.send(true);
                task.await.context("lakeward task failed")?
            }
            ended = &mut task => ended.context("lakeward task failed")?,
        }
    }
}

/// Starts one part alone. `Role::All` is [`start`].
pub async fn start_part(config: Config, role: Role) -> anyhow::Result<RunningPart> {
    let dir = DataDir::open(&config.data_dir)?;
    let master = dir.master_secret()?;
    let (shutdown, rx) = watch::channel(false);
    let (hint, task) = match role {
        Role::All => anyhow::bail!("`all` runs every part: use `start`"),
        Role::Control => {
            let control = open_control(&config, &dir, &master).await?;
            let bootstrap = control
                .bootstrap(&config.bootstrap.admin_user_name)
                .await
                .context("cannot bootstrap the control plane")?;
            if let Some(token) = &bootstrap.admin_token {
                dir.write_admin_token(token)?;
            }
            let listener = bind(config.internal.control_listen).await?;
            let hint = format!(
                "Lakeward control plane listening on http://{} (account {}, default workspace {})\n",
                http_authority(listener.local_addr()?),
                bootstrap.account_id,
                bootstrap.default_workspace_id
            );
            (hint, tokio::spawn(control.serve(listener, stopped(rx))))
        }
        Role::Runtime => {
            let Some(control_url) = config.upstreams.control_url.clone() else {
                anyhow::bail!("--role runtime needs upstreams.control_url (the control plane's http://host:port)");
            };
            let runtime = lakeward_runtime::Runtime::new(lakeward_runtime::RuntimeDeps {
                key: master.key_for(Audience::Runtime),
                data_plane_key: master.key_for(Audience::DataPlane),
                control_url,
                data_dir: dir.root().to_path_buf(),
                config: config.runtime.clone(),
            })
            .context("cannot start the runtime")?;
            let listener = bind(config.internal.runtime_listen).await?;
            let hint = format!(
                "Lakeward runtime listening on http://{}\n",
                http_authority(listener.local_addr()?)
            );
            (hint, tokio::spawn(runtime.serve(listener, stopped(rx))))
        }
        Role::Gateway => {
            let (Some(control_url), Some(runtime_url)) = (
                config.upstreams.control_url.clone(),
                config.upstreams.runtime_url.clone(),
            ) else {
                anyhow::bail!(
                    "--role gateway needs upstreams.control_url and upstreams.runtime_url"
                );
            };
            let tls = dir.tls_material(&server_names(&config))?;
            let gateway = lakeward_proxy::Gateway::bind(
                config.gateway.clone(),
                lakeward_proxy::GatewayDeps {
                    tls_cert_pem: tls.cert_pem,
                    tls_key_pem: tls.key_pem,
                    master_secret: master,
                    control_url,
                    runtime_url,
                    policy_dir: gateway_policy_dir(&config, &dir)?,
                    audit_dir: gateway_audit_dir(&config, &dir),
                    registry: prometheus::Registry::new(),
                },
            )
            .await?;
            let hint = format!(
                "Lakeward gateway serving on https://{} (admin http://{})\n",
                http_authority(gateway.local_addr()),
                http_authority(gateway.admin_addr())
            );
            (hint, tokio::spawn(gateway.run(stopped(rx))))
        }
    };
    Ok(RunningPart {
        hint,
        shutdown,
        task,
    })
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

fn gateway_policy_dir(config: &Config, dir: &DataDir) -> anyhow::Result<PathBuf> {
    match &config.gateway.policy_dir {
        Some(dir) => Ok(dir.clone()),
        None => dir.seed_policies(),
    }
}

fn gateway_audit_dir(config: &Config, dir: &DataDir) -> PathBuf {
    config
        .gateway
        .audit_dir
        .clone()
        .unwrap_or_else(|| dir.audit())
}

async fn open_control(
    config: &Config,
    dir: &DataDir,
    master: &lakeward_common::assertion::MasterSecret,
) -> anyhow::Result<lakeward_control::ControlPlane> {
    let mut control_config = config.control.clone();
    if control_config.workspace_domain.is_none() {
        control_config
            .workspace_domain
            .clone_from(&config.gateway.workspace_domain);
    }
    control_config.policy_dir = Some(gateway_policy_dir(config, dir)?);
    lakeward_control::ControlPlane::open(
        &control_config,
        dir.root(),
        lakeward_control::ControlKeys {
            control: master.key_for(Audience::Control),
            data_plane: master.key_for(Audience::DataPlane),
        },
    )
    .await
    .context("cannot open the control plane's store")
}

fn http_authority(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
    }
}

/// The lines `serve` prints once it is up. The `curl` line must work when pasted.
pub fn startup_hint(running: &Running) -> String {
    let host = match running.gateway_addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        ip => http_authority(SocketAddr::new(ip, 0))
            .trim_end_matches(":0")
            .to_owned(),
    };
    let base = format!("https://{host}:{}", running.gateway_addr.port());
    let dir = running.data_dir.display();
    let mut out = String::new();
    out.push_str(&format!("Lakeward is serving on {base}\n"));
    out.push_str(&format!("  account:   {}\n", running.account_id));
    out.push_str(&format!(
        "  workspace: {} (default; also at {base}/w/{})\n",
        running.default_workspace_id, running.default_workspace_id
    ));
    out.push_str(&format!(
        "  admin:     http://{}/metrics, /healthz, /readyz\n",
        http_authority(running.admin_addr)
    ));
    out.push_str(&format!("  CA:        {dir}/ca.pem\n"));
    if let Some(token) = &running.new_admin_token {
        out.push_str(&format!(
            "\nBootstrap admin token (shown once; kept in {dir}/admin-token): {token}\n"
        ));
    }
    out.push_str(&format!(
        "\nTry:\n  curl --cacert {dir}/ca.pem -H \"Authorization: Bearer $(cat {dir}/admin-token)\" {base}/api/2.0/preview/scim/v2/Me\n"
    ));
    out.push_str(&format!(
        "\nPython SDK:\n  DATABRICKS_HOST={base} DATABRICKS_TOKEN=$(cat {dir}/admin-token) REQUESTS_CA_BUNDLE={dir}/ca.pem python3 -c 'from databricks.sdk import WorkspaceClient; print(WorkspaceClient().current_user.me().user_name)'\n"
    ));
    out
}
