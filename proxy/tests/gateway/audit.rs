//! Audit records: one per request, allowed or refused, with Databricks' fields, and no
//! secret anywhere.

use crate::harness::*;
use http::{Method, StatusCode};
use std::net::Ipv4Addr;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_calls_are_audited_before_the_response_without_secrets() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let t = &gw.tokens;
    let reply = c
        .send(
            Method::POST,
            "localhost",
            "/api/2.0/token/create",
            Some(&t.alice),
            &[],
            Some(serde_json::json!({"comment": "ci", "lifetime_seconds": 3600})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let new_token = reply.json()["token_value"].as_str().unwrap().to_owned();
    assert!(new_token.starts_with("dapi"));

    // Durable before the response: no waiting needed.
    let records = gw.audit_records();
    let record = records
        .iter()
        .find(|r| r["requestId"] == reply.request_id())
        .expect("the record of a mutating call is written before its response");
    let expected = serde_json::json!({
        "version": "2.0",
        "auditLevel": "WORKSPACE_LEVEL",
        "workspaceId": "1001",
        "accountId": ACCOUNT,
        "sourceIPAddress": "127.0.0.1",
        "userAgent": "lakeward-tests/1.0 databricks-sdk-py/0.162.0",
        "sessionId": null,
        "userIdentity": {"email": "alice@example.com", "subjectName": null},
        "serviceName": "accounts",
        "actionName": "generateDbToken",
        "requestId": reply.request_id(),
        "requestParams": {"comment": "ci", "lifetime_seconds": "3600"},
        "response": {"statusCode": 200, "errorMessage": null, "result": null},
        "decision": "allow",
        "determiningPolicies": ["self-service"],
        "authMethod": "pat",
        "tokenId": "tok-alice",
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&record[key], value, "field {key}");
    }
    assert!(record["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(!record["policyVersion"].as_str().unwrap().is_empty());

    // The new token works, then a query carrying a token-like parameter.
    let reply = c
        .get(
            "localhost",
            &format!("/api/2.0/token/list?token={new_token}&x=1"),
            Some(&new_token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let record = gw.audit_record(&reply.request_id()).await;
    assert_eq!(record["requestParams"], serde_json::json!({"x": "1"}));

    let text = gw.audit_text();
    for secret in [&new_token, &t.alice, &t.bob] {
        assert!(
            !text.contains(secret.as_str()),
            "a token reached the audit log"
        );
    }
    assert!(
        !text.contains("dapi"),
        "nothing token-shaped in the audit log"
    );
    assert!(!text.contains("Bearer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_audited_with_what_they_touched() {
    let gw = TestGateway::start().await;
    let reply = gw
        .c()
        .send(
            Method::POST,
            "localhost",
            "/api/2.0/sql/statements",
            Some(&gw.tokens.alice),
            &[],
            Some(serde_json::json!({"statement": "SELECT 1", "warehouse_id": "w"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .headers
            .get(lakeward_common::data::TOUCHED_HEADER)
            .is_none(),
        "the runtime's report is for the audit log, not the client"
    );
    let record = gw.audit_record(&reply.request_id()).await;
    assert_eq!(record["actionName"], "executeStatement");
    assert_eq!(
        record["touched"],
        serde_json::json!([
            {"action": "SelectTable", "securable": "samples.tpch.nation"},
            {"action": "ModifyTable", "securable": "main.default.t"}
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_audited() {
    let gw = TestGateway::start().await;
    let c = gw.c();
    let t = &gw.tokens;

    let denied = c
        .get("localhost", "/api/2.0/ip-access-lists", Some(&t.bob))
        .await;
    let record = gw.audit_record(&denied.request_id()).await;
    assert_eq!(record["decision"], "deny");
    assert_eq!(record["actionName"], "listIpAccessLists");
    assert_eq!(record["response"]["statusCode"], 403);
    assert_eq!(record["determiningPolicies"], serde_json::json!([]));
    assert!(record["response"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("does not have permission"));

    let blocked = gw
        .client(Ipv4Addr::new(127, 0, 0, 3), false)
        .get(
            "ws2.lakeward.test",
            "/api/2.0/ip-access-lists",
            Some(&t.alice_ws2),
        )
        .await;
    let record = gw.audit_record(&blocked.request_id()).await;
    assert_eq!(record["actionName"], "IpAccessDenied");
    assert_eq!(record["sourceIPAddress"], "127.0.0.3");
    assert_eq!(record["workspaceId"], "1002");
    assert_eq!(record["decision"], "deny");

    let unauthenticated = c
        .get("localhost", "/api/2.0/token/list", Some("garbage"))
        .await;
    let record = gw.audit_record(&unauthenticated.request_id()).await;
    assert_eq!(record["response"]["statusCode"], 401);
    assert_eq!(record["userIdentity"]["email"], serde_json::Value::Null);

    let too_big = c
        .send(
            Method::POST,
            "localhost",
            "/api/2.0/token/create",
            Some(&t.alice),
            &[],
            Some(serde_json::json!({"comment": "z".repeat(70_000)})),
        )
        .await;
    let record = gw.audit_record(&too_big.request_id()).await;
    assert_eq!(record["response"]["statusCode"], 413);
    assert_eq!(record["decision"], "deny");

    let unknown = c
        .get("localhost", "/api/2.0/clusters/list", Some(&t.alice))
        .await;
    let record = gw.audit_record(&unknown.request_id()).await;
    assert_eq!(record["response"]["statusCode"], 404);
    assert_eq!(record["actionName"], "unknownEndpoint");

    let account = c
        .get(
            "localhost",
            "/api/2.0/accounts/acct-1/workspaces",
            Some(&t.carol),
        )
        .await;
    let record = gw.audit_record(&account.request_id()).await;
    assert_eq!(record["auditLevel"], "ACCOUNT_LEVEL");
    assert_eq!(record["workspaceId"], "0");
    assert_eq!(record["decision"], "allow");
    assert_eq!(
        record["determiningPolicies"],
        serde_json::json!(["account-admins"])
    );

    let anonymous = c
        .get("localhost", "/.well-known/databricks-config", None)
        .await;
    let record = gw.audit_record(&anonymous.request_id()).await;
    assert_eq!(record["actionName"], "getHostMetadata");
    assert_eq!(record["authMethod"], "none");
    assert_eq!(record["decision"], "allow");
}

/// The audit file is made a FIFO nobody reads yet, so the writer blocks: a read is answered
/// anyway, a mutating call is not answered until its record has been taken by the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_responses_wait_for_their_audit_record() {
    let gw = TestGateway::start().await;
    let day = time::OffsetDateTime::now_utc().date();
    let fifo = gw.audit_dir().join(format!(
        "audit-{:04}-{:02}-{:02}.jsonl",
        day.year(),
        u8::from(day.month()),
        day.day()
    ));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());

    let c = gw.c();
    let read = tokio::time::timeout(
        Duration::from_secs(2),
        c.get("localhost", "/api/2.0/token/list", Some(&gw.tokens.alice)),
    )
    .await
    .expect("a read does not wait for the audit log");
    assert_eq!(read.status, StatusCode::OK);

    let alice = gw.tokens.alice.clone();
    let mut create = tokio::spawn(async move {
        c.send(
            Method::POST,
            "localhost",
            "/api/2.0/token/create",
            Some(&alice),
            &[],
            Some(serde_json::json!({"comment": "waits"})),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(10), &mut create)
            .await
            .is_err(),
        "a mutating call was answered before its audit record was written"
    );
    assert_eq!(
        gw.control.received().len(),
        2,
        "the call itself was forwarded"
    );

    // Start reading: the writer unblocks, and the response follows.
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let reader = std::io::BufReader::new(std::fs::File::open(fifo).unwrap());
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let reply = tokio::time::timeout(Duration::from_secs(3), create)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let id = reply.request_id();
    let found = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(line) = lines_rx.recv().await {
            if line.contains(&id) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "the record reached the log");
}
