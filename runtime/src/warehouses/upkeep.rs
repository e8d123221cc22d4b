//! The warehouse steps of the sweeper: finishing transitions left half-done, and auto-stop.

use super::lifecycle::{
    finish_stop, note_record, set_stuck, shut_down, spawn_provision, stop_warehouse,
};
use super::spec::auto_stop_mins_of;
use crate::scheduler::now_ms;
use crate::state::Shared;
use lakeward_common::data::WarehouseState;
use std::sync::Arc;

/// Whether an idle warehouse is due to stop.
pub fn idle_expired(
    auto_stop_mins: i64,
    last_activity_ms: i64,
    now_ms: i64,
    minute_ms: u64,
) -> bool {
    auto_stop_mins > 0
        && now_ms.saturating_sub(last_activity_ms)
            >= auto_stop_mins.saturating_mul(i64::try_from(minute_ms).unwrap_or(i64::MAX))
}

/// Finishes transitions this process began and could not complete: a warehouse left
/// STOPPING has its stop finished, one left STARTING is provisioned again.
pub(crate) async fn retry_stuck(shared: &Arc<Shared>) {
    let stuck = shared
        .scheduler
        .select(|s| s.life.stuck && !s.deleted && !s.life.provisioning);
    for (id, workspace_id) in stuck {
        let record = match shared
            .control
            .get_warehouse(workspace_id, &id, "runtime-retry")
            .await
        {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(warehouse = %id, error = %err, "cannot read a stuck warehouse");
                continue;
            }
        };
        match record.state {
            WarehouseState::Stopping => {
                if let Err(err) = finish_stop(shared, &record, "runtime-retry").await {
                    tracing::warn!(warehouse = %id, error = %err, "finishing the stop failed again");
                }
            }
            WarehouseState::Starting if !shared.scheduler.has_compute(&id) => {
                spawn_provision(shared, record, "runtime-retry".to_owned());
            }
            _ => {
                set_stuck(shared, &id, false);
                note_record(shared, &record);
            }
        }
    }
}

/// Stops running warehouses that have been idle for their `auto_stop_mins`.
pub(crate) async fn auto_stop(shared: &Arc<Shared>) {
    let now = now_ms();
    let minute = shared.config.auto_stop_minute_ms;
    let candidates = shared.scheduler.select(|s| {
        !s.deleted
            && s.compute.is_some()
            && s.is_idle()
            && idle_expired(s.life.auto_stop_mins, s.last_activity_ms, now, minute)
    });
    for (id, workspace_id) in candidates {
        let record = match shared
            .control
            .get_warehouse(workspace_id, &id, "runtime-auto-stop")
            .await
        {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(warehouse = %id, error = %err, "auto-stop cannot read the warehouse");
                continue;
            }
        };
        let (still_idle, last) = shared.scheduler.read_slot(&id, |slot| match slot {
            Some(s) => (s.is_idle(), s.last_activity_ms.max(record.last_activity_ms)),
            None => (false, now),
        });
        if record.state == WarehouseState::Running
            && still_idle
            && idle_expired(auto_stop_mins_of(&record), last, now_ms(), minute)
        {
            tracing::info!(warehouse = %id, "auto-stopping an idle warehouse");
            if let Err(err) = stop_warehouse(shared, &record, "runtime-auto-stop").await {
                tracing::warn!(warehouse = %id, error = %err, "auto-stop failed");
            }
        } else if record.state != WarehouseState::Running {
            // Stopped elsewhere: drop what this process still holds.
            if shared.scheduler.has_compute(&id) && record.state != WarehouseState::Starting {
                shut_down(shared, &id, "the warehouse was stopped");
            }
            note_record(shared, &record);
        } else {
            note_record(shared, &record);
        }
    }
}
