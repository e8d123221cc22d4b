//! One statement, from submission until it is forgotten, and its state machine.

use crate::engine::{Prepared, SqlError, StatementInput};
use crate::results::{ResultFormat, ResultLimits, ResultSet};
use lakeward_common::assertion::IdentityClaims;
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::AbortHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Canceled,
    Closed,
}

impl StatementState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatementState::Pending => "PENDING",
            StatementState::Running => "RUNNING",
            StatementState::Succeeded => "SUCCEEDED",
            StatementState::Failed => "FAILED",
            StatementState::Canceled => "CANCELED",
            StatementState::Closed => "CLOSED",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, StatementState::Pending | StatementState::Running)
    }

    /// The transitions a statement may make; anything else (a result arriving after a
    /// cancel, say) is ignored.
    pub fn can_move_to(self, next: StatementState) -> bool {
        use StatementState::*;
        matches!(
            (self, next),
            (Pending, Running | Failed | Canceled)
                | (Running, Succeeded | Failed | Canceled)
                | (Succeeded | Failed | Canceled, Closed)
        )
    }
}

/// What a statement is submitted with: who, what, where, and how its preparation went (a
/// statement that failed to prepare is `FAILED` from the start, and kept for its caller to
/// read like any other).
pub(crate) struct NewStatement {
    pub(crate) claims: IdentityClaims,
    pub(crate) input: StatementInput,
    pub(crate) workspace_id: i64,
    pub(crate) warehouse_id: String,
    pub(crate) format: ResultFormat,
    pub(crate) limits: ResultLimits,
    pub(crate) needs_samples: bool,
    pub(crate) prepared: Result<Prepared, SqlError>,
    /// The state version of the catalog `prepared` was authorized against.
    pub(crate) prepared_version: u64,
}

/// One statement, from submission until it is forgotten.
pub(crate) struct Statement {
    pub(crate) id: String,
    pub(crate) owner: String,
    /// The assertion it was submitted with: a statement prepared against an older catalog is
    /// prepared again for this caller before it runs.
    pub(crate) claims: IdentityClaims,
    pub(crate) input: StatementInput,
    pub(super) submitted: Instant,
    pub(crate) workspace_id: i64,
    pub(crate) warehouse_id: String,
    pub(super) format: ResultFormat,
    pub(super) limits: ResultLimits,
    pub(super) needs_samples: bool,
    pub(super) inner: Mutex<Inner>,
    changed: watch::Sender<StatementState>,
}

pub(super) struct Inner {
    pub(super) state: StatementState,
    pub(super) error: Option<SqlError>,
    pub(super) result: Option<Arc<ResultSet>>,
    pub(super) prepared: Option<Prepared>,
    /// The state version of the catalog `prepared` was authorized against (0: prepare again).
    pub(super) prepared_version: u64,
    /// `,"manifest":…,"result":…` of a succeeded statement, serialized once.
    pub(super) rendered: Option<Arc<str>>,
    pub(super) task: Option<AbortHandle>,
    pub(super) finished: Option<Instant>,
    pub(super) last_polled: Instant,
    /// Counted among its caller's and its warehouse's live statements.
    pub(super) live: bool,
    /// The result bytes charged to its caller and its warehouse.
    pub(super) charged: u64,
}

impl Statement {
    pub(super) fn new(id: String, new: NewStatement) -> Statement {
        let (state, error, prepared) = match new.prepared {
            Ok(prepared) => (StatementState::Pending, None, Some(prepared)),
            Err(error) => (StatementState::Failed, Some(error), None),
        };
        let now = Instant::now();
        Statement {
            id,
            owner: new.claims.sub.clone(),
            claims: new.claims,
            input: new.input,
            submitted: now,
            workspace_id: new.workspace_id,
            warehouse_id: new.warehouse_id,
            format: new.format,
            limits: new.limits,
            needs_samples: new.needs_samples,
            inner: Mutex::new(Inner {
                state,
                error,
                result: None,
                prepared,
                prepared_version: new.prepared_version,
                rendered: None,
                task: None,
                finished: state.is_terminal().then_some(now),
                last_polled: now,
                live: false,
                charged: 0,
            }),
            changed: watch::channel(state).0,
        }
    }

    pub(super) fn transition(&self, inner: &mut Inner, next: StatementState) -> bool {
        if !inner.state.can_move_to(next) {
            return false;
        }
        inner.state = next;
        if next.is_terminal() && inner.finished.is_none() {
            inner.finished = Some(Instant::now());
        }
        self.changed.send_replace(next);
        true
    }

    pub(crate) fn state(&self) -> StatementState {
        *self.changed.borrow()
    }

    /// Waits up to `timeout` for the statement to end; `false` when it had not by then.
    pub(crate) async fn wait_until_done(&self, timeout: Duration) -> bool {
        let mut changes = self.changed.subscribe();
        let waited = tokio::time::timeout(timeout, changes.wait_for(|s| s.is_terminal())).await;
        waited.is_ok()
    }

    /// Its result, while it is kept.
    pub(crate) fn result(&self) -> Option<Arc<ResultSet>> {
        self.inner.lock().result.clone()
    }

    /// A poll or a fetch: the result is kept `statement_retention_secs` from now.
    pub(crate) fn mark_polled(&self) {
        self.inner.lock().last_polled = Instant::now();
    }

    /// Its plan was made for a warehouse that has since been shut down: it is prepared again
    /// before it runs.
    pub(crate) fn plan_again(&self) {
        self.inner.lock().prepared_version = 0;
    }

    /// `StatementResponse`, serialized. The result part was serialized when the statement
    /// ended; the lock is held only to copy the status.
    pub(crate) fn response(&self) -> String {
        let (state, error, rendered) = {
            let inner = self.inner.lock();
            (
                inner.state,
                inner.error.clone(),
                if inner.state == StatementState::Succeeded {
                    inner.rendered.clone()
                } else {
                    None
                },
            )
        };
        let mut status = json!({"state": state.as_str()});
        if let Some(err) = &error {
            status["error"] = json!({"error_code": err.error_code, "message": err.message});
            if let Some(sql_state) = &err.sql_state {
                status["sql_state"] = json!(sql_state);
            }
        }
        format!(
            "{{\"statement_id\":{},\"status\":{}{}}}",
            json!(self.id),
            status,
            rendered.as_deref().unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::StatementState::{self, *};

    #[test]
    fn the_state_machine() {
        let all = [Pending, Running, Succeeded, Failed, Canceled, Closed];
        let allowed: Vec<(StatementState, StatementState)> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_move_to(*b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Pending, Running),
                (Pending, Failed),
                (Pending, Canceled),
                (Running, Succeeded),
                (Running, Failed),
                (Running, Canceled),
                (Succeeded, Closed),
                (Failed, Closed),
                (Canceled, Closed),
            ]
        );
        assert!(!Pending.is_terminal() && !Running.is_terminal());
        assert!(Canceled.is_terminal() && Closed.is_terminal());
    }
}
