//! The runtime's internal API (`lakeward_common::data`) and who may call it.

use crate::test_support::{both_backends, Db, Harness, TestDb};
use axum::http::Method;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::data::{
    CatalogChangeResponse, CatalogSnapshot, PolicySources, WarehouseList, WarehouseRecord,
    WarehouseState, CATALOG_CHANGE_PATH, CATALOG_PATH, POLICIES_PATH, WAREHOUSES_PATH,
    WAREHOUSE_PATH_PREFIX,
};
use lakeward_common::internal::{
    ChangesResponse, CHANGES_PATH, READY_PATH, RESOLVE_PRINCIPAL_PATH, RESOLVE_TOKEN_PATH,
    SNAPSHOT_PATH,
};
use serde_json::{json, Value};
use std::time::Duration;

fn catalog_path(h: &Harness) -> String {
    format!(
        "{CATALOG_PATH}?workspace_id={}",
        h.boot.default_workspace_id
    )
}

async fn snapshot(h: &Harness) -> CatalogSnapshot {
    let r = h.runtime(Method::GET, &catalog_path(h), None).await;
    r.expect(200);
    serde_json::from_value(r.json.clone()).unwrap()
}

/// Sends one catalog change as the runtime.
async fn change(h: &Harness, change: Value) -> crate::test_support::Response {
    h.runtime(
        Method::POST,
        CATALOG_CHANGE_PATH,
        Some(json!({"workspace_id": h.boot.default_workspace_id, "change": change})),
    )
    .await
}

/// Sends a change that must succeed and says whether it changed anything.
async fn changed(h: &Harness, body: Value) -> CatalogChangeResponse {
    let r = change(h, body).await;
    r.expect(200);
    let response: CatalogChangeResponse = serde_json::from_value(r.json.clone()).unwrap();
    assert_eq!(response.version, r.version(), "the body and header agree");
    response
}

fn create_catalog(name: &str) -> Value {
    json!({"op": "create_catalog", "if_not_exists": false,
           "catalog": {"name": name, "owner": "admin@example.com"}})
}

fn create_schema(catalog: &str, name: &str) -> Value {
    json!({"op": "create_schema", "if_not_exists": false,
           "schema": {"catalog": catalog, "name": name, "owner": "admin@example.com"}})
}

fn table(catalog: &str, schema: &str, name: &str) -> Value {
    json!({"catalog": catalog, "schema": schema, "name": name, "owner": "admin@example.com",
           "table_type": "MANAGED", "format": "PARQUET",
           "location": format!("{catalog}/{schema}/{name}/"),
           "columns": [{"name": "id", "data_type": "Int64", "nullable": false}]})
}

fn create_table(catalog: &str, schema: &str, name: &str) -> Value {
    json!({"op": "create_table", "if_not_exists": false, "replace": false,
           "table": table(catalog, schema, name)})
}

fn grants(securable_type: &str, full_name: &str, changes: Value) -> Value {
    json!({"op": "update_grants", "securable_type": securable_type, "full_name": full_name,
           "changes": changes})
}

/// The data-plane key opens the data routes and the two shared internal routes, nothing else;
/// the control key opens none of the data routes, whoever it names.
async fn runtime_key_opens_only_data_routes(db: Db) {
    let h = Harness::new(db).await;
    let ws = h.boot.default_workspace_id;
    let data_routes = [
        (Method::GET, catalog_path(&h)),
        (Method::POST, CATALOG_CHANGE_PATH.to_owned()),
        (Method::GET, format!("{WAREHOUSES_PATH}?workspace_id={ws}")),
        (Method::POST, WAREHOUSES_PATH.to_owned()),
        (
            Method::GET,
            format!("{WAREHOUSE_PATH_PREFIX}0123456789abcdef?workspace_id={ws}"),
        ),
        (
            Method::PUT,
            format!("{WAREHOUSE_PATH_PREFIX}0123456789abcdef"),
        ),
        (Method::GET, POLICIES_PATH.to_owned()),
    ];
    // Gateway and user assertions (control key), and runtime claims signed with the control
    // key: the gateway's key cannot stand in for the runtime's.
    for claims in [
        h.gateway_claims(),
        h.admin_claims(),
        h.account_claims(),
        h.runtime_claims(),
    ] {
        for (method, path) in &data_routes {
            let body = (*method != Method::GET).then(|| json!({}));
            h.call(method.clone(), path, Some(&claims), body)
                .await
                .expect_error(404, "ENDPOINT_NOT_FOUND");
        }
    }
    h.call(Method::GET, &catalog_path(&h), None, None)
        .await
        .expect_error(401, "UNAUTHENTICATED");

    // The runtime's key on the public API and the gateway-only routes: nothing there.
    let account = format!("/api/2.0/accounts/{}/workspaces", h.boot.account_id);
    for (method, path) in [
        (Method::GET, "/api/2.0/token/list"),
        (Method::GET, "/api/2.0/preview/scim/v2/Me"),
        (Method::GET, "/api/2.0/permissions/authorization/tokens"),
        (
            Method::GET,
            "/api/2.0/permissions/warehouses/0123456789abcdef",
        ),
        (Method::GET, account.as_str()),
        (Method::GET, SNAPSHOT_PATH),
        (Method::POST, RESOLVE_TOKEN_PATH),
        (Method::GET, READY_PATH),
        (Method::GET, "/api/2.0/nothing"),
    ] {
        let body = (method == Method::POST).then(|| json!({"token_hash": "x"}));
        let r = h.runtime(method, path, body).await;
        r.expect_error(404, "ENDPOINT_NOT_FOUND");
        assert!(r.headers.contains_key("x-lakeward-state-version"));
    }
    // The data-plane key signs for the runtime only: naming the admin gets nothing anywhere.
    for claims in [h.admin_claims(), h.gateway_claims()] {
        h.call_data_plane(Method::GET, "/api/2.0/token/list", &claims, None)
            .await
            .expect_error(401, "UNAUTHENTICATED");
        h.call_data_plane(Method::GET, &catalog_path(&h), &claims, None)
            .await
            .expect_error(401, "UNAUTHENTICATED");
        h.call_data_plane(Method::GET, SNAPSHOT_PATH, &claims, None)
            .await
            .expect_error(401, "UNAUTHENTICATED");
    }

    // The two routes the runtime shares with the gateway.
    let r = h
        .runtime(
            Method::POST,
            RESOLVE_PRINCIPAL_PATH,
            Some(json!({"user_name": "admin@example.com"})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["id"], h.admin.id.to_string());
    let r = h
        .runtime(Method::GET, &format!("{CHANGES_PATH}?after=0"), None)
        .await;
    r.expect(200);
    // ... and they still work for the gateway.
    h.gateway(
        Method::POST,
        RESOLVE_PRINCIPAL_PATH,
        Some(json!({"user_name": "admin@example.com"})),
    )
    .await
    .expect(200);
    // And the data routes answer the runtime.
    h.runtime(Method::GET, &catalog_path(&h), None)
        .await
        .expect(200);
}

async fn catalog_changes_follow_sql_semantics(db: Db) {
    let h = Harness::new(db).await;
    let empty = snapshot(&h).await;
    assert!(empty.catalogs.is_empty() && empty.grants.is_empty());

    // Names are lower-cased; every change bumps the version the snapshot reports.
    let created = changed(&h, create_catalog("Main")).await;
    assert!(created.changed);
    assert_eq!(created.version, empty.version + 1);
    let snap = snapshot(&h).await;
    assert_eq!(snap.version, created.version);
    assert_eq!(snap.catalogs[0].name, "main");
    assert_eq!(snap.catalogs[0].owner, "admin@example.com");

    // Duplicates, in any case, conflict; IF NOT EXISTS makes them a no-op that bumps nothing.
    change(&h, create_catalog("MAIN"))
        .await
        .expect_error(409, "RESOURCE_ALREADY_EXISTS");
    let again = changed(
        &h,
        json!({"op": "create_catalog", "if_not_exists": true,
               "catalog": {"name": "main", "owner": "someone"}}),
    )
    .await;
    assert!(!again.changed);
    assert_eq!(again.version, created.version);

    // A schema needs its catalog, a table its schema.
    change(&h, create_schema("nope", "s"))
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    assert!(changed(&h, create_schema("main", "Default")).await.changed);
    change(&h, create_schema("main", "default"))
        .await
        .expect_error(409, "RESOURCE_ALREADY_EXISTS");
    let r = change(&h, create_table("main", "missing", "t")).await;
    r.expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    assert!(r.json["message"].as_str().unwrap().contains("main.missing"));
    assert!(
        changed(&h, create_table("main", "default", "Trips"))
            .await
            .changed
    );
    change(&h, create_table("main", "default", "trips"))
        .await
        .expect_error(409, "RESOURCE_ALREADY_EXISTS");
    let mut if_not_exists = create_table("main", "default", "trips");
    if_not_exists["if_not_exists"] = json!(true);
    assert!(!changed(&h, if_not_exists).await.changed);
    // CREATE OR REPLACE overwrites the definition.
    let mut replacement = table("main", "default", "trips");
    replacement["format"] = json!("CSV");
    replacement["options"] = json!({"header": "true"});
    replacement["comment"] = json!("replaced");
    assert!(
        changed(
            &h,
            json!({"op": "create_table", "if_not_exists": false, "replace": true,
                   "table": replacement}),
        )
        .await
        .changed
    );
    let snap = snapshot(&h).await;
    assert_eq!(snap.schemas.len(), 1);
    assert_eq!(snap.schemas[0].name, "default");
    assert_eq!(snap.tables.len(), 1);
    let trips = &snap.tables[0];
    assert_eq!(
        (trips.name.as_str(), trips.format.as_str()),
        ("trips", "CSV")
    );
    assert_eq!(trips.options["header"], "true");
    assert_eq!(trips.comment.as_deref(), Some("replaced"));
    assert_eq!(trips.columns[0].data_type, "Int64");

    // Malformed names and changes.
    change(&h, create_catalog("a.b"))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    change(&h, json!({"op": "drop_catalog", "name": "main"}))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");

    // A schema with tables is dropped only with CASCADE, which takes the tables and grants.
    let drop_schema = |cascade: bool| {
        json!({"op": "drop_schema", "catalog": "main", "name": "DEFAULT",
               "if_exists": false, "cascade": cascade})
    };
    change(&h, drop_schema(false))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    changed(
        &h,
        grants(
            "table",
            "main.default.trips",
            json!([{"principal": "admin@example.com", "add": ["SELECT"]}]),
        ),
    )
    .await;
    assert_eq!(snapshot(&h).await.grants.len(), 1);
    assert!(changed(&h, drop_schema(true)).await.changed);
    let snap = snapshot(&h).await;
    assert!(snap.schemas.is_empty() && snap.tables.is_empty() && snap.grants.is_empty());
    change(&h, drop_schema(true))
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    let mut if_exists = drop_schema(true);
    if_exists["if_exists"] = json!(true);
    assert!(!changed(&h, if_exists).await.changed);

    // Dropping a table.
    changed(&h, create_schema("main", "s")).await;
    changed(&h, create_table("main", "s", "t")).await;
    let drop_table = |if_exists: bool| {
        json!({"op": "drop_table", "catalog": "main", "schema": "s", "name": "T",
               "if_exists": if_exists})
    };
    assert!(changed(&h, drop_table(false)).await.changed);
    change(&h, drop_table(false))
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    assert!(!changed(&h, drop_table(true)).await.changed);
    // An empty schema drops without CASCADE.
    assert!(
        changed(&h, {
            let mut d = drop_schema(false);
            d["name"] = json!("s");
            d
        })
        .await
        .changed
    );

    // A workspace that does not exist, and a missing workspace id.
    h.runtime(
        Method::POST,
        CATALOG_CHANGE_PATH,
        Some(json!({"workspace_id": 1, "change": create_catalog("x")})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.runtime(Method::GET, CATALOG_PATH, None)
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
}

async fn grants_are_validated_and_atomic(db: Db) {
    let h = Harness::new(db).await;
    h.add_user("Alice@Example.com").await;
    h.add_principal("sp-app", PrincipalKind::ServicePrincipal)
        .await;
    // A workspace group, an account group, and a user who is not in the workspace.
    h.admin(
        Method::POST,
        "/api/2.0/preview/scim/v2/Groups",
        Some(json!({"displayName": "analysts"})),
    )
    .await
    .expect(201);
    h.account(
        Method::POST,
        "/scim/v2/Groups",
        Some(json!({"displayName": "finance"})),
    )
    .await
    .expect(201);
    h.account(
        Method::POST,
        "/scim/v2/Users",
        Some(json!({"userName": "outsider@example.com"})),
    )
    .await
    .expect(201);
    changed(&h, create_catalog("main")).await;
    changed(&h, create_schema("main", "default")).await;
    changed(&h, create_table("main", "default", "trips")).await;
    let before = snapshot(&h).await;

    // One unknown principal refuses the whole change, naming it.
    let refused = [
        (
            json!([{"principal": "alice@example.com", "add": ["SELECT"]},
                   {"principal": "ghost@example.com", "add": ["SELECT"]}]),
            "ghost@example.com",
        ),
        (
            json!([{"principal": "outsider@example.com", "add": ["SELECT"]}]),
            "outsider@example.com",
        ),
        (
            json!([{"principal": "alice@example.com", "add": ["SELECT", "READ_FILES"]}]),
            "READ_FILES",
        ),
        (
            json!([{"principal": "alice@example.com", "remove": ["NOPE"]}]),
            "NOPE",
        ),
        (
            json!([{"principal": "alice@example.com", "add": ["USE_CATALOG"]}]),
            "USE_CATALOG",
        ),
        (json!([{"principal": " ", "add": ["SELECT"]}]), "principal"),
    ];
    for (changes, named) in refused {
        let r = change(&h, grants("TABLE", "main.default.trips", changes.clone())).await;
        r.expect_error(400, "INVALID_PARAMETER_VALUE");
        let message = r.json["message"].as_str().unwrap();
        assert!(message.contains(named), "{changes}: {message}");
    }
    for (kind, name) in [("TABLE", "main.default"), ("VOLUME", "main.default.v")] {
        change(&h, grants(kind, name, json!([])))
            .await
            .expect_error(400, "INVALID_PARAMETER_VALUE");
    }
    change(
        &h,
        grants(
            "TABLE",
            "main.default.nope",
            json!([{"principal": "analysts", "add": ["SELECT"]}]),
        ),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    let after = snapshot(&h).await;
    assert_eq!(after.version, before.version, "refusals write nothing");
    assert!(after.grants.is_empty());

    // Users match ignoring case and are stored as their userName; groups of the workspace and
    // the account, and service principals by application id, are all grantees.
    let done = changed(
        &h,
        grants(
            "table",
            "Main.Default.Trips",
            json!([
                {"principal": "alice@example.com", "add": ["select", "MODIFY"]},
                {"principal": "analysts", "add": ["SELECT"]},
                {"principal": "finance", "add": ["ALL PRIVILEGES"]},
                {"principal": "sp-app", "add": ["SELECT"]},
            ]),
        ),
    )
    .await;
    assert!(done.changed);
    assert_eq!(done.version, before.version + 1);
    changed(
        &h,
        grants(
            "CATALOG",
            "main",
            json!([{"principal": "analysts", "add": ["USE_CATALOG", "USE_SCHEMA"]}]),
        ),
    )
    .await;
    let snap = snapshot(&h).await;
    let on = |principal: &str, full_name: &str| {
        snap.grants
            .iter()
            .find(|g| g.principal == principal && g.full_name == full_name)
            .map(|g| g.privileges.clone())
    };
    assert_eq!(
        on("Alice@Example.com", "main.default.trips"),
        Some(vec!["MODIFY".to_owned(), "SELECT".to_owned()])
    );
    assert_eq!(
        on("finance", "main.default.trips"),
        Some(vec!["ALL_PRIVILEGES".to_owned()])
    );
    assert_eq!(
        on("sp-app", "main.default.trips"),
        Some(vec!["SELECT".to_owned()])
    );
    assert_eq!(
        on("analysts", "main"),
        Some(vec!["USE_CATALOG".to_owned(), "USE_SCHEMA".to_owned()])
    );
    assert_eq!(snap.grants[0].securable_type, "CATALOG");

    // Granting again changes nothing; revoking the last privilege removes the principal.
    assert!(
        !changed(
            &h,
            grants(
                "TABLE",
                "main.default.trips",
                json!([{"principal": "analysts", "add": ["SELECT"]}]),
            ),
        )
        .await
        .changed
    );
    changed(
        &h,
        grants(
            "TABLE",
            "main.default.trips",
            json!([{"principal": "ALICE@example.com", "remove": ["MODIFY"]}]),
        ),
    )
    .await;
    assert_eq!(
        on_snapshot(&h, "Alice@Example.com").await,
        vec!["SELECT".to_owned()]
    );
    changed(
        &h,
        grants(
            "TABLE",
            "main.default.trips",
            json!([{"principal": "alice@example.com", "remove": ["SELECT"]}]),
        ),
    )
    .await;
    assert!(on_snapshot(&h, "Alice@Example.com").await.is_empty());
    // Revoking from a principal that does not exist is a no-op, not an error.
    assert!(
        !changed(
            &h,
            grants(
                "TABLE",
                "main.default.trips",
                json!([{"principal": "ghost", "remove": ["SELECT"]}]),
            ),
        )
        .await
        .changed
    );

    // Dropping the table drops its grants; the catalog's stay.
    changed(
        &h,
        json!({"op": "drop_table", "catalog": "main", "schema": "default", "name": "trips",
               "if_exists": false}),
    )
    .await;
    let snap = snapshot(&h).await;
    assert_eq!(snap.grants.len(), 1);
    assert_eq!(snap.grants[0].full_name, "main");
}

/// The privileges `principal` holds on `main.default.trips`.
async fn on_snapshot(h: &Harness, principal: &str) -> Vec<String> {
    snapshot(h)
        .await
        .grants
        .into_iter()
        .find(|g| g.principal == principal && g.full_name == "main.default.trips")
        .map(|g| g.privileges)
        .unwrap_or_default()
}

/// Creates a warehouse as the runtime, for `creator`.
pub(super) async fn new_warehouse(
    h: &Harness,
    workspace_id: i64,
    creator: &crate::store::directory::Principal,
) -> WarehouseRecord {
    let r = h
        .runtime(
            Method::POST,
            WAREHOUSES_PATH,
            Some(json!({
                "workspace_id": workspace_id,
                "spec": {"name": "Starter", "cluster_size": "2X-Small", "auto_stop_mins": 10},
                "state": "STARTING",
                "creator_id": creator.id.to_string(),
                "creator_name": creator.user_name,
                "last_activity_ms": 1_700_000_000_000_i64,
            })),
        )
        .await;
    r.expect(200);
    serde_json::from_value(r.json.clone()).unwrap()
}

async fn warehouses_are_stored_for_the_runtime(db: Db) {
    let h = Harness::new(db).await;
    let ws = h.boot.default_workspace_id;
    let alice = h.add_user("alice@example.com").await;
    let before = h
        .runtime(
            Method::GET,
            &format!("{WAREHOUSES_PATH}?workspace_id={ws}"),
            None,
        )
        .await;
    before.expect(200);
    assert_eq!(before.json, json!({"warehouses": []}));

    // The id is assigned, the creator granted CAN_MANAGE, in one change.
    let wh = new_warehouse(&h, ws, &alice).await;
    assert_eq!(wh.id.len(), 16);
    assert!(wh
        .id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(wh.state, WarehouseState::Starting);
    assert_eq!(wh.creator_name, "alice@example.com");
    assert_eq!(wh.spec["auto_stop_mins"], 10);
    assert_eq!(wh.acl.len(), 1);
    assert_eq!(wh.acl[0].grantee_id, alice.id.to_string());
    assert_eq!(wh.acl[0].permission_level, "CAN_MANAGE");
    let path = format!("{WAREHOUSE_PATH_PREFIX}{}", wh.id);
    let get = h
        .runtime(Method::GET, &format!("{path}?workspace_id={ws}"), None)
        .await;
    get.expect(200);
    assert_eq!(get.version(), before.version() + 1);
    assert_eq!(
        serde_json::from_value::<WarehouseRecord>(get.json.clone()).unwrap(),
        wh
    );
    let other = new_warehouse(&h, ws, &h.admin).await;
    assert_ne!(other.id, wh.id);
    let list: WarehouseList = serde_json::from_value(
        h.runtime(
            Method::GET,
            &format!("{WAREHOUSES_PATH}?workspace_id={ws}"),
            None,
        )
        .await
        .json,
    )
    .unwrap();
    assert_eq!(list.warehouses, vec![wh.clone(), other.clone()]);

    // A conditional update that lost changes nothing.
    let version = get.version() + 1;
    let r = h
        .runtime(
            Method::PUT,
            &path,
            Some(json!({"workspace_id": ws, "state": "STOPPING", "expect_state": "RUNNING"})),
        )
        .await;
    r.expect_error(409, "ABORTED");
    assert!(r.json["message"].as_str().unwrap().contains("STARTING"));
    assert_eq!(r.version(), version);
    let r = h
        .runtime(
            Method::PUT,
            &path,
            Some(
                json!({"workspace_id": ws, "state": "RUNNING", "expect_state": "STARTING",
                        "last_activity_ms": 1_700_000_000_500_i64}),
            ),
        )
        .await;
    r.expect(200);
    assert_eq!(r.version(), version + 1);
    assert_eq!(r.json["state"], "RUNNING");
    assert_eq!(r.json["last_activity_ms"], 1_700_000_000_500_i64);
    assert_eq!(r.json["spec"]["name"], "Starter");
    // The same update again: nothing to write, nothing bumped.
    let r = h
        .runtime(
            Method::PUT,
            &path,
            Some(json!({"workspace_id": ws, "state": "RUNNING"})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.version(), version + 1);
    // The spec is replaced whole.
    let r = h
        .runtime(
            Method::PUT,
            &path,
            Some(json!({"workspace_id": ws, "spec": {"name": "Renamed"}})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["spec"], json!({"name": "Renamed"}));
    assert_eq!(r.json["acl"].as_array().unwrap().len(), 1);

    // Deleted warehouses are left out of the list but can still be read.
    h.runtime(
        Method::PUT,
        &path,
        Some(json!({"workspace_id": ws, "state": "DELETED"})),
    )
    .await
    .expect(200);
    let list: WarehouseList = serde_json::from_value(
        h.runtime(
            Method::GET,
            &format!("{WAREHOUSES_PATH}?workspace_id={ws}"),
            None,
        )
        .await
        .json,
    )
    .unwrap();
    assert_eq!(list.warehouses, vec![other]);
    let r = h
        .runtime(Method::GET, &format!("{path}?workspace_id={ws}"), None)
        .await;
    r.expect(200);
    assert_eq!(r.json["state"], "DELETED");

    // Missing ones, in this workspace or another, and bad requests.
    for missing in [
        format!("{path}?workspace_id=1"),
        format!("{WAREHOUSE_PATH_PREFIX}0123456789abcdef?workspace_id={ws}"),
        format!("{WAREHOUSE_PATH_PREFIX}NOT-AN-ID?workspace_id={ws}"),
    ] {
        h.runtime(Method::GET, &missing, None)
            .await
            .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    }
    h.runtime(
        Method::PUT,
        &path,
        Some(json!({"workspace_id": 1, "state": "RUNNING"})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.runtime(Method::GET, &path, None)
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    h.runtime(
        Method::PUT,
        &path,
        Some(json!({"workspace_id": ws, "state": "MELTING"})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    let version = h
        .runtime(Method::GET, &format!("{path}?workspace_id={ws}"), None)
        .await
        .version();
    for (creator_id, workspace_id) in [("12345", ws), ("not-a-number", ws)] {
        h.runtime(
            Method::POST,
            WAREHOUSES_PATH,
            Some(
                json!({"workspace_id": workspace_id, "spec": {}, "state": "STOPPED",
                        "creator_id": creator_id, "creator_name": "x", "last_activity_ms": 0}),
            ),
        )
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    }
    let r = h
        .runtime(
            Method::POST,
            WAREHOUSES_PATH,
            Some(json!({"workspace_id": 1, "spec": {}, "state": "STOPPED",
                        "creator_id": alice.id.to_string(), "creator_name": "x",
                        "last_activity_ms": 0})),
        )
        .await;
    r.expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(r.version(), version, "refused creations write nothing");
}

async fn policies_are_served_with_a_version(db: Db) {
    // Without a policy directory there is nothing to serve.
    let h = Harness::new(db).await;
    h.runtime(Method::GET, POLICIES_PATH, None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    drop(h);

    let policy_dir = tempfile::tempdir().unwrap();
    let write =
        |name: &str, text: &str| std::fs::write(policy_dir.path().join(name), text).unwrap();
    write("z.cedar", "permit(principal, action, resource);");
    write("lakeward.cedarschema", "entity User;");
    write("a.cedar", "forbid(principal, action, resource);");
    write("README.md", "not a policy");
    std::fs::create_dir(policy_dir.path().join("nested.cedar")).unwrap();
    let mut test_db = TestDb::new(db).await;
    test_db.config.policy_dir = Some(policy_dir.path().to_owned());
    let plane = test_db.open().await;
    let h = Harness::bootstrap(test_db, plane).await;

    let fetch = || async {
        let r = h.runtime(Method::GET, POLICIES_PATH, None).await;
        r.expect(200);
        serde_json::from_value::<PolicySources>(r.json.clone()).unwrap()
    };
    let first = fetch().await;
    let names: Vec<&str> = first.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["a.cedar", "lakeward.cedarschema", "z.cedar"]);
    assert_eq!(first.files[1].1, "entity User;");
    assert_eq!(first.version.len(), 64);
    assert_eq!(fetch().await, first, "same files, same version");
    write(
        "a.cedar",
        "forbid(principal, action, resource) when { false };",
    );
    let second = fetch().await;
    assert_ne!(second.version, first.version);
    // The gateway never gets them.
    h.gateway(Method::GET, POLICIES_PATH, None)
        .await
        .expect_error(404, "ENDPOINT_NOT_FOUND");
}

/// A runtime long-polling the change feed hears of a catalog change at once.
async fn runtime_long_poll_sees_catalog_changes(db: Db) {
    let h = Harness::new(db).await;
    let version = snapshot(&h).await.version;
    let changes = format!("{CHANGES_PATH}?after={version}");
    let poll = h.runtime(Method::GET, &changes, None);
    let write = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        changed(&h, create_catalog("main")).await
    };
    let (polled, written) = tokio::join!(poll, write);
    polled.expect(200);
    let polled: ChangesResponse = serde_json::from_value(polled.json).unwrap();
    assert_eq!(polled.version, written.version);
    assert!(polled.version > version);
}

#[test]
fn the_middleware_admits_the_runtime_to_its_routes_only() {
    use crate::api::runtime_route;
    for path in [
        CATALOG_PATH,
        CATALOG_CHANGE_PATH,
        WAREHOUSES_PATH,
        "/internal/v1/data/warehouses/0123456789abcdef",
        POLICIES_PATH,
        RESOLVE_PRINCIPAL_PATH,
        CHANGES_PATH,
    ] {
        assert!(runtime_route(path), "{path}");
    }
    assert!(WAREHOUSE_PATH_PREFIX.starts_with("/internal/v1/data/"));
    for path in [
        SNAPSHOT_PATH,
        RESOLVE_TOKEN_PATH,
        READY_PATH,
        "/api/2.0/token/list",
    ] {
        assert!(!runtime_route(path), "{path}");
    }
}

both_backends!(
    runtime_key_opens_only_data_routes,
    catalog_changes_follow_sql_semantics,
    grants_are_validated_and_atomic,
    warehouses_are_stored_for_the_runtime,
    policies_are_served_with_a_version,
    runtime_long_poll_sees_catalog_changes,
);
