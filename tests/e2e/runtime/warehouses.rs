//! Warehouses: their life cycle and permissions, auto-stop, and stops left half-done when the
//! control plane fails the STOPPED update.

use super::stack::{quiet_sweeper, run, start, test_config};
use serde_json::json;

#[test]
fn warehouse_life_cycle_and_permissions() {
    run(async {
        let h = start(test_config()).await;
        let id = h.create_warehouse("alice@x.com", "alice-wh", 0).await;
        let info = h.wait_state("alice@x.com", &id, "RUNNING").await;
        assert_eq!(info["name"], "alice-wh");
        assert_eq!(info["cluster_size"], "2X-Small");
        assert_eq!(info["creator_name"], "alice@x.com");
        assert_eq!(info["warehouse_type"], "CLASSIC");
        assert_eq!(info["num_clusters"], 1);
        assert_eq!(info["odbc_params"]["hostname"], "ws.example.com");

        // Names are unique among live warehouses; validation names the field.
        let dup = h
            .call(
                "bob@x.com",
                "POST",
                "/api/2.0/sql/warehouses",
                Some(json!({"name": "alice-wh"})),
            )
            .await;
        assert_eq!(dup.status, 409, "{}", dup.body);
        let bad = h
            .call(
                "bob@x.com",
                "POST",
                "/api/2.0/sql/warehouses",
                Some(json!({"name": "b", "cluster_size": "Jumbo"})),
            )
            .await;
        assert_eq!(bad.status, 400);
        assert_eq!(bad.body["error_code"], "INVALID_PARAMETER_VALUE");
        assert!(bad.body["message"]
            .as_str()
            .unwrap()
            .contains("cluster_size"));

        // Bob holds nothing on it: no view, no list entry, no stop.
        let denied = h
            .call(
                "bob@x.com",
                "GET",
                &format!("/api/2.0/sql/warehouses/{id}"),
                None,
            )
            .await;
        assert_eq!(denied.status, 403, "{}", denied.body);
        assert_eq!(denied.body["error_code"], "PERMISSION_DENIED");
        assert!(denied.body["message"]
            .as_str()
            .unwrap()
            .contains("alice-wh"));
        let listed = h
            .call("bob@x.com", "GET", "/api/2.0/sql/warehouses", None)
            .await;
        assert_eq!(listed.body["warehouses"], json!([]));
        let stop = h
            .call(
                "bob@x.com",
                "POST",
                &format!("/api/2.0/sql/warehouses/{id}/stop"),
                Some(json!({})),
            )
            .await;
        assert_eq!(stop.status, 403);
        // Admins see everything.
        let listed = h
            .call("admin@x.com", "GET", "/api/2.0/sql/warehouses", None)
            .await;
        assert_eq!(listed.body["warehouses"].as_array().unwrap().len(), 1);
        let missing = h
            .call(
                "alice@x.com",
                "GET",
                "/api/2.0/sql/warehouses/00000000000fffff",
                None,
            )
            .await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.body["error_code"], "RESOURCE_DOES_NOT_EXIST");

        // Edit, stop, start, delete.
        let edit = h
            .call(
                "alice@x.com",
                "POST",
                &format!("/api/2.0/sql/warehouses/{id}/edit"),
                Some(json!({"cluster_size": "Small"})),
            )
            .await;
        assert_eq!(edit.status, 200, "{}", edit.body);
        let stop = h
            .call(
                "alice@x.com",
                "POST",
                &format!("/api/2.0/sql/warehouses/{id}/stop"),
                Some(json!({})),
            )
            .await;
        assert_eq!(stop.status, 200, "{}", stop.body);
        let stopped = h.wait_state("alice@x.com", &id, "STOPPED").await;
        assert_eq!(stopped["cluster_size"], "Small");
        let start = h
            .call(
                "alice@x.com",
                "POST",
                &format!("/api/2.0/sql/warehouses/{id}/start"),
                None,
            )
            .await;
        assert_eq!(start.status, 200, "{}", start.body);
        h.wait_state("alice@x.com", &id, "RUNNING").await;
        let delete = h
            .call(
                "alice@x.com",
                "DELETE",
                &format!("/api/2.0/sql/warehouses/{id}"),
                None,
            )
            .await;
        assert_eq!(delete.status, 200, "{}", delete.body);
        h.wait_state("alice@x.com", &id, "DELETED").await;
        let listed = h
            .call("alice@x.com", "GET", "/api/2.0/sql/warehouses", None)
            .await;
        assert_eq!(listed.body["warehouses"], json!([]));
    });
}

#[test]
fn idle_warehouses_stop_themselves() {
    run(async {
        let h = start(test_config()).await;
        // One "minute" is 300 ms here.
        let id = h.create_warehouse("alice@x.com", "short-lived", 1).await;
        let keeper = h.create_warehouse("alice@x.com", "never-stops", 0).await;
        h.wait_state("alice@x.com", &id, "STOPPED").await;
        // More than a "minute" later, and after a sweep that has finished with `keeper`: a
        // warehouse made now with a one-minute auto-stop has been stopped.
        let probe = h.create_warehouse("alice@x.com", "probe", 1).await;
        h.wait_state("alice@x.com", &probe, "STOPPED").await;
        let info = h.wait_state("alice@x.com", &keeper, "RUNNING").await;
        assert_eq!(info["auto_stop_mins"], 0);
    });
}

#[test]
fn a_warehouse_left_stopping_can_be_stopped_and_started() {
    run(async {
        let h = start(quiet_sweeper()).await;
        let id = h.create_warehouse("alice@x.com", "wh", 0).await;
        let stop_path = format!("/api/2.0/sql/warehouses/{id}/stop");
        let start_path = format!("/api/2.0/sql/warehouses/{id}/start");

        // The STOPPED update fails: the warehouse is left STOPPING; starting it finishes the stop
        // and starts it.
        h.relay.fail_stopped(1);
        let stop = h.call("alice@x.com", "POST", &stop_path, None).await;
        assert_ne!(stop.status, 200, "{}", stop.body);
        h.wait_state("alice@x.com", &id, "STOPPING").await;
        let start = h.call("alice@x.com", "POST", &start_path, None).await;
        assert_eq!(start.status, 200, "{}", start.body);
        h.wait_state("alice@x.com", &id, "RUNNING").await;

        // Again; this time stopping it again finishes the stop.
        h.relay.fail_stopped(1);
        let stop = h.call("alice@x.com", "POST", &stop_path, None).await;
        assert_ne!(stop.status, 200, "{}", stop.body);
        h.wait_state("alice@x.com", &id, "STOPPING").await;
        let stop = h.call("alice@x.com", "POST", &stop_path, None).await;
        assert_eq!(stop.status, 200, "{}", stop.body);
        h.wait_state("alice@x.com", &id, "STOPPED").await;

        // And a statement on a warehouse left STOPPING starts it too.
        let start = h.call("alice@x.com", "POST", &start_path, None).await;
        assert_eq!(start.status, 200, "{}", start.body);
        h.wait_state("alice@x.com", &id, "RUNNING").await;
        h.relay.fail_stopped(1);
        let stop = h.call("alice@x.com", "POST", &stop_path, None).await;
        assert_ne!(stop.status, 200, "{}", stop.body);
        let r = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT 1 AS x", "warehouse_id": id}),
            )
            .await;
        assert_eq!(r.body["status"]["state"], "SUCCEEDED", "{}", r.body);
        h.wait_state("alice@x.com", &id, "RUNNING").await;
    });
}

#[test]
fn the_sweeper_finishes_a_stop_left_half_done() {
    run(async {
        let h = start(test_config()).await;
        let id = h.create_warehouse("alice@x.com", "wh", 0).await;
        h.relay.fail_stopped(1);
        let stop = h
            .call(
                "alice@x.com",
                "POST",
                &format!("/api/2.0/sql/warehouses/{id}/stop"),
                None,
            )
            .await;
        assert_ne!(stop.status, 200, "{}", stop.body);
        h.wait_state("alice@x.com", &id, "STOPPED").await;
    });
}
