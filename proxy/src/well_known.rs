//! The gateway's own route: `GET /.well-known/databricks-config`, which every SDK client
//! reads before it has a token. Answered locally and quickly: a slow or failing answer makes
//! the SDK retry for minutes (reference 1.2).

use crate::ctx::RequestCtx;
use crate::exchange::{full_response, ProxyBody};
use http::{Response, StatusCode};
use serde::Serialize;

#[derive(Serialize)]
struct HostMetadata<'a> {
    workspace_id: String,
    account_id: &'a str,
    cloud: &'static str,
    host_type: &'static str,
    oidc_endpoint: String,
}

/// The host metadata of the workspace addressed.
pub(crate) fn respond(ctx: &RequestCtx) -> Result<Response<ProxyBody>, String> {
    let workspace = ctx.workspace().ok_or("host metadata without a workspace")?;
    let snapshot = ctx
        .snapshot
        .as_ref()
        .ok_or("host metadata without a snapshot")?;
    let authority = ctx
        .authority
        .as_deref()
        .ok_or("host metadata without a host")?;
    let body = HostMetadata {
        workspace_id: workspace.id.to_string(),
        account_id: &snapshot.account_id,
        cloud: "AWS",
        host_type: "WORKSPACE_HOST",
        oidc_endpoint: format!(
            "https://{authority}{}/oidc",
            ctx.prefix.as_deref().unwrap_or("")
        ),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    Ok(full_response(StatusCode::OK, "application/json", bytes))
}
