//! What a DDL statement leaves for `run`: catalog changes for the control plane, and the
//! managed files that go once the changes took effect. Also the rules on table locations that
//! every statement creating a table checks (twice: when prepared, and again before the
//! change is applied).

use super::output::{nothing, once};
use crate::engine::context::CatalogWriter;
use crate::engine::error::bad_request;
use crate::engine::error::QueryError;
use crate::engine::lake::{overlaps, Lake};
use datafusion::execution::SendableRecordBatchStream;
use lakeward_common::data::{CatalogChange, CatalogSnapshot, TableRecord};
use std::sync::Arc;

/// Work a DDL statement leaves for `run`.
pub(crate) struct Changes {
    pub(crate) lake: Arc<Lake>,
    pub(crate) writer: Arc<dyn CatalogWriter>,
    pub(crate) workspace_id: i64,
    /// The snapshot the statement was prepared against (new tables' locations are checked
    /// against it again before anything is applied).
    pub(crate) snapshot: Arc<CatalogSnapshot>,
    pub(crate) changes: Vec<CatalogChange>,
    /// Managed locations (inside the workspace's area) whose files, as listed before the
    /// changes are applied, go once the control plane says the changes took effect.
    pub(crate) wipe: Vec<String>,
}

impl Changes {
    pub(crate) async fn run(self) -> Result<SendableRecordBatchStream, QueryError> {
        for change in &self.changes {
            if let CatalogChange::CreateTable { table, .. } = change {
                check_overlap(&self.snapshot, table)?;
            }
        }
        // Listed before the changes: files written after them (an INSERT into a table just
        // created) are not the old table's and stay.
        let mut doomed = Vec::new();
        for location in &self.wipe {
            doomed.extend(self.lake.list_managed(self.workspace_id, location).await?);
        }
        let mut changed = true;
        for change in self.changes {
            changed &= self.writer.apply(change).await?.changed;
        }
        // A no-op (`IF NOT EXISTS` on a table that exists by now, `IF EXISTS` on one already
        // gone) deletes nothing: the files may belong to the table that is there.
        if changed && !doomed.is_empty() {
            self.lake.delete_managed(self.workspace_id, &doomed).await?;
        }
        Ok(once(nothing()))
    }
}

/// Whether a table's files belong to it and go with it (drop, replace): a managed table whose
/// location is a managed directory of this workspace's area. Anything else (external tables,
/// the shared samples, locations outside the area) is never deleted.
pub(crate) fn owns_files(workspace_id: i64, table: &TableRecord) -> bool {
    table.table_type == "MANAGED" && Lake::is_managed_location(workspace_id, &table.location)
}

/// `BAD_REQUEST` naming both tables when the new table's location equals, contains or lies
/// inside another table's in the workspace's snapshot (the table it replaces aside): a table
/// over another's files would read and write them under its own grants.
pub(crate) fn check_overlap(
    snapshot: &CatalogSnapshot,
    record: &TableRecord,
) -> Result<(), QueryError> {
    let other = snapshot.tables.iter().find(|t| {
        !(t.catalog == record.catalog && t.schema == record.schema && t.name == record.name)
            && overlaps(&t.location, &record.location)
    });
    match other {
        None => Ok(()),
        Some(t) => Err(bad_request(format!(
            "the location `{}` of `{}.{}.{}` overlaps the location `{}` of table `{}.{}.{}`: \
             tables cannot share files",
            record.location,
            record.catalog,
            record.schema,
            record.name,
            t.location,
            t.catalog,
            t.schema,
            t.name
        ))),
    }
}
