//! Account workspaces.

use crate::test_support::{both_backends, Db, Harness};
use axum::http::Method;
use serde_json::json;

async fn list_is_a_bare_array(db: Db) {
    let h = Harness::new(db).await;
    let r = h.account(Method::GET, "/workspaces", None).await;
    r.expect(200);
    let all = r.json.as_array().expect("a bare JSON array");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["workspace_id"], h.boot.default_workspace_id);
    assert_eq!(all[0]["workspace_name"], "default");
    assert_eq!(all[0]["deployment_name"], "default");
    assert_eq!(all[0]["workspace_status"], "RUNNING");
    assert_eq!(all[0]["account_id"], h.boot.account_id.as_str());
}

async fn create_get_update_delete(db: Db) {
    let h = Harness::new(db).await;
    let r = h
        .account(
            Method::POST,
            "/workspaces",
            Some(
                json!({"workspace_name": "Data Team", "aws_region": "us-west-2",
                "credentials_id": "cred", "storage_configuration_id": "stor"}),
            ),
        )
        .await;
    r.expect(200);
    let id = r.json["workspace_id"].as_i64().unwrap();
    assert!((1_000_000_000_000_000..10_000_000_000_000_000).contains(&id));
    assert_eq!(r.json["workspace_status"], "RUNNING");
    assert_eq!(r.json["deployment_name"], "data-team");
    assert_eq!(r.json["aws_region"], "us-west-2");
    assert!(r.json["creation_time"].as_i64().unwrap() > 0);

    // The creator can use it at once, as an admin.
    let mut claims = h.admin_claims();
    claims.workspace_id = Some(id);
    let me = h
        .call(
            Method::GET,
            "/api/2.0/preview/scim/v2/Me",
            Some(&claims),
            None,
        )
        .await;
    me.expect(200);
    assert_eq!(
        me.headers["x-databricks-org-id"].to_str().unwrap(),
        id.to_string()
    );
    h.call(Method::GET, "/api/2.0/ip-access-lists", Some(&claims), None)
        .await
        .expect(200);

    // Derived names stay unique; explicit ones conflict.
    let again = h
        .account(
            Method::POST,
            "/workspaces",
            Some(json!({"workspace_name": "data team"})),
        )
        .await;
    assert_eq!(again.json["deployment_name"], "data-team-2");
    h.account(
        Method::POST,
        "/workspaces",
        Some(json!({"workspace_name": "x", "deployment_name": "data-team"})),
    )
    .await
    .expect_error(409, "RESOURCE_ALREADY_EXISTS");
    for bad in ["Data_Team", "-x", "accounts"] {
        h.account(
            Method::POST,
            "/workspaces",
            Some(json!({"workspace_name": "x", "deployment_name": bad})),
        )
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    }
    h.account(
        Method::POST,
        "/workspaces",
        Some(json!({"workspace_name": ""})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    h.account(
        Method::POST,
        "/workspaces",
        Some(json!({"aws_region": "x"})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");

    let path = format!("/workspaces/{id}");
    let got = h.account(Method::GET, &path, None).await;
    got.expect(200);
    assert_eq!(got.json["workspace_name"], "Data Team");
    // Update as the SDK does: the whole object back, with a mask.
    let mut object = got.json.clone();
    object["workspace_name"] = json!("Renamed");
    let updated = h
        .account(
            Method::PATCH,
            &format!("{path}?update_mask=workspace_name"),
            Some(object),
        )
        .await;
    updated.expect(200);
    assert_eq!(updated.json["workspace_name"], "Renamed");
    assert_eq!(updated.json["workspace_id"], id);
    h.account(
        Method::PATCH,
        &path,
        Some(json!({"deployment_name": "elsewhere"})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    let got = h.account(Method::GET, &path, None).await;
    assert_eq!(got.json["workspace_name"], "Renamed");
    assert_eq!(got.json["deployment_name"], "data-team");

    h.account(Method::DELETE, &path, None).await.expect(200);
    h.account(Method::GET, &path, None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.call(
        Method::GET,
        "/api/2.0/preview/scim/v2/Me",
        Some(&claims),
        None,
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.account(Method::GET, "/workspaces/abc", None)
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    // The deleted workspace's groups are gone from the admin's memberships.
    let me = h
        .admin(Method::GET, "/api/2.0/preview/scim/v2/Me", None)
        .await;
    assert_eq!(me.json["groups"].as_array().unwrap().len(), 3);
}

async fn deleting_your_own_tokens_workspace_is_refused(db: Db) {
    let h = Harness::new(db).await;
    let mut claims = h.account_claims();
    claims.token_id = Some("some-token".into());
    let mut conn = h.store().conn().await.unwrap();
    let bootstrap_token = crate::store::tokens::list(
        &mut conn,
        &crate::store::tokens::Filter {
            workspace_id: h.boot.default_workspace_id,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .remove(0);
    drop(conn);
    claims.token_id = Some(bootstrap_token.token_id);
    let path = format!(
        "/api/2.0/accounts/{}/workspaces/{}",
        h.boot.account_id, h.boot.default_workspace_id
    );
    h.call(Method::DELETE, &path, Some(&claims), None)
        .await
        .expect_error(400, "INVALID_STATE");
    h.account(
        Method::GET,
        &format!("/workspaces/{}", h.boot.default_workspace_id),
        None,
    )
    .await
    .expect(200);
}

async fn account_api_is_for_account_admins(db: Db) {
    let h = Harness::new(db).await;
    let alice = h.add_user("alice@example.com").await;
    let mut claims = h.claims(&alice);
    claims.workspace_id = None;
    let path = format!("/api/2.0/accounts/{}/workspaces", h.boot.account_id);
    h.call(Method::GET, &path, Some(&claims), None)
        .await
        .expect_error(403, "PERMISSION_DENIED");
    h.call(
        Method::GET,
        "/api/2.0/accounts/None/workspaces",
        Some(&h.account_claims()),
        None,
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

both_backends!(
    list_is_a_bare_array,
    create_get_update_delete,
    deleting_your_own_tokens_workspace_is_refused,
    account_api_is_for_account_admins,
);
