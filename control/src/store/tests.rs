//! Store tests, on SQLite and on PostgreSQL.

use super::principals::{self, Group};
use super::workspaces::{self, Workspace, RUNNING};
use super::{ip_lists, permissions, settings, tokens, Backend, Store};
use crate::test_support::{both_backends, Db, TestDb};
use lakeward_common::internal::ListType;
use std::time::Duration;

async fn open_store(db: &TestDb) -> Store {
    let url = match &db.config.database_url {
        Some(url) => url.clone(),
        None => crate::sqlite_url(db.data_dir.path()).unwrap(),
    };
    Store::open(&url, 4, Duration::from_secs(10)).await.unwrap()
}

async fn migrations_are_idempotent(db: Db) {
    let test_db = TestDb::new(db).await;
    let store = open_store(&test_db).await;
    assert_eq!(store.version().await.unwrap(), 0);
    assert_eq!(
        store.backend(),
        if test_db.is_postgres() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    );
    let mut tx = store.begin_write().await.unwrap();
    settings::set_workspace_conf(tx.conn(), 7, "k", "v")
        .await
        .unwrap();
    assert_eq!(tx.commit().await.unwrap(), 1);
    store.close().await;
    // Opening again re-runs nothing and keeps the data.
    let again = open_store(&test_db).await;
    assert_eq!(again.version().await.unwrap(), 1);
    let mut conn = again.conn().await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(applied, super::migrations::MIGRATIONS.len() as i64);
    assert_eq!(
        settings::workspace_conf(&mut conn, 7).await.unwrap()["k"],
        "v"
    );
}

async fn rolled_back_writes_leave_no_version(db: Db) {
    let test_db = TestDb::new(db).await;
    let store = open_store(&test_db).await;
    let mut watcher = store.subscribe();
    {
        let mut tx = store.begin_write().await.unwrap();
        settings::set_workspace_conf(tx.conn(), 1, "k", "v")
            .await
            .unwrap();
        // Dropped without commit.
    }
    assert_eq!(store.version().await.unwrap(), 0);
    let mut conn = store.conn().await.unwrap();
    assert!(settings::workspace_conf(&mut conn, 1)
        .await
        .unwrap()
        .is_empty());
    drop(conn);
    let tx = store.begin_write().await.unwrap();
    assert_eq!(tx.commit().await.unwrap(), 1);
    // The local watch saw the commit.
    watcher.changed().await.unwrap();
    assert_eq!(*watcher.borrow(), 1);
}

async fn concurrent_writers_get_distinct_versions(db: Db) {
    let test_db = TestDb::new(db).await;
    let store = std::sync::Arc::new(open_store(&test_db).await);
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin_write().await.unwrap();
            settings::set_workspace_conf(tx.conn(), n, "k", "v")
                .await
                .unwrap();
            tx.commit().await.unwrap()
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=16).collect::<Vec<u64>>());
    assert_eq!(store.version().await.unwrap(), 16);
}

async fn group_names_are_unique_per_scope(db: Db) {
    let test_db = TestDb::new(db).await;
    let store = open_store(&test_db).await;
    let group = |workspace_id: Option<i64>| Group {
        id: super::new_numeric_id(),
        workspace_id,
        display_name: "admins".into(),
    };
    let mut tx = store.begin_write().await.unwrap();
    principals::insert_group(tx.conn(), &group(None))
        .await
        .unwrap();
    principals::insert_group(tx.conn(), &group(Some(1)))
        .await
        .unwrap();
    principals::insert_group(tx.conn(), &group(Some(2)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Account-level names are unique too, although their workspace_id is NULL.
    for scope in [None, Some(1)] {
        let mut tx = store.begin_write().await.unwrap();
        let err = principals::insert_group(tx.conn(), &group(scope))
            .await
            .unwrap_err();
        assert!(crate::ControlError::from(err).is_unique_violation());
    }
}

async fn deleting_a_workspace_deletes_what_it_owns(db: Db) {
    let test_db = TestDb::new(db).await;
    let store = open_store(&test_db).await;
    let ws = Workspace {
        workspace_id: 42,
        workspace_name: "w".into(),
        deployment_name: "w".into(),
        workspace_status: RUNNING.into(),
        attributes: serde_json::Map::from_iter([("aws_region".to_owned(), "x".into())]),
        creation_time: 1,
    };
    let principal = principals::Principal {
        id: 5,
        kind: lakeward_common::assertion::PrincipalKind::User,
        user_name: "u@example.com".into(),
        display_name: "U".into(),
        active: true,
        application_id: None,
    };
    let mut tx = store.begin_write().await.unwrap();
    principals::insert(tx.conn(), &principal).await.unwrap();
    workspaces::create(tx.conn(), &ws, &[5]).await.unwrap();
    let token = tokens::Token {
        token_id: "t".into(),
        workspace_id: 42,
        owner_id: 5,
        created_by_id: 5,
        created_by_username: None,
        comment: String::new(),
        creation_time: 1,
        expiry_time: -1,
    };
    tokens::insert(tx.conn(), &token, "h").await.unwrap();
    let list = ip_lists::IpList {
        list_id: "l".into(),
        scope: ip_lists::Scope::Workspace(42),
        label: "l".into(),
        list_type: ListType::Allow,
        enabled: true,
        ip_addresses: vec!["1.2.3.4".into()],
        created_at: 1,
        created_by: 5,
        updated_at: 1,
        updated_by: 5,
    };
    ip_lists::insert(tx.conn(), &list).await.unwrap();
    settings::set_workspace_conf(tx.conn(), 42, "k", "v")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut conn = store.conn().await.unwrap();
    // New workspaces let their members use tokens.
    let groups = principals::groups_of(&mut conn, 5).await.unwrap();
    let users = groups.iter().find(|g| g.display_name == "users").unwrap();
    assert_eq!(
        permissions::grants(&mut conn, 42, permissions::TOKENS_OBJECT)
            .await
            .unwrap(),
        vec![permissions::Grant {
            grantee_id: users.id,
            permission_level: "CAN_USE".into()
        }]
    );
    assert_eq!(workspaces::get(&mut conn, 42).await.unwrap().unwrap(), ws);
    assert_eq!(principals::groups_of(&mut conn, 5).await.unwrap().len(), 2);
    let found = tokens::by_hash(&mut conn, "h").await.unwrap().unwrap();
    assert_eq!(found.created_by_username.as_deref(), Some("u@example.com"));
    assert_eq!(
        ip_lists::list(&mut conn, ip_lists::Scope::Workspace(42))
            .await
            .unwrap(),
        vec![list]
    );
    drop(conn);

    let mut tx = store.begin_write().await.unwrap();
    assert!(workspaces::delete(tx.conn(), 42).await.unwrap());
    tx.commit().await.unwrap();
    let mut conn = store.conn().await.unwrap();
    assert!(workspaces::get(&mut conn, 42).await.unwrap().is_none());
    assert!(principals::groups_of(&mut conn, 5)
        .await
        .unwrap()
        .is_empty());
    assert!(tokens::by_hash(&mut conn, "h").await.unwrap().is_none());
    assert!(ip_lists::all(&mut conn).await.unwrap().is_empty());
    assert!(settings::all_workspace_conf(&mut conn)
        .await
        .unwrap()
        .is_empty());
    assert!(
        permissions::grants(&mut conn, 42, permissions::TOKENS_OBJECT)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        principals::get(&mut conn, 5).await.unwrap().is_some(),
        "principals stay"
    );
}

/// A store made before token permissions existed gets the default grant (its workspaces'
/// `users` groups hold `CAN_USE`) and a new state version, so gateways refetch principals.
async fn token_permission_migration_grants_users(db: Db) {
    let test_db = TestDb::new(db).await;
    let store = open_store(&test_db).await;
    let ws = Workspace {
        workspace_id: 7,
        workspace_name: "w".into(),
        deployment_name: "w".into(),
        workspace_status: RUNNING.into(),
        attributes: serde_json::Map::new(),
        creation_time: 1,
    };
    let mut tx = store.begin_write().await.unwrap();
    workspaces::create(tx.conn(), &ws, &[]).await.unwrap();
    tx.commit().await.unwrap();
    // Back to how migration 1 left it: no grants, migration 2 not applied.
    let mut conn = store.conn().await.unwrap();
    sqlx::query("DELETE FROM object_permissions")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM schema_migrations WHERE version = 2")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let before = store.version().await.unwrap();
    store.close().await;

    let store = open_store(&test_db).await;
    assert_eq!(store.version().await.unwrap(), before + 1);
    let mut conn = store.conn().await.unwrap();
    let users = principals::group_by_name(&mut conn, Some(7), "users")
        .await
        .unwrap()
        .unwrap();
    let grants = permissions::grants(&mut conn, 7, permissions::TOKENS_OBJECT)
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grantee_id, users.id);
    assert_eq!(grants[0].permission_level, "CAN_USE");
}

/// SQLite connections are in WAL mode with `synchronous=FULL`, so acknowledged writes
/// survive a crash.
#[tokio::test]
async fn sqlite_is_durable() {
    let test_db = TestDb::new(Db::Sqlite).await;
    let store = open_store(&test_db).await;
    let mut conn = store.conn().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
    assert!(test_db.data_dir.path().join("control.db").exists());
}

both_backends!(
    migrations_are_idempotent,
    rolled_back_writes_leave_no_version,
    concurrent_writers_get_distinct_versions,
    group_names_are_unique_per_scope,
    deleting_a_workspace_deletes_what_it_owns,
    token_permission_migration_grants_users,
);
