//! The grants API (Unity Catalog permissions), who may see which grants, and a revoke
//! reaching a statement that waits in a warehouse's queue.

use super::stack::{run, start, test_config};
use lakeward_common::data::TOUCHED_HEADER;
use serde_json::json;
use std::time::Duration;

#[test]
fn grants_api_reads_and_changes_grants() {
    run(async {
        let h = start(test_config()).await;
        // The first statement context seeds `samples` and `main`.
        let r = h
            .call(
                "admin@x.com",
                "GET",
                "/api/2.1/unity-catalog/permissions/catalog/main",
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = h
            .call(
                "admin@x.com",
                "PATCH",
                "/api/2.1/unity-catalog/permissions/CATALOG/main",
                Some(json!({"changes": [{"principal": "bob@x.com", "add": ["USE_CATALOG"]}]})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body["privilege_assignments"]
            .as_array()
            .unwrap()
            .contains(&json!({"principal": "bob@x.com", "privileges": ["USE_CATALOG"]})));
        let r = h
            .call(
                "admin@x.com",
                "PATCH",
                "/api/2.1/unity-catalog/permissions/catalog/main",
                Some(json!({"changes": [{"principal": "nobody", "add": ["USE_CATALOG"]}]})),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        let r = h
            .call(
                "bob@x.com",
                "PATCH",
                "/api/2.1/unity-catalog/permissions/catalog/main",
                Some(json!({"changes": [{"principal": "bob@x.com", "add": ["ALL_PRIVILEGES"]}]})),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        let r = h
            .call(
                "admin@x.com",
                "GET",
                "/api/2.1/unity-catalog/permissions/catalog/nope",
                None,
            )
            .await;
        assert_eq!(r.status, 404, "{}", r.body);
    });
}

#[test]
fn grants_are_shown_only_to_those_who_may_see_them() {
    run(async {
        let h = start(test_config()).await;
        let path = "/api/2.1/unity-catalog/permissions/catalog/main";
        // Seeds the catalog; `main` belongs to `admins` and nothing on it is granted to Alice.
        let r = h.call("admin@x.com", "GET", path, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        // Invisible to Alice: exactly as a missing catalog.
        let hidden = h.call("alice@x.com", "GET", path, None).await;
        let missing = h
            .call(
                "alice@x.com",
                "GET",
                "/api/2.1/unity-catalog/permissions/catalog/nope",
                None,
            )
            .await;
        assert_eq!(hidden.status, 404, "{}", hidden.body);
        assert_eq!(hidden.body["error_code"], missing.body["error_code"]);
        let patch = h
            .call(
                "alice@x.com",
                "PATCH",
                path,
                Some(json!({"changes": [{"principal": "alice@x.com", "add": ["USE_CATALOG"]}]})),
            )
            .await;
        assert_eq!(patch.status, 404, "{}", patch.body);

        let r = h
            .call(
                "admin@x.com",
                "PATCH",
                path,
                Some(json!({"changes": [
                    {"principal": "alice@x.com", "add": ["USE_CATALOG"]},
                    {"principal": "bob@x.com", "add": ["USE_CATALOG", "USE_SCHEMA"]},
                ]})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        // Alice now sees the catalog, but only her own assignment; the admin sees all of them.
        let alice = h.call("alice@x.com", "GET", path, None).await;
        assert_eq!(alice.status, 200, "{}", alice.body);
        assert_eq!(
            alice.body["privilege_assignments"],
            json!([{"principal": "alice@x.com", "privileges": ["USE_CATALOG"]}])
        );
        let filtered = h
            .call(
                "alice@x.com",
                "GET",
                &format!("{path}?principal=bob@x.com"),
                None,
            )
            .await;
        assert_eq!(filtered.body["privilege_assignments"], json!([]));
        let admin = h.call("admin@x.com", "GET", path, None).await;
        let principals: Vec<&str> = admin.body["privilege_assignments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["principal"].as_str().unwrap())
            .collect();
        assert!(
            principals.contains(&"alice@x.com") && principals.contains(&"bob@x.com"),
            "{}",
            admin.body
        );
        // Group grants count as the caller's: `users` holds privileges on `samples`.
        let samples = h
            .call(
                "alice@x.com",
                "GET",
                "/api/2.1/unity-catalog/permissions/catalog/samples",
                None,
            )
            .await;
        assert_eq!(samples.status, 200, "{}", samples.body);
        assert_eq!(
            samples.body["privilege_assignments"][0]["principal"], "users",
            "{}",
            samples.body
        );
    });
}

#[test]
fn a_revoke_reaches_a_statement_waiting_in_the_queue() {
    run(async {
        let h = start(test_config()).await;
        // 2X-Small runs one statement at a time.
        let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
        let long = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT count(*) FROM generate_series(1, 100000000) a \
                                 CROSS JOIN generate_series(1, 100000000) b",
                   "warehouse_id": wh, "wait_timeout": "0s"}),
            )
            .await;
        let long_id = long.body["statement_id"].as_str().unwrap().to_owned();
        let queued = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT count(*) FROM samples.tpch.nation",
                   "warehouse_id": wh, "wait_timeout": "0s"}),
            )
            .await;
        assert_eq!(queued.body["status"]["state"], "PENDING", "{}", queued.body);
        let queued_id = queued.body["statement_id"].as_str().unwrap().to_owned();
        // Revoked while it waits.
        let revoke = h
            .call(
                "admin@x.com",
                "PATCH",
                "/api/2.1/unity-catalog/permissions/catalog/samples",
                Some(json!({"changes": [{"principal": "users", "remove": ["SELECT"]}]})),
            )
            .await;
        assert_eq!(revoke.status, 200, "{}", revoke.body);
        let cancel = h
            .call(
                "alice@x.com",
                "POST",
                &format!("/api/2.0/sql/statements/{long_id}/cancel"),
                None,
            )
            .await;
        assert_eq!(cancel.status, 200);
        let done = h
            .poll_until_done("alice@x.com", &queued_id, Duration::from_secs(20))
            .await;
        assert_eq!(done["status"]["state"], "FAILED", "{done}");
        assert_eq!(
            done["status"]["error"]["error_code"], "PERMISSION_DENIED",
            "{done}"
        );
        // A refused execute names what it attempted for the audit record.
        let denied = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT count(*) FROM samples.tpch.nation", "warehouse_id": wh}),
        )
        .await;
        assert_eq!(denied.body["status"]["state"], "FAILED", "{}", denied.body);
        let touched = denied
            .headers
            .get(TOUCHED_HEADER)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(touched.contains("samples.tpch.nation"), "{touched:?}");
    });
}
