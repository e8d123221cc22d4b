use super::handlers::endpoint_info;
use super::permissions::{caller_rank, require};
use super::spec::SpecBody;
use super::upkeep::idle_expired;
use crate::caller::CallerCtx;
use crate::error::ServiceError;
use lakeward_common::assertion::IdentityClaims;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::data::AclEntry;
use lakeward_common::data::{WarehouseRecord, WarehouseState};
use lakeward_common::internal::{GroupRecord, PrincipalRecord};
use serde_json::{json, Value};

fn spec(v: Value) -> Result<Value, ServiceError> {
    crate::http::from_value::<SpecBody>(v)?.normalize()
}

fn error_of(v: Value) -> String {
    let err = spec(v).unwrap_err();
    assert!(
        matches!(err, ServiceError::InvalidParameter { .. }),
        "{err:?}"
    );
    err.message().to_owned()
}

#[test]
fn create_defaults() {
    let s = spec(json!({"name": " wh ", "cluster_size": "2X-Small", "creator_name": "x"})).unwrap();
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
    assert!(error_of(json!({"name": "a", "max_num_clusters": 31})).contains("`max_num_clusters`"));
    assert!(error_of(json!({"name": "a", "min_num_clusters": 0})).contains("`min_num_clusters`"));
    assert!(error_of(json!({"name": "a", "warehouse_type": "BIG"})).contains("`warehouse_type`"));
    assert!(error_of(json!({"name": "a", "spot_instance_policy": "X"}))
        .contains("`spot_instance_policy`"));
    assert!(error_of(json!({"name": "a", "channel": {"name": "X"}})).contains("`channel.name`"));
    assert!(error_of(json!({"name": "a", "enable_photon": "yes"})).contains("`enable_photon`"));
    assert!(error_of(
        json!({"name": "a", "enable_serverless_compute": true, "warehouse_type": "CLASSIC"})
    )
    .contains("`warehouse_type`"));
    assert!(
        error_of(json!({"name": "a", "tags": {"custom_tags": [{"value": "v"}]}})).contains("key")
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
    assert!(matches!(denied, ServiceError::PermissionDenied(_)));
    assert!(denied.message().contains("wh"), "{}", denied.message());
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
