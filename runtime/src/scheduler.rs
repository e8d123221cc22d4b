//! The scheduler: the compute slots of the warehouses running here, the statement table, each
//! warehouse's fair queue (`crate::queue`), and dispatch, cancel and expiry.
//!
//! The warehouse life cycle informs it ("warehouse X runs with compute C", "warehouse X is
//! stopping: cancel its statements", "warehouse X is deleted") and it never calls back into a
//! service. What it needs from outside (the catalog's state version, preparing a statement
//! again for its caller, writing activity to the control plane) it asks through
//! [`StatementHost`], which the service state implements.
//!
//! Locks, always taken in this order and never held across an await: the statement table,
//! then a statement's own lock, then the ledger; the slots are never held with any other.

mod ledger;
mod run;
mod slots;
mod statement;

pub(crate) use ledger::{Bounds, Exhausted};
pub(crate) use slots::{ComputeSlot, QueueRefusal};
pub(crate) use statement::{NewStatement, Statement, StatementState};

use crate::engine::{Compute, Prepared, SqlError};
use futures::future::BoxFuture;
use ledger::Ledger;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::watch;

/// Activity is written to the control plane at most this often per warehouse.
const ACTIVITY_WRITE_INTERVAL_MS: i64 = 30_000;

/// Where the `samples` data stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SamplesState {
    Generating,
    Ready,
    Failed(String),
}

/// What the scheduler asks of the service around it.
pub(crate) trait StatementHost: Send + Sync {
    /// The newest catalog state version seen: a statement prepared against an older one is
    /// prepared again before it runs, so a revoke reaches statements waiting in a queue.
    fn catalog_version(&self) -> u64;

    /// Prepares a statement again, for its caller, against the current catalog and policies,
    /// on `compute`.
    fn prepare_again(
        self: Arc<Self>,
        statement: Arc<Statement>,
        compute: Arc<Compute>,
    ) -> BoxFuture<'static, Result<Prepared, SqlError>>;

    /// Writes a warehouse's activity to the control plane (auto-stop reads it there too).
    fn record_activity(&self, warehouse_id: &str, workspace_id: i64, at_ms: i64);
}

/// What the scheduler is built from.
pub(crate) struct SchedulerDeps {
    pub(crate) host: Weak<dyn StatementHost>,
    /// Bookkeeping tasks (a statement's end, its preparation again) run here.
    pub(crate) io: Handle,
    /// Statements run here.
    pub(crate) query: Handle,
    pub(crate) samples: watch::Receiver<SamplesState>,
    /// How long results stay after a statement ended or was last polled.
    pub(crate) retention: Duration,
    pub(crate) bounds: Bounds,
}

pub(crate) struct Scheduler {
    host: Weak<dyn StatementHost>,
    io: Handle,
    query: Handle,
    samples: watch::Receiver<SamplesState>,
    retention: Duration,
    slots: Mutex<HashMap<String, ComputeSlot>>,
    statements: Mutex<HashMap<String, Arc<Statement>>>,
    ledger: Mutex<Ledger>,
}

impl Scheduler {
    pub(crate) fn new(deps: SchedulerDeps) -> Scheduler {
        Scheduler {
            host: deps.host,
            io: deps.io,
            query: deps.query,
            samples: deps.samples,
            retention: deps.retention,
            slots: Mutex::new(HashMap::new()),
            statements: Mutex::new(HashMap::new()),
            ledger: Mutex::new(Ledger::new(deps.bounds)),
        }
    }

    // ---- slots, as the life cycle sees them ----

    /// The slot's generation (see [`ComputeSlot::generation`]); read it before the record.
    pub(crate) fn generation(&self, warehouse_id: &str) -> u64 {
        self.read_slot(warehouse_id, |s| s.map_or(0, |s| s.generation))
    }

    /// Reads a slot.
    pub(crate) fn read_slot<R>(
        &self,
        warehouse_id: &str,
        read: impl FnOnce(Option<&ComputeSlot>) -> R,
    ) -> R {
        read(self.slots.lock().get(warehouse_id))
    }

    /// Changes a slot (made on first use), under the slots' lock.
    pub(crate) fn update_slot<R>(
        &self,
        warehouse_id: &str,
        change: impl FnOnce(&mut ComputeSlot) -> R,
    ) -> R {
        change(
            self.slots
                .lock()
                .entry(warehouse_id.to_owned())
                .or_default(),
        )
    }

    /// The warehouses (and their workspaces) whose slots `pick` selects.
    pub(crate) fn select(&self, pick: impl Fn(&ComputeSlot) -> bool) -> Vec<(String, i64)> {
        self.slots
            .lock()
            .iter()
            .filter(|(_, s)| pick(s))
            .map(|(id, s)| (id.clone(), s.workspace_id))
            .collect()
    }

    pub(crate) fn has_compute(&self, warehouse_id: &str) -> bool {
        self.read_slot(warehouse_id, |s| s.is_some_and(|s| s.compute.is_some()))
    }

    /// Statements running or waiting on the warehouse.
    pub(crate) fn active_sessions(&self, warehouse_id: &str) -> usize {
        self.read_slot(warehouse_id, |s| s.map_or(0, ComputeSlot::active))
    }

    /// The warehouse runs here with `compute` (unless it was shut down since
    /// `seen_generation`; compute already there stays): waiting statements start.
    pub(crate) fn running_with(
        self: &Arc<Self>,
        warehouse_id: &str,
        workspace_id: i64,
        compute: Arc<Compute>,
        seen_generation: u64,
    ) -> bool {
        let installed = self.update_slot(warehouse_id, |slot| {
            if slot.deleted || slot.generation != seen_generation {
                return false;
            }
            slot.workspace_id = workspace_id;
            if slot.compute.is_none() {
                slot.compute = Some(compute);
            }
            true
        });
        if installed {
            self.dispatch(warehouse_id);
        }
        installed
    }

    /// The warehouse is stopping: its compute goes, its statements (waiting and running) are
    /// cancelled, and its generation moves so that nothing read before this brings the
    /// compute back.
    pub(crate) fn shut_down(&self, warehouse_id: &str, reason: &str) {
        let (queued, running) = self.update_slot(warehouse_id, |slot| {
            slot.compute = None;
            slot.generation += 1;
            (
                slot.queue.drain(),
                slot.running.iter().cloned().collect::<Vec<_>>(),
            )
        });
        for statement in queued.iter().chain(running.iter()) {
            self.cancel_by_id(statement, reason);
        }
    }

    /// The warehouse is deleted. Its slot stays as a tombstone: a statement that read the
    /// record before the delete must find it deleted, not a fresh slot to queue on.
    pub(crate) fn deleted(&self, warehouse_id: &str, reason: &str) {
        let queued = self.update_slot(warehouse_id, |slot| {
            slot.deleted = true;
            slot.compute = None;
            slot.life.stuck = false;
            slot.generation += 1;
            slot.queue.drain()
        });
        for statement in queued {
            self.cancel_by_id(&statement, reason);
        }
    }

    /// The warehouse could not be started: the statements waiting on it fail with `error`.
    pub(crate) fn fail_waiting(&self, warehouse_id: &str, error: &SqlError) {
        let waiting = self.update_slot(warehouse_id, |slot| slot.queue.drain());
        for id in waiting {
            if let Some(statement) = self.get(&id) {
                self.fail_pending(&statement, error.clone());
            }
        }
    }

    /// Records activity on a warehouse; the host writes it to the control plane at most
    /// every 30 s.
    pub(crate) fn touch(&self, warehouse_id: &str) {
        let now = now_ms();
        let push = self.slots.lock().get_mut(warehouse_id).and_then(|slot| {
            slot.last_activity_ms = now;
            if now.saturating_sub(slot.pushed_activity_ms) >= ACTIVITY_WRITE_INTERVAL_MS {
                slot.pushed_activity_ms = now;
                Some(slot.workspace_id)
            } else {
                None
            }
        });
        if let (Some(workspace_id), Some(host)) = (push, self.host.upgrade()) {
            host.record_activity(warehouse_id, workspace_id, now);
        }
    }

    // ---- statements ----

    /// Registers a statement under a new id. A pending one counts against its caller's and
    /// its warehouse's bounds, and is refused when one is reached.
    pub(crate) fn submit(&self, new: NewStatement) -> Result<Arc<Statement>, Exhausted> {
        let statement = Arc::new(Statement::new(uuid::Uuid::new_v4().to_string(), new));
        let mut statements = self.statements.lock();
        {
            let mut inner = statement.inner.lock();
            if inner.state == StatementState::Pending {
                self.ledger
                    .lock()
                    .admit(&statement.owner, &statement.warehouse_id)?;
                inner.live = true;
            }
        }
        statements.insert(statement.id.clone(), statement.clone());
        Ok(statement)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Statement>> {
        self.statements.lock().get(id).cloned()
    }

    /// Queues a statement unless its warehouse was shut down or deleted since
    /// `seen_generation`.
    pub(crate) fn enqueue(
        &self,
        statement: &Statement,
        workspace_id: i64,
        seen_generation: u64,
    ) -> Result<(), QueueRefusal> {
        let mut slots = self.slots.lock();
        let slot = slots.entry(statement.warehouse_id.clone()).or_default();
        if slot.deleted {
            return Err(QueueRefusal::Deleted);
        }
        if slot.generation != seen_generation {
            return Err(QueueRefusal::Moved);
        }
        slot.workspace_id = workspace_id;
        slot.queue
            .push(statement.owner.clone(), statement.id.clone());
        Ok(())
    }

    /// Fails a statement that has not started (its warehouse could not start, say).
    pub(crate) fn fail_pending(&self, statement: &Statement, error: SqlError) {
        {
            let mut inner = statement.inner.lock();
            if statement.transition(&mut inner, StatementState::Failed) {
                inner.error = Some(error);
                inner.prepared = None;
            }
            self.settle_accounts(statement, &mut inner);
        }
        if let Some(slot) = self.slots.lock().get_mut(&statement.warehouse_id) {
            slot.queue.remove(&statement.id);
        }
    }

    /// Cancels a pending or running statement; the work stops at its next await point.
    pub(crate) fn cancel(&self, statement: &Statement) {
        let (was_pending, abort) = {
            let mut inner = statement.inner.lock();
            let outcome = match inner.state {
                StatementState::Pending => {
                    statement.transition(&mut inner, StatementState::Canceled);
                    inner.prepared = None;
                    (true, None)
                }
                StatementState::Running => {
                    statement.transition(&mut inner, StatementState::Canceled);
                    (false, inner.task.take())
                }
                _ => return,
            };
            self.settle_accounts(statement, &mut inner);
            outcome
        };
        if was_pending {
            if let Some(slot) = self.slots.lock().get_mut(&statement.warehouse_id) {
                slot.queue.remove(&statement.id);
            }
        }
        if let Some(abort) = abort {
            abort.abort();
        }
    }

    pub(crate) fn cancel_by_id(&self, id: &str, reason: &str) {
        if let Some(statement) = self.get(id) {
            tracing::debug!(statement = %id, reason, "cancelling");
            self.cancel(&statement);
        }
    }

    /// Closes statements whose results have expired, forgets long-closed ones, and fails
    /// statements that stayed `PENDING` longer than the retention (a warehouse that never came
    /// up).
    pub(crate) fn expire(&self) {
        let retention = self.retention;
        let forget_after = retention.saturating_mul(2);
        let mut stale = Vec::new();
        self.statements.lock().retain(|_, statement| {
            let mut inner = statement.inner.lock();
            let Some(finished) = inner.finished else {
                if inner.state == StatementState::Pending
                    && statement.submitted.elapsed() >= retention
                {
                    stale.push(statement.clone());
                }
                return true;
            };
            let since = finished.max(inner.last_polled);
            if inner.state == StatementState::Closed {
                return since.elapsed() < forget_after;
            }
            if since.elapsed() >= retention {
                statement.transition(&mut inner, StatementState::Closed);
                inner.result = None;
                inner.rendered = None;
                inner.error = None;
                self.settle_accounts(statement, &mut inner);
            }
            true
        });
        for statement in stale {
            let error = SqlError::new(
                "TEMPORARILY_UNAVAILABLE",
                format!(
                    "the statement waited {}s for warehouse `{}` without starting",
                    retention.as_secs(),
                    statement.warehouse_id
                ),
            );
            self.fail_pending(&statement, error);
        }
    }

    /// Gives back a statement's share of its bounds once it no longer holds it: its live
    /// count when it ends, its result's bytes when the result is dropped.
    fn settle_accounts(&self, statement: &Statement, inner: &mut statement::Inner) {
        if inner.live && inner.state.is_terminal() {
            inner.live = false;
            self.ledger
                .lock()
                .release_live(&statement.owner, &statement.warehouse_id);
        }
        if inner.charged > 0 && inner.result.is_none() {
            self.ledger.lock().release_bytes(
                &statement.owner,
                &statement.warehouse_id,
                inner.charged,
            );
            inner.charged = 0;
        }
    }
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
