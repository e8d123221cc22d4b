//! The warehouse life cycle. Definitions and state live in the control plane; this process
//! runs the compute and tells the scheduler what happened to it.
//!
//! States: create → `STARTING` → (compute provisioned) `RUNNING`; stop → `STOPPING` (its
//! statements cancelled, compute released) → `STOPPED`; start → `STARTING` → `RUNNING`;
//! delete → `DELETED` (still answered by get, left out of list). Every transition is a
//! conditional update (`expect_state`), so two runtimes cannot both make it.

use super::spec::{auto_stop_mins_of, sizing_of};
use crate::engine::SqlError;
use crate::error::ServiceError;
use crate::scheduler::now_ms;
use crate::state::Shared;
use backon::BackoffBuilder;
use lakeward_common::data::{WarehouseRecord, WarehouseState, WarehouseUpdate};
use lakeward_common::error::{ApiError, ErrorCode};
use lakeward_frame::backoff;
use std::sync::Arc;
use std::time::Duration;

/// How often marking a provisioned warehouse `RUNNING` is tried again before giving up (the
/// sweeper tries again later), and the first and longest wait between tries.
const PROVISION_RETRIES: usize = 5;
const PROVISION_RETRY_FIRST: Duration = Duration::from_millis(500);
const PROVISION_RETRY_LONGEST: Duration = Duration::from_millis(2500);

pub(crate) fn deleted(record: &WarehouseRecord) -> ServiceError {
    ServiceError::InvalidState(format!("warehouse `{}` is deleted", record.id))
}

/// The API's name of a state (`RUNNING`, ...).
pub(crate) fn state_name(state: WarehouseState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{state:?}").to_uppercase())
}

fn is_aborted(err: &ApiError) -> bool {
    err.code == ErrorCode::Aborted
}

/// STOPPED → STARTING, then provisioning; a warehouse left STOPPING has its stop finished
/// first. A warehouse already starting or running is left be (its compute made present here).
/// `seen_generation` is the slot's generation read before `record`.
pub(crate) async fn start_warehouse(
    shared: &Arc<Shared>,
    record: WarehouseRecord,
    seen_generation: u64,
    request_id: &str,
) -> Result<(), ServiceError> {
    let mut record = record;
    let mut seen = seen_generation;
    // Each turn either ends or follows a state another party (or a finished stop) moved to.
    for _ in 0..4 {
        match record.state {
            WarehouseState::Deleted | WarehouseState::Deleting => return Err(deleted(&record)),
            WarehouseState::Stopping => {
                finish_stop(shared, &record, request_id).await?;
            }
            WarehouseState::Starting | WarehouseState::Running => {
                note_record(shared, &record);
                if record.state == WarehouseState::Running {
                    ensure_compute(shared, &record, seen).await;
                } else if !shared.scheduler.has_compute(&record.id)
                    && !is_provisioning(shared, &record.id)
                {
                    // Its provisioning may have been lost with another process: redo it.
                    spawn_provision(shared, record, request_id.to_owned());
                }
                return Ok(());
            }
            WarehouseState::Stopped => {
                let updated = shared
                    .control
                    .update_warehouse(
                        &record.id,
                        &WarehouseUpdate {
                            workspace_id: record.workspace_id,
                            state: Some(WarehouseState::Starting),
                            expect_state: Some(WarehouseState::Stopped),
                            last_activity_ms: Some(now_ms()),
                            ..WarehouseUpdate::default()
                        },
                        request_id,
                    )
                    .await;
                match updated {
                    Ok(updated) => {
                        note_record(shared, &updated);
                        spawn_provision(shared, updated, request_id.to_owned());
                        return Ok(());
                    }
                    // Someone else moved it first: follow where it went.
                    Err(err) if is_aborted(&err) => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        seen = shared.scheduler.generation(&record.id);
        record = shared
            .control
            .get_warehouse(record.workspace_id, &record.id, request_id)
            .await?;
    }
    Err(ServiceError::Aborted(format!(
        "warehouse `{}` kept changing state ({}); try again",
        record.id,
        state_name(record.state)
    )))
}

fn is_provisioning(shared: &Shared, id: &str) -> bool {
    shared
        .scheduler
        .read_slot(id, |s| s.is_some_and(|s| s.life.provisioning))
}

pub(super) fn set_stuck(shared: &Shared, id: &str, stuck: bool) {
    shared
        .scheduler
        .update_slot(id, |slot| slot.life.stuck = stuck);
}

/// Remembers a warehouse seen in the control plane, so that auto-stop watches it.
pub(crate) fn note_record(shared: &Shared, record: &WarehouseRecord) {
    shared.scheduler.update_slot(&record.id, |slot| {
        if matches!(
            record.state,
            WarehouseState::Deleted | WarehouseState::Deleting
        ) {
            slot.deleted = true;
        }
        if slot.deleted {
            return;
        }
        slot.workspace_id = record.workspace_id;
        slot.life.auto_stop_mins = auto_stop_mins_of(record);
        slot.last_activity_ms = slot.last_activity_ms.max(record.last_activity_ms);
        slot.pushed_activity_ms = slot.pushed_activity_ms.max(record.last_activity_ms);
    });
}

/// The compute of a warehouse the control plane says runs (after a restart, say, this process
/// may not have it yet), unless the warehouse was shut down here since `seen_generation`.
pub(crate) async fn ensure_compute(
    shared: &Arc<Shared>,
    record: &WarehouseRecord,
    seen_generation: u64,
) {
    if shared.scheduler.has_compute(&record.id) {
        shared.scheduler.dispatch(&record.id);
        return;
    }
    let compute = match shared.compute_for(&record.id, sizing_of(record)).await {
        Ok(compute) => compute,
        Err(err) => {
            tracing::error!(warehouse = %record.id, error = %err, "cannot build the warehouse's compute");
            return;
        }
    };
    shared
        .scheduler
        .running_with(&record.id, record.workspace_id, compute, seen_generation);
}

/// A new size takes effect for the statements that start from now on; running ones keep the
/// compute they started with.
pub(crate) async fn resize(
    shared: &Arc<Shared>,
    record: &WarehouseRecord,
) -> Result<(), ServiceError> {
    let seen = shared.scheduler.generation(&record.id);
    if !shared.scheduler.has_compute(&record.id) {
        return Ok(());
    }
    // `Engine::compute` builds anew for a new sizing (and replaces the old one); the build
    // runs off the HTTP threads and outside the scheduler's locks.
    let compute = shared.compute_for(&record.id, sizing_of(record)).await?;
    shared.scheduler.update_slot(&record.id, |slot| {
        if slot.compute.is_some() && slot.generation == seen && !slot.deleted {
            slot.compute = Some(compute);
        }
    });
    Ok(())
}

/// Provisioning: STARTING → RUNNING once the compute exists. Retried a few times; when it gives
/// up, the statements waiting on the warehouse fail and the sweeper tries again later.
pub(crate) fn spawn_provision(shared: &Arc<Shared>, record: WarehouseRecord, request_id: String) {
    let seen = shared.scheduler.update_slot(&record.id, |slot| {
        if slot.deleted || slot.life.provisioning {
            return None;
        }
        slot.life.provisioning = true;
        Some(slot.generation)
    });
    let Some(seen) = seen else {
        return;
    };
    let shared = shared.clone();
    shared.io.clone().spawn(async move {
        let outcome = provision(&shared, &record, seen, &request_id).await;
        shared.scheduler.update_slot(&record.id, |slot| {
            slot.life.provisioning = false;
            slot.life.stuck = outcome.is_err();
        });
        match outcome {
            Ok(true) => shared.scheduler.dispatch(&record.id),
            Ok(false) => {}
            Err(err) => {
                let error = SqlError::new(
                    "TEMPORARILY_UNAVAILABLE",
                    format!(
                        "warehouse `{}` could not be started ({}); try again later",
                        record.id,
                        err.message()
                    ),
                );
                shared.scheduler.fail_waiting(&record.id, &error);
            }
        }
    });
}

/// Marks the warehouse RUNNING and installs its compute: `Ok(true)` when it runs here,
/// `Ok(false)` when it left STARTING (stopped or deleted meanwhile), `Err` after the retries.
async fn provision(
    shared: &Arc<Shared>,
    record: &WarehouseRecord,
    seen: u64,
    request_id: &str,
) -> Result<bool, ServiceError> {
    let compute = shared.compute_for(&record.id, sizing_of(record)).await?;
    let mut delays = backoff::reconnect(PROVISION_RETRY_FIRST, PROVISION_RETRY_LONGEST)
        .with_max_times(PROVISION_RETRIES)
        .build();
    loop {
        let result = shared
            .control
            .update_warehouse(
                &record.id,
                &WarehouseUpdate {
                    workspace_id: record.workspace_id,
                    state: Some(WarehouseState::Running),
                    expect_state: Some(WarehouseState::Starting),
                    last_activity_ms: Some(now_ms()),
                    ..WarehouseUpdate::default()
                },
                request_id,
            )
            .await;
        match result {
            Ok(updated) => {
                let installed = shared.scheduler.update_slot(&updated.id, |slot| {
                    if slot.deleted || slot.generation != seen {
                        // Stopped here after it was marked running: the stop wins.
                        return false;
                    }
                    slot.workspace_id = updated.workspace_id;
                    slot.compute = Some(compute.clone());
                    slot.last_activity_ms = now_ms();
                    slot.pushed_activity_ms = slot.last_activity_ms;
                    slot.life.auto_stop_mins = auto_stop_mins_of(&updated);
                    true
                });
                return Ok(installed);
            }
            // Stopped or deleted while starting: nothing to run.
            Err(err) if is_aborted(&err) => {
                tracing::info!(warehouse = %record.id, "warehouse left STARTING before it was provisioned");
                return Ok(false);
            }
            Err(err) => match delays.next() {
                Some(delay) => {
                    tracing::warn!(warehouse = %record.id, error = %err, ?delay, "cannot mark the warehouse running; retrying");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    tracing::error!(warehouse = %record.id, error = %err, "giving up provisioning the warehouse");
                    return Err(err.into());
                }
            },
        }
    }
}

/// RUNNING or STARTING → STOPPING → STOPPED, cancelling the warehouse's statements; a
/// warehouse left STOPPING (its STOPPED update failed) has its stop finished.
pub(crate) async fn stop_warehouse(
    shared: &Arc<Shared>,
    record: &WarehouseRecord,
    request_id: &str,
) -> Result<(), ServiceError> {
    let from = match record.state {
        WarehouseState::Running | WarehouseState::Starting => record.state,
        WarehouseState::Stopping => return finish_stop(shared, record, request_id).await,
        WarehouseState::Stopped => return Ok(()),
        WarehouseState::Deleted | WarehouseState::Deleting => return Err(deleted(record)),
    };
    let moved = shared
        .control
        .update_warehouse(
            &record.id,
            &WarehouseUpdate {
                workspace_id: record.workspace_id,
                state: Some(WarehouseState::Stopping),
                expect_state: Some(from),
                ..WarehouseUpdate::default()
            },
            request_id,
        )
        .await;
    match moved {
        Ok(_) => {}
        Err(err) if is_aborted(&err) => return Ok(()),
        Err(err) => return Err(err.into()),
    }
    finish_stop(shared, record, request_id).await
}

/// STOPPING → STOPPED: cancels the warehouse's statements, releases its compute, records the
/// state. When the record cannot be written, the warehouse is left for the sweeper to finish.
pub(super) async fn finish_stop(
    shared: &Arc<Shared>,
    record: &WarehouseRecord,
    request_id: &str,
) -> Result<(), ServiceError> {
    shut_down(shared, &record.id, "the warehouse was stopped");
    let stopped = shared
        .control
        .update_warehouse(
            &record.id,
            &WarehouseUpdate {
                workspace_id: record.workspace_id,
                state: Some(WarehouseState::Stopped),
                expect_state: Some(WarehouseState::Stopping),
                ..WarehouseUpdate::default()
            },
            request_id,
        )
        .await;
    match stopped {
        // Aborted: someone else finished (or undid) the stop.
        Ok(_) => {
            set_stuck(shared, &record.id, false);
            Ok(())
        }
        Err(err) if is_aborted(&err) => {
            set_stuck(shared, &record.id, false);
            Ok(())
        }
        Err(err) => {
            tracing::warn!(warehouse = %record.id, error = %err, "cannot mark the warehouse stopped; the sweeper will retry");
            set_stuck(shared, &record.id, true);
            Err(err.into())
        }
    }
}

/// Cancels the warehouse's statements and releases its compute.
pub(super) fn shut_down(shared: &Shared, id: &str, reason: &str) {
    shared.scheduler.shut_down(id, reason);
    shared.engine.release(id);
}

/// Any state → DELETED: its statements cancelled, its compute released, and its slot kept as
/// a tombstone.
pub(crate) async fn delete_warehouse(
    shared: &Arc<Shared>,
    record: &WarehouseRecord,
    request_id: &str,
) -> Result<(), ServiceError> {
    if record.state == WarehouseState::Deleted {
        return Ok(());
    }
    shut_down(shared, &record.id, "the warehouse was deleted");
    shared
        .control
        .update_warehouse(
            &record.id,
            &WarehouseUpdate {
                workspace_id: record.workspace_id,
                state: Some(WarehouseState::Deleted),
                ..WarehouseUpdate::default()
            },
            request_id,
        )
        .await?;
    shared
        .scheduler
        .deleted(&record.id, "the warehouse was deleted");
    Ok(())
}
