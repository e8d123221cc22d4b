//! Bootstrap, restarts and serving over a real socket.

use crate::test_support::{both_backends, Db, Harness, TestDb};
use axum::body::Body;
use axum::http::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lakeward_common::assertion::IDENTITY_HEADER;
use lakeward_common::internal::{CHANGES_PATH, READY_PATH, STATE_VERSION_HEADER};
use serde_json::json;
use std::time::{Duration, Instant};

async fn bootstrap_is_idempotent(db: Db) {
    let test_db = TestDb::new(db).await;
    let plane = test_db.open().await;
    let first = plane.bootstrap("root@example.com").await.unwrap();
    assert!(first.admin_token.is_some());
    assert_eq!(first.default_workspace_id.to_string().len(), 16);
    assert!(uuid::Uuid::parse_str(&first.account_id).is_ok());
    let second = plane.bootstrap("root@example.com").await.unwrap();
    assert_eq!(second.admin_token, None);
    assert_eq!(second.account_id, first.account_id);
    assert_eq!(second.default_workspace_id, first.default_workspace_id);
    // Another replica (or a restart) agrees.
    let replica = test_db.open().await;
    let third = replica.bootstrap("someone-else@example.com").await.unwrap();
    assert_eq!(third.admin_token, None);
    assert_eq!(third.account_id, first.account_id);
    assert!(plane.bootstrap("  ").await.is_err());
}

async fn restarts_keep_data(db: Db) {
    let h = Harness::new(db).await;
    let created = h
        .admin(
            Method::POST,
            "/api/2.0/token/create",
            Some(json!({"comment": "kept"})),
        )
        .await;
    let value = created.json["token_value"].as_str().unwrap().to_owned();
    h.admin(
        Method::PATCH,
        "/api/2.0/workspace-conf",
        Some(json!({"maxTokenLifetimeDays": "7"})),
    )
    .await
    .expect(204);
    let version = h
        .admin(Method::GET, "/api/2.0/token/list", None)
        .await
        .version();
    let Harness {
        db, plane, boot, ..
    } = h;
    plane.state.store().close().await;
    drop(plane);

    let reopened = db.open().await;
    let again = reopened.bootstrap("admin@example.com").await.unwrap();
    assert_eq!(again.admin_token, None);
    assert_eq!(again.account_id, boot.account_id);
    assert_eq!(reopened.state.store().version().await.unwrap(), version);
    let mut conn = reopened.state.store().conn().await.unwrap();
    let token =
        crate::store::tokens::by_hash(&mut conn, &lakeward_common::token::hash_token(&value))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(token.comment, "kept");
    let conf = crate::store::settings::workspace_conf(&mut conn, boot.default_workspace_id)
        .await
        .unwrap();
    assert_eq!(conf["maxTokenLifetimeDays"], "7");
}

async fn serves_on_a_socket_and_shuts_down_gracefully(db: Db) {
    let h = Harness::new(db).await;
    let key = h.db.key.clone();
    let gateway = key.sign(h.gateway_claims()).unwrap();
    let Harness { db, plane, .. } = h;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(plane.serve(listener, async {
        let _ = stopped.await;
    }));

    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let get = |path: String| {
        Request::builder()
            .method(Method::GET)
            .uri(format!("http://{addr}{path}"))
            .header(IDENTITY_HEADER, gateway.clone())
            .body(Body::empty())
            .unwrap()
    };
    let ready = client.request(get(READY_PATH.to_owned())).await.unwrap();
    assert_eq!(ready.status(), 200);
    let version: u64 = ready.headers()[STATE_VERSION_HEADER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    // A pending long-poll ends at once when shutdown starts, and the server then stops.
    let poll = client.request(get(format!("{CHANGES_PATH}?after={version}")));
    let started = Instant::now();
    let trigger = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(()).unwrap();
    };
    let (answer, ()) = tokio::join!(poll, trigger);
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(1500));
    let body = axum::body::to_bytes(Body::new(answer.into_body()), 1 << 16)
        .await
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed["version"], version);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    drop(db);
}

async fn open_refuses_bad_config_and_wrong_key(db: Db) {
    let test_db = TestDb::new(db).await;
    let mut config = test_db.config.clone();
    config.max_connections = 0;
    let err = crate::ControlPlane::open(&config, test_db.data_dir.path(), test_db.keys())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_connections"), "{err}");
    let runtime_key = lakeward_common::assertion::MasterSecret::generate()
        .key_for(lakeward_common::assertion::Audience::Runtime);
    // Each key must be of its own audience, in either place.
    let swapped = [
        crate::ControlKeys {
            control: runtime_key.clone(),
            data_plane: test_db.data_key.clone(),
        },
        crate::ControlKeys {
            control: test_db.key.clone(),
            data_plane: runtime_key,
        },
        crate::ControlKeys {
            control: test_db.data_key.clone(),
            data_plane: test_db.key.clone(),
        },
    ];
    for keys in swapped {
        assert!(
            crate::ControlPlane::open(&test_db.config, test_db.data_dir.path(), keys)
                .await
                .is_err()
        );
    }
}

both_backends!(
    bootstrap_is_idempotent,
    restarts_keep_data,
    serves_on_a_socket_and_shuts_down_gracefully,
    open_refuses_bad_config_and_wrong_key,
);
