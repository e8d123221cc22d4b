//! A compute slot: what the scheduler keeps per warehouse (its compute while it runs here, its
//! fair queue, the statements running on it, its activity clock), and the marks its life cycle
//! keeps there so that one lock covers both.

use crate::engine::Compute;
use crate::queue::FairQueue;
use std::collections::HashSet;
use std::sync::Arc;

/// A warehouse as this process runs it.
#[derive(Default)]
pub(crate) struct ComputeSlot {
    pub(crate) workspace_id: i64,
    /// Present while the warehouse runs here.
    pub(crate) compute: Option<Arc<Compute>>,
    pub(super) queue: FairQueue<String, String>,
    pub(super) running: HashSet<String>,
    pub(crate) last_activity_ms: i64,
    /// When activity was last written to the control plane.
    pub(crate) pushed_activity_ms: i64,
    /// Moves each time this process shuts the warehouse down (stop, delete, stopped
    /// elsewhere): a statement or a start that read the warehouse's record before the move
    /// must not queue on it or bring its compute back.
    pub(crate) generation: u64,
    /// The warehouse is deleted: nothing queues on it and nothing brings it back.
    pub(crate) deleted: bool,
    /// What the life cycle keeps; the scheduler never reads it.
    pub(crate) life: LifeMarks,
}

/// The life cycle's own bookkeeping of a warehouse.
#[derive(Debug, Default, Clone)]
pub(crate) struct LifeMarks {
    pub(crate) auto_stop_mins: i64,
    /// A transition this process began failed half-way (left `STOPPING`, or `STARTING` with
    /// provisioning given up): the sweeper finishes it.
    pub(crate) stuck: bool,
    /// A provisioning task runs for the warehouse.
    pub(crate) provisioning: bool,
}

impl ComputeSlot {
    /// Nothing runs or waits on it.
    pub(crate) fn is_idle(&self) -> bool {
        self.running.is_empty() && self.queue.is_empty()
    }

    /// Statements running or waiting (the API's `num_active_sessions`).
    pub(crate) fn active(&self) -> usize {
        self.running.len() + self.queue.len()
    }
}

/// Why a statement cannot queue on a warehouse slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueRefusal {
    /// Stopped (or otherwise shut down) since its record was read.
    Moved,
    Deleted,
}
