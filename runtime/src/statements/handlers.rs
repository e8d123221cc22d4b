//! The Statement Execution API's handlers: execute, poll, fetch a chunk, cancel.

use super::request::ExecuteBody;
use crate::caller::CallerCtx;
use crate::engine::{Prepared, SqlError, StatementInput};
use crate::error::ServiceError;
use crate::http::{json_bytes_response, json_response, json_text_response, Claims, JsonBody};
use crate::results::{ResultLimits, INLINE_LIMIT_BYTES};
use crate::scheduler::{NewStatement, QueueRefusal, Statement, StatementState};
use crate::state::Shared;
use crate::warehouses::lifecycle::{start_warehouse, state_name, stop_warehouse};
use crate::warehouses::permissions::require;
use crate::warehouses::spec::sizing_of;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use lakeward_common::assertion::IdentityClaims;
use lakeward_common::data::{WarehouseRecord, WarehouseState, TOUCHED_HEADER};
use lakeward_policy::Securable;
use serde_json::json;
use std::sync::Arc;

type Handled = Result<Response, ServiceError>;

fn touched_header(prepared: &Prepared) -> Option<HeaderValue> {
    if prepared.touched.is_empty() {
        return None;
    }
    let text = prepared
        .touched
        .iter()
        .map(|t| format!("{} {}", t.action, t.securable.full_name()))
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&text).ok()
}

/// What a refused statement attempted (`<Action> <full name>`), so the audit record names it.
fn denied_header(error: &SqlError) -> Option<HeaderValue> {
    let denied = error.denied.as_ref()?;
    HeaderValue::from_str(&format!(
        "{} {}",
        denied.action,
        denied.securable.full_name()
    ))
    .ok()
}

fn catalog_of(securable: &Securable) -> &str {
    match securable {
        Securable::Catalog { name } => name,
        Securable::Schema { catalog, .. } | Securable::Table { catalog, .. } => catalog,
    }
}

pub(crate) async fn execute(
    State(shared): State<Arc<Shared>>,
    Claims(claims): Claims,
    JsonBody(body): JsonBody<ExecuteBody>,
) -> Handled {
    let request = body.check()?;
    let ctx = shared.resolve_caller(claims).await?;
    let (record, seen) = usable_warehouse(&shared, &ctx, &request.warehouse_id).await?;
    let compute = shared.compute_for(&record.id, sizing_of(&record)).await?;
    let context = shared.statement_context(&ctx, compute).await?;
    let input = StatementInput {
        sql: request.statement.clone(),
        parameters: request.parameters.clone(),
        catalog: request.catalog.clone(),
        schema: request.schema.clone(),
    };
    let prepared_version = context.access.snapshot.version;
    let prepared = shared.prepare(context, input.clone()).await;
    let (touched, needs_samples) = match &prepared {
        Ok(prepared) => (
            touched_header(prepared),
            prepared
                .touched
                .iter()
                .any(|t| catalog_of(&t.securable) == "samples"),
        ),
        Err(err) => (denied_header(err), false),
    };
    let statement = shared
        .scheduler
        .submit(NewStatement {
            claims: ctx.claims.clone(),
            input,
            workspace_id: ctx.workspace_id,
            warehouse_id: record.id.clone(),
            format: request.format,
            limits: ResultLimits {
                chunk_bytes: shared.config.result_chunk_bytes,
                row_limit: request.row_limit,
                byte_limit: request.byte_limit,
                inline_cap: INLINE_LIMIT_BYTES,
            },
            needs_samples,
            prepared,
            prepared_version,
        })
        .map_err(|exhausted| ServiceError::ResourceExhausted(exhausted.to_string()))?;
    if statement.state() == StatementState::Pending {
        match queue_on_warehouse(&shared, &ctx, &statement, record, seen).await {
            Ok((record, seen)) => {
                shared.scheduler.touch(&record.id);
                // Databricks starts a stopped warehouse for a statement; it waits PENDING
                // meanwhile.
                if let Err(err) = start_warehouse(&shared, record, seen, ctx.request_id()).await {
                    shared
                        .scheduler
                        .fail_pending(&statement, SqlError::new("INTERNAL_ERROR", err.message()));
                }
                shared.scheduler.dispatch(&statement.warehouse_id);
            }
            Err(err) => shared.scheduler.fail_pending(&statement, err),
        }
        if !request.wait.is_zero()
            && !statement.wait_until_done(request.wait).await
            && request.cancel_on_timeout
        {
            shared.scheduler.cancel(&statement);
        }
    }
    let mut response = json_text_response(statement.response());
    if let Some(touched) = touched {
        response.headers_mut().insert(TOUCHED_HEADER, touched);
    }
    Ok(response)
}

/// The warehouse a statement may run on, and the slot generation read before its record. The
/// caller needs `CAN_USE`; a deleted warehouse is refused; one left `STOPPING` has its stop
/// finished (it then starts like any stopped warehouse).
async fn usable_warehouse(
    shared: &Arc<Shared>,
    ctx: &CallerCtx,
    warehouse_id: &str,
) -> Result<(WarehouseRecord, u64), ServiceError> {
    for _ in 0..3 {
        let seen = shared.scheduler.generation(warehouse_id);
        let record = shared
            .control
            .get_warehouse(ctx.workspace_id, warehouse_id, ctx.request_id())
            .await?;
        require(ctx, &record, "CAN_USE")?;
        match record.state {
            WarehouseState::Deleted | WarehouseState::Deleting => {
                return Err(ServiceError::InvalidState(format!(
                    "warehouse `{}` is deleted",
                    record.id
                )))
            }
            WarehouseState::Stopping => {
                stop_warehouse(shared, &record, ctx.request_id()).await?;
            }
            _ => return Ok((record, seen)),
        }
    }
    Err(ServiceError::InvalidState(format!(
        "warehouse `{warehouse_id}` is stopping; try again once it has stopped"
    )))
}

/// Queues a prepared statement on its warehouse. When the warehouse was stopped since its
/// record was read, the record is read again and the statement follows it (a stopped warehouse
/// starts for it, and it is prepared again before it runs); a deleted one fails it.
async fn queue_on_warehouse(
    shared: &Arc<Shared>,
    ctx: &CallerCtx,
    statement: &Statement,
    record: WarehouseRecord,
    seen: u64,
) -> Result<(WarehouseRecord, u64), SqlError> {
    let (mut record, mut seen) = (record, seen);
    for _ in 0..3 {
        match shared
            .scheduler
            .enqueue(statement, record.workspace_id, seen)
        {
            Ok(()) => return Ok((record, seen)),
            Err(QueueRefusal::Deleted) => {
                return Err(SqlError::new(
                    "ABORTED",
                    format!(
                        "warehouse `{}` was deleted (its state is DELETED) before the statement could run",
                        record.id
                    ),
                ))
            }
            Err(QueueRefusal::Moved) => {
                statement.plan_again();
                (record, seen) = usable_warehouse(shared, ctx, &record.id)
                    .await
                    .map_err(|err| {
                        SqlError::new(
                            "ABORTED",
                            format!(
                                "warehouse `{}` changed before the statement could run: {}",
                                record.id,
                                err.message()
                            ),
                        )
                    })?;
            }
        }
    }
    Err(SqlError::new(
        "ABORTED",
        format!(
            "warehouse `{}` kept stopping (its state is {}) before the statement could run",
            record.id,
            state_name(record.state)
        ),
    ))
}

/// The caller's statement, or 404 (another caller's statement does not exist for them,
/// workspace admins excepted).
async fn visible(
    shared: &Shared,
    claims: IdentityClaims,
    id: &str,
) -> Result<Arc<Statement>, ServiceError> {
    let not_found = || {
        ServiceError::NotFound(format!(
            "statement `{}` does not exist",
            id.chars().take(64).collect::<String>()
        ))
    };
    let statement = shared.scheduler.get(id).ok_or_else(not_found)?;
    if claims.workspace_id != Some(statement.workspace_id) {
        return Err(not_found());
    }
    if claims.sub != statement.owner {
        let ctx = shared.resolve_caller(claims).await?;
        if !ctx.is_admin() {
            return Err(not_found());
        }
    }
    statement.mark_polled();
    Ok(statement)
}

pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Claims(claims): Claims,
    Path(id): Path<String>,
) -> Handled {
    let statement = visible(&shared, claims, &id).await?;
    Ok(json_text_response(statement.response()))
}

pub(crate) async fn cancel(
    State(shared): State<Arc<Shared>>,
    Claims(claims): Claims,
    Path(id): Path<String>,
) -> Handled {
    let statement = visible(&shared, claims, &id).await?;
    shared.scheduler.cancel(&statement);
    Ok(json_response(&json!({})))
}

pub(crate) async fn chunk(
    State(shared): State<Arc<Shared>>,
    Claims(claims): Claims,
    Path((id, index)): Path<(String, String)>,
) -> Handled {
    let statement = visible(&shared, claims, &id).await?;
    let index: usize = index.parse().map_err(|_| {
        ServiceError::invalid(
            "chunk_index",
            format!("chunk index `{index}` is not a number"),
        )
    })?;
    let Some(result) = statement.result() else {
        return Err(ServiceError::InvalidState(format!(
            "statement `{id}` has no result to fetch (its state is {})",
            statement.state().as_str()
        )));
    };
    let data = result.chunk(index).ok_or_else(|| {
        ServiceError::invalid(
            "chunk_index",
            format!(
                "chunk {index} does not exist: the result has {} chunks",
                result.chunks.len()
            ),
        )
    })?;
    Ok(json_bytes_response(StatusCode::OK, data))
}
