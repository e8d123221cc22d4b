//! Warehouse permission levels (`CAN_VIEW` < `CAN_USE` < `CAN_MONITOR` < `IS_OWNER` <
//! `CAN_MANAGE`, as `WAREHOUSE_LEVELS` orders them), held directly or through a group.

use super::spec::name_of;
use crate::caller::CallerCtx;
use crate::error::ServiceError;
use lakeward_common::data::{WarehouseRecord, WAREHOUSE_LEVELS};

fn rank(level: &str) -> Option<usize> {
    WAREHOUSE_LEVELS.iter().position(|l| *l == level)
}

/// The caller's strongest level on the warehouse (admins hold every level).
pub(crate) fn caller_rank(ctx: &CallerCtx, record: &WarehouseRecord) -> Option<usize> {
    if ctx.is_admin() {
        return Some(WAREHOUSE_LEVELS.len() - 1);
    }
    record
        .acl
        .iter()
        .filter(|e| ctx.stands_for(&e.grantee_id))
        .filter_map(|e| rank(&e.permission_level))
        .max()
}

/// Refuses unless the caller holds `level` or more.
pub(crate) fn require(
    ctx: &CallerCtx,
    record: &WarehouseRecord,
    level: &str,
) -> Result<(), ServiceError> {
    let needed = rank(level).unwrap_or(usize::MAX);
    if caller_rank(ctx, record).is_some_and(|r| r >= needed) {
        Ok(())
    } else {
        Err(ServiceError::PermissionDenied(format!(
            "the caller needs {level} on warehouse `{}` ({})",
            name_of(record),
            record.id
        )))
    }
}
