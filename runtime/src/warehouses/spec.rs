//! A warehouse's spec: the create (or merged edit) request, typed and checked, defaults
//! filled in, unknown fields dropped; and what the life cycle reads back from a stored one.

use crate::engine::WarehouseSizing;
use crate::error::ServiceError;
use crate::text::IntegerText;
use lakeward_common::data::WarehouseRecord;
use serde::Deserialize;
use serde_json::{json, Value};

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

/// `CreateWarehouseRequest` / `EditWarehouseRequest`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "a JSON object")]
pub(crate) struct SpecBody {
    name: Option<String>,
    cluster_size: Option<String>,
    auto_stop_mins: Option<IntegerText>,
    min_num_clusters: Option<IntegerText>,
    max_num_clusters: Option<IntegerText>,
    enable_serverless_compute: Option<bool>,
    enable_photon: Option<bool>,
    warehouse_type: Option<String>,
    spot_instance_policy: Option<String>,
    channel: Option<ChannelBody>,
    tags: Option<TagsBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "an object")]
struct ChannelBody {
    name: Option<String>,
    dbsql_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "an object")]
struct TagsBody {
    custom_tags: Option<Vec<TagBody>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "an object")]
struct TagBody {
    key: Option<String>,
    value: Option<String>,
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), ServiceError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            field,
            format!(
                "`{field}` must be one of {}, not `{value}`",
                allowed.join(", ")
            ),
        ))
    }
}

fn integer(field: &str, value: Option<IntegerText>) -> Result<Option<i64>, ServiceError> {
    value
        .map(|text| {
            text.0
                .parse()
                .map_err(|_| ServiceError::invalid(field, format!("`{field}` must be an integer")))
        })
        .transpose()
}

impl SpecBody {
    /// The stored spec: validated, defaults filled in.
    pub(crate) fn normalize(self) -> Result<Value, ServiceError> {
        let name = self.name.as_deref().map(str::trim).unwrap_or_default();
        if name.is_empty() {
            return Err(ServiceError::invalid("name", "`name` is required"));
        }
        if name.chars().count() > 100 {
            return Err(ServiceError::invalid(
                "name",
                "`name` must be at most 100 characters",
            ));
        }
        let cluster_size = self.cluster_size.as_deref().unwrap_or("Small");
        one_of("cluster_size", cluster_size, &CLUSTER_SIZES)?;
        let auto_stop_mins = integer("auto_stop_mins", self.auto_stop_mins)?.unwrap_or(120);
        if auto_stop_mins < 0 {
            return Err(ServiceError::invalid(
                "auto_stop_mins",
                "`auto_stop_mins` must be 0 (never stop) or at least 1",
            ));
        }
        let min = integer("min_num_clusters", self.min_num_clusters)?;
        let max = integer("max_num_clusters", self.max_num_clusters)?;
        let (min, max) = match (min, max) {
            (Some(min), Some(max)) => (min, max),
            (Some(min), None) => (min, min.max(1)),
            (None, Some(max)) => (1.min(max), max),
            (None, None) => (1, 1),
        };
        for (field, value) in [("min_num_clusters", min), ("max_num_clusters", max)] {
            if !(1..=30).contains(&value) {
                return Err(ServiceError::invalid(
                    field,
                    format!("`{field}` must be between 1 and 30, not {value}"),
                ));
            }
        }
        if min > max {
            return Err(ServiceError::invalid(
                "min_num_clusters",
                format!("`min_num_clusters` ({min}) must not exceed `max_num_clusters` ({max})"),
            ));
        }
        let serverless = self.enable_serverless_compute.unwrap_or(false);
        let photon = self.enable_photon.unwrap_or(true);
        let warehouse_type = match self.warehouse_type.as_deref() {
            Some(t) => {
                one_of("warehouse_type", t, &WAREHOUSE_TYPES)?;
                match t {
                    "TYPE_UNSPECIFIED" if serverless => "PRO",
                    "TYPE_UNSPECIFIED" => "CLASSIC",
                    other => other,
                }
            }
            None if serverless => "PRO",
            None => "CLASSIC",
        };
        if serverless && warehouse_type != "PRO" {
            return Err(ServiceError::invalid(
                "warehouse_type",
                "`enable_serverless_compute` needs `warehouse_type` PRO",
            ));
        }
        let spot = self
            .spot_instance_policy
            .as_deref()
            .unwrap_or("COST_OPTIMIZED");
        one_of("spot_instance_policy", spot, &SPOT_POLICIES)?;
        let channel = match self.channel {
            None => json!({"name": "CHANNEL_NAME_CURRENT"}),
            Some(channel) => {
                let name = channel.name.as_deref().unwrap_or("CHANNEL_NAME_CURRENT");
                one_of("channel.name", name, &CHANNELS)?;
                match channel.dbsql_version {
                    Some(version) => json!({"name": name, "dbsql_version": version}),
                    None => json!({"name": name}),
                }
            }
        };
        let tags = match self.tags.and_then(|t| t.custom_tags) {
            None => json!({}),
            Some(pairs) => {
                if pairs.len() > 45 {
                    return Err(ServiceError::invalid(
                        "tags.custom_tags",
                        "`tags.custom_tags` holds at most 45 tags",
                    ));
                }
                let mut clean = Vec::with_capacity(pairs.len());
                for (i, pair) in pairs.into_iter().enumerate() {
                    let key = pair.key.unwrap_or_default();
                    if key.is_empty() {
                        let field = format!("tags.custom_tags[{i}].key");
                        return Err(ServiceError::invalid(
                            &field,
                            format!("`{field}` is required"),
                        ));
                    }
                    clean.push(json!({"key": key, "value": pair.value.unwrap_or_default()}));
                }
                if clean.is_empty() {
                    json!({})
                } else {
                    json!({"custom_tags": clean})
                }
            }
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

pub(crate) fn name_of(record: &WarehouseRecord) -> &str {
    record.spec["name"].as_str().unwrap_or_default()
}

pub(crate) fn auto_stop_mins_of(record: &WarehouseRecord) -> i64 {
    record.spec["auto_stop_mins"].as_i64().unwrap_or(0)
}
