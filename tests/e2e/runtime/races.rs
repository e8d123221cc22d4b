//! Statements racing a stop or a delete of their warehouse, and statements whose warehouse
//! cannot start (the control plane fails every RUNNING update).

use super::stack::{quiet_sweeper, run, start, test_config, Reply, Stack};
use lakeward_runtime::Config;
use serde_json::json;
use std::time::{Duration, Instant};

/// Runs a statement on the warehouse as Alice and, once the statement has read the
/// warehouse's record (but before it queues), `meanwhile` (`stop` or `delete`) on it.
async fn execute_racing(h: &Stack, wh: &str, meanwhile: &str) -> (Reply, Reply) {
    // The runtime has no snapshot of the workspace's catalog yet (and creating the warehouse
    // moved the state version past any it had), so the statement asks the control plane for
    // one, after reading the warehouse's record: the relay holds that request.
    let mut held = h.relay.hold_next_catalog();
    let run = h.execute(
        "alice@x.com",
        json!({"statement": "SELECT 1 AS x", "warehouse_id": wh, "wait_timeout": "30s"}),
    );
    let other = async {
        held.arrived(Duration::from_secs(10)).await;
        let method = if meanwhile == "delete" {
            "DELETE"
        } else {
            "POST"
        };
        let path = if meanwhile == "delete" {
            format!("/api/2.0/sql/warehouses/{wh}")
        } else {
            format!("/api/2.0/sql/warehouses/{wh}/{meanwhile}")
        };
        let r = h.call("alice@x.com", method, &path, None).await;
        held.release();
        r
    };
    tokio::join!(run, other)
}

#[test]
fn a_statement_racing_a_stop_restarts_the_warehouse_properly() {
    run(async {
        let h = start(quiet_sweeper()).await;
        let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
        let (r, stop) = execute_racing(&h, &wh, "stop").await;
        assert_eq!(stop.status, 200, "{}", stop.body);
        assert_eq!(r.body["status"]["state"], "SUCCEEDED", "{}", r.body);
        // It ran on a warehouse started again through the control plane, not on compute the stop
        // had released.
        let info = h
            .call(
                "alice@x.com",
                "GET",
                &format!("/api/2.0/sql/warehouses/{wh}"),
                None,
            )
            .await;
        assert_eq!(info.body["state"], "RUNNING", "{}", info.body);
    });
}

#[test]
fn a_statement_racing_a_delete_fails() {
    run(async {
        let h = start(quiet_sweeper()).await;
        let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
        let (r, delete) = execute_racing(&h, &wh, "delete").await;
        assert_eq!(delete.status, 200, "{}", delete.body);
        assert_eq!(r.body["status"]["state"], "FAILED", "{}", r.body);
        let message = r.body["status"]["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&wh) && message.contains("DELETED"),
            "{message}"
        );
    });
}

#[test]
fn statements_fail_when_their_warehouse_cannot_start() {
    run(async {
        let h = start(test_config()).await;
        h.relay.fail_running(1000);
        let r = h
            .call(
                "alice@x.com",
                "POST",
                "/api/2.0/sql/warehouses",
                Some(json!({"name": "broken", "cluster_size": "2X-Small", "auto_stop_mins": 0})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let wh = r.body["id"].as_str().unwrap().to_owned();
        let r = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT 1 AS x", "warehouse_id": wh, "wait_timeout": "0s"}),
            )
            .await;
        assert_eq!(r.body["status"]["state"], "PENDING", "{}", r.body);
        let id = r.body["statement_id"].as_str().unwrap().to_owned();
        let done = h
            .poll_until_done("alice@x.com", &id, Duration::from_secs(20))
            .await;
        assert_eq!(done["status"]["state"], "FAILED", "{done}");
        assert_eq!(
            done["status"]["error"]["error_code"], "TEMPORARILY_UNAVAILABLE",
            "{done}"
        );
        // Once the control plane answers again, the sweeper provisions it.
        h.relay.fail_running(0);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = h
                .call(
                    "alice@x.com",
                    "GET",
                    &format!("/api/2.0/sql/warehouses/{wh}"),
                    None,
                )
                .await;
            if r.body["state"] == "RUNNING" {
                break;
            }
            assert!(Instant::now() < deadline, "never RUNNING: {}", r.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn statements_pending_past_the_retention_fail() {
    run(async {
        let h = start(Config {
            statement_retention_secs: 1,
            ..test_config()
        })
        .await;
        h.relay.fail_running(1000);
        let r = h
            .call(
                "alice@x.com",
                "POST",
                "/api/2.0/sql/warehouses",
                Some(json!({"name": "slow", "cluster_size": "2X-Small", "auto_stop_mins": 0})),
            )
            .await;
        let wh = r.body["id"].as_str().unwrap().to_owned();
        let r = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT 1 AS x", "warehouse_id": wh, "wait_timeout": "0s"}),
            )
            .await;
        let id = r.body["statement_id"].as_str().unwrap().to_owned();
        let done = h
            .poll_until_done("alice@x.com", &id, Duration::from_secs(4))
            .await;
        assert_eq!(done["status"]["state"], "FAILED", "{done}");
        assert!(
            done["status"]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("without starting"),
            "{done}"
        );
    });
}
