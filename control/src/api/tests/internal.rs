//! The gateway's internal API.

use crate::test_support::{both_backends, Db, Harness};
use axum::http::Method;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::internal::{
    ChangesResponse, GatewaySnapshot, PrincipalRecord, ResolvedToken, CHANGES_PATH, READY_PATH,
    RESOLVE_PRINCIPAL_PATH, RESOLVE_TOKEN_PATH, SNAPSHOT_PATH,
};
use lakeward_common::token::hash_token;
use serde_json::json;
use std::time::{Duration, Instant};

async fn refused_to_everyone_but_the_gateway(db: Db) {
    let h = Harness::new(db).await;
    let user = h.admin_claims();
    let mut anonymous = h.gateway_claims();
    anonymous.kind = PrincipalKind::Anonymous;
    for claims in [&user, &h.account_claims(), &anonymous] {
        for (method, path) in [
            (Method::GET, SNAPSHOT_PATH),
            (Method::POST, RESOLVE_TOKEN_PATH),
            (Method::POST, RESOLVE_PRINCIPAL_PATH),
            (Method::GET, CHANGES_PATH),
            (Method::GET, READY_PATH),
        ] {
            let body =
                (method == Method::POST).then(|| json!({"token_hash": "x", "user_name": "x"}));
            h.call(method, path, Some(claims), body)
                .await
                .expect_error(404, "ENDPOINT_NOT_FOUND");
        }
    }
    h.call(Method::GET, READY_PATH, None, None)
        .await
        .expect_error(401, "UNAUTHENTICATED");
    h.gateway(Method::GET, READY_PATH, None).await.expect(200);
}

async fn resolve_token_returns_principal_and_groups(db: Db) {
    let h = Harness::new(db).await;
    let value = h.boot.admin_token.clone().unwrap();
    let r = h
        .gateway(
            Method::POST,
            RESOLVE_TOKEN_PATH,
            Some(json!({"token_hash": hash_token(&value)})),
        )
        .await;
    r.expect(200);
    let resolved: ResolvedToken = serde_json::from_value(r.json).unwrap();
    assert_eq!(resolved.workspace_id, h.boot.default_workspace_id);
    assert_eq!(resolved.expiry_time_ms, -1);
    assert_eq!(resolved.principal.id, h.admin.id.to_string());
    assert_eq!(resolved.principal.kind, PrincipalKind::User);
    assert_eq!(resolved.principal.groups.len(), 3);
    assert!(resolved.principal.is_account_admin());
    assert!(resolved
        .principal
        .is_workspace_admin(h.boot.default_workspace_id));
    assert!(resolved
        .principal
        .is_workspace_member(h.boot.default_workspace_id));

    h.gateway(
        Method::POST,
        RESOLVE_TOKEN_PATH,
        Some(json!({"token_hash": hash_token("dapi00000000000000000000000000000000")})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");

    // A deleted token no longer resolves.
    let created = h
        .admin(Method::POST, "/api/2.0/token/create", Some(json!({})))
        .await;
    let value = created.json["token_value"].as_str().unwrap().to_owned();
    let id = created.json["token_info"]["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = Some(json!({"token_hash": hash_token(&value)}));
    h.gateway(Method::POST, RESOLVE_TOKEN_PATH, body.clone())
        .await
        .expect(200);
    h.admin(
        Method::POST,
        "/api/2.0/token/delete",
        Some(json!({"token_id": id})),
    )
    .await
    .expect(200);
    h.gateway(Method::POST, RESOLVE_TOKEN_PATH, body)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

async fn resolve_principal_by_name(db: Db) {
    let h = Harness::new(db).await;
    let alice = h.add_user("alice@example.com").await;
    let sp = h
        .add_principal("app-123", PrincipalKind::ServicePrincipal)
        .await;
    let r = h
        .gateway(
            Method::POST,
            RESOLVE_PRINCIPAL_PATH,
            Some(json!({"user_name": "alice@example.com"})),
        )
        .await;
    r.expect(200);
    let record: PrincipalRecord = serde_json::from_value(r.json).unwrap();
    assert_eq!(record.id, alice.id.to_string());
    assert!(record.is_workspace_member(h.boot.default_workspace_id));
    assert!(!record.is_workspace_admin(h.boot.default_workspace_id));
    let r = h
        .gateway(
            Method::POST,
            RESOLVE_PRINCIPAL_PATH,
            Some(json!({"user_name": "app-123"})),
        )
        .await;
    let record: PrincipalRecord = serde_json::from_value(r.json).unwrap();
    assert_eq!(record.id, sp.id.to_string());
    assert_eq!(record.kind, PrincipalKind::ServicePrincipal);
    h.gateway(
        Method::POST,
        RESOLVE_PRINCIPAL_PATH,
        Some(json!({"user_name": "nobody"})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

async fn snapshot_holds_what_the_gateway_caches(db: Db) {
    let h = Harness::new(db).await;
    h.admin(
        Method::POST,
        "/api/2.0/ip-access-lists",
        Some(json!({"label": "mine", "list_type": "ALLOW", "ip_addresses": ["10.0.0.0/8"]})),
    )
    .await
    .expect(200);
    h.admin(
        Method::PATCH,
        "/api/2.0/workspace-conf",
        Some(json!({"enableIpAccessLists": "true", "enableTokensConfig": "false"})),
    )
    .await
    .expect(204);
    h.account(
        Method::POST,
        "/ip-access-lists",
        Some(json!({"label": "acct", "list_type": "BLOCK", "ip_addresses": ["6.6.6.6"]})),
    )
    .await
    .expect(200);
    let r = h.gateway(Method::GET, SNAPSHOT_PATH, None).await;
    r.expect(200);
    let version = r.version();
    let snapshot: GatewaySnapshot = serde_json::from_value(r.json).unwrap();
    assert_eq!(snapshot.version, version);
    assert_eq!(snapshot.account_id, h.boot.account_id);
    assert!(snapshot.account_ip_acl_enabled);
    assert_eq!(snapshot.account_ip_access_lists.len(), 1);
    assert_eq!(
        snapshot.account_ip_access_lists[0].ip_addresses,
        vec!["6.6.6.6"]
    );
    assert_eq!(snapshot.workspaces.len(), 1);
    let ws = &snapshot.workspaces[0];
    assert_eq!(ws.workspace_id, h.boot.default_workspace_id);
    assert_eq!(ws.deployment_name, "default");
    assert_eq!(ws.workspace_status, "RUNNING");
    assert!(ws.enable_ip_access_lists);
    assert!(!ws.enable_tokens);
    assert_eq!(ws.ip_access_lists.len(), 1);
    assert!(ws.ip_access_lists[0].enabled);
}

async fn changes_long_poll(db: Db) {
    let h = Harness::new(db).await;
    let current = h.gateway(Method::GET, READY_PATH, None).await.version();
    // Already newer: answers at once.
    let r = h
        .gateway(
            Method::GET,
            &format!("{CHANGES_PATH}?after={}", current - 1),
            None,
        )
        .await;
    let changes: ChangesResponse = serde_json::from_value(r.json).unwrap();
    assert_eq!(changes.version, current);
    h.gateway(Method::GET, &format!("{CHANGES_PATH}?after=x"), None)
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");

    // Nothing happens: answers at the timeout (2 s in tests) with the same version.
    let started = Instant::now();
    let r = h
        .gateway(
            Method::GET,
            &format!("{CHANGES_PATH}?after={current}"),
            None,
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert_eq!(r.json["version"], current);

    // A change made through another replica on the same store wakes the poll (by polling).
    let other = h.db.open().await;
    let path = format!("{CHANGES_PATH}?after={current}");
    let poll = async {
        let started = Instant::now();
        let r = h.gateway(Method::GET, &path, None).await;
        (r, started.elapsed())
    };
    let writer = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut tx = other.state.store().begin_write().await.unwrap();
        crate::store::settings::set_workspace_conf(tx.conn(), 1, "maxTokenLifetimeDays", "3")
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    let ((r, elapsed), ()) = tokio::join!(poll, writer);
    assert_eq!(r.json["version"], current + 1);
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

async fn changes_wake_on_local_commits(db: Db) {
    let h = Harness::new(db).await;
    let current = h.gateway(Method::GET, READY_PATH, None).await.version();
    let path = format!("{CHANGES_PATH}?after={current}");
    let poll = async {
        let started = Instant::now();
        let r = h.gateway(Method::GET, &path, None).await;
        (r, started.elapsed())
    };
    let write = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.admin(Method::POST, "/api/2.0/token/create", Some(json!({})))
            .await
            .expect(200);
    };
    let ((r, elapsed), ()) = tokio::join!(poll, write);
    assert_eq!(r.json["version"], current + 1);
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

both_backends!(
    refused_to_everyone_but_the_gateway,
    resolve_token_returns_principal_and_groups,
    resolve_principal_by_name,
    snapshot_holds_what_the_gateway_caches,
    changes_long_poll,
    changes_wake_on_local_commits,
);
