//! The SQL warehouses service: its API (`handlers`), the spec a warehouse is created with
//! (`spec`), permission levels (`permissions`), the life cycle (`lifecycle`) and the
//! sweeper's steps (`upkeep`). Definitions, state and permissions live in the control plane;
//! the compute, the statement queue and the activity clock live in the scheduler, which the
//! life cycle informs.

mod handlers;
pub(crate) mod lifecycle;
pub(crate) mod permissions;
pub(crate) mod spec;
pub(crate) mod upkeep;

pub(crate) use handlers::{create, delete, edit, get, list, start, stop};

#[cfg(test)]
mod tests;
