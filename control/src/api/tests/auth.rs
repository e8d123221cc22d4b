//! The assertion check, routing errors, body errors, `Me` and the state-version header.

use crate::test_support::{both_backends, Db, Harness};
use axum::http::Method;
use lakeward_common::assertion::{Audience, MasterSecret};
use serde_json::json;

async fn assertion_is_required(db: Db) {
    let h = Harness::new(db).await;
    let before = h.admin(Method::GET, "/api/2.0/token/list", None).await;
    let before_count = before.json["token_infos"].as_array().unwrap().len();
    let version = before.version();

    let create = Some(json!({"comment": "sneaky"}));
    // No header.
    let r = h
        .call(Method::POST, "/api/2.0/token/create", None, create.clone())
        .await;
    r.expect_error(401, "UNAUTHENTICATED");
    assert_eq!(r.version(), version);
    // Garbage.
    h.call_raw(
        Method::POST,
        "/api/2.0/token/create",
        Some("not-a-jwt"),
        create.as_ref().map(|b| b.to_string()),
    )
    .await
    .expect_error(401, "UNAUTHENTICATED");
    // Signed with another key, and with the runtime audience's key.
    for key in [
        MasterSecret::generate().key_for(Audience::Control),
        MasterSecret::generate().key_for(Audience::Runtime),
    ] {
        let forged = key.sign(h.admin_claims()).unwrap();
        h.call_raw(
            Method::POST,
            "/api/2.0/token/create",
            Some(&forged),
            create.as_ref().map(|b| b.to_string()),
        )
        .await
        .expect_error(401, "UNAUTHENTICATED");
    }
    // Unknown paths need an assertion too.
    h.call(Method::GET, "/api/2.0/nothing", None, None)
        .await
        .expect_error(401, "UNAUTHENTICATED");
    // A principal that does not exist.
    let mut ghost = h.admin_claims();
    ghost.sub = "12345".into();
    h.call(Method::GET, "/api/2.0/token/list", Some(&ghost), None)
        .await
        .expect_error(401, "UNAUTHENTICATED");

    let after = h.admin(Method::GET, "/api/2.0/token/list", None).await;
    assert_eq!(
        after.json["token_infos"].as_array().unwrap().len(),
        before_count
    );
    assert_eq!(after.version(), version, "nothing was written");
}

async fn unknown_routes_and_methods(db: Db) {
    let h = Harness::new(db).await;
    h.admin(Method::GET, "/api/2.0/nothing/here", None)
        .await
        .expect_error(404, "ENDPOINT_NOT_FOUND");
    h.admin(Method::DELETE, "/api/2.0/token/list", None)
        .await
        .expect_error(404, "ENDPOINT_NOT_FOUND");
    h.admin(Method::PUT, "/api/2.0/workspace-conf", None)
        .await
        .expect_error(404, "ENDPOINT_NOT_FOUND");
}

async fn bad_bodies_are_400_naming_the_field(db: Db) {
    let h = Harness::new(db).await;
    let claims = h.admin_claims();
    let r = h
        .call_raw(
            Method::POST,
            "/api/2.0/ip-access-lists",
            Some(&h.db.key.sign(claims.clone()).unwrap()),
            Some("{\"label\": ".into()),
        )
        .await;
    r.expect_error(400, "MALFORMED_REQUEST");
    let r = h
        .admin(
            Method::POST,
            "/api/2.0/ip-access-lists",
            Some(json!({"list_type": "ALLOW"})),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(
        r.json["message"].as_str().unwrap().contains("`label`"),
        "{}",
        r.json
    );
    let r = h
        .admin(
            Method::POST,
            "/api/2.0/token/create",
            Some(json!({"lifetime_seconds": "soon"})),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(
        r.json["message"]
            .as_str()
            .unwrap()
            .contains("`lifetime_seconds`"),
        "{}",
        r.json
    );
    let r = h
        .admin(
            Method::POST,
            "/api/2.0/ip-access-lists",
            Some(json!({"label": "x", "list_type": "ALLOW", "ip_addresses": "1.2.3.4"})),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(r.json["message"]
        .as_str()
        .unwrap()
        .contains("`ip_addresses`"));
    // NUL cannot be stored in PostgreSQL text: refused up front, never a 500.
    h.admin(
        Method::POST,
        "/api/2.0/ip-access-lists",
        Some(json!({"label": "a\u{0}b", "list_type": "ALLOW", "ip_addresses": []})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    h.admin(Method::GET, "/api/2.0/ip-access-lists/a%00b", None)
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    h.admin(Method::GET, "/api/2.0/ip-access-lists/%FF", None)
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    h.admin(
        Method::GET,
        "/api/2.0/token-management/tokens?created_by_username=a%00",
        None,
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    h.admin(
        Method::POST,
        "/api/2.0/token/delete",
        Some(json!({"token_id": "\u{0}"})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
}

async fn me_describes_the_caller(db: Db) {
    let h = Harness::new(db).await;
    let r = h
        .admin(Method::GET, "/api/2.0/preview/scim/v2/Me", None)
        .await;
    r.expect(200);
    assert_eq!(
        r.headers["x-databricks-org-id"].to_str().unwrap(),
        h.boot.default_workspace_id.to_string()
    );
    assert_eq!(r.json["userName"], "admin@example.com");
    assert_eq!(r.json["id"], h.admin.id.to_string());
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["emails"][0]["value"], "admin@example.com");
    let groups: Vec<&str> = r.json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    // Workspace admins, workspace users, account admins.
    assert_eq!(
        groups.iter().filter(|g| **g == "admins").count(),
        2,
        "{groups:?}"
    );
    assert!(groups.contains(&"users"));
    assert!(r.json["groups"][0]["value"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .is_ok());

    // Me needs a workspace.
    h.call(
        Method::GET,
        "/api/2.0/preview/scim/v2/Me",
        Some(&h.account_claims()),
        None,
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");

    // A principal that is not a member of the workspace is refused.
    let outsider = h.add_user("outsider@example.com").await;
    let mut claims = h.claims(&outsider);
    let other = h
        .account(
            Method::POST,
            "/workspaces",
            Some(json!({"workspace_name": "other"})),
        )
        .await;
    claims.workspace_id = other.json["workspace_id"].as_i64();
    h.call(
        Method::GET,
        "/api/2.0/preview/scim/v2/Me",
        Some(&claims),
        None,
    )
    .await
    .expect_error(403, "PERMISSION_DENIED");
}

async fn state_version_counts_writes(db: Db) {
    let h = Harness::new(db).await;
    let v0 = h
        .admin(Method::GET, "/api/2.0/token/list", None)
        .await
        .version();
    assert!(v0 >= 1, "bootstrap is a change");
    let v1 = h
        .admin(Method::GET, "/api/2.0/token/list", None)
        .await
        .version();
    assert_eq!(v0, v1, "reads change nothing");
    let created = h
        .admin(Method::POST, "/api/2.0/token/create", Some(json!({})))
        .await;
    created.expect(200);
    assert_eq!(created.version(), v0 + 1);
    // A refused write leaves the version alone.
    let refused = h
        .admin(
            Method::POST,
            "/api/2.0/token/create",
            Some(json!({"lifetime_seconds": -5})),
        )
        .await;
    refused.expect_error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(refused.version(), v0 + 1);
    let conf = h
        .admin(
            Method::PATCH,
            "/api/2.0/workspace-conf",
            Some(json!({"maxTokenLifetimeDays": "30"})),
        )
        .await;
    conf.expect(204);
    assert_eq!(conf.version(), v0 + 2);
    // Errors carry it too.
    let missing = h.admin(Method::GET, "/api/2.0/nope", None).await;
    assert_eq!(missing.version(), v0 + 2);
}

both_backends!(
    assertion_is_required,
    unknown_routes_and_methods,
    bad_bodies_are_400_naming_the_field,
    me_describes_the_caller,
    state_version_counts_writes,
);
