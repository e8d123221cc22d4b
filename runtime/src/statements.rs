//! The Statement Execution API (reference 2.11): execute, poll, fetch chunks, cancel.
//!
//! A statement's life: the execute request (`request`) resolves the caller and checks
//! `CAN_USE`, then the engine prepares the statement while the request waits (parse, plan,
//! authorize: a refusal is an HTTP 200 with `FAILED`, as Databricks answers). A prepared
//! statement waits `PENDING` in its warehouse's fair queue, runs `RUNNING` on the query
//! runtime when a slot frees, and ends `SUCCEEDED`, `FAILED` or `CANCELED`; its result is kept
//! `statement_retention_secs` after it ended or was last polled, then it is `CLOSED`. The
//! queue, the runs and the expiry are the scheduler's (`crate::scheduler`); this service
//! submits, reads and cancels.

mod handlers;
mod request;

pub(crate) use handlers::{cancel, chunk, execute, get};

#[cfg(test)]
mod tests;
