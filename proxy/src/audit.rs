//! Stage 8, audit: one record per request, allowed or refused, in Databricks' audit-log shape
//! (reference 4.5) plus the gateway's decision fields. Records of mutating calls are durable
//! before their response is sent; reads are queued and not waited for. Secrets never enter a
//! record: request parameters are filtered ([`params`]), and no header, response body or
//! token is recorded at all.

mod params;
mod writer;

pub(crate) use writer::{AuditDir, AuditWriter};

use crate::ctx::{RequestCtx, Scope};
use lakeward_common::assertion::PrincipalKind;
use prometheus::IntCounter;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot};
use writer::{AuditFiles, WriterMsg};

/// One audit record. It borrows from the request context rather than copying it: it lives
/// only until it is serialized, and one per request adds up.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditRecord<'a> {
    pub version: &'static str,
    pub audit_level: &'static str,
    /// Milliseconds since the epoch at arrival.
    pub timestamp: i64,
    /// `"0"` for account-level events.
    pub workspace_id: String,
    pub account_id: &'a str,
    /// The address IP access lists were checked against.
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    pub user_agent: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub user_identity: UserIdentity<'a>,
    pub service_name: &'static str,
    pub action_name: &'static str,
    pub request_id: &'a str,
    pub request_params: BTreeMap<String, String>,
    pub response: AuditResponse<'a>,
    /// `allow` or `deny`.
    pub decision: &'static str,
    pub determining_policies: &'a [String],
    pub policy_version: Option<&'a str>,
    pub auth_method: Option<&'static str>,
    pub token_id: Option<&'a str>,
    /// Why authentication failed (the `reason` label of `gateway_authn_failures_total`), which
    /// the caller is never told: every failure answers the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authn_failure_reason: Option<&'static str>,
    /// What a statement read, wrote, created, dropped or granted on, as the runtime authorized
    /// it: `[{"action": "SelectTable", "securable": "samples.tpch.lineitem"}]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub touched: Vec<Touched<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Touched<'a> {
    pub action: &'a str,
    pub securable: &'a str,
}

/// Parses the runtime's `x-lakeward-touched` value; malformed pairs are kept whole rather than
/// dropped, so the record never loses what the runtime reported.
fn touched(header: Option<&str>) -> Vec<Touched<'_>> {
    header
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once(' ') {
            Some((action, securable)) => Touched {
                action,
                securable: securable.trim(),
            },
            None => Touched {
                action: "",
                securable: pair,
            },
        })
        .collect()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserIdentity<'a> {
    pub email: Option<&'a str>,
    pub subject_name: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditResponse<'a> {
    pub status_code: u16,
    pub error_message: Option<&'a str>,
    pub result: Option<&'a str>,
}

/// How a request ended, as far as its record tells.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ending<'a> {
    pub status: u16,
    /// What the client was told, when the request failed.
    pub error_message: Option<&'a str>,
    /// Refused by the IP access lists: recorded as Databricks does, `accounts.IpAccessDenied`.
    pub ip_blocked: bool,
    /// Cedar allowed it (a failure after that, e.g. a 502, is still an allowed call).
    pub allowed: bool,
    /// Why authentication failed, when it did.
    pub authn_failure_reason: Option<&'static str>,
}

/// Builds the record of a finished request. `fallback_account` is used when the request never
/// got as far as the snapshot.
pub(crate) fn build<'a>(
    ctx: &'a RequestCtx,
    ending: Ending<'a>,
    fallback_account: &'a str,
) -> AuditRecord<'a> {
    let (audit_level, workspace_id) = match &ctx.scope {
        Some(Scope::Account) => ("ACCOUNT_LEVEL", "0".to_owned()),
        Some(Scope::Workspace(ws)) => ("WORKSPACE_LEVEL", ws.id.to_string()),
        None => ("WORKSPACE_LEVEL", "0".to_owned()),
    };
    let (service_name, action_name) = match (ending.ip_blocked, ctx.route) {
        (true, _) => ("accounts", "IpAccessDenied"),
        (false, Some(route)) => (route.service, route.audit_action),
        (false, None) => ("gateway", "unknownEndpoint"),
    };
    let principal = ctx.principal.as_ref();
    let email = principal
        .filter(|p| p.record.kind != PrincipalKind::Anonymous)
        .map(|p| p.record.user_name.as_str());
    AuditRecord {
        version: "2.0",
        audit_level,
        timestamp: ctx.received_unix_ms,
        workspace_id,
        account_id: ctx
            .snapshot
            .as_ref()
            .map_or(fallback_account, |s| s.account_id.as_str()),
        source_ip_address: ctx
            .client_ip
            .unwrap_or_else(|| ctx.conn.peer.ip())
            .to_string(),
        user_agent: ctx.user_agent.as_deref(),
        session_id: None,
        user_identity: UserIdentity {
            email,
            subject_name: None,
        },
        service_name,
        action_name,
        request_id: &ctx.request_id,
        request_params: params::request_params(ctx.query.as_deref(), &ctx.body),
        response: AuditResponse {
            status_code: ending.status,
            error_message: ending.error_message,
            result: None,
        },
        decision: if ending.allowed { "allow" } else { "deny" },
        determining_policies: ctx
            .decision
            .as_ref()
            .map_or(&[], |d| d.determining_policies.as_slice()),
        policy_version: ctx.decision.as_ref().map(|d| d.policy_version.as_str()),
        auth_method: principal.map(|p| p.auth_method.as_str()),
        token_id: principal.and_then(|p| p.token_id.as_deref()),
        authn_failure_reason: ending.authn_failure_reason,
        touched: touched(ctx.touched.as_deref()),
    }
}

/// The UTC date of a timestamp, `yyyy-mm-dd`: the record's file.
fn day_of(timestamp_ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(timestamp_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Where requests send their records.
#[derive(Clone)]
pub(crate) struct AuditSink {
    tx: mpsc::Sender<WriterMsg>,
    failures: IntCounter,
}

impl AuditSink {
    /// A sink and the writer that drains it into `files` (the audit directory, [`AuditDir`]).
    pub(crate) fn channel<F: AuditFiles>(
        files: F,
        capacity: usize,
        failures: IntCounter,
    ) -> (AuditSink, AuditWriter<F>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            AuditSink {
                tx,
                failures: failures.clone(),
            },
            AuditWriter::new(files, rx, failures),
        )
    }

    /// Queues a record; with `durable`, waits until it is on disk. False when it was not
    /// written (already counted in the failure metric).
    pub(crate) async fn write(&self, record: &AuditRecord<'_>, durable: bool) -> bool {
        // Sized for a typical record, so serializing does not grow the buffer step by step.
        let mut line = Vec::with_capacity(768);
        match serde_json::to_writer(&mut line, record) {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "audit record not serializable");
                self.failures.inc();
                return false;
            }
        };
        let (ack, done) = if durable {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let msg = WriterMsg::Record {
            line,
            day: day_of(record.timestamp),
            ack,
        };
        if self.tx.send(msg).await.is_err() {
            self.failures.inc();
            tracing::error!("audit writer is gone; record lost");
            return false;
        }
        match done {
            Some(rx) => rx.await.unwrap_or(false),
            None => true,
        }
    }

    /// Waits until everything queued so far is durable.
    pub(crate) async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(WriterMsg::Flush(tx)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests;
