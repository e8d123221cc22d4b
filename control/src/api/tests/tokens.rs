//! Personal access tokens and token management.

use crate::api::tokens::{DEFAULT_LIFETIME_SECS, MAX_TOKENS_PER_PRINCIPAL};
use crate::store::tokens::{self, Token};
use crate::test_support::{both_backends, Db, Harness};
use axum::http::Method;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::token::looks_like_pat;
use serde_json::json;

async fn value_is_shown_once(db: Db) {
    let h = Harness::new(db).await;
    let r = h
        .admin(
            Method::POST,
            "/api/2.0/token/create",
            Some(json!({"comment": "ci", "lifetime_seconds": 3600})),
        )
        .await;
    r.expect(200);
    let value = r.json["token_value"].as_str().unwrap();
    assert!(looks_like_pat(value));
    let info = &r.json["token_info"];
    let id = info["token_id"].as_str().unwrap().to_owned();
    assert_eq!(info["comment"], "ci");
    let created = info["creation_time"].as_i64().unwrap();
    assert_eq!(info["expiry_time"].as_i64().unwrap(), created + 3_600_000);

    let list = h.admin(Method::GET, "/api/2.0/token/list", None).await;
    list.expect(200);
    let infos = list.json["token_infos"].as_array().unwrap();
    assert_eq!(infos.len(), 2, "bootstrap + new: {}", list.json);
    assert!(
        !list.json.to_string().contains(value),
        "the value never comes back"
    );
    assert!(infos.iter().all(|i| i.get("token_value").is_none()));
    let bootstrap = infos.iter().find(|i| i["comment"] == "bootstrap").unwrap();
    assert_eq!(bootstrap["expiry_time"], -1);

    // Update the comment.
    h.admin(
        Method::PATCH,
        &format!("/api/2.0/token/{id}"),
        Some(json!({"token": {"comment": "renamed"}, "update_mask": "comment"})),
    )
    .await
    .expect(200);
    let list = h.admin(Method::GET, "/api/2.0/token/list", None).await;
    assert!(list.json.to_string().contains("renamed"));

    // Delete it; a second delete is 404.
    h.admin(
        Method::POST,
        "/api/2.0/token/delete",
        Some(json!({"token_id": id})),
    )
    .await
    .expect(200);
    h.admin(
        Method::POST,
        "/api/2.0/token/delete",
        Some(json!({"token_id": id})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.admin(Method::POST, "/api/2.0/token/delete", Some(json!({})))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
}

async fn lifetimes_follow_workspace_conf(db: Db) {
    let h = Harness::new(db).await;
    let r = h
        .admin(Method::POST, "/api/2.0/token/create", Some(json!({})))
        .await;
    r.expect(200);
    let info = &r.json["token_info"];
    assert_eq!(
        info["expiry_time"].as_i64().unwrap() - info["creation_time"].as_i64().unwrap(),
        DEFAULT_LIFETIME_SECS * 1000
    );

    h.admin(
        Method::PATCH,
        "/api/2.0/workspace-conf",
        Some(json!({"maxTokenLifetimeDays": "1"})),
    )
    .await
    .expect(204);
    let r = h
        .admin(
            Method::POST,
            "/api/2.0/token/create",
            Some(json!({"lifetime_seconds": 86_401})),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETER_VALUE");
    h.admin(
        Method::POST,
        "/api/2.0/token/create",
        Some(json!({"lifetime_seconds": 86_400})),
    )
    .await
    .expect(200);
    // No lifetime under a maximum: capped at the maximum.
    let r = h
        .admin(Method::POST, "/api/2.0/token/create", Some(json!({})))
        .await;
    r.expect(200);
    let info = &r.json["token_info"];
    assert_eq!(
        info["expiry_time"].as_i64().unwrap() - info["creation_time"].as_i64().unwrap(),
        86_400_000
    );

    // Tokens switched off: creation refused, listing still works.
    h.admin(
        Method::PATCH,
        "/api/2.0/workspace-conf",
        Some(json!({"enableTokensConfig": "false"})),
    )
    .await
    .expect(204);
    h.admin(Method::POST, "/api/2.0/token/create", Some(json!({})))
        .await
        .expect_error(403, "PERMISSION_DENIED");
    h.admin(Method::GET, "/api/2.0/token/list", None)
        .await
        .expect(200);
}

async fn quota_is_600_per_user_and_workspace(db: Db) {
    let h = Harness::new(db).await;
    let user = h.add_user("busy@example.com").await;
    // Fill up to one below the quota directly, in one transaction (fast on both backends).
    let mut tx = h.store().begin_write().await.unwrap();
    for n in 0..MAX_TOKENS_PER_PRINCIPAL - 1 {
        let token = Token {
            token_id: crate::store::new_token_id(),
            workspace_id: h.boot.default_workspace_id,
            owner_id: user.id,
            created_by_id: user.id,
            created_by_username: None,
            comment: format!("t{n}"),
            creation_time: 1,
            expiry_time: -1,
        };
        tokens::insert(tx.conn(), &token, &format!("hash-{n}"))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let claims = h.claims(&user);
    h.call(
        Method::POST,
        "/api/2.0/token/create",
        Some(&claims),
        Some(json!({})),
    )
    .await
    .expect(200);
    h.call(
        Method::POST,
        "/api/2.0/token/create",
        Some(&claims),
        Some(json!({})),
    )
    .await
    .expect_error(400, "QUOTA_EXCEEDED");
    // Someone else is not affected.
    h.admin(Method::POST, "/api/2.0/token/create", Some(json!({})))
        .await
        .expect(200);
}

async fn users_see_only_their_own_tokens(db: Db) {
    let h = Harness::new(db).await;
    let alice = h.add_user("alice@example.com").await;
    let alice_claims = h.claims(&alice);
    let admin_token = h
        .admin(Method::POST, "/api/2.0/token/create", Some(json!({})))
        .await
        .json["token_info"]["token_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let list = h
        .call(
            Method::GET,
            "/api/2.0/token/list",
            Some(&alice_claims),
            None,
        )
        .await;
    assert_eq!(list.json["token_infos"], json!([]));
    let r = h
        .call(
            Method::POST,
            "/api/2.0/token/delete",
            Some(&alice_claims),
            Some(json!({"token_id": admin_token})),
        )
        .await;
    r.expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.call(
        Method::PATCH,
        &format!("/api/2.0/token/{admin_token}"),
        Some(&alice_claims),
        Some(json!({"token": {"comment": "mine now"}, "update_mask": "comment"})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    // Still there.
    let list = h.admin(Method::GET, "/api/2.0/token/list", None).await;
    assert!(list.json.to_string().contains(&admin_token));
}

async fn token_management_is_for_admins(db: Db) {
    let h = Harness::new(db).await;
    let alice = h.add_user("alice@example.com").await;
    let alice_claims = h.claims(&alice);
    let alice_token = h
        .call(
            Method::POST,
            "/api/2.0/token/create",
            Some(&alice_claims),
            Some(json!({"comment": "alice's"})),
        )
        .await
        .json["token_info"]["token_id"]
        .as_str()
        .unwrap()
        .to_owned();

    h.call(
        Method::GET,
        "/api/2.0/token-management/tokens",
        Some(&alice_claims),
        None,
    )
    .await
    .expect_error(403, "PERMISSION_DENIED");

    let all = h
        .admin(Method::GET, "/api/2.0/token-management/tokens", None)
        .await;
    all.expect(200);
    assert_eq!(all.json["token_infos"].as_array().unwrap().len(), 2);
    let by_alice = h
        .admin(
            Method::GET,
            "/api/2.0/token-management/tokens?created_by_username=alice%40example.com",
            None,
        )
        .await;
    let infos = by_alice.json["token_infos"].as_array().unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0]["created_by_username"], "alice@example.com");
    assert_eq!(infos[0]["owner_id"], alice.id);
    assert_eq!(infos[0]["workspace_id"], h.boot.default_workspace_id);
    let by_id = h
        .admin(
            Method::GET,
            &format!(
                "/api/2.0/token-management/tokens?created_by_id={}",
                h.admin.id
            ),
            None,
        )
        .await;
    assert_eq!(by_id.json["token_infos"].as_array().unwrap().len(), 1);
    h.admin(
        Method::GET,
        "/api/2.0/token-management/tokens?created_by_id=abc",
        None,
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");

    let path = format!("/api/2.0/token-management/tokens/{alice_token}");
    let got = h.admin(Method::GET, &path, None).await;
    got.expect(200);
    assert_eq!(got.json["token_info"]["comment"], "alice's");
    let updated = h
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"token": {"comment": "seen"}, "update_mask": "comment"})),
        )
        .await;
    updated.expect(200);
    assert_eq!(updated.json["comment"], "seen");
    h.admin(Method::DELETE, &path, None).await.expect(200);
    h.admin(Method::GET, &path, None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.admin(Method::DELETE, &path, None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

async fn on_behalf_of_tokens_are_for_service_principals(db: Db) {
    let h = Harness::new(db).await;
    let sp = h
        .add_principal("0b1c2d3e-app", PrincipalKind::ServicePrincipal)
        .await;
    let r = h
        .admin(
            Method::POST,
            "/api/2.0/token-management/on-behalf-of/tokens",
            Some(json!({"application_id": "0b1c2d3e-app", "comment": "obo", "lifetime_seconds": 600})),
        )
        .await;
    r.expect(200);
    assert!(looks_like_pat(r.json["token_value"].as_str().unwrap()));
    assert_eq!(r.json["token_info"]["owner_id"], sp.id);
    assert_eq!(r.json["token_info"]["created_by_id"], h.admin.id);

    // The token resolves to the service principal.
    let hash = lakeward_common::token::hash_token(r.json["token_value"].as_str().unwrap());
    let resolved = h
        .gateway(
            Method::POST,
            lakeward_common::internal::RESOLVE_TOKEN_PATH,
            Some(json!({"token_hash": hash})),
        )
        .await;
    resolved.expect(200);
    assert_eq!(resolved.json["principal"]["kind"], "service_principal");
    assert_eq!(resolved.json["principal"]["user_name"], "0b1c2d3e-app");

    h.admin(
        Method::POST,
        "/api/2.0/token-management/on-behalf-of/tokens",
        Some(json!({"application_id": "no-such-app"})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    // A user's name is not an application id.
    h.admin(
        Method::POST,
        "/api/2.0/token-management/on-behalf-of/tokens",
        Some(json!({"application_id": "admin@example.com"})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

both_backends!(
    value_is_shown_once,
    lifetimes_follow_workspace_conf,
    quota_is_600_per_user_and_workspace,
    users_see_only_their_own_tokens,
    token_management_is_for_admins,
    on_behalf_of_tokens_are_for_service_principals,
);
