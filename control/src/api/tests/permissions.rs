//! Token usage permissions and the generic permissions API.

use crate::test_support::{both_backends, Db, Harness};
use axum::http::Method;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::internal::{PrincipalRecord, RESOLVE_PRINCIPAL_PATH};
use serde_json::{json, Value};

const TOKENS: &str = "/api/2.0/permissions/authorization/tokens";
const CREATE: &str = "/api/2.0/token/create";
const GROUPS: &str = "/api/2.0/preview/scim/v2/Groups";

/// The ACL entry for a name, if any.
fn entry<'a>(acl: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    acl["access_control_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e[key] == name)
}

async fn resolve(h: &Harness, name: &str) -> PrincipalRecord {
    let r = h
        .gateway(
            Method::POST,
            RESOLVE_PRINCIPAL_PATH,
            Some(json!({ "user_name": name })),
        )
        .await;
    r.expect(200);
    serde_json::from_value(r.json.clone()).unwrap()
}

async fn defaults_let_every_member_use_tokens(db: Db) {
    let h = Harness::new(db).await;
    let ws = h.boot.default_workspace_id;
    let r = h.admin(Method::GET, TOKENS, None).await;
    r.expect(200);
    assert_eq!(r.json["object_id"], "authorization/tokens");
    assert_eq!(r.json["object_type"], "tokens");
    let admins = entry(&r.json, "group_name", "admins").unwrap();
    assert_eq!(
        admins["all_permissions"],
        json!([{"permission_level": "CAN_MANAGE", "inherited": true,
                "inherited_from_object": ["/authorization/"]}])
    );
    let users = entry(&r.json, "group_name", "users").unwrap();
    assert_eq!(
        users["all_permissions"],
        json!([{"permission_level": "CAN_USE", "inherited": false}])
    );
    assert_eq!(r.json["access_control_list"].as_array().unwrap().len(), 2);

    let levels = h
        .admin(Method::GET, &format!("{TOKENS}/permissionLevels"), None)
        .await;
    levels.expect(200);
    assert_eq!(
        levels.json["permission_levels"][0]["permission_level"],
        "CAN_USE"
    );

    // A member may create a token; the gateway sees the workspace in the list.
    let alice = h.add_user("alice@example.com").await;
    h.call(
        Method::POST,
        CREATE,
        Some(&h.claims(&alice)),
        Some(json!({})),
    )
    .await
    .expect(200);
    assert_eq!(
        resolve(&h, "alice@example.com").await.token_use_workspaces,
        vec![ws]
    );
    assert_eq!(
        resolve(&h, "admin@example.com").await.token_use_workspaces,
        vec![ws]
    );
    // Non-admins neither read nor change the permissions.
    h.call(Method::GET, TOKENS, Some(&h.claims(&alice)), None)
        .await
        .expect_error(403, "PERMISSION_DENIED");
    h.call(
        Method::PATCH,
        TOKENS,
        Some(&h.claims(&alice)),
        Some(json!({"access_control_list": []})),
    )
    .await
    .expect_error(403, "PERMISSION_DENIED");
}

async fn put_narrows_and_patch_grants(db: Db) {
    let h = Harness::new(db).await;
    let ws = h.boot.default_workspace_id;
    let alice = h.add_user("alice@example.com").await;
    let bob = h.add_user("bob@example.com").await;
    h.add_principal("sp-app-id", PrincipalKind::ServicePrincipal)
        .await;
    let g = h
        .admin(
            Method::POST,
            GROUPS,
            Some(json!({"displayName": "token-users", "members": [{"value": bob.id.to_string()}]})),
        )
        .await;
    g.expect(201);

    // PUT replaces every direct grant: only the group and the admins' implicit entry remain.
    // The admins entry of Databricks' documented example is accepted and changes nothing.
    let version = h.admin(Method::GET, TOKENS, None).await.version();
    let r = h
        .admin(
            Method::PUT,
            TOKENS,
            Some(json!({"access_control_list": [
                {"group_name": "token-users", "permission_level": "CAN_USE"},
                {"group_name": "admins", "permission_level": "CAN_MANAGE"},
            ]})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.version(), version + 1, "grant changes bump the version");
    assert!(entry(&r.json, "group_name", "users").is_none());
    assert!(entry(&r.json, "group_name", "token-users").is_some());
    assert_eq!(r.json["access_control_list"].as_array().unwrap().len(), 2);
    assert_eq!(h.admin(Method::GET, TOKENS, None).await.json, r.json);

    // Alice lost CAN_USE; Bob has it through his group; the admin keeps it.
    h.call(
        Method::POST,
        CREATE,
        Some(&h.claims(&alice)),
        Some(json!({})),
    )
    .await
    .expect_error(403, "PERMISSION_DENIED");
    h.call(Method::POST, CREATE, Some(&h.claims(&bob)), Some(json!({})))
        .await
        .expect(200);
    h.admin(Method::POST, CREATE, Some(json!({})))
        .await
        .expect(200);
    assert!(resolve(&h, "alice@example.com")
        .await
        .token_use_workspaces
        .is_empty());
    assert_eq!(
        resolve(&h, "bob@example.com").await.token_use_workspaces,
        vec![ws]
    );
    assert!(resolve(&h, "sp-app-id")
        .await
        .token_use_workspaces
        .is_empty());

    // PATCH adds, for users and service principals by application id.
    let r = h
        .admin(
            Method::PATCH,
            TOKENS,
            Some(json!({"access_control_list": [
                {"user_name": "alice@example.com", "permission_level": "CAN_USE"},
                {"service_principal_name": "sp-app-id", "permission_level": "CAN_USE"},
            ]})),
        )
        .await;
    r.expect(200);
    let alice_entry = entry(&r.json, "user_name", "alice@example.com").unwrap();
    assert_eq!(alice_entry["display_name"], "alice@example.com");
    assert_eq!(
        alice_entry["all_permissions"][0]["permission_level"],
        "CAN_USE"
    );
    assert!(entry(&r.json, "service_principal_name", "sp-app-id").is_some());
    assert!(entry(&r.json, "group_name", "token-users").is_some());
    h.call(
        Method::POST,
        CREATE,
        Some(&h.claims(&alice)),
        Some(json!({})),
    )
    .await
    .expect(200);
    assert_eq!(
        resolve(&h, "sp-app-id").await.token_use_workspaces,
        vec![ws]
    );

    // Deleting the group takes its grant with it.
    let gid = g.json["id"].as_str().unwrap();
    h.admin(Method::DELETE, &format!("{GROUPS}/{gid}"), None)
        .await
        .expect(204);
    assert!(entry(
        &h.admin(Method::GET, TOKENS, None).await.json,
        "group_name",
        "token-users"
    )
    .is_none());
    assert!(resolve(&h, "bob@example.com")
        .await
        .token_use_workspaces
        .is_empty());

    // PUT with an empty list leaves admins only.
    let r = h
        .admin(
            Method::PUT,
            TOKENS,
            Some(json!({"access_control_list": []})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["access_control_list"].as_array().unwrap().len(), 1);
    h.admin(Method::POST, CREATE, Some(json!({})))
        .await
        .expect(200);
}

async fn bad_grants_are_refused(db: Db) {
    let h = Harness::new(db).await;
    h.add_user("alice@example.com").await;
    let before = h.admin(Method::GET, TOKENS, None).await.json;
    let refused = [
        // CAN_MANAGE cannot be granted to anyone but admins.
        (
            json!({"access_control_list": [{"user_name": "alice@example.com", "permission_level": "CAN_MANAGE"}]}),
            "CAN_MANAGE",
        ),
        (
            json!({"access_control_list": [{"group_name": "users", "permission_level": "CAN_MANAGE"}]}),
            "CAN_MANAGE",
        ),
        (
            json!({"access_control_list": [{"user_name": "alice@example.com", "permission_level": "CAN_RUN"}]}),
            "permission_level",
        ),
        (
            json!({"access_control_list": [{"user_name": "nobody@example.com", "permission_level": "CAN_USE"}]}),
            "user_name",
        ),
        (
            json!({"access_control_list": [{"group_name": "nope", "permission_level": "CAN_USE"}]}),
            "group_name",
        ),
        (
            json!({"access_control_list": [{"service_principal_name": "alice@example.com", "permission_level": "CAN_USE"}]}),
            "service_principal_name",
        ),
        (
            json!({"access_control_list": [{"permission_level": "CAN_USE"}]}),
            "access_control_list[0]",
        ),
        (
            json!({"access_control_list": [{"user_name": "alice@example.com", "group_name": "users", "permission_level": "CAN_USE"}]}),
            "access_control_list[0]",
        ),
        (
            json!({"access_control_list": [{"user_name": "alice@example.com"}]}),
            "permission_level",
        ),
        (
            json!({"access_control_list": [{"user_name": 5, "permission_level": "CAN_USE"}]}),
            "user_name",
        ),
        (json!({"access_control_list": "all"}), "access_control_list"),
        (json!({}), "access_control_list"),
    ];
    for method in [Method::PUT, Method::PATCH] {
        for (body, named) in &refused {
            let r = h.admin(method.clone(), TOKENS, Some(body.clone())).await;
            r.expect_error(400, "INVALID_PARAMETER_VALUE");
            let message = r.json["message"].as_str().unwrap();
            assert!(message.contains(named), "{body}: {message}");
        }
        h.call_raw(
            method.clone(),
            TOKENS,
            Some(&h.db.key.sign(h.admin_claims()).unwrap()),
            Some("{\"access_control_list\": [".into()),
        )
        .await
        .expect_error(400, "MALFORMED_REQUEST");
    }
    // A refused request changes nothing, even when earlier entries were valid.
    h.admin(
        Method::PUT,
        TOKENS,
        Some(json!({"access_control_list": [
            {"user_name": "alice@example.com", "permission_level": "CAN_USE"},
            {"user_name": "alice@example.com", "permission_level": "CAN_MANAGE"},
        ]})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(h.admin(Method::GET, TOKENS, None).await.json, before);
}

async fn other_objects_do_not_exist(db: Db) {
    let h = Harness::new(db).await;
    let acl =
        json!({"access_control_list": [{"user_name": "a@b.c", "permission_level": "CAN_RUN"}]});
    for (method, path, body) in [
        (Method::GET, "/api/2.0/permissions/clusters/c1", None),
        (
            Method::GET,
            "/api/2.0/permissions/clusters/c1/permissionLevels",
            None,
        ),
        (
            Method::GET,
            "/api/2.0/permissions/authorization/passwords",
            None,
        ),
        (
            Method::PUT,
            "/api/2.0/permissions/notebooks/123",
            Some(acl.clone()),
        ),
        (
            Method::PATCH,
            "/api/2.0/permissions/cluster-policies/ABC123",
            Some(acl.clone()),
        ),
    ] {
        let r = h.admin(method, path, body).await;
        r.expect_error(404, "RESOURCE_DOES_NOT_EXIST");
        assert!(r.json["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"));
    }
    h.admin(
        Method::PUT,
        "/api/2.0/permissions/clusters/c1",
        Some(json!({"access_control_list": 3})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    h.admin(
        Method::POST,
        "/api/2.0/permissions/clusters/c1",
        Some(acl.clone()),
    )
    .await
    .expect_error(404, "ENDPOINT_NOT_FOUND");
    h.admin(
        Method::PUT,
        &format!("{TOKENS}/permissionLevels"),
        Some(acl),
    )
    .await
    .expect_error(404, "ENDPOINT_NOT_FOUND");
}

/// Unassigning a principal from the workspace drops its direct grants there: assigning it
/// again does not bring them back.
async fn unassigning_drops_grants(db: Db) {
    let h = Harness::new(db).await;
    let alice = h.add_user("alice@example.com").await;
    h.admin(
        Method::PUT,
        TOKENS,
        Some(json!({"access_control_list": [
        {"user_name": "alice@example.com", "permission_level": "CAN_USE"}]})),
    )
    .await
    .expect(200);
    h.admin(
        Method::DELETE,
        &format!("/api/2.0/preview/scim/v2/Users/{}", alice.id),
        None,
    )
    .await
    .expect(204);
    let r = h.admin(Method::GET, TOKENS, None).await;
    assert!(entry(&r.json, "user_name", "alice@example.com").is_none());
    h.admin(
        Method::POST,
        "/api/2.0/preview/scim/v2/Users",
        Some(json!({"userName": "alice@example.com"})),
    )
    .await
    .expect(201);
    h.call(
        Method::POST,
        CREATE,
        Some(&h.claims(&alice)),
        Some(json!({})),
    )
    .await
    .expect_error(403, "PERMISSION_DENIED");
}

both_backends!(
    defaults_let_every_member_use_tokens,
    put_narrows_and_patch_grants,
    bad_grants_are_refused,
    other_objects_do_not_exist,
    unassigning_drops_grants,
);
