//! IP access lists: validation, quota and the lockout guard, workspace and account.

use crate::test_support::{both_backends, Db, Harness, CLIENT_IP};
use axum::http::Method;
use serde_json::{json, Value};

const LISTS: &str = "/api/2.0/ip-access-lists";

fn list_body(label: &str, list_type: &str, addresses: &[&str]) -> Option<Value> {
    Some(json!({"label": label, "list_type": list_type, "ip_addresses": addresses}))
}

async fn enable_workspace_lists(h: &Harness) {
    h.admin(
        Method::PATCH,
        "/api/2.0/workspace-conf",
        Some(json!({"enableIpAccessLists": "true"})),
    )
    .await
    .expect(204);
}

async fn crud_and_shapes(db: Db) {
    let h = Harness::new(db).await;
    let r = h
        .admin(
            Method::POST,
            LISTS,
            list_body("office", "ALLOW", &["1.2.3.4", "10.0.0.0/16"]),
        )
        .await;
    r.expect(200);
    let list = &r.json["ip_access_list"];
    let id = list["list_id"].as_str().unwrap().to_owned();
    assert_eq!(list["label"], "office");
    assert_eq!(list["list_type"], "ALLOW");
    assert_eq!(list["address_count"], 2);
    assert_eq!(list["enabled"], true);
    assert_eq!(list["created_by"], h.admin.id);
    assert!(list["created_at"].as_i64().unwrap() > 0);

    let one = h.admin(Method::GET, &format!("{LISTS}/{id}"), None).await;
    one.expect(200);
    assert_eq!(
        one.json["ip_access_list"]["ip_addresses"],
        json!(["1.2.3.4", "10.0.0.0/16"])
    );
    h.admin(
        Method::PATCH,
        &format!("{LISTS}/{id}"),
        Some(json!({"enabled": false})),
    )
    .await
    .expect(200);
    h.admin(
        Method::PUT,
        &format!("{LISTS}/{id}"),
        Some(json!({"enabled": true, "ip_addresses": ["5.6.7.8"], "label": "office", "list_type": "BLOCK"})),
    )
    .await
    .expect(200);
    let all = h.admin(Method::GET, LISTS, None).await;
    let lists = all.json["ip_access_lists"].as_array().unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0]["list_type"], "BLOCK");
    assert_eq!(lists[0]["ip_addresses"], json!(["5.6.7.8"]));
    // PUT needs every field.
    h.admin(
        Method::PUT,
        &format!("{LISTS}/{id}"),
        Some(json!({"label": "office", "list_type": "BLOCK"})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    h.admin(Method::DELETE, &format!("{LISTS}/{id}"), None)
        .await
        .expect(200);
    h.admin(Method::GET, &format!("{LISTS}/{id}"), None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.admin(Method::DELETE, &format!("{LISTS}/{id}"), None)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");

    // Non-admins may not touch them.
    let alice = h.add_user("alice@example.com").await;
    h.call(Method::GET, LISTS, Some(&h.claims(&alice)), None)
        .await
        .expect_error(403, "PERMISSION_DENIED");
}

async fn entries_are_validated(db: Db) {
    let h = Harness::new(db).await;
    for bad in ["1.2.3.256", "1.2.3.4/33", "::1", "office", "1.2.3", ""] {
        let r = h
            .admin(
                Method::POST,
                LISTS,
                list_body("x", "ALLOW", &["1.2.3.4", bad]),
            )
            .await;
        r.expect_error(400, "INVALID_PARAMETER_VALUE");
        assert!(
            r.json["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{bad}`")),
            "{}",
            r.json
        );
    }
    h.admin(Method::POST, LISTS, list_body("  ", "ALLOW", &["1.2.3.4"]))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    h.admin(Method::POST, LISTS, list_body("x", "DENY", &["1.2.3.4"]))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    let created = h
        .admin(Method::POST, LISTS, list_body("x", "BLOCK", &["9.9.9.9"]))
        .await;
    let id = created.json["ip_access_list"]["list_id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.admin(
        Method::PATCH,
        &format!("{LISTS}/{id}"),
        Some(json!({"ip_addresses": ["bogus"]})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    h.admin(
        Method::PATCH,
        &format!("{LISTS}/{id}"),
        Some(json!({"label": ""})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    let all = h.admin(Method::GET, LISTS, None).await;
    assert_eq!(
        all.json["ip_access_lists"][0]["ip_addresses"],
        json!(["9.9.9.9"])
    );
}

async fn quota_is_1000_entries_per_scope(db: Db) {
    let h = Harness::new(db).await;
    let many: Vec<String> = (0..600)
        .map(|n| format!("11.0.{}.{}", n / 256, n % 256))
        .collect();
    let more: Vec<String> = (0..401)
        .map(|n| format!("12.0.{}.{}", n / 256, n % 256))
        .collect();
    let body = |label: &str, entries: &[String]| {
        Some(json!({"label": label, "list_type": "BLOCK", "ip_addresses": entries}))
    };
    h.admin(Method::POST, LISTS, body("a", &many))
        .await
        .expect(200);
    h.admin(Method::POST, LISTS, body("b", &more))
        .await
        .expect_error(400, "QUOTA_EXCEEDED");
    h.admin(Method::POST, LISTS, body("b", &more[..400]))
        .await
        .expect(200);
    // The account's lists have a quota of their own.
    h.account(Method::POST, "/ip-access-lists", body("acct", &more[..400]))
        .await
        .expect(200);
    let all = h.admin(Method::GET, LISTS, None).await;
    assert_eq!(all.json["ip_access_lists"].as_array().unwrap().len(), 2);
}

async fn lockout_guard_workspace(db: Db) {
    let h = Harness::new(db).await;
    // While the feature is off, lists have no effect and are not guarded.
    let off = h
        .admin(
            Method::POST,
            LISTS,
            list_body("far", "ALLOW", &["192.168.0.0/16"]),
        )
        .await;
    off.expect(200);
    let far_id = off.json["ip_access_list"]["list_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Turning the feature on would now lock the caller out.
    let r = h
        .admin(
            Method::PATCH,
            "/api/2.0/workspace-conf",
            Some(json!({"enableIpAccessLists": "true"})),
        )
        .await;
    r.expect_error(400, "INVALID_STATE");
    let conf = h
        .admin(
            Method::GET,
            "/api/2.0/workspace-conf?keys=enableIpAccessLists",
            None,
        )
        .await;
    assert_eq!(conf.json["enableIpAccessLists"], "false");
    h.admin(Method::DELETE, &format!("{LISTS}/{far_id}"), None)
        .await
        .expect(200);
    enable_workspace_lists(&h).await;

    // A block list holding the caller's address.
    let version = h.admin(Method::GET, LISTS, None).await.version();
    let r = h
        .admin(
            Method::POST,
            LISTS,
            list_body("oops", "BLOCK", &["10.1.0.0/16"]),
        )
        .await;
    r.expect_error(400, "INVALID_STATE");
    assert!(r.json["message"].as_str().unwrap().contains(CLIENT_IP));
    assert_eq!(r.version(), version, "nothing changed");
    // An allow list without it.
    h.admin(
        Method::POST,
        LISTS,
        list_body("other", "ALLOW", &["192.168.1.1"]),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    assert_eq!(
        h.admin(Method::GET, LISTS, None).await.json["ip_access_lists"],
        json!([])
    );
    // An allow list with it, then one without: fine, the first still admits the caller.
    let mine = h
        .admin(
            Method::POST,
            LISTS,
            list_body("mine", "ALLOW", &[CLIENT_IP]),
        )
        .await;
    mine.expect(200);
    let mine_id = mine.json["ip_access_list"]["list_id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.admin(
        Method::POST,
        LISTS,
        list_body("other", "ALLOW", &["192.168.1.1"]),
    )
    .await
    .expect(200);
    // Disabling, emptying, retyping or deleting the caller's allow list would lock them out.
    let path = format!("{LISTS}/{mine_id}");
    for patch in [
        json!({"enabled": false}),
        json!({"ip_addresses": ["8.8.8.8"]}),
        json!({"list_type": "BLOCK"}),
    ] {
        h.admin(Method::PATCH, &path, Some(patch))
            .await
            .expect_error(400, "INVALID_STATE");
    }
    h.admin(
        Method::PUT,
        &path,
        Some(json!({"label": "mine", "list_type": "ALLOW", "enabled": true, "ip_addresses": ["8.8.8.8"]})),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    h.admin(Method::DELETE, &path, None)
        .await
        .expect_error(400, "INVALID_STATE");
    // A caller at another address may make that change.
    let mut elsewhere = h.admin_claims();
    elsewhere.client_ip = "192.168.1.1".into();
    h.call(Method::DELETE, &path, Some(&elsewhere), None)
        .await
        .expect(200);
}

async fn lockout_guard_account(db: Db) {
    let h = Harness::new(db).await;
    // The account feature is on by default.
    let setting = h
        .account(
            Method::GET,
            "/settings/types/acct_ip_acl_enable/names/default",
            None,
        )
        .await;
    setting.expect(200);
    assert_eq!(setting.json["acct_ip_acl_enable"]["value"], true);
    h.account(
        Method::POST,
        "/ip-access-lists",
        list_body("corp", "ALLOW", &["1.2.3.0/24"]),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    // Switch it off, then the list is accepted, and switching back on is refused.
    let off = h
        .account(
            Method::PATCH,
            "/settings/types/acct_ip_acl_enable/names/default",
            Some(
                json!({"allow_missing": true, "field_mask": "acct_ip_acl_enable.value",
                "setting": {"acct_ip_acl_enable": {"value": false}, "setting_name": "default"}}),
            ),
        )
        .await;
    off.expect(200);
    assert_eq!(off.json["acct_ip_acl_enable"]["value"], false);
    assert!(!off.json["etag"].as_str().unwrap().is_empty());
    h.account(
        Method::POST,
        "/ip-access-lists",
        list_body("corp", "ALLOW", &["1.2.3.0/24"]),
    )
    .await
    .expect(200);
    h.account(
        Method::PATCH,
        "/settings/types/acct_ip_acl_enable/names/default",
        Some(json!({"setting": {"acct_ip_acl_enable": {"value": true}}})),
    )
    .await
    .expect_error(400, "INVALID_STATE");
    h.account(
        Method::DELETE,
        "/settings/types/acct_ip_acl_enable/names/default",
        None,
    )
    .await
    .expect_error(400, "INVALID_STATE");
    h.account(
        Method::PATCH,
        "/settings/types/acct_ip_acl_enable/names/default",
        Some(json!({"setting": {"acct_ip_acl_enable": {}}})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
    // Workspace lists are separate from the account's.
    assert_eq!(
        h.admin(Method::GET, LISTS, None).await.json["ip_access_lists"],
        json!([])
    );
    let account_lists = h.account(Method::GET, "/ip-access-lists", None).await;
    assert_eq!(
        account_lists.json["ip_access_lists"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Another account id is unknown.
    h.call(
        Method::GET,
        "/api/2.0/accounts/not-this-one/ip-access-lists",
        Some(&h.account_claims()),
        None,
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

both_backends!(
    crud_and_shapes,
    entries_are_validated,
    quota_is_1000_entries_per_scope,
    lockout_guard_workspace,
    lockout_guard_account,
);
