//! The Statement Execution API: validation, results and errors, polling and chunks, cancel, a
//! stopped warehouse starting for a statement, and the bounds on what one caller may hold.

use super::stack::{run, start, test_config, ADMIN, ALICE};
use lakeward_common::data::TOUCHED_HEADER;
use lakeward_runtime::Config;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn statement_requests_are_validated_before_anything_runs() {
    run(async {
        let h = start(test_config()).await;
        let id = h.create_warehouse("alice@x.com", "wh", 0).await;
        for (body, needle) in [
            (
                json!({"statement": "SELECT 1", "warehouse_id": id, "wait_timeout": "2s"}),
                "wait_timeout",
            ),
            (
                json!({"statement": "SELECT 1", "warehouse_id": id, "disposition": "EXTERNAL_LINKS"}),
                "EXTERNAL_LINKS",
            ),
            (
                json!({"statement": "SELECT 1", "warehouse_id": id, "format": "CSV"}),
                "CSV",
            ),
            (json!({"warehouse_id": id}), "statement"),
        ] {
            let r = h.execute("alice@x.com", body).await;
            assert_eq!(r.status, 400, "{}", r.body);
            assert_eq!(r.body["error_code"], "INVALID_PARAMETER_VALUE");
            assert!(
                r.body["message"].as_str().unwrap().contains(needle),
                "{}",
                r.body
            );
        }
        // Bob may not use Alice's warehouse.
        let r = h
            .execute(
                "bob@x.com",
                json!({"statement": "SELECT 1", "warehouse_id": id}),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        let r = h
            .call("alice@x.com", "GET", "/api/2.0/sql/statements/nope", None)
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(r.body["error_code"], "RESOURCE_DOES_NOT_EXIST");
    });
}

// ---- statements (these need the SQL engine) ----

#[test]
fn select_one_and_errors_as_failed() {
    run(async {
        let h = start(test_config()).await;
        let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
        let r = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT 1 AS x", "warehouse_id": wh}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["status"]["state"], "SUCCEEDED", "{}", r.body);
        assert_eq!(r.body["result"]["data_array"], json!([["1"]]));
        let column = &r.body["manifest"]["schema"]["columns"][0];
        assert_eq!(column["name"], "x");
        assert_eq!(r.body["manifest"]["total_row_count"], 1);
        assert_eq!(r.body["manifest"]["format"], "JSON_ARRAY");

        // Another caller cannot see it; an admin can.
        let sid = r.body["statement_id"].as_str().unwrap();
        let other = h
            .call(
                "bob@x.com",
                "GET",
                &format!("/api/2.0/sql/statements/{sid}"),
                None,
            )
            .await;
        assert_eq!(other.status, 404);
        let admin = h
            .call(
                "admin@x.com",
                "GET",
                &format!("/api/2.0/sql/statements/{sid}"),
                None,
            )
            .await;
        assert_eq!(admin.status, 200);

        let bad = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELEC 1", "warehouse_id": wh}),
            )
            .await;
        assert_eq!(bad.status, 200, "{}", bad.body);
        assert_eq!(bad.body["status"]["state"], "FAILED");
        assert!(bad.body["status"]["error"]["message"].is_string());
        let missing = h
        .execute(
            "alice@x.com",
            json!({"statement": "SELECT * FROM main.default.no_such_table", "warehouse_id": wh}),
        )
        .await;
        assert_eq!(
            missing.body["status"]["state"], "FAILED",
            "{}",
            missing.body
        );
    });
}

#[test]
fn async_statements_are_polled_and_fetched_chunk_by_chunk() {
    run(async {
        let h = start(test_config()).await;
        let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
        let r = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT value FROM generate_series(1, 40) ORDER BY value",
                   "warehouse_id": wh, "wait_timeout": "0s"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let state = r.body["status"]["state"].as_str().unwrap();
        assert!(
            ["PENDING", "RUNNING", "SUCCEEDED"].contains(&state),
            "{}",
            r.body
        );
        let id = r.body["statement_id"].as_str().unwrap().to_owned();
        let done = h
            .poll_until_done("alice@x.com", &id, Duration::from_secs(20))
            .await;
        assert_eq!(done["status"]["state"], "SUCCEEDED", "{done}");
        let manifest = &done["manifest"];
        assert_eq!(manifest["total_row_count"], 40);
        let chunk_count = manifest["total_chunk_count"].as_u64().unwrap();
        assert!(
            chunk_count > 1,
            "64-byte chunks must split 40 rows: {manifest}"
        );
        let mut values = Vec::new();
        let mut data = done["result"].clone();
        let mut fetched = 1;
        loop {
            for row in data["data_array"].as_array().unwrap() {
                values.push(row[0].as_str().unwrap().parse::<i64>().unwrap());
            }
            let Some(link) = data["next_chunk_internal_link"].as_str() else {
                break;
            };
            let next = h.call("alice@x.com", "GET", link, None).await;
            assert_eq!(next.status, 200, "{}", next.body);
            data = next.body;
            fetched += 1;
        }
        assert_eq!(fetched, chunk_count);
        assert_eq!(values, (1..=40).collect::<Vec<i64>>());
        let past = h
            .call(
                "alice@x.com",
                "GET",
                &format!("/api/2.0/sql/statements/{id}/result/chunks/{chunk_count}"),
                None,
            )
            .await;
        assert_eq!(past.status, 400);

        // row_limit truncates.
        let r = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT value FROM generate_series(1, 40)", "warehouse_id": wh,
                   "row_limit": 5}),
            )
            .await;
        assert_eq!(r.body["manifest"]["total_row_count"], 5, "{}", r.body);
        assert_eq!(r.body["manifest"]["truncated"], true);
    });
}

#[test]
fn a_long_query_is_cancelled_within_a_second() {
    run(async {
        let h = start(test_config()).await;
        let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
        let r = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT count(*) FROM generate_series(1, 100000000) a \
                                 CROSS JOIN generate_series(1, 100000000) b",
                   "warehouse_id": wh, "wait_timeout": "0s"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let id = r.body["statement_id"].as_str().unwrap().to_owned();
        // Let it get going.
        let polled = h
            .poll_until_state("alice@x.com", &id, "RUNNING", Duration::from_secs(10))
            .await;
        assert_eq!(polled["status"]["state"], "RUNNING", "{polled}");
        let started = Instant::now();
        let cancel = h
            .call(
                "alice@x.com",
                "POST",
                &format!("/api/2.0/sql/statements/{id}/cancel"),
                Some(json!({})),
            )
            .await;
        assert_eq!(cancel.status, 200);
        assert_eq!(cancel.body, json!({}));
        let done = h
            .poll_until_done("alice@x.com", &id, Duration::from_secs(1))
            .await;
        assert_eq!(done["status"]["state"], "CANCELED");
        // The slot is free again within the second: the next statement runs.
        let next = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT 2 AS y", "warehouse_id": wh, "wait_timeout": "5s"}),
            )
            .await;
        assert_eq!(next.body["status"]["state"], "SUCCEEDED", "{}", next.body);
        assert!(started.elapsed() < Duration::from_secs(3));
    });
}

#[test]
fn a_stopped_warehouse_starts_for_a_statement() {
    run(async {
        let h = start(test_config()).await;
        let wh = h.create_warehouse("alice@x.com", "wh", 0).await;
        let stop = h
            .call(
                "alice@x.com",
                "POST",
                &format!("/api/2.0/sql/warehouses/{wh}/stop"),
                None,
            )
            .await;
        assert_eq!(stop.status, 200);
        h.wait_state("alice@x.com", &wh, "STOPPED").await;
        let r = h
            .execute(
                "alice@x.com",
                json!({"statement": "SELECT 1 AS x", "warehouse_id": wh}),
            )
            .await;
        assert_eq!(r.body["status"]["state"], "SUCCEEDED", "{}", r.body);
        h.wait_state("alice@x.com", &wh, "RUNNING").await;
        assert!(r.headers.get(TOUCHED_HEADER).is_none());
    });
}

// ---- bounds ----

/// A statement that runs until cancelled.
const ENDLESS: &str = "SELECT count(*) FROM generate_series(1, 100000000) a \
                       CROSS JOIN generate_series(1, 100000000) b";

#[test]
fn a_caller_past_its_live_statements_is_refused_and_others_are_not() {
    run(async {
        let h = start(Config {
            max_live_statements_per_caller: 1,
            ..test_config()
        })
        .await;
        let wh = h.create_warehouse(ALICE, "wh", 0).await;
        let first = h
            .execute(
                ALICE,
                json!({"statement": ENDLESS, "warehouse_id": wh, "wait_timeout": "0s"}),
            )
            .await;
        assert_eq!(first.status, 200, "{}", first.body);
        let first = first.body["statement_id"].as_str().unwrap().to_owned();

        let refused = h
            .execute(
                ALICE,
                json!({"statement": "SELECT 1 AS x", "warehouse_id": wh, "wait_timeout": "0s"}),
            )
            .await;
        assert_eq!(refused.status, 429, "{}", refused.body);
        assert_eq!(
            refused.body["error_code"], "RESOURCE_EXHAUSTED",
            "{}",
            refused.body
        );
        assert!(
            refused.body["message"]
                .as_str()
                .unwrap()
                .contains("pending or running"),
            "{}",
            refused.body
        );

        // The bound is the caller's: another caller on the same warehouse is still served
        // (its statement may wait for Alice's to free the warehouse's slot).
        let other = h
            .execute(
                ADMIN,
                json!({"statement": "SELECT 2 AS y", "warehouse_id": wh, "wait_timeout": "0s"}),
            )
            .await;
        assert_eq!(other.status, 200, "{}", other.body);
        let other = other.body["statement_id"].as_str().unwrap().to_owned();

        let cancel = h
            .call(
                ALICE,
                "POST",
                &format!("/api/2.0/sql/statements/{first}/cancel"),
                Some(json!({})),
            )
            .await;
        assert_eq!(cancel.status, 200, "{}", cancel.body);
        let done = h
            .poll_until_done(ALICE, &first, Duration::from_secs(10))
            .await;
        assert_eq!(done["status"]["state"], "CANCELED", "{done}");

        // Once her statement has ended, Alice is served again.
        let again = h
            .execute(
                ALICE,
                json!({"statement": "SELECT 3 AS z", "warehouse_id": wh, "wait_timeout": "10s"}),
            )
            .await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.body["status"]["state"], "SUCCEEDED", "{}", again.body);
        assert_eq!(again.body["result"]["data_array"], json!([["3"]]));
        let other = h
            .poll_until_done(ADMIN, &other, Duration::from_secs(10))
            .await;
        assert_eq!(other["status"]["state"], "SUCCEEDED", "{other}");
    });
}

/// A result kept as 20 to 40 KB: 600 rows rendered into the tests' 64-byte chunks, each with
/// its own framing.
const MEDIUM_RESULT: &str = "SELECT value FROM generate_series(1, 600)";

#[test]
fn results_a_caller_keeps_are_bounded_per_caller() {
    run(async {
        let h = start(Config {
            // Room for one MEDIUM_RESULT, not two.
            max_result_bytes_per_caller: 40_000,
            ..test_config()
        })
        .await;
        let wh = h.create_warehouse(ALICE, "wh", 0).await;
        let medium = json!({"statement": MEDIUM_RESULT, "warehouse_id": wh, "wait_timeout": "30s"});

        let first = h.execute(ALICE, medium.clone()).await;
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(first.body["status"]["state"], "SUCCEEDED", "{}", first.body);
        let first_id = first.body["statement_id"].as_str().unwrap().to_owned();

        // The second result would take Alice past her budget: the statement fails, cleanly.
        let second = h.execute(ALICE, medium.clone()).await;
        assert_eq!(second.status, 200, "{}", second.body);
        assert_eq!(second.body["status"]["state"], "FAILED", "{}", second.body);
        let error = &second.body["status"]["error"];
        assert_eq!(error["error_code"], "RESOURCE_EXHAUSTED", "{}", second.body);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("results kept for the caller's statements would exceed 40000 bytes"),
            "{}",
            second.body
        );
        assert!(second.body.get("result").is_none(), "{}", second.body);

        // What she already holds is untouched.
        let kept = h
            .call(
                ALICE,
                "GET",
                &format!("/api/2.0/sql/statements/{first_id}"),
                None,
            )
            .await;
        assert_eq!(kept.body["status"]["state"], "SUCCEEDED", "{}", kept.body);
        assert_eq!(
            kept.body["manifest"]["total_row_count"], 600,
            "{}",
            kept.body
        );

        // The budget is hers, not the warehouse's: another caller is served.
        let other = h.execute(ADMIN, medium).await;
        assert_eq!(other.body["status"]["state"], "SUCCEEDED", "{}", other.body);
    });
}
