//! The one TOML file that configures a whole Lakeward process. Each crate owns its section's
//! struct (`[gateway]`, `[control]`, `[runtime]`); this file only composes them and adds what
//! belongs to the process (data directory, bootstrap, internal listeners). Every field has a
//! default, unknown keys are rejected, and [`Config::validate`] reports every problem at once,
//! before any port is bound.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole process configuration. See `deploy/lakeward.example.toml` for every field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where Lakeward keeps its state: TLS material, the control plane's SQLite store, the
    /// bootstrap admin token, policies and audit logs. Created on first run.
    pub data_dir: PathBuf,
    /// First-run setup.
    pub bootstrap: BootstrapConfig,
    /// Loopback listeners of the control plane and the runtime. The gateway reaches them over
    /// these sockets, never in-process.
    pub internal: InternalConfig,
    /// Where the gateway sends calls, when not to this process's own services.
    pub upstreams: UpstreamsConfig,
    /// The TLS gateway.
    pub gateway: lakeward_proxy::Config,
    /// The control plane.
    pub control: lakeward_control::Config,
    /// The data plane.
    pub runtime: lakeward_runtime::Config,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("lakeward-data"),
            bootstrap: BootstrapConfig::default(),
            internal: InternalConfig::default(),
            upstreams: UpstreamsConfig::default(),
            gateway: lakeward_proxy::Config::default(),
            control: lakeward_control::Config::default(),
            runtime: lakeward_runtime::Config::default(),
        }
    }
}

/// First-run setup.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapConfig {
    /// The `userName` of the account admin created on first run. Its personal access token is
    /// written to `<data_dir>/admin-token` (mode 0600) and printed once.
    pub admin_user_name: String,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            admin_user_name: "admin@lakeward.local".into(),
        }
    }
}

/// Where the control plane and the runtime listen for the gateway. Keep both on loopback (or a
/// private network): they trust only the gateway's identity assertion, but there is no reason
/// to expose them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalConfig {
    /// The control plane's listener. Port 0 picks a free port.
    pub control_listen: SocketAddr,
    /// The runtime's listener. Port 0 picks a free port.
    pub runtime_listen: SocketAddr,
}

impl Default for InternalConfig {
    fn default() -> Self {
        let loopback_any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        InternalConfig {
            control_listen: loopback_any_port,
            runtime_listen: loopback_any_port,
        }
    }
}

/// Upstream overrides: for a data plane that runs elsewhere (several runtime machines behind a
/// load balancer, say), and for benchmarks that put a fixed responder behind the gateway.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamsConfig {
    /// `http://host:port` of the data plane. Unset: the runtime this process starts.
    /// Required with `serve --role gateway`.
    pub runtime_url: Option<String>,
    /// `http://host:port` of the control plane, for `serve --role gateway` (a gateway whose
    /// control plane runs in another process). Ignored when this process runs the control plane.
    pub control_url: Option<String>,
}

impl Config {
    /// Reads and parses a TOML file. Syntax errors and unknown keys come back with their line.
    pub fn from_file(path: &Path) -> Result<Config, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("cannot read `{}`: {e}", path.display())])?;
        Self::from_toml(&text).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| format!("{}: {e}", path.display()))
                .collect()
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, Vec<String>> {
        toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().to_owned()])
    }

    /// Every problem of every section, prefixed with the section's name.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir: must not be empty".to_owned());
        }
        if self.bootstrap.admin_user_name.trim().is_empty() {
            problems.push("bootstrap.admin_user_name: must not be empty".to_owned());
        }
        for (name, url) in [
            ("runtime_url", &self.upstreams.runtime_url),
            ("control_url", &self.upstreams.control_url),
        ] {
            if let Some(url) = url {
                let authority = url.strip_prefix("http://").unwrap_or_default();
                if authority.is_empty() || authority.contains('/') {
                    problems.push(format!(
                        "upstreams.{name}: `{url}` must be `http://host:port` with no path"
                    ));
                }
            }
        }
        let sections: [(&str, Result<(), Vec<String>>); 3] = [
            ("gateway", self.gateway.validate()),
            ("control", self.control.validate()),
            ("runtime", self.runtime.validate()),
        ];
        for (name, result) in sections {
            if let Err(errors) = result {
                problems.extend(errors.into_iter().map(|e| format!("{name}: {e}")));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.data_dir, PathBuf::from("lakeward-data"));
        config.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let errors = Config::from_toml("data_dir = \"x\"\n\n[gateway]\nlisen = \"1.2.3.4:5\"\n")
            .unwrap_err();
        assert!(errors[0].contains("lisen"), "{errors:?}");
        assert!(errors[0].contains("line 4"), "{errors:?}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/lakeward.example.toml");
        let config = Config::from_file(&path).unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn every_problem_is_reported() {
        let config =
            Config::from_toml("data_dir = \"\"\n[bootstrap]\nadmin_user_name = \" \"\n").unwrap();
        let errors = config.validate().unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
