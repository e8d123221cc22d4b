//! Account-level SCIM, identity federation between the account and a workspace, and `PUT` in
//! both directories.

use crate::test_support::{both_backends, Db, Harness};
use axum::http::Method;
use lakeward_common::internal::{PrincipalRecord, RESOLVE_PRINCIPAL_PATH};
use serde_json::{json, Value};

const WS_USERS: &str = "/api/2.0/preview/scim/v2/Users";
const WS_SPS: &str = "/api/2.0/preview/scim/v2/ServicePrincipals";
const WS_GROUPS: &str = "/api/2.0/preview/scim/v2/Groups";

async fn resolve(h: &Harness, name: &str) -> Option<PrincipalRecord> {
    let r = h
        .gateway(
            Method::POST,
            RESOLVE_PRINCIPAL_PATH,
            Some(json!({ "user_name": name })),
        )
        .await;
    (r.status == 200).then(|| serde_json::from_value(r.json.clone()).unwrap())
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn patch(ops: Value) -> Option<Value> {
    Some(json!({
        "Operations": ops,
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    }))
}

async fn account_users_and_federation(db: Db) {
    let h = Harness::new(db).await;
    let ws = h.boot.default_workspace_id;
    let all = h.account(Method::GET, "/scim/v2/Users", None).await;
    all.expect(200);
    assert_eq!(all.json["totalResults"], 1);
    assert_eq!(all.json["Resources"][0]["userName"], "admin@example.com");
    // The account view shows account groups only.
    let groups = all.json["Resources"][0]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["display"], "admins");

    // An account user is not in any workspace until assigned.
    let r = h
        .account(
            Method::POST,
            "/scim/v2/Users",
            Some(json!({"userName": "carol@example.com", "displayName": "Carol"})),
        )
        .await;
    r.expect(201);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json["groups"], json!([]));
    h.account(
        Method::POST,
        "/scim/v2/Users",
        Some(json!({"userName": "CAROL@example.com"})),
    )
    .await
    .expect_error(409, "RESOURCE_ALREADY_EXISTS");
    h.admin(Method::GET, &format!("{WS_USERS}/{id}"), None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    let carol = resolve(&h, "carol@example.com").await.unwrap();
    assert!(!carol.is_workspace_member(ws));
    assert!(carol.token_use_workspaces.is_empty());

    // Creating her in the workspace assigns the account user (identity federation).
    let assigned = h
        .admin(
            Method::POST,
            WS_USERS,
            Some(json!({"userName": "carol@example.com"})),
        )
        .await;
    assigned.expect(201);
    assert_eq!(assigned.json["id"], id.as_str());
    assert_eq!(assigned.json["displayName"], "Carol");
    let carol = resolve(&h, "carol@example.com").await.unwrap();
    assert!(carol.is_workspace_member(ws));
    assert_eq!(carol.token_use_workspaces, vec![ws]);
    // ... and the account view still shows no workspace group.
    let got = h
        .account(Method::GET, &format!("/scim/v2/Users/{id}"), None)
        .await;
    got.expect(200);
    assert_eq!(got.json["groups"], json!([]));

    // `active`, in every form clients send it.
    let path = format!("/scim/v2/Users/{id}");
    for (ops, active) in [
        (
            json!([{"op": "replace", "path": "active", "value": [{"value": "false"}]}]),
            false,
        ),
        (json!([{"op": "replace", "value": {"active": true}}]), true),
        (
            json!([{"op": "replace", "path": "active", "value": false}]),
            false,
        ),
        (
            json!([{"op": "Replace", "path": "active", "value": "true"}]),
            true,
        ),
    ] {
        h.account(Method::PATCH, &path, patch(ops.clone()))
            .await
            .expect(204);
        let carol = resolve(&h, "carol@example.com").await.unwrap();
        assert_eq!(carol.active, active, "{ops}");
    }

    // Filters and paging.
    for (filter, expected) in [
        ("userName+sw+%22carol%22", 1),
        ("displayName+co+%22aro%22", 1),
        ("userName+co+%22EXAMPLE.COM%22", 2),
        ("userName+eq+%22nobody%22", 0),
    ] {
        let page = h
            .account(
                Method::GET,
                &format!("/scim/v2/Users?filter={filter}&startIndex=1&count=10000"),
                None,
            )
            .await;
        page.expect(200);
        assert_eq!(page.json["totalResults"], expected, "{filter}");
    }
    let first = h
        .account(Method::GET, "/scim/v2/Users?startIndex=1&count=1", None)
        .await;
    let second = h
        .account(Method::GET, "/scim/v2/Users?startIndex=2&count=1", None)
        .await;
    let third = h
        .account(Method::GET, "/scim/v2/Users?startIndex=3&count=1", None)
        .await;
    assert_eq!(ids(&first.json).len(), 1);
    assert_eq!(ids(&second.json).len(), 1);
    assert_ne!(ids(&first.json), ids(&second.json));
    assert_eq!(third.json["Resources"], json!([]));
    h.account(
        Method::GET,
        "/scim/v2/Users?filter=userName+gt+%22a%22",
        None,
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");

    // PUT replaces: absent `active` is true, absent `displayName` is the userName.
    h.account(
        Method::PATCH,
        &path,
        patch(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await
    .expect(204);
    let put = h
        .account(
            Method::PUT,
            &path,
            Some(json!({"userName": "carol2@example.com",
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "emails": [{"value": "carol2@example.com", "primary": true}]})),
        )
        .await;
    put.expect(200);
    assert_eq!(put.json["userName"], "carol2@example.com");
    assert_eq!(put.json["displayName"], "carol2@example.com");
    assert_eq!(put.json["active"], true);
    h.account(
        Method::PUT,
        &path,
        Some(json!({"userName": "admin@example.com"})),
    )
    .await
    .expect_error(409, "RESOURCE_ALREADY_EXISTS");
    h.account(
        Method::PUT,
        "/scim/v2/Users/123",
        Some(json!({"userName": "x@y.z"})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");

    // Deleting from the account deletes everywhere, tokens included.
    let mut claims = h.claims(&crate::store::directory::Principal {
        id: id.parse().unwrap(),
        kind: lakeward_common::assertion::PrincipalKind::User,
        user_name: "carol2@example.com".into(),
        display_name: "c".into(),
        active: true,
        application_id: None,
    });
    claims.workspace_id = Some(ws);
    let token = h
        .call(
            Method::POST,
            "/api/2.0/token/create",
            Some(&claims),
            Some(json!({})),
        )
        .await;
    token.expect(200);
    h.account(
        Method::DELETE,
        &format!("/scim/v2/Users/{}", h.admin.id),
        None,
    )
    .await
    .expect_error(400, "INVALID_STATE");
    h.account(Method::DELETE, &path, None).await.expect(204);
    h.account(Method::GET, &path, None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.admin(Method::GET, &format!("{WS_USERS}/{id}"), None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    assert!(resolve(&h, "carol2@example.com").await.is_none());
    let hash = lakeward_common::token::hash_token(token.json["token_value"].as_str().unwrap());
    h.gateway(
        Method::POST,
        lakeward_common::internal::RESOLVE_TOKEN_PATH,
        Some(json!({"token_hash": hash})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");

    // Only account admins reach the account directory.
    let alice = h.add_user("alice@example.com").await;
    let mut claims = h.claims(&alice);
    claims.workspace_id = None;
    h.call(
        Method::GET,
        &format!("/api/2.0/accounts/{}/scim/v2/Users", h.boot.account_id),
        Some(&claims),
        None,
    )
    .await
    .expect_error(403, "PERMISSION_DENIED");
}

async fn account_groups_and_admins(db: Db) {
    let h = Harness::new(db).await;
    let alice = h.add_user("alice@example.com").await;
    let all = h.account(Method::GET, "/scim/v2/Groups", None).await;
    all.expect(200);
    assert_eq!(
        all.json["totalResults"], 1,
        "workspace groups are not listed"
    );
    let admins = &all.json["Resources"][0];
    assert_eq!(admins["displayName"], "admins");
    assert_eq!(admins["meta"]["resourceType"], "Group");
    assert_eq!(admins["members"][0]["value"], h.admin.id.to_string());
    let admins_path = format!("/scim/v2/Groups/{}", admins["id"].as_str().unwrap());

    let r = h
        .account(
            Method::POST,
            "/scim/v2/Groups",
            Some(json!({"displayName": "data-eng", "members": [{"value": alice.id.to_string()}]})),
        )
        .await;
    r.expect(201);
    let path = format!("/scim/v2/Groups/{}", r.json["id"].as_str().unwrap());
    let record = resolve(&h, "alice@example.com").await.unwrap();
    assert!(record
        .groups
        .iter()
        .any(|g| g.display_name == "data-eng" && g.workspace_id.is_none()));
    // An account group is not a workspace group, and the names live apart.
    h.admin(
        Method::POST,
        WS_GROUPS,
        Some(json!({"displayName": "data-eng"})),
    )
    .await
    .expect(201);
    h.account(
        Method::POST,
        "/scim/v2/Groups",
        Some(json!({"displayName": "data-eng"})),
    )
    .await
    .expect_error(409, "RESOURCE_ALREADY_EXISTS");

    // Member removal by path, then PUT back with a new name.
    h.account(
        Method::PATCH,
        &path,
        patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", alice.id)}])),
    )
    .await
    .expect(204);
    assert_eq!(
        h.account(Method::GET, &path, None).await.json["members"],
        json!([])
    );
    let put = h
        .account(
            Method::PUT,
            &path,
            Some(json!({"displayName": "data-platform",
                "members": [{"value": alice.id.to_string()}, {"value": h.admin.id.to_string()}]})),
        )
        .await;
    put.expect(200);
    assert_eq!(put.json["displayName"], "data-platform");
    assert_eq!(put.json["members"].as_array().unwrap().len(), 2);
    let filtered = h
        .account(
            Method::GET,
            "/scim/v2/Groups?filter=displayName+sw+%22DATA%22",
            None,
        )
        .await;
    assert_eq!(filtered.json["totalResults"], 1);

    // The account admins group makes account admins, and guards itself.
    h.account(
        Method::PATCH,
        &admins_path,
        patch(json!([{"op": "add", "value": {"members": [{"value": alice.id.to_string()}]}}])),
    )
    .await
    .expect(204);
    assert!(resolve(&h, "alice@example.com")
        .await
        .unwrap()
        .is_account_admin());
    h.account(
        Method::PATCH,
        &admins_path,
        patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", h.admin.id)}])),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    h.account(
        Method::PUT,
        &admins_path,
        Some(json!({"displayName": "admins", "members": [{"value": alice.id.to_string()}]})),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    h.account(
        Method::PUT,
        &admins_path,
        Some(json!({"displayName": "bosses", "members": [{"value": h.admin.id.to_string()}]})),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    h.account(Method::DELETE, &admins_path, None)
        .await
        .expect_error(400, "INVALID_STATE");

    h.account(Method::DELETE, &path, None).await.expect(204);
    h.account(Method::GET, &path, None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

async fn account_service_principals(db: Db) {
    let h = Harness::new(db).await;
    let r = h
        .account(
            Method::POST,
            "/scim/v2/ServicePrincipals",
            Some(json!({"applicationId": "app-1", "displayName": "sp1"})),
        )
        .await;
    r.expect(201);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let path = format!("/scim/v2/ServicePrincipals/{id}");
    let listed = h.admin(Method::GET, WS_SPS, None).await;
    assert_eq!(listed.json["totalResults"], 0);
    // Assigned to the workspace by creating it there.
    let assigned = h
        .admin(
            Method::POST,
            WS_SPS,
            Some(json!({"applicationId": "app-1"})),
        )
        .await;
    assigned.expect(201);
    assert_eq!(assigned.json["id"], id.as_str());
    let page = h
        .account(
            Method::GET,
            "/scim/v2/ServicePrincipals?filter=applicationId+eq+%22app-1%22",
            None,
        )
        .await;
    assert_eq!(ids(&page.json), vec![id.clone()]);

    h.account(
        Method::PUT,
        &path,
        Some(json!({"applicationId": "app-2", "displayName": "x"})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    let put = h
        .account(
            Method::PUT,
            &path,
            Some(json!({"applicationId": "app-1", "displayName": "renamed", "active": false})),
        )
        .await;
    put.expect(200);
    assert_eq!(put.json["displayName"], "renamed");
    assert_eq!(put.json["active"], false);
    assert!(!resolve(&h, "app-1").await.unwrap().active);

    h.account(Method::DELETE, &path, None).await.expect(204);
    assert!(resolve(&h, "app-1").await.is_none());
    h.admin(Method::GET, &format!("{WS_SPS}/{id}"), None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

async fn workspace_put(db: Db) {
    let h = Harness::new(db).await;
    let ws = h.boot.default_workspace_id;
    let g1 = h
        .admin(Method::POST, WS_GROUPS, Some(json!({"displayName": "g1"})))
        .await;
    let g2 = h
        .admin(Method::POST, WS_GROUPS, Some(json!({"displayName": "g2"})))
        .await;
    let (g1, g2) = (
        g1.json["id"].as_str().unwrap().to_owned(),
        g2.json["id"].as_str().unwrap().to_owned(),
    );
    let r = h
        .admin(
            Method::POST,
            WS_USERS,
            Some(json!({"userName": "u@b.c", "groups": [{"value": g1}]})),
        )
        .await;
    r.expect(201);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let path = format!("{WS_USERS}/{id}");

    // `groups` replaces memberships among the workspace's groups, but not the assignment.
    let put = h
        .admin(
            Method::PUT,
            &path,
            Some(json!({"userName": "u2@b.c", "displayName": "U2", "groups": [{"value": g2}]})),
        )
        .await;
    put.expect(200);
    let shown: Vec<&str> = put.json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    assert!(shown.contains(&"g2") && shown.contains(&"users") && !shown.contains(&"g1"));
    let record = resolve(&h, "u2@b.c").await.unwrap();
    assert!(record.is_workspace_member(ws));
    // What a GET shows (account groups included) can be PUT back unchanged.
    let mut admin_user = h
        .admin(Method::GET, &format!("{WS_USERS}/{}", h.admin.id), None)
        .await
        .json;
    assert!(
        admin_user["groups"].as_array().unwrap().len() >= 3,
        "{admin_user}"
    );
    admin_user["displayName"] = json!("The Admin");
    let back = h
        .admin(
            Method::PUT,
            &format!("{WS_USERS}/{}", h.admin.id),
            Some(admin_user.clone()),
        )
        .await;
    back.expect(200);
    assert_eq!(back.json["groups"], admin_user["groups"]);
    assert!(resolve(&h, "admin@example.com")
        .await
        .unwrap()
        .is_account_admin());
    // Without `groups`, memberships stay.
    h.admin(Method::PUT, &path, Some(json!({"userName": "u2@b.c"})))
        .await
        .expect(200);
    assert!(h
        .admin(Method::GET, &path, None)
        .await
        .json
        .to_string()
        .contains("\"g2\""));

    // Guards: oneself, and the fields.
    let me = format!("{WS_USERS}/{}", h.admin.id);
    h.admin(
        Method::PUT,
        &me,
        Some(json!({"userName": "admin@example.com", "active": false})),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    h.admin(
        Method::PUT,
        &me,
        Some(json!({"userName": "admin@example.com", "groups": []})),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    h.admin(
        Method::PUT,
        &path,
        Some(json!({"userName": "u2@b.c", "groups": [{"value": "1"}]})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");

    // Groups: PUT replaces name and members.
    let gpath = format!("{WS_GROUPS}/{g2}");
    let put = h
        .admin(
            Method::PUT,
            &gpath,
            Some(json!({"displayName": "g2-renamed", "members": [{"value": h.admin.id.to_string()}]})),
        )
        .await;
    put.expect(200);
    assert_eq!(put.json["displayName"], "g2-renamed");
    assert_eq!(put.json["meta"]["resourceType"], "WorkspaceGroup");
    assert_eq!(put.json["members"].as_array().unwrap().len(), 1);
    h.admin(Method::PUT, &gpath, Some(json!({"displayName": "g1"})))
        .await
        .expect_error(409, "RESOURCE_ALREADY_EXISTS");
    let users_group = h
        .admin(
            Method::GET,
            &format!("{WS_GROUPS}?filter=displayName+eq+%22users%22"),
            None,
        )
        .await;
    let users_path = format!("{WS_GROUPS}/{}", ids(&users_group.json)[0]);
    h.admin(
        Method::PUT,
        &users_path,
        Some(json!({"displayName": "everyone"})),
    )
    .await
    .expect_error(400, "INVALID_STATE");

    // Service principals.
    let sp = h
        .admin(
            Method::POST,
            WS_SPS,
            Some(json!({"applicationId": "app-w"})),
        )
        .await;
    let sp_path = format!("{WS_SPS}/{}", sp.json["id"].as_str().unwrap());
    let put = h
        .admin(
            Method::PUT,
            &sp_path,
            Some(json!({"displayName": "worker", "groups": [{"value": g1}]})),
        )
        .await;
    put.expect(200);
    assert_eq!(put.json["displayName"], "worker");
    assert_eq!(put.json["applicationId"], "app-w");
    assert!(put.json["groups"].to_string().contains("\"g1\""));
}

/// Every SCIM body route answers bad input with 400 naming the field, never 500.
async fn bad_bodies_name_the_field(db: Db) {
    let h = Harness::new(db).await;
    let alice = h.add_user("alice@example.com").await;
    let group = h
        .admin(Method::POST, WS_GROUPS, Some(json!({"displayName": "g"})))
        .await;
    let gid = group.json["id"].as_str().unwrap().to_owned();
    let sp = h
        .admin(Method::POST, WS_SPS, Some(json!({"applicationId": "a"})))
        .await;
    let sid = sp.json["id"].as_str().unwrap().to_owned();
    let account = format!("/api/2.0/accounts/{}", h.boot.account_id);
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (Method::POST, WS_USERS.into(), json!({}), "userName"),
        (
            Method::POST,
            WS_USERS.into(),
            json!({"userName": 5}),
            "userName",
        ),
        (
            Method::POST,
            WS_USERS.into(),
            json!({"userName": " "}),
            "userName",
        ),
        (
            Method::POST,
            WS_USERS.into(),
            json!({"userName": "x@y", "active": "yes"}),
            "active",
        ),
        (
            Method::POST,
            WS_USERS.into(),
            json!({"userName": "x@y", "groups": "g"}),
            "groups",
        ),
        (
            Method::PUT,
            format!("{WS_USERS}/{}", alice.id),
            json!({"displayName": "x"}),
            "userName",
        ),
        (
            Method::PUT,
            format!("{WS_USERS}/{}", alice.id),
            json!({"userName": "a", "displayName": []}),
            "displayName",
        ),
        (
            Method::POST,
            WS_SPS.into(),
            json!({"applicationId": 5}),
            "applicationId",
        ),
        (
            Method::PUT,
            format!("{WS_SPS}/{sid}"),
            json!({"active": 1}),
            "active",
        ),
        (Method::POST, WS_GROUPS.into(), json!({}), "displayName"),
        (
            Method::POST,
            WS_GROUPS.into(),
            json!({"displayName": "x", "members": [{"value": "x"}]}),
            "members",
        ),
        (
            Method::PUT,
            format!("{WS_GROUPS}/{gid}"),
            json!({"members": []}),
            "displayName",
        ),
        (
            Method::PATCH,
            format!("{WS_GROUPS}/{gid}"),
            json!({}),
            "Operations",
        ),
        (
            Method::PATCH,
            format!("{WS_GROUPS}/{gid}"),
            json!({"Operations": {}}),
            "Operations",
        ),
        (
            Method::PATCH,
            format!("{WS_GROUPS}/{gid}"),
            json!({"Operations": [{"path": "members"}]}),
            "op",
        ),
        (
            Method::PATCH,
            format!("{WS_GROUPS}/{gid}"),
            json!({"Operations": [{"op": "add", "path": "members", "value": 3}]}),
            "members",
        ),
        (
            Method::PATCH,
            format!("{WS_USERS}/{}", alice.id),
            json!({"Operations": [{"op": "replace", "path": "active"}]}),
            "active",
        ),
        (
            Method::PATCH,
            format!("{WS_USERS}/{}", alice.id),
            json!({"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]}),
            "active",
        ),
        (
            Method::PATCH,
            format!("{WS_USERS}/{}", alice.id),
            json!({"Operations": [{"op": "move", "path": "active", "value": true}]}),
            "op",
        ),
        (
            Method::PATCH,
            format!("{WS_SPS}/{sid}"),
            json!({"Operations": [{"op": "replace", "path": "displayName", "value": 7}]}),
            "displayName",
        ),
        (
            Method::POST,
            format!("{account}/scim/v2/Users"),
            json!({"userName": null}),
            "userName",
        ),
        (
            Method::PUT,
            format!("{account}/scim/v2/Groups/{gid}"),
            json!({"displayName": 1}),
            "displayName",
        ),
        (
            Method::POST,
            format!("{account}/scim/v2/ServicePrincipals"),
            json!({"displayName": false}),
            "displayName",
        ),
    ];
    for (method, path, body, field) in cases {
        let claims = if path.starts_with(&account) {
            h.account_claims()
        } else {
            h.admin_claims()
        };
        let r = h
            .call(method.clone(), &path, Some(&claims), Some(body.clone()))
            .await;
        r.expect_error(400, "INVALID_PARAMETER_VALUE");
        let message = r.json["message"].as_str().unwrap();
        assert!(message.contains(field), "{method} {path} {body}: {message}");
        let raw = h
            .call_raw(
                method.clone(),
                &path,
                Some(&h.db.key.sign(claims).unwrap()),
                Some("{\"userName\": ".into()),
            )
            .await;
        raw.expect_error(400, "MALFORMED_REQUEST");
    }
}

both_backends!(
    account_users_and_federation,
    account_groups_and_admins,
    account_service_principals,
    workspace_put,
    bad_bodies_name_the_field,
);
