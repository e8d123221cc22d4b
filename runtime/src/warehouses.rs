//! The SQL warehouses API (reference 2.12) and the warehouse life cycle. Definitions, state and
//! permissions live in the control plane; the compute, the statement queue and the activity
//! clock live here.
//!
//! States: create → `STARTING` → (compute provisioned) `RUNNING`; stop → `STOPPING` (its
//! statements cancelled, compute released) → `STOPPED`; start → `STARTING` → `RUNNING`;
//! delete → `DELETED` (still answered by get, left out of list). Every transition is a
//! conditional update (`expect_state`), so two runtimes cannot both make it.

use crate::engine::{Compute, SqlError, WarehouseSizing};
use crate::queue::FairQueue;
use crate::service::{
    caller, compute_for, json_response, now_ms, parse_body, CallerCtx, Failure, Shared,
};
use crate::statements;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use lakeward_common::assertion::IdentityClaims;
use lakeward_common::data::{
    NewWarehouse, WarehouseRecord, WarehouseState, WarehouseUpdate, WAREHOUSE_LEVELS,
};
use lakeward_common::error::{ApiError, ErrorCode};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

pub const CLUSTER_SIZES: [&str; 9] = [
    "2X-Small", "X-Small", "Small", "Medium", "Large", "X-Large", "2X-Large", "3X-Large",
    "4X-Large",
];
const WAREHOUSE_TYPES: [&str; 3] = ["CLASSIC", "PRO", "TYPE_UNSPECIFIED"];
const SPOT_POLICIES: [&str; 3] = [
    "COST_OPTIMIZED",
    "RELIABILITY_OPTIMIZED",
    "POLICY_UNSPECIFIED",
];
const CHANNELS: [&str; 4] = [
    "CHANNEL_NAME_CURRENT",
    "CHANNEL_NAME_PREVIEW",
    "CHANNEL_NAME_PREVIOUS",
    "CHANNEL_NAME_CUSTOM",
];
/// Activity is written to the control plane at most this often per warehouse.
const ACTIVITY_WRITE_INTERVAL_MS: i64 = 30_000;

/// A warehouse as this process runs it.
#[derive(Default)]
pub(crate) struct WarehouseSlot {
    pub(crate) workspace_id: i64,
    /// Present while the warehouse runs here.
    pub(crate) compute: Option<Arc<Compute>>,
    pub(crate) queue: FairQueue<String, String>,
    pub(crate) running: HashSet<String>,
    pub(crate) last_activity_ms: i64,
    pushed_activity_ms: i64,
    auto_stop_mins: i64,
    /// Moves each time this process shuts the warehouse down (stop, delete, stopped
    /// elsewhere): a statement or a start that read the warehouse's record before the move
    /// must not queue on it or bring its compute back.
    pub(crate) generation: u64,
    /// The warehouse is deleted: nothing queues on it and nothing brings it back.
    pub(crate) deleted: bool,
    /// A transition this process began failed half-way (left `STOPPING`, or `STARTING` with
    /// provisioning given up): the sweeper finishes it.
    stuck: bool,
    /// A provisioning task runs for the warehouse.
    provisioning: bool,
}

/// Why a statement cannot queue on a warehouse slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueRefusal {
    /// Stopped (or otherwise shut down) since its record was read.
    Moved,
    Deleted,
}

/// The slot's generation (see [`WarehouseSlot::generation`]); read it before the record.
pub(crate) fn generation(shared: &Shared, id: &str) -> u64 {
    shared
        .warehouses
        .lock()
        .ok()
        .and_then(|w| w.get(id).map(|s| s.generation))
        .unwrap_or(0)
}

/// Queues a statement unless the warehouse was shut down or deleted since `seen_generation`.
pub(crate) fn enqueue(
    shared: &Shared,
    record: &WarehouseRecord,
    seen_generation: u64,
    caller: &str,
    statement_id: &str,
) -> Result<(), QueueRefusal> {
    let Ok(mut slots) = shared.warehouses.lock() else {
        return Err(QueueRefusal::Moved);
    };
    let slot = slots.entry(record.id.clone()).or_default();
    if slot.deleted {
        return Err(QueueRefusal::Deleted);
    }
    if slot.generation != seen_generation {
        return Err(QueueRefusal::Moved);
    }
    slot.workspace_id = record.workspace_id;
    slot.queue.push(caller.to_owned(), statement_id.to_owned());
    Ok(())
}

// ---- validation ----

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_parameter(message)
}

fn get_str<'a>(spec: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match spec.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("`{field}` must be a string"))),
    }
}

fn get_int(spec: &Map<String, Value>, field: &str) -> Result<Option<i64>, ApiError> {
    match spec.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(format!("`{field}` must be an integer"))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| invalid(format!("`{field}` must be an integer"))),
        Some(_) => Err(invalid(format!("`{field}` must be an integer"))),
    }
}

fn get_bool(spec: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match spec.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(format!("`{field}` must be true or false"))),
    }
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(invalid(format!(
            "`{field}` must be one of {}, not `{value}`",
            allowed.join(", ")
        )))
    }
}

/// The stored spec of a warehouse from the fields of a create (or a merged edit) request:
/// validated, defaults filled in, unknown fields dropped.
pub fn normalize_spec(input: &Map<String, Value>) -> Result<Value, ApiError> {
    let name = get_str(input, "name")?.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(invalid("`name` is required"));
    }
    if name.chars().count() > 100 {
        return Err(invalid("`name` must be at most 100 characters"));
    }
    let cluster_size = get_str(input, "cluster_size")?.unwrap_or("Small");
    one_of("cluster_size", cluster_size, &CLUSTER_SIZES)?;
    let auto_stop_mins = get_int(input, "auto_stop_mins")?.unwrap_or(120);
    if auto_stop_mins < 0 {
        return Err(invalid(
            "`auto_stop_mins` must be 0 (never stop) or at least 1",
        ));
    }
    let min = get_int(input, "min_num_clusters")?;
    let max = get_int(input, "max_num_clusters")?;
    let (min, max) = match (min, max) {
        (Some(min), Some(max)) => (min, max),
        (Some(min), None) => (min, min.max(1)),
        (None, Some(max)) => (1.min(max), max),
        (None, None) => (1, 1),
    };
    for (field, value) in [("min_num_clusters", min), ("max_num_clusters", max)] {
        if !(1..=30).contains(&value) {
            return Err(invalid(format!(
                "`{field}` must be between 1 and 30, not {value}"
            )));
        }
    }
    if min > max {
        return Err(invalid(format!(
            "`min_num_clusters` ({min}) must not exceed `max_num_clusters` ({max})"
        )));
    }
    let serverless = get_bool(input, "enable_serverless_compute")?.unwrap_or(false);
    let photon = get_bool(input, "enable_photon")?.unwrap_or(true);
    let warehouse_type = match get_str(input, "warehouse_type")? {
        Some(t) => {
            one_of("warehouse_type", t, &WAREHOUSE_TYPES)?;
            if t == "TYPE_UNSPECIFIED" {
                if serverless {
                    "PRO"
                } else {
                    "CLASSIC"
                }
            } else {
                t
            }
        }
        None if serverless => "PRO",
        None => "CLASSIC",
    };
    if serverless && warehouse_type != "PRO" {
        return Err(invalid(
            "`enable_serverless_compute` needs `warehouse_type` PRO",
        ));
    }
    let spot = get_str(input, "spot_instance_policy")?.unwrap_or("COST_OPTIMIZED");
    one_of("spot_instance_policy", spot, &SPOT_POLICIES)?;
    let channel = match input.get("channel") {
        None | Some(Value::Null) => json!({"name": "CHANNEL_NAME_CURRENT"}),
        Some(Value::Object(c)) => {
            let mut out = Map::new();
            let name = get_str(c, "name")
                .map_err(|_| invalid("`channel.name` must be a string"))?
                .unwrap_or("CHANNEL_NAME_CURRENT");
            one_of("channel.name", name, &CHANNELS)?;
            out.insert("name".into(), json!(name));
            if let Some(v) = get_str(c, "dbsql_version")
                .map_err(|_| invalid("`channel.dbsql_version` must be a string"))?
            {
                out.insert("dbsql_version".into(), json!(v));
            }
            Value::Object(out)
        }
        Some(_) => return Err(invalid("`channel` must be an object")),
    };
    let tags = match input.get("tags") {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(t)) => {
            let pairs = match t.get("custom_tags") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items.clone(),
                Some(_) => return Err(invalid("`tags.custom_tags` must be a list")),
            };
            if pairs.len() > 45 {
                return Err(invalid("`tags.custom_tags` holds at most 45 tags"));
            }
            let mut clean = Vec::new();
            for pair in pairs {
                let Value::Object(pair) = pair else {
                    return Err(invalid("`tags.custom_tags` entries must be objects"));
                };
                let key = get_str(&pair, "key")
                    .map_err(|_| invalid("`tags.custom_tags[].key` must be a string"))?
                    .unwrap_or_default();
                if key.is_empty() {
                    return Err(invalid("`tags.custom_tags[].key` is required"));
                }
                let value = get_str(&pair, "value")
                    .map_err(|_| invalid("`tags.custom_tags[].value` must be a string"))?
                    .unwrap_or_default();
                clean.push(json!({"key": key, "value": value}));
            }
            if clean.is_empty() {
                json!({})
            } else {
                json!({"custom_tags": clean})
            }
        }
        Some(_) => return Err(invalid("`tags` must be an object")),
    };
    Ok(json!({
        "name": name,
        "cluster_size": cluster_size,
        "min_num_clusters": min,
        "max_num_clusters": max,
        "auto_stop_mins": auto_stop_mins,
        "enable_photon": photon,
        "enable_serverless_compute": serverless,
        "warehouse_type": warehouse_type,
        "spot_instance_policy": spot,
        "channel": channel,
        "tags": tags,
    }))
}

pub(crate) fn sizing_of(record: &WarehouseRecord) -> WarehouseSizing {
    WarehouseSizing {
        cluster_size: record.spec["cluster_size"]
            .as_str()
            .unwrap_or("Small")
            .to_owned(),
        serverless: record.spec["enable_serverless_compute"]
            .as_bool()
            .unwrap_or(false),
        max_num_clusters: record.spec["max_num_clusters"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1),
    }
}

fn name_of(record: &WarehouseRecord) -> &str {
    record.spec["name"].as_str().unwrap_or_default()
}

fn auto_stop_mins_of(record: &WarehouseRecord) -> i64 {
    record.spec["auto_stop_mins"].as_i64().unwrap_or(0)
}

// ---- permissions ----

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
) -> Result<(), ApiError> {
    let needed = rank(level).unwrap_or(usize::MAX);
    if caller_rank(ctx, record).is_some_and(|r| r >= needed) {
        Ok(())
    } else {
        Err(ApiError::permission_denied(format!(
            "the caller needs {level} on warehouse `{}` ({})",
            name_of(record),
            record.id
        )))
    }
}

// ---- responses ----

fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_owned())
        .unwrap_or_else(|| "localhost".into())
}

/// `EndpointInfo` / `GetWarehouseResponse`.
pub(crate) fn endpoint_info(record: &WarehouseRecord, active: usize, host: &str) -> Value {
    let mut out = match &record.spec {
        Value::Object(spec) => spec.clone(),
        _ => Map::new(),
    };
    let running = record.state == WarehouseState::Running;
    let min = record.spec["min_num_clusters"].as_i64().unwrap_or(1);
    let path = format!("/sql/1.0/warehouses/{}", record.id);
    out.insert("id".into(), json!(record.id));
    out.insert("state".into(), json!(record.state));
    out.insert("creator_name".into(), json!(record.creator_name));
    out.insert("num_clusters".into(), json!(if running { min } else { 0 }));
    out.insert("num_active_sessions".into(), json!(active));
    out.insert(
        "jdbc_url".into(),
        json!(format!(
            "jdbc:databricks://{host}:443/default;transportMode=http;ssl=1;AuthMech=3;httpPath={path};"
        )),
    );
    out.insert(
        "odbc_params".into(),
        json!({"hostname": host, "path": path, "port": 443, "protocol": "https"}),
    );
    let health = match record.state {
        WarehouseState::Running => json!({"status": "HEALTHY"}),
        WarehouseState::Starting => json!({"status": "HEALTHY", "summary": "starting"}),
        _ => json!({"status": "STATUS_UNSPECIFIED"}),
    };
    out.insert("health".into(), health);
    Value::Object(out)
}

fn active_sessions(shared: &Shared, id: &str) -> usize {
    shared
        .warehouses
        .lock()
        .ok()
        .and_then(|w| w.get(id).map(|s| s.running.len() + s.queue.len()))
        .unwrap_or(0)
}

// ---- handlers ----

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let ctx = caller(&shared, claims).await?;
    let records = shared
        .control
        .list_warehouses(ctx.workspace_id, ctx.request_id())
        .await?;
    let host = host_of(&headers);
    let visible: Vec<Value> = records
        .iter()
        .filter(|r| r.state != WarehouseState::Deleted)
        .filter(|r| caller_rank(&ctx, r).is_some())
        .map(|r| {
            note_record(&shared, r);
            endpoint_info(r, active_sessions(&shared, &r.id), &host)
        })
        .collect();
    Ok(json_response(&json!({"warehouses": visible})))
}

pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let ctx = caller(&shared, claims).await?;
    let record = shared
        .control
        .get_warehouse(ctx.workspace_id, &id, ctx.request_id())
        .await?;
    require(&ctx, &record, "CAN_VIEW")?;
    note_record(&shared, &record);
    Ok(json_response(&endpoint_info(
        &record,
        active_sessions(&shared, &record.id),
        &host_of(&headers),
    )))
}

async fn live_names_clash(
    shared: &Shared,
    ctx: &CallerCtx,
    name: &str,
    except: Option<&str>,
) -> Result<(), ApiError> {
    let records = shared
        .control
        .list_warehouses(ctx.workspace_id, ctx.request_id())
        .await?;
    let clash = records.iter().any(|r| {
        r.state != WarehouseState::Deleted
            && Some(r.id.as_str()) != except
            && name_of(r).eq_ignore_ascii_case(name)
    });
    if clash {
        Err(ApiError::new(
            ErrorCode::ResourceAlreadyExists,
            format!("a warehouse named `{name}` already exists"),
        ))
    } else {
        Ok(())
    }
}

pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    body: Bytes,
) -> Result<Response, Failure> {
    let ctx = caller(&shared, claims).await?;
    let spec = normalize_spec(&parse_body(&body)?)?;
    let name = spec["name"].as_str().unwrap_or_default().to_owned();
    live_names_clash(&shared, &ctx, &name, None).await?;
    let record = shared
        .control
        .create_warehouse(
            &NewWarehouse {
                workspace_id: ctx.workspace_id,
                spec,
                state: WarehouseState::Starting,
                creator_id: ctx.claims.sub.clone(),
                creator_name: ctx.claims.user_name.clone(),
                last_activity_ms: now_ms(),
            },
            ctx.request_id(),
        )
        .await?;
    note_record(&shared, &record);
    spawn_provision(&shared, record.clone(), ctx.request_id().to_owned());
    Ok(json_response(&json!({"id": record.id})))
}

pub(crate) async fn edit(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let ctx = caller(&shared, claims).await?;
    let changes = parse_body(&body)?;
    let record = shared
        .control
        .get_warehouse(ctx.workspace_id, &id, ctx.request_id())
        .await?;
    require(&ctx, &record, "CAN_MANAGE")?;
    if record.state == WarehouseState::Deleted {
        return Err(deleted(&record).into());
    }
    let mut merged = match &record.spec {
        Value::Object(spec) => spec.clone(),
        _ => Map::new(),
    };
    for (key, value) in changes {
        merged.insert(key, value);
    }
    let spec = normalize_spec(&merged)?;
    let name = spec["name"].as_str().unwrap_or_default().to_owned();
    live_names_clash(&shared, &ctx, &name, Some(&record.id)).await?;
    let updated = shared
        .control
        .update_warehouse(
            &record.id,
            &WarehouseUpdate {
                workspace_id: ctx.workspace_id,
                spec: Some(spec),
                ..WarehouseUpdate::default()
            },
            ctx.request_id(),
        )
        .await?;
    if sizing_of(&updated) != sizing_of(&record) {
        resize(&shared, &updated).await?;
    }
    note_record(&shared, &updated);
    Ok(json_response(&json!({})))
}

/// A new size takes effect for the statements that start from now on; running ones keep the
/// compute they started with.
async fn resize(shared: &Shared, record: &WarehouseRecord) -> Result<(), ApiError> {
    let seen = generation(shared, &record.id);
    if !has_compute(shared, &record.id) {
        return Ok(());
    }
    // `Engine::compute` builds anew for a new sizing (and replaces the old one); the build
    // runs off the HTTP threads and outside the warehouses' lock.
    let compute = compute_for(shared, &record.id, sizing_of(record)).await?;
    if let Ok(mut slots) = shared.warehouses.lock() {
        if let Some(slot) = slots.get_mut(&record.id) {
            if slot.compute.is_some() && slot.generation == seen && !slot.deleted {
                slot.compute = Some(compute);
            }
        }
    }
    Ok(())
}

fn deleted(record: &WarehouseRecord) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidState,
        format!("warehouse `{}` is deleted", record.id),
    )
}

pub(crate) async fn start(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let ctx = caller(&shared, claims).await?;
    let seen = generation(&shared, &id);
    let record = shared
        .control
        .get_warehouse(ctx.workspace_id, &id, ctx.request_id())
        .await?;
    require(&ctx, &record, "CAN_MANAGE")?;
    start_warehouse(&shared, record, seen, ctx.request_id()).await?;
    Ok(json_response(&json!({})))
}

/// STOPPED → STARTING, then provisioning; a warehouse left STOPPING has its stop finished
/// first. A warehouse already starting or running is left be (its compute made present here).
/// `seen_generation` is the slot's generation read before `record`.
pub(crate) async fn start_warehouse(
    shared: &Arc<Shared>,
    record: WarehouseRecord,
    seen_generation: u64,
    request_id: &str,
) -> Result<(), ApiError> {
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
                } else if !has_compute(shared, &record.id) && !is_provisioning(shared, &record.id) {
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
                    Err(err) if err.code == ErrorCode::Aborted => {}
                    Err(err) => return Err(err),
                }
            }
        }
        seen = generation(shared, &record.id);
        record = shared
            .control
            .get_warehouse(record.workspace_id, &record.id, request_id)
            .await?;
    }
    Err(ApiError::new(
        ErrorCode::Aborted,
        format!(
            "warehouse `{}` kept changing state ({}); try again",
            record.id,
            state_name(record.state)
        ),
    ))
}

/// The API's name of a state (`RUNNING`, ...).
pub(crate) fn state_name(state: WarehouseState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{state:?}").to_uppercase())
}

fn is_provisioning(shared: &Shared, id: &str) -> bool {
    shared
        .warehouses
        .lock()
        .ok()
        .is_some_and(|w| w.get(id).is_some_and(|s| s.provisioning))
}

fn set_stuck(shared: &Shared, id: &str, stuck: bool) {
    if let Ok(mut slots) = shared.warehouses.lock() {
        if let Some(slot) = slots.get_mut(id) {
            slot.stuck = stuck;
        } else if stuck {
            slots.entry(id.to_owned()).or_default().stuck = true;
        }
    }
}

fn has_compute(shared: &Shared, id: &str) -> bool {
    shared
        .warehouses
        .lock()
        .ok()
        .is_some_and(|w| w.get(id).is_some_and(|s| s.compute.is_some()))
}

/// Remembers a warehouse seen in the control plane, so that auto-stop watches it.
pub(crate) fn note_record(shared: &Shared, record: &WarehouseRecord) {
    if let Ok(mut slots) = shared.warehouses.lock() {
        let slot = slots.entry(record.id.clone()).or_default();
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
        slot.auto_stop_mins = auto_stop_mins_of(record);
        slot.last_activity_ms = slot.last_activity_ms.max(record.last_activity_ms);
        slot.pushed_activity_ms = slot.pushed_activity_ms.max(record.last_activity_ms);
    }
}

/// The compute of a warehouse the control plane says runs (after a restart, say, this process
/// may not have it yet), unless the warehouse was shut down here since `seen_generation`.
pub(crate) async fn ensure_compute(
    shared: &Arc<Shared>,
    record: &WarehouseRecord,
    seen_generation: u64,
) {
    if has_compute(shared, &record.id) {
        statements::dispatch(shared, &record.id);
        return;
    }
    let compute = match compute_for(shared, &record.id, sizing_of(record)).await {
        Ok(compute) => compute,
        Err(err) => {
            tracing::error!(warehouse = %record.id, error = %err, "cannot build the warehouse's compute");
            return;
        }
    };
    let added = match shared.warehouses.lock() {
        Ok(mut slots) => {
            let slot = slots.entry(record.id.clone()).or_default();
            if slot.deleted || slot.generation != seen_generation {
                false
            } else {
                slot.workspace_id = record.workspace_id;
                if slot.compute.is_none() {
                    slot.compute = Some(compute);
                }
                true
            }
        }
        Err(_) => false,
    };
    if added {
        statements::dispatch(shared, &record.id);
    }
}

/// Provisioning: STARTING → RUNNING once the compute exists. Retried a few times; when it gives
/// up, the statements waiting on the warehouse fail and the sweeper tries again later.
fn spawn_provision(shared: &Arc<Shared>, record: WarehouseRecord, request_id: String) {
    let seen = match shared.warehouses.lock() {
        Ok(mut slots) => {
            let slot = slots.entry(record.id.clone()).or_default();
            if slot.deleted || slot.provisioning {
                return;
            }
            slot.provisioning = true;
            slot.generation
        }
        Err(_) => return,
    };
    let shared = shared.clone();
    shared.io.clone().spawn(async move {
        let outcome = provision(&shared, &record, seen, &request_id).await;
        let waiting = match shared.warehouses.lock() {
            Ok(mut slots) => match slots.get_mut(&record.id) {
                Some(slot) => {
                    slot.provisioning = false;
                    slot.stuck = outcome.is_err();
                    if outcome.is_err() {
                        slot.queue.drain()
                    } else {
                        Vec::new()
                    }
                }
                None => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        match outcome {
            Ok(true) => statements::dispatch(&shared, &record.id),
            Ok(false) => {}
            Err(err) => {
                let error = SqlError::new(
                    "TEMPORARILY_UNAVAILABLE",
                    format!(
                        "warehouse `{}` could not be started ({}); try again later",
                        record.id, err.message
                    ),
                );
                for id in waiting {
                    statements::fail_by_id(&shared, &id, error.clone());
                }
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
) -> Result<bool, ApiError> {
    let compute = compute_for(shared, &record.id, sizing_of(record)).await?;
    let mut attempt = 0;
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
                let Ok(mut slots) = shared.warehouses.lock() else {
                    return Ok(false);
                };
                let slot = slots.entry(updated.id.clone()).or_default();
                if slot.deleted || slot.generation != seen {
                    // Stopped here after it was marked running: the stop wins.
                    return Ok(false);
                }
                slot.workspace_id = updated.workspace_id;
                slot.compute = Some(compute);
                slot.last_activity_ms = now_ms();
                slot.pushed_activity_ms = slot.last_activity_ms;
                slot.auto_stop_mins = auto_stop_mins_of(&updated);
                return Ok(true);
            }
            // Stopped or deleted while starting: nothing to run.
            Err(err) if err.code == ErrorCode::Aborted => {
                tracing::info!(warehouse = %record.id, "warehouse left STARTING before it was provisioned");
                return Ok(false);
            }
            Err(err) if attempt < 5 => {
                attempt += 1;
                tracing::warn!(warehouse = %record.id, error = %err, "cannot mark the warehouse running; retrying");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            Err(err) => {
                tracing::error!(warehouse = %record.id, error = %err, "giving up provisioning the warehouse");
                return Err(err);
            }
        }
    }
}

pub(crate) async fn stop(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let ctx = caller(&shared, claims).await?;
    let record = shared
        .control
        .get_warehouse(ctx.workspace_id, &id, ctx.request_id())
        .await?;
    require(&ctx, &record, "CAN_MANAGE")?;
    stop_warehouse(&shared, &record, ctx.request_id()).await?;
    Ok(json_response(&json!({})))
}

/// RUNNING or STARTING → STOPPING → STOPPED, cancelling the warehouse's statements; a
/// warehouse left STOPPING (its STOPPED update failed) has its stop finished.
pub(crate) async fn stop_warehouse(
    shared: &Arc<Shared>,
    record: &WarehouseRecord,
    request_id: &str,
) -> Result<(), ApiError> {
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
        Err(err) if err.code == ErrorCode::Aborted => return Ok(()),
        Err(err) => return Err(err),
    }
    finish_stop(shared, record, request_id).await
}

/// STOPPING → STOPPED: cancels the warehouse's statements, releases its compute, records the
/// state. When the record cannot be written, the warehouse is left for the sweeper to finish.
async fn finish_stop(
    shared: &Arc<Shared>,
    record: &WarehouseRecord,
    request_id: &str,
) -> Result<(), ApiError> {
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
        Err(err) if err.code == ErrorCode::Aborted => {
            set_stuck(shared, &record.id, false);
            Ok(())
        }
        Err(err) => {
            tracing::warn!(warehouse = %record.id, error = %err, "cannot mark the warehouse stopped; the sweeper will retry");
            set_stuck(shared, &record.id, true);
            Err(err)
        }
    }
}

/// Cancels the warehouse's statements and releases its compute; the slot's generation moves so
/// that nothing read before this brings the compute back.
fn shut_down(shared: &Arc<Shared>, id: &str, reason: &str) {
    let (queued, running) = match shared.warehouses.lock() {
        Ok(mut slots) => {
            let slot = slots.entry(id.to_owned()).or_default();
            slot.compute = None;
            slot.generation += 1;
            (
                slot.queue.drain(),
                slot.running.iter().cloned().collect::<Vec<_>>(),
            )
        }
        Err(_) => (Vec::new(), Vec::new()),
    };
    for statement in queued.iter().chain(running.iter()) {
        statements::cancel_by_id(shared, statement, reason);
    }
    shared.engine.release(id);
}

pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Extension(claims): Extension<IdentityClaims>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let ctx = caller(&shared, claims).await?;
    let record = shared
        .control
        .get_warehouse(ctx.workspace_id, &id, ctx.request_id())
        .await?;
    require(&ctx, &record, "CAN_MANAGE")?;
    if record.state != WarehouseState::Deleted {
        shut_down(&shared, &record.id, "the warehouse was deleted");
        shared
            .control
            .update_warehouse(
                &record.id,
                &WarehouseUpdate {
                    workspace_id: record.workspace_id,
                    state: Some(WarehouseState::Deleted),
                    ..WarehouseUpdate::default()
                },
                ctx.request_id(),
            )
            .await?;
        // The slot stays as a tombstone: a statement that read the record before the delete
        // must find it deleted, not a fresh slot to queue on.
        let queued = match shared.warehouses.lock() {
            Ok(mut slots) => {
                let slot = slots.entry(record.id.clone()).or_default();
                slot.deleted = true;
                slot.compute = None;
                slot.stuck = false;
                slot.generation += 1;
                slot.queue.drain()
            }
            Err(_) => Vec::new(),
        };
        for statement in queued {
            statements::cancel_by_id(&shared, &statement, "the warehouse was deleted");
        }
    }
    Ok(json_response(&json!({})))
}

// ---- activity and auto-stop ----

/// Records activity on a warehouse, writing it to the control plane at most every 30 s.
pub(crate) fn touch(shared: &Arc<Shared>, id: &str) {
    let now = now_ms();
    let push = match shared.warehouses.lock() {
        Ok(mut slots) => match slots.get_mut(id) {
            Some(slot) => {
                slot.last_activity_ms = now;
                if now - slot.pushed_activity_ms >= ACTIVITY_WRITE_INTERVAL_MS {
                    slot.pushed_activity_ms = now;
                    Some(slot.workspace_id)
                } else {
                    None
                }
            }
            None => None,
        },
        Err(_) => None,
    };
    if let Some(workspace_id) = push {
        let shared = shared.clone();
        let id = id.to_owned();
        shared.io.clone().spawn(async move {
            let update = WarehouseUpdate {
                workspace_id,
                last_activity_ms: Some(now),
                ..WarehouseUpdate::default()
            };
            if let Err(err) = shared
                .control
                .update_warehouse(&id, &update, "runtime-activity")
                .await
            {
                tracing::warn!(warehouse = %id, error = %err, "cannot record warehouse activity");
            }
        });
    }
}

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
    let stuck: Vec<(String, i64)> = match shared.warehouses.lock() {
        Ok(slots) => slots
            .iter()
            .filter(|(_, s)| s.stuck && !s.deleted && !s.provisioning)
            .map(|(id, s)| (id.clone(), s.workspace_id))
            .collect(),
        Err(_) => return,
    };
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
            WarehouseState::Starting if !has_compute(shared, &id) => {
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
    let candidates: Vec<(String, i64)> = match shared.warehouses.lock() {
        Ok(slots) => slots
            .iter()
            .filter(|(_, s)| !s.deleted)
            .filter(|(_, s)| s.compute.is_some() && s.running.is_empty() && s.queue.is_empty())
            .filter(|(_, s)| idle_expired(s.auto_stop_mins, s.last_activity_ms, now, minute))
            .map(|(id, s)| (id.clone(), s.workspace_id))
            .collect(),
        Err(_) => return,
    };
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
        let (still_idle, last) = match shared.warehouses.lock() {
            Ok(slots) => match slots.get(&id) {
                Some(s) => (
                    s.running.is_empty() && s.queue.is_empty(),
                    s.last_activity_ms.max(record.last_activity_ms),
                ),
                None => (false, now),
            },
            Err(_) => (false, now),
        };
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
            let held = shared
                .warehouses
                .lock()
                .ok()
                .is_some_and(|s| s.get(&id).is_some_and(|s| s.compute.is_some()));
            if held && record.state != WarehouseState::Starting {
                shut_down(shared, &id, "the warehouse was stopped");
            }
            note_record(shared, &record);
        } else {
            note_record(shared, &record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakeward_common::assertion::PrincipalKind;
    use lakeward_common::data::AclEntry;
    use lakeward_common::internal::{GroupRecord, PrincipalRecord};

    fn spec(v: Value) -> Result<Value, ApiError> {
        match v {
            Value::Object(m) => normalize_spec(&m),
            _ => unreachable!(),
        }
    }

    fn error_of(v: Value) -> String {
        let err = spec(v).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterValue);
        err.message
    }

    #[test]
    fn create_defaults() {
        let s =
            spec(json!({"name": " wh ", "cluster_size": "2X-Small", "creator_name": "x"})).unwrap();
        assert_eq!(
            s,
            json!({
                "name": "wh", "cluster_size": "2X-Small", "min_num_clusters": 1,
                "max_num_clusters": 1, "auto_stop_mins": 120, "enable_photon": true,
                "enable_serverless_compute": false, "warehouse_type": "CLASSIC",
                "spot_instance_policy": "COST_OPTIMIZED",
                "channel": {"name": "CHANNEL_NAME_CURRENT"}, "tags": {}
            })
        );
        let s = spec(
            json!({"name": "s", "enable_serverless_compute": true, "auto_stop_mins": 0,
            "tags": {"custom_tags": [{"key": "team", "value": "data"}]}}),
        )
        .unwrap();
        assert_eq!(s["warehouse_type"], "PRO");
        assert_eq!(s["auto_stop_mins"], 0);
        assert_eq!(
            s["tags"],
            json!({"custom_tags": [{"key": "team", "value": "data"}]})
        );
    }

    #[test]
    fn validation_names_the_field() {
        assert!(error_of(json!({})).contains("`name`"));
        assert!(error_of(json!({"name": "a", "cluster_size": "Huge"})).contains("`cluster_size`"));
        assert!(error_of(json!({"name": "a", "auto_stop_mins": -1})).contains("`auto_stop_mins`"));
        assert!(
            error_of(json!({"name": "a", "min_num_clusters": 3, "max_num_clusters": 2}))
                .contains("`min_num_clusters`")
        );
        assert!(
            error_of(json!({"name": "a", "max_num_clusters": 31})).contains("`max_num_clusters`")
        );
        assert!(
            error_of(json!({"name": "a", "min_num_clusters": 0})).contains("`min_num_clusters`")
        );
        assert!(
            error_of(json!({"name": "a", "warehouse_type": "BIG"})).contains("`warehouse_type`")
        );
        assert!(error_of(json!({"name": "a", "spot_instance_policy": "X"}))
            .contains("`spot_instance_policy`"));
        assert!(error_of(json!({"name": "a", "channel": {"name": "X"}})).contains("`channel.name`"));
        assert!(error_of(json!({"name": "a", "enable_photon": "yes"})).contains("`enable_photon`"));
        assert!(error_of(
            json!({"name": "a", "enable_serverless_compute": true, "warehouse_type": "CLASSIC"})
        )
        .contains("`warehouse_type`"));
        assert!(
            error_of(json!({"name": "a", "tags": {"custom_tags": [{"value": "v"}]}}))
                .contains("key")
        );
    }

    fn ctx(sub: &str, groups: &[&str], admin: bool) -> CallerCtx {
        let mut group_records = vec![GroupRecord {
            id: "users-7".into(),
            display_name: "users".into(),
            workspace_id: Some(7),
        }];
        if admin {
            group_records.push(GroupRecord {
                id: "admins-7".into(),
                display_name: "admins".into(),
                workspace_id: Some(7),
            });
        }
        let mut claims = IdentityClaims::gateway("acct", "r");
        claims.sub = sub.into();
        claims.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        claims.workspace_id = Some(7);
        CallerCtx {
            claims,
            principal: PrincipalRecord {
                id: sub.into(),
                kind: PrincipalKind::User,
                user_name: format!("{sub}@x"),
                display_name: sub.into(),
                active: true,
                groups: group_records,
                token_use_workspaces: vec![],
            },
            workspace_id: 7,
        }
    }

    fn record(acl: &[(&str, &str)]) -> WarehouseRecord {
        WarehouseRecord {
            id: "0123456789abcdef".into(),
            workspace_id: 7,
            spec: json!({"name": "wh"}),
            state: WarehouseState::Running,
            creator_name: "c@x".into(),
            last_activity_ms: 0,
            acl: acl
                .iter()
                .map(|(g, l)| AclEntry {
                    grantee_id: (*g).into(),
                    permission_level: (*l).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn permission_levels_through_users_groups_and_admins() {
        let r = record(&[("u1", "CAN_VIEW"), ("g1", "CAN_USE"), ("u3", "CAN_MANAGE")]);
        assert!(require(&ctx("u1", &[], false), &r, "CAN_VIEW").is_ok());
        let denied = require(&ctx("u1", &[], false), &r, "CAN_USE").unwrap_err();
        assert_eq!(denied.code, ErrorCode::PermissionDenied);
        assert!(denied.message.contains("wh"), "{}", denied.message);
        assert!(require(&ctx("u2", &["g1"], false), &r, "CAN_USE").is_ok());
        assert!(require(&ctx("u2", &["g1"], false), &r, "CAN_MANAGE").is_err());
        assert!(require(&ctx("u3", &[], false), &r, "CAN_USE").is_ok());
        assert!(caller_rank(&ctx("u9", &[], false), &r).is_none());
        assert!(require(&ctx("u9", &[], true), &r, "CAN_MANAGE").is_ok());
    }

    #[test]
    fn endpoint_info_has_the_sdk_fields() {
        let mut r = record(&[]);
        r.spec = spec(json!({"name": "wh", "cluster_size": "Small"})).unwrap();
        let info = endpoint_info(&r, 2, "h.example");
        for field in [
            "id",
            "name",
            "state",
            "cluster_size",
            "num_clusters",
            "num_active_sessions",
            "min_num_clusters",
            "max_num_clusters",
            "auto_stop_mins",
            "creator_name",
            "enable_photon",
            "enable_serverless_compute",
            "warehouse_type",
            "spot_instance_policy",
            "channel",
            "tags",
            "jdbc_url",
            "odbc_params",
            "health",
        ] {
            assert!(info.get(field).is_some(), "{field} missing");
        }
        assert_eq!(info["state"], "RUNNING");
        assert_eq!(info["num_active_sessions"], 2);
        assert_eq!(
            info["odbc_params"]["path"],
            "/sql/1.0/warehouses/0123456789abcdef"
        );
    }

    #[test]
    fn idle_warehouses_stop_after_their_minutes() {
        assert!(!idle_expired(0, 0, 1_000_000, 1));
        assert!(!idle_expired(2, 1000, 1199, 100));
        assert!(idle_expired(2, 1000, 1200, 100));
    }
}
