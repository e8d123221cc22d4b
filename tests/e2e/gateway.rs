//! The gateway in front of the real control plane and runtime: authentication, IP access lists,
//! workspaces, the identity assertion and audit, all through real TLS.

use http::{Method, StatusCode};
use lakeward_tests::{plain_request, TestLakeward};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn host_metadata_needs_no_token_and_names_the_workspace() {
    let lw = TestLakeward::start().await;
    let reply = lw
        .client()
        .call(Method::GET, "/.well-known/databricks-config", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json["workspace_id"].as_str().map(str::to_owned),
        Some(lw.running.default_workspace_id.to_string())
    );
    assert_eq!(
        reply.json["account_id"].as_str(),
        Some(lw.running.account_id.as_str())
    );
}

#[tokio::test]
async fn bootstrap_token_reads_me_with_the_org_id_header() {
    let lw = TestLakeward::start().await;
    let reply = lw
        .client()
        .get("/api/2.0/preview/scim/v2/Me", &lw.admin_token)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["userName"], "admin@lakeward.local");
    let org = reply
        .headers
        .get("x-databricks-org-id")
        .expect("org id header");
    assert_eq!(
        org.to_str().unwrap(),
        lw.running.default_workspace_id.to_string()
    );
    assert!(reply.headers.get("x-request-id").is_some());
    // The internal freshness header stays inside.
    assert!(reply.headers.get("x-lakeward-state-version").is_none());
}

#[tokio::test]
async fn missing_and_unknown_tokens_are_unauthenticated() {
    let lw = TestLakeward::start().await;
    let client = lw.client();
    let none = client
        .call(Method::GET, "/api/2.0/preview/scim/v2/Me", None, None)
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.error_code(), "UNAUTHENTICATED");
    let forged = client
        .get(
            "/api/2.0/preview/scim/v2/Me",
            "dapi0123456789abcdef0123456789abcdef",
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.error_code(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_deleted_token_is_refused_on_the_next_request() {
    let lw = TestLakeward::start().await;
    let client = lw.client();
    let (token, token_id) = client
        .create_token(&lw.admin_token, json!({"comment": "e2e"}))
        .await;
    assert_eq!(
        client.get("/api/2.0/token/list", &token).await.status,
        StatusCode::OK
    );

    let deleted = client
        .post(
            "/api/2.0/token/delete",
            &token,
            json!({"token_id": token_id}),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let after = client.get("/api/2.0/token/list", &token).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.text);
    // The bootstrap token is untouched.
    assert_eq!(
        client
            .get("/api/2.0/token/list", &lw.admin_token)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let lw = TestLakeward::start().await;
    let client = lw.client();
    let (token, _) = client
        .create_token(
            &lw.admin_token,
            json!({"comment": "short", "lifetime_seconds": 1}),
        )
        .await;
    assert_eq!(
        client.get("/api/2.0/token/list", &token).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = client.get("/api/2.0/token/list", &token).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
}

#[tokio::test]
async fn a_block_list_blocks_its_address_while_others_keep_working() {
    let lw = TestLakeward::start().await;
    let admin = lw.client();
    let blocked = lw.client_from("127.0.0.2".parse().unwrap());
    let other = lw.client_from("127.0.0.3".parse().unwrap());

    let list = admin
        .post(
            "/api/2.0/ip-access-lists",
            &lw.admin_token,
            json!({"label": "bad actor", "list_type": "BLOCK", "ip_addresses": ["127.0.0.2"]}),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    // Lists have no effect until the feature is on.
    assert_eq!(
        blocked
            .get("/api/2.0/token/list", &lw.admin_token)
            .await
            .status,
        StatusCode::OK
    );

    admin
        .set_workspace_conf(&lw.admin_token, json!({"enableIpAccessLists": "true"}))
        .await;

    let refused = blocked.get("/api/2.0/token/list", &lw.admin_token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let message = refused.json["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "Source IP address: 127.0.0.2 is blocked by Databricks IP ACL for workspace: "
        ),
        "{message}"
    );
    assert_eq!(
        other
            .get("/api/2.0/token/list", &lw.admin_token)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        admin
            .get("/api/2.0/token/list", &lw.admin_token)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_allow_list_admits_only_its_addresses() {
    let lw = TestLakeward::start().await;
    let admin = lw.client();
    let outsider = lw.client_from("127.0.0.4".parse().unwrap());
    let created = admin
        .post(
            "/api/2.0/ip-access-lists",
            &lw.admin_token,
            json!({"label": "office", "list_type": "ALLOW", "ip_addresses": ["127.0.0.1", "10.0.0.0/8"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    admin
        .set_workspace_conf(&lw.admin_token, json!({"enableIpAccessLists": "true"}))
        .await;
    assert_eq!(
        outsider
            .get("/api/2.0/token/list", &lw.admin_token)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        admin
            .get("/api/2.0/token/list", &lw.admin_token)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn workspaces_are_addressed_by_path_prefix_and_unknown_ones_are_404() {
    let lw = TestLakeward::start().await;
    let client = lw.client();
    let prefixed = client.with_base(format!(
        "{}/w/{}",
        client.base(),
        lw.running.default_workspace_id
    ));
    let me = prefixed
        .get("/api/2.0/preview/scim/v2/Me", &lw.admin_token)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let unknown = client.with_base(format!("{}/w/999", client.base()));
    let reply = unknown
        .get("/api/2.0/preview/scim/v2/Me", &lw.admin_token)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(reply.error_code(), "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn unknown_routes_are_404_and_internal_paths_are_never_routed() {
    let lw = TestLakeward::start().await;
    let client = lw.client();
    let reply = client.get("/api/2.0/no-such-thing", &lw.admin_token).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "ENDPOINT_NOT_FOUND");
    let internal = client.get("/internal/v1/snapshot", &lw.admin_token).await;
    assert_eq!(internal.status, StatusCode::NOT_FOUND, "{}", internal.text);
}

#[tokio::test]
async fn upstreams_refuse_calls_that_go_around_the_gateway() {
    let lw = TestLakeward::start().await;
    let url = format!(
        "http://{}/api/2.0/preview/scim/v2/Me",
        lw.running.control_addr
    );
    let bearer = format!("Bearer {}", lw.admin_token);
    let (status, _, body) = plain_request(Method::GET, &url, &[("authorization", &bearer)], None)
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = plain_request(
        Method::GET,
        &url,
        &[("x-lakeward-identity", "eyJhbGciOiJub25lIn0.e30.")],
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let runtime = format!("http://{}/api/2.0/sql/warehouses", lw.running.runtime_addr);
    let (status, _, _) = plain_request(Method::GET, &runtime, &[], None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_request_is_audited_without_secrets() {
    let lw = TestLakeward::start().await;
    let client = lw.client();
    let (new_token, _) = client
        .create_token(&lw.admin_token, json!({"comment": "audited"}))
        .await;
    let denied = client
        .get(
            "/api/2.0/token/list",
            "dapi00000000000000000000000000000000",
        )
        .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);

    // Mutating calls are durable before their response; reads follow shortly.
    let audit_dir = lw.data_dir().join("audit");
    let mut all = String::new();
    for _ in 0..50 {
        all = read_dir_text(&audit_dir);
        if all.lines().count() >= 2 && all.contains("\"statusCode\":401") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records: Vec<serde_json::Value> = all
        .lines()
        .map(|line| serde_json::from_str(line).expect("each audit line is JSON"))
        .collect();
    assert!(records.len() >= 2, "{all}");
    let create = records
        .iter()
        .find(|r| {
            r["response"]["statusCode"] == 200
                && r["actionName"]
                    .as_str()
                    .is_some_and(|a| a.to_lowercase().contains("token"))
        })
        .unwrap_or_else(|| panic!("no record of the token creation in {all}"));
    assert_eq!(create["sourceIPAddress"], "127.0.0.1");
    assert_eq!(create["userIdentity"]["email"], "admin@lakeward.local");
    assert!(
        records.iter().any(|r| r["response"]["statusCode"] == 401),
        "{all}"
    );
    assert!(
        !all.contains(&lw.admin_token),
        "the admin token leaked into the audit log"
    );
    assert!(
        !all.contains(&new_token),
        "a new token value leaked into the audit log"
    );
}

fn read_dir_text(dir: &std::path::Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.is_file() {
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    text
}

#[tokio::test]
async fn http2_is_negotiated_with_alpn() {
    let lw = TestLakeward::start().await;
    let h2 = lakeward_tests::Client::with_alpn(
        &lw.running.ca_cert,
        "127.0.0.1".parse().unwrap(),
        format!("https://127.0.0.1:{}", lw.running.gateway_addr.port()),
        true,
    )
    .unwrap();
    let reply = h2.get("/api/2.0/preview/scim/v2/Me", &lw.admin_token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn a_restart_reuses_the_data_directory() {
    let lw = TestLakeward::start().await;
    let token = lw.admin_token.clone();
    let ca = std::fs::read(&lw.running.ca_cert).unwrap();
    let workspace = lw.running.default_workspace_id;
    let (second_token, _) = lw
        .client()
        .create_token(&token, json!({"comment": "survives"}))
        .await;
    let data_dir = lw.data_dir().to_path_buf();
    let dir = lw.stop().await;

    let mut config = lakeward::config::Config {
        data_dir,
        ..Default::default()
    };
    config.gateway.listen = "127.0.0.1:0".parse().unwrap();
    config.gateway.admin_listen = "127.0.0.1:0".parse().unwrap();
    let again = TestLakeward::start_in(dir, config).await;
    assert!(
        again.running.new_admin_token.is_none(),
        "a second run creates no new token"
    );
    assert_eq!(again.admin_token, token);
    assert_eq!(again.running.default_workspace_id, workspace);
    assert_eq!(std::fs::read(&again.running.ca_cert).unwrap(), ca);
    let me = again
        .client()
        .get("/api/2.0/preview/scim/v2/Me", &second_token)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
}

#[tokio::test]
async fn health_readiness_and_metrics_are_on_the_admin_listener() {
    let lw = TestLakeward::start().await;
    assert_eq!(lw.admin_get("/healthz").await.0, StatusCode::OK);
    assert_eq!(lw.admin_get("/readyz").await.0, StatusCode::OK);
    let _ = lw
        .client()
        .get("/api/2.0/token/list", &lw.admin_token)
        .await;
    let (status, metrics) = lw.admin_get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("gateway_http_requests_total"), "{metrics}");
    assert!(
        !metrics.contains("admin@lakeward.local"),
        "user ids must not be metric labels"
    );
}
