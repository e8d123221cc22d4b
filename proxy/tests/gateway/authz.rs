//! Cedar decisions, IP access lists, account-level routes, policy reloads.

use crate::harness::*;
use http::{Method, StatusCode};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_allow_and_deny() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let t = &gw.tokens;
    // alice administers ws1.
    let first = c
        .get("localhost", "/api/2.0/ip-access-lists", Some(&t.alice))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    // bob is a plain member: denied, with Databricks' wording and no policy text.
    let reply = c
        .get("localhost", "/api/2.0/ip-access-lists", Some(&t.bob))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "PERMISSION_DENIED");
    assert_eq!(
        reply.message(),
        "User bob@example.com does not have permission to ListIpAccessLists on workspace 1001"
    );
    // Self-service is allowed to everyone.
    let reply = c
        .get("localhost", "/api/2.0/preview/scim/v2/Me", Some(&t.bob))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Every member reaches the data plane (warehouse permissions and table grants decide
    // there); creating a warehouse needs the admin role.
    let reply = c
        .get("localhost", "/api/2.0/sql/warehouses", Some(&t.bob))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let create = serde_json::json!({"name": "w", "cluster_size": "Small"});
    let reply = c
        .send(
            Method::POST,
            "localhost",
            "/api/2.0/sql/warehouses",
            Some(&t.bob),
            &[],
            Some(create.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = c
        .send(
            Method::POST,
            "localhost",
            "/api/2.0/sql/warehouses",
            Some(&t.alice),
            &[],
            Some(create),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let control = gw.control.received();
    assert_eq!(
        control.len(),
        2,
        "denied requests never reach the control plane"
    );
    let claims = control[0].claims.as_ref().unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.user_name.as_str()),
        ("100", "alice@example.com")
    );
    assert_eq!(claims.workspace_id, Some(WS1));
    assert_eq!(claims.account_id, ACCOUNT);
    assert_eq!(claims.token_id.as_deref(), Some("tok-alice"));
    assert_eq!(claims.auth_method, "pat");
    assert_eq!(claims.client_ip, "127.0.0.1");
    assert_eq!(claims.request_id, first.request_id());
    assert_eq!(
        control[0].headers["x-request-id"],
        first.request_id().as_str()
    );
    let mut groups = claims.groups.clone();
    groups.sort();
    assert_eq!(
        groups,
        ["g-ws1-admins", "g-ws1-users"],
        "only groups of the workspace addressed"
    );
    let runtime = gw.runtime.received();
    assert_eq!(
        runtime.len(),
        2,
        "bob's list and alice's create; bob's create never left"
    );
    assert!(runtime
        .iter()
        .all(|r| r.claims.as_ref().unwrap().aud == "lakeward-runtime"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_routes() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let t = &gw.tokens;
    let reply = c
        .get(
            "localhost",
            "/api/2.0/accounts/acct-1/workspaces",
            Some(&t.carol),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.message());
    let claims = gw.control.received()[0].claims.clone().unwrap();
    assert_eq!(claims.workspace_id, None);
    let reply = c
        .get(
            "localhost",
            "/api/2.0/accounts/acct-1/workspaces",
            Some(&t.bob),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.message(),
        "User bob@example.com does not have permission to ListWorkspaces on account acct-1"
    );
    let reply = c
        .get(
            "localhost",
            "/api/2.0/accounts/other/workspaces",
            Some(&t.carol),
        )
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST")
    );
    let reply = c
        .get(
            "localhost",
            "/api/2.0/accounts/acct-1/nothing-here",
            Some(&t.carol),
        )
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND")
    );
    assert_eq!(gw.control.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_access_lists_by_source_address() {
    let gw = TestGateway::start().await;
    let t = &gw.tokens;
    let from = |last: u8| gw.client(Ipv4Addr::new(127, 0, 0, last), false);

    // ws2 blocks 127.0.0.3 (and has a disabled list blocking 127.0.0.2).
    let reply = from(2)
        .get(
            "ws2.lakeward.test",
            "/api/2.0/ip-access-lists",
            Some(&t.alice_ws2),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = from(3)
        .get(
            "ws2.lakeward.test",
            "/api/2.0/ip-access-lists",
            Some(&t.alice_ws2),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "PERMISSION_DENIED");
    assert_eq!(
        reply.message(),
        "Source IP address: 127.0.0.3 is blocked by Databricks IP ACL for workspace: 1002"
    );
    // Checked before authentication: a bogus token from a blocked address learns nothing.
    let reply = from(3)
        .get(
            "ws2.lakeward.test",
            "/api/2.0/ip-access-lists",
            Some("garbage"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // ws1 has the feature off: 127.0.0.3 passes.
    let reply = from(3)
        .get("localhost", "/api/2.0/ip-access-lists", Some(&t.alice))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Account lists allow only 127.0.0.1 and 127.0.0.2, on account routes.
    let reply = from(3)
        .get(
            "localhost",
            "/api/2.0/accounts/acct-1/workspaces",
            Some(&t.carol),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.message(),
        "Source IP address: 127.0.0.3 is blocked by Databricks IP ACL for account: acct-1"
    );
    let reply = from(2)
        .get(
            "localhost",
            "/api/2.0/accounts/acct-1/workspaces",
            Some(&t.carol),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(gw.control.received().len(), 3);
    assert_eq!(
        gw.control.received()[0].claims.as_ref().unwrap().client_ip,
        "127.0.0.2"
    );

    // A new list and the feature switch, made through the gateway, apply to the very next
    // request.
    let admin = from(1);
    let reply = admin
        .send(Method::POST, "localhost", "/api/2.0/ip-access-lists", Some(&t.alice), &[],
            Some(serde_json::json!({"label": "no-2", "list_type": "BLOCK", "ip_addresses": ["127.0.0.2"]})))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = admin
        .send(
            Method::PATCH,
            "localhost",
            "/api/2.0/workspace-conf",
            Some(&t.alice),
            &[],
            Some(serde_json::json!({"enableIpAccessLists": "true"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = from(2)
        .get("localhost", "/api/2.0/token/list", Some(&t.alice))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = from(1)
        .get("localhost", "/api/2.0/token/list", Some(&t.alice))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_policy_file_keeps_the_old_set() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let t = &gw.tokens;
    assert_eq!(
        gw.metric("gateway_policy_reload_failures_total").await,
        Some(0.0)
    );
    // A file that would allow everything, if it loaded.
    std::fs::write(
        gw.policy_dir().join("zz-bad.cedar"),
        "permit (principal, action, resource);\npermit (principal, action,\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.metric("gateway_policy_reload_failures_total").await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the bad policy set was never rejected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = c
        .get("localhost", "/api/2.0/ip-access-lists", Some(&t.bob))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "still decided by the old set"
    );
    let reply = c
        .get("localhost", "/api/2.0/ip-access-lists", Some(&t.alice))
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    // A good set replaces it (atomically, by rename) and takes effect on open connections.
    let staged = gw.dir.path().join("zz-bob.cedar");
    std::fs::write(
        &staged,
        "@id(\"bob-reads-lists\")\npermit (principal == Lakeward::User::\"101\", action == Lakeward::Action::\"ListIpAccessLists\", resource);\n",
    )
    .unwrap();
    std::fs::rename(&staged, gw.policy_dir().join("zz-bad.cedar")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = c
            .get("localhost", "/api/2.0/ip-access-lists", Some(&t.bob))
            .await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the good policy set never took effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        gw.metric("gateway_policy_reload_failures_total").await,
        Some(1.0)
    );
    assert!(gw.metric("gateway_policy_generation").await.unwrap() >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let gw = TestGateway::start_with(Options {
        trusted_proxies: vec!["127.0.0.1/32".into()],
        ..Options::default()
    })
    .await;
    let t = &gw.tokens;
    let path = "/api/2.0/ip-access-lists";
    // From the trusted proxy: the right-most untrusted hop is the client (127.0.0.3, which
    // ws2 blocks); the forged left-most hop is ignored.
    let proxy = gw.client(Ipv4Addr::new(127, 0, 0, 1), false);
    let reply = proxy
        .send(
            Method::GET,
            "ws2.lakeward.test",
            path,
            Some(&t.alice_ws2),
            &[("x-forwarded-for", "127.0.0.2, 127.0.0.3")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.message().contains("127.0.0.3"), "{}", reply.message());
    let record = gw.audit_record(&reply.request_id()).await;
    assert_eq!(record["sourceIPAddress"], "127.0.0.3");
    // From anyone else the header means nothing: 127.0.0.2 is not blocked.
    let direct = gw.client(Ipv4Addr::new(127, 0, 0, 2), false);
    let reply = direct
        .send(
            Method::GET,
            "ws2.lakeward.test",
            path,
            Some(&t.alice_ws2),
            &[("x-forwarded-for", "127.0.0.3")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        gw.control.received()[0].claims.as_ref().unwrap().client_ip,
        "127.0.0.2"
    );
    // And a blocked client cannot hide behind a forged header.
    let blocked = gw.client(Ipv4Addr::new(127, 0, 0, 3), false);
    let reply = blocked
        .send(
            Method::GET,
            "ws2.lakeward.test",
            path,
            Some(&t.alice_ws2),
            &[("x-forwarded-for", "127.0.0.2")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}
