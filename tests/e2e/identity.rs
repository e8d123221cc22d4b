//! Account-level calls and workspaces created through the gateway.

use http::StatusCode;
use lakeward_tests::TestLakeward;
use serde_json::json;

#[tokio::test]
async fn a_new_workspace_is_reachable_at_once_by_its_creator() {
    let lw = TestLakeward::start().await;
    let client = lw.client();
    let path = format!("/api/2.0/accounts/{}/workspaces", lw.running.account_id);
    let created = client
        .post(
            &path,
            &lw.admin_token,
            json!({"workspace_name": "analytics", "deployment_name": "analytics"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let workspace_id = created.json["workspace_id"].as_i64().expect("workspace_id");
    assert_eq!(created.json["workspace_status"], "RUNNING");

    let listed = client.get(&path, &lw.admin_token).await;
    assert!(
        listed.json.is_array(),
        "list is a bare array: {}",
        listed.text
    );

    // The creator is assigned to the new workspace (and administers it) at once.
    let new_ws = client.with_base(format!("{}/w/{workspace_id}", client.base()));
    let me = new_ws
        .get("/api/2.0/preview/scim/v2/Me", &lw.admin_token)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(
        me.headers
            .get("x-databricks-org-id")
            .unwrap()
            .to_str()
            .unwrap(),
        workspace_id.to_string()
    );
    let lists = new_ws
        .get("/api/2.0/ip-access-lists", &lw.admin_token)
        .await;
    assert_eq!(lists.status, StatusCode::OK, "{}", lists.text);

    // A wrong account id in the path is not found.
    let wrong = client
        .get(
            "/api/2.0/accounts/00000000-0000-0000-0000-000000000000/workspaces",
            &lw.admin_token,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND, "{}", wrong.text);
}
