//! The Statement Execution API (reference 2.11): execute, poll, fetch chunks, cancel.
//!
//! A statement's life: the execute request resolves the caller and checks `CAN_USE`, then the
//! engine prepares the statement while the request waits (parse, plan, authorize: a refusal is
//! an HTTP 200 with `FAILED`, as Databricks answers). A prepared statement waits `PENDING` in
//! its warehouse's fair queue, runs `RUNNING` on the query runtime when a slot frees, and ends
//! `SUCCEEDED`, `FAILED` or `CANCELED`; its result is kept `statement_retention_secs` after it
//! ended or was last polled, then it is `CLOSED`.

use crate::engine::{Parameter, Prepared, SqlError, StatementContext, StatementInput};
use crate::results::{ResultBuilder, ResultFormat, ResultLimits, ResultSet, INLINE_LIMIT_BYTES};
use crate::service::{
    caller, compute_for, json_response, json_text_response, parse_body, statement_context,
    CallerCtx, Failure, SamplesState, Shared,
};
use crate::warehouses::{self, require, sizing_of, state_name, QueueRefusal};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Extension;
use futures::StreamExt;
use lakeward_common::assertion::IdentityClaims;
use lakeward_common::data::{WarehouseRecord, WarehouseState, TOUCHED_HEADER};
use lakeward_common::error::{ApiError, ErrorCode};
use lakeward_policy::Securable;
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Canceled,
    Closed,
}

impl StatementState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatementState::Pending => "PENDING",
            StatementState::Running => "RUNNING",
            StatementState::Succeeded => "SUCCEEDED",
            StatementState::Failed => "FAILED",
            StatementState::Canceled => "CANCELED",
            StatementState::Closed => "CLOSED",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, StatementState::Pending | StatementState::Running)
    }

    /// The transitions a statement may make; anything else (a result arriving after a
    /// cancel, say) is ignored.
    pub fn can_move_to(self, next: StatementState) -> bool {
        use StatementState::*;
        matches!(
            (self, next),
            (Pending, Running | Failed | Canceled)
                | (Running, Succeeded | Failed | Canceled)
                | (Succeeded | Failed | Canceled, Closed)
        )
    }
}

/// An execute request, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteRequest {
    pub statement: String,
    pub warehouse_id: String,
    pub wait: Duration,
    pub cancel_on_timeout: bool,
    pub format: ResultFormat,
    pub parameters: Vec<Parameter>,
    pub row_limit: Option<u64>,
    pub byte_limit: Option<u64>,
    pub catalog: Option<String>,
    pub schema: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_parameter(message)
}

fn opt_str<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("`{field}` must be a string"))),
    }
}

fn opt_positive(body: &Map<String, Value>, field: &str) -> Result<Option<u64>, ApiError> {
    let value = match body.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    };
    match value {
        Some(v) if v >= 1 => Ok(Some(v)),
        _ => Err(invalid(format!("`{field}` must be a positive integer"))),
    }
}

/// `"0s"`, or `"5s"` to `"50s"`.
pub fn parse_wait_timeout(text: &str) -> Result<Duration, ApiError> {
    let secs = text
        .strip_suffix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n == 0 || (5..=50).contains(n));
    secs.map(Duration::from_secs).ok_or_else(|| {
        invalid(format!(
            "`wait_timeout` must be `0s` or between `5s` and `50s`, not `{text}`"
        ))
    })
}

pub fn parse_execute(body: &Map<String, Value>) -> Result<ExecuteRequest, ApiError> {
    let statement = opt_str(body, "statement")?.unwrap_or_default();
    if statement.trim().is_empty() {
        return Err(invalid("`statement` is required"));
    }
    let warehouse_id = opt_str(body, "warehouse_id")?.unwrap_or_default();
    if warehouse_id.is_empty() {
        return Err(invalid("`warehouse_id` is required"));
    }
    let wait = parse_wait_timeout(opt_str(body, "wait_timeout")?.unwrap_or("10s"))?;
    let cancel_on_timeout = match opt_str(body, "on_wait_timeout")?.unwrap_or("CONTINUE") {
        "CONTINUE" => false,
        "CANCEL" => true,
        other => {
            return Err(invalid(format!(
                "`on_wait_timeout` must be CONTINUE or CANCEL, not `{other}`"
            )))
        }
    };
    match opt_str(body, "disposition")?.unwrap_or("INLINE") {
        "INLINE" => {}
        "EXTERNAL_LINKS" => {
            return Err(invalid(
                "`disposition` EXTERNAL_LINKS is not supported by Lakeward; use INLINE",
            ))
        }
        other => {
            return Err(invalid(format!(
                "`disposition` must be INLINE, not `{other}`"
            )))
        }
    }
    let format = match opt_str(body, "format")?.unwrap_or("JSON_ARRAY") {
        "JSON_ARRAY" => ResultFormat::JsonArray,
        "ARROW_STREAM" => ResultFormat::ArrowStream,
        "CSV" => {
            return Err(invalid(
                "`format` CSV is not supported by Lakeward (it needs EXTERNAL_LINKS); use JSON_ARRAY or ARROW_STREAM",
            ))
        }
        other => {
            return Err(invalid(format!(
                "`format` must be JSON_ARRAY or ARROW_STREAM, not `{other}`"
            )))
        }
    };
    let mut parameters = Vec::new();
    match body.get("parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::Object(item) = item else {
                    return Err(invalid("`parameters` entries must be objects"));
                };
                let name = opt_str(item, "name")
                    .map_err(|_| invalid("`parameters[].name` must be a string"))?
                    .unwrap_or_default();
                if name.is_empty() {
                    return Err(invalid("`parameters[].name` is required"));
                }
                let value = match item.get("value") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
                    Some(_) => {
                        return Err(invalid(format!(
                            "`parameters[].value` of `{name}` must be a string"
                        )))
                    }
                };
                let type_name = opt_str(item, "type")
                    .map_err(|_| invalid("`parameters[].type` must be a string"))?
                    .map(str::to_owned);
                parameters.push(Parameter {
                    name: name.to_owned(),
                    value,
                    type_name,
                });
            }
        }
        Some(_) => return Err(invalid("`parameters` must be a list")),
    }
    Ok(ExecuteRequest {
        statement: statement.to_owned(),
        warehouse_id: warehouse_id.to_owned(),
        wait,
        cancel_on_timeout,
        format,
        parameters,
        row_limit: opt_positive(body, "row_limit")?,
        byte_limit: opt_positive(body, "byte_limit")?,
        catalog: opt_str(body, "catalog")?.map(str::to_owned),
        schema: opt_str(body, "schema")?.map(str::to_owned),
    })
}

/// One statement, from submission until it is forgotten.
pub(crate) struct Statement {
    pub(crate) id: String,
    owner: String,
    /// The assertion it was submitted with: a statement prepared against an older catalog is
    /// prepared again for this caller before it runs.
    claims: IdentityClaims,
    input: StatementInput,
    submitted: Instant,
    workspace_id: i64,
    pub(crate) warehouse_id: String,
    format: ResultFormat,
    limits: ResultLimits,
    needs_samples: bool,
    inner: Mutex<Inner>,
    changed: watch::Sender<StatementState>,
}

struct Inner {
    state: StatementState,
    error: Option<SqlError>,
    result: Option<Arc<ResultSet>>,
    prepared: Option<Prepared>,
    /// The state version of the catalog `prepared` was authorized against (0: prepare again).
    prepared_version: u64,
    /// `,"manifest":…,"result":…` of a succeeded statement, serialized once.
    rendered: Option<Arc<str>>,
    task: Option<AbortHandle>,
    finished: Option<Instant>,
    last_polled: Instant,
}

impl Statement {
    fn transition(&self, inner: &mut Inner, next: StatementState) -> bool {
        if !inner.state.can_move_to(next) {
            return false;
        }
        inner.state = next;
        if next.is_terminal() && inner.finished.is_none() {
            inner.finished = Some(Instant::now());
        }
        self.changed.send_replace(next);
        true
    }

    fn state(&self) -> StatementState {
        *self.changed.borrow()
    }

    /// `StatementResponse`, serialized. The result part was serialized when the statement
    /// ended; the lock is held only to copy the status.
    fn response(&self) -> String {
        let (state, error, rendered) = match self.inner.lock() {
            Ok(inner) => (
                inner.state,
                inner.error.clone(),
                if inner.state == StatementState::Succeeded {
                    inner.rendered.clone()
                } else {
                    None
                },
            ),
            Err(_) => (StatementState::Failed, None, None),
        };
        let mut status = json!({"state": state.as_str()});
        if let Some(err) = &error {
            status["error"] = json!({"error_code": err.error_code, "message": err.message});
            if let Some(sql_state) = &err.sql_state {
                status["sql_state"] = json!(sql_state);
            }
        }
        format!(
            "{{\"statement_id\":{},\"status\":{}{}}}",
            json!(self.id),
            status,
            rendered.as_deref().unwrap_or_default()
        )
    }
}

/// The manifest and first chunk of a result, as the tail of a `StatementResponse` object.
fn render_result(statement_id: &str, result: &ResultSet) -> Arc<str> {
    let mut tail = format!(",\"manifest\":{}", result.manifest());
    if let Some(chunk) = result.chunk(statement_id, 0) {
        tail.push_str(&format!(",\"result\":{chunk}"));
    }
    Arc::from(tail)
}

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
    Extension(claims): Extension<IdentityClaims>,
    body: Bytes,
) -> Result<Response, Failure> {
    let request = parse_execute(&parse_body(&body)?)?;
    let ctx = caller(&shared, claims).await?;
    let (record, seen) = usable_warehouse(&shared, &ctx, &request.warehouse_id).await?;
    let compute = compute_for(&shared, &record.id, sizing_of(&record)).await?;
    let context = statement_context(&shared, &ctx, compute).await?;
    let input = StatementInput {
        sql: request.statement.clone(),
        parameters: request.parameters.clone(),
        catalog: request.catalog.clone(),
        schema: request.schema.clone(),
    };
    let prepared_version = context.access.snapshot.version;
    let prepared = prepare(&shared, context, input.clone()).await;
    let id = uuid::Uuid::new_v4().to_string();
    let limits = ResultLimits {
        chunk_bytes: shared.config.result_chunk_bytes,
        row_limit: request.row_limit,
        byte_limit: request.byte_limit,
        inline_cap: INLINE_LIMIT_BYTES,
    };
    let (state, error, prepared, touched, needs_samples) = match prepared {
        Ok(prepared) => {
            let touched = touched_header(&prepared);
            let needs_samples = prepared
                .touched
                .iter()
                .any(|t| catalog_of(&t.securable) == "samples");
            (
                StatementState::Pending,
                None,
                Some(prepared),
                touched,
                needs_samples,
            )
        }
        Err(err) => {
            let touched = denied_header(&err);
            (StatementState::Failed, Some(err), None, touched, false)
        }
    };
    let statement = Arc::new(Statement {
        id: id.clone(),
        owner: ctx.claims.sub.clone(),
        claims: ctx.claims.clone(),
        input,
        submitted: Instant::now(),
        workspace_id: ctx.workspace_id,
        warehouse_id: record.id.clone(),
        format: request.format,
        limits,
        needs_samples,
        inner: Mutex::new(Inner {
            state,
            error,
            result: None,
            finished: state.is_terminal().then(Instant::now),
            prepared,
            prepared_version,
            rendered: None,
            task: None,
            last_polled: Instant::now(),
        }),
        changed: watch::channel(state).0,
    });
    if let Ok(mut statements) = shared.statements.lock() {
        statements.insert(id.clone(), statement.clone());
    }
    if state == StatementState::Pending {
        match queue_on_warehouse(&shared, &ctx, &statement, record, seen).await {
            Ok((record, seen)) => {
                warehouses::touch(&shared, &record.id);
                // Databricks starts a stopped warehouse for a statement; it waits PENDING
                // meanwhile.
                if let Err(err) =
                    warehouses::start_warehouse(&shared, record, seen, ctx.request_id()).await
                {
                    fail_pending(
                        &shared,
                        &statement,
                        SqlError::new("INTERNAL_ERROR", err.message),
                    );
                }
                dispatch(&shared, &statement.warehouse_id);
            }
            Err(err) => fail_pending(&shared, &statement, err),
        }
        if !request.wait.is_zero() {
            let mut changes = statement.changed.subscribe();
            let waited =
                tokio::time::timeout(request.wait, changes.wait_for(|s| s.is_terminal())).await;
            if waited.is_err() && request.cancel_on_timeout {
                cancel_statement(&shared, &statement);
            }
        }
    }
    let mut response = json_text_response(statement.response());
    if let Some(touched) = touched {
        response.headers_mut().insert(TOUCHED_HEADER, touched);
    }
    Ok(response)
}

/// Parses, plans and authorizes on the query runtime: planning reads file footers and builds
/// plans, query work, even while a request waits for it.
async fn prepare(
    shared: &Shared,
    context: StatementContext,
    input: StatementInput,
) -> Result<Prepared, SqlError> {
    match shared.query_handle() {
        Some(query) => {
            let engine = shared.engine.clone();
            query
                .spawn(async move { engine.prepare(context, input).await })
                .await
                .unwrap_or_else(|e| {
                    Err(SqlError::new(
                        "INTERNAL_ERROR",
                        format!("planning the statement stopped: {e}"),
                    ))
                })
        }
        None => shared.engine.prepare(context, input).await,
    }
}

/// The warehouse a statement may run on, and the slot generation read before its record. The
/// caller needs `CAN_USE`; a deleted warehouse is refused; one left `STOPPING` has its stop
/// finished (it then starts like any stopped warehouse).
async fn usable_warehouse(
    shared: &Arc<Shared>,
    ctx: &CallerCtx,
    warehouse_id: &str,
) -> Result<(WarehouseRecord, u64), ApiError> {
    for _ in 0..3 {
        let seen = warehouses::generation(shared, warehouse_id);
        let record = shared
            .control
            .get_warehouse(ctx.workspace_id, warehouse_id, ctx.request_id())
            .await?;
        require(ctx, &record, "CAN_USE")?;
        match record.state {
            WarehouseState::Deleted | WarehouseState::Deleting => {
                return Err(ApiError::new(
                    ErrorCode::InvalidState,
                    format!("warehouse `{}` is deleted", record.id),
                ))
            }
            WarehouseState::Stopping => {
                warehouses::stop_warehouse(shared, &record, ctx.request_id()).await?;
            }
            _ => return Ok((record, seen)),
        }
    }
    Err(ApiError::new(
        ErrorCode::InvalidState,
        format!("warehouse `{warehouse_id}` is stopping; try again once it has stopped"),
    ))
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
        match warehouses::enqueue(shared, &record, seen, &ctx.claims.sub, &statement.id) {
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
                if let Ok(mut inner) = statement.inner.lock() {
                    inner.prepared_version = 0;
                }
                (record, seen) = usable_warehouse(shared, ctx, &record.id)
                    .await
                    .map_err(|err| {
                        SqlError::new(
                            "ABORTED",
                            format!(
                                "warehouse `{}` changed before the statement could run: {}",
                                record.id, err.message
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

fn fail_pending(shared: &Shared, statement: &Statement, error: SqlError) {
    if let Ok(mut inner) = statement.inner.lock() {
        if statement.transition(&mut inner, StatementState::Failed) {
            inner.error = Some(error);
            inner.prepared = None;
        }
    }
    if let Ok(mut slots) = shared.warehouses.lock() {
        if let Some(slot) = slots.get_mut(&statement.warehouse_id) {
            slot.queue.remove(&statement.id);
        }
    }
}

/// Fails a pending statement (one whose warehouse could not start, say).
pub(crate) fn fail_by_id(shared: &Shared, id: &str, error: SqlError) {
    let statement = shared
        .statements
        .lock()
        .ok()
        .and_then(|s| s.get(id).cloned());
    if let Some(statement) = statement {
        fail_pending(shared, &statement, error);
    }
}

/// Starts waiting statements while the warehouse has free slots.
pub(crate) fn dispatch(shared: &Arc<Shared>, warehouse_id: &str) {
    loop {
        let next = match shared.warehouses.lock() {
            Ok(mut slots) => {
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
            }
            Err(_) => return,
        };
        let statement = shared
            .statements
            .lock()
            .ok()
            .and_then(|s| s.get(&next).cloned());
        let started = statement.is_some_and(|s| start(shared, &s));
        if !started {
            release_slot(shared, warehouse_id, &next);
        }
    }
}

fn release_slot(shared: &Shared, warehouse_id: &str, statement_id: &str) {
    if let Ok(mut slots) = shared.warehouses.lock() {
        if let Some(slot) = slots.get_mut(warehouse_id) {
            slot.running.remove(statement_id);
        }
    }
}

/// Runs a pending statement on the query runtime; `false` if it is no longer pending (a
/// statement that cannot start is failed). A statement prepared against a catalog older than
/// the newest state version is prepared again first, so a revoke reaches statements that
/// waited in the queue.
fn start(shared: &Arc<Shared>, statement: &Arc<Statement>) -> bool {
    let Some(query) = shared.query_handle() else {
        fail_pending(
            shared,
            statement,
            SqlError::new(
                "INTERNAL_ERROR",
                "the runtime is shutting down; the statement did not run",
            ),
        );
        return false;
    };
    let Ok(mut inner) = statement.inner.lock() else {
        return false;
    };
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
        return false;
    };
    statement.transition(&mut inner, StatementState::Running);
    let samples = statement.needs_samples.then(|| shared.samples.clone());
    if shared.control.version() <= inner.prepared_version {
        let handle = query.spawn(run(prepared, samples, statement.format, statement.limits));
        inner.task = Some(handle.abort_handle());
        drop(inner);
        let shared = shared.clone();
        let statement = statement.clone();
        shared.io.clone().spawn(async move {
            let outcome = handle.await;
            finish(&shared, &statement, outcome);
        });
        return true;
    }
    drop(inner);
    drop(prepared);
    let shared = shared.clone();
    let statement = statement.clone();
    shared.io.clone().spawn(async move {
        let prepared = match prepare_again(&shared, &statement).await {
            Ok(prepared) => prepared,
            Err(error) => {
                if let Ok(mut inner) = statement.inner.lock() {
                    if statement.transition(&mut inner, StatementState::Failed) {
                        inner.error = Some(error);
                    }
                }
                settle(&shared, &statement);
                return;
            }
        };
        let handle = {
            let Ok(mut inner) = statement.inner.lock() else {
                return settle(&shared, &statement);
            };
            // Cancelled (or its warehouse stopped) while it was prepared again.
            if inner.state != StatementState::Running {
                drop(inner);
                return settle(&shared, &statement);
            }
            let handle = query.spawn(run(prepared, samples, statement.format, statement.limits));
            inner.task = Some(handle.abort_handle());
            handle
        };
        let outcome = handle.await;
        finish(&shared, &statement, outcome);
    });
    true
}

/// Prepares a statement again for its caller against the current catalog, policies and its
/// warehouse's current compute.
async fn prepare_again(shared: &Arc<Shared>, statement: &Statement) -> Result<Prepared, SqlError> {
    let unavailable = |err: ApiError| match err.code {
        ErrorCode::PermissionDenied => {
            SqlError::new("PERMISSION_DENIED", err.message).with_sql_state("42501")
        }
        _ => SqlError::new(
            "TEMPORARILY_UNAVAILABLE",
            format!(
                "the statement could not be authorized again: {}",
                err.message
            ),
        ),
    };
    let ctx = caller(shared, statement.claims.clone())
        .await
        .map_err(unavailable)?;
    let compute = shared
        .warehouses
        .lock()
        .ok()
        .and_then(|w| {
            w.get(&statement.warehouse_id)
                .and_then(|s| s.compute.clone())
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
    let context = statement_context(shared, &ctx, compute)
        .await
        .map_err(unavailable)?;
    prepare(shared, context, statement.input.clone()).await
}

/// The statement's work, on the query runtime: run it and build its result.
async fn run(
    prepared: Prepared,
    samples: Option<watch::Receiver<SamplesState>>,
    format: ResultFormat,
    limits: ResultLimits,
) -> Result<ResultSet, SqlError> {
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
    let mut builder = ResultBuilder::new(stream.schema(), format, limits);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(datafusion_error)?;
        if !builder.push(&batch)? {
            break;
        }
    }
    builder.finish()
}

/// A failure while the statement ran, as its `FAILED` status.
pub(crate) fn datafusion_error(err: datafusion::error::DataFusionError) -> SqlError {
    use datafusion::error::DataFusionError as E;
    let root = err.find_root();
    match root {
        E::ResourcesExhausted(message) => SqlError::new(
            "RESOURCE_EXHAUSTED",
            format!("the statement ran out of memory on this warehouse: {message}"),
        ),
        E::IoError(_) | E::ObjectStore(_) | E::ParquetError(_) => {
            tracing::warn!(error = %root, "statement failed reading the lake");
            SqlError::new("IO_ERROR", "reading the table's data failed")
        }
        E::Internal(_) => {
            tracing::error!(error = %root, "statement failed inside the engine");
            SqlError::new("INTERNAL_ERROR", "the statement failed inside the engine")
        }
        other => SqlError::new("BAD_REQUEST", other.to_string()),
    }
}

fn finish(
    shared: &Arc<Shared>,
    statement: &Arc<Statement>,
    outcome: Result<Result<ResultSet, SqlError>, JoinError>,
) {
    // The response's result part is serialized once, here, outside the statement's lock.
    let outcome = outcome.map(|result| {
        result.map(|result| {
            let rendered = render_result(&statement.id, &result);
            (Arc::new(result), rendered)
        })
    });
    if let Ok(mut inner) = statement.inner.lock() {
        inner.task = None;
        match outcome {
            Ok(Ok((result, rendered))) => {
                if statement.transition(&mut inner, StatementState::Succeeded) {
                    inner.result = Some(result);
                    inner.rendered = Some(rendered);
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
    }
    settle(shared, statement);
}

/// A statement's slot is free again: the next one may start.
fn settle(shared: &Arc<Shared>, statement: &Statement) {
    release_slot(shared, &statement.warehouse_id, &statement.id);
    warehouses::touch(shared, &statement.warehouse_id);
    dispatch(shared, &statement.warehouse_id);
}

/// Cancels a pending or running statement; the work stops at its next await point.
fn cancel_statement(shared: &Shared, statement: &Statement) {
    let (was_pending, abort) = {
        let Ok(mut inner) = statement.inner.lock() else {
            return;
        };
        match inner.state {
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
        }
    };
    if was_pending {
        if let Ok(mut slots) = shared.warehouses.lock() {
            if let Some(slot) = slots.get_mut(&statement.warehouse_id) {
                slot.queue.remove(&statement.id);
            }
        }
    }
    if let Some(abort) = abort {
        abort.abort();
    }
}

pub(crate) fn cancel_by_id(shared: &Shared, id: &str, reason: &str) {
    let statement = shared
        .statements
        .lock()
        .ok()
        .and_then(|s| s.get(id).cloned());
    if let Some(statement) = statement {
        tracing::debug!(statement = %id, reason, "cancelling");
        cancel_statement(shared, &statement);
    }
}

/// Closes statements whose results have expired, forgets long-closed ones, and fails
/// statements that stayed `PENDING` longer than the retention (a warehouse that never came up).
pub(crate) fn expire(shared: &Shared) {
    let retention = Duration::from_secs(shared.config.statement_retention_secs);
    let mut stale = Vec::new();
    if let Ok(mut statements) = shared.statements.lock() {
        statements.retain(|_, statement| {
            let Ok(mut inner) = statement.inner.lock() else {
                return true;
            };
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
                return since.elapsed() < retention * 2;
            }
            if since.elapsed() >= retention {
                statement.transition(&mut inner, StatementState::Closed);
                inner.result = None;
                inner.rendered = None;
                inner.error = None;
            }
            true
        });
    }
    for statement in stale {
        let error = SqlError::new(
            "TEMPORARILY_UNAVAILABLE",
            format!(
                "the statement waited {}s for warehouse `{}` without starting",
                retention.as_secs(),
                statement.warehouse_id
            ),
        );
        fail_pending(shared, &statement, error);
    }
}

/// The caller's statement, or 404 (another caller's statement does not exist for them,
/// workspace admins excepted).
async fn visible(
    shared: &Shared,
    claims: IdentityClaims,
    id: &str,
) -> Result<Arc<Statement>, ApiError> {
    let not_found = || {
        ApiError::not_found(format!(
            "statement `{}` does not exist",
            id.chars().take(64).collect::<String>()
        ))
    };
    let statement = shared
        .statements
        .lock()
        .ok()
        .and_then(|s| s.get(id).cloned())
        .ok_or_else(not_found)?;
    if claims.workspace_id != Some(statement.workspace_id) {
        return Err(not_found());
    }
    if claims.sub != statement.owner {
        let ctx = caller(shared, claims).await?;
        if !ctx.is_admin() {
            return Err(not_found());
        }
    }
    if let Ok(mut inner) = statement.inner.lock() {
        inner.last_polled = Instant::now();
    }
    Ok(statement)
}

pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let statement = visible(&shared, claims, &id).await?;
    Ok(json_text_response(statement.response()))
}

pub(crate) async fn cancel(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let statement = visible(&shared, claims, &id).await?;
    cancel_statement(&shared, &statement);
    Ok(json_response(&json!({})))
}

pub(crate) async fn chunk(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    Path((id, index)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let statement = visible(&shared, claims, &id).await?;
    let index: usize = index
        .parse()
        .map_err(|_| invalid(format!("chunk index `{index}` is not a number")))?;
    let result = match statement.inner.lock() {
        Ok(inner) => inner.result.clone(),
        Err(_) => None,
    };
    let Some(result) = result else {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "statement `{id}` has no result to fetch (its state is {})",
                statement.state().as_str()
            ),
        )
        .into());
    };
    let data = result.chunk(&statement.id, index).ok_or_else(|| {
        invalid(format!(
            "chunk {index} does not exist: the result has {} chunks",
            result.chunks.len()
        ))
    })?;
    Ok(json_response(&data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use StatementState::*;

    fn parse(v: Value) -> Result<ExecuteRequest, ApiError> {
        match v {
            Value::Object(m) => parse_execute(&m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_state_machine() {
        let all = [Pending, Running, Succeeded, Failed, Canceled, Closed];
        let allowed: Vec<(StatementState, StatementState)> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_move_to(*b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Pending, Running),
                (Pending, Failed),
                (Pending, Canceled),
                (Running, Succeeded),
                (Running, Failed),
                (Running, Canceled),
                (Succeeded, Closed),
                (Failed, Closed),
                (Canceled, Closed),
            ]
        );
        assert!(!Pending.is_terminal() && !Running.is_terminal());
        assert!(Canceled.is_terminal() && Closed.is_terminal());
    }

    #[test]
    fn execute_defaults() {
        let r = parse(json!({"statement": "SELECT 1", "warehouse_id": "w"})).unwrap();
        assert_eq!(r.wait, Duration::from_secs(10));
        assert!(!r.cancel_on_timeout);
        assert_eq!(r.format, ResultFormat::JsonArray);
        assert_eq!((r.row_limit, r.byte_limit), (None, None));
        let r = parse(
            json!({"statement": "SELECT :a", "warehouse_id": "w", "wait_timeout": "0s",
            "on_wait_timeout": "CANCEL", "format": "ARROW_STREAM", "disposition": "INLINE",
            "row_limit": 5, "byte_limit": "100", "catalog": "main", "schema": "default",
            "parameters": [{"name": "a", "type": "INT", "value": "1"}, {"name": "b"}],
            "query_tags": [{"key": "k", "value": "v"}]}),
        )
        .unwrap();
        assert_eq!(r.wait, Duration::ZERO);
        assert!(r.cancel_on_timeout);
        assert_eq!(r.format, ResultFormat::ArrowStream);
        assert_eq!((r.row_limit, r.byte_limit), (Some(5), Some(100)));
        assert_eq!(
            r.parameters,
            vec![
                Parameter {
                    name: "a".into(),
                    value: Some("1".into()),
                    type_name: Some("INT".into())
                },
                Parameter {
                    name: "b".into(),
                    value: None,
                    type_name: None
                },
            ]
        );
    }

    #[test]
    fn execute_refusals_name_the_field() {
        let cases = [
            (json!({"warehouse_id": "w"}), "`statement`"),
            (json!({"statement": "x"}), "`warehouse_id`"),
            (
                json!({"statement": "x", "warehouse_id": "w", "wait_timeout": "3s"}),
                "`wait_timeout`",
            ),
            (
                json!({"statement": "x", "warehouse_id": "w", "wait_timeout": "51s"}),
                "`wait_timeout`",
            ),
            (
                json!({"statement": "x", "warehouse_id": "w", "wait_timeout": "10"}),
                "`wait_timeout`",
            ),
            (
                json!({"statement": "x", "warehouse_id": "w", "on_wait_timeout": "WAIT"}),
                "`on_wait_timeout`",
            ),
            (
                json!({"statement": "x", "warehouse_id": "w", "disposition": "EXTERNAL_LINKS"}),
                "EXTERNAL_LINKS",
            ),
            (
                json!({"statement": "x", "warehouse_id": "w", "format": "CSV"}),
                "CSV",
            ),
            (
                json!({"statement": "x", "warehouse_id": "w", "row_limit": 0}),
                "`row_limit`",
            ),
            (
                json!({"statement": "x", "warehouse_id": "w", "byte_limit": -1}),
                "`byte_limit`",
            ),
            (
                json!({"statement": "x", "warehouse_id": "w", "parameters": [{"value": "1"}]}),
                "name",
            ),
        ];
        for (body, needle) in cases {
            let err = parse(body.clone()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidParameterValue, "{body}");
            assert!(err.message.contains(needle), "{body}: {}", err.message);
        }
        assert_eq!(parse_wait_timeout("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_wait_timeout("50s").unwrap(), Duration::from_secs(50));
    }

    #[test]
    fn memory_exhaustion_is_resource_exhausted() {
        let err = datafusion_error(datafusion::error::DataFusionError::ResourcesExhausted(
            "pool full".into(),
        ));
        assert_eq!(err.error_code, "RESOURCE_EXHAUSTED");
        let err = datafusion_error(datafusion::error::DataFusionError::Context(
            "ctx".into(),
            Box::new(datafusion::error::DataFusionError::ResourcesExhausted(
                "x".into(),
            )),
        ));
        assert_eq!(err.error_code, "RESOURCE_EXHAUSTED");
    }
}
