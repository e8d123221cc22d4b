//! Stage 3, workspace: which workspace (or the account) a request addresses, from the Host
//! (checked against SNI), a `/w/<workspace-id>` path prefix (stripped: the SDK keeps a host's
//! path prefix), or the default workspace on bare paths. It also looks the route up, since
//! the prefix must be gone first and later stages (authn for public routes) need the route;
//! an unknown route is refused later, by authz, after authentication.

use crate::control::ControlError;
use crate::ctx::Scope;
use crate::exchange::{Exchange, Stage};
use crate::route;
use crate::shared::Shared;
use crate::state::{Snapshot, WorkspaceEntry};
use http::header::HOST;
use std::sync::Arc;

/// The header the SDK sends with the workspace id it believes it talks to.
const WORKSPACE_ID_HEADER: &str = "x-databricks-workspace-id";

/// Why the workspace could not be determined.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkspaceError {
    #[error("no Host header or authority")]
    MissingHost,
    #[error("Host `{host}` does not match the TLS server name `{sni}`")]
    SniMismatch { host: String, sni: String },
    #[error("no workspace answers at `{0}`")]
    UnknownWorkspace(String),
    #[error("account `{0}` is not this deployment's account")]
    UnknownAccount(String),
    #[error("the path prefix names workspace {prefix} but the host names workspace {host}")]
    PrefixMismatch { prefix: i64, host: i64 },
    #[error("X-Databricks-Workspace-Id `{header}` does not name workspace {addressed}")]
    HeaderMismatch { header: String, addressed: i64 },
    #[error("control-plane snapshot unavailable: {0}")]
    Unavailable(#[from] ControlError),
}

/// The workspace stage.
#[derive(Clone)]
pub(crate) struct WorkspaceStage {
    shared: Arc<Shared>,
}

impl WorkspaceStage {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        WorkspaceStage { shared }
    }
}

impl Stage for WorkspaceStage {
    type Error = WorkspaceError;

    async fn run(&self, ex: &mut Exchange) -> Result<(), WorkspaceError> {
        let authority = ex
            .parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                ex.parts
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .filter(|a| !a.is_empty())
            .ok_or(WorkspaceError::MissingHost)?;
        let host = host_of(&authority);
        if let Some(sni) = &ex.ctx.conn.sni {
            if !sni.eq_ignore_ascii_case(&host) {
                return Err(WorkspaceError::SniMismatch {
                    host,
                    sni: sni.clone(),
                });
            }
        }
        ex.ctx.authority = Some(authority);

        let snapshot = self.shared.state.snapshot_for_request().await?;
        ex.ctx.snapshot = Some(snapshot.clone());

        let full_path = ex.ctx.path.clone().unwrap_or_else(|| "/".to_owned());
        let segments: Vec<&str> = full_path.split('/').filter(|s| !s.is_empty()).collect();
        let (prefix_id, rest) = match segments.as_slice() {
            ["w", id, rest @ ..] => (
                Some(
                    id.parse::<i64>()
                        .map_err(|_| WorkspaceError::UnknownWorkspace(format!("/w/{id}")))?,
                ),
                rest,
            ),
            rest => (None, rest),
        };
        if let Some(id) = prefix_id {
            ex.ctx.prefix = Some(format!("/w/{id}"));
        }
        ex.ctx.route = route::lookup(&ex.parts.method, rest);
        ex.ctx.path = Some(format!("/{}", rest.join("/")));

        if let Some(account) = route::account_id(rest) {
            if account != snapshot.account_id {
                return Err(WorkspaceError::UnknownAccount(account.to_owned()));
            }
            ex.ctx.scope = Some(Scope::Account);
            return Ok(());
        }

        let by_host = self.workspace_by_host(&snapshot, &host)?;
        let by_prefix = prefix_id
            .map(|id| {
                snapshot
                    .workspace(id)
                    .cloned()
                    .ok_or_else(|| WorkspaceError::UnknownWorkspace(format!("/w/{id}")))
            })
            .transpose()?;
        let workspace = match (by_host, by_prefix) {
            (Some(h), Some(p)) if h.id != p.id => {
                return Err(WorkspaceError::PrefixMismatch {
                    prefix: p.id,
                    host: h.id,
                })
            }
            (Some(w), _) | (None, Some(w)) => w,
            (None, None) => snapshot
                .default_workspace()
                .cloned()
                .ok_or_else(|| WorkspaceError::UnknownWorkspace(host.clone()))?,
        };
        if !workspace.running {
            return Err(WorkspaceError::UnknownWorkspace(workspace.id.to_string()));
        }
        for value in ex.parts.headers.get_all(WORKSPACE_ID_HEADER) {
            let text = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
            if text.parse::<i64>().ok() != Some(workspace.id) {
                return Err(WorkspaceError::HeaderMismatch {
                    header: text,
                    addressed: workspace.id,
                });
            }
        }
        ex.ctx.scope = Some(Scope::Workspace(workspace));
        Ok(())
    }
}

impl WorkspaceStage {
    /// The workspace a `<deployment>.<workspace_domain>` host names; `None` for other hosts.
    fn workspace_by_host(
        &self,
        snapshot: &Snapshot,
        host: &str,
    ) -> Result<Option<Arc<WorkspaceEntry>>, WorkspaceError> {
        let Some(domain) = &self.shared.config.workspace_domain else {
            return Ok(None);
        };
        let Some(label) = deployment_label(host, domain) else {
            return Ok(None);
        };
        snapshot
            .by_deployment(label)
            .cloned()
            .map(Some)
            .ok_or_else(|| WorkspaceError::UnknownWorkspace(host.to_owned()))
    }
}

/// The host of an authority, lowercased, without port or IPv6 brackets.
fn host_of(authority: &str) -> String {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                authority
            }
        })
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `ws1` for host `ws1.example.com` and domain `example.com`; one label only.
fn deployment_label<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let label = host
        .strip_suffix(domain.to_ascii_lowercase().as_str())?
        .strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of("WS1.Example.com:8443"), "ws1.example.com");
        assert_eq!(host_of("localhost"), "localhost");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("127.0.0.1:8443"), "127.0.0.1");
        assert_eq!(
            deployment_label("ws1.example.com", "Example.com"),
            Some("ws1")
        );
        assert_eq!(deployment_label("a.ws1.example.com", "example.com"), None);
        assert_eq!(deployment_label("example.com", "example.com"), None);
        assert_eq!(deployment_label("xexample.com", "example.com"), None);
        assert_eq!(deployment_label("localhost", "example.com"), None);
    }
}
