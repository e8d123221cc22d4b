//! Store tests, on SQLite and on PostgreSQL.

use super::directory::Group;
use super::principals;
use super::workspaces::{self, Workspace, RUNNING};
use super::{catalog, ip_lists, permissions, settings, tokens, warehouses, Backend, Store};
use crate::test_support::{both_backends, Db, TestDb};
use lakeward_common::data::{
    AclEntry, CatalogRecord, ColumnRecord, SchemaRecord, TableRecord, WarehouseRecord,
    WarehouseState,
};
use lakeward_common::internal::ListType;
use std::collections::BTreeMap;
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
    let principal = super::directory::Principal {
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
    let warehouse = sample_warehouse(42, "00000000000000aa");
    warehouses::insert(tx.conn(), &warehouse).await.unwrap();
    permissions::grant(
        tx.conn(),
        42,
        &warehouses::object_key(&warehouse.id),
        5,
        "CAN_MANAGE",
    )
    .await
    .unwrap();
    fill_catalog(tx.conn(), 42).await;
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
    assert!(warehouses::get(&mut conn, 42, &warehouse.id)
        .await
        .unwrap()
        .is_none());
    assert!(catalog::catalogs(&mut conn, 42).await.unwrap().is_empty());
    assert!(catalog::schemas(&mut conn, 42).await.unwrap().is_empty());
    assert!(catalog::tables(&mut conn, 42).await.unwrap().is_empty());
    assert!(catalog::grants(&mut conn, 42).await.unwrap().is_empty());
    assert!(
        principals::get(&mut conn, 5).await.unwrap().is_some(),
        "principals stay"
    );
}

fn sample_warehouse(workspace_id: i64, id: &str) -> WarehouseRecord {
    WarehouseRecord {
        id: id.into(),
        workspace_id,
        spec: serde_json::json!({"name": "wh", "cluster_size": "2X-Small", "tags": {"a": "b"}}),
        state: WarehouseState::Running,
        creator_name: "u@example.com".into(),
        last_activity_ms: 1_700_000_000_000,
        acl: Vec::new(),
    }
}

fn table(catalog: &str, schema: &str, name: &str) -> TableRecord {
    TableRecord {
        catalog: catalog.into(),
        schema: schema.into(),
        name: name.into(),
        owner: "u@example.com".into(),
        table_type: "MANAGED".into(),
        format: "PARQUET".into(),
        location: format!("{catalog}/{schema}/{name}/"),
        columns: vec![
            ColumnRecord {
                name: "id".into(),
                data_type: "Int64".into(),
                nullable: false,
            },
            ColumnRecord {
                name: "price".into(),
                data_type: "Decimal128(15, 2)".into(),
                nullable: true,
            },
        ],
        options: BTreeMap::from([("header".to_owned(), "true".to_owned())]),
        comment: Some("trips".into()),
    }
}

/// Catalog `main` with schemas `a_b` and `axb`, a table `t` in each, and grants on all.
async fn fill_catalog(conn: &mut sqlx::AnyConnection, ws: i64) {
    let main = CatalogRecord {
        name: "main".into(),
        owner: "u@example.com".into(),
        comment: None,
    };
    catalog::insert_catalog(conn, ws, &main).await.unwrap();
    for schema in ["a_b", "axb"] {
        let record = SchemaRecord {
            catalog: "main".into(),
            name: schema.into(),
            owner: "u@example.com".into(),
            comment: Some(format!("schema {schema}")),
        };
        catalog::insert_schema(conn, ws, &record).await.unwrap();
        catalog::insert_table(conn, ws, &table("main", schema, "t"))
            .await
            .unwrap();
        let grants = [
            (catalog::SCHEMA, format!("main.{schema}"), "USE_SCHEMA"),
            (catalog::TABLE, format!("main.{schema}.t"), "SELECT"),
            (catalog::TABLE, format!("main.{schema}.t"), "MODIFY"),
        ];
        for (kind, full_name, privilege) in grants {
            assert!(
                catalog::add_grant(conn, ws, kind, &full_name, "analysts", privilege)
                    .await
                    .unwrap()
            );
        }
    }
    assert!(catalog::add_grant(
        conn,
        ws,
        catalog::CATALOG,
        "main",
        "analysts",
        "USE_CATALOG"
    )
    .await
    .unwrap());
}

async fn catalog_rows_round_trip_and_cascade(db: Db) {
    let test_db = TestDb::new(db).await;
    let store = open_store(&test_db).await;
    let mut tx = store.begin_write().await.unwrap();
    fill_catalog(tx.conn(), 7).await;
    // Granting twice is no change.
    assert!(!catalog::add_grant(
        tx.conn(),
        7,
        catalog::CATALOG,
        "main",
        "analysts",
        "USE_CATALOG"
    )
    .await
    .unwrap());
    tx.commit().await.unwrap();

    let mut conn = store.conn().await.unwrap();
    assert_eq!(catalog::catalogs(&mut conn, 7).await.unwrap().len(), 1);
    assert!(catalog::catalogs(&mut conn, 8).await.unwrap().is_empty());
    assert_eq!(catalog::schemas(&mut conn, 7).await.unwrap()[1].name, "axb");
    let tables = catalog::tables(&mut conn, 7).await.unwrap();
    assert_eq!(
        tables,
        vec![table("main", "a_b", "t"), table("main", "axb", "t")]
    );
    let grants = catalog::grants(&mut conn, 7).await.unwrap();
    assert_eq!(grants.len(), 5, "{grants:?}");
    let on_table = grants.iter().find(|g| g.full_name == "main.a_b.t").unwrap();
    assert_eq!(on_table.securable_type, "TABLE");
    assert_eq!(on_table.privileges, vec!["MODIFY", "SELECT"]);
    assert_eq!(
        catalog::count_tables(&mut conn, 7, "main", "a_b")
            .await
            .unwrap(),
        1
    );
    drop(conn);

    // Dropping `a_b` takes its table and every grant on either, and nothing of `axb` (a LIKE
    // pattern `main.a_b.%` would have matched `main.axb.t`).
    let mut tx = store.begin_write().await.unwrap();
    assert!(catalog::delete_schema(tx.conn(), 7, "main", "a_b")
        .await
        .unwrap());
    assert!(!catalog::delete_schema(tx.conn(), 7, "main", "a_b")
        .await
        .unwrap());
    tx.commit().await.unwrap();
    let mut conn = store.conn().await.unwrap();
    assert_eq!(
        catalog::tables(&mut conn, 7).await.unwrap(),
        vec![table("main", "axb", "t")]
    );
    let names: Vec<String> = catalog::grants(&mut conn, 7)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.full_name)
        .collect();
    assert_eq!(names, vec!["main", "main.axb", "main.axb.t"]);
    drop(conn);

    // Dropping a table takes its grants; replacing one keeps them.
    let mut tx = store.begin_write().await.unwrap();
    let mut replaced = table("main", "axb", "t");
    replaced.format = "CSV".into();
    replaced.columns.truncate(1);
    catalog::replace_table(tx.conn(), 7, &replaced)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut conn = store.conn().await.unwrap();
    assert_eq!(catalog::tables(&mut conn, 7).await.unwrap(), vec![replaced]);
    assert_eq!(catalog::grants(&mut conn, 7).await.unwrap().len(), 3);
    drop(conn);
    let mut tx = store.begin_write().await.unwrap();
    assert!(catalog::delete_table(tx.conn(), 7, "main", "axb", "t")
        .await
        .unwrap());
    assert!(catalog::remove_grant(
        tx.conn(),
        7,
        catalog::SCHEMA,
        "main.axb",
        "analysts",
        "USE_SCHEMA"
    )
    .await
    .unwrap());
    tx.commit().await.unwrap();
    let mut conn = store.conn().await.unwrap();
    assert!(catalog::tables(&mut conn, 7).await.unwrap().is_empty());
    let left = catalog::grants(&mut conn, 7).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].full_name, "main");
}

async fn warehouse_rows_round_trip(db: Db) {
    let test_db = TestDb::new(db).await;
    let store = open_store(&test_db).await;
    let id = warehouses::new_id();
    assert!(warehouses::is_id(&id), "{id}");
    assert_ne!(id, warehouses::new_id());
    let mut record = sample_warehouse(7, &id);
    let mut tx = store.begin_write().await.unwrap();
    warehouses::insert(tx.conn(), &record).await.unwrap();
    permissions::grant(tx.conn(), 7, &warehouses::object_key(&id), 5, "CAN_MANAGE")
        .await
        .unwrap();
    assert_eq!(tx.commit().await.unwrap(), 1);

    let mut conn = store.conn().await.unwrap();
    record.acl = vec![AclEntry {
        grantee_id: "5".into(),
        permission_level: "CAN_MANAGE".into(),
    }];
    assert_eq!(
        warehouses::get(&mut conn, 7, &id).await.unwrap(),
        Some(record.clone())
    );
    // Another workspace's id space is its own.
    assert!(warehouses::get(&mut conn, 8, &id).await.unwrap().is_none());
    assert_eq!(
        warehouses::list(&mut conn, 7).await.unwrap(),
        vec![record.clone()]
    );
    drop(conn);

    let mut tx = store.begin_write().await.unwrap();
    record.state = WarehouseState::Deleted;
    record.spec = serde_json::json!({"name": "renamed"});
    record.last_activity_ms += 1;
    warehouses::update(tx.conn(), &record).await.unwrap();
    tx.commit().await.unwrap();
    let mut conn = store.conn().await.unwrap();
    assert_eq!(
        warehouses::get(&mut conn, 7, &id).await.unwrap(),
        Some(record)
    );
    assert!(warehouses::list(&mut conn, 7).await.unwrap().is_empty());
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

/// Every SQLite connection the store hands out is in WAL mode with `synchronous=EXTRA`, so an
/// acknowledged commit has been fsynced: it survives a crash of the machine, not only of the
/// process. (A kill -9 test cannot tell: the page cache outlives the process.) The value read
/// back is EXTRA, not SQLite's default FULL, so this fails if the setting is dropped.
#[tokio::test]
async fn sqlite_is_durable() {
    let test_db = TestDb::new(Db::Sqlite).await;
    let store = open_store(&test_db).await;
    // The settings are per connection: hold several at once so the pool opens more than one.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(store.conn().await.unwrap());
    }
    for conn in &mut conns {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(synchronous, 3, "EXTRA");
    }
    drop(conns);
    // A write goes through the WAL, the file those settings make SQLite fsync at commit.
    let tx = store.begin_write().await.unwrap();
    tx.commit().await.unwrap();
    let wal = test_db.data_dir.path().join("control.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    assert!(test_db.data_dir.path().join("control.db").exists());
}

both_backends!(
    migrations_are_idempotent,
    rolled_back_writes_leave_no_version,
    concurrent_writers_get_distinct_versions,
    group_names_are_unique_per_scope,
    deleting_a_workspace_deletes_what_it_owns,
    token_permission_migration_grants_users,
    catalog_rows_round_trip_and_cascade,
    warehouse_rows_round_trip,
);
