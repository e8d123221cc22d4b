//! Running statements: a free slot takes the next statement of the fair queue, which runs on
//! the query runtime; its end frees the slot for the next.

use super::statement::Statement;
use super::{SamplesState, Scheduler, StatementState};
use crate::engine::{query_error, Prepared, SqlError};
use crate::results::{ResultBuilder, ResultFormat, ResultLimits, ResultSet};
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinError;

/// A result and the tail of the `StatementResponse` that carries it.
type Outcome = Result<(ResultSet, Arc<str>), SqlError>;

impl Scheduler {
    /// Starts waiting statements while the warehouse has free slots.
    pub(crate) fn dispatch(self: &Arc<Self>, warehouse_id: &str) {
        loop {
            let next = {
                let mut slots = self.slots.lock();
                let Some(slot) = slots.get_mut(warehouse_id) else {
                    return;
                };
                let Some(compute) = slot.compute.clone() else {
                    return;
                };
                if slot.running.len() >= compute.max_concurrency().max(1) {
                    return;
                }
                let Some(id) = slot.queue.pop() else {
                    return;
                };
                slot.running.insert(id.clone());
                id
            };
            let started = self.get(&next).is_some_and(|s| self.start(&s));
            if !started {
                self.release_slot(warehouse_id, &next);
            }
        }
    }

    fn release_slot(&self, warehouse_id: &str, statement_id: &str) {
        if let Some(slot) = self.slots.lock().get_mut(warehouse_id) {
            slot.running.remove(statement_id);
        }
    }

    /// Runs a pending statement on the query runtime; `false` if it is no longer pending (a
    /// statement that cannot start is failed). A statement prepared against a catalog older
    /// than the newest state version is prepared again first, so a revoke reaches statements
    /// that waited in the queue.
    fn start(self: &Arc<Self>, statement: &Arc<Statement>) -> bool {
        let Some(host) = self.host.upgrade() else {
            self.fail_pending(
                statement,
                SqlError::new(
                    "INTERNAL_ERROR",
                    "the runtime is shutting down; the statement did not run",
                ),
            );
            return false;
        };
        let mut inner = statement.inner.lock();
        if inner.state != StatementState::Pending {
            return false;
        }
        let Some(prepared) = inner.prepared.take() else {
            if statement.transition(&mut inner, StatementState::Failed) {
                inner.error = Some(SqlError::new(
                    "INTERNAL_ERROR",
                    "the statement lost its plan before it ran",
                ));
            }
            self.settle_accounts(statement, &mut inner);
            return false;
        };
        statement.transition(&mut inner, StatementState::Running);
        let samples = statement.needs_samples.then(|| self.samples.clone());
        if host.catalog_version() <= inner.prepared_version {
            let handle = self.query.spawn(run(
                prepared,
                samples,
                statement.format,
                statement.limits,
                statement.id.clone(),
            ));
            inner.task = Some(handle.abort_handle());
            drop(inner);
            let scheduler = self.clone();
            let statement = statement.clone();
            self.io.spawn(async move {
                let outcome = handle.await;
                scheduler.finish(&statement, outcome);
            });
            return true;
        }
        drop(inner);
        drop(prepared);
        let scheduler = self.clone();
        let statement = statement.clone();
        self.io.spawn(async move {
            let prepared = match scheduler.prepare_again(host, &statement).await {
                Ok(prepared) => prepared,
                Err(error) => {
                    {
                        let mut inner = statement.inner.lock();
                        if statement.transition(&mut inner, StatementState::Failed) {
                            inner.error = Some(error);
                        }
                        scheduler.settle_accounts(&statement, &mut inner);
                    }
                    scheduler.settle(&statement);
                    return;
                }
            };
            let handle = {
                let mut inner = statement.inner.lock();
                // Cancelled (or its warehouse stopped) while it was prepared again.
                if inner.state != StatementState::Running {
                    drop(inner);
                    return scheduler.settle(&statement);
                }
                let handle = scheduler.query.spawn(run(
                    prepared,
                    samples,
                    statement.format,
                    statement.limits,
                    statement.id.clone(),
                ));
                inner.task = Some(handle.abort_handle());
                handle
            };
            let outcome = handle.await;
            scheduler.finish(&statement, outcome);
        });
        true
    }

    /// Asks the host to prepare the statement again on its warehouse's current compute.
    async fn prepare_again(
        &self,
        host: Arc<dyn super::StatementHost>,
        statement: &Arc<Statement>,
    ) -> Result<Prepared, SqlError> {
        let compute = self
            .read_slot(&statement.warehouse_id, |s| {
                s.and_then(|s| s.compute.clone())
            })
            .ok_or_else(|| {
                SqlError::new(
                    "ABORTED",
                    format!(
                        "warehouse `{}` stopped before the statement could run",
                        statement.warehouse_id
                    ),
                )
            })?;
        host.prepare_again(statement.clone(), compute).await
    }

    fn finish(self: &Arc<Self>, statement: &Arc<Statement>, outcome: Result<Outcome, JoinError>) {
        {
            let mut inner = statement.inner.lock();
            inner.task = None;
            match outcome {
                Ok(Ok((result, rendered))) => {
                    if inner.state.can_move_to(StatementState::Succeeded) {
                        let bytes = result.retained_bytes();
                        let charged = self.ledger.lock().charge(
                            &statement.owner,
                            &statement.warehouse_id,
                            bytes,
                        );
                        match charged {
                            Ok(()) => {
                                statement.transition(&mut inner, StatementState::Succeeded);
                                inner.result = Some(Arc::new(result));
                                inner.rendered = Some(rendered);
                                inner.charged = bytes;
                            }
                            Err(exhausted) => {
                                statement.transition(&mut inner, StatementState::Failed);
                                inner.error = Some(SqlError::new(
                                    "RESOURCE_EXHAUSTED",
                                    exhausted.to_string(),
                                ));
                            }
                        }
                    }
                }
                Ok(Err(error)) => {
                    if statement.transition(&mut inner, StatementState::Failed) {
                        inner.error = Some(error);
                    }
                }
                Err(join) if join.is_cancelled() => {
                    statement.transition(&mut inner, StatementState::Canceled);
                }
                Err(_) => {
                    tracing::error!(statement = %statement.id, "statement task panicked");
                    if statement.transition(&mut inner, StatementState::Failed) {
                        inner.error = Some(SqlError::new(
                            "INTERNAL_ERROR",
                            "the statement failed inside the engine",
                        ));
                    }
                }
            }
            self.settle_accounts(statement, &mut inner);
        }
        self.settle(statement);
    }

    /// A statement's slot is free again: the next one may start.
    fn settle(self: &Arc<Self>, statement: &Statement) {
        self.release_slot(&statement.warehouse_id, &statement.id);
        self.touch(&statement.warehouse_id);
        self.dispatch(&statement.warehouse_id);
    }
}

/// The statement's work, on the query runtime: run it, build its result and render it.
async fn run(
    prepared: Prepared,
    samples: Option<watch::Receiver<SamplesState>>,
    format: ResultFormat,
    limits: ResultLimits,
    statement_id: String,
) -> Outcome {
    if let Some(mut samples) = samples {
        let state = samples
            .wait_for(|s| *s != SamplesState::Generating)
            .await
            .map(|s| s.clone());
        match state {
            Ok(SamplesState::Ready) => {}
            Ok(SamplesState::Failed(_)) | Ok(SamplesState::Generating) | Err(_) => {
                return Err(SqlError::new(
                    "TEMPORARILY_UNAVAILABLE",
                    "the `samples` catalog's data could not be written; see the runtime's log",
                ))
            }
        }
    }
    let mut stream = prepared.run().await?;
    let mut builder = ResultBuilder::new(stream.schema(), format, limits, &statement_id);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(query_error)?;
        if !builder.push(&batch)? {
            break;
        }
    }
    let result = builder.finish()?;
    let rendered = render_result(&result);
    Ok((result, rendered))
}

/// The manifest and first chunk of a result, as the tail of a `StatementResponse` object.
fn render_result(result: &ResultSet) -> Arc<str> {
    let first = result.chunk(0);
    let mut tail =
        String::with_capacity(result.manifest().len() + first.as_ref().map_or(0, |c| c.len()) + 24);
    tail.push_str(",\"manifest\":");
    tail.push_str(result.manifest());
    if let Some(chunk) = first {
        tail.push_str(",\"result\":");
        tail.push_str(&String::from_utf8_lossy(&chunk));
    }
    Arc::from(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_exhaustion_is_resource_exhausted() {
        let err = query_error(datafusion::error::DataFusionError::ResourcesExhausted(
            "pool full".into(),
        ));
        assert_eq!(err.error_code, "RESOURCE_EXHAUSTED");
        let err = query_error(datafusion::error::DataFusionError::Context(
            "ctx".into(),
            Box::new(datafusion::error::DataFusionError::ResourcesExhausted(
                "x".into(),
            )),
        ));
        assert_eq!(err.error_code, "RESOURCE_EXHAUSTED");
    }
}
