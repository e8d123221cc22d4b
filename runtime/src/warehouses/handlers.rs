//! The SQL warehouses API (reference 2.12): list, get, create, edit, start, stop, delete.

use super::lifecycle::{
    delete_warehouse, deleted, note_record, resize, spawn_provision, start_warehouse,
    stop_warehouse,
};
use super::permissions::{caller_rank, require};
use super::spec::{name_of, sizing_of, SpecBody};
use crate::caller::CallerCtx;
use crate::error::ServiceError;
use crate::http::{from_value, json_response, Caller, JsonBody};
use crate::scheduler::now_ms;
use crate::state::Shared;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use lakeward_common::data::{NewWarehouse, WarehouseRecord, WarehouseState, WarehouseUpdate};
use serde_json::{json, Map, Value};
use std::sync::Arc;

type Handled = Result<Response, ServiceError>;

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

/// The warehouse `id` of the caller's workspace, if the caller holds `level` on it.
async fn permitted(
    shared: &Shared,
    ctx: &CallerCtx,
    id: &str,
    level: &str,
) -> Result<WarehouseRecord, ServiceError> {
    let record = shared
        .control
        .get_warehouse(ctx.workspace_id, id, ctx.request_id())
        .await?;
    require(ctx, &record, level)?;
    Ok(record)
}

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Caller(ctx): Caller,
    headers: HeaderMap,
) -> Handled {
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
            endpoint_info(r, shared.scheduler.active_sessions(&r.id), &host)
        })
        .collect();
    Ok(json_response(&json!({"warehouses": visible})))
}

pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Handled {
    let record = permitted(&shared, &ctx, &id, "CAN_VIEW").await?;
    note_record(&shared, &record);
    Ok(json_response(&endpoint_info(
        &record,
        shared.scheduler.active_sessions(&record.id),
        &host_of(&headers),
    )))
}

async fn live_names_clash(
    shared: &Shared,
    ctx: &CallerCtx,
    name: &str,
    except: Option<&str>,
) -> Result<(), ServiceError> {
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
        Err(ServiceError::AlreadyExists(format!(
            "a warehouse named `{name}` already exists"
        )))
    } else {
        Ok(())
    }
}

pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Caller(ctx): Caller,
    JsonBody(body): JsonBody<SpecBody>,
) -> Handled {
    let spec = body.normalize()?;
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

/// An edit names the fields it changes; the others keep their stored values, and the merged
/// spec is checked as a create's would be.
pub(crate) async fn edit(
    State(shared): State<Arc<Shared>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    JsonBody(changes): JsonBody<Map<String, Value>>,
) -> Handled {
    let record = permitted(&shared, &ctx, &id, "CAN_MANAGE").await?;
    if record.state == WarehouseState::Deleted {
        return Err(deleted(&record));
    }
    let mut merged = match &record.spec {
        Value::Object(spec) => spec.clone(),
        _ => Map::new(),
    };
    merged.extend(changes);
    let spec = from_value::<SpecBody>(Value::Object(merged))?.normalize()?;
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

pub(crate) async fn start(
    State(shared): State<Arc<Shared>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> Handled {
    let seen = shared.scheduler.generation(&id);
    let record = permitted(&shared, &ctx, &id, "CAN_MANAGE").await?;
    start_warehouse(&shared, record, seen, ctx.request_id()).await?;
    Ok(json_response(&json!({})))
}

pub(crate) async fn stop(
    State(shared): State<Arc<Shared>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> Handled {
    let record = permitted(&shared, &ctx, &id, "CAN_MANAGE").await?;
    stop_warehouse(&shared, &record, ctx.request_id()).await?;
    Ok(json_response(&json!({})))
}

pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> Handled {
    let record = permitted(&shared, &ctx, &id, "CAN_MANAGE").await?;
    delete_warehouse(&shared, &record, ctx.request_id()).await?;
    Ok(json_response(&json!({})))
}
