//! The permissions API of SQL warehouses (`/api/2.0/permissions/warehouses/{id}`).

use super::data::new_warehouse;
use crate::test_support::{both_backends, Db, Harness};
use axum::http::Method;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::data::{WarehouseRecord, WAREHOUSE_PATH_PREFIX};
use serde_json::{json, Value};

fn path(id: &str) -> String {
    format!("/api/2.0/permissions/warehouses/{id}")
}

/// The ACL entry for a name, if any.
fn entry<'a>(acl: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    acl["access_control_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e[key] == name)
}

fn level(acl: &Value, key: &str, name: &str) -> Option<String> {
    entry(acl, key, name).map(|e| {
        e["all_permissions"][0]["permission_level"]
            .as_str()
            .unwrap()
            .to_owned()
    })
}

/// The warehouse as the runtime reads it.
async fn record(h: &Harness, id: &str) -> WarehouseRecord {
    let r = h
        .runtime(
            Method::GET,
            &format!(
                "{WAREHOUSE_PATH_PREFIX}{id}?workspace_id={}",
                h.boot.default_workspace_id
            ),
            None,
        )
        .await;
    r.expect(200);
    serde_json::from_value(r.json.clone()).unwrap()
}

async fn creator_manages_and_admins_inherit(db: Db) {
    let h = Harness::new(db).await;
    let ws = h.boot.default_workspace_id;
    let alice = h.add_user("alice@example.com").await;
    let bob = h.add_user("bob@example.com").await;
    let wh = new_warehouse(&h, ws, &alice).await;
    let path = path(&wh.id);

    // The creator manages it; the shape is the SDK's `WarehousePermissions`.
    let r = h
        .call(Method::GET, &path, Some(&h.claims(&alice)), None)
        .await;
    r.expect(200);
    assert_eq!(r.json["object_id"], format!("/sql/warehouses/{}", wh.id));
    assert_eq!(r.json["object_type"], "warehouses");
    assert_eq!(
        entry(&r.json, "group_name", "admins").unwrap()["all_permissions"],
        json!([{"permission_level": "CAN_MANAGE", "inherited": true,
                "inherited_from_object": ["/sql/warehouses/"]}])
    );
    let alice_entry = entry(&r.json, "user_name", "alice@example.com").unwrap();
    assert_eq!(alice_entry["display_name"], "alice@example.com");
    assert_eq!(
        alice_entry["all_permissions"],
        json!([{"permission_level": "CAN_MANAGE", "inherited": false}])
    );
    assert_eq!(r.json["access_control_list"].as_array().unwrap().len(), 2);
    let levels = h
        .call(
            Method::GET,
            &format!("{path}/permissionLevels"),
            Some(&h.claims(&alice)),
            None,
        )
        .await;
    levels.expect(200);
    let names: Vec<&str> = levels.json["permission_levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["permission_level"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CAN_VIEW",
            "CAN_MONITOR",
            "CAN_USE",
            "CAN_MANAGE",
            "IS_OWNER"
        ]
    );
    assert!(levels.json["permission_levels"][0]["description"].is_string());

    // Bob has nothing on it: every call is refused, and nothing changes.
    let bob_claims = h.claims(&bob);
    let grant_bob = json!({"access_control_list": [
        {"user_name": "bob@example.com", "permission_level": "CAN_MANAGE"}]});
    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (Method::GET, format!("{path}/permissionLevels"), None),
        (Method::PUT, path.clone(), Some(grant_bob.clone())),
        (Method::PATCH, path.clone(), Some(grant_bob.clone())),
    ] {
        h.call(method, &p, Some(&bob_claims), body)
            .await
            .expect_error(403, "PERMISSION_DENIED");
    }
    assert_eq!(record(&h, &wh.id).await.acl.len(), 1);

    // CAN_USE is not enough to manage permissions.
    let version = h.admin(Method::GET, &path, None).await.version();
    let r = h
        .call(
            Method::PATCH,
            &path,
            Some(&h.claims(&alice)),
            Some(json!({"access_control_list": [
                {"user_name": "bob@example.com", "permission_level": "CAN_USE"}]})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.version(), version + 1, "grant changes bump the version");
    assert_eq!(
        level(&r.json, "user_name", "bob@example.com").as_deref(),
        Some("CAN_USE")
    );
    h.call(Method::GET, &path, Some(&bob_claims), None)
        .await
        .expect_error(403, "PERMISSION_DENIED");

    // CAN_MANAGE through a group is.
    let g = h
        .admin(
            Method::POST,
            "/api/2.0/preview/scim/v2/Groups",
            Some(json!({"displayName": "wh-managers", "members": [{"value": bob.id.to_string()}]})),
        )
        .await;
    g.expect(201);
    let group_id = g.json["id"].as_str().unwrap().to_owned();
    h.admin(
        Method::PATCH,
        &path,
        Some(json!({"access_control_list": [
            {"group_name": "wh-managers", "permission_level": "CAN_MANAGE"}]})),
    )
    .await
    .expect(200);
    h.call(Method::GET, &path, Some(&bob_claims), None)
        .await
        .expect(200);

    // The runtime sees every direct grant, by id.
    let acl = record(&h, &wh.id).await.acl;
    let mut grants: Vec<(String, String)> = acl
        .into_iter()
        .map(|a| (a.grantee_id, a.permission_level))
        .collect();
    grants.sort();
    let mut expected = vec![
        (alice.id.to_string(), "CAN_MANAGE".to_owned()),
        (bob.id.to_string(), "CAN_USE".to_owned()),
        (group_id, "CAN_MANAGE".to_owned()),
    ];
    expected.sort();
    assert_eq!(grants, expected);
}

async fn put_replaces_and_bad_entries_are_refused(db: Db) {
    let h = Harness::new(db).await;
    let ws = h.boot.default_workspace_id;
    let alice = h.add_user("alice@example.com").await;
    h.add_user("bob@example.com").await;
    h.add_principal("sp-app", PrincipalKind::ServicePrincipal)
        .await;
    h.account(
        Method::POST,
        "/scim/v2/Groups",
        Some(json!({"displayName": "finance"})),
    )
    .await
    .expect(201);
    let wh = new_warehouse(&h, ws, &alice).await;
    let path = path(&wh.id);
    let before = h.admin(Method::GET, &path, None).await;
    before.expect(200);

    let refused = [
        (
            json!({"access_control_list": [{"user_name": "bob@example.com", "permission_level": "CAN_RUN"}]}),
            "permission_level",
        ),
        (
            json!({"access_control_list": [{"user_name": "ghost@example.com", "permission_level": "CAN_USE"}]}),
            "user_name",
        ),
        (
            json!({"access_control_list": [{"group_name": "nope", "permission_level": "CAN_USE"}]}),
            "group_name",
        ),
        (
            json!({"access_control_list": [{"group_name": "finance", "permission_level": "IS_OWNER"}]}),
            "cannot own",
        ),
        (
            json!({"access_control_list": [
                {"user_name": "bob@example.com", "permission_level": "IS_OWNER"},
                {"service_principal_name": "sp-app", "permission_level": "IS_OWNER"}]}),
            "IS_OWNER",
        ),
        (
            json!({"access_control_list": [
                {"user_name": "bob@example.com", "permission_level": "CAN_USE"},
                {"user_name": "bob@example.com", "group_name": "finance", "permission_level": "CAN_USE"}]}),
            "access_control_list[1]",
        ),
        (json!({}), "access_control_list"),
    ];
    for method in [Method::PUT, Method::PATCH] {
        for (body, named) in &refused {
            let r = h.admin(method.clone(), &path, Some(body.clone())).await;
            r.expect_error(400, "INVALID_PARAMETER_VALUE");
            let message = r.json["message"].as_str().unwrap();
            assert!(message.contains(named), "{body}: {message}");
        }
    }
    let after = h.admin(Method::GET, &path, None).await;
    assert_eq!(after.json, before.json);
    assert_eq!(after.version(), before.version(), "refusals write nothing");

    // PUT replaces every direct grant; account groups, service principals and the admins
    // entry (implicit, changes nothing) are accepted.
    let r = h
        .admin(
            Method::PUT,
            &path,
            Some(json!({"access_control_list": [
                {"user_name": "bob@example.com", "permission_level": "CAN_VIEW"},
                {"group_name": "finance", "permission_level": "CAN_MONITOR"},
                {"service_principal_name": "sp-app", "permission_level": "CAN_USE"},
                {"group_name": "admins", "permission_level": "CAN_MANAGE"},
            ]})),
        )
        .await;
    r.expect(200);
    assert!(entry(&r.json, "user_name", "alice@example.com").is_none());
    assert_eq!(
        level(&r.json, "user_name", "bob@example.com").as_deref(),
        Some("CAN_VIEW")
    );
    assert_eq!(
        level(&r.json, "group_name", "finance").as_deref(),
        Some("CAN_MONITOR")
    );
    assert_eq!(
        level(&r.json, "service_principal_name", "sp-app").as_deref(),
        Some("CAN_USE")
    );
    assert_eq!(r.json["access_control_list"].as_array().unwrap().len(), 4);
    assert_eq!(h.admin(Method::GET, &path, None).await.json, r.json);
    // Alice, no longer a manager, is locked out.
    h.call(Method::GET, &path, Some(&h.claims(&alice)), None)
        .await
        .expect_error(403, "PERMISSION_DENIED");

    // Ownership: granting IS_OWNER moves it; PUT keeps it unless it names a new owner; the
    // owner manages.
    let owned = h
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"access_control_list": [
                {"user_name": "alice@example.com", "permission_level": "IS_OWNER"}]})),
        )
        .await;
    owned.expect(200);
    h.call(Method::GET, &path, Some(&h.claims(&alice)), None)
        .await
        .expect(200);
    let moved = h
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"access_control_list": [
                {"user_name": "bob@example.com", "permission_level": "IS_OWNER"}]})),
        )
        .await;
    moved.expect(200);
    assert!(entry(&moved.json, "user_name", "alice@example.com").is_none());
    assert_eq!(
        level(&moved.json, "user_name", "bob@example.com").as_deref(),
        Some("IS_OWNER")
    );
    let kept = h
        .admin(Method::PUT, &path, Some(json!({"access_control_list": []})))
        .await;
    kept.expect(200);
    assert_eq!(
        level(&kept.json, "user_name", "bob@example.com").as_deref(),
        Some("IS_OWNER")
    );
    assert_eq!(
        kept.json["access_control_list"].as_array().unwrap().len(),
        2
    );
}

async fn missing_and_deleted_warehouses_are_404(db: Db) {
    let h = Harness::new(db).await;
    let ws = h.boot.default_workspace_id;
    let alice = h.add_user("alice@example.com").await;
    let acl = json!({"access_control_list": []});
    let check = |id: String| {
        let acl = acl.clone();
        let h = &h;
        async move {
            for (method, p, body) in [
                (Method::GET, path(&id), None),
                (Method::GET, format!("{}/permissionLevels", path(&id)), None),
                (Method::PUT, path(&id), Some(acl.clone())),
                (Method::PATCH, path(&id), Some(acl)),
            ] {
                h.admin(method, &p, body)
                    .await
                    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
            }
        }
    };
    check("0123456789abcdef".into()).await;
    check("not-a-warehouse".into()).await;

    // A warehouse of another workspace is not visible here.
    let other = h
        .account(
            Method::POST,
            "/workspaces",
            Some(json!({"workspace_name": "Other", "aws_region": "us-west-2",
                        "credentials_id": "c", "storage_configuration_id": "s"})),
        )
        .await;
    other.expect(200);
    let other_ws = other.json["workspace_id"].as_i64().unwrap();
    let elsewhere = new_warehouse(&h, other_ws, &h.admin).await;
    check(elsewhere.id).await;

    // A deleted warehouse is gone for the API, whoever asks.
    let wh = new_warehouse(&h, ws, &alice).await;
    h.admin(Method::GET, &path(&wh.id), None).await.expect(200);
    h.runtime(
        Method::PUT,
        &format!("{WAREHOUSE_PATH_PREFIX}{}", wh.id),
        Some(json!({"workspace_id": ws, "state": "DELETED"})),
    )
    .await
    .expect(200);
    check(wh.id.clone()).await;
    h.call(Method::GET, &path(&wh.id), Some(&h.claims(&alice)), None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    // Other methods are unknown routes.
    h.admin(Method::POST, &path(&wh.id), Some(acl.clone()))
        .await
        .expect_error(404, "ENDPOINT_NOT_FOUND");
}

both_backends!(
    creator_manages_and_admins_inherit,
    put_replaces_and_bad_entries_are_refused,
    missing_and_deleted_warehouses_are_404,
);
