//! What every stage shares: configuration, the control-plane state, the policy store, the
//! upstream client, keys, the audit sink and metrics. Built once in `Gateway::bind`. Services
//! only: what one stage alone needs (the OIDC verifier) belongs to that stage, so this module
//! imports no stage and every stage can import it.

use crate::audit::AuditSink;
use crate::config::Config;
use crate::metrics::GatewayMetrics;
use crate::policy_store::PolicyStore;
use crate::state::ControlState;
use crate::upstream::{HttpClient, UpstreamBase};
use ipnet::IpNet;
use lakeward_common::assertion::AssertionKey;
use std::sync::Arc;

pub(crate) struct Shared {
    pub config: Config,
    pub trusted_proxies: Vec<IpNet>,
    pub state: Arc<ControlState>,
    pub policies: Arc<PolicyStore>,
    pub client: HttpClient,
    pub control_base: UpstreamBase,
    pub runtime_base: UpstreamBase,
    /// Signs assertions for the control plane.
    pub control_key: AssertionKey,
    /// Signs assertions for the runtime.
    pub runtime_key: AssertionKey,
    pub audit: AuditSink,
    pub metrics: GatewayMetrics,
}
