//! Workspace SCIM users and groups.

use crate::test_support::{both_backends, Db, Harness};
use axum::http::Method;
use lakeward_common::internal::RESOLVE_PRINCIPAL_PATH;
use serde_json::json;

const USERS: &str = "/api/2.0/preview/scim/v2/Users";
const GROUPS: &str = "/api/2.0/preview/scim/v2/Groups";

async fn users_lifecycle(db: Db) {
    let h = Harness::new(db).await;
    let version = h.admin(Method::GET, USERS, None).await.version();
    let r = h
        .admin(
            Method::POST,
            USERS,
            Some(json!({"userName": "new@b.c", "displayName": "New"})),
        )
        .await;
    r.expect(201);
    assert_eq!(r.version(), version + 1);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json["userName"], "new@b.c");
    assert_eq!(r.json["groups"][0]["display"], "users");
    h.admin(Method::POST, USERS, Some(json!({"userName": "new@b.c"})))
        .await
        .expect_error(409, "RESOURCE_ALREADY_EXISTS");
    h.admin(Method::POST, USERS, Some(json!({"displayName": "x"})))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");

    let got = h.admin(Method::GET, &format!("{USERS}/{id}"), None).await;
    got.expect(200);
    assert_eq!(got.json["displayName"], "New");

    // The SDK's paging: filter, then a page past the end.
    let page = h
        .admin(
            Method::GET,
            &format!("{USERS}?filter=userName+eq+%22NEW%40b.c%22&startIndex=1&count=10000"),
            None,
        )
        .await;
    page.expect(200);
    assert_eq!(page.json["totalResults"], 1);
    assert_eq!(page.json["Resources"][0]["id"], id.as_str());
    let past = h
        .admin(
            Method::GET,
            &format!("{USERS}?filter=userName+eq+%22new%40b.c%22&startIndex=2&count=10000"),
            None,
        )
        .await;
    assert_eq!(past.json["Resources"], json!([]));
    let all = h.admin(Method::GET, USERS, None).await;
    assert_eq!(all.json["totalResults"], 2);

    // Deactivate in the documented form; the gateway sees it.
    h.admin(
        Method::PATCH,
        &format!("{USERS}/{id}"),
        Some(json!({"Operations": [{"op": "replace", "path": "active", "value": [{"value": "false"}]}],
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]})),
    )
    .await
    .expect(204);
    let resolved = h
        .gateway(
            Method::POST,
            RESOLVE_PRINCIPAL_PATH,
            Some(json!({"user_name": "new@b.c"})),
        )
        .await;
    assert_eq!(resolved.json["active"], false);
    h.admin(
        Method::PATCH,
        &format!("{USERS}/{}", h.admin.id),
        Some(json!({"Operations": [{"op": "replace", "path": "active", "value": false}]})),
    )
    .await
    .expect_error(400, "INVALID_STATE");

    // Delete removes from the workspace only.
    h.admin(Method::DELETE, &format!("{USERS}/{}", h.admin.id), None)
        .await
        .expect_error(400, "INVALID_STATE");
    h.admin(Method::DELETE, &format!("{USERS}/{id}"), None)
        .await
        .expect(204);
    h.admin(Method::GET, &format!("{USERS}/{id}"), None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.admin(Method::GET, &format!("{USERS}/nonsense"), None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    // Adding them back re-admits the same account user.
    let again = h
        .admin(Method::POST, USERS, Some(json!({"userName": "new@b.c"})))
        .await;
    again.expect(201);
    assert_eq!(again.json["id"], id.as_str());

    // Only admins change users.
    let alice = h.add_user("alice@example.com").await;
    h.call(
        Method::POST,
        USERS,
        Some(&h.claims(&alice)),
        Some(json!({"userName": "x@y.z"})),
    )
    .await
    .expect_error(403, "PERMISSION_DENIED");
    h.call(Method::GET, USERS, Some(&h.claims(&alice)), None)
        .await
        .expect(200);
}

async fn groups_lifecycle(db: Db) {
    let h = Harness::new(db).await;
    let alice = h.add_user("alice@example.com").await;
    let r = h
        .admin(
            Method::POST,
            GROUPS,
            Some(json!({"displayName": "g1", "members": [{"value": alice.id.to_string()}]})),
        )
        .await;
    r.expect(201);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json["members"][0]["value"], alice.id.to_string());
    h.admin(Method::POST, GROUPS, Some(json!({"displayName": "g1"})))
        .await
        .expect_error(409, "RESOURCE_ALREADY_EXISTS");
    h.admin(
        Method::POST,
        GROUPS,
        Some(json!({"displayName": "nested", "members": [{"value": id}]})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");

    let path = format!("{GROUPS}/{id}");
    h.admin(
        Method::PATCH,
        &path,
        Some(json!({"Operations": [{"op": "add", "value": {"members": [{"value": h.admin.id.to_string()}]}}]})),
    )
    .await
    .expect(204);
    let got = h.admin(Method::GET, &path, None).await;
    assert_eq!(got.json["members"].as_array().unwrap().len(), 2);
    h.admin(
        Method::PATCH,
        &path,
        Some(json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{}\"]", alice.id)}]})),
    )
    .await
    .expect(204);
    h.admin(
        Method::PATCH,
        &path,
        Some(json!({"Operations": [{"op": "replace", "path": "displayName", "value": "g2"}]})),
    )
    .await
    .expect(204);
    let got = h.admin(Method::GET, &path, None).await;
    assert_eq!(got.json["displayName"], "g2");
    assert_eq!(got.json["members"][0]["value"], h.admin.id.to_string());

    // Alice's Me no longer shows g1; the admin's shows g2.
    let me = h
        .admin(Method::GET, "/api/2.0/preview/scim/v2/Me", None)
        .await;
    assert!(me.json.to_string().contains("\"g2\""));

    let list = h
        .admin(
            Method::GET,
            &format!("{GROUPS}?filter=displayName+eq+%22g2%22"),
            None,
        )
        .await;
    assert_eq!(list.json["totalResults"], 1);
    let all = h
        .admin(
            Method::GET,
            &format!("{GROUPS}?startIndex=1&count=10000"),
            None,
        )
        .await;
    assert_eq!(all.json["totalResults"], 3, "admins, users, g2");
    let past = h
        .admin(
            Method::GET,
            &format!("{GROUPS}?startIndex=4&count=10000"),
            None,
        )
        .await;
    assert_eq!(past.json["Resources"], json!([]));

    // The built-in groups are protected, and so is one's own admin membership.
    let admins = all.json["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["displayName"] == "admins")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.admin(Method::DELETE, &format!("{GROUPS}/{admins}"), None)
        .await
        .expect_error(400, "INVALID_STATE");
    h.admin(
        Method::PATCH,
        &format!("{GROUPS}/{admins}"),
        Some(json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{}\"]", h.admin.id)}]})),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    h.admin(
        Method::PATCH,
        &format!("{GROUPS}/{admins}"),
        Some(json!({"Operations": [{"op": "replace", "path": "displayName", "value": "bosses"}]})),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    // Making alice an admin shows up in what the gateway resolves.
    h.admin(
        Method::PATCH,
        &format!("{GROUPS}/{admins}"),
        Some(json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": alice.id.to_string()}]}]})),
    )
    .await
    .expect(204);
    let resolved = h
        .gateway(
            Method::POST,
            RESOLVE_PRINCIPAL_PATH,
            Some(json!({"user_name": "alice@example.com"})),
        )
        .await;
    let record: lakeward_common::internal::PrincipalRecord =
        serde_json::from_value(resolved.json).unwrap();
    assert!(record.is_workspace_admin(h.boot.default_workspace_id));

    h.admin(Method::DELETE, &path, None).await.expect(204);
    h.admin(Method::GET, &path, None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

async fn service_principals_and_obo(db: Db) {
    let h = Harness::new(db).await;
    const SPS: &str = "/api/2.0/preview/scim/v2/ServicePrincipals";
    let r = h
        .admin(
            Method::POST,
            SPS,
            Some(json!({"applicationId": "app-uuid", "displayName": "sp1"})),
        )
        .await;
    r.expect(201);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json["applicationId"], "app-uuid");
    h.admin(
        Method::POST,
        SPS,
        Some(json!({"applicationId": "app-uuid"})),
    )
    .await
    .expect_error(409, "RESOURCE_ALREADY_EXISTS");
    let generated = h
        .admin(Method::POST, SPS, Some(json!({"displayName": "sp2"})))
        .await;
    generated.expect(201);
    assert!(uuid::Uuid::parse_str(generated.json["applicationId"].as_str().unwrap()).is_ok());
    let page = h
        .admin(
            Method::GET,
            &format!("{SPS}?filter=applicationId+eq+%22app-uuid%22"),
            None,
        )
        .await;
    assert_eq!(page.json["totalResults"], 1);
    assert_eq!(page.json["Resources"][0]["id"], id.as_str());
    // Users do not list service principals, and the other way round.
    let users = h.admin(Method::GET, USERS, None).await;
    assert_eq!(users.json["totalResults"], 1);
    h.admin(Method::GET, &format!("{USERS}/{id}"), None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");

    let obo = h
        .admin(
            Method::POST,
            "/api/2.0/token-management/on-behalf-of/tokens",
            Some(json!({"application_id": "app-uuid", "lifetime_seconds": 600})),
        )
        .await;
    obo.expect(200);
    h.admin(
        Method::PATCH,
        &format!("{SPS}/{id}"),
        Some(json!({"Operations": [{"op": "replace", "path": "displayName", "value": "renamed"}]})),
    )
    .await
    .expect(204);
    assert_eq!(
        h.admin(Method::GET, &format!("{SPS}/{id}"), None)
            .await
            .json["displayName"],
        "renamed"
    );
    // Removing it from the workspace revokes its tokens there.
    h.admin(Method::DELETE, &format!("{SPS}/{id}"), None)
        .await
        .expect(204);
    let hash = lakeward_common::token::hash_token(obo.json["token_value"].as_str().unwrap());
    h.gateway(
        Method::POST,
        lakeward_common::internal::RESOLVE_TOKEN_PATH,
        Some(json!({"token_hash": hash})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

both_backends!(
    users_lifecycle,
    groups_lifecycle,
    service_principals_and_obo
);
